//! LanScape-compatible entry points over [`PhoneEngine`].

use super::codes::TELEPHONY_RETURN_VALUE;
use super::{
    arg_opt_str, arg_str, entry, out_ptr, read_bool, read_transport, text_out, transport_code,
};
use crate::api::address::parse_local_ip;
use crate::api::{ApiError, PhoneEngine, RegisterServerParams, RegistrationDetails, StartParams};
use crate::engine::binding::BindingState;
use crate::handles::HandleTable;
use crate::runtime::LogLevel;
use once_cell::sync::Lazy;
use parking_lot::Mutex;
use std::ffi::{CString, c_char, c_void};
use std::sync::Arc;

/// An engine handle. 0 is never a valid handle.
pub type SIPHANDLE = u64;

/// Global notification: `event` is a `TELEPHONY_RETURN_VALUE` notification code
/// (`SipRegisterSuccess`, `SipUnregistered`, `SipRegisterError`, `SipRegisterTimeOut`,
/// `SipRegisterAuthorizationError`, `SipRegisterIntervalError`, `SipTlsError`); `name` is the registered
/// name (valid during the call only); `line` is its first phone line, or -1 when names are
/// not per line. Runs on the engine's event thread, never on the caller's thread, in the
/// order things happened, with no lock of the library held: it may call any function,
/// `StopSipTelephony` included; `GetSipRegistrationState` called in it reflects it. If the
/// engine's I/O driver fails (an internal error), every name gets `SipRegisterError` and
/// later calls return `SipInternalError`.
pub type SipNotifyCallback = Option<
    unsafe extern "C" fn(
        engine: SIPHANDLE,
        event: TELEPHONY_RETURN_VALUE,
        name: *const c_char,
        line: i32,
        user_data: *mut c_void,
    ),
>;

/// Diagnostic message: `level` 1 error, 2 warning, 3 info, 4 debug, 5 SIP trace. Same thread
/// rules as [`SipNotifyCallback`]. Messages never contain passwords.
pub type SipLogCallback = Option<
    unsafe extern "C" fn(
        engine: SIPHANDLE,
        level: i32,
        message: *const c_char,
        user_data: *mut c_void,
    ),
>;

/// What the registration info query gives as numbers (`GetSipRegistrationInfo`,
/// `SipProfileGetInfo`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SIP_REGISTRATION_INFO {
    /// The state, as `GetSipRegistrationState` gives it.
    pub state: SIP_REGISTRATION_STATE,
    /// Status code of the registrar's last final response (0 before any).
    pub last_status: u32,
    /// The expiry the registrar granted last, seconds (0 before any).
    pub granted_expires: u32,
    /// Seconds until the next refresh; -1 when not registered.
    pub seconds_until_refresh: i32,
    /// The transport in use (a `SIP_TRANSPORT`).
    pub transport: u32,
    /// The port of the registrar (or proxy) target in use (its address:
    /// `SipTextTarget`).
    pub target_port: u32,
    /// Failures reported since the last success.
    pub consecutive_failures: u32,
    /// 1 when the registration is a SIP Outbound flow the registrar confirmed.
    pub outbound: i32,
    /// Flow-Timer the registrar asked for, seconds (0: none).
    pub flow_timer: u32,
}

/// Which text of the registration info query `GetSipRegistrationText` and
/// `SipProfileGetInfoText` give.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SIP_REGISTRATION_TEXT {
    /// Reason phrase of the registrar's last final response.
    SipTextReason = 0,
    /// The contact URI registered (the public one after NAT detection).
    SipTextContact = 1,
    /// The IP address of the registrar (or proxy) target in use.
    SipTextTarget = 2,
    /// The public GRUU (RFC 5627).
    SipTextPubGruu = 3,
    /// The temporary GRUU (RFC 5627).
    SipTextTempGruu = 4,
    /// Service-Route entries (RFC 3608), separated by ", ".
    SipTextServiceRoute = 5,
    /// P-Associated-URI entries (RFC 3455), separated by ", ".
    SipTextAssociatedUris = 6,
    /// Path entries (RFC 3327), separated by ", ".
    SipTextPath = 7,
}

