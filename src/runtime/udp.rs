//! Batched datagram I/O for the driver's UDP socket: `recvmmsg` (nix's safe wrapper) and
//! `sendmmsg` (rustix's), so that a wake-up that finds several datagrams queued, or a flush
//! with several to send, costs one system call instead of one per datagram; and segmented
//! sends (UDP GSO, nix's `sendmsg` with `UDP_SEGMENT`), so that the datagrams of one flush
//! that are of one length and go to one destination cross the kernel's network stack once,
//! as one buffer the kernel cuts into datagrams where they are delivered or leave the host.
//!
//! Written here rather than taken from `quinn-udp`, whose batching is for QUIC: its receive
//! path wants to own the socket's options (GRO, ECN, packet info), and its send path takes
//! one destination and one segment size per call, where a registration endpoint's flush is
//! requests of a few sizes to one or many: [`Plan`] sorts them into runs for segmented
//! sends and the rest for one `sendmmsg`. nix's `sendmmsg` is not used: it reports how many
//! were sent only by reading address slots the kernel never wrote for a send, and gives all
//! the messages of one call the same control messages (one segment size).

use crate::engine::message::MAX_MESSAGE_BYTES;
use nix::sys::socket::{
    ControlMessage, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmsg,
};
use std::cmp::Reverse;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::ops::Range;
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

/// Datagrams one segmented send carries at most: Linux's `UDP_MAX_SEGMENTS`, 64 (later
/// kernels raised it to 128).
const MAX_SEGMENTS: usize = 64;
/// Bytes one segmented send carries at most: what fits one IP datagram (65,535 bytes with
/// the IP and UDP headers), rounded down.
const MAX_SEGMENTED_BYTES: usize = 65_000;
/// The longest datagram sent as a segment. The kernel refuses a segment that does not fit
/// the path's MTU whole (segments are not fragmented); 1,232 bytes fit IPv6's least MTU,
/// 1,280, with its header and UDP's, and RFC 3261 §18.1.1 keeps a request sent over UDP
/// under 1,300 bytes anyway. A longer datagram is sent alone, fragmented as before.
const MAX_SEGMENT: usize = 1_232;

/// Whether the kernel segments datagrams for this socket (`UDP_SEGMENT`, Linux 4.18). Asked
/// once: an older kernel would not refuse the control message but ignore it, and send the
/// whole buffer as one datagram.
pub fn offers_segmentation(socket: &UdpSocket) -> bool {
    nix::sys::socket::getsockopt(socket, nix::sys::socket::sockopt::UdpGsoSegment).is_ok()
}

/// Whether a segmented send's error is the kernel refusing segmentation itself (a device or
/// path that cannot take it, a segment larger than the path's MTU), rather than something
/// about the datagrams or their destination that sending them one by one would meet too.
pub fn refuses_segmentation(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EIO | libc::EINVAL | libc::EMSGSIZE | libc::ENOPROTOOPT | libc::EOPNOTSUPP)
    )
}

/// Sends `segments` (at most [`MAX_SEGMENTS`], all as long as the first but the last, which
/// may be shorter) to `to` with one system call, as one buffer that the kernel cuts into a
/// datagram per segment. All or none are sent: `WouldBlock` when the socket's buffer has
/// no room for them now.
pub fn send_segmented<'a>(
    socket: &UdpSocket,
    to: SocketAddr,
    segments: impl IntoIterator<Item = &'a [u8]>,
) -> io::Result<()> {
    let mut iov = [IoSlice::new(&[]); MAX_SEGMENTS];
    let mut count = 0;
    for (slot, segment) in iov.iter_mut().zip(segments) {
        *slot = IoSlice::new(segment);
        count += 1;
    }
    let iov = &iov[..count];
    let size = u16::try_from(iov.first().map_or(0, |s| s.len()))
        .map_err(|_| io::Error::from_raw_os_error(libc::EMSGSIZE))?;
    debug_assert!(
        iov.iter()
            .skip(1)
            .rev()
            .skip(1)
            .all(|s| s.len() == size.into())
            && iov.last().is_some_and(|s| s.len() <= size.into()),
        "segments of one length, but the last"
    );
    let to = SockaddrStorage::from(to);
    socket.try_io(Interest::WRITABLE, || {
        sendmsg(
            socket.as_raw_fd(),
            iov,
            &[ControlMessage::UdpGsoSegments(&size)],
            MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            Some(&to),
        )
        .map(drop)
        .map_err(io::Error::from)
    })
}

