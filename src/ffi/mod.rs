//! The C ABI. Every entry point checks its pointers, strings, ranges and handle, catches
//! any panic, and returns a [`TELEPHONY_RETURN_VALUE`]. No SIP logic lives here.

pub mod codes;

pub mod lanscape;
pub mod profiles;

pub use codes::TELEPHONY_RETURN_VALUE;

use std::cell::RefCell;
use std::ffi::{CStr, CString, c_char};

/// ABI version of this library; bumped on any incompatible change of the C ABI.
pub const LANSCAPE_SIP_ABI_VERSION: u32 = 1;

/// Longest string accepted from the caller, in bytes (a gateway's name list may hold tens
/// of thousands of names).
pub const MAX_INPUT_STRING: usize = 8 * 1024 * 1024;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the detail of the last failed call on this thread.
fn set_last_error(text: &str) {
    let clean: String = text.chars().filter(|c| *c != '\0').collect();
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(clean).unwrap_or_default());
}

/// Runs an entry point: panics become `SipInternalError`, errors set the last-error text.
pub(crate) fn entry(
    f: impl FnOnce() -> Result<(), (TELEPHONY_RETURN_VALUE, String)>,
) -> TELEPHONY_RETURN_VALUE {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error("");
            TELEPHONY_RETURN_VALUE::SipSuccess
        }
        Ok(Err((code, text))) => {
            set_last_error(&text);
            code
        }
        Err(_) => {
            set_last_error("internal error (caught panic)");
            TELEPHONY_RETURN_VALUE::SipInternalError
        }
    }
}

/// Shorthand for a bad parameter error.
pub(crate) fn bad(what: &str) -> (TELEPHONY_RETURN_VALUE, String) {
    (TELEPHONY_RETURN_VALUE::SipBadParameter, what.to_string())
}

/// Reads a NUL-terminated UTF-8 string the caller owns (copied; NULL refused).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string readable for the call's duration.
pub(crate) unsafe fn read_str(
    ptr: *const c_char,
    what: &str,
) -> Result<String, (TELEPHONY_RETURN_VALUE, String)> {
    if ptr.is_null() {
        return Err(bad(&format!("{what} is NULL")));
    }
    // Bounded scan for the terminator, so an unterminated buffer is not read without end.
    let len = unsafe { libc::strnlen(ptr, MAX_INPUT_STRING + 1) };
    if len > MAX_INPUT_STRING {
        return Err(bad(&format!(
            "{what} is longer than {MAX_INPUT_STRING} bytes"
        )));
    }
    let cstr = unsafe { CStr::from_ptr(ptr) };
    cstr.to_str()
        .map(str::to_string)
        .map_err(|_| bad(&format!("{what} is not UTF-8")))
}

/// Like [`read_str`], NULL reads as `None`.
///
/// # Safety
/// As for [`read_str`].
pub(crate) unsafe fn read_opt_str(
    ptr: *const c_char,
    what: &str,
) -> Result<Option<String>, (TELEPHONY_RETURN_VALUE, String)> {
    if ptr.is_null() {
        Ok(None)
    } else {
        unsafe { read_str(ptr, what) }.map(Some)
    }
}

/// Reads a `SIP_TRANSPORT` passed as an integer (an out-of-range enum is refused, not UB).
pub(crate) fn read_transport(
    value: u32,
) -> Result<crate::engine::transport::Transport, (TELEPHONY_RETURN_VALUE, String)> {
    use crate::engine::transport::Transport;
    match value {
        0 => Ok(Transport::Udp),
        1 => Ok(Transport::Tcp),
        2 => Ok(Transport::Tls),
        _ => Err(bad("transport is not a SIP_TRANSPORT")),
    }
}

/// Reads a C boolean (`int`, zero or non-zero).
pub(crate) fn read_bool(value: i32) -> bool {
    value != 0
}

/// The ABI version of the loaded library (compare with `LANSCAPE_SIP_ABI_VERSION`).
#[unsafe(no_mangle)]
pub extern "C" fn LanScapeSipAbiVersion() -> u32 {
    LANSCAPE_SIP_ABI_VERSION
}

/// The name of a `TELEPHONY_RETURN_VALUE` (a static string), or "unknown".
#[unsafe(no_mangle)]
pub extern "C" fn TelephonyReturnValueText(code: i32) -> *const c_char {
    match TELEPHONY_RETURN_VALUE::from_raw(code) {
        Some(c) => c.name_ptr(),
        None => c"unknown".as_ptr(),
    }
}

/// Detail of the last failed call on the calling thread ("" after a success). The string
/// stays valid until the next call of this library on the same thread.
#[unsafe(no_mangle)]
pub extern "C" fn GetLastSipErrorText() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}