/// Reads a `SIP_REGISTRATION_TEXT` passed as an integer.
pub(crate) fn read_text_kind(value: u32) -> Result<SIP_REGISTRATION_TEXT, ApiError> {
    use SIP_REGISTRATION_TEXT::*;
    Ok(match value {
        0 => SipTextReason,
        1 => SipTextContact,
        2 => SipTextTarget,
        3 => SipTextPubGruu,
        4 => SipTextTempGruu,
        5 => SipTextServiceRoute,
        6 => SipTextAssociatedUris,
        7 => SipTextPath,
        _ => return Err(ApiError::bad("which is not a SIP_REGISTRATION_TEXT")),
    })
}

/// One text of the info query.
pub(crate) fn registration_text(d: &RegistrationDetails, which: SIP_REGISTRATION_TEXT) -> String {
    use SIP_REGISTRATION_TEXT::*;
    match which {
        SipTextReason => d.info.last_reason.clone(),
        SipTextContact => d.info.contact.clone(),
        SipTextTarget => d.target.ip().to_string(),
        SipTextPubGruu => d.info.pub_gruu.clone().unwrap_or_default(),
        SipTextTempGruu => d.info.temp_gruu.clone().unwrap_or_default(),
        SipTextServiceRoute => d.info.service_route.join(", "),
        SipTextAssociatedUris => d.info.associated_uris.join(", "),
        SipTextPath => d.info.path.join(", "),
    }
}

impl From<&RegistrationDetails> for SIP_REGISTRATION_INFO {
    fn from(d: &RegistrationDetails) -> Self {
        SIP_REGISTRATION_INFO {
            state: d.state.into(),
            last_status: u32::from(d.info.last_status),
            granted_expires: d.info.granted_expires.unwrap_or(0),
            seconds_until_refresh: d
                .seconds_until_refresh
                .map_or(-1, |s| i32::try_from(s).unwrap_or(i32::MAX)),
            transport: transport_code(d.transport),
            target_port: u32::from(d.target.port()),
            consecutive_failures: d.info.consecutive_failures,
            outbound: i32::from(d.info.outbound),
            flow_timer: d.info.flow_timer.unwrap_or(0),
        }
    }
}

impl From<BindingState> for SIP_REGISTRATION_STATE {
    fn from(state: BindingState) -> Self {
        match state {
            BindingState::Unregistered => SIP_REGISTRATION_STATE::SipStateUnregistered,
            BindingState::Registering => SIP_REGISTRATION_STATE::SipStateRegistering,
            BindingState::Registered => SIP_REGISTRATION_STATE::SipStateRegistered,
            BindingState::Unregistering => SIP_REGISTRATION_STATE::SipStateUnregistering,
            BindingState::WaitingToRetry => SIP_REGISTRATION_STATE::SipStateRetryWait,
        }
    }
}

/// Registration state of one name.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SIP_REGISTRATION_STATE {
    /// Not registered.
    SipStateUnregistered = 0,
    /// A REGISTER is in flight.
    SipStateRegistering = 1,
    /// Registered.
    SipStateRegistered = 2,
    /// The removing REGISTER is in flight.
    SipStateUnregistering = 3,
    /// The last attempt failed; a retry is scheduled.
    SipStateRetryWait = 4,
}

#[derive(Clone, Copy)]
struct UserData(*mut c_void);
// SAFETY: the library never dereferences the pointer; it only hands it back to the
// caller's callback, on whichever thread the documentation says.
unsafe impl Send for UserData {}
// SAFETY: as for Send: the pointer is opaque to the library and only copied.
unsafe impl Sync for UserData {}

static ENGINES: Lazy<Mutex<HandleTable<PhoneEngine>>> = Lazy::new(Mutex::default);

fn engine(handle: SIPHANDLE) -> Result<Arc<PhoneEngine>, ApiError> {
    ENGINES.lock().get(handle).ok_or(ApiError::InvalidHandle)
}

