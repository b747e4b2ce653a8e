//! Locating the registrar like real clients (RFC 3263), failing over, Retry-After and
//! redirects, against real peers on loopback: dnsmasq as the DNS server, Kamailio as
//! registrars, sipp as a 503 or 302 server. The exact rules are unit tests of
//! `engine::target` and `engine::endpoint` on the simulated clock.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::ffi::profiles::SIP_TRANSPORT::{self, *};
use std::time::{Duration, Instant};
use support::dnsmasq::{Dnsmasq, Record, dns_servers};
use support::kamailio::{Kamailio, KamailioConfig};
use support::sipp::Sipp;
use support::*;

/// DNS for a server whose UDP SRV records (`srv_name`) list `primary` (priority 10) then
/// `secondary` (priority 20), as (host name, port), each host at 127.0.0.1.
fn primary_and_secondary(
    srv_name: &'static str,
    primary: (&'static str, u16),
    secondary: (&'static str, u16),
) -> Dnsmasq {
    let srv = |(target, port), priority| Record::Srv {
        name: srv_name,
        target,
        port,
        priority,
        weight: 10,
    };
    Dnsmasq::start(
        &[
            Record::A(primary.0),
            Record::A(secondary.0),
            srv(primary, 10),
            srv(secondary, 20),
        ],
        3600,
    )
}

/// An engine asking `dns`, registering in `sip_domain`.
fn engine_asking(dns: &Dnsmasq, sip_domain: &str) -> (SIPHANDLE, std::sync::Arc<Recorder>) {
    let (engine, events) = engine(1);
    dns_servers(engine, dns);
    domain(engine, sip_domain);
    (engine, events)
}

/// An engine asking `dns`, registering `names` to `server` (a name: no port, so that DNS
/// says where) with Kamailio's test credentials.
fn enable_by_name(
    engine: SIPHANDLE,
    server: &str,
    names: &'static str,
    interval: u32,
    timeout_ms: u32,
) -> TELEPHONY_RETURN_VALUE {
    credentials(engine, "*", "gw", "gw-secret");
    Enable {
        names,
        per_line: false,
        through_proxy: false,
        server: server.into(),
        port: 0,
        interval,
        expires: 60,
        timeout_ms,
        nat: false,
    }
    .call(engine)
}

fn kamailio(domain: &'static str, streams: bool) -> Kamailio {
    Kamailio::start(KamailioConfig {
        domain,
        streams,
        ..Default::default()
    })
}

/// NAPTR records for all three transports, `preferred` first; SRV records for each, all
/// leading to `kam`; the engine, free to use any transport, must follow that chain.
fn naptr_srv_a_chain(preferred: SIP_TRANSPORT) {
    const DOMAIN: &str = "chain.test";
    let kam = kamailio(DOMAIN, true);
    let order = |t: SIP_TRANSPORT| if t == preferred { 10 } else { 20 };
    let mut records = vec![Record::A("kam.chain.test")];
    for (transport, service, srv) in [
        (SipTransportUdp, "SIP+D2U", "_sip._udp.chain.test"),
        (SipTransportTcp, "SIP+D2T", "_sip._tcp.chain.test"),
        (SipTransportTls, "SIPS+D2T", "_sips._tcp.chain.test"),
    ] {
        records.push(Record::Naptr {
            domain: DOMAIN,
            order: order(transport),
            preference: 10,
            service,
            replacement: srv,
        });
        records.push(Record::Srv {
            name: srv,
            target: "kam.chain.test",
            port: if transport == SipTransportTls {
                kam.tls_port
            } else {
                kam.port
            },
            priority: 10,
            weight: 10,
        });
    }
    let dns = Dnsmasq::start(&records, 60);
    let (engine, events) = engine_asking(&dns, DOMAIN);
    transport(engine, SipTransportAuto);
    trust_only(engine, &kam.pki.as_ref().unwrap().ca_pem);
    assert_eq!(
        enable_by_name(engine, DOMAIN, "alice", 60, 2000),
        SipSuccess
    );
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}\n{}",
        events.events(),
        dns.log(),
        kam.log()
    );
    let contacts = kam.contacts();
    let param = match preferred {
        SipTransportTcp => Some("transport=tcp"),
        SipTransportTls => Some("transport=tls"),
        _ => None,
    };
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    let contact = &contacts[0].1;
    match param {
        Some(param) => assert!(contact.contains(param), "{contact}"),
        None => assert!(!contact.contains("transport="), "{contact}"),
    }
    let log = dns.log();
    let naptr = log.find("query[NAPTR] chain.test").expect("NAPTR asked");
    let srv = log.find("query[SRV] _sip").expect("SRV asked");
    let a = log.find("query[A] kam.chain.test").expect("A asked");
    assert!(naptr < srv && srv < a, "NAPTR, then SRV, then A:\n{log}");
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(kam.contacts().is_empty(), "unregistered");
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn naptr_srv_a_chain_over_udp() {
    naptr_srv_a_chain(SipTransportUdp);
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn naptr_srv_a_chain_over_tcp() {
    naptr_srv_a_chain(SipTransportTcp);
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn naptr_srv_a_chain_over_tls() {
    naptr_srv_a_chain(SipTransportTls);
}

#[test]
#[ignore = "needs dnsmasq (scripts/test installs it and runs this)"]
fn a_name_without_records_is_an_unknown_host() {
    let dns = Dnsmasq::start(&[Record::A("known.test")], 60);
    let (engine, _) = engine(1);
    dns_servers(engine, &dns);
    let started = Instant::now();
    assert_eq!(
        enable_by_name(engine, "nothing.test", "alice", 60, 2000),
        SipUnknownHost
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "answered, not timed out"
    );
    assert!(dns.log().contains("nothing.test"), "asked: {}", dns.log());
    // SAFETY: the library returns a NUL-terminated string that stays valid on this thread.
    let text = unsafe { std::ffi::CStr::from_ptr(lanscape_sip::ffi::GetLastSipErrorText()) }
        .to_string_lossy()
        .into_owned();
    assert!(text.contains("nothing.test"), "{text}");
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn the_secondary_takes_over_when_the_primary_stops() {
    const DOMAIN: &str = "fail.test";
    let mut primary = kamailio(DOMAIN, false);
    let secondary = kamailio(DOMAIN, false);
    let dns = primary_and_secondary(
        "_sip._udp.fail.test",
        ("one.fail.test", primary.port),
        ("two.fail.test", secondary.port),
    );
    let (engine, events) = engine_asking(&dns, DOMAIN);
    const INTERVAL: u32 = 2;
    const TIMEOUT_MS: u32 = 1500;
    assert_eq!(
        enable_by_name(engine, DOMAIN, "alice, bob", INTERVAL, TIMEOUT_MS),
        SipSuccess
    );
    assert!(
        events.wait_for(SipRegisterSuccess, 2, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(primary.contacts().len(), 2, "the priority 10 server first");
    assert!(secondary.contacts().is_empty());
    primary.kill();
    let killed = Instant::now();
    // The next refresh (within the interval) goes to the dead primary; within the
    // transaction timeout plus a little, both names are at the secondary.
    let bound = Duration::from_secs(u64::from(INTERVAL))
        + Duration::from_millis(u64::from(TIMEOUT_MS))
        + Duration::from_secs(2);
    while secondary.contacts().len() < 2 {
        assert!(
            killed.elapsed() < bound,
            "not moved within {bound:?}: {:?}\n{:?}",
            secondary.contacts(),
            events.events()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        events.count(SipRegisterTimeOut) + events.count(SipRegisterError),
        0,
        "a failover is not a failure: {:?}",
        events.events()
    );
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(secondary.contacts().is_empty(), "unregistered");
}

#[test]
#[ignore = "needs dnsmasq, kamailio and sipp (scripts/test installs them and runs this)"]
fn retry_after_bars_the_primary_while_the_secondary_is_used() {
    const DOMAIN: &str = "busy.test";
    let sipp = Sipp::uas_with("retry_after.xml", "u1", &[], 120);
    let mut kam = kamailio(DOMAIN, false);
    let dns = primary_and_secondary(
        "_sip._udp.busy.test",
        ("busy.busy.test", sipp.port),
        ("kam.busy.test", kam.port),
    );
    let (engine, events) = engine_asking(&dns, DOMAIN);
    assert_eq!(enable_by_name(engine, DOMAIN, "alice", 3, 1000), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        sipp.messages()
    );
    let answered = Instant::now();
    assert_eq!(sipp.registers_received(), 1, "the primary, first");
    assert_eq!(kam.contacts().len(), 1, "then the secondary, at once");
    // The secondary goes away: the binding fails there, again and again, but does not
    // contact the primary before its 30 s are over.
    std::thread::sleep(Duration::from_secs(2));
    kam.kill();
    while answered.elapsed() < Duration::from_secs(28) {
        assert_eq!(
            sipp.registers_received(),
            1,
            "primary contacted {:?} after its Retry-After: 30",
            answered.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        events.count(SipRegisterTimeOut) >= 1,
        "the secondary's failure is reported: {:?}",
        events.events()
    );
    // Once they are over, the primary is tried again.
    while sipp.registers_received() < 2 {
        assert!(
            answered.elapsed() < Duration::from_secs(45),
            "primary not tried again after its Retry-After"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(answered.elapsed() >= Duration::from_secs(29));
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
#[ignore = "needs kamailio and sipp (scripts/test installs them and runs this)"]
fn a_redirect_registers_the_name_where_the_contact_says() {
    let kam = kamailio("kam.test", false);
    let port = kam.port.to_string();
    let mut sipp = Sipp::uas_with("redirect.xml", "u1", &[("registrar_port", &port)], 20);
    let (engine, events) = engine(1);
    domain(engine, "kam.test");
    credentials(engine, "*", "gw", "gw-secret");
    let mut enable = Enable::to_port(u32::from(sipp.port), "alice");
    enable.expires = 60;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}\n{}",
        events.events(),
        sipp.messages(),
        kam.log()
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    assert_eq!(sipp.registers_received(), 1);
    let contacts = kam.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert_eq!(contacts[0].0, "alice");
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(kam.contacts().is_empty(), "unregistered at the new place");
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn a_closed_port_fails_over_at_once_through_icmp() {
    const DOMAIN: &str = "closed.test";
    let kam = kamailio(DOMAIN, false);
    // Nobody listens there: the kernel answers with ICMP port unreachable.
    let closed = free_port();
    let dns = primary_and_secondary(
        "_sip._udp.closed.test",
        ("closed.closed.test", closed),
        ("kam.closed.test", kam.port),
    );
    let (engine, events) = engine_asking(&dns, DOMAIN);
    let logs = Logs::capture(engine, false);
    let started = Instant::now();
    // A transaction timeout far longer than the test waits: only ICMP can explain a
    // quick move to Kamailio.
    assert_eq!(
        enable_by_name(engine, DOMAIN, "alice", 60, 30_000),
        SipSuccess
    );
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{:?}",
        events.events(),
        logs.all()
    );
    assert!(started.elapsed() < WAIT);
    assert_eq!(kam.contacts().len(), 1);
    assert!(logs.contains("port unreachable (ICMP)"), "{:?}", logs.all());
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn an_expired_answer_is_looked_up_again_and_followed() {
    const DOMAIN: &str = "moved.test";
    const TTL: u32 = 2;
    const INTERVAL: u32 = 3;
    let old = kamailio(DOMAIN, false);
    let new = kamailio(DOMAIN, false);
    let records = |port| {
        [
            Record::A("host.moved.test"),
            Record::Srv {
                name: "_sip._udp.moved.test",
                target: "host.moved.test",
                port,
                priority: 10,
                weight: 10,
            },
        ]
    };
    let dns = Dnsmasq::start(&records(old.port), TTL);
    let (engine, events) = engine_asking(&dns, DOMAIN);
    assert_eq!(
        enable_by_name(engine, DOMAIN, "alice", INTERVAL, 2000),
        SipSuccess
    );
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert_eq!(old.contacts().len(), 1);
    // The zone changes: the registrar moved. Once the TTL has run out, a refresh asks
    // again and goes to the new place.
    let port = dns.port;
    drop(dns);
    let dns = Dnsmasq::start_on(port, &records(new.port), TTL);
    let changed = Instant::now();
    let bound = Duration::from_secs(u64::from(TTL + INTERVAL) + 3);
    while new.contacts().is_empty() {
        assert!(
            changed.elapsed() < bound,
            "still at the old place after {bound:?}: {}",
            dns.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(dns.log().contains("query[SRV] _sip._udp.moved.test"));
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
#[ignore = "needs dnsmasq and kamailio (scripts/test installs them and runs this)"]
fn a_profile_finds_its_registrar_through_naptr_and_srv() {
    use lanscape_sip::ffi::profiles::SIP_PROFILE_STATE::*;
    use lanscape_sip::ffi::profiles::*;
    const DOMAIN: &str = "prof.test";
    let kam = Kamailio::start(KamailioConfig {
        domain: DOMAIN,
        streams: true,
        users: vec![("alice", "alice-secret")],
        ..Default::default()
    });
    let dns = Dnsmasq::start(
        &[
            Record::A("sip.prof.test"),
            Record::Naptr {
                domain: DOMAIN,
                order: 10,
                preference: 10,
                service: "SIP+D2T",
                replacement: "_sip._tcp.prof.test",
            },
            Record::Srv {
                name: "_sip._tcp.prof.test",
                target: "sip.prof.test",
                port: kam.port,
                priority: 10,
                weight: 10,
            },
        ],
        60,
    );
    let mut registry = 0;
    // SAFETY: a live out-pointer; no callbacks.
    let rc = unsafe { SipRegistryOpen(None, None, std::ptr::null_mut(), &mut registry) };
    assert_eq!(rc, SipSuccess);
    let servers = cstr(&dns.server());
    // SAFETY: a live C string.
    let rc = unsafe { SipRegistrySetDnsServers(registry, servers.as_ptr()) };
    assert_eq!(rc, SipSuccess);
    let id = create_profile(
        registry,
        "alice@prof.test",
        DOMAIN,
        Some("alice-secret"),
        SipTransportAuto,
    );
    let mut profile = 0;
    // SAFETY: a live out-pointer.
    let rc = unsafe { SipProfileRetrieve(registry, id, &mut profile) };
    assert_eq!(rc, SipSuccess);
    assert_eq!(SipProfileEnable(profile), SipSuccess);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut state = SipProfileUnregistered;
        // SAFETY: a live out-pointer.
        let rc = unsafe { SipProfileGetState(profile, &mut state) };
        assert_eq!(rc, SipSuccess);
        if state == SipProfileRegistered {
            break;
        }
        assert!(Instant::now() < deadline, "{state:?}\n{}", kam.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let contacts = kam.contacts();
    assert_eq!(contacts.len(), 1, "{contacts:?}");
    assert!(contacts[0].1.contains("transport=tcp"), "{contacts:?}");
    assert_eq!(SipProfileRelease(profile), SipSuccess);
    assert_eq!(SipRegistryClose(registry), SipSuccess);
}
