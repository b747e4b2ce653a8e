//! The hostile response corpus (`tests/hostile/*.sip`), replayed through the public C API:
//! a scripted registrar answers each REGISTER with the file's response, made to answer
//! that request, and the first outcome the application hears must be the one the file
//! expects. The same files, rendered, seed the fuzz targets (`fuzz/corpus/response`).
//!
//! A file is a few `# key: value` lines, then the response. Its lines end in CRLF when
//! sent (so it ends with an empty line); `\xNN` is that byte, `\n` a bare LF, `\r` a bare
//! CR, `{eol}` at the end of a line joins it to the next, `{repeat N}…{end}` is the text N
//! times, and `{next}` on a line of its own starts another datagram. `{via}`, `{from}`, `{to}`, `{call_id}`,
//! `{cseq}`, `{branch}`, `{contact}` and `{port}` are those of the request answered.
//!
//! Keys: `expect` (registered, error, timeout, auth, interval), `answer` (`always`, the
//! default, or `first`: the next requests are answered as a registrar would), `credentials`
//! (`yes`: the engine has a password for any realm), `note` (what the file is).

mod support;

use lanscape_sip::ffi::TELEPHONY_RETURN_VALUE::{self, *};
use lanscape_sip::ffi::lanscape::*;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

struct Case {
    name: String,
    expect: TELEPHONY_RETURN_VALUE,
    always: bool,
    credentials: bool,
    template: String,
}

fn corpus() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hostile");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "sip"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let mut keys = std::collections::HashMap::new();
            let mut body = Vec::new();
            for line in text.lines() {
                match line.strip_prefix("# ").and_then(|l| l.split_once(": ")) {
                    Some((k, v)) if body.is_empty() => {
                        keys.insert(k.to_string(), v.trim().to_string());
                    }
                    _ => body.push(line),
                }
            }
            let expect = match keys.get("expect").map(String::as_str) {
                Some("registered") => SipRegisterSuccess,
                Some("error") => SipRegisterError,
                Some("timeout") => SipRegisterTimeOut,
                Some("auth") => SipRegisterAuthorizationError,
                Some("interval") => SipRegisterIntervalError,
                other => panic!("{name}: expect {other:?}"),
            };
            Case {
                name,
                expect,
                always: keys.get("answer").is_none_or(|a| a == "always"),
                credentials: keys.get("credentials").is_some_and(|c| c == "yes"),
                template: body.join("\n") + "\n",
            }
        })
        .collect()
}

/// What fills the placeholders.
struct Fill {
    via: String,
    from: String,
    to: String,
    call_id: String,
    cseq: String,
    branch: String,
    contact: String,
    port: String,
}

impl Fill {
    fn of(req: &Req) -> Fill {
        Fill {
            via: req.header("Via").unwrap_or_default(),
            from: req.header("From").unwrap_or_default(),
            to: req.header("To").unwrap_or_default(),
            call_id: req.call_id(),
            cseq: req.header("CSeq").unwrap_or_default(),
            branch: req.branch(),
            contact: req.contact_uri(),
            port: req.from.port().to_string(),
        }
    }

    /// Fixed values, for the fuzz corpus.
    fn fixed() -> Fill {
        Fill {
            via: "SIP/2.0/UDP 192.0.2.10:5060;rport;branch=z9hG4bK0123456789abcdef".into(),
            from: "<sip:alice@example.com>;tag=1".into(),
            to: "<sip:alice@example.com>".into(),
            call_id: "0123456789abcdef0123456789abcdef@lanscape".into(),
            cseq: "1 REGISTER".into(),
            branch: "z9hG4bK0123456789abcdef".into(),
            contact: "sip:alice@192.0.2.10:5060".into(),
            port: "5060".into(),
        }
    }
}

