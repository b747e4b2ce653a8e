//! Addresses shared by both APIs: host and port checks, resolution, and the local address
//! the system uses towards a peer.

use crate::api::ApiError;
use crate::engine::target::{Located, Query, TransportChoice};
use crate::engine::transport::{TlsTarget, Transport};
use crate::engine::uri::{Host, HostPort, SipUri, parse_ip};
use crate::runtime::Locator;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

/// The User-Agent value: the product, after the application's name if any.
pub fn user_agent(phone_name: &str) -> String {
    let product = concat!("liblanscape-sip/", env!("CARGO_PKG_VERSION"));
    if phone_name.trim().is_empty() {
        product.to_string()
    } else {
        format!("{} {product}", phone_name.trim())
    }
}

/// A port parameter: 0 means none given (DNS SRV records, else the transport's default,
/// decide: RFC 3263), above 65535 is refused.
pub fn explicit_port(port: u32, what: &'static str) -> Result<Option<u16>, ApiError> {
    match port {
        0 => Ok(None),
        1..=65535 => Ok(Some(port as u16)),
        _ => Err(ApiError::bad(what)),
    }
}

/// How long an API call waits at most for DNS to locate a server.
const LOCATE_WAIT: Duration = Duration::from_secs(30);

/// The name a TLS server's certificate must match (RFC 5922 §4): the server's host name,
/// or the SIP domain when the server is given as an address; never a name or address DNS
/// gave for it.
pub fn tls_name(server: &Host, sip_domain: &Host) -> String {
    match (server, sip_domain) {
        (Host::Ip(_), Host::Name(_)) => sip_domain.bare(),
        _ => server.bare(),
    }
}

/// Locates the server requests go to (RFC 3263: NAPTR, SRV, A/AAAA, as
/// [`crate::engine::target::plan`] says), with the TLS settings named by `tls_settings`.
/// `SipUnknownHost` only when nothing at all resolves.
pub fn locate(
    locator: &Locator,
    server: &HostPort,
    choice: TransportChoice,
    sip_domain: &Host,
    tls_settings: u64,
    local: SocketAddr,
) -> Result<Arc<Located>, ApiError> {
    let tls = choice.allows(Transport::Tls).then(|| TlsTarget {
        server_name: tls_name(&server.host, sip_domain),
        settings: tls_settings,
    });
    let query = Query {
        server: server.clone(),
        choice,
        tls,
        ipv6: local.is_ipv6(),
    };
    let unknown = |why: String| ApiError::UnknownHost(format!("{server} ({why})"));
    let (targets, valid_until) = locator
        .locate(query.clone(), LOCATE_WAIT)?
        .map_err(unknown)?;
    if targets.is_empty() {
        return Err(unknown("no address".into()));
    }
    let choice_name = match choice {
        TransportChoice::Only(t) => t.param(),
        TransportChoice::Any => "any",
    };
    Ok(Arc::new(Located {
        key: format!("{choice_name}:{server}#{tls_settings}"),
        query: matches!(server.host, Host::Name(_)).then_some(query),
        targets,
        valid_until,
    }))
}

/// The Route header value for an outbound proxy (loose routing, RFC 3261 §16.12).
/// It names the proxy as configured (DNS locates it the same way), with the transport when
/// one was chosen.
pub fn proxy_route(proxy: &HostPort, choice: TransportChoice) -> String {
    let uri = SipUri {
        transport: match choice {
            TransportChoice::Only(t) if t.is_stream() => Some(t),
            _ => None,
        },
        ..SipUri::of_host(proxy.clone())
    };
    format!("<{uri};lr>")
}

/// A host parameter from the caller: an IP literal (IPv6 with or without brackets) or a
/// DNS name, surrounding blanks ignored.
pub fn parse_host(s: &str, what: &'static str) -> Result<Host, ApiError> {
    Host::parse(s.trim()).ok_or(ApiError::bad(what))
}

/// A server from the caller: `[sip:|sips:]host[:port]` (IPv6 in brackets); the port, when
/// given, is 1 to 65535.
pub fn parse_server(s: &str, what: &'static str) -> Result<HostPort, ApiError> {
    let s = s.trim();
    let parsed = match SipUri::parse(s) {
        Some(uri) if uri.user.is_none() => Some(uri.host_port),
        Some(_) => None, // a server has no user part
        None => HostPort::parse(s),
    };
    parsed.ok_or(ApiError::bad(what))
}

/// An address of record from the caller: `[sip:]user@domain` -> (user, domain). The user
/// is a SIP user part as [`parse_names`] accepts it.
pub fn parse_aor(s: &str) -> Result<(String, Host), ApiError> {
    let s = s.trim();
    let bad = || ApiError::bad("aor");
    let uri = SipUri::parse(s)
        .or_else(|| SipUri::parse(&format!("sip:{s}")))
        .filter(|uri| !uri.secure && uri.host_port.port.is_none())
        .ok_or_else(bad)?;
    let user = uri.user.ok_or_else(bad)?;
    match parse_names(&user) {
        Ok(names) if names.len() == 1 && *names[0] == *user => Ok((user, uri.host_port.host)),
        _ => Err(bad()),
    }
}

