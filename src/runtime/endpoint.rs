//! The driver of a sans-I/O [`crate::engine::endpoint::Endpoint`]: one UDP socket, a TCP or
//! TLS connection per stream next hop (opened on first use, see [`super::connection`]),
//! one task on the shared service thread, one event thread.
//!
//! The task moves datagrams, stream bytes, connection losses, commands and time into the
//! endpoint and carries out what it returns: bytes to send, connections to close, states to
//! publish, events for the event thread. It makes no protocol decision. A published state is written before the event that changed it is
//! handed to the event thread, so a state read in (or after) a callback reflects it.
//!
//! If the task dies (a panic anywhere in it), the failure is recorded: later calls return
//! [`DriverFailed`] and the event thread hears [`EndpointEvent::Failed`] once.

use crate::engine::binding::{BindingEvent, BindingState, Entropy, RegistrationInfo};
use crate::engine::digest::CredentialStore;
use crate::engine::endpoint::{self, BindingId, BindingSpec, EndpointStats, LogLevel};
use crate::engine::target::Query;
use crate::engine::transport::{Target, Transport};
use crate::runtime::connection::{ConnEvent, Connection};
use crate::runtime::dispatch::Dispatcher;
use crate::runtime::dns::{Answer, Dns};
use crate::runtime::icmp;
use crate::runtime::service::ServiceGuard;
use crate::runtime::udp;
use parking_lot::Mutex;
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc as tmpsc;
use tokio::time::Instant;

/// What the event thread of an endpoint receives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointEvent {
    /// A binding was added and registers.
    Started(BindingId),
    /// A binding was asked to stop and unregisters.
    Stopping(BindingId),
    /// A binding reports an outcome.
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
    /// The driver died: nothing is sent or received any more. Reported once.
    Failed(String),
}

/// Locates servers through an endpoint's DNS settings (see [`Endpoint::locator`]).
pub struct Locator {
    commands: tmpsc::UnboundedSender<Command>,
}

impl Locator {
    /// Locates a server (RFC 3263), waiting at most `wait` for DNS.
    pub fn locate(&self, query: Query, wait: Duration) -> Result<Answer, DriverFailed> {
        let (reply, answer) = mpsc::channel();
        self.commands
            .send(Command::Locate(query, reply))
            .map_err(|_| DriverFailed("the I/O driver has stopped".into()))?;
        Ok(answer
            .recv_timeout(wait)
            .unwrap_or_else(|_| Err("DNS did not answer in time".into())))
    }
}

/// The endpoint's driver has died; the text says why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverFailed(pub String);

/// How much longer than its bound a stop is waited for: the driver ends it at the bound
/// (with its report), this only covers a driver that does not answer.
const STOP_GRACE: Duration = Duration::from_millis(500);

enum Command {
    Add(Vec<BindingSpec>),
    Stop {
        ids: Option<Vec<BindingId>>,
        done: Option<mpsc::Sender<()>>,
        within: Option<Duration>,
    },
    SetCredentials(Arc<CredentialStore>),
    SetTrace(bool),
    KeepAlive(Option<Duration>),
    SendKeepAlive,
    KeepAliveTo(SocketAddr, Option<Duration>),
    Stats(mpsc::Sender<EndpointStats>),
    Info(BindingId, mpsc::Sender<Option<(RegistrationInfo, Target)>>),
    SetTls(u64, Arc<rustls::ClientConfig>),
    SetStreamBind(Option<SocketAddr>),
    SetDns(Option<Vec<SocketAddr>>),
    Locate(Query, mpsc::Sender<Answer>),
    #[cfg(feature = "testkit")]
    Panic,
}

/// What the driver publishes for callers on other threads.
#[derive(Default)]
struct Published {
    states: Mutex<HashMap<BindingId, BindingState>>,
    failure: Mutex<Option<String>>,
}

