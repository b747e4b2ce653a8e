//! The registration info query, one shape for both APIs (as rich as PJSIP's
//! `pjsua_acc_info`): what the binding knows of its registration (the registrar's last
//! answer, what it granted and assigned), with its state and the target in use.

use crate::engine::binding::{BindingState, RegistrationInfo};
use crate::engine::transport::{Target, Transport};
use std::net::SocketAddr;
use std::time::Instant;

/// What a registration is and why, at the moment of the query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationDetails {
    /// The state (the same one the state query gives).
    pub state: BindingState,
    /// Seconds until the next refresh, while registered.
    pub seconds_until_refresh: Option<u32>,
    /// The transport and address of the registrar (or proxy) target in use.
    pub transport: Transport,
    /// See `transport`.
    pub target: SocketAddr,
    /// The rest: last status and reason, granted expiry, contact, GRUUs, Service-Route,
    /// P-Associated-URI, Path, Outbound and its Flow-Timer, consecutive failures.
    pub info: RegistrationInfo,
}

impl RegistrationDetails {
    /// Puts together what the binding knows, the target it uses and its state, at `now`.
    pub(crate) fn new(
        info: RegistrationInfo,
        target: &Target,
        state: BindingState,
        now: Instant,
    ) -> RegistrationDetails {
        RegistrationDetails {
            state,
            seconds_until_refresh: info.refresh_at.map(|at| {
                u32::try_from(at.saturating_duration_since(now).as_secs()).unwrap_or(u32::MAX)
            }),
            transport: target.transport,
            target: target.addr,
            info,
        }
    }
}
