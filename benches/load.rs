//! Load benchmark: one engine registers N unique names against Kamailio on loopback, then
//! sipp's UAC REGISTER scenario registers N names against a fresh Kamailio of the same
//! config, in the same run. Prints one table row per N with the ours/sipp rate ratio.
//!
//! `cargo bench --bench load` (sizes from `LOAD_SIZES`, default `1000,10000,50000`).

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use lanscape_sip::api::{NotificationKind, PhoneEngine, RegisterServerParams, StartParams};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::free_port;
use support::kamailio::{Kamailio, KamailioConfig};

/// Refresh interval of the engine: long enough that the first refresh of a name comes
/// after every name registered, short enough to measure a whole refresh round.
const REFRESH_S: u32 = 20;
/// Transactions sipp may have in flight, as many as the engine allows per hop.
const SIPP_CONCURRENCY: usize = lanscape_sip::runtime::MAX_IN_FLIGHT_PER_HOP;

struct Ours {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_1000_refreshes: f64,
    bytes_per_binding: f64,
    retransmissions: u64,
}

fn registrar() -> Kamailio {
    Kamailio::start(KamailioConfig {
        auth: false,
        shm_mb: 512,
        ..Default::default()
    })
}

/// Resident memory of this process, bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// CPU time (user + system) of this process, seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    // After the command name: state is field 3, utime 14 and stime 15 (1-based).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    let hz: f64 = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    ticks as f64 / hz
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

fn run_ours(n: usize) -> Ours {
    let kam = registrar();
    let engine = PhoneEngine::start(StartParams {
        phone_name: "load bench".into(),
        phone_lines: 1,
        local_port: 0,
        local_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    })
    .unwrap_or_else(|_| panic!("engine starts"));
    let successes: Arc<(Mutex<Vec<Instant>>, Condvar)> = Arc::default();
    {
        let successes = successes.clone();
        engine.set_notification_listener(Some(Arc::new(
            move |n: &lanscape_sip::api::Notification| {
                if n.kind == NotificationKind::RegisterSuccess {
                    successes.0.lock().unwrap().push(Instant::now());
                    successes.1.notify_all();
                }
            },
        )));
    }
    let names: Vec<String> = (0..n).map(|i| format!("b{i}")).collect();
    let params = RegisterServerParams {
        names: names.join(","),
        register_phone_lines: false,
        through_proxy: false,
        server_address: "127.0.0.1".into(),
        server_port: u32::from(kam.port),
        update_interval_s: REFRESH_S,
        expire_time_s: 3600,
        timeout_ms: 32_000,
        nat_auto_detect: false,
    };
    drop(names);
    let rss_before = rss();
    let started = Instant::now();
    engine
        .enable_register_server(&params)
        .unwrap_or_else(|_| panic!("enable"));
    let times = {
        let guard = successes.0.lock().unwrap();
        let (guard, timeout) = successes
            .1
            .wait_timeout_while(guard, Duration::from_secs(300), |t| t.len() < n)
            .unwrap();
        assert!(
            !timeout.timed_out(),
            "only {} of {n} registered",
            guard.len()
        );
        guard.clone()
    };
    let mut latencies: Vec<Duration> = times.iter().map(|t| *t - started).collect();
    latencies.sort();
    let elapsed = *latencies.last().unwrap();
    let rss_after = rss();
    assert_eq!(
        kam.registered_users(),
        Some(n as u64),
        "Kamailio holds every name"
    );

    // One refresh round: every name refreshes REFRESH_S after it registered.
    let stats_before = engine.stats().unwrap_or_default();
    let cpu_before = cpu_seconds();
    let deadline = Instant::now() + Duration::from_secs(u64::from(REFRESH_S) * 3);
    let refreshes = loop {
        let sent = engine.stats().unwrap_or_default().requests - stats_before.requests;
        if sent >= n as u64 || Instant::now() > deadline {
            break sent;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    // Let the last answers of the round arrive before reading the CPU time.
    std::thread::sleep(Duration::from_millis(300));
    let cpu = cpu_seconds() - cpu_before;
    let stats = engine.stats().unwrap_or_default();
    engine.shutdown();
    Ours {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_per_1000_refreshes: cpu / (refreshes as f64 / 1000.0),
        bytes_per_binding: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        retransmissions: stats.retransmissions,
    }
}

/// sipp's REGISTER rate against a fresh registrar, from sipp's own start and end times.
fn run_sipp(n: usize) -> f64 {
    let kam = registrar();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("load-sipp-{n}"));
    std::fs::create_dir_all(&dir).unwrap();
    let users = dir.join("users.csv");
    let mut csv = String::from("SEQUENTIAL\n");
    for i in 0..n {
        csv.push_str(&format!("s{i}\n"));
    }
    std::fs::write(&users, csv).unwrap();
    let stats = dir.join("stats.csv");
    let _ = std::fs::remove_file(&stats);
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sipp_uac_register.xml");
    let status = Command::new("sipp")
        .arg(format!("127.0.0.1:{}", kam.port))
        .arg("-sf")
        .arg(&scenario)
        .arg("-inf")
        .arg(&users)
        .args(["-m", &n.to_string(), "-r", "1000000", "-rp", "1000"])
        .args(["-l", &SIPP_CONCURRENCY.to_string()])
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args([
            "-nostdin",
            "-timeout",
            "300s",
            "-timeout_error",
            "-trace_stat",
            "-stf",
        ])
        .arg(&stats)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("sipp runs");
    assert!(status.success(), "sipp failed: {status:?}");
    assert_eq!(
        kam.registered_users(),
        Some(n as u64),
        "Kamailio holds every sipp name"
    );
    let text = std::fs::read_to_string(&stats).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    let column = |name: &str| last[header.iter().position(|h| *h == name).unwrap()];
    // ElapsedTime has whole seconds only; the epoch stamps have microseconds.
    let epoch = |name: &str| -> f64 { column(name).rsplit('\t').next().unwrap().parse().unwrap() };
    let elapsed = epoch("CurrentTime") - epoch("StartTime");
    let successful: f64 = column("SuccessfulCall(C)").parse().unwrap();
    assert_eq!(successful as usize, n);
    successful / elapsed
}

fn main() {
    for (program, package) in [("kamailio", "kamailio"), ("sipp", "sip-tester")] {
        let found = std::process::Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            found,
            "the load benchmark needs {program}: apt-get install {package}"
        );
    }
    let sizes: Vec<usize> = std::env::var("LOAD_SIZES")
        .unwrap_or_else(|_| "1000,10000,50000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "| N | ours reg/s | sipp reg/s | ours/sipp | p50 ms | p99 ms | CPU s per 1000 refreshes | bytes per binding | retransmissions |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let ours = run_ours(n);
        let sipp = run_sipp(n);
        println!(
            "| {n} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.3} | {:.0} | {} |",
            ours.rate,
            sipp,
            ours.rate / sipp,
            ours.p50_ms,
            ours.p99_ms,
            ours.cpu_per_1000_refreshes,
            ours.bytes_per_binding,
            ours.retransmissions,
        );
    }
}