/// How the datagrams of one flush go out when the kernel segments: runs of one length to one
/// destination (and a shorter last one) each in one segmented send, the others one by one.
/// The order among datagrams to different destinations, or of different lengths, is not
/// kept: each is a request or response of its own transaction, and UDP keeps no order
/// anyway. Among those of one length to one destination, it is.
#[derive(Debug, Default)]
pub struct Plan {
    /// The datagrams' destinations, lengths (longest first) and indices, sorted: the order
    /// they are sent in.
    sorted: Vec<(SocketAddr, Reverse<usize>, usize)>,
    /// Runs of `sorted` of two or more datagrams, each one segmented send.
    runs: Vec<Range<usize>>,
    /// Indices of the datagrams sent one by one, in their original order.
    alone: Vec<usize>,
}

impl Plan {
    /// Plans the sending of datagrams of these lengths and destinations.
    pub fn make(&mut self, datagrams: impl Iterator<Item = (usize, SocketAddr)>) {
        let Plan {
            sorted,
            runs,
            alone,
        } = self;
        sorted.clear();
        runs.clear();
        alone.clear();
        sorted.extend(
            datagrams
                .enumerate()
                .map(|(index, (len, to))| (to, Reverse(len), index)),
        );
        // By destination, then longest first, then as given: equal lengths are adjacent and
        // a shorter one of the same destination follows them.
        sorted.sort_unstable();
        let len = |at: usize| sorted[at].1.0;
        let mut start = 0;
        while start < sorted.len() {
            let (to, Reverse(size), index) = sorted[start];
            let mut end = start + 1;
            if (1..=MAX_SEGMENT).contains(&size) {
                let mut bytes = size;
                let room = |end: usize, bytes: usize| {
                    end < sorted.len()
                        && end - start < MAX_SEGMENTS
                        && sorted[end].0 == to
                        && bytes + len(end) <= MAX_SEGMENTED_BYTES
                };
                while room(end, bytes) && len(end) == size {
                    bytes += size;
                    end += 1;
                }
                // A shorter one may end the run (as its last segment), unless it begins a
                // run of its own.
                let begins_run = |at: usize| {
                    at + 1 < sorted.len() && sorted[at + 1].0 == to && len(at + 1) == len(at)
                };
                if room(end, bytes) && len(end) > 0 && !begins_run(end) {
                    end += 1;
                }
            }
            if end - start > 1 {
                runs.push(start..end);
            } else {
                alone.push(index);
            }
            start = end;
        }
        alone.sort_unstable();
    }

    /// The runs planned, each the indices of its datagrams in the order of its segments.
    pub fn runs(&self) -> impl Iterator<Item = impl ExactSizeIterator<Item = usize> + Clone> {
        self.runs
            .iter()
            .map(|run| self.sorted[run.clone()].iter().map(|&(_, _, index)| index))
    }

