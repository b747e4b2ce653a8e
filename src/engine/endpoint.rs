//! The registration endpoint, sans I/O: every binding sent from one local address, shaped
//! like quinn-proto's `Endpoint`.
//!
//! It owns the bindings, routes what arrives (by the top Via branch, then by the address the
//! request went to, then by Call-ID and CSeq), admits new transactions per next hop, keeps
//! every timer and stop waiter, and publishes each binding's state before the event that
//! changed it. It opens no socket, reads no clock and draws no random number: a driver
//! feeds it with [`Endpoint::handle_datagram`], [`Endpoint::handle_timeout`] and the
//! commands, and carries out what [`Endpoint::poll_transmit`] and [`Endpoint::poll_event`]
//! return, waking it again at [`Endpoint::poll_timeout`].
//!
//! Many bindings at once: at most `max_in_flight` transactions are in flight towards one
//! next hop. An input that would open a transaction (first REGISTER, refresh, retry — also a
//! retry after new credentials —, unregistration) waits in a FIFO queue while that hop is
//! full, so tens of thousands of bindings neither overflow socket buffers nor fall into
//! Timer E backoff. Retransmissions and answers to challenges continue a transaction slot
//! already held.

use crate::engine::binding::{
    Binding, BindingConfig, BindingEvent, BindingState, Entropy, Failure, Output, RegistrationInfo,
    SharedSettings,
};
use crate::engine::digest::CredentialStore;
use crate::engine::flow::{FlowOutput, Flows};
use crate::engine::message;
use crate::engine::stun;
use crate::engine::target::{
    Choice, DEFAULT_VALIDITY, Located, Query, TargetList, TransportChoice, make_target,
};
use crate::engine::transaction::Branch;
use crate::engine::transport::{StreamFramer, Target, Transport};
use crate::engine::uri::{Host, SipUri};
use rustc_hash::FxHashMap as HashMap;
use std::cmp::Reverse;
use std::collections::binary_heap::PeekMut;
use std::collections::{BinaryHeap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Most transactions in flight towards one next hop, by default.
pub(crate) const MAX_IN_FLIGHT_PER_HOP: usize = 256;

/// How long an input other than a refresh may wait for its turn before refreshes that
/// would lapse later go ahead of it (Timer F: a new registration is not held back by
/// refreshes of bindings that have an hour left).
const QUEUE_HORIZON: Duration = Duration::from_secs(32);

/// A slot freed by a timeout opens again after a random moment up to this long (see
/// `Endpoint::release_held`).
const HOLD_AFTER_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a TCP or TLS connection no binding uses any more stays open (as PJSIP keeps an
/// idle transport): a binding enabled again meanwhile reuses it, and the peer is not cut
/// off in the middle of its own last steps.
pub(crate) const STREAM_IDLE: Duration = Duration::from_secs(32);

/// Identifies a binding within its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BindingId(pub u64);

/// A binding to create: its settings and where its requests go.
#[derive(Debug, Clone)]
pub struct BindingSpec {
    /// Chosen by the caller, unique within the endpoint.
    pub id: BindingId,
    /// Settings.
    pub config: BindingConfig,
    /// Where its requests go (the registrar or outbound proxy, located): the binding uses
    /// one target at a time and moves to the next when one fails.
    pub destination: Arc<Located>,
    /// SIP Outbound's second flow (RFC 5626 §4.2, with `config.reg_id` set): the same
    /// contact registered again with `reg-id` 2 to this destination, preferring its second
    /// target. The binding's state and events then stand for both flows: registered while
    /// either is, failed only when neither is.
    pub second_flow: Option<Arc<Located>>,
}

/// The ids of second flows: the binding's own id with this bit set (callers choose ids
/// below it).
const SECOND_FLOW: u64 = 1 << 63;

/// The other flow of a binding with two.
fn partner(id: BindingId) -> BindingId {
    BindingId(id.0 ^ SECOND_FLOW)
}

/// Whether `id` is the second flow of a binding (not an id callers know).
fn is_second_flow(id: BindingId) -> bool {
    id.0 & SECOND_FLOW != 0
}

/// The binding a flow belongs to (the id callers know).
fn primary(id: BindingId) -> BindingId {
    BindingId(id.0 & !SECOND_FLOW)
}

/// What the callers of a binding with two flows were told.
#[derive(Debug, Default)]
struct Group {
    /// The state published for both flows together.
    state: Option<BindingState>,
    /// Whether the binding was reported registered since its last failure.
    registered: bool,
    /// The kind ([`Failure::kind`]) of the failure last reported, while neither flow is
    /// registered.
    failure: Option<u8>,
}

/// The state of two flows together: the one further along to being registered.
fn combine(a: Option<BindingState>, b: Option<BindingState>) -> Option<BindingState> {
    let rank = |s: BindingState| match s {
        BindingState::Registered => 4,
        BindingState::Registering => 3,
        BindingState::WaitingToRetry => 2,
        BindingState::Unregistering => 1,
        BindingState::Unregistered => 0,
    };
    match (a, b) {
        (Some(a), Some(b)) => Some(if rank(b) > rank(a) { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// Severity of a diagnostic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error = 1,
    /// Something unexpected arrived and was dropped.
    Warning = 2,
    /// Normal operation.
    Info = 3,
    /// Details.
    Debug = 4,
    /// Every SIP message sent and received (opt-in).
    Trace = 5,
}

/// Counters of an endpoint since it opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndpointStats {
    /// Requests sent (first transmissions).
    pub requests: u64,
    /// Retransmissions sent (Timer E).
    pub retransmissions: u64,
    /// Responses matched to a transaction.
    pub responses: u64,
    /// Datagrams dropped: malformed, stray, from the wrong address, or not matching.
    pub dropped: u64,
    /// Bindings alive.
    pub bindings: u64,
}

/// Bytes to send: a datagram, or bytes to write on the target's connection (which the
/// driver opens when there is none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to.
    pub destination: Target,
    /// The bytes.
    pub contents: Vec<u8>,
    /// The binding and transaction whose request this is (`None` for a keep-alive): if it
    /// cannot be sent, tell [`Endpoint::handle_send_failed`].
    pub request: Option<(BindingId, Branch)>,
}

/// What the endpoint reports, in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The published state of a binding changed (`None`: the binding ended). Comes before
    /// the event that caused it, so that a state read after an event reflects that event.
    State {
        /// Which binding.
        id: BindingId,
        /// Its state now.
        state: Option<BindingState>,
    },
    /// A binding was added: it registers as soon as its next hop admits it.
    Started(BindingId),
    /// A binding is asked to stop: it unregisters as soon as its next hop admits it.
    Stopping(BindingId),
    /// A binding reports an outcome.
    Binding {
        /// Which binding.
        id: BindingId,
        /// What happened.
        event: BindingEvent,
    },
    /// Every binding a stop waited for has ended.
    StopDone(u64),
    /// Look this server up again (its answer expired, or a redirect named it) and hand the
    /// answer to [`Endpoint::handle_located`].
    Resolve {
        /// Which list.
        key: String,
        /// What to ask.
        query: Query,
    },
    /// Close the connection to this target: its stream broke the framing rules (the
    /// bindings on it were told, as for a lost connection), or no binding uses it any more.
    Close(Target),
    /// A diagnostic.
    Log {
        /// Severity.
        level: LogLevel,
        /// Text (never contains a password).
        message: String,
    },
}

/// An input that may open a transaction, kept while its hop is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Start,
    Timer,
    Stop,
}

/// A binding waiting for its turn: when it should start at the latest, its arrival number,
/// and its id.
type Waiting = (Instant, u64, BindingId);

/// The bindings waiting for one next hop, the earliest [`Waiting`] first.
///
/// Most arrive in the order of their keys (new registrations and stops are keyed by their
/// arrival plus [`QUEUE_HORIZON`]): those are kept in a FIFO, which is then already sorted,
/// and cost O(1) each; the others (refreshes, keyed by the expiry they keep) in a heap. An
/// engine given 100,000 names at once spent more time sifting them through one heap than
/// on any other step of their registration.
#[derive(Default)]
struct WaitQueue {
    in_order: VecDeque<Waiting>,
    others: BinaryHeap<Reverse<Waiting>>,
}

impl WaitQueue {
    fn push(&mut self, entry: Waiting) {
        if self.in_order.back().is_none_or(|last| *last <= entry) {
            self.in_order.push_back(entry);
        } else {
            self.others.push(Reverse(entry));
        }
    }

    fn pop(&mut self) -> Option<Waiting> {
        match (self.in_order.front(), self.others.peek()) {
            (Some(first), Some(Reverse(other))) if other < first => {
                self.others.pop().map(|Reverse(entry)| entry)
            }
            (Some(_), _) => self.in_order.pop_front(),
            (None, _) => self.others.pop().map(|Reverse(entry)| entry),
        }
    }

    #[cfg(any(test, feature = "testkit"))]
    fn len(&self) -> usize {
        self.in_order.len() + self.others.len()
    }

    fn is_empty(&self) -> bool {
        self.in_order.is_empty() && self.others.is_empty()
    }
}

struct Slot {
    binding: Binding,
    /// The target in use.
    next_hop: Target,
    /// The target list it comes from, and the list's generation when it was chosen.
    list: Arc<str>,
    generation: u64,
    /// After a redirect: the list and Request-URI to go back to when the redirect's
    /// targets fail.
    home: Option<Box<(Arc<str>, String)>>,
    branch: Option<Branch>,
    /// The binding's next deadline, as last indexed.
    timer: Option<Instant>,
    /// When the binding's entry in the timer heap is due: never later than `timer`. A
    /// deadline that moves later keeps the entry, which is moved when it comes to the top.
    queued: Option<Instant>,
    state: Option<BindingState>,
    stopping: bool,
    /// The input waiting for a free transaction slot, if any (a stop replaces a refresh).
    pending: Option<Input>,
}

/// Transactions in flight towards `hop`, and slots held there after timeouts.
fn busy(in_flight: &HashMap<Target, usize>, held: &HashMap<Target, usize>, hop: &Target) -> usize {
    in_flight.get(hop).copied().unwrap_or(0) + held.get(hop).copied().unwrap_or(0)
}

/// A stop under way (see [`Endpoint::stop_within`]).
struct StopWaiter {
    /// The bindings stopped.
    ids: HashSet<BindingId>,
    /// Who to tell with [`Event::StopDone`], if anyone.
    waiter: Option<u64>,
    /// When it ends even if bindings have not (their removal then goes unconfirmed).
    deadline: Option<Instant>,
    /// How long it was given.
    within: Option<Duration>,
}

/// How many times more transactions than the usual bound a next hop admits while a
/// deadline-bounded stop of every binding is under way: the removals must go out within the
/// deadline, not queue behind one another's retransmissions (a registrar that loses a third
/// of them would otherwise keep most of the bindings).
const STOP_BURST: usize = 8;

/// A deadline-bounded stop of every binding under way.
struct UrgentStop {
    deadline: Instant,
    started: Instant,
    /// Transactions opened since it started (see [`Endpoint::paced`]).
    admitted: usize,
}

/// During an urgent stop, a next hop's usual bound of transactions opens per this much
/// time at most.
const STOP_PACE: Duration = Duration::from_millis(100);

/// A target list and what the endpoint knows about asking for it again.
struct ListState {
    list: TargetList,
    query: Option<Query>,
    resolving: bool,
    /// Bindings using it; it is forgotten when none does.
    users: usize,
}

/// The registration endpoint (see the module documentation).
pub struct Endpoint {
    entropy: Box<dyn Entropy + Send>,
    max_in_flight: usize,
    /// Boxed: the table then holds a pointer per binding, and its spare capacity (up to
    /// half of it after growing) costs pointers, not slots.
    bindings: HashMap<BindingId, Box<Slot>>,
    by_branch: HashMap<Branch, BindingId>,
    /// Deadlines of the bindings, earliest first: at most one live entry per binding, the
    /// one its `queued` names. A deadline that moves earlier is pushed again (the old entry
    /// is then stale and skipped); one that moves later keeps its entry, which is moved to
    /// the new deadline when it reaches the top. So a registration (sent, challenged, sent
    /// again, answered) costs two pushes, not one per move. The heap is rebuilt when stale
    /// entries outnumber the live ones.
    timers: BinaryHeap<Reverse<(Instant, BindingId)>>,
    in_flight: HashMap<Target, usize>,
    /// Bindings waiting per hop, most urgent first (see [`Endpoint::urgency`]), then in
    /// the order they came; an id whose slot no longer has `pending` is skipped.
    waiting: HashMap<Target, WaitQueue>,
    /// Arrival order of the waiting bindings.
    waiting_seq: u64,
    /// Slots held after a timeout, per next hop, and when each opens again.
    held: HashMap<Target, usize>,
    holds: BinaryHeap<Reverse<(Instant, u64, Target)>>,
    hold_seq: u64,
    /// Bindings per next hop, to close a connection nobody uses.
    users: HashMap<Target, usize>,
    /// One per open stream connection.
    framers: HashMap<Target, StreamFramer>,
    /// Target lists by key.
    lists: HashMap<Arc<str>, ListState>,
    /// Bindings with two Outbound flows, by the id callers know.
    groups: HashMap<BindingId, Group>,
    /// Bindings waiting for a list being looked up.
    parked: HashMap<Arc<str>, Vec<BindingId>>,
    /// Connections no binding uses, and when they close.
    idle: HashMap<Target, Instant>,
    /// Stops under way that someone waits for, or that have a deadline.
    stop_waiters: Vec<StopWaiter>,
    /// A stop of every binding with a deadline is under way: its deadline (see
    /// [`Endpoint::stop_within`]).
    urgent_stop: Option<UrgentStop>,
    /// Bindings that ended without the registrar confirming their removal while a stop
    /// was waited for: id and AOR, for the report at its end.
    unconfirmed: Vec<(BindingId, Box<str>)>,
    keepalive: Option<(Duration, Instant)>,
    /// Keep-alives to destinations of the application's choosing: interval and next time.
    keepalives_to: HashMap<SocketAddr, (Duration, Instant)>,
    /// SIP Outbound flows watched by keep-alives.
    flows: Flows,
    trace: bool,
    /// The settings of the binding added last, shared by the next ones when they have the
    /// same.
    last_shared: Option<SharedSettings>,
    /// Buffers reused by every input instead of allocated per input.
    scratch_outputs: Vec<Output>,
    scratch_reports: Vec<BindingEvent>,
    scratch_hops: Vec<Target>,
    stats: EndpointStats,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
}

impl Endpoint {
    /// An endpoint with no binding, drawing its randomness from `entropy`.
    pub fn new(entropy: Box<dyn Entropy + Send>, max_in_flight: usize) -> Endpoint {
        Endpoint {
            entropy,
            max_in_flight: max_in_flight.max(1),
            bindings: HashMap::default(),
            by_branch: HashMap::default(),
            timers: BinaryHeap::new(),
            in_flight: HashMap::default(),
            waiting: HashMap::default(),
            waiting_seq: 0,
            held: HashMap::default(),
            holds: BinaryHeap::new(),
            hold_seq: 0,
            users: HashMap::default(),
            framers: HashMap::default(),
            lists: HashMap::default(),
            groups: HashMap::default(),
            parked: HashMap::default(),
            idle: HashMap::default(),
            stop_waiters: Vec::new(),
            urgent_stop: None,
            unconfirmed: Vec::new(),
            keepalive: None,
            keepalives_to: HashMap::default(),
            flows: Flows::default(),
            trace: false,
            last_shared: None,
            scratch_outputs: Vec::new(),
            scratch_reports: Vec::new(),
            scratch_hops: Vec::new(),
            stats: EndpointStats::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let next = self.transmits.pop_front();
        shrink_after_burst(&mut self.transmits);
        next
    }

    /// The next event, in the order things happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        let next = self.events.pop_front();
        shrink_after_burst(&mut self.events);
        next
    }

    /// When [`Endpoint::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let binding = self.timers.peek().map(|Reverse((at, _))| *at);
        let keepalive = self.keepalive.map(|(_, at)| at);
        let keepalive_to = self.keepalives_to.values().map(|(_, at)| *at).min();
        let idle = self.idle.values().min().copied();
        let flows = self.flows.poll_timeout();
        let stop = self.stop_waiters.iter().filter_map(|w| w.deadline).min();
        let held = self.holds.peek().map(|Reverse((at, _, _))| *at);
        // Pacing's next moment matters only where pacing is what holds a queue back (a
        // full hop waits for a transaction to end instead; naming a moment past for it would
        // make the driver spin).
        let limit = self.hop_limit();
        let held_back = self
            .waiting
            .keys()
            .any(|hop| busy(&self.in_flight, &self.held, hop) < limit);
        let paced = held_back.then(|| self.next_paced()).flatten();
        [
            binding,
            keepalive,
            keepalive_to,
            idle,
            flows,
            stop,
            paced,
            held,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Entries in the endpoint's own tables (timers, branches, queues, reports pending,
    /// connections framed, stops under way), for tests that check they stay bounded by
    /// the bindings.
    #[cfg(any(test, feature = "testkit"))]
    pub fn footprint(&self) -> usize {
        self.timers.len()
            + self.by_branch.len()
            + self.waiting.values().map(WaitQueue::len).sum::<usize>()
            + self.unconfirmed.len()
            + self.framers.len()
            + self.stop_waiters.len()
            + self.parked.values().map(Vec::len).sum::<usize>()
            + self.holds.len()
    }

    /// Counters since the endpoint opened.
    pub fn stats(&self) -> EndpointStats {
        EndpointStats {
            bindings: self.bindings.len() as u64,
            ..self.stats
        }
    }

    /// The published state of a binding (`None`: unknown or ended).
    #[cfg(test)]
    pub fn state(&self, id: BindingId) -> Option<BindingState> {
        match self.groups.get(&id) {
            Some(group) => group.state,
            None => self.bindings.get(&id).and_then(|s| s.state),
        }
    }

    /// What a binding knows about its registration, and the target its requests go to.
    pub fn info(&self, id: BindingId) -> Option<(RegistrationInfo, Target)> {
        let slot = self.bindings.get(&id)?;
        Some((slot.binding.info(), slot.next_hop.clone()))
    }

    /// Transactions in flight towards `hop`.
    #[cfg(test)]
    pub fn in_flight(&self, hop: &Target) -> usize {
        self.in_flight.get(hop).copied().unwrap_or(0)
    }

    /// Transactions in flight towards every next hop.
    pub fn transactions_in_flight(&self) -> usize {
        self.in_flight.values().sum()
    }

    /// Turns the trace of every SIP message (log events at [`LogLevel::Trace`]) on or off.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    /// Adds bindings; each registers as soon as its next hop admits it.
    pub fn add(&mut self, now: Instant, specs: Vec<BindingSpec>) {
        for spec in specs {
            let id = spec.id;
            if is_second_flow(id) || self.bindings.contains_key(&id) {
                self.log(
                    LogLevel::Error,
                    format!("binding {} exists already or is not a valid id", id.0),
                );
                continue;
            }
            let second = spec
                .second_flow
                .filter(|_| spec.config.reg_id.is_some())
                .map(|destination| {
                    let mut config = spec.config.clone();
                    config.reg_id = Some(2);
                    (config, destination)
                });
            if !self.add_slot(id, spec.config, &spec.destination, 0) {
                continue;
            }
            if let Some((config, destination)) = second
                && self.add_slot(partner(id), config, &destination, 1)
            {
                self.groups.insert(id, Group::default());
            }
            self.events.push_back(Event::Started(id));
            self.publish(id, Some(BindingState::Registering));
            self.admit(id, Input::Start, now);
            if self.groups.contains_key(&id) {
                self.publish(partner(id), Some(BindingState::Registering));
                self.admit(partner(id), Input::Start, now);
            }
        }
        self.admit_waiting(now);
    }

    /// Creates the slot of one binding on its destination's list (the answer rotated left by
    /// `rotation`); `false` when the destination has no target.
    fn add_slot(
        &mut self,
        id: BindingId,
        mut config: BindingConfig,
        destination: &Located,
        rotation: usize,
    ) -> bool {
        let name = match rotation {
            0 => destination.key.clone(),
            n => format!("{}#{n}", destination.key),
        };
        let key = list_key(&self.lists, name);
        let state = self.lists.entry(key.clone()).or_insert_with(|| ListState {
            list: TargetList::new(destination.targets.clone(), destination.valid_until)
                .rotated(rotation),
            query: destination.query.clone(),
            resolving: false,
            users: 0,
        });
        if !state.list.holds(&destination.targets) {
            // A newer answer (looked up for this call).
            state
                .list
                .replace(destination.targets.clone(), destination.valid_until);
        }
        let Some(first) = state.list.targets().first().cloned() else {
            if state.users == 0 {
                self.lists.remove(&key);
            }
            self.log(
                LogLevel::Error,
                format!("binding {}: {key} has no target", id.0),
            );
            return false;
        };
        state.users += 1;
        config.transport = first.transport;
        let binding = Binding::new_sharing(config, &mut self.last_shared, self.entropy.as_mut());
        *self.users.entry(first.clone()).or_default() += 1;
        self.idle.remove(&first);
        self.bindings.insert(
            id,
            Box::new(Slot {
                binding,
                next_hop: first,
                list: key,
                generation: u64::MAX,
                home: None,
                branch: None,
                timer: None,
                queued: None,
                state: None,
                stopping: false,
                pending: None,
            }),
        );
        true
    }

    /// Unregisters the given bindings (all when `None`) and forgets each once it has ended.
    /// With `waiter`, [`Event::StopDone`] follows when all of them have ended.
    #[cfg(any(test, feature = "testkit"))]
    pub fn stop(&mut self, now: Instant, ids: Option<Vec<BindingId>>, waiter: Option<u64>) {
        self.stop_within(now, ids, waiter, None);
    }

    /// [`Endpoint::stop`], bounded: every removal ends `within` from now unless answered
    /// (its Timer F moved there: it retransmits until then), and when every binding is stopped
    /// the next hops admit [`STOP_BURST`] times their usual bound of transactions, so that
    /// the removals go out within the deadline. When the stop ends (every binding ended,
    /// or the deadline passed) the bindings whose removal the registrar did not confirm are
    /// named in one log line, and `waiter` is told ([`Event::StopDone`]).
    pub fn stop_within(
        &mut self,
        now: Instant,
        ids: Option<Vec<BindingId>>,
        waiter: Option<u64>,
        within: Option<Duration>,
    ) {
        let deadline = within.map(|d| now + d);
        if let (None, Some(deadline)) = (&ids, deadline) {
            self.urgent_stop = Some(UrgentStop {
                deadline,
                started: now,
                admitted: 0,
            });
        }
        let ids: Vec<BindingId> = match ids {
            Some(ids) => ids,
            None => {
                let mut all: Vec<BindingId> = self
                    .bindings
                    .keys()
                    .copied()
                    .filter(|id| !is_second_flow(*id))
                    .collect();
                all.sort_unstable();
                all
            }
        };
        if waiter.is_some() || deadline.is_some() {
            self.stop_waiters.push(StopWaiter {
                ids: ids.iter().copied().collect(),
                waiter,
                deadline,
                within,
            });
        }
        // A binding with two flows stops both.
        let flows: Vec<BindingId> = ids
            .iter()
            .flat_map(|id| [*id, partner(*id)])
            .filter(|id| self.bindings.contains_key(id))
            .collect();
        for id in flows {
            let Some(slot) = self.bindings.get_mut(&id) else {
                continue;
            };
            if !std::mem::replace(&mut slot.stopping, true) && !is_second_flow(id) {
                self.events.push_back(Event::Stopping(id));
            }
            let never_started = slot.pending.take_if(|p| *p == Input::Start).is_some();
            if never_started {
                // Nothing was sent: it ends at once, without a transaction.
                self.run(id, Input::Stop, now);
            } else {
                self.admit(id, Input::Stop, now);
            }
        }
        self.notify_stop_waiters(None);
        self.admit_waiting(now);
    }

    /// Replaces the credentials of every binding. Those waiting after refused credentials
    /// retry now, through the admission of their next hop.
    pub fn set_credentials(&mut self, now: Instant, credentials: Arc<CredentialStore>) {
        let ids: Vec<BindingId> = self.bindings.keys().copied().collect();
        for id in ids {
            if let Some(slot) = self.bindings.get_mut(&id) {
                slot.binding.set_credentials(credentials.clone(), now);
                self.reindex(id, now);
            }
        }
        self.handle_timeout(now);
    }

    /// Sends CRLF keep-alives (RFC 5626 §4.4.1) to every next hop at this interval.
    pub fn set_keepalive(&mut self, now: Instant, interval: Option<Duration>) {
        self.keepalive = interval.map(|i| (i, now + i));
    }

    /// Sends one CRLF keep-alive to every next hop now (a datagram, or on the connection).
    pub fn send_keepalive(&mut self) {
        let mut hops: Vec<Target> = self.users.keys().cloned().collect();
        hops.sort_unstable();
        for destination in hops {
            self.push_keepalive(destination);
        }
    }

    fn push_keepalive(&mut self, destination: Target) {
        self.transmits.push_back(Transmit {
            destination,
            contents: b"\r\n\r\n".to_vec(),
            request: None,
        });
    }

    /// Sends a CRLF keep-alive to `addr` now and then every `interval` (`None`: no more to
    /// it). It goes on the connection of a next hop in use at that address, if any (a
    /// registration over TCP or TLS), else as a datagram; a keep-alive never opens a
    /// connection.
    pub fn set_keepalive_to(&mut self, now: Instant, addr: SocketAddr, interval: Option<Duration>) {
        match interval {
            Some(interval) => {
                self.keepalives_to.insert(addr, (interval, now + interval));
                self.send_keepalive_to(addr);
            }
            None => {
                self.keepalives_to.remove(&addr);
            }
        }
    }

    fn send_keepalive_to(&mut self, addr: SocketAddr) {
        let stream = self
            .users
            .keys()
            .filter(|t| t.transport != Transport::Udp && t.addr == addr)
            .min();
        let destination = stream.cloned().unwrap_or_else(|| Target::udp(addr));
        self.push_keepalive(destination);
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut idle: Vec<Target> = self
            .idle
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| t.clone())
            .collect();
        idle.sort_unstable();
        for target in idle {
            self.idle.remove(&target);
            self.framers.remove(&target);
            self.events.push_back(Event::Close(target));
        }
        if let Some((interval, at)) = self.keepalive
            && at <= now
        {
            self.keepalive = Some((interval, now + interval));
            self.send_keepalive();
        }
        let mut due: Vec<SocketAddr> = (self.keepalives_to.iter())
            .filter(|(_, (_, at))| *at <= now)
            .map(|(addr, _)| *addr)
            .collect();
        due.sort_unstable();
        for addr in due {
            if let Some((interval, at)) = self.keepalives_to.get_mut(&addr) {
                *at = now + *interval;
            }
            self.send_keepalive_to(addr);
        }
        self.run_flows(now);
        // The timers due now are taken first, then run: a timer an input sets due again at
        // once waits for the next call rather than making this one endless.
        let mut due = Vec::new();
        while let Some(mut top) = self.timers.peek_mut() {
            let Reverse((at, id)) = *top;
            if at > now {
                break;
            }
            let slot = self.bindings.get_mut(&id);
            let Some(slot) = slot.filter(|slot| slot.queued == Some(at)) else {
                PeekMut::pop(top); // stale
                continue;
            };
            match slot.timer {
                Some(deadline) if deadline <= now => {
                    slot.timer = None;
                    slot.queued = None;
                    due.push(id);
                    PeekMut::pop(top);
                }
                // The deadline moved later since the entry was queued: the entry moves
                // there (one sift instead of a pop and a push).
                Some(deadline) => {
                    slot.queued = Some(deadline);
                    *top = Reverse((deadline, id));
                }
                None => {
                    slot.queued = None;
                    PeekMut::pop(top);
                }
            }
        }
        for id in due {
            self.admit(id, Input::Timer, now);
        }
        self.prune_timers();
        self.release_held(now);
        if self
            .stop_waiters
            .iter()
            .any(|w| w.deadline.is_some_and(|at| at <= now))
        {
            self.notify_stop_waiters(Some(now));
        }
        self.admit_waiting(now);
    }

    /// Drops the stale entries at the top of the timer heap and moves an entry whose
    /// deadline moved later to that deadline, until the top is a binding's deadline (so
    /// that [`Endpoint::poll_timeout`] names it exactly); rebuilds the heap when most of it
    /// is stale.
    fn prune_timers(&mut self) {
        while let Some(mut top) = self.timers.peek_mut() {
            let Reverse((at, id)) = *top;
            let slot = self.bindings.get_mut(&id);
            let Some(slot) = slot.filter(|slot| slot.queued == Some(at)) else {
                PeekMut::pop(top); // stale
                continue;
            };
            slot.queued = slot.timer;
            match slot.timer {
                Some(deadline) if deadline == at => break,
                Some(deadline) => *top = Reverse((deadline, id)),
                None => {
                    PeekMut::pop(top);
                }
            }
        }
        if self.timers.len() > 2 * self.bindings.len() + 64 {
            let mut timers = Vec::with_capacity(self.bindings.len());
            for (id, slot) in self.bindings.iter_mut() {
                slot.queued = slot.timer;
                timers.extend(slot.timer.map(|at| Reverse((at, *id))));
            }
            self.timers = BinaryHeap::from(timers);
        }
    }

    /// Handles a datagram received from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        if stun::is_stun(bytes) {
            // A keep-alive's answer (RFC 5626 §4.4.2), or a stray one.
            let answered = stun::parse_response(bytes).is_some_and(|response| {
                self.flows
                    .on_stun(&Target::udp(from), &response, now, self.entropy.as_mut())
            });
            if !answered {
                // Late answers to the retransmissions of a keep-alive are common: no alarm.
                self.stats.dropped += 1;
                self.log(
                    LogLevel::Debug,
                    format!("dropped a STUN message from {from} (no keep-alive of ours waits)"),
                );
            }
        } else if !bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            // (CRLFs alone are a keep-alive pong, RFC 5626 §4.4.1.)
            self.on_message(now, &Target::udp(from), bytes);
        }
        self.admit_waiting(now);
    }

    /// Handles bytes read from the connection to `from` (a stream target), framing them
    /// into messages. A stream that breaks the framing rules is closed ([`Event::Close`])
    /// and handled as a lost connection.
    pub fn handle_stream_data(&mut self, now: Instant, from: &Target, bytes: &[u8]) {
        if !bytes.is_empty() {
            // A pong, or anything else: the flow is alive.
            self.flows.on_stream_data(from, now, self.entropy.as_mut());
        }
        let framer = self.framers.entry(from.clone()).or_default();
        framer.push(bytes);
        while let Some(framer) = self.framers.get_mut(from) {
            match framer.next_message() {
                Ok(Some(message)) => self.on_message(now, from, &message),
                Ok(None) => break,
                Err(e) => {
                    self.stats.dropped += 1;
                    let why = format!("closed the connection to {from}: {e}");
                    self.log(LogLevel::Warning, why.clone());
                    self.events.push_back(Event::Close(from.clone()));
                    self.lose_connection(now, from, Failure::Transport(why));
                    break;
                }
            }
        }
        self.admit_waiting(now);
    }

    /// The connection to a stream target failed to open or closed (`failure` says how:
    /// [`Failure::Transport`] or [`Failure::Tls`]). Every transaction in flight on it fails
    /// now; registered bindings register again over a new connection within a second,
    /// spread out and paced by the admission.
    pub fn handle_connection_lost(&mut self, now: Instant, target: &Target, failure: Failure) {
        let level = match failure {
            Failure::Tls(_) => LogLevel::Error,
            _ => LogLevel::Warning,
        };
        self.log(level, format!("connection to {target}: {failure}"));
        self.lose_connection(now, target, failure);
        self.admit_waiting(now);
    }

    /// A request could not be sent, for a reason of this host's (a datagram too large for
    /// the network, a destination of the other address family, no route, a firewall's
    /// refusal; not a passing shortage of buffers, which retransmission overcomes): its
    /// transaction fails now with [`Failure::Local`], which is reported with `why` and
    /// retried on the backoff like any failure, never left to end in a timeout.
    pub fn handle_send_failed(&mut self, now: Instant, request: (BindingId, Branch), why: &str) {
        let (id, branch) = request;
        if self.bindings.get(&id).and_then(|s| s.branch) != Some(branch) {
            return; // that transaction has ended meanwhile
        }
        let destination = self.bindings[&id].next_hop.clone();
        self.log(
            LogLevel::Warning,
            format!("could not send to {destination}: {why}"),
        );
        let failure = Failure::Local(why.to_string());
        self.drive(id, now, |b, e, out| b.fail(failure, now, e, out));
        self.admit_waiting(now);
    }

    /// The network says a datagram to `addr` could not be delivered (ICMP port or host
    /// unreachable): every transaction in flight to that UDP target fails now, as
    /// [`Failure::Unreachable`] (each binding tries its next target at once, or reports
    /// it).
    /// Registered bindings are left alone: their next refresh finds out for itself.
    pub fn handle_unreachable(&mut self, now: Instant, addr: SocketAddr, why: &str) {
        let target = Target::udp(addr);
        let ids: Vec<BindingId> = self
            .bindings_on(&target)
            .into_iter()
            .filter(|id| self.bindings[id].branch.is_some())
            .collect();
        if ids.is_empty() {
            return;
        }
        self.log(LogLevel::Warning, format!("{target}: {why}"));
        for id in ids {
            let failure = Failure::Unreachable(why.to_string());
            self.drive(id, now, |b, e, out| {
                b.connection_lost(failure, now, now, e, out)
            });
        }
        self.admit_waiting(now);
    }

    /// The bindings whose requests go to `target`, in id order.
    fn bindings_on(&self, target: &Target) -> Vec<BindingId> {
        let mut ids: Vec<BindingId> = self
            .bindings
            .iter()
            .filter(|(_, s)| s.next_hop == *target)
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        ids
    }

    fn lose_connection(&mut self, now: Instant, target: &Target, failure: Failure) {
        self.framers.remove(target);
        self.idle.remove(target);
        self.fail_bindings_on(now, target, failure, Duration::from_secs(1));
    }

    /// Every binding on `target`: what is in flight fails with `failure`, the registered
    /// ones register again within `spread` (at a random point of it; at once when zero).
    fn fail_bindings_on(
        &mut self,
        now: Instant,
        target: &Target,
        failure: Failure,
        spread: Duration,
    ) {
        let spread_ms = spread.as_millis() as u64;
        for id in self.bindings_on(target) {
            let at = match spread_ms {
                0 => now,
                ms => now + Duration::from_millis(self.entropy.next_u64() % ms),
            };
            let failure = failure.clone();
            self.drive(id, now, |b, e, out| {
                b.connection_lost(failure, now, at, e, out)
            });
        }
    }

    fn on_message(&mut self, now: Instant, from: &Target, bytes: &[u8]) {
        if self.trace {
            self.log(
                LogLevel::Trace,
                format!("received from {from}:\n{}", String::from_utf8_lossy(bytes)),
            );
        }
        let response = match message::parse_response(bytes) {
            Ok(r) => r,
            Err(e) => {
                // An answer from where a transaction of ours went, naming its branch: if no
                // usable one follows, the transaction ends for this reason.
                let answers = message::branch_of(bytes)
                    .and_then(Branch::parse)
                    .and_then(|b| self.by_branch.get(&b))
                    .and_then(|id| self.bindings.get_mut(id))
                    .filter(|slot| slot.next_hop == *from);
                if let Some(slot) = answers {
                    slot.binding.note_unreadable(&e.to_string());
                }
                return self.drop_datagram(format!(
                    "dropped malformed message of {} bytes from {from}: {e}",
                    bytes.len()
                ));
            }
        };
        let Some(&id) = Branch::parse(&response.branch).and_then(|b| self.by_branch.get(&b)) else {
            return self.drop_datagram(format!(
                "dropped stray {} response from {from} (unknown branch)",
                response.status
            ));
        };
        let expected = self.bindings.get(&id).map(|s| &s.next_hop);
        if expected != Some(from) {
            return self.drop_datagram(format!(
                "dropped {} response from {from}: request went to {}",
                response.status,
                expected.map_or_else(|| "nowhere".into(), |a| a.to_string())
            ));
        }
        let mut matched = true;
        self.drive(id, now, |b, e, out| {
            matched = b.on_response(&response, now, e, out)
        });
        if matched {
            self.stats.responses += 1;
        } else {
            self.drop_datagram(format!(
                "dropped {} response from {from}: Call-ID or CSeq does not match",
                response.status
            ));
        }
    }

    /// Sends the flow keep-alives due (to flows some binding still registers over) and
    /// handles the flows that failed: their bindings register again at once, over a new
    /// connection on TCP and TLS.
    fn run_flows(&mut self, now: Instant) {
        let mut out = Vec::new();
        self.flows
            .handle_timeout(now, self.entropy.as_mut(), &mut out);
        for output in out {
            match output {
                FlowOutput::Send(target, contents) => {
                    if self.flow_in_use(&target) {
                        self.transmits.push_back(Transmit {
                            destination: target,
                            contents,
                            request: None,
                        });
                    } else {
                        self.flows.forget(&target);
                    }
                }
                FlowOutput::Failed(target) => {
                    if !self.flow_in_use(&target) {
                        continue;
                    }
                    let why = "the flow failed: its keep-alive was not answered".to_string();
                    self.log(LogLevel::Warning, format!("{target}: {why}"));
                    if target.transport.is_stream() {
                        self.events.push_back(Event::Close(target.clone()));
                        self.lose_connection(now, &target, Failure::Transport(why));
                    } else {
                        let failure = Failure::Unreachable(why);
                        self.fail_bindings_on(now, &target, failure, Duration::ZERO);
                    }
                }
            }
        }
    }

    /// Whether a binding registers over a SIP Outbound flow to `target`.
    fn flow_in_use(&self, target: &Target) -> bool {
        self.bindings
            .values()
            .any(|s| s.next_hop == *target && s.binding.outbound_flow().is_some())
    }

    fn drop_datagram(&mut self, why: String) {
        self.stats.dropped += 1;
        self.log(LogLevel::Warning, why);
    }

    /// Runs an input now, or queues it when it would open a transaction towards a full hop.
    fn admit(&mut self, id: BindingId, input: Input, now: Instant) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        if input == Input::Timer && slot.binding.expires_at().is_some_and(|at| at <= now) {
            // Its refresh waits for a turn, or was deferred (Retry-After): the registration
            // has lapsed. (Its timer is then due no more: the refresh becomes a retry.)
            self.drive(id, now, |b, _, out| b.expire(now, out));
        }
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        if slot.pending.is_some() {
            // Already queued: keep its place; a stop replaces a waiting refresh.
            if input == Input::Stop {
                slot.pending = Some(Input::Stop);
                self.reindex(id, now);
            }
            return;
        }
        let opens = slot.branch.is_none();
        if opens && input != Input::Stop && !self.reselect(id, input, now) {
            return; // deferred (Retry-After) or parked (being looked up)
        }
        let limit = self.hop_limit();
        let paced = self.paced(now);
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        let hop = &slot.next_hop;
        if opens && (busy(&self.in_flight, &self.held, hop) >= limit || !paced) {
            let hop = hop.clone();
            slot.pending = Some(input);
            let key = Endpoint::urgency(&slot.binding, input, now);
            self.waiting_seq += 1;
            let entry = (key, self.waiting_seq, id);
            self.waiting.entry(hop).or_default().push(entry);
            self.reindex(id, now);
            return;
        }
        if opens {
            self.count_paced();
        }
        self.run(id, input, now);
    }

    /// Chooses the target of the transaction a binding is about to open: the one in use
    /// while it works and the list has not been looked up again (affinity), else the best
    /// one not avoided. Asks for the list again when it expired (the old one is used
    /// meanwhile). Returns `false` when the binding must wait: every target asked for time
    /// (Retry-After; the binding is deferred), or the list is being looked up (parked).
    fn reselect(&mut self, id: BindingId, input: Input, now: Instant) -> bool {
        let Some(slot) = self.bindings.get(&id) else {
            return false;
        };
        let key = slot.list.clone();
        let Some(state) = self.lists.get_mut(&key) else {
            return true;
        };
        if state.list.expired(now)
            && !state.resolving
            && let Some(query) = &state.query
        {
            state.resolving = true;
            self.events.push_back(Event::Resolve {
                key: key.to_string(),
                query: query.clone(),
            });
        }
        if state.list.targets().is_empty() {
            if state.resolving {
                if let Some(slot) = self.bindings.get_mut(&id) {
                    slot.pending = Some(input);
                }
                self.parked.entry(key).or_default().push(id);
                self.reindex(id, now);
                return false;
            }
            return self.go_home(id);
        }
        let generation = state.list.generation();
        let current = (slot.generation == generation).then_some(&slot.next_hop);
        match state.list.choose(current, now) {
            Choice::Use(target) => {
                if target != slot.next_hop {
                    self.move_slot(id, target, now);
                }
                if let Some(slot) = self.bindings.get_mut(&id) {
                    slot.generation = generation;
                }
                true
            }
            Choice::WaitUntil(until) => {
                if let Some(slot) = self.bindings.get_mut(&id) {
                    slot.binding.defer(until);
                }
                self.reindex(id, now);
                false
            }
        }
    }

    /// A redirected binding whose redirect targets failed (or could not be looked up) goes
    /// back to its own list and Request-URI. Returns whether it had one.
    fn go_home(&mut self, id: BindingId) -> bool {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return false;
        };
        let Some((home, uri)) = slot.home.take().map(|home| *home) else {
            return false;
        };
        let away = std::mem::replace(&mut slot.list, home.clone());
        slot.generation = u64::MAX;
        slot.binding.set_request_uri(uri);
        self.leave_list(&away);
        if let Some(state) = self.lists.get_mut(&home) {
            state.users += 1;
        }
        true
    }

    /// A binding stops using a list; a list nobody uses is forgotten.
    fn leave_list(&mut self, key: &str) {
        if let Some(state) = self.lists.get_mut(key) {
            state.users = state.users.saturating_sub(1);
            if state.users == 0 {
                self.lists.remove(key);
                self.parked.remove(key);
            }
        }
    }

    /// Moves a binding (with no transaction in flight) to another target.
    fn move_slot(&mut self, id: BindingId, target: Target, now: Instant) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        debug_assert!(slot.branch.is_none());
        let old = std::mem::replace(&mut slot.next_hop, target.clone());
        slot.binding.set_transport(target.transport);
        self.release_hop(&old, now);
        *self.users.entry(target.clone()).or_default() += 1;
        self.idle.remove(&target);
    }

    /// One binding less uses `hop`: a connection nobody uses closes after a while.
    fn release_hop(&mut self, hop: &Target, now: Instant) {
        if let Some(users) = self.users.get_mut(hop) {
            *users -= 1;
            if *users == 0 {
                self.users.remove(hop);
                self.in_flight.remove(hop);
                if hop.transport.is_stream() {
                    self.idle.insert(hop.clone(), now + STREAM_IDLE);
                }
            }
        }
    }

    /// A redirect (3xx): the binding registers at the places it named, by a list of their
    /// own (looked up when they are names), and comes back to its own list when they fail.
    fn redirect(&mut self, id: BindingId, uris: Vec<SipUri>, now: Instant) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        let tls = slot.next_hop.tls.as_deref().cloned();
        let ipv6 = slot.next_hop.addr.is_ipv6();
        let key = format!(
            "redirect:{}",
            uris.iter()
                .map(|u| u.to_string())
                .collect::<Vec<_>>()
                .join(",")
        );
        let targets: Vec<Target> = uris
            .iter()
            .filter_map(|u| match u.host_port.host {
                Host::Ip(ip) => Some(make_target(
                    u.transport_or_default(),
                    SocketAddr::new(ip, u.port_or_default()),
                    tls.as_ref(),
                )),
                Host::Name(_) => None,
            })
            .collect();
        let named = uris
            .iter()
            .find(|u| matches!(u.host_port.host, Host::Name(_)));
        let first = SipUri {
            user: None,
            transport: None,
            ..uris[0].clone()
        };
        let key = list_key(&self.lists, key);
        let state = self.lists.entry(key.clone()).or_insert_with(|| {
            let mut list = TargetList::new(targets.clone(), None);
            let query = match (targets.is_empty(), named) {
                (true, Some(uri)) => {
                    list.expire(now);
                    Some(Query {
                        server: uri.host_port.clone(),
                        choice: TransportChoice::Only(uri.transport_or_default()),
                        tls: tls.clone(),
                        ipv6,
                    })
                }
                _ => None,
            };
            ListState {
                list,
                query,
                resolving: false,
                users: 0,
            }
        });
        state.users += 1;
        let old_uri = slot.binding.request_uri().to_string();
        slot.binding.set_request_uri(first.to_string());
        let away = std::mem::replace(&mut slot.list, key);
        slot.generation = u64::MAX;
        match slot.home {
            Some(_) => self.leave_list(&away), // one redirect after another: one way home
            None => slot.home = Some(Box::new((away, old_uri))),
        }
    }

    /// The answer to an [`Event::Resolve`]: the new targets (in order) and until when they
    /// hold, or why there are none. Without an answer the old list is kept a while longer.
    pub fn handle_located(
        &mut self,
        now: Instant,
        key: &str,
        answer: Result<(Vec<Target>, Option<Instant>), String>,
    ) {
        if let Some(state) = self.lists.get_mut(key) {
            state.resolving = false;
            match answer {
                Ok((targets, valid_until)) if !targets.is_empty() => {
                    state.list.replace(targets, valid_until)
                }
                Ok(_) | Err(_) => {
                    state.list.extend(now + DEFAULT_VALIDITY);
                    let why = match answer {
                        Err(e) => e,
                        Ok(_) => "no usable record".into(),
                    };
                    self.log(
                        LogLevel::Warning,
                        format!("looking up {key} again failed ({why}); the old answer is kept"),
                    );
                }
            }
        }
        let mut parked = self.parked.remove(key).unwrap_or_default();
        parked.sort_unstable();
        parked.dedup();
        for id in parked {
            let input = self.bindings.get_mut(&id).and_then(|s| s.pending.take());
            let usable = self
                .lists
                .get(key)
                .is_some_and(|s| !s.list.targets().is_empty());
            if !usable && !self.go_home(id) {
                let why = format!("cannot look up {key}");
                self.drive(id, now, |b, e, out| {
                    b.fail(Failure::Local(why), now, e, out)
                });
                continue;
            }
            if let Some(input) = input {
                self.admit(id, input, now);
            }
        }
        self.admit_waiting(now);
    }

    fn run(&mut self, id: BindingId, input: Input, now: Instant) {
        match input {
            Input::Start => self.drive(id, now, |b, e, out| b.start(now, e, out)),
            Input::Timer => self.drive(id, now, |b, e, out| b.on_timer(now, e, out)),
            Input::Stop => self.drive(id, now, |b, e, out| b.stop(now, e, out)),
        }
    }

    /// The latest a waiting input should start: a refresh by the expiry it keeps (one that
    /// will lapse soon goes ahead of those that will not), anything else within
    /// [`QUEUE_HORIZON`] of arriving (first come, first served among them).
    fn urgency(binding: &Binding, input: Input, now: Instant) -> Instant {
        match (input, binding.expires_at()) {
            (Input::Timer, Some(expires_at)) => expires_at,
            _ => now + QUEUE_HORIZON,
        }
    }

    /// Releases the slots held after timeouts whose time has come (see [`HOLD_AFTER_TIMEOUT`]).
    fn release_held(&mut self, now: Instant) {
        while let Some(&Reverse((at, _, _))) = self.holds.peek() {
            if at > now {
                break;
            }
            let Some(Reverse((_, _, hop))) = self.holds.pop() else {
                break;
            };
            if let Some(n) = self.held.get_mut(&hop) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.held.remove(&hop);
                }
            }
        }
    }

    /// Most transactions in flight per next hop now (see [`STOP_BURST`]).
    fn hop_limit(&self) -> usize {
        match self.urgent_stop {
            Some(_) => self.max_in_flight.saturating_mul(STOP_BURST),
            None => self.max_in_flight,
        }
    }

    /// Whether a transaction may open now as far as pacing goes: during an urgent stop, at
    /// most the usual bound of them per [`STOP_PACE`], after a first eighth of it at once
    /// (so that a registrar's receive buffer is not flooded, and the retransmissions of
    /// the removals are spread as their first transmissions were).
    fn paced(&self, now: Instant) -> bool {
        self.next_paced().is_none_or(|at| at <= now)
    }

    /// When pacing next lets a transaction open, during an urgent stop.
    fn next_paced(&self) -> Option<Instant> {
        let stop = self.urgent_stop.as_ref()?;
        let burst = (self.max_in_flight / 8).max(1);
        let beyond = (stop.admitted + 1).checked_sub(burst)?;
        let pace_ms = STOP_PACE.as_millis() as usize;
        let after = (beyond * pace_ms).div_ceil(self.max_in_flight);
        Some(stop.started + Duration::from_millis(after as u64))
    }

    /// Counts a transaction opened during an urgent stop (see [`Endpoint::paced`]).
    fn count_paced(&mut self) {
        if let Some(stop) = &mut self.urgent_stop {
            stop.admitted += 1;
        }
    }

    /// Starts waiting inputs while their hop has room.
    fn admit_waiting(&mut self, now: Instant) {
        if self.waiting.is_empty() {
            return;
        }
        let mut hops = std::mem::take(&mut self.scratch_hops);
        hops.extend(self.waiting.keys().cloned());
        hops.sort_unstable();
        for hop in hops.drain(..) {
            while busy(&self.in_flight, &self.held, &hop) < self.hop_limit() && self.paced(now) {
                let Some((_, _, id)) = self.waiting.get_mut(&hop).and_then(WaitQueue::pop) else {
                    break;
                };
                let input = self.bindings.get_mut(&id).and_then(|s| s.pending.take());
                if let Some(input) = input {
                    self.count_paced();
                    self.run(id, input, now);
                }
            }
        }
        self.scratch_hops = hops;
        self.waiting.retain(|_, q| !q.is_empty());
    }

    /// Runs one input on a binding, queues what it sends, re-indexes it, then reports.
    fn drive(
        &mut self,
        id: BindingId,
        now: Instant,
        input: impl FnOnce(&mut Binding, &mut dyn Entropy, &mut Vec<Output>),
    ) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        let alternative = slot.home.is_some()
            || self
                .lists
                .get(&slot.list)
                .is_some_and(|s| s.list.has_alternative(&slot.next_hop, now));
        slot.binding.set_alternative(alternative);
        let failures_before = slot.binding.consecutive_failures();
        // Buffers kept between inputs (a nested input would find them taken, and allocate).
        let mut outputs = std::mem::take(&mut self.scratch_outputs);
        input(&mut slot.binding, self.entropy.as_mut(), &mut outputs);
        if let (Some(stop), true) = (&self.urgent_stop, slot.stopping) {
            slot.binding.bound_stop(stop.started, stop.deadline);
        }
        let gave_up = slot.binding.consecutive_failures() != failures_before;
        // What it sends is its current transaction's request.
        let request = slot.binding.branch();
        let destination = slot.next_hop.clone();
        let list_key = slot.list.clone();
        let mut reports = std::mem::take(&mut self.scratch_reports);
        let mut failed = None;
        let mut redirect = None;
        for output in outputs.drain(..) {
            let contents = match output {
                Output::Send(bytes) => {
                    self.stats.requests += 1;
                    bytes
                }
                Output::Retransmit(bytes) => {
                    self.stats.retransmissions += 1;
                    bytes
                }
                Output::Event(event) => {
                    if matches!(event, BindingEvent::Registered { .. })
                        && let Some(state) = self.lists.get_mut(&list_key)
                    {
                        state.list.succeed(&destination);
                    }
                    reports.push(event);
                    continue;
                }
                Output::TargetFailed {
                    failure,
                    retry_after,
                } => {
                    failed = Some((failure, retry_after));
                    continue;
                }
                Output::Redirect(uris) => {
                    redirect = Some(uris);
                    continue;
                }
            };
            if self.trace {
                self.log(
                    LogLevel::Trace,
                    format!(
                        "sent to {destination}:\n{}",
                        String::from_utf8_lossy(&contents)
                    ),
                );
            }
            self.transmits.push_back(Transmit {
                destination: destination.clone(),
                contents,
                request: request.map(|branch| (id, branch)),
            });
        }
        self.scratch_outputs = outputs;
        if let Some((failure, retry_after)) = failed {
            if failure == Failure::TimedOut {
                // The slot of a transaction that timed out opens again a random moment later:
                // transactions that were sent together and timed out together do not all
                // hand their slots to the next ones at one instant, so a dead next hop's
                // queue does not move in lockstep batches.
                let ms = self.entropy.next_u64() % HOLD_AFTER_TIMEOUT.as_millis() as u64;
                self.hold_seq += 1;
                let release = now + Duration::from_millis(ms);
                self.holds
                    .push(Reverse((release, self.hold_seq, destination.clone())));
                *self.held.entry(destination.clone()).or_default() += 1;
            }
            let mut exhausted = true;
            if let Some(state) = self.lists.get_mut(&list_key) {
                state.list.fail(&destination, now, retry_after);
                exhausted = !state.list.has_alternative(&destination, now);
            }
            if !gave_up {
                // The binding tries the next target at once (its timer is due now); a
                // redirected one whose redirect targets all failed goes back home for it.
                if exhausted {
                    self.go_home(id);
                }
                let after = retry_after.map_or(String::new(), |d| {
                    format!(" (Retry-After {} s)", d.as_secs())
                });
                self.log(
                    LogLevel::Info,
                    format!("{destination}: {failure}{after}; trying the next target"),
                );
            }
        }
        if gave_up {
            // Every target failed (reported): a redirected binding starts its next round
            // from its own registrar.
            self.go_home(id);
        }
        if let Some(uris) = redirect {
            self.redirect(id, uris, now);
        }
        // Registered over an Outbound flow: its keep-alives are due (RFC 5626 §4.4).
        if let Some(flow_timer) = self
            .bindings
            .get(&id)
            .and_then(|s| s.binding.outbound_flow())
        {
            self.flows
                .watch(&destination, flow_timer, now, self.entropy.as_mut());
        }
        // The new state is published before the events that led to it.
        let ended = self.reindex(id, now);
        for event in reports.drain(..) {
            self.report(id, event);
        }
        self.scratch_reports = reports;
        if ended {
            self.notify_stop_waiters(None);
        }
    }

    /// Brings the indexes (branch, timer, in-flight count, published state) up to date with
    /// the binding; forgets it once it has ended. Returns whether it ended.
    fn reindex(&mut self, id: BindingId, now: Instant) -> bool {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return false;
        };
        if slot.branch != slot.binding.branch() {
            let branch = slot.binding.branch();
            if slot.branch.is_some() != branch.is_some() {
                let in_flight = self.in_flight.entry(slot.next_hop.clone()).or_default();
                match branch {
                    Some(_) => *in_flight += 1,
                    None => *in_flight = in_flight.saturating_sub(1),
                }
            }
            if let Some(old) = slot.branch.take() {
                self.by_branch.remove(&old);
            }
            if let Some(new) = branch {
                self.by_branch.insert(new, id);
            }
            slot.branch = branch;
        }
        // A binding waiting for its turn has no timer but its expiry (its input runs when
        // admitted).
        let deadline = match slot.pending {
            Some(_) => slot.binding.expires_at(),
            None => slot.binding.next_deadline(),
        };
        let moved = deadline != slot.timer;
        if moved {
            slot.timer = deadline;
            if let Some(at) = deadline
                && slot.queued.is_none_or(|queued| at < queued)
            {
                slot.queued = Some(at);
                self.timers.push(Reverse((at, id)));
            }
        }
        let done = if slot.binding.is_done() {
            // A finished binding has no transaction and no timer: both were unindexed above.
            debug_assert!(slot.branch.is_none() && slot.timer.is_none());
            let hop = slot.next_hop.clone();
            let list = slot.list.clone();
            let home = slot.home.take();
            if slot.binding.unconfirmed() && !self.stop_waiters.is_empty() {
                self.unconfirmed.push((id, slot.binding.aor().into()));
            }
            self.bindings.remove(&id);
            self.publish_end(id);
            self.release_hop(&hop, now);
            self.leave_list(&list);
            if let Some(home) = home {
                self.leave_list(&home.0);
            }
            true
        } else {
            let state = slot.binding.state();
            // Until its first request leaves, a binding is registering (or unregistering).
            let state = match (state, slot.pending) {
                (BindingState::Unregistered, Some(Input::Start)) => BindingState::Registering,
                (_, Some(Input::Stop)) if state != BindingState::Unregistering => {
                    BindingState::Unregistering
                }
                _ => state,
            };
            self.publish(id, Some(state));
            false
        };
        if moved || done {
            self.prune_timers();
        }
        done
    }

    /// Reports a binding's event; for a binding with two flows, the event of both: it is
    /// registered when the first flow is, failed when neither flow is registered, and
    /// unregistered when the last flow has ended.
    fn report(&mut self, id: BindingId, event: BindingEvent) {
        let p = primary(id);
        let other = self.bindings.get(&partner(id)).and_then(|s| s.state);
        let Some(group) = self.groups.get_mut(&p) else {
            self.events.push_back(Event::Binding { id: p, event });
            return;
        };
        let show = match &event {
            BindingEvent::Registered { .. } => {
                group.failure = None;
                !std::mem::replace(&mut group.registered, true)
            }
            BindingEvent::Failed(failure) if other != Some(BindingState::Registered) => {
                group.registered = false;
                group.failure.replace(failure.kind()) != Some(failure.kind())
            }
            BindingEvent::Failed(failure) => {
                let flow = if id == p { 1 } else { 2 };
                let why = format!(
                    "flow {flow} of binding {}: {failure}; the other one is registered",
                    p.0
                );
                self.log(LogLevel::Info, why);
                false
            }
            BindingEvent::Unregistered => other.is_none(),
        };
        if show {
            self.events.push_back(Event::Binding { id: p, event });
        }
    }

    /// A slot has ended: so has its binding, unless its other flow goes on.
    fn publish_end(&mut self, id: BindingId) {
        let p = primary(id);
        if !self.groups.contains_key(&p) {
            self.events.push_back(Event::State { id, state: None });
            return;
        }
        let other = self.bindings.get(&partner(id)).and_then(|s| s.state);
        if self.bindings.contains_key(&partner(id)) {
            self.publish_group(p, other);
        } else {
            self.groups.remove(&p);
            self.events.push_back(Event::State { id: p, state: None });
        }
    }

    fn publish_group(&mut self, p: BindingId, state: Option<BindingState>) {
        if let Some(group) = self.groups.get_mut(&p)
            && group.state != state
        {
            group.state = state;
            self.events.push_back(Event::State { id: p, state });
        }
    }

    fn publish(&mut self, id: BindingId, state: Option<BindingState>) {
        let p = primary(id);
        if self.groups.contains_key(&p) {
            if let Some(slot) = self.bindings.get_mut(&id) {
                slot.state = state;
            }
            let flow = |id| self.bindings.get(&id).and_then(|s| s.state);
            let combined = combine(flow(p), flow(partner(p)));
            self.publish_group(p, combined);
            return;
        }
        if let Some(slot) = self.bindings.get_mut(&id)
            && slot.state != state
        {
            slot.state = state;
            self.events.push_back(Event::State { id, state });
        }
    }

    /// Ends the stops whose bindings have all ended, or whose deadline has passed (`now`),
    /// reporting the removals not confirmed.
    fn notify_stop_waiters(&mut self, now: Option<Instant>) {
        let mut i = 0;
        while i < self.stop_waiters.len() {
            let w = &self.stop_waiters[i];
            let alive = |id: &BindingId| {
                self.bindings.contains_key(id) || self.bindings.contains_key(&partner(*id))
            };
            let late = matches!((now, w.deadline), (Some(now), Some(at)) if now >= at);
            if w.ids.iter().any(alive) && !late {
                i += 1;
                continue;
            }
            let w = self.stop_waiters.swap_remove(i);
            let mut left: Vec<&str> = self
                .unconfirmed
                .iter()
                .filter(|(id, _)| w.ids.contains(id) || w.ids.contains(&primary(*id)))
                .map(|(_, aor)| &**aor)
                .collect();
            let mut ids: Vec<BindingId> = w.ids.iter().copied().collect();
            ids.sort_unstable();
            for id in ids {
                for id in [id, partner(id)] {
                    if let Some(slot) = self.bindings.get(&id) {
                        left.push(slot.binding.aor());
                    }
                }
            }
            left.sort_unstable();
            left.dedup();
            if !left.is_empty() {
                let within = w.within.map_or(String::new(), |d| format!(" within {d:?}"));
                let mut names = left.iter().take(10).copied().collect::<Vec<_>>().join(", ");
                if left.len() > 10 {
                    names.push_str(", …");
                }
                let message = format!(
                    "{} of {} bindings stopped could not be unregistered{within} (the \
                     registrar did not confirm; it drops them when they expire): {names}",
                    left.len(),
                    w.ids.len(),
                );
                self.log(LogLevel::Warning, message);
            }
            if let Some(waiter) = w.waiter {
                self.events.push_back(Event::StopDone(waiter));
            }
        }
        if self.stop_waiters.is_empty() {
            self.unconfirmed.clear();
        }
        if self.stop_waiters.iter().all(|w| w.deadline.is_none()) {
            self.urgent_stop = None;
        }
    }

    fn log(&mut self, level: LogLevel, message: String) {
        self.events.push_back(Event::Log { level, message });
    }
}

