//! NAT (RFC 3581 received/rport) and keep-alives.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use std::net::UdpSocket;
use std::time::Duration;
use support::*;

#[test]
fn nat_detection_removes_the_old_contact_before_adding_the_public_one() {
    let registrar = Registrar::accepting();
    registrar.set_via_params("received=203.0.113.5;rport=40000");
    let (engine, events) = engine(1);
    let mut enable = Enable::to(&registrar, "alice");
    enable.nat = true;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let regs = registrar.registers();
    assert_eq!(regs.len(), 3, "{regs:#?}");
    let private = format!("sip:alice@127.0.0.1:{}", local_port(engine));
    assert_eq!(regs[0].contact_uri(), private);
    assert_eq!(regs[1].contact_uri(), private, "old contact removed first");
    assert_eq!(regs[1].expires(), Some(0));
    assert!(regs[1].header("Contact").unwrap().ends_with(";expires=0"));
    assert_eq!(regs[2].contact_uri(), "sip:alice@203.0.113.5:40000");
    assert_eq!(regs[2].expires(), Some(3600));
    assert_eq!(
        registrar.bindings("alice"),
        [("sip:alice@203.0.113.5:40000".to_string(), 3600)]
    );
    assert!(regs.iter().all(|r| r.call_id() == regs[0].call_id()));
    StopSipTelephony(engine);
    assert!(
        registrar.bindings("alice").is_empty(),
        "public contact removed on stop"
    );
}

#[test]
fn nat_detection_off_ignores_received() {
    let registrar = Registrar::accepting();
    registrar.set_via_params("received=203.0.113.5;rport=40000");
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(registrar.registers().len(), 1);
    StopSipTelephony(engine);
}

#[test]
fn keep_alives_are_crlf_to_the_registrar() {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = u32::from(socket.local_addr().unwrap().port());
    let (engine, _events) = engine(1);
    let names = cstr("alice");
    let server = cstr("127.0.0.1");
    // SAFETY: C strings and out-pointers are live locals (or NULL).
    let rc = unsafe {
        EnableSipRegisterServer(
            engine,
            names.as_ptr(),
            0,
            0,
            server.as_ptr(),
            port,
            60,
            60,
            30_000,
            0,
        )
    };
    assert_eq!(rc, SipSuccess);
    let mut buf = [0u8; 4096];
    let (n, _) = socket.recv_from(&mut buf).unwrap();
    assert!(buf[..n].starts_with(b"REGISTER"));
    assert_eq!(SendSipKeepAlive(engine), SipSuccess);
    let mut got_crlf = false;
    for _ in 0..5 {
        let (n, _) = socket.recv_from(&mut buf).unwrap();
        if &buf[..n] == b"\r\n\r\n" {
            got_crlf = true;
            break;
        }
    }
    assert!(got_crlf);
    StopSipTelephony(engine);
}

/// Receives datagrams on `socket` until a CRLF keep-alive arrives; its source port.
fn crlf_from(socket: &UdpSocket) -> Option<u16> {
    let mut buf = [0u8; 4096];
    for _ in 0..10 {
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        if &buf[..n] == b"\r\n\r\n" {
            return Some(from.port());
        }
    }
    None
}

#[test]
fn lanscape_keep_alive_transmissions_take_sip_rtp_and_an_interval() {
    let (registrar, port) = listening();
    let (engine, _events) = engine(1);
    let mut enable = Enable::to_port(port, "alice");
    enable.timeout_ms = 30_000;
    assert_eq!(enable.call(engine), SipSuccess);
    assert_eq!(
        EnableKeepAliveTransmissionsEx(engine, 1, 0, 0),
        SipBadParameter
    );
    assert_eq!(
        EnableKeepAliveTransmissionsEx(engine, 1, 1, 86_401),
        SipBadParameter
    );
    assert_eq!(
        EnableKeepAliveTransmissionsEx(0x1234, 1, 1, 1),
        SipInvalidHandle
    );
    assert_eq!(EnableKeepAliveTransmissionsEx(engine, 1, 1, 1), SipSuccess);
    assert_eq!(crlf_from(&registrar), Some(local_port(engine) as u16));
    assert_eq!(
        crlf_from(&registrar),
        Some(local_port(engine) as u16),
        "again"
    );
    // SIP keep-alives off (RTP on is accepted and means nothing): none any more.
    assert_eq!(EnableKeepAliveTransmissionsEx(engine, 0, 1, 0), SipSuccess);
    std::thread::sleep(Duration::from_millis(100)); // one may have been on its way
    registrar
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while registrar.recv_from(&mut buf).is_ok() {} // what came before
    let quiet_until = std::time::Instant::now() + Duration::from_millis(2500);
    while std::time::Instant::now() < quiet_until {
        // REGISTER retransmissions may come (nobody answers them); no keep-alive.
        if let Ok((n, _)) = registrar.recv_from(&mut buf) {
            assert_ne!(
                &buf[..n],
                b"\r\n\r\n",
                "a keep-alive after they were turned off"
            );
        }
    }
    StopSipTelephony(engine);
}

