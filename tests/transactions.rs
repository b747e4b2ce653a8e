//! Transactions and what arrives from the network: Timer E and F, provisional responses,
//! a 2xx without our contact, and stray, spoofed or malformed packets.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use support::*;

#[test]
fn timeout_after_time_out_ms_with_timer_e_retransmissions() {
    let registrar = Registrar::start(|_, _| Action::Ignore);
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 2000;
    enable.interval = 30;
    let started = Instant::now();
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterTimeOut, 1, WAIT));
    let took = started.elapsed().as_millis();
    assert!((1900..=4000).contains(&took), "timed out after {took} ms");
    // Sent at 0, 500 and 1500 ms: the exact diagram is a simulated-clock unit test.
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3);
    assert!(
        regs.iter().all(|r| r.branch() == regs[0].branch()),
        "retransmissions, not new requests"
    );
    StopSipTelephony(engine);
}

#[test]
fn a_provisional_response_slows_retransmissions_to_t2() {
    // 100 Trying to the first transmission, silence to the second, 200 to the third. With
    // the 100 understood, Timer E is T2 (4 s) from then on: the third transmission comes
    // about 4 s after the second, not 1 s as it would without it.
    let mut seen = 0;
    let registrar = Registrar::start(move |req, _| {
        seen += 1;
        match seen {
            1 => Action::Reply(vec![(100, vec![])]),
            2 => Action::Ignore,
            _ => {
                Action::OkWithContacts(vec![format!("<{}>;expires=3600", req.contact_uri())], None)
            }
        }
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 20_000;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, Duration::from_secs(10)));
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3, "{regs:#?}");
    assert!(regs.iter().all(|r| r.branch() == regs[0].branch()));
    let gap = |i: usize| (regs[i + 1].at - regs[i].at).as_millis();
    assert!(gap(0) < 2000, "first retransmission at T1: {} ms", gap(0));
    assert!(gap(1) >= 3500, "then T2, not 2*T1: {} ms", gap(1));
    StopSipTelephony(engine);
}

#[test]
fn ok_without_our_contact_is_retried_then_an_error() {
    let registrar = Registrar::start(|_, _| {
        Action::OkWithContacts(vec!["<sip:alice@192.0.2.1:5060>;expires=300".into()], None)
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.interval = 30;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterError, 1, WAIT));
    assert_eq!(registrar.registers().len(), 2, "re-registered once");
    assert_eq!(events.count(SipRegisterSuccess), 0);
    StopSipTelephony(engine);
}

#[test]
fn stray_spoofed_and_malformed_packets_change_nothing() {
    // From the registrar's own address: wrong branch, wrong Call-ID, wrong CSeq, garbage,
    // a huge header, a truncated answer. None is the answer, so the request fails when
    // its time is up; as one answer names our branch but cannot be read, it fails for
    // that reason, not as a bare timeout.
    let registrar = Registrar::start(|req, st| {
        let ok = String::from_utf8(response(
            req,
            200,
            &[format!("Contact: <{}>", req.contact_uri())],
            st,
        ))
        .unwrap();
        let cseq = req.header("CSeq").unwrap();
        Action::RawMany(vec![
            ok.replace(&req.branch(), "z9hG4bKforged").into_bytes(),
            ok.replace(&req.call_id(), "other-call").into_bytes(),
            ok.replace(&cseq, "999 REGISTER").into_bytes(),
            ok.replace("CSeq: ", "CSeq: x").into_bytes(),
            b"\x00\x01garbage".to_vec(),
            format!("SIP/2.0 200 OK\r\nX: {}\r\n\r\n", "a".repeat(20_000)).into_bytes(),
            ok.as_bytes()[..40].to_vec(),
        ])
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 1500;
    enable.interval = 30;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(registrar.wait_for(WAIT, |r| !r.is_empty()));
    // The right answer, from the wrong address.
    let req = registrar.registers()[0].clone();
    let ok = response(
        &req,
        200,
        &[format!("Contact: <{}>", req.contact_uri())],
        &RegistrarState::default(),
    );
    let attacker = UdpSocket::bind("127.0.0.1:0").unwrap();
    attacker.send_to(&ok, req.from).unwrap();
    assert!(
        events.wait_for(SipRegisterError, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert!(events.events()[0].reason.contains("CSeq"));
    assert_eq!(
        events.count(SipRegisterSuccess),
        0,
        "nothing spoofed was believed"
    );
    StopSipTelephony(engine);
}

#[test]
fn malformed_responses_from_the_registrar_are_logged_and_survived() {
    let registrar = Registrar::start(|req, st| {
        if req.cseq() == 1 {
            Action::Raw(b"SIP/2.0 200 OK\r\nVia: broken\r\n\r\n".to_vec())
        } else {
            let _ = st;
            Action::Register
        }
    });
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 1000;
    enable.interval = 1;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterTimeOut, 1, WAIT));
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "recovers on the retry"
    );
    StopSipTelephony(engine);
    assert!(
        logs.contains("dropped malformed message"),
        "{:?}",
        logs.all()
    );
}

#[test]
fn a_transaction_answered_only_unreadably_ends_with_the_reason_not_a_bare_timeout() {
    // The registrar answers the first REGISTER with our branch but without a CSeq.
    let registrar = Registrar::start(|req, _| {
        if req.cseq() == 1 {
            let via = req.header("Via").unwrap();
            let call_id = req.call_id();
            Action::Raw(
                format!("SIP/2.0 200 OK\r\nVia: {via}\r\nCall-ID: {call_id}\r\n\r\n").into_bytes(),
            )
        } else {
            Action::Register
        }
    });
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 1000;
    enable.interval = 1;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterError, 1, WAIT),
        "{:?}",
        events.events()
    );
    let reason = &events.events()[0].reason;
    assert!(
        reason.contains("only unreadable ones") && reason.contains("CSeq"),
        "{reason}"
    );
    assert_eq!(events.count(SipRegisterTimeOut), 0);
    assert!(
        events.wait_for(SipRegisterSuccess, 1, WAIT),
        "recovers on the retry"
    );
    StopSipTelephony(engine);
}

#[test]
fn a_request_this_host_cannot_send_is_reported_at_once_with_the_reason() {
    // A datagram to the broadcast address from a socket not allowed to broadcast: the
    // kernel refuses it (EACCES) at every try. It is a failure of its own, reported at
    // once with the reason, not a timeout 30 s later.
    let (engine, events) = engine(1);
    let logs = Logs::capture(engine, false);
    let mut enable = Enable::to_port(5060, "alice");
    enable.server = "255.255.255.255".into();
    enable.timeout_ms = 30_000;
    let started = Instant::now();
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(
        events.wait_for(SipRegisterError, 1, WAIT),
        "{:?}",
        events.events()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(events.count(SipRegisterTimeOut), 0);
    let reason = &events.events()[0].reason;
    assert!(reason.contains("could not send"), "{reason}");
    assert!(
        logs.contains("could not send") && logs.contains("ermission denied"),
        "{:?}",
        logs.all()
    );
    // It is retried on the backoff (1 s, doubling), and reported once.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(events.count(SipRegisterError), 1);
    StopSipTelephony(engine);
}
