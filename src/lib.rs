//! liblanscape-sip: SIP registration (RFC 3261 REGISTER) with a LanScape-compatible C ABI.
//!
//! Layers, top to bottom:
//! - [`ffi`]: the C ABI, thin and defensive (handles, NULL/UTF-8/range checks, no unwinding);
//!   the only module with `unsafe` code.
//! - [`api`]: the Rust models the C ABI exposes (the LanScape engine, the profile registry),
//!   the crate's supported Rust API.
//! - `runtime` (private): sockets, timers and the threads that deliver callbacks.
//! - `engine` (private): the sans-I/O protocol core (addresses, messages, digest,
//!   transaction, binding, endpoint).

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
