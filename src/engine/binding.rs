//! One registration binding (one address of record, one contact), sans I/O.
//!
//! A [`Binding`] is driven by three inputs: a response already matched to its current
//! transaction branch, a timer tick, and commands (start, stop, new credentials). Each
//! input appends [`Output`]s: bytes to send to the binding's next hop, and events. Time
//! and randomness come in from the caller, so every path is a plain unit test.
//!
//! What it does, per RFC 3261 §10 and the registrar behaviours users have met in the wild:
//! refresh at the update interval or before the granted expiry lapses, whichever is first;
//! digest answers to 401/407 with loop protection; one retry raising Expires to Min-Expires
//! after a 423; the granted expiry read from our own Contact first; a 2xx that does not list
//! our Contact is not a success; NAT detection from `received`/`rport` removes the old
//! contact in a REGISTER of its own before adding the public one; failures are retried on a
//! jittered exponential backoff and reported once.

use crate::engine::digest::{self, AnswerInput, Challenge, ChallengeKind, CredentialStore};
use crate::engine::message::{self, ResponseInfo};
use crate::engine::target::MAX_RETRY_AFTER;
use crate::engine::transaction::{Branch, ClientTransaction, TxTimer};
use crate::engine::transport::Transport;
use crate::engine::uri::{self, SipUri};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Source of randomness for branches, tags, Call-IDs, cnonces and jitter.
pub trait Entropy {
    /// A fresh random 64-bit value.
    fn next_u64(&mut self) -> u64;
}

/// A token written out on the stack: `N` hex digits of a value, and a suffix.
struct HexText {
    bytes: [u8; 48],
    len: usize,
}

impl HexText {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("hex digits and ASCII")
    }
}

/// `prefix`, the last `N` hex digits of `value` (lower case, zero-padded), then `suffix`
/// (prefix and suffix ASCII, at most `48 - N` bytes together).
fn hex_text<const N: usize>(prefix: &str, value: u128, suffix: &str) -> HexText {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut bytes = [0u8; 48];
    let p = prefix.len();
    bytes[..p].copy_from_slice(prefix.as_bytes());
    for (i, byte) in bytes[p..p + N].iter_mut().enumerate() {
        *byte = DIGITS[(value >> (4 * (N - 1 - i)) & 0xf) as usize];
    }
    bytes[p + N..p + N + suffix.len()].copy_from_slice(suffix.as_bytes());
    HexText {
        bytes,
        len: p + N + suffix.len(),
    }
}

/// The user part of a `sip:` or `sips:` AOR as written (`None` without one).
fn aor_user(aor: &str) -> Option<&str> {
    let rest = aor
        .strip_prefix("sip:")
        .or_else(|| aor.strip_prefix("sips:"))?;
    rest.split_once('@').map(|(user, _)| user)
}

/// A branch as sent: the magic cookie, then 16 hex digits.
fn branch_text(branch: Branch) -> HexText {
    hex_text::<16>("z9hG4bK", u128::from(branch.0), "")
}

/// Entries of a response, as owned strings.
fn owned_all(entries: &[std::borrow::Cow<'_, str>]) -> Vec<String> {
    entries.iter().map(|e| e.to_string()).collect()
}

/// A binding's Call-ID as sent.
fn call_id_text(call_id: u128) -> HexText {
    hex_text::<32>("", call_id, "@lanscape")
}

/// Settings of one binding.
#[derive(Debug, Clone)]
pub struct BindingConfig {
    /// User part of the AOR and of the Contact.
    pub user: Arc<str>,
    /// Address of record, e.g. `sip:alice@example.com`.
    pub aor: String,
    /// Request-URI, e.g. `sip:example.com`.
    pub request_uri: Arc<str>,
    /// Our SIP address: the Via sent-by and the first Contact.
    pub local: SocketAddr,
    /// Transport of every request (Via, Contact `transport` parameter, Timer E).
    pub transport: Transport,
    /// Route header value when registering through an outbound proxy.
    pub route: Option<Arc<str>>,
    /// Expiry asked of the registrar, seconds.
    pub expires: u32,
    /// Refresh interval (the update interval).
    pub refresh_interval: Duration,
    /// Timer F: how long one transaction may take.
    pub timeout: Duration,
    /// Whether to re-register with the address the registrar saw (RFC 3581).
    pub nat_detect: bool,
    /// Credentials for digest challenges.
    pub credentials: Arc<CredentialStore>,
    /// User-Agent header value.
    pub user_agent: Arc<str>,
    /// First retry delay after a failure; doubles per consecutive failure.
    pub retry_base: Duration,
    /// Longest retry delay (also bounded by the refresh interval).
    pub retry_max: Duration,
    /// The UA's instance (`urn:uuid:…`, RFC 5626 §4.1), sent as `+sip.instance` with
    /// `Supported: gruu` (RFC 5627); `None`: neither.
    pub instance: Option<Arc<str>>,
    /// SIP Outbound (RFC 5626): the `reg-id` of this flow, sent with `;ob` in the Contact
    /// and `Supported: outbound, path`; `None`: a plain registration. Needs `instance`.
    pub reg_id: Option<u32>,
    /// Whether the bindings sharing these settings (see [`Binding::new_sharing`]) answer
    /// the last challenge one of them received before being challenged themselves (RFC
    /// 2617 §3.3's preemptive Authorization, across names): a registration then takes one
    /// request instead of two. Sharing ends by itself at a registrar that refuses it.
    pub share_challenges: bool,
}

/// The settings the bindings of one call have in common, held once for all of them (see
/// [`Binding::new_sharing`]): 100,000 names then cost one copy, not 100,000.
#[derive(Debug)]
struct Shared {
    request_uri: Arc<str>,
    /// Whether `request_uri` is a valid SIP URI (checked once, for every binding sharing it).
    request_uri_valid: bool,
    local: SocketAddr,
    route: Option<Arc<str>>,
    expires: u32,
    refresh_interval: Duration,
    timeout: Duration,
    nat_detect: bool,
    user_agent: Arc<str>,
    retry_base: Duration,
    retry_max: Duration,
    instance: Option<Arc<str>>,
    /// The challenges these bindings share, when configured.
    board: Option<Mutex<ChallengeBoard>>,
}

impl Shared {
    fn of(config: &BindingConfig) -> Shared {
        Shared {
            request_uri: config.request_uri.clone(),
            request_uri_valid: SipUri::is_valid(&config.request_uri),
            local: config.local,
            route: config.route.clone(),
            expires: config.expires,
            refresh_interval: config.refresh_interval,
            timeout: config.timeout,
            nat_detect: config.nat_detect,
            user_agent: config.user_agent.clone(),
            retry_base: config.retry_base,
            retry_max: config.retry_max,
            instance: config.instance.clone(),
            board: config.share_challenges.then(Mutex::default),
        }
    }

    /// The challenge board, locked (never contended: one thread drives the bindings).
    fn board(&self) -> Option<std::sync::MutexGuard<'_, ChallengeBoard>> {
        let board = self.board.as_ref()?;
        Some(board.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether `config` has these settings (compared without building a copy).
    fn matches(&self, config: &BindingConfig) -> bool {
        *self.request_uri == *config.request_uri
            && self.local == config.local
            && self.route.as_deref() == config.route.as_deref()
            && self.expires == config.expires
            && self.refresh_interval == config.refresh_interval
            && self.timeout == config.timeout
            && self.nat_detect == config.nat_detect
            && *self.user_agent == *config.user_agent
            && self.retry_base == config.retry_base
            && self.retry_max == config.retry_max
            && self.instance.as_deref() == config.instance.as_deref()
            && self.board.is_some() == config.share_challenges
    }
}

/// The settings [`Binding::new_sharing`] shares between bindings, held by their creator.
#[derive(Debug)]
pub struct SharedSettings(Arc<Shared>);

/// What a binding knows about its registration, for the registration info query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistrationInfo {
    /// Status code and reason phrase of the last final response (0 and "" before any).
    pub last_status: u16,
    /// See `last_status`.
    pub last_reason: String,
    /// The expiry the registrar granted last, seconds.
    pub granted_expires: Option<u32>,
    /// When the next refresh is due, while registered.
    pub refresh_at: Option<Instant>,
    /// The contact URI registered (the public one after NAT detection).
    pub contact: String,
    /// GRUUs the registrar assigned to our contact (RFC 5627).
    pub pub_gruu: Option<String>,
    /// See `pub_gruu`.
    pub temp_gruu: Option<String>,
    /// Service-Route of the last 2xx (RFC 3608), the route of requests outside dialogs.
    pub service_route: Vec<String>,
    /// P-Associated-URI of the last 2xx (RFC 3455).
    pub associated_uris: Vec<String>,
    /// Path of the last 2xx (RFC 3327).
    pub path: Vec<String>,
    /// Whether the registrar takes part in SIP Outbound (its 2xx requires or supports
    /// `outbound`); `false` also after a 439 made the binding register without it.
    pub outbound: bool,
    /// Flow-Timer of the last 2xx (RFC 5626 §4.4.1), seconds.
    pub flow_timer: Option<u32>,
    /// Failures reported since the last success.
    pub consecutive_failures: u32,
}

/// What the info query shows, as a binding keeps it: small, and nothing allocated for
/// what is usually absent or the same for every binding.
#[derive(Debug, Default)]
struct Known {
    last_status: u16,
    /// `None` for "OK" (and before any response).
    last_reason: Option<Box<str>>,
    granted_expires: Option<u32>,
    /// The contact address registered last, when it is no longer the binding's contact
    /// (a NAT switch under way).
    registered_elsewhere: Option<Box<SocketAddr>>,
    outbound: bool,
    flow_timer: Option<u32>,
    /// GRUUs, Service-Route, P-Associated-URI and Path; `None` when all are empty.
    extras: Option<Box<Extras>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Extras {
    pub_gruu: Option<String>,
    temp_gruu: Option<String>,
    service_route: Vec<String>,
    associated_uris: Vec<String>,
    path: Vec<String>,
}

/// Why a registration attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No final response within the transaction timeout.
    TimedOut,
    /// The granted expiry passed before a refresh succeeded (no refresh could be sent in
    /// time, e.g. while the next hop's queue was full in an outage). Of the timeout's kind:
    /// the timeouts of the same outage are not reported again.
    Expired,
    /// Credentials missing or refused.
    AuthRejected,
    /// 423 could not be satisfied.
    IntervalRejected,
    /// A final error response.
    Rejected(u16),
    /// A 2xx that did not list our contact (twice).
    ContactMissing,
    /// The registrar's answer could not be understood (e.g. a broken challenge).
    Malformed(String),
    /// The request could not be built or sent.
    Local(String),
    /// The network says the next hop cannot be reached (ICMP port or host unreachable for
    /// a datagram): no answer will come, as with a timeout, only sooner.
    Unreachable(String),
    /// The connection to the next hop failed or closed (stream transports).
    Transport(String),
    /// The TLS handshake failed: the certificate is not trusted, does not match the SIP
    /// domain, or the server refused us.
    Tls(String),
}

impl Failure {
    /// Which kind of failure this is, without its details (a timeout and a lapsed grant
    /// are one kind: the same outage).
    pub fn kind(&self) -> u8 {
        match self {
            Failure::TimedOut | Failure::Expired => 0,
            Failure::AuthRejected => 1,
            Failure::IntervalRejected => 2,
            Failure::Rejected(_) => 3,
            Failure::ContactMissing => 4,
            Failure::Malformed(_) => 5,
            Failure::Local(_) => 6,
            Failure::Unreachable(_) => 7,
            Failure::Transport(_) => 8,
            Failure::Tls(_) => 9,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::TimedOut => write!(f, "no final response in time"),
            Failure::Expired => write!(f, "the registration expired before it was refreshed"),
            Failure::AuthRejected => write!(f, "credentials missing or refused"),
            Failure::IntervalRejected => write!(f, "the registrar refused the expiry (423)"),
            Failure::Rejected(status) => write!(f, "refused with {status}"),
            Failure::ContactMissing => write!(f, "the 2xx does not list our contact"),
            Failure::Malformed(why) => write!(f, "unusable answer: {why}"),
            Failure::Local(why) => write!(f, "could not send: {why}"),
            Failure::Transport(why) => write!(f, "connection failed: {why}"),
            Failure::Unreachable(why) => write!(f, "no answer: {why}"),
            Failure::Tls(why) => write!(f, "TLS failed: {why}"),
        }
    }
}

/// Something the owner of the binding should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingEvent {
    /// The registrar holds our contact for `expires` seconds.
    Registered {
        /// The contact address registered (public address after NAT detection).
        contact: SocketAddr,
        /// Expiry granted.
        expires: u32,
    },
    /// The binding is removed (or we gave up removing it while stopping).
    Unregistered,
    /// An attempt failed; a retry is scheduled unless the binding is stopping.
    Failed(Failure),
}

