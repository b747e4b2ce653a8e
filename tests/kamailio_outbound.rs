//! SIP Outbound (RFC 5626) and GRUU (RFC 5627) against Kamailio 5.6 with its outbound,
//! path and stun modules, over UDP, TCP and TLS: the flow registered and seen in
//! `ul.dump`, the GRUUs the info query reports, keep-alives answered, a frozen registrar
//! detected by them, and two flows to two registrars.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_TEXT::*;
use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::ffi::profiles::SIP_TRANSPORT::{self, *};
use std::time::{Duration, Instant};
use support::kamailio::{Kamailio, KamailioConfig};
use support::*;

const FLOW_TIMER: u32 = 4;

/// Registers `alice` over `transport` with Outbound on; checks what Kamailio and the info
/// query say; freezes Kamailio and checks that the keep-alives notice and the name
/// registers again once it runs.
fn outbound_flow(transport: SIP_TRANSPORT) {
    let kam = Kamailio::start(KamailioConfig {
        outbound: Some(FLOW_TIMER),
        streams: transport != SipTransportUdp,
        ..Default::default()
    });
    let port = match transport {
        SipTransportTls => kam.tls_port,
        _ => kam.port,
    };
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "kam.test");
    support::transport(engine, transport);
    if let Some(pki) = &kam.pki {
        trust_only(engine, &pki.ca_pem);
    }
    assert_eq!(EnableSipOutbound(engine, 1), SipSuccess);
    let mut enable = Enable::to_port(u32::from(port), "alice");
    enable.interval = 3600;
    enable.expires = 3600;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        kam.log()
    );
    let instance = instance_id(engine);
    let dump = kam.dump();
    assert!(dump.contains(&format!("Instance: <{instance}>")), "{dump}");
    assert!(dump.contains("Reg-Id: 1"), "{dump}");
    let (rc, i) = registration_info(engine, "alice");
    assert_eq!(rc, SipSuccess);
    assert_eq!((i.outbound, i.flow_timer), (1, FLOW_TIMER), "{i:?}");
    assert_eq!(
        registration_text(engine, "alice", SipTextPubGruu),
        format!("sip:alice@kam.test;gr={instance}")
    );
    // Kamailio's temporary GRUU is made from the binding's Ruid (ul.dump shows it).
    let temp = registration_text(engine, "alice", SipTextTempGruu);
    let ruid = dump
        .lines()
        .find_map(|l| l.trim().strip_prefix("Ruid: "))
        .expect("a Ruid");
    assert!(
        temp.starts_with(&format!("sip:{ruid}-")) && temp.ends_with("@kam.test;gr"),
        "{temp} for {ruid}"
    );
    // Keep-alives every 80-100 % of the Flow-Timer are answered: nothing happens.
    std::thread::sleep(Duration::from_secs(u64::from(FLOW_TIMER) * 2 + 1));
    assert!(
        !logs.contains("keep-alive was not answered"),
        "{:?}",
        logs.all()
    );
    assert_eq!(events.count(SipRegisterSuccess), 1);
    // Frozen, Kamailio answers nothing while its sockets stay open: the next keep-alive
    // goes unanswered (10 s), the flow has failed, and the name registers again.
    kam.pause();
    let frozen = Instant::now();
    while !logs.contains("keep-alive was not answered") {
        assert!(
            frozen.elapsed() < Duration::from_secs(u64::from(FLOW_TIMER) + 15),
            "the failed flow was not noticed: {:?}",
            logs.all()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The REGISTER over the new flow is not answered either: reported as a timeout.
    assert!(
        events.wait_for(SipRegisterTimeOut, 1, Duration::from_secs(10)),
        "{:?}",
        events.events()
    );
    kam.resume();
    // The next attempt follows RFC 5626 §4.5's backoff: 15-30 s after that failure.
    assert!(
        events.wait_for(SipRegisterSuccess, 2, Duration::from_secs(45)),
        "registered again over a new flow: {:?}\n{:?}",
        events.events(),
        logs.all()
    );
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert!(kam.contacts().is_empty(), "{}", kam.dump());
}

#[test]
#[ignore = "needs kamailio with kamailio-outbound-modules (scripts/test installs them and runs this)"]
fn outbound_over_udp_with_stun_keep_alives() {
    outbound_flow(SipTransportUdp);
}

#[test]
#[ignore = "needs kamailio with kamailio-outbound-modules (scripts/test installs them and runs this)"]
fn outbound_over_tcp_with_crlf_keep_alives() {
    outbound_flow(SipTransportTcp);
}

#[test]
#[ignore = "needs kamailio with kamailio-outbound-modules (scripts/test installs them and runs this)"]
fn outbound_over_tls_with_crlf_keep_alives() {
    outbound_flow(SipTransportTls);
}

#[test]
#[ignore = "needs kamailio with kamailio-outbound-modules and dnsmasq (scripts/test installs them and runs this)"]
fn two_flows_to_two_registrars_keep_the_name_registered_when_one_freezes() {
    use support::dnsmasq::{Dnsmasq, Record};
    let kam = |domain| {
        Kamailio::start(KamailioConfig {
            domain,
            outbound: Some(FLOW_TIMER),
            ..Default::default()
        })
    };
    let (first, second) = (kam("flows.test"), kam("flows.test"));
    let srv = |port, priority| Record::Srv {
        name: "_sip._udp.flows.test",
        target: "sip.flows.test",
        port,
        priority,
        weight: 10,
    };
    let dns = Dnsmasq::start(
        &[
            Record::A("sip.flows.test"),
            srv(first.port, 10),
            srv(second.port, 20),
        ],
        3600,
    );
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    support::dnsmasq::dns_servers(engine, &dns);
    credentials(engine, "*", "gw", "gw-secret");
    domain(engine, "flows.test");
    assert_eq!(EnableSipOutbound(engine, 3), SipBadParameter);
    assert_eq!(EnableSipOutbound(engine, 2), SipSuccess);
    let mut enable = Enable::to_port(0, "alice");
    enable.server = "flows.test".into();
    enable.interval = 3600;
    enable.expires = 3600;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}",
        events.events()
    );
    let deadline = Instant::now() + WAIT;
    while !(first.dump().contains("Reg-Id: 1") && second.dump().contains("Reg-Id: 2")) {
        assert!(
            Instant::now() < deadline,
            "one flow each:\n{}\n{}",
            first.dump(),
            second.dump()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The first registrar freezes: its flow fails (and moves), the name stays registered
    // through the second flow, and no failure is reported.
    first.pause();
    let frozen = Instant::now();
    while !logs.contains("keep-alive was not answered") {
        assert!(
            frozen.elapsed() < Duration::from_secs(u64::from(FLOW_TIMER) + 15),
            "{:?}",
            logs.all()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        registration_state(engine, "alice").1,
        SIP_REGISTRATION_STATE::SipStateRegistered
    );
    assert_eq!(
        events.count(SipRegisterTimeOut) + events.count(SipRegisterError),
        0
    );
    assert_eq!(events.count(SipRegisterSuccess), 1, "{:?}", events.events());
    first.resume();
    assert_eq!(StopSipTelephony(engine), SipSuccess);
    assert_eq!(events.count(SipUnregistered), 1, "{:?}", events.events());
}
