//! The DNS driver: asks what [`crate::engine::target::plan`] says with hickory-resolver
//! (NAPTR, SRV, A/AAAA) and gives back the ordered targets the engine's `target` module
//! builds from the answers, with the smallest TTL. No protocol decision is made here.
//!
//! The system's resolver configuration is used unless DNS servers are set. With the system
//! configuration, address lookups that DNS cannot answer fall back to the system's own
//! lookup (`getaddrinfo`: the hosts file, and whatever else the system is configured with);
//! with servers set, only they (and the hosts file) answer.

use crate::engine::binding::Entropy;
use crate::engine::target::{
    DEFAULT_VALIDITY, Naptr, Plan, Query, Srv, make_target, naptr_services, order_srv, plan,
    srv_names,
};
use crate::engine::transport::{Target, Transport};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How long one DNS query may take (per attempt; two attempts).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// An answer: the targets in order and until when they hold (`None`: for ever).
pub type Answer = Result<(Vec<Target>, Option<Instant>), String>;

/// A resolver: the system's configuration, or the DNS servers an application set.
///
/// The resolver is built at the first lookup (shared by the clones of this value): an
/// engine that registers to addresses never asks DNS and does not carry a resolver.
#[derive(Clone)]
pub struct Dns {
    /// `Some(None)` when the resolver could not be built (the system configuration could
    /// not be read): only the system's own address lookup is used then.
    resolver: Arc<OnceLock<Option<TokioResolver>>>,
    /// The servers set, or `None` for the system's configuration.
    servers: Option<Arc<[SocketAddr]>>,
}

impl Dns {
    /// The system's resolver configuration (`/etc/resolv.conf`).
    pub fn system() -> Dns {
        Dns {
            resolver: Arc::default(),
            servers: None,
        }
    }

    /// These DNS servers (UDP, then TCP for truncated answers), and nothing else.
    pub fn with_servers(servers: &[SocketAddr]) -> Dns {
        Dns {
            resolver: Arc::default(),
            servers: Some(servers.into()),
        }
    }

    /// Whether the system's own address lookup answers what DNS does not.
    fn system_fallback(&self) -> bool {
        self.servers.is_none()
    }

    /// The resolver, built on first use.
    fn resolver(&self) -> Option<&TokioResolver> {
        self.resolver
            .get_or_init(|| match &self.servers {
                None => TokioResolver::builder_tokio().ok().and_then(|mut builder| {
                    tune(builder.options_mut());
                    builder.build().ok()
                }),
                Some(servers) => {
                    let name_servers = servers
                        .iter()
                        .map(|s| {
                            let mut udp = ConnectionConfig::udp();
                            udp.port = s.port();
                            let mut tcp = ConnectionConfig::tcp();
                            tcp.port = s.port();
                            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
                        })
                        .collect();
                    let config = ResolverConfig::from_name_servers(name_servers);
                    let mut builder =
                        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
                    tune(builder.options_mut());
                    builder.build().ok()
                }
            })
            .as_ref()
    }

