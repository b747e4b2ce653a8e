//! `lanscape-sip`: tries a registrar from the command line before an application is wired
//! to it. `register` registers names and shows the registrar's answer and the info query,
//! staying registered until Ctrl-C; `load` registers N names with a live progress bar and
//! rate, then prints a summary table. Built with `--features cli`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use lanscape_sip::api::{
    ApiError, Notification, NotificationKind, PhoneEngine, RegisterServerParams,
    RegistrationDetails, StartParams, Transport, TransportChoice,
};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "lanscape-sip",
    version,
    about = "Register with a SIP registrar, or load it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Registers names, shows the result and the info query, unregisters on Ctrl-C.
    Register {
        #[command(flatten)]
        common: Common,
        /// The names (SIP user parts) to register.
        #[arg(required = true)]
        names: Vec<String>,
        /// Unregister and exit as soon as the result is shown.
        #[arg(long)]
        once: bool,
    },
    /// Registers N names at once, with a progress bar and the live rate, then a summary.
    Load {
        #[command(flatten)]
        common: Common,
        /// How many names.
        #[arg(long, short = 'n', default_value_t = 1000)]
        count: u32,
        /// The names are PREFIX0, PREFIX1, ...
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Stay registered this many seconds (refreshing) before unregistering.
        #[arg(long, default_value_t = 0)]
        hold: u64,
        /// Give up waiting for outcomes after this many seconds.
        #[arg(long, default_value_t = 120)]
        deadline: u64,
    },
}

#[derive(Args)]
struct Common {
    /// The registrar: host[:port], an IP address or a DNS name (RFC 3263 with no port).
    server: String,
    /// Digest user name.
    #[arg(long, short = 'u')]
    user: Option<String>,
    /// Digest password (or the LANSCAPE_SIP_PASSWORD environment variable).
    #[arg(
        long,
        short = 'p',
        env = "LANSCAPE_SIP_PASSWORD",
        hide_env_values = true
    )]
    password: Option<String>,
    /// The realm the credentials are for ("*": any).
    #[arg(long, default_value = "*")]
    realm: String,
    /// The SIP domain of the addresses of record (default: the registrar's host).
    #[arg(long, short = 'd')]
    domain: Option<String>,
    /// Register through this outbound proxy, host[:port] (needs --domain).
    #[arg(long)]
    proxy: Option<String>,
    #[arg(long, short = 't', value_enum, default_value_t = TransportArg::Udp)]
    transport: TransportArg,
    /// Trusted CA certificates for TLS (a PEM file); the system's are trusted too.
    #[arg(long)]
    ca: Option<String>,
    /// Expiry asked for, seconds.
    #[arg(long, default_value_t = 3600)]
    expires: u32,
    /// Refresh interval, seconds (default: half the expiry).
    #[arg(long)]
    interval: Option<u32>,
    /// Transaction timeout, milliseconds.
    #[arg(long, default_value_t = 4000)]
    timeout_ms: u32,
    /// Re-register with the address the registrar saw (NAT).
    #[arg(long)]
    nat: bool,
    /// Local address to bind (default: every IPv4 address).
    #[arg(long)]
    local_ip: Option<IpAddr>,
    /// Local SIP UDP port (0: any).
    #[arg(long, default_value_t = 0)]
    local_port: u16,
    /// Names not challenged yet answer the challenge another name received (for
    /// registrars that accept a realm's nonce from any user, such as Kamailio): one
    /// REGISTER per name instead of two.
    #[arg(long)]
    share_challenges: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum TransportArg {
    Udp,
    Tcp,
    Tls,
    Auto,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Register {
            common,
            names,
            once,
        } => register(&common, &names, once),
        Command::Load {
            common,
            count,
            prefix,
            hold,
            deadline,
        } => load(&common, count, &prefix, hold, deadline),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("lanscape-sip: {e}");
            ExitCode::from(2)
        }
    }
}

/// `host[:port]`, the IPv6 form in brackets; port 0 when none.
fn split_host_port(s: &str) -> Result<(String, u32), String> {
    let bad = || format!("{s}: not host[:port]");
    let (host, port) = match s.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            (host, after.strip_prefix(':'))
        }
        None => match s.split_once(':') {
            Some((host, port)) if !port.contains(':') => (host, Some(port)),
            _ => (s, None),
        },
    };
    let port = port.map_or(Ok(0), |p| p.parse::<u16>().map_err(|_| bad()))?;
    Ok((host.to_string(), u32::from(port)))
}

