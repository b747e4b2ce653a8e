//! The profile registry API through the C ABI, against the scripted registrar.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::profiles::SIP_PROFILE_STATE::{self, *};
use lanscape_sip::ffi::profiles::*;
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::*;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Note {
    State(u32, SIP_PROFILE_STATE),
    Error(u32, TELEPHONY_RETURN_VALUE),
}

#[derive(Default)]
struct Observer {
    notes: Mutex<Vec<Note>>,
    changed: Condvar,
}

impl Observer {
    fn push(&self, note: Note) {
        self.notes.lock().unwrap().push(note);
        self.changed.notify_all();
    }

    fn notes(&self) -> Vec<Note> {
        self.notes.lock().unwrap().clone()
    }

    fn wait_for(&self, note: &Note) -> bool {
        let deadline = Instant::now() + WAIT;
        let mut notes = self.notes.lock().unwrap();
        while !notes.contains(note) {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            notes = self.changed.wait_timeout(notes, deadline - now).unwrap().0;
        }
        true
    }
}

unsafe extern "C" fn on_state(
    _: SIPREGISTRY,
    id: u32,
    state: SIP_PROFILE_STATE,
    user: *mut c_void,
) {
    unsafe { &*(user as *const Observer) }.push(Note::State(id, state));
}

unsafe extern "C" fn on_error(
    _: SIPREGISTRY,
    id: u32,
    error: TELEPHONY_RETURN_VALUE,
    user: *mut c_void,
) {
    unsafe { &*(user as *const Observer) }.push(Note::Error(id, error));
}

fn open() -> (SIPREGISTRY, Arc<Observer>) {
    let observer = Arc::new(Observer::default());
    let mut registry = 0;
    let user = Arc::as_ptr(&observer) as *mut c_void;
    assert_eq!(
        unsafe { SipRegistryOpen(Some(on_state), Some(on_error), user, &mut registry) },
        SipSuccess
    );
    (registry, observer)
}

fn create(registry: SIPREGISTRY, registrar: &Registrar, user: &str, password: Option<&str>) -> u32 {
    let aor = cstr(&format!("{user}@127.0.0.1"));
    let target = cstr(&format!("127.0.0.1:{}", registrar.port()));
    let auth_user = cstr(user);
    let pass = password.map(cstr);
    let mut id = 0;
    let rc = unsafe {
        SipProfileCreate(
            registry,
            aor.as_ptr(),
            target.as_ptr(),
            std::ptr::null(),
            if pass.is_some() {
                auth_user.as_ptr()
            } else {
                std::ptr::null()
            },
            pass.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            300,
            SIP_TRANSPORT::SipTransportUdp as u32,
            &mut id,
        )
    };
    assert_eq!(rc, SipSuccess);
    id
}

fn retrieve(registry: SIPREGISTRY, id: u32) -> SIPPROFILE {
    let mut handle = 0;
    assert_eq!(
        unsafe { SipProfileRetrieve(registry, id, &mut handle) },
        SipSuccess
    );
    handle
}

fn state(handle: SIPPROFILE) -> SIP_PROFILE_STATE {
    let mut state = SipProfileUnregistering;
    assert_eq!(
        unsafe { SipProfileGetState(handle, &mut state) },
        SipSuccess
    );
    state
}

#[test]
fn enabling_registers_and_disabling_unregisters() {
    let registrar = Registrar::start(digest_script("MD5", "pw"));
    let (registry, observer) = open();
    let id = create(registry, &registrar, "p1", Some("pw"));
    let profile = retrieve(registry, id);
    assert_eq!(state(profile), SipProfileUnregistered);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert_eq!(observer.notes()[0], Note::State(id, SipProfileRegistering));
    assert_eq!(state(profile), SipProfileRegistered);
    assert_eq!(registrar.bindings("p1").len(), 1);

    assert_eq!(SipProfileDisable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileUnregistered)));
    assert_eq!(
        observer.notes(),
        [
            Note::State(id, SipProfileRegistering),
            Note::State(id, SipProfileRegistered),
            Note::State(id, SipProfileUnregistering),
            Note::State(id, SipProfileUnregistered),
        ]
    );
    assert!(registrar.bindings("p1").is_empty());
    assert_eq!(SipRegistryClose(registry), SipSuccess);
}

#[test]
fn enabling_an_already_registered_profile_sends_nothing_more() {
    let registrar = Registrar::accepting();
    let (first, first_observer) = open();
    let (second, second_observer) = open();
    let id = create(first, &registrar, "p2", None);
    let a = retrieve(first, id);
    let b = retrieve(second, id);
    assert_ne!(a, b, "each retrieval is a new handle");
    assert_eq!(SipProfileEnable(a), SipSuccess);
    assert!(first_observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert!(second_observer.wait_for(&Note::State(id, SipProfileRegistered)));
    let (before_first, before_second) =
        (first_observer.notes().len(), second_observer.notes().len());
    assert_eq!(SipProfileEnable(b), SipSuccess);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(first_observer.notes().len(), before_first);
    assert_eq!(second_observer.notes().len(), before_second);
    assert_eq!(registrar.registers().len(), 1);

    // Disabled through one handle, the other keeps it registered.
    assert_eq!(SipProfileDisable(a), SipSuccess);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(state(b), SipProfileRegistered);
    assert_eq!(registrar.bindings("p2").len(), 1);
    SipRegistryClose(first);
    SipRegistryClose(second);
}

#[test]
fn deleting_the_last_enabled_handle_unregisters() {
    let registrar = Registrar::accepting();
    let (registry, observer) = open();
    let id = create(registry, &registrar, "p3", None);
    let enabled = retrieve(registry, id);
    let watcher = retrieve(registry, id);
    assert_eq!(SipProfileEnable(enabled), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert_eq!(SipProfileRelease(enabled), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileUnregistered)));
    assert!(registrar.bindings("p3").is_empty());
    assert_eq!(state(watcher), SipProfileUnregistered);
    assert_eq!(
        SipProfileRelease(enabled),
        SipInvalidHandle,
        "released twice"
    );
    SipRegistryClose(registry);
}