/// The key of the list named `name`: the map's own when it has the list, so that every
/// binding of a list holds one shared key.
fn list_key(lists: &HashMap<Arc<str>, ListState>, name: String) -> Arc<str> {
    match lists.get_key_value(name.as_str()) {
        Some((key, _)) => key.clone(),
        None => name.into(),
    }
}

/// Gives back the room a burst needed (adding 100,000 bindings queues an event each) once
/// the queue is drained, so that it does not stay in the process's memory.
fn shrink_after_burst<T>(queue: &mut VecDeque<T>) {
    if queue.is_empty() && queue.capacity() > 1024 {
        queue.shrink_to(64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::binding::Counter;
    use crate::engine::digest::Credential;
    use crate::engine::target::{AVOID_FAILED, MAX_RETRY_AFTER};
    use crate::engine::transaction::DEFAULT_TIMEOUT;
    use crate::engine::uri::HostPort;

    const HOP: &str = "127.0.0.1:5060";
    const OTHER_HOP: &str = "127.0.0.1:5070";

    fn hop() -> SocketAddr {
        HOP.parse().unwrap()
    }

    fn config(user: &str, credentials: CredentialStore) -> BindingConfig {
        BindingConfig {
            user: user.into(),
            aor: format!("sip:{user}@example.com"),
            request_uri: "sip:example.com".into(),
            local: "127.0.0.1:5062".parse().unwrap(),
            route: None,
            expires: 600,
            refresh_interval: Duration::from_secs(60),
            timeout: DEFAULT_TIMEOUT,
            nat_detect: false,
            transport: crate::engine::transport::Transport::Udp,
            credentials: Arc::new(credentials),
            user_agent: "t".into(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            instance: None,
            reg_id: None,
            share_challenges: false,
        }
    }

    fn spec(n: u64, next_hop: &str) -> BindingSpec {
        BindingSpec {
            id: BindingId(n),
            config: config(&format!("u{n}"), CredentialStore::default()),
            destination: Located::single(Target::udp(next_hop.parse().unwrap())),
            second_flow: None,
        }
    }

    /// An endpoint on a simulated clock.
    struct Sim {
        ep: Endpoint,
        now: Instant,
        t0: Instant,
    }

    impl Sim {
        fn new(max_in_flight: usize) -> Sim {
            let now = Instant::now();
            Sim {
                ep: Endpoint::new(Box::new(Counter(0)), max_in_flight),
                now,
                t0: now,
            }
        }

        fn transmits(&mut self) -> Vec<(SocketAddr, String)> {
            std::iter::from_fn(|| self.ep.poll_transmit())
                .map(|t| (t.destination.addr, String::from_utf8(t.contents).unwrap()))
                .collect()
        }

        fn events(&mut self) -> Vec<Event> {
            std::iter::from_fn(|| self.ep.poll_event()).collect()
        }

        /// Advances the clock to the endpoint's next timeout and runs it.
        fn advance(&mut self) -> Duration {
            self.now = self.ep.poll_timeout().expect("a timeout");
            self.ep.handle_timeout(self.now);
            self.now - self.t0
        }

        fn answer(&mut self, request: &str, status: u16, extra: &str) {
            let bytes = respond(request, status, extra);
            self.ep.handle_datagram(self.now, hop(), &bytes);
        }
    }

    fn header<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("")
    }

    /// A response to `request`, echoing what a response must; a 2xx lists the contact.
    fn respond(request: &str, status: u16, extra: &str) -> Vec<u8> {
        let contact = header(request, "Contact");
        let contact = if (200..300).contains(&status) && header(request, "Expires") != "0" {
            format!("Contact: {contact};expires=600\r\n")
        } else {
            String::new()
        };
        format!(
            "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=r\r\nCall-ID: {}\r\n\
             CSeq: {}\r\n{contact}{extra}Content-Length: 0\r\n\r\n",
            header(request, "Via"),
            header(request, "From"),
            header(request, "To"),
            header(request, "Call-ID"),
            header(request, "CSeq"),
        )
        .into_bytes()
    }

    fn outcomes(events: &[Event]) -> Vec<(BindingId, BindingEvent)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Binding { id, event } => Some((*id, event.clone())),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_wait_queue_gives_what_one_heap_would_in_the_same_order() {
        let t0 = Instant::now();
        // Spread draws from the test entropy, as the loss test below does.
        let mut draws = Counter(11);
        let mut next =
            move |n: u64| (draws.next_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) % n;
        let mut queue = WaitQueue::default();
        let mut heap = BinaryHeap::new();
        let mut now = t0;
        let (mut in_order, mut others) = (0, 0);
        for seq in 0..20_000 {
            now += Duration::from_millis(next(3));
            // Mostly arrivals keyed in order, some refreshes keyed by any expiry; pops in
            // between.
            let key = match next(4) {
                0 => t0 + Duration::from_secs(next(100)),
                _ => now + QUEUE_HORIZON,
            };
            let entry = (key, seq, BindingId(seq));
            queue.push(entry);
            heap.push(Reverse(entry));
            for _ in 0..next(3) {
                assert_eq!(queue.pop(), heap.pop().map(|Reverse(e)| e));
            }
            assert_eq!(queue.len(), heap.len());
            in_order = in_order.max(queue.in_order.len());
            others = others.max(queue.others.len());
        }
        assert!(in_order > 10 && others > 10, "both halves were used");
        while let Some(Reverse(entry)) = heap.pop() {
            assert_eq!(queue.pop(), Some(entry));
        }
        assert!(queue.is_empty() && queue.pop().is_none());
    }

    #[test]
    fn the_timer_heap_keeps_one_entry_per_binding_and_names_the_next_deadline_exactly() {
        let mut sim = Sim::new(64);
        sim.ep
            .add(sim.now, (1..=50).map(|n| spec(n, HOP)).collect());
        let requests = sim.transmits();
        assert_eq!(requests.len(), 50);
        // Answered a little later each: every deadline moves from Timer E to a refresh.
        for (_, request) in &requests {
            sim.now += Duration::from_millis(1);
            sim.answer(request, 200, "");
        }
        assert_eq!(
            sim.ep.timers.len(),
            50,
            "a deadline moved later keeps its entry"
        );
        let earliest = (sim.ep.bindings.values())
            .filter_map(|slot| slot.binding.next_deadline())
            .min();
        assert!(earliest > Some(sim.now + Duration::from_secs(1)));
        // The entries queued for Timer E come to the top first and are moved, so the next
        // timeout is the first refresh, not a stale retransmission time.
        assert_eq!(sim.ep.poll_timeout(), earliest);
        sim.advance();
        assert_eq!(Some(sim.now), earliest);
        assert_eq!(sim.transmits().len(), 1, "one refresh is due");
        assert!(sim.ep.timers.len() <= 51);
    }

    #[test]
    fn admission_bounds_transactions_per_hop_and_paces_the_rest_in_order() {
        let mut sim = Sim::new(4);
        sim.ep
            .add(sim.now, (1..=10).map(|n| spec(n, HOP)).collect());
        sim.ep.add(sim.now, vec![spec(11, OTHER_HOP)]);
        let first = sim.transmits();
        assert_eq!(first.len(), 5, "4 to the full hop, 1 to the other");
        assert_eq!(sim.ep.in_flight(&Target::udp(hop())), 4);
        let waiting = sim.ep.state(BindingId(9));
        assert_eq!(
            waiting,
            Some(BindingState::Registering),
            "queued = registering"
        );
        // Two answers free two slots: the next two in line go, no more.
        for (_, req) in first.iter().filter(|(d, _)| *d == hop()).take(2) {
            sim.answer(req, 200, "");
        }
        let next: Vec<String> = sim
            .transmits()
            .into_iter()
            .map(|(_, r)| header(&r, "To").to_string())
            .collect();
        assert_eq!(next, ["<sip:u5@example.com>", "<sip:u6@example.com>"]);
        assert_eq!(sim.ep.in_flight(&Target::udp(hop())), 4);
        // Timeouts free slots too: every binding is tried, never more than 4 at once.
        let mut tried: HashSet<String> = first
            .iter()
            .map(|(_, r)| header(r, "To").to_string())
            .chain(next)
            .collect();
        while tried.len() < 11 {
            sim.advance();
            tried.extend(
                sim.transmits()
                    .iter()
                    .map(|(_, r)| header(r, "To").to_string()),
            );
            assert!(sim.ep.in_flight(&Target::udp(hop())) <= 4);
            assert!(
                sim.now - sim.t0 < Duration::from_secs(200),
                "stuck: {tried:?}"
            );
        }
    }

    #[test]
    fn new_credentials_retry_through_admission_not_all_at_once() {
        let mut sim = Sim::new(2);
        sim.ep.add(sim.now, (1..=6).map(|n| spec(n, HOP)).collect());
        // Every binding is challenged and has no credentials: an authorization failure.
        for _ in 0..3 {
            for (_, req) in sim.transmits() {
                sim.answer(
                    &req,
                    401,
                    "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n",
                );
            }
        }
        let failures = outcomes(&sim.events())
            .into_iter()
            .filter(|(_, e)| {
                *e == BindingEvent::Failed(crate::engine::binding::Failure::AuthRejected)
            })
            .count();
        assert_eq!(failures, 6);
        assert_eq!(sim.ep.in_flight(&Target::udp(hop())), 0);
        let mut store = CredentialStore::default();
        store.insert(Credential::new("", "gw", "pw"));
        sim.now += Duration::from_secs(1);
        sim.ep.set_credentials(sim.now, Arc::new(store));
        assert_eq!(sim.transmits().len(), 2, "paced by the in-flight bound");
        assert_eq!(sim.ep.in_flight(&Target::udp(hop())), 2);
    }

    #[test]
    fn state_is_published_before_the_event_that_changed_it() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec(1, HOP)]);
        let req = sim.transmits().pop().unwrap().1;
        sim.answer(&req, 200, "");
        let events = sim.events();
        let state_at = events.iter().position(|e| {
            *e == Event::State {
                id: BindingId(1),
                state: Some(BindingState::Registered),
            }
        });
        let event_at = events.iter().position(|e| {
            matches!(
                e,
                Event::Binding {
                    event: BindingEvent::Registered { .. },
                    ..
                }
            )
        });
        assert!(state_at.unwrap() < event_at.unwrap(), "{events:?}");
        assert_eq!(events[0], Event::Started(BindingId(1)));
    }

    /// A 2xx to `request` granting `expires` seconds.
    fn granted(request: &str, expires: u32) -> Vec<u8> {
        String::from_utf8(respond(request, 200, ""))
            .unwrap()
            .replace(";expires=600", &format!(";expires={expires}"))
            .into_bytes()
    }

    fn to_user(request: &str) -> String {
        header(request, "To").to_string()
    }

    #[test]
    fn a_registration_whose_refresh_waits_past_its_expiry_is_no_longer_registered() {
        // Six names through a hop that admits one transaction at a time, granted 60 s;
        // then the registrar goes silent. The refreshes queue behind one another and
        // their registrations lapse while they wait.
        let mut sim = Sim::new(1);
        sim.ep.add(sim.now, (1..=6).map(|n| spec(n, HOP)).collect());
        let mut expiry: HashMap<BindingId, Instant> = HashMap::default();
        while expiry.len() < 6 {
            let (_, req) = sim.transmits().pop().expect("the next name in line");
            let id = BindingId(to_user(&req)[6..7].parse().unwrap());
            sim.ep.handle_datagram(sim.now, hop(), &granted(&req, 60));
            expiry.insert(id, sim.now + Duration::from_secs(60));
        }
        sim.events();
        let mut failed: HashMap<BindingId, Vec<Failure>> = HashMap::default();
        while sim.now - sim.t0 < Duration::from_secs(400) {
            sim.advance();
            sim.transmits(); // nobody answers
            for (id, event) in outcomes(&sim.events()) {
                if let BindingEvent::Failed(f) = event {
                    failed.entry(id).or_default().push(f);
                }
            }
            for (id, at) in &expiry {
                if sim.ep.state(*id) == Some(BindingState::Registered) {
                    assert!(sim.now < *at, "{id:?} registered past its expiry");
                }
            }
        }
        for n in 1..=6 {
            let reports = &failed[&BindingId(n)];
            assert_eq!(reports.len(), 1, "reported once per outage: {reports:?}");
        }
        let expired = failed.values().filter(|r| r[0] == Failure::Expired).count();
        assert!(expired >= 4, "the queued refreshes lapsed: {failed:?}");
        // The registrar answers again: every name registers.
        for _ in 0..2000 {
            for (_, req) in sim.transmits() {
                sim.ep.handle_datagram(sim.now, hop(), &granted(&req, 60));
            }
            if (1..=6).all(|n| sim.ep.state(BindingId(n)) == Some(BindingState::Registered)) {
                return;
            }
            sim.advance();
        }
        panic!("not every name registered again");
    }

    #[test]
    fn a_bounded_stop_under_loss_retransmits_until_its_deadline_and_names_what_is_left() {
        // 2,000 names registered through one hop; then the network loses 30 % each way
        // and everything is stopped with a 4 s bound.
        let mut sim = Sim::new(MAX_IN_FLIGHT_PER_HOP);
        sim.ep
            .add(sim.now, (1..=2000).map(|n| spec(n, HOP)).collect());
        for _ in 0..100 {
            for (_, req) in sim.transmits() {
                sim.answer(&req, 200, "");
            }
            if sim.ep.stats().requests >= 2000 && sim.ep.in_flight(&Target::udp(hop())) == 0 {
                break;
            }
        }
        assert!((1..=2000).all(|n| sim.ep.state(BindingId(n)) == Some(BindingState::Registered)));
        sim.events();
        let mut lose = Counter(7);
        let lost = |e: &mut Counter| e.next_u64().wrapping_mul(0x9e37_79b9_7f4a_7c15) % 100 < 30;
        let start = sim.now;
        sim.ep
            .stop_within(sim.now, None, Some(1), Some(Duration::from_secs(4)));
        let mut removed = 0;
        let mut done_at = None;
        let mut logs = Vec::new();
        while done_at.is_none() {
            for (_, req) in sim.transmits() {
                if !lost(&mut lose) && !lost(&mut lose) {
                    sim.answer(&req, 200, "");
                }
            }
            for event in sim.events() {
                match event {
                    Event::StopDone(1) => done_at = Some(sim.now),
                    Event::Log { message, .. } => logs.push(message),
                    Event::Binding {
                        event: BindingEvent::Unregistered,
                        ..
                    } => removed += 1,
                    _ => {}
                }
            }
            if done_at.is_none() {
                sim.advance();
            }
        }
        assert!(done_at.unwrap() - start <= Duration::from_secs(4));
        assert_eq!(removed, 2000, "every binding ends");
        // Four transmissions each (0, 0.5, 1.5 and 3.5 s): about 0.51^4 = 7 % unconfirmed.
        let report = logs
            .iter()
            .find(|m| m.contains("could not be unregistered within 4s"))
            .expect("a report of what is left");
        let left: usize = report.split(' ').next().unwrap().parse().unwrap();
        assert!((40..=240).contains(&left), "{report}");
        assert!(
            report.contains("of 2000 bindings") && report.contains("sip:u"),
            "{report}"
        );
    }

    #[test]
    fn slots_freed_by_timeouts_reopen_spread_out_not_in_lockstep() {
        // Four slots, twelve names, a next hop that never answers: the first four time out
        // together at 32 s; the next four must not all start at that one instant.
        let mut sim = Sim::new(4);
        sim.ep
            .add(sim.now, (1..=12).map(|n| spec(n, HOP)).collect());
        let mut first_sent: HashMap<String, Duration> = HashMap::default();
        for (_, req) in sim.transmits() {
            first_sent.entry(to_user(&req)).or_insert(Duration::ZERO);
        }
        assert_eq!(first_sent.len(), 4);
        while first_sent.len() < 8 {
            let at = sim.advance();
            assert!(at < Duration::from_secs(40), "{first_sent:?}");
            for (_, req) in sim.transmits() {
                first_sent.entry(to_user(&req)).or_insert(at);
            }
        }
        let mut second: Vec<Duration> = first_sent
            .values()
            .copied()
            .filter(|d| !d.is_zero())
            .collect();
        second.sort();
        second.dedup();
        assert!(
            second.len() >= 3,
            "the next ones start together: {second:?}"
        );
        let timeout = DEFAULT_TIMEOUT;
        assert!(
            second
                .iter()
                .all(|d| *d >= timeout && *d < timeout + HOLD_AFTER_TIMEOUT),
            "{second:?}"
        );
        assert!(sim.ep.in_flight(&Target::udp(hop())) <= 4);
    }

    #[test]
    fn a_bounded_stop_whose_hop_is_full_waits_without_spinning() {
        // Two slots (sixteen while stopping), forty names, and nobody answers the removals:
        // the queue is held back by the full hop, not by pacing, and time must move on.
        let mut sim = Sim::new(2);
        sim.ep
            .add(sim.now, (1..=40).map(|n| spec(n, HOP)).collect());
        while sim.ep.stats().responses < 40 {
            let sent = sim.transmits();
            assert!(!sent.is_empty() || sim.ep.in_flight(&Target::udp(hop())) > 0);
            for (_, req) in sent {
                sim.answer(&req, 200, "");
            }
        }
        sim.events();
        sim.ep
            .stop_within(sim.now, None, Some(1), Some(Duration::from_secs(8)));
        let mut same = 0;
        let mut last = sim.now;
        while !sim.events().contains(&Event::StopDone(1)) {
            sim.transmits();
            assert!(sim.ep.in_flight(&Target::udp(hop())) <= 2 * STOP_BURST);
            sim.advance();
            same = if sim.now == last { same + 1 } else { 0 };
            last = sim.now;
            assert!(same < 100, "the endpoint spins at {:?}", sim.now - sim.t0);
        }
    }

    #[test]
    fn a_request_this_host_cannot_send_fails_at_once_with_the_reason() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec(1, HOP)]);
        let first = sim.ep.poll_transmit().unwrap();
        let request = first.request.expect("a binding's request");
        assert_eq!(request.0, BindingId(1));
        sim.events();
        sim.ep
            .handle_send_failed(sim.now, request, "Message too long (os error 90)");
        let events = sim.events();
        assert_eq!(
            outcomes(&events),
            [(
                BindingId(1),
                BindingEvent::Failed(Failure::Local("Message too long (os error 90)".into()))
            )]
        );
        assert_eq!(
            sim.ep.state(BindingId(1)),
            Some(BindingState::WaitingToRetry)
        );
        assert_eq!(sim.ep.in_flight(&Target::udp(hop())), 0);
        // Retried on the backoff (1 s, jittered), not in a timeout's 32 s.
        let wait = sim.advance();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        let retry = sim.ep.poll_transmit().expect("the retry");
        // A failure reported for a transaction that has ended changes nothing.
        sim.ep.handle_send_failed(sim.now, request, "late");
        assert!(outcomes(&sim.events()).is_empty());
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registering));
        assert_ne!(retry.request, Some(request));
        // Keep-alives are nobody's request.
        sim.ep.send_keepalive();
        assert_eq!(sim.ep.poll_transmit().unwrap().request, None);
    }

    #[test]
    fn a_refresh_close_to_its_expiry_goes_ahead_in_the_queue() {
        let mut sim = Sim::new(1);
        // u1 is granted 600 s, u2 40 s.
        sim.ep.add(sim.now, vec![spec(1, HOP), spec(2, HOP)]);
        for expires in [600, 40] {
            let (_, req) = sim.transmits().pop().unwrap();
            sim.ep
                .handle_datagram(sim.now, hop(), &granted(&req, expires));
        }
        // u3 takes the only slot and is never answered (for 32 s); meanwhile both
        // refreshes come due, and u4 is added.
        sim.ep.add(sim.now, vec![spec(3, HOP)]);
        sim.transmits();
        while sim.now - sim.t0 < Duration::from_secs(20) {
            sim.advance();
            sim.transmits();
        }
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registered));
        sim.ep.add(sim.now, vec![spec(4, HOP)]);
        let mut order = Vec::new();
        while order.len() < 3 {
            sim.advance();
            assert!(sim.now - sim.t0 < Duration::from_secs(120), "{order:?}");
            for (_, req) in sim.transmits() {
                let user = to_user(&req);
                if user != "<sip:u3@example.com>" && !order.contains(&user) {
                    order.push(user);
                    sim.ep.handle_datagram(sim.now, hop(), &granted(&req, 600));
                }
            }
        }
        assert_eq!(
            order,
            [
                "<sip:u2@example.com>",
                "<sip:u4@example.com>",
                "<sip:u1@example.com>"
            ],
            "the lapsing refresh, the new name, the refresh with time to spare"
        );
    }

    #[test]
    fn stray_spoofed_and_malformed_datagrams_are_dropped_and_logged() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec(1, HOP)]);
        let req = sim.transmits().pop().unwrap().1;
        sim.events();
        let ok = String::from_utf8(respond(&req, 200, "")).unwrap();
        let branch = header(&req, "Via")
            .split("branch=")
            .nth(1)
            .unwrap()
            .to_string();
        let call_id = header(&req, "Call-ID").to_string();
        for bad in [
            ok.replace(&branch, "z9hG4bKforged"),
            ok.replace(&call_id, "other"),
            ok.replace("CSeq: 1", "CSeq: 9"),
            "garbage".to_string(),
        ] {
            sim.ep.handle_datagram(sim.now, hop(), bad.as_bytes());
        }
        // The right answer from another address.
        sim.ep
            .handle_datagram(sim.now, OTHER_HOP.parse().unwrap(), ok.as_bytes());
        let events = sim.events();
        assert!(outcomes(&events).is_empty(), "{events:?}");
        let logs = events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    Event::Log {
                        level: LogLevel::Warning,
                        ..
                    }
                )
            })
            .count();
        assert_eq!(logs, 5);
        assert_eq!(sim.ep.stats().dropped, 5);
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registering));
        sim.ep.handle_datagram(sim.now, hop(), ok.as_bytes());
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registered));
        // CRLF keep-alive answers are not diagnostics.
        sim.ep.handle_datagram(sim.now, hop(), b"\r\n");
        assert!(sim.events().iter().all(|e| !matches!(e, Event::Log { .. })));
    }

    #[test]
    fn stop_unregisters_then_reports_done_in_order() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec(1, HOP), spec(2, HOP)]);
        for (_, req) in sim.transmits() {
            sim.answer(&req, 200, "");
        }
        sim.events();
        sim.ep.stop(sim.now, None, Some(7));
        let removals = sim.transmits();
        assert_eq!(removals.len(), 2);
        assert!(removals.iter().all(|(_, r)| header(r, "Expires") == "0"));
        assert_eq!(
            sim.ep.state(BindingId(1)),
            Some(BindingState::Unregistering)
        );
        sim.answer(&removals[0].1, 200, "");
        assert!(!sim.events().contains(&Event::StopDone(7)), "one is left");
        sim.answer(&removals[1].1, 200, "");
        let events = sim.events();
        let done = events
            .iter()
            .position(|e| *e == Event::StopDone(7))
            .unwrap();
        let last_unregistered = events
            .iter()
            .rposition(|e| {
                matches!(
                    e,
                    Event::Binding {
                        event: BindingEvent::Unregistered,
                        ..
                    }
                )
            })
            .unwrap();
        assert!(last_unregistered < done, "{events:?}");
        assert_eq!(sim.ep.stats().bindings, 0);
        assert_eq!(sim.ep.poll_timeout(), None, "nothing left to do");
    }

    #[test]
    fn stopping_a_binding_still_queued_ends_it_without_a_request() {
        let mut sim = Sim::new(1);
        sim.ep.add(sim.now, vec![spec(1, HOP), spec(2, HOP)]);
        assert_eq!(sim.transmits().len(), 1);
        sim.ep.stop(sim.now, Some(vec![BindingId(2)]), Some(1));
        let events = sim.events();
        assert!(events.contains(&Event::Stopping(BindingId(2))));
        assert!(events.contains(&Event::StopDone(1)));
        assert!(sim.transmits().is_empty());
        assert_eq!(sim.ep.state(BindingId(2)), None);
    }

    #[test]
    fn a_queued_stop_replaces_a_queued_refresh() {
        let mut sim = Sim::new(1);
        let mut slow = spec(2, HOP);
        slow.config.timeout = Duration::from_secs(120);
        sim.ep.add(sim.now, vec![spec(1, HOP), slow]);
        let first = sim.transmits().pop().unwrap().1;
        sim.answer(&first, 200, "");
        let second = sim.transmits().pop().unwrap().1;
        // Binding 1 is registered; binding 2 is in flight and holds the only slot. When
        // 1's refresh falls due it waits, and a stop replaces it.
        sim.now += Duration::from_secs(60);
        sim.ep.handle_timeout(sim.now);
        let of_1 = |sent: Vec<(SocketAddr, String)>| -> Vec<String> {
            sent.into_iter()
                .map(|(_, r)| r)
                .filter(|r| r.contains("u1@"))
                .collect()
        };
        assert!(of_1(sim.transmits()).is_empty(), "the hop is full");
        sim.ep.stop(sim.now, Some(vec![BindingId(1)]), None);
        assert_eq!(
            sim.ep.state(BindingId(1)),
            Some(BindingState::Unregistering)
        );
        sim.answer(&second, 200, "");
        let sent = of_1(sim.transmits());
        assert_eq!(sent.len(), 1);
        assert_eq!(
            header(&sent[0], "Expires"),
            "0",
            "the stop, not the refresh"
        );
    }

    #[test]
    fn timer_e_switches_to_t2_after_a_provisional_response() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec(1, HOP)]);
        let req = sim.transmits().pop().unwrap().1;
        sim.now += Duration::from_millis(100);
        sim.answer(&req, 100, "");
        let mut at = Vec::new();
        while at.len() < 3 {
            let t = sim.advance();
            if !sim.transmits().is_empty() {
                at.push(t.as_millis());
            }
        }
        // Without the provisional: 500, 1500, 3500 ms. With it, Timer E is T2 from then on.
        assert_eq!(at, [500, 4500, 8500]);
    }

    #[test]
    fn timer_e_without_an_answer_then_timer_f() {
        let mut sim = Sim::new(8);
        let mut s = spec(1, HOP);
        s.config.timeout = Duration::from_secs(2);
        sim.ep.add(sim.now, vec![s]);
        sim.transmits();
        let mut at = Vec::new();
        loop {
            let t = sim.advance();
            if !sim.transmits().is_empty() {
                at.push(t.as_millis());
            }
            let events = sim.events();
            if !outcomes(&events).is_empty() {
                assert_eq!(
                    outcomes(&events),
                    [(
                        BindingId(1),
                        BindingEvent::Failed(crate::engine::binding::Failure::TimedOut)
                    )]
                );
                assert_eq!(t, Duration::from_secs(2));
                break;
            }
        }
        assert_eq!(at, [500, 1500]);
    }

    #[test]
    fn refresh_comes_at_the_update_interval_or_before_the_grant_lapses() {
        let mut sim = Sim::new(8);
        let mut short = spec(2, HOP);
        short.config.refresh_interval = Duration::from_secs(5);
        sim.ep.add(sim.now, vec![spec(1, HOP), short]);
        for (_, req) in sim.transmits() {
            // u1 is granted 20 s (below its 60 s interval), u2 600 s (above its 5 s interval).
            let grant = if req.contains("u1@") { "20" } else { "600" };
            let bytes = String::from_utf8(respond(&req, 200, ""))
                .unwrap()
                .replace("expires=600", &format!("expires={grant}"));
            sim.ep.handle_datagram(sim.now, hop(), bytes.as_bytes());
        }
        // Each refresh falls at a random point of a window before the shorter of the
        // interval and the grant: the first at 30-95 % of it (u2 within [1.5, 4.75] s, u1
        // within [6, 19] s), later ones at 80-95 % (u2 within [4, 4.75] s of the last).
        let mut last_u2 = Duration::ZERO;
        let mut u2_refreshes = 0;
        let mut u1_at = None;
        while u1_at.is_none() {
            let t = sim.advance();
            assert!(t <= Duration::from_secs(19), "u1 refreshed by 19 s");
            for (_, req) in sim.transmits() {
                if req.contains("u1@") {
                    u1_at = Some(t);
                } else {
                    let gap = t - last_u2;
                    let least = if last_u2.is_zero() { 1500 } else { 4000 };
                    assert!(
                        gap >= Duration::from_millis(least) && gap <= Duration::from_millis(4750),
                        "u2 refreshed {gap:?} after the last"
                    );
                    last_u2 = t;
                    u2_refreshes += 1;
                }
                sim.answer(&req, 200, "");
            }
        }
        assert!(u1_at.unwrap() >= Duration::from_secs(6), "{u1_at:?}");
        assert!(u2_refreshes >= 1, "u2 refreshed");
    }

    #[test]
    fn keep_alives_go_to_every_next_hop_at_the_interval() {
        let mut sim = Sim::new(8);
        sim.ep.add(
            sim.now,
            vec![spec(1, HOP), spec(2, HOP), spec(3, OTHER_HOP)],
        );
        for (d, req) in sim.transmits() {
            let bytes = respond(&req, 200, "");
            sim.ep.handle_datagram(sim.now, d, &bytes);
        }
        sim.ep.set_keepalive(sim.now, Some(Duration::from_secs(15)));
        assert_eq!(sim.advance(), Duration::from_secs(15));
        let mut sent = sim.transmits();
        sent.sort();
        assert_eq!(
            sent,
            [
                (hop(), "\r\n\r\n".to_string()),
                (OTHER_HOP.parse().unwrap(), "\r\n\r\n".to_string())
            ]
        );
    }

    fn tcp_target() -> Target {
        Target {
            transport: crate::engine::transport::Transport::Tcp,
            addr: hop(),
            tls: None,
        }
    }

    fn tcp_spec(n: u64) -> BindingSpec {
        let mut s = spec(n, HOP);
        s.destination = Located::single(tcp_target());
        s.config.transport = crate::engine::transport::Transport::Tcp;
        s
    }

    /// Transmits on streams, with their target.
    fn stream_transmits(sim: &mut Sim) -> Vec<(Target, String)> {
        std::iter::from_fn(|| sim.ep.poll_transmit())
            .map(|t| (t.destination, String::from_utf8(t.contents).unwrap()))
            .collect()
    }

    #[test]
    fn keep_alives_to_a_destination_are_datagrams_or_go_on_a_connection_in_use() {
        let mut sim = Sim::new(8);
        let elsewhere: SocketAddr = "192.0.2.7:5070".parse().unwrap();
        let crlf = |target: Target| (target, "\r\n\r\n".to_string());
        sim.ep
            .set_keepalive_to(sim.now, elsewhere, Some(Duration::from_secs(20)));
        assert_eq!(stream_transmits(&mut sim), [crlf(Target::udp(elsewhere))]);
        // A registration over TCP to the hop: keep-alives to its address go on it.
        sim.ep.add(sim.now, vec![tcp_spec(1)]);
        assert_eq!(stream_transmits(&mut sim).len(), 1, "the REGISTER");
        sim.ep
            .set_keepalive_to(sim.now, hop(), Some(Duration::from_secs(30)));
        assert_eq!(stream_transmits(&mut sim), [crlf(tcp_target())]);
        // Each at its own interval, on the simulated clock.
        sim.now += Duration::from_secs(20);
        sim.ep.handle_timeout(sim.now);
        let sent = stream_transmits(&mut sim);
        assert!(sent.contains(&crlf(Target::udp(elsewhere))), "{sent:?}");
        assert!(!sent.contains(&crlf(tcp_target())), "{sent:?}");
        sim.now += Duration::from_secs(10);
        sim.ep.handle_timeout(sim.now);
        let sent = stream_transmits(&mut sim);
        assert!(sent.contains(&crlf(tcp_target())), "{sent:?}");
        assert!(!sent.contains(&crlf(Target::udp(elsewhere))), "{sent:?}");
        // Turned off: none any more.
        sim.ep.set_keepalive_to(sim.now, elsewhere, None);
        sim.ep.set_keepalive_to(sim.now, hop(), None);
        sim.now += Duration::from_secs(60);
        sim.ep.handle_timeout(sim.now);
        let sent = stream_transmits(&mut sim);
        assert!(!sent.iter().any(|(_, m)| m == "\r\n\r\n"), "{sent:?}");
    }

    #[test]
    fn over_tcp_responses_are_framed_from_the_stream_and_nothing_is_retransmitted() {
        let mut sim = Sim::new(8);
        let mut s = tcp_spec(1);
        s.config.timeout = Duration::from_secs(4);
        sim.ep.add(sim.now, vec![s]);
        let sent = stream_transmits(&mut sim);
        assert_eq!(sent.len(), 1);
        let (target, req) = &sent[0];
        assert_eq!(*target, tcp_target());
        assert!(header(req, "Via").starts_with("SIP/2.0/TCP 127.0.0.1:5062;rport;branch="));
        assert!(header(req, "Contact").ends_with(";transport=tcp>"), "{req}");
        // No Timer E: the next thing due is Timer F.
        assert_eq!(
            sim.ep.poll_timeout(),
            Some(sim.now + Duration::from_secs(4))
        );
        // The answer arrives in pieces, after a CRLF keep-alive pong.
        let ok = respond(req, 200, "");
        let (a, b) = ok.split_at(ok.len() / 2);
        sim.ep.handle_stream_data(sim.now, &tcp_target(), b"\r\n");
        sim.ep.handle_stream_data(sim.now, &tcp_target(), a);
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registering));
        sim.ep.handle_stream_data(sim.now, &tcp_target(), b);
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registered));
        // The same answer from UDP, or from another connection, is not believed.
        assert_eq!(sim.ep.stats().responses, 1);
    }

    #[test]
    fn a_lost_connection_fails_what_is_in_flight_at_once_and_reregisters_the_rest_spread() {
        let mut sim = Sim::new(2);
        sim.ep.add(sim.now, (1..=4).map(tcp_spec).collect());
        // Two are registered; two are still in flight (the slots freed by the first two).
        for (_, req) in stream_transmits(&mut sim) {
            let ok = respond(&req, 200, "");
            sim.ep.handle_stream_data(sim.now, &tcp_target(), &ok);
        }
        let in_flight = stream_transmits(&mut sim);
        assert_eq!(in_flight.len(), 2);
        sim.events();
        sim.now += Duration::from_secs(1);
        sim.ep
            .handle_connection_lost(sim.now, &tcp_target(), Failure::Transport("reset".into()));
        let events = sim.events();
        let failed: Vec<_> = outcomes(&events)
            .into_iter()
            .filter(|(_, e)| matches!(e, BindingEvent::Failed(Failure::Transport(_))))
            .collect();
        assert_eq!(failed.len(), 2, "at once, not at Timer F: {events:?}");
        // The registered two register again within a second, one at a time (the limit is
        // 2, and the failed two wait on their backoff).
        let mut again = Vec::new();
        while again.len() < 2 {
            let t = sim.advance() - Duration::from_secs(1);
            for (target, req) in stream_transmits(&mut sim) {
                assert_eq!(target, tcp_target());
                again.push((t, req.clone()));
            }
        }
        assert!(
            again.iter().all(|(t, _)| *t < Duration::from_secs(1)),
            "{again:?}"
        );
        assert_ne!(again[0].0, again[1].0, "spread, not together");
    }

    #[test]
    fn a_stream_breaking_the_framing_rules_is_closed_and_handled_as_lost() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![tcp_spec(1)]);
        stream_transmits(&mut sim);
        sim.events();
        sim.ep.handle_stream_data(
            sim.now,
            &tcp_target(),
            b"SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n",
        );
        let events = sim.events();
        assert!(events.contains(&Event::Close(tcp_target())), "{events:?}");
        assert!(events.iter().any(|e| matches!(
            e,
            Event::Log { level: LogLevel::Warning, message } if message.contains("without Content-Length")
        )));
        assert!(matches!(
            outcomes(&events)[..],
            [(_, BindingEvent::Failed(Failure::Transport(_)))]
        ));
    }

    #[test]
    fn the_connection_of_the_last_binding_is_closed_once_idle() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![tcp_spec(1), tcp_spec(2)]);
        for (_, req) in stream_transmits(&mut sim) {
            sim.ep
                .handle_stream_data(sim.now, &tcp_target(), &respond(&req, 200, ""));
        }
        for id in [1, 2] {
            sim.ep.stop(sim.now, Some(vec![BindingId(id)]), None);
            let (_, removal) = stream_transmits(&mut sim).pop().unwrap();
            sim.ep
                .handle_stream_data(sim.now, &tcp_target(), &respond(&removal, 200, ""));
        }
        let closed = |sim: &mut Sim| sim.events().contains(&Event::Close(tcp_target()));
        assert!(!closed(&mut sim), "not at once");
        assert_eq!(sim.ep.poll_timeout(), Some(sim.now + STREAM_IDLE));
        // A binding that comes back meanwhile keeps it.
        sim.now += STREAM_IDLE / 2;
        sim.ep.add(sim.now, vec![tcp_spec(3)]);
        let (_, req) = stream_transmits(&mut sim).pop().unwrap();
        sim.ep
            .handle_stream_data(sim.now, &tcp_target(), &respond(&req, 200, ""));
        sim.ep.stop(sim.now, Some(vec![BindingId(3)]), None);
        let (_, removal) = stream_transmits(&mut sim).pop().unwrap();
        sim.ep
            .handle_stream_data(sim.now, &tcp_target(), &respond(&removal, 200, ""));
        let stopped = sim.now;
        assert_eq!(sim.advance(), stopped + STREAM_IDLE - sim.t0);
        assert!(closed(&mut sim), "closed once idle");
        assert_eq!(sim.ep.poll_timeout(), None);
    }

    #[test]
    fn a_tls_failure_is_reported_once_across_retries() {
        let mut sim = Sim::new(8);
        let mut s = tcp_spec(1);
        let mut target = tcp_target();
        target.transport = crate::engine::transport::Transport::Tls;
        s.destination = Located::single(target.clone());
        s.config.transport = crate::engine::transport::Transport::Tls;
        sim.ep.add(sim.now, vec![s]);
        let mut reported = 0;
        for _ in 0..4 {
            assert_eq!(stream_transmits(&mut sim).len(), 1);
            sim.ep.handle_connection_lost(
                sim.now,
                &target,
                Failure::Tls("invalid peer certificate: UnknownIssuer".into()),
            );
            let events = sim.events();
            reported += outcomes(&events).len();
            assert!(events.iter().any(|e| matches!(
                e,
                Event::Log {
                    level: LogLevel::Error,
                    ..
                }
            )));
            sim.advance(); // the retry
        }
        assert_eq!(reported, 1);
    }

    // Failover, Retry-After, redirects and new DNS answers, on the simulated clock.

    const THIRD_HOP: &str = "127.0.0.1:5080";

    fn udp(addr: &str) -> Target {
        Target::udp(addr.parse().unwrap())
    }

    /// A server located at `targets` (in order), valid until `valid_until`.
    fn located(targets: &[&str], valid_until: Option<Instant>) -> Arc<Located> {
        Arc::new(Located {
            key: "udp:registrar.test".into(),
            query: Some(Query {
                server: HostPort::parse("registrar.test").unwrap(),
                choice: TransportChoice::Only(crate::engine::transport::Transport::Udp),
                tls: None,
                ipv6: false,
            }),
            targets: targets.iter().map(|t| udp(t)).collect(),
            valid_until,
        })
    }

    fn spec_to(n: u64, destination: Arc<Located>) -> BindingSpec {
        BindingSpec {
            destination,
            ..spec(n, HOP)
        }
    }

    impl Sim {
        fn answer_from(&mut self, from: &str, request: &str, status: u16, extra: &str) {
            let bytes = respond(request, status, extra);
            self.ep
                .handle_datagram(self.now, from.parse().unwrap(), &bytes);
        }

        /// Runs timeouts until something is sent; returns when (since t0) and what.
        fn next_transmit(&mut self) -> (Duration, SocketAddr, String) {
            loop {
                let t = self.advance();
                if let Some((to, req)) = self.transmits().pop() {
                    return (t, to, req);
                }
            }
        }
    }

    /// What is sent at once (its timer is due now: the driver runs it without waiting).
    fn sent_at_once(sim: &mut Sim) -> (SocketAddr, String) {
        let before = sim.now;
        sim.advance();
        assert_eq!(sim.now, before, "at once");
        let mut sent = sim.transmits();
        assert_eq!(sent.len(), 1, "one request");
        sent.pop().unwrap()
    }

    fn first_request(sim: &mut Sim) -> (SocketAddr, String) {
        let mut sent = sim.transmits();
        assert_eq!(sent.len(), 1, "one request");
        sent.pop().unwrap()
    }

    fn failures(events: &[Event]) -> Vec<Failure> {
        outcomes(events)
            .into_iter()
            .filter_map(|(_, e)| match e {
                BindingEvent::Failed(f) => Some(f),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_timeout_moves_to_the_next_target_at_once_and_refreshes_stay_there() {
        let mut sim = Sim::new(8);
        let mut s = spec_to(1, located(&[HOP, OTHER_HOP], None));
        s.config.refresh_interval = Duration::from_secs(300);
        sim.ep.add(sim.now, vec![s]);
        let (to, _) = first_request(&mut sim);
        assert_eq!(to, hop());
        // The primary never answers: retransmissions, then at Timer F the secondary.
        let mut events = sim.events();
        let (t, to, req) = loop {
            let t = sim.advance();
            events.extend(sim.events());
            let sent = sim.transmits();
            if let Some((to, req)) = sent.iter().find(|(to, _)| *to != hop()).cloned() {
                break (t, to, req);
            }
        };
        assert_eq!(t, DEFAULT_TIMEOUT, "at once when the transaction times out");
        assert_eq!(to, OTHER_HOP.parse().unwrap());
        assert!(
            failures(&events).is_empty(),
            "not reported: a target was left"
        );
        sim.answer_from(OTHER_HOP, &req, 200, "");
        assert!(matches!(
            outcomes(&sim.events())[..],
            [(_, BindingEvent::Registered { .. })]
        ));
        // Long after the primary's avoidance ended, refreshes stay with the secondary.
        for _ in 0..3 {
            let (t, to, req) = sim.next_transmit();
            assert!(t > DEFAULT_TIMEOUT + AVOID_FAILED);
            assert_eq!(to, OTHER_HOP.parse().unwrap(), "affinity");
            sim.answer_from(OTHER_HOP, &req, 200, "");
        }
    }

    #[test]
    fn a_new_answer_brings_refreshes_back_to_the_preferred_target() {
        let mut sim = Sim::new(8);
        let t0 = sim.t0;
        let mut s = spec_to(
            1,
            located(&[HOP, OTHER_HOP], Some(t0 + Duration::from_secs(90))),
        );
        s.config.refresh_interval = Duration::from_secs(60);
        sim.ep.add(sim.now, vec![s]);
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 503, "");
        let (to, req) = sent_at_once(&mut sim);
        assert_eq!(to, OTHER_HOP.parse().unwrap());
        sim.answer_from(OTHER_HOP, &req, 200, "");
        // Refreshes before the answer expires (90 s) stay with the secondary and ask
        // nothing; the first one after it asks DNS again and meanwhile keeps its target.
        let req = loop {
            let (t, to, req) = sim.next_transmit();
            assert_eq!(to, OTHER_HOP.parse().unwrap(), "affinity");
            let resolve: Vec<Event> = sim
                .events()
                .into_iter()
                .filter(|e| matches!(e, Event::Resolve { .. }))
                .collect();
            if t < Duration::from_secs(90) {
                assert!(resolve.is_empty(), "{resolve:?}");
                sim.answer_from(OTHER_HOP, &req, 200, "");
                continue;
            }
            assert!(
                matches!(&resolve[..], [Event::Resolve { key, query }]
                    if key == "udp:registrar.test" && query.server.to_string() == "registrar.test"),
                "{resolve:?}"
            );
            break req;
        };
        sim.answer_from(OTHER_HOP, &req, 200, "");
        let until = sim.now + Duration::from_secs(300);
        sim.ep.handle_located(
            sim.now,
            "udp:registrar.test",
            Ok((vec![udp(HOP), udp(OTHER_HOP)], Some(until))),
        );
        // With the new answer the next refresh goes to the preferred target again.
        let (_, to, _) = sim.next_transmit();
        assert_eq!(to, hop());
    }

    #[test]
    fn a_failed_lookup_keeps_the_old_answer() {
        let mut sim = Sim::new(8);
        let t0 = sim.t0;
        sim.ep.add(
            sim.now,
            vec![spec_to(
                1,
                located(&[HOP], Some(t0 + Duration::from_secs(1))),
            )],
        );
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 200, "");
        let (_, to, req) = sim.next_transmit();
        assert_eq!(to, hop());
        assert!(
            sim.events()
                .iter()
                .any(|e| matches!(e, Event::Resolve { .. }))
        );
        sim.answer(&req, 200, "");
        sim.ep
            .handle_located(sim.now, "udp:registrar.test", Err("SERVFAIL".into()));
        let logs: Vec<String> = sim
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Log { message, .. } => Some(message),
                _ => None,
            })
            .collect();
        assert!(logs.iter().any(|l| l.contains("SERVFAIL")), "{logs:?}");
        // Not asked again at every refresh: the old answer holds a while longer.
        let (_, to, _) = sim.next_transmit();
        assert_eq!(to, hop());
        assert!(
            !sim.events()
                .iter()
                .any(|e| matches!(e, Event::Resolve { .. }))
        );
    }

    #[test]
    fn retry_after_bars_the_target_and_the_next_one_is_tried_first() {
        let mut sim = Sim::new(8);
        sim.ep
            .add(sim.now, vec![spec_to(1, located(&[HOP, OTHER_HOP], None))]);
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 503, "Retry-After: 30\r\n");
        let (to, req) = sent_at_once(&mut sim);
        assert_eq!(to, OTHER_HOP.parse().unwrap());
        assert!(failures(&sim.events()).is_empty());
        // The secondary fails too (no Retry-After): one failure, reported now.
        sim.answer_from(OTHER_HOP, &req, 503, "");
        assert_eq!(failures(&sim.events()), [Failure::Rejected(503)]);
        // Retries go to the secondary only (softly avoided) while the primary is barred,
        // the primary once its 30 s are over.
        let mut at_primary = None;
        while at_primary.is_none() {
            let (t, to, req) = sim.next_transmit();
            assert!(t < Duration::from_secs(600), "bounded");
            if to == hop() {
                at_primary = Some(t);
                sim.answer(&req, 200, "");
            } else {
                sim.answer_from(OTHER_HOP, &req, 503, "");
            }
        }
        assert!(
            at_primary.unwrap() >= Duration::from_secs(30),
            "{at_primary:?}"
        );
    }

    #[test]
    fn retry_after_from_the_only_target_delays_the_retry() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec_to(1, located(&[HOP], None))]);
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 503, "Retry-After: 45\r\n");
        assert_eq!(failures(&sim.events()), [Failure::Rejected(503)]);
        let (t, to, _) = sim.next_transmit();
        assert_eq!(to, hop());
        assert!(t >= Duration::from_secs(45), "{t:?}");
        assert!(t < Duration::from_secs(60), "{t:?}");
    }

    #[test]
    fn retry_after_is_bounded_to_an_hour() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec_to(1, located(&[HOP], None))]);
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 500, "Retry-After: 4000000000\r\n");
        let (t, _, _) = sim.next_transmit();
        assert!(
            t >= MAX_RETRY_AFTER && t < MAX_RETRY_AFTER + Duration::from_secs(1),
            "{t:?}"
        );
    }

    #[test]
    fn every_target_failing_is_one_failure_and_the_next_round_tries_them_again() {
        let mut sim = Sim::new(8);
        sim.ep.add(
            sim.now,
            vec![spec_to(1, located(&[HOP, OTHER_HOP, THIRD_HOP], None))],
        );
        let (to, req) = first_request(&mut sim);
        assert_eq!(to, hop());
        sim.answer(&req, 503, "");
        let (to, req) = sent_at_once(&mut sim);
        assert_eq!(to, OTHER_HOP.parse().unwrap());
        sim.answer_from(OTHER_HOP, &req, 503, "");
        let (to, req) = sent_at_once(&mut sim);
        assert_eq!(to, THIRD_HOP.parse().unwrap());
        assert!(failures(&sim.events()).is_empty());
        sim.answer_from(THIRD_HOP, &req, 503, "");
        assert_eq!(failures(&sim.events()), [Failure::Rejected(503)]);
        // The retries (on the backoff, not at once) go round the list, and nothing more
        // is reported while they fail the same way.
        let mut retried = Vec::new();
        let mut last = sim.now;
        while retried.len() < 6 {
            let (_, to, req) = sim.next_transmit();
            assert!(sim.now > last, "on the backoff");
            last = sim.now;
            sim.answer_from(&to.to_string(), &req, 503, "");
            retried.push(to);
        }
        let third: SocketAddr = THIRD_HOP.parse().unwrap();
        assert_eq!(
            retried,
            [
                hop(),
                OTHER_HOP.parse().unwrap(),
                third,
                hop(),
                OTHER_HOP.parse().unwrap(),
                third
            ]
        );
        assert!(failures(&sim.events()).is_empty(), "reported once");
    }

    #[test]
    fn a_redirect_registers_the_same_aor_at_the_contact_and_a_loop_ends() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec_to(1, located(&[HOP], None))]);
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 302, &format!("Contact: <sip:{THIRD_HOP}>\r\n"));
        let (to, req) = sent_at_once(&mut sim);
        assert_eq!(to, THIRD_HOP.parse().unwrap());
        assert!(
            req.starts_with(&format!("REGISTER sip:{THIRD_HOP} SIP/2.0")),
            "{req}"
        );
        assert_eq!(header(&req, "To"), "<sip:u1@example.com>", "the same AOR");
        // Redirected back where it was sent: a loop, reported, and home again.
        sim.answer_from(
            THIRD_HOP,
            &req,
            302,
            &format!("Contact: <sip:{THIRD_HOP}>\r\n"),
        );
        assert_eq!(failures(&sim.events()), [Failure::Rejected(302)]);
        let (_, to, req) = sim.next_transmit();
        assert_eq!(to, hop(), "back to its own registrar");
        assert!(req.starts_with("REGISTER sip:example.com SIP/2.0"), "{req}");
    }

    #[test]
    fn redirects_are_bounded() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec_to(1, located(&[HOP], None))]);
        let (mut to, mut req) = first_request(&mut sim);
        let mut hops = 0;
        loop {
            hops += 1;
            assert!(hops < 20, "bounded");
            let next = format!("127.0.0.1:{}", 6000 + hops);
            sim.answer_from(
                &to.to_string(),
                &req,
                301,
                &format!("Contact: <sip:{next}>\r\n"),
            );
            if !failures(&sim.events()).is_empty() {
                break;
            }
            (to, req) = sent_at_once(&mut sim);
            assert_eq!(to.to_string(), next);
        }
        assert!(hops <= 9, "{hops} redirects followed");
    }

    #[test]
    fn a_redirect_to_a_name_asks_dns_and_waits_for_the_answer() {
        let mut sim = Sim::new(8);
        sim.ep.add(sim.now, vec![spec_to(1, located(&[HOP], None))]);
        let (_, req) = first_request(&mut sim);
        sim.answer(&req, 302, "Contact: <sip:other.test;transport=udp>\r\n");
        sim.advance();
        assert!(sim.transmits().is_empty(), "nothing before the answer");
        let key = sim
            .events()
            .into_iter()
            .find_map(|e| match e {
                Event::Resolve { key, query } => {
                    assert_eq!(query.server.to_string(), "other.test");
                    Some(key)
                }
                _ => None,
            })
            .expect("a lookup");
        sim.ep
            .handle_located(sim.now, &key, Ok((vec![udp(THIRD_HOP)], None)));
        let (to, req) = sim.transmits().pop().expect("sent once located");
        assert_eq!(to, THIRD_HOP.parse().unwrap());
        assert!(req.starts_with("REGISTER sip:other.test SIP/2.0"), "{req}");
        sim.answer_from(THIRD_HOP, &req, 200, "");
        assert!(matches!(
            outcomes(&sim.events())[..],
            [(_, BindingEvent::Registered { .. })]
        ));
    }

    #[test]
    fn an_icmp_unreachable_fails_over_at_once_and_spares_other_targets() {
        let mut sim = Sim::new(8);
        sim.ep.add(
            sim.now,
            vec![
                spec_to(1, located(&[HOP, OTHER_HOP], None)),
                spec(2, THIRD_HOP),
            ],
        );
        let sent = sim.transmits();
        assert_eq!(sent.len(), 2);
        let third = sent
            .iter()
            .find(|(to, _)| to.to_string() == THIRD_HOP)
            .unwrap()
            .1
            .clone();
        sim.ep
            .handle_unreachable(sim.now, hop(), "port unreachable (ICMP)");
        let (to, _) = sent_at_once(&mut sim);
        assert_eq!(to, OTHER_HOP.parse().unwrap(), "the next target, at once");
        assert!(failures(&sim.events()).is_empty(), "a target was left");
        // Unreachable again, where nothing is in flight: nothing happens.
        sim.ep
            .handle_unreachable(sim.now, hop(), "port unreachable (ICMP)");
        assert!(sim.transmits().is_empty());
        // The binding of another target goes on.
        sim.answer_from(THIRD_HOP, &third, 200, "");
        assert!(matches!(
            outcomes(&sim.events())[..],
            [(BindingId(2), BindingEvent::Registered { .. })]
        ));
    }

    fn outbound_spec(n: u64, hop: &str) -> BindingSpec {
        let mut s = spec(n, hop);
        s.config.instance = Some("urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6".into());
        s.config.reg_id = Some(1);
        s
    }

    /// A STUN success response to the request `request`.
    fn stun_success(request: &[u8]) -> Vec<u8> {
        let mut out = vec![0x01, 0x01, 0, 0];
        out.extend_from_slice(&request[4..20]);
        out
    }

    impl Sim {
        /// Runs timeouts until something is sent (until `limit` since t0); the bytes sent
        /// at that instant.
        fn next_bytes(&mut self, limit: Duration) -> Vec<(SocketAddr, Vec<u8>)> {
            loop {
                let at = self.ep.poll_timeout().expect("a timeout");
                assert!(at - self.t0 <= limit, "nothing sent by {limit:?}");
                self.now = at;
                self.ep.handle_timeout(at);
                let sent: Vec<_> = std::iter::from_fn(|| self.ep.poll_transmit())
                    .map(|t| (t.destination.addr, t.contents))
                    .collect();
                if !sent.is_empty() {
                    return sent;
                }
            }
        }
    }

    #[test]
    fn an_outbound_flow_is_kept_alive_with_stun_and_a_silent_one_registers_again() {
        let mut sim = Sim::new(8);
        let mut specs = vec![outbound_spec(1, HOP), spec(2, HOP)];
        for s in &mut specs {
            s.config.refresh_interval = Duration::from_secs(3600);
        }
        sim.ep.add(sim.now, specs);
        for (_, req) in sim.transmits() {
            sim.answer(&req, 200, "Require: outbound\r\nFlow-Timer: 30\r\n");
        }
        // Keep-alives at 80-100 % of the Flow-Timer, STUN to the hop; answered, they go on
        // and raise nothing.
        let mut last = sim.now;
        for _ in 0..3 {
            let sent = sim.next_bytes(Duration::from_secs(200));
            let [(to, ping)] = &sent[..] else {
                panic!("{sent:?}")
            };
            assert_eq!(*to, hop());
            assert!(stun::is_stun(ping));
            let gap = sim.now - last;
            assert!(
                gap >= Duration::from_secs(24) && gap <= Duration::from_secs(30),
                "{gap:?}"
            );
            last = sim.now;
            sim.ep.handle_datagram(sim.now, hop(), &stun_success(ping));
        }
        let events = sim.events();
        assert!(
            !events.iter().any(|e| matches!(
                e,
                Event::Log {
                    level: LogLevel::Warning,
                    ..
                }
            )),
            "{events:?}"
        );
        // Unanswered: retransmitted, then 10 s after the keep-alive the flow has failed and
        // every binding over it (the plain one shares the UDP flow) registers again at once.
        let pinged = loop {
            let sent = sim.next_bytes(Duration::from_secs(400));
            if sent.iter().all(|(_, b)| stun::is_stun(b)) {
                break sim.now;
            }
        };
        let registers = loop {
            let sent = sim.next_bytes(Duration::from_secs(400));
            let registers: Vec<String> = sent
                .into_iter()
                .filter(|(_, b)| !stun::is_stun(b))
                .map(|(_, b)| String::from_utf8(b).unwrap())
                .collect();
            if !registers.is_empty() {
                break registers;
            }
        };
        assert_eq!(sim.now - pinged, crate::engine::flow::ANSWER_TIMEOUT);
        assert_eq!(registers.len(), 2, "{registers:?}");
        assert!(registers[0].contains("u1@") && registers[0].contains(";ob>"));
        assert!(registers[1].contains("u2@"));
        assert!(sim.events().iter().any(|e| matches!(e,
            Event::Log { message, .. } if message.contains("keep-alive was not answered"))));
    }

    #[test]
    fn no_keep_alive_when_the_registrar_did_not_confirm_outbound() {
        let mut sim = Sim::new(8);
        let mut s = outbound_spec(1, HOP);
        s.config.refresh_interval = Duration::from_secs(3600);
        sim.ep.add(sim.now, vec![s]);
        for (_, req) in sim.transmits() {
            sim.answer(&req, 200, "");
        }
        let (t, _, req) = sim.next_transmit();
        assert!(req.starts_with("REGISTER"), "only the refresh, at {t:?}");
    }

    #[test]
    fn a_second_flow_goes_to_the_second_target_and_both_stand_for_one_binding() {
        let mut sim = Sim::new(8);
        let list = located(&[HOP, OTHER_HOP], None);
        let mut s = outbound_spec(1, HOP);
        s.destination = list.clone();
        s.second_flow = Some(list);
        sim.ep.add(sim.now, vec![s]);
        let sent = sim.transmits();
        assert_eq!(sent.len(), 2, "{sent:?}");
        let flow = |to: &str| {
            sent.iter()
                .find(|(a, _)| a.to_string() == to)
                .unwrap()
                .1
                .clone()
        };
        let (one, two) = (flow(HOP), flow(OTHER_HOP));
        assert!(header(&one, "Contact").ends_with("reg-id=1"), "{one}");
        assert!(header(&two, "Contact").ends_with("reg-id=2"), "{two}");
        assert_ne!(header(&one, "Call-ID"), header(&two, "Call-ID"));
        let events = sim.events();
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Started(_)))
                .collect::<Vec<_>>(),
            [&Event::Started(BindingId(1))]
        );
        // The second flow registers first: the binding is registered, once.
        sim.answer_from(OTHER_HOP, &two, 200, "Require: outbound\r\n");
        sim.answer(&one, 200, "Require: outbound\r\n");
        let events = sim.events();
        assert_eq!(
            outcomes(&events)
                .iter()
                .map(|(id, e)| (*id, matches!(e, BindingEvent::Registered { .. })))
                .collect::<Vec<_>>(),
            [(BindingId(1), true)]
        );
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registered));
        assert!(
            events
                .iter()
                .all(|e| !matches!(e, Event::State { id, .. } if id.0 != 1))
        );
        // Stopping stops both flows; one Unregistered, one end, then the waiter.
        sim.ep.stop(sim.now, Some(vec![BindingId(1)]), Some(7));
        let removals = sim.transmits();
        assert_eq!(removals.len(), 2);
        for (to, req) in &removals {
            sim.answer_from(&to.to_string(), req, 200, "");
        }
        let events = sim.events();
        assert_eq!(
            events
                .iter()
                .filter(|e| !matches!(e, Event::Log { .. }))
                .cloned()
                .collect::<Vec<_>>(),
            [
                Event::Stopping(BindingId(1)),
                Event::State {
                    id: BindingId(1),
                    state: Some(BindingState::Unregistering)
                },
                Event::State {
                    id: BindingId(1),
                    state: None
                },
                Event::Binding {
                    id: BindingId(1),
                    event: BindingEvent::Unregistered
                },
                Event::StopDone(7),
            ]
        );
    }

    #[test]
    fn with_two_flows_a_failure_is_reported_only_when_neither_is_registered() {
        let mut sim = Sim::new(8);
        let mut s = outbound_spec(1, HOP);
        s.config.refresh_interval = Duration::from_secs(60);
        s.second_flow = Some(Located::single(udp(OTHER_HOP)));
        sim.ep.add(sim.now, vec![s]);
        for (to, req) in sim.transmits() {
            sim.answer_from(&to.to_string(), &req, 200, "");
        }
        sim.events();
        // Flow 1's refresh is refused; flow 2 stays registered: nothing reported.
        let mut refused = 0;
        while refused == 0 {
            let (_, to, req) = sim.next_transmit();
            if to == hop() {
                sim.answer(&req, 500, "");
                refused += 1;
            } else {
                sim.answer_from(OTHER_HOP, &req, 200, "");
            }
        }
        assert!(failures(&sim.events()).is_empty());
        assert_eq!(sim.ep.state(BindingId(1)), Some(BindingState::Registered));
        // Flow 2 is refused too: now the binding has failed, once.
        let mut reported = Vec::new();
        while reported.is_empty() {
            let (t, to, req) = sim.next_transmit();
            assert!(t < Duration::from_secs(600), "bounded");
            let from = to.to_string();
            sim.answer_from(&from, &req, 500, "");
            reported = failures(&sim.events());
        }
        assert_eq!(reported, [Failure::Rejected(500)]);
        assert_eq!(
            sim.ep.state(BindingId(1)),
            Some(BindingState::WaitingToRetry)
        );
    }
}