/// `SendSipKeepAliveEx(engine, host, port, enable_state, keep_alive_seconds)`.
fn send_keep_alive(
    engine: SIPHANDLE,
    host: &str,
    port: u32,
    on: bool,
    seconds: i32,
) -> TELEPHONY_RETURN_VALUE {
    let host = cstr(host);
    // SAFETY: a live C string.
    unsafe { SendSipKeepAliveEx(engine, host.as_ptr(), port, on as i32, seconds) }
}

#[test]
fn lanscape_send_sip_keep_alive_sends_to_a_destination_every_period_until_disabled() {
    let (first, first_port) = listening();
    let (second, second_port) = listening();
    let (engine, _events) = engine(1);
    let sip_port = Some(local_port(engine) as u16);
    assert_eq!(
        send_keep_alive(engine, "127.0.0.1", first_port, true, 0),
        SipBadParameter
    );
    assert_eq!(
        send_keep_alive(engine, "127.0.0.1", first_port, true, 86_401),
        SipBadParameter
    );
    assert_eq!(
        send_keep_alive(engine, "127.0.0.1", 70_000, true, 1),
        SipBadParameter
    );
    assert_eq!(
        send_keep_alive(engine, "no-such-host.invalid", 5060, true, 1),
        SipUnknownHost
    );
    // SAFETY: NULL is a valid argument.
    let rc = unsafe { SendSipKeepAliveEx(engine, std::ptr::null(), first_port, 1, 1) };
    assert_eq!(rc, SipBadParameter);
    assert_eq!(
        send_keep_alive(0x1234, "127.0.0.1", first_port, true, 1),
        SipInvalidHandle
    );

    let started = std::time::Instant::now();
    assert_eq!(
        send_keep_alive(engine, "127.0.0.1", first_port, true, 1),
        SipSuccess
    );
    assert_eq!(
        send_keep_alive(engine, "localhost", second_port, true, 2),
        SipSuccess
    );
    assert_eq!(crlf_from(&first), sip_port, "at once");
    assert_eq!(crlf_from(&second), sip_port, "at once, by name");
    assert_eq!(crlf_from(&first), sip_port, "a period later");
    assert_eq!(crlf_from(&first), sip_port, "two periods later");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(crlf_from(&second), sip_port, "its own period");
    // Disabled for the first destination (the period is then ignored): none any more.
    assert_eq!(
        send_keep_alive(engine, "127.0.0.1", first_port, false, -1),
        SipSuccess
    );
    std::thread::sleep(Duration::from_millis(100)); // one may have been on its way
    first
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 64];
    while first.recv_from(&mut buf).is_ok() {}
    first
        .set_read_timeout(Some(Duration::from_millis(2500)))
        .unwrap();
    assert!(
        first.recv_from(&mut buf).is_err(),
        "nothing after disabling"
    );
    assert_eq!(crlf_from(&second), sip_port, "the other goes on");
    StopSipTelephony(engine);
}

#[test]
fn lanscape_send_sip_keep_alive_goes_on_the_connection_of_a_tcp_registration() {
    use lanscape_sip::ffi::profiles::SIP_TRANSPORT;
    let registrar = Registrar::start_on("127.0.0.1:0".parse().unwrap(), Listen::Tcp, |_, _| {
        Action::Register
    });
    let (engine, events) = engine(1);
    transport(engine, SIP_TRANSPORT::SipTransportTcp);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert_eq!(
        send_keep_alive(engine, "127.0.0.1", registrar.port(), true, 1),
        SipSuccess
    );
    let deadline = std::time::Instant::now() + WAIT;
    while registrar.keepalives() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        registrar.keepalives() >= 2,
        "at once and a second later, on the connection"
    );
    assert_eq!(registrar.registers().len(), 1, "nothing else was sent");
    StopSipTelephony(engine);
}
