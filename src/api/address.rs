//! Addresses shared by both APIs: host and port checks, resolution, and the local address
//! the system uses towards a peer.

use crate::api::ApiError;
use crate::engine::transport::{Target, TlsTarget, Transport};
use crate::engine::uri::{Host, HostPort, SipUri, parse_ip};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs, UdpSocket};

/// The User-Agent value: the product, after the application's name if any.
pub fn user_agent(phone_name: &str) -> String {
    let product = concat!("liblanscape-sip/", env!("CARGO_PKG_VERSION"));
    if phone_name.trim().is_empty() {
        product.to_string()
    } else {
        format!("{} {product}", phone_name.trim())
    }
}

/// A port parameter: 0 means the transport's default (5060, 5061 for TLS), above 65535 is
/// refused.
pub fn valid_port(port: u32, transport: Transport) -> Option<u16> {
    match port {
        0 => Some(transport.default_port()),
        1..=65535 => Some(port as u16),
        _ => None,
    }
}

/// Where requests go: the next hop on a transport. Over TLS the server certificate must
/// match (RFC 5922 §4) the next hop's host name, or the SIP domain when the next hop is
/// given as an address, and never the address a name resolved to; `tls_settings` names
/// the trust anchors and client certificate to use.
pub fn target(
    transport: Transport,
    next_hop: &Host,
    addr: SocketAddr,
    sip_domain: &Host,
    tls_settings: u64,
) -> Target {
    let tls = (transport == Transport::Tls).then(|| {
        let verified = match (next_hop, sip_domain) {
            (Host::Ip(_), Host::Name(_)) => sip_domain,
            _ => next_hop,
        };
        Box::new(TlsTarget {
            server_name: verified.bare(),
            settings: tls_settings,
        })
    });
    Target {
        transport,
        addr,
        tls,
    }
}

/// The Route header value for an outbound proxy (loose routing, RFC 3261 §16.12).
pub fn proxy_route(host: &Host, port: u16, transport: Transport) -> String {
    let uri = SipUri {
        transport: transport.is_stream().then_some(transport),
        ..SipUri::of_host(HostPort {
            host: host.clone(),
            port: Some(port),
        })
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
        Ok(names) if names.len() == 1 && names[0] == user => Ok((user, uri.host_port.host)),
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
pub fn parse_names(list: &str) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = list
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
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

/// The Request-URI of a REGISTER, one rule for both APIs (RFC 3261 §10.2): it names the
/// domain of the address of record, not the registrar or proxy it is sent to; when that
/// domain is the registrar's own host, the registrar's port goes with it.
pub fn registration_request_uri(
    aor_domain: &Host,
    registrar: &Host,
    registrar_port: u16,
) -> String {
    let port = (aor_domain == registrar && registrar_port != 5060).then_some(registrar_port);
    SipUri::of_host(HostPort {
        host: aor_domain.clone(),
        port,
    })
    .to_string()
}

/// Resolves `host`, preferring the address family of the local socket.
pub fn resolve(host: &Host, port: u16, local: SocketAddr) -> Result<SocketAddr, ApiError> {
    let unknown = || ApiError::UnknownHost(host.to_string());
    let candidates: Vec<SocketAddr> = match host {
        Host::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Host::Name(name) => (name.as_str(), port)
            .to_socket_addrs()
            .map_err(|_| unknown())?
            .collect(),
    };
    candidates
        .iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .copied()
        .ok_or_else(unknown)
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
        let uri = |d: &str, r: &str, port| registration_request_uri(&host(d), &host(r), port);
        assert_eq!(uri("example.com", "10.0.0.1", 5070), "sip:example.com");
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
        let addr: SocketAddr = "192.0.2.1:5061".parse().unwrap();
        let name = |h: &str, domain: &str| {
            target(Transport::Tls, &host(h), addr, &host(domain), 7)
                .tls
                .unwrap()
                .server_name
        };
        assert_eq!(name("sip.example.com", "example.com"), "sip.example.com");
        assert_eq!(name("192.0.2.1", "example.com"), "example.com");
        assert_eq!(name("[2001:db8::1]", "2001:db8::1"), "2001:db8::1");
        assert_eq!(
            target(Transport::Tcp, &host("h"), addr, &host("d"), 7).tls,
            None
        );
        assert_eq!(valid_port(0, Transport::Tls), Some(5061));
        assert_eq!(valid_port(0, Transport::Tcp), Some(5060));
        assert_eq!(valid_port(65536, Transport::Udp), None);
        assert_eq!(
            proxy_route(&host("::1"), 5061, Transport::Tls),
            "<sip:[::1]:5061;transport=tls;lr>"
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
            ["alice", "bob", "alice"]
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
