//! Tools to try the library without a SIP server: a scriptable loopback registrar.

pub mod registrar;
