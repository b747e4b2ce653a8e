//! Test support: the recorder of C callbacks and helpers to drive the C ABI.

#![allow(dead_code)]

pub mod dnsmasq;
pub mod kamailio;
pub mod native;
pub mod netns;
pub mod sipp;

pub use lanscape_sip::testkit::registrar::*;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE;
use lanscape_sip::ffi::lanscape::*;
use std::ffi::{CStr, CString, c_char, c_void};
use std::net::UdpSocket;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Resident memory of this process, bytes (Linux, 4 KiB pages).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// One notification received by the C callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub code: TELEPHONY_RETURN_VALUE,
    pub name: String,
    pub line: i32,
    /// `GetLastSipErrorText` in the callback: why, for a failure.
    pub reason: String,
}

/// Collects notifications; pass `as_user_data()` with [`record`] as the callback.
#[derive(Default)]
pub struct Recorder {
    pub events: Mutex<Vec<Event>>,
    changed: Condvar,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder::default())
    }

    pub fn as_user_data(self: &Arc<Self>) -> *mut c_void {
        Arc::as_ptr(self) as *mut c_void
    }

    pub fn events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }

    pub fn count(&self, code: TELEPHONY_RETURN_VALUE) -> usize {
        self.events().iter().filter(|e| e.code == code).count()
    }

    /// Waits until `n` events with `code` arrived.
    pub fn wait_for(&self, code: TELEPHONY_RETURN_VALUE, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut events = self.events.lock().unwrap();
        loop {
            if events.iter().filter(|e| e.code == code).count() >= n {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            events = self.changed.wait_timeout(events, deadline - now).unwrap().0;
        }
    }
}

/// The C callback that feeds a [`Recorder`].
pub unsafe extern "C" fn record(
    _engine: SIPHANDLE,
    event: TELEPHONY_RETURN_VALUE,
    name: *const c_char,
    line: i32,
    user: *mut c_void,
) {
    // SAFETY: user_data is what this test registered; it outlives the engine.
    let recorder = unsafe { &*(user as *const Recorder) };
    // SAFETY: the library passes NUL-terminated strings, valid during the callback.
    let name = unsafe { CStr::from_ptr(name) }
        .to_string_lossy()
        .to_string();
    // SAFETY: a NUL-terminated string the library keeps until the next call on this thread.
    let reason = unsafe { CStr::from_ptr(lanscape_sip::ffi::GetLastSipErrorText()) }
        .to_string_lossy()
        .to_string();
    recorder.events.lock().unwrap().push(Event {
        code: event,
        name,
        line,
        reason,
    });
    recorder.changed.notify_all();
}

pub fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Starts an engine on 127.0.0.1 with `lines` lines and a recorder attached.
pub fn engine(lines: u32) -> (SIPHANDLE, Arc<Recorder>) {
    let mut handle: SIPHANDLE = 0;
    let ip = cstr("127.0.0.1");
    let name = cstr("test phone");
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe { StartSipTelephony(name.as_ptr(), lines, 0, ip.as_ptr(), &mut handle) };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    let recorder = Recorder::new();
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe { SetNotificationCallback(handle, Some(record), recorder.as_user_data()) };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    (handle, recorder)
}

/// Parameters of `EnableSipRegisterServer`, with test-friendly defaults.
pub struct Enable {
    pub names: &'static str,
    pub per_line: bool,
    pub through_proxy: bool,
    pub server: String,
    pub port: u32,
    pub interval: u32,
    pub expires: u32,
    pub timeout_ms: u32,
    pub nat: bool,
}

impl Enable {
    pub fn to(registrar: &Registrar, names: &'static str) -> Enable {
        Enable::to_port(registrar.port(), names)
    }

    /// To a registrar at 127.0.0.1:`port`: interval 60 s, expiry 3600 s, 2 s timeout.
    pub fn to_port(port: u32, names: &'static str) -> Enable {
        Enable {
            names,
            per_line: false,
            through_proxy: false,
            server: "127.0.0.1".into(),
            port,
            interval: 60,
            expires: 3600,
            timeout_ms: 2000,
            nat: false,
        }
    }

    pub fn call(&self, engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
        let names = cstr(self.names);
        let server = cstr(&self.server);
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe {
            EnableSipRegisterServer(
                engine,
                names.as_ptr(),
                self.per_line as i32,
                self.through_proxy as i32,
                server.as_ptr(),
                self.port,
                self.interval,
                self.expires,
                self.timeout_ms,
                self.nat as i32,
            )
        }
    }
}

pub const WAIT: Duration = Duration::from_secs(5);

/// Diagnostics captured from an engine's log callback: (level, message).
#[derive(Default)]
pub struct Logs(Mutex<Vec<(i32, String)>>);

