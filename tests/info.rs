//! The registration info query through the C ABI: numbers in a struct, texts in caller
//! buffers with the length needed reported, against the scripted registrar.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_STATE::*;
use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_TEXT::*;
use lanscape_sip::ffi::lanscape::*;
use std::ffi::c_char;
use support::*;

#[test]
fn the_info_query_shows_what_the_registrar_said_and_granted() {
    let registrar = Registrar::start(|req, _| {
        Action::Reply(vec![(
            200,
            vec![
                format!(
                    "Contact: <{}>;expires=120;pub-gruu=\"sip:alice@127.0.0.1;gr=urn:uuid:1\"",
                    req.contact_uri()
                ),
                "Service-Route: <sip:orig@scscf.test;lr>, <sip:second.test;lr>".into(),
                "P-Associated-URI: <sip:alice@example.test>".into(),
            ],
        )])
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let (rc, i) = registration_info(engine, "alice");
    assert_eq!(rc, SipSuccess);
    assert_eq!(i.state, SipStateRegistered);
    assert_eq!((i.last_status, i.granted_expires), (200, 120));
    assert!((15..=58).contains(&i.seconds_until_refresh), "{i:?}");
    assert_eq!((i.transport, i.target_port), (0, registrar.port()));
    assert_eq!(
        (i.consecutive_failures, i.outbound, i.flow_timer),
        (0, 0, 0)
    );
    assert_eq!(registration_text(engine, "alice", SipTextReason), "OK");
    assert_eq!(
        registration_text(engine, "alice", SipTextContact),
        format!("sip:alice@127.0.0.1:{}", local_port(engine))
    );
    assert_eq!(
        registration_text(engine, "alice", SipTextTarget),
        "127.0.0.1"
    );
    assert_eq!(
        registration_text(engine, "alice", SipTextPubGruu),
        "sip:alice@127.0.0.1;gr=urn:uuid:1"
    );
    assert_eq!(registration_text(engine, "alice", SipTextTempGruu), "");
    assert_eq!(
        registration_text(engine, "alice", SipTextServiceRoute),
        "<sip:orig@scscf.test;lr>, <sip:second.test;lr>"
    );
    assert_eq!(
        registration_text(engine, "alice", SipTextAssociatedUris),
        "<sip:alice@example.test>"
    );
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
fn the_info_query_checks_its_arguments() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(
        registration_info(engine, "nobody").0,
        SipRegisterNameUnknown
    );
    assert_eq!(registration_info(0xdead_beef, "alice").0, SipInvalidHandle);
    let name = cstr("alice");
    let mut small = [0x55 as c_char; 4];
    let mut required = 0u32;
    // SAFETY: `small` is writable for 4 bytes.
    let rc = unsafe {
        GetSipRegistrationText(
            engine,
            name.as_ptr(),
            0,
            small.as_mut_ptr(),
            4,
            &mut required,
        )
    };
    assert_eq!(
        (rc, required),
        (SipSuccess, 3),
        "\"OK\" and its NUL fit in 4"
    );
    assert_eq!(&small[..3], &[b'O' as c_char, b'K' as c_char, 0]);
    small = [0x55 as c_char; 4];
    let rc = unsafe {
        // SAFETY: as above.
        GetSipRegistrationText(
            engine,
            name.as_ptr(),
            1,
            small.as_mut_ptr(),
            4,
            &mut required,
        )
    };
    assert_eq!(rc, SipBufferTooSmall);
    assert!(
        small[..4].iter().all(|b| *b == 0x55),
        "nothing written when it does not fit"
    );
    // SAFETY: NULL buffer with a capacity, an unknown kind: refused before any write.
    let rc = unsafe {
        GetSipRegistrationText(
            engine,
            name.as_ptr(),
            1,
            std::ptr::null_mut(),
            8,
            &mut required,
        )
    };
    assert_eq!(rc, SipBadParameter);
    // SAFETY: as above.
    let rc = unsafe {
        GetSipRegistrationText(
            engine,
            name.as_ptr(),
            99,
            small.as_mut_ptr(),
            4,
            &mut required,
        )
    };
    assert_eq!(rc, SipBadParameter);
    // SAFETY: a NULL out-pointer is refused.
    let rc = unsafe { GetSipRegistrationInfo(engine, name.as_ptr(), std::ptr::null_mut()) };
    assert_eq!(rc, SipBadParameter);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}
