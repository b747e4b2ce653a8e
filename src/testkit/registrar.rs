//! A scriptable SIP registrar on loopback, for the demo, the tests and users' own tests.
//! Not a production registrar: a thread per socket or connection, no persistence. It
//! listens on UDP, TCP or TLS (rustls).
//!
//! It keeps real bindings (AOR -> contacts with expiry) like a location service, so callers
//! can check what a registrar would hold; a script decides, per request, whether to answer
//! normally, challenge, refuse, rewrite or stay silent.

use crate::engine::transport::{StreamFramer, Transport};
use md5::{Digest, Md5};
use sha2::Sha256;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A request as the registrar received it.
#[derive(Debug, Clone)]
pub struct Req {
    /// The datagram as text.
    pub text: String,
    /// Where it came from.
    pub from: SocketAddr,
    /// When it arrived.
    pub at: Instant,
}

impl Req {
    /// The first line.
    pub fn request_line(&self) -> &str {
        self.text.lines().next().unwrap_or("")
    }

    /// All values of a header (case-insensitive name).
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.text
            .split("\r\n")
            .skip(1)
            .take_while(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .filter(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
            .collect()
    }

    /// The first value of a header.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers(name).into_iter().next()
    }

    /// The Expires header.
    pub fn expires(&self) -> Option<u32> {
        self.header("Expires").and_then(|v| v.parse().ok())
    }

    /// The Call-ID header.
    pub fn call_id(&self) -> String {
        self.header("Call-ID").unwrap_or_default()
    }

    /// The CSeq number.
    pub fn cseq(&self) -> u32 {
        self.header("CSeq")
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// The branch of the (top) Via.
    pub fn branch(&self) -> String {
        let via = self.header("Via").unwrap_or_default();
        via.split(';')
            .find_map(|p| p.trim().strip_prefix("branch=").map(str::to_string))
            .unwrap_or_default()
    }

    /// The URI inside the Contact header's angle brackets.
    pub fn contact_uri(&self) -> String {
        let c = self.header("Contact").unwrap_or_default();
        let start = c.find('<').map_or(0, |i| i + 1);
        let end = c.find('>').unwrap_or(c.len());
        c.get(start..end).unwrap_or_default().to_string()
    }

    /// The user part of the To URI.
    pub fn to_user(&self) -> String {
        let to = self.header("To").unwrap_or_default();
        let start = to.find("sip:").map_or(0, |i| i + 4);
        to[start..].split('@').next().unwrap_or("").to_string()
    }

    /// The Authorization header.
    pub fn authorization(&self) -> Option<String> {
        self.header("Authorization")
    }
}

/// What the script tells the registrar to do with a request.
pub enum Action {
    /// Answer like a registrar: update the bindings and list them in a 200.
    Register,
    /// Send these responses (status, extra headers) in order; bindings unchanged.
    Reply(Vec<(u16, Vec<String>)>),
    /// 200 OK with exactly these Contact header values (bindings unchanged).
    OkWithContacts(Vec<String>, Option<u32>),
    /// Send raw bytes back.
    Raw(Vec<u8>),
    /// Send several raw datagrams back (on a stream: separate writes, 30 ms apart, so that
    /// they arrive in separate reads).
    RawMany(Vec<Vec<u8>>),
    /// Stay silent.
    Ignore,
    /// Close the connection the request came on (streams; silence on UDP).
    Close,
}

type Script = Box<dyn FnMut(&Req, &mut RegistrarState) -> Action + Send>;

/// How a registrar listens.
pub enum Listen {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS with this server configuration (see [`crate::testkit::pki::TestPki`]).
    Tls(Arc<rustls::ServerConfig>),
}

/// State the script may read and change.
#[derive(Default)]
pub struct RegistrarState {
    /// AOR user -> (contact URI, expiry).
    pub bindings: HashMap<String, Vec<(String, u32)>>,
    /// Added to the top Via of every response (e.g. "received=203.0.113.5;rport=40000").
    pub via_params: Option<String>,
    /// Nonces handed out.
    pub nonces: u32,
    /// CRLF keep-alives received (datagrams, or stream reads, of CR and LF only).
    pub keepalives: u32,
}

/// A registrar on loopback; stopped, its threads joined, on drop.
pub struct Registrar {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// The transport it listens on.
    pub transport: Transport,
    requests: Arc<Mutex<Vec<Req>>>,
    state: Arc<Mutex<RegistrarState>>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

/// What every thread of a registrar shares.
#[derive(Clone)]
struct Shared {
    requests: Arc<Mutex<Vec<Req>>>,
    state: Arc<Mutex<RegistrarState>>,
    script: Arc<Mutex<Script>>,
    stop: Arc<AtomicBool>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Shared {
    /// Records a request and runs the script on it.
    fn handle(&self, bytes: &[u8], from: SocketAddr) -> Option<Action> {
        let text = String::from_utf8_lossy(bytes).to_string();
        if text.trim().is_empty() {
            self.state.lock().unwrap().keepalives += 1;
            return None;
        }
        let req = Req {
            text,
            from,
            at: Instant::now(),
        };
        self.requests.lock().unwrap().push(req.clone());
        let mut st = self.state.lock().unwrap();
        let action = (self.script.lock().unwrap())(&req, &mut st);
        Some(Action::RawMany(respond(&req, action, &mut st)?))
    }
}

impl Registrar {
    /// Starts a UDP registrar on 127.0.0.1 that answers each request as `script` says.
    pub fn start(script: impl FnMut(&Req, &mut RegistrarState) -> Action + Send + 'static) -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), Listen::Udp, script)
    }

