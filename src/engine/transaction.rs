//! Non-INVITE client transaction over an unreliable transport (RFC 3261 §17.1.2), sans I/O.
//!
//! The transaction owns the request bytes and its timers; the caller feeds it the current
//! time and the status of matching responses, and it says what to (re)send and when it gave
//! up. Matching a response to the transaction (branch, CSeq method, source) is the caller's
//! job, so that a stray packet never reaches it. Retransmissions of the final response
//! (what Timer K absorbs in the RFC) are dropped by that matching once the transaction is
//! gone, which is the same observable behaviour.

use std::time::{Duration, Instant};

/// RFC 3261 T1: round-trip estimate, first retransmission interval.
pub(crate) const T1: Duration = Duration::from_millis(500);
/// RFC 3261 T2: largest retransmission interval for non-INVITE requests.
pub(crate) const T2: Duration = Duration::from_secs(4);
/// Timer F by default: 64 * T1.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(32);

/// Where the transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxState {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived, or Timer F fired.
    Terminated,
}

/// What a timer tick asks the caller to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxTimer {
    /// Nothing is due.
    Idle,
    /// Send the request again (Timer E).
    Retransmit,
    /// Timer F fired: the transaction failed.
    TimedOut,
}

/// A transaction's branch: RFC 3261's magic cookie `z9hG4bK` and 16 hex digits of a random
/// number (§8.1.1.7), kept as the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Branch(pub u64);

impl Branch {
    /// The branch a response names, if it has the form of ours (anything else cannot
    /// match one of our transactions).
    pub fn parse(text: &str) -> Option<Branch> {
        let digits = text.strip_prefix("z9hG4bK")?;
        (digits.len() == 16
            && digits
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .then(|| u64::from_str_radix(digits, 16).ok().map(Branch))
        .flatten()
    }
}

impl std::fmt::Display for Branch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "z9hG4bK{:016x}", self.0)
    }
}

/// A non-INVITE client transaction.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    branch: Branch,
    request: Vec<u8>,
    state: TxState,
    interval: Duration,
    next_retransmit: Instant,
    deadline: Instant,
    transmissions: u32,
    /// Why the last answer to it that could not be read was dropped, if one was.
    unreadable: Option<Box<str>>,
}

impl ClientTransaction {
    /// Starts a transaction; the caller sends `request()` once now. Over a reliable
    /// transport (TCP, TLS) Timer E is not used (§17.1.2.2); Timer F still bounds it.
    pub fn start(
        branch: Branch,
        request: Vec<u8>,
        now: Instant,
        timeout: Duration,
        reliable: bool,
    ) -> Self {
        let deadline = now + timeout;
        ClientTransaction {
            branch,
            request,
            state: TxState::Trying,
            interval: T1,
            next_retransmit: if reliable { deadline } else { now + T1 },
            deadline,
            transmissions: 1,
            unreadable: None,
        }
    }

    /// The Via branch identifying this transaction.
    pub fn branch(&self) -> Branch {
        self.branch
    }

    /// An answer to this transaction arrived but could not be read (`why`): if no usable
    /// one follows, the transaction ends for that reason rather than as a bare timeout.
    pub fn note_unreadable(&mut self, why: &str) {
        self.unreadable = Some(why.into());
    }

    /// See [`ClientTransaction::note_unreadable`].
    pub fn unreadable(&self) -> Option<&str> {
        self.unreadable.as_deref()
    }

    /// When Timer F fires.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Ends the transaction at `at` (Timer F moved there, sooner or later than it was); it
    /// goes on retransmitting until then.
    pub fn end_at(&mut self, at: Instant) {
        self.deadline = at;
    }

    /// The request bytes.
    pub fn request(&self) -> &[u8] {
        &self.request
    }

    /// Current state.
    #[cfg(test)]
    pub fn state(&self) -> TxState {
        self.state
    }

    /// How many times the request was sent, first transmission included.
    #[cfg(test)]
    pub fn transmissions(&self) -> u32 {
        self.transmissions
    }