/// A UDP socket with its driver task and its event thread.
pub struct Endpoint {
    commands: tmpsc::UnboundedSender<Command>,
    published: Arc<Published>,
    local: SocketAddr,
    task: Option<(tokio::task::AbortHandle, mpsc::Receiver<()>)>,
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
    /// Binds `local` and starts the driver; `deliver` runs on a thread of the endpoint. With
    /// `lifecycle`, it also hears [`EndpointEvent::Started`] and [`EndpointEvent::Stopping`]
    /// (one per binding added or stopped: an API that has no use for them saves the hop).
    pub fn open(
        local: SocketAddr,
        thread_name: &str,
        lifecycle: bool,
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
        // Without it a closed registrar port shows only as a transaction timeout.
        let icmp = icmp::enable(&socket, local.is_ipv6()).is_ok();
        let segmenting = udp::offers_segmentation(&socket);
        let (commands, receiver) = tmpsc::unbounded_channel();
        let published: Arc<Published> = Arc::default();
        let (conn_events, conn_receiver) = tmpsc::unbounded_channel();
        let (located, located_receiver) = tmpsc::unbounded_channel();
        let driver = Driver {
            dns: Dns::system(),
            located,
            core: endpoint::Endpoint::new(
                Box::new(OsEntropy::default()),
                endpoint::MAX_IN_FLIGHT_PER_HOP,
            ),
            published: published.clone(),
            socket,
            local,
            events: dispatcher.sender(),
            batch: Vec::new(),
            datagrams: Vec::new(),
            waiters: HashMap::default(),
            next_waiter: 0,
            connections: HashMap::default(),
            next_generation: 0,
            conn_events,
            tls: HashMap::default(),
            stream_bind: None,
            lifecycle,
            icmp,
            segmenting,
            plan: udp::Plan::default(),
        };
        let task = service
            .handle()
            .spawn(driver.run(receiver, conn_receiver, located_receiver));
        let abort = task.abort_handle();
        // A watcher records a panic of the driver and tells the event thread, once.
        let (ended, ended_rx) = mpsc::channel();
        let events = dispatcher.sender();
        let watched = published.clone();
        service.handle().spawn(async move {
            if let Err(e) = task.await
                && e.is_panic()
            {
                let why = format!("the I/O driver failed: {}", panic_text(e.into_panic()));
                *watched.failure.lock() = Some(why.clone());
                let _ = events.send(vec![EndpointEvent::Failed(why)]);
            }
            let _ = ended.send(());
        });
        Ok(Endpoint {
            commands,
            published,
            local,
            task: Some((abort, ended_rx)),
            dispatcher: Some(dispatcher),
            service: Some(service),
        })
    }

