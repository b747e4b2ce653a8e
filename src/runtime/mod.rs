//! The only place with tokio: the shared service thread, UDP endpoints driving the sans-I/O
//! bindings, and the threads that deliver events to user callbacks.

pub mod dispatch;
pub mod endpoint;
pub mod service;

pub use endpoint::{
    BindingId, BindingSpec, Endpoint, EndpointError, EndpointEvent, EndpointStats, LogLevel,
    MAX_IN_FLIGHT_PER_HOP,
};