    /// Locates a server (RFC 3263 §4): its targets in order of preference.
    pub async fn locate(&self, query: &Query, entropy: &mut (dyn Entropy + Send)) -> Answer {
        let tls = query.tls.as_ref();
        let family = query.ipv6;
        match plan(&query.server, query.choice) {
            Plan::Address(transport, addr) => Ok((vec![make_target(transport, addr, tls)], None)),
            Plan::Hosts(transport, name, port) => {
                let (ips, until) = self.addresses(&name, family).await?;
                let targets = ips
                    .into_iter()
                    .map(|ip| make_target(transport, SocketAddr::new(ip, port), tls))
                    .collect();
                Ok((targets, Some(until)))
            }
            Plan::Services {
                name,
                naptr,
                allowed,
            } => {
                let mut until: Option<Instant> = None;
                let mut earliest = |at: Instant| {
                    until = Some(until.map_or(at, |u| u.min(at)));
                };
                let mut services = Vec::new();
                if naptr && let Some(lookup) = self.lookup(&name, RecordType::NAPTR).await {
                    let records: Vec<Naptr> = lookup
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::NAPTR(n) => Some(Naptr {
                                order: n.order,
                                preference: n.preference,
                                flags: String::from_utf8_lossy(&n.flags).into_owned(),
                                service: String::from_utf8_lossy(&n.services).into_owned(),
                                replacement: n.replacement.to_ascii(),
                            }),
                            _ => None,
                        })
                        .collect();
                    services = naptr_services(&records, &allowed);
                    if !services.is_empty() {
                        earliest(lookup.valid_until());
                    }
                }
                if services.is_empty() {
                    services = srv_names(&name, &allowed);
                }
                let mut targets = Vec::new();
                for (transport, service) in services {
                    let Some(lookup) = self.lookup(&service, RecordType::SRV).await else {
                        continue;
                    };
                    let records: Vec<Srv> = lookup
                        .answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::SRV(s) => Some(Srv {
                                priority: s.priority,
                                weight: s.weight,
                                port: s.port,
                                target: s.target.to_ascii().trim_end_matches('.').to_string(),
                            }),
                            _ => None,
                        })
                        .collect();
                    if records.is_empty() {
                        continue;
                    }
                    earliest(lookup.valid_until());
                    for srv in order_srv(records, entropy) {
                        let Ok((ips, at)) = self.addresses(&srv.target, family).await else {
                            continue;
                        };
                        earliest(at);
                        for ip in ips {
                            let addr = SocketAddr::new(ip, srv.port);
                            targets.push(make_target(transport, addr, tls));
                        }
                    }
                }
                if targets.is_empty() {
                    // No SRV record: the name's addresses, on the default port of the
                    // transport (UDP when any may be used, RFC 3263 §4.2).
                    let transport = match allowed.as_slice() {
                        [only] => *only,
                        _ => Transport::Udp,
                    };
                    let (ips, at) = self.addresses(&name, family).await?;
                    earliest(at);
                    targets = ips
                        .into_iter()
                        .map(|ip| {
                            let addr = SocketAddr::new(ip, transport.default_port());
                            make_target(transport, addr, tls)
                        })
                        .collect();
                }
                Ok((targets, until))
            }
        }
    }

    async fn lookup(
        &self,
        name: &str,
        kind: RecordType,
    ) -> Option<hickory_resolver::lookup::Lookup> {
        let resolver = self.resolver()?;
        resolver.lookup(fqdn(name), kind).await.ok()
    }

    /// The addresses of a name in the local socket's family, and until when they hold.
    async fn addresses(&self, name: &str, ipv6: bool) -> Result<(Vec<IpAddr>, Instant), String> {
        let wanted = |ip: &IpAddr| ip.is_ipv6() == ipv6;
        if let Some(resolver) = self.resolver()
            && let Ok(lookup) = resolver.lookup_ip(fqdn(name)).await
        {
            let ips: Vec<IpAddr> = lookup.iter().filter(wanted).collect();
            if !ips.is_empty() {
                return Ok((ips, lookup.valid_until()));
            }
        }
        if !self.system_fallback() {
            return Err(format!("{name} has no address"));
        }
        // The system's own lookup (hosts file, nsswitch), off the I/O thread.
        let host = name.to_string();
        let ips = tokio::task::spawn_blocking(move || {
            (host.as_str(), 0)
                .to_socket_addrs()
                .map(|addrs| addrs.map(|a| a.ip()).collect::<Vec<_>>())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{name}: {e}"))?;
        let mut ips: Vec<IpAddr> = ips.into_iter().filter(wanted).collect();
        ips.dedup();
        if ips.is_empty() {
            return Err(format!("{name} has no address"));
        }
        Ok((ips, Instant::now() + DEFAULT_VALIDITY))
    }
}

fn tune(options: &mut hickory_resolver::config::ResolverOpts) {
    options.timeout = QUERY_TIMEOUT;
    options.attempts = 2;
}

/// A name as a fully qualified one, so that no search domain is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