    /// Starts a registrar on `bind` (port 0: any), listening as `listen` says.
    pub fn start_on(
        bind: SocketAddr,
        listen: Listen,
        script: impl FnMut(&Req, &mut RegistrarState) -> Action + Send + 'static,
    ) -> Self {
        let shared = Shared {
            requests: Arc::default(),
            state: Arc::default(),
            script: Arc::new(Mutex::new(Box::new(script))),
            stop: Arc::new(AtomicBool::new(false)),
            threads: Arc::default(),
        };
        let (addr, transport, thread) = match listen {
            Listen::Udp => {
                let socket = UdpSocket::bind(bind).unwrap();
                socket
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let addr = socket.local_addr().unwrap();
                let shared = shared.clone();
                let thread = std::thread::spawn(move || serve_udp(socket, shared));
                (addr, Transport::Udp, thread)
            }
            Listen::Tcp | Listen::Tls(_) => {
                let listener = TcpListener::bind(bind).unwrap();
                listener.set_nonblocking(true).unwrap();
                let addr = listener.local_addr().unwrap();
                let (transport, tls) = match listen {
                    Listen::Tls(config) => (Transport::Tls, Some(config)),
                    _ => (Transport::Tcp, None),
                };
                let shared = shared.clone();
                let thread = std::thread::spawn(move || accept(listener, tls, shared));
                (addr, transport, thread)
            }
        };
        shared.threads.lock().unwrap().push(thread);
        Registrar {
            addr,
            transport,
            requests: shared.requests,
            state: shared.state,
            stop: shared.stop,
            threads: shared.threads,
        }
    }

