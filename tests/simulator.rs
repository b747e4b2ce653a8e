//! A deterministic network simulator for the sans-I/O endpoint.
//!
//! One seed drives everything: the endpoint's randomness, a simulated registrar (digest
//! challenges with rotating nonces, 403, 423, 503 with Retry-After, restarts that forget
//! every binding, hostile answers) and a simulated network (loss, duplication, reordering
//! by random delay, partitions), all on a simulated clock. A run has a stormy part and a
//! calm part. After every step the invariants are checked:
//!
//! - at most one transaction in flight per binding (no older transaction of a Call-ID is
//!   sent again once a newer one started), and CSeq strictly rising per Call-ID;
//! - no request larger than the bound;
//! - no binding published as registered past the expiry the registrar granted;
//! - each failure reported once per episode (never twice in a row the same way);
//! - the endpoint's own tables bounded by the bindings;
//! - once the storm is over, every binding registered within a bound, and held by the
//!   registrar; a bounded stop then removes them all.
//!
//! `cargo test --test simulator` runs `SIM_SEEDS` seeds (default 500; `scripts/test` runs
//! 2,000). A failing seed is printed with the command that replays it alone, with a trace:
//! `SIM_SEED=<seed> cargo test --test simulator -- --nocapture`.

use lanscape_sip::engine::binding::{BindingConfig, BindingEvent, BindingState, Entropy};
use lanscape_sip::engine::digest::{Credential, CredentialStore};
use lanscape_sip::engine::endpoint::{BindingId, BindingSpec, Endpoint, Event};
use lanscape_sip::engine::target::Located;
use lanscape_sip::engine::transport::{Target, Transport};
use lanscape_sip::testkit::seeded::SplitMix64;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The seeded randomness of a run, with the draws the simulator makes.
#[derive(Clone)]
struct Rng(SplitMix64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// True `permille` times in a thousand.
    fn chance(&mut self, permille: u64) -> bool {
        self.below(1000) < permille
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

const REGISTRAR: &str = "10.0.0.1:5060";
const LOCAL: &str = "10.0.0.2:5060";
const MAX_REQUEST: usize = 16 * 1024;

/// What one seed sets up.
#[derive(Debug, Clone)]
struct Scenario {
    bindings: u64,
    max_in_flight: usize,
    expires: u32,
    refresh: Duration,
    timeout: Duration,
    auth: bool,
    min_expires: Option<u32>,
    /// Per mille, during the storm.
    loss: u64,
    duplicate: u64,
    max_delay_ms: u64,
    error_503: u64,
    forbidden: u64,
    hostile: u64,
    restarts: u32,
    partitions: Vec<(Duration, Duration)>,
    storm: Duration,
}

impl Scenario {
    fn of(rng: &mut Rng) -> Scenario {
        let storm = Duration::from_secs(600 + rng.below(1200));
        let partitions = (0..rng.below(3))
            .map(|_| {
                let start = Duration::from_secs(rng.below(storm.as_secs()));
                (start, Duration::from_secs(5 + rng.below(240)))
            })
            .collect();
        Scenario {
            bindings: 1 + rng.below(8),
            max_in_flight: rng.pick(&[1, 2, 4, 256]),
            expires: rng.pick(&[30, 60, 300, 3600]),
            refresh: Duration::from_secs(rng.pick(&[20, 60, 120, 300])),
            timeout: Duration::from_millis(rng.pick(&[2_000, 8_000, 32_000])),
            auth: rng.chance(700),
            min_expires: match rng.below(3) {
                0 => Some(rng.pick(&[60, 120, 600])),
                _ => None,
            },
            loss: rng.pick(&[0, 50, 200, 300, 500]),
            duplicate: rng.pick(&[0, 20, 100]),
            max_delay_ms: rng.pick(&[1, 50, 400, 2_000]),
            error_503: rng.pick(&[0, 20, 100]),
            forbidden: rng.pick(&[0, 0, 10]),
            hostile: rng.pick(&[0, 20, 100]),
            restarts: rng.below(3) as u32,
            partitions,
            storm,
        }
    }

    /// How long after the storm every binding must be registered again: the longest
    /// backoff (bounded by the refresh interval, or a whole interval after refused
    /// credentials), a Retry-After, and a few transactions.
    fn heal_bound(&self) -> Duration {
        self.refresh.mul_f64(1.1)
            + Duration::from_secs(RETRY_AFTER_MAX)
            + self.timeout * 4
            + Duration::from_secs(30)
    }
}

const RETRY_AFTER_MAX: u64 = 60;

/// The simulated registrar.
struct Registrar {
    /// Contact and expiry, per AOR.
    bindings: HashMap<String, (String, Instant)>,
    nonce: u64,
    forbidden_once: HashMap<String, bool>,
}

fn header<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    text.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

impl Registrar {
    fn new() -> Registrar {
        Registrar {
            bindings: HashMap::new(),
            nonce: 1,
            forbidden_once: HashMap::new(),
        }
    }

    fn response(request: &str, status: u16, extra: &str) -> Vec<u8> {
        let h = |n| header(request, n).unwrap_or("");
        format!(
            "SIP/2.0 {status} Sim\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=sim\r\nCall-ID: {}\r\n\
             CSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
            h("Via"),
            h("From"),
            h("To"),
            h("Call-ID"),
            h("CSeq"),
        )
        .into_bytes()
    }

    /// Answers one REGISTER (`storm`: the registrar misbehaves as the scenario says).
    fn answer(
        &mut self,
        request: &str,
        now: Instant,
        s: &Scenario,
        storm: bool,
        rng: &mut Rng,
    ) -> Vec<Vec<u8>> {
        let aor = header(request, "To").unwrap_or("").to_string();
        if storm && rng.chance(s.hostile) {
            return vec![hostile(request, rng)];
        }
        if storm && rng.chance(s.error_503) {
            let after = 1 + rng.below(RETRY_AFTER_MAX);
            return vec![Registrar::response(
                request,
                503,
                &format!("Retry-After: {after}\r\n"),
            )];
        }
        if s.auth {
            let nonce = format!("n{}", self.nonce);
            let answered = header(request, "Authorization").is_some_and(|a| {
                a.contains(&format!("nonce=\"{nonce}\"")) && a.contains("username=\"u\"")
            });
            if !answered {
                let stale = header(request, "Authorization").is_some();
                let challenge = format!(
                    "WWW-Authenticate: Digest realm=\"sim\", nonce=\"{nonce}\", qop=\"auth\"{}\r\n",
                    if stale { ", stale=true" } else { "" }
                );
                return vec![Registrar::response(request, 401, &challenge)];
            }
            if storm && rng.chance(50) {
                self.nonce += 1; // the next request meets a new nonce
            }
            if storm && rng.chance(s.forbidden) && !self.forbidden_once.contains_key(&aor) {
                self.forbidden_once.insert(aor, true);
                return vec![Registrar::response(request, 403, "")];
            }
        }
        let asked: u32 = header(request, "Expires")
            .and_then(|e| e.parse().ok())
            .unwrap_or(3600);
        let contact = header(request, "Contact").unwrap_or("").to_string();
        let uri = contact
            .split('>')
            .next()
            .unwrap_or("")
            .trim_start_matches('<')
            .to_string();
        if asked == 0 {
            self.bindings.remove(&aor);
            return vec![Registrar::response(request, 200, "")];
        }
        if let Some(min) = s.min_expires.filter(|m| asked < *m) {
            return vec![Registrar::response(
                request,
                423,
                &format!("Min-Expires: {min}\r\n"),
            )];
        }
        let granted = asked.min(3600);
        self.bindings.insert(
            aor,
            (uri.clone(), now + Duration::from_secs(granted.into())),
        );
        let contact = format!("Contact: <{uri}>;expires={granted}\r\n");
        vec![Registrar::response(request, 200, &contact)]
    }

    fn holds(&self, aor: &str, now: Instant) -> bool {
        self.bindings
            .get(aor)
            .is_some_and(|(_, until)| *until > now)
    }
}

/// One of the hostile answers a broken or malicious registrar sends.
fn hostile(request: &str, rng: &mut Rng) -> Vec<u8> {
    let ok = String::from_utf8(Registrar::response(request, 200, "")).unwrap();
    match rng.below(10) {
        0 => b"\x00\xffgarbage\r\n\r\n".to_vec(),
        1 => {
            // A challenge naming many realms.
            let realms: String = (0..120)
                .map(|i| format!("WWW-Authenticate: Digest realm=\"r{i}\", nonce=\"x{i}\"\r\n"))
                .collect();
            let many = Registrar::response(request, 401, &realms);
            if many.len() < 65_000 {
                many
            } else {
                ok.into_bytes()
            }
        }
        2 => ok.into_bytes(), // a 200 without our contact
        3 => ok.replace("Call-ID: ", "Call-ID: x").into_bytes(),
        4 => ok
            .replace("Content-Length: 0", "Content-Length: 900")
            .into_bytes(),
        5 => ok.replace("CSeq: ", "CSeq: 99999999999").into_bytes(),
        6 => Registrar::response(request, 401, "WWW-Authenticate: Basic realm=\"x\"\r\n"),
        7 => {
            let via = header(request, "Via").unwrap_or("");
            ok.replace(via, &format!("{via};received=[::1;rport=0"))
                .into_bytes()
        }
        8 => Registrar::response(request, 100, ""),
        _ => Registrar::response(request, 500, ""),
    }
}

/// What the invariants keep per binding.
#[derive(Default)]
struct Seen {
    state: Option<BindingState>,
    granted_until: Option<Instant>,
    last_failure: Option<u8>,
}

struct Sim {
    seed: u64,
    trace: bool,
    s: Scenario,
    rng: Rng,
    ep: Endpoint,
    t0: Instant,
    now: Instant,
    registrar: Registrar,
    /// Datagrams on their way: (arrival, sequence, to the registrar?, bytes).
    flying: BTreeMap<(Instant, u64), (bool, Vec<u8>)>,
    seq: u64,
    restarts_at: Vec<Instant>,
    seen: HashMap<BindingId, Seen>,
    /// Per Call-ID: the CSeq and branch of the newest transaction, and the branches ended.
    transactions: HashMap<String, (u32, String, Vec<String>)>,
    stop_done: bool,
}

impl Sim {
    fn new(seed: u64, trace: bool) -> Sim {
        let mut rng = Rng(SplitMix64(seed));
        let s = Scenario::of(&mut rng);
        let ep = Endpoint::new(Box::new(SplitMix64(seed ^ 0x5eed)), s.max_in_flight);
        let t0 = Instant::now();
        let restarts_at = (0..s.restarts)
            .map(|_| t0 + Duration::from_secs(rng.below(s.storm.as_secs())))
            .collect();
        Sim {
            seed,
            trace,
            s,
            rng,
            ep,
            t0,
            now: t0,
            registrar: Registrar::new(),
            flying: BTreeMap::new(),
            seq: 0,
            restarts_at,
            seen: HashMap::new(),
            transactions: HashMap::new(),
            stop_done: false,
        }
    }

    fn fail(&self, what: String) -> ! {
        panic!(
            "seed {}: {what} at {:?}\nscenario: {:?}\nreplay: SIM_SEED={} cargo test --test simulator -- --nocapture",
            self.seed,
            self.now - self.t0,
            self.s,
            self.seed
        )
    }

    fn storm(&self) -> bool {
        self.now - self.t0 < self.s.storm
    }

    fn partitioned(&self) -> bool {
        let at = self.now - self.t0;
        self.storm()
            && self
                .s
                .partitions
                .iter()
                .any(|(start, len)| at >= *start && at < *start + *len)
    }

    fn add_bindings(&mut self) {
        let mut credentials = CredentialStore::default();
        credentials.insert(Credential::new("sim", "u", "pw"));
        let credentials = Arc::new(credentials);
        let registrar: SocketAddr = REGISTRAR.parse().unwrap();
        let specs = (1..=self.s.bindings)
            .map(|n| BindingSpec {
                id: BindingId(n),
                config: BindingConfig {
                    user: format!("b{n}").into(),
                    aor: format!("sip:b{n}@sim.example"),
                    request_uri: "sip:sim.example".into(),
                    local: LOCAL.parse().unwrap(),
                    route: None,
                    expires: self.s.expires,
                    refresh_interval: self.s.refresh,
                    timeout: self.s.timeout,
                    nat_detect: true,
                    transport: Transport::Udp,
                    credentials: credentials.clone(),
                    user_agent: "sim".into(),
                    retry_base: Duration::from_secs(1),
                    retry_max: Duration::from_secs(120),
                    instance: None,
                    reg_id: None,
                    share_challenges: false,
                },
                destination: Located::single(Target::udp(registrar)),
                second_flow: None,
            })
            .collect();
        self.ep.add(self.now, specs);
    }

    /// Puts a datagram on the network (lost, duplicated, delayed as the storm says).
    fn send(&mut self, to_registrar: bool, bytes: Vec<u8>) {
        let storm = self.storm();
        if self.partitioned() || (storm && self.rng.chance(self.s.loss)) {
            return;
        }
        let copies = if storm && self.rng.chance(self.s.duplicate) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let delay = match storm {
                true => 1 + self.rng.below(self.s.max_delay_ms),
                false => 1 + self.rng.below(20),
            };
            self.seq += 1;
            let at = self.now + Duration::from_millis(delay);
            self.flying
                .insert((at, self.seq), (to_registrar, bytes.clone()));
        }
    }

    /// Takes what the endpoint sends and reports, checking the invariants.
    fn drain(&mut self) {
        while let Some(t) = self.ep.poll_transmit() {
            if t.contents.len() > MAX_REQUEST {
                self.fail(format!("a request of {} bytes", t.contents.len()));
            }
            if let Ok(text) = std::str::from_utf8(&t.contents)
                && text.starts_with("REGISTER")
            {
                self.check_transaction(text);
            }
            if self.trace {
                let first = String::from_utf8_lossy(&t.contents);
                let cseq = header(&first, "CSeq").unwrap_or("");
                println!(
                    "{:>10.3?} -> {} {}",
                    self.now - self.t0,
                    header(&first, "To").unwrap_or(""),
                    cseq
                );
            }
            self.send(true, t.contents);
        }
        while let Some(event) = self.ep.poll_event() {
            if self.trace {
                println!("{:>10.3?} {event:?}", self.now - self.t0);
            }
            match event {
                Event::State { id, state } => self.seen.entry(id).or_default().state = state,
                Event::Binding { id, event } => {
                    let now = self.now;
                    let seen = self.seen.entry(id).or_default();
                    match event {
                        BindingEvent::Registered { expires, .. } => {
                            let until = now + Duration::from_secs(expires.into());
                            if seen.granted_until.is_none_or(|u| u < until) {
                                self.fail(format!("{id:?} registered for longer than granted"));
                            }
                            let seen = self.seen.entry(id).or_default();
                            seen.last_failure = None;
                        }
                        BindingEvent::Failed(f) => {
                            let kind = f.kind();
                            if seen.last_failure == Some(kind) {
                                self.fail(format!("{id:?}: {f} reported twice in one episode"));
                            }
                            let seen = self.seen.entry(id).or_default();
                            seen.last_failure = Some(kind);
                        }
                        BindingEvent::Unregistered => {}
                    }
                }
                Event::StopDone(_) => self.stop_done = true,
                _ => {}
            }
        }
        for (id, seen) in &self.seen {
            if seen.state == Some(BindingState::Registered)
                && seen.granted_until.is_some_and(|until| self.now >= until)
            {
                self.fail(format!("{id:?} registered past its granted expiry"));
            }
        }
        let footprint = self.ep.footprint();
        if footprint > 8 * self.s.bindings as usize + 64 {
            self.fail(format!("the endpoint's tables hold {footprint} entries"));
        }
    }

    /// A 2xx granting a binding's contact, as the endpoint receives it: the binding may
    /// be registered until then at most (refreshes report nothing new, so the grant is
    /// read here; an upper bound, as the endpoint may drop the answer).
    fn note_grant(&mut self, bytes: &[u8]) {
        let text = String::from_utf8_lossy(bytes);
        if !text.starts_with("SIP/2.0 2") {
            return;
        }
        let granted = header(&text, "Contact")
            .and_then(|c| c.split("expires=").nth(1))
            .and_then(|e| e.trim().parse::<u64>().ok());
        let id = header(&text, "To")
            .and_then(|t| t.strip_prefix("<sip:b"))
            .and_then(|t| t.split('@').next())
            .and_then(|n| n.parse().ok())
            .map(BindingId);
        if let (Some(granted), Some(id)) = (granted, id) {
            let until = self.now + Duration::from_secs(granted);
            let seen = self.seen.entry(id).or_default();
            seen.granted_until = Some(seen.granted_until.map_or(until, |u| u.max(until)));
        }
    }

    fn check_transaction(&mut self, request: &str) {
        let call_id = header(request, "Call-ID").unwrap_or("").to_string();
        let cseq: u32 = header(request, "CSeq")
            .and_then(|c| c.split(' ').next())
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let via = header(request, "Via").unwrap_or("");
        let branch = via.split("branch=").nth(1).unwrap_or("").to_string();
        match self.transactions.get_mut(&call_id) {
            None => {
                self.transactions
                    .insert(call_id, (cseq, branch, Vec::new()));
            }
            Some((last_cseq, last_branch, ended)) => {
                if branch == *last_branch {
                    if cseq != *last_cseq {
                        let why = format!("{call_id}: a retransmission with another CSeq");
                        self.fail(why);
                    }
                } else if ended.contains(&branch) {
                    self.fail(format!(
                        "{call_id}: an ended transaction sent again (two in flight)"
                    ));
                } else if cseq <= *last_cseq {
                    let why = format!("{call_id}: CSeq {cseq} after {last_cseq}");
                    self.fail(why);
                } else {
                    let old = std::mem::replace(last_branch, branch);
                    ended.push(old);
                    if ended.len() > 64 {
                        ended.remove(0);
                    }
                    *last_cseq = cseq;
                }
            }
        }
    }

    /// Runs the next thing that happens: a datagram arriving, a restart, or a timer.
    fn step(&mut self, until: Instant) -> bool {
        let timer = self.ep.poll_timeout();
        let datagram = self.flying.keys().next().map(|(at, _)| *at);
        let restart = self.restarts_at.iter().min().copied();
        let Some(next) = [timer, datagram, restart].into_iter().flatten().min() else {
            return false;
        };
        if next > until {
            return false;
        }
        self.now = next.max(self.now);
        if timer == Some(next) {
            // Time first: what falls due at an instant happens before anything arriving then.
            self.ep.handle_timeout(self.now);
        } else if restart == Some(next) {
            self.restarts_at.retain(|r| *r != next);
            self.registrar = Registrar::new();
            if self.trace {
                println!("{:>10.3?} registrar restarted empty", self.now - self.t0);
            }
        } else if datagram == Some(next) {
            let key = *self.flying.keys().next().unwrap();
            let (to_registrar, bytes) = self.flying.remove(&key).unwrap();
            if to_registrar {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let (storm, now) = (self.storm(), self.now);
                let answers = self
                    .registrar
                    .answer(&text, now, &self.s, storm, &mut self.rng);
                for answer in answers {
                    self.send(false, answer);
                }
            } else {
                if self.trace {
                    let text = String::from_utf8_lossy(&bytes);
                    let status = text.get(..12).unwrap_or("");
                    let to = header(&text, "To").unwrap_or("");
                    let cseq = header(&text, "CSeq").unwrap_or("");
                    let contact = header(&text, "Contact").unwrap_or("");
                    let at = self.now - self.t0;
                    println!("{at:>10.3?} <- {status} {to} {cseq} {contact}");
                }
                self.note_grant(&bytes);
                self.ep
                    .handle_datagram(self.now, REGISTRAR.parse().unwrap(), &bytes);
            }
        }
        self.drain();
        true
    }

    fn run_until(&mut self, at: Instant) {
        let mut steps = 0u64;
        let mut still = (self.now, 0u32);
        while self.step(at) {
            steps += 1;
            if steps > 2_000_000 {
                self.fail("more than 2,000,000 steps: a loop".into());
            }
            // Time must move on: a timer due again and again at the same instant spins.
            if self.now == still.0 {
                still.1 += 1;
                if still.1 > 10_000 {
                    self.fail("10,000 steps at one instant: the endpoint spins".into());
                }
            } else {
                still = (self.now, 0);
            }
        }
        self.now = self.now.max(at);
    }

    fn run(mut self) {
        self.add_bindings();
        self.drain();
        let calm = self.t0 + self.s.storm;
        self.run_until(calm);
        let healed = calm + self.s.heal_bound();
        self.run_until(healed);
        for n in 1..=self.s.bindings {
            let id = BindingId(n);
            let state = self.seen.get(&id).and_then(|s| s.state);
            if state != Some(BindingState::Registered) && state != Some(BindingState::Registering) {
                self.fail(format!(
                    "{id:?} is {state:?} {:?} after the storm",
                    self.s.heal_bound()
                ));
            }
            if !self
                .registrar
                .holds(&format!("<sip:b{n}@sim.example>"), self.now)
                && state == Some(BindingState::Registered)
            {
                self.fail(format!(
                    "{id:?} says registered; the registrar does not hold it"
                ));
            }
        }
        // A calm, bounded stop removes every binding.
        self.ep
            .stop_within(self.now, None, Some(1), Some(Duration::from_secs(10)));
        self.drain();
        let end = self.now + Duration::from_secs(11);
        self.run_until(end);
        if !self.stop_done {
            self.fail("the stop did not end".into());
        }
        let left = self.registrar.bindings.len();
        if left > 0 {
            self.fail(format!(
                "{left} bindings left at the registrar after a calm stop"
            ));
        }
    }
}

#[test]
fn seeds_of_storm_and_calm_keep_every_invariant() {
    if let Ok(seed) = std::env::var("SIM_SEED") {
        let seed = seed.parse().expect("SIM_SEED is a number");
        let sim = Sim::new(seed, true);
        println!("scenario: {:?}", sim.s);
        sim.run();
        return;
    }
    let seeds: u64 = std::env::var("SIM_SEEDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(500);
    let started = Instant::now();
    for seed in 0..seeds {
        Sim::new(seed, false).run();
    }
    println!("{seeds} seeds in {:?}", started.elapsed());
}
