//! The LanScape telephony engine model: phone name and lines, SIP domain, outbound proxy,
//! credentials, and the register server with its nine parameters, on top of one
//! endpoint. Knows nothing about C; the `ffi` layer maps its results to codes.

use crate::api::address::{
    aor_uri, explicit_port, locate, new_instance_id, parse_dns_servers, parse_host,
    parse_instance_id, parse_names, proxy_route, registration_request_uri, source_ip_towards,
    user_agent,
};
use crate::api::{ApiError, RegistrationDetails};
use crate::engine::binding::{BindingConfig, BindingEvent, BindingState, Failure};
use crate::engine::digest::{Credential, CredentialStore};
use crate::engine::endpoint::MAX_IN_FLIGHT_PER_HOP;
use crate::engine::target::TransportChoice;
use crate::engine::transaction::DEFAULT_TIMEOUT;
use crate::engine::transport::Transport;
use crate::engine::uri::{Host, HostPort};
use crate::runtime::tls::{self, TlsSettings};
use crate::runtime::{BindingId, BindingSpec, DriverFailed, Endpoint, EndpointEvent, LogLevel};
use parking_lot::{Condvar, Mutex};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Longest accepted `TimeOutMs` (ten minutes).
pub(crate) const MAX_TIMEOUT_MS: u32 = 600_000;
/// Most phone lines an engine may have.
pub(crate) const MAX_PHONE_LINES: u32 = 100_000;
/// How long destroying an engine waits at most for the registrar to confirm unregistration,
/// unless the application chose (then up to [`MAX_TIMEOUT_MS`]).
pub(crate) const MAX_UNREGISTER_WAIT: Duration = Duration::from_secs(4);
/// Shortest unregistration wait an application may choose.
pub(crate) const MIN_UNREGISTER_WAIT_MS: u32 = 100;

/// How an engine is started.
#[derive(Debug, Clone)]
pub struct StartParams {
    /// Phone name, sent as User-Agent.
    pub phone_name: String,
    /// Number of phone lines (at least 1).
    pub phone_lines: u32,
    /// Local SIP UDP port; 0 picks a free one.
    pub local_port: u16,
    /// Local address to bind; `None` binds every IPv4 address.
    pub local_ip: Option<IpAddr>,
}

/// The nine parameters of `EnableSipRegisterServer`.
#[derive(Debug, Clone)]
pub struct RegisterServerParams {
    /// Comma-separated names (SIP user parts).
    pub names: String,
    /// Names are per phone line: one name per line, in line order.
    pub register_phone_lines: bool,
    /// Send REGISTER through the configured outbound proxy.
    pub through_proxy: bool,
    /// Registrar address: IPv4/IPv6 literal or DNS name.
    pub server_address: String,
    /// Registrar port; 0 means 5060.
    pub server_port: u32,
    /// Refresh interval, seconds.
    pub update_interval_s: u32,
    /// Expiry sent to the registrar, seconds.
    pub expire_time_s: u32,
    /// Transaction timeout, milliseconds; 0 means the RFC default (32 s).
    pub timeout_ms: u32,
    /// Re-register with the public address seen by the registrar.
    pub nat_auto_detect: bool,
}

/// What a notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationKind {
    /// The name is registered.
    RegisterSuccess,
    /// The name is unregistered.
    Unregistered,
    /// The registrar refused, or answered something unusable.
    RegisterError,
    /// The registrar did not answer in time.
    RegisterTimeOut,
    /// Credentials missing or refused.
    RegisterAuthorizationError,
    /// The registrar refused the interval (423).
    RegisterIntervalError,
    /// The TLS handshake failed (certificate not trusted or not matching the SIP domain).
    TlsError,
}

/// A registration notification for one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// What happened.
    pub kind: NotificationKind,
    /// The registered name.
    pub name: String,
    /// The first phone line with this name, or -1 when names are not per line.
    pub line: i32,
    /// Why, for a failure (as the log says it: a timeout, the status, a response that
    /// could not be read, a request that could not be sent); empty otherwise.
    pub reason: String,
}

/// Receives notifications, on the engine's event thread.
pub type NotificationListener = Arc<dyn Fn(&Notification) + Send + Sync>;
/// Receives diagnostics, on the engine's event thread.
pub type LogListener = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    notify: Option<NotificationListener>,
    log: Option<LogListener>,
}

#[derive(Clone)]
struct Label {
    /// The one copy of the name (the name map's key and the engine's user part too).
    name: Arc<str>,
    line: i32,
}

/// The name of every binding the engine has, until it has unregistered, and the bindings
/// of every name: a name's state is then found in constant time, also for a name only
/// being unregistered.
#[derive(Default)]
struct Labels {
    by_id: std::collections::HashMap<BindingId, Label>,
    by_name: std::collections::HashMap<Arc<str>, Ids>,
}

/// The bindings of one name, oldest first: almost always one, kept in place (a `Vec` of
/// one would cost an allocation of its own per name).
enum Ids {
    One([BindingId; 1]),
    Many(Vec<BindingId>),
}

