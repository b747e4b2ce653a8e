//! The profile registry, in the style of the Symbian SIP Profile API, over the same engine.
//!
//! Every registry of the process connects to one shared registration service (one UDP
//! endpoint and its threads), started when the first registry opens and stopped — profiles
//! unregistered, threads joined — when the last one closes. Profiles live for the process;
//! each retrieval gives a new profile handle. A profile is registered while at least one
//! live handle has it enabled; a registry hears about a profile while it holds a live handle
//! of it.
//!
//! Every notification comes from the service's event thread, in the order things happened:
//! calls only ask the endpoint to add or stop a binding, and the endpoint's events
//! (`Started`, `Stopping`, then the outcomes) change a profile's state, on that thread, right
//! before its observers hear of it. So a state read after a notification reflects it, and a
//! caller may hold its own lock around any call without deadlocking its callbacks.

use crate::api::address::{
    aor_uri, locate, new_instance_id, parse_aor, parse_dns_servers, parse_instance_id,
    parse_server, proxy_route, registration_request_uri, source_ip_towards, user_agent,
};
use crate::api::{ApiError, RegistrationDetails};
use crate::engine::binding::{BindingConfig, BindingEvent, BindingState, Failure};
use crate::engine::digest::{Credential, CredentialStore};
use crate::engine::target::TransportChoice;
use crate::engine::transaction::DEFAULT_TIMEOUT;
use crate::engine::transport::Transport;
use crate::handles::{HandleTable, RawHandle};
use crate::runtime::tls::{self, TlsSettings};
use crate::runtime::{BindingId, BindingSpec, Endpoint, EndpointEvent, Locator};
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Identifies a profile for the life of the process (never 0).
pub type ProfileId = u32;

/// The settings of a profile.
#[derive(Debug, Clone)]
pub struct ProfileSettings {
    /// Address of record, `user@domain` (a `sip:` prefix is accepted).
    pub aor: String,
    /// Registrar, `host[:port]` (IPv6 in brackets).
    pub registrar: String,
    /// Outbound proxy, `host[:port]`, if any.
    pub outbound_proxy: Option<String>,
    /// Digest user name and password (any realm); `None` when the registrar asks none.
    /// The password is wiped on drop and never shown by `Debug`.
    pub credential: Option<Credential>,
    /// Expiry asked of the registrar, seconds.
    pub expires: u32,
    /// Transports: one chosen, or any (DNS NAPTR records choose, RFC 3263). Without a
    /// port, SRV records (else the transport's default port: 5061 for TLS, else 5060) give it.
    pub transport: TransportChoice,
    /// With TLS: trust anchors and client certificate.
    pub tls: TlsSettings,
    /// SIP Outbound (RFC 5626): the flows the profile registers (0: off; 1; 2: the second
    /// to the registrar's second target, when DNS lists one), watched by keep-alives.
    pub outbound: u8,
    /// The instance URN (`+sip.instance`); `None`: the registration service's own (one
    /// per process) when Outbound is on, none otherwise.
    pub instance: Option<String>,
}

/// Registration state of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileState {
    /// Not registered.
    Unregistered,
    /// Registration in progress.
    Registering,
    /// Registered.
    Registered,
    /// Unregistration in progress.
    Unregistering,
}

/// Why a profile is not registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileError {
    /// The registrar refused or answered something unusable.
    Rejected,
    /// No answer in time.
    TimedOut,
    /// Credentials missing or refused.
    Authorization,
    /// The registrar refused the expiry (423).
    Interval,
    /// An internal failure: the service's I/O driver died; nothing is registered any more.
    Internal,
    /// The TLS handshake failed (certificate not trusted or not matching the SIP domain).
    Tls,
}

impl From<&Failure> for ProfileError {
    fn from(failure: &Failure) -> Self {
        match failure {
            // A registrar that cannot be reached does not answer: a timeout, only sooner.
            Failure::TimedOut | Failure::Expired | Failure::Unreachable(_) => {
                ProfileError::TimedOut
            }
            Failure::AuthRejected => ProfileError::Authorization,
            Failure::IntervalRejected => ProfileError::Interval,
            Failure::Tls(_) => ProfileError::Tls,
            _ => ProfileError::Rejected,
        }
    }
}

