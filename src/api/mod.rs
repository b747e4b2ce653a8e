//! The Rust models behind the C ABI. Both sit on the same runtime and engine.

#![forbid(unsafe_code)]

pub mod address;
mod error;
pub mod lanscape;
pub mod profiles;

pub use error::ApiError;
pub use lanscape::{
    LogListener, Notification, NotificationKind, NotificationListener, PhoneEngine,
    RegisterServerParams, StartParams,
};