    /// When `on_timer` must next be called, if ever.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            TxState::Terminated => None,
            _ => Some(self.next_retransmit.min(self.deadline)),
        }
    }

    /// Advances the timers to `now`.
    pub fn on_timer(&mut self, now: Instant) -> TxTimer {
        if self.state == TxState::Terminated {
            return TxTimer::Idle;
        }
        if now >= self.deadline {
            self.state = TxState::Terminated;
            return TxTimer::TimedOut;
        }
        if now >= self.next_retransmit && self.next_retransmit < self.deadline {
            // Trying: E doubles up to T2. Proceeding: E is T2 (§17.1.2.2).
            self.interval = match self.state {
                TxState::Trying => (self.interval * 2).min(T2),
                _ => T2,
            };
            self.next_retransmit = now + self.interval;
            self.transmissions += 1;
            return TxTimer::Retransmit;
        }
        TxTimer::Idle
    }

    /// Feeds the status of a matching response; returns `true` when it is final.
    pub fn on_response(&mut self, status: u16, now: Instant) -> bool {
        match (self.state, status) {
            (TxState::Terminated, _) => false,
            (_, 100..=199) => {
                if self.state == TxState::Trying {
                    self.state = TxState::Proceeding;
                    self.interval = T2;
                    if self.next_retransmit < self.deadline {
                        self.next_retransmit = self.next_retransmit.min(now + T2);
                    }
                }
                false
            }
            _ => {
                self.state = TxState::Terminated;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_branch_is_written_and_read_back_and_foreign_forms_match_nothing() {
        let b = Branch(0x00ab_cdef_0123_4567);
        assert_eq!(b.to_string(), "z9hG4bK00abcdef01234567");
        assert_eq!(Branch::parse(&b.to_string()), Some(b));
        for foreign in [
            "z9hG4bK00ABCDEF01234567",
            "z9hG4bK00abcdef0123456",
            "z9hG4bK00abcdef012345678",
            "00abcdef01234567",
            "z9hG4bK+0abcdef01234567",
            "",
        ] {
            assert_eq!(Branch::parse(foreign), None, "{foreign}");
        }
    }

    /// Runs the timers with a simulated clock and returns the retransmission times.
    fn run(tx: &mut ClientTransaction, t0: Instant) -> (Vec<u64>, Option<u64>) {
        let mut sent = Vec::new();
        while let Some(at) = tx.next_deadline() {
            match tx.on_timer(at) {
                TxTimer::Retransmit => sent.push((at - t0).as_millis() as u64),
                TxTimer::TimedOut => return (sent, Some((at - t0).as_millis() as u64)),
                TxTimer::Idle => unreachable!("a deadline fired with nothing due"),
            }
        }
        (sent, None)
    }

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_ends_it() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::start(Branch(1), b"R".to_vec(), t0, DEFAULT_TIMEOUT, false);
        let (sent, timed_out) = run(&mut tx, t0);
        assert_eq!(
            &sent[..6],
            &[500, 1500, 3500, 7500, 11500, 15500],
            "500ms, 1s, 2s, 4s, then T2"
        );
        assert_eq!(timed_out, Some(32_000));
        assert_eq!(sent.len(), 10);
        assert_eq!(tx.transmissions(), 11);
        assert_eq!(tx.state(), TxState::Terminated);
    }

    #[test]
    fn short_timeout_bounds_retransmissions() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::start(Branch(2), vec![], t0, ms(2000), false);
        let (sent, timed_out) = run(&mut tx, t0);
        assert_eq!(sent, vec![500, 1500]);
        assert_eq!(timed_out, Some(2000));
    }

    #[test]
    fn provisional_switches_to_t2_and_final_terminates() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::start(Branch(2), vec![], t0, DEFAULT_TIMEOUT, false);
        assert!(!tx.on_response(100, t0 + ms(100)));
        assert_eq!(tx.state(), TxState::Proceeding);
        assert_eq!(tx.next_deadline(), Some(t0 + ms(500)));
        assert_eq!(tx.on_timer(t0 + ms(500)), TxTimer::Retransmit);
        assert_eq!(tx.next_deadline(), Some(t0 + ms(4500)));
        assert!(tx.on_response(200, t0 + ms(600)));
        assert_eq!(tx.next_deadline(), None);
        assert!(
            !tx.on_response(200, t0 + ms(700)),
            "a second final is ignored"
        );
        assert_eq!(tx.on_timer(t0 + ms(60_000)), TxTimer::Idle);
    }

    #[test]
    fn reliable_transports_do_not_retransmit_but_still_time_out() {
        let t0 = Instant::now();
        let mut tx = ClientTransaction::start(Branch(2), vec![], t0, ms(5000), true);
        let (sent, timed_out) = run(&mut tx, t0);
        assert!(sent.is_empty());
        assert_eq!(timed_out, Some(5000));
        let mut tx = ClientTransaction::start(Branch(2), vec![], t0, ms(5000), true);
        assert!(!tx.on_response(100, t0 + ms(10)));
        assert_eq!(
            tx.next_deadline(),
            Some(t0 + ms(5000)),
            "no Timer E after a 1xx either"
        );
    }
}