impl Logs {
    /// Attaches a capture to `engine` (optionally with the SIP trace on).
    pub fn capture(engine: SIPHANDLE, trace: bool) -> Arc<Logs> {
        let logs = Arc::new(Logs::default());
        let user = Arc::as_ptr(&logs) as *mut c_void;
        assert_eq!(
            // SAFETY: C strings and out-pointers are live locals (or NULL).
            unsafe { SetLogCallback(engine, Some(Self::callback), user) },
            TELEPHONY_RETURN_VALUE::SipSuccess
        );
        assert_eq!(
            EnableSipTrace(engine, trace as i32),
            TELEPHONY_RETURN_VALUE::SipSuccess
        );
        logs
    }

    unsafe extern "C" fn callback(_: SIPHANDLE, level: i32, msg: *const c_char, user: *mut c_void) {
        // SAFETY: user_data is what this test registered; it outlives the engine.
        let logs = unsafe { &*(user as *const Logs) };
        // SAFETY: the library passes NUL-terminated strings, valid during the callback.
        let text = unsafe { CStr::from_ptr(msg) }.to_string_lossy().to_string();
        logs.0.lock().unwrap().push((level, text));
    }

    /// Everything captured so far.
    pub fn all(&self) -> Vec<(i32, String)> {
        self.0.lock().unwrap().clone()
    }

    /// Whether any message contains `text`.
    pub fn contains(&self, text: &str) -> bool {
        self.all().iter().any(|(_, m)| m.contains(text))
    }
}

/// A UDP socket on 127.0.0.1 that nobody answers from (reads time out after 3 s), and its
/// port: a silent registrar, or a destination to watch.
pub fn listening() -> (UdpSocket, u32) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = u32::from(socket.local_addr().unwrap().port());
    (socket, port)
}

/// A UDP port that was free a moment ago.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The library's threads left after it joined them: a joined thread can stay listed in
/// /proc for a moment after `pthread_join` returns (the kernel wakes the joiner before it
/// removes the task), so this waits up to a second for the list to drain.
pub fn threads_left_after_join() -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let left = library_threads();
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Threads of this process whose name the library gave them.
pub fn library_threads() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .filter(|n| n.starts_with("lanscape-sip"))
        .collect()
}

/// The engine's SIP UDP port (asserting `GetLocalSipPort` succeeds).
pub fn local_port(engine: SIPHANDLE) -> u32 {
    let mut port = 0;
    // SAFETY: the out-pointer is a live local.
    let rc = unsafe { GetLocalSipPort(engine, &mut port) };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    port
}

/// `GetSipRegistrationState` for `name`: its code, and the state written (left at
/// `SipStateUnregistering`, which no test expects, when nothing was written).
pub fn registration_state(
    engine: SIPHANDLE,
    name: &str,
) -> (TELEPHONY_RETURN_VALUE, SIP_REGISTRATION_STATE) {
    let name = cstr(name);
    let mut state = SIP_REGISTRATION_STATE::SipStateUnregistering;
    // SAFETY: a C string and an out-pointer, both live locals.
    let rc = unsafe { GetSipRegistrationState(engine, name.as_ptr(), &mut state) };
    (rc, state)
}

/// Adds digest credentials to `engine`, asserting the call succeeds.
pub fn credentials(engine: SIPHANDLE, realm: &str, user: &str, password: &str) {
    let (realm, user, password) = (cstr(realm), cstr(user), cstr(password));
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe {
        AddAuthorizationCredentials(engine, user.as_ptr(), password.as_ptr(), realm.as_ptr())
    };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
}

/// A registrar that answers a digest response it does not accept with 403 Forbidden
/// instead of a new challenge, as many do.
pub fn forbidding_registrar(password: &'static str) -> Registrar {
    let mut digest = digest_script("MD5", password);
    Registrar::start(move |req, st| match req.authorization() {
        Some(auth) if !digest_valid(&auth, password, &digest_params(&auth)["nonce"]) => {
            Action::Reply(vec![(403, vec![])])
        }
        _ => digest(req, st),
    })
}

/// Chooses the transport of `engine`'s registrations (`SetSipRegisterTransport`).
pub fn transport(engine: SIPHANDLE, transport: lanscape_sip::ffi::profiles::SIP_TRANSPORT) {
    assert_eq!(
        SetSipRegisterTransport(engine, transport as u32, 0),
        TELEPHONY_RETURN_VALUE::SipSuccess
    );
}

/// Makes `engine` trust only `ca_pem` for TLS.
pub fn trust_only(engine: SIPHANDLE, ca_pem: &str) {
    let pem = cstr(ca_pem);
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { AddSipTlsTrustedCertificates(engine, pem.as_ptr()) },
        TELEPHONY_RETURN_VALUE::SipSuccess
    );
    assert_eq!(
        EnableSipTlsSystemTrust(engine, 0),
        TELEPHONY_RETURN_VALUE::SipSuccess
    );
}