/// An engine set up from the common options, its notifications to `notify`.
fn engine(
    common: &Common,
    lines: u32,
    notify: impl Fn(&Notification) + Send + Sync + 'static,
) -> Result<PhoneEngine, ApiError> {
    let engine = PhoneEngine::start(StartParams {
        phone_name: format!("lanscape-sip/{}", env!("CARGO_PKG_VERSION")),
        phone_lines: lines,
        local_port: common.local_port,
        local_ip: common.local_ip,
    })?;
    engine.set_notification_listener(Some(Arc::new(notify)));
    if let Some(domain) = &common.domain {
        engine.set_domain(domain)?;
    }
    if let Some(proxy) = &common.proxy {
        let (host, port) = split_host_port(proxy).map_err(ApiError::bad)?;
        engine.set_proxy(&host, port)?;
    }
    let transport = match common.transport {
        TransportArg::Udp => TransportChoice::Only(Transport::Udp),
        TransportArg::Tcp => TransportChoice::Only(Transport::Tcp),
        TransportArg::Tls => TransportChoice::Only(Transport::Tls),
        TransportArg::Auto => TransportChoice::Any,
    };
    engine.set_transport(transport, 0)?;
    engine.set_share_challenges(common.share_challenges);
    if let Some(ca) = &common.ca {
        engine.add_tls_trust(ca)?;
    }
    if let Some(user) = &common.user {
        let password = common.password.as_deref().unwrap_or("");
        engine.add_credentials(&common.realm, user, password)?;
    }
    Ok(engine)
}

fn params(common: &Common, names: String) -> Result<RegisterServerParams, ApiError> {
    let (server, port) = split_host_port(&common.server).map_err(ApiError::bad)?;
    Ok(RegisterServerParams {
        names,
        register_phone_lines: false,
        through_proxy: common.proxy.is_some(),
        server_address: server,
        server_port: port,
        update_interval_s: common.interval.unwrap_or((common.expires / 2).max(1)),
        expire_time_s: common.expires,
        timeout_ms: common.timeout_ms,
        nat_auto_detect: common.nat,
    })
}

/// Ctrl-C (or SIGTERM) as a flag.
fn interrupted() -> Result<Arc<AtomicBool>, ApiError> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    ctrlc::set_handler(move || set.store(true, Ordering::SeqCst))
        .map_err(|e| ApiError::CallFailure(format!("cannot catch Ctrl-C: {e}").into()))?;
    Ok(flag)
}

fn kind_text(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::RegisterSuccess => "registered",
        NotificationKind::Unregistered => "unregistered",
        NotificationKind::RegisterError => "refused or unusable answer",
        NotificationKind::RegisterTimeOut => "no answer (timeout)",
        NotificationKind::RegisterAuthorizationError => "authorization refused",
        NotificationKind::RegisterIntervalError => "interval refused (423)",
        NotificationKind::TlsError => "TLS failed",
    }
}

fn show_info(name: &str, d: &RegistrationDetails) {
    let i = &d.info;
    println!("  {name}: {:?}", d.state);
    println!("    last answer    {} {}", i.last_status, i.last_reason);
    if let Some(expires) = i.granted_expires {
        println!("    granted        {expires} s");
    }
    if let Some(refresh) = d.seconds_until_refresh {
        println!("    refresh in     {refresh} s");
    }
    println!("    contact        {}", i.contact);
    println!("    registrar      {} {}", d.transport.param(), d.target);
    for (label, value) in [
        ("public GRUU", &i.pub_gruu),
        ("temporary GRUU", &i.temp_gruu),
    ] {
        if let Some(v) = value {
            println!("    {label:<14} {v}");
        }
    }
    for (label, list) in [
        ("Service-Route", &i.service_route),
        ("P-Associated", &i.associated_uris),
        ("Path", &i.path),
    ] {
        if !list.is_empty() {
            println!("    {label:<14} {}", list.join(", "));
        }
    }
    if i.outbound {
        println!("    outbound       yes, Flow-Timer {:?}", i.flow_timer);
    }
}

