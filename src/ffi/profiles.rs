//! Profile registry entry points over [`crate::api::profiles`].

use super::codes::TELEPHONY_RETURN_VALUE;
use super::lanscape::{SIP_REGISTRATION_INFO, read_text_kind, registration_text};
use super::{arg_opt_str, arg_str, entry, out_ptr, read_bool, read_transport, text_out};
use crate::api::ApiError;
use crate::api::profiles::{
    self, ProfileError, ProfileId, ProfileObserver, ProfileSettings, ProfileState,
};
use crate::engine::digest::Credential;
use crate::runtime::tls::TlsSettings;
use std::ffi::{c_char, c_void};
use std::sync::{Arc, OnceLock};

/// A registry handle. 0 is never valid.
pub type SIPREGISTRY = u64;
/// A profile handle. 0 is never valid.
pub type SIPPROFILE = u64;

/// Registration state of a profile.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SIP_PROFILE_STATE {
    /// Not registered.
    SipProfileUnregistered = 0,
    /// Registration in progress.
    SipProfileRegistering = 1,
    /// Registered.
    SipProfileRegistered = 2,
    /// Unregistration in progress.
    SipProfileUnregistering = 3,
}

/// Transport of a registration.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SIP_TRANSPORT {
    /// UDP.
    SipTransportUdp = 0,
    /// TCP.
    SipTransportTcp = 1,
    /// TLS.
    SipTransportTls = 2,
    /// Whichever DNS prefers among UDP, TCP and TLS (NAPTR records, RFC 3263 §4.1); without
    /// them TLS, TCP and UDP SRV records in that order, then UDP.
    SipTransportAuto = 3,
}

/// A profile the registry holds a handle of changed state. Runs on the registration
/// service's event thread (never on the thread of a call), in the order the states
/// happened, with no lock held; it may call any function. A state read with
/// `SipProfileGetState` after a notification reflects it.
pub type SipProfileStateCallback = Option<
    unsafe extern "C" fn(
        registry: SIPREGISTRY,
        profile_id: u32,
        state: SIP_PROFILE_STATE,
        user_data: *mut c_void,
    ),
>;

/// An asynchronous error (`SipRegisterError`, `SipRegisterTimeOut`,
/// `SipRegisterAuthorizationError`, `SipRegisterIntervalError`): the profile is not
/// registered; the service keeps retrying. `SipInternalError`: the service itself failed;
/// nothing is registered any more, and later calls return `SipInternalError`. Same thread
/// rules as the state callback.
pub type SipProfileErrorCallback = Option<
    unsafe extern "C" fn(
        registry: SIPREGISTRY,
        profile_id: u32,
        error: TELEPHONY_RETURN_VALUE,
        user_data: *mut c_void,
    ),
>;

impl From<ProfileState> for SIP_PROFILE_STATE {
    fn from(state: ProfileState) -> Self {
        match state {
            ProfileState::Unregistered => SIP_PROFILE_STATE::SipProfileUnregistered,
            ProfileState::Registering => SIP_PROFILE_STATE::SipProfileRegistering,
            ProfileState::Registered => SIP_PROFILE_STATE::SipProfileRegistered,
            ProfileState::Unregistering => SIP_PROFILE_STATE::SipProfileUnregistering,
        }
    }
}

struct CObserver {
    registry: OnceLock<SIPREGISTRY>,
    on_state: SipProfileStateCallback,
    on_error: SipProfileErrorCallback,
    user: *mut c_void,
}

// SAFETY: the library never dereferences the user pointer; it only hands it back to the
// caller's callbacks, which the caller made callable from the service's event thread.
unsafe impl Send for CObserver {}
// SAFETY: as for Send: the pointer is opaque to the library and only copied.
unsafe impl Sync for CObserver {}

impl ProfileObserver for CObserver {
    fn state_changed(&self, profile: ProfileId, state: ProfileState) {
        let (Some(cb), Some(&registry)) = (self.on_state, self.registry.get()) else {
            return;
        };
        // SAFETY: `cb` stays valid until the registry is closed (SipRegistryOpen's
        // contract), and observers are called only while it is open.
        unsafe { cb(registry, profile, state.into(), self.user) };
    }

    fn error_occurred(&self, profile: ProfileId, error: ProfileError) {
        let (Some(cb), Some(&registry)) = (self.on_error, self.registry.get()) else {
            return;
        };
        // SAFETY: as in `state_changed`.
        unsafe { cb(registry, profile, error.into(), self.user) };
    }
}

