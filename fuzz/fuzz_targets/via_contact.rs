//! Arbitrary text as the top Via and the Contact of a 2xx: the response parses or is
//! refused without panicking; a `received` read is a whole IP address (never IPv4-mapped
//! IPv6), an `rport` a port other than 0; each contact read has a URI that prints back to
//! text that parses to the same URI.
#![no_main]

use lanscape_sip::engine::message::parse_response;
use lanscape_sip::engine::uri::SipUri;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (via, contact) = match data.iter().position(|b| *b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let mut message = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx".to_vec();
    message.extend_from_slice(via);
    message.extend_from_slice(b"\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\nContact: ");
    message.extend_from_slice(contact);
    message.extend_from_slice(b"\r\nContent-Length: 0\r\n\r\n");
    let Ok(response) = parse_response(&message) else {
        return;
    };
    if let Some(ip) = response.received {
        assert_eq!(
            ip,
            ip.to_canonical(),
            "an IPv4-mapped received kept as IPv6"
        );
    }
    assert_ne!(response.rport, Some(0));
    for c in &response.contacts {
        let again = SipUri::parse(&c.uri.to_string());
        assert_eq!(again.as_ref(), Some(&c.uri), "{:?}", c.raw);
    }
});