fn register(common: &Common, names: &[String], once: bool) -> Result<ExitCode, ApiError> {
    let stop = interrupted()?;
    let (events, received) = mpsc::channel::<Notification>();
    let events = Mutex::new(events);
    let engine = engine(common, 1, move |n| {
        let _ = events.lock().map(|tx| tx.send(n.clone()));
    })?;
    engine.set_wait_first_cycle(true);
    let started = Instant::now();
    let outcome = engine.enable_register_server(&params(common, names.join(","))?);
    let took = started.elapsed();
    for n in received.try_iter() {
        println!("{}: {}", n.name, kind_text(n.kind));
    }
    let all = match &outcome {
        Ok(()) => {
            println!("all registered in {} ms", took.as_millis());
            true
        }
        Err(e) => {
            println!("not all registered ({} ms): {e}", took.as_millis());
            false
        }
    };
    for name in names {
        match engine.registration_info(name.trim()) {
            Ok(details) => show_info(name.trim(), &details),
            Err(e) => println!("  {name}: {e}"),
        }
    }
    if !once {
        println!("registered; refreshing until Ctrl-C");
        while !stop.load(Ordering::SeqCst) {
            if let Ok(n) = received.recv_timeout(Duration::from_millis(200)) {
                println!("{}: {}", n.name, kind_text(n.kind));
            }
        }
    }
    engine.disable_register_server()?;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut left = names.len();
    while left > 0 && Instant::now() < deadline {
        if let Ok(n) = received.recv_timeout(Duration::from_millis(100)) {
            if n.kind == NotificationKind::Unregistered {
                left -= 1;
            }
            println!("{}: {}", n.name, kind_text(n.kind));
        }
    }
    engine.shutdown();
    Ok(if all {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// What the load's notification listener counts.
#[derive(Default)]
struct Tally {
    /// Time from the call to each name's first success.
    registered: Vec<Duration>,
    /// First failures, by what they were.
    failed: BTreeMap<&'static str, u32>,
    /// Names with an outcome (first success or first failure).
    settled: std::collections::HashSet<String>,
    /// When the last of them came.
    last_outcome: Duration,
    unregistered: u32,
}

fn load(
    common: &Common,
    count: u32,
    prefix: &str,
    hold: u64,
    deadline: u64,
) -> Result<ExitCode, ApiError> {
    if count == 0 {
        return Err(ApiError::bad("--count is 0"));
    }
    let stop = interrupted()?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Arc::new(Mutex::new(Instant::now()));
    let engine = {
        let (tally, started) = (tally.clone(), started.clone());
        engine(common, 1, move |n| {
            let Ok(mut t) = tally.lock() else { return };
            let at = started.lock().map(|s| s.elapsed()).unwrap_or_default();
            match n.kind {
                NotificationKind::Unregistered => t.unregistered += 1,
                kind if !t.settled.contains(&n.name) => {
                    t.settled.insert(n.name.clone());
                    t.last_outcome = at;
                    match kind {
                        NotificationKind::RegisterSuccess => t.registered.push(at),
                        other => *t.failed.entry(kind_text(other)).or_default() += 1,
                    }
                }
                _ => {}
            }
        })?
    };
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}{i}")).collect();
    let bar = ProgressBar::new(u64::from(count)).with_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} registered, {per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if let Ok(mut s) = started.lock() {
        *s = Instant::now();
    }
    let began = Instant::now();
    engine.enable_register_server(&params(common, names.join(","))?)?;
    let give_up = began + Duration::from_secs(deadline);
    let waited = loop {
        let (ok, failed) = tally.lock().map_or((0, 0), |t| {
            (t.registered.len(), t.failed.values().sum::<u32>() as usize)
        });
        bar.set_position(ok as u64);
        bar.set_message(if failed > 0 {
            format!("{failed} failed")
        } else {
            String::new()
        });
        if ok + failed >= names.len() || stop.load(Ordering::SeqCst) || Instant::now() > give_up {
            break began.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    bar.finish();
    let hold_until = Instant::now() + Duration::from_secs(hold);
    while Instant::now() < hold_until && !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let unregistering = Instant::now();
    engine.disable_register_server()?;
    let registered = tally.lock().map_or(0, |t| t.registered.len()) as u32;
    let unregister_deadline = unregistering + Duration::from_secs(deadline);
    while tally.lock().map_or(0, |t| t.unregistered) < count && Instant::now() < unregister_deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let unregister_took = unregistering.elapsed();
    engine.shutdown();

    let t = tally.lock().map_err(|_| ApiError::bad("tally"))?;
    // The last outcome's time, not the poll's; all of the wait when some never came.
    let settled_after = match t.settled.len() == names.len() {
        true => t.last_outcome,
        false => waited,
    };
    let mut times = t.registered.clone();
    times.sort_unstable();
    let pct = |p: usize| {
        times
            .get((times.len() * p / 100).min(times.len().saturating_sub(1)))
            .map_or("-".to_string(), |d| format!("{} ms", d.as_millis()))
    };
    let rate = f64::from(registered) / settled_after.as_secs_f64().max(1e-3);
    let rows: Vec<(String, String)> = [
        ("names", count.to_string()),
        ("registered", registered.to_string()),
        (
            "failed",
            t.failed.values().sum::<u32>().to_string()
                + &t.failed
                    .iter()
                    .map(|(k, v)| format!(" ({k}: {v})"))
                    .collect::<String>(),
        ),
        ("no outcome", (count as usize - t.settled.len()).to_string()),
        ("time", format!("{:.2} s", settled_after.as_secs_f64())),
        ("rate", format!("{rate:.0} registrations/s")),
        ("to register p50", pct(50)),
        ("to register p90", pct(90)),
        ("to register p99", pct(99)),
        ("to register max", pct(100)),
        (
            "unregistered",
            format!(
                "{} in {:.2} s",
                t.unregistered,
                unregister_took.as_secs_f64()
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    println!("{}", "-".repeat(width + 30));
    for (k, v) in &rows {
        println!("{k:<width$}  {v}");
    }
    println!("{}", "-".repeat(width + 30));
    Ok(if registered == count {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
