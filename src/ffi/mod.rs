//! The C ABI. Every entry point checks its pointers, strings, ranges and handle, catches
//! any panic, and returns a [`TELEPHONY_RETURN_VALUE`]. No SIP logic lives here.

pub mod codes;

pub mod lanscape;
pub mod profiles;

pub use codes::TELEPHONY_RETURN_VALUE;

use crate::api::{ApiError, TransportChoice};
use crate::engine::transport::Transport;
use std::cell::RefCell;
use std::ffi::{CString, c_char};

/// ABI version of this library; bumped on any incompatible change of the C ABI.
pub const LANSCAPE_SIP_ABI_VERSION: u32 = 2;

/// Longest string accepted from the caller, in bytes (a gateway's name list may hold tens
/// of thousands of names).
pub(crate) const MAX_INPUT_STRING: usize = 8 * 1024 * 1024;

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Records the detail of the last failed call on this thread.
pub(crate) fn set_last_error(text: &str) {
    let clean: String = text.chars().filter(|c| *c != '\0').collect();
    LAST_ERROR.with(|e| *e.borrow_mut() = CString::new(clean).unwrap_or_default());
}

/// Runs an entry point: panics become `SipInternalError`; an error is mapped to its code
/// (the one table in [`codes`]) and its text kept for `GetLastSipErrorText`.
pub(crate) fn entry(f: impl FnOnce() -> Result<(), ApiError>) -> TELEPHONY_RETURN_VALUE {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            set_last_error("");
            TELEPHONY_RETURN_VALUE::SipSuccess
        }
        Ok(Err(e)) => {
            set_last_error(&e.to_string());
            TELEPHONY_RETURN_VALUE::from(&e)
        }
        Err(_) => {
            set_last_error("internal error (caught panic)");
            TELEPHONY_RETURN_VALUE::SipInternalError
        }
    }
}

/// Reads a string argument (copied): `Err` when NULL, longer than [`MAX_INPUT_STRING`] or
/// not UTF-8. Its text names the parameter.
macro_rules! arg_str {
    ($ptr:ident) => {
        // SAFETY: each entry point's `# Safety` section requires its string arguments to be
        // NULL or NUL-terminated and readable for the duration of the call; `read_str`
        // checks NULL and bounds its scan for the terminator.
        unsafe { $crate::ffi::read_str($ptr, stringify!($ptr)) }
    };
}

/// Like [`arg_str!`], NULL reads as `None`.
macro_rules! arg_opt_str {
    ($ptr:ident) => {
        match $ptr.is_null() {
            true => Ok(None),
            false => $crate::ffi::arg_str!($ptr).map(Some),
        }
    };
}

/// An out-parameter: `Err` when NULL, else an [`Out`] to write the result to once the
/// call has succeeded. Checked before any work, so a NULL changes nothing.
macro_rules! out_ptr {
    ($ptr:ident) => {
        match $ptr.is_null() {
            true => Err($crate::api::ApiError::bad(concat!(
                stringify!($ptr),
                " is NULL"
            ))),
            // SAFETY: not NULL (checked above); each entry point's `# Safety` section
            // requires its out-parameters to be NULL or valid, aligned and writable for
            // the duration of the call.
            false => Ok(unsafe { $crate::ffi::Out::new($ptr) }),
        }
    };
}

/// A text out-parameter, the usual C convention: `buffer` holds `capacity` bytes (NULL
/// with 0 asks only for the length); `required`, unless NULL, receives the bytes the text
/// needs, its terminator included. Checked before any work.
macro_rules! text_out {
    ($buffer:ident, $capacity:ident, $required:ident) => {
        match ($buffer.is_null() && $capacity != 0) {
            true => Err($crate::api::ApiError::bad(concat!(
                stringify!($buffer),
                " is NULL but ",
                stringify!($capacity),
                " is not 0"
            ))),
            // SAFETY: each entry point's `# Safety` section requires `buffer` to be NULL
            // (then `capacity` is 0, checked above) or writable for `capacity` bytes, and
            // `required` to be NULL or valid, aligned and writable, for the call's duration.
            false => Ok(unsafe { $crate::ffi::TextOut::new($buffer, $capacity, $required) }),
        }
    };
}

pub(crate) use {arg_opt_str, arg_str, out_ptr, text_out};

/// A caller's text buffer known to be usable (made by [`text_out!`] only).
pub(crate) struct TextOut {
    buffer: *mut c_char,
    capacity: usize,
    required: *mut u32,
}

