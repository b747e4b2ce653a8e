//! Registration through the C ABI against a scripted registrar on loopback.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use std::ffi::c_void;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn registers_and_sends_a_well_formed_register() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(
        events.events()[0],
        Event {
            code: SipRegisterSuccess,
            name: "alice".into(),
            line: -1
        }
    );
    let reg = &registrar.registers()[0];
    let port = registrar.addr.port();
    assert_eq!(
        reg.request_line(),
        format!("REGISTER sip:127.0.0.1:{port} SIP/2.0")
    );
    assert!(
        reg.header("From")
            .unwrap()
            .starts_with("<sip:alice@127.0.0.1>;tag=")
    );
    assert_eq!(reg.header("To").unwrap(), "<sip:alice@127.0.0.1>");
    assert_eq!(reg.expires(), Some(3600));
    assert!(reg.branch().starts_with("z9hG4bK"));
    assert!(reg.header("Via").unwrap().contains(";rport"));
    assert_eq!(
        reg.header("User-Agent").unwrap(),
        concat!("test phone liblanscape-sip/", env!("CARGO_PKG_VERSION"))
    );
    let mut local_port = 0u32;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { GetLocalSipPort(engine, &mut local_port) },
        SipSuccess
    );
    assert_eq!(
        reg.contact_uri(),
        format!("sip:alice@127.0.0.1:{local_port}")
    );
    assert_eq!(registrar.bindings("alice").len(), 1);
    let mut state = SIP_REGISTRATION_STATE::SipStateUnregistered;
    let name = cstr("alice");
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { GetSipRegistrationState(engine, name.as_ptr(), &mut state) },
        SipSuccess
    );
    assert_eq!(state, SIP_REGISTRATION_STATE::SipStateRegistered);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
fn refreshes_at_the_update_interval_with_stable_call_id() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 1;
    enable.expires = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(registrar.wait_for(Duration::from_secs(6), |r| r.len() >= 4));
    let regs = registrar.registers();
    let gaps: Vec<u128> = regs
        .windows(2)
        .map(|w| (w[1].at - w[0].at).as_millis())
        .collect();
    // The exact schedule is a unit test on the simulated clock (engine::endpoint); here,
    // end to end, refreshes come neither early nor very late.
    for gap in &gaps[..3] {
        assert!((900..=3000).contains(gap), "refresh gaps {gaps:?}");
    }
    assert!(regs.iter().all(|r| r.call_id() == regs[0].call_id()));
    assert!(regs.iter().all(|r| r.expires() == Some(60)));
    assert!(regs.windows(2).all(|w| w[1].cseq() > w[0].cseq()));
    assert!(regs.windows(2).all(|w| w[1].branch() != w[0].branch()));
    assert_eq!(
        events.count(SipRegisterSuccess),
        1,
        "reported once, not per refresh"
    );
    StopSipTelephony(engine);
}

#[test]
fn granted_expiry_in_our_contact_overrides_the_header_and_the_interval() {
    let registrar = Registrar::start(|req, _| {
        Action::OkWithContacts(
            vec![format!("<{}>;expires=2", req.contact_uri())],
            Some(3600),
        )
    });
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert!(registrar.wait_for(Duration::from_secs(4), |r| r.len() >= 2));
    let regs = registrar.registers();
    let gap = (regs[1].at - regs[0].at).as_millis();
    assert!(
        (1500..=3000).contains(&gap),
        "refreshed after {gap} ms for a 2 s grant (90 %: 1.8 s)"
    );
    StopSipTelephony(engine);
}

#[test]
fn duplicate_names_get_one_binding_each() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(
        Enable::to(&registrar, " alice, bob ,alice").call(engine),
        SipSuccess
    );
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    // Stopping unregisters every binding the engine has: a duplicate would show here.
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    let regs: Vec<Req> = registrar
        .registers()
        .into_iter()
        .filter(|r| r.expires() != Some(0))
        .collect();
    assert_eq!(regs.len(), 2);
    let mut users: Vec<String> = regs.iter().map(|r| r.to_user()).collect();
    users.sort();
    assert_eq!(users, ["alice", "bob"]);
    assert_ne!(regs[0].call_id(), regs[1].call_id());
    assert_eq!(events.count(SipRegisterSuccess), 2);
    assert_eq!(events.count(SipUnregistered), 2);
}

