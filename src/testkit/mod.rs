//! Tools to try the library without a SIP server: a scriptable loopback registrar (UDP, TCP
//! or TLS) and a throw-away PKI. Behind the `testkit` feature: not in the shipped library.

#![forbid(unsafe_code)]

pub mod hooks;
pub mod pki;
pub mod registrar;
pub mod seeded;