/// What an input asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a new request to the binding's next hop.
    Send(Vec<u8>),
    /// Send the request in flight again (Timer E).
    Retransmit(Vec<u8>),
    /// Deliver an event.
    Event(BindingEvent),
    /// The attempt failed at the current target in a way another target may not (no
    /// answer, a transport or TLS failure, 503, a Retry-After): the target is to be avoided
    /// (not contacted at all before `retry_after`, if any). When another target may be
    /// tried, the binding does so at once and the failure is not reported; otherwise a
    /// [`BindingEvent::Failed`] follows.
    TargetFailed {
        /// Why.
        failure: Failure,
        /// The Retry-After the target sent, if any.
        retry_after: Option<Duration>,
    },
    /// A 3xx named other places to register at (RFC 3261 §8.1.3.4): register there now.
    Redirect(Vec<SipUri>),
}

/// Public state of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingState {
    /// Not registered and nothing in flight.
    Unregistered,
    /// A REGISTER is in flight.
    Registering,
    /// Registered; a refresh is scheduled.
    Registered,
    /// A failure happened; a retry is scheduled.
    WaitingToRetry,
    /// The removing REGISTER is in flight.
    Unregistering,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    /// Remove the old contact, then register `new_contact`.
    RemoveOld {
        new_contact: SocketAddr,
    },
    Unregister,
}

#[derive(Debug)]
enum Phase {
    Idle,
    InFlight(Purpose, Box<ClientTransaction>),
    /// Registered (until [`Binding::registered_until`]); refreshed from `refresh_at`.
    Registered {
        refresh_at: Instant,
    },
    RetryWait {
        retry_at: Instant,
        after: Failure,
    },
    Done,
}

/// Per-attempt guards: each is reset when a new refresh or retry cycle begins.
#[derive(Debug, Default, Clone)]
struct Attempt {
    auth_rounds: u8,
    retried_interval: bool,
    retried_missing_contact: bool,
    nat_switches: u8,
    /// Retry-After of the last final response, bounded.
    retry_after: Option<Duration>,
}

/// RFC 5626 §4.5's base-time when every flow failed, and its max-time.
const OUTBOUND_BASE_TIME: Duration = Duration::from_secs(30);
const OUTBOUND_MAX_TIME: Duration = Duration::from_secs(1800);

/// Most targets tried one after the other (failovers and redirects) before a failure is
/// reported and the ordinary backoff applies; success starts the count again.
const MAX_FAILOVERS: u8 = 8;

/// A challenge to answer, and the count of answers to its nonce. (The flags are in the
/// variants: each binding keeps one for its whole life, in 40 bytes rather than 48.)
#[derive(Debug, Clone)]
enum AuthEntry {
    /// Answered by this binding alone.
    Own {
        challenge: Challenge,
        count: u32,
        /// Received during the current attempt: answering it again would be a loop.
        this_attempt: bool,
    },
    /// On the [`ChallengeBoard`]: answered by any of the bindings sharing it.
    Shared {
        nonce: Arc<SharedNonce>,
        /// As in `Own`.
        this_attempt: bool,
        /// Taken from the board before this binding was challenged itself, and not
        /// accepted by the registrar yet.
        adopted: bool,
    },
}

impl AuthEntry {
    fn challenge(&self) -> &Challenge {
        match self {
            AuthEntry::Own { challenge, .. } => challenge,
            AuthEntry::Shared { nonce, .. } => &nonce.challenge,
        }
    }

    fn this_attempt(&self) -> bool {
        match self {
            AuthEntry::Own { this_attempt, .. } | AuthEntry::Shared { this_attempt, .. } => {
                *this_attempt
            }
        }
    }

    fn adopted(&self) -> bool {
        matches!(self, AuthEntry::Shared { adopted: true, .. })
    }

    /// Whether the entry answers challenges like `challenge`: of the same kind and realm.
    fn is_for(&self, challenge: &Challenge) -> bool {
        let ours = self.challenge();
        ours.kind == challenge.kind && ours.realm() == challenge.realm()
    }

    /// A new attempt begins: the entry is answered preemptively from now on.
    fn make_preemptive(&mut self) {
        match self {
            AuthEntry::Own { this_attempt, .. } | AuthEntry::Shared { this_attempt, .. } => {
                *this_attempt = false;
            }
        }
    }

    /// The registrar accepted the answer to it.
    fn accepted(&mut self) {
        if let AuthEntry::Shared { adopted, .. } = self {
            *adopted = false;
        }
    }

    /// The nonce count of the next answer: one more than the last answer with this nonce
    /// from this binding, or from any binding when the nonce is shared (RFC 7616 §3.4: the
    /// count of requests the client sent with it).
    fn next_count(&mut self) -> u32 {
        match self {
            AuthEntry::Own { count, .. } => {
                *count = count.wrapping_add(1).max(1);
                *count
            }
            AuthEntry::Shared { nonce, .. } => nonce
                .count
                .fetch_add(1, Ordering::Relaxed)
                .wrapping_add(1)
                .max(1),
        }
    }
}

/// A challenge answered by several bindings, with one nonce count for all their answers.
#[derive(Debug)]
struct SharedNonce {
    challenge: Challenge,
    count: AtomicU32,
}

/// The challenges the bindings of one call share (`share_challenges`): the last ones any
/// of them received, answered by the others in their first request instead of waiting for
/// a challenge of their own. Registrars such as Kamailio, Asterisk and FreeSWITCH accept a
/// realm's nonce from any user of the realm; a registration then takes one request and
/// one response instead of two of each, for the client and for the registrar.
///
/// A registrar that does not accept one answers with a new challenge (or a 403), and the
/// binding answers a challenge of its own, which replaces the shared one. One refusal may
/// be about the binding's own credentials, or a nonce that just expired, so sharing ends
/// only when shared answers were refused [`MAX_SHARED_REFUSALS`] times more than they were
/// accepted (counting the refusals of the nonce on the board, not of one it replaced): at a
/// registrar that binds its nonces to one user or one Call-ID, after a few wasted
/// requests; each binding then waits for a challenge of its own as without sharing.
#[derive(Debug, Default)]
struct ChallengeBoard {
    nonces: Vec<Arc<SharedNonce>>,
    /// Answers to challenges taken from the board that the registrar accepted, and that it
    /// refused (a new challenge, stale or not, or a 403).
    accepted: u32,
    refused: u32,
    /// Nothing is shared any more.
    ended: bool,
}

/// How many more refusals than acceptances of shared answers end the sharing.
const MAX_SHARED_REFUSALS: u32 = 8;

impl ChallengeBoard {
    /// Puts `nonces` in the place of the challenges of their `kind`.
    fn publish(&mut self, kind: ChallengeKind, nonces: &[Arc<SharedNonce>]) {
        self.nonces.retain(|n| n.challenge.kind != kind);
        self.nonces.extend(nonces.iter().cloned());
    }

    /// Whether `entry` was taken from the board and is still on it: a refusal of an answer
    /// to it is news. (When many names answered one nonce that expired, the first refusal
    /// puts the new nonce on the board; the refusals of the others say nothing more.)
    fn holds(&self, entry: &AuthEntry) -> bool {
        match entry {
            AuthEntry::Shared {
                nonce,
                adopted: true,
                ..
            } => self.nonces.iter().any(|n| Arc::ptr_eq(n, nonce)),
            _ => false,
        }
    }

    /// An answer to a challenge taken from the board was accepted.
    fn accepted(&mut self) {
        self.accepted = self.accepted.saturating_add(1);
    }

    /// An answer to a challenge taken from the board was refused: sharing ends when that
    /// happens [`MAX_SHARED_REFUSALS`] times more often than the opposite.
    fn refused(&mut self) {
        self.refused = self.refused.saturating_add(1);
        if self.refused > self.accepted.saturating_add(MAX_SHARED_REFUSALS) {
            self.ended = true;
            self.nonces = Vec::new();
        }
    }
}

/// Most realms answered per kind of challenge (WWW and proxy): the first of those we
/// have credentials for, exact realms first.
const MAX_REALMS: usize = 4;
/// Most challenge rounds within one attempt (stale nonces included).
const MAX_AUTH_ROUNDS: u8 = 4;
/// Most contact changes from NAT detection within one attempt.
const MAX_NAT_SWITCHES: u8 = 2;

/// What was last reported: a failure counts by its kind, so that a retry failing the same
/// way (another status, another reason text) is not reported again.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reported {
    Registered,
    /// The failure's kind ([`Failure::kind`]).
    Failed(u8),
    Unregistered,
}

/// Where a binding's redirects (3xx) led.
#[derive(Debug, Default)]
struct Redirects {
    /// The Request-URI after a redirect (else the shared one).
    uri: Option<Box<str>>,
    /// Redirects followed since the last success, and where they led.
    followed: Vec<SipUri>,
}

/// One registration binding.
#[derive(Debug)]
pub struct Binding {
    /// What the bindings of one call have in common.
    shared: Arc<Shared>,
    aor: Box<str>,
    /// The user part of our Contact when it is not the AOR's (kept once otherwise).
    contact_user: Option<Arc<str>>,
    /// The transport of the next requests (the target's).
    transport: Transport,
    /// SIP Outbound's `reg-id` (RFC 5626), if configured.
    reg_id: Option<u32>,
    credentials: Arc<CredentialStore>,
    /// Where redirects led, once one came (boxed: most bindings never see one).
    redirects: Option<Box<Redirects>>,
    /// Call-ID (32 hex digits and `@lanscape`) and From tag (16 hex digits), written out
    /// where they are sent.
    call_id: u128,
    from_tag: u64,
    cseq: u32,
    contact: SocketAddr,
    expires: u32,
    phase: Phase,
    attempt: Attempt,
    auth: Vec<AuthEntry>,
    consecutive_failures: u32,
    reported: Option<Reported>,
    may_be_registered: bool,
    stopping: bool,
    /// See [`Binding::unconfirmed`].
    unconfirmed: bool,
    /// Until when the registrar holds our contact by its last grant, while registered (a
    /// refresh in flight included); `None` once a failure or the lapse was reported.
    registered_until: Option<Instant>,
    /// Whether the request in flight (or the last one sent) carried digest credentials.
    sent_credentials: bool,
    /// Whether another target may be tried now (the owner keeps it up to date).
    alternative: bool,
    /// Targets tried one after the other since the last success.
    failovers: u8,
    /// Whether requests use SIP Outbound (configured, and no 439 said otherwise).
    outbound: bool,
    /// What the registration info query shows.
    info: Known,
}

impl Binding {
    /// Creates an idle binding with a fresh Call-ID and From tag.
    #[cfg(any(test, feature = "testkit"))]
    pub fn new(config: BindingConfig, entropy: &mut dyn Entropy) -> Self {
        Binding::new_sharing(config, &mut None, entropy)
    }

    /// [`Binding::new`], sharing the settings held by `last` (the previous binding created)
    /// when they are the same, and leaving this binding's there otherwise: the names of one
    /// call then hold one copy of them.
    pub fn new_sharing(
        config: BindingConfig,
        last: &mut Option<SharedSettings>,
        entropy: &mut dyn Entropy,
    ) -> Self {
        let shared = match last {
            Some(SharedSettings(shared)) if shared.matches(&config) => shared.clone(),
            _ => {
                let shared = Arc::new(Shared::of(&config));
                *last = Some(SharedSettings(shared.clone()));
                shared
            }
        };
        let call_id = u128::from(entropy.next_u64()) << 64 | u128::from(entropy.next_u64());
        Binding {
            contact: config.local,
            expires: config.expires,
            call_id,
            from_tag: entropy.next_u64(),
            cseq: 0,
            phase: Phase::Idle,
            attempt: Attempt::default(),
            auth: Vec::new(),
            consecutive_failures: 0,
            reported: None,
            may_be_registered: false,
            unconfirmed: false,
            registered_until: None,
            stopping: false,
            sent_credentials: false,
            alternative: false,
            failovers: 0,
            outbound: config.reg_id.is_some() && config.instance.is_some(),
            info: Known::default(),
            shared,
            contact_user: (aor_user(&config.aor) != Some(&*config.user)).then_some(config.user),
            aor: config.aor.into(),
            transport: config.transport,
            reg_id: config.reg_id,
            credentials: config.credentials,
            redirects: None,
        }
    }