impl Ids {
    fn push(&mut self, id: BindingId) {
        match self {
            Ids::One([first]) => *self = Ids::Many(vec![*first, id]),
            Ids::Many(ids) => ids.push(id),
        }
    }

    /// Removes `id`; returns whether none is left.
    fn remove(&mut self, id: BindingId) -> bool {
        match self {
            Ids::One([only]) => *only == id,
            Ids::Many(ids) => {
                ids.retain(|i| *i != id);
                if let [only] = ids[..] {
                    *self = Ids::One([only]);
                }
                matches!(self, Ids::Many(ids) if ids.is_empty())
            }
        }
    }

    fn as_slice(&self) -> &[BindingId] {
        match self {
            Ids::One(one) => one,
            Ids::Many(ids) => ids,
        }
    }
}

impl Labels {
    fn insert(&mut self, id: BindingId, label: Label) {
        use std::collections::hash_map::Entry;
        match self.by_name.entry(label.name.clone()) {
            Entry::Occupied(mut ids) => ids.get_mut().push(id),
            Entry::Vacant(slot) => {
                slot.insert(Ids::One([id]));
            }
        }
        self.by_id.insert(id, label);
    }

    fn remove(&mut self, id: BindingId) -> Option<Label> {
        let label = self.by_id.remove(&id)?;
        if let Some(ids) = self.by_name.get_mut(&label.name)
            && ids.remove(id)
        {
            self.by_name.remove(&label.name);
        }
        Some(label)
    }

    fn get(&self, id: &BindingId) -> Option<&Label> {
        self.by_id.get(id)
    }

    /// The bindings of `name`, oldest first.
    fn of(&self, name: &str) -> &[BindingId] {
        self.by_name.get(name).map_or(&[], Ids::as_slice)
    }

    fn drain(&mut self) -> Vec<Label> {
        self.by_name.clear();
        self.by_id.drain().map(|(_, l)| l).collect()
    }
}

#[derive(Default)]
struct Settings {
    domain: Option<Host>,
    /// Outbound proxy host and port (0: the transport's default).
    proxy: Option<(Host, u32)>,
    /// Transports of registrations, and the local port of TCP/TLS connections (0: any).
    transport: TransportChoice,
    stream_port: u16,
    /// TLS trust and client certificate; `tls_version` names them to the driver and
    /// changes with them, so new connections use the new settings.
    tls: TlsSettings,
    tls_version: u64,
    credentials: CredentialStore,
    /// The current registration: name -> binding.
    registration: std::collections::HashMap<Arc<str>, BindingId>,
    next_id: u64,
    longest_timeout: Duration,
    /// SIP Outbound (RFC 5626) for registrations enabled next: the flows per name (0: off).
    outbound: u8,
    /// The instance URN (`+sip.instance`), set by the application or generated at start.
    instance: String,
    /// Whether the application set it: then it is sent (asking for GRUUs) also without
    /// Outbound. A plain registration carries no instance.
    instance_set: bool,
    /// Whether `enable_register_server` waits for the first register cycle of its names.
    wait_first_cycle: bool,
    /// Whether the names of one `enable_register_server` share their challenges.
    share_challenges: bool,
    /// How long stopping waits at most for unregistrations, when the application chose.
    unregister_wait: Option<Duration>,
}

/// What a waiting [`PhoneEngine::enable_register_server`] waits for: the first outcome of
/// each of its names. The event thread settles it after delivering the notification, so
/// the call returns after the notifications of the cycle.
struct FirstCycle {
    state: Mutex<CycleState>,
    settled: Condvar,
}

#[derive(Default)]
struct CycleState {
    /// Names whose first register cycle has not ended yet.
    pending: HashSet<BindingId>,
    /// The first failure, in the order the outcomes happened.
    failure: Option<ApiError>,
    /// The engine stopped meanwhile.
    stopped: bool,
}

/// The waits in progress of one engine (more than one only when calls overlap).
type Waiters = Arc<Mutex<Vec<Arc<FirstCycle>>>>;

impl FirstCycle {
    /// Records the first outcome of `id` (later ones are not the first cycle's).
    fn settle(&self, id: BindingId, outcome: impl FnOnce() -> Result<(), ApiError>) {
        let mut state = self.state.lock();
        if !state.pending.remove(&id) {
            return;
        }
        if let Err(e) = outcome()
            && state.failure.is_none()
        {
            state.failure = Some(e);
        }
        if state.pending.is_empty() {
            self.settled.notify_all();
        }
    }

    /// Ends the wait whatever is pending: `failure` becomes its result unless a failure
    /// came first; `stopped` makes it "engine stopped".
    fn end(&self, failure: Option<ApiError>, stopped: bool) {
        let mut state = self.state.lock();
        state.pending.clear();
        state.stopped |= stopped;
        if state.failure.is_none() {
            state.failure = failure;
        }
        self.settled.notify_all();
    }
}

