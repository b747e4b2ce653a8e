//! The Rust models behind the C ABI. Both sit on the same runtime and engine.

#![forbid(unsafe_code)]

pub(crate) mod address;
mod error;
mod info;
pub mod lanscape;
pub mod profiles;

pub use error::ApiError;
pub use info::RegistrationDetails;
pub use lanscape::{
    LogListener, Notification, NotificationKind, NotificationListener, PhoneEngine,
    RegisterServerParams, StartParams,
};

// Engine and runtime types the Rust API names in its signatures.
pub use crate::engine::binding::{BindingState, RegistrationInfo};
pub use crate::engine::digest::Credential;
pub use crate::engine::target::TransportChoice;
pub use crate::engine::transport::Transport;
pub use crate::runtime::tls::TlsSettings;
pub use crate::runtime::{EndpointStats, LogLevel};
