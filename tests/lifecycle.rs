//! The shared service starts with the first engine and stops, its threads joined, with the
//! last one, so a host can unload the library. One test per binary: it owns the process.

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::*;
use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::testkit::hooks;
use support::*;

#[test]
fn last_engine_stopped_joins_every_library_thread() {
    for round in 0..3 {
        assert!(!hooks::io_service_running(), "round {round}");
        assert!(
            library_threads().is_empty(),
            "round {round}: {:?}",
            library_threads()
        );
        let registrar = Registrar::accepting();
        let (a, events_a) = engine(1);
        let (b, events_b) = engine(1);
        assert!(hooks::io_service_running());
        assert_eq!(Enable::to(&registrar, "a").call(a), SipSuccess);
        assert_eq!(Enable::to(&registrar, "b").call(b), SipSuccess);
        assert!(events_a.wait_for(SipRegisterSuccess, 1, WAIT));
        assert!(events_b.wait_for(SipRegisterSuccess, 1, WAIT));
        let threads = library_threads();
        assert!(
            threads.iter().any(|t| t == "lanscape-sip-io"),
            "{threads:?}"
        );
        assert_eq!(
            threads.iter().filter(|t| *t == "lanscape-sip-ev").count(),
            2,
            "{threads:?}"
        );
        assert_eq!(StopSipTelephony(a), SipSuccess);
        assert!(hooks::io_service_running(), "b still uses the service");
        assert_eq!(StopSipTelephony(b), SipSuccess);
        assert!(!hooks::io_service_running());
        let left = threads_left_after_join();
        assert!(left.is_empty(), "{left:?}");
        assert_eq!(hooks::io_threads_alive(), 0);
    }
}
