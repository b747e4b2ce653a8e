//! A UDP endpoint: one socket and one driver task that owns every binding sent from it.
//!
//! The driver feeds the sans-I/O [`Binding`]s with datagrams, timer ticks and commands, and
//! carries out what they return: datagrams to send and events for the dispatcher thread.
//! Responses are routed by the top Via branch and accepted only from the address the
//! request was sent to; anything else is dropped with a diagnostic.
//!
//! Many bindings at once: at most [`MAX_IN_FLIGHT_PER_HOP`] transactions are in flight
//! towards one next hop. An input that would open a new transaction (first REGISTER,
//! refresh, retry, unregistration) waits in a FIFO queue while that hop is full, so tens of
//! thousands of bindings neither overflow socket buffers nor fall into Timer E backoff.

use crate::engine::binding::{Binding, BindingConfig, BindingEvent, BindingState, Entropy, Output};
use crate::engine::digest::CredentialStore;
use crate::engine::message::{self, MAX_MESSAGE_BYTES};
use crate::runtime::dispatch::Dispatcher;
use crate::runtime::service::ServiceGuard;
use parking_lot::Mutex;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::mpsc as tmpsc;
use tokio::time::Instant;

/// Most transactions in flight towards one next hop.
pub const MAX_IN_FLIGHT_PER_HOP: usize = 256;

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
    /// Address every request of the binding is sent to (registrar or outbound proxy).
    pub next_hop: SocketAddr,
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

/// What an endpoint reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A binding changed.
    Binding {
        /// Which binding.
        id: BindingId,
        /// What happened.
        event: BindingEvent,
    },
    /// A diagnostic.
    Log {
        /// Severity.
        level: LogLevel,
        /// Text (never contains a password).
        message: String,
    },
}

enum Command {
    Add(Vec<BindingSpec>),
    Stop {
        ids: Option<Vec<BindingId>>,
        done: Option<mpsc::Sender<()>>,
    },
    SetCredentials(Arc<CredentialStore>),
    SetTrace(bool),
    KeepAlive(Option<Duration>),
    SendKeepAlive,
    Stats(mpsc::Sender<EndpointStats>),
}

/// An input that may open a transaction, kept while its hop is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pending {
    Start,
    Timer,
    Stop,
}

/// A UDP socket with its driver task and its event thread.
pub struct Endpoint {
    commands: tmpsc::UnboundedSender<Command>,
    states: Arc<Mutex<HashMap<BindingId, BindingState>>>,
    local: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
    dispatcher: Option<Dispatcher<EndpointEvent>>,
    service: Option<ServiceGuard>,
}

/// Why an endpoint could not start.
#[derive(Debug)]
pub enum EndpointError {
    /// The socket could not be bound.
    Socket(std::io::Error),
    /// A thread could not be started.
    Thread(std::io::Error),
}

impl Endpoint {
    /// Binds `local` and starts the driver; `deliver` runs on a thread of the endpoint.
    pub fn open(
        local: SocketAddr,
        thread_name: &str,
        deliver: impl FnMut(EndpointEvent) + Send + 'static,
    ) -> Result<Endpoint, EndpointError> {
        let service = ServiceGuard::acquire().map_err(EndpointError::Thread)?;
        let std_socket = std::net::UdpSocket::bind(local).map_err(EndpointError::Socket)?;
        std_socket
            .set_nonblocking(true)
            .map_err(EndpointError::Socket)?;
        let local = std_socket.local_addr().map_err(EndpointError::Socket)?;
        let dispatcher = Dispatcher::start(thread_name, deliver).map_err(EndpointError::Thread)?;
        let socket = {
            let _entered = service.handle().enter();
            UdpSocket::from_std(std_socket).map_err(EndpointError::Socket)?
        };
        let (commands, receiver) = tmpsc::unbounded_channel();
        let states: Arc<Mutex<HashMap<BindingId, BindingState>>> = Arc::default();
        let driver = Driver {
            states: states.clone(),
            socket,
            bindings: HashMap::new(),
            by_branch: HashMap::new(),
            timers: BTreeSet::new(),
            events: dispatcher.sender(),
            entropy: OsEntropy::default(),
            trace: false,
            keepalive: None,
            stop_waiters: Vec::new(),
            in_flight: HashMap::new(),
            waiting: HashMap::new(),
            stats: EndpointStats::default(),
        };
        let task = service.handle().spawn(driver.run(receiver));
        Ok(Endpoint {
            commands,
            states,
            local,
            task: Some(task),
            dispatcher: Some(dispatcher),
            service: Some(service),
        })
    }