    /// A registrar that accepts everything.
    pub fn accepting() -> Self {
        Self::start(|_, _| Action::Register)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Req> {
        self.requests.lock().unwrap().clone()
    }

    /// Every REGISTER received so far.
    pub fn registers(&self) -> Vec<Req> {
        self.requests()
            .into_iter()
            .filter(|r| r.request_line().starts_with("REGISTER "))
            .collect()
    }

    /// The contacts (URI, expiry) held for a user.
    pub fn bindings(&self, user: &str) -> Vec<(String, u32)> {
        self.state
            .lock()
            .unwrap()
            .bindings
            .get(user)
            .cloned()
            .unwrap_or_default()
    }

    /// CRLF keep-alives received so far.
    pub fn keepalives(&self) -> u32 {
        self.state.lock().unwrap().keepalives
    }

    /// Adds parameters to the top Via of every later response.
    pub fn set_via_params(&self, params: &str) {
        self.state.lock().unwrap().via_params = Some(params.to_string());
    }

    /// Waits until `pred` holds for the requests received.
    pub fn wait_for(&self, timeout: Duration, pred: impl Fn(&[Req]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(&self.requests()) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        pred(&self.requests())
    }

    /// The port it listens on.
    pub fn port(&self) -> u32 {
        u32::from(self.addr.port())
    }
}

impl Drop for Registrar {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        loop {
            let Some(thread) = self.threads.lock().unwrap().pop() else {
                break;
            };
            let _ = thread.join();
        }
    }
}

fn serve_udp(socket: UdpSocket, shared: Shared) {
    let mut buf = vec![0u8; 65536];
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        if let Some(Action::RawMany(list)) = shared.handle(&buf[..n], from) {
            for bytes in list {
                let _ = socket.send_to(&bytes, from);
            }
        }
    }
}

fn accept(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>, shared: Shared) {
    while !shared.stop.load(Ordering::Relaxed) {
        let Ok((stream, from)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_millis(20)));
        let tls = tls.clone();
        let conn_shared = shared.clone();
        let thread = std::thread::spawn(move || match tls {
            Some(config) => {
                if let Ok(conn) = rustls::ServerConnection::new(config) {
                    serve_stream(rustls::StreamOwned::new(conn, stream), from, conn_shared);
                }
            }
            None => serve_stream(stream, from, conn_shared),
        });
        shared.threads.lock().unwrap().push(thread);
    }
}

fn serve_stream<S: Read + Write>(mut stream: S, from: SocketAddr, shared: Shared) {
    let mut framer = StreamFramer::default();
    let mut buf = vec![0u8; 16 * 1024];
    while !shared.stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if buf[..n].iter().all(|b| matches!(b, b'\r' | b'\n')) {
                    shared.state.lock().unwrap().keepalives += 1;
                }
                framer.push(&buf[..n]);
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(_) => return, // e.g. the client refused our certificate
        }
        loop {
            let message = match framer.next_message() {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => return,
            };
            match shared.handle(&message, from) {
                Some(Action::RawMany(list)) => {
                    let pause = list.len() > 1;
                    for bytes in list {
                        if stream
                            .write_all(&bytes)
                            .and_then(|_| stream.flush())
                            .is_err()
                        {
                            return;
                        }
                        if pause {
                            std::thread::sleep(Duration::from_millis(30));
                        }
                    }
                }
                Some(Action::Close) => return,
                _ => {}
            }
        }
    }
}

/// The bytes to send for an action; `None` to close the connection.
fn respond(req: &Req, action: Action, st: &mut RegistrarState) -> Option<Vec<Vec<u8>>> {
    Some(match action {
        Action::Close => return None,
        Action::Ignore => vec![],
        Action::Raw(bytes) => vec![bytes],
        Action::RawMany(list) => list,
        Action::Reply(list) => list
            .into_iter()
            .map(|(status, extra)| response(req, status, &extra, st))
            .collect(),
        Action::OkWithContacts(contacts, expires) => {
            let mut extra: Vec<String> = contacts
                .into_iter()
                .map(|c| format!("Contact: {c}"))
                .collect();
            if let Some(e) = expires {
                extra.push(format!("Expires: {e}"));
            }
            vec![response(req, 200, &extra, st)]
        }
        Action::Register => {
            let user = req.to_user();
            let contact = req.contact_uri();
            let header = req.header("Contact").unwrap_or_default();
            let param_expires = header.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix("expires=")
                    .and_then(|v| v.parse().ok())
            });
            let expires = param_expires.or(req.expires()).unwrap_or(3600);
            let list = st.bindings.entry(user.clone()).or_default();
            list.retain(|(c, _)| *c != contact);
            if expires > 0 {
                list.push((contact, expires));
            }
            let extra: Vec<String> = list
                .iter()
                .map(|(c, e)| format!("Contact: <{c}>;expires={e}"))
                .collect();
            vec![response(req, 200, &extra, st)]
        }
    })
}

