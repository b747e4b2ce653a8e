//! LanScape's waiting `EnableSipRegisterServer` (`EnableSipRegisterWaitMode`): the first
//! register cycle's outcome as the return value (success, refused password, 423 refused,
//! silence, a mix of names), after the notifications; the guard against waiting inside a
//! callback; the engine stopped during the wait; and the default, which does not wait.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use std::ffi::{CStr, c_char, c_void};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

/// An engine with one line and a recorder, waiting for the first register cycle.
fn waiting_engine(lines: u32) -> (SIPHANDLE, std::sync::Arc<Recorder>) {
    let (engine, events) = engine(lines);
    assert_eq!(EnableSipRegisterWaitMode(engine, 1), SipSuccess);
    (engine, events)
}

fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string valid until the next call on
    // this thread.
    unsafe { CStr::from_ptr(lanscape_sip::ffi::GetLastSipErrorText()) }
        .to_string_lossy()
        .into_owned()
}

/// Calls `enable` and returns its code and how long it took.
fn timed(enable: &Enable, engine: SIPHANDLE) -> (TELEPHONY_RETURN_VALUE, Duration) {
    let started = Instant::now();
    let rc = enable.call(engine);
    (rc, started.elapsed())
}

#[test]
fn every_name_registered_returns_success_after_the_notifications() {
    let registrar = Registrar::accepting();
    let (engine, events) = waiting_engine(1);
    let (rc, took) = timed(&Enable::to(&registrar, "alice, bob, carol, alice"), engine);
    assert_eq!(rc, SipSuccess, "{}", last_error());
    assert!(took < Duration::from_secs(2), "{took:?}");
    // Already delivered when the call returned, one per unique name, and reflected.
    assert_eq!(events.count(SipRegisterSuccess), 3, "{:?}", events.events());
    for name in ["alice", "bob", "carol"] {
        let (rc, state) = registration_state(engine, name);
        assert_eq!(
            (rc, state),
            (SipSuccess, SIP_REGISTRATION_STATE::SipStateRegistered)
        );
    }
    assert_eq!(registrar.registers().len(), 3);
    StopSipTelephony(engine);
}

#[test]
fn a_refused_password_is_an_authorization_error() {
    let registrar = forbidding_registrar("right");
    let (engine, events) = waiting_engine(1);
    credentials(engine, "*", "alice", "wrong");
    let (rc, took) = timed(&Enable::to(&registrar, "alice"), engine);
    assert_eq!(rc, SipRegisterAuthorizationError);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(last_error().contains("alice"), "{}", last_error());
    assert_eq!(events.count(SipRegisterAuthorizationError), 1);
    // Right credentials: the same call now succeeds.
    credentials(engine, "*", "alice", "right");
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    StopSipTelephony(engine);
}

#[test]
fn an_interval_refused_again_after_min_expires_is_an_interval_error() {
    let registrar =
        Registrar::start(|_, _| Action::Reply(vec![(423, vec!["Min-Expires: 600".into()])]));
    let (engine, events) = waiting_engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.expires = 60;
    assert_eq!(enable.call(engine), SipRegisterIntervalError);
    assert_eq!(events.count(SipRegisterIntervalError), 1);
    assert_eq!(registrar.registers().len(), 2, "once with Min-Expires");
    StopSipTelephony(engine);
}

