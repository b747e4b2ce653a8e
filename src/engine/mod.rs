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

/// Calls `each` with every string of up to `max_len` characters of `alphabet`, and returns
/// how many there were: exhaustive checks of a scanner against a reference.
#[cfg(test)]
pub(crate) fn every_string(alphabet: &[char], max_len: u32, mut each: impl FnMut(&str)) -> usize {
    let mut text = String::new();
    let mut count = 0;
    for len in 0..=max_len {
        for mut n in 0..alphabet.len().pow(len) {
            text.clear();
            for _ in 0..len {
                text.push(alphabet[n % alphabet.len()]);
                n /= alphabet.len();
            }
            each(&text);
            count += 1;
        }
    }
    count
}