#[test]
fn per_line_names_carry_their_line_and_must_match_the_line_count() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(3);
    let mut enable = Enable::to(&registrar, "l0,l1");
    enable.per_line = true;
    assert_eq!(enable.call(engine), SipRegisterBadNameList);
    enable.names = "l0,l1,l2,l3";
    assert_eq!(enable.call(engine), SipRegisterBadNameList);
    enable.names = "l0, l1, l0";
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    let mut got: Vec<(String, i32)> = events
        .events()
        .into_iter()
        .map(|e| (e.name, e.line))
        .collect();
    got.sort();
    assert_eq!(got, [("l0".to_string(), 0), ("l1".to_string(), 1)]);
    let mut lines = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    assert_eq!(unsafe { GetNumPhoneLines(engine, &mut lines) }, SipSuccess);
    assert_eq!(lines, 3);
    StopSipTelephony(engine);
}

fn digest_round_trip(algorithm: &'static str) {
    let registrar = Registrar::start(digest_script(algorithm, "secret"));
    let (engine, events) = engine(1);
    credentials(engine, "test.realm", "alice", "secret");
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}",
        events.events()
    );
    let regs = registrar.registers();
    assert_eq!(regs.len(), 2);
    assert!(regs[0].authorization().is_none());
    let auth = regs[1].authorization().unwrap();
    assert!(auth.contains(&format!("algorithm={algorithm}")), "{auth}");
    assert!(
        auth.contains("qop=auth") && auth.contains("nc=00000001") && auth.contains("opaque=\"op\"")
    );
    assert!(!auth.contains("secret"));
    assert_eq!(regs[0].call_id(), regs[1].call_id());
    assert_eq!(regs[1].cseq(), regs[0].cseq() + 1);
    StopSipTelephony(engine);
}

#[test]
fn digest_md5_401_then_200() {
    digest_round_trip("MD5");
}

#[test]
fn digest_sha256_401_then_200() {
    digest_round_trip("SHA-256");
}

#[test]
fn proxy_407_is_answered_with_proxy_authorization() {
    let registrar = Registrar::start(|req, st| {
        if req.header("Proxy-Authorization").is_some() {
            return Action::Register;
        }
        st.nonces += 1;
        Action::Reply(vec![(
            407,
            vec!["Proxy-Authenticate: Digest realm=\"proxy\", nonce=\"p1\"".into()],
        )])
    });
    let (engine, events) = engine(1);
    credentials(engine, "", "alice", "pw");
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let auth = registrar.registers()[1]
        .header("Proxy-Authorization")
        .unwrap();
    assert!(digest_valid(&auth, "pw", "p1"), "{auth}");
    assert!(!auth.contains("qop"), "no qop offered, RFC 2069 answer");
    StopSipTelephony(engine);
}

#[test]
fn wrong_password_is_reported_once_without_looping() {
    let registrar = Registrar::start(digest_script("MD5", "right"));
    let (engine, events) = engine(1);
    credentials(engine, "test.realm", "alice", "wrong");
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 30;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterAuthorizationError, 1, WAIT));
    // The refusal is not answered again before a whole interval: a unit test on the
    // simulated clock (engine::binding) shows the schedule.
    assert_eq!(
        registrar.registers().len(),
        2,
        "one unauthenticated, one answer, then stop"
    );
    assert_eq!(events.count(SipRegisterAuthorizationError), 1);

    // New credentials make the waiting binding retry at once.
    credentials(engine, "test.realm", "alice", "right");
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    StopSipTelephony(engine);
}

#[test]
fn missing_credentials_is_an_authorization_error() {
    let registrar = Registrar::start(digest_script("MD5", "pw"));
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterAuthorizationError, 1, WAIT));
    assert_eq!(registrar.registers().len(), 1);
    StopSipTelephony(engine);
}

#[test]
fn interval_too_brief_retries_once_with_min_expires_and_keeps_credentials() {
    let mut auth_script = digest_script("MD5", "pw");
    let registrar = Registrar::start(move |req, st| {
        if req.authorization().is_some() && req.expires().unwrap_or(0) < 600 {
            return Action::Reply(vec![(423, vec!["Min-Expires: 600".into()])]);
        }
        auth_script(req, st)
    });
    let (engine, events) = engine(1);
    credentials(engine, "test.realm", "alice", "pw");
    let mut enable = Enable::to(&registrar, "alice");
    enable.expires = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}",
        events.events()
    );
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3, "challenge, 423, success");
    assert_eq!(regs[2].expires(), Some(600));
    assert!(
        regs[2].authorization().is_some(),
        "credentials kept after 423"
    );
    assert_eq!(registrar.bindings("alice")[0].1, 600);
    StopSipTelephony(engine);
}

#[test]
fn interval_refused_again_is_an_interval_error() {
    let registrar =
        Registrar::start(|_, _| Action::Reply(vec![(423, vec!["Min-Expires: 600".into()])]));
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.expires = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterIntervalError, 1, WAIT));
    let regs = registrar.registers();
    assert_eq!(regs.len(), 2);
    assert_eq!(regs[1].expires(), Some(600));
    StopSipTelephony(engine);
}