/// The address of record of a user at a domain.
pub fn aor_uri(user: &str, domain: &Host) -> String {
    SipUri {
        user: Some(user.to_string()),
        ..SipUri::of_host(HostPort {
            host: domain.clone(),
            port: None,
        })
    }
    .to_string()
}

/// DNS servers from the caller: `ip[:port]` entries (IPv6 in brackets; port 53 when none)
/// separated by commas or blanks. Empty means the system's configuration (`None`).
pub fn parse_dns_servers(list: &str) -> Result<Option<Vec<SocketAddr>>, ApiError> {
    let mut servers = Vec::new();
    for entry in list.split([',', ' ', '\t']).filter(|e| !e.is_empty()) {
        let server = HostPort::parse(entry)
            .and_then(|hp| match hp.host {
                Host::Ip(ip) => Some(SocketAddr::new(ip, hp.port.unwrap_or(53))),
                Host::Name(_) => None,
            })
            .ok_or_else(|| ApiError::bad(format!("DNS server {entry:?} is not ip[:port]")))?;
        servers.push(server);
    }
    Ok((!servers.is_empty()).then_some(servers))
}

/// The local address to bind from the caller (NULL or empty: none given).
pub fn parse_local_ip(s: Option<&str>) -> Result<Option<IpAddr>, ApiError> {
    match s.map(str::trim) {
        None | Some("") => Ok(None),
        Some(s) => parse_ip(s)
            .map(Some)
            .ok_or(ApiError::bad("local IP address is not an IP address")),
    }
}

/// Splits a comma-separated list of names; each must be a valid SIP user part.
pub fn parse_names(list: &str) -> Result<Vec<Arc<str>>, ApiError> {
    let names: Vec<Arc<str>> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(Arc::from)
        .collect();
    if names.is_empty() {
        return Err(ApiError::BadNameList("no name".into()));
    }
    // RFC 3261 user: unreserved / escaped / user-unreserved (minus the ',' separator).
    let valid = |n: &str| {
        n.len() <= 256
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()%&=+$;?/".contains(c))
    };
    if !names.iter().all(|n| valid(n)) {
        return Err(ApiError::BadNameList(
            "a name is not a valid SIP user part".into(),
        ));
    }
    Ok(names)
}

