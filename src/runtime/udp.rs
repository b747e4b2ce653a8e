//! Batched datagram reception for the driver's UDP socket: `recvmmsg` (Linux) through nix's
//! safe wrapper, so that a wake-up that finds several datagrams queued costs one system call
//! instead of one per datagram plus one more to learn that the queue is empty.
//!
//! Written here rather than taken from `quinn-udp`, whose receive path also batches: its
//! socket state wants to own the socket's options (GRO, ECN, packet info) and hands back
//! QUIC-shaped metadata, where this needs only a source and the bytes. Sends stay one
//! `sendto` each: nix's `sendmmsg` reports how many were sent only by reading address
//! slots the kernel never wrote for a send.

use crate::engine::message::MAX_MESSAGE_BYTES;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use std::io::{self, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::AsRawFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams read by one system call. Each has a slot of the largest message's size; the
/// kernel writes only what arrives, so the resident cost is the pages a burst touches.
pub(crate) const RECEIVE_SLOTS: usize = 16;
/// Room per slot: one more than the largest message accepted, so that a larger one shows.
const SLOT: usize = MAX_MESSAGE_BYTES + 1;

/// Reads queued datagrams in batches.
///
/// nix's headers hold raw pointers and are not `Send`, so they cannot live in a driver
/// task's state: one receiver serves every socket read on a thread (the service thread),
/// which also means one set of slots per process rather than per endpoint.
struct Receiver {
    slots: Vec<u8>,
    headers: MultiHeaders<SockaddrStorage>,
    /// Length and source of each datagram of the last batch.
    received: Vec<(usize, Option<SocketAddr>)>,
}

impl Default for Receiver {
    fn default() -> Self {
        Receiver {
            slots: vec![0; RECEIVE_SLOTS * SLOT],
            headers: MultiHeaders::preallocate(RECEIVE_SLOTS, None),
            received: Vec::with_capacity(RECEIVE_SLOTS),
        }
    }
}

thread_local! {
    static RECEIVER: std::cell::RefCell<Receiver> = std::cell::RefCell::new(Receiver::default());
}

/// Reads what is queued on `socket` now, up to [`RECEIVE_SLOTS`] datagrams, and hands each
/// to `each` with its source (see [`Receiver::receive`]). `each` must not read a socket
/// itself.
pub fn receive(socket: &UdpSocket, each: impl FnMut(SocketAddr, &[u8])) -> io::Result<usize> {
    RECEIVER.with(|receiver| receiver.borrow_mut().receive(socket, each))
}

impl Receiver {
    /// Reads what is queued now, up to [`RECEIVE_SLOTS`] datagrams, and hands each to
    /// `each` with its source. Returns how many were read; `WouldBlock` when none was.
    /// A batch shorter than the slots means the queue was empty: the socket's readiness is
    /// then cleared without another system call (a datagram arriving later raises it
    /// again: the registration is edge-triggered).
    fn receive(
        &mut self,
        socket: &UdpSocket,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<usize> {
        let Receiver {
            slots,
            headers,
            received,
        } = self;
        received.clear();
        socket.try_io(Interest::READABLE, || {
            let mut chunks = slots.chunks_exact_mut(SLOT);
            let mut iovs: [[IoSliceMut; 1]; RECEIVE_SLOTS] = std::array::from_fn(|_| {
                [IoSliceMut::new(
                    chunks.next().expect("the buffer has a slot per header"),
                )]
            });
            let results = recvmmsg(
                socket.as_raw_fd(),
                headers,
                iovs.iter_mut(),
                MsgFlags::MSG_DONTWAIT,
                None,
            )
            .map_err(io::Error::from)?;
            received.extend(
                results.map(|message| (message.bytes, message.address.as_ref().and_then(address))),
            );
            Ok(())
        })?;
        for (index, &(len, from)) in received.iter().enumerate() {
            let start = index * SLOT;
            if let Some(from) = from {
                each(from, &slots[start..start + len.min(SLOT)]);
            }
        }
        if received.len() < RECEIVE_SLOTS {
            let _ = socket.try_io(Interest::READABLE, || {
                Err::<(), _>(io::ErrorKind::WouldBlock.into())
            });
        }
        Ok(received.len())
    }
}

/// The socket address of a datagram's source; an IPv4 peer of a dual-stack socket is named
/// as its IPv4 address.
pub fn address(storage: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = storage.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    let v6 = SocketAddrV6::from(*storage.as_sockaddr_in6()?);
    Some(match v6.ip().to_ipv4_mapped() {
        Some(v4) => SocketAddr::V4(SocketAddrV4::new(v4, v6.port())),
        None => SocketAddr::V6(v6),
    })
}