#[test]
fn forbidden_is_a_register_error_reported_once_across_retries() {
    let registrar = Registrar::start(|_, _| Action::Reply(vec![(403, vec![])]));
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 1; // backoff is capped by the interval: retries come quickly
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterError, 1, WAIT));
    assert!(
        registrar.wait_for(Duration::from_secs(5), |r| r.len() >= 3),
        "retries on a backoff"
    );
    assert_eq!(events.count(SipRegisterError), 1);
    StopSipTelephony(engine);
}

#[test]
fn timeout_after_time_out_ms_with_timer_e_retransmissions() {
    let registrar = Registrar::start(|_, _| Action::Ignore);
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 2000;
    enable.interval = 30;
    let started = Instant::now();
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterTimeOut, 1, WAIT));
    let took = started.elapsed().as_millis();
    assert!((1900..=4000).contains(&took), "timed out after {took} ms");
    // Sent at 0, 500 and 1500 ms: the exact diagram is a simulated-clock unit test.
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3);
    assert!(
        regs.iter().all(|r| r.branch() == regs[0].branch()),
        "retransmissions, not new requests"
    );
    StopSipTelephony(engine);
}

#[test]
fn a_provisional_response_slows_retransmissions_to_t2() {
    // 100 Trying to the first transmission, silence to the second, 200 to the third. With
    // the 100 understood, Timer E is T2 (4 s) from then on: the third transmission comes
    // about 4 s after the second, not 1 s as it would without it.
    let mut seen = 0;
    let registrar = Registrar::start(move |req, _| {
        seen += 1;
        match seen {
            1 => Action::Reply(vec![(100, vec![])]),
            2 => Action::Ignore,
            _ => {
                Action::OkWithContacts(vec![format!("<{}>;expires=3600", req.contact_uri())], None)
            }
        }
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 20_000;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, Duration::from_secs(10)));
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3, "{regs:#?}");
    assert!(regs.iter().all(|r| r.branch() == regs[0].branch()));
    let gap = |i: usize| (regs[i + 1].at - regs[i].at).as_millis();
    assert!(gap(0) < 2000, "first retransmission at T1: {} ms", gap(0));
    assert!(gap(1) >= 3500, "then T2, not 2*T1: {} ms", gap(1));
    StopSipTelephony(engine);
}

#[test]
fn forbidden_answering_our_credentials_is_an_authorization_error_until_they_change() {
    let registrar = forbidding_registrar("right");
    let (engine, events) = engine(1);
    credentials(engine, "test.realm", "alice", "wrong");
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterAuthorizationError, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(events.count(SipRegisterError), 0, "{:?}", events.events());
    let regs = registrar.registers();
    assert_eq!(regs.len(), 2, "challenged, answered, refused: {regs:#?}");
    let mut state = SIP_REGISTRATION_STATE::SipStateRegistered;
    let name = cstr("alice");
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { GetSipRegistrationState(engine, name.as_ptr(), &mut state) },
        SipSuccess
    );
    assert_eq!(state, SIP_REGISTRATION_STATE::SipStateRetryWait);

    // New credentials: a retry at once, not after the 60 s interval.
    let changed = Instant::now();
    credentials(engine, "test.realm", "alice", "right");
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert!(changed.elapsed() < Duration::from_secs(5));
    assert_eq!(events.count(SipRegisterAuthorizationError), 1);
    assert_eq!(registrar.bindings("alice").len(), 1);
    StopSipTelephony(engine);
}

#[test]
fn nat_detection_removes_the_old_contact_before_adding_the_public_one() {
    let registrar = Registrar::accepting();
    registrar.set_via_params("received=203.0.113.5;rport=40000");
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.nat = true;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3, "{regs:#?}");
    let mut port = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    unsafe { GetLocalSipPort(engine, &mut port) };
    let private = format!("sip:alice@127.0.0.1:{port}");
    assert_eq!(regs[0].contact_uri(), private);
    assert_eq!(regs[1].contact_uri(), private, "old contact removed first");
    assert_eq!(regs[1].expires(), Some(0));
    assert!(regs[1].header("Contact").unwrap().ends_with(";expires=0"));
    assert_eq!(regs[2].contact_uri(), "sip:alice@203.0.113.5:40000");
    assert_eq!(regs[2].expires(), Some(3600));
    assert_eq!(
        registrar.bindings("alice"),
        [("sip:alice@203.0.113.5:40000".to_string(), 3600)]
    );
    assert!(regs.iter().all(|r| r.call_id() == regs[0].call_id()));
    StopSipTelephony(engine);
    assert!(
        registrar.bindings("alice").is_empty(),
        "public contact removed on stop"
    );
}

