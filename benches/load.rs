//! Load benchmark: one engine registers N unique names against Kamailio on loopback, then
//! sipp's UAC REGISTER scenario registers N names against a fresh Kamailio of the same
//! config, in the same run and on the same transport (UDP, TCP, TLS). The first table
//! authenticates as real registrars ask (401 with an MD5 challenge, qop=auth, then the
//! REGISTER again with its Authorization), the second does not. Each row gives both rates
//! and both clients' CPU time per 1,000 registrations, with their ratios. Then: 100,000
//! names held and refreshed by one engine, the per-call latency on an idle engine, the
//! memory a TCP or TLS connection costs, and how evenly 10,000 names registered at once
//! refresh (`LOAD_SPREAD=N` another count, 0 to skip; three minutes).
//!
//! Over UDP and TCP, up to 3,000 names, libre's `sipreg` (Debian libre-dev, through
//! `benches/libre_sipreg.c`) is a third client against a third fresh Kamailio.
//!
//! Debian's sipp is built without TLS (and its source package is not reachable here), so
//! over TLS sipp speaks TCP to a local `stunnel` client that carries it over TLS to
//! Kamailio; the table says so.
//!
//! `cargo bench --bench load` (sizes from `LOAD_SIZES`, default `1000,10000,50000`;
//! transports from `LOAD_TRANSPORTS`, default `udp,tcp,tls`; `LOAD_SCALE`, default 100000,
//! 0 to skip).

#[path = "../tests/support/mod.rs"]
#[allow(unused_imports)]
mod support;

use lanscape_sip::api::{
    NotificationKind, PhoneEngine, RegisterServerParams, StartParams, TransportChoice,
};
use lanscape_sip::engine::transport::Transport;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use support::kamailio::{Kamailio, KamailioConfig};
use support::{free_port, resident_bytes};

/// Refresh interval of the engine: long enough that the first refresh of a name comes
/// after every name registered, short enough to measure a whole refresh round.
const REFRESH_S: u32 = 20;
/// The refresh-spread measurement: update interval, and how long REGISTERs are counted.
const SPREAD_INTERVAL_S: u32 = 60;
const SPREAD_SECONDS: usize = 180;
/// Transactions sipp may have in flight, as many as the engine allows per hop.
const SIPP_CONCURRENCY: usize = lanscape_sip::testkit::hooks::MAX_IN_FLIGHT_PER_HOP;

/// The digest user and password of both clients (Kamailio checks the password of the
/// user named in the Authorization, whatever name is registered).
const AUTH_USER: &str = "gw";
const AUTH_PASSWORD: &str = "gw-secret";

struct Ours {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_per_1000: f64,
    /// The share of `cpu_per_1000` spent in the kernel.
    kernel_share: f64,
    cpu_per_1000_refreshes: f64,
    bytes_per_binding: f64,
    retransmissions: u64,
    /// The 401s Kamailio sent while the names registered.
    challenges: u64,
}

/// How our client authenticates.
#[derive(Clone, Copy, PartialEq)]
enum Auth {
    /// The registrar does not ask.
    Plain,
    /// Each name waits for its own challenge, as sipp's and libre's do.
    Digest,
    /// The names share their challenges (`EnableSipSharedChallenges`).
    Shared,
}

impl Auth {
    fn name(self) -> &'static str {
        match self {
            Auth::Plain => "plain",
            Auth::Digest => "auth",
            Auth::Shared => "shared",
        }
    }
}

struct Sipp {
    rate: f64,
    cpu_per_1000: f64,
    /// The share of `cpu_per_1000` spent in the kernel.
    kernel_share: f64,
}

/// Kamailio, asking digest authentication (MD5, qop=auth) when `auth`.
fn registrar(auth: bool) -> Kamailio {
    Kamailio::start(KamailioConfig {
        auth,
        algorithm: "MD5",
        users: vec![(AUTH_USER, AUTH_PASSWORD)],
        shm_mb: 1024,
        streams: true,
        ..Default::default()
    })
}

