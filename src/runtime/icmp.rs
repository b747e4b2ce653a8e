//! ICMP errors for the datagrams the UDP socket sent. An unconnected UDP socket learns that
//! a registrar's port is closed, or its host unreachable, only through its error queue
//! (Linux `IP_RECVERR`, `MSG_ERRQUEUE`); nix wraps both system calls safely. What follows
//! from an error is decided by the endpoint core (`Endpoint::handle_unreachable`).

use crate::runtime::udp;
use nix::errno::Errno;
use nix::sys::socket::{
    ControlMessageOwned, MsgFlags, SockaddrStorage, recvmsg, setsockopt, sockopt,
};
use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use tokio::net::UdpSocket;

/// Asks the kernel to queue the ICMP errors of `socket`'s datagrams.
pub fn enable(socket: &UdpSocket, ipv6: bool) -> io::Result<()> {
    let result = match ipv6 {
        false => setsockopt(socket, sockopt::Ipv4RecvErr, &true),
        true => setsockopt(socket, sockopt::Ipv6RecvErr, &true),
    };
    result.map_err(io::Error::from)
}

/// Reads one error from the queue: the destination of the datagram that could not be
/// delivered and why, or `None` for an error that says nothing about the destination
/// (e.g. a smaller path MTU). `WouldBlock` when the queue is empty.
pub fn read(socket: &UdpSocket) -> io::Result<Option<(SocketAddr, String)>> {
    // The start of the datagram that failed comes back too; it is not needed.
    let mut payload = [0u8; 64];
    let mut iov = [IoSliceMut::new(&mut payload)];
    let mut control = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
    let message = recvmsg::<SockaddrStorage>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let destination = message.address.as_ref().and_then(udp::address);
    let mut why = None;
    for cmsg in message.cmsgs().map_err(io::Error::from)? {
        let error = match cmsg {
            ControlMessageOwned::Ipv4RecvErr(e, _) if e.ee_origin == libc::SO_EE_ORIGIN_ICMP => e,
            ControlMessageOwned::Ipv6RecvErr(e, _) if e.ee_origin == libc::SO_EE_ORIGIN_ICMP6 => e,
            _ => continue,
        };
        why = match Errno::from_raw(error.ee_errno as i32) {
            Errno::ECONNREFUSED => Some("port unreachable (ICMP)"),
            Errno::EHOSTUNREACH => Some("host unreachable (ICMP)"),
            Errno::ENETUNREACH => Some("network unreachable (ICMP)"),
            _ => None,
        };
    }
    Ok(destination.zip(why.map(str::to_string)))
}
