//! `TELEPHONY_RETURN_VALUE`: return codes and notification codes of the C ABI.

#![allow(non_camel_case_types)]

use crate::api::profiles::ProfileError;
use crate::api::{ApiError, NotificationKind};
use std::ffi::c_char;

/// Result of every call, and the event of every notification. Values are fixed and never
/// renumbered; new codes are added at the end.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TELEPHONY_RETURN_VALUE {
    /// The call succeeded.
    SipSuccess = 0,
    /// The call failed for a reason no more specific code names (`GetLastSipErrorText`
    /// says which): e.g. a waiting `EnableSipRegisterServer` called on the engine's event
    /// thread.
    SipCallFailure = 1,
    /// A parameter is NULL, not UTF-8, or out of range.
    SipBadParameter = 2,
    /// The handle is not (or no longer) a live engine.
    SipInvalidHandle = 3,
    /// Registration through a proxy was asked for, but no proxy is configured.
    SipProxyNotEnabled = 4,
    /// An address does not resolve.
    SipUnknownHost = 5,
    /// The name list is empty, malformed, or does not match the phone lines.
    SipRegisterBadNameList = 6,
    /// A proxy is used but no SIP domain is defined (`EnableSipDomain`).
    SipDomainNameNotDefined = 7,
    /// Notification, and the return of a waiting `EnableSipRegisterServer`
    /// (`EnableSipRegisterWaitMode`): the registrar refused or answered something unusable.
    SipRegisterError = 8,
    /// Notification, and the return of a waiting `EnableSipRegisterServer`: the registrar
    /// did not answer within `TimeOutMs`.
    SipRegisterTimeOut = 9,
    /// Notification, and the return of a waiting `EnableSipRegisterServer`: credentials
    /// missing or refused.
    SipRegisterAuthorizationError = 10,
    /// Zero interval or expiry; notification, and the return of a waiting
    /// `EnableSipRegisterServer`: the registrar refused the interval (423).
    SipRegisterIntervalError = 11,
    /// A thread the library needs could not be started (`StartSipTelephony`,
    /// `SipRegistryOpen`; e.g. the process or user is at its thread limit).
    SipThreadCreationError = 12,
    /// The local SIP port could not be bound.
    SipSocketError = 13,
    /// An internal error was caught before it could cross into the caller.
    SipInternalError = 14,
    /// Notification: the name is registered.
    SipRegisterSuccess = 15,
    /// Notification: the name is unregistered.
    SipUnregistered = 16,
    /// The name is not registered by this engine.
    SipRegisterNameUnknown = 17,
    /// The profile is enabled through a live handle and cannot be removed.
    SipProfileInUse = 18,
    /// No profile has this id.
    SipProfileNotFound = 19,
    /// The transport is not implemented.
    SipTransportNotSupported = 20,
    /// TLS failed: as a notification, the registrar's certificate is not trusted or does
    /// not match the SIP domain, or the handshake was refused (the log callback says why);
    /// as a return value, TLS settings (PEM certificate or key) cannot be used.
    SipTlsError = 21,
    /// The caller's buffer is too small for the text asked for; the length needed is
    /// written to the call's `required` out-parameter.
    SipBufferTooSmall = 22,
}

use TELEPHONY_RETURN_VALUE::*;

/// Every code, in value order.
const ALL_CODES: [TELEPHONY_RETURN_VALUE; 23] = [
    SipSuccess,
    SipCallFailure,
    SipBadParameter,
    SipInvalidHandle,
    SipProxyNotEnabled,
    SipUnknownHost,
    SipRegisterBadNameList,
    SipDomainNameNotDefined,
    SipRegisterError,
    SipRegisterTimeOut,
    SipRegisterAuthorizationError,
    SipRegisterIntervalError,
    SipThreadCreationError,
    SipSocketError,
    SipInternalError,
    SipRegisterSuccess,
    SipUnregistered,
    SipRegisterNameUnknown,
    SipProfileInUse,
    SipProfileNotFound,
    SipTransportNotSupported,
    SipTlsError,
    SipBufferTooSmall,
];

