//! Arbitrary text as the names list of `EnableSipRegisterServer`: it is split or refused
//! without panicking, and every name accepted is a non-empty SIP user part of at most 256
//! characters with no separator, blank or control character in it.
#![no_main]

use lanscape_sip::testkit::hooks::parse_names;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(names) = parse_names(text) {
        assert!(!names.is_empty());
        for name in names {
            assert!(!name.is_empty() && name.len() <= 256, "{name:?}");
            assert!(
                !name.contains(|c: char| c == ',' || c.is_whitespace() || c.is_control()),
                "{name:?}"
            );
            assert!(name.is_ascii(), "{name:?}");
        }
    }
});
