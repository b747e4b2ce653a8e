//! HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760).
//!
//! Challenges are parsed and `Authorization` values are built here (general SIP parsers
//! get this wrong: rsip 0.4 could not parse `algorithm=SHA-256` and defaulted to SHA-256
//! when the algorithm is absent; see `shared/KNOWN-PITFALLS.md`). Supported: MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256,
//! SHA-512-256-sess; qop `auth` and `auth-int` (REGISTER has an empty body) or no qop.

use md5::{Digest as _, Md5};
use sha2::{Sha256, Sha512_256};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Which header carried a challenge, and so which header must carry the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// `WWW-Authenticate` in a 401, answered by `Authorization`.
    Www,
    /// `Proxy-Authenticate` in a 407, answered by `Proxy-Authorization`.
    Proxy,
}

impl ChallengeKind {
    /// The request header that answers this kind of challenge.
    pub fn answer_header(self) -> &'static str {
        match self {
            ChallengeKind::Www => "Authorization",
            ChallengeKind::Proxy => "Proxy-Authorization",
        }
    }
}

/// A digest hash algorithm, with its session variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// MD5 (the default when a challenge names none).
    Md5,
    /// SHA-256 (RFC 7616, RFC 8760).
    Sha256,
    /// SHA-512/256 (RFC 7616, RFC 8760).
    Sha512_256,
}

impl Algorithm {
    /// Preference order when a response carries several challenges for one realm.
    fn strength(self) -> u8 {
        match self {
            Algorithm::Md5 => 0,
            Algorithm::Sha256 => 1,
            Algorithm::Sha512_256 => 2,
        }
    }

    fn hash_hex(self, input: &[u8]) -> String {
        match self {
            Algorithm::Md5 => to_hex(&Md5::digest(input)),
            Algorithm::Sha256 => to_hex(&Sha256::digest(input)),
            Algorithm::Sha512_256 => to_hex(&Sha512_256::digest(input)),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha512_256 => "SHA-512-256",
        }
    }
}

/// Quality of protection chosen for an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qop {
    /// Authentication only.
    Auth,
    /// Authentication with integrity of the (empty) body.
    AuthInt,
}

/// A parsed `Digest` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Header the challenge came in.
    pub kind: ChallengeKind,
    /// Protection space.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque value to echo back, if any.
    pub opaque: Option<String>,
    /// Hash algorithm.
    pub algorithm: Algorithm,
    /// Whether the `-sess` variant is asked for.
    pub session: bool,
    /// Chosen qop, or `None` for the RFC 2069 compatible answer.
    pub qop: Option<Qop>,
    /// `stale=true`: the nonce expired, the credentials were right.
    pub stale: bool,
}

/// Why a challenge could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChallengeError {
    /// The scheme is not `Digest` (e.g. `Basic`, which SIP forbids).
    UnsupportedScheme,
    /// The algorithm is unknown.
    UnsupportedAlgorithm(String),
    /// A `qop` was offered but none we support.
    UnsupportedQop,
    /// `realm` or `nonce` is missing, or the syntax is broken.
    Malformed,
}

/// Parses one `WWW-Authenticate` / `Proxy-Authenticate` header value.
pub fn parse_challenge(kind: ChallengeKind, value: &str) -> Result<Challenge, ChallengeError> {
    let value = value.trim();
    let (scheme, rest) = match value.find(|c: char| c.is_ascii_whitespace()) {
        Some(i) => (&value[..i], &value[i..]),
        None => (value, ""),
    };
    if !scheme.eq_ignore_ascii_case("Digest") {
        return Err(ChallengeError::UnsupportedScheme);
    }
    let params = parse_auth_params(rest).ok_or(ChallengeError::Malformed)?;
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let realm = get("realm").ok_or(ChallengeError::Malformed)?.to_string();
    let nonce = get("nonce").ok_or(ChallengeError::Malformed)?.to_string();
    let (algorithm, session) = match get("algorithm") {
        None => (Algorithm::Md5, false),
        Some(a) => {
            parse_algorithm(a).ok_or_else(|| ChallengeError::UnsupportedAlgorithm(a.into()))?
        }
    };
    let qop = match get("qop") {
        None => None,
        Some(list) => {
            let offered: Vec<&str> = list.split(',').map(str::trim).collect();
            if offered.iter().any(|q| q.eq_ignore_ascii_case("auth")) {
                Some(Qop::Auth)
            } else if offered.iter().any(|q| q.eq_ignore_ascii_case("auth-int")) {
                Some(Qop::AuthInt)
            } else {
                return Err(ChallengeError::UnsupportedQop);
            }
        }
    };
    let stale = get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true"));
    Ok(Challenge {
        kind,
        realm,
        nonce,
        opaque: get("opaque").map(str::to_string),
        algorithm,
        session,
        qop,
        stale,
    })
}

