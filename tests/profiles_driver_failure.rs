//! A failed I/O driver of the shared registration service is reported to the observers and
//! by later calls, and the next registry starts a working service again. One test: it owns
//! the process's service.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::profiles::SIP_PROFILE_STATE::{self, *};
use lanscape_sip::ffi::profiles::*;
use lanscape_sip::testkit::hooks::break_profile_service_driver;
use std::ffi::c_void;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Note {
    State(u32, SIP_PROFILE_STATE),
    Error(u32, TELEPHONY_RETURN_VALUE),
}

static NOTES: Mutex<Vec<Note>> = Mutex::new(Vec::new());

unsafe extern "C" fn on_state(_: SIPREGISTRY, id: u32, state: SIP_PROFILE_STATE, _: *mut c_void) {
    NOTES.lock().unwrap().push(Note::State(id, state));
}

unsafe extern "C" fn on_error(
    _: SIPREGISTRY,
    id: u32,
    error: TELEPHONY_RETURN_VALUE,
    _: *mut c_void,
) {
    NOTES.lock().unwrap().push(Note::Error(id, error));
}

fn wait_for(note: Note) -> bool {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if NOTES.lock().unwrap().contains(&note) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

fn enabled_profile(registry: SIPREGISTRY, registrar: &Registrar, user: &str) -> (u32, SIPPROFILE) {
    let target = format!("127.0.0.1:{}", registrar.port());
    let aor = format!("{user}@127.0.0.1");
    let id = create_profile(
        registry,
        &aor,
        &target,
        None,
        SIP_TRANSPORT::SipTransportUdp,
    );
    let mut profile = 0;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { SipProfileRetrieve(registry, id, &mut profile) },
        SipSuccess
    );
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(wait_for(Note::State(id, SipProfileRegistered)));
    (id, profile)
}

#[test]
fn a_failed_service_is_reported_and_the_next_registry_starts_a_new_one() {
    let registrar = Registrar::accepting();
    let mut registry = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let open = |registry: &mut SIPREGISTRY| unsafe {
        SipRegistryOpen(
            Some(on_state),
            Some(on_error),
            std::ptr::null_mut(),
            registry,
        )
    };
    assert_eq!(open(&mut registry), SipSuccess);
    let (id, profile) = enabled_profile(registry, &registrar, "dead");
    break_profile_service_driver();
    assert!(
        wait_for(Note::Error(id, SipInternalError)),
        "{:?}",
        NOTES.lock().unwrap()
    );
    assert!(wait_for(Note::State(id, SipProfileUnregistered)));
    assert_eq!(SipProfileDisable(profile), SipInternalError);
    assert_eq!(SipProfileEnable(profile), SipInternalError);
    let started = Instant::now();
    assert_eq!(SipRegistryClose(registry), SipSuccess);
    assert!(started.elapsed() < Duration::from_secs(2));

    // A new registry starts a working service.
    assert_eq!(open(&mut registry), SipSuccess);
    let (_, profile) = enabled_profile(registry, &registrar, "alive");
    assert_eq!(SipProfileDisable(profile), SipSuccess);
    assert_eq!(SipRegistryClose(registry), SipSuccess);
}
