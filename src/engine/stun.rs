//! The part of STUN (RFC 5389) SIP Outbound uses for keep-alives on UDP (RFC 5626 §4.4.2):
//! a Binding request without attributes, and its success response with the address the
//! server saw. Hand-written: it is 20 bytes out and two attributes in, and a STUN crate
//! would bring a whole TURN/ICE stack for it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The fixed value of every RFC 5389 message (bytes 4 to 8).
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const BINDING_ERROR: u16 = 0x0111;
const MAPPED_ADDRESS: u16 = 0x0001;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;

/// A STUN transaction id.
pub type TransactionId = [u8; 12];

/// A Binding request with this transaction id.
pub fn binding_request(id: &TransactionId) -> Vec<u8> {
    let mut out = Vec::with_capacity(20);
    out.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    out.extend_from_slice(id);
    out
}

/// Whether a datagram is a STUN message rather than SIP (RFC 5389 §6, RFC 5626 §4.4.2):
/// the two top bits clear, the magic cookie, and a length that matches.
pub fn is_stun(bytes: &[u8]) -> bool {
    bytes.len() >= 20
        && bytes[0] & 0xC0 == 0
        && bytes[4..8] == MAGIC_COOKIE.to_be_bytes()
        && usize::from(u16::from_be_bytes([bytes[2], bytes[3]])) == bytes.len() - 20
}

/// A Binding response: its transaction, whether it is a success, and the address the
/// server saw us at (when it said).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingResponse {
    /// Transaction id.
    pub id: TransactionId,
    /// Success (or error) response.
    pub success: bool,
    /// XOR-MAPPED-ADDRESS (or MAPPED-ADDRESS).
    pub mapped: Option<SocketAddr>,
}

/// Reads a Binding response; `None` for anything else (requests, other methods, a
/// malformed attribute list).
pub fn parse_response(bytes: &[u8]) -> Option<BindingResponse> {
    if !is_stun(bytes) {
        return None;
    }
    let kind = u16::from_be_bytes([bytes[0], bytes[1]]);
    let success = match kind {
        BINDING_SUCCESS => true,
        BINDING_ERROR => false,
        _ => return None,
    };
    let id: TransactionId = bytes[8..20].try_into().ok()?;
    let mut mapped = None;
    let mut rest = &bytes[20..];
    while !rest.is_empty() {
        if rest.len() < 4 {
            return None;
        }
        let kind = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        let padded = len.checked_add(3)? & !3;
        let value = rest.get(4..4 + len)?;
        match kind {
            XOR_MAPPED_ADDRESS => mapped = address(value, Some(&id)).or(mapped),
            MAPPED_ADDRESS if mapped.is_none() => mapped = address(value, None),
            _ => {}
        }
        rest = rest.get(4 + padded..).unwrap_or_default();
    }
    Some(BindingResponse {
        id,
        success,
        mapped,
    })
}

/// Reads a (XOR-)MAPPED-ADDRESS value; with `xor`, undoes the XOR with the cookie and id.
fn address(value: &[u8], xor: Option<&TransactionId>) -> Option<SocketAddr> {
    let family = *value.get(1)?;
    let mut port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]);
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let mut mask = [0u8; 16];
    mask[..4].copy_from_slice(&cookie);
    if let Some(id) = xor {
        port ^= (MAGIC_COOKIE >> 16) as u16;
        mask[4..].copy_from_slice(id);
    }
    let unmask = |bytes: &[u8]| -> Vec<u8> {
        bytes
            .iter()
            .zip(mask.iter())
            .map(|(b, m)| if xor.is_some() { b ^ m } else { *b })
            .collect()
    };
    let ip = match family {
        0x01 => {
            let b = unmask(value.get(4..8)?);
            IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
        }
        0x02 => {
            let b: [u8; 16] = unmask(value.get(4..20)?).try_into().ok()?;
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A success response as a server writes it (RFC 5389 §15.2).
    fn success(id: &TransactionId, seen: SocketAddr) -> Vec<u8> {
        let mut attr = vec![0, if seen.is_ipv4() { 1 } else { 2 }];
        attr.extend_from_slice(&(seen.port() ^ (MAGIC_COOKIE >> 16) as u16).to_be_bytes());
        let mut mask = MAGIC_COOKIE.to_be_bytes().to_vec();
        mask.extend_from_slice(id);
        let ip = match seen.ip() {
            IpAddr::V4(ip) => ip.octets().to_vec(),
            IpAddr::V6(ip) => ip.octets().to_vec(),
        };
        attr.extend(ip.iter().zip(mask.iter()).map(|(b, m)| b ^ m));
        let mut out = BINDING_SUCCESS.to_be_bytes().to_vec();
        out.extend_from_slice(&((4 + attr.len()) as u16).to_be_bytes());
        out.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        out.extend_from_slice(id);
        out.extend_from_slice(&XOR_MAPPED_ADDRESS.to_be_bytes());
        out.extend_from_slice(&(attr.len() as u16).to_be_bytes());
        out.extend_from_slice(&attr);
        out
    }

    #[test]
    fn a_binding_request_and_its_response() {
        let id = *b"0123456789ab";
        let request = binding_request(&id);
        assert_eq!(request.len(), 20);
        assert!(is_stun(&request));
        assert_eq!(
            parse_response(&request),
            None,
            "a request is not a response"
        );
        for seen in ["203.0.113.7:41000", "[2001:db8::7]:5062"] {
            let seen: SocketAddr = seen.parse().unwrap();
            let r = parse_response(&success(&id, seen)).unwrap();
            assert_eq!((r.id, r.success, r.mapped), (id, true, Some(seen)));
        }
    }

    #[test]
    fn sip_and_garbage_are_not_stun() {
        assert!(!is_stun(
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        ));
        assert!(!is_stun(b"\r\n\r\n"));
        let id = *b"0123456789ab";
        let mut wrong_length = success(&id, "192.0.2.1:5060".parse().unwrap());
        wrong_length.push(0);
        assert!(!is_stun(&wrong_length));
        // An attribute longer than the message: refused, not read past the end.
        let mut truncated = success(&id, "192.0.2.1:5060".parse().unwrap());
        truncated[22..24].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(parse_response(&truncated), None);
        let whole = success(&id, "192.0.2.1:5060".parse().unwrap());
        for n in 0..whole.len() {
            let _ = parse_response(&whole[..n]);
        }
    }
}