/// How the first register cycle of a name ended, as the waiting call reports it.
fn first_outcome(name: &str, event: &BindingEvent) -> Result<(), ApiError> {
    let why = match event {
        BindingEvent::Registered { .. } => return Ok(()),
        BindingEvent::Failed(failure) => failure.to_string(),
        BindingEvent::Unregistered => {
            return Err(ApiError::CallFailure(
                format!("{name}: disabled or replaced before its first register cycle ended")
                    .into(),
            ));
        }
    };
    Err(ApiError::NotRegistered {
        name: name.to_string(),
        kind: NotificationKind::from(event),
        why,
    })
}

/// One LanScape telephony engine.
pub struct PhoneEngine {
    params: StartParams,
    endpoint: Mutex<Option<Endpoint>>,
    local: SocketAddr,
    settings: Mutex<Settings>,
    labels: Arc<Mutex<Labels>>,
    listeners: Arc<Mutex<Listeners>>,
    delivering: Arc<AtomicBool>,
    waiters: Waiters,
}

impl PhoneEngine {
    /// Starts an engine: binds its socket and starts its threads.
    pub fn start(params: StartParams) -> Result<PhoneEngine, ApiError> {
        if params.phone_lines == 0 || params.phone_lines > MAX_PHONE_LINES {
            return Err(ApiError::bad("phone lines"));
        }
        if params.phone_name.chars().any(char::is_control) {
            return Err(ApiError::bad("phone name"));
        }
        let listeners: Arc<Mutex<Listeners>> = Arc::default();
        let labels: Arc<Mutex<Labels>> = Arc::default();
        let delivering = Arc::new(AtomicBool::new(true));
        let waiters: Waiters = Arc::default();
        let deliver = {
            let listeners = listeners.clone();
            let labels = labels.clone();
            let delivering = delivering.clone();
            let waiters = waiters.clone();
            move |event: EndpointEvent| {
                if !delivering.load(Ordering::Acquire) {
                    return;
                }
                match event {
                    EndpointEvent::Started(_) | EndpointEvent::Stopping(_) => {}
                    EndpointEvent::Failed(why) => {
                        // Nothing is refreshed any more: every name hears so, and the log
                        // says why. Later calls return SipInternalError.
                        let (log, notify) = {
                            let l = listeners.lock();
                            (l.log.clone(), l.notify.clone())
                        };
                        if let Some(log) = log {
                            log(LogLevel::Error, &why);
                        }
                        let mut names: Vec<Label> = labels.lock().drain();
                        names.sort_by(|a, b| a.name.cmp(&b.name));
                        if let Some(notify) = notify {
                            for label in names {
                                notify(&Notification {
                                    kind: NotificationKind::RegisterError,
                                    name: label.name.to_string(),
                                    line: label.line,
                                    reason: why.clone(),
                                });
                            }
                        }
                        for waiter in waiters.lock().iter() {
                            waiter.end(Some(ApiError::Internal(why.clone())), false);
                        }
                    }
                    EndpointEvent::Binding { id, event } => {
                        let label = match &event {
                            BindingEvent::Unregistered => labels.lock().remove(id),
                            _ => labels.lock().get(&id).cloned(),
                        };
                        let listener = listeners.lock().notify.clone();
                        if let (Some(label), Some(listener)) = (&label, listener) {
                            listener(&Notification {
                                kind: NotificationKind::from(&event),
                                name: label.name.to_string(),
                                line: label.line,
                                reason: match &event {
                                    BindingEvent::Failed(failure) => failure.to_string(),
                                    _ => String::new(),
                                },
                            });
                        }
                        // A waiting call hears of the outcome after the application did.
                        let waiters = waiters.lock().clone();
                        for waiter in waiters {
                            waiter.settle(id, || {
                                let name = label.as_ref().map_or("", |l| &*l.name);
                                first_outcome(name, &event)
                            });
                        }
                    }
                    EndpointEvent::Log { level, message } => {
                        let listener = listeners.lock().log.clone();
                        if let Some(listener) = listener {
                            listener(level, &message);
                        }
                    }
                }
            }
        };
        let bind = SocketAddr::new(
            params.local_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            params.local_port,
        );
        let endpoint = Endpoint::open(bind, "lanscape-sip-events", false, deliver)?;
        Ok(PhoneEngine {
            local: endpoint.local_addr(),
            endpoint: Mutex::new(Some(endpoint)),
            params,
            settings: Mutex::new(Settings {
                instance: new_instance_id(),
                ..Settings::default()
            }),
            labels,
            listeners,
            delivering,
            waiters,
        })
    }

    /// Start parameters.
    pub fn params(&self) -> &StartParams {
        &self.params
    }

    /// The bound local address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sets (or clears) the notification listener.
    pub fn set_notification_listener(&self, listener: Option<NotificationListener>) {
        self.listeners.lock().notify = listener;
    }

    /// Sets (or clears) the diagnostics listener.
    pub fn set_log_listener(&self, listener: Option<LogListener>) {
        self.listeners.lock().log = listener;
    }

