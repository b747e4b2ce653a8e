//! Locating a SIP server (RFC 3263) and choosing among its addresses, sans I/O.
//!
//! A driver asks DNS what [`plan`] says (NAPTR, then SRV, then A/AAAA), hands the records to
//! [`naptr_services`], [`srv_names`] and [`order_srv`], and gives the endpoint the ordered
//! list of targets it built. The endpoint keeps it in a [`TargetList`]: the targets in order
//! of preference, which of them failed and until when (a failed one is avoided while
//! another is left; one that answered with Retry-After is not contacted before it elapses),
//! and until when the list is valid (the smallest TTL; the endpoint asks for it again then).

use crate::engine::binding::Entropy;
use crate::engine::transport::{Target, TlsTarget, Transport};
use crate::engine::uri::{Host, HostPort};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a target that failed (no answer, connection refused, 503) is avoided while
/// another one is left.
pub(crate) const AVOID_FAILED: Duration = Duration::from_secs(60);
/// The longest Retry-After honoured (RFC 3261 §20.33 sets no bound; a registrar asking
/// for more is taken to mean one hour).
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// How long a list is kept when DNS gave no TTL, or when asking again failed.
pub(crate) const DEFAULT_VALIDITY: Duration = Duration::from_secs(300);

/// The transports a server may be reached on: the one the application chose, or any the
/// engine has (then NAPTR records choose, RFC 3263 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportChoice {
    /// Only this one.
    Only(Transport),
    /// Whichever DNS prefers.
    Any,
}

/// UDP, as LanScape applications expect when they choose nothing.
impl Default for TransportChoice {
    fn default() -> Self {
        TransportChoice::Only(Transport::Udp)
    }
}

impl TransportChoice {
    /// The transports allowed, in the order tried when DNS has no NAPTR record.
    pub fn allowed(self) -> Vec<Transport> {
        match self {
            TransportChoice::Only(t) => vec![t],
            TransportChoice::Any => vec![Transport::Tls, Transport::Tcp, Transport::Udp],
        }
    }

    /// Whether `transport` may be used.
    pub fn allows(self, transport: Transport) -> bool {
        match self {
            TransportChoice::Only(t) => t == transport,
            TransportChoice::Any => true,
        }
    }
}

/// One NAPTR record, as DNS gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naptr {
    /// Order (lowest first).
    pub order: u16,
    /// Preference within one order (lowest first).
    pub preference: u16,
    /// Flags; `s` means the replacement is an SRV name.
    pub flags: String,
    /// Service, e.g. `SIP+D2U`.
    pub service: String,
    /// The SRV name to ask next.
    pub replacement: String,
}

/// One SRV record, as DNS gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Srv {
    /// Priority (lowest first).
    pub priority: u16,
    /// Weight within one priority (RFC 2782).
    pub weight: u16,
    /// Port.
    pub port: u16,
    /// Host name of the server (a `.` alone means the service is not offered).
    pub target: String,
}

/// What to ask DNS for a server (RFC 3263 §4.1, §4.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// A numeric IP address: no lookup at all.
    Address(Transport, SocketAddr),
    /// A name with an explicit port: its A/AAAA records only.
    Hosts(Transport, String, u16),
    /// A name without a port: NAPTR (when `naptr`), else SRV for each allowed transport,
    /// else A/AAAA with the transport's default port.
    Services {
        /// The domain.
        name: String,
        /// Whether to ask NAPTR first (the transport was not chosen).
        naptr: bool,
        /// The transports allowed.
        allowed: Vec<Transport>,
    },
}

/// What to look up for `server` (RFC 3263 §4): an IP address or an explicit port skips
/// NAPTR and SRV; a chosen transport skips NAPTR.
pub fn plan(server: &HostPort, choice: TransportChoice) -> Plan {
    let fallback = match choice {
        TransportChoice::Only(t) => t,
        TransportChoice::Any => Transport::Udp,
    };
    match (&server.host, server.port) {
        (Host::Ip(ip), port) => Plan::Address(
            fallback,
            SocketAddr::new(*ip, port.unwrap_or(fallback.default_port())),
        ),
        (Host::Name(name), Some(port)) => Plan::Hosts(fallback, name.clone(), port),
        (Host::Name(name), None) => Plan::Services {
            name: name.clone(),
            naptr: choice == TransportChoice::Any,
            allowed: choice.allowed(),
        },
    }
}

