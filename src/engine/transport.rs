//! Transports as the protocol core sees them: which one (UDP, TCP, TLS), where a request
//! goes ([`Target`]), and the bounded framing of SIP messages on a byte stream (RFC 3261
//! §18.3). Sans I/O: connections are opened and read by a driver.

use crate::engine::message::{
    MAX_HEADER_LINE, MAX_HEADERS, MAX_MESSAGE_BYTES, check_header_limits, header_end,
};
use std::net::SocketAddr;

/// A SIP transport.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP (RFC 3261 §18, unreliable: Timer E retransmits).
    #[default]
    Udp,
    /// TCP (reliable, stream framed by Content-Length).
    Tcp,
    /// TLS over TCP (RFC 3261 §26.2, RFC 5922).
    Tls,
}

impl Transport {
    /// The name in a Via header (`SIP/2.0/UDP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The value of a URI's `transport` parameter naming it (`udp`, `tcp`, `tls`).
    pub fn param(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// The transport a URI's `transport` parameter names (any case), if it is one of ours.
    pub fn from_param(value: &str) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.param().eq_ignore_ascii_case(value))
    }

    /// Whether the transport is a byte stream (TCP or TLS): reliable, connection based.
    pub fn is_stream(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// The default port of a SIP server on this transport (5060, or 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

/// TLS parameters of a target: the name the server certificate must match and the TLS
/// settings (trust anchors, client certificate) in force, by an id the driver knows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TlsTarget {
    /// The SIP domain or registrar host name (RFC 5922 §4): never the resolved address,
    /// unless the registrar was given as an address literal.
    pub server_name: String,
    /// Which TLS settings the driver uses for the connection.
    pub settings: u64,
}

/// Where a request is sent: a next hop on a transport. Bindings with equal targets share
/// one connection on stream transports.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    /// Transport.
    pub transport: Transport,
    /// The next hop's address.
    pub addr: SocketAddr,
    /// With [`Transport::Tls`]: how to verify the server (boxed: most targets have none,
    /// and a target sits in every binding and every event about a connection).
    pub tls: Option<Box<TlsTarget>>,
}

impl Target {
    /// A UDP target.
    pub fn udp(addr: SocketAddr) -> Target {
        Target {
            transport: Transport::Udp,
            addr,
            tls: None,
        }
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.transport.param(), self.addr)?;
        if let Some(tls) = &self.tls {
            write!(f, " ({})", tls.server_name)?;
        }
        Ok(())
    }
}

/// Why a byte stream cannot be framed into SIP messages; the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FramingError {
    /// No end of the header section within the size bound.
    HeaderTooLarge,
    /// A header line or the number of header lines is over its bound.
    HeaderLimits,
    /// No Content-Length: on a stream it is mandatory (RFC 3261 §18.3).
    MissingContentLength,
    /// A Content-Length that is not a number, or makes the message larger than the bound.
    BadContentLength(String),
}

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FramingError::HeaderTooLarge => {
                write!(f, "no end of headers within {MAX_MESSAGE_BYTES} bytes")
            }
            FramingError::HeaderLimits => write!(
                f,
                "more than {MAX_HEADERS} header lines, or one longer than {MAX_HEADER_LINE} bytes"
            ),
            FramingError::MissingContentLength => {
                write!(f, "a message without Content-Length on a stream")
            }
            FramingError::BadContentLength(v) => write!(
                f,
                "Content-Length {v:?} is not a size up to {MAX_MESSAGE_BYTES} bytes"
            ),
        }
    }
}

/// Cuts a byte stream into SIP messages by their Content-Length, bounded like datagrams:
/// at most [`MAX_MESSAGE_BYTES`] buffered, the header limits checked before a message is
/// handed on. CRLFs between messages (keep-alive pongs, RFC 5626 §4.4.1) are skipped.
///
/// Messages are taken from a read offset, so a read that carries many of them costs one copy
/// of each, not a copy of the rest of the buffer per message.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
    /// Where the bytes not yet framed start in `buf`.
    start: usize,
}