/// Starts an engine and writes its handle to `engine_out`.
///
/// `phone_name` (may be NULL) goes into User-Agent; `phone_lines` is 1 to 100000;
/// `local_sip_port` is the UDP port (0: any free port); `local_ip_address` (NULL: all IPv4
/// addresses) is the address to bind, IPv4 or IPv6.
///
/// # Safety
/// Strings are NULL or NUL-terminated; `engine_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn StartSipTelephony(
    phone_name: *const c_char,
    phone_lines: u32,
    local_sip_port: u32,
    local_ip_address: *const c_char,
    engine_out: *mut SIPHANDLE,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let engine_out = out_ptr!(engine_out)?;
        let phone_name = arg_opt_str!(phone_name)?.unwrap_or_default();
        let local_ip = arg_opt_str!(local_ip_address)?;
        let local_ip = parse_local_ip(local_ip.as_deref())?;
        let local_port = u16::try_from(local_sip_port)
            .map_err(|_| ApiError::bad("local_sip_port is above 65535"))?;
        let engine = PhoneEngine::start(StartParams {
            phone_name,
            phone_lines,
            local_port,
            local_ip,
        })?;
        let handle = ENGINES.lock().insert(Arc::new(engine));
        engine_out.write(handle);
        Ok(())
    })
}

/// Unregisters every name (waiting for the registrar at most the longest `TimeOutMs`
/// used, 4 s at most, or what `SetSipUnregisterTimeout` chose; the removals retransmit
/// until then, and those not confirmed are named in the log), stops the engine's threads
/// and invalidates the handle. No notification runs after it returns, unless it is
/// called from inside a notification of this engine.
#[unsafe(no_mangle)]
pub extern "C" fn StopSipTelephony(engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let removed = ENGINES
            .lock()
            .remove(engine)
            .ok_or(ApiError::InvalidHandle)?;
        removed.shutdown();
        Ok(())
    })
}

/// Sets the global notification callback (NULL removes it). During a failure's
/// notification, `GetLastSipErrorText` on the callback's thread says why (the status, a
/// timeout, an answer that could not be read, a request that could not be sent).
///
/// # Safety
/// `callback` is NULL or a function valid until replaced or the engine is stopped.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SetNotificationCallback(
    engine: SIPHANDLE,
    callback: SipNotifyCallback,
    user_data: *mut c_void,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let user = UserData(user_data);
        e.set_notification_listener(callback.map(|cb| {
            Arc::new(move |n: &crate::api::Notification| {
                let user = user;
                let name = CString::new(n.name.as_str()).unwrap_or_default();
                // `GetLastSipErrorText` in the callback says why a failure happened.
                super::set_last_error(&n.reason);
                // SAFETY: `cb` is a valid function until replaced or the engine stops (this
                // function's contract); `name` lives until it returns.
                unsafe { cb(engine, n.kind.into(), name.as_ptr(), n.line, user.0) };
            }) as crate::api::NotificationListener
        }));
        Ok(())
    })
}

/// Sets the diagnostics callback (NULL removes it).
///
/// # Safety
/// As for [`SetNotificationCallback`].
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SetLogCallback(
    engine: SIPHANDLE,
    callback: SipLogCallback,
    user_data: *mut c_void,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let user = UserData(user_data);
        e.set_log_listener(callback.map(|cb| {
            Arc::new(move |level: LogLevel, message: &str| {
                let user = user;
                let text: String = message.chars().filter(|c| *c != '\0').collect();
                let text = CString::new(text).unwrap_or_default();
                // SAFETY: as in SetNotificationCallback: `cb` is valid until replaced or the
                // engine stops; `text` lives until it returns.
                unsafe { cb(engine, level as i32, text.as_ptr(), user.0) };
            }) as crate::api::LogListener
        }));
        Ok(())
    })
}

/// Turns the trace of every SIP message sent and received (log level 5) on or off.
#[unsafe(no_mangle)]
pub extern "C" fn EnableSipTrace(engine: SIPHANDLE, enable: i32) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.set_trace(read_bool(enable)))
}

/// Writes the number of phone lines the engine was started with.
///
/// # Safety
/// `lines_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetNumPhoneLines(
    engine: SIPHANDLE,
    lines_out: *mut u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let lines_out = out_ptr!(lines_out)?;
        lines_out.write(e.params().phone_lines);
        Ok(())
    })
}

/// Writes the local SIP UDP port actually bound.
///
/// # Safety
/// `port_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetLocalSipPort(
    engine: SIPHANDLE,
    port_out: *mut u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let port_out = out_ptr!(port_out)?;
        port_out.write(u32::from(e.local_addr().port()));
        Ok(())
    })
}

/// Sets the SIP domain of the addresses of record (`sip:name@domain`).
///
/// # Safety
/// `domain` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn EnableSipDomain(
    engine: SIPHANDLE,
    domain: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let domain = arg_str!(domain)?;
        e.set_domain(&domain)
    })
}

