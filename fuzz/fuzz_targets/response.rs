//! Bytes from the network into a binding's state machine. The input is a script of steps
//! separated by `|#|`; each step's first byte picks an action:
//! 0 a response (parsed from the rest; Via branch, Call-ID and CSeq are made to match the
//! binding, so the fuzzer reaches every state), 1 a clock advance, 2 stop, 3 new credentials,
//! 4 another target available or not (failover and redirects), anything else the raw bytes
//! through the parser only.
//! An input of odd length runs the binding with shared challenges (its own challenges go
//! on the board, and it may take them from there after its credentials were cleared).
//! Invariants: nothing panics, a transaction in flight always has a deadline, and a stopped
//! binding ends within bounded time whatever was received.
#![no_main]

use lanscape_sip::engine::binding::{Binding, BindingConfig, BindingState, Entropy, Output};
use lanscape_sip::engine::digest::{Credential, CredentialStore};
use lanscape_sip::engine::message::parse_response;
use libfuzzer_sys::fuzz_target;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Counter(u64);
impl Entropy for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
}

fn config(share_challenges: bool) -> BindingConfig {
    let mut credentials = CredentialStore::default();
    credentials.insert(Credential::new("", "alice", "pw"));
    BindingConfig {
        user: "alice".into(),
        aor: "sip:alice@example.com".into(),
        request_uri: "sip:example.com".into(),
        local: "192.0.2.10:5060".parse().unwrap(),
        route: None,
        expires: 600,
        refresh_interval: Duration::from_secs(300),
        timeout: Duration::from_secs(8),
        nat_detect: true,
        transport: lanscape_sip::engine::transport::Transport::Udp,
        credentials: Arc::new(credentials),
        user_agent: "fuzz".into(),
        retry_base: Duration::from_secs(1),
        retry_max: Duration::from_secs(30),
        instance: None,
        reg_id: None,
        share_challenges,
    }
}

fn check(b: &Binding, out: &[Output]) {
    if matches!(
        b.state(),
        BindingState::Registering | BindingState::Unregistering
    ) {
        assert!(
            b.next_deadline().is_some(),
            "a transaction without a deadline"
        );
        assert!(b.branch().is_some());
    }
    for o in out {
        if let Output::Send(bytes) | Output::Retransmit(bytes) = o {
            assert!(bytes.starts_with(b"REGISTER sip:example.com SIP/2.0\r\n"));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut e = Counter(1);
    let mut b = Binding::new(config(data.len() % 2 == 1), &mut e);
    let mut now = Instant::now();
    let mut out = Vec::new();
    b.start(now, &mut e, &mut out);
    check(&b, &out);
    for step in split(data) {
        out.clear();
        let (action, rest) = match step.split_first() {
            Some((a, r)) => (*a, r),
            None => continue,
        };
        match action {
            0 => {
                if let Ok(mut r) = parse_response(rest) {
                    if let Some(branch) = b.branch() {
                        r.branch = branch.to_string().into();
                    }
                    r.call_id = b.call_id().to_string().into();
                    r.cseq = b.cseq();
                    r.cseq_method = "REGISTER".into();
                    b.on_response(&r, now, &mut e, &mut out);
                }
            }
            1 => {
                let ms = rest
                    .iter()
                    .take(3)
                    .fold(0u64, |a, &x| a * 256 + u64::from(x));
                now += Duration::from_millis(ms % 700_000);
                b.on_timer(now, &mut e, &mut out);
            }
            2 => b.stop(now, &mut e, &mut out),
            3 => {
                let mut c = CredentialStore::default();
                c.insert(Credential::new(&String::from_utf8_lossy(rest), "bob", "x"));
                b.set_credentials(Arc::new(c), now);
                // The owner runs what fell due, as the endpoint does.
                if b.next_deadline().is_some_and(|at| at <= now) {
                    b.on_timer(now, &mut e, &mut out);
                }
            }
            4 => {
                b.set_alternative(rest.first().is_some_and(|x| x & 1 == 1));
                // A failover or redirect is due at once: the endpoint runs it.
                if b.next_deadline().is_some_and(|at| at <= now) {
                    b.on_timer(now, &mut e, &mut out);
                }
            }
            _ => {
                let _ = parse_response(rest);
            }
        }
        check(&b, &out);
    }
    // However it got here, a stop ends within the transaction timeout (and its retries).
    out.clear();
    b.stop(now, &mut e, &mut out);
    for _ in 0..200 {
        if b.is_done() {
            return;
        }
        match b.next_deadline() {
            Some(at) => now = now.max(at),
            None => break,
        }
        b.on_timer(now, &mut e, &mut out);
    }
    assert!(b.is_done(), "stop did not end: {:?}", b.state());
});

fn split(data: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 3 <= data.len() {
        if &data[i..i + 3] == b"|#|" {
            parts.push(&data[start..i]);
            i += 3;
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}