impl StreamFramer {
    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes buffered and not yet framed.
    #[cfg(any(test, feature = "testkit"))]
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete message, `Ok(None)` when more bytes are needed, or an error after
    /// which the stream cannot be trusted any more.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let pending = &self.buf[self.start..];
        let skip = pending
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(pending.len());
        self.start += skip;
        let pending = &self.buf[self.start..];
        if pending.is_empty() {
            self.buf.clear();
            self.start = 0;
            return Ok(None);
        }
        let window = &pending[..pending.len().min(MAX_MESSAGE_BYTES)];
        let Some(head_end) = header_end(window) else {
            if pending.len() >= MAX_MESSAGE_BYTES {
                return Err(FramingError::HeaderTooLarge);
            }
            // Refuse an endless line, or endless lines, early.
            check_header_limits(pending).map_err(|_| FramingError::HeaderLimits)?;
            return Ok(None);
        };
        let head = &pending[..head_end];
        check_header_limits(&head[..head_end - 2]).map_err(|_| FramingError::HeaderLimits)?;
        let length = content_length(head)?;
        let total = head_end
            .checked_add(length)
            .filter(|t| *t <= MAX_MESSAGE_BYTES)
            .ok_or_else(|| FramingError::BadContentLength(length.to_string()))?;
        if pending.len() < total {
            return Ok(None);
        }
        let message = pending[..total].to_vec();
        self.start += total;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Ok(Some(message))
    }
}

