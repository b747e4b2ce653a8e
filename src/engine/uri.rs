//! Addresses, in one place for every layer: a [`Host`] (IP literal or DNS name), a
//! [`HostPort`] and a [`SipUri`] (RFC 3261 §19.1.1; IPv6 in brackets, the default port of
//! each transport, the `transport` parameter, `sips`).
//!
//! Parsing is strict about what a client relies on (hosts, ports, brackets) and bounded
//! by the length of its input; what it does not understand in a URI (other parameters,
//! headers) it skips.

use crate::engine::transport::Transport;
use std::fmt;
use std::net::{IpAddr, SocketAddr};

/// Longest DNS name accepted (RFC 1035 §2.3.4).
const MAX_NAME: usize = 253;

/// A host: an IP address or a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A DNS name, lower case (names compare case-insensitively).
    Name(String),
}

impl Host {
    /// Reads an IP literal (IPv6 with or without brackets) or a DNS name.
    pub fn parse(s: &str) -> Option<Host> {
        if let Some(ip) = parse_ip(s) {
            return Some(Host::Ip(ip));
        }
        is_name(s).then(|| Host::Name(s.to_ascii_lowercase()))
    }

    /// The host without IPv6 brackets: the form of a TLS server name or a DNS query.
    pub fn bare(&self) -> String {
        match self {
            Host::Ip(ip) => ip.to_string(),
            Host::Name(name) => name.clone(),
        }
    }
}

/// Written as in a URI: IPv6 in brackets.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(IpAddr::V4(ip)) => write!(f, "{ip}"),
            Host::Name(name) => f.write_str(name),
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        Host::Ip(ip)
    }
}

/// Whether `s` is a DNS name (labels of letters, digits and hyphens).
fn is_name(s: &str) -> bool {
    s.len() <= MAX_NAME
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An IP literal, IPv6 with or without brackets.
pub fn parse_ip(s: &str) -> Option<IpAddr> {
    let bare = match s.strip_prefix('[') {
        Some(inner) => inner.strip_suffix(']')?,
        None => s,
    };
    bare.parse().ok()
}

/// `host[:port]`; the port is `None` when not given, which RFC 3263 distinguishes from the
/// default port (an explicit port skips SRV).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port, if given (never 0).
    pub port: Option<u16>,
}

impl HostPort {
    /// Reads `host[:port]`, `[v6][:port]` or a bare IPv6 address (which has no port).
    pub fn parse(s: &str) -> Option<HostPort> {
        let (host, port) = Self::split(s)?;
        let host = match host {
            Ok(ip) => Host::Ip(ip),
            Err(name) => Host::parse(name)?,
        };
        Some(HostPort { host, port })
    }

    /// Whether `s` is what [`HostPort::parse`] reads (without making a [`Host`]).
    fn is_valid(s: &str) -> bool {
        match Self::split(s) {
            Some((Ok(_), _)) => true,
            Some((Err(name), _)) => parse_ip(name).is_some() || is_name(name),
            None => false,
        }
    }

    /// The host (an IP address, or the text of a host not yet read) and port of `s`.
    fn split(s: &str) -> Option<(Result<IpAddr, &str>, Option<u16>)> {
        let (host, port) = match s.strip_prefix('[') {
            Some(v6) => {
                let (inner, after) = v6.split_once(']')?;
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':')?),
                };
                (Ok(IpAddr::V6(inner.parse().ok()?)), port)
            }
            None => match s.split_once(':') {
                // More than one colon: a bare IPv6 address, without a port.
                Some((_, rest)) if rest.contains(':') => (Ok(s.parse().ok()?), None),
                Some((host, port)) => (Err(host), Some(port)),
                None => (Err(s), None),
            },
        };
        let port = match port {
            Some(p) => Some(parse_port(p)?),
            None => None,
        };
        Some((host, port))
    }

    /// The port, or the default port of `transport` (5060, 5061 for TLS).
    pub fn port_or_default(&self, transport: Transport) -> u16 {
        self.port.unwrap_or(transport.default_port())
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

/// Appends `n` in decimal (what `write!` does, without the formatting machinery: this runs
/// for every request sent).
pub fn push_decimal(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &digit in &digits[start..] {
        out.push(char::from(digit));
    }
}

/// Appends `addr` as a SIP `hostport` (an IPv6 address in brackets): what
/// `HostPort::from(addr)` displays, without the formatting machinery.
pub fn push_host_port(out: &mut String, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            for (i, octet) in ip.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_decimal(out, u64::from(octet));
            }
        }
        IpAddr::V6(ip) => {
            use fmt::Write as _;
            let _ = write!(out, "[{ip}]");
        }
    }
    out.push(':');
    push_decimal(out, u64::from(addr.port()));
}

