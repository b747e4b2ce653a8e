//! Batched datagram I/O for the driver's UDP socket: `recvmmsg` (nix's safe wrapper) and
//! `sendmmsg` (rustix's), so that a wake-up that finds several datagrams queued, or a flush
//! with several to send, costs one system call instead of one per datagram.
//!
//! Written here rather than taken from `quinn-udp`, whose batching is for QUIC: its receive
//! path wants to own the socket's options (GRO, ECN, packet info), and its send path sends
//! equal-sized segments to one destination (GSO), where a registration endpoint sends
//! requests of different sizes to many. nix's `sendmmsg` is not used: it reports how many
//! were sent only by reading address slots the kernel never wrote for a send.

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
/// task's state: a receiver serves every socket of one address family read on a thread
/// (the service thread), which also means one set of slots per process rather than per
/// endpoint. One per family, because nix sets each header's address length once and the
/// kernel then leaves the last source's length there: an IPv6 source read after an IPv4
/// one would be cut to 16 bytes. A socket of one family always gets sources of one length.
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
    static RECEIVE_V4: std::cell::RefCell<Receiver> = std::cell::RefCell::new(Receiver::default());
    static RECEIVE_V6: std::cell::RefCell<Receiver> = std::cell::RefCell::new(Receiver::default());
}

/// Reads what is queued on `socket` now, up to [`RECEIVE_SLOTS`] datagrams, and hands each
/// to `each` with its source (see [`Receiver::receive`]). `each` must not read a socket
/// itself. `local` is the address the socket is bound to: the caller knows it, where
/// asking the socket would cost a system call per read.
pub fn receive(
    socket: &UdpSocket,
    local: SocketAddr,
    each: impl FnMut(SocketAddr, &[u8]),
) -> io::Result<usize> {
    debug_assert_eq!(socket.local_addr().ok(), Some(local));
    let receiver = match local.is_ipv4() {
        true => &RECEIVE_V4,
        false => &RECEIVE_V6,
    };
    receiver.with(|receiver| receiver.borrow_mut().receive(socket, each))
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

/// Datagrams written by one system call.
const SEND_SLOTS: usize = 64;

/// Sends the first [`SEND_SLOTS`] of `datagrams` (bytes and destination), in order, as many
/// as the socket takes now: returns how many were sent, or the error of the first one when
/// none was (`WouldBlock` when the socket's buffer is full; the caller decides whether the
/// first is dropped or retried).
pub fn send<'a>(
    socket: &UdpSocket,
    datagrams: impl IntoIterator<Item = (&'a [u8], SocketAddr)>,
) -> io::Result<usize> {
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    let (contents, destinations): (Vec<[io::IoSlice; 1]>, Vec<SocketAddrAny>) = datagrams
        .into_iter()
        .take(SEND_SLOTS)
        .map(|(bytes, to)| ([io::IoSlice::new(bytes)], to.as_any()))
        .unzip();
    if contents.is_empty() {
        return Ok(0);
    }
    let mut controls: Vec<SendAncillaryBuffer> = contents
        .iter()
        .map(|_| SendAncillaryBuffer::default())
        .collect();
    let mut messages: Vec<MMsgHdr> = destinations
        .iter()
        .zip(&contents)
        .zip(controls.iter_mut())
        .map(|((to, iov), control)| MMsgHdr::new_with_addr(to, iov, control))
        .collect();
    socket.try_io(Interest::WRITABLE, || {
        rustix::net::sendmmsg(
            socket,
            &mut messages,
            SendFlags::DONTWAIT | SendFlags::NOSIGNAL,
        )
        .map_err(io::Error::from)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bound() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    #[tokio::test]
    async fn a_batch_is_sent_in_order_and_stops_at_a_datagram_the_kernel_refuses() {
        let sender = bound().await;
        let receiver = bound().await;
        let to = receiver.local_addr().unwrap();
        // Without SO_BROADCAST, the kernel refuses a datagram to the broadcast address.
        let refused: SocketAddr = "255.255.255.255:5060".parse().unwrap();
        let batch: Vec<(&[u8], SocketAddr)> =
            vec![(b"one", to), (b"two", to), (b"x", refused), (b"three", to)];
        sender.writable().await.unwrap();
        assert_eq!(
            send(&sender, batch.iter().copied()).unwrap(),
            2,
            "the two before the refused one"
        );
        let error = send(&sender, batch[2..].iter().copied()).unwrap_err();
        assert_eq!(error.raw_os_error(), Some(libc::EACCES));
        assert_eq!(send(&sender, batch[3..].iter().copied()).unwrap(), 1);
        let mut buf = [0u8; 16];
        for expected in [&b"one"[..], b"two", b"three"] {
            let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (expected, sender.local_addr().unwrap()));
        }
    }

    #[tokio::test]
    async fn an_ipv6_source_read_after_ipv4_ones_is_read_whole() {
        /// Sends one datagram from `peer` to `socket`, then reads it: its source.
        async fn source_of_one(peer: &UdpSocket, socket: &UdpSocket) -> Option<SocketAddr> {
            let local = socket.local_addr().unwrap();
            peer.send_to(b"x", local).await.unwrap();
            socket.readable().await.unwrap();
            let mut from = None;
            receive(socket, local, |source, _| from = Some(source)).unwrap();
            from
        }
        let (v4, v6) = (bound().await, UdpSocket::bind("[::1]:0").await.unwrap());
        let peer4 = bound().await;
        let peer6 = UdpSocket::bind("[::1]:0").await.unwrap();
        for _ in 0..3 {
            assert_eq!(
                source_of_one(&peer4, &v4).await,
                Some(peer4.local_addr().unwrap())
            );
            assert_eq!(
                source_of_one(&peer6, &v6).await,
                Some(peer6.local_addr().unwrap())
            );
        }
    }

    #[tokio::test]
    async fn datagrams_queued_are_read_in_one_batch_with_their_sources() {
        let receiver = bound().await;
        let to = receiver.local_addr().unwrap();
        let (a, b) = (bound().await, bound().await);
        for (socket, text) in [(&a, "first"), (&b, "second"), (&a, "third")] {
            socket.send_to(text.as_bytes(), to).await.unwrap();
        }
        receiver.readable().await.unwrap();
        // Loopback delivers at once; give the third a moment all the same.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let mut seen = Vec::new();
        let read = receive(&receiver, receiver.local_addr().unwrap(), |from, bytes| {
            seen.push((from, String::from_utf8_lossy(bytes).into_owned()))
        })
        .unwrap();
        assert_eq!(read, 3);
        let (a, b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        assert_eq!(
            seen,
            [
                (a, "first".into()),
                (b, "second".into()),
                (a, "third".into())
            ]
        );
        // The queue is empty: the next read says so instead of blocking.
        let empty = receive(
            &receiver,
            receiver.local_addr().unwrap(),
            |_, _| unreachable!(),
        )
        .unwrap_err();
        assert_eq!(empty.kind(), io::ErrorKind::WouldBlock);
    }
}