    /// Registers `contact` from now on; the info query shows the one registered until then.
    fn switch_contact(&mut self, contact: SocketAddr) {
        if self.info.granted_expires.is_some() && self.info.registered_elsewhere.is_none() {
            self.info.registered_elsewhere = Some(Box::new(self.contact));
        }
        self.contact = contact;
    }

    /// The user part of our Contact.
    fn user(&self) -> &str {
        match &self.contact_user {
            Some(user) => user,
            None => aor_user(&self.aor).unwrap_or_default(),
        }
    }

    /// Whether the binding is registered over a SIP Outbound flow the registrar confirmed,
    /// and the Flow-Timer it asked for: the flow's keep-alives are then due.
    pub fn outbound_flow(&self) -> Option<Option<u32>> {
        let registered = matches!(self.phase, Phase::Registered { .. } | Phase::InFlight(..));
        (self.outbound && self.info.outbound && registered).then_some(self.info.flow_timer)
    }

    /// What the binding knows about its registration.
    pub fn info(&self) -> RegistrationInfo {
        let known = &self.info;
        let extras = known.extras.as_deref();
        let extra = |f: fn(&Extras) -> &Vec<String>| extras.map(f).cloned().unwrap_or_default();
        RegistrationInfo {
            last_status: known.last_status,
            last_reason: match (&known.last_reason, known.last_status) {
                (Some(reason), _) => reason.to_string(),
                (None, 0) => String::new(),
                (None, _) => "OK".into(),
            },
            granted_expires: known.granted_expires,
            refresh_at: match self.phase {
                Phase::Registered { refresh_at } => Some(refresh_at),
                _ => None,
            },
            contact: self.contact_uri(
                known
                    .registered_elsewhere
                    .as_deref()
                    .copied()
                    .unwrap_or(self.contact),
            ),
            pub_gruu: extras.and_then(|e| e.pub_gruu.clone()),
            temp_gruu: extras.and_then(|e| e.temp_gruu.clone()),
            service_route: extra(|e| &e.service_route),
            associated_uris: extra(|e| &e.associated_uris),
            path: extra(|e| &e.path),
            outbound: known.outbound,
            flow_timer: known.flow_timer,
            consecutive_failures: self.consecutive_failures,
        }
    }

    /// The Call-ID, stable for the binding's life (for the fuzz target's responses).
    #[cfg(feature = "testkit")]
    pub fn call_id(&self) -> String {
        call_id_text(self.call_id).as_str().to_string()
    }

    /// The CSeq number of the latest request (for the fuzz target's responses).
    #[cfg(feature = "testkit")]
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// The branch of the transaction in flight, which responses must match.
    pub fn branch(&self) -> Option<Branch> {
        match &self.phase {
            Phase::InFlight(_, tx) => Some(tx.branch()),
            _ => None,
        }
    }

    /// An answer to the transaction in flight arrived but could not be read (see
    /// [`ClientTransaction::note_unreadable`]).
    pub fn note_unreadable(&mut self, why: &str) {
        if let Phase::InFlight(_, tx) = &mut self.phase {
            tx.note_unreadable(why);
        }
    }

    /// Whether it ended without the registrar confirming the removal of its contact (the
    /// removal failed, timed out or could not be sent): the registrar drops it when it
    /// expires.
    pub fn unconfirmed(&self) -> bool {
        self.unconfirmed
    }

    /// The AOR registered.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// A stop bounded from `started` to `deadline`: the removal in flight ends at the
    /// deadline (its Timer F moved there), and a request the removal waits for ends by the
    /// middle of the time at the latest, leaving the removal the rest.
    pub fn bound_stop(&mut self, started: Instant, deadline: Instant) {
        if let Phase::InFlight(purpose, tx) = &mut self.phase {
            match purpose {
                Purpose::Unregister => tx.end_at(deadline),
                _ => {
                    let middle = started + (deadline.saturating_duration_since(started)) / 2;
                    if tx.deadline() > middle {
                        tx.end_at(middle);
                    }
                }
            }
        }
    }

    /// Public state.
    pub fn state(&self) -> BindingState {
        match &self.phase {
            Phase::Idle | Phase::Done => BindingState::Unregistered,
            Phase::InFlight(Purpose::Unregister, _) => BindingState::Unregistering,
            // A refresh in flight: still registered until the grant lapses.
            Phase::InFlight(Purpose::Register, _) if self.registered_until.is_some() => {
                BindingState::Registered
            }
            Phase::InFlight(..) => BindingState::Registering,
            Phase::Registered { .. } => BindingState::Registered,
            Phase::RetryWait { .. } => BindingState::WaitingToRetry,
        }
    }

    /// Whether the binding has finished unregistering after `stop`.
    pub fn is_done(&self) -> bool {
        matches!(self.phase, Phase::Done)
    }

