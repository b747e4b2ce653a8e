//! The only place with tokio: the shared service thread, the driver of the sans-I/O endpoint
//! (UDP socket, TCP and TLS connections), TLS settings, and the threads that deliver events
//! to user callbacks.

#![forbid(unsafe_code)]

pub mod connection;
pub mod dispatch;
pub mod dns;
pub mod endpoint;
pub mod icmp;
pub mod service;
pub mod tls;
pub mod udp;

pub use crate::engine::endpoint::{BindingId, BindingSpec, EndpointStats, LogLevel};
pub use endpoint::{DriverFailed, Endpoint, EndpointError, EndpointEvent, Locator};