/// A new instance URN (RFC 5626 §4.1): a random (version 4) UUID as `urn:uuid:…`.
pub fn new_instance_id() -> String {
    let mut b = [0u8; 16];
    // Without the OS's randomness, the time and the process id still set instances apart.
    if getrandom::fill(&mut b).is_err() {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
            ^ u128::from(std::process::id());
        b = seed.to_le_bytes();
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    format!(
        "urn:uuid:{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6],
        b[7],
        b[8],
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

/// An instance id the application gives: a URN (`urn:` and a namespace, RFC 8141), at most
/// 256 characters, with nothing that would break the quoted `+sip.instance` parameter.
pub fn parse_instance_id(s: &str) -> Result<String, ApiError> {
    let s = s.trim();
    let valid = s.len() <= 256
        && s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
        && s[4..].contains(':')
        && s.chars()
            .all(|c| c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\'));
    match valid {
        true => Ok(s.to_string()),
        false => Err(ApiError::bad("instance id is not a URN (urn:uuid:…)")),
    }
}

/// The Request-URI of a REGISTER, one rule for both APIs (RFC 3261 §10.2): it names the
/// domain of the address of record, not the registrar or proxy it is sent to; when that
/// domain is the registrar's own host, the registrar's explicit port (other than 5060)
/// goes with it.
pub fn registration_request_uri(
    aor_domain: &Host,
    registrar: &Host,
    registrar_port: Option<u16>,
) -> String {
    let port = registrar_port.filter(|p| *p != 5060 && aor_domain == registrar);
    SipUri::of_host(HostPort {
        host: aor_domain.clone(),
        port,
    })
    .to_string()
}

/// The local IP the system would use to reach `to`: our Via and Contact address.
pub fn source_ip_towards(local: SocketAddr, to: SocketAddr) -> IpAddr {
    if !local.ip().is_unspecified() {
        return local.ip();
    }
    let any = if to.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    UdpSocket::bind((any, 0))
        .and_then(|s| {
            s.connect(to)?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(if to.ip().is_loopback() { to.ip() } else { any })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Host {
        Host::parse(s).unwrap()
    }

    #[test]
    fn request_uri_names_the_domain_of_the_address_of_record() {
        let uri = |d: &str, r: &str, port| registration_request_uri(&host(d), &host(r), Some(port));
        assert_eq!(uri("example.com", "10.0.0.1", 5070), "sip:example.com");
        assert_eq!(
            registration_request_uri(&host("example.com"), &host("example.com"), None),
            "sip:example.com",
            "no port given: DNS says where (RFC 3263), the URI names none"
        );
        assert_eq!(uri("example.com", "example.com", 5060), "sip:example.com");
        assert_eq!(
            uri("Example.com", "example.com", 5070),
            "sip:example.com:5070"
        );
        assert_eq!(uri("127.0.0.1", "127.0.0.1", 15060), "sip:127.0.0.1:15060");
        assert_eq!(uri("::1", "[::1]", 5080), "sip:[::1]:5080");
        assert_eq!(uri("[::1]", "::1", 5060), "sip:[::1]");
    }

    #[test]
    fn tls_verifies_the_sip_domain_never_the_resolved_address() {
        let name = |h: &str, domain: &str| tls_name(&host(h), &host(domain));
        assert_eq!(name("sip.example.com", "example.com"), "sip.example.com");
        assert_eq!(name("192.0.2.1", "example.com"), "example.com");
        assert_eq!(name("[2001:db8::1]", "2001:db8::1"), "2001:db8::1");
        assert_eq!(explicit_port(0, "port").unwrap(), None);
        assert_eq!(explicit_port(5070, "port").unwrap(), Some(5070));
        assert!(explicit_port(65536, "port").is_err());
        let proxy = HostPort::parse("[::1]:5061").unwrap();
        assert_eq!(
            proxy_route(&proxy, TransportChoice::Only(Transport::Tls)),
            "<sip:[::1]:5061;transport=tls;lr>"
        );
        let named = HostPort::parse("proxy.example.com").unwrap();
        assert_eq!(
            proxy_route(&named, TransportChoice::Any),
            "<sip:proxy.example.com;lr>"
        );
    }

    #[test]
    fn caller_addresses() {
        let aor = |s: &str| parse_aor(s).ok().map(|(u, d)| format!("{u}@{d}"));
        assert_eq!(
            aor("sip:alice@Example.com").as_deref(),
            Some("alice@example.com")
        );
        assert_eq!(aor(" bob@127.0.0.1 ").as_deref(), Some("bob@127.0.0.1"));
        assert_eq!(aor("carol@[::1]").as_deref(), Some("carol@[::1]"));
        for bad in [
            "alice",
            "@example.com",
            "a b@x",
            "alice@",
            "alice@bad host",
            "a@h:5060",
        ] {
            assert_eq!(aor(bad), None, "{bad}");
        }
        let server = |s: &str| parse_server(s, "server").ok().map(|h| h.to_string());
        assert_eq!(server("127.0.0.1:5070").as_deref(), Some("127.0.0.1:5070"));
        assert_eq!(server("sip:[::1]:5080").as_deref(), Some("[::1]:5080"));
        assert_eq!(server("SIPS:example.com").as_deref(), Some("example.com"));
        assert_eq!(server("::1").as_deref(), Some("[::1]"));
        for bad in ["", "host:0", "host:99999", "[::1", "a b", "sip:", "u@host"] {
            assert_eq!(server(bad), None, "{bad}");
        }
        let dns = |s: &str| parse_dns_servers(s).map(|v| v.map(|v| v.len()));
        assert_eq!(dns("").unwrap(), None);
        assert_eq!(dns("127.0.0.1:5353, [::1] 10.0.0.1").unwrap(), Some(3));
        assert_eq!(
            parse_dns_servers("[::1]").unwrap().unwrap()[0],
            "[::1]:53".parse().unwrap()
        );
        assert!(dns("dns.example.com").is_err());
        assert_eq!(parse_local_ip(None).unwrap(), None);
        assert_eq!(parse_local_ip(Some(" ")).unwrap(), None);
        assert_eq!(
            parse_local_ip(Some("[::1]")).unwrap(),
            Some("::1".parse().unwrap())
        );
        assert!(parse_local_ip(Some("localhost")).is_err());
        assert_eq!(
            aor_uri("alice", &host("2001:db8::1")),
            "sip:alice@[2001:db8::1]"
        );
    }

    #[test]
    fn names_are_trimmed_and_validated() {
        assert_eq!(
            parse_names(" alice , bob,,alice ").unwrap(),
            ["alice", "bob", "alice"].map(Arc::from)
        );
        assert!(matches!(parse_names(" , "), Err(ApiError::BadNameList(_))));
        assert!(matches!(parse_names("a b"), Err(ApiError::BadNameList(_))));
        assert!(matches!(parse_names("a@b"), Err(ApiError::BadNameList(_))));
        assert!(matches!(
            parse_names("a\r\nVia: x"),
            Err(ApiError::BadNameList(_))
        ));
    }
}