#[test]
fn nat_detection_off_ignores_received() {
    let registrar = Registrar::accepting();
    registrar.set_via_params("received=203.0.113.5;rport=40000");
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(registrar.registers().len(), 1);
    StopSipTelephony(engine);
}

#[test]
fn ok_without_our_contact_is_retried_then_an_error() {
    let registrar = Registrar::start(|_, _| {
        Action::OkWithContacts(vec!["<sip:alice@192.0.2.1:5060>;expires=300".into()], None)
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 30;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterError, 1, WAIT));
    assert_eq!(registrar.registers().len(), 2, "re-registered once");
    assert_eq!(events.count(SipRegisterSuccess), 0);
    StopSipTelephony(engine);
}

#[test]
fn unresolvable_names_and_bad_parameters_are_refused_at_once() {
    let registrar = Registrar::accepting();
    let (engine, _events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.server = "no-such-host.invalid".into();
    assert_eq!(enable.call(engine), SipUnknownHost);
    enable.server = "127.0.0.1".into();
    enable.interval = 0;
    assert_eq!(enable.call(engine), SipRegisterIntervalError);
    enable.interval = 60;
    enable.through_proxy = true;
    assert_eq!(enable.call(engine), SipProxyNotEnabled);
    let proxy = cstr("127.0.0.1");
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { EnableSipProxyServer(engine, proxy.as_ptr(), 5060) },
        SipSuccess
    );
    assert_eq!(enable.call(engine), SipDomainNameNotDefined);
    enable.through_proxy = false;
    enable.names = " , ";
    assert_eq!(enable.call(engine), SipRegisterBadNameList);
    enable.names = "al ice";
    assert_eq!(enable.call(engine), SipRegisterBadNameList);
    enable.names = "alice";
    enable.port = 70000;
    assert_eq!(enable.call(engine), SipBadParameter);
    enable.port = registrar.port();
    enable.timeout_ms = 600_001;
    assert_eq!(enable.call(engine), SipBadParameter);
    let server = cstr("127.0.0.1");
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe {
        EnableSipRegisterServer(
            engine,
            std::ptr::null(),
            0,
            0,
            server.as_ptr(),
            5060,
            60,
            60,
            0,
            0,
        )
    };
    assert_eq!(rc, SipRegisterBadNameList);
    let names = cstr("alice");
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe {
        EnableSipRegisterServer(
            engine,
            names.as_ptr(),
            0,
            0,
            std::ptr::null(),
            5060,
            60,
            60,
            0,
            0,
        )
    };
    assert_eq!(rc, SipBadParameter);
    let bad_utf8 = [0xffu8, 0xfe, 0];
    // SAFETY: the last-error text is NUL-terminated, valid until the next call.
    let rc = unsafe { EnableSipDomain(engine, bad_utf8.as_ptr().cast()) };
    assert_eq!(rc, SipBadParameter);
    // SAFETY: the last-error text is NUL-terminated, valid until the next call.
    let text = unsafe { std::ffi::CStr::from_ptr(lanscape_sip::ffi::GetLastSipErrorText()) };
    assert!(text.to_str().unwrap().contains("UTF-8"));
    assert!(
        registrar.registers().is_empty(),
        "nothing sent for refused calls"
    );
    StopSipTelephony(engine);
}

#[test]
fn registers_through_the_outbound_proxy_with_a_route() {
    let proxy = Registrar::accepting();
    let (engine, events) = engine(1);
    let (addr, domain) = (cstr("127.0.0.1"), cstr("example.com"));
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { EnableSipProxyServer(engine, addr.as_ptr(), proxy.port()) },
        SipSuccess
    );
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { EnableSipDomain(engine, domain.as_ptr()) },
        SipSuccess
    );
    let mut enable = Enable::to(&proxy, "alice");
    enable.through_proxy = true;
    enable.server = "registrar.example.com".into(); // resolved by the proxy, not by us
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let reg = &proxy.registers()[0];
    assert_eq!(reg.request_line(), "REGISTER sip:example.com SIP/2.0");
    assert_eq!(reg.header("To").unwrap(), "<sip:alice@example.com>");
    assert_eq!(
        reg.header("Route").unwrap(),
        format!("<sip:127.0.0.1:{};lr>", proxy.port())
    );
    StopSipTelephony(engine);
}

