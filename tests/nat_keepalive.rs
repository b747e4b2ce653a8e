//! NAT (RFC 3581 received/rport) and keep-alives.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
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

fn listening() -> (UdpSocket, u32) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let port = u32::from(socket.local_addr().unwrap().port());
    (socket, port)
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

#[test]
fn lanscape_send_sip_keep_alive_goes_to_an_address_or_the_proxy() {
    let (target, target_port) = listening();
    let (proxy, proxy_port) = listening();
    let (engine, _events) = engine(2);
    let address = cstr("127.0.0.1");
    let send = |address: *const std::ffi::c_char, port, through_proxy, line| {
        // SAFETY: every caller passes a live C string, or NULL.
        unsafe { SendSipKeepAliveEx(engine, address, port, through_proxy, line) }
    };
    assert_eq!(send(address.as_ptr(), target_port, 0, -1), SipSuccess);
    assert_eq!(crlf_from(&target), Some(local_port(engine) as u16));
    assert_eq!(send(std::ptr::null(), target_port, 0, -1), SipBadParameter);
    assert_eq!(send(address.as_ptr(), 70_000, 0, -1), SipBadParameter);
    assert_eq!(send(address.as_ptr(), target_port, 0, 2), SipBadParameter);
    assert_eq!(send(address.as_ptr(), target_port, 0, -2), SipBadParameter);
    assert_eq!(send(std::ptr::null(), 0, 1, -1), SipProxyNotEnabled);
    // SAFETY: a live C string.
    let rc = unsafe { EnableSipProxyServer(engine, address.as_ptr(), proxy_port) };
    assert_eq!(rc, SipSuccess);
    assert_eq!(send(std::ptr::null(), 0, 1, 0), SipSuccess);
    assert_eq!(crlf_from(&proxy), Some(local_port(engine) as u16));
    StopSipTelephony(engine);
}

#[test]
fn lanscape_send_sip_keep_alive_uses_the_connection_of_the_lines_registration() {
    use lanscape_sip::ffi::profiles::SIP_TRANSPORT;
    let registrar = Registrar::start_on("127.0.0.1:0".parse().unwrap(), Listen::Tcp, |_, _| {
        Action::Register
    });
    let (engine, events) = engine(2);
    transport(engine, SIP_TRANSPORT::SipTransportTcp);
    let mut enable = Enable::to(&registrar, "alice,bob");
    enable.per_line = true;
    assert_eq!(enable.call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    let address = cstr("127.0.0.1");
    // SAFETY: a live C string.
    let rc = unsafe { SendSipKeepAliveEx(engine, address.as_ptr(), registrar.port(), 0, 1) };
    assert_eq!(rc, SipSuccess);
    let deadline = std::time::Instant::now() + WAIT;
    while registrar.keepalives() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(registrar.keepalives(), 1, "on line 1's TCP connection");
    // Over TCP a keep-alive never opens a connection: none to this port.
    let elsewhere = u32::from(free_port());
    // SAFETY: a live C string.
    let rc = unsafe { SendSipKeepAliveEx(engine, address.as_ptr(), elsewhere, 0, 0) };
    assert_eq!(rc, SipCallFailure);
    assert_eq!(registrar.registers().len(), 2, "nothing else was sent");
    StopSipTelephony(engine);
}