impl TELEPHONY_RETURN_VALUE {
    /// The name of the code, as a NUL-terminated static string.
    pub fn name(self) -> &'static [u8] {
        match self {
            SipSuccess => b"SipSuccess\0",
            SipCallFailure => b"SipCallFailure\0",
            SipBadParameter => b"SipBadParameter\0",
            SipInvalidHandle => b"SipInvalidHandle\0",
            SipProxyNotEnabled => b"SipProxyNotEnabled\0",
            SipUnknownHost => b"SipUnknownHost\0",
            SipRegisterBadNameList => b"SipRegisterBadNameList\0",
            SipDomainNameNotDefined => b"SipDomainNameNotDefined\0",
            SipRegisterError => b"SipRegisterError\0",
            SipRegisterTimeOut => b"SipRegisterTimeOut\0",
            SipRegisterAuthorizationError => b"SipRegisterAuthorizationError\0",
            SipRegisterIntervalError => b"SipRegisterIntervalError\0",
            SipThreadCreationError => b"SipThreadCreationError\0",
            SipSocketError => b"SipSocketError\0",
            SipInternalError => b"SipInternalError\0",
            SipRegisterSuccess => b"SipRegisterSuccess\0",
            SipUnregistered => b"SipUnregistered\0",
            SipRegisterNameUnknown => b"SipRegisterNameUnknown\0",
            SipProfileInUse => b"SipProfileInUse\0",
            SipProfileNotFound => b"SipProfileNotFound\0",
            SipTransportNotSupported => b"SipTransportNotSupported\0",
            SipTlsError => b"SipTlsError\0",
            SipBufferTooSmall => b"SipBufferTooSmall\0",
        }
    }

    /// The code for a raw value, if it is one.
    pub fn from_raw(value: i32) -> Option<TELEPHONY_RETURN_VALUE> {
        ALL_CODES.get(usize::try_from(value).ok()?).copied()
    }

    pub(crate) fn name_ptr(self) -> *const c_char {
        self.name().as_ptr().cast()
    }
}

impl From<&ApiError> for TELEPHONY_RETURN_VALUE {
    fn from(e: &ApiError) -> Self {
        match e {
            ApiError::BadParameter(_) => SipBadParameter,
            ApiError::ProxyNotEnabled => SipProxyNotEnabled,
            ApiError::UnknownHost(_) => SipUnknownHost,
            ApiError::BadNameList(_) => SipRegisterBadNameList,
            ApiError::DomainNotDefined => SipDomainNameNotDefined,
            ApiError::IntervalError => SipRegisterIntervalError,
            ApiError::ThreadCreation(_) => SipThreadCreationError,
            ApiError::Socket(_) => SipSocketError,
            ApiError::Closed | ApiError::InvalidHandle => SipInvalidHandle,
            ApiError::ProfileNotFound => SipProfileNotFound,
            ApiError::ProfileInUse => SipProfileInUse,
            ApiError::Internal(_) => SipInternalError,
            ApiError::Tls(_) => SipTlsError,
            ApiError::NameUnknown(_) => SipRegisterNameUnknown,
            ApiError::BufferTooSmall(_) => SipBufferTooSmall,
            ApiError::NotRegistered { kind, .. } => (*kind).into(),
            ApiError::CallFailure(_) => SipCallFailure,
        }
    }
}

impl From<NotificationKind> for TELEPHONY_RETURN_VALUE {
    fn from(kind: NotificationKind) -> Self {
        match kind {
            NotificationKind::RegisterSuccess => SipRegisterSuccess,
            NotificationKind::Unregistered => SipUnregistered,
            NotificationKind::RegisterError => SipRegisterError,
            NotificationKind::RegisterTimeOut => SipRegisterTimeOut,
            NotificationKind::RegisterAuthorizationError => SipRegisterAuthorizationError,
            NotificationKind::RegisterIntervalError => SipRegisterIntervalError,
            NotificationKind::TlsError => SipTlsError,
        }
    }
}

impl From<ProfileError> for TELEPHONY_RETURN_VALUE {
    fn from(error: ProfileError) -> Self {
        match error {
            ProfileError::Rejected => SipRegisterError,
            ProfileError::TimedOut => SipRegisterTimeOut,
            ProfileError::Authorization => SipRegisterAuthorizationError,
            ProfileError::Interval => SipRegisterIntervalError,
            ProfileError::Internal => SipInternalError,
            ProfileError::Tls => SipTlsError,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_stable_and_named() {
        for (i, code) in ALL_CODES.iter().enumerate() {
            assert_eq!(*code as i32, i as i32);
            assert_eq!(TELEPHONY_RETURN_VALUE::from_raw(i as i32), Some(*code));
            assert!(code.name().ends_with(b"\0"));
        }
        assert_eq!(TELEPHONY_RETURN_VALUE::from_raw(-1), None);
        assert_eq!(TELEPHONY_RETURN_VALUE::from_raw(23), None);
        assert_eq!(SipBufferTooSmall as i32, 22);
        assert_eq!(SipTlsError as i32, 21);
        assert_eq!(SipRegisterAuthorizationError as i32, 10);
    }
}
