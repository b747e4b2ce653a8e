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

    /// The notes about one profile.
    fn notes_of(&self, id: u32) -> Vec<Note> {
        self.notes()
            .into_iter()
            .filter(|n| matches!(n, Note::State(i, _) | Note::Error(i, _) if *i == id))
            .collect()
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
    // SAFETY: user_data is what this test registered; it outlives the registry.
    unsafe { &*(user as *const Observer) }.push(Note::State(id, state));
}

unsafe extern "C" fn on_error(
    _: SIPREGISTRY,
    id: u32,
    error: TELEPHONY_RETURN_VALUE,
    user: *mut c_void,
) {
    // SAFETY: user_data is what this test registered; it outlives the registry.
    unsafe { &*(user as *const Observer) }.push(Note::Error(id, error));
}

fn open() -> (SIPREGISTRY, Arc<Observer>) {
    let observer = Arc::new(Observer::default());
    let mut registry = 0;
    let user = Arc::as_ptr(&observer) as *mut c_void;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { SipRegistryOpen(Some(on_state), Some(on_error), user, &mut registry) },
        SipSuccess
    );
    (registry, observer)
}

fn create(registry: SIPREGISTRY, registrar: &Registrar, user: &str, password: Option<&str>) -> u32 {
    create_aor(registry, registrar, &format!("{user}@127.0.0.1"), password)
}

fn create_aor(
    registry: SIPREGISTRY,
    registrar: &Registrar,
    aor: &str,
    password: Option<&str>,
) -> u32 {
    let target = format!("127.0.0.1:{}", registrar.port());
    create_profile(
        registry,
        aor,
        &target,
        password,
        SIP_TRANSPORT::SipTransportUdp,
    )
}

fn retrieve(registry: SIPREGISTRY, id: u32) -> SIPPROFILE {
    let mut handle = 0;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { SipProfileRetrieve(registry, id, &mut handle) },
        SipSuccess
    );
    handle
}

/// Returns once every notification caused before the call has reached `observer`: a marker
/// profile of `registry` registers, and notifications arrive in order on one thread.
fn settle(registry: SIPREGISTRY, observer: &Observer, registrar: &Registrar) {
    static MARKERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = MARKERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let id = create(registry, registrar, &format!("marker{n}"), None);
    let handle = retrieve(registry, id);
    assert_eq!(SipProfileEnable(handle), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert_eq!(SipProfileRelease(handle), SipSuccess);
}

fn state(handle: SIPPROFILE) -> SIP_PROFILE_STATE {
    let mut state = SipProfileUnregistering;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
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
    let (before_first, before_second) = (
        first_observer.notes_of(id).len(),
        second_observer.notes_of(id).len(),
    );
    assert_eq!(SipProfileEnable(b), SipSuccess);
    settle(first, &first_observer, &registrar);
    assert_eq!(first_observer.notes_of(id).len(), before_first);
    assert_eq!(second_observer.notes_of(id).len(), before_second);
    let p2 = |r: &Registrar| r.registers().iter().filter(|q| q.to_user() == "p2").count();
    assert_eq!(p2(&registrar), 1);

    // Disabled through one handle, the other keeps it registered.
    assert_eq!(SipProfileDisable(a), SipSuccess);
    settle(first, &first_observer, &registrar);
    assert_eq!(state(b), SipProfileRegistered);
    assert_eq!(second_observer.notes_of(id).len(), before_second);
    assert_eq!(p2(&registrar), 1);
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
    let (owner, owner_observer) = open();
    let (listener, observer) = open();
    let id = create(owner, &registrar, "p4", None);
    let enabled = retrieve(owner, id);
    let watched = retrieve(listener, id);
    assert_eq!(SipProfileEnable(enabled), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    assert_eq!(SipProfileRelease(watched), SipSuccess);
    let seen = observer.notes_of(id).len();
    assert_eq!(SipProfileDisable(enabled), SipSuccess);
    assert!(owner_observer.wait_for(&Note::State(id, SipProfileUnregistered)));
    settle(listener, &observer, &registrar);
    assert_eq!(observer.notes_of(id).len(), seen, "{:?}", observer.notes());
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
        // SAFETY: C strings and out-pointers are live locals (or NULL).
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
        // SAFETY: C strings and out-pointers are live locals (or NULL).
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
    // TCP (1) and TLS (2) profiles are accepted; the transport must be a SIP_TRANSPORT.
    assert_eq!(try_create("a@127.0.0.1", &target, 300, 1), SipSuccess);
    assert_eq!(try_create("a@127.0.0.1", &target, 300, 2), SipSuccess);
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
    // SAFETY: C strings and out-pointers are live locals (or NULL).
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
            // SAFETY: C strings and out-pointers are live locals (or NULL).
            unsafe { SipProfileRetrieve(h, id, &mut out) },
            SipInvalidHandle
        );
        assert_eq!(SipProfileRemove(h, id), SipInvalidHandle);
        assert_eq!(SipRegistrySetCloseTimeout(h, 1000), SipInvalidHandle);
    }
    for bad in [0, 99, 600_001, u32::MAX] {
        assert_eq!(
            SipRegistrySetCloseTimeout(alive, bad),
            SipBadParameter,
            "{bad}"
        );
    }
    assert_eq!(SipRegistrySetCloseTimeout(alive, 4000), SipSuccess);
    for h in [profile, 0, u64::MAX, profile ^ (1 << 40)] {
        assert_eq!(SipProfileEnable(h), SipInvalidHandle);
        assert_eq!(SipProfileDisable(h), SipInvalidHandle);
        assert_eq!(SipProfileRelease(h), SipInvalidHandle);
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        assert_eq!(unsafe { SipProfileGetState(h, &mut st) }, SipInvalidHandle);
    }
    SipRegistryClose(alive);
}