    /// When the registration lapses unless refreshed: the granted expiry, while
    /// registered (a refresh in flight included).
    pub fn expires_at(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Registered { .. } | Phase::InFlight(Purpose::Register, _) => {
                self.registered_until
            }
            _ => None,
        }
    }

    /// The granted expiry has passed without a successful refresh (its refresh waited for
    /// its turn, was deferred, or is still without an answer): the binding is no longer
    /// registered and says so once ([`Failure::Expired`]). A refresh waiting becomes a
    /// retry, due when the refresh was; one in flight goes on.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Output>) {
        if self.expires_at().is_none_or(|at| now < at) {
            return;
        }
        self.registered_until = None;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        if let Phase::Registered { refresh_at } = self.phase {
            self.phase = Phase::RetryWait {
                retry_at: refresh_at,
                after: Failure::Expired,
            };
        }
        self.report(
            Reported::Failed(Failure::Expired.kind()),
            BindingEvent::Failed(Failure::Expired),
            out,
        );
    }

    /// When `on_timer` must next be called.
    pub fn next_deadline(&self) -> Option<Instant> {
        let own = match &self.phase {
            Phase::InFlight(_, tx) => tx.next_deadline(),
            Phase::Registered { refresh_at } => Some(*refresh_at),
            Phase::RetryWait { retry_at, .. } => return Some(*retry_at),
            Phase::Idle | Phase::Done => return None,
        };
        // While registered (a refresh in flight included), the grant's end is due too.
        [own, self.expires_at()].into_iter().flatten().min()
    }

    /// Failures reported since the last success (failovers to another target not counted).
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// Tells the binding whether another target may be tried now: a failure that another
    /// target may not have is then tried elsewhere at once, not reported.
    pub fn set_alternative(&mut self, available: bool) {
        self.alternative = available;
    }

    /// The transport of the next requests (the target chosen may use another one).
    pub fn set_transport(&mut self, transport: Transport) {
        self.transport = transport;
    }

    /// The Request-URI of the next requests (a redirect names another registrar).
    pub fn set_request_uri(&mut self, uri: String) {
        self.redirects.get_or_insert_default().uri = Some(uri.into());
    }

    /// The Request-URI in use.
    pub fn request_uri(&self) -> &str {
        self.redirects
            .as_ref()
            .and_then(|r| r.uri.as_deref())
            .unwrap_or(&self.shared.request_uri)
    }

    /// Forgets the redirects followed (not the Request-URI they led to).
    fn forget_redirects_followed(&mut self) {
        if let Some(redirects) = &mut self.redirects {
            redirects.followed = Vec::new();
            if redirects.uri.is_none() {
                self.redirects = None;
            }
        }
    }

    /// No new request before `until` (every target asked so with Retry-After): a binding
    /// not yet started, waiting or registered waits at least until then.
    pub fn defer(&mut self, until: Instant) {
        match &mut self.phase {
            Phase::Idle => {
                self.phase = Phase::RetryWait {
                    retry_at: until,
                    after: Failure::Rejected(503),
                }
            }
            Phase::RetryWait { retry_at, .. } => *retry_at = (*retry_at).max(until),
            Phase::Registered { refresh_at, .. } => *refresh_at = (*refresh_at).max(until),
            Phase::InFlight(..) | Phase::Done => {}
        }
    }

    /// The attempt in flight (or the one about to start) cannot go on: `failure` ends it
    /// (a redirect that cannot be followed).
    pub fn fail(
        &mut self,
        failure: Failure,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        let purpose = match &self.phase {
            Phase::InFlight(purpose, _) => *purpose,
            _ => Purpose::Register,
        };
        self.alternative = false;
        self.fail_or_finish(purpose, failure, now, entropy, out);
    }

    /// Sends the first REGISTER.
    pub fn start(&mut self, now: Instant, entropy: &mut dyn Entropy, out: &mut Vec<Output>) {
        if matches!(self.phase, Phase::Idle) && !self.stopping {
            self.begin_attempt(now, entropy, out);
        }
    }

    /// Unregisters (Expires: 0) if a binding may exist at the registrar, else ends at once.
    ///
    /// A request in flight is let finish first (RFC 3261 §10.2: no new REGISTER before the
    /// previous one has its final response or timed out; a refresh overtaken by the removal
    /// could otherwise arrive after it and register the contact again).
    pub fn stop(&mut self, now: Instant, entropy: &mut dyn Entropy, out: &mut Vec<Output>) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        if matches!(self.phase, Phase::InFlight(purpose, _) if purpose != Purpose::Unregister) {
            return;
        }
        self.unregister_now(now, entropy, out);
    }

    /// Sends the removal if the registrar may hold our contact, else ends.
    fn unregister_now(&mut self, now: Instant, entropy: &mut dyn Entropy, out: &mut Vec<Output>) {
        if self.may_be_registered {
            self.attempt = Attempt::default();
            self.mark_auth_preemptive();
            self.send(Purpose::Unregister, now, entropy, out);
        } else {
            self.finish_unregistered(out);
        }
    }

    /// Replaces the credentials. A binding waiting after an authorization failure becomes due
    /// at `now`: its owner runs the retry through the same admission as every other request
    /// (see [`Binding::next_deadline`]), so new credentials never start a burst.
    pub fn set_credentials(&mut self, credentials: Arc<CredentialStore>, now: Instant) {
        self.credentials = credentials;
        if let Phase::RetryWait {
            retry_at,
            after: Failure::AuthRejected,
        } = &mut self.phase
        {
            *retry_at = now.min(*retry_at);
        }
    }

    /// The connection the binding's requests went over failed or closed: a transaction in
    /// flight on it fails now with `failure`. A registered binding registers again over a
    /// new connection at `reregister_at` (the owner spreads those, and paces them).
    pub fn connection_lost(
        &mut self,
        failure: Failure,
        now: Instant,
        reregister_at: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        match &mut self.phase {
            Phase::InFlight(purpose, _) => {
                let purpose = *purpose;
                self.fail_or_finish(purpose, failure, now, entropy, out);
            }
            Phase::Registered { refresh_at, .. } => *refresh_at = (*refresh_at).min(reregister_at),
            Phase::Idle | Phase::RetryWait { .. } | Phase::Done => {}
        }
    }

    /// Advances timers to `now`.
    pub fn on_timer(&mut self, now: Instant, entropy: &mut dyn Entropy, out: &mut Vec<Output>) {
        if matches!(self.phase, Phase::InFlight(..)) {
            // A refresh still without an answer when the grant lapses: no longer registered.
            self.expire(now, out);
        }
        match &mut self.phase {
            Phase::InFlight(purpose, tx) => {
                let purpose = *purpose;
                match tx.on_timer(now) {
                    TxTimer::Idle => {}
                    TxTimer::Retransmit => out.push(Output::Retransmit(tx.request().to_vec())),
                    TxTimer::TimedOut => {
                        let failure = match tx.unreadable() {
                            Some(why) => Failure::Malformed(format!(
                                "only unreadable ones in time (the last: {why})"
                            )),
                            None => Failure::TimedOut,
                        };
                        self.fail_or_finish(purpose, failure, now, entropy, out)
                    }
                }
            }
            Phase::Registered { .. } if self.registered_until.is_some_and(|at| now >= at) => {
                self.expire(now, out);
                if self.next_deadline().is_some_and(|at| at <= now) {
                    self.begin_attempt(now, entropy, out)
                }
            }
            Phase::Registered { refresh_at } if now >= *refresh_at => {
                self.begin_attempt(now, entropy, out)
            }
            Phase::RetryWait { retry_at, .. } if now >= *retry_at => {
                self.begin_attempt(now, entropy, out)
            }
            _ => {}
        }
    }

    /// Handles a response whose top Via branch matched [`Binding::branch`].
    ///
    /// Returns `false` (and changes nothing) when the Call-ID or CSeq does not match.
    pub fn on_response(
        &mut self,
        response: &ResponseInfo,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) -> bool {
        let Phase::InFlight(purpose, tx) = &mut self.phase else {
            return false;
        };
        if Branch::parse(&response.branch) != Some(tx.branch())
            || response.call_id != call_id_text(self.call_id).as_str()
            || response.cseq != self.cseq
            || !response.cseq_method.eq_ignore_ascii_case("REGISTER")
        {
            return false;
        }
        let purpose = *purpose;
        if !tx.on_response(response.status, now) {
            return true; // provisional
        }
        self.attempt.retry_after = response
            .retry_after
            .map(|s| Duration::from_secs(u64::from(s)).min(MAX_RETRY_AFTER));
        self.info.last_status = response.status;
        self.info.last_reason = (response.reason != "OK").then(|| (*response.reason).into());
        if self.stopping && purpose != Purpose::Unregister {
            // The request the removal waited for has its answer: the removal goes now (a
            // challenge is answered by the removal itself).
            match response.status {
                401 | 407 => self.on_challenge(Purpose::Unregister, response, now, entropy, out),
                _ => self.unregister_now(now, entropy, out),
            }
            return true;
        }
        match response.status {
            200..=299 => self.on_success(purpose, response, now, entropy, out),
            300..=399 if purpose == Purpose::Register => {
                self.on_redirect(response, now, entropy, out)
            }
            401 | 407 => self.on_challenge(purpose, response, now, entropy, out),
            // 439 First Hop Lacks Outbound Support (RFC 5626 §11.6): register without it.
            439 if self.outbound => {
                self.outbound = false;
                self.send(purpose, now, entropy, out);
            }
            423 if purpose == Purpose::Register => match response.min_expires {
                Some(min) if min > self.expires && !self.attempt.retried_interval => {
                    self.attempt.retried_interval = true;
                    self.expires = min;
                    self.send(purpose, now, entropy, out);
                }
                _ => self.fail_or_finish(purpose, Failure::IntervalRejected, now, entropy, out),
            },
            // A 403 to our digest answer refuses the credentials (many registrars answer so
            // instead of challenging again); RFC 3261 §21.4.4: do not repeat it as it was.
            // A 403 to a shared challenge's answer may refuse the sharing, not the
            // credentials: the request goes again without an answer.
            403 if self.sent_credentials && self.auth.iter().any(AuthEntry::adopted) => {
                if let Some(mut board) = self.shared.board()
                    && self.auth.iter().any(|a| board.holds(a))
                {
                    board.refused();
                }
                self.auth.clear();
                self.send(purpose, now, entropy, out);
            }
            403 if self.sent_credentials => {
                self.auth.clear();
                self.fail_or_finish(purpose, Failure::AuthRejected, now, entropy, out)
            }
            status => self.fail_or_finish(purpose, Failure::Rejected(status), now, entropy, out),
        }
        true
    }

    fn on_success(
        &mut self,
        purpose: Purpose,
        response: &ResponseInfo,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        if self.sent_credentials && self.auth.iter().any(AuthEntry::adopted) {
            // The registrar took the shared answers: a later refusal is about this binding.
            if let Some(mut board) = self.shared.board() {
                board.accepted();
            }
            for entry in &mut self.auth {
                entry.accepted();
            }
        }
        match purpose {
            Purpose::Unregister => self.finish_unregistered(out),
            Purpose::RemoveOld { new_contact } => {
                self.switch_contact(new_contact);
                self.send(Purpose::Register, now, entropy, out);
            }
            Purpose::Register => {
                let observed = self.observed_address(response);
                let ours = self.find_contact(response, self.contact);
                if let Some(public) = observed.filter(|&o| o != self.contact)
                    && self.attempt.nat_switches < MAX_NAT_SWITCHES
                {
                    self.attempt.nat_switches += 1;
                    // The contact the grant was for is being replaced: until the new one is
                    // registered, nothing of ours is (the old one is removed, or was never
                    // listed).
                    self.registered_until = None;
                    if ours.is_some() {
                        self.send(
                            Purpose::RemoveOld {
                                new_contact: public,
                            },
                            now,
                            entropy,
                            out,
                        );
                    } else {
                        self.switch_contact(public);
                        self.send(Purpose::Register, now, entropy, out);
                    }
                    return;
                }
                // A registrar that fixes NAT itself lists the address it saw.
                let listed = ours.or_else(|| observed.and_then(|o| self.find_contact(response, o)));
                let granted =
                    listed.and_then(|c| c.expires.or(response.expires).or(Some(self.expires)));
                match granted {
                    Some(expires) if expires > 0 => {
                        let contact = listed.expect("granted comes from a listed contact");
                        self.info.granted_expires = Some(expires);
                        self.info.registered_elsewhere = None;
                        let extras = Extras {
                            pub_gruu: contact.pub_gruu.as_deref().map(str::to_string),
                            temp_gruu: contact.temp_gruu.as_deref().map(str::to_string),
                            service_route: owned_all(&response.service_route),
                            associated_uris: owned_all(&response.associated_uris),
                            path: owned_all(&response.path),
                        };
                        self.info.extras = (extras != Extras::default()).then(|| Box::new(extras));
                        self.info.outbound = self.outbound
                            && response
                                .option_tags
                                .iter()
                                .any(|t| t.eq_ignore_ascii_case("outbound"));
                        self.info.flow_timer = response.flow_timer;
                        self.consecutive_failures = 0;
                        self.failovers = 0;
                        self.forget_redirects_followed();
                        // At a random point of 80-95 % of the interval (or of the granted
                        // expiry, if shorter), so that names registered together do not
                        // all refresh together. The first refresh after registering (at
                        // start, or again after a failure) draws from 30-95 %: names
                        // registered in one burst spread over most of an interval at once
                        // (the load benchmark measures the spread).
                        let first = self.reported != Some(Reported::Registered);
                        let permille = match first {
                            true => 300 + entropy.next_u64() % 651,
                            false => 800 + entropy.next_u64() % 151,
                        };
                        let refresh = self
                            .shared
                            .refresh_interval
                            .min(Duration::from_secs(u64::from(expires)))
                            .mul_f64(permille as f64 / 1000.0)
                            .max(Duration::from_millis(500));
                        self.phase = Phase::Registered {
                            refresh_at: now + refresh,
                        };
                        self.registered_until = Some(now + Duration::from_secs(u64::from(expires)));
                        self.report(
                            Reported::Registered,
                            BindingEvent::Registered {
                                contact: self.contact,
                                expires,
                            },
                            out,
                        );
                    }
                    _ if !self.attempt.retried_missing_contact => {
                        self.attempt.retried_missing_contact = true;
                        self.send(Purpose::Register, now, entropy, out);
                    }
                    _ => self.fail_or_finish(purpose, Failure::ContactMissing, now, entropy, out),
                }
            }
        }
    }

    /// A 3xx: register at the places its Contact names, unless they were all tried since
    /// the last success (a loop) or too many redirects were followed.
    fn on_redirect(
        &mut self,
        response: &ResponseInfo,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        let followed: &[SipUri] = self.redirects.as_ref().map_or(&[], |r| &r.followed);
        let fresh: Vec<SipUri> = response
            .contacts
            .iter()
            .map(|c| c.uri.clone())
            .filter(|u| !followed.contains(u))
            .collect();
        if fresh.is_empty() || followed.len() >= usize::from(MAX_FAILOVERS) {
            let failure = Failure::Rejected(response.status);
            return self.fail_or_finish(Purpose::Register, failure, now, entropy, out);
        }
        let redirects = self.redirects.get_or_insert_default();
        redirects.followed.extend(fresh.iter().cloned());
        self.phase = Phase::RetryWait {
            retry_at: now,
            after: Failure::Rejected(response.status),
        };
        out.push(Output::Redirect(fresh));
    }

    fn on_challenge(
        &mut self,
        purpose: Purpose,
        response: &ResponseInfo,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        let wanted = if response.status == 401 {
            ChallengeKind::Www
        } else {
            ChallengeKind::Proxy
        };
        let mut parsed = Vec::new();
        let mut last_error = None;
        for (kind, value) in &response.challenges {
            if *kind == wanted {
                match digest::parse_challenge(*kind, value) {
                    Ok(c) => parsed.push(c),
                    Err(e) => last_error = Some(e),
                }
            }
        }
        if parsed.is_empty() {
            let why = match last_error {
                Some(e) => format!("unusable challenge: {e:?}"),
                None => format!("{} without a challenge", response.status),
            };
            return self.fail_or_finish(purpose, Failure::Malformed(why), now, entropy, out);
        }
        self.attempt.auth_rounds += 1;
        if self.attempt.auth_rounds > MAX_AUTH_ROUNDS {
            return self.fail_or_finish(purpose, Failure::AuthRejected, now, entropy, out);
        }
        // Only the challenges of this response are answered from now on (those of the
        // other kind stay: a proxy's and a registrar's are both needed), and only for
        // realms we have credentials for, exact ones first, at most MAX_REALMS of them: a
        // registrar naming a new realm in every challenge cannot make the request grow.
        let mut answerable = digest::strongest_per_realm(parsed);
        answerable.retain(|c| self.credentials.find(c.realm()).is_some());
        answerable.sort_by_key(|c| !self.credentials.has_exact(c.realm()));
        answerable.truncate(MAX_REALMS);
        if answerable.is_empty() {
            return self.fail_or_finish(purpose, Failure::AuthRejected, now, entropy, out);
        }
        let refused = answerable.iter().any(|challenge| {
            !challenge.stale
                && self
                    .auth
                    .iter()
                    .any(|a| a.this_attempt() && a.is_for(challenge))
        });
        if refused {
            // We answered a challenge of this attempt and were refused: wrong credentials.
            return self.fail_or_finish(purpose, Failure::AuthRejected, now, entropy, out);
        }
        let mut board = self.shared.board();
        if let Some(board) = board.as_mut() {
            let shared_refused = self.sent_credentials
                && answerable.iter().any(|challenge| {
                    self.auth
                        .iter()
                        .any(|a| board.holds(a) && a.is_for(challenge))
                });
            if shared_refused {
                board.refused();
            }
        }
        self.auth.retain(|a| a.challenge().kind != wanted);
        // Room for exactly these: each binding keeps its challenges for its whole life.
        self.auth.reserve_exact(answerable.len());
        match board.as_mut().filter(|b| !b.ended) {
            Some(board) => {
                let nonces: Vec<_> = answerable
                    .into_iter()
                    .map(|challenge| {
                        Arc::new(SharedNonce {
                            challenge,
                            count: AtomicU32::new(0),
                        })
                    })
                    .collect();
                board.publish(wanted, &nonces);
                self.auth
                    .extend(nonces.into_iter().map(|nonce| AuthEntry::Shared {
                        nonce,
                        this_attempt: true,
                        adopted: false,
                    }));
            }
            None => self
                .auth
                .extend(answerable.into_iter().map(|challenge| AuthEntry::Own {
                    challenge,
                    count: 0,
                    this_attempt: true,
                })),
        }
        drop(board);
        self.send(purpose, now, entropy, out);
    }

    /// The address the registrar saw us at, when NAT detection is on and it told us.
    fn observed_address(&self, response: &ResponseInfo) -> Option<SocketAddr> {
        if !self.shared.nat_detect || (response.received.is_none() && response.rport.is_none()) {
            return None;
        }
        if self.transport.is_stream() {
            // Over a connection the registrar reaches us through that connection; the
            // source port it saw is the connection's, not one we listen on.
            return None;
        }
        // An address of the other family cannot be ours: a socket of one family was seen.
        let received = response
            .received
            .filter(|ip| ip.is_ipv4() == self.contact.is_ipv4());
        if received.is_none() && response.rport.is_none() {
            return None;
        }
        Some(SocketAddr::new(
            received.unwrap_or(self.contact.ip()),
            response.rport.unwrap_or(self.contact.port()),
        ))
    }

    /// Our contact among those a 2xx lists: by `+sip.instance` (and `reg-id` with
    /// Outbound) when we sent an instance, else by URI equivalence (RFC 3261 §19.1.4) with
    /// the contact we would register from `addr`.
    fn find_contact<'r>(
        &self,
        response: &'r ResponseInfo<'_>,
        addr: SocketAddr,
    ) -> Option<&'r message::ContactInfo<'r>> {
        if let Some(instance) = &self.shared.instance {
            let by_instance = response.contacts.iter().find(|c| {
                c.instance
                    .as_deref()
                    .is_some_and(|i| same_instance(i, instance))
                    && (!self.outbound || c.reg_id == self.reg_id)
            });
            if by_instance.is_some() {
                return by_instance;
            }
        }
        let ours = self.contact_uri(addr);
        // Registrars mostly echo the URI as sent: the full comparison only when not.
        response
            .contacts
            .iter()
            .find(|c| c.raw == ours || uri::equivalent(&c.raw, &ours))
    }

    fn begin_attempt(&mut self, now: Instant, entropy: &mut dyn Entropy, out: &mut Vec<Output>) {
        self.attempt = Attempt::default();
        self.mark_auth_preemptive();
        if self.auth.is_empty() {
            self.adopt_shared_challenges();
        }
        self.send(Purpose::Register, now, entropy, out);
    }

    /// Takes the challenges on the board this binding has credentials for (see
    /// [`ChallengeBoard`]), to answer them in its first request.
    fn adopt_shared_challenges(&mut self) {
        let Some(board) = self.shared.board() else {
            return;
        };
        if board.ended {
            return;
        }
        let usable = |n: &&Arc<SharedNonce>| self.credentials.find(n.challenge.realm()).is_some();
        let count = board.nonces.iter().filter(usable).count();
        if count == 0 {
            return;
        }
        self.auth.reserve_exact(count);
        self.auth.extend(
            board
                .nonces
                .iter()
                .filter(usable)
                .map(|n| AuthEntry::Shared {
                    nonce: n.clone(),
                    this_attempt: false,
                    adopted: true,
                }),
        );
    }

    fn mark_auth_preemptive(&mut self) {
        for entry in &mut self.auth {
            entry.make_preemptive();
        }
    }

    fn send(
        &mut self,
        purpose: Purpose,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let branch = Branch(entropy.next_u64());
        let branch_text = branch_text(branch);
        let (contact, expires) = match purpose {
            Purpose::Register => (self.contact_value(None), self.expires),
            Purpose::RemoveOld { .. } | Purpose::Unregister => (self.contact_value(Some(0)), 0),
        };
        let supported = match (&self.shared.instance, self.outbound) {
            (Some(_), true) => Some("outbound, path, gruu"),
            (Some(_), false) => Some("path, gruu"),
            (None, _) => None,
        };
        // A redirect's Request-URI is checked with each request (redirects are rare).
        let (request_uri, checked) = match self.redirects.as_ref().and_then(|r| r.uri.as_deref()) {
            Some(uri) => (uri, false),
            None => (&*self.shared.request_uri, self.shared.request_uri_valid),
        };
        let mut authorization = Vec::with_capacity(self.auth.len());
        for entry in &mut self.auth {
            let Some(credential) = self.credentials.find(entry.challenge().realm()) else {
                continue;
            };
            let nonce_count = entry.next_count();
            let cnonce = hex_text::<16>("", u128::from(entropy.next_u64()), "");
            let cnonce = cnonce.as_str();
            let challenge = entry.challenge();
            let value = digest::answer(
                challenge,
                credential,
                &AnswerInput {
                    method: "REGISTER",
                    uri: request_uri,
                    nonce_count,
                    cnonce,
                    body: b"",
                },
            );
            authorization.push((challenge.kind.answer_header(), value));
        }
        self.sent_credentials = !authorization.is_empty();
        let build = match checked {
            true => message::write_register,
            false => message::build_register,
        };
        let built = build(&message::RegisterRequest {
            request_uri,
            aor: &self.aor,
            from_tag: hex_text::<16>("", u128::from(self.from_tag), "").as_str(),
            call_id: call_id_text(self.call_id).as_str(),
            cseq: self.cseq,
            branch: branch_text.as_str(),
            transport: self.transport,
            sent_by: self.shared.local,
            contact: &contact,
            expires,
            route: self.shared.route.as_deref(),
            authorization: &authorization,
            user_agent: &self.shared.user_agent,
            supported,
        });
        match built {
            Ok(bytes) => {
                if purpose == Purpose::Register {
                    self.may_be_registered = true;
                }
                out.push(Output::Send(bytes.clone()));
                let tx = ClientTransaction::start(
                    branch,
                    bytes,
                    now,
                    self.shared.timeout,
                    self.transport.is_stream(),
                );
                self.phase = Phase::InFlight(purpose, Box::new(tx));
            }
            Err(e) => {
                // The next attempt starts without the challenges that made it so (a fresh
                // one, answered within the bounds, or a clear failure again).
                self.auth.clear();
                self.fail_or_finish(purpose, Failure::Local(e.0), now, entropy, out)
            }
        }
    }

    fn contact_uri(&self, addr: SocketAddr) -> String {
        let mut uri = String::with_capacity(64);
        self.write_contact_uri(&mut uri, addr);
        uri
    }

    /// Writes our contact URI at `addr` (the SIP URI of `SipUri`'s form, written straight
    /// into `out`).
    fn write_contact_uri(&self, out: &mut String, addr: SocketAddr) {
        out.push_str("sip:");
        out.push_str(self.user());
        out.push('@');
        uri::push_host_port(out, addr);
        if self.transport.is_stream() {
            out.push_str(";transport=");
            out.push_str(self.transport.param());
        }
        // RFC 5626: the flow's contact carries `ob`.
        if self.outbound {
            out.push_str(";ob");
        }
    }

    /// The Contact header value of our contact now, with its `expires` if given.
    fn contact_value(&self, expires: Option<u32>) -> String {
        use std::fmt::Write as _;
        let mut value = String::with_capacity(160);
        value.push('<');
        self.write_contact_uri(&mut value, self.contact);
        value.push('>');
        if let Some(instance) = &self.shared.instance {
            let _ = write!(value, ";+sip.instance=\"<{instance}>\"");
            if let (true, Some(reg_id)) = (self.outbound, self.reg_id) {
                let _ = write!(value, ";reg-id={reg_id}");
            }
        }
        if let Some(expires) = expires {
            let _ = write!(value, ";expires={expires}");
        }
        value
    }

    /// A failed attempt: schedule a retry (or end, when unregistering).
    fn fail_or_finish(
        &mut self,
        purpose: Purpose,
        failure: Failure,
        now: Instant,
        entropy: &mut dyn Entropy,
        out: &mut Vec<Output>,
    ) {
        if self.stopping && purpose != Purpose::Unregister {
            // The request the removal waited for failed: the removal goes now.
            return self.unregister_now(now, entropy, out);
        }
        if purpose == Purpose::Unregister || self.stopping {
            // Ended without a 2xx to a removal: the registrar may still hold the contact.
            self.unconfirmed = self.may_be_registered;
            return self.finish_unregistered(out);
        }
        let retry_after = self.attempt.retry_after;
        let elsewhere = matches!(
            failure,
            Failure::TimedOut
                | Failure::Unreachable(_)
                | Failure::Transport(_)
                | Failure::Tls(_)
                | Failure::Rejected(503)
        ) || retry_after.is_some();
        if elsewhere {
            out.push(Output::TargetFailed {
                failure: failure.clone(),
                retry_after,
            });
            if self.alternative && self.failovers < MAX_FAILOVERS {
                self.failovers += 1;
                self.phase = Phase::RetryWait {
                    retry_at: now,
                    after: failure,
                };
                return;
            }
        }
        // Every target failed (or none other may be tried): the next round of retries may
        // go through them all again, redirects included.
        self.failovers = 0;
        self.forget_redirects_followed();
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        // Reported as failed: not registered as far as we know, whatever grant is left.
        self.registered_until = None;
        let delay = self.retry_delay(&failure, entropy);
        self.phase = Phase::RetryWait {
            retry_at: now + delay,
            after: failure.clone(),
        };
        self.report(
            Reported::Failed(failure.kind()),
            BindingEvent::Failed(failure),
            out,
        );
    }

    /// Jittered exponential backoff. Refused credentials and a refused interval wait a whole
    /// update interval (up to 10 % more, never less): repeating them sooner cannot help
    /// (RFC 3261 §21.4.4) and may lock the account. New credentials end that wait at once.
    fn retry_delay(&self, failure: &Failure, entropy: &mut dyn Entropy) -> Duration {
        if matches!(failure, Failure::AuthRejected | Failure::IntervalRejected) {
            let permille = 1000 + entropy.next_u64() % 101;
            return self
                .shared
                .refresh_interval
                .mul_f64(permille as f64 / 1000.0);
        }
        let shift = (self.consecutive_failures.saturating_sub(1)).min(16);
        let full = if self.outbound {
            // RFC 5626 §4.5: a flow that keeps failing is formed again after
            // min(max-time, base-time * 2^failures), base-time 30 s (its only flow failed),
            // max-time 1800 s.
            OUTBOUND_BASE_TIME
                .saturating_mul(1 << shift)
                .min(OUTBOUND_MAX_TIME)
        } else {
            let cap = self
                .shared
                .retry_max
                .min(self.shared.refresh_interval)
                .max(self.shared.retry_base);
            self.shared.retry_base.saturating_mul(1 << shift).min(cap)
        };
        // 50% to 100% of the full delay, so that many bindings do not retry together.
        let permille = 500 + entropy.next_u64() % 501;
        let backoff = full.mul_f64(permille as f64 / 1000.0);
        // Never sooner than the registrar's Retry-After (RFC 3261 §20.33).
        backoff.max(self.attempt.retry_after.unwrap_or_default())
    }

    fn finish_unregistered(&mut self, out: &mut Vec<Output>) {
        self.registered_until = None;
        self.phase = Phase::Done;
        self.may_be_registered = false;
        self.report(Reported::Unregistered, BindingEvent::Unregistered, out);
    }

    fn report(&mut self, what: Reported, event: BindingEvent, out: &mut Vec<Output>) {
        if self.reported.as_ref() != Some(&what) {
            self.reported = Some(what);
            out.push(Output::Event(event));
        }
    }
}