    /// The bound local address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Creates bindings and sends their first REGISTER at once.
    pub fn add(&self, specs: Vec<BindingSpec>) {
        let _ = self.commands.send(Command::Add(specs));
    }

    /// Unregisters the given bindings (all when `None`) and forgets them when done.
    pub fn stop(&self, ids: Option<Vec<BindingId>>) {
        let _ = self.commands.send(Command::Stop { ids, done: None });
    }

    /// Like [`Endpoint::stop`], waiting at most `wait` for the registrar's answers.
    pub fn stop_and_wait(&self, ids: Option<Vec<BindingId>>, wait: Duration) -> bool {
        let (done, finished) = mpsc::channel();
        let _ = self.commands.send(Command::Stop {
            ids,
            done: Some(done),
        });
        finished.recv_timeout(wait).is_ok()
    }

    /// Replaces the credentials of every binding.
    pub fn set_credentials(&self, credentials: Arc<CredentialStore>) {
        let _ = self.commands.send(Command::SetCredentials(credentials));
    }

    /// Turns the trace of every SIP message on or off.
    pub fn set_trace(&self, on: bool) {
        let _ = self.commands.send(Command::SetTrace(on));
    }

    /// Sends CRLF keep-alives (RFC 5626 §4.4.1) to every next hop at this interval.
    pub fn set_keepalive(&self, interval: Option<Duration>) {
        let _ = self.commands.send(Command::KeepAlive(interval));
    }

    /// Sends one CRLF keep-alive to every next hop now.
    pub fn send_keepalive(&self) {
        let _ = self.commands.send(Command::SendKeepAlive);
    }

    /// The state of every binding, as the driver last published it (no round trip, so a
    /// busy driver cannot make the answer wait or go missing).
    pub fn states(&self) -> HashMap<BindingId, BindingState> {
        self.states.lock().clone()
    }

    /// The state of one binding; `None` before the driver took it up, or after it ended.
    pub fn state(&self, id: BindingId) -> Option<BindingState> {
        self.states.lock().get(&id).copied()
    }

    /// The counters of this endpoint.
    pub fn stats(&self) -> EndpointStats {
        let (reply, answer) = mpsc::channel();
        if self.commands.send(Command::Stats(reply)).is_err() {
            return EndpointStats::default();
        }
        answer
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_default()
    }

    /// Whether the caller is the event thread (i.e. runs inside a callback).
    pub fn on_event_thread(&self) -> bool {
        self.dispatcher
            .as_ref()
            .is_some_and(|d| d.is_current_thread())
    }

    /// Stops the driver (without unregistering: see [`Endpoint::stop_and_wait`]), then
    /// delivers the queued events and joins the event thread.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            if let Some(service) = &self.service {
                // Wait until the runtime has dropped the task (and its event sender).
                let handle = service.handle().clone();
                let (tx, rx) = mpsc::channel();
                handle.spawn(async move {
                    let _ = task.await;
                    let _ = tx.send(());
                });
                let _ = rx.recv_timeout(Duration::from_secs(5));
            }
        }
        self.dispatcher.take();
        self.service.take();
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Randomness from the operating system.
#[derive(Default)]
pub struct OsEntropy {
    fallback: u64,
}