    /// The bound local address (with the real port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    fn send(&self, command: Command) -> Result<(), DriverFailed> {
        self.failure()?;
        self.commands
            .send(command)
            .map_err(|_| DriverFailed("the I/O driver has stopped".into()))
    }

    /// `Err` once the driver has died.
    pub fn failure(&self) -> Result<(), DriverFailed> {
        match &*self.published.failure.lock() {
            Some(why) => Err(DriverFailed(why.clone())),
            None => Ok(()),
        }
    }

    /// Creates bindings; each registers as soon as its next hop admits it.
    pub fn add(&self, specs: Vec<BindingSpec>) -> Result<(), DriverFailed> {
        self.send(Command::Add(specs))
    }

    /// Unregisters the given bindings (all when `None`) and forgets them when done.
    pub fn stop(&self, ids: Option<Vec<BindingId>>) -> Result<(), DriverFailed> {
        self.send(Command::Stop {
            ids,
            done: None,
            within: None,
        })
    }

    /// Like [`Endpoint::stop`], bounded by `wait`: every removal retransmits until then at
    /// the latest (see [`endpoint::Endpoint::stop_within`]), and the bindings whose removal
    /// was not confirmed by then are named in the log. Returns when the stop has ended
    /// (`true`), or a little after `wait` if the driver does not answer (`false`).
    pub fn stop_and_wait(&self, ids: Option<Vec<BindingId>>, wait: Duration) -> bool {
        let (done, finished) = mpsc::channel();
        let command = Command::Stop {
            ids,
            done: Some(done),
            within: Some(wait),
        };
        self.send(command).is_ok() && finished.recv_timeout(wait + STOP_GRACE).is_ok()
    }

    /// Replaces the credentials of every binding.
    pub fn set_credentials(&self, credentials: Arc<CredentialStore>) -> Result<(), DriverFailed> {
        self.send(Command::SetCredentials(credentials))
    }

    /// Turns the trace of every SIP message on or off.
    pub fn set_trace(&self, on: bool) -> Result<(), DriverFailed> {
        self.send(Command::SetTrace(on))
    }

    /// Sends CRLF keep-alives (RFC 5626 §4.4.1) to every next hop at this interval.
    pub fn set_keepalive(&self, interval: Option<Duration>) -> Result<(), DriverFailed> {
        self.send(Command::KeepAlive(interval))
    }

    /// Sends one CRLF keep-alive to every next hop now.
    pub fn send_keepalive(&self) -> Result<(), DriverFailed> {
        self.send(Command::SendKeepAlive)
    }

    /// Registers TLS settings under an id that [`crate::engine::transport::TlsTarget`]s
    /// name; replacing them affects connections opened from then on.
    pub fn set_tls(&self, id: u64, config: Arc<rustls::ClientConfig>) -> Result<(), DriverFailed> {
        self.send(Command::SetTls(id, config))
    }

    /// The local address TCP and TLS connections are bound to (`None`: any port).
    pub fn set_stream_bind(&self, bind: Option<SocketAddr>) -> Result<(), DriverFailed> {
        self.send(Command::SetStreamBind(bind))
    }

    /// The DNS servers to ask (`None`: the system's configuration).
    pub fn set_dns_servers(&self, servers: Option<Vec<SocketAddr>>) -> Result<(), DriverFailed> {
        self.send(Command::SetDns(servers))
    }

    /// A handle that locates servers through this endpoint's DNS settings, usable without
    /// holding whatever lock guards the endpoint (a lookup may take seconds).
    pub fn locator(&self) -> Locator {
        Locator {
            commands: self.commands.clone(),
        }
    }

    /// The state of one binding as last published; `None` before the driver took it up,
    /// or after it ended. Never waits for the driver.
    pub fn state(&self, id: BindingId) -> Option<BindingState> {
        self.published.states.lock().get(&id).copied()
    }

    /// The states of these bindings as last published, in the same order.
    pub fn states_of(&self, ids: &[BindingId]) -> Vec<Option<BindingState>> {
        let states = self.published.states.lock();
        ids.iter().map(|id| states.get(id).copied()).collect()
    }

    /// Sends a CRLF keep-alive to `addr` now and every `interval` (`None`: no more).
    pub fn set_keepalive_to(
        &self,
        addr: SocketAddr,
        interval: Option<Duration>,
    ) -> Result<(), DriverFailed> {
        self.send(Command::KeepAliveTo(addr, interval))
    }

    /// The counters of this endpoint.
    pub fn stats(&self) -> Result<EndpointStats, DriverFailed> {
        self.ask(Command::Stats)
    }

    /// Sends the command `make` builds around a reply channel; waits (boundedly) for the
    /// driver's answer.
    fn ask<T>(&self, make: impl FnOnce(mpsc::Sender<T>) -> Command) -> Result<T, DriverFailed> {
        let (reply, answer) = mpsc::channel();
        self.send(make(reply))?;
        answer
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| DriverFailed("the I/O driver did not answer".into()))
    }

    /// What a binding knows about its registration and the target it uses (`None`: no such
    /// binding). Asks the I/O thread, so it reflects everything that happened before.
    pub fn info(&self, id: BindingId) -> Result<Option<(RegistrationInfo, Target)>, DriverFailed> {
        self.ask(|reply| Command::Info(id, reply))
    }

    /// Makes the driver panic, to test that its failure is reported.
    #[cfg(feature = "testkit")]
    pub fn inject_driver_panic(&self) {
        let _ = self.commands.send(Command::Panic);
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
        if let Some((abort, ended)) = self.task.take() {
            abort.abort();
            // Wait until the runtime has dropped the task (and its event sender).
            let _ = ended.recv_timeout(Duration::from_secs(5));
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

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// Randomness for Call-IDs, tags, branches, cnonces and jitter: ChaCha12 (rand's `StdRng`,
/// a cryptographically strong generator) seeded once from the operating system, so that
/// each value costs no system call.
pub struct OsEntropy {
    rng: rand::rngs::StdRng,
}

impl Default for OsEntropy {
    fn default() -> Self {
        use rand::SeedableRng;
        let rng = rand::rngs::StdRng::try_from_rng(&mut rand::rngs::SysRng).unwrap_or_else(|_| {
            // Only if the OS refuses: the clock and the process id (still unique).
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            rand::rngs::StdRng::seed_from_u64(nanos ^ u64::from(std::process::id()).rotate_left(32))
        });
        OsEntropy { rng }
    }
}

impl Entropy for OsEntropy {
    fn next_u64(&mut self) -> u64 {
        use rand::Rng;
        self.rng.next_u64()
    }
}

/// How late the driver may run a timer so that timers due close together run in one
/// wake-up: deadlines are rounded up to the next multiple of it (counted from the driver's
/// start). 10,000 names refreshing over a minute would otherwise wake the thread for each
/// refresh; SIP's timers (500 ms and up) do not notice a few milliseconds.
const TIMER_SLACK: Duration = Duration::from_millis(4);

/// `at` rounded up to the next multiple of [`TIMER_SLACK`] after `origin`.
fn with_slack(origin: Instant, at: Instant) -> Instant {
    let slack = TIMER_SLACK.as_nanos();
    let offset = at.saturating_duration_since(origin).as_nanos();
    let rounded = offset.div_ceil(slack) * slack;
    u64::try_from(rounded)
        .ok()
        .and_then(|nanos| origin.checked_add(Duration::from_nanos(nanos)))
        .unwrap_or(at)
}

/// With at least this many transactions in flight (a load, not a person registering a
/// phone), the driver lets answers gather for [`COALESCE`] after reading the socket empty.
const COALESCE_IN_FLIGHT: usize = 32;
/// How long answers gather under load: at 20,000 answers a second, a wake-up then reads
/// about twenty instead of one or two. The socket's buffer holds far more than that.
const COALESCE: Duration = Duration::from_millis(1);

/// Datagrams (or connection reports) read at most per wake-up of the driver before its
/// output is flushed.
const DRAIN_DATAGRAMS: usize = 64;

struct Driver {
    core: endpoint::Endpoint,
    dns: Dns,
    /// Answers of the lookups the endpoint asked for.
    located: tmpsc::UnboundedSender<(String, Answer)>,
    published: Arc<Published>,
    socket: UdpSocket,
    /// The address `socket` is bound to.
    local: SocketAddr,
    /// The event thread's queue: one batch per wake-up of the driver.
    events: mpsc::Sender<Vec<EndpointEvent>>,
    /// Events for the next batch.
    batch: Vec<EndpointEvent>,
    /// Datagrams of the flush under way (kept to reuse its buffer).
    datagrams: Vec<endpoint::Transmit>,
    waiters: HashMap<u64, mpsc::Sender<()>>,
    next_waiter: u64,
    connections: HashMap<Target, Connection>,
    next_generation: u64,
    conn_events: tmpsc::UnboundedSender<ConnEvent>,
    tls: HashMap<u64, Arc<rustls::ClientConfig>>,
    stream_bind: Option<SocketAddr>,
    lifecycle: bool,
    /// Whether ICMP errors are read from the socket's error queue.
    icmp: bool,
    /// Whether runs of datagrams go in segmented sends (until the kernel refuses one).
    segmenting: bool,
    /// The plan of the flush under way (kept to reuse its buffers).
    plan: udp::Plan,
}

impl Drop for Driver {
    fn drop(&mut self) {
        for connection in self.connections.values() {
            connection.abort();
        }
    }
}

enum Wake {
    Command(Option<Command>),
    Readable(std::io::Result<()>),
    Connection(Option<ConnEvent>),
    Located(Option<(String, Answer)>),
    /// The socket's error queue holds something.
    Icmp(std::io::Result<tokio::io::Ready>),
    Timer,
}

impl Driver {
    async fn run(
        mut self,
        mut commands: tmpsc::UnboundedReceiver<Command>,
        mut connections: tmpsc::UnboundedReceiver<ConnEvent>,
        mut located: tmpsc::UnboundedReceiver<(String, Answer)>,
    ) {
        // One timer, moved when the endpoint's next deadline moves (a new one per wake-up
        // would be registered with the runtime's timer wheel and removed again each time).
        let origin = Instant::now();
        let sleep = tokio::time::sleep_until(origin);
        tokio::pin!(sleep);
        let mut armed: Option<Instant> = None;
        loop {
            let next_timer = self
                .core
                .poll_timeout()
                .map(|at| with_slack(origin, Instant::from_std(at)));
            if let Some(at) = next_timer
                && armed != Some(at)
            {
                sleep.as_mut().reset(at);
            }
            armed = next_timer;
            let wake = tokio::select! {
                command = commands.recv() => Wake::Command(command),
                readable = self.socket.readable() => Wake::Readable(readable),
                event = connections.recv() => Wake::Connection(event),
                answer = located.recv() => Wake::Located(answer),
                ready = self.socket.ready(Interest::ERROR), if self.icmp => Wake::Icmp(ready),
                _ = &mut sleep, if armed.is_some() => Wake::Timer,
            };
            let now = Instant::now().into_std();
            // Whether this wake-up read everything the socket or the connections had.
            let mut drained = false;
            match wake {
                Wake::Command(None) => break,
                Wake::Command(Some(command)) => self.on_command(command, now),
                Wake::Readable(Ok(())) => {
                    // Everything queued (bounded), so that a burst costs one wake-up and
                    // one flush rather than one per datagram.
                    let mut read = 0;
                    while read < DRAIN_DATAGRAMS {
                        let core = &mut self.core;
                        match udp::receive(&self.socket, self.local, |from, bytes| {
                            core.handle_datagram(now, from, bytes)
                        }) {
                            Ok(n) if n == udp::RECEIVE_SLOTS => read += n,
                            Ok(_) => {
                                drained = true;
                                break;
                            }
                            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                            Err(e) => {
                                self.receive_error(now, e);
                                break;
                            }
                        }
                    }
                }
                Wake::Readable(Err(e)) => self.receive_error(now, e),
                Wake::Icmp(Ok(_)) => self.read_icmp(now),
                Wake::Icmp(Err(e)) => {
                    self.icmp = false;
                    self.log(LogLevel::Warning, format!("ICMP errors not read: {e}"));
                }
                Wake::Connection(Some(event)) => {
                    self.on_connection_event(now, event);
                    // What else the connections reported (bounded), before one flush.
                    for _ in 1..DRAIN_DATAGRAMS {
                        match connections.try_recv() {
                            Ok(event) => self.on_connection_event(now, event),
                            Err(_) => {
                                drained = true;
                                break;
                            }
                        }
                    }
                }
                Wake::Connection(None) | Wake::Located(None) => {} // the driver holds a sender
                Wake::Located(Some((key, answer))) => self.core.handle_located(now, &key, answer),
                Wake::Timer => self.core.handle_timeout(now),
            }
            self.flush().await;
            if drained && self.core.transactions_in_flight() >= COALESCE_IN_FLIGHT {
                // Under load, answers that arrive close together are read in one wake-up
                // (as a network card's interrupt moderation does) rather than one each.
                tokio::time::sleep(COALESCE).await;
            }
        }
    }

    /// A receive error: the error an ICMP message left on the socket; its queue says more.
    fn receive_error(&mut self, now: std::time::Instant, e: std::io::Error) {
        self.log(LogLevel::Debug, format!("receive error: {e}"));
        self.read_icmp(now);
    }

    /// Hands every ICMP error queued on the socket to the core. Stops reading them if the
    /// queue cannot be read (a readiness that never clears would spin).
    fn read_icmp(&mut self, now: std::time::Instant) {
        if !self.icmp {
            return;
        }
        loop {
            match self
                .socket
                .try_io(Interest::ERROR, || icmp::read(&self.socket))
            {
                Ok(Some((destination, why))) => {
                    self.core.handle_unreachable(now, destination, &why)
                }
                Ok(None) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.icmp = false;
                    self.log(
                        LogLevel::Warning,
                        format!("ICMP errors cannot be read ({e}); no longer read"),
                    );
                    break;
                }
            }
        }
    }

    fn on_command(&mut self, command: Command, now: std::time::Instant) {
        match command {
            Command::Add(specs) => self.core.add(now, specs),
            Command::Stop { ids, done, within } => {
                let waiter = done.map(|done| {
                    self.next_waiter += 1;
                    self.waiters.insert(self.next_waiter, done);
                    self.next_waiter
                });
                self.core.stop_within(now, ids, waiter, within);
            }
            Command::SetCredentials(credentials) => self.core.set_credentials(now, credentials),
            Command::SetTrace(on) => self.core.set_trace(on),
            Command::KeepAlive(interval) => self.core.set_keepalive(now, interval),
            Command::SendKeepAlive => self.core.send_keepalive(),
            Command::KeepAliveTo(addr, interval) => self.core.set_keepalive_to(now, addr, interval),
            Command::Info(id, reply) => {
                let _ = reply.send(self.core.info(id));
            }
            Command::Stats(reply) => {
                let _ = reply.send(self.core.stats());
            }
            Command::SetTls(id, config) => {
                self.tls.insert(id, config);
            }
            Command::SetStreamBind(bind) => self.stream_bind = bind,
            Command::SetDns(servers) => {
                self.dns = match servers {
                    Some(servers) => Dns::with_servers(&servers),
                    None => Dns::system(),
                }
            }
            Command::Locate(query, reply) => {
                let dns = self.dns.clone();
                tokio::spawn(async move {
                    let answer = dns.locate(&query, &mut OsEntropy::default()).await;
                    let _ = reply.send(answer);
                });
            }
            #[cfg(feature = "testkit")]
            Command::Panic => panic!("injected by a test"),
        }
    }

    fn on_connection_event(&mut self, now: std::time::Instant, event: ConnEvent) {
        match event {
            ConnEvent::Data(target, generation, bytes) => {
                if self.is_current(&target, generation) {
                    self.core.handle_stream_data(now, &target, &bytes);
                }
            }
            ConnEvent::Lost(target, generation, failure) => {
                if self.is_current(&target, generation) {
                    self.connections.remove(&target);
                    self.core.handle_connection_lost(now, &target, failure);
                }
            }
        }
    }

    fn is_current(&self, target: &Target, generation: u64) -> bool {
        self.connections
            .get(target)
            .is_some_and(|c| c.generation == generation)
    }

    /// Carries out what the endpoint returned: bytes to send, then states and events in
    /// order (connections to close among them).
    async fn flush(&mut self) {
        loop {
            // Datagrams leave in batches; stream bytes go to their connection at once.
            let mut datagrams = std::mem::take(&mut self.datagrams);
            while let Some(transmit) = self.core.poll_transmit() {
                if transmit.destination.transport == Transport::Udp {
                    datagrams.push(transmit);
                } else {
                    self.send_stream(transmit);
                }
            }
            if datagrams.is_empty() {
                self.datagrams = datagrams;
                break;
            }
            // A failure may make the core send something else: the loop takes it next.
            self.send_datagrams(&datagrams).await;
            datagrams.clear();
            self.datagrams = datagrams;
        }
        self.publish();
    }

    /// Sends the datagrams of one flush, waiting while the socket's buffer is full: runs of
    /// one length to one destination in one segmented send each, when the kernel offers it
    /// (see [`udp::Plan`]), the others in batches.
    async fn send_datagrams(&mut self, datagrams: &[endpoint::Transmit]) {
        if !self.segmenting || datagrams.len() < 2 {
            return self.send_each(datagrams, 0..datagrams.len()).await;
        }
        let mut plan = std::mem::take(&mut self.plan);
        plan.make(
            datagrams
                .iter()
                .map(|t| (t.contents.len(), t.destination.addr)),
        );
        for run in plan.runs() {
            let to = datagrams[run.clone().next().expect("a run is not empty")]
                .destination
                .addr;
            let segments = || run.clone().map(|i| &datagrams[i].contents[..]);
            let sent = loop {
                match udp::send_segmented(&self.socket, to, segments()) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if self.socket.writable().await.is_err() {
                            break false;
                        }
                    }
                    Err(e) if udp::refuses_segmentation(&e) => {
                        self.segmenting = false;
                        self.log(
                            LogLevel::Info,
                            format!("datagrams are sent one by one: the kernel refused a segmented send to {to}: {e}"),
                        );
                        break false;
                    }
                    result => break result.is_ok(),
                }
            };
            // One by one, each meets its own error and is reported with it.
            if !sent {
                self.send_each(datagrams, run).await;
            }
        }
        self.send_each(datagrams, plan.alone().iter().copied())
            .await;
        self.plan = plan;
    }

    /// Sends these of `datagrams` in order, in batches, waiting while the socket's buffer is
    /// full.
    async fn send_each(
        &mut self,
        datagrams: &[endpoint::Transmit],
        which: impl ExactSizeIterator<Item = usize> + Clone,
    ) {
        let mut rest = which;
        while rest.len() > 0 {
            let batch = rest
                .clone()
                .map(|i| (&datagrams[i].contents[..], datagrams[i].destination.addr));
            let first = || &datagrams[rest.clone().next().expect("not empty")];
            match udp::send(&self.socket, batch) {
                Ok(sent) if sent > 0 => {
                    rest.nth(sent - 1);
                }
                Ok(_) => {
                    let _ = self.socket.writable().await;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Err(e) = self.socket.writable().await {
                        self.send_failed(first(), e);
                        rest.next();
                    }
                }
                Err(e) => {
                    self.send_failed(first(), e);
                    rest.next();
                }
            }
        }
    }

    /// A datagram the socket refused.
    fn send_failed(&mut self, transmit: &endpoint::Transmit, e: std::io::Error) {
        let to = transmit.destination.addr;
        match transmit.request {
            // This host cannot send it (too large, no route, wrong family…): the
            // transaction fails now, with the reason.
            Some(request) if !passing(&e) => {
                let now = Instant::now().into_std();
                self.core.handle_send_failed(now, request, &e.to_string());
            }
            // Timer E retransmits.
            _ => self.log(LogLevel::Warning, format!("send to {to} failed: {e}")),
        }
    }

    /// Hands stream bytes to their connection, opening it on first use.
    fn send_stream(&mut self, transmit: endpoint::Transmit) {
        let destination = transmit.destination;
        if !self.connections.contains_key(&destination) {
            self.next_generation += 1;
            let tls = destination
                .tls
                .as_ref()
                .and_then(|t| self.tls.get(&t.settings).cloned());
            let connection = Connection::open(
                destination.clone(),
                self.next_generation,
                tls,
                self.stream_bind,
                self.conn_events.clone(),
            );
            self.connections.insert(destination.clone(), connection);
        }
        if let Some(connection) = self.connections.get(&destination) {
            // If it has just ended, its loss is on the way and fails the transaction.
            connection.send(transmit.contents);
        }
    }

    /// States, then events, in order (connections to close among them).
    fn publish(&mut self) {
        // States are published (under one lock) before the batch that tells of them leaves.
        let mut states = None;
        while let Some(event) = self.core.poll_event() {
            let event = match event {
                endpoint::Event::State { id, state } => {
                    let states = states.get_or_insert_with(|| self.published.states.lock());
                    match state {
                        Some(state) => states.insert(id, state),
                        None => states.remove(&id),
                    };
                    continue;
                }
                endpoint::Event::StopDone(waiter) => {
                    if let Some(done) = self.waiters.remove(&waiter) {
                        let _ = done.send(());
                    }
                    continue;
                }
                endpoint::Event::Close(target) => {
                    self.connections.remove(&target); // closes it gracefully
                    continue;
                }
                endpoint::Event::Resolve { key, query } => {
                    let dns = self.dns.clone();
                    let located = self.located.clone();
                    tokio::spawn(async move {
                        let answer = dns.locate(&query, &mut OsEntropy::default()).await;
                        let _ = located.send((key, answer));
                    });
                    continue;
                }
                endpoint::Event::Started(id) if self.lifecycle => EndpointEvent::Started(id),
                endpoint::Event::Stopping(id) if self.lifecycle => EndpointEvent::Stopping(id),
                endpoint::Event::Started(_) | endpoint::Event::Stopping(_) => continue,
                endpoint::Event::Binding { id, event } => EndpointEvent::Binding { id, event },
                endpoint::Event::Log { level, message } => EndpointEvent::Log { level, message },
            };
            self.batch.push(event);
        }
        drop(states);
        if !self.batch.is_empty() {
            let _ = self.events.send(std::mem::take(&mut self.batch));
        }
    }

    /// A diagnostic, in order with the events of the same wake-up.
    fn log(&mut self, level: LogLevel, message: String) {
        self.batch.push(EndpointEvent::Log { level, message });
    }
}

/// Whether a send error passes by itself (buffers short for a moment, an ICMP error of an
/// earlier datagram reported late), so that retransmission overcomes it.
fn passing(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::WouldBlock
            | ErrorKind::Interrupted
            | ErrorKind::OutOfMemory
            | ErrorKind::ConnectionRefused
            | ErrorKind::ConnectionReset
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}
