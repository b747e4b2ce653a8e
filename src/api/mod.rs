//! The Rust models behind the C ABI. Both sit on the same runtime and engine.

pub mod address;
pub mod lanscape;
pub mod profiles;

pub use lanscape::{
    ApiError, LogListener, Notification, NotificationKind, NotificationListener, PhoneEngine,
    RegisterServerParams, StartParams,
};