#[test]
fn disable_unregisters_with_expires_zero() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice,bob").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    assert_eq!(DisableSipRegisterServer(engine), SipSuccess);
    assert!(events.wait_for(SipUnregistered, 2, WAIT));
    let regs = registrar.registers();
    let removals: Vec<_> = regs.iter().filter(|r| r.expires() == Some(0)).collect();
    assert_eq!(removals.len(), 2);
    assert!(registrar.bindings("alice").is_empty() && registrar.bindings("bob").is_empty());
    let name = cstr("alice");
    let mut state = SIP_REGISTRATION_STATE::SipStateRegistered;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { GetSipRegistrationState(engine, name.as_ptr(), &mut state) },
        SipRegisterNameUnknown
    );
    StopSipTelephony(engine);
}

#[test]
fn stop_unregisters_before_returning() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(registrar.bindings("alice").len(), 1);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(
        registrar.bindings("alice").is_empty(),
        "Expires: 0 answered before Stop returned"
    );
    assert_eq!(
        events.count(SipUnregistered),
        1,
        "delivered before Stop returned"
    );
}

#[test]
fn stop_is_bounded_when_the_registrar_is_gone() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    drop(registrar);
    let started = Instant::now();
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(
        started.elapsed() < Duration::from_millis(4500),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn stale_and_forged_handles_are_invalid_everywhere() {
    let (engine, _events) = engine(1);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    let s = cstr("x");
    let mut n = 0u32;
    let mut state = SIP_REGISTRATION_STATE::SipStateUnregistered;
    for h in [
        engine,
        0,
        1,
        u64::MAX,
        engine ^ (1 << 33),
        0xdead_beef_0000_0001,
    ] {
        assert_eq!(StopSipTelephony(h), SipInvalidHandle, "{h:#x}");
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        let codes: [TELEPHONY_RETURN_VALUE; 14] = unsafe {
            [
                SetNotificationCallback(h, None, std::ptr::null_mut()),
                SetLogCallback(h, None, std::ptr::null_mut()),
                EnableSipTrace(h, 1),
                GetNumPhoneLines(h, &mut n),
                GetLocalSipPort(h, &mut n),
                EnableSipDomain(h, s.as_ptr()),
                DisableSipDomain(h),
                EnableSipProxyServer(h, s.as_ptr(), 0),
                DisableSipProxyServer(h),
                AddAuthorizationCredentials(h, s.as_ptr(), s.as_ptr(), s.as_ptr()),
                EnableSipRegisterServer(h, s.as_ptr(), 0, 0, s.as_ptr(), 0, 1, 1, 0, 0),
                DisableSipRegisterServer(h),
                GetSipRegistrationState(h, s.as_ptr(), &mut state),
                EnableKeepAliveTransmissions(h, 10),
            ]
        };
        assert!(
            codes.iter().all(|c| *c == SipInvalidHandle),
            "{h:#x}: {codes:?}"
        );
        assert_eq!(SendSipKeepAlive(h), SipInvalidHandle);
        assert_eq!(ClearAuthorizationCredentials(h), SipInvalidHandle);
    }
}

#[test]
fn null_pointers_and_ranges_are_bad_parameters() {
    let ip = cstr("127.0.0.1");
    let mut h = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    unsafe {
        assert_eq!(
            StartSipTelephony(std::ptr::null(), 1, 0, ip.as_ptr(), std::ptr::null_mut()),
            SipBadParameter
        );
        assert_eq!(
            StartSipTelephony(std::ptr::null(), 0, 0, ip.as_ptr(), &mut h),
            SipBadParameter
        );
        assert_eq!(
            StartSipTelephony(std::ptr::null(), 1, 65536, ip.as_ptr(), &mut h),
            SipBadParameter
        );
        let bad_ip = cstr("not-an-ip");
        assert_eq!(
            StartSipTelephony(std::ptr::null(), 1, 0, bad_ip.as_ptr(), &mut h),
            SipBadParameter
        );
    }
    let (engine, _events) = engine(1);
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    unsafe {
        assert_eq!(
            GetNumPhoneLines(engine, std::ptr::null_mut()),
            SipBadParameter
        );
        assert_eq!(EnableSipDomain(engine, std::ptr::null()), SipBadParameter);
        assert_eq!(
            EnableSipProxyServer(engine, std::ptr::null(), 0),
            SipBadParameter
        );
        let s = cstr("127.0.0.1");
        assert_eq!(
            EnableSipProxyServer(engine, s.as_ptr(), 65536),
            SipBadParameter
        );
        assert_eq!(
            AddAuthorizationCredentials(engine, std::ptr::null(), s.as_ptr(), std::ptr::null()),
            SipBadParameter
        );
        assert_eq!(
            EnableKeepAliveTransmissions(engine, 86_401),
            SipBadParameter
        );
    }
    StopSipTelephony(engine);
}

#[test]
fn a_port_in_use_is_a_socket_error() {
    let taken = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u32::from(taken.local_addr().unwrap().port());
    let ip = cstr("127.0.0.1");
    let mut h = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe { StartSipTelephony(std::ptr::null(), 1, port, ip.as_ptr(), &mut h) };
    assert_eq!(rc, SipSocketError);
}

#[test]
fn stray_spoofed_and_malformed_packets_change_nothing() {
    // From the registrar's own address: wrong branch, wrong Call-ID, wrong CSeq, garbage,
    // a huge header, a truncated answer. None is the answer, so the request times out.
    let registrar = Registrar::start(|req, st| {
        let ok = String::from_utf8(response(
            req,
            200,
            &[format!("Contact: <{}>", req.contact_uri())],
            st,
        ))
        .unwrap();
        let cseq = req.header("CSeq").unwrap();
        Action::RawMany(vec![
            ok.replace(&req.branch(), "z9hG4bKforged").into_bytes(),
            ok.replace(&req.call_id(), "other-call").into_bytes(),
            ok.replace(&cseq, "999 REGISTER").into_bytes(),
            ok.replace("CSeq: ", "CSeq: x").into_bytes(),
            b"\x00\x01garbage".to_vec(),
            format!("SIP/2.0 200 OK\r\nX: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            ok.as_bytes()[..40].to_vec(),
        ])
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 1500;
    enable.interval = 30;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(registrar.wait_for(WAIT, |r| !r.is_empty()));
    // The right answer, from the wrong address.
    let req = registrar.registers()[0].clone();
    let ok = response(
        &req,
        200,
        &[format!("Contact: <{}>", req.contact_uri())],
        &RegistrarState::default(),
    );
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.send_to(&ok, req.from).unwrap();
    assert!(
        events.wait_for(SipRegisterTimeOut, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(
        events.count(SipRegisterSuccess),
        0,
        "nothing spoofed was believed"
    );
    StopSipTelephony(engine);
}

#[test]
fn malformed_responses_from_the_registrar_are_logged_and_survived() {
    let registrar = Registrar::start(|req, st| {
        if req.cseq() == 1 {
            Action::Raw(b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n".to_vec())
        } else {
            let _ = st;
            Action::Register
        }
    });
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 1000;
    enable.interval = 1;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterTimeOut, 1, WAIT));
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "recovers on the retry"
    );
    StopSipTelephony(engine);
    assert!(
        logs.contains("dropped malformed message"),
        "{:?}",
        logs.all()
    );
}

#[test]
fn trace_shows_messages_without_passwords() {
    let registrar = Registrar::start(digest_script("MD5", "hunter2-secret"));
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, true);
    credentials(engine, "test.realm", "alice", "hunter2-secret");
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    StopSipTelephony(engine);
    let logs = logs.all();
    assert!(
        logs.iter().filter(|(l, _)| *l == 5).count() >= 4,
        "{logs:?}"
    );
    assert!(
        logs.iter()
            .any(|(_, m)| m.contains("Authorization: Digest"))
    );
    assert!(logs.iter().all(|(_, m)| !m.contains("hunter2")));
}

#[test]
fn keep_alives_are_crlf_to_the_registrar() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = u32::from(socket.local_addr().unwrap().port());
    let (engine, _events) = engine(1);
    let names = cstr("alice");
    let server = cstr("127.0.0.1");
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe {
        EnableSipRegisterServer(
            engine,
            names.as_ptr(),
            0,
            0,
            server.as_ptr(),
            port,
            60,
            60,
            30_000,
            0,
        )
    };
    assert_eq!(rc, SipSuccess);
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"REGISTER"));
    assert_eq!(SendSipKeepAlive(engine), SipSuccess);
    let mut got_crlf = false;
    for _ in 0..5 {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        if &buf[..n] == b"\r\n\r\n" {
            got_crlf = true;
            break;
        }
    }
    assert!(got_crlf);
    StopSipTelephony(engine);
}

