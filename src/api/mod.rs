//! The Rust models behind the C ABI. Both sit on the same runtime and engine.

pub mod lanscape;

pub use lanscape::{
    ApiError, LogListener, Notification, NotificationKind, NotificationListener, PhoneEngine,
    RegisterServerParams, StartParams,
};
