//! Addresses shared by both APIs: host and port checks, resolution, and the local address
//! the system uses towards a peer.

use crate::api::ApiError;
use crate::engine::message::uri_host;
use crate::engine::transport::{Target, TlsTarget, Transport};
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
    next_hop_host: &str,
    addr: SocketAddr,
    sip_domain: &str,
    tls_settings: u64,
) -> Target {
    let bare = |h: &str| h.trim_start_matches('[').trim_end_matches(']').to_string();
    let is_address = |h: &str| bare(h).parse::<IpAddr>().is_ok();
    let tls = (transport == Transport::Tls).then(|| {
        Box::new(TlsTarget {
            server_name: if !is_address(next_hop_host) || is_address(sip_domain) {
                bare(next_hop_host)
            } else {
                bare(sip_domain)
            },
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
pub fn proxy_route(host: &str, port: u16, transport: Transport) -> String {
    format!(
        "<sip:{}:{port}{};lr>",
        uri_host(host),
        transport.uri_suffix()
    )
}

/// A host is an IP literal (IPv6 with or without brackets) or a DNS name.
pub fn is_host(s: &str) -> bool {
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
        || (s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            }))
}

/// The Request-URI of a REGISTER, one rule for both APIs (RFC 3261 §10.2): it names the
/// domain of the address of record, not the registrar or proxy it is sent to; when that
/// domain is the registrar's own host, the registrar's port goes with it.
pub fn registration_request_uri(aor_domain: &str, registrar: &str, registrar_port: u16) -> String {
    let bare = |h: &str| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase()
    };
    if bare(aor_domain) == bare(registrar) && registrar_port != 5060 {
        format!("sip:{}:{registrar_port}", uri_host(&bare(aor_domain)))
    } else {
        format!("sip:{}", uri_host(&bare(aor_domain)))
    }
}

/// Resolves `host`, preferring the address family of the local socket.
pub fn resolve(host: &str, port: u16, local: SocketAddr) -> Result<SocketAddr, ApiError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let candidates: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => (bare, port)
            .to_socket_addrs()
            .map_err(|_| ApiError::UnknownHost(host.to_string()))?
            .collect(),
    };
    candidates
        .iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .copied()
        .ok_or_else(|| ApiError::UnknownHost(host.to_string()))
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

    #[test]
    fn request_uri_names_the_domain_of_the_address_of_record() {
        let uri = registration_request_uri;
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
        let name = |host: &str, domain: &str| {
            target(Transport::Tls, host, addr, domain, 7)
                .tls
                .unwrap()
                .server_name
        };
        assert_eq!(name("sip.example.com", "example.com"), "sip.example.com");
        assert_eq!(name("192.0.2.1", "example.com"), "example.com");
        assert_eq!(name("[2001:db8::1]", "2001:db8::1"), "2001:db8::1");
        assert_eq!(target(Transport::Tcp, "h", addr, "d", 7).tls, None);
        assert_eq!(valid_port(0, Transport::Tls), Some(5061));
        assert_eq!(valid_port(0, Transport::Tcp), Some(5060));
        assert_eq!(valid_port(65536, Transport::Udp), None);
        assert_eq!(
            proxy_route("::1", 5061, Transport::Tls),
            "<sip:[::1]:5061;transport=tls;lr>"
        );
    }

    #[test]
    fn hosts() {
        for ok in ["127.0.0.1", "::1", "[::1]", "sip.example.com", "localhost"] {
            assert!(is_host(ok), "{ok}");
        }
        for bad in ["", "a..b", "a b", "x;y", "h\r\n"] {
            assert!(!is_host(bad), "{bad}");
        }
    }
}
