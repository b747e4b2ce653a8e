//! One registration service for every registry: started by the first open, stopped with
//! its threads joined and its profiles unregistered by the last close. Each test owns the
//! process's service: they run one at a time.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::profiles::*;
use lanscape_sip::testkit::hooks;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

/// Held by each test: the registries of one must not keep the other's service alive.
static ALONE: Mutex<()> = Mutex::new(());

#[test]
fn first_open_starts_the_service_and_last_close_stops_it() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let registrar = Registrar::accepting();
    for round in 0..2 {
        assert!(
            !hooks::profile_service_running() && !hooks::io_service_running(),
            "round {round}"
        );
        let left = threads_left_after_join();
        assert!(left.is_empty(), "{left:?}");
        let (mut a, mut b) = (0, 0);
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe {
            assert_eq!(
                SipRegistryOpen(None, None, std::ptr::null_mut(), &mut a),
                SipSuccess
            );
            assert_eq!(
                SipRegistryOpen(None, None, std::ptr::null_mut(), &mut b),
                SipSuccess
            );
        }
        assert!(hooks::profile_service_running());
        let target = format!("127.0.0.1:{}", registrar.port());
        let udp = SIP_TRANSPORT::SipTransportUdp;
        let id = create_profile(a, "life@127.0.0.1", &target, None, udp);
        let mut profile = 0;
        assert_eq!(
            // SAFETY: C strings and out-pointers are live locals (or NULL).
            unsafe { SipProfileRetrieve(b, id, &mut profile) },
            SipSuccess
        );
        assert_eq!(SipProfileEnable(profile), SipSuccess);
        assert!(registrar.wait_for(WAIT, |_| !registrar_has_none(&registrar)));
        assert_eq!(SipRegistryClose(a), SipSuccess);
        assert!(hooks::profile_service_running(), "b is still open");
        assert_eq!(SipRegistryClose(b), SipSuccess);
        assert!(!hooks::profile_service_running() && !hooks::io_service_running());
        let left = threads_left_after_join();
        assert!(left.is_empty(), "{left:?}");
        assert!(
            registrar_has_none(&registrar),
            "unregistered by the last close"
        );
    }
}

fn registrar_has_none(registrar: &Registrar) -> bool {
    registrar.bindings("life").is_empty()
}

/// The last close waits for unregistrations with no lock held; a registry opened meanwhile
/// starts a new service, and what the old one does while it stops must not touch the new
/// one's profiles (it once cleared them when its wait ended: they stayed registered at
/// the registrar while their state said unregistered, and could not be disabled).
#[test]
fn a_registry_opened_while_the_last_one_closes_keeps_its_profiles() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    // The old profile's unregistration is never answered: the close waits its full 4 s.
    let slow = Registrar::start(|req, _| match req.expires() {
        Some(0) => Action::Ignore,
        _ => Action::Register,
    });
    let fresh = Registrar::accepting();
    let udp = SIP_TRANSPORT::SipTransportUdp;
    let old = open_registry();
    let target = format!("127.0.0.1:{}", slow.port());
    let id = create_profile(old, "old@127.0.0.1", &target, None, udp);
    let profile = retrieve(old, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(until(|| !slow.bindings("old").is_empty()));

    let started = Instant::now();
    let closing = std::thread::spawn(move || SipRegistryClose(old));
    while hooks::profile_service_running() {
        assert!(started.elapsed() < WAIT, "the close never took the service");
        std::thread::sleep(Duration::from_millis(5));
    }
    let new = open_registry();
    let target = format!("127.0.0.1:{}", fresh.port());
    let id = create_profile(new, "new@127.0.0.1", &target, None, udp);
    let profile = retrieve(new, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(until(|| !fresh.bindings("new").is_empty()));
    assert_eq!(closing.join().unwrap(), SipSuccess);
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "the old service stopped while the new profile registered"
    );

    let registered = SIP_PROFILE_STATE::SipProfileRegistered;
    assert!(
        until(|| profile_state(profile) == registered),
        "{:?}",
        profile_state(profile)
    );
    assert_eq!(SipProfileDisable(profile), SipSuccess);
    assert!(
        until(|| fresh.bindings("new").is_empty()),
        "disabling unregisters the new profile"
    );
    assert_eq!(SipRegistryClose(new), SipSuccess);
}

fn open_registry() -> SIPREGISTRY {
    let mut registry = 0;
    assert_eq!(
        // SAFETY: a live out-pointer; no callbacks.
        unsafe { SipRegistryOpen(None, None, std::ptr::null_mut(), &mut registry) },
        SipSuccess
    );
    registry
}

fn retrieve(registry: SIPREGISTRY, id: u32) -> SIPPROFILE {
    let mut profile = 0;
    // SAFETY: a live out-pointer.
    let rc = unsafe { SipProfileRetrieve(registry, id, &mut profile) };
    assert_eq!(rc, SipSuccess);
    profile
}

fn profile_state(profile: SIPPROFILE) -> SIP_PROFILE_STATE {
    let mut state = SIP_PROFILE_STATE::SipProfileUnregistering;
    // SAFETY: a live out-pointer.
    let rc = unsafe { SipProfileGetState(profile, &mut state) };
    assert_eq!(rc, SipSuccess);
    state
}

/// Whether `cond` holds within `WAIT`.
fn until(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    cond()
}