/// Opens a registry connected to the process's one registration service (started by the
/// first registry, stopped by the last close).
///
/// # Safety
/// Callbacks are NULL or valid until the registry is closed; `registry_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipRegistryOpen(
    on_state: SipProfileStateCallback,
    on_error: SipProfileErrorCallback,
    user_data: *mut c_void,
    registry_out: *mut SIPREGISTRY,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let registry_out = out_ptr!(registry_out)?;
        let observer = Arc::new(CObserver {
            registry: OnceLock::new(),
            on_state,
            on_error,
            user: user_data,
        });
        let handle = profiles::open_registry(observer.clone())?;
        let _ = observer.registry.set(handle);
        registry_out.write(handle);
        Ok(())
    })
}

/// Closes a registry and its profile handles; profiles no other handle keeps enabled are
/// unregistered. The last close stops the service (waiting at most 4 s for the registrar)
/// and joins its threads.
#[unsafe(no_mangle)]
pub extern "C" fn SipRegistryClose(registry: SIPREGISTRY) -> TELEPHONY_RETURN_VALUE {
    entry(|| profiles::close_registry(registry))
}

/// Creates a profile and writes its id. `aor` is `user@domain`; `registrar` and
/// `outbound_proxy` (NULL: none) are `host[:port]`; `auth_user`/`password` are NULL when
/// the registrar asks no authentication; `transport` is a `SIP_TRANSPORT`.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `profile_id_out` is writable.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileCreate(
    registry: SIPREGISTRY,
    aor: *const c_char,
    registrar: *const c_char,
    outbound_proxy: *const c_char,
    auth_user: *const c_char,
    password: *const c_char,
    expires_seconds: u32,
    transport: u32,
    profile_id_out: *mut u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let profile_id_out = out_ptr!(profile_id_out)?;
        let transport = read_transport(transport)?;
        let settings = ProfileSettings {
            aor: arg_str!(aor)?,
            registrar: arg_str!(registrar)?,
            outbound_proxy: arg_opt_str!(outbound_proxy)?,
            credential: match (
                arg_opt_str!(auth_user)?,
                zeroize::Zeroizing::new(arg_opt_str!(password)?),
            ) {
                (Some(user), pw) if pw.is_some() => Some(Credential::new(
                    "",
                    &user,
                    pw.as_deref().unwrap_or_default(),
                )),
                (None, pw) if pw.is_none() => None,
                _ => return Err(ApiError::bad("auth_user and password go together")),
            },
            expires: expires_seconds,
            transport,
            tls: TlsSettings::default(),
            outbound: 0,
            instance: None,
        };
        let id = profiles::create_profile(registry, settings)?;
        profile_id_out.write(id);
        Ok(())
    })
}

/// Sets a profile's SIP Outbound setting (RFC 5626; `flows`: 0 off, 1 one flow, 2 a second
/// flow to the registrar's second target when DNS lists one) and instance id
/// (`instance_id`: a URN such as `urn:uuid:…`, or NULL for the registration service's own,
/// one per process), used from its next registration on. With Outbound the profile
/// registers a flow that keep-alives watch; a registrar answering 439 gets a plain
/// registration. An instance id given is sent (asking for GRUUs) also without Outbound.
///
/// # Safety
/// `instance_id` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileSetOutbound(
    registry: SIPREGISTRY,
    profile_id: u32,
    flows: u32,
    instance_id: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let instance = arg_opt_str!(instance_id)?;
        profiles::set_profile_outbound(registry, profile_id, flows, instance.as_deref())
    })
}

/// Sets the TLS settings of a profile, used from its next registration on: `trusted_pem`
/// (NULL: none) adds trust anchors (PEM text or the path of a PEM file),
/// `use_system_trust` non-zero also trusts the operating system's store, and
/// `client_certificate`/`client_key` (both NULL, or both PEM text or file paths) are
/// presented when the server asks. `SipTlsError` when a PEM cannot be used.
///
/// # Safety
/// Strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileSetTls(
    registry: SIPREGISTRY,
    profile_id: u32,
    trusted_pem: *const c_char,
    use_system_trust: i32,
    client_certificate: *const c_char,
    client_key: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let trusted_pem = arg_opt_str!(trusted_pem)?;
        let chain = arg_opt_str!(client_certificate)?;
        let key = zeroize::Zeroizing::new(arg_opt_str!(client_key)?);
        let client = match (chain.as_deref(), key.as_deref()) {
            (Some(chain), Some(key)) => Some((chain, key)),
            (None, None) => None,
            _ => {
                return Err(ApiError::bad(
                    "client_certificate and client_key go together",
                ));
            }
        };
        let settings =
            profiles::tls_settings(trusted_pem.as_deref(), read_bool(use_system_trust), client)?;
        profiles::set_profile_tls(registry, profile_id, settings)
    })
}