/// Receives a registry's notifications, on the service's event thread, with no lock held.
pub trait ProfileObserver: Send + Sync {
    /// A profile the registry holds a handle of changed state.
    fn state_changed(&self, profile: ProfileId, state: ProfileState);
    /// An asynchronous error: the profile is not registered (retries go on).
    fn error_occurred(&self, profile: ProfileId, error: ProfileError);
}

/// A registry handle.
pub type RegistryHandle = RawHandle;
/// A profile handle.
pub type ProfileHandle = RawHandle;

struct Registry {
    observer: Arc<dyn ProfileObserver>,
}

struct HandleEntry {
    registry: RegistryHandle,
    profile: ProfileId,
    enabled: bool,
}

struct Profile {
    settings: ProfileSettings,
    /// As observers last heard it; changed on the event thread only.
    state: ProfileState,
    /// The binding calls asked for (enable sets it, disable takes it).
    binding: Option<BindingId>,
    /// The binding whose events decide `state`: the latest one the event thread saw start.
    shown: Option<BindingId>,
}

#[derive(Default)]
struct Shared {
    registries: HandleTable<Registry>,
    handles: HandleTable<Mutex<HandleEntry>>,
    profiles: HashMap<ProfileId, Profile>,
    next_profile: ProfileId,
    next_binding: u64,
    bindings: HashMap<BindingId, ProfileId>,
    /// The generation of the service: bumped when the last registry closes, so the events
    /// of a service being stopped are not taken for those of the next one.
    generation: u64,
}

static SHARED: Lazy<Mutex<Shared>> = Lazy::new(Mutex::default);
/// The registration service; `Some` while a registry is open. Locked before `SHARED`.
static SERVICE: Lazy<Mutex<Option<Endpoint>>> = Lazy::new(|| Mutex::new(None));

/// How long closing the last registry waits at most for unregistrations, in ms (4 s
/// unless the application chose; see [`set_close_wait`]).
static CLOSE_WAIT_MS: AtomicU64 = AtomicU64::new(4_000);

/// A notification to deliver once locks are released.
enum Note {
    State(Arc<dyn ProfileObserver>, ProfileId, ProfileState),
    Error(Arc<dyn ProfileObserver>, ProfileId, ProfileError),
}

fn deliver(notes: Vec<Note>) {
    for note in notes {
        match note {
            Note::State(o, id, state) => o.state_changed(id, state),
            Note::Error(o, id, error) => o.error_occurred(id, error),
        }
    }
}

impl Shared {
    /// Observers of the registries holding a live handle of `profile`, once each.
    fn observers_of(&self, profile: ProfileId) -> Vec<Arc<dyn ProfileObserver>> {
        let mut registries: Vec<RegistryHandle> = self
            .handles
            .values()
            .filter_map(|h| {
                let h = h.lock();
                (h.profile == profile).then_some(h.registry)
            })
            .collect();
        registries.sort_unstable();
        registries.dedup();
        registries
            .into_iter()
            .filter_map(|r| self.registries.get(r).map(|r| r.observer.clone()))
            .collect()
    }

    fn set_state(&mut self, profile: ProfileId, state: ProfileState, notes: &mut Vec<Note>) {
        let Some(p) = self.profiles.get_mut(&profile) else {
            return;
        };
        if p.state == state {
            return;
        }
        p.state = state;
        for o in self.observers_of(profile) {
            notes.push(Note::State(o, profile, state));
        }
    }

    /// Checks that `registry` is live and, if given, that `profile` exists.
    fn require(
        &self,
        registry: RegistryHandle,
        profile: Option<ProfileId>,
    ) -> Result<(), ApiError> {
        self.registries
            .get(registry)
            .ok_or(ApiError::InvalidHandle)?;
        match profile {
            Some(p) if !self.profiles.contains_key(&p) => Err(ApiError::ProfileNotFound),
            _ => Ok(()),
        }
    }

    /// The profile handles matching `pred`.
    fn handles_where(&self, pred: impl Fn(&HandleEntry) -> bool) -> Vec<RawHandle> {
        self.handles
            .entries()
            .filter(|(_, h)| pred(&h.lock()))
            .map(|(raw, _)| raw)
            .collect()
    }

