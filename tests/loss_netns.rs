//! Kamailio behind a lossy link: it runs in a network namespace the test creates, and
//! nftables there drops a share of the UDP packets both ways, or all of them (a partition).
//! 500 names register through 20 % loss; a 30 s partition is ridden out at a bounded,
//! spread request rate and every binding is back soon after; a registrar restarted empty
//! gets every binding back within one refresh interval.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::time::{Duration, Instant};
use support::kamailio::{Kamailio, KamailioConfig};
use support::netns::NetNs;
use support::*;

const NAMES: usize = 500;
const INTERVAL: u32 = 20;

fn all_registered(engine: SIPHANDLE, names: &[String]) -> usize {
    names
        .iter()
        .filter(|n| {
            registration_state(engine, n)
                == (SipSuccess, SIP_REGISTRATION_STATE::SipStateRegistered)
        })
        .count()
}

fn wait_until(bound: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < bound {
        if done() {
            return Some(started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    None
}

#[test]
#[ignore = "needs root, kamailio, iproute2 and nftables (scripts/test installs them and runs this)"]
fn kamailio_behind_a_lossy_link_keeps_every_binding() {
    let ns = NetNs::create();
    let kam = Kamailio::start(KamailioConfig {
        netns: Some((ns.name.clone(), ns.ns_ip)),
        shm_mb: 64,
        ..Default::default()
    });
    let mut kam = kam;
    let (engine, events) = engine_on(&ns.host_ip.to_string());
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    let names: Vec<String> = (0..NAMES).map(|i| format!("lossy{i}")).collect();
    let held = |kam: &Kamailio| kam.registered_users().unwrap_or(0) as usize;

    // 20 % of the packets lost each way: every name registers, none is lost.
    ns.drop_percent(20);
    let enable = Enable {
        names: Box::leak(names.join(",").into_boxed_str()),
        per_line: false,
        through_proxy: false,
        server: ns.ns_ip.to_string(),
        port: 5060,
        interval: INTERVAL,
        expires: 300,
        timeout_ms: 8000,
        nat: false,
    };
    assert_eq!(enable.call(engine), SipSuccess);
    let took = wait_until(Duration::from_secs(120), || {
        all_registered(engine, &names) == NAMES
    });
    if took.is_none() {
        for n in names.iter().filter(|n| {
            registration_state(engine, n).1 != SIP_REGISTRATION_STATE::SipStateRegistered
        }) {
            let (_, info) = registration_info(engine, n);
            println!(
                "{n}: {:?} last {} failures {} refresh {}",
                info.state, info.last_status, info.consecutive_failures, info.seconds_until_refresh
            );
        }
    }
    assert!(
        took.is_some(),
        "{} of {NAMES} registered at 20 % loss; failures: {:?}",
        all_registered(engine, &names),
        events
            .events()
            .iter()
            .filter(|e| e.code != SipRegisterSuccess)
            .take(20)
            .collect::<Vec<_>>()
    );
    assert_eq!(held(&kam), NAMES, "Kamailio holds every binding");
    let mut heard: Vec<String> = events
        .events()
        .into_iter()
        .filter(|e| e.code == SipRegisterSuccess)
        .map(|e| e.name)
        .collect();
    heard.sort();
    heard.dedup();
    assert_eq!(heard.len(), NAMES, "every name was reported registered");
    println!("20 % loss: {NAMES} registered in {took:?}");

    // A 30 s partition: the requests keep to a bounded rate, spread over time.
    ns.drop_percent(100);
    let mut per_second = Vec::new();
    let mut last = 0;
    for _ in 0..30 {
        std::thread::sleep(Duration::from_secs(1));
        let now = ns.requests();
        per_second.push(now - last);
        last = now;
    }
    ns.drop_percent(0);
    let total: u64 = per_second.iter().sum();
    let mean = total as f64 / 30.0;
    let max = *per_second.iter().max().unwrap();
    println!("partition: {total} requests in 30 s, mean {mean:.0}/s, max {max}/s: {per_second:?}");
    // At most 256 transactions in flight, each sending 5 datagrams in its 8 s: 160/s.
    assert!(mean <= 200.0, "{per_second:?}");
    assert!(
        (max as f64) <= 3.0 * mean + 20.0,
        "bursts, not spread: {per_second:?}"
    );
    // Healed: every binding is back (backoff at most the 20 s interval, jittered).
    let back = wait_until(Duration::from_secs(40), || {
        all_registered(engine, &names) == NAMES && held(&kam) == NAMES
    });
    assert!(
        back.is_some(),
        "{} of {NAMES} registered, {} held, 40 s after the partition",
        all_registered(engine, &names),
        held(&kam)
    );
    println!("partition lifted: every binding back in {back:?}");

    // Restarted with an empty location table: every binding is back within one refresh
    // interval (20 s) and a few seconds.
    kam.restart();
    assert_eq!(held(&kam), 0);
    let refilled = wait_until(Duration::from_secs(u64::from(INTERVAL) + 10), || {
        held(&kam) == NAMES
    });
    assert!(
        refilled.is_some(),
        "{} of {NAMES} back after the restart",
        held(&kam)
    );
    println!("restart: every binding back in {refilled:?}");

    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert_eq!(held(&kam), 0, "a calm stop removes every binding");
}
