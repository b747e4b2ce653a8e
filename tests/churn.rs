//! Engines and registries created and destroyed in a loop leave nothing behind: resident
//! memory stays flat (the fuzz target `ffi_strings` does this millions of times; its
//! memory must come from bounded global state, not a leak).

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::ffi::profiles::*;
use std::time::Instant;
use support::*;

fn resident_kib() -> u64 {
    resident_bytes() / 1024
}

fn cycle(ip: &std::ffi::CStr, name: &std::ffi::CStr) {
    let mut engine = 0;
    // SAFETY: C strings and out-pointers are live locals.
    let rc = unsafe { StartSipTelephony(name.as_ptr(), 2, 0, ip.as_ptr(), &mut engine) };
    assert_eq!(rc, SipSuccess);
    let domain = cstr("churn.example");
    // SAFETY: a live C string.
    let rc = unsafe { EnableSipDomain(engine, domain.as_ptr()) };
    assert_eq!(rc, SipSuccess);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    let mut registry = 0;
    // SAFETY: an out-pointer, a live local.
    let rc = unsafe { SipRegistryOpen(None, None, std::ptr::null_mut(), &mut registry) };
    assert_eq!(rc, SipSuccess);
    assert_eq!(SipRegistryClose(registry), SipSuccess);
}

#[test]
fn creating_and_destroying_engines_and_registries_keeps_memory_flat() {
    let ip = cstr("127.0.0.1");
    let name = cstr("churn");
    let started = Instant::now();
    for _ in 0..300 {
        cycle(&ip, &name);
    }
    let warm = resident_kib();
    let n: u32 = std::env::var("CHURN_CYCLES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(5000);
    for _ in 0..n {
        cycle(&ip, &name);
    }
    let after = resident_kib();
    let per_cycle = started.elapsed() / (n + 300);
    println!(
        "resident {warm} KiB after 300 cycles, {after} KiB after {} ({per_cycle:?} each)",
        n + 300
    );
    assert!(
        after <= warm + 2048,
        "resident memory grew from {warm} KiB to {after} KiB over {n} cycles"
    );
}