    /// The profile a binding belongs to.
    fn profile_of(&self, binding: BindingId) -> Option<ProfileId> {
        self.bindings.get(&binding).copied()
    }

    /// The profile whose state this binding's events decide, if any.
    fn shown_by(&self, binding: BindingId) -> Option<ProfileId> {
        let profile = self.profile_of(binding)?;
        (self.profiles.get(&profile)?.shown == Some(binding)).then_some(profile)
    }

    /// An asynchronous error: the observers hear it, and the profile is not registered.
    fn report(&mut self, profile: ProfileId, error: ProfileError, notes: &mut Vec<Note>) {
        for o in self.observers_of(profile) {
            notes.push(Note::Error(o, profile, error));
        }
        self.set_state(profile, ProfileState::Unregistered, notes);
    }

    fn wanted(&self, profile: ProfileId) -> bool {
        self.handles.values().any(|h| {
            let h = h.lock();
            h.profile == profile && h.enabled
        })
    }
}

/// Opens a registry, starting the shared service if it is the first.
pub fn open_registry(observer: Arc<dyn ProfileObserver>) -> Result<RegistryHandle, ApiError> {
    let mut service = SERVICE.lock();
    if service.is_none() {
        let generation = SHARED.lock().generation;
        let endpoint = Endpoint::open(
            SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            "lanscape-sip-profiles",
            true,
            move |event| on_endpoint_event(generation, event),
        )?;
        *service = Some(endpoint);
    }
    Ok(SHARED
        .lock()
        .registries
        .insert(Arc::new(Registry { observer })))
}

/// Closes a registry and its profile handles; the last one stops the service.
///
/// The last close unregisters every profile (waiting at most the close wait, 4 s unless
/// [`set_close_wait`] chose) and joins the service's
/// threads, with no lock held, so a callback running meanwhile may still call in, and a
/// registry opened meanwhile starts a new service. The profiles are detached from the old
/// service at once, under the lock: nothing it does later touches them.
pub fn close_registry(registry: RegistryHandle) -> Result<(), ApiError> {
    let mut service = SERVICE.lock();
    let (unregister, last) = {
        let mut shared = SHARED.lock();
        shared
            .registries
            .remove(registry)
            .ok_or(ApiError::InvalidHandle)?;
        let mine = shared.handles_where(|h| h.registry == registry);
        let mut touched = Vec::new();
        for raw in mine {
            if let Some(h) = shared.handles.remove(raw) {
                touched.push(h.lock().profile);
            }
        }
        let mut unregister = Vec::new();
        for profile in touched {
            if !shared.wanted(profile) {
                unregister.extend(stop_binding(&mut shared, profile));
            }
        }
        let last = shared.registries.is_empty();
        if last {
            // No registry is left to hear of these profiles: they are unregistered (the
            // old service still removes their bindings) and take no more of its events.
            shared.generation += 1;
            shared.bindings.clear();
            for p in shared.profiles.values_mut() {
                p.binding = None;
                p.shown = None;
                p.state = ProfileState::Unregistered;
            }
        }
        (unregister, last)
    };
    if !last {
        return unregister_on(service.as_ref(), unregister);
    }
    let endpoint = service.take();
    drop(service);
    if let Some(endpoint) = endpoint {
        let wait = Duration::from_millis(CLOSE_WAIT_MS.load(Ordering::Relaxed));
        endpoint.stop_and_wait(None, wait);
        endpoint.close();
    }
    Ok(())
}

/// Checks settings and stores a new profile.
pub fn create_profile(
    registry: RegistryHandle,
    settings: ProfileSettings,
) -> Result<ProfileId, ApiError> {
    validate(&settings)?;
    let mut shared = SHARED.lock();
    shared.require(registry, None)?;
    shared.next_profile += 1;
    let id = shared.next_profile;
    shared.profiles.insert(
        id,
        Profile {
            settings,
            state: ProfileState::Unregistered,
            binding: None,
            shown: None,
        },
    );
    Ok(id)
}

