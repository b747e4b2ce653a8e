//! Many names at once: challenged registration and unregistration together, and pacing
//! by the per-hop in-flight limit.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::time::Duration;
use support::*;

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
