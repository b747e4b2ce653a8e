//! Demo: registers three names through the C ABI against an embedded loopback registrar
//! (digest auth, SHA-256), shows a refresh, then unregisters.
//!
//! `cargo run --example demo` uses the embedded registrar.
//! `cargo run --example demo -- HOST[:PORT] NAMES [REALM USER PASSWORD]` registers against a
//! real registrar instead.

use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::ffi::{GetLastSipErrorText, TELEPHONY_RETURN_VALUE, TelephonyReturnValueText};
use lanscape_sip::testkit::registrar::{Registrar, digest_script};
use std::ffi::{CStr, CString, c_char, c_void};
use std::time::{Duration, Instant};

unsafe extern "C" fn on_notification(
    _engine: SIPHANDLE,
    event: TELEPHONY_RETURN_VALUE,
    name: *const c_char,
    line: i32,
    _user: *mut c_void,
) {
    // SAFETY: the library passes NUL-terminated strings, valid during the callback.
    let text = unsafe { CStr::from_ptr(TelephonyReturnValueText(event as i32)) };
    // SAFETY: the library passes NUL-terminated strings, valid during the callback.
    let name = unsafe { CStr::from_ptr(name) };
    println!(
        "  event: {:<30} name={:<6} line={line}",
        text.to_string_lossy(),
        name.to_string_lossy()
    );
}

unsafe extern "C" fn on_log(
    _engine: SIPHANDLE,
    level: i32,
    message: *const c_char,
    _user: *mut c_void,
) {
    if level <= 2 {
        println!(
            "  log[{level}]: {}",
            // SAFETY: the library passes NUL-terminated strings, valid during the callback.
            unsafe { CStr::from_ptr(message) }.to_string_lossy()
        );
    }
}

fn check(what: &str, rc: TELEPHONY_RETURN_VALUE) {
    if rc != TELEPHONY_RETURN_VALUE::SipSuccess {
        // SAFETY: the last-error text is NUL-terminated, valid until the next call.
        let detail = unsafe { CStr::from_ptr(GetLastSipErrorText()) };
        eprintln!("{what} failed: {rc:?} ({})", detail.to_string_lossy());
        std::process::exit(1);
    }
}

fn c(s: &str) -> CString {
    CString::new(s).expect("no NUL in arguments")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let embedded = args
        .is_empty()
        .then(|| Registrar::start(digest_script("SHA-256", "demo-password")));
    let (server, port, names, credentials) = match &embedded {
        Some(r) => {
            println!(
                "embedded registrar listening on {} (digest SHA-256)",
                r.addr
            );
            let creds = Some((
                "test.realm".to_string(),
                "demo".to_string(),
                "demo-password".to_string(),
            ));
            (
                "127.0.0.1".to_string(),
                r.port(),
                "alice, bob, carol".to_string(),
                creds,
            )
        }
        None => {
            let (host, port) = match args[0].rsplit_once(':') {
                Some((h, p)) if !h.ends_with(':') => (h.to_string(), p.parse().unwrap_or(5060)),
                _ => (args[0].clone(), 5060),
            };
            let names = args.get(1).cloned().unwrap_or_else(|| "demo".into());
            let creds =
                (args.len() >= 5).then(|| (args[2].clone(), args[3].clone(), args[4].clone()));
            (host, port, names, creds)
        }
    };

    let mut engine: SIPHANDLE = 0;
    let (phone, any) = (c("lanscape demo"), std::ptr::null());
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    check("StartSipTelephony", unsafe {
        StartSipTelephony(phone.as_ptr(), 3, 0, any, &mut engine)
    });
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    check("SetNotificationCallback", unsafe {
        SetNotificationCallback(engine, Some(on_notification), std::ptr::null_mut())
    });
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    check("SetLogCallback", unsafe {
        SetLogCallback(engine, Some(on_log), std::ptr::null_mut())
    });
    if let Some((realm, user, password)) = &credentials {
        let (realm, user, password) = (c(realm), c(user), c(password));
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        check("AddAuthorizationCredentials", unsafe {
            AddAuthorizationCredentials(engine, user.as_ptr(), password.as_ptr(), realm.as_ptr())
        });
    }
    let interval = if embedded.is_some() { 2 } else { 60 };
    println!("registering {names:?} with {server}:{port}, refresh every {interval} s");
    let (names_c, server_c) = (c(&names), c(&server));
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    check("EnableSipRegisterServer", unsafe {
        EnableSipRegisterServer(
            engine,
            names_c.as_ptr(),
            0,
            0,
            server_c.as_ptr(),
            port,
            interval,
            3600,
            5000,
            1,
        )
    });

    std::thread::sleep(Duration::from_secs(5));
    if let Some(registrar) = &embedded {
        let registers = registrar.registers();
        println!(
            "the registrar saw {} REGISTER requests (challenges, answers, refreshes); it holds:",
            registers.len()
        );
        for name in ["alice", "bob", "carol"] {
            for (contact, expires) in registrar.bindings(name) {
                println!("  {name:<6} -> {contact} (expires {expires} s)");
            }
        }
    }
    println!("unregistering");
    let started = Instant::now();
    check("StopSipTelephony", StopSipTelephony(engine));
    println!("stopped in {} ms", started.elapsed().as_millis());
    if let Some(registrar) = &embedded {
        let left: usize = ["alice", "bob", "carol"]
            .iter()
            .map(|n| registrar.bindings(n).len())
            .sum();
        println!("bindings left at the registrar: {left}");
        if left != 0 {
            std::process::exit(1);
        }
    }
}
