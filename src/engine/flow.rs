//! SIP Outbound flows (RFC 5626 §4.4): keep-alives on each flow a registrar confirmed, and
//! the detection of one that failed. On UDP the keep-alive is a STUN Binding request
//! (retransmitted like one, RFC 5389 §7.2.1); on TCP and TLS a CRLF CRLF ping that the
//! server answers with a CRLF pong. Without an answer within [`ANSWER_TIMEOUT`] the flow
//! has failed and its bindings register again over a new one.

use crate::engine::binding::Entropy;
use crate::engine::stun::{self, BindingResponse, TransactionId};
use crate::engine::transport::Target;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long a ping waits for its pong (RFC 5626 §4.4.1), and a STUN keep-alive for its
/// response.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// First STUN retransmission (RFC 5389's RTO); it doubles.
const STUN_RTO: Duration = Duration::from_millis(500);

/// What the flows ask of the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowOutput {
    /// Send a keep-alive.
    Send(Target, Vec<u8>),
    /// The flow to this target failed: no answer to its keep-alive.
    Failed(Target),
}

#[derive(Debug)]
struct Flow {
    /// Keep-alives at a random point of this range (RFC 5626 §4.4.1).
    interval: (Duration, Duration),
    next: Instant,
    waiting: Option<Waiting>,
}

#[derive(Debug)]
struct Waiting {
    deadline: Instant,
    /// On UDP: the STUN transaction, when it is retransmitted next, and the gap after.
    stun: Option<(TransactionId, Instant, Duration)>,
}

/// Every watched flow of an endpoint, by target.
#[derive(Debug, Default)]
pub struct Flows {
    flows: HashMap<Target, Flow>,
}

/// The keep-alive interval (RFC 5626 §4.4.1): 80-100 % of the registrar's Flow-Timer;
/// without one, 24-29 s on UDP and 95-120 s on TCP and TLS.
fn interval(target: &Target, flow_timer: Option<u32>) -> (Duration, Duration) {
    match flow_timer.filter(|t| *t > 0) {
        Some(t) => {
            let t = Duration::from_secs(u64::from(t));
            (t.mul_f64(0.8), t)
        }
        None if target.transport.is_stream() => (Duration::from_secs(95), Duration::from_secs(120)),
        None => (Duration::from_secs(24), Duration::from_secs(29)),
    }
}

fn pick(range: (Duration, Duration), entropy: &mut dyn Entropy) -> Duration {
    let span = range.1.saturating_sub(range.0).as_millis() as u64;
    range.0 + Duration::from_millis(entropy.next_u64() % (span + 1))
}

impl Flows {
    /// Keeps the flow to `target` alive at the registrar's Flow-Timer (or the defaults);
    /// a flow already watched keeps its schedule and takes the new interval.
    pub fn watch(
        &mut self,
        target: &Target,
        flow_timer: Option<u32>,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) {
        let range = interval(target, flow_timer);
        match self.flows.get_mut(target) {
            Some(flow) => flow.interval = range,
            None => {
                let next = now + pick(range, entropy);
                self.flows.insert(
                    target.clone(),
                    Flow {
                        interval: range,
                        next,
                        waiting: None,
                    },
                );
            }
        }
    }

    /// Stops watching the flow to `target`.
    pub fn forget(&mut self, target: &Target) {
        self.flows.remove(target);
    }