/// The transport a NAPTR service names, if it is a SIP one we have.
fn service_transport(service: &str) -> Option<Transport> {
    match service.to_ascii_uppercase().as_str() {
        "SIP+D2U" => Some(Transport::Udp),
        "SIP+D2T" => Some(Transport::Tcp),
        "SIPS+D2T" => Some(Transport::Tls),
        _ => None,
    }
}

/// The SRV names NAPTR records point to, for the transports allowed, in the records' order
/// and preference (RFC 3263 §4.1; RFC 3403). Records without the `s` flag are skipped.
pub fn naptr_services(records: &[Naptr], allowed: &[Transport]) -> Vec<(Transport, String)> {
    let mut usable: Vec<&Naptr> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| service_transport(&r.service).is_some_and(|t| allowed.contains(&t)))
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    let mut out: Vec<(Transport, String)> = Vec::new();
    for r in usable {
        let entry = (
            service_transport(&r.service).unwrap_or_default(),
            r.replacement.trim_end_matches('.').to_ascii_lowercase(),
        );
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

/// The SRV names to ask when there is no NAPTR record (RFC 3263 §4.1): `_sips._tcp`,
/// `_sip._tcp`, `_sip._udp`, for the transports allowed, in that order.
pub fn srv_names(domain: &str, allowed: &[Transport]) -> Vec<(Transport, String)> {
    allowed
        .iter()
        .map(|t| {
            let prefix = match t {
                Transport::Udp => "_sip._udp",
                Transport::Tcp => "_sip._tcp",
                Transport::Tls => "_sips._tcp",
            };
            (*t, format!("{prefix}.{domain}"))
        })
        .collect()
}

/// SRV records in the order to try them: by priority, and within one priority by RFC
/// 2782's weighted random selection (a record of weight 0 is rarely first). Records whose
/// target is `.` (the service is not offered) are dropped.
pub fn order_srv(records: Vec<Srv>, entropy: &mut dyn Entropy) -> Vec<Srv> {
    let mut records: Vec<Srv> = records
        .into_iter()
        .filter(|r| r.target != "." && !r.target.is_empty())
        .collect();
    records.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut out = Vec::with_capacity(records.len());
    while !records.is_empty() {
        let priority = records[0].priority;
        let same = records
            .iter()
            .take_while(|r| r.priority == priority)
            .count();
        let mut group: Vec<Srv> = records.drain(..same).collect();
        while !group.is_empty() {
            let total: u64 = group.iter().map(|r| u64::from(r.weight)).sum();
            let pick = entropy.next_u64() % (total + 1);
            let mut running = 0u64;
            let index = group
                .iter()
                .position(|r| {
                    running += u64::from(r.weight);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(index));
        }
    }
    out
}

/// The target of an address on a transport; over TLS the certificate must name
/// `tls.server_name` (the SIP domain, RFC 5922 §4, never a name DNS gave).
pub fn make_target(transport: Transport, addr: SocketAddr, tls: Option<&TlsTarget>) -> Target {
    Target {
        transport,
        addr,
        tls: match transport {
            Transport::Tls => tls.map(|t| Box::new(t.clone())),
            _ => None,
        },
    }
}

/// What to ask DNS again for a server when its answer expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The server, as configured (a name; its port, if given).
    pub server: HostPort,
    /// The transports allowed.
    pub choice: TransportChoice,
    /// Over TLS, the name certificates must match and the settings to use.
    pub tls: Option<TlsTarget>,
    /// Whether the local socket is IPv6 (only addresses of its family are usable).
    pub ipv6: bool,
}

/// A server located: its targets in order of preference, until when that holds, and how
/// to ask again. Shared by every binding registered to that server.
#[derive(Debug, Clone)]
pub struct Located {
    /// Names the server within the endpoint (bindings with the same key share the list).
    pub key: String,
    /// How to ask DNS again; `None` for an address given as such (it never expires).
    pub query: Option<Query>,
    /// The targets, in order.
    pub targets: Vec<Target>,
    /// Until when the answer holds (the smallest TTL); `None`: for ever.
    pub valid_until: Option<Instant>,
}

impl Located {
    /// One target that never changes.
    #[cfg(any(test, feature = "testkit"))]
    pub fn single(target: Target) -> std::sync::Arc<Located> {
        std::sync::Arc::new(Located {
            key: target.to_string(),
            query: None,
            targets: vec![target],
            valid_until: None,
        })
    }
}

/// Why a target is avoided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Avoid {
    until: Instant,
    /// Retry-After: never contacted before `until`. Otherwise only avoided while another
    /// target is left.
    hard: bool,
}