/// Sets the DNS servers the registration service (shared by every registry of the process)
/// uses to locate registrars and proxies: `ip[:port]` entries separated by commas or
/// blanks; NULL or "" means the system's configuration (the default).
///
/// # Safety
/// `servers` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipRegistrySetDnsServers(
    registry: SIPREGISTRY,
    servers: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let servers = arg_opt_str!(servers)?.unwrap_or_default();
        profiles::set_dns_servers(registry, &servers)
    })
}

/// How long closing the last registry waits at most for the unregistration of every
/// profile, `timeout_ms` 100 to 600000 (4000 by default; for the whole process, as the
/// service is shared). Every removal retransmits until then.
#[unsafe(no_mangle)]
pub extern "C" fn SipRegistrySetCloseTimeout(
    registry: SIPREGISTRY,
    timeout_ms: u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| profiles::set_close_wait(registry, timeout_ms))
}

/// Writes a new handle of a profile (each call gives another one).
///
/// # Safety
/// `profile_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileRetrieve(
    registry: SIPREGISTRY,
    profile_id: u32,
    profile_out: *mut SIPPROFILE,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let profile_out = out_ptr!(profile_out)?;
        let handle = profiles::retrieve_profile(registry, profile_id)?;
        profile_out.write(handle);
        Ok(())
    })
}

/// Deletes a profile handle: its registry stops hearing of the profile through it, and an
/// enabled profile no other handle keeps enabled is unregistered.
#[unsafe(no_mangle)]
pub extern "C" fn SipProfileRelease(profile: SIPPROFILE) -> TELEPHONY_RETURN_VALUE {
    entry(|| profiles::release_profile(profile))
}

/// Enables the profile: it registers (unless already registered, which notifies nothing).
#[unsafe(no_mangle)]
pub extern "C" fn SipProfileEnable(profile: SIPPROFILE) -> TELEPHONY_RETURN_VALUE {
    entry(|| profiles::enable_profile(profile))
}

/// Disables the profile through this handle; it unregisters when no handle keeps it enabled.
#[unsafe(no_mangle)]
pub extern "C" fn SipProfileDisable(profile: SIPPROFILE) -> TELEPHONY_RETURN_VALUE {
    entry(|| profiles::disable_profile(profile))
}

/// Writes the profile's state.
///
/// # Safety
/// `state_out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileGetState(
    profile: SIPPROFILE,
    state_out: *mut SIP_PROFILE_STATE,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let state_out = out_ptr!(state_out)?;
        let (_, state) = profiles::profile_state(profile)?;
        state_out.write(state.into());
        Ok(())
    })
}

/// Writes the numbers of the registration info query for the profile (its texts:
/// `SipProfileGetInfoText`); `SipRegisterNameUnknown` while it is not enabled. Asks the
/// registration service's I/O thread, so it reflects everything that happened before.
///
/// # Safety
/// `info_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileGetInfo(
    profile: SIPPROFILE,
    info_out: *mut SIP_REGISTRATION_INFO,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let info_out = out_ptr!(info_out)?;
        info_out.write(SIP_REGISTRATION_INFO::from(&profiles::profile_info(
            profile,
        )?));
        Ok(())
    })
}

/// Writes one text of the profile's registration info query (`which` is a
/// `SIP_REGISTRATION_TEXT`), as `GetSipRegistrationText` does.
///
/// # Safety
/// `buffer` is NULL (with `capacity` 0) or writable for `capacity` bytes; `required` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SipProfileGetInfoText(
    profile: SIPPROFILE,
    which: u32,
    buffer: *mut c_char,
    capacity: u32,
    required: *mut u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let which = read_text_kind(which)?;
        let out = text_out!(buffer, capacity, required)?;
        out.write(&registration_text(&profiles::profile_info(profile)?, which))
    })
}

/// Deletes a profile (`SipProfileInUse` while a live handle keeps it enabled).
#[unsafe(no_mangle)]
pub extern "C" fn SipProfileRemove(
    registry: SIPREGISTRY,
    profile_id: u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| profiles::remove_profile(registry, profile_id))
}