/// Of several challenges, keeps the strongest usable one per (kind, realm) (RFC 8760 §2.4).
pub fn strongest_per_realm(challenges: Vec<Challenge>) -> Vec<Challenge> {
    let mut best: Vec<Challenge> = Vec::new();
    for c in challenges {
        match best
            .iter_mut()
            .find(|b| b.kind == c.kind && b.realm == c.realm)
        {
            Some(b) if c.algorithm.strength() > b.algorithm.strength() => *b = c,
            Some(_) => {}
            None => best.push(c),
        }
    }
    best
}

fn parse_algorithm(a: &str) -> Option<(Algorithm, bool)> {
    let upper = a.trim().to_ascii_uppercase();
    let (base, session) = match upper.strip_suffix("-SESS") {
        Some(b) => (b, true),
        None => (upper.as_str(), false),
    };
    let alg = match base {
        "MD5" => Algorithm::Md5,
        "SHA-256" => Algorithm::Sha256,
        "SHA-512-256" => Algorithm::Sha512_256,
        _ => return None,
    };
    Some((alg, session))
}

/// Splits `k=v, k="quoted, value"` into pairs; `None` on broken syntax.
fn parse_auth_params(input: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = input.char_indices().peekable();
    let bytes = input;
    loop {
        // skip separators
        while let Some(&(_, c)) = chars.peek() {
            if c == ',' || c.is_ascii_whitespace() {
                chars.next();
            } else {
                break;
            }
        }
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut end = start;
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || c == ',' || c.is_ascii_whitespace() {
                break;
            }
            end = i + c.len_utf8();
            chars.next();
        }
        let key = bytes[start..end].to_string();
        if key.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        if chars.peek().map(|&(_, c)| c) != Some('=') {
            // a bare token with no value (not used by Digest); keep it empty
            out.push((key, String::new()));
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek().map(|&(_, c)| c) == Some('"') {
            chars.next();
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\\' => value.push(chars.next()?.1),
                    '"' => {
                        closed = true;
                        break;
                    }
                    _ => value.push(c),
                }
            }
            if !closed {
                return None;
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if c == ',' || c.is_ascii_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((key, value));
    }
    Some(out)
}

/// A user name and password for one realm; the password is wiped from memory on drop.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct Credential {
    /// Realm these credentials answer; empty or `*` answers any realm.
    pub realm: String,
    /// Authentication user name.
    pub username: String,
    password: String,
}

impl Credential {
    /// Creates a credential.
    pub fn new(realm: &str, username: &str, password: &str) -> Self {
        Credential {
            realm: realm.to_string(),
            username: username.to_string(),
            password: password.to_string(),
        }
    }

    fn answers(&self, realm: &str) -> bool {
        self.realm == realm
    }

    fn is_wildcard(&self) -> bool {
        self.realm.is_empty() || self.realm == "*"
    }
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("realm", &self.realm)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The credentials known to an engine.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    entries: Vec<Credential>,
}

impl CredentialStore {
    /// Adds or replaces the credential for a realm.
    pub fn insert(&mut self, credential: Credential) {
        self.entries.retain(|c| c.realm != credential.realm);
        self.entries.push(credential);
    }

    /// Forgets every credential.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The credential for `realm`: an exact match first, then a wildcard one.
    pub fn find(&self, realm: &str) -> Option<&Credential> {
        self.entries
            .iter()
            .find(|c| c.answers(realm))
            .or_else(|| self.entries.iter().find(|c| c.is_wildcard()))
    }
}

