//! Arbitrary text as a host, a host and port, and a SIP URI: parsing never panics, and what
//! parses prints back to text that parses to the same value (so a URI the library builds
//! from a parsed one says what was read); the check that makes no URI agrees with parsing.
#![no_main]

use lanscape_sip::engine::uri::{Host, HostPort, SipUri};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(host) = Host::parse(text) {
        assert_eq!(
            Host::parse(&host.to_string()).as_ref(),
            Some(&host),
            "{text:?}"
        );
        assert_eq!(Host::parse(&host.bare()).as_ref(), Some(&host), "{text:?}");
    }
    if let Some(hp) = HostPort::parse(text) {
        assert_ne!(hp.port, Some(0));
        assert_eq!(
            HostPort::parse(&hp.to_string()).as_ref(),
            Some(&hp),
            "{text:?}"
        );
    }
    assert_eq!(
        SipUri::is_valid(text),
        SipUri::parse(text).is_some(),
        "{text:?}"
    );
    if let Some(uri) = SipUri::parse(text) {
        let again = SipUri::parse(&uri.to_string());
        assert_eq!(again.as_ref(), Some(&uri), "{text:?} printed as {uri}");
    }
});