/// TLS settings from the caller: trust anchors (PEM text or a PEM file's path), whether the
/// system store is trusted too, and a client certificate chain and key.
pub fn tls_settings(
    trusted_pem: Option<&str>,
    use_system_trust: bool,
    client: Option<(&str, &str)>,
) -> Result<TlsSettings, ApiError> {
    Ok(TlsSettings {
        system_roots: use_system_trust,
        extra_roots: match trusted_pem {
            Some(pem) => tls::trust_anchors(pem).map_err(ApiError::Tls)?,
            None => Vec::new(),
        },
        client: match client {
            Some((chain, key)) => Some(tls::client_identity(chain, key).map_err(ApiError::Tls)?),
            None => None,
        },
    })
}

/// The DNS servers the shared registration service uses to locate registrars and proxies
/// (`ip[:port]` entries; empty: the system's configuration). For every registry of the
/// process, from the next lookup on.
pub fn set_dns_servers(registry: RegistryHandle, servers: &str) -> Result<(), ApiError> {
    let servers = parse_dns_servers(servers)?;
    let service = SERVICE.lock();
    SHARED.lock().require(registry, None)?;
    let endpoint = service.as_ref().ok_or(ApiError::InvalidHandle)?;
    Ok(endpoint.set_dns_servers(servers)?)
}

/// How long closing the last registry waits at most for the unregistration of its
/// profiles (for the whole process: the service is shared): every removal retransmits
/// until then. 100 ms to ten minutes; 4 s by default.
pub fn set_close_wait(registry: RegistryHandle, timeout_ms: u32) -> Result<(), ApiError> {
    use crate::api::lanscape::{MAX_TIMEOUT_MS, MIN_UNREGISTER_WAIT_MS};
    if !(MIN_UNREGISTER_WAIT_MS..=MAX_TIMEOUT_MS).contains(&timeout_ms) {
        return Err(ApiError::bad(
            "the unregistration wait is not 100 ms to 10 minutes",
        ));
    }
    SHARED.lock().require(registry, None)?;
    CLOSE_WAIT_MS.store(timeout_ms.into(), Ordering::Relaxed);
    Ok(())
}

/// Sets the TLS settings of a profile (used from its next registration on).
pub fn set_profile_tls(
    registry: RegistryHandle,
    profile: ProfileId,
    tls_settings: TlsSettings,
) -> Result<(), ApiError> {
    tls::client_config(&tls_settings).map_err(ApiError::Tls)?;
    let mut shared = SHARED.lock();
    shared.require(registry, Some(profile))?;
    if let Some(p) = shared.profiles.get_mut(&profile) {
        p.settings.tls = tls_settings;
    }
    Ok(())
}

/// Sets a profile's SIP Outbound setting and instance id (`None`: the service's own),
/// used from its next registration on.
pub fn set_profile_outbound(
    registry: RegistryHandle,
    profile: ProfileId,
    outbound: u32,
    instance: Option<&str>,
) -> Result<(), ApiError> {
    let outbound = u8::try_from(outbound)
        .ok()
        .filter(|f| *f <= 2)
        .ok_or(ApiError::bad("flows is not 0, 1 or 2"))?;
    let instance = instance.map(parse_instance_id).transpose()?;
    let mut shared = SHARED.lock();
    shared.require(registry, Some(profile))?;
    if let Some(p) = shared.profiles.get_mut(&profile) {
        p.settings.outbound = outbound;
        p.settings.instance = instance;
    }
    Ok(())
}

/// The instance URN of profiles that set none (one per process, generated once).
fn service_instance() -> String {
    static INSTANCE: Lazy<String> = Lazy::new(new_instance_id);
    INSTANCE.clone()
}

/// A new handle of a profile for this registry.
pub fn retrieve_profile(
    registry: RegistryHandle,
    profile: ProfileId,
) -> Result<ProfileHandle, ApiError> {
    let mut shared = SHARED.lock();
    shared.require(registry, Some(profile))?;
    Ok(shared.handles.insert(Arc::new(Mutex::new(HandleEntry {
        registry,
        profile,
        enabled: false,
    }))))
}