impl From<SocketAddr> for HostPort {
    fn from(addr: SocketAddr) -> Self {
        HostPort {
            host: Host::Ip(addr.ip()),
            port: Some(addr.port()),
        }
    }
}

/// A port of 1 to 65535, in decimal digits only.
fn parse_port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok().filter(|p| *p != 0)
}

/// A `sip:` or `sips:` URI, with what a registration client reads of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` (TLS on every hop, RFC 3261 §19.1).
    pub secure: bool,
    /// The user part, if any (a password after it is dropped).
    pub user: Option<String>,
    /// Host and port.
    pub host_port: HostPort,
    /// The `transport` parameter, when it names one this library has.
    pub transport: Option<Transport>,
}

impl SipUri {
    /// Reads `sip[s]:[user[:password]@]host[:port][;params][?headers]` (the scheme in any
    /// case, RFC 3261 §19.1.4).
    pub fn parse(s: &str) -> Option<SipUri> {
        let (secure, user, host_port, params) = Self::split(s)?;
        let transport = params.split(';').find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("transport")
                .then(|| Transport::from_param(value.trim()))
                .flatten()
        });
        Some(SipUri {
            secure,
            user: user.map(str::to_string),
            host_port: HostPort::parse(host_port)?,
            transport,
        })
    }

    /// Whether `s` is what [`SipUri::parse`] reads, found without making one (a request
    /// URI is checked so for every request built).
    pub fn is_valid(s: &str) -> bool {
        Self::split(s).is_some_and(|(_, _, host_port, _)| HostPort::is_valid(host_port))
    }

    /// `s` as `sips:`, its user, its `host[:port]` (trimmed) and its parameters.
    fn split(s: &str) -> Option<(bool, Option<&str>, &str, &str)> {
        let (scheme, rest) = s.split_once(':')?;
        let secure = if scheme.eq_ignore_ascii_case("sip") {
            false
        } else if scheme.eq_ignore_ascii_case("sips") {
            true
        } else {
            return None;
        };
        let (rest, _headers) = rest.split_once('?').unwrap_or((rest, ""));
        // The user part may hold ';' (RFC 3261 user-unreserved); parameters follow the host.
        let (user, host_and_params) = match rest.rfind('@') {
            Some(at) => {
                let user = rest[..at].split(':').next().unwrap_or_default();
                if user.is_empty() {
                    return None;
                }
                (Some(user), &rest[at + 1..])
            }
            None => (None, rest),
        };
        let (host_port, params) = host_and_params
            .split_once(';')
            .unwrap_or((host_and_params, ""));
        Some((secure, user, host_port.trim(), params))
    }

    /// A `sip:` URI of a host and port, no user.
    pub fn of_host(host_port: HostPort) -> SipUri {
        SipUri {
            secure: false,
            user: None,
            host_port,
            transport: None,
        }
    }

    /// The transport requests to this URI use: the `transport` parameter, else TLS for
    /// `sips:`, else UDP (RFC 3263 §4.1, when no NAPTR record says otherwise).
    pub fn transport_or_default(&self) -> Transport {
        match (self.transport, self.secure) {
            (Some(t), _) => t,
            (None, true) => Transport::Tls,
            (None, false) => Transport::Udp,
        }
    }

    /// The port requests to this URI go to: the explicit one, else the transport's default.
    pub fn port_or_default(&self) -> u16 {
        self.host_port.port_or_default(self.transport_or_default())
    }
}

/// Written with the user, host, port and `transport` parameter it has.
impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        write!(f, "{}", self.host_port)?;
        match self.transport {
            Some(t) => write!(f, ";transport={}", t.param()),
            None => Ok(()),
        }
    }
}

