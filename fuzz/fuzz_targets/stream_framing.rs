//! Arbitrary bytes, in arbitrary pieces, on a TCP/TLS connection: the framer never panics,
//! never frames a message over the datagram bound, never invents or reorders bytes (the
//! messages it frames are the stream's, in order, with only CRLF keep-alives between
//! them), and refuses, rather than buffers for ever, a stream that breaks the rules.
#![no_main]

use lanscape_sip::engine::transport::StreamFramer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&piece, stream)) = data.split_first() else {
        return;
    };
    let piece = usize::from(piece).max(1);
    let mut framer = StreamFramer::default();
    let mut framed: Vec<Vec<u8>> = Vec::new();
    'stream: for chunk in stream.chunks(piece) {
        framer.push(chunk);
        loop {
            match framer.next_message() {
                Ok(Some(message)) => {
                    assert!(message.len() <= 65_535, "{} bytes", message.len());
                    framed.push(message);
                }
                Ok(None) => break,
                Err(_) => break 'stream, // the connection is closed: nothing more is read
            }
        }
        assert!(framer.buffered() <= 65_535 + piece, "{} buffered", framer.buffered());
    }
    let mut at = 0;
    for message in &framed {
        while stream.get(at).is_some_and(|b| *b == b'\r' || *b == b'\n') {
            at += 1;
        }
        assert!(stream[at..].starts_with(message), "a message not the stream's own, at {at}");
        at += message.len();
    }
});
