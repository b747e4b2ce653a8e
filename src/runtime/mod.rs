//! The only place with tokio: the shared service thread, the UDP driver of the sans-I/O
//! endpoint, and the threads that deliver events to user callbacks.

pub mod dispatch;
pub mod endpoint;
pub mod service;

pub use crate::engine::endpoint::{
    BindingId, BindingSpec, EndpointStats, LogLevel, MAX_IN_FLIGHT_PER_HOP,
};
pub use endpoint::{DriverFailed, Endpoint, EndpointError, EndpointEvent};