/// The registrar's port for a transport.
fn port_of(kam: &Kamailio, transport: Transport) -> u16 {
    match transport {
        Transport::Tls => kam.tls_port,
        _ => kam.port,
    }
}

/// An engine on 127.0.0.1 registering over `transport` to `kam` (trusting its CA).
fn engine_for(kam: &Kamailio, transport: Transport, auth: bool) -> PhoneEngine {
    let engine = PhoneEngine::start(StartParams {
        phone_name: "load bench".into(),
        phone_lines: 1,
        local_port: 0,
        local_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    })
    .unwrap_or_else(|_| panic!("engine starts"));
    engine
        .set_transport(TransportChoice::Only(transport), 0)
        .unwrap_or_else(|_| panic!("transport"));
    if transport == Transport::Tls {
        // Only the test CA: the system store (~140 roots) would add its own cost to each
        // engine's TLS settings, which is not what a connection costs.
        engine
            .add_tls_trust(&kam.pki.as_ref().unwrap().ca_pem)
            .unwrap_or_else(|_| panic!("trust"));
        engine
            .set_tls_system_trust(false)
            .unwrap_or_else(|_| panic!("trust"));
    }
    // The registrar is an address: its certificate names the SIP domain.
    engine
        .set_domain("kam.test")
        .unwrap_or_else(|_| panic!("domain"));
    if auth {
        engine
            .add_credentials("", AUTH_USER, AUTH_PASSWORD)
            .unwrap_or_else(|_| panic!("credentials"));
    }
    engine
}

fn params(names: String, kam: &Kamailio, transport: Transport) -> RegisterServerParams {
    RegisterServerParams {
        names,
        register_phone_lines: false,
        through_proxy: false,
        server_address: "127.0.0.1".into(),
        server_port: u32::from(port_of(kam, transport)),
        update_interval_s: REFRESH_S,
        expire_time_s: 3600,
        timeout_ms: 32_000,
        nat_auto_detect: false,
    }
}

/// CPU time of this process, or of its children waited for, seconds.
#[derive(Clone, Copy)]
struct Cpu {
    user: f64,
    system: f64,
}

impl Cpu {
    fn now(who: libc::c_int) -> Cpu {
        let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
        // SAFETY: `usage` is writable and sized for a `rusage`; `who` is RUSAGE_SELF or
        // RUSAGE_CHILDREN.
        let rc = unsafe { libc::getrusage(who, usage.as_mut_ptr()) };
        assert_eq!(rc, 0, "getrusage");
        // SAFETY: getrusage succeeded, so it filled the struct (zeroed before in any case).
        let usage = unsafe { usage.assume_init() };
        let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        Cpu {
            user: seconds(usage.ru_utime),
            system: seconds(usage.ru_stime),
        }
    }

    /// The CPU time used since `earlier`.
    fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user - earlier.user,
            system: self.system - earlier.system,
        }
    }

    fn total(self) -> f64 {
        self.user + self.system
    }

    /// The kernel's share of the total. The kernel splits a task's (exact) run time into
    /// user and system time by sampling at each tick, so this share is an estimate.
    fn kernel_share(self) -> f64 {
        self.system / self.total().max(f64::MIN_POSITIVE)
    }
}

/// Below this much CPU time a run's kernel share is not shown: at 250 ticks a second (the
/// machine's kernel), a run of 0.5 s is split by about 125 samples, a shorter one too
/// roughly to be read (runs of 0.05 s read 0 % or 100 %).
const MIN_SPLIT_CPU_S: f64 = 0.5;