/// Forgets the SIP domain (the registrar address is then the domain).
#[unsafe(no_mangle)]
pub extern "C" fn DisableSipDomain(engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        self::engine(engine)?.clear_domain();
        Ok(())
    })
}

/// Configures the outbound proxy used when `RegisterThroughProxy` is set (port 0: 5060).
///
/// # Safety
/// `address` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn EnableSipProxyServer(
    engine: SIPHANDLE,
    address: *const c_char,
    port: u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let address = arg_str!(address)?;
        e.set_proxy(&address, port)
    })
}

/// Removes the outbound proxy.
#[unsafe(no_mangle)]
pub extern "C" fn DisableSipProxyServer(engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        self::engine(engine)?.clear_proxy();
        Ok(())
    })
}

/// Adds or replaces the digest credentials for `realm` (NULL, "" or "*": any realm), in
/// LanScape's parameter order (user name, password, realm). Registrations that failed for
/// authorization retry at once with them.
///
/// # Safety
/// Strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn AddAuthorizationCredentials(
    engine: SIPHANDLE,
    user: *const c_char,
    password: *const c_char,
    realm: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let realm = arg_opt_str!(realm)?.unwrap_or_default();
        let user = arg_str!(user)?;
        let password = zeroize::Zeroizing::new(arg_str!(password)?);
        e.add_credentials(&realm, &user, &password)
    })
}

/// Forgets every credential.
#[unsafe(no_mangle)]
pub extern "C" fn ClearAuthorizationCredentials(engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.clear_credentials())
}

/// Chooses the transport of registrations enabled from now on (`transport` is a
/// `SIP_TRANSPORT`: UDP, the default; TCP; TLS; or Auto, whichever DNS NAPTR records
/// prefer, RFC 3263) and the local port of their TCP or TLS connections (0: any free port;
/// with UDP, 0 or the engine's own port). Over TCP and TLS one connection per registrar
/// (or proxy) is shared by every name; `Contact` and `Via` carry `;transport=tcp|tls`, and
/// a lost connection is detected at once: every name registers again over a new one. A
/// registration server port of 0 then means 5061 for TLS; with a name as the registration
/// server, a port of 0 also means DNS is asked for NAPTR and SRV records (failover among
/// the targets they list).
#[unsafe(no_mangle)]
pub extern "C" fn SetSipRegisterTransport(
    engine: SIPHANDLE,
    transport: u32,
    local_port: u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        e.set_transport(read_transport(transport)?, local_port)
    })
}

/// Sets the DNS servers that locate registrars and proxies (RFC 3263: NAPTR, SRV, A/AAAA):
/// `servers` holds `ip[:port]` entries (IPv6 in brackets, port 53 by default) separated by
/// commas or blanks; NULL or "" goes back to the system's configuration (the default).
/// Used from the next lookup on.
///
/// # Safety
/// `servers` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SetSipDnsServers(
    engine: SIPHANDLE,
    servers: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let servers = arg_opt_str!(servers)?.unwrap_or_default();
        e.set_dns_servers(&servers)
    })
}

/// Adds TLS trust anchors: `pem` is PEM text (starting with `-----BEGIN`) or the path of a
/// PEM file of CA certificates. The operating system's store is trusted too unless
/// `EnableSipTlsSystemTrust(engine, 0)`. The registrar's certificate must match the SIP
/// domain (the registrar's host name, or the domain of `EnableSipDomain` when the registrar
/// is given as an address; RFC 5922). `SipTlsError` when the PEM cannot be used.
///
/// # Safety
/// `pem` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn AddSipTlsTrustedCertificates(
    engine: SIPHANDLE,
    pem: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let pem = arg_str!(pem)?;
        e.add_tls_trust(&pem)
    })
}

/// Whether TLS trusts the operating system's certificate store (default: non-zero).
#[unsafe(no_mangle)]
pub extern "C" fn EnableSipTlsSystemTrust(
    engine: SIPHANDLE,
    enable: i32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.set_tls_system_trust(read_bool(enable)))
}

/// Sets the TLS client certificate chain and its private key (each PEM text or the path of
/// a PEM file), presented when the server asks for one. `SipTlsError` when unusable.
///
/// # Safety
/// Strings are NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SetSipTlsClientCertificate(
    engine: SIPHANDLE,
    certificate_chain: *const c_char,
    private_key: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let chain = arg_str!(certificate_chain)?;
        let key = zeroize::Zeroizing::new(arg_str!(private_key)?);
        e.set_tls_client_certificate(&chain, &key)
    })
}

