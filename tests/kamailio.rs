//! Registration through the C ABI against Kamailio 5.6 (auth, usrloc in memory, registrar),
//! checked with Kamailio's own view of its location table.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::time::Duration;
use support::kamailio::{Kamailio, KamailioConfig};
use support::*;

fn enable(kam: &Kamailio, names: &'static str) -> Enable {
    Enable {
        names,
        per_line: false,
        through_proxy: false,
        server: "127.0.0.1".into(),
        port: u32::from(kam.port),
        interval: 60,
        expires: 300,
        timeout_ms: 2000,
        nat: true,
    }
}

/// Stops the engine (which unregisters every name first) and checks that Kamailio holds
/// nothing of it any more.
fn stop_leaving_nothing(engine: SIPHANDLE, kam: &Kamailio) {
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(
        kam.contacts().is_empty(),
        "left behind: {:?}",
        kam.contacts()
    );
}

fn digest_registers_many_names(algorithm: &'static str) {
    let kam = Kamailio::start(KamailioConfig {
        algorithm,
        ..Default::default()
    });
    let (engine, events) = engine(3);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    assert_eq!(
        enable(&kam, "alice, bob, carol, bob").call(engine),
        SipSuccess
    );
    assert!(
        events.wait_for(SipRegisterSuccess, 3, WAIT),
        "{:?}\n{}",
        events.events(),
        kam.log()
    );
    let port = local_port(engine);
    let contacts = kam.contacts();
    let expected: Vec<(String, String)> = ["alice", "bob", "carol"]
        .iter()
        .map(|n| (n.to_string(), format!("sip:{n}@127.0.0.1:{port}")))
        .collect();
    let got: Vec<(String, String)> = contacts
        .iter()
        .map(|(a, c, _)| (a.clone(), c.clone()))
        .collect();
    assert_eq!(got, expected, "{contacts:?}");
    assert!(
        contacts.iter().all(|(_, _, e)| (290..=300).contains(e)),
        "{contacts:?}"
    );
    stop_leaving_nothing(engine, &kam);
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_sha256_digest_one_binding_per_name() {
    digest_registers_many_names("SHA-256");
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_md5_digest_one_binding_per_name() {
    digest_registers_many_names("MD5");
}

/// Registers `n` names in one call, with challenges shared or not, and returns how many
/// 401s Kamailio sent (its own statistic) by the time all of them were registered.
fn challenges_for_names(n: u64, share: bool) -> u64 {
    let kam = Kamailio::start(KamailioConfig::default());
    let (engine, events) = engine(1);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    assert_eq!(
        EnableSipSharedChallenges(engine, i32::from(share)),
        SipSuccess
    );
    let names: Vec<String> = (0..n).map(|i| format!("s{i}")).collect();
    let mut e = enable(&kam, Box::leak(names.join(",").into_boxed_str()));
    e.nat = false;
    assert_eq!(e.call(engine), SipSuccess);
    let all = usize::try_from(n).unwrap();
    assert!(
        events.wait_for(SipRegisterSuccess, all, Duration::from_secs(30)),
        "{} of {n} registered\n{}",
        events.count(SipRegisterSuccess),
        kam.log()
    );
    assert_eq!(kam.registered_users(), Some(n));
    assert_eq!(events.count(SipRegisterAuthorizationError), 0);
    let challenges = kam.statistic("sl:401_replies").expect("the 401 statistic");
    stop_leaving_nothing(engine, &kam);
    challenges
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_takes_shared_challenges_so_most_names_register_with_one_request() {
    // Without sharing, Kamailio challenges every name (retransmissions in the burst are
    // answered too, so a few more).
    let own = challenges_for_names(2_000, false);
    assert!(own >= 2_000, "{own} challenges");
    // With it, only the names sent before the first challenge came back (at most the
    // in-flight limit per registrar, 256) are challenged; the others answer it at once.
    let shared = challenges_for_names(2_000, true);
    assert!((1..=500).contains(&shared), "{shared} challenges");
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_refuses_a_wrong_password() {
    let kam = Kamailio::start(KamailioConfig::default());
    let (engine, events) = engine(1);
    credentials(engine, "*", "gw", "not-the-password");
    domain(engine, "kam.test");
    assert_eq!(enable(&kam, "alice").call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterAuthorizationError, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert!(kam.contacts().is_empty());
    // New credentials: registered at once.
    credentials(engine, "*", "gw", "gw-secret");
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(events.count(SipRegisterAuthorizationError), 1);
    assert_eq!(kam.contacts().len(), 1);
    StopSipTelephony(engine);
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_answering_wrong_credentials_with_403_is_an_authorization_error() {
    let kam = Kamailio::start(KamailioConfig {
        forbid_wrong_credentials: true,
        ..Default::default()
    });
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, true);
    credentials(engine, "*", "gw", "not-the-password");
    domain(engine, "kam.test");
    assert_eq!(enable(&kam, "alice").call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterAuthorizationError, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        kam.log()
    );
    assert_eq!(events.count(SipRegisterError), 0, "{:?}", events.events());
    assert!(
        logs.contains("SIP/2.0 403 Forbidden"),
        "Kamailio answered with 403: {:?}",
        logs.all()
    );
    assert!(kam.contacts().is_empty());
    // Until the credentials change, the refused answer is not repeated; then at once.
    credentials(engine, "*", "gw", "gw-secret");
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        kam.log()
    );
    assert_eq!(events.count(SipRegisterAuthorizationError), 1);
    assert_eq!(kam.contacts().len(), 1);
    stop_leaving_nothing(engine, &kam);
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_min_expires_above_ours_is_423_then_registered() {
    let kam = Kamailio::start(KamailioConfig {
        min_expires: 900,
        ..Default::default()
    });
    let (engine, events) = engine(1);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    let mut e = enable(&kam, "alice");
    e.expires = 120;
    assert_eq!(e.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        kam.log()
    );
    let contacts = kam.contacts();
    assert_eq!(contacts.len(), 1);
    assert!((890..=900).contains(&contacts[0].2), "{contacts:?}");
    stop_leaving_nothing(engine, &kam);
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_as_outbound_proxy_to_a_second_registrar() {
    let registrar = Kamailio::start(KamailioConfig {
        domain: "b.test",
        ..Default::default()
    });
    let proxy = Kamailio::start(KamailioConfig {
        domain: "proxy.test",
        forward_to: Some(registrar.port),
        ..Default::default()
    });
    let (engine, events) = engine(1);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "b.test");
    let addr = cstr("127.0.0.1");
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { EnableSipProxyServer(engine, addr.as_ptr(), u32::from(proxy.port)) },
        SipSuccess
    );
    let mut e = enable(&proxy, "alice");
    e.through_proxy = true;
    e.server = "b.test".into();
    assert_eq!(e.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\nproxy:\n{}\nregistrar:\n{}",
        events.events(),
        proxy.log(),
        registrar.log()
    );
    assert_eq!(
        registrar.contacts().len(),
        1,
        "bound at the registrar behind the proxy"
    );
    assert!(proxy.contacts().is_empty(), "the proxy only relayed");
    stop_leaving_nothing(engine, &registrar);
}

#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_killed_and_restarted_every_binding_recovers() {
    let mut kam = Kamailio::start(KamailioConfig::default());
    let (engine, events) = engine(1);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    let mut e = enable(&kam, "r1,r2,r3,r4");
    e.interval = 2;
    e.timeout_ms = 1000;
    assert_eq!(e.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 4, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(kam.contacts().len(), 4);

    kam.kill();
    // The next refresh (within 2 s) times out after 1 s: each name reports it once.
    assert!(
        events.wait_for(SipRegisterTimeOut, 4, Duration::from_secs(8)),
        "{:?}",
        events.events()
    );
    // A 3 s outage: retries on the backoff fail, and are not reported again (checked below).
    std::thread::sleep(Duration::from_secs(3));

    // The new Kamailio keeps its location table in memory only: whatever it holds from
    // here on, the engine registered again (it may already have, before the next line).
    kam.restart();
    assert!(
        events.wait_for(SipRegisterSuccess, 8, Duration::from_secs(10)),
        "{:?}",
        events.events()
    );
    let aors: Vec<String> = kam.contacts().into_iter().map(|(a, _, _)| a).collect();
    assert_eq!(aors, ["r1", "r2", "r3", "r4"]);
    assert_eq!(
        events.count(SipRegisterTimeOut),
        4,
        "each outage reported once per name: {:?}",
        events.events()
    );
    stop_leaving_nothing(engine, &kam);
}

/// An engine set up for `kam` on `transport`, trusting only its CA.
fn stream_engine(
    kam: &Kamailio,
    transport_kind: lanscape_sip::ffi::profiles::SIP_TRANSPORT,
) -> (SIPHANDLE, std::sync::Arc<Recorder>) {
    let (engine, events) = engine(1);
    transport(engine, transport_kind);
    trust_only(engine, &kam.pki.as_ref().unwrap().ca_pem);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    (engine, events)
}

fn stream_port(kam: &Kamailio, transport: lanscape_sip::ffi::profiles::SIP_TRANSPORT) -> u32 {
    match transport {
        lanscape_sip::ffi::profiles::SIP_TRANSPORT::SipTransportTls => u32::from(kam.tls_port),
        _ => u32::from(kam.port),
    }
}

#[test]
#[ignore = "needs kamailio and kamailio-tls-modules (scripts/test installs them and runs this)"]
fn kamailio_digest_registration_over_tcp_and_over_tls() {
    use lanscape_sip::ffi::profiles::SIP_TRANSPORT::*;
    let kam = Kamailio::start(KamailioConfig {
        streams: true,
        ..Default::default()
    });
    for (transport_kind, param) in [(SipTransportTcp, "tcp"), (SipTransportTls, "tls")] {
        let (engine, events) = stream_engine(&kam, transport_kind);
        let mut e = enable(&kam, "alice, bob, carol");
        e.port = stream_port(&kam, transport_kind);
        assert_eq!(e.call(engine), SipSuccess);
        assert!(
            events.wait_for(SipRegisterSuccess, 3, WAIT),
            "{param}: {:?}\n{}",
            events.events(),
            kam.log()
        );
        let contacts = kam.contacts();
        assert_eq!(contacts.len(), 3, "{contacts:?}");
        for (aor, contact, _) in &contacts {
            assert!(
                contact.starts_with(&format!("sip:{aor}@127.0.0.1:"))
                    && contact.ends_with(&format!(";transport={param}")),
                "{param}: {contacts:?}"
            );
        }
        stop_leaving_nothing(engine, &kam);
    }
}

#[test]
#[ignore = "needs kamailio and kamailio-tls-modules (scripts/test installs them and runs this)"]
fn kamailio_over_tls_an_untrusted_ca_and_another_name_are_tls_errors() {
    use lanscape_sip::ffi::profiles::SIP_TRANSPORT::*;
    use lanscape_sip::testkit::pki::TestPki;
    let kam = Kamailio::start(KamailioConfig {
        streams: true,
        ..Default::default()
    });
    for (ca, sip_domain, reason) in [
        (
            TestPki::new(&["kam.test"]).ca_pem,
            "kam.test",
            "UnknownIssuer",
        ),
        (
            kam.pki.as_ref().unwrap().ca_pem.clone(),
            "other.test",
            "not valid for name",
        ),
    ] {
        let (engine, events) = engine(1);
        let logs = Logs::capture(engine, false);
        transport(engine, SipTransportTls);
        trust_only(engine, &ca);
        credentials(engine, "*", "gw", "gw-secret");
        domain(engine, sip_domain);
        let mut e = enable(&kam, "alice");
        e.port = u32::from(kam.tls_port);
        assert_eq!(e.call(engine), SipSuccess);
        assert!(
            events.wait_for(SipTlsError, 1, WAIT),
            "{reason}: {:?}",
            events.events()
        );
        assert!(
            logs.all()
                .iter()
                .any(|(l, m)| *l == 1 && m.contains(reason)),
            "{:?}",
            logs.all()
        );
        assert_eq!(StopSipTelephony(engine), SipSuccess);
        assert_eq!(events.count(SipTlsError), 1);
        assert!(kam.contacts().is_empty());
    }
}

#[test]
#[ignore = "needs kamailio and kamailio-tls-modules (scripts/test installs them and runs this)"]
fn kamailio_killed_and_restarted_under_tcp_and_tls_bindings() {
    use lanscape_sip::ffi::profiles::SIP_TRANSPORT::*;
    for transport_kind in [SipTransportTcp, SipTransportTls] {
        let mut kam = Kamailio::start(KamailioConfig {
            streams: true,
            ..Default::default()
        });
        let (engine, events) = stream_engine(&kam, transport_kind);
        let mut e = enable(&kam, "r1,r2,r3,r4");
        e.port = stream_port(&kam, transport_kind);
        e.interval = 300; // only the lost connection brings them back
        e.timeout_ms = 30_000;
        assert_eq!(e.call(engine), SipSuccess);
        assert!(
            events.wait_for(SipRegisterSuccess, 4, WAIT),
            "{:?}\n{}",
            events.events(),
            kam.log()
        );
        // The connection dies with Kamailio: detected at once (not at the 300 s refresh,
        // nor at Timer F), each name reports it once.
        let killed = std::time::Instant::now();
        kam.kill();
        assert!(
            events.wait_for(SipRegisterError, 4, WAIT),
            "{transport_kind:?}: {:?}",
            events.events()
        );
        assert!(
            killed.elapsed() < Duration::from_secs(4),
            "{:?}",
            killed.elapsed()
        );
        kam.restart();
        assert!(
            events.wait_for(SipRegisterSuccess, 8, Duration::from_secs(15)),
            "{transport_kind:?}: {:?}\n{}",
            events.events(),
            kam.log()
        );
        let aors: Vec<String> = kam.contacts().into_iter().map(|(a, _, _)| a).collect();
        assert_eq!(aors, ["r1", "r2", "r3", "r4"]);
        assert_eq!(events.count(SipRegisterError), 4, "{:?}", events.events());
        stop_leaving_nothing(engine, &kam);
    }
}

/// `EnableSipRegisterServer` in waiting mode against Kamailio: its first register cycle's
/// outcome is the return value, after the notifications.
#[test]
#[ignore = "needs kamailio (scripts/test installs it and runs this)"]
fn kamailio_waiting_mode_returns_the_first_cycles_outcome() {
    let waiting = |password: &str| {
        let (engine, events) = engine(2);
        assert_eq!(EnableSipRegisterWaitMode(engine, 1), SipSuccess);
        credentials(engine, "*", "gw", password);
        domain(engine, "kam.test");
        (engine, events)
    };
    let kam = Kamailio::start(KamailioConfig {
        forbid_wrong_credentials: true,
        ..Default::default()
    });
    // Success: both names registered when the call returns.
    let (engine, events) = waiting("gw-secret");
    assert_eq!(enable(&kam, "alice,bob").call(engine), SipSuccess);
    assert_eq!(events.count(SipRegisterSuccess), 2, "{:?}", events.events());
    assert_eq!(kam.contacts().len(), 2, "{}", kam.log());
    stop_leaving_nothing(engine, &kam);
    // A wrong password.
    let (engine, events) = waiting("wrong");
    assert_eq!(
        enable(&kam, "alice").call(engine),
        SipRegisterAuthorizationError
    );
    assert_eq!(events.count(SipRegisterAuthorizationError), 1);
    stop_leaving_nothing(engine, &kam);
    // Silence: Kamailio stopped (SIGSTOP); bounded by TimeOutMs.
    kam.pause();
    let (engine, events) = waiting("gw-secret");
    let mut e = enable(&kam, "alice");
    e.timeout_ms = 1000;
    let started = std::time::Instant::now();
    assert_eq!(e.call(engine), SipRegisterTimeOut);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(events.count(SipRegisterTimeOut), 1);
    kam.resume();
    StopSipTelephony(engine);

    // A registrar whose policy refuses every expiry: 423, then 423 again.
    let refusing = Kamailio::start(KamailioConfig {
        refuse_interval: true,
        min_expires: 600,
        ..Default::default()
    });
    let (engine, events) = waiting("gw-secret");
    assert_eq!(
        enable(&refusing, "alice").call(engine),
        SipRegisterIntervalError,
        "{}",
        refusing.log()
    );
    assert_eq!(events.count(SipRegisterIntervalError), 1);
    stop_leaving_nothing(engine, &refusing);
}