struct Reentrant {
    done: std::sync::Mutex<Option<(TELEPHONY_RETURN_VALUE, TELEPHONY_RETURN_VALUE, u32)>>,
    cv: std::sync::Condvar,
}

unsafe extern "C" fn stop_from_callback(
    engine: SIPHANDLE,
    event: TELEPHONY_RETURN_VALUE,
    _name: *const std::ffi::c_char,
    _line: i32,
    user: *mut c_void,
) {
    if event != SipRegisterSuccess {
        return;
    }
    // SAFETY: user_data is what this test registered; it outlives the engine.
    let state = unsafe { &*(user as *const Reentrant) };
    let mut lines = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let lines_rc = unsafe { GetNumPhoneLines(engine, &mut lines) };
    let stop_rc = StopSipTelephony(engine);
    *state.done.lock().unwrap() = Some((lines_rc, stop_rc, lines));
    state.cv.notify_all();
}

#[test]
fn a_callback_may_call_the_api_and_even_stop_its_engine() {
    let registrar = Registrar::accepting();
    let ip = cstr("127.0.0.1");
    let mut engine = 0;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { StartSipTelephony(std::ptr::null(), 2, 0, ip.as_ptr(), &mut engine) },
        SipSuccess
    );
    let state = Box::new(Reentrant {
        done: std::sync::Mutex::new(None),
        cv: std::sync::Condvar::new(),
    });
    let user = &*state as *const Reentrant as *mut c_void;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { SetNotificationCallback(engine, Some(stop_from_callback), user) },
        SipSuccess
    );
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    let guard = state.done.lock().unwrap();
    let (guard, _) = state
        .cv
        .wait_timeout_while(guard, WAIT, |d| d.is_none())
        .unwrap();
    assert_eq!(*guard, Some((SipSuccess, SipSuccess, 2)));
    drop(guard);
    assert_eq!(StopSipTelephony(engine), SipInvalidHandle);
    assert!(registrar.wait_for(WAIT, |r| r.iter().any(|q| q.expires() == Some(0))));
}