#[test]
fn a_released_handle_stops_its_notifications() {
    let registrar = Registrar::accepting();
    let (owner, _owner_observer) = open();
    let (listener, observer) = open();
    let id = create(owner, &registrar, "p4", None);
    let enabled = retrieve(owner, id);
    let watched = retrieve(listener, id);
    assert_eq!(SipProfileEnable(enabled), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert_eq!(SipProfileRelease(watched), SipSuccess);
    let seen = observer.notes().len();
    assert_eq!(SipProfileDisable(enabled), SipSuccess);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(observer.notes().len(), seen, "{:?}", observer.notes());
    SipRegistryClose(owner);
    SipRegistryClose(listener);
}

#[test]
fn an_enabled_profile_in_use_cannot_be_removed() {
    let registrar = Registrar::accepting();
    let (registry, observer) = open();
    let id = create(registry, &registrar, "p5", None);
    let profile = retrieve(registry, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert_eq!(SipProfileRemove(registry, id), SipProfileInUse);
    assert_eq!(SipProfileDisable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileUnregistered)));
    assert!(registrar.bindings("p5").is_empty());
    assert_eq!(SipProfileRemove(registry, id), SipSuccess);
    let mut handle = 0;
    assert_eq!(
        unsafe { SipProfileRetrieve(registry, id, &mut handle) },
        SipProfileNotFound
    );
    assert_eq!(
        SipProfileEnable(profile),
        SipInvalidHandle,
        "handles of a removed profile die"
    );
    SipRegistryClose(registry);
}

#[test]
fn an_asynchronous_error_means_not_registered() {
    let registrar = Registrar::start(digest_script("SHA-256", "right"));
    let (registry, observer) = open();
    let id = create(registry, &registrar, "p6", Some("wrong"));
    let profile = retrieve(registry, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::Error(id, SipRegisterAuthorizationError)));
    assert!(observer.wait_for(&Note::State(id, SipProfileUnregistered)));
    assert_eq!(state(profile), SipProfileUnregistered);
    SipRegistryClose(registry);
}

#[test]
fn profile_settings_are_checked() {
    let registrar = Registrar::accepting();
    let (registry, _observer) = open();
    let try_create = |aor: &str, target: &str, expires: u32, transport: u32| {
        let (aor, target) = (cstr(aor), cstr(target));
        let mut id = 0;
        unsafe {
            SipProfileCreate(
                registry,
                aor.as_ptr(),
                target.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                expires,
                transport,
                &mut id,
            )
        }
    };
    let target = format!("127.0.0.1:{}", registrar.port());
    assert_eq!(
        try_create("a@127.0.0.1", &target, 300, 1),
        SipTransportNotSupported
    );
    assert_eq!(try_create("a@127.0.0.1", &target, 300, 9), SipBadParameter);
    assert_eq!(try_create("no-domain", &target, 300, 0), SipBadParameter);
    assert_eq!(
        try_create("a@127.0.0.1", "host:99999", 300, 0),
        SipBadParameter
    );
    assert_eq!(
        try_create("a@127.0.0.1", &target, 0, 0),
        SipRegisterIntervalError
    );
    let id = create(registry, &registrar, "p7", None);
    let aor = cstr("x@127.0.0.1");
    let mut out = 0;
    unsafe {
        assert_eq!(
            SipProfileCreate(
                registry,
                aor.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                std::ptr::null(),
                60,
                0,
                &mut out
            ),
            SipBadParameter
        );
        let mut handle = 0u64;
        assert_eq!(
            SipProfileRetrieve(registry, id, std::ptr::null_mut()),
            SipBadParameter
        );
        assert_eq!(
            SipProfileRetrieve(registry, 999_999, &mut handle),
            SipProfileNotFound
        );
    }
    SipRegistryClose(registry);
}

#[test]
fn stale_and_forged_registry_and_profile_handles() {
    let registrar = Registrar::accepting();
    let (registry, _observer) = open();
    let id = create(registry, &registrar, "p8", None);
    let profile = retrieve(registry, id);
    let (alive, _keep) = open(); // keeps the service up
    assert_eq!(SipRegistryClose(registry), SipSuccess);
    let mut out = 0;
    let mut st = SipProfileUnregistered;
    for h in [registry, 0, u64::MAX, 0xdead_beef_0000_0001] {
        assert_eq!(SipRegistryClose(h), SipInvalidHandle);
        assert_eq!(
            unsafe { SipProfileRetrieve(h, id, &mut out) },
            SipInvalidHandle
        );
        assert_eq!(SipProfileRemove(h, id), SipInvalidHandle);
    }
    for h in [profile, 0, u64::MAX, profile ^ (1 << 40)] {
        assert_eq!(SipProfileEnable(h), SipInvalidHandle);
        assert_eq!(SipProfileDisable(h), SipInvalidHandle);
        assert_eq!(SipProfileRelease(h), SipInvalidHandle);
        assert_eq!(unsafe { SipProfileGetState(h, &mut st) }, SipInvalidHandle);
    }
    SipRegistryClose(alive);
}