/// Whether two SIP URIs name the same resource (RFC 3261 §19.1.4): the same scheme, the
/// same user information (case-sensitive, escapes decoded), the same host (names without
/// regard to case) and port, every parameter present in both equal (without regard to
/// case), no `user`, `ttl`, `method` or `maddr` parameter in only one of them, and the same
/// headers. Other parameters found in only one are ignored.
///
/// One leniency, for registrars known to drop it: a port left out equals the default
/// port of the URI's transport.
pub fn equivalent(a: &str, b: &str) -> bool {
    let (Some(a), Some(b)) = (UriParts::parse(a), UriParts::parse(b)) else {
        return false;
    };
    if a.uri.secure != b.uri.secure
        || a.userinfo != b.userinfo
        || a.uri.host_port.host != b.uri.host_port.host
        || a.uri.port_or_default() != b.uri.port_or_default()
    {
        return false;
    }
    let value = |parts: &UriParts, name: &str| {
        parts
            .params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    for (name, v) in &a.params {
        match value(&b, name) {
            Some(other) if other != *v => return false,
            None if matches!(name.as_str(), "user" | "ttl" | "method" | "maddr") => {
                return false;
            }
            _ => {}
        }
    }
    let strict_only = |parts: &UriParts, other: &UriParts| {
        parts.params.iter().any(|(n, _)| {
            matches!(n.as_str(), "user" | "ttl" | "method" | "maddr") && value(other, n).is_none()
        })
    };
    if strict_only(&b, &a) {
        return false;
    }
    let mut ha = a.headers.clone();
    let mut hb = b.headers.clone();
    ha.sort();
    hb.sort();
    ha == hb
}

/// A URI taken apart for [`equivalent`].
struct UriParts {
    uri: SipUri,
    /// `user[:password]`, escapes decoded.
    userinfo: Option<String>,
    /// Parameter names and values, lower case, escapes decoded.
    params: Vec<(String, Option<String>)>,
    /// Header names (lower case) and values (escapes decoded).
    headers: Vec<(String, String)>,
}

impl UriParts {
    fn parse(s: &str) -> Option<UriParts> {
        let s = s.trim();
        let uri = SipUri::parse(s)?;
        let (_, rest) = s.split_once(':')?;
        let (rest, headers) = rest.split_once('?').unwrap_or((rest, ""));
        let (userinfo, host_and_params) = match rest.rfind('@') {
            Some(at) => (Some(unescape(&rest[..at])), &rest[at + 1..]),
            None => (None, rest),
        };
        let params = host_and_params
            .split(';')
            .skip(1)
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (
                    unescape(n).to_ascii_lowercase(),
                    Some(unescape(v).to_ascii_lowercase()),
                ),
                None => (unescape(p).to_ascii_lowercase(), None),
            })
            .collect();
        let headers = headers
            .split('&')
            .filter(|h| !h.is_empty())
            .map(|h| {
                let (n, v) = h.split_once('=').unwrap_or((h, ""));
                (unescape(n).to_ascii_lowercase(), unescape(v))
            })
            .collect();
        Some(UriParts {
            uri,
            userinfo,
            params,
            headers,
        })
    }
}