impl Entropy for OsEntropy {
    fn next_u64(&mut self) -> u64 {
        getrandom::u64().unwrap_or_else(|_| {
            // Only if the OS refuses: a counter mixed with the clock (still unique).
            self.fallback = self.fallback.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            self.fallback ^ nanos.rotate_left(17)
        })
    }
}

struct Slot {
    binding: Binding,
    next_hop: SocketAddr,
    branch: Option<String>,
    timer: Option<Instant>,
    /// The input waiting for a free transaction slot, if any (latest wins).
    pending: Option<Pending>,
}

struct Driver {
    socket: UdpSocket,
    /// Published state of every binding, read by [`Endpoint::states`].
    states: Arc<Mutex<HashMap<BindingId, BindingState>>>,
    bindings: HashMap<BindingId, Slot>,
    by_branch: HashMap<String, BindingId>,
    timers: BTreeSet<(Instant, BindingId)>,
    events: mpsc::Sender<EndpointEvent>,
    entropy: OsEntropy,
    trace: bool,
    keepalive: Option<(Duration, Instant)>,
    stop_waiters: Vec<(HashSet<BindingId>, mpsc::Sender<()>)>,
    in_flight: HashMap<SocketAddr, usize>,
    /// Bindings waiting per hop; an id whose slot no longer has `pending` is skipped.
    waiting: HashMap<SocketAddr, VecDeque<BindingId>>,
    stats: EndpointStats,
}

enum Wake {
    Command(Option<Command>),
    Datagram(std::io::Result<(usize, SocketAddr)>),
    Timer,
}

