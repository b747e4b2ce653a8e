//! `SipThreadCreationError`: a thread the library needs cannot start. A child process (this
//! test binary again) lowers its thread limit (`RLIMIT_NPROC`) to nothing and opens an
//! engine and a profile registry; both are refused with the code, and succeed once the
//! limit is back.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::ffi::profiles::*;
use std::process::Command;
use support::cstr;

const CHILD: &str = "LANSCAPE_SIP_THREAD_LIMIT_CHILD";
const TEST: &str = "thread_creation_failure_is_sip_thread_creation_error";

#[test]
fn thread_creation_failure_is_sip_thread_creation_error() {
    if std::env::var_os(CHILD).is_some() {
        return in_child();
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("child: every check passed"), "{text}");
}

fn nproc_limit() -> libc::rlimit {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live, writable rlimit.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NPROC, &mut limit) };
    assert_eq!(rc, 0);
    limit
}

fn set_nproc_limit(limit: libc::rlimit) {
    // SAFETY: `limit` is a live rlimit.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NPROC, &limit) };
    assert_eq!(rc, 0, "setrlimit: {}", std::io::Error::last_os_error());
}

fn in_child() {
    // The limit does not bind root (CAP_SYS_RESOURCE): as root, become nobody first.
    // SAFETY: plain system calls without pointers.
    unsafe {
        if libc::geteuid() == 0 {
            assert_eq!(libc::setgid(65534), 0, "setgid");
            assert_eq!(libc::setuid(65534), 0, "setuid");
        }
    }
    let normal = nproc_limit();
    set_nproc_limit(libc::rlimit {
        rlim_cur: 0,
        rlim_max: normal.rlim_max,
    });
    assert!(
        std::thread::Builder::new().spawn(|| ()).is_err(),
        "the limit must make thread creation fail"
    );

    let ip = cstr("127.0.0.1");
    let mut engine: SIPHANDLE = 0;
    // SAFETY: a live C string and out-pointer.
    let rc = unsafe { StartSipTelephony(std::ptr::null(), 1, 0, ip.as_ptr(), &mut engine) };
    assert_eq!(rc, SipThreadCreationError);
    assert_eq!(engine, 0, "no handle written");
    // SAFETY: the library returns a NUL-terminated string valid on this thread.
    let text = unsafe { std::ffi::CStr::from_ptr(lanscape_sip::ffi::GetLastSipErrorText()) };
    assert!(
        text.to_string_lossy().contains("cannot start a thread"),
        "{text:?}"
    );
    let mut registry: SIPREGISTRY = 0;
    // SAFETY: a live out-pointer; no callbacks.
    let rc = unsafe { SipRegistryOpen(None, None, std::ptr::null_mut(), &mut registry) };
    assert_eq!(rc, SipThreadCreationError);

    // Nothing is left half started: with the limit back, both work.
    set_nproc_limit(normal);
    // SAFETY: as above.
    let rc = unsafe { StartSipTelephony(std::ptr::null(), 1, 0, ip.as_ptr(), &mut engine) };
    assert_eq!(rc, SipSuccess);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    // SAFETY: as above.
    let rc = unsafe { SipRegistryOpen(None, None, std::ptr::null_mut(), &mut registry) };
    assert_eq!(rc, SipSuccess);
    assert_eq!(SipRegistryClose(registry), SipSuccess);
    println!("child: every check passed");
}