/// Builds a response echoing Via, From, To (with a tag), Call-ID and CSeq.
pub fn response(req: &Req, status: u16, extra: &[String], st: &RegistrarState) -> Vec<u8> {
    let reason = match status {
        100 => "Trying",
        200 => "OK",
        401 => "Unauthorized",
        403 => "Forbidden",
        407 => "Proxy Authentication Required",
        423 => "Interval Too Brief",
        _ => "Whatever",
    };
    let mut via = req.header("Via").unwrap_or_default();
    if let Some(p) = &st.via_params {
        via = via.replace(";rport", "");
        via.push(';');
        via.push_str(p);
    }
    let mut out = format!("SIP/2.0 {status} {reason}\r\nVia: {via}\r\n");
    out.push_str(&format!(
        "From: {}\r\n",
        req.header("From").unwrap_or_default()
    ));
    out.push_str(&format!(
        "To: {};tag=reg1\r\n",
        req.header("To").unwrap_or_default()
    ));
    out.push_str(&format!("Call-ID: {}\r\n", req.call_id()));
    out.push_str(&format!(
        "CSeq: {}\r\n",
        req.header("CSeq").unwrap_or_default()
    ));
    for h in extra {
        out.push_str(h);
        out.push_str("\r\n");
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

/// Parses `Digest k=v, ...` into a map.
pub fn digest_params(value: &str) -> HashMap<String, String> {
    let body = value.trim().strip_prefix("Digest").unwrap_or(value);
    let mut out = HashMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let Some((k, after)) = rest.split_once('=') else {
            break;
        };
        let k = k.trim().trim_start_matches(',').trim().to_string();
        let after = after.trim_start();
        let (v, next) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"').unwrap_or(q.len());
            (q[..end].to_string(), &q[(end + 1).min(q.len())..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_string(), &after[end..])
        };
        out.insert(k, v);
        rest = next.trim_start_matches([',', ' ']).trim();
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(alg: &str, s: &str) -> String {
    if alg.eq_ignore_ascii_case("SHA-256") {
        hex(&Sha256::digest(s.as_bytes()))
    } else {
        hex(&Md5::digest(s.as_bytes()))
    }
}

/// Checks an Authorization value the way a registrar does (qop=auth or none).
pub fn digest_valid(auth: &str, password: &str, expected_nonce: &str) -> bool {
    let p = digest_params(auth);
    let get = |k: &str| p.get(k).cloned().unwrap_or_default();
    if get("nonce") != expected_nonce {
        return false;
    }
    let alg = p.get("algorithm").cloned().unwrap_or_else(|| "MD5".into());
    let ha1 = hash(
        &alg,
        &format!("{}:{}:{}", get("username"), get("realm"), password),
    );
    let ha2 = hash(&alg, &format!("REGISTER:{}", get("uri")));
    let expect = if p.contains_key("qop") {
        hash(
            &alg,
            &format!(
                "{ha1}:{}:{}:{}:{}:{ha2}",
                get("nonce"),
                get("nc"),
                get("cnonce"),
                get("qop")
            ),
        )
    } else {
        hash(&alg, &format!("{ha1}:{}:{ha2}", get("nonce")))
    };
    expect == get("response")
}

/// A script that challenges with `algorithm` and accepts `password`. Like real registrars,
/// every nonce it issued stays valid, so concurrent bindings do not invalidate each other.
pub fn digest_script(
    algorithm: &'static str,
    password: &'static str,
) -> impl FnMut(&Req, &mut RegistrarState) -> Action + Send {
    move |req, st| {
        let issued = |auth: &str| {
            let nonce = digest_params(auth).remove("nonce").unwrap_or_default();
            let serial: u32 = nonce
                .strip_prefix("nonce")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            (1..=st.nonces).contains(&serial).then_some(nonce)
        };
        match req.authorization() {
            Some(auth) if issued(&auth).is_some_and(|n| digest_valid(&auth, password, &n)) => {
                Action::Register
            }
            _ => {
                st.nonces += 1;
                let nonce = format!("nonce{}", st.nonces);
                Action::Reply(vec![(
                    401,
                    vec![format!(
                        "WWW-Authenticate: Digest realm=\"test.realm\", nonce=\"{nonce}\", qop=\"auth\", algorithm={algorithm}, opaque=\"op\""
                    )],
                )])
            }
        }
    }
}