/// Registers every unique name with the registrar, starting at once and refreshing every
/// `registration_update_interval_seconds` with `Expires: registration_expire_time_seconds`.
///
/// `names_to_register`: comma-separated SIP user names, whitespace-trimmed; with
/// `register_phone_lines` non-zero there must be exactly one per phone line (line order).
/// `register_through_proxy` non-zero sends via the proxy of `EnableSipProxyServer` (a SIP
/// domain is then required). `registration_server_address` is an IPv4/IPv6 literal or DNS
/// name; port 0 means 5060. `time_out_ms` bounds each transaction (0: 32 s, at most
/// 600000). `register_nat_auto_detect_enabled` non-zero re-registers with the address the
/// registrar saw (Via `received`/`rport`). Calling it again replaces the earlier names.
/// Results arrive through the notification callback.
///
/// # Safety
/// Strings are NULL or NUL-terminated.
#[allow(clippy::too_many_arguments)]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn EnableSipRegisterServer(
    engine: SIPHANDLE,
    names_to_register: *const c_char,
    register_phone_lines: i32,
    register_through_proxy: i32,
    registration_server_address: *const c_char,
    registration_server_port: u32,
    registration_update_interval_seconds: u32,
    registration_expire_time_seconds: u32,
    time_out_ms: u32,
    register_nat_auto_detect_enabled: i32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let names = arg_str!(names_to_register).map_err(|e| match e {
            ApiError::BadParameter(why) => ApiError::BadNameList(why),
            other => other,
        })?;
        let server = arg_str!(registration_server_address)?;
        e.enable_register_server(&RegisterServerParams {
            names,
            register_phone_lines: read_bool(register_phone_lines),
            through_proxy: read_bool(register_through_proxy),
            server_address: server,
            server_port: registration_server_port,
            update_interval_s: registration_update_interval_seconds,
            expire_time_s: registration_expire_time_seconds,
            timeout_ms: time_out_ms,
            nat_auto_detect: read_bool(register_nat_auto_detect_enabled),
        })
    })
}

/// Whether `EnableSipRegisterServer` waits for the outcome of the first register cycle
/// (non-zero) or returns at once, outcomes arriving only as notifications (0, the default).
///
/// While on, `EnableSipRegisterServer` returns once every unique name of the call was
/// registered or failed: `SipSuccess` when all registered, else the code of the first
/// failure (`SipRegisterTimeOut`, `SipRegisterAuthorizationError`,
/// `SipRegisterIntervalError`, `SipTlsError`, `SipRegisterError`; `GetLastSipErrorText`
/// names the name and says why). Each transaction is bounded by `TimeOutMs`, so one name
/// waits at most about twice that (the challenge round-trip) per registrar target. The
/// notifications arrive as usual, before the call returns. Called from inside a
/// notification of the same engine it returns `SipCallFailure` at once and changes
/// nothing (its outcome would be delivered by that very thread); if the engine is stopped
/// meanwhile, `SipInvalidHandle`.
#[unsafe(no_mangle)]
pub extern "C" fn EnableSipRegisterWaitMode(
    engine: SIPHANDLE,
    enable: i32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        self::engine(engine)?.set_wait_first_cycle(read_bool(enable));
        Ok(())
    })
}

/// Whether the names of each `EnableSipRegisterServer` called from now on share their
/// digest challenges (non-zero) or each waits for its own (0, the default).
///
/// Sharing, a name that was not challenged yet answers the last challenge another name of
/// the same call received (with one nonce count for all their answers, RFC 7616 §3.4), so
/// its registration takes one REGISTER and one response instead of two of each: half the
/// work for the application and for the registrar when many names register at once. For
/// registrars that accept a realm's nonce from any of its users, as Kamailio, Asterisk and
/// FreeSWITCH do. A name whose shared answer is refused registers as without sharing: it
/// answers the new challenge, or after a 403 sends its REGISTER again without an answer
/// (that 403 is not reported as an authorization error). When refusals outnumber the
/// accepted shared answers by eight (a registrar that binds its nonces to one user or one
/// Call-ID), the sharing ends for those names; a refusal now and then (one name's wrong
/// password, an expired nonce) does not end it.
#[unsafe(no_mangle)]
pub extern "C" fn EnableSipSharedChallenges(
    engine: SIPHANDLE,
    enable: i32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        self::engine(engine)?.set_share_challenges(read_bool(enable));
        Ok(())
    })
}