#[test]
fn enabling_again_replaces_the_names() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(Enable::to(&registrar, "bob").call(engine), SipSuccess);
    assert!(events.wait_for(SipUnregistered, 1, WAIT));
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    assert!(registrar.bindings("alice").is_empty());
    assert_eq!(registrar.bindings("bob").len(), 1);
    StopSipTelephony(engine);
}

#[test]
fn several_engines_live_side_by_side() {
    let registrar = Registrar::accepting();
    let engines: Vec<_> = (0..4).map(|_| engine(1)).collect();
    let names = ["e0", "e1", "e2", "e3"];
    for ((h, _), name) in engines.iter().zip(names) {
        assert_eq!(Enable::to(&registrar, name).call(*h), SipSuccess);
    }
    for (h, events) in &engines {
        assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
        assert_eq!(
            events.events().len(),
            1,
            "each engine hears only its own names"
        );
        StopSipTelephony(*h);
    }
}

#[test]
fn many_challenged_names_register_and_unregister_together() {
    let registrar = Registrar::start(digest_script("SHA-256", "pw"));
    let (engine, events) = engine(1);
    credentials(engine, "test.realm", "gw", "pw");
    assert_eq!(
        Enable::to(&registrar, "n1,n2,n3,n4,n5,n6,n7,n8").call(engine),
        SipSuccess
    );
    assert!(
        events.wait_for(SipRegisterSuccess, 8, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(
        registrar.registers().len(),
        16,
        "one challenge and one answer each"
    );
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    for n in 1..=8 {
        assert!(
            registrar.bindings(&format!("n{n}")).is_empty(),
            "n{n} left behind"
        );
    }
    assert_eq!(events.count(SipRegisterAuthorizationError), 0);
}

#[test]
fn many_names_are_paced_by_the_in_flight_limit() {
    use lanscape_sip::testkit::hooks::MAX_IN_FLIGHT_PER_HOP;
    let registrar = Registrar::start(|_, _| Action::Ignore);
    let (engine, events) = engine(1);
    let names: Vec<String> = (0..600).map(|i| format!("pace{i}")).collect();
    let mut enable = Enable::to(&registrar, Box::leak(names.join(",").into_boxed_str()));
    enable.timeout_ms = 1000;
    enable.interval = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    let distinct = |r: &[Req]| {
        let mut b: Vec<String> = r.iter().map(|q| q.branch()).collect();
        b.sort();
        b.dedup();
        b.len()
    };
    // As the first ones time out (1 s), the waiting ones start.
    assert!(events.wait_for(SipRegisterTimeOut, 600, Duration::from_secs(15)));
    let requests = registrar.requests();
    assert!(distinct(&requests) >= 600);
    // No more transactions than the limit while none has ended: the transaction after the
    // limit starts only when one has timed out, 1 s after the first was sent (less a margin
    // for the registrar thread's own delay in recording the first). This holds however slow
    // the machine; the exact pacing is a simulated-clock unit test.
    let mut seen = std::collections::HashSet::new();
    let over_limit = requests
        .iter()
        .find(|r| seen.insert(r.branch()) && seen.len() == MAX_IN_FLIGHT_PER_HOP + 1)
        .expect("more transactions than the limit, in the end");
    let waited = over_limit.at - requests[0].at;
    assert!(
        waited >= Duration::from_millis(800),
        "transaction {} started {waited:?} after the first, before any could end",
        MAX_IN_FLIGHT_PER_HOP + 1
    );
    StopSipTelephony(engine);
}

/// What a notification callback saw when it read the name's state.
#[derive(Default)]
struct StateProbe {
    seen: std::sync::Mutex<
        Vec<(
            TELEPHONY_RETURN_VALUE,
            TELEPHONY_RETURN_VALUE,
            SIP_REGISTRATION_STATE,
        )>,
    >,
}

unsafe extern "C" fn read_state_in_callback(
    engine: SIPHANDLE,
    event: TELEPHONY_RETURN_VALUE,
    name: *const std::ffi::c_char,
    _line: i32,
    user: *mut c_void,
) {
    // SAFETY: user_data is what this test registered; it outlives the engine.
    let probe = unsafe { &*(user as *const StateProbe) };
    let mut state = SIP_REGISTRATION_STATE::SipStateUnregistering;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe { GetSipRegistrationState(engine, name, &mut state) };
    probe.seen.lock().unwrap().push((event, rc, state));
}

#[test]
fn a_state_read_inside_a_notification_reflects_it() {
    const N: usize = 300;
    let registrar = Registrar::accepting();
    let (engine, _) = engine(1);
    let probe = std::sync::Arc::new(StateProbe::default());
    let user = std::sync::Arc::as_ptr(&probe) as *mut c_void;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { SetNotificationCallback(engine, Some(read_state_in_callback), user) },
        SipSuccess
    );
    let names: Vec<String> = (0..N).map(|i| format!("probe{i}")).collect();
    let enable = Enable::to(&registrar, Box::leak(names.join(",").into_boxed_str()));
    assert_eq!(enable.call(engine), SipSuccess);
    let count = |code| {
        probe
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(e, _, _)| *e == code)
            .count()
    };
    let deadline = Instant::now() + WAIT;
    while count(SipRegisterSuccess) < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(DisableSipRegisterServer(engine), SipSuccess);
    let deadline = Instant::now() + WAIT;
    while count(SipUnregistered) < N && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    StopSipTelephony(engine);
    let seen = probe.seen.lock().unwrap().clone();
    let registered: Vec<_> = seen
        .iter()
        .filter(|(e, _, _)| *e == SipRegisterSuccess)
        .collect();
    assert_eq!(registered.len(), N);
    for (_, rc, state) in registered {
        assert_eq!(
            (*rc, *state),
            (SipSuccess, SIP_REGISTRATION_STATE::SipStateRegistered)
        );
    }
    let unregistered: Vec<_> = seen
        .iter()
        .filter(|(e, _, _)| *e == SipUnregistered)
        .collect();
    assert_eq!(unregistered.len(), N);
    assert!(
        unregistered
            .iter()
            .all(|(_, rc, _)| *rc == SipRegisterNameUnknown),
        "an unregistered name is gone: {unregistered:?}"
    );
}