    fn with_endpoint<R>(
        &self,
        f: impl FnOnce(&Endpoint) -> Result<R, DriverFailed>,
    ) -> Result<R, ApiError> {
        let endpoint = self.endpoint.lock();
        Ok(f(endpoint.as_ref().ok_or(ApiError::Closed)?)?)
    }

    /// Turns the trace of every SIP message (to the log listener) on or off.
    pub fn set_trace(&self, on: bool) -> Result<(), ApiError> {
        self.with_endpoint(|e| e.set_trace(on))
    }

    /// Sets the SIP domain used in the address of record.
    pub fn set_domain(&self, domain: &str) -> Result<(), ApiError> {
        self.settings.lock().domain = Some(parse_host(domain, "domain")?);
        Ok(())
    }

    /// Forgets the SIP domain.
    pub fn clear_domain(&self) {
        self.settings.lock().domain = None;
    }

    /// Configures the outbound proxy (port 0 means 5060).
    pub fn set_proxy(&self, address: &str, port: u32) -> Result<(), ApiError> {
        let host = parse_host(address, "proxy address")?;
        explicit_port(port, "proxy port")?;
        self.settings.lock().proxy = Some((host, port));
        Ok(())
    }

    /// Removes the outbound proxy.
    pub fn clear_proxy(&self) {
        self.settings.lock().proxy = None;
    }

    /// Chooses the transport of registrations made from now on, and the local port of
    /// their TCP or TLS connections (0: any free port). The default is UDP from the
    /// engine's SIP port.
    pub fn set_transport(
        &self,
        transport: TransportChoice,
        local_port: u32,
    ) -> Result<(), ApiError> {
        let port = u16::try_from(local_port).map_err(|_| ApiError::bad("local port"))?;
        let streams = transport != TransportChoice::Only(Transport::Udp);
        if !streams && port != 0 && port != self.local.port() {
            return Err(ApiError::bad(
                "the UDP port is the engine's own (StartSipTelephony)",
            ));
        }
        let bind = (streams && port != 0).then(|| SocketAddr::new(self.local.ip(), port));
        self.with_endpoint(|e| e.set_stream_bind(bind))?;
        let mut settings = self.settings.lock();
        settings.transport = transport;
        settings.stream_port = if streams { port } else { 0 };
        Ok(())
    }

    /// The DNS servers that locate registrars and proxies (`ip[:port]` entries; empty: the
    /// system's configuration, the default). Used from the next lookup on.
    pub fn set_dns_servers(&self, servers: &str) -> Result<(), ApiError> {
        let servers = parse_dns_servers(servers)?;
        self.with_endpoint(|e| e.set_dns_servers(servers))
    }

    /// Adds trust anchors for TLS (PEM text, or the path of a PEM file).
    pub fn add_tls_trust(&self, pem: &str) -> Result<(), ApiError> {
        let certs = tls::trust_anchors(pem).map_err(ApiError::Tls)?;
        self.update_tls(|t| t.extra_roots.extend(certs))
    }

    /// Whether TLS trusts the operating system's store (the default) besides the anchors
    /// added; turning it off trusts only those.
    pub fn set_tls_system_trust(&self, on: bool) -> Result<(), ApiError> {
        self.update_tls(|t| t.system_roots = on)
    }

    /// Sets the TLS client certificate chain and key (PEM text or file paths).
    pub fn set_tls_client_certificate(&self, chain: &str, key: &str) -> Result<(), ApiError> {
        let identity = tls::client_identity(chain, key).map_err(ApiError::Tls)?;
        self.update_tls(|t| t.client = Some(identity))
    }

    fn update_tls(&self, change: impl FnOnce(&mut TlsSettings)) -> Result<(), ApiError> {
        let mut settings = self.settings.lock();
        let mut tls = settings.tls.clone();
        change(&mut tls);
        tls::client_config(&tls).map_err(ApiError::Tls)?; // refused now, not at connect
        settings.tls = tls;
        settings.tls_version += 1;
        Ok(())
    }

    /// Adds or replaces the credentials for a realm (empty or `*`: any realm).
    pub fn add_credentials(&self, realm: &str, user: &str, password: &str) -> Result<(), ApiError> {
        if user.is_empty()
            || [realm, user, password]
                .iter()
                .any(|s| s.chars().any(char::is_control))
        {
            return Err(ApiError::bad("credentials"));
        }
        let snapshot = {
            let mut settings = self.settings.lock();
            settings
                .credentials
                .insert(Credential::new(realm, user, password));
            Arc::new(settings.credentials.clone())
        };
        self.with_endpoint(|e| e.set_credentials(snapshot))
    }

    /// Forgets every credential.
    pub fn clear_credentials(&self) -> Result<(), ApiError> {
        self.settings.lock().credentials.clear();
        self.with_endpoint(|e| e.set_credentials(Arc::new(CredentialStore::default())))
    }