/// Whether two `+sip.instance` values name the same instance: the URN inside the angle
/// brackets, compared without regard to case (RFC 5626 §4.1, RFC 4122 UUIDs).
fn same_instance(listed: &str, ours: &str) -> bool {
    fn urn(s: &str) -> &str {
        s.trim()
            .trim_matches('"')
            .trim_start_matches('<')
            .trim_end_matches('>')
    }
    urn(listed).eq_ignore_ascii_case(urn(ours))
}

/// Entropy for tests: 1, 2, 3, … (branches, tags and jitter are then predictable).
#[cfg(test)]
pub(crate) struct Counter(pub(crate) u64);

#[cfg(test)]
impl Entropy for Counter {
    fn next_u64(&mut self) -> u64 {
        self.0 += 1;
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::digest::Credential;
    use crate::engine::message::ContactInfo;

    fn config() -> BindingConfig {
        let mut credentials = CredentialStore::default();
        credentials.insert(Credential::new("r", "alice", "pw"));
        BindingConfig {
            user: "alice".into(),
            aor: "sip:alice@example.com".into(),
            request_uri: "sip:example.com".into(),
            local: "192.168.1.10:5060".parse().unwrap(),
            route: None,
            expires: 3600,
            refresh_interval: Duration::from_secs(60),
            timeout: Duration::from_secs(32),
            nat_detect: true,
            transport: Transport::Udp,
            credentials: Arc::new(credentials),
            user_agent: "t".into(),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            instance: None,
            reg_id: None,
            share_challenges: false,
        }
    }

    fn header<'a>(text: &'a str, name: &str) -> &'a str {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or("")
    }

    fn sent(out: &[Output]) -> Vec<String> {
        out.iter()
            .filter_map(|o| match o {
                Output::Send(b) | Output::Retransmit(b) => {
                    Some(String::from_utf8(b.clone()).unwrap())
                }
                _ => None,
            })
            .collect()
    }

    fn events(out: &[Output]) -> Vec<BindingEvent> {
        out.iter()
            .filter_map(|o| match o {
                Output::Event(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// A response to `request` (the text of the last REGISTER sent).
    fn answer(request: &str, status: u16) -> ResponseInfo<'static> {
        let via = header(request, "Via");
        let branch = via.split("branch=").nth(1).unwrap().to_string().into();
        let cseq = header(request, "CSeq")
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let contact = header(request, "Contact");
        let uri = &contact[contact.find('<').unwrap() + 1..contact.find('>').unwrap()];
        let removing = header(request, "Expires") == "0";
        ResponseInfo {
            status,
            branch,
            call_id: header(request, "Call-ID").to_string().into(),
            cseq,
            cseq_method: "REGISTER".into(),
            contacts: if removing {
                vec![]
            } else {
                vec![ContactInfo::of(uri, Some(3600))]
            },
            ..Default::default()
        }
    }

    struct Run {
        b: Binding,
        e: Counter,
        now: Instant,
        last: String,
    }

    impl Run {
        fn new(config: BindingConfig) -> (Run, Vec<Output>) {
            Run::sharing(config, &mut None)
        }

        /// A binding sharing the settings of the last one created with `last`.
        fn sharing(config: BindingConfig, last: &mut Option<SharedSettings>) -> (Run, Vec<Output>) {
            let mut e = Counter(0);
            let mut b = Binding::new_sharing(config, last, &mut e);
            let now = Instant::now();
            let mut out = Vec::new();
            b.start(now, &mut e, &mut out);
            let last = sent(&out).pop().unwrap();
            (Run { b, e, now, last }, out)
        }

        fn respond(&mut self, r: ResponseInfo) -> Vec<Output> {
            let mut out = Vec::new();
            assert!(self.b.on_response(&r, self.now, &mut self.e, &mut out));
            if let Some(s) = sent(&out).pop() {
                self.last = s;
            }
            out
        }

        /// Advances to the next deadline and fires it.
        fn tick(&mut self) -> Vec<Output> {
            self.now = self.b.next_deadline().expect("a deadline");
            let mut out = Vec::new();
            self.b.on_timer(self.now, &mut self.e, &mut out);
            if let Some(s) = sent(&out).pop() {
                self.last = s;
            }
            out
        }
    }

    #[test]
    fn timer_diagram_timeout_then_backoff_then_retry() {
        let (mut run, out) = Run::new(config());
        let t0 = run.now;
        assert_eq!(sent(&out).len(), 1);
        let first = run.last.clone();
        let mut retransmits = 0;
        loop {
            let out = run.tick();
            if !sent(&out).is_empty() {
                assert_eq!(sent(&out)[0], first, "a retransmission is the same bytes");
                retransmits += 1;
            }
            if !events(&out).is_empty() {
                assert_eq!(events(&out), [BindingEvent::Failed(Failure::TimedOut)]);
                break;
            }
        }
        assert_eq!(retransmits, 10);
        assert_eq!(run.now - t0, Duration::from_secs(32));
        assert_eq!(run.b.state(), BindingState::WaitingToRetry);
        let wait = run.b.next_deadline().unwrap() - run.now;
        assert!(
            wait >= Duration::from_millis(500) && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        let out = run.tick();
        let retry = &sent(&out)[0];
        assert_eq!(header(retry, "Call-ID"), header(&first, "Call-ID"));
        assert_eq!(header(retry, "CSeq"), "2 REGISTER");
        assert_ne!(header(retry, "Via"), header(&first, "Via"));
    }

    #[test]
    fn a_deferred_refresh_lets_the_registration_lapse_and_says_so_once() {
        let (mut run, _) = Run::new(config());
        let mut ok = answer(&run.last.clone(), 200);
        ok.contacts[0].expires = Some(60);
        run.respond(ok);
        assert_eq!(run.b.state(), BindingState::Registered);
        let registered_at = run.now;
        // Every target asked for two minutes (Retry-After): the refresh waits past expiry.
        run.b.defer(registered_at + Duration::from_secs(120));
        let out = run.tick();
        assert_eq!(run.now, registered_at + Duration::from_secs(60));
        assert_eq!(events(&out), [BindingEvent::Failed(Failure::Expired)]);
        assert!(sent(&out).is_empty(), "nothing before the Retry-After");
        assert_eq!(run.b.state(), BindingState::WaitingToRetry);
        let out = run.tick();
        assert_eq!(run.now, registered_at + Duration::from_secs(120));
        assert_eq!(sent(&out).len(), 1, "the refresh, when allowed");
        // It times out: the same outage, not reported again.
        let mut reports = Vec::new();
        while run.b.state() == BindingState::Registering {
            reports.extend(events(&run.tick()));
        }
        assert_eq!(reports, []);
    }

    #[test]
    fn backoff_doubles_is_capped_by_the_interval_and_reports_once() {
        let mut c = config();
        c.timeout = Duration::from_secs(1);
        c.refresh_interval = Duration::from_secs(10);
        let (mut run, _) = Run::new(c);
        let mut waits = Vec::new();
        let mut reported = 0;
        while waits.len() < 6 {
            let was_waiting = run.b.state() == BindingState::WaitingToRetry;
            let out = run.tick();
            reported += events(&out).len();
            if !was_waiting && run.b.state() == BindingState::WaitingToRetry {
                waits.push(run.b.next_deadline().unwrap() - run.now);
            }
        }
        let full = [1, 2, 4, 8, 10, 10];
        for (w, f) in waits.iter().zip(full) {
            let f = Duration::from_secs(f);
            assert!(*w >= f / 2 && *w <= f, "waits {waits:?}");
        }
        assert_eq!(reported, 1, "the same failure is reported once");
    }

    #[test]
    fn refresh_before_the_grant_lapses_and_preemptive_auth() {
        let (mut run, _) = Run::new(config());
        let mut challenge = answer(&run.last.clone(), 401);
        challenge.challenges = vec![(
            ChallengeKind::Www,
            r#"Digest realm="r", nonce="n1", qop="auth""#.into(),
        )];
        let out = run.respond(challenge);
        assert!(header(&sent(&out)[0], "Authorization").contains("nc=00000001"));
        let mut ok = answer(&run.last.clone(), 200);
        ok.contacts[0].expires = Some(20);
        let out = run.respond(ok);
        assert!(matches!(
            events(&out)[..],
            [BindingEvent::Registered { expires: 20, .. }]
        ));
        // The first refresh at 30-95 % of the 20 s grant.
        let wait = run.b.next_deadline().unwrap() - run.now;
        assert!(
            wait >= Duration::from_secs(6) && wait <= Duration::from_secs(19),
            "{wait:?}"
        );
        let out = run.tick();
        let refresh = &sent(&out)[0];
        assert!(
            header(refresh, "Authorization").contains("nc=00000002"),
            "nonce reused"
        );
        // The registrar wants a new nonce without saying stale: answered once, not a loop.
        let mut again = answer(refresh, 401);
        again.challenges = vec![(
            ChallengeKind::Www,
            r#"Digest realm="r", nonce="n2", qop="auth""#.into(),
        )];
        let out = run.respond(again);
        assert!(header(&sent(&out)[0], "Authorization").contains("nonce=\"n2\""));
        assert!(events(&out).is_empty());
        let out = run.respond(answer(&run.last.clone(), 200));
        assert!(
            events(&out).is_empty(),
            "still registered: nothing new to report"
        );
        assert_eq!(run.b.state(), BindingState::Registered);
    }

    #[test]
    fn stale_nonces_are_followed_but_not_forever() {
        let (mut run, _) = Run::new(config());
        for round in 1..=MAX_AUTH_ROUNDS + 1 {
            let mut r = answer(&run.last.clone(), 401);
            r.challenges = vec![(
                ChallengeKind::Www,
                format!(r#"Digest realm="r", nonce="n{round}", stale=true"#).into(),
            )];
            let out = run.respond(r);
            if round <= MAX_AUTH_ROUNDS {
                assert_eq!(sent(&out).len(), 1, "round {round}");
            } else {
                assert_eq!(events(&out), [BindingEvent::Failed(Failure::AuthRejected)]);
            }
        }
    }

    fn wildcard_config() -> BindingConfig {
        let mut credentials = CredentialStore::default();
        credentials.insert(Credential::new("*", "alice", "pw"));
        BindingConfig {
            credentials: Arc::new(credentials),
            ..config()
        }
    }

    fn authorizations(request: &str) -> usize {
        request
            .lines()
            .filter(|l| l.starts_with("Authorization:") || l.starts_with("Proxy-Authorization:"))
            .count()
    }

    #[test]
    fn a_challenge_of_many_realms_is_answered_for_a_few() {
        let (mut run, _) = Run::new(wildcard_config());
        let mut r = answer(&run.last.clone(), 401);
        r.challenges = (0..120)
            .map(|i| {
                let value = format!(r#"Digest realm="r{i}", nonce="n{i}", qop="auth""#);
                (ChallengeKind::Www, value.into())
            })
            .collect();
        let out = run.respond(r);
        assert_eq!(authorizations(&sent(&out)[0]), MAX_REALMS);
    }

    #[test]
    fn a_new_realm_in_every_challenge_does_not_grow_the_request() {
        let (mut run, _) = Run::new(wildcard_config());
        let mut largest = 0;
        for round in 0..300 {
            let mut r = answer(&run.last.clone(), 401);
            r.challenges = vec![(
                ChallengeKind::Www,
                format!(r#"Digest realm="realm{round}", nonce="n{round}", qop="auth""#).into(),
            )];
            let out = run.respond(r);
            let request = sent(&out).pop().expect("answered");
            largest = largest.max(request.len());
            assert_eq!(authorizations(&request), 1, "round {round}");
            let out = run.respond(answer(&request, 200));
            assert_eq!(run.b.state(), BindingState::Registered, "{out:?}");
            run.tick(); // the refresh, with the last realm's answer
        }
        assert!(largest < 1024, "{largest} bytes");
        assert!(run.b.auth.len() <= 2 * MAX_REALMS);
    }

    #[test]
    fn a_proxy_challenge_and_the_registrar_challenge_are_both_answered() {
        let (mut run, _) = Run::new(wildcard_config());
        let mut r = answer(&run.last.clone(), 407);
        r.challenges = vec![(
            ChallengeKind::Proxy,
            r#"Digest realm="proxy", nonce="p1""#.into(),
        )];
        run.respond(r);
        let mut r = answer(&run.last.clone(), 401);
        r.challenges = vec![(
            ChallengeKind::Www,
            r#"Digest realm="registrar", nonce="w1""#.into(),
        )];
        let out = run.respond(r);
        let request = &sent(&out)[0];
        assert!(header(request, "Proxy-Authorization").contains(r#"realm="proxy""#));
        assert!(header(request, "Authorization").contains(r#"realm="registrar""#));
    }

    #[test]
    fn a_bad_request_uri_is_a_local_failure_whether_configured_or_redirected_to() {
        let mut e = Counter(0);
        let now = Instant::now();
        let mut out = Vec::new();
        let mut bad = Binding::new(
            BindingConfig {
                request_uri: "sip:bad_host".into(),
                ..config()
            },
            &mut e,
        );
        bad.start(now, &mut e, &mut out);
        assert!(sent(&out).is_empty());
        assert!(
            matches!(&events(&out)[..], [BindingEvent::Failed(Failure::Local(why))] if why.contains("bad Request-URI")),
            "{out:?}"
        );
        // A good configured URI, then a bad one from a redirect: checked when sent too.
        let (mut run, _) = Run::new(config());
        run.respond(answer(&run.last.clone(), 200));
        assert_eq!(run.b.state(), BindingState::Registered);
        run.b.set_request_uri("sip:also bad".into());
        let out = run.tick(); // the refresh
        assert!(sent(&out).is_empty(), "{out:?}");
        assert!(
            events(&out)
                .iter()
                .any(|e| matches!(e, BindingEvent::Failed(Failure::Local(why)) if why.contains("bad Request-URI"))),
            "{out:?}"
        );
    }

    #[test]
    fn a_request_too_large_to_send_is_a_failure_of_its_own_and_is_retried() {
        let (mut run, _) = Run::new(wildcard_config());
        let mut r = answer(&run.last.clone(), 401);
        let nonce = "n".repeat(3_900);
        r.challenges = (0..MAX_REALMS)
            .map(|i| {
                let value = format!(r#"Digest realm="r{i}", nonce="{nonce}", opaque="{i}""#);
                (ChallengeKind::Www, value.into())
            })
            .collect();
        let out = run.respond(r);
        assert!(sent(&out).is_empty());
        assert!(
            matches!(&events(&out)[..], [BindingEvent::Failed(Failure::Local(why))] if why.contains("larger than")),
            "{out:?}"
        );
        assert_eq!(run.b.state(), BindingState::WaitingToRetry);
        // On the backoff, a new attempt without those challenges.
        let out = run.tick();
        let request = &sent(&out)[0];
        assert_eq!(authorizations(request), 0);
        assert!(request.len() < message::MAX_REQUEST_BYTES);
    }

    #[test]
    fn a_challenge_without_digest_is_malformed() {
        let (mut run, _) = Run::new(config());
        let mut r = answer(&run.last.clone(), 401);
        r.challenges = vec![(ChallengeKind::Www, r#"Basic realm="r""#.into())];
        let out = run.respond(r);
        assert!(matches!(
            events(&out)[..],
            [BindingEvent::Failed(Failure::Malformed(_))]
        ));
    }

    #[test]
    fn an_address_of_the_other_family_is_not_taken_for_ours() {
        let (mut run, _) = Run::new(config());
        let mut r = answer(&run.last.clone(), 200);
        r.received = Some("2001:db8::1".parse().unwrap());
        let out = run.respond(r);
        assert!(
            matches!(events(&out)[..], [BindingEvent::Registered { contact, .. }] if contact.is_ipv4()),
            "{out:?}"
        );
        assert!(sent(&out).is_empty(), "no contact switch");
    }

    #[test]
    fn while_a_refresh_switches_to_the_public_contact_the_name_is_not_registered() {
        let mut plain = config();
        plain.nat_detect = true;
        let (mut run, _) = Run::new(plain);
        run.respond(answer(&run.last.clone(), 200));
        assert_eq!(run.b.state(), BindingState::Registered);
        run.tick(); // the refresh
        assert_eq!(
            run.b.state(),
            BindingState::Registered,
            "a refresh in flight"
        );
        let mut seen = answer(&run.last.clone(), 200);
        seen.received = Some("203.0.113.9".parse().unwrap());
        let out = run.respond(seen);
        assert_eq!(
            header(&sent(&out)[0], "Expires"),
            "0",
            "the old contact removed"
        );
        assert_eq!(run.b.state(), BindingState::Registering);
        let out = run.respond(answer(&run.last.clone(), 200));
        assert!(header(&sent(&out)[0], "Contact").contains("203.0.113.9"));
        assert_eq!(run.b.state(), BindingState::Registering);
        run.respond(answer(&run.last.clone(), 200));
        assert_eq!(run.b.state(), BindingState::Registered);
    }

    #[test]
    fn nat_flapping_is_bounded() {
        let (mut run, _) = Run::new(config());
        for i in 0..10u16 {
            let mut r = answer(&run.last.clone(), 200);
            r.received = Some("203.0.113.1".parse().unwrap());
            r.rport = Some(40000 + i);
            let out = run.respond(r);
            if !events(&out).is_empty() {
                assert!(matches!(
                    events(&out)[..],
                    [BindingEvent::Registered { .. }]
                ));
                assert!(
                    i <= 2 * MAX_NAT_SWITCHES as u16,
                    "settled after {i} answers"
                );
                return;
            }
        }
        panic!("never settled");
    }

    #[test]
    fn stop_before_anything_was_sent_needs_no_request() {
        let mut e = Counter(0);
        let mut b = Binding::new(config(), &mut e);
        let mut out = Vec::new();
        b.stop(Instant::now(), &mut e, &mut out);
        assert_eq!(events(&out), [BindingEvent::Unregistered]);
        assert!(sent(&out).is_empty());
        assert!(b.is_done());
    }

    #[test]
    fn stop_while_registering_waits_for_the_answer_then_unregisters() {
        // RFC 3261 §10.2: no new REGISTER before the one in flight has its final answer.
        let (mut run, _) = Run::new(config());
        let register = run.last.clone();
        let mut out = Vec::new();
        run.b.stop(run.now, &mut run.e, &mut out);
        assert!(sent(&out).is_empty(), "the removal waits");
        let out = run.respond(answer(&register, 200));
        let unregister = sent(&out).pop().expect("the removal, after the answer");
        assert_eq!(header(&unregister, "Expires"), "0");
        assert!(
            events(&out).is_empty(),
            "nothing registered is reported while stopping"
        );
        let out = run.respond(answer(&unregister, 200));
        assert_eq!(events(&out), [BindingEvent::Unregistered]);
        assert!(run.b.is_done());
        assert!(!run.b.unconfirmed());
    }

    #[test]
    fn stop_while_a_request_gets_no_answer_unregisters_after_its_timeout() {
        let (mut run, _) = Run::new(config());
        let mut out = Vec::new();
        run.b.stop(run.now, &mut run.e, &mut out);
        let started = run.now;
        let mut removal = None;
        while removal.is_none() {
            let out = run.tick();
            removal = sent(&out).into_iter().find(|r| header(r, "Expires") == "0");
        }
        assert_eq!(run.now - started, Duration::from_secs(32), "after Timer F");
        let out = run.respond(answer(&removal.unwrap(), 200));
        assert_eq!(events(&out), [BindingEvent::Unregistered]);
    }

    fn challenge(run: &mut Run, nonce: &str) -> Vec<Output> {
        let mut r = answer(&run.last.clone(), 401);
        r.challenges = vec![(
            ChallengeKind::Www,
            format!(r#"Digest realm="r", nonce="{nonce}", qop="auth""#).into(),
        )];
        run.respond(r)
    }

    /// A name of a call sharing its challenges: `user` with password `pw` in realm `realm`.
    fn sharing_name(user: &str, realm: &str) -> BindingConfig {
        let mut credentials = CredentialStore::default();
        credentials.insert(Credential::new(realm, user, "pw"));
        BindingConfig {
            user: user.into(),
            aor: format!("sip:{user}@example.com"),
            credentials: Arc::new(credentials),
            share_challenges: true,
            ..config()
        }
    }

    /// Alice, the first name of a call sharing its challenges, challenged with nonce `n1`
    /// (answered), and the call's settings for the names after her.
    fn challenged_first_name() -> (Run, Option<SharedSettings>) {
        let mut last = None;
        let (mut alice, _) = Run::sharing(sharing_name("alice", "r"), &mut last);
        challenge(&mut alice, "n1");
        (alice, last)
    }

    fn authorization(request: &str) -> &str {
        header(request, "Authorization")
    }

    #[test]
    fn names_sharing_challenges_answer_one_another_s_with_one_nonce_count() {
        let mut last = None;
        let (mut alice, out) = Run::sharing(sharing_name("alice", "r"), &mut last);
        assert_eq!(authorization(&sent(&out)[0]), "", "nothing to answer yet");
        let out = challenge(&mut alice, "n1");
        assert!(authorization(&sent(&out)[0]).contains("nc=00000001"));
        // Bob, started after, answers Alice's challenge in his first request, counting
        // the answers to that nonce from both; one response registers him.
        let (mut bob, out) = Run::sharing(sharing_name("bob", "r"), &mut last);
        let first = authorization(&sent(&out)[0]).to_string();
        assert!(first.contains(r#"username="bob""#), "{first}");
        assert!(first.contains(r#"nonce="n1""#) && first.contains("nc=00000002"));
        let out = bob.respond(answer(&bob.last.clone(), 200));
        assert!(matches!(
            events(&out)[..],
            [BindingEvent::Registered { .. }]
        ));
        alice.respond(answer(&alice.last.clone(), 200));
        // Alice's refresh continues the common count.
        let out = alice.tick();
        assert!(authorization(&sent(&out)[0]).contains("nc=00000003"));
        // A name without credentials for the realm has nothing to answer.
        let (_, out) = Run::sharing(sharing_name("carol", "elsewhere"), &mut last);
        assert_eq!(authorization(&sent(&out)[0]), "");
        // Without sharing, each name waits for its own challenge.
        let mut last = None;
        let (mut alice, _) = Run::sharing(sharing_name("alice", "r").unshared(), &mut last);
        challenge(&mut alice, "n1");
        let (_, out) = Run::sharing(sharing_name("bob", "r").unshared(), &mut last);
        assert_eq!(authorization(&sent(&out)[0]), "");
    }

    impl BindingConfig {
        fn unshared(self) -> BindingConfig {
            BindingConfig {
                share_challenges: false,
                ..self
            }
        }
    }

    #[test]
    fn a_stale_shared_nonce_is_replaced_for_every_name() {
        let (_, mut last) = challenged_first_name();
        let (mut bob, _) = Run::sharing(sharing_name("bob", "r"), &mut last);
        let mut stale = answer(&bob.last.clone(), 401);
        stale.challenges = vec![(
            ChallengeKind::Www,
            r#"Digest realm="r", nonce="n2", qop="auth", stale=true"#.into(),
        )];
        let out = bob.respond(stale);
        assert!(authorization(&sent(&out)[0]).contains(r#"nonce="n2""#));
        assert!(authorization(&sent(&out)[0]).contains("nc=00000001"));
        let (_, out) = Run::sharing(sharing_name("carol", "r"), &mut last);
        let carol = authorization(&sent(&out)[0]).to_string();
        assert!(carol.contains(r#"nonce="n2""#) && carol.contains("nc=00000002"));
    }

    /// Name `user` of the call of `last` answers a challenge taken from the board, which
    /// the registrar refuses with a new challenge (`stale` or not): it answers that one and
    /// registers, without a failure. Returns its first request.
    fn refused_then_registered(
        last: &mut Option<SharedSettings>,
        user: &str,
        stale: bool,
    ) -> String {
        let (mut run, out) = Run::sharing(sharing_name(user, "r"), last);
        let first = sent(&out)[0].clone();
        assert!(
            authorization(&first).contains("nonce="),
            "{user} answers: {first}"
        );
        let mut again = answer(&run.last.clone(), 401);
        again.challenges = vec![(
            ChallengeKind::Www,
            format!(r#"Digest realm="r", nonce="{user}", qop="auth", stale={stale}"#).into(),
        )];
        let out = run.respond(again);
        assert!(authorization(&sent(&out)[0]).contains(&format!(r#"nonce="{user}""#)));
        let out = run.respond(answer(&run.last.clone(), 200));
        assert!(
            matches!(events(&out)[..], [BindingEvent::Registered { .. }]),
            "{user}"
        );
        first
    }

    #[test]
    fn a_registrar_refusing_shared_answers_ends_the_sharing_without_a_failure() {
        // A registrar that binds its nonces to one user: every shared answer gets a new
        // challenge. After MAX_SHARED_REFUSALS more refusals than acceptances (none here),
        // the names wait for their own challenges.
        for stale in [false, true] {
            let (_, mut last) = challenged_first_name();
            for i in 0..=MAX_SHARED_REFUSALS {
                refused_then_registered(&mut last, &format!("u{i}"), stale);
            }
            let (_, out) = Run::sharing(sharing_name("carol", "r"), &mut last);
            assert_eq!(
                authorization(&sent(&out)[0]),
                "",
                "sharing ended (stale={stale})"
            );
        }

        // A 403 to a shared answer: the request goes again without one, not a failure.
        let (_, mut last) = challenged_first_name();
        let (mut bob, _) = Run::sharing(sharing_name("bob", "r"), &mut last);
        let out = bob.respond(answer(&bob.last.clone(), 403));
        assert!(events(&out).is_empty(), "{:?}", events(&out));
        assert_eq!(authorization(&sent(&out)[0]), "");
        challenge(&mut bob, "n3");
        let out = bob.respond(answer(&bob.last.clone(), 403));
        assert_eq!(
            events(&out),
            [BindingEvent::Failed(Failure::AuthRejected)],
            "a 403 to his own answer refuses his credentials, as without sharing"
        );
    }

    #[test]
    fn many_names_refused_for_one_expired_nonce_count_as_one_refusal() {
        let (_, mut last) = challenged_first_name();
        // Twenty names answer n1 at once; it expired: each is told so, and answers anew.
        let mut names: Vec<Run> = (0..20)
            .map(|i| Run::sharing(sharing_name(&format!("w{i}"), "r"), &mut last).0)
            .collect();
        for (i, run) in names.iter_mut().enumerate() {
            let mut stale = answer(&run.last.clone(), 401);
            stale.challenges = vec![(
                ChallengeKind::Www,
                format!(r#"Digest realm="r", nonce="s{i}", qop="auth", stale=true"#).into(),
            )];
            let out = run.respond(stale);
            assert!(authorization(&sent(&out)[0]).contains(&format!(r#"nonce="s{i}""#)));
        }
        let (_, out) = Run::sharing(sharing_name("carol", "r"), &mut last);
        assert!(
            authorization(&sent(&out)[0]).contains(r#"nonce="s19""#),
            "still sharing, the latest nonce"
        );
    }

    #[test]
    fn refusals_for_a_few_names_do_not_end_a_sharing_that_works() {
        let (_, mut last) = challenged_first_name();
        for i in 0..4 {
            let (mut run, _) = Run::sharing(sharing_name(&format!("ok{i}"), "r"), &mut last);
            run.respond(answer(&run.last.clone(), 200));
        }
        // Wrong passwords, say: each refused name answers its own challenge; the nonce
        // it published is shared from then on.
        for i in 0..MAX_SHARED_REFUSALS + 4 {
            refused_then_registered(&mut last, &format!("bad{i}"), false);
        }
        let (_, out) = Run::sharing(sharing_name("carol", "r"), &mut last);
        let carol = authorization(&sent(&out)[0]).to_string();
        let latest = format!("bad{}", MAX_SHARED_REFUSALS + 3);
        assert!(carol.contains(&format!(r#"nonce="{latest}""#)), "{carol}");
        // Once a name's shared answer was accepted, its refused refresh is its own matter.
        let (mut dave, _) = Run::sharing(sharing_name("dave", "r"), &mut last);
        dave.respond(answer(&dave.last.clone(), 200));
        dave.tick();
        challenge(&mut dave, "n9");
        let (_, out) = Run::sharing(sharing_name("erin", "r"), &mut last);
        assert!(authorization(&sent(&out)[0]).contains(r#"nonce="n9""#));
    }

    #[test]
    fn forbidden_without_credentials_is_a_rejection_with_backoff() {
        let (mut run, _) = Run::new(config());
        let out = run.respond(answer(&run.last.clone(), 403));
        assert_eq!(events(&out), [BindingEvent::Failed(Failure::Rejected(403))]);
        let wait = run.b.next_deadline().unwrap() - run.now;
        assert!(wait <= Duration::from_secs(1), "ordinary backoff: {wait:?}");
    }

    #[test]
    fn forbidden_answering_our_credentials_is_an_authorization_failure() {
        let (mut run, _) = Run::new(config());
        let out = challenge(&mut run, "n1");
        assert!(header(&sent(&out)[0], "Authorization").contains("nonce=\"n1\""));
        let out = run.respond(answer(&run.last.clone(), 403));
        assert_eq!(events(&out), [BindingEvent::Failed(Failure::AuthRejected)]);
        assert!(
            sent(&out).is_empty(),
            "the refused credentials are not sent again"
        );
        // Not before a whole update interval (60 s), and not much later either.
        let wait = run.b.next_deadline().unwrap() - run.now;
        assert!(
            wait >= Duration::from_secs(60) && wait <= Duration::from_secs(66),
            "{wait:?}"
        );
        // After the interval the attempt starts afresh, without the refused answer, and a
        // second refusal is not reported again.
        let out = run.tick();
        assert!(header(&sent(&out)[0], "Authorization").is_empty());
        challenge(&mut run, "n2");
        let out = run.respond(answer(&run.last.clone(), 403));
        assert!(events(&out).is_empty(), "reported once: {:?}", events(&out));
    }

    #[test]
    fn new_credentials_make_a_refused_binding_due_at_once() {
        let (mut run, _) = Run::new(config());
        challenge(&mut run, "n1");
        run.respond(answer(&run.last.clone(), 403));
        run.now += Duration::from_secs(5);
        let mut store = CredentialStore::default();
        store.insert(Credential::new("r", "alice", "new"));
        run.b.set_credentials(Arc::new(store), run.now);
        assert_eq!(
            run.b.next_deadline(),
            Some(run.now),
            "due now, via its owner"
        );
        let out = run.tick();
        assert_eq!(sent(&out).len(), 1);
    }

    #[test]
    fn new_credentials_do_not_hurry_other_waits() {
        let (mut run, _) = Run::new(config());
        run.respond(answer(&run.last.clone(), 500));
        let due = run.b.next_deadline();
        run.b
            .set_credentials(Arc::new(CredentialStore::default()), run.now);
        assert_eq!(run.b.next_deadline(), due);
    }

    const INSTANCE: &str = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";

    #[test]
    fn the_names_of_one_call_hold_one_copy_of_their_settings() {
        let mut e = Counter(0);
        let mut last = None;
        let a = Binding::new_sharing(config(), &mut last, &mut e);
        let b = Binding::new_sharing(
            BindingConfig {
                user: "bob".into(),
                aor: "sip:bob@example.com".into(),
                ..config()
            },
            &mut last,
            &mut e,
        );
        assert!(Arc::ptr_eq(&a.shared, &b.shared));
        let c = Binding::new_sharing(
            BindingConfig {
                expires: 60,
                ..config()
            },
            &mut last,
            &mut e,
        );
        assert!(!Arc::ptr_eq(&b.shared, &c.shared));
        assert_eq!(c.shared.expires, 60);
        // Each keeps its own identity.
        assert_eq!(b.user(), "bob");
        assert_ne!(a.call_id, b.call_id);
    }

    #[test]
    fn the_contact_user_is_kept_only_when_it_is_not_the_aors() {
        let mut e = Counter(0);
        let plain = Binding::new(config(), &mut e);
        assert!(plain.contact_user.is_none());
        assert_eq!(plain.user(), "alice");
        let other = Binding::new(
            BindingConfig {
                user: "alice-phone".into(),
                ..config()
            },
            &mut e,
        );
        assert_eq!(other.user(), "alice-phone");
        assert!(other.info().contact.starts_with("sip:alice-phone@"));
        assert_eq!(aor_user("sips:x@y"), Some("x"));
        assert_eq!(aor_user("sip:y"), None);
    }

    #[test]
    fn call_id_and_tag_are_written_as_before() {
        assert_eq!(
            call_id_text(0x0123_4567_89ab_cdef_0000_0000_0000_0002).as_str(),
            "0123456789abcdef0000000000000002@lanscape"
        );
        assert_eq!(hex_text::<16>("", 0xab, "").as_str(), "00000000000000ab");
        let branch = Branch(0x0123_4567_89ab_cdef);
        assert_eq!(branch_text(branch).as_str(), branch.to_string());
    }

    fn outbound_config() -> BindingConfig {
        BindingConfig {
            instance: Some(INSTANCE.into()),
            reg_id: Some(1),
            ..config()
        }
    }

    /// A contact as a registrar lists it: `raw` with these header parameters.
    fn listed(raw: &str, params: &str) -> ContactInfo<'static> {
        let text = format!(
            "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCall-ID: c\r\n\
             CSeq: 1 REGISTER\r\nContact: <{raw}>{params}\r\n\r\n"
        );
        message::parse_response(text.as_bytes())
            .unwrap()
            .contacts
            .remove(0)
            .into_owned()
    }

    #[test]
    fn outbound_registers_a_flow_with_instance_reg_id_and_ob() {
        let (run, _) = Run::new(outbound_config());
        assert_eq!(
            header(&run.last, "Contact"),
            format!("<sip:alice@192.168.1.10:5060;ob>;+sip.instance=\"<{INSTANCE}>\";reg-id=1")
        );
        assert_eq!(header(&run.last, "Supported"), "outbound, path, gruu");
        // Without Outbound, an instance alone asks for GRUUs.
        let (run, _) = Run::new(BindingConfig {
            reg_id: None,
            ..outbound_config()
        });
        assert_eq!(
            header(&run.last, "Contact"),
            format!("<sip:alice@192.168.1.10:5060>;+sip.instance=\"<{INSTANCE}>\"")
        );
        assert_eq!(header(&run.last, "Supported"), "path, gruu");
        // Neither: a plain registration.
        let (run, _) = Run::new(config());
        assert_eq!(header(&run.last, "Supported"), "");
    }

    #[test]
    fn a_439_registers_again_without_outbound_at_once() {
        let (mut run, _) = Run::new(outbound_config());
        let out = run.respond(answer(&run.last.clone(), 439));
        assert!(events(&out).is_empty(), "not a failure");
        let again = &sent(&out)[0];
        assert_eq!(
            header(again, "Contact"),
            format!("<sip:alice@192.168.1.10:5060>;+sip.instance=\"<{INSTANCE}>\"")
        );
        assert_eq!(header(again, "Supported"), "path, gruu");
        let out = run.respond(answer(&run.last.clone(), 200));
        assert!(matches!(
            events(&out)[..],
            [BindingEvent::Registered { .. }]
        ));
        let info = run.b.info();
        assert!(!info.outbound);
        assert_eq!((info.last_status, info.consecutive_failures), (200, 0));
        // A second 439 is a failure like any other.
        let (mut run, _) = Run::new(outbound_config());
        run.respond(answer(&run.last.clone(), 439));
        let out = run.respond(answer(&run.last.clone(), 439));
        assert_eq!(events(&out), [BindingEvent::Failed(Failure::Rejected(439))]);
    }

    #[test]
    fn ours_is_found_among_several_contacts_by_instance_and_its_gruus_kept() {
        let (mut run, _) = Run::new(outbound_config());
        let mut ok = answer(&run.last.clone(), 200);
        ok.reason = "OK".into();
        ok.option_tags = vec!["OutBound".into()]; // option tags compare without regard to case
        ok.flow_timer = Some(25);
        ok.service_route = vec!["<sip:orig@scscf.example.com;lr>".into()];
        ok.associated_uris = vec!["<sip:alice@example.com>".into(), "<tel:+1555>".into()];
        let upper = INSTANCE.to_ascii_uppercase();
        ok.contacts = vec![
            listed(
                "sip:alice@198.51.100.1:6000",
                ";expires=100;+sip.instance=\"<urn:uuid:00000000-0000-0000-0000-000000000001>\";reg-id=1",
            ),
            // Ours, as the registrar rewrote it: another address, the parameters in another
            // order and case.
            listed(
                "sip:alice@203.0.113.9:41000;OB",
                &format!(
                    ";reg-id=1;EXPIRES=200;+SIP.INSTANCE=\"<{upper}>\";\
                     pub-gruu=\"sip:alice@example.com;gr={INSTANCE}\";\
                     temp-gruu=\"sip:tgruu.7hs@example.com;gr\""
                ),
            ),
            listed(
                "sip:alice@192.168.1.10:5060;ob",
                &format!(";expires=300;+sip.instance=\"<{INSTANCE}>\";reg-id=2"),
            ),
        ];
        let out = run.respond(ok);
        assert!(
            matches!(
                events(&out)[..],
                [BindingEvent::Registered { expires: 200, .. }]
            ),
            "{out:?}"
        );
        let info = run.b.info();
        assert_eq!(
            info.pub_gruu.as_deref(),
            Some(format!("sip:alice@example.com;gr={INSTANCE}").as_str())
        );
        assert_eq!(
            info.temp_gruu.as_deref(),
            Some("sip:tgruu.7hs@example.com;gr")
        );
        assert_eq!(info.service_route, ["<sip:orig@scscf.example.com;lr>"]);
        assert_eq!(
            info.associated_uris,
            ["<sip:alice@example.com>", "<tel:+1555>"]
        );
        assert!(info.outbound);
        assert_eq!(info.flow_timer, Some(25));
        assert_eq!(info.granted_expires, Some(200));
        assert_eq!(info.contact, "sip:alice@192.168.1.10:5060;ob");
        assert_eq!((info.last_status, info.last_reason.as_str()), (200, "OK"));
        assert!(info.refresh_at.is_some());
    }

    #[test]
    fn without_an_instance_ours_is_found_by_uri_equivalence() {
        let mut config = config();
        config.nat_detect = false;
        let (mut run, _) = Run::new(config);
        let mut ok = answer(&run.last.clone(), 200);
        ok.contacts = vec![
            // Another user (user parts compare with case).
            listed("sip:ALICE@192.168.1.10:5060", ";expires=99"),
            // Ours, with a parameter we did not send and the host's port explicit.
            listed("sip:alice@192.168.1.10:5060;x-tag=1", ";expires=30"),
        ];
        let out = run.respond(ok);
        assert!(
            matches!(
                events(&out)[..],
                [BindingEvent::Registered { expires: 30, .. }]
            ),
            "{out:?}"
        );
        // A contact that differs in a parameter both carry is not ours.
        let (mut run, _) = Run::new(BindingConfig {
            nat_detect: false,
            transport: Transport::Tcp,
            ..super::tests::config()
        });
        let mut ok = answer(&run.last.clone(), 200);
        ok.contacts = vec![listed(
            "sip:alice@192.168.1.10:5060;transport=udp",
            ";expires=30",
        )];
        let out = run.respond(ok);
        assert!(events(&out).is_empty(), "retried once: {out:?}");
    }

    #[test]
    fn an_outbound_flow_that_keeps_failing_backs_off_as_rfc_5626_says() {
        let (mut run, _) = Run::new(outbound_config());
        // Every attempt times out (Timer F, 32 s); new requests are sent at these times.
        let mut sends = vec![run.now];
        while sends.len() < 9 {
            let out = run.tick();
            if out.iter().any(|o| matches!(o, Output::Send(_))) {
                sends.push(run.now);
            }
        }
        // After each timeout, 50-100 % of 30 s, 60 s, 120 s, ... at most 1800 s.
        for (i, pair) in sends.windows(2).enumerate() {
            let backoff = pair[1] - pair[0] - Duration::from_secs(32);
            let full = Duration::from_secs(30 << i.min(6)).min(Duration::from_secs(1800));
            assert!(
                backoff >= full / 2 && backoff <= full,
                "attempt {}: {backoff:?} for {full:?}",
                i + 1
            );
        }
    }
}
