//! Registration behaviour through the C ABI against a scripted registrar on loopback:
//! the REGISTER itself, refresh, expiry, names and lines, the outbound proxy, and
//! unregistration (disable, re-enable, stop).

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
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
            line: -1,
            reason: String::new(),
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
    assert_eq!(
        reg.contact_uri(),
        format!("sip:alice@127.0.0.1:{}", local_port(engine))
    );
    assert_eq!(registrar.bindings("alice").len(), 1);
    assert_eq!(
        registration_state(engine, "alice"),
        (SipSuccess, SIP_REGISTRATION_STATE::SipStateRegistered)
    );
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
    // end to end, refreshes come neither early (the first at 30-95 % of the interval, the
    // next ones at 80-95 %, at least 500 ms) nor very late.
    for gap in &gaps[..3] {
        assert!((450..=3000).contains(gap), "refresh gaps {gaps:?}");
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
        (500..=3000).contains(&gap),
        "refreshed after {gap} ms for a 2 s grant (the first refresh: 30-95 %, 0.6-1.9 s)"
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
    assert_eq!(
        registration_state(engine, "alice").0,
        SipRegisterNameUnknown
    );
    StopSipTelephony(engine);
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