impl TextOut {
    /// # Safety
    /// `buffer` is NULL with `capacity` 0, or writable for `capacity` bytes; `required` is
    /// NULL or valid, aligned and writable; both for the duration of the call.
    pub(crate) unsafe fn new(buffer: *mut c_char, capacity: u32, required: *mut u32) -> TextOut {
        TextOut {
            buffer,
            capacity: capacity as usize,
            required,
        }
    }

    /// Writes `text` (NULs dropped) and its terminator when they fit, and the length they
    /// need to `required` either way; `BufferTooSmall` (nothing written to the buffer)
    /// when they do not fit.
    pub(crate) fn write(self, text: &str) -> Result<(), ApiError> {
        let bytes: Vec<u8> = text.bytes().filter(|b| *b != 0).collect();
        let needed = bytes.len() + 1;
        if !self.required.is_null() {
            // SAFETY: `TextOut::new`'s contract: `required` is valid, aligned and writable.
            unsafe {
                self.required
                    .write(u32::try_from(needed).unwrap_or(u32::MAX))
            };
        }
        if needed > self.capacity {
            return Err(ApiError::BufferTooSmall(needed));
        }
        // SAFETY: `needed <= capacity`, and `TextOut::new`'s contract makes `buffer`
        // writable for `capacity` bytes (not NULL: a NULL buffer has capacity 0 < needed).
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.buffer.cast::<u8>(), bytes.len());
            self.buffer.add(bytes.len()).write(0);
        }
        Ok(())
    }
}

/// A caller's out-parameter known to be writable (made by [`out_ptr!`] only).
pub(crate) struct Out<T>(*mut T);

impl<T> Out<T> {
    /// # Safety
    /// `ptr` is valid, aligned and writable for a `T` for the duration of the call.
    pub(crate) unsafe fn new(ptr: *mut T) -> Out<T> {
        Out(ptr)
    }

    /// Writes the result.
    pub(crate) fn write(self, value: T) {
        // SAFETY: `Out::new`'s contract: the pointer is valid, aligned and writable.
        unsafe { self.0.write(value) }
    }
}

/// Reads a NUL-terminated UTF-8 string the caller owns (copied; NULL refused).
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string readable for the call's duration.
pub(crate) unsafe fn read_str(ptr: *const c_char, what: &str) -> Result<String, ApiError> {
    if ptr.is_null() {
        return Err(ApiError::bad(format!("{what} is NULL")));
    }
    // SAFETY: `ptr` is not NULL and, by this function's contract, NUL-terminated; the scan
    // stops after MAX_INPUT_STRING + 1 bytes, so an unterminated buffer is not read without
    // end.
    let len = unsafe { libc::strnlen(ptr, MAX_INPUT_STRING + 1) };
    if len > MAX_INPUT_STRING {
        return Err(ApiError::bad(format!(
            "{what} is longer than {MAX_INPUT_STRING} bytes"
        )));
    }
    // SAFETY: a terminator lies within the first `len + 1` bytes (strnlen found it), all
    // readable by this function's contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len) };
    std::str::from_utf8(bytes)
        .map(str::to_string)
        .map_err(|_| ApiError::bad(format!("{what} is not UTF-8")))
}

/// The `SIP_TRANSPORT` value of a transport.
pub(crate) fn transport_code(transport: Transport) -> u32 {
    match transport {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
    }
}

/// Reads a `SIP_TRANSPORT` passed as an integer (an out-of-range enum is refused, not UB).
pub(crate) fn read_transport(value: u32) -> Result<TransportChoice, ApiError> {
    match value {
        0 => Ok(TransportChoice::Only(Transport::Udp)),
        1 => Ok(TransportChoice::Only(Transport::Tcp)),
        2 => Ok(TransportChoice::Only(Transport::Tls)),
        3 => Ok(TransportChoice::Any),
        _ => Err(ApiError::bad("transport is not a SIP_TRANSPORT")),
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

#[cfg(test)]
mod tests {
    /// The header users include is the one cbindgen generates from this module now.
    #[test]
    fn committed_header_is_the_generated_one() {
        let generated = include_str!(concat!(env!("OUT_DIR"), "/lanscape_sip.h"));
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/include/lanscape_sip.h");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        if committed == generated {
            return;
        }
        if std::env::var_os("UPDATE_HEADER").is_some() {
            std::fs::write(path, generated).expect("include/lanscape_sip.h is writable");
            return;
        }
        panic!(
            "include/lanscape_sip.h differs from what cbindgen generates from src/ffi: \
             run `UPDATE_HEADER=1 cargo test --lib header` and commit the header"
        );
    }
}
