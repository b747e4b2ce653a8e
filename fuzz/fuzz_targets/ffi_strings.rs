//! Arbitrary bytes as the C strings and numbers of the entry points. Every call must return
//! a code (never crash), and strings with a NUL inside or bad UTF-8 must be refused. Only
//! 127.0.0.1 is ever sent to: registrar addresses are fixed, nothing fuzzed is resolved.
#![no_main]

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use lanscape_sip::ffi::profiles::*;
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;
use std::sync::OnceLock;

/// One engine and one registry for the whole run (starting threads per input would only
/// measure thread creation).
fn engine() -> SIPHANDLE {
    static ENGINE: OnceLock<SIPHANDLE> = OnceLock::new();
    *ENGINE.get_or_init(|| {
        let mut h = 0;
        let ip = CString::new("127.0.0.1").unwrap();
        assert_eq!(
            unsafe { StartSipTelephony(std::ptr::null(), 4, 0, ip.as_ptr(), &mut h) },
            SipSuccess
        );
        h
    })
}

fn registry() -> SIPREGISTRY {
    static REGISTRY: OnceLock<SIPREGISTRY> = OnceLock::new();
    *REGISTRY.get_or_init(|| {
        let mut r = 0;
        assert_eq!(
            unsafe { SipRegistryOpen(None, None, std::ptr::null_mut(), &mut r) },
            SipSuccess
        );
        r
    })
}

/// The next field: up to a 0xFF byte. Interior NULs are kept, so the C string ends early.
fn field<'a>(data: &mut &'a [u8]) -> &'a [u8] {
    let end = data.iter().position(|&b| b == 0xff).unwrap_or(data.len());
    let (f, rest) = data.split_at(end);
    *data = rest.get(1..).unwrap_or(&[]);
    f
}

fn c(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap()
}

fn number(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .take(4)
        .fold(0u32, |a, &b| a.wrapping_mul(256).wrapping_add(u32::from(b)))
}

fn known(code: TELEPHONY_RETURN_VALUE) {
    assert!(lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::from_raw(code as i32).is_some());
    assert_ne!(code, SipInternalError, "a panic was caught");
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let names = c(field(&mut data));
    let domain = c(field(&mut data));
    let proxy = c(field(&mut data));
    let realm = c(field(&mut data));
    let user = c(field(&mut data));
    let aor = c(field(&mut data));
    let registrar = c(field(&mut data));
    let numbers = field(&mut data);
    let n = |i: usize| number(numbers.get(i * 4..).unwrap_or(&[]));
    let h = engine();
    unsafe {
        known(EnableSipDomain(h, domain.as_ptr()));
        let domain_ok = EnableSipDomain(h, domain.as_ptr()) == SipSuccess;
        let text = domain.to_str();
        assert!(!domain_ok || text.is_ok(), "non-UTF-8 domain accepted");
        known(EnableSipProxyServer(h, proxy.as_ptr(), n(0)));
        known(AddAuthorizationCredentials(
            h,
            user.as_ptr(),
            names.as_ptr(),
            realm.as_ptr(),
        ));
        let server = CString::new("127.0.0.1").unwrap();
        // Port 9 (discard) on loopback; a short timeout keeps bindings from piling up.
        let rc = EnableSipRegisterServer(
            h,
            names.as_ptr(),
            (n(1) & 1) as i32,
            0,
            server.as_ptr(),
            9,
            n(2) % 4000,
            n(3) % 4000,
            n(4) % 1000,
            (n(5) & 1) as i32,
        );
        known(rc);
        if rc == SipSuccess {
            known(DisableSipRegisterServer(h));
        }
        let mut state = SIP_REGISTRATION_STATE::SipStateUnregistered;
        known(GetSipRegistrationState(h, names.as_ptr(), &mut state));
        let mut id = 0;
        let rc = SipProfileCreate(
            registry(),
            aor.as_ptr(),
            registrar.as_ptr(),
            if n(1) & 2 != 0 {
                proxy.as_ptr()
            } else {
                std::ptr::null()
            },
            user.as_ptr(),
            realm.as_ptr(),
            n(6),
            n(7) % 4,
            &mut id,
        );
        known(rc);
        if rc == SipSuccess {
            assert_eq!(SipProfileRemove(registry(), id), SipSuccess);
        }
        // Forged handles from the input.
        let forged = u64::from(n(8)) << 32 | u64::from(n(9));
        if forged != h {
            assert_eq!(DisableSipRegisterServer(forged), SipInvalidHandle);
        }
    }
});
