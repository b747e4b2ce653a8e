//! Authentication and refusals: digest (MD5, SHA-256, 401 and 407), wrong or missing
//! credentials, 403 with and without our credentials, and 423 Interval Too Brief.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::time::{Duration, Instant};
use support::*;

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
    assert_eq!(
        registration_state(engine, "alice"),
        (SipSuccess, SIP_REGISTRATION_STATE::SipStateRetryWait)
    );

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