/// The Content-Length (or compact `l`) of a header section.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    for line in head.split(|b| *b == b'\n').skip(1) {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = String::from_utf8_lossy(&line[colon + 1..]);
            let value = value.trim();
            return value
                .parse::<usize>()
                .ok()
                .filter(|v| *v <= MAX_MESSAGE_BYTES)
                .ok_or_else(|| FramingError::BadContentLength(value.chars().take(32).collect()));
        }
    }
    Err(FramingError::MissingContentLength)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "SIP/2.0 100 Trying\r\nCall-ID: a\r\nContent-Length: 0\r\n\r\n";
    const B: &str = "SIP/2.0 200 OK\r\nCall-ID: b\r\nl: 5\r\n\r\nhello";

    fn all(f: &mut StreamFramer) -> Vec<String> {
        std::iter::from_fn(|| f.next_message().unwrap())
            .map(|m| String::from_utf8(m).unwrap())
            .collect()
    }

    #[test]
    fn a_pong_a_response_and_half_of_the_next_in_one_read() {
        let mut framer = StreamFramer::default();
        framer.push(b"\r\nSIP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nhiSIP/2.0 4");
        let first = framer.next_message().unwrap().unwrap();
        assert!(first.starts_with(b"SIP/2.0 200 OK") && first.ends_with(b"hi"));
        assert_eq!(
            framer.next_message().unwrap(),
            None,
            "the rest waits for more bytes"
        );
        framer.push(b"01 Unauthorized\r\nContent-Length: 0\r\n\r\n");
        assert!(framer.next_message().unwrap().is_some());
    }

    #[test]
    fn two_messages_in_one_read_and_keep_alives_between() {
        let mut f = StreamFramer::default();
        f.push(format!("\r\n\r\n{A}\r\n{B}").as_bytes());
        assert_eq!(all(&mut f), [A, B]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn many_messages_in_one_read_then_the_rest_of_the_last() {
        let mut f = StreamFramer::default();
        let mut read = format!("{A}{B}").repeat(50);
        read.push_str(&A[..10]);
        f.push(read.as_bytes());
        let got = all(&mut f);
        assert_eq!(got.len(), 100);
        assert!(got.chunks(2).all(|pair| pair == [A, B]));
        assert_eq!(f.buffered(), 10, "the start of the next one waits");
        f.push(&A.as_bytes()[10..]);
        assert_eq!(all(&mut f), [A]);
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn a_message_split_at_every_byte() {
        let stream = format!("{A}{B}");
        let mut f = StreamFramer::default();
        let mut got = Vec::new();
        for b in stream.as_bytes() {
            f.push(&[*b]);
            got.extend(all(&mut f));
        }
        assert_eq!(got, [A, B]);
    }

    #[test]
    fn a_message_larger_than_one_read() {
        let big = format!(
            "SIP/2.0 200 OK\r\n{}Content-Length: 0\r\n\r\n",
            format!("X-Pad: {}\r\n", "p".repeat(4000)).repeat(12)
        );
        let mut f = StreamFramer::default();
        for chunk in big.as_bytes().chunks(16 * 1024) {
            assert!(f.next_message().unwrap().is_none());
            f.push(chunk);
        }
        assert_eq!(all(&mut f), [big]);
    }

    #[test]
    fn missing_huge_or_broken_content_length_is_an_error() {
        for (text, want) in [
            (
                "SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n",
                FramingError::MissingContentLength,
            ),
            (
                "SIP/2.0 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                FramingError::BadContentLength("99999999999999999999".into()),
            ),
            (
                "SIP/2.0 200 OK\r\nContent-Length: 65536\r\n\r\n",
                FramingError::BadContentLength("65536".into()),
            ),
            (
                "SIP/2.0 200 OK\r\nContent-Length: -1\r\n\r\n",
                FramingError::BadContentLength("-1".into()),
            ),
        ] {
            let mut f = StreamFramer::default();
            f.push(text.as_bytes());
            assert_eq!(f.next_message(), Err(want), "{text}");
        }
    }

    #[test]
    fn datagrams_and_streams_share_the_header_limits_to_the_byte() {
        use crate::engine::message::{ParseError, parse_response};
        let head = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n\
                    Call-ID: c\r\nCSeq: 1 REGISTER\r\n";
        // `lines` header lines in all; one filler of `filler` bytes before its CR.
        let message = |lines: usize, filler: usize| {
            let mut m = head.to_string();
            m.push_str(&format!("X-A: {}\r\n", "y".repeat(filler - 5)));
            for i in 0..lines - 5 {
                m.push_str(&format!("X-{i}: y\r\n"));
            }
            m + "Content-Length: 0\r\n\r\n"
        };
        let stream = |m: &str| {
            let mut f = StreamFramer::default();
            f.push(m.as_bytes());
            f.next_message()
        };
        let fits = message(MAX_HEADERS - 1, MAX_HEADER_LINE - 1);
        assert!(parse_response(fits.as_bytes()).is_ok());
        assert!(matches!(stream(&fits), Ok(Some(_))));
        let many = message(MAX_HEADERS, 10);
        assert_eq!(
            parse_response(many.as_bytes()),
            Err(ParseError::TooManyHeaders)
        );
        assert_eq!(stream(&many), Err(FramingError::HeaderLimits));
        let long = message(10, MAX_HEADER_LINE);
        assert_eq!(
            parse_response(long.as_bytes()),
            Err(ParseError::HeaderTooLong)
        );
        assert_eq!(stream(&long), Err(FramingError::HeaderLimits));
    }

    #[test]
    fn endless_headers_are_refused_before_the_buffer_grows_without_bound() {
        let mut f = StreamFramer::default();
        f.push(b"SIP/2.0 200 OK\r\n");
        f.push(&vec![b'a'; MAX_HEADER_LINE + 1]);
        assert_eq!(f.next_message(), Err(FramingError::HeaderLimits));
        let mut f = StreamFramer::default();
        for _ in 0..MAX_HEADERS + 3 {
            f.push(b"X: y\r\n");
        }
        assert_eq!(f.next_message(), Err(FramingError::HeaderLimits));
    }
}