    /// Validates the parameters and starts registering every unique name at once.
    ///
    /// Replaces (unregisters) an earlier registration of this engine. Results arrive as
    /// notifications.
    pub fn enable_register_server(&self, p: &RegisterServerParams) -> Result<(), ApiError> {
        if p.update_interval_s == 0 || p.expire_time_s == 0 {
            return Err(ApiError::IntervalError);
        }
        let wait = self.settings.lock().wait_first_cycle;
        if wait && self.with_endpoint(|e| Ok(e.on_event_thread()))? {
            // The outcome would be delivered by this very thread: waiting would never end.
            return Err(ApiError::CallFailure(
                "EnableSipRegisterServer cannot wait for its outcome inside a notification of \
                 its own engine (EnableSipRegisterWaitMode is on)"
                    .into(),
            ));
        }
        if p.timeout_ms > MAX_TIMEOUT_MS {
            return Err(ApiError::bad("timeout"));
        }
        let names = parse_names(&p.names)?;
        if p.register_phone_lines && names.len() != self.params.phone_lines as usize {
            return Err(ApiError::BadNameList(
                "one name per phone line is required".into(),
            ));
        }
        let server = parse_host(&p.server_address, "registration server address")?;
        let server_port = explicit_port(p.server_port, "server port")?;
        // One snapshot of the settings, taken under one lock.
        let (
            (instance, reg_id, two_flows, share_challenges),
            (domain, proxy, credentials, transport, stream_port, tls_version, tls),
        ) = {
            let s = self.settings.lock();
            (
                (
                    (s.outbound > 0 || s.instance_set).then(|| s.instance.clone()),
                    (s.outbound > 0).then_some(1),
                    s.outbound == 2,
                    s.share_challenges,
                ),
                (
                    s.domain.clone(),
                    s.proxy.clone(),
                    Arc::new(s.credentials.clone()),
                    s.transport,
                    s.stream_port,
                    s.tls_version,
                    s.transport.allows(Transport::Tls).then(|| s.tls.clone()),
                ),
            )
        };
        let aor_domain = domain.clone().unwrap_or_else(|| server.clone());
        let (next_hop, route) = if p.through_proxy {
            let (proxy_host, proxy_port) = proxy.ok_or(ApiError::ProxyNotEnabled)?;
            if domain.is_none() {
                return Err(ApiError::DomainNotDefined);
            }
            let proxy = HostPort {
                host: proxy_host,
                port: explicit_port(proxy_port, "proxy port")?,
            };
            (proxy.clone(), Some(proxy_route(&proxy, transport)))
        } else {
            let registrar = HostPort {
                host: server.clone(),
                port: server_port,
            };
            (registrar, None)
        };
        if let Some(tls) = tls {
            let config = tls::client_config(&tls).map_err(ApiError::Tls)?;
            self.with_endpoint(|e| e.set_tls(tls_version, config))?;
        }
        // DNS may take a while: the engine's lock is not held meanwhile.
        let locator = self.with_endpoint(|e| Ok(e.locator()))?;
        let destination = locate(
            &locator,
            &next_hop,
            transport,
            &aor_domain,
            tls_version,
            self.local,
        )?;
        let first = destination.targets[0].addr;
        let contact_ip = source_ip_towards(self.local, first);
        let contact_port = match stream_port {
            0 => self.local.port(),
            port => port,
        };
        let request_uri = registration_request_uri(&aor_domain, &server, server_port);
        let timeout = match p.timeout_ms {
            0 => DEFAULT_TIMEOUT,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let refresh_interval = Duration::from_secs(u64::from(p.update_interval_s));

        // Shared by every name: one copy each.
        let request_uri: Arc<str> = request_uri.into();
        let route: Option<Arc<str>> = route.map(Into::into);
        let user_agent: Arc<str> = user_agent(&self.params.phone_name).into();
        let instance: Option<Arc<str>> = instance.map(Into::into);
        let mut specs = Vec::with_capacity(names.len());
        let mut new_labels = Vec::with_capacity(names.len());
        let mut registration = std::collections::HashMap::with_capacity(names.len());
        let old = {
            let mut settings = self.settings.lock();
            for (index, name) in names.iter().enumerate() {
                if registration.contains_key(name) {
                    continue; // one binding per unique name; the first line labels it
                }
                settings.next_id += 1;
                let id = BindingId(settings.next_id);
                registration.insert(name.clone(), id);
                let line = if p.register_phone_lines {
                    index as i32
                } else {
                    -1
                };
                new_labels.push((
                    id,
                    Label {
                        name: name.clone(),
                        line,
                    },
                ));
                specs.push(BindingSpec {
                    id,
                    destination: destination.clone(),
                    // The second flow prefers the second target: without one, none.
                    second_flow: (two_flows && destination.targets.len() > 1)
                        .then(|| destination.clone()),
                    config: BindingConfig {
                        user: name.clone(),
                        aor: aor_uri(name, &aor_domain),
                        request_uri: request_uri.clone(),
                        local: SocketAddr::new(contact_ip, contact_port),
                        transport: destination.targets[0].transport,
                        route: route.clone(),
                        expires: p.expire_time_s,
                        refresh_interval,
                        timeout,
                        nat_detect: p.nat_auto_detect,
                        credentials: credentials.clone(),
                        user_agent: user_agent.clone(),
                        retry_base: Duration::from_secs(1),
                        retry_max: Duration::from_secs(300),
                        instance: instance.clone(),
                        reg_id,
                        share_challenges,
                    },
                });
            }
            settings.longest_timeout = settings.longest_timeout.max(timeout);
            std::mem::replace(&mut settings.registration, registration)
        };
        {
            let mut labels = self.labels.lock();
            for (id, label) in new_labels {
                labels.insert(id, label);
            }
        }
        // Installed before the bindings exist, so no outcome can be missed.
        let waiter = wait.then(|| {
            let waiter = Arc::new(FirstCycle {
                state: Mutex::new(CycleState {
                    pending: specs.iter().map(|s| s.id).collect(),
                    ..CycleState::default()
                }),
                settled: Condvar::new(),
            });
            self.waiters.lock().push(waiter.clone());
            waiter
        });
        let bound = first_cycle_bound(specs.len(), destination.targets.len(), timeout);
        let added = self.with_endpoint(|e| {
            if !old.is_empty() {
                e.stop(Some(old.into_values().collect()))?;
            }
            e.add(specs)
        });
        let Some(waiter) = waiter else {
            return added;
        };
        let result = added.and_then(|()| self.wait_first_cycle(&waiter, bound));
        self.waiters.lock().retain(|w| !Arc::ptr_eq(w, &waiter));
        result
    }

    /// Waits until every name of `waiter` ended its first register cycle, or `bound`.
    fn wait_first_cycle(&self, waiter: &FirstCycle, bound: Duration) -> Result<(), ApiError> {
        let deadline = std::time::Instant::now() + bound;
        let mut state = waiter.state.lock();
        while !state.pending.is_empty() && !state.stopped {
            if waiter.settled.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        if state.stopped {
            return Err(ApiError::Closed);
        }
        if let Some(failure) = state.failure.take() {
            return Err(failure);
        }
        if state.pending.is_empty() {
            return Ok(());
        }
        // Only a fault of the engine's own timers could lead here: say so, as a timeout.
        let (names, id) = (self.labels.lock(), state.pending.iter().next().copied());
        let name = id.and_then(|id| names.get(&id)).map(|l| l.name.to_string());
        Err(ApiError::NotRegistered {
            name: name.unwrap_or_default(),
            kind: NotificationKind::RegisterTimeOut,
            why: format!("no outcome within {} s", bound.as_secs()),
        })
    }

    /// Whether `EnableSipRegisterServer` waits for the first register cycle of every name
    /// it registers and reports its outcome (off by default).
    pub fn set_wait_first_cycle(&self, on: bool) {
        self.settings.lock().wait_first_cycle = on;
    }

    /// Whether the names of each `EnableSipRegisterServer` enabled from now on share their
    /// digest challenges (off by default): a name not challenged yet answers the last
    /// challenge another name of the call received, with the nonce count of all their
    /// answers, so that its registration takes one request instead of two. For registrars
    /// that accept a realm's nonce from any of its users (Kamailio, Asterisk, FreeSWITCH).
    /// A refused shared answer (a new challenge, or a 403) is followed by a request of the
    /// name's own; when such refusals outnumber the accepted shared answers by eight, the
    /// sharing ends for those names and each waits for a challenge of its own.
    pub fn set_share_challenges(&self, on: bool) {
        self.settings.lock().share_challenges = on;
    }

    /// Unregisters every name (Expires: 0); `Unregistered` notifications follow.
    pub fn disable_register_server(&self) -> Result<(), ApiError> {
        let ids: Vec<BindingId> = std::mem::take(&mut self.settings.lock().registration)
            .into_values()
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        self.with_endpoint(|e| e.stop(Some(ids)))
    }

    /// Whether a register server is enabled.
    pub fn register_server_enabled(&self) -> bool {
        !self.settings.lock().registration.is_empty()
    }

    /// The state of one name: of the current registration, else of an earlier one still
    /// being unregistered; `None` when the engine does not know the name.
    ///
    /// It reflects at least every notification delivered so far: the driver publishes a
    /// state before it hands the notification of that change to the event thread. A name
    /// enabled a moment ago, not yet taken up by the driver, is registering. Costs one
    /// lookup, and never waits for the driver.
    pub fn registration_state(&self, name: &str) -> Result<Option<BindingState>, ApiError> {
        let current = self.settings.lock().registration.get(name).copied();
        self.with_endpoint(|e| {
            e.failure()?;
            if let Some(id) = current {
                return Ok(Some(e.state(id).unwrap_or(BindingState::Registering)));
            }
            let old: Vec<BindingId> = self.labels.lock().of(name).to_vec();
            Ok(e.states_of(&old).into_iter().rev().flatten().next())
        })
    }

    /// The registration info query for a name this engine registers (its current binding).
    pub fn registration_info(&self, name: &str) -> Result<RegistrationDetails, ApiError> {
        let id = self.settings.lock().registration.get(name).copied();
        let id = id.ok_or_else(|| ApiError::NameUnknown(name.to_string()))?;
        self.with_endpoint(|e| {
            e.failure()?;
            let found = e.info(id)?;
            let state = e.state(id).unwrap_or(BindingState::Registering);
            Ok(found.map(|(info, target)| {
                RegistrationDetails::new(info, &target, state, std::time::Instant::now())
            }))
        })?
        .ok_or_else(|| ApiError::NameUnknown(name.to_string()))
    }

    /// SIP Outbound (RFC 5626) for the registrations enabled from now on, with `flows`
    /// flows per name (0: off; 1; 2: the second to the registrar's second target, when DNS
    /// lists one): each flow (`reg-id`, `;ob`, `Supported: outbound, path`) is watched by
    /// keep-alives, and a 439 gets a plain registration.
    pub fn set_outbound(&self, flows: u32) -> Result<(), ApiError> {
        let flows = u8::try_from(flows)
            .ok()
            .filter(|f| *f <= 2)
            .ok_or(ApiError::bad("flows is not 0, 1 or 2"))?;
        self.settings.lock().outbound = flows;
        Ok(())
    }

    /// Sets the instance URN (`+sip.instance`, RFC 5626 §4.1) of the registrations enabled
    /// from now on; an application that persists it keeps its GRUUs across restarts.
    pub fn set_instance_id(&self, urn: &str) -> Result<(), ApiError> {
        let urn = parse_instance_id(urn)?;
        let mut settings = self.settings.lock();
        settings.instance = urn;
        settings.instance_set = true;
        Ok(())
    }

    /// The instance URN in use (generated at start unless set).
    pub fn instance_id(&self) -> String {
        self.settings.lock().instance.clone()
    }

    /// Makes the engine's I/O driver panic, to test that its failure is reported.
    #[cfg(feature = "testkit")]
    pub(crate) fn inject_driver_panic(&self) {
        if let Some(e) = self.endpoint.lock().as_ref() {
            e.inject_driver_panic();
        }
    }

    /// Counters of the engine's endpoint (requests, retransmissions, responses, drops).
    pub fn stats(&self) -> Result<crate::runtime::EndpointStats, ApiError> {
        self.with_endpoint(|e| e.stats())
    }

    /// Sends CRLF keep-alives at this interval (`None` stops them).
    pub fn set_keepalive(&self, interval: Option<Duration>) -> Result<(), ApiError> {
        self.with_endpoint(|e| e.set_keepalive(interval))
    }

    /// Sends one CRLF keep-alive to the registrar or proxy now.
    pub fn send_keepalive(&self) -> Result<(), ApiError> {
        self.with_endpoint(|e| e.send_keepalive())
    }

    /// How long stopping the engine waits at most for its unregistrations: every removal
    /// retransmits until then, and those the registrar did not confirm are named in the
    /// log. 100 ms to ten minutes; by default the longest `TimeOutMs` used, at most 4 s.
    pub fn set_unregister_wait(&self, timeout_ms: u32) -> Result<(), ApiError> {
        if !(MIN_UNREGISTER_WAIT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(ApiError::bad(
                "the unregistration wait is not 100 ms to 10 minutes",
            ));
        }
        self.settings.lock().unregister_wait = Some(Duration::from_millis(timeout_ms.into()));
        Ok(())
    }

    /// LanScape's `EnableKeepAliveTransmissions(sip, rtp, interval)`: CRLF keep-alives to
    /// every next hop every `interval_s` seconds (1 to 86400) while `sip`; off otherwise.
    /// RTP keep-alives have no meaning without media: the caller accepts and ignores them.
    pub fn set_keepalive_transmissions(&self, sip: bool, interval_s: u32) -> Result<(), ApiError> {
        if !sip {
            return self.set_keepalive(None);
        }
        if !(1..=86_400).contains(&interval_s) {
            return Err(ApiError::bad("interval is not 1 to 86400 seconds"));
        }
        self.set_keepalive(Some(Duration::from_secs(interval_s.into())))
    }

    /// LanScape's `SendSipKeepAlive(Host, Port, EnableState, KeepAliveSeconds)`: while
    /// `enable`, a CRLF keep-alive ("NULL" SIP message) to `host:port` (a literal or a DNS
    /// name, resolved now; port 0: 5060) at once and every `seconds` (1 to 86400), from the
    /// engine's SIP port, or on the connection of a registration over TCP or TLS to that
    /// address; `!enable` stops those to that destination (`seconds` is then ignored).
    /// Any number of destinations may have their own.
    pub fn set_keepalive_to(
        &self,
        host: &str,
        port: u32,
        enable: bool,
        seconds: i32,
    ) -> Result<(), ApiError> {
        let hop = HostPort {
            host: parse_host(host, "host")?,
            port: Some(explicit_port(port, "port")?.unwrap_or(5060)),
        };
        let interval = match enable {
            false => None,
            true => match u32::try_from(seconds) {
                Ok(s @ 1..=86_400) => Some(Duration::from_secs(s.into())),
                _ => return Err(ApiError::bad("keep-alive seconds is not 1 to 86400")),
            },
        };
        let locator = self.with_endpoint(|e| Ok(e.locator()))?;
        let udp = TransportChoice::Only(Transport::Udp);
        let located = locate(&locator, &hop, udp, &hop.host, 0, self.local)?;
        let addr = located.targets[0].addr;
        self.with_endpoint(|e| e.set_keepalive_to(addr, interval))
    }

    /// Unregisters every name, waiting boundedly for the answers, and stops the threads.
    ///
    /// Notifications sent during the wait are delivered; none after this returns (unless
    /// called from inside a notification, whose thread then ends right after it).
    pub fn shutdown(&self) {
        let Some(endpoint) = self.endpoint.lock().take() else {
            return;
        };
        for waiter in self.waiters.lock().iter() {
            waiter.end(None, true);
        }
        let wait = {
            let settings = self.settings.lock();
            let default = settings.longest_timeout.min(MAX_UNREGISTER_WAIT);
            settings.unregister_wait.unwrap_or(default)
        };
        let in_callback = endpoint.on_event_thread();
        let least = Duration::from_millis(MIN_UNREGISTER_WAIT_MS.into());
        endpoint.stop_and_wait(None, wait.max(least));
        if in_callback {
            // The event thread goes on after this callback: nothing more may reach the user.
            self.delivering.store(false, Ordering::Release);
        }
        endpoint.close(); // delivers what is queued (when not in a callback), joins threads
        self.delivering.store(false, Ordering::Release);
    }
}

impl Drop for PhoneEngine {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The longest a waiting `EnableSipRegisterServer` waits: a safety net only, as every
/// transaction ends by the engine's own timers. Per name and target, up to four
/// transactions (challenge, 423, a renewed challenge), each bounded by `timeout`; names
/// beyond the transactions a next hop admits at once wait for a turn.
fn first_cycle_bound(names: usize, targets: usize, timeout: Duration) -> Duration {
    let turns = names.div_ceil(MAX_IN_FLIGHT_PER_HOP).max(1);
    let per_turn = timeout.saturating_mul(4 * targets.clamp(1, 16) as u32);
    per_turn
        .saturating_mul(u32::try_from(turns).unwrap_or(u32::MAX))
        .saturating_add(Duration::from_secs(5))
}

impl From<&BindingEvent> for NotificationKind {
    fn from(event: &BindingEvent) -> Self {
        match event {
            BindingEvent::Registered { .. } => NotificationKind::RegisterSuccess,
            BindingEvent::Unregistered => NotificationKind::Unregistered,
            // A registrar that cannot be reached (ICMP) does not answer (LanScape's timeout,
            // only sooner), and a registration that lapsed was not refreshed in time.
            BindingEvent::Failed(
                Failure::TimedOut | Failure::Expired | Failure::Unreachable(_),
            ) => NotificationKind::RegisterTimeOut,
            BindingEvent::Failed(Failure::AuthRejected) => {
                NotificationKind::RegisterAuthorizationError
            }
            BindingEvent::Failed(Failure::IntervalRejected) => {
                NotificationKind::RegisterIntervalError
            }
            BindingEvent::Failed(Failure::Tls(_)) => NotificationKind::TlsError,
            BindingEvent::Failed(_) => NotificationKind::RegisterError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label(name: &str) -> Label {
        Label {
            name: name.into(),
            line: 0,
        }
    }

    #[test]
    fn the_bindings_of_a_name_are_kept_oldest_first_as_they_come_and_go() {
        let mut labels = Labels::default();
        let ids = |labels: &Labels, name| labels.of(name).to_vec();
        labels.insert(BindingId(1), label("a"));
        labels.insert(BindingId(2), label("b"));
        assert_eq!(ids(&labels, "a"), [BindingId(1)]);
        // A name registered again while its first binding unregisters has two.
        labels.insert(BindingId(3), label("a"));
        labels.insert(BindingId(4), label("a"));
        assert_eq!(
            ids(&labels, "a"),
            [BindingId(1), BindingId(3), BindingId(4)]
        );
        assert!(labels.remove(BindingId(1)).is_some());
        assert!(labels.remove(BindingId(4)).is_some());
        assert_eq!(ids(&labels, "a"), [BindingId(3)]);
        labels.insert(BindingId(5), label("a"));
        assert_eq!(ids(&labels, "a"), [BindingId(3), BindingId(5)]);
        assert!(labels.remove(BindingId(3)).is_some());
        assert!(labels.remove(BindingId(5)).is_some());
        assert!(ids(&labels, "a").is_empty());
        assert!(
            !labels.by_name.contains_key("a"),
            "a name with no binding is forgotten"
        );
        assert!(labels.remove(BindingId(5)).is_none());
        assert_eq!(ids(&labels, "b"), [BindingId(2)]);
        assert!(labels.remove(BindingId(2)).is_some());
        assert!(labels.by_name.is_empty() && labels.by_id.is_empty());
    }
}
