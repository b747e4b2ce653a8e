//! The registration engine, sans I/O: message building and parsing, digest authentication,
//! the client transaction and the registration binding. Nothing here opens a socket, reads
//! a clock or draws random numbers; callers pass those in.

#![forbid(unsafe_code)]

pub mod binding;
pub mod digest;
pub mod endpoint;
pub mod flow;
pub mod message;
pub mod stun;
pub mod target;
pub mod transaction;
pub mod transport;
pub mod uri;
