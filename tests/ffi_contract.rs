//! The C ABI's contract: immediate refusals and their codes, NULL pointers, ranges and
//! bad UTF-8, stale and forged handles, callbacks that call back in (even to stop their
//! engine), state reads inside a notification, diagnostics without secrets, and a failed
//! I/O driver.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use std::ffi::c_void;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::*;

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
            AddAuthorizationCredentials(engine, s.as_ptr(), std::ptr::null(), std::ptr::null()),
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
        let codes: [TELEPHONY_RETURN_VALUE; 19] = unsafe {
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
                EnableKeepAliveTransmissionsEx(h, 1, 0, 10),
                SendSipKeepAliveEx(h, s.as_ptr(), 0, 0, -1),
                EnableSipRegisterWaitMode(h, 1),
                EnableSipSharedChallenges(h, 1),
                SetSipUnregisterTimeout(h, 1000),
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
    assert_eq!(registration_state(engine, "alice").0, SipInternalError);
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