/// Decodes `%XX` escapes (a malformed one is kept as it is).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(s: &str) -> Option<String> {
        HostPort::parse(s).map(|h| h.to_string())
    }

    #[test]
    fn the_validity_check_agrees_with_parsing() {
        for text in [
            "sip:example.com",
            "SIPS:Alice@Example.COM:5061;transport=tls?x=y",
            "sip:alice:pw@[2001:db8::1]:5070;lr",
            "sip:2001:db8::1",
            "sip:192.0.2.1:0",
            "sip:192.0.2.1:65536",
            "sip:@example.com",
            "sip:bad_host",
            "sip:[::1",
            "sip:[::1]x",
            "tel:+1555",
            "sip:",
            "sip:a..b",
            "sip:-.example.com",
            "sip:alice@",
        ] {
            assert_eq!(
                SipUri::is_valid(text),
                SipUri::parse(text).is_some(),
                "{text}"
            );
        }
        assert!(SipUri::is_valid("sip:example.com") && !SipUri::is_valid("sip:bad_host"));
    }

    #[test]
    fn pushed_host_ports_and_numbers_are_what_display_writes() {
        for addr in [
            "0.0.0.0:1",
            "127.0.0.1:5060",
            "255.255.255.255:65535",
            "10.0.200.9:40000",
            "[::1]:5061",
            "[2001:db8::ff00:42:8329]:5060",
            "[::ffff:192.0.2.1]:7",
        ] {
            let addr: SocketAddr = addr.parse().unwrap();
            let mut pushed = String::from("x");
            push_host_port(&mut pushed, addr);
            assert_eq!(pushed, format!("x{}", HostPort::from(addr)));
        }
        for n in [0, 7, 10, 99, 100, 65535, u64::from(u32::MAX), u64::MAX] {
            let mut pushed = String::new();
            push_decimal(&mut pushed, n);
            assert_eq!(pushed, n.to_string());
        }
    }

    #[test]
    fn hosts() {
        for (input, shown) in [
            ("127.0.0.1", "127.0.0.1"),
            ("::1", "[::1]"),
            ("[::1]", "[::1]"),
            ("Sip.Example.COM", "sip.example.com"),
            ("localhost", "localhost"),
        ] {
            assert_eq!(Host::parse(input).unwrap().to_string(), shown, "{input}");
        }
        for bad in [
            "", "a..b", "a b", "x;y", "h\r\n", "[::1", "::1]", "[1.2.3.4",
        ] {
            assert_eq!(Host::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Host::parse(&"a".repeat(254)), None);
        assert_eq!(Host::parse("[2001:db8::1]").unwrap().bare(), "2001:db8::1");
    }

    #[test]
    fn host_ports() {
        assert_eq!(hp("example.com").as_deref(), Some("example.com"));
        assert_eq!(hp("example.com:5070").as_deref(), Some("example.com:5070"));
        assert_eq!(hp("10.0.0.1:1").as_deref(), Some("10.0.0.1:1"));
        assert_eq!(hp("[::1]:5080").as_deref(), Some("[::1]:5080"));
        assert_eq!(hp("[::1]").as_deref(), Some("[::1]"));
        assert_eq!(hp("2001:db8::1").as_deref(), Some("[2001:db8::1]"));
        for bad in [
            "",
            ":5060",
            "host:",
            "host:0",
            "host:65536",
            "host:+5",
            "host: 5",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[example.com]",
            "a b",
            "1.2.3.4:5:6",
        ] {
            assert_eq!(hp(bad), None, "{bad:?}");
        }
        let tls = HostPort::parse("example.com").unwrap();
        assert_eq!(tls.port_or_default(Transport::Tls), 5061);
        assert_eq!(tls.port_or_default(Transport::Tcp), 5060);
        let addr: SocketAddr = "[2001:db8::2]:5062".parse().unwrap();
        assert_eq!(HostPort::from(addr).to_string(), "[2001:db8::2]:5062");
    }

    #[test]
    fn sip_uris() {
        let uri =
            SipUri::parse("sip:alice:secret@[2001:db8::1]:5070;transport=TCP;lr?x=y").unwrap();
        assert_eq!(uri.user.as_deref(), Some("alice"));
        assert_eq!(uri.host_port.to_string(), "[2001:db8::1]:5070");
        assert_eq!(uri.transport, Some(Transport::Tcp));
        assert_eq!(
            uri.to_string(),
            "sip:alice@[2001:db8::1]:5070;transport=tcp"
        );

        let sips = SipUri::parse("SIPS:example.com").unwrap();
        assert!(sips.secure);
        assert_eq!(sips.transport_or_default(), Transport::Tls);
        assert_eq!(sips.port_or_default(), 5061);
        assert_eq!(
            SipUri::parse("sip:example.com").unwrap().port_or_default(),
            5060
        );

        // ';' is allowed in a user part; parameters start after the host.
        let odd = SipUri::parse("sip:a;b@host;transport=tls").unwrap();
        assert_eq!(odd.user.as_deref(), Some("a;b"));
        assert_eq!(odd.transport, Some(Transport::Tls));
        assert_eq!(
            SipUri::parse("sip:h;transport=sctp").unwrap().transport,
            None
        );
        // An explicit transport=udp is kept when printed (found by the uri fuzz target).
        let udp = SipUri::parse("sip:a;x;transport=udp").unwrap();
        assert_eq!(udp.to_string(), "sip:a;transport=udp");
        for bad in [
            "",
            "sip:",
            "tel:+1555",
            "sip:@host",
            "sip:user@",
            "sip:[::1",
            "http://x",
        ] {
            assert_eq!(SipUri::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn uri_equivalence_follows_rfc_3261_19_1_4() {
        let same = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;newparam=5",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
            // The leniency: an omitted port is the transport's default one.
            ("sip:alice@192.0.2.1:5060", "sip:alice@192.0.2.1"),
            (
                "sip:a@[2001:db8::1]:5062;transport=udp",
                "sip:a@[2001:DB8::1]:5062",
            ),
        ];
        for (a, b) in same {
            assert!(equivalent(a, b), "{a} ~ {b}");
            assert!(equivalent(b, a), "{b} ~ {a}");
        }
        let different = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
            ("sip:alice@h:5062", "sip:alice@h;maddr=239.255.255.1"),
            ("sip:alice@h:5062", "sips:alice@h:5062"),
            ("sip:alice@h:5062", "sip:alice@h:5063"),
            ("sip:alice@h:5062", "not a uri"),
        ];
        for (a, b) in different {
            assert!(!equivalent(a, b), "{a} !~ {b}");
            assert!(!equivalent(b, a), "{b} !~ {a}");
        }
    }
}
