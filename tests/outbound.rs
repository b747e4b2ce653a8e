//! SIP Outbound (RFC 5626) and GRUU (RFC 5627) settings through the C ABI, against the
//! scripted registrar: what the REGISTER carries, the instance id, the 439 fallback.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use std::time::Duration;
use support::*;

#[test]
fn an_outbound_registration_carries_its_flow_and_instance() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    let instance = instance_id(engine);
    assert!(
        instance.starts_with("urn:uuid:") && instance.len() == 45,
        "{instance}"
    );
    let (other, _) = support::engine(1);
    assert_ne!(instance, instance_id(other), "one per engine");
    assert_eq!(StopSipTelephony(other), SipSuccess);
    assert_eq!(EnableSipOutbound(engine, 1), SipSuccess);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let reg = &registrar.registers()[0];
    assert_eq!(
        reg.header("Contact").unwrap(),
        format!(
            "<sip:alice@127.0.0.1:{};ob>;+sip.instance=\"<{instance}>\";reg-id=1",
            local_port(engine)
        )
    );
    assert_eq!(reg.header("Supported").unwrap(), "outbound, path, gruu");
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
fn a_plain_registration_carries_no_instance_unless_one_is_set() {
    let registrar = Registrar::accepting();
    let (engine, events) = engine(1);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    let reg = &registrar.registers()[0];
    assert!(reg.header("Supported").is_none());
    assert!(!reg.header("Contact").unwrap().contains("instance"));
    // An instance the application keeps asks for GRUUs, also without Outbound.
    let urn = "urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6";
    assert_eq!(set_instance_id(engine, urn), SipSuccess);
    assert_eq!(instance_id(engine), urn);
    assert_eq!(Enable::to(&registrar, "bob").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 2, WAIT));
    let reg = registrar
        .registers()
        .into_iter()
        .find(|r| r.text.contains("sip:bob@"))
        .unwrap();
    assert_eq!(
        reg.header("Contact").unwrap(),
        format!(
            "<sip:bob@127.0.0.1:{}>;+sip.instance=\"<{urn}>\"",
            local_port(engine)
        )
    );
    assert_eq!(reg.header("Supported").unwrap(), "path, gruu");
    for bad in [
        "",
        "uuid:1234",
        "urn:",
        "urn:x:\"quoted\"",
        "urn:a:<b>",
        "urn:a b:c",
    ] {
        assert_eq!(set_instance_id(engine, bad), SipBadParameter, "{bad:?}");
    }
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}

#[test]
fn a_439_gets_a_registration_without_outbound() {
    let registrar = Registrar::start(|req, _| {
        if req.text.contains(";ob>") {
            Action::Reply(vec![(439, vec![])])
        } else {
            Action::Register
        }
    });
    let (engine, events) = engine(1);
    assert_eq!(EnableSipOutbound(engine, 1), SipSuccess);
    assert_eq!(Enable::to(&registrar, "alice").call(engine), SipSuccess);
    assert!(events.wait_for(SipRegisterSuccess, 1, WAIT));
    assert!(registrar.wait_for(Duration::from_secs(1), |r| r.len() >= 2));
    let regs = registrar.registers();
    assert!(regs[0].text.contains(";ob>"));
    assert!(!regs[1].text.contains(";ob>") && !regs[1].text.contains("reg-id"));
    assert_eq!(events.count(SipRegisterError), 0, "not a failure");
    assert_eq!(registrar.bindings("alice").len(), 1);
    assert_eq!(StopSipTelephony(engine), SipSuccess);
}