#[test]
fn the_request_uri_names_the_domain_of_the_aor_not_the_registrar() {
    let registrar = Registrar::accepting();
    let (registry, observer) = open();
    let id = create_aor(registry, &registrar, "uri@example.org", None);
    let profile = retrieve(registry, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    let register = &registrar.registers()[0];
    assert_eq!(register.request_line(), "REGISTER sip:example.org SIP/2.0");
    assert_eq!(register.header("To").unwrap(), "<sip:uri@example.org>");
    SipRegistryClose(registry);
}

#[test]
fn forbidden_answering_the_profile_credentials_is_an_authorization_error() {
    let registrar = forbidding_registrar("right");
    let (registry, observer) = open();
    let id = create(registry, &registrar, "p9", Some("wrong"));
    let profile = retrieve(registry, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(
        observer.wait_for(&Note::Error(id, SipRegisterAuthorizationError)),
        "{:?}",
        observer.notes()
    );
    assert!(observer.wait_for(&Note::State(id, SipProfileUnregistered)));
    assert!(
        !observer
            .notes()
            .contains(&Note::Error(id, SipRegisterError))
    );
    assert_eq!(
        registrar.registers().len(),
        2,
        "refused credentials are not repeated"
    );
    SipRegistryClose(registry);
}

/// What the stress test's callbacks saw: the thread, the profile, the state notified and
/// the state `SipProfileGetState` gave inside the callback.
#[derive(Default)]
struct Ordered {
    /// Held by the test's threads around every enable and disable, and by the callback.
    app_lock: Mutex<()>,
    handles: Mutex<std::collections::HashMap<u32, SIPPROFILE>>,
    seen: Mutex<
        Vec<(
            std::thread::ThreadId,
            u32,
            SIP_PROFILE_STATE,
            SIP_PROFILE_STATE,
        )>,
    >,
    deadlocks: std::sync::atomic::AtomicUsize,
}

unsafe extern "C" fn on_state_ordered(
    _: SIPREGISTRY,
    id: u32,
    state: SIP_PROFILE_STATE,
    user: *mut c_void,
) {
    // SAFETY: user_data is what this test registered; it outlives the registry.
    let ordered = unsafe { &*(user as *const Ordered) };
    // A caller holding its own lock around SipProfileEnable must not deadlock here: were
    // this the caller's thread, the lock would never come (recorded, not hung on).
    let deadline = Instant::now() + Duration::from_secs(3);
    let _app = loop {
        match ordered.app_lock.try_lock() {
            Ok(guard) => break guard,
            Err(_) if Instant::now() < deadline => std::thread::yield_now(),
            Err(_) => {
                ordered
                    .deadlocks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return;
            }
        }
    };
    let handle = ordered.handles.lock().unwrap()[&id];
    let mut read = SipProfileRegistering;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    assert_eq!(unsafe { SipProfileGetState(handle, &mut read) }, SipSuccess);
    ordered
        .seen
        .lock()
        .unwrap()
        .push((std::thread::current().id(), id, state, read));
}

#[test]
fn enable_and_disable_under_concurrent_load_notify_in_order_on_the_event_thread() {
    const THREADS: usize = 4;
    const ROUNDS: usize = 20;
    let registrar = Registrar::accepting();
    let ordered = Arc::new(Ordered::default());
    let mut registry = 0;
    let user = Arc::as_ptr(&ordered) as *mut c_void;
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { SipRegistryOpen(Some(on_state_ordered), None, user, &mut registry) },
        SipSuccess
    );
    let mut ids = Vec::new();
    for t in 0..THREADS {
        let id = create(registry, &registrar, &format!("stress{t}"), None);
        let handle = retrieve(registry, id);
        ordered.handles.lock().unwrap().insert(id, handle);
        ids.push(id);
    }
    let callers: Vec<std::thread::ThreadId> = std::thread::scope(|scope| {
        let workers: Vec<_> = ids
            .iter()
            .map(|id| {
                let handle = ordered.handles.lock().unwrap()[id];
                let ordered = &ordered;
                scope.spawn(move || {
                    for round in 0..ROUNDS {
                        {
                            let _app = ordered.app_lock.lock().unwrap();
                            assert_eq!(SipProfileEnable(handle), SipSuccess);
                        }
                        if round % 3 == 0 {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        let _app = ordered.app_lock.lock().unwrap();
                        assert_eq!(SipProfileDisable(handle), SipSuccess);
                    }
                    std::thread::current().id()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    // Every profile ends unregistered, its last notification saying so.
    let last_is_unregistered = |id: u32| {
        let seen = ordered.seen.lock().unwrap();
        seen.iter().rev().find(|s| s.1 == id).map(|s| s.2) == Some(SipProfileUnregistered)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while !ids.iter().all(|id| last_is_unregistered(*id)) || !registrar_is_empty(&registrar) {
        assert!(Instant::now() < deadline, "never settled");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        ordered.deadlocks.load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let seen = ordered.seen.lock().unwrap().clone();
    let event_thread = seen[0].0;
    assert!(
        seen.iter().all(|s| s.0 == event_thread),
        "one thread delivers"
    );
    assert!(
        !callers.contains(&event_thread) && event_thread != std::thread::current().id(),
        "never a caller's thread"
    );
    for (_, id, notified, read) in &seen {
        assert_eq!(
            notified, read,
            "profile {id}: the state read in the callback"
        );
    }
    for id in &ids {
        let states: Vec<SIP_PROFILE_STATE> =
            seen.iter().filter(|s| s.1 == *id).map(|s| s.2).collect();
        let mut previous = SipProfileUnregistered;
        for state in &states {
            let allowed = match previous {
                SipProfileUnregistered => [SipProfileRegistering].as_slice(),
                SipProfileRegistering => &[
                    SipProfileRegistered,
                    SipProfileUnregistering,
                    SipProfileUnregistered,
                ],
                SipProfileRegistered => &[SipProfileUnregistering, SipProfileUnregistered],
                SipProfileUnregistering => &[SipProfileUnregistered, SipProfileRegistering],
            };
            assert!(
                allowed.contains(state),
                "profile {id}: {previous:?} then {state:?} in {states:?}"
            );
            previous = *state;
        }
        assert!(states.len() >= 4, "{states:?}");
        let handle = ordered.handles.lock().unwrap()[id];
        assert_eq!(state(handle), SipProfileUnregistered);
    }
    SipRegistryClose(registry);
}

fn registrar_is_empty(registrar: &Registrar) -> bool {
    (0..4).all(|t| registrar.bindings(&format!("stress{t}")).is_empty())
}

#[test]
fn profiles_register_over_tcp_and_over_tls() {
    use lanscape_sip::testkit::pki::TestPki;
    use lanscape_sip::testkit::registrar::Listen;
    // The registrar is an address: the certificate must match the AOR's domain.
    let pki = TestPki::new(&["tls.test"]);
    let (registry, observer) = open();
    for (user, listen, transport) in [
        ("tcp-p", Listen::Tcp, SIP_TRANSPORT::SipTransportTcp),
        (
            "tls-p",
            Listen::Tls(pki.server_config()),
            SIP_TRANSPORT::SipTransportTls,
        ),
    ] {
        let registrar = Registrar::start_on("127.0.0.1:0".parse().unwrap(), listen, |_, _| {
            Action::Register
        });
        let target = format!("127.0.0.1:{}", registrar.port());
        let id = create_profile(
            registry,
            &format!("{user}@tls.test"),
            &target,
            None,
            transport,
        );
        let null = std::ptr::null();
        if transport == SIP_TRANSPORT::SipTransportTls {
            let ca = cstr(&pki.ca_pem);
            assert_eq!(
                // SAFETY: C strings and out-pointers are live locals (or NULL).
                unsafe { SipProfileSetTls(registry, id, ca.as_ptr(), 0, null, null) },
                SipSuccess
            );
        }
        let profile = retrieve(registry, id);
        assert_eq!(SipProfileEnable(profile), SipSuccess);
        assert!(
            observer.wait_for(&Note::State(id, SipProfileRegistered)),
            "{transport:?}: {:?}",
            observer.notes()
        );
        let reg = &registrar.registers()[0];
        let param = if transport == SIP_TRANSPORT::SipTransportTls {
            "tls"
        } else {
            "tcp"
        };
        assert!(reg.contact_uri().ends_with(&format!(";transport={param}")));
        assert_eq!(SipProfileDisable(profile), SipSuccess);
        assert!(observer.wait_for(&Note::State(id, SipProfileUnregistered)));
        assert!(registrar.bindings(user).is_empty());
    }
    // A TLS profile whose CA is not trusted gets the TLS error.
    let registrar = Registrar::start_on(
        "127.0.0.1:0".parse().unwrap(),
        Listen::Tls(pki.server_config()),
        |_, _| Action::Register,
    );
    let target = format!("127.0.0.1:{}", registrar.port());
    let tls = SIP_TRANSPORT::SipTransportTls;
    let id = create_profile(registry, "untrusting@tls.test", &target, None, tls);
    let null = std::ptr::null();
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    unsafe {
        assert_eq!(
            SipProfileSetTls(registry, id, null, 0, null, null),
            SipSuccess
        );
        let bad = cstr("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n");
        assert_eq!(
            SipProfileSetTls(registry, id, bad.as_ptr(), 1, null, null),
            SipTlsError
        );
    }
    let profile = retrieve(registry, id);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(
        observer.wait_for(&Note::Error(id, SipTlsError)),
        "{:?}",
        observer.notes()
    );
    assert_eq!(SipProfileDisable(profile), SipSuccess);
    SipRegistryClose(registry);
}

#[test]
fn a_profile_has_the_info_query_and_outbound_settings() {
    use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_INFO;
    use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_STATE::*;
    use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_TEXT::*;
    let registrar = Registrar::accepting();
    let (registry, observer) = open();
    let id = create(registry, &registrar, "infoq", None);
    let urn = cstr("urn:uuid:0b5e4d3c-2a19-4f08-9e7d-6c5b4a392817");
    // SAFETY: a live C string.
    let rc = unsafe { SipProfileSetOutbound(registry, id, 1, urn.as_ptr()) };
    assert_eq!(rc, SipSuccess);
    let bad = cstr("not a urn");
    // SAFETY: a live C string.
    let rc = unsafe { SipProfileSetOutbound(registry, id, 1, bad.as_ptr()) };
    assert_eq!(rc, SipBadParameter);
    let profile = retrieve(registry, id);
    let mut info = SIP_REGISTRATION_INFO {
        state: SipStateUnregistered,
        last_status: 0,
        granted_expires: 0,
        seconds_until_refresh: 0,
        transport: 0,
        target_port: 0,
        consecutive_failures: 0,
        outbound: 0,
        flow_timer: 0,
    };
    // SAFETY: a live out-pointer.
    let rc = unsafe { SipProfileGetInfo(profile, &mut info) };
    assert_eq!(
        rc, SipRegisterNameUnknown,
        "not enabled: no registration yet"
    );
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    assert!(observer.wait_for(&Note::State(id, SipProfileRegistered)));
    // SAFETY: a live out-pointer.
    let rc = unsafe { SipProfileGetInfo(profile, &mut info) };
    assert_eq!(rc, SipSuccess);
    assert_eq!((info.state, info.last_status), (SipStateRegistered, 200));
    assert_eq!(info.target_port, registrar.port());
    let mut buffer = [0 as std::ffi::c_char; 256];
    let mut required = 0;
    // SAFETY: `buffer` is writable for 256 bytes.
    let rc = unsafe {
        SipProfileGetInfoText(
            profile,
            SipTextContact as u32,
            buffer.as_mut_ptr(),
            256,
            &mut required,
        )
    };
    assert_eq!(rc, SipSuccess);
    // SAFETY: the library wrote a NUL-terminated string.
    let contact = unsafe { std::ffi::CStr::from_ptr(buffer.as_ptr()) }.to_string_lossy();
    assert!(
        contact.starts_with("sip:infoq@127.0.0.1:") && contact.ends_with(";ob"),
        "{contact}"
    );
    let reg = &registrar.registers()[0];
    assert!(
        reg.header("Contact")
            .unwrap()
            .contains("+sip.instance=\"<urn:uuid:0b5e4d3c-2a19-4f08-9e7d-6c5b4a392817>\";reg-id=1"),
        "{}",
        reg.text
    );
    assert_eq!(SipProfileRelease(profile), SipSuccess);
    assert_eq!(SipRegistryClose(registry), SipSuccess);
}
