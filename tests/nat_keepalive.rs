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