/// Deletes a profile handle: its notifications stop, and a profile no handle keeps enabled
/// any more is unregistered.
pub fn release_profile(handle: ProfileHandle) -> Result<(), ApiError> {
    let service = SERVICE.lock();
    let unregister = {
        let mut shared = SHARED.lock();
        let entry = shared
            .handles
            .remove(handle)
            .ok_or(ApiError::InvalidHandle)?;
        let profile = entry.lock().profile;
        if shared.wanted(profile) {
            Vec::new()
        } else {
            stop_binding(&mut shared, profile)
        }
    };
    unregister_on(service.as_ref(), unregister)
}

/// Enables a profile through a handle; registers it unless it already is (then nothing
/// is notified). `Registering` and what follows reach the observers from the event thread.
pub fn enable_profile(handle: ProfileHandle) -> Result<(), ApiError> {
    let (local, locator) = {
        let service = SERVICE.lock();
        let endpoint = service.as_ref().ok_or(ApiError::InvalidHandle)?;
        endpoint.failure()?;
        (endpoint.local_addr(), endpoint.locator())
    };
    let (profile, settings) = {
        let shared = SHARED.lock();
        let entry = shared.handles.get(handle).ok_or(ApiError::InvalidHandle)?;
        let mut entry = entry.lock();
        let profile = entry.profile;
        let p = shared
            .profiles
            .get(&profile)
            .ok_or(ApiError::ProfileNotFound)?;
        if p.binding.is_some() {
            entry.enabled = true;
            return Ok(());
        }
        (profile, p.settings.clone())
    };
    // Resolving may block: no lock is held meanwhile.
    let mut spec = binding_spec(&settings, profile, &locator, local)?;
    let tls = match settings.transport.allows(Transport::Tls) {
        true => Some(tls::client_config(&settings.tls).map_err(ApiError::Tls)?),
        false => None,
    };
    let service = SERVICE.lock();
    let endpoint = service.as_ref().ok_or(ApiError::InvalidHandle)?;
    let mut shared = SHARED.lock();
    // The handle is still live, so its registry is open and the service that gave `local`
    // and `locator` is still the running one (only the last close stops it, and that kills
    // every handle; handles are never reused).
    let entry = shared.handles.get(handle).ok_or(ApiError::InvalidHandle)?;
    let p = shared
        .profiles
        .get(&profile)
        .ok_or(ApiError::ProfileNotFound)?;
    if p.binding.is_some() {
        entry.lock().enabled = true;
        return Ok(()); // another handle enabled it meanwhile
    }
    shared.next_binding += 1;
    spec.id = BindingId(shared.next_binding);
    // Added while the lock is held, so that its events find the profile.
    if let Some(config) = tls {
        endpoint.set_tls(u64::from(profile), config)?;
    }
    let id = spec.id;
    endpoint.add(vec![spec])?;
    entry.lock().enabled = true;
    shared.bindings.insert(id, profile);
    if let Some(p) = shared.profiles.get_mut(&profile) {
        p.binding = Some(id);
    }
    Ok(())
}

/// Disables a profile through a handle; unregisters it if no other handle keeps it enabled.
pub fn disable_profile(handle: ProfileHandle) -> Result<(), ApiError> {
    let service = SERVICE.lock();
    let unregister = {
        let mut shared = SHARED.lock();
        let entry = shared.handles.get(handle).ok_or(ApiError::InvalidHandle)?;
        let profile = {
            let mut e = entry.lock();
            e.enabled = false;
            e.profile
        };
        if shared.wanted(profile) {
            Vec::new()
        } else {
            stop_binding(&mut shared, profile)
        }
    };
    unregister_on(service.as_ref(), unregister)
}

/// The state of the profile behind a handle.
pub fn profile_state(handle: ProfileHandle) -> Result<(ProfileId, ProfileState), ApiError> {
    let shared = SHARED.lock();
    let entry = shared.handles.get(handle).ok_or(ApiError::InvalidHandle)?;
    let profile = entry.lock().profile;
    let state = shared
        .profiles
        .get(&profile)
        .map(|p| p.state)
        .ok_or(ApiError::ProfileNotFound)?;
    Ok((profile, state))
}