/// A run's kernel share as a table cell, or "—" for a run too short to split.
fn share_cell(cpu_per_1000: f64, n: usize, kernel_share: f64) -> String {
    match cpu_per_1000 * n as f64 / 1000.0 >= MIN_SPLIT_CPU_S {
        true => format!("{:.0} %", kernel_share * 100.0),
        false => "—".into(),
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// Registers N names (`b0`, `b1`, …) with one call; returns when the call was made and
/// when each success callback came.
fn register_all(
    engine: &PhoneEngine,
    params: &RegisterServerParams,
    n: usize,
) -> (Instant, Vec<Instant>) {
    let successes: Arc<(Mutex<Vec<Instant>>, Condvar)> = Arc::default();
    {
        let successes = successes.clone();
        let expected = n;
        engine.set_notification_listener(Some(Arc::new(
            move |n: &lanscape_sip::api::Notification| {
                if n.kind == NotificationKind::RegisterSuccess {
                    let mut times = successes.0.lock().unwrap();
                    times.push(Instant::now());
                    // The waiting thread is woken once, by the last: a wake-up per name
                    // would be the harness's CPU, counted as the engine's.
                    if times.len() == expected {
                        successes.1.notify_all();
                    }
                }
            },
        )));
    }
    let started = Instant::now();
    engine
        .enable_register_server(params)
        .unwrap_or_else(|_| panic!("enable"));
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
    (started, guard.clone())
}

fn names(n: usize) -> String {
    (0..n)
        .map(|i| format!("b{i}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn run_ours(n: usize, transport: Transport, auth: Auth) -> Ours {
    let kam = registrar(auth != Auth::Plain);
    let engine = engine_for(&kam, transport, auth != Auth::Plain);
    engine.set_share_challenges(auth == Auth::Shared);
    let params = params(names(n), &kam, transport);
    let rss_before = resident_bytes();
    let cpu_start = Cpu::now(libc::RUSAGE_SELF);
    let (started, times) = register_all(&engine, &params, n);
    let cpu_registering = Cpu::now(libc::RUSAGE_SELF).since(cpu_start);
    let mut latencies: Vec<Duration> = times.iter().map(|t| *t - started).collect();
    latencies.sort();
    let elapsed = *latencies.last().unwrap();
    let rss_after = resident_bytes();
    assert_eq!(
        kam.registered_users(),
        Some(n as u64),
        "Kamailio holds every name"
    );
    let challenges = kam.statistic("sl:401_replies").unwrap_or(0);
    // Refreshes answer each name's last challenge either way: the round is measured with
    // the names that wait for their own.
    let cpu_per_1000_refreshes = match auth {
        Auth::Shared => f64::NAN,
        _ => refresh_round(&engine, n),
    };
    let stats = engine.stats().unwrap_or_default();
    engine.shutdown();
    Ours {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        cpu_per_1000: cpu_registering.total() / (n as f64 / 1000.0),
        kernel_share: cpu_registering.kernel_share(),
        cpu_per_1000_refreshes,
        bytes_per_binding: rss_after.saturating_sub(rss_before) as f64 / n as f64,
        retransmissions: stats.retransmissions,
        challenges,
    }
}

/// One refresh round of the `n` names just registered (each refreshes REFRESH_S after it
/// registered): the CPU seconds per 1,000 refreshes.
fn refresh_round(engine: &PhoneEngine, n: usize) -> f64 {
    let stats_before = engine.stats().unwrap_or_default();
    let cpu_before = Cpu::now(libc::RUSAGE_SELF);
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
    let cpu = Cpu::now(libc::RUSAGE_SELF).since(cpu_before).total();
    cpu / (refreshes as f64 / 1000.0)
}

/// How evenly refreshes spread: N names registered with one call (interval
/// `SPREAD_INTERVAL_S`), then the REGISTERs the engine sends in each second of
/// `SPREAD_SECONDS` seconds. Returns the busiest second's count and the mean per second.
fn refresh_spread(n: usize) -> (f64, f64) {
    let kam = registrar(false);
    let engine = engine_for(&kam, Transport::Udp, false);
    let mut params = params(names(n), &kam, Transport::Udp);
    params.update_interval_s = SPREAD_INTERVAL_S;
    register_all(&engine, &params, n);
    let requests = || engine.stats().unwrap_or_default().requests;
    let mut counts = Vec::with_capacity(SPREAD_SECONDS);
    let mut last = requests();
    let mut tick = Instant::now();
    for _ in 0..SPREAD_SECONDS {
        tick += Duration::from_secs(1);
        std::thread::sleep(tick.saturating_duration_since(Instant::now()));
        let now = requests();
        counts.push((now - last) as f64);
        last = now;
    }
    assert_eq!(
        kam.registered_users(),
        Some(n as u64),
        "Kamailio holds every name"
    );
    engine.shutdown();
    let max = counts.iter().copied().fold(0.0, f64::max);
    let mean = counts.iter().sum::<f64>() / counts.len() as f64;
    (max, mean)
}

/// The per-call overhead: on an idle engine, one name at a time is registered (with
/// digest authentication, over UDP) and then unregistered, `LATENCY_ROUNDS` times; returns
/// the p50 and p99, ms, from the API call to the success callback.
fn single_name_latency() -> (f64, f64) {
    const LATENCY_ROUNDS: usize = 300;
    let kam = registrar(true);
    let engine = engine_for(&kam, Transport::Udp, true);
    let seen: Arc<(Mutex<Vec<NotificationKind>>, Condvar)> = Arc::default();
    {
        let seen = seen.clone();
        engine.set_notification_listener(Some(Arc::new(
            move |n: &lanscape_sip::api::Notification| {
                seen.0.lock().unwrap().push(n.kind);
                seen.1.notify_all();
            },
        )));
    }
    let wait_for = |kind: NotificationKind| {
        let guard = seen.0.lock().unwrap();
        let (mut guard, timeout) = seen
            .1
            .wait_timeout_while(guard, Duration::from_secs(10), |k| !k.contains(&kind))
            .unwrap();
        assert!(!timeout.timed_out(), "no {kind:?}");
        guard.clear();
    };
    let mut latencies = Vec::with_capacity(LATENCY_ROUNDS);
    for i in 0..LATENCY_ROUNDS {
        let params = params(format!("lat{i}"), &kam, Transport::Udp);
        let started = Instant::now();
        engine
            .enable_register_server(&params)
            .unwrap_or_else(|_| panic!("enable"));
        wait_for(NotificationKind::RegisterSuccess);
        latencies.push(started.elapsed());
        engine
            .disable_register_server()
            .unwrap_or_else(|_| panic!("disable"));
        wait_for(NotificationKind::Unregistered);
    }
    engine.shutdown();
    latencies.sort();
    (percentile(&latencies, 0.50), percentile(&latencies, 0.99))
}

/// A local `stunnel` client: TCP on the returned port, TLS to `kam` (verifying it).
fn stunnel(kam: &Kamailio, dir: &Path) -> (std::process::Child, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ca, _, _) = kam.pki.as_ref().unwrap().write(dir);
    let config = dir.join("stunnel.conf");
    std::fs::write(
        &config,
        format!(
            "foreground = yes\npid =\n[sip]\nclient = yes\naccept = 127.0.0.1:{port}\n\
             connect = 127.0.0.1:{}\nCAfile = {}\nverifyChain = yes\ncheckHost = kam.test\n",
            kam.tls_port,
            ca.display()
        ),
    )
    .unwrap();
    let child = Command::new("stunnel")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel runs");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "stunnel did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, port)
}

/// sipp's REGISTER rate against a fresh registrar, from sipp's own start and end times,
/// and the CPU time it used.
fn run_sipp(n: usize, transport: Transport, auth: bool) -> Sipp {
    let kam = registrar(auth);
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
    let scenario = match auth {
        true => "benches/sipp_uac_register_auth.xml",
        false => "benches/sipp_uac_register.xml",
    };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join(scenario);
    let (tunnel, target_port, mode) = match transport {
        Transport::Udp => (None, kam.port, "u1"),
        Transport::Tcp => (None, kam.port, "t1"),
        Transport::Tls => {
            let (child, port) = stunnel(&kam, &dir);
            (Some(child), port, "t1")
        }
    };
    // Only sipp ends (and is waited for) between the two readings.
    let cpu_before = Cpu::now(libc::RUSAGE_CHILDREN);
    let status = Command::new("sipp")
        .arg(format!("127.0.0.1:{target_port}"))
        .args(["-t", mode])
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
    let cpu = Cpu::now(libc::RUSAGE_CHILDREN).since(cpu_before);
    if let Some(mut tunnel) = tunnel {
        let _ = tunnel.kill();
        let _ = tunnel.wait();
    }
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
    Sipp {
        rate: successful / elapsed,
        cpu_per_1000: cpu.total() / (n as f64 / 1000.0),
        kernel_share: cpu.kernel_share(),
    }
}

/// Largest N libre's sipreg registers in the table.
const LIBRE_MAX_N: usize = 3000;

/// libre's `sipreg` client (`benches/libre_sipreg.c`), built once per run with Debian's
/// libre-dev.
fn libre_program() -> &'static Path {
    static PROGRAM: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PROGRAM.get_or_init(|| {
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("libre_sipreg");
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/libre_sipreg.c");
        let flags = Command::new("pkg-config")
            .args(["--cflags", "--libs", "libre"])
            .output()
            .expect("pkg-config runs");
        assert!(flags.status.success(), "libre: apt-get install libre-dev");
        let flags = String::from_utf8(flags.stdout).unwrap();
        let status = Command::new("cc")
            .args(["-O2", "-o"])
            .arg(&out)
            .arg(&source)
            .args(flags.split_whitespace())
            .status()
            .expect("cc runs");
        assert!(status.success(), "benches/libre_sipreg.c builds");
        out
    })
}

/// libre's sipreg registering N names (at most as many at once as sipp) on `transport` (UDP
/// or TCP) at a fresh Kamailio: rate and CPU time, like sipp's.
fn run_libre(n: usize, transport: Transport, auth: bool) -> Sipp {
    let kam = registrar(auth);
    let program = libre_program();
    let cpu_before = Cpu::now(libc::RUSAGE_CHILDREN);
    let out = Command::new(program)
        .arg(transport_name(transport).to_lowercase())
        .arg("127.0.0.1")
        .arg(kam.port.to_string())
        .arg(n.to_string())
        .args([AUTH_USER, AUTH_PASSWORD])
        .arg(SIPP_CONCURRENCY.to_string())
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("libre_sipreg runs");
    let cpu = Cpu::now(libc::RUSAGE_CHILDREN).since(cpu_before);
    assert!(out.status.success(), "libre_sipreg failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<f64> = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("libre_sipreg printed no result: {text}"))
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(fields[1] as usize, n, "libre registered every name");
    assert_eq!(
        kam.registered_users(),
        Some(n as u64),
        "Kamailio holds every libre name"
    );
    Sipp {
        rate: n as f64 / fields[0],
        cpu_per_1000: cpu.total() / (n as f64 / 1000.0),
        kernel_share: cpu.kernel_share(),
    }
}

/// Resident memory of `k` engines, each with one name registered over `transport` (and so,
/// over TCP or TLS, one connection each), per engine.
fn memory_per_engine(transport: Transport) -> f64 {
    const K: usize = 50;
    let kam = registrar(false);
    let registered: Arc<(Mutex<usize>, Condvar)> = Arc::default();
    let before = resident_bytes();
    let engines: Vec<PhoneEngine> = (0..K)
        .map(|i| {
            let engine = engine_for(&kam, transport, false);
            let registered = registered.clone();
            engine.set_notification_listener(Some(Arc::new(
                move |n: &lanscape_sip::api::Notification| {
                    if n.kind == NotificationKind::RegisterSuccess {
                        *registered.0.lock().unwrap() += 1;
                        registered.1.notify_all();
                    }
                },
            )));
            engine
                .enable_register_server(&params(format!("m{i}"), &kam, transport))
                .unwrap_or_else(|_| panic!("enable"));
            engine
        })
        .collect();
    let guard = registered.0.lock().unwrap();
    let (guard, timeout) = registered
        .1
        .wait_timeout_while(guard, Duration::from_secs(60), |r| *r < K)
        .unwrap();
    assert!(!timeout.timed_out(), "only {} of {K} registered", *guard);
    drop(guard);
    let per_engine = resident_bytes().saturating_sub(before) as f64 / K as f64;
    for engine in engines {
        engine.shutdown();
    }
    per_engine
}

/// Runs one measurement in a fresh process (this benchmark again, with `LOAD_CHILD`), so
/// that resident memory is not flattered by pages an earlier measurement touched; returns
/// the numbers it printed.
fn in_child(task: &str) -> Vec<f64> {
    let out = Command::new(std::env::current_exe().unwrap())
        .env("LOAD_CHILD", task)
        .stderr(Stdio::inherit())
        .output()
        .expect("the benchmark runs itself");
    assert!(out.status.success(), "{task} failed");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{task}: no result in {text}"));
    line.split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// The child's side of [`in_child`]: `ours:TRANSPORT:N:AUTH` (AUTH `auth`, `shared` or
/// `plain`),
/// `spread:udp:N`, `latency:udp` or `memory:TRANSPORT`.
fn child(task: &str) {
    let parts: Vec<&str> = task.split(':').collect();
    let transport = parse_transport(parts[1]).expect("a transport");
    let values = match parts[0] {
        "ours" => {
            let auth = [Auth::Plain, Auth::Digest, Auth::Shared]
                .into_iter()
                .find(|a| a.name() == parts[3])
                .expect("an authentication");
            let o = run_ours(parts[2].parse().unwrap(), transport, auth);
            vec![
                o.rate,
                o.p50_ms,
                o.p99_ms,
                o.cpu_per_1000,
                o.cpu_per_1000_refreshes,
                o.bytes_per_binding,
                o.retransmissions as f64,
                o.kernel_share,
                o.challenges as f64,
            ]
        }
        "spread" => {
            let (max, mean) = refresh_spread(parts[2].parse().unwrap());
            vec![max, mean]
        }
        "latency" => {
            let (p50, p99) = single_name_latency();
            vec![p50, p99]
        }
        _ => vec![memory_per_engine(transport)],
    };
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    println!("RESULT {}", values.join(" "));
}

/// Ours in a fresh process.
fn ours(transport: Transport, n: usize, auth: Auth) -> Ours {
    let o = in_child(&format!(
        "ours:{}:{n}:{}",
        transport_name(transport).to_lowercase(),
        auth.name()
    ));
    Ours {
        rate: o[0],
        p50_ms: o[1],
        p99_ms: o[2],
        cpu_per_1000: o[3],
        cpu_per_1000_refreshes: o[4],
        bytes_per_binding: o[5],
        retransmissions: o[6] as u64,
        kernel_share: o[7],
        challenges: o[8] as u64,
    }
}

/// Of several runs, the one whose CPU per 1,000 registrations is the median (its other
/// figures come with it).
fn median_run<T>(runs: usize, mut run: impl FnMut() -> T, cpu: impl Fn(&T) -> f64) -> T {
    let mut all: Vec<T> = (0..runs.max(1)).map(|_| run()).collect();
    all.sort_by(|a, b| cpu(a).total_cmp(&cpu(b)));
    all.swap_remove(all.len() / 2)
}

/// One table of the engine against sipp, with or without authentication; each figure of
/// ours and of sipp is the median of `runs` runs. With authentication, it returns the
/// rows of a second table: ours with shared challenges against the same sipp figures.
fn versus_sipp(transports: &[Transport], sizes: &[usize], auth: bool, runs: usize) -> Vec<String> {
    let mut shared_rows = Vec::new();
    println!(
        "| transport | N | ours reg/s | sipp reg/s | ours/sipp rate | ours CPU s per 1000 reg | sipp CPU s per 1000 reg | ours/sipp CPU | kernel's share of the CPU, ours / sipp | libre reg/s | libre CPU s per 1000 reg | ours/libre CPU | p50 ms | p99 ms | CPU s per 1000 refreshes | bytes per binding | retransmissions |"
    );
    println!(
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for &transport in transports {
        for &n in sizes {
            let mode = if auth { Auth::Digest } else { Auth::Plain };
            let ours = median_run(runs, || ours(transport, n, mode), |o| o.cpu_per_1000);
            let sipp = median_run(runs, || run_sipp(n, transport, auth), |s| s.cpu_per_1000);
            // libre over UDP and TCP (its TLS needs a build with OpenSSL and a CA setup of
            // its own), up to LIBRE_MAX_N names.
            let libre = match transport {
                Transport::Tls => None,
                _ if n > LIBRE_MAX_N => None,
                _ => Some(run_libre(n, transport, auth)),
            };
            let libre = match libre {
                Some(l) => format!(
                    "{:.0} | {:.4} | {:.2}",
                    l.rate,
                    l.cpu_per_1000,
                    ours.cpu_per_1000 / l.cpu_per_1000
                ),
                None => "— | — | —".into(),
            };
            let name = match transport {
                Transport::Tls => "TLS (sipp: TCP via stunnel)",
                other => transport_name(other),
            };
            println!(
                "| {name} | {n} | {} | {libre} | {:.1} | {:.1} | {:.3} | {:.0} | {} |",
                side_by_side(&ours, &sipp, n),
                ours.p50_ms,
                ours.p99_ms,
                ours.cpu_per_1000_refreshes,
                ours.bytes_per_binding,
                ours.retransmissions,
            );
            if auth {
                let shared = median_run(
                    runs,
                    || self::ours(transport, n, Auth::Shared),
                    |o| o.cpu_per_1000,
                );
                shared_rows.push(format!(
                    "| {name} | {n} | {} | {} | {:.1} | {:.1} | {} |",
                    side_by_side(&shared, &sipp, n),
                    shared.challenges,
                    shared.p50_ms,
                    shared.p99_ms,
                    shared.retransmissions,
                ));
            }
        }
    }
    shared_rows
}

/// The cells comparing ours with sipp: both rates and their ratio, both CPU figures and
/// their ratio, and the kernel's shares.
fn side_by_side(ours: &Ours, sipp: &Sipp, n: usize) -> String {
    format!(
        "{:.0} | {:.0} | {:.2} | {:.4} | {:.4} | {:.2} | {} / {}",
        ours.rate,
        sipp.rate,
        ours.rate / sipp.rate,
        ours.cpu_per_1000,
        sipp.cpu_per_1000,
        ours.cpu_per_1000 / sipp.cpu_per_1000,
        share_cell(ours.cpu_per_1000, n, ours.kernel_share),
        share_cell(sipp.cpu_per_1000, n, sipp.kernel_share),
    )
}

/// Prints the rows [`versus_sipp`] returned for shared challenges.
fn shared_table(rows: &[String], runs: usize) {
    println!(
        "### With digest authentication, our names sharing their challenges (EnableSipSharedChallenges), median of {runs} runs; sipp's figures are those above (a challenge per name)"
    );
    println!();
    println!(
        "| transport | N | ours reg/s | sipp reg/s | ours/sipp rate | ours CPU s per 1000 reg | sipp CPU s per 1000 reg | ours/sipp CPU | kernel's share of the CPU, ours / sipp | 401s Kamailio sent | p50 ms | p99 ms | retransmissions |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        println!("{row}");
    }
}

fn parse_transport(name: &str) -> Option<Transport> {
    match name.trim() {
        "udp" => Some(Transport::Udp),
        "tcp" => Some(Transport::Tcp),
        "tls" => Some(Transport::Tls),
        _ => None,
    }
}

fn transport_name(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
        Transport::Tls => "TLS",
    }
}

fn main() {
    if let Ok(task) = std::env::var("LOAD_CHILD") {
        return child(&task);
    }
    for (program, package) in [
        ("kamailio", "kamailio"),
        ("sipp", "sip-tester"),
        ("stunnel", "stunnel4"),
        ("pkg-config", "pkg-config"),
        ("cc", "gcc"),
    ] {
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
    let transports: Vec<Transport> = std::env::var("LOAD_TRANSPORTS")
        .unwrap_or_else(|_| "udp,tcp,tls".into())
        .split(',')
        .filter_map(parse_transport)
        .collect();
    // The goal's table: each figure the median of LOAD_RUNS runs (the figures of one run
    // swing with how many datagrams Kamailio drops in a burst and how the 2 cores are
    // shared with it).
    let runs: usize = std::env::var("LOAD_RUNS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(3);
    println!(
        "### With digest authentication (MD5, qop=auth: 401, then 200), median of {runs} runs"
    );
    println!();
    let shared_rows = versus_sipp(&transports, &sizes, true, runs);
    println!();
    shared_table(&shared_rows, runs);
    println!();
    println!("### Without authentication (one run)");
    println!();
    versus_sipp(&transports, &sizes, false, 1);
    let scale: usize = std::env::var("LOAD_SCALE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100_000);
    if scale > 0 {
        let o = ours(Transport::Udp, scale, Auth::Digest);
        println!();
        println!(
            "| one engine, UDP, digest | reg/s | CPU s per 1000 reg | CPU s per 1000 refreshes | bytes per binding |"
        );
        println!("|---|---:|---:|---:|---:|");
        println!(
            "| {scale} names | {:.0} | {:.4} | {:.4} | {:.0} |",
            o.rate, o.cpu_per_1000, o.cpu_per_1000_refreshes, o.bytes_per_binding
        );
    }
    let l = in_child("latency:udp");
    println!();
    println!(
        "| one name on an idle engine, UDP, digest (API call to success callback) | p50 ms | p99 ms |"
    );
    println!("|---|---:|---:|");
    println!("| Kamailio on loopback | {:.3} | {:.3} |", l[0], l[1]);
    println!();
    println!("| transport | resident bytes per engine (1 name) | a connection costs |");
    println!("|---|---:|---:|");
    let udp = in_child("memory:udp")[0];
    println!("| UDP | {udp:.0} | (no connection) |");
    for transport in [Transport::Tcp, Transport::Tls] {
        let task = format!("memory:{}", transport_name(transport).to_lowercase());
        let bytes = in_child(&task)[0];
        println!(
            "| {} | {bytes:.0} | {:.0} bytes |",
            transport_name(transport),
            bytes - udp
        );
    }
    let spread: usize = std::env::var("LOAD_SPREAD")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(10_000);
    if spread > 0 {
        let r = in_child(&format!("spread:udp:{spread}"));
        let (max, mean) = (r[0], r[1]);
        println!();
        println!(
            "| refresh spread: N, interval | REGISTERs per second, mean over {SPREAD_SECONDS} s | busiest second | max/mean |"
        );
        println!("|---|---:|---:|---:|");
        println!(
            "| {spread} names, {SPREAD_INTERVAL_S} s | {mean:.0} | {max:.0} | {:.2} |",
            max / mean
        );
    }
}