/// A server's targets in order of preference, with what failed (see the module docs).
#[derive(Debug, Clone)]
pub struct TargetList {
    targets: Vec<Target>,
    /// Every answer is rotated left by this much (a second Outbound flow prefers the
    /// second target).
    rotation: usize,
    avoid: HashMap<Target, Avoid>,
    valid_until: Option<Instant>,
    generation: u64,
}

/// Which target to use now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// This one.
    Use(Target),
    /// Every target asked not to be contacted before this instant (Retry-After).
    WaitUntil(Instant),
}

impl TargetList {
    /// A list of targets in order of preference; `valid_until` is `None` for a list that
    /// never expires (an address given as such).
    pub fn new(targets: Vec<Target>, valid_until: Option<Instant>) -> TargetList {
        TargetList {
            targets,
            rotation: 0,
            avoid: HashMap::new(),
            valid_until,
            generation: 0,
        }
    }

    /// The same list, each answer rotated left by `n` (this one too).
    pub fn rotated(mut self, n: usize) -> TargetList {
        self.rotation = n;
        let len = self.targets.len().max(1);
        self.targets.rotate_left(n % len);
        self
    }

    /// Whether the list holds this answer (as it would after [`TargetList::replace`]).
    pub fn holds(&self, answer: &[Target]) -> bool {
        let len = answer.len();
        len == self.targets.len()
            && answer
                .iter()
                .cycle()
                .skip(self.rotation % len.max(1))
                .take(len)
                .eq(self.targets.iter())
    }

    /// The targets, in order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Whether the list must be asked for again at `now`.
    pub fn expired(&self, now: Instant) -> bool {
        self.valid_until.is_some_and(|at| at <= now)
    }

    /// Counts the lists installed so far: bindings choose again when it changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Installs a new answer; what failed is remembered for targets still listed.
    pub fn replace(&mut self, mut targets: Vec<Target>, valid_until: Option<Instant>) {
        let len = targets.len().max(1);
        targets.rotate_left(self.rotation % len);
        self.avoid.retain(|t, _| targets.contains(t));
        self.targets = targets;
        self.valid_until = valid_until;
        self.generation += 1;
    }

    /// Keeps the current targets for a while longer (asking DNS again failed).
    pub fn extend(&mut self, valid_until: Instant) {
        self.valid_until = Some(valid_until);
    }

    /// Asks for the list to be looked up again at once (a name a redirect gave).
    pub fn expire(&mut self, now: Instant) {
        self.valid_until = Some(now);
    }

    /// Records that `target` failed at `now`; `retry_after` (bounded) forbids contacting
    /// it before it elapses.
    pub fn fail(&mut self, target: &Target, now: Instant, retry_after: Option<Duration>) {
        let avoid = match retry_after {
            Some(after) => Avoid {
                until: now + after.min(MAX_RETRY_AFTER),
                hard: true,
            },
            None => Avoid {
                until: now + AVOID_FAILED,
                hard: false,
            },
        };
        let entry = self.avoid.entry(target.clone()).or_insert(avoid);
        if avoid.until > entry.until || avoid.hard {
            *entry = avoid;
        }
    }

    /// Records that `target` answered: it is not avoided any more.
    pub fn succeed(&mut self, target: &Target) {
        self.avoid.remove(target);
    }

    fn avoided(&self, target: &Target, now: Instant) -> Option<Avoid> {
        self.avoid.get(target).copied().filter(|a| a.until > now)
    }

    /// Whether a target other than `current` may be tried now.
    pub fn has_alternative(&self, current: &Target, now: Instant) -> bool {
        self.targets
            .iter()
            .any(|t| t != current && self.avoided(t, now).is_none())
    }