/// The registration info query of a profile (through a handle): `NameUnknown` while it
/// has no registration (not enabled).
pub fn profile_info(handle: ProfileHandle) -> Result<RegistrationDetails, ApiError> {
    let service = SERVICE.lock();
    let (profile, binding) = {
        let shared = SHARED.lock();
        let entry = shared.handles.get(handle).ok_or(ApiError::InvalidHandle)?;
        let profile = entry.lock().profile;
        let binding = shared.profiles.get(&profile).and_then(|p| p.binding);
        (profile, binding)
    };
    let unknown = || ApiError::NameUnknown(format!("profile {profile}"));
    let binding = binding.ok_or_else(unknown)?;
    let endpoint = service.as_ref().ok_or(ApiError::InvalidHandle)?;
    endpoint.failure()?;
    let (info, target) = endpoint.info(binding)?.ok_or_else(unknown)?;
    let state = endpoint.state(binding).unwrap_or(BindingState::Registering);
    Ok(RegistrationDetails::new(
        info,
        &target,
        state,
        std::time::Instant::now(),
    ))
}

/// Deletes a profile; refused while any handle keeps it enabled.
pub fn remove_profile(registry: RegistryHandle, profile: ProfileId) -> Result<(), ApiError> {
    let service = SERVICE.lock();
    let unregister = {
        let mut shared = SHARED.lock();
        shared.require(registry, Some(profile))?;
        if shared.wanted(profile) {
            return Err(ApiError::ProfileInUse);
        }
        let unregister = stop_binding(&mut shared, profile);
        shared.profiles.remove(&profile);
        let stale = shared.handles_where(|h| h.profile == profile);
        for raw in stale {
            shared.handles.remove(raw);
        }
        unregister
    };
    unregister_on(service.as_ref(), unregister)
}

/// Makes the service's I/O driver panic, to test that its failure is reported.
#[cfg(feature = "testkit")]
pub(crate) fn inject_driver_panic() {
    if let Some(e) = SERVICE.lock().as_ref() {
        e.inject_driver_panic();
    }
}

/// Whether the shared service is running (for tests of the start/stop rule).
#[cfg(feature = "testkit")]
pub(crate) fn service_running() -> bool {
    SERVICE.lock().is_some()
}

/// Hands detached bindings to the service to unregister.
fn unregister_on(service: Option<&Endpoint>, bindings: Vec<BindingId>) -> Result<(), ApiError> {
    match service {
        Some(endpoint) if !bindings.is_empty() => Ok(endpoint.stop(Some(bindings))?),
        _ => Ok(()),
    }
}

/// Detaches the binding of a profile for unregistration; its events still arrive.
fn stop_binding(shared: &mut Shared, profile: ProfileId) -> Vec<BindingId> {
    shared
        .profiles
        .get_mut(&profile)
        .and_then(|p| p.binding.take())
        .into_iter()
        .collect()
}

/// The event thread: the one place where a profile's state changes, right before its
/// observers hear of it.
fn on_endpoint_event(generation: u64, event: EndpointEvent) {
    let mut notes = Vec::new();
    {
        let mut shared = SHARED.lock();
        if shared.generation != generation {
            return; // a service being stopped: its profiles were detached from it
        }
        match event {
            EndpointEvent::Log { .. } => return, // the profile API has no log callback yet
            EndpointEvent::Failed(_) => {
                let live: Vec<ProfileId> = shared
                    .profiles
                    .iter()
                    .filter(|(_, p)| p.shown.is_some())
                    .map(|(id, _)| *id)
                    .collect();
                for profile in live {
                    shared.report(profile, ProfileError::Internal, &mut notes);
                    if let Some(p) = shared.profiles.get_mut(&profile) {
                        p.shown = None;
                    }
                }
            }
            EndpointEvent::Started(id) => {
                if let Some(profile) = shared.profile_of(id) {
                    if let Some(p) = shared.profiles.get_mut(&profile) {
                        p.shown = Some(id);
                    }
                    shared.set_state(profile, ProfileState::Registering, &mut notes);
                }
            }
            EndpointEvent::Stopping(id) => {
                if let Some(profile) = shared.shown_by(id) {
                    shared.set_state(profile, ProfileState::Unregistering, &mut notes);
                }
            }
            EndpointEvent::Binding { id, event } => match event {
                BindingEvent::Registered { .. } => {
                    if let Some(profile) = shared.shown_by(id) {
                        shared.set_state(profile, ProfileState::Registered, &mut notes);
                    }
                }
                BindingEvent::Failed(failure) => {
                    if let Some(profile) = shared.shown_by(id) {
                        shared.report(profile, ProfileError::from(&failure), &mut notes);
                    }
                }
                BindingEvent::Unregistered => {
                    let shown = shared.shown_by(id);
                    shared.bindings.remove(&id);
                    if let Some(profile) = shown {
                        if let Some(p) = shared.profiles.get_mut(&profile) {
                            p.shown = None;
                        }
                        shared.set_state(profile, ProfileState::Unregistered, &mut notes);
                    }
                }
            },
        }
    }
    deliver(notes);
}

