//! Stopping under loss: the unregistrations retransmit within the bound the application
//! chose, and what the registrar did not confirm is named in the log.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn stop_at_half_loss_removes_nearly_every_binding_within_the_chosen_bound() {
    const NAMES: usize = 1000;
    let lossy = Arc::new(AtomicBool::new(false));
    let lossy_script = lossy.clone();
    let mut seen: u64 = 0;
    let registrar = Registrar::start(move |_, _| {
        seen += 1;
        let draw = seen.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        if lossy_script.load(Ordering::Relaxed) && draw.is_multiple_of(2) {
            Action::Ignore // lost on the way
        } else {
            Action::Register
        }
    });
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    let names: Vec<String> = (0..NAMES).map(|i| format!("s{i}")).collect();
    let mut enable = Enable::to(&registrar, Box::leak(names.join(",").into_boxed_str()));
    enable.timeout_ms = 2000;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, NAMES, Duration::from_secs(60)));
    let held = |r: &Registrar| names.iter().filter(|n| !r.bindings(n).is_empty()).count();
    assert_eq!(held(&registrar), NAMES);

    for bad in [0, 99, 600_001] {
        assert_eq!(SetSipUnregisterTimeout(engine, bad), SipBadParameter);
    }
    assert_eq!(SetSipUnregisterTimeout(engine, 8000), SipSuccess);
    lossy.store(true, Ordering::Relaxed);
    let started = Instant::now();
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "stop took {took:?}");

    // Five transmissions within 8 s (0, 0.5, 1.5, 3.5 and 7.5 s): about 3 % left.
    let left = held(&registrar);
    assert!(left <= NAMES / 10, "{left} of {NAMES} still registered");
    let reported = logs
        .all()
        .into_iter()
        .find(|(_, m)| m.contains("could not be unregistered within 8s"))
        .map(|(_, m)| m.split(' ').next().unwrap().parse::<usize>().unwrap())
        .unwrap_or(0);
    assert_eq!(reported, left, "the log names exactly what is left");
    eprintln!("{left} of {NAMES} left after {took:?}");
}