#[test]
fn silence_is_a_timeout_bounded_by_time_out_ms() {
    let (_silent, port) = listening();
    let (engine, events) = waiting_engine(1);
    let mut enable = Enable::to_port(port, "alice");
    enable.timeout_ms = 600;
    let (rc, took) = timed(&enable, engine);
    assert_eq!(rc, SipRegisterTimeOut, "{}", last_error());
    assert!(
        took >= Duration::from_millis(550) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(events.count(SipRegisterTimeOut), 1);
    StopSipTelephony(engine);
}

#[test]
fn with_one_name_refused_the_first_failure_is_returned_and_the_rest_registered() {
    let registrar = Registrar::start(|req, _| match req.to_user().as_str() {
        "bob" => Action::Reply(vec![(404, vec![])]),
        _ => Action::Register,
    });
    let (engine, events) = waiting_engine(1);
    assert_eq!(
        Enable::to(&registrar, "alice,bob,carol").call(engine),
        SipRegisterError
    );
    assert!(last_error().contains("bob"), "{}", last_error());
    // Every name's first cycle ended before the return.
    assert_eq!(events.count(SipRegisterSuccess), 2);
    assert_eq!(events.count(SipRegisterError), 1);
    StopSipTelephony(engine);
}

#[test]
fn without_wait_mode_the_call_returns_at_once() {
    let (_silent, port) = listening();
    let (engine, _events) = engine(1);
    let mut enable = Enable::to_port(port, "alice");
    enable.timeout_ms = 5_000;
    let (rc, took) = timed(&enable, engine);
    assert_eq!(rc, SipSuccess);
    assert!(took < Duration::from_secs(1), "{took:?}");
    // Turned on and off again: the default behaviour is back.
    assert_eq!(EnableSipRegisterWaitMode(engine, 1), SipSuccess);
    assert_eq!(EnableSipRegisterWaitMode(engine, 0), SipSuccess);
    assert!(timed(&enable, engine).1 < Duration::from_secs(1));
    assert_eq!(EnableSipRegisterWaitMode(0xdead_beef, 1), SipInvalidHandle);
    StopSipTelephony(engine);
}

/// What the callback of the deadlock guard test saw.
struct Reentry {
    registrar_port: u32,
    codes: Mutex<Vec<TELEPHONY_RETURN_VALUE>>,
}

unsafe extern "C" fn enable_again(
    engine: SIPHANDLE,
    event: TELEPHONY_RETURN_VALUE,
    _name: *const c_char,
    _line: i32,
    user: *mut c_void,
) {
    // SAFETY: user_data is the test's Reentry, alive until the engine is stopped.
    let reentry = unsafe { &*(user as *const Reentry) };
    if event != SipRegisterSuccess {
        return;
    }
    let rc = Enable::to_port(reentry.registrar_port, "bob").call(engine);
    reentry.codes.lock().unwrap().push(rc);
}

#[test]
fn waiting_inside_a_notification_of_its_engine_is_refused_not_a_deadlock() {
    let registrar = Registrar::accepting();
    let (engine, _events) = waiting_engine(1);
    let reentry = Box::new(Reentry {
        registrar_port: registrar.port(),
        codes: Mutex::default(),
    });
    let user = &*reentry as *const Reentry as *mut c_void;
    // SAFETY: `reentry` outlives the engine (stopped below).
    let rc = unsafe { SetNotificationCallback(engine, Some(enable_again), user) };
    assert_eq!(rc, SipSuccess);
    let (rc, took) = timed(&Enable::to(&registrar, "alice"), engine);
    assert_eq!(rc, SipSuccess);
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(*reentry.codes.lock().unwrap(), [SipCallFailure]);
    // Refused before any change: alice's registration is still the current one.
    let (rc, state) = registration_state(engine, "alice");
    assert_eq!(
        (rc, state),
        (SipSuccess, SIP_REGISTRATION_STATE::SipStateRegistered)
    );
    assert_eq!(registration_state(engine, "bob").0, SipRegisterNameUnknown);
    StopSipTelephony(engine);
    drop(reentry);
}

#[test]
fn stopping_the_engine_during_the_wait_ends_it() {
    let (_silent, port) = listening();
    let (engine, _events) = waiting_engine(1);
    let waiting = std::thread::spawn(move || {
        let mut enable = Enable::to_port(port, "alice");
        enable.timeout_ms = 30_000;
        timed(&enable, engine)
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    let (rc, took) = waiting.join().unwrap();
    assert_eq!(rc, SipInvalidHandle);
    assert!(took < Duration::from_secs(10), "{took:?}");
}