/// Inputs of one digest answer that change per request.
pub struct AnswerInput<'a> {
    /// Request method (`REGISTER`).
    pub method: &'a str,
    /// The digest-uri: the Request-URI as sent.
    pub uri: &'a str,
    /// Nonce count for this nonce, starting at 1.
    pub nonce_count: u32,
    /// Client nonce (fresh per answer).
    pub cnonce: &'a str,
    /// Message body (empty for REGISTER), used by `auth-int`.
    pub body: &'a [u8],
}

/// Computes the `Authorization` / `Proxy-Authorization` header value for a challenge.
pub fn answer(challenge: &Challenge, credential: &Credential, input: &AnswerInput<'_>) -> String {
    let alg = challenge.algorithm;
    let mut a1 = format!(
        "{}:{}:{}",
        credential.username, challenge.realm, credential.password
    );
    let mut ha1 = alg.hash_hex(a1.as_bytes());
    a1.zeroize();
    if challenge.session {
        let mut sess = format!("{}:{}:{}", ha1, challenge.nonce, input.cnonce);
        ha1.zeroize();
        ha1 = alg.hash_hex(sess.as_bytes());
        sess.zeroize();
    }
    let ha2 = match challenge.qop {
        Some(Qop::AuthInt) => alg.hash_hex(
            format!(
                "{}:{}:{}",
                input.method,
                input.uri,
                alg.hash_hex(input.body)
            )
            .as_bytes(),
        ),
        _ => alg.hash_hex(format!("{}:{}", input.method, input.uri).as_bytes()),
    };
    let nc = format!("{:08x}", input.nonce_count);
    let response = match challenge.qop {
        Some(q) => {
            let qop = if q == Qop::Auth { "auth" } else { "auth-int" };
            alg.hash_hex(
                format!(
                    "{}:{}:{}:{}:{}:{}",
                    ha1, challenge.nonce, nc, input.cnonce, qop, ha2
                )
                .as_bytes(),
            )
        }
        None => alg.hash_hex(format!("{}:{}:{}", ha1, challenge.nonce, ha2).as_bytes()),
    };
    ha1.zeroize();

    let mut out = format!(
        "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\", response=\"{}\", algorithm={}{}",
        quote(&credential.username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(input.uri),
        response,
        alg.name(),
        if challenge.session { "-sess" } else { "" },
    );
    if let Some(q) = challenge.qop {
        let qop = if q == Qop::Auth { "auth" } else { "auth-int" };
        out.push_str(&format!(
            ", cnonce=\"{}\", qop={}, nc={}",
            quote(input.cnonce),
            qop,
            nc
        ));
    }
    if let Some(opaque) = &challenge.opaque {
        out.push_str(&format!(", opaque=\"{}\"", quote(opaque)));
    }
    out
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out
}

fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response_field(answer: &str) -> String {
        let params = parse_auth_params(answer.strip_prefix("Digest").unwrap()).unwrap();
        params.into_iter().find(|(k, _)| k == "response").unwrap().1
    }

    #[test]
    fn rfc2617_md5_qop_auth_vector() {
        let c = parse_challenge(
            ChallengeKind::Www,
            r#"Digest realm="testrealm@host.com", qop="auth,auth-int", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", opaque="5ccc069c403ebaf9f0171e9517f40e41""#,
        )
        .unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, Some(Qop::Auth));
        let cred = Credential::new("testrealm@host.com", "Mufasa", "Circle Of Life");
        let a = answer(
            &c,
            &cred,
            &AnswerInput {
                method: "GET",
                uri: "/dir/index.html",
                nonce_count: 1,
                cnonce: "0a4f113b",
                body: b"",
            },
        );
        assert_eq!(response_field(&a), "6629fae49393a05397450978507c4ef1");
        assert!(a.contains("nc=00000001"));
        assert!(a.contains(r#"opaque="5ccc069c403ebaf9f0171e9517f40e41""#));
    }

    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        let header = r#"Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS""#;
        let c = parse_challenge(ChallengeKind::Www, header).unwrap();
        assert_eq!(c.algorithm, Algorithm::Sha256);
        let cred = Credential::new("http-auth@example.org", "Mufasa", "Circle of Life");
        let input = AnswerInput {
            method: "GET",
            uri: "/dir/index.html",
            nonce_count: 1,
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
            body: b"",
        };
        assert_eq!(
            response_field(&answer(&c, &cred, &input)),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        let md5 = parse_challenge(ChallengeKind::Www, &header.replace("SHA-256", "MD5")).unwrap();
        assert_eq!(
            response_field(&answer(&md5, &cred, &input)),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn missing_algorithm_defaults_to_md5_and_no_qop_is_rfc2069() {
        let c = parse_challenge(ChallengeKind::Proxy, r#"Digest realm="r", nonce="n""#).unwrap();
        assert_eq!(c.algorithm, Algorithm::Md5);
        assert_eq!(c.qop, None);
        let a = answer(
            &c,
            &Credential::new("r", "u", "p"),
            &AnswerInput {
                method: "REGISTER",
                uri: "sip:example.com",
                nonce_count: 1,
                cnonce: "c",
                body: b"",
            },
        );
        // H(H(u:r:p):n:H(REGISTER:sip:example.com)) computed independently
        let ha1 = to_hex(&Md5::digest(b"u:r:p"));
        let ha2 = to_hex(&Md5::digest(b"REGISTER:sip:example.com"));
        let expect = to_hex(&Md5::digest(format!("{ha1}:n:{ha2}").as_bytes()));
        assert_eq!(response_field(&a), expect);
        assert!(!a.contains("qop"));
    }

    #[test]
    fn stale_sess_and_unsupported() {
        let c = parse_challenge(
            ChallengeKind::Www,
            r#"Digest realm="r", nonce="n", stale=TRUE, algorithm=SHA-512-256-sess, qop="auth""#,
        )
        .unwrap();
        assert!(c.stale);
        assert!(c.session);
        assert_eq!(c.algorithm, Algorithm::Sha512_256);
        assert_eq!(
            parse_challenge(ChallengeKind::Www, r#"Basic realm="r""#),
            Err(ChallengeError::UnsupportedScheme)
        );
        assert!(matches!(
            parse_challenge(
                ChallengeKind::Www,
                r#"Digest realm="r", nonce="n", algorithm=SHA1"#
            ),
            Err(ChallengeError::UnsupportedAlgorithm(_))
        ));
        assert_eq!(
            parse_challenge(ChallengeKind::Www, r#"Digest realm="r""#),
            Err(ChallengeError::Malformed)
        );
        assert_eq!(
            parse_challenge(ChallengeKind::Www, r#"Digest realm="r, nonce="n"#),
            Err(ChallengeError::Malformed)
        );
    }

    #[test]
    fn strongest_challenge_wins_per_realm() {
        let md5 = parse_challenge(ChallengeKind::Www, r#"Digest realm="r", nonce="a""#).unwrap();
        let sha = parse_challenge(
            ChallengeKind::Www,
            r#"Digest realm="r", nonce="b", algorithm=SHA-256"#,
        )
        .unwrap();
        let other = parse_challenge(ChallengeKind::Www, r#"Digest realm="q", nonce="c""#).unwrap();
        let best = strongest_per_realm(vec![md5, sha, other]);
        assert_eq!(best.len(), 2);
        assert_eq!(best[0].algorithm, Algorithm::Sha256);
    }

    #[test]
    fn credential_lookup_prefers_exact_realm() {
        let mut store = CredentialStore::default();
        store.insert(Credential::new("*", "any", "x"));
        store.insert(Credential::new("r", "exact", "y"));
        assert_eq!(store.find("r").unwrap().username, "exact");
        assert_eq!(store.find("other").unwrap().username, "any");
        assert!(!format!("{:?}", store.find("r").unwrap()).contains("\"y\""));
    }

    #[test]
    fn quoting_escapes_and_strips_line_breaks() {
        assert_eq!(quote("a\"b\\c\r\nd"), "a\\\"b\\\\cd");
    }
}
