//! Heap bytes per binding held by the sans-I/O endpoint: `N` names (default 100,000,
//! `MEMORY_SIZES=…` to change) registered with digest (a 401 with an MD5 challenge, then
//! the 200) through an in-process registrar on a simulated clock, counted by a counting
//! allocator. This is the engine's part of the load benchmark's resident bytes per binding
//! (the rest: the API's name maps, the allocator's own overhead and free lists).
//!
//! It also times the endpoint's own work per registration (two requests built, a challenge
//! answered, two responses read, the events), without sockets, threads or the registrar:
//! the part of the load benchmark's CPU figure that is the engine's code, measured without
//! the noise of a real network.

use lanscape_sip::engine::binding::BindingConfig;
use lanscape_sip::engine::digest::{Credential, CredentialStore};
use lanscape_sip::engine::endpoint::{BindingId, BindingSpec, Endpoint, Event};
use lanscape_sip::engine::target::Located;
use lanscape_sip::engine::transport::{Target, Transport};
use lanscape_sip::testkit::seeded::SplitMix64;
use std::alloc::{GlobalAlloc, Layout, System};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
/// Blocks allocated and not yet freed (each costs the allocator a header and rounding
/// beyond its bytes).
static BLOCKS: AtomicIsize = AtomicIsize::new(0);
/// Allocations (and reallocations) made, counted only while `COUNTING`.
static ALLOCATIONS: AtomicIsize = AtomicIsize::new(0);
static COUNTING: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn count_allocation() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `f`, adding its time and allocations to `core`.
fn in_core<T>(core: &mut (Duration, isize), f: impl FnOnce() -> T) -> T {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let out = f();
    core.0 += started.elapsed();
    COUNTING.store(false, Ordering::Relaxed);
    core.1 += ALLOCATIONS.load(Ordering::Relaxed) - before;
    out
}

// SAFETY: every call is forwarded to the system allocator unchanged; only a counter of
// live bytes is kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        count_allocation();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        count_allocation();
        // SAFETY: the caller's contract is the system allocator's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|l| l.strip_prefix(": ")))
        .unwrap_or("")
}

/// The registrar's answer: a 401 to a REGISTER without credentials, a 200 to one with.
fn answer(request: &str) -> Vec<u8> {
    let echo = format!(
        "Via: {}\r\nFrom: {}\r\nTo: {};tag=r\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        header(request, "Via"),
        header(request, "From"),
        header(request, "To"),
        header(request, "Call-ID"),
        header(request, "CSeq"),
    );
    if header(request, "Authorization").is_empty() {
        format!(
            "SIP/2.0 401 Unauthorized\r\n{echo}WWW-Authenticate: Digest realm=\"example.com\", \
             nonce=\"Y2n4pGNp+N1fNHvUkBnxz5Dk3xMQ4eab\", qop=\"auth\", algorithm=MD5\r\n\
             Content-Length: 0\r\n\r\n"
        )
    } else {
        format!(
            "SIP/2.0 200 OK\r\n{echo}Contact: {};expires=3600\r\nContent-Length: 0\r\n\r\n",
            header(request, "Contact")
        )
    }
    .into_bytes()
}

fn run(n: u64) {
    let hop: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let target = Target::udp(hop);
    let destination = Arc::new(Located {
        key: target.to_string(),
        query: None,
        targets: vec![target],
        valid_until: None,
    });
    let mut credentials = CredentialStore::default();
    credentials.insert(Credential::new("example.com", "*", "secret"));
    let credentials = Arc::new(credentials);
    let now = Instant::now();
    let before = LIVE.load(Ordering::Relaxed);
    let blocks_before = BLOCKS.load(Ordering::Relaxed);
    let mut endpoint = Endpoint::new(Box::new(SplitMix64(7)), 256);
    // Built once per call, as the API does.
    let request_uri: Arc<str> = "sip:example.com".into();
    let user_agent: Arc<str> = "liblanscape-sip".into();
    let specs = (0..n)
        .map(|i| {
            let user = format!("{}", 100_000_000 + i);
            BindingSpec {
                id: BindingId(i),
                config: BindingConfig {
                    aor: format!("sip:{user}@example.com"),
                    user: user.into(),
                    request_uri: request_uri.clone(),
                    local: "127.0.0.1:5062".parse().unwrap(),
                    transport: Transport::Udp,
                    route: None,
                    expires: 3600,
                    refresh_interval: Duration::from_secs(1800),
                    timeout: Duration::from_secs(32),
                    nat_detect: false,
                    credentials: credentials.clone(),
                    user_agent: user_agent.clone(),
                    retry_base: Duration::from_secs(1),
                    retry_max: Duration::from_secs(300),
                    instance: None,
                    reg_id: None,
                    share_challenges: false,
                },
                destination: destination.clone(),
                second_flow: None,
            }
        })
        .collect();
    let mut core = (Duration::ZERO, 0);
    in_core(&mut core, || endpoint.add(now, specs));
    let mut registered = 0;
    let mut answers = Vec::new();
    let mut transmits = Vec::new();
    let mut events = Vec::new();
    while registered < n {
        in_core(&mut core, || {
            transmits.extend(std::iter::from_fn(|| endpoint.poll_transmit()));
            events.extend(std::iter::from_fn(|| endpoint.poll_event()));
        });
        for transmit in transmits.drain(..) {
            answers.push(answer(std::str::from_utf8(&transmit.contents).unwrap()));
        }
        for event in events.drain(..) {
            if let Event::Binding { event, .. } = event {
                match event {
                    lanscape_sip::engine::binding::BindingEvent::Registered { .. } => {
                        registered += 1
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        if answers.is_empty() && registered < n {
            panic!("stalled at {registered} of {n}");
        }
        in_core(&mut core, || {
            for bytes in &answers {
                endpoint.handle_datagram(now, hop, bytes);
            }
        });
        answers.clear();
    }
    answers.shrink_to_fit();
    transmits.shrink_to_fit();
    events.shrink_to_fit();
    let held = LIVE.load(Ordering::Relaxed) - before;
    let blocks = BLOCKS.load(Ordering::Relaxed) - blocks_before;
    println!(
        "| {n} | {} | {:.1} | {:.2} | {:.1} |",
        held / n as isize,
        blocks as f64 / n as f64,
        core.0.as_secs_f64() * 1e6 / n as f64,
        core.1 as f64 / n as f64,
    );
    drop(endpoint);
}

fn main() {
    let sizes = std::env::var("MEMORY_SIZES").unwrap_or_else(|_| "1000,100000".into());
    println!(
        "| N | engine heap bytes per binding | heap blocks per binding | engine core µs per registration | allocations per registration |\n|---:|---:|---:|---:|---:|"
    );
    for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        run(n);
    }
}