#[test]
fn a_failed_io_driver_is_reported_and_later_calls_fail() {
    use lanscape_sip::ffi::GetLastSipErrorText;
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    assert_eq!(Enable::to(&registrar, "alice,bob").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    assert!(lanscape_sip::testkit::hooks::break_engine_driver(engine));
    // Every name hears that it is no longer kept registered; the log says why.
    assert!(
        events.wait_for(SipRegisterError, 2, WAIT),
        "{:?}",
        events.events()
    );
    assert!(
        logs.all()
            .iter()
            .any(|(level, m)| *level == 1 && m.contains("I/O driver failed")),
        "{:?}",
        logs.all()
    );
    let last_error = || {
        // SAFETY: the last-error text is NUL-terminated, valid until the next call.
        unsafe { std::ffi::CStr::from_ptr(GetLastSipErrorText()) }
            .to_string_lossy()
            .to_string()
    };
    let name = cstr("alice");
    let mut state = SIP_REGISTRATION_STATE::SipStateRegistered;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { GetSipRegistrationState(engine, name.as_ptr(), &mut state) },
        SipInternalError
    );
    assert!(
        last_error().contains("I/O driver failed"),
        "{}",
        last_error()
    );
    assert_eq!(
        Enable::to(&registrar, "carol").call(engine),
        SipInternalError
    );
    assert_eq!(DisableSipRegisterServer(engine), SipInternalError);
    assert_eq!(SendSipKeepAlive(engine), SipInternalError);
    let started = Instant::now();
    assert_eq!(
        StopSipTelephony(engine),
        SipSuccess,
        "a dead engine still stops"
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}