    /// The datagrams planned to go one by one, in their original order.
    pub fn alone(&self) -> &[usize] {
        &self.alone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bound() -> UdpSocket {
        UdpSocket::bind("127.0.0.1:0").await.unwrap()
    }

    fn planned(datagrams: &[(usize, &str)]) -> (Vec<Vec<usize>>, Vec<usize>) {
        let mut plan = Plan::default();
        for _ in 0..2 {
            // Twice: a plan's buffers are reused.
            plan.make(
                datagrams
                    .iter()
                    .map(|&(len, to)| (len, to.parse().unwrap())),
            );
        }
        (
            plan.runs().map(Iterator::collect).collect(),
            plan.alone().to_vec(),
        )
    }

    #[test]
    fn a_plan_sends_runs_of_one_length_to_one_destination_together() {
        let (a, b) = ("192.0.2.1:5060", "192.0.2.2:5060");
        let (runs, alone) = planned(&[
            (400, a),
            (400, b),
            (400, a),
            (380, a),
            (420, a),
            (400, a),
            (1_300, a),
            (1_300, a),
            (380, b),
        ]);
        // a: 420 alone (the 400s begin a run of their own), the 400s in order with the
        // shorter 380 last; b: a 400 and a shorter 380; the 1,300s too long to be segments.
        assert_eq!(runs, [vec![0, 2, 5, 3], vec![1, 8]]);
        assert_eq!(alone, [4, 6, 7]);
    }

    #[test]
    fn a_plan_keeps_the_kernels_limits_on_a_run() {
        let a = "192.0.2.1:5060";
        let many: Vec<(usize, &str)> = vec![(100, a); MAX_SEGMENTS * 2 + 1];
        let (runs, alone) = planned(&many);
        assert_eq!(
            runs.iter().map(Vec::len).collect::<Vec<_>>(),
            [MAX_SEGMENTS, MAX_SEGMENTS]
        );
        assert_eq!(alone, [MAX_SEGMENTS * 2]);
        // Bytes: 1,200-byte segments fill 65,000 bytes with 54.
        let long: Vec<(usize, &str)> = vec![(1_200, a); 60];
        let (runs, alone) = planned(&long);
        assert_eq!(runs.iter().map(Vec::len).collect::<Vec<_>>(), [54, 6]);
        assert!(alone.is_empty());
        assert_eq!(planned(&[(MAX_SEGMENT + 1, a); 3]).1, [0, 1, 2]);
        assert_eq!(planned(&[(MAX_SEGMENT, a); 3]).0, [vec![0, 1, 2]]);
        // An empty datagram is no segment (a segment size of 0 is none).
        assert_eq!(planned(&[(0, a); 3]), (vec![], vec![0, 1, 2]));
        assert_eq!(planned(&[(4, a), (0, a)]), (vec![], vec![0, 1]));
    }

    #[tokio::test]
    async fn a_segmented_send_arrives_as_a_datagram_per_segment() {
        let sender = bound().await;
        assert!(
            offers_segmentation(&sender),
            "UDP_SEGMENT needs Linux 4.18 or later"
        );
        let receiver = bound().await;
        let to = receiver.local_addr().unwrap();
        let segments: [&[u8]; 4] = [b"first", b"secnd", b"third", b"4th"];
        sender.writable().await.unwrap();
        send_segmented(&sender, to, segments).unwrap();
        let mut buf = [0u8; 64];
        for expected in segments {
            let (n, from) = receiver.recv_from(&mut buf).await.unwrap();
            assert_eq!((&buf[..n], from), (expected, sender.local_addr().unwrap()));
        }
        // The kernel's refusal of segmentation itself is told apart from other errors.
        let too_many = vec![&b"x"[..]; 200];
        let error = send_segmented(&sender, to, too_many.iter().copied());
        assert!(error.is_ok(), "at most MAX_SEGMENTS are taken");
        // More than an IP datagram holds: the kernel refuses the segmented send itself.
        let half = vec![b'x'; 40_000];
        let refused = send_segmented(&sender, to, [&half[..], &half[..]]).unwrap_err();
        assert!(refuses_segmentation(&refused), "{refused}");
        let broadcast: SocketAddr = "255.255.255.255:5060".parse().unwrap();
        let refused = send_segmented(&sender, broadcast, segments).unwrap_err();
        assert!(!refuses_segmentation(&refused), "{refused}");
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
