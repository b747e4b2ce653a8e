//! Arbitrary text as a WWW-Authenticate / Proxy-Authenticate value: parsing never panics,
//! and what parses is answered without panicking, in one header line (no CR or LF a
//! registrar could smuggle into our request), of bounded size.
#![no_main]

use lanscape_sip::engine::digest::{
    AnswerInput, ChallengeKind, Credential, answer, parse_challenge,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for kind in [ChallengeKind::Www, ChallengeKind::Proxy] {
        let Ok(challenge) = parse_challenge(kind, text) else {
            continue;
        };
        let credential = Credential::new("", "alice", "pw\"\\\r\n");
        let value = answer(
            &challenge,
            &credential,
            &AnswerInput {
                method: "REGISTER",
                uri: "sip:example.com",
                nonce_count: 1,
                cnonce: "0123456789abcdef",
                body: b"",
            },
        );
        assert!(!value.contains(['\r', '\n']), "{value:?}");
        assert!(
            value.len() <= 2 * text.len() + 512,
            "{} bytes from {}",
            value.len(),
            text.len()
        );
    }
});