/// How long `StopSipTelephony` waits at most for the unregistration of every name,
/// `timeout_ms` 100 to 600000 (by default the longest `TimeOutMs` used, at most 4 s). Every
/// removal retransmits until then; the names the registrar did not confirm by then are
/// named in one log line (it drops them when they expire).
#[unsafe(no_mangle)]
pub extern "C" fn SetSipUnregisterTimeout(
    engine: SIPHANDLE,
    timeout_ms: u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.set_unregister_wait(timeout_ms))
}

/// Unregisters every name (Expires: 0); `SipUnregistered` notifications follow.
#[unsafe(no_mangle)]
pub extern "C" fn DisableSipRegisterServer(engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.disable_register_server())
}

/// Writes the registration state of `name` (`SipRegisterNameUnknown` if not registered
/// by this engine). It reflects every notification already delivered, also when called
/// from inside one; it does not wait for the engine's I/O thread.
///
/// # Safety
/// `name` is NULL or NUL-terminated; `state_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetSipRegistrationState(
    engine: SIPHANDLE,
    name: *const c_char,
    state_out: *mut SIP_REGISTRATION_STATE,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let name = arg_str!(name)?;
        let state_out = out_ptr!(state_out)?;
        let state = e
            .registration_state(name.trim())?
            .ok_or(ApiError::NameUnknown(name))?;
        state_out.write(state.into());
        Ok(())
    })
}

/// Writes the numbers of the registration info query for `name` (its texts:
/// `GetSipRegistrationText`). Asks the engine's I/O thread, so it reflects everything that
/// happened before the call (`SipRegisterNameUnknown` if the name is not registered by
/// this engine).
///
/// # Safety
/// `name` is NULL or NUL-terminated; `info_out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetSipRegistrationInfo(
    engine: SIPHANDLE,
    name: *const c_char,
    info_out: *mut SIP_REGISTRATION_INFO,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let name = arg_str!(name)?;
        let info_out = out_ptr!(info_out)?;
        info_out.write(SIP_REGISTRATION_INFO::from(
            &e.registration_info(name.trim())?,
        ));
        Ok(())
    })
}

/// Writes one text of the registration info query for `name` (`which` is a
/// `SIP_REGISTRATION_TEXT`) into `buffer` (`capacity` bytes, NUL-terminated), and the
/// bytes it needs (terminator included) to `required` unless NULL. `SipBufferTooSmall`
/// when it does not fit: call again with `required` bytes (NULL and 0 ask for the length
/// only). A text the registrar did not give is "".
///
/// # Safety
/// `name` is NULL or NUL-terminated; `buffer` is NULL (with `capacity` 0) or writable for
/// `capacity` bytes; `required` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetSipRegistrationText(
    engine: SIPHANDLE,
    name: *const c_char,
    which: u32,
    buffer: *mut c_char,
    capacity: u32,
    required: *mut u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let name = arg_str!(name)?;
        let which = read_text_kind(which)?;
        let out = text_out!(buffer, capacity, required)?;
        out.write(&registration_text(
            &e.registration_info(name.trim())?,
            which,
        ))
    })
}

/// Sends a CRLF keep-alive (RFC 5626) to the registrar or proxy every `interval_seconds`
/// (0 stops them; at most 86400). LanScape's parameter list: [`EnableKeepAliveTransmissionsEx`].
#[unsafe(no_mangle)]
pub extern "C" fn EnableKeepAliveTransmissions(
    engine: SIPHANDLE,
    interval_seconds: u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        self::engine(engine)?.set_keepalive_transmissions(interval_seconds > 0, interval_seconds)
    })
}

