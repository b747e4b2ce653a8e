//! One registration service for every registry: started by the first open, stopped with
//! its threads joined and its profiles unregistered by the last close. One test: it owns
//! the process.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::profiles::*;
use lanscape_sip::testkit::hooks;
use support::*;

#[test]
fn first_open_starts_the_service_and_last_close_stops_it() {
    let registrar = Registrar::accepting();
    for round in 0..2 {
        assert!(
            !hooks::profile_service_running() && !hooks::io_service_running(),
            "round {round}"
        );
        let left = threads_left_after_join();
        assert!(left.is_empty(), "{left:?}");
        let (mut a, mut b) = (0, 0);
        // SAFETY: C strings and out-pointers are live locals (or NULL).
        unsafe {
            assert_eq!(
                SipRegistryOpen(None, None, std::ptr::null_mut(), &mut a),
                SipSuccess
            );
            assert_eq!(
                SipRegistryOpen(None, None, std::ptr::null_mut(), &mut b),
                SipSuccess
            );
        }
        assert!(hooks::profile_service_running());
        let target = format!("127.0.0.1:{}", registrar.port());
        let udp = SIP_TRANSPORT::SipTransportUdp;
        let id = create_profile(a, "life@127.0.0.1", &target, None, udp);
        let mut profile = 0;
        assert_eq!(
            // SAFETY: C strings and out-pointers are live locals (or NULL).
            unsafe { SipProfileRetrieve(b, id, &mut profile) },
            SipSuccess
        );
        assert_eq!(SipProfileEnable(profile), SipSuccess);
        assert!(registrar.wait_for(WAIT, |_| !registrar_has_none(&registrar)));
        assert_eq!(SipRegistryClose(a), SipSuccess);
        assert!(hooks::profile_service_running(), "b is still open");
        assert_eq!(SipRegistryClose(b), SipSuccess);
        assert!(!hooks::profile_service_running() && !hooks::io_service_running());
        let left = threads_left_after_join();
        assert!(left.is_empty(), "{left:?}");
        assert!(
            registrar_has_none(&registrar),
            "unregistered by the last close"
        );
    }
}

fn registrar_has_none(registrar: &Registrar) -> bool {
    registrar.bindings("life").is_empty()
}