    /// When [`Flows::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.flows
            .values()
            .map(|f| match &f.waiting {
                Some(w) => w.stun.map_or(w.deadline, |(_, at, _)| at.min(w.deadline)),
                None => f.next,
            })
            .min()
    }

    /// Sends the keep-alives due, retransmits STUN requests, and fails flows whose answer
    /// did not come.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<FlowOutput>,
    ) {
        let mut failed = Vec::new();
        for (target, flow) in &mut self.flows {
            match &mut flow.waiting {
                Some(w) if w.deadline <= now => failed.push(target.clone()),
                Some(Waiting {
                    stun: Some((id, at, gap)),
                    ..
                }) if *at <= now => {
                    out.push(FlowOutput::Send(target.clone(), stun::binding_request(id)));
                    *at = now + *gap;
                    *gap *= 2;
                }
                Some(_) => {}
                None if flow.next <= now => {
                    let stun = (!target.transport.is_stream()).then(|| {
                        let mut id = [0u8; 12];
                        id[..8].copy_from_slice(&entropy.next_u64().to_be_bytes());
                        id[8..].copy_from_slice(&entropy.next_u64().to_be_bytes()[..4]);
                        (id, now + STUN_RTO, STUN_RTO * 2)
                    });
                    let ping = match &stun {
                        Some((id, _, _)) => stun::binding_request(id),
                        None => b"\r\n\r\n".to_vec(),
                    };
                    out.push(FlowOutput::Send(target.clone(), ping));
                    flow.waiting = Some(Waiting {
                        deadline: now + ANSWER_TIMEOUT,
                        stun,
                    });
                }
                None => {}
            }
        }
        failed.sort_unstable();
        for target in failed {
            self.flows.remove(&target);
            out.push(FlowOutput::Failed(target));
        }
    }

    /// A STUN response from `target`: the keep-alive it answers is done. Returns whether it
    /// answered one.
    pub fn on_stun(
        &mut self,
        target: &Target,
        response: &BindingResponse,
        now: Instant,
        entropy: &mut dyn Entropy,
    ) -> bool {
        let Some(flow) = self.flows.get_mut(target) else {
            return false;
        };
        let answers = matches!(
            &flow.waiting,
            Some(Waiting { stun: Some((id, _, _)), .. }) if *id == response.id
        );
        if answers {
            flow.waiting = None;
            flow.next = now + pick(flow.interval, entropy);
        }
        answers
    }

    /// Bytes came on the stream to `target`: the flow is alive (a pong, or anything else).
    pub fn on_stream_data(&mut self, target: &Target, now: Instant, entropy: &mut dyn Entropy) {
        if let Some(flow) = self.flows.get_mut(target)
            && flow.waiting.take().is_some()
        {
            flow.next = now + pick(flow.interval, entropy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::binding::Counter;
    use crate::engine::transport::Transport;
    use std::net::SocketAddr;

    fn target(transport: Transport) -> Target {
        Target {
            transport,
            addr: SocketAddr::from(([127, 0, 0, 1], 5060)),
            tls: None,
        }
    }

    /// Runs timeouts until something comes out; returns when (since `t0`) and what.
    fn next(flows: &mut Flows, now: &mut Instant, e: &mut Counter) -> Vec<FlowOutput> {
        loop {
            *now = flows.poll_timeout().expect("a timeout");
            let mut out = Vec::new();
            flows.handle_timeout(*now, e, &mut out);
            if !out.is_empty() {
                return out;
            }
        }
    }

    #[test]
    fn udp_keep_alives_are_stun_at_the_flow_timer_and_a_silent_flow_fails() {
        let (t0, mut e) = (Instant::now(), Counter(0));
        let mut now = t0;
        let udp = target(Transport::Udp);
        let mut flows = Flows::default();
        flows.watch(&udp, Some(30), now, &mut e);
        let out = next(&mut flows, &mut now, &mut e);
        let waited = now - t0;
        assert!(waited >= Duration::from_secs(24) && waited <= Duration::from_secs(30));
        let [FlowOutput::Send(to, request)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(to, &udp);
        assert!(stun::is_stun(request));
        // Answered: the next keep-alive comes a whole interval later.
        let id: TransactionId = request[8..20].try_into().unwrap();
        let answer = BindingResponse {
            id,
            success: true,
            mapped: None,
        };
        let sent_at = now;
        assert!(flows.on_stun(&udp, &answer, now, &mut e));
        assert!(!flows.on_stun(&udp, &answer, now, &mut e), "only once");
        let out = next(&mut flows, &mut now, &mut e);
        assert!(now - sent_at >= Duration::from_secs(24));
        let [FlowOutput::Send(_, second)] = &out[..] else {
            panic!("{out:?}")
        };
        assert_ne!(second[8..20], request[8..20], "a new transaction");
        // Unanswered: retransmitted at 0.5, 1.5, 3.5, 7.5 s, then failed at 10 s.
        let started = now;
        let mut resent = Vec::new();
        let failed_at = loop {
            match &next(&mut flows, &mut now, &mut e)[..] {
                [FlowOutput::Send(_, again)] => {
                    assert_eq!(again, second, "the same transaction");
                    resent.push(now - started);
                }
                [FlowOutput::Failed(t)] => {
                    assert_eq!(t, &udp);
                    break now - started;
                }
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(resent, [500, 1500, 3500, 7500].map(Duration::from_millis));
        assert_eq!(failed_at, ANSWER_TIMEOUT);
        assert_eq!(
            flows.poll_timeout(),
            None,
            "a failed flow is no longer watched"
        );
    }

    #[test]
    fn stream_keep_alives_are_crlf_pings_answered_by_anything() {
        let (t0, mut e) = (Instant::now(), Counter(0));
        let mut now = t0;
        let tcp = target(Transport::Tcp);
        let mut flows = Flows::default();
        flows.watch(&tcp, None, now, &mut e);
        let out = next(&mut flows, &mut now, &mut e);
        assert!(now - t0 >= Duration::from_secs(95) && now - t0 <= Duration::from_secs(120));
        assert_eq!(out, [FlowOutput::Send(tcp.clone(), b"\r\n\r\n".to_vec())]);
        flows.on_stream_data(&tcp, now + Duration::from_secs(1), &mut e);
        let pinged = now;
        let out = next(&mut flows, &mut now, &mut e);
        assert!(matches!(&out[..], [FlowOutput::Send(..)]));
        assert!(now - pinged >= Duration::from_secs(95));
        // No pong, and no retransmission on a stream: failed 10 s later.
        let pinged = now;
        assert_eq!(
            next(&mut flows, &mut now, &mut e),
            [FlowOutput::Failed(tcp)]
        );
        assert_eq!(now - pinged, ANSWER_TIMEOUT);
    }
}
