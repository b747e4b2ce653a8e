//! Microbenchmarks of the sans-I/O hot paths: building a REGISTER, parsing a 200 OK and a
//! 401, computing digest answers; and of `GetSipRegistrationState` with 100,000 names (a
//! name registering, and a name being unregistered).

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use lanscape_sip::engine::digest::{self, AnswerInput, ChallengeKind, Credential};
use lanscape_sip::engine::message::{RegisterRequest, build_register, parse_response};

const OK: &[u8] = b"SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.168.1.10:5060;rport=5060;received=192.168.1.10;branch=z9hG4bK5e1f0a2b3c4d5e6f\r\n\
From: <sip:alice@example.com>;tag=4eabbdb532a4b77f\r\n\
To: <sip:alice@example.com>;tag=as1234\r\n\
Call-ID: 277afa0bf4a690d9d99aff37b67fa923@lanscape\r\n\
CSeq: 2 REGISTER\r\n\
Contact: <sip:alice@192.168.1.10:5060>;expires=3600\r\n\
Server: Kamailio (5.6.3 (x86_64/linux))\r\n\
Content-Length: 0\r\n\r\n";

const UNAUTHORIZED: &[u8] = b"SIP/2.0 401 Unauthorized\r\n\
Via: SIP/2.0/UDP 192.168.1.10:5060;rport=5060;branch=z9hG4bK5e1f0a2b3c4d5e6f\r\n\
From: <sip:alice@example.com>;tag=4eabbdb532a4b77f\r\n\
To: <sip:alice@example.com>;tag=as1234\r\n\
Call-ID: 277afa0bf4a690d9d99aff37b67fa923@lanscape\r\n\
CSeq: 1 REGISTER\r\n\
WWW-Authenticate: Digest realm=\"example.com\", nonce=\"Y2n4pGNp+N1fNHvUkBnxz5Dk3xMQ\", qop=\"auth\", algorithm=SHA-256\r\n\
WWW-Authenticate: Digest realm=\"example.com\", nonce=\"Y2n4pGNp+N1fNHvUkBnxz5Dk3xMQ\", qop=\"auth\", algorithm=MD5\r\n\
Content-Length: 0\r\n\r\n";

fn benches(c: &mut Criterion) {
    let auth = [("Authorization", "Digest username=\"alice\", realm=\"example.com\", nonce=\"Y2n4pGNp\", uri=\"sip:example.com\", response=\"0123456789abcdef0123456789abcdef\", algorithm=MD5, cnonce=\"c\", qop=auth, nc=00000001".to_string())];
    c.bench_function("build REGISTER (with Authorization)", |b| {
        b.iter(|| {
            build_register(black_box(&RegisterRequest {
                request_uri: "sip:example.com",
                aor: "sip:alice@example.com",
                from_tag: "4eabbdb532a4b77f",
                call_id: "277afa0bf4a690d9d99aff37b67fa923@lanscape",
                cseq: 2,
                branch: "z9hG4bK5e1f0a2b3c4d5e6f",
                transport: lanscape_sip::engine::transport::Transport::Udp,
                sent_by: "192.168.1.10:5060".parse().unwrap(),
                contact: "<sip:alice@192.168.1.10:5060>",
                expires: 3600,
                route: None,
                authorization: &auth,
                user_agent: "liblanscape-sip/0.1.0",
                supported: None,
            }))
            .unwrap()
        })
    });
    c.bench_function("parse 200 OK", |b| {
        b.iter(|| parse_response(black_box(OK)).unwrap())
    });
    c.bench_function("parse 401 (two challenges)", |b| {
        b.iter(|| parse_response(black_box(UNAUTHORIZED)).unwrap())
    });
    let credential = Credential::new("example.com", "alice", "secret");
    for (name, algorithm) in [("MD5", "MD5"), ("SHA-256", "SHA-256")] {
        let challenge = digest::parse_challenge(
            ChallengeKind::Www,
            &format!("Digest realm=\"example.com\", nonce=\"Y2n4pGNp\", qop=\"auth\", algorithm={algorithm}"),
        )
        .unwrap();
        c.bench_function(&format!("digest answer {name} qop=auth"), |b| {
            b.iter(|| {
                digest::answer(
                    black_box(&challenge),
                    &credential,
                    &AnswerInput {
                        method: "REGISTER",
                        uri: "sip:example.com",
                        nonce_count: 1,
                        cnonce: "0a4f113b",
                        body: b"",
                    },
                )
            })
        });
    }
}

/// `GetSipRegistrationState` on an engine with 100,000 names, every request going to a
/// socket that never answers (so that the names stay registering, then unregistering).
fn state_lookup(c: &mut Criterion) {
    use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::SipSuccess;
    use lanscape_sip::ffi::lanscape::*;
    use std::ffi::CString;
    const NAMES: usize = 100_000;
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = u32::from(silent.local_addr().unwrap().port());
    let ip = CString::new("127.0.0.1").unwrap();
    let mut engine = 0;
    // SAFETY: C strings and an out-pointer, live locals.
    let rc = unsafe { StartSipTelephony(std::ptr::null(), 1, 0, ip.as_ptr(), &mut engine) };
    assert_eq!(rc, SipSuccess);
    let names: Vec<String> = (0..NAMES).map(|i| format!("n{i}")).collect();
    let list = CString::new(names.join(",")).unwrap();
    // SAFETY: C strings, live locals.
    let rc = unsafe {
        EnableSipRegisterServer(
            engine,
            list.as_ptr(),
            0,
            0,
            ip.as_ptr(),
            port,
            3600,
            3600,
            600_000,
            0,
        )
    };
    assert_eq!(rc, SipSuccess);
    let probe = |name: &CString| {
        let mut state = SIP_REGISTRATION_STATE::SipStateUnregistered;
        // SAFETY: a live C string and out-pointer.
        let rc = unsafe { GetSipRegistrationState(engine, name.as_ptr(), &mut state) };
        assert_eq!(rc, SipSuccess, "{name:?}");
        state
    };
    let name = CString::new("n77777").unwrap();
    c.bench_function("GetSipRegistrationState, 100,000 names registering", |b| {
        b.iter(|| probe(black_box(&name)))
    });
    assert_eq!(DisableSipRegisterServer(engine), SipSuccess);
    // One of the first names, whose REGISTER went out (the others never left the queue, and
    // end at once).
    let name = CString::new("n7").unwrap();
    c.bench_function(
        "GetSipRegistrationState, 100,000 names unregistering",
        |b| b.iter(|| probe(black_box(&name))),
    );
    StopSipTelephony(engine);
}

criterion_group!(micro, benches, state_lookup);
criterion_main!(micro);