/// Sets the SIP domain of `engine` (`EnableSipDomain`).
pub fn domain(engine: SIPHANDLE, name: &str) {
    let name = cstr(name);
    assert_eq!(
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe { EnableSipDomain(engine, name.as_ptr()) },
        TELEPHONY_RETURN_VALUE::SipSuccess
    );
}

/// Starts an engine on `ip` (IPv4 or IPv6) with a recorder attached.
pub fn engine_on(ip: &str) -> (SIPHANDLE, Arc<Recorder>) {
    let mut handle: SIPHANDLE = 0;
    let ip = cstr(ip);
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe { StartSipTelephony(std::ptr::null(), 1, 0, ip.as_ptr(), &mut handle) };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    let recorder = Recorder::new();
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe { SetNotificationCallback(handle, Some(record), recorder.as_user_data()) };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    (handle, recorder)
}

/// `SipProfileCreate` without an outbound proxy, expiring after 300 s: `password` makes the
/// AOR's user the auth user. Asserts success and returns the new profile's id.
pub fn create_profile(
    registry: u64,
    aor: &str,
    registrar: &str,
    password: Option<&str>,
    transport: lanscape_sip::ffi::profiles::SIP_TRANSPORT,
) -> u32 {
    use lanscape_sip::ffi::profiles::SipProfileCreate;
    let user = cstr(aor.split('@').next().unwrap_or_default());
    let (aor, registrar) = (cstr(aor), cstr(registrar));
    let password = password.map(cstr);
    let null = std::ptr::null();
    let (auth_user, password) = match &password {
        Some(p) => (user.as_ptr(), p.as_ptr()),
        None => (null, null),
    };
    let mut id = 0;
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe {
        SipProfileCreate(
            registry,
            aor.as_ptr(),
            registrar.as_ptr(),
            null,
            auth_user,
            password,
            300,
            transport as u32,
            &mut id,
        )
    };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    id
}

/// `GetSipRegistrationInfo` for `name`: the code and what it wrote (999 in every field it
/// did not).
pub fn registration_info(
    engine: SIPHANDLE,
    name: &str,
) -> (TELEPHONY_RETURN_VALUE, SIP_REGISTRATION_INFO) {
    let name = cstr(name);
    let mut info = SIP_REGISTRATION_INFO {
        state: SIP_REGISTRATION_STATE::SipStateUnregistered,
        last_status: 999,
        granted_expires: 999,
        seconds_until_refresh: 999,
        transport: 999,
        target_port: 999,
        consecutive_failures: 999,
        outbound: 999,
        flow_timer: 999,
    };
    // SAFETY: a live C string and out-pointer.
    let rc = unsafe { GetSipRegistrationInfo(engine, name.as_ptr(), &mut info) };
    (rc, info)
}

/// `GetSipRegistrationText` for `name`, the C way: the length first (NULL buffer), then the
/// text into a buffer of exactly that size.
pub fn registration_text(engine: SIPHANDLE, name: &str, which: SIP_REGISTRATION_TEXT) -> String {
    let name = cstr(name);
    let mut required = 0u32;
    // SAFETY: a live C string; NULL with 0 asks for the length only.
    let rc = unsafe {
        GetSipRegistrationText(
            engine,
            name.as_ptr(),
            which as u32,
            std::ptr::null_mut(),
            0,
            &mut required,
        )
    };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipBufferTooSmall);
    let mut buffer = vec![0x55 as c_char; required as usize];
    let mut again = 0u32;
    // SAFETY: `buffer` is writable for `required` bytes.
    let rc = unsafe {
        GetSipRegistrationText(
            engine,
            name.as_ptr(),
            which as u32,
            buffer.as_mut_ptr(),
            required,
            &mut again,
        )
    };
    assert_eq!((rc, again), (TELEPHONY_RETURN_VALUE::SipSuccess, required));
    // SAFETY: the library wrote a NUL-terminated string into `buffer`.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// `GetSipInstanceId`.
pub fn instance_id(engine: SIPHANDLE) -> String {
    let mut buffer = [0 as c_char; 128];
    let mut required = 0;
    // SAFETY: `buffer` is writable for 128 bytes.
    let rc = unsafe { GetSipInstanceId(engine, buffer.as_mut_ptr(), 128, &mut required) };
    assert_eq!(rc, TELEPHONY_RETURN_VALUE::SipSuccess);
    // SAFETY: the library wrote a NUL-terminated string.
    unsafe { CStr::from_ptr(buffer.as_ptr()) }
        .to_string_lossy()
        .into_owned()
}

/// `SetSipInstanceId`.
pub fn set_instance_id(engine: SIPHANDLE, urn: &str) -> TELEPHONY_RETURN_VALUE {
    let urn = cstr(urn);
    // SAFETY: a live C string.
    unsafe { SetSipInstanceId(engine, urn.as_ptr()) }
}