impl Driver {
    async fn run(mut self, mut commands: tmpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; MAX_MESSAGE_BYTES + 1];
        loop {
            let next_timer = self.next_wake();
            let wake = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                received = self.socket.recv_from(&mut buf) => Wake::Datagram(received),
                _ = sleep_until(next_timer) => Wake::Timer,
            };
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(command)) => self.on_command(command).await,
                Wake::Datagram(Ok((len, from))) => self.on_datagram(&buf[..len], from).await,
                Wake::Datagram(Err(e)) => {
                    // ICMP port unreachable shows up here on some systems: not fatal.
                    self.log(LogLevel::Debug, format!("receive error: {e}"));
                }
                Wake::Timer => self.on_timers().await,
            }
            self.admit_waiting().await;
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        let binding = self.timers.first().map(|(at, _)| *at);
        let keepalive = self.keepalive.map(|(_, at)| at);
        match (binding, keepalive) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    async fn on_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Add(specs) => {
                for spec in specs {
                    let binding = Binding::new(spec.config, &mut self.entropy);
                    self.bindings.insert(
                        spec.id,
                        Slot {
                            binding,
                            next_hop: spec.next_hop,
                            branch: None,
                            timer: None,
                            pending: None,
                        },
                    );
                    self.admit(spec.id, Pending::Start).await;
                }
            }
            Command::Stop { ids, done } => {
                let ids: Vec<BindingId> = match ids {
                    Some(ids) => ids,
                    None => self.bindings.keys().copied().collect(),
                };
                if let Some(done) = done {
                    self.stop_waiters
                        .push((ids.iter().copied().collect(), done));
                }
                for id in ids {
                    let never_started = self
                        .bindings
                        .get_mut(&id)
                        .is_some_and(|s| s.pending.take_if(|p| *p == Pending::Start).is_some());
                    if never_started {
                        // Nothing was sent: it ends at once, without a transaction.
                        self.run_input(id, Pending::Stop).await;
                    } else {
                        self.admit(id, Pending::Stop).await;
                    }
                }
                self.notify_stop_waiters();
            }
            Command::SetCredentials(credentials) => {
                let ids: Vec<BindingId> = self.bindings.keys().copied().collect();
                for id in ids {
                    let credentials = credentials.clone();
                    self.drive(id, |b, e, out| {
                        b.set_credentials(credentials, now.into_std(), e, out)
                    })
                    .await;
                }
            }
            Command::SetTrace(on) => self.trace = on,
            Command::KeepAlive(interval) => {
                self.keepalive = interval.map(|i| (i, now + i));
            }
            Command::SendKeepAlive => self.send_keepalives().await,
            Command::Stats(reply) => {
                let mut stats = self.stats;
                stats.bindings = self.bindings.len() as u64;
                let _ = reply.send(stats);
            }
        }
    }

    async fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
            return; // keep-alive pong (RFC 5626 §4.4.1)
        }
        if self.trace {
            self.log(
                LogLevel::Trace,
                format!("received from {from}:\n{}", String::from_utf8_lossy(bytes)),
            );
        }
        let response = match message::parse_response(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.stats.dropped += 1;
                self.log(
                    LogLevel::Warning,
                    format!(
                        "dropped malformed message of {} bytes from {from}: {e}",
                        bytes.len()
                    ),
                );
                return;
            }
        };
        let Some(&id) = self.by_branch.get(&response.branch) else {
            self.stats.dropped += 1;
            self.log(
                LogLevel::Warning,
                format!(
                    "dropped stray {} response from {from} (unknown branch)",
                    response.status
                ),
            );
            return;
        };
        let expected = self.bindings.get(&id).map(|s| s.next_hop);
        if expected != Some(from) {
            self.stats.dropped += 1;
            self.log(
                LogLevel::Warning,
                format!(
                    "dropped {} response from {from}: request went to {}",
                    response.status,
                    expected.map_or_else(|| "nowhere".into(), |a| a.to_string())
                ),
            );
            return;
        }
        let now = Instant::now().into_std();
        let mut matched = true;
        self.drive(id, |b, e, out| {
            matched = b.on_response(&response, now, e, out)
        })
        .await;
        if matched {
            self.stats.responses += 1;
        } else {
            self.stats.dropped += 1;
            self.log(
                LogLevel::Warning,
                format!(
                    "dropped {} response from {from}: Call-ID or CSeq does not match",
                    response.status
                ),
            );
        }
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        if let Some((interval, at)) = self.keepalive
            && at <= now
        {
            self.keepalive = Some((interval, now + interval));
            self.send_keepalives().await;
        }
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.pop_first();
            if let Some(slot) = self.bindings.get_mut(&id) {
                slot.timer = None;
            }
            self.admit(id, Pending::Timer).await;
        }
    }

    /// Runs an input now, or queues it when it would open a transaction towards a full hop.
    async fn admit(&mut self, id: BindingId, input: Pending) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        let hop = slot.next_hop;
        let opens = slot.branch.is_none();
        let full = self.in_flight.get(&hop).copied().unwrap_or(0) >= MAX_IN_FLIGHT_PER_HOP;
        if slot.pending.is_some() {
            // Already queued: keep its place; a stop replaces a waiting refresh.
            if input == Pending::Stop {
                slot.pending = Some(Pending::Stop);
            }
            return;
        }
        if opens && full {
            slot.pending = Some(input);
            self.waiting.entry(hop).or_default().push_back(id);
            return;
        }
        self.run_input(id, input).await;
    }

    async fn run_input(&mut self, id: BindingId, input: Pending) {
        let now = Instant::now().into_std();
        match input {
            Pending::Start => self.drive(id, |b, e, out| b.start(now, e, out)).await,
            Pending::Timer => self.drive(id, |b, e, out| b.on_timer(now, e, out)).await,
            Pending::Stop => self.drive(id, |b, e, out| b.stop(now, e, out)).await,
        }
    }

    /// Starts waiting inputs while their hop has room.
    async fn admit_waiting(&mut self) {
        let hops: Vec<SocketAddr> = self
            .waiting
            .iter()
            .filter(|(_, q)| !q.is_empty())
            .map(|(hop, _)| *hop)
            .collect();
        for hop in hops {
            while self.in_flight.get(&hop).copied().unwrap_or(0) < MAX_IN_FLIGHT_PER_HOP {
                let Some(id) = self.waiting.get_mut(&hop).and_then(VecDeque::pop_front) else {
                    break;
                };
                let input = self.bindings.get_mut(&id).and_then(|s| s.pending.take());
                if let Some(input) = input {
                    self.run_input(id, input).await;
                }
            }
        }
        self.waiting.retain(|_, q| !q.is_empty());
    }

    async fn send_keepalives(&mut self) {
        let hops: HashSet<SocketAddr> = self.bindings.values().map(|s| s.next_hop).collect();
        for hop in hops {
            if let Err(e) = self.socket.send_to(b"\r\n\r\n", hop).await {
                self.log(LogLevel::Debug, format!("keep-alive to {hop} failed: {e}"));
            }
        }
    }

    /// Runs one input on a binding, then carries out its outputs and re-indexes it.
    async fn drive(
        &mut self,
        id: BindingId,
        input: impl FnOnce(&mut Binding, &mut dyn Entropy, &mut Vec<Output>),
    ) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        let mut outputs = Vec::new();
        input(&mut slot.binding, &mut self.entropy, &mut outputs);
        let hop = slot.next_hop;
        for output in outputs {
            let bytes = match output {
                Output::Send(bytes) => {
                    self.stats.requests += 1;
                    bytes
                }
                Output::Retransmit(bytes) => {
                    self.stats.retransmissions += 1;
                    bytes
                }
                Output::Event(event) => {
                    let _ = self.events.send(EndpointEvent::Binding { id, event });
                    continue;
                }
            };
            if self.trace {
                self.log(
                    LogLevel::Trace,
                    format!("sent to {hop}:\n{}", String::from_utf8_lossy(&bytes)),
                );
            }
            if let Err(e) = self.socket.send_to(&bytes, hop).await {
                // Timer E retransmits; a persistent failure ends in a timeout.
                self.log(LogLevel::Warning, format!("send to {hop} failed: {e}"));
            }
        }
        self.reindex(id);
    }

    fn reindex(&mut self, id: BindingId) {
        let Some(slot) = self.bindings.get_mut(&id) else {
            return;
        };
        let branch = slot.binding.branch().map(str::to_string);
        let in_flight = self.in_flight.entry(slot.next_hop).or_default();
        match (slot.branch.is_some(), branch.is_some()) {
            (false, true) => *in_flight += 1,
            (true, false) => *in_flight = in_flight.saturating_sub(1),
            _ => {}
        }
        if branch != slot.branch {
            if let Some(old) = slot.branch.take() {
                self.by_branch.remove(&old);
            }
            if let Some(new) = &branch {
                self.by_branch.insert(new.clone(), id);
            }
            slot.branch = branch;
        }
        let deadline = slot.binding.next_deadline().map(Instant::from_std);
        if deadline != slot.timer {
            if let Some(old) = slot.timer.take() {
                self.timers.remove(&(old, id));
            }
            if let Some(at) = deadline {
                self.timers.insert((at, id));
            }
            slot.timer = deadline;
        }
        if slot.binding.is_done() {
            // A finished binding has no transaction and no timer: both were unindexed above.
            debug_assert!(slot.branch.is_none() && slot.timer.is_none());
            self.bindings.remove(&id);
            self.states.lock().remove(&id);
            self.notify_stop_waiters();
        } else {
            self.states.lock().insert(id, slot.binding.state());
        }
    }

    fn notify_stop_waiters(&mut self) {
        let bindings = &self.bindings;
        self.stop_waiters.retain(|(ids, done)| {
            if ids.iter().any(|id| bindings.contains_key(id)) {
                true
            } else {
                let _ = done.send(());
                false
            }
        });
    }

    fn log(&self, level: LogLevel, message: String) {
        let _ = self.events.send(EndpointEvent::Log { level, message });
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
