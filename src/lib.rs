//! liblanscape-sip: SIP registration (RFC 3261 REGISTER) with a LanScape-compatible C ABI.
//!
//! Layers, top to bottom:
//! - [`ffi`]: the C ABI, thin and defensive (handles, NULL/UTF-8/range checks, no unwinding).
//! - [`api`]: the Rust models the C ABI exposes (the LanScape engine).
//! - [`runtime`]: sockets, timers and the threads that deliver callbacks.
//! - [`engine`]: the sans-I/O state machines (transaction, digest, binding).

#![warn(missing_docs)]

pub mod api;
// The engine is internal; the test tools (benches, fuzz targets) reach it through the
// `testkit` feature, which the shipped library is built without.
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod engine;
#[cfg(not(feature = "testkit"))]
mod engine;
pub mod ffi;
mod handles;
mod runtime;
#[cfg(feature = "testkit")]
pub mod testkit;