fn validate(s: &ProfileSettings) -> Result<(), ApiError> {
    parse_aor(&s.aor)?;
    parse_server(&s.registrar, "registrar")?;
    if let Some(proxy) = &s.outbound_proxy {
        parse_server(proxy, "outbound proxy")?;
    }
    if s.expires == 0 {
        return Err(ApiError::IntervalError);
    }
    if s.credential.as_ref().is_some_and(|c| c.username.is_empty()) {
        return Err(ApiError::bad("auth user"));
    }
    if s.transport.allows(Transport::Tls) {
        tls::client_config(&s.tls).map_err(ApiError::Tls)?;
    }
    Ok(())
}

/// The binding of a profile, its server located; over TLS the profile's TLS settings go by
/// its id.
fn binding_spec(
    s: &ProfileSettings,
    profile: ProfileId,
    locator: &Locator,
    local: SocketAddr,
) -> Result<BindingSpec, ApiError> {
    let (user, domain) = parse_aor(&s.aor)?;
    let registrar = parse_server(&s.registrar, "registrar")?;
    let (next_hop, route) = match &s.outbound_proxy {
        Some(proxy) => {
            let proxy = parse_server(proxy, "outbound proxy")?;
            let route = proxy_route(&proxy, s.transport);
            (proxy, Some(route))
        }
        None => (registrar.clone(), None),
    };
    let destination = locate(
        locator,
        &next_hop,
        s.transport,
        &domain,
        u64::from(profile),
        local,
    )?;
    let mut credentials = CredentialStore::default();
    if let Some(credential) = &s.credential {
        credentials.insert(credential.clone());
    }
    let request_uri = registration_request_uri(&domain, &registrar.host, registrar.port);
    let first = &destination.targets[0];
    let contact = SocketAddr::new(source_ip_towards(local, first.addr), local.port());
    let transport = first.transport;
    Ok(BindingSpec {
        id: BindingId(0),
        // The second flow prefers the second target: without one, none.
        second_flow: (s.outbound == 2 && destination.targets.len() > 1)
            .then(|| destination.clone()),
        destination,
        config: BindingConfig {
            aor: aor_uri(&user, &domain),
            user: user.into(),
            request_uri: request_uri.into(),
            local: contact,
            transport,
            route: route.map(Into::into),
            expires: s.expires,
            refresh_interval: Duration::from_secs(u64::from(s.expires)),
            timeout: DEFAULT_TIMEOUT,
            nat_detect: true,
            credentials: Arc::new(credentials),
            user_agent: user_agent("").into(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            instance: match (&s.instance, s.outbound) {
                (Some(instance), _) => Some(instance.as_str().into()),
                (None, 0) => None,
                (None, _) => Some(service_instance().into()),
            },
            reg_id: (s.outbound > 0).then_some(1),
            // One name per profile, each with its own credentials and challenges.
            share_challenges: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_never_show_the_password() {
        let settings = ProfileSettings {
            aor: "a@example.com".into(),
            registrar: "example.com".into(),
            outbound_proxy: None,
            credential: Some(Credential::new("", "a", "hunter2")),
            expires: 60,
            transport: TransportChoice::default(),
            tls: TlsSettings::default(),
            outbound: 0,
            instance: None,
        };
        let shown = format!("{settings:?}");
        assert!(
            shown.contains("<redacted>") && !shown.contains("hunter2"),
            "{shown}"
        );
    }
}