/// The bytes of a template, filled.
fn render(template: &str, fill: &Fill) -> Vec<u8> {
    let mut text = template.replace('\n', "\r\n");
    // Repeats first (they may hold placeholders).
    while let Some(start) = text.find("{repeat ") {
        let head_end = start + text[start..].find('}').unwrap();
        let n: usize = text[start + 8..head_end].parse().unwrap();
        let end = head_end + text[head_end..].find("{end}").unwrap();
        let inner = text[head_end + 1..end].to_string();
        text.replace_range(start..end + 5, &inner.repeat(n));
    }
    let text = text
        .replace("{eol}\r\n", "")
        .replace("{via}", &fill.via)
        .replace("{from}", &fill.from)
        .replace("{to}", &fill.to)
        .replace("{call_id}", &fill.call_id)
        .replace("{cseq}", &fill.cseq)
        .replace("{branch}", &fill.branch)
        .replace("{contact}", &fill.contact)
        .replace("{port}", &fill.port);
    let mut out = Vec::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'\\', Some(b'x')) => {
                let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 4;
            }
            (b'\\', Some(b'n')) => {
                out.push(b'\n');
                i += 2;
            }
            (b'\\', Some(b'r')) => {
                out.push(b'\r');
                i += 2;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    out
}

/// Runs one case; returns the first outcome heard (or `None` within the wait).
fn replay(case: &Case) -> (Option<TELEPHONY_RETURN_VALUE>, String) {
    let template = case.template.clone();
    let always = case.always;
    let registrar = Registrar::start(move |req, _| {
        if always || req.cseq() == 1 {
            let parts: Vec<Vec<u8>> = template
                .split("{next}\n")
                .map(|t| render(t, &Fill::of(req)))
                .collect();
            Action::RawMany(parts)
        } else {
            Action::Register
        }
    });
    let (engine, events) = engine(1);
    if case.credentials {
        credentials(engine, "*", "alice", "pw");
    }
    let mut enable = Enable::to(&registrar, "alice");
    enable.timeout_ms = 1000;
    enable.interval = 30;
    assert_eq!(enable.call(engine), SipSuccess, "{}", case.name);
    let deadline = std::time::Instant::now() + Duration::from_secs(6);
    let first = loop {
        let heard = events.events();
        if let Some(e) = heard.first() {
            break Some(e.clone());
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(StopSipTelephony(engine), SipSuccess, "{}: stops", case.name);
    (
        first.as_ref().map(|e| e.code),
        first.map(|e| e.reason).unwrap_or_default(),
    )
}

#[test]
fn every_hostile_response_has_its_expected_outcome() {
    let cases = corpus();
    assert!(cases.len() >= 70, "only {} files", cases.len());
    // Eight at a time: each has its own engine and registrar.
    let results: Vec<(
        String,
        TELEPHONY_RETURN_VALUE,
        Option<TELEPHONY_RETURN_VALUE>,
        String,
    )> = std::thread::scope(|scope| {
        let chunks: Vec<&[Case]> = cases.chunks(cases.len().div_ceil(8)).collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|case| {
                            let (heard, reason) = replay(case);
                            (case.name.clone(), case.expect, heard, reason)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wrong: Vec<String> = results
        .iter()
        .filter(|(_, expect, heard, _)| Some(*expect) != *heard)
        .map(|(name, expect, heard, reason)| {
            format!("{name}: expected {expect:?}, heard {heard:?} ({reason})")
        })
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The corpus, rendered with fixed values, seeds the fuzz target `response` (whose step
/// byte 0 feeds a response to a binding). `UPDATE_CORPUS=1` writes the files.
#[test]
fn the_corpus_seeds_the_response_fuzz_target() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/response");
    let update = std::env::var_os("UPDATE_CORPUS").is_some();
    let mut stale = Vec::new();
    for case in corpus() {
        let mut seed = vec![0u8];
        let template = case.template.split("{next}\n").next().unwrap().to_string();
        seed.extend(render(&template, &Fill::fixed()));
        let path = dir.join(format!("hostile-{}", case.name));
        if update {
            std::fs::write(&path, &seed).unwrap();
        } else if std::fs::read(&path).ok() != Some(seed) {
            stale.push(path.display().to_string());
        }
    }
    assert!(
        stale.is_empty(),
        "run UPDATE_CORPUS=1 cargo test --test hostile: {stale:?}"
    );
}
