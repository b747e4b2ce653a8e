//! The one error type of both APIs. The C layer maps each variant to a
//! `TELEPHONY_RETURN_VALUE` (one table, `src/ffi/codes.rs`) and its `Display` text to
//! `GetLastSipErrorText`; no internal type's `Debug` reaches a user.

use crate::api::NotificationKind;
use crate::runtime::{DriverFailed, EndpointError};
use std::borrow::Cow;
use std::fmt;

/// Why a call of either API was refused.
#[derive(Debug)]
pub enum ApiError {
    /// A parameter is NULL, out of range or malformed; the text names it.
    BadParameter(Cow<'static, str>),
    /// Registration through a proxy was asked for, but no proxy is configured.
    ProxyNotEnabled,
    /// The address does not resolve.
    UnknownHost(String),
    /// The name list is empty, malformed, or does not match the phone lines.
    BadNameList(Cow<'static, str>),
    /// A proxy is used but no SIP domain is defined.
    DomainNotDefined,
    /// The update interval or expiry is zero.
    IntervalError,
    /// A thread could not be started.
    ThreadCreation(std::io::Error),
    /// The socket could not be bound.
    Socket(std::io::Error),
    /// The engine is shutting down.
    Closed,
    /// The handle is not (or no longer) valid.
    InvalidHandle,
    /// No profile has this id.
    ProfileNotFound,
    /// The profile is enabled by a live handle.
    ProfileInUse,
    /// The engine registers no such name.
    NameUnknown(String),
    /// An internal failure: the engine's I/O driver died (the text says why).
    Internal(String),
    /// TLS settings that cannot be used (unreadable PEM, a bad certificate or key).
    Tls(String),
    /// The caller's buffer is too small for the text: this many bytes are needed (its
    /// terminator included).
    BufferTooSmall(usize),
    /// A waiting `EnableSipRegisterServer`: the first register cycle of `name` ended with
    /// `kind` (the first failure of the call), for the reason `why`.
    NotRegistered {
        /// The name that failed first.
        name: String,
        /// What its notification said.
        kind: NotificationKind,
        /// Why, in words.
        why: String,
    },
    /// The call failed for a reason no more specific error names; the text says which.
    CallFailure(Cow<'static, str>),
}

impl ApiError {
    /// A bad parameter, with what is wrong with it.
    pub fn bad(what: impl Into<Cow<'static, str>>) -> ApiError {
        ApiError::BadParameter(what.into())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::BadParameter(what) => write!(f, "bad parameter: {what}"),
            ApiError::ProxyNotEnabled => {
                f.write_str("no proxy is configured (EnableSipProxyServer)")
            }
            ApiError::UnknownHost(host) => write!(f, "cannot resolve {host}"),
            ApiError::BadNameList(what) => write!(f, "bad name list: {what}"),
            ApiError::DomainNotDefined => f.write_str("no SIP domain is defined (EnableSipDomain)"),
            ApiError::IntervalError => {
                f.write_str("update interval and expire time must be above 0")
            }
            ApiError::ThreadCreation(e) => write!(f, "cannot start a thread: {e}"),
            ApiError::Socket(e) => write!(f, "cannot bind the SIP port: {e}"),
            ApiError::Closed => f.write_str("the engine is stopped"),
            ApiError::InvalidHandle => {
                f.write_str("no such handle (never issued, or already released)")
            }
            ApiError::ProfileNotFound => f.write_str("no profile has this id"),
            ApiError::ProfileInUse => f.write_str("the profile is enabled through a live handle"),
            ApiError::NameUnknown(name) => write!(f, "{name} is not registered by this engine"),
            ApiError::Internal(why) => write!(f, "internal error: {why}"),
            ApiError::Tls(why) => write!(f, "TLS settings: {why}"),
            ApiError::BufferTooSmall(needed) => {
                write!(f, "the buffer is too small: {needed} bytes are needed")
            }
            ApiError::NotRegistered { name, why, .. } => write!(f, "{name} not registered: {why}"),
            ApiError::CallFailure(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApiError::ThreadCreation(e) | ApiError::Socket(e) => Some(e),
            _ => None,
        }
    }
}

impl From<DriverFailed> for ApiError {
    fn from(e: DriverFailed) -> Self {
        ApiError::Internal(e.0)
    }
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::Socket(e) => ApiError::Socket(e),
            EndpointError::Thread(e) => ApiError::ThreadCreation(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_say_what_is_wrong_without_internal_types() {
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "address in use");
        let cases = [
            (ApiError::bad("phone lines"), "bad parameter: phone lines"),
            (
                ApiError::UnknownHost("nowhere.invalid".into()),
                "cannot resolve nowhere.invalid",
            ),
            (
                ApiError::from(EndpointError::Socket(io())),
                "cannot bind the SIP port: address in use",
            ),
            (
                ApiError::from(DriverFailed("it panicked".into())),
                "internal error: it panicked",
            ),
            (
                ApiError::NameUnknown("bob".into()),
                "bob is not registered by this engine",
            ),
        ];
        for (error, text) in cases {
            assert_eq!(error.to_string(), text);
        }
        let e = ApiError::from(EndpointError::Thread(io()));
        assert!(std::error::Error::source(&e).is_some());
    }
}
