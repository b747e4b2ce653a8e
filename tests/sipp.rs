//! Exact faults played by sipp as the registrar, against the C ABI.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::time::{Duration, Instant};
use support::sipp::Sipp;
use support::*;

fn enable(sipp: &Sipp, timeout_ms: u32, nat: bool) -> Enable {
    let mut enable = Enable::to_port(u32::from(sipp.port), "alice");
    enable.expires = 300;
    enable.timeout_ms = timeout_ms;
    enable.nat = nat;
    enable
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_silent_registrar_times_out_after_three_transmissions() {
    let mut sipp = Sipp::uas("silent.xml");
    let (engine, events) = engine(1);
    let started = Instant::now();
    assert_eq!(enable(&sipp, 2000, false).call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterTimeOut, 1, WAIT));
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1950) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    assert_eq!(
        sipp.registers_received(),
        3,
        "0, 500, 1500 ms:\n{}",
        sipp.messages()
    );
    StopSipTelephony(engine);
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_answer_after_retransmissions_registers() {
    let mut sipp = Sipp::uas("late_answer.xml");
    let (engine, events) = engine(1);
    assert_eq!(enable(&sipp, 4000, false).call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    assert_eq!(sipp.registers_received(), 3, "{}", sipp.messages());
    assert_eq!(events.count(SipRegisterTimeOut), 0);
    StopSipTelephony(engine);
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_sha256_challenge_is_answered_correctly() {
    let mut sipp = Sipp::uas("sha256.xml");
    let (engine, events) = engine(1);
    credentials(engine, "sipp.test", "alice", "sipp-secret");
    assert_eq!(enable(&sipp, 4000, false).call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        sipp.messages()
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    let log = sipp.messages();
    let header = |name: &str| {
        log.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in:\n{log}"))
            .trim()
            .to_string()
    };
    let nonce = digest_params(&header("WWW-Authenticate:"))
        .remove("nonce")
        .unwrap();
    let answer = header("Authorization:");
    assert!(answer.contains("algorithm=SHA-256"), "{answer}");
    assert!(digest_valid(&answer, "sipp-secret", &nonce), "{answer}");
    StopSipTelephony(engine);
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_503_is_a_register_error() {
    let mut sipp = Sipp::uas("server_error.xml");
    let (engine, events) = engine(1);
    assert_eq!(enable(&sipp, 4000, false).call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterError, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    StopSipTelephony(engine);
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_received_and_rport_move_the_contact_to_the_public_address() {
    let mut sipp = Sipp::uas("nat.xml");
    let (engine, events) = engine(1);
    assert_eq!(enable(&sipp, 4000, true).call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        sipp.messages()
    );
    assert!(
        sipp.finish().success(),
        "scenario checks failed:\n{}",
        sipp.messages()
    );
    assert_eq!(sipp.registers_received(), 3);
    StopSipTelephony(engine);
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_439_gets_a_registration_without_outbound() {
    let mut sipp = Sipp::uas("outbound_439.xml");
    let (engine, events) = engine(1);
    assert_eq!(EnableSipOutbound(engine, 1), SipSuccess);
    assert_eq!(enable(&sipp, 2000, false).call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        sipp.messages()
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    let messages = sipp.messages();
    let registers: Vec<&str> = messages
        .split("REGISTER sip:")
        .skip(1)
        .map(|r| r.split("\r\n\r\n").next().unwrap_or_default())
        .collect();
    assert_eq!(registers.len(), 2, "{messages}");
    assert!(registers[0].contains(";ob>") && registers[0].contains("reg-id=1"));
    assert!(!registers[1].contains(";ob>") && !registers[1].contains("reg-id"));
    let (_, info) = registration_info(engine, "alice");
    assert_eq!((info.last_status, info.outbound), (200, 0));
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
#[ignore = "needs sipp (scripts/test installs it and runs this)"]
fn sipp_several_contacts_ours_is_found_by_instance_and_reg_id() {
    use lanscape_sip::ffi::lanscape::SIP_REGISTRATION_TEXT::SipTextPubGruu;
    let mut sipp = Sipp::uas("several_contacts.xml");
    let (engine, events) = engine(1);
    assert_eq!(EnableSipOutbound(engine, 1), SipSuccess);
    assert_eq!(
        set_instance_id(engine, "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"),
        SipSuccess
    );
    assert_eq!(enable(&sipp, 2000, false).call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "{:?}\n{}",
        events.events(),
        sipp.messages()
    );
    assert!(sipp.finish().success(), "{}", sipp.messages());
    let (_, info) = registration_info(engine, "alice");
    assert_eq!(
        info.granted_expires, 200,
        "ours, not another instance's or flow's"
    );
    assert_eq!(info.outbound, 1);
    assert_eq!(
        registration_text(engine, "alice", SipTextPubGruu),
        "sip:alice@example.test;gr=urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6"
    );
    StopSipTelephony(engine);
}