    /// The target to use at `now`: `current` when it is listed and not avoided (affinity),
    /// else the first one not avoided, else the one only softly avoided that failed longest
    /// ago (every target failed: retries go round the list), else the end of the earliest
    /// Retry-After.
    pub fn choose(&self, current: Option<&Target>, now: Instant) -> Choice {
        if let Some(current) = current
            && self.targets.contains(current)
            && self.avoided(current, now).is_none()
        {
            return Choice::Use(current.clone());
        }
        if let Some(t) = self.targets.iter().find(|t| self.avoided(t, now).is_none()) {
            return Choice::Use(t.clone());
        }
        // Every target failed: the one that failed longest ago (so that retries go round
        // the list rather than back to the same one).
        if let Some(t) = self
            .targets
            .iter()
            .filter_map(|t| {
                self.avoided(t, now)
                    .filter(|a| !a.hard)
                    .map(|a| (a.until, t))
            })
            .min_by_key(|(until, _)| *until)
            .map(|(_, t)| t)
        {
            return Choice::Use(t.clone());
        }
        let until = self
            .targets
            .iter()
            .filter_map(|t| self.avoided(t, now).map(|a| a.until))
            .min()
            .unwrap_or(now);
        Choice::WaitUntil(until)
    }

    /// Until when `target` must not be contacted (a Retry-After), if it must not now.
    #[cfg(test)]
    pub fn barred_until(&self, target: &Target, now: Instant) -> Option<Instant> {
        self.avoided(target, now)
            .filter(|a| a.hard)
            .map(|a| a.until)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::binding::Counter;

    fn udp(port: u16) -> Target {
        Target::udp(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    fn srv(priority: u16, weight: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port: 5060,
            target: target.into(),
        }
    }

    #[test]
    fn plans_follow_rfc_3263() {
        let hp = |s: &str| HostPort::parse(s).unwrap();
        let any = TransportChoice::Any;
        let tls = TransportChoice::Only(Transport::Tls);
        assert_eq!(
            plan(&hp("192.0.2.1"), any),
            Plan::Address(Transport::Udp, "192.0.2.1:5060".parse().unwrap())
        );
        assert_eq!(
            plan(&hp("[2001:db8::1]"), tls),
            Plan::Address(Transport::Tls, "[2001:db8::1]:5061".parse().unwrap())
        );
        assert_eq!(
            plan(&hp("sip.example.com:5080"), any),
            Plan::Hosts(Transport::Udp, "sip.example.com".into(), 5080)
        );
        assert_eq!(
            plan(&hp("example.com"), tls),
            Plan::Services {
                name: "example.com".into(),
                naptr: false,
                allowed: vec![Transport::Tls]
            }
        );
        assert!(matches!(
            plan(&hp("example.com"), any),
            Plan::Services { naptr: true, .. }
        ));
    }

    #[test]
    fn naptr_records_choose_among_our_transports_in_order() {
        let naptr = |order, preference, service: &str, replacement: &str| Naptr {
            order,
            preference,
            flags: "s".into(),
            service: service.into(),
            replacement: replacement.into(),
        };
        let records = vec![
            naptr(20, 10, "SIP+D2U", "_sip._udp.example.com."),
            naptr(10, 20, "SIP+D2T", "_sip._tcp.example.com."),
            naptr(10, 10, "SIPS+D2T", "_sips._tcp.example.com."),
            naptr(5, 10, "SIP+D2S", "_sip._sctp.example.com."),
            Naptr {
                flags: "u".into(),
                ..naptr(1, 1, "SIP+D2U", "!^.*$!sip:x@y!")
            },
        ];
        let all = [Transport::Udp, Transport::Tcp, Transport::Tls];
        assert_eq!(
            naptr_services(&records, &all),
            vec![
                (Transport::Tls, "_sips._tcp.example.com".to_string()),
                (Transport::Tcp, "_sip._tcp.example.com".to_string()),
                (Transport::Udp, "_sip._udp.example.com".to_string()),
            ]
        );
        assert_eq!(
            naptr_services(&records, &[Transport::Udp]),
            vec![(Transport::Udp, "_sip._udp.example.com".to_string())]
        );
        assert_eq!(
            srv_names("example.com", &[Transport::Tcp, Transport::Udp]),
            vec![
                (Transport::Tcp, "_sip._tcp.example.com".to_string()),
                (Transport::Udp, "_sip._udp.example.com".to_string()),
            ]
        );
    }

    #[test]
    fn srv_priority_first_then_weighted_random() {
        let mut entropy = Counter(0);
        let records = vec![
            srv(20, 0, "backup.example.com"),
            srv(10, 90, "heavy.example.com"),
            srv(10, 10, "light.example.com"),
            srv(5, 0, "."),
        ];
        let mut heavy_first = 0;
        for _ in 0..1000 {
            let order = order_srv(records.clone(), &mut entropy);
            assert_eq!(order.len(), 3, "the '.' record is dropped");
            assert_eq!(order[2].target, "backup.example.com");
            if order[0].target == "heavy.example.com" {
                heavy_first += 1;
            }
        }
        // Weight 90 of 100: first about nine times in ten (RFC 2782).
        assert!((850..=950).contains(&heavy_first), "{heavy_first}");
    }

    #[test]
    fn failed_targets_are_avoided_while_another_is_left() {
        let now = Instant::now();
        let mut list = TargetList::new(vec![udp(1), udp(2)], None);
        assert_eq!(list.choose(None, now), Choice::Use(udp(1)));
        // Affinity: a working lower-priority target is kept.
        assert_eq!(list.choose(Some(&udp(2)), now), Choice::Use(udp(2)));
        list.fail(&udp(1), now, None);
        assert!(list.has_alternative(&udp(1), now));
        assert_eq!(list.choose(Some(&udp(1)), now), Choice::Use(udp(2)));
        list.fail(&udp(2), now, None);
        assert!(!list.has_alternative(&udp(2), now));
        // Every target failed: start again from the top.
        assert_eq!(list.choose(Some(&udp(2)), now), Choice::Use(udp(1)));
        // Avoidance ends.
        let later = now + AVOID_FAILED;
        assert_eq!(list.choose(Some(&udp(2)), later), Choice::Use(udp(2)));
        list.succeed(&udp(1));
        assert_eq!(list.choose(None, now), Choice::Use(udp(1)));
    }

    #[test]
    fn retry_after_bars_a_target_until_it_elapses() {
        let now = Instant::now();
        let mut list = TargetList::new(vec![udp(1), udp(2)], None);
        list.fail(&udp(1), now, Some(Duration::from_secs(30)));
        list.fail(&udp(2), now, None);
        // The softly failed one is used before the barred one.
        assert_eq!(list.choose(Some(&udp(1)), now), Choice::Use(udp(2)));
        assert_eq!(
            list.barred_until(&udp(1), now),
            Some(now + Duration::from_secs(30))
        );
        let mut only = TargetList::new(vec![udp(1)], None);
        only.fail(&udp(1), now, Some(Duration::from_secs(7200)));
        assert_eq!(
            only.choose(None, now),
            Choice::WaitUntil(now + MAX_RETRY_AFTER),
            "bounded at one hour"
        );
        assert_eq!(
            only.choose(None, now + MAX_RETRY_AFTER),
            Choice::Use(udp(1))
        );
    }

    #[test]
    fn a_new_answer_keeps_what_failed_for_targets_still_listed() {
        let now = Instant::now();
        let mut list = TargetList::new(vec![udp(1), udp(2)], Some(now));
        assert!(list.expired(now));
        list.fail(&udp(1), now, Some(Duration::from_secs(30)));
        list.fail(&udp(2), now, None);
        list.replace(vec![udp(1), udp(3)], Some(now + Duration::from_secs(60)));
        assert_eq!(list.generation(), 1);
        assert!(!list.expired(now));
        assert_eq!(list.choose(None, now), Choice::Use(udp(3)));
    }

    #[test]
    fn a_rotated_list_holds_its_answer_rotated() {
        let answer = vec![udp(1), udp(2), udp(3)];
        let list = TargetList::new(answer.clone(), None).rotated(1);
        assert_eq!(list.targets(), [udp(2), udp(3), udp(1)]);
        assert!(list.holds(&answer));
        assert!(
            !list.holds(&[udp(2), udp(3), udp(1)]),
            "already rotated: another answer"
        );
        assert!(!list.holds(&answer[..2]));
        let mut replaced = list.clone();
        replaced.replace(vec![udp(4), udp(5)], None);
        assert_eq!(replaced.targets(), [udp(5), udp(4)]);
        assert!(replaced.holds(&[udp(4), udp(5)]));
        assert!(TargetList::new(vec![], None).rotated(1).holds(&[]));
    }
}