/// LanScape's `EnableKeepAliveTransmissions(Boolean, Boolean, UInt32)`: `sip_keep_alive`
/// non-zero sends a CRLF keep-alive (RFC 5626) to every registrar or proxy in use every
/// `interval_seconds` (1 to 86400), zero stops them; `rtp_keep_alive` is accepted and
/// ignored (this library has no media). LanScape sends its SIP keep-alives of this call to
/// the far end of active calls; with no calls here, they go where registrations go: the
/// same keep-alives as [`EnableKeepAliveTransmissions`].
#[unsafe(no_mangle)]
pub extern "C" fn EnableKeepAliveTransmissionsEx(
    engine: SIPHANDLE,
    sip_keep_alive: i32,
    rtp_keep_alive: i32,
    interval_seconds: u32,
) -> TELEPHONY_RETURN_VALUE {
    let _ = rtp_keep_alive;
    entry(|| {
        self::engine(engine)?
            .set_keepalive_transmissions(read_bool(sip_keep_alive), interval_seconds)
    })
}

/// SIP Outbound (RFC 5626) for the registrations enabled from now on. `flows`: 0 off (the
/// default); 1 one flow per name; 2 a second flow to the registrar's second target, when
/// DNS lists one (the name is registered while either flow is). Each flow (`+sip.instance`,
/// `reg-id`, `;ob`, `Supported: outbound, path, gruu`) is watched by keep-alives (STUN on
/// UDP, CRLF ping and pong on TCP and TLS, at the registrar's Flow-Timer); a failed flow
/// registers again at once. A registrar answering 439 gets a plain registration.
#[unsafe(no_mangle)]
pub extern "C" fn EnableSipOutbound(engine: SIPHANDLE, flows: u32) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.set_outbound(flows))
}

/// Sets the instance id (`+sip.instance`, RFC 5626 §4.1) of the registrations enabled
/// from now on: a URN such as `urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6`. One is
/// generated at start; an application that keeps it across restarts (`GetSipInstanceId`)
/// keeps its GRUUs. Once set, it is sent (asking for GRUUs, RFC 5627) also without
/// Outbound.
///
/// # Safety
/// `instance_id` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SetSipInstanceId(
    engine: SIPHANDLE,
    instance_id: *const c_char,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        e.set_instance_id(&arg_str!(instance_id)?)
    })
}

/// Writes the instance id in use into `buffer` (`capacity` bytes), and the bytes it needs
/// to `required` unless NULL (`SipBufferTooSmall` when it does not fit).
///
/// # Safety
/// `buffer` is NULL (with `capacity` 0) or writable for `capacity` bytes; `required` is
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn GetSipInstanceId(
    engine: SIPHANDLE,
    buffer: *mut c_char,
    capacity: u32,
    required: *mut u32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        text_out!(buffer, capacity, required)?.write(&e.instance_id())
    })
}

/// Sends one CRLF keep-alive to every registrar or proxy in use now. LanScape's parameter
/// list (a destination, on or off, a period): [`SendSipKeepAliveEx`].
#[unsafe(no_mangle)]
pub extern "C" fn SendSipKeepAlive(engine: SIPHANDLE) -> TELEPHONY_RETURN_VALUE {
    entry(|| self::engine(engine)?.send_keepalive())
}

/// LanScape's `SendSipKeepAlive(String Host, UInt32 Port, Boolean EnableState, Int32
/// KeepAliveSeconds)`: with `enable_state` non-zero, sends a CRLF keep-alive ("NULL" SIP
/// message) to `host`:`port` (an IPv4/IPv6 literal or a DNS name, resolved now; port 0:
/// 5060) at once and then every `keep_alive_seconds` (1 to 86400); with 0, stops those to
/// that destination. They leave from the engine's SIP UDP port, or go on the connection of
/// the engine's registrations over TCP or TLS to that address. Each destination has its
/// own; they end with the engine.
///
/// # Safety
/// `host` is NULL or NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn SendSipKeepAliveEx(
    engine: SIPHANDLE,
    host: *const c_char,
    port: u32,
    enable_state: i32,
    keep_alive_seconds: i32,
) -> TELEPHONY_RETURN_VALUE {
    entry(|| {
        let e = self::engine(engine)?;
        let host = arg_str!(host)?;
        e.set_keepalive_to(&host, port, read_bool(enable_state), keep_alive_seconds)
    })
}

/// Makes the I/O driver of an engine panic, to test that its failure is reported (test
/// tool, not part of the C ABI).
#[cfg(feature = "testkit")]
pub(crate) fn inject_driver_panic(engine: SIPHANDLE) -> bool {
    self::engine(engine)
        .map(|e| e.inject_driver_panic())
        .is_ok()
}
