//! HTTP Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760).
//!
//! Challenges are parsed and `Authorization` values are built here (general SIP parsers
//! get this wrong: rsip 0.4 could not parse `algorithm=SHA-256` and defaulted to SHA-256
//! when the algorithm is absent; see `shared/KNOWN-PITFALLS.md`). Supported: MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256,
//! SHA-512-256-sess; qop `auth` and `auth-int` (REGISTER has an empty body) or no qop.

#[cfg(test)]
use md5::Digest as _;
use md5::Md5;
use sha2::{Sha256, Sha512_256};
use std::borrow::Cow;
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

    /// The hex digest of `parts` joined by `:`, hashed piece by piece: no copy of the
    /// input (which may hold the password) is made.
    fn hash_parts(self, parts: &[&[u8]]) -> HexDigest {
        fn run<D: md5::Digest>(parts: &[&[u8]]) -> HexDigest {
            let mut hasher = D::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    hasher.update(b":");
                }
                hasher.update(part);
            }
            HexDigest::of(&hasher.finalize())
        }
        match self {
            Algorithm::Md5 => run::<Md5>(parts),
            Algorithm::Sha256 => run::<Sha256>(parts),
            Algorithm::Sha512_256 => run::<Sha512_256>(parts),
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
///
/// A binding keeps the challenges it answers for its whole life (their nonce is reused,
/// with a growing count), so the three texts share one allocation: with many thousands of
/// bindings, a block and its header per text add up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Header the challenge came in.
    pub kind: ChallengeKind,
    /// The realm, the nonce and the opaque value, one after the other.
    text: Box<str>,
    /// Where the realm ends in `text`.
    realm_end: u32,
    /// Where the nonce ends in `text` (the opaque value, if any, follows).
    nonce_end: u32,
    /// Whether an opaque value was given (it may be empty).
    has_opaque: bool,
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

impl Challenge {
    /// A challenge for `realm` with `nonce` (and `opaque`, to echo back); MD5, no qop.
    /// `None` if the texts together are longer than 4 GiB.
    fn new(kind: ChallengeKind, realm: &str, nonce: &str, opaque: Option<&str>) -> Option<Self> {
        let texts = [realm, nonce, opaque.unwrap_or_default()];
        // Both offsets are at most the whole length, so this one check covers them.
        u32::try_from(texts.iter().map(|t| t.len()).sum::<usize>()).ok()?;
        Some(Challenge {
            kind,
            text: texts.concat().into_boxed_str(),
            realm_end: realm.len() as u32,
            nonce_end: (realm.len() + nonce.len()) as u32,
            has_opaque: opaque.is_some(),
            algorithm: Algorithm::Md5,
            session: false,
            qop: None,
            stale: false,
        })
    }

    /// The protection space.
    pub fn realm(&self) -> &str {
        &self.text[..self.realm_end as usize]
    }

    /// The server's nonce.
    pub fn nonce(&self) -> &str {
        &self.text[self.realm_end as usize..self.nonce_end as usize]
    }

    /// The opaque value to echo back, if any.
    pub fn opaque(&self) -> Option<&str> {
        self.has_opaque
            .then(|| &self.text[self.nonce_end as usize..])
    }
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
            .map(|(_, v)| v.as_ref())
    };
    let realm = get("realm").ok_or(ChallengeError::Malformed)?;
    let nonce = get("nonce").ok_or(ChallengeError::Malformed)?;
    let (algorithm, session) = match get("algorithm") {
        None => (Algorithm::Md5, false),
        Some(a) => {
            parse_algorithm(a).ok_or_else(|| ChallengeError::UnsupportedAlgorithm(a.into()))?
        }
    };
    let qop = match get("qop") {
        None => None,
        Some(list) => {
            let mut offered = list.split(',').map(str::trim);
            if offered.clone().any(|q| q.eq_ignore_ascii_case("auth")) {
                Some(Qop::Auth)
            } else if offered.any(|q| q.eq_ignore_ascii_case("auth-int")) {
                Some(Qop::AuthInt)
            } else {
                return Err(ChallengeError::UnsupportedQop);
            }
        }
    };
    let stale = get("stale").is_some_and(|s| s.eq_ignore_ascii_case("true"));
    let challenge = Challenge::new(kind, realm, nonce, get("opaque"));
    Ok(Challenge {
        algorithm,
        session,
        qop,
        stale,
        ..challenge.ok_or(ChallengeError::Malformed)?
    })
}

/// Of several challenges, keeps the strongest usable one per (kind, realm) (RFC 8760 §2.4).
/// The first of each is kept in place, in the order they came (no new vector is made).
pub fn strongest_per_realm(mut challenges: Vec<Challenge>) -> Vec<Challenge> {
    let mut kept = 0;
    for i in 0..challenges.len() {
        let (first, rest) = challenges.split_at_mut(i);
        let c = &mut rest[0];
        match first[..kept]
            .iter_mut()
            .find(|b| b.kind == c.kind && b.realm() == c.realm())
        {
            Some(b) if c.algorithm.strength() > b.algorithm.strength() => std::mem::swap(b, c),
            Some(_) => {}
            None => {
                challenges.swap(i, kept);
                kept += 1;
            }
        }
    }
    challenges.truncate(kept);
    challenges
}

/// An algorithm name, in any case, and whether it is the `-sess` variant.
fn parse_algorithm(a: &str) -> Option<(Algorithm, bool)> {
    const SESS: &str = "-sess";
    let a = a.trim();
    let (base, session) = match a.len().checked_sub(SESS.len()) {
        Some(at) if a.is_char_boundary(at) && a[at..].eq_ignore_ascii_case(SESS) => {
            (&a[..at], true)
        }
        _ => (a, false),
    };
    [
        ("MD5", Algorithm::Md5),
        ("SHA-256", Algorithm::Sha256),
        ("SHA-512-256", Algorithm::Sha512_256),
    ]
    .into_iter()
    .find(|(name, _)| base.eq_ignore_ascii_case(name))
    .map(|(_, alg)| (alg, session))
}

/// Splits `k=v, k="quoted, value"` into pairs; `None` on broken syntax. Bytes are
/// scanned (every delimiter is ASCII); a quoted value is borrowed unless it holds an
/// escape.
fn parse_auth_params(input: &str) -> Option<Vec<(&str, Cow<'_, str>)>> {
    let bytes = input.as_bytes();
    let skip_spaces = |mut i: usize| {
        while bytes.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    let mut out = Vec::with_capacity(8);
    let mut i = 0;
    loop {
        while bytes
            .get(i)
            .is_some_and(|&b| b == b',' || b.is_ascii_whitespace())
        {
            i += 1;
        }
        if i == bytes.len() {
            break;
        }
        let start = i;
        while bytes
            .get(i)
            .is_some_and(|&b| b != b'=' && b != b',' && !b.is_ascii_whitespace())
        {
            i += 1;
        }
        let key = &input[start..i];
        if key.is_empty() {
            return None;
        }
        i = skip_spaces(i);
        if bytes.get(i) != Some(&b'=') {
            // a bare token with no value (not used by Digest); keep it empty
            out.push((key, Cow::Borrowed("")));
            continue;
        }
        i = skip_spaces(i + 1);
        let value = if bytes.get(i) == Some(&b'"') {
            let from = i + 1;
            // The text not yet copied starts at `copied` (once an escape made a copy).
            let (mut owned, mut copied): (Option<String>, usize) = (None, from);
            i = from;
            loop {
                let at = i + memchr::memchr2(b'"', b'\\', &bytes[i..])?; // not closed
                if bytes[at] == b'"' {
                    i = at + 1;
                    break match owned {
                        Some(mut value) => {
                            value.push_str(&input[copied..at]);
                            Cow::Owned(value)
                        }
                        None => Cow::Borrowed(&input[from..at]),
                    };
                }
                // A backslash: the character after it stands for itself.
                let escaped = input[at + 1..].chars().next()?;
                let value = owned.get_or_insert_with(String::new);
                value.push_str(&input[copied..at]);
                value.push(escaped);
                i = at + 1 + escaped.len_utf8();
                copied = i;
            }
        } else {
            let from = i;
            while bytes
                .get(i)
                .is_some_and(|&b| b != b',' && !b.is_ascii_whitespace())
            {
                i += 1;
            }
            Cow::Borrowed(&input[from..i])
        };
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

    /// Whether a credential names `realm` itself (not only a wildcard one).
    pub fn has_exact(&self, realm: &str) -> bool {
        self.entries.iter().any(|c| c.answers(realm))
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
    let mut ha1 = alg.hash_parts(&[
        credential.username.as_bytes(),
        challenge.realm().as_bytes(),
        credential.password.as_bytes(),
    ]);
    if challenge.session {
        ha1 = alg.hash_parts(&[
            ha1.as_bytes(),
            challenge.nonce().as_bytes(),
            input.cnonce.as_bytes(),
        ]);
    }
    let method = input.method.as_bytes();
    let uri = input.uri.as_bytes();
    let ha2 = match challenge.qop {
        Some(Qop::AuthInt) => {
            let body = alg.hash_parts(&[input.body]);
            alg.hash_parts(&[method, uri, body.as_bytes()])
        }
        _ => alg.hash_parts(&[method, uri]),
    };
    let nc = HexDigest::of(&input.nonce_count.to_be_bytes());
    let qop = match challenge.qop {
        Some(Qop::Auth) => Some("auth"),
        Some(Qop::AuthInt) => Some("auth-int"),
        None => None,
    };
    let response = match qop {
        Some(qop) => alg.hash_parts(&[
            ha1.as_bytes(),
            challenge.nonce().as_bytes(),
            nc.as_bytes(),
            input.cnonce.as_bytes(),
            qop.as_bytes(),
            ha2.as_bytes(),
        ]),
        None => alg.hash_parts(&[ha1.as_bytes(), challenge.nonce().as_bytes(), ha2.as_bytes()]),
    };
    drop(ha1);

    let mut out = String::with_capacity(
        200 + credential.username.len()
            + challenge.realm().len()
            + challenge.nonce().len()
            + input.uri.len()
            + input.cnonce.len()
            + challenge.opaque().map_or(0, str::len),
    );
    out.push_str("Digest username=");
    push_quoted(&mut out, &credential.username);
    out.push_str(", realm=");
    push_quoted(&mut out, challenge.realm());
    out.push_str(", nonce=");
    push_quoted(&mut out, challenge.nonce());
    out.push_str(", uri=");
    push_quoted(&mut out, input.uri);
    out.push_str(", response=\"");
    out.push_str(response.as_str());
    out.push_str("\", algorithm=");
    out.push_str(alg.name());
    if challenge.session {
        out.push_str("-sess");
    }
    if let Some(qop) = qop {
        out.push_str(", cnonce=");
        push_quoted(&mut out, input.cnonce);
        out.push_str(", qop=");
        out.push_str(qop);
        out.push_str(", nc=");
        out.push_str(nc.as_str());
    }
    if let Some(opaque) = challenge.opaque() {
        out.push_str(", opaque=");
        push_quoted(&mut out, opaque);
    }
    out
}

/// Appends `s` as a quoted string (RFC 3261 §25.1), without CR or LF.
fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        if c != '\r' && c != '\n' {
            out.push(c);
        }
    }
    out.push('"');
}

#[cfg(test)]
fn quote(s: &str) -> String {
    let mut out = String::new();
    push_quoted(&mut out, s);
    out[1..out.len() - 1].to_string()
}

/// A digest in lower-case hex, on the stack (at most 32 bytes, SHA-256 and SHA-512/256),
/// wiped when dropped: HA1 stands for the password.
struct HexDigest {
    bytes: [u8; 64],
    len: usize,
}

impl HexDigest {
    fn of(digest: &[u8]) -> HexDigest {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut bytes = [0u8; 64];
        for (i, b) in digest.iter().take(32).enumerate() {
            bytes[2 * i] = HEX[usize::from(b >> 4)];
            bytes[2 * i + 1] = HEX[usize::from(b & 15)];
        }
        HexDigest {
            bytes,
            len: 2 * digest.len().min(32),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("hex digits")
    }
}

impl Drop for HexDigest {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

#[cfg(test)]
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
        params
            .into_iter()
            .find(|(k, _)| *k == "response")
            .unwrap()
            .1
            .into_owned()
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

    /// The parameter reader as first written, a character at a time: the reference.
    fn reference_auth_params(input: &str) -> Option<Vec<(&str, Cow<'_, str>)>> {
        let mut out = Vec::with_capacity(8);
        let mut chars = input.char_indices().peekable();
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
            let key = &input[start..end];
            if key.is_empty() {
                return None;
            }
            while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
                chars.next();
            }
            if chars.peek().map(|&(_, c)| c) != Some('=') {
                // a bare token with no value (not used by Digest); keep it empty
                out.push((key, Cow::Borrowed("")));
                continue;
            }
            chars.next();
            while chars.peek().is_some_and(|&(_, c)| c.is_ascii_whitespace()) {
                chars.next();
            }
            let value = if chars.peek().map(|&(_, c)| c) == Some('"') {
                chars.next();
                // Borrowed from the input until an escape needs a copy.
                let from = chars.peek().map_or(input.len(), |&(i, _)| i);
                let mut value: Option<String> = None;
                let mut closed = None;
                while let Some((i, c)) = chars.next() {
                    match c {
                        '\\' => {
                            let escaped = chars.next()?.1;
                            value
                                .get_or_insert_with(|| input[from..i].to_string())
                                .push(escaped);
                        }
                        '"' => {
                            closed = Some(i);
                            break;
                        }
                        _ => {
                            if let Some(value) = &mut value {
                                value.push(c);
                            }
                        }
                    }
                }
                let to = closed?;
                match value {
                    Some(value) => Cow::Owned(value),
                    None => Cow::Borrowed(&input[from..to]),
                }
            } else {
                let from = chars.peek().map_or(input.len(), |&(i, _)| i);
                let mut to = from;
                while let Some(&(i, c)) = chars.peek() {
                    if c == ',' || c.is_ascii_whitespace() {
                        break;
                    }
                    to = i + c.len_utf8();
                    chars.next();
                }
                Cow::Borrowed(&input[from..to])
            };
            out.push((key, value));
        }
        Some(out)
    }

    #[test]
    fn parameters_are_read_as_the_reference_reads_them() {
        // Every string of up to six of these characters (a multi-byte one among them).
        let alphabet = [',', '"', '\\', '=', ' ', 'a', 'é'];
        let checked = crate::engine::every_string(&alphabet, 6, |text| {
            assert_eq!(
                parse_auth_params(text),
                reference_auth_params(text),
                "{text:?}"
            );
        });
        assert_eq!(checked, 137_257);
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
        let proxy =
            parse_challenge(ChallengeKind::Proxy, r#"Digest realm="r", nonce="d""#).unwrap();
        let weaker = parse_challenge(ChallengeKind::Www, r#"Digest realm="q", nonce="e""#).unwrap();
        let best = strongest_per_realm(vec![md5, other, sha, proxy, weaker]);
        let seen: Vec<(&str, &str)> = best.iter().map(|c| (c.realm(), c.nonce())).collect();
        // In the order each (kind, realm) first came; the stronger in its place; the
        // first of two alike kept.
        assert_eq!(seen, [("r", "b"), ("q", "c"), ("r", "d")]);
        assert_eq!(best[0].algorithm, Algorithm::Sha256);
    }

    #[test]
    fn algorithm_names_are_read_in_any_case() {
        for (name, expected) in [
            ("MD5", Some((Algorithm::Md5, false))),
            ("md5-Sess", Some((Algorithm::Md5, true))),
            (" sha-256 ", Some((Algorithm::Sha256, false))),
            ("SHA-512-256-SESS", Some((Algorithm::Sha512_256, true))),
            ("-sess", None),
            ("SHA-1", None),
            ("MD5-sessé", None),
            ("é-sess", None),
            ("", None),
        ] {
            assert_eq!(parse_algorithm(name), expected, "{name:?}");
        }
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
    fn challenge_values_are_read_with_their_escapes_and_without_quotes() {
        let c = parse_challenge(
            ChallengeKind::Www,
            r#"Digest realm="a\"b", nonce="n\\1x", opaque=plain, qop="auth""#,
        )
        .unwrap();
        assert_eq!(c.realm(), "a\"b");
        assert_eq!(c.nonce(), "n\\1x");
        assert_eq!(c.opaque(), Some("plain"));
        assert_eq!(c.qop, Some(Qop::Auth));
        assert_eq!(
            parse_challenge(ChallengeKind::Www, r#"Digest realm="open, nonce="x""#),
            Err(ChallengeError::Malformed)
        );
    }

    #[test]
    fn realm_nonce_and_opaque_are_kept_apart_in_one_text() {
        let www = ChallengeKind::Www;
        let with = parse_challenge(www, r#"Digest realm="r", nonce="", opaque="""#).unwrap();
        assert_eq!(
            (with.realm(), with.nonce(), with.opaque()),
            ("r", "", Some(""))
        );
        let without = parse_challenge(www, r#"Digest nonce="rn", realm="""#).unwrap();
        assert_eq!(
            (without.realm(), without.nonce(), without.opaque()),
            ("", "rn", None)
        );
        // An empty opaque value is echoed back; a missing one is not.
        let plain = parse_challenge(www, r#"Digest realm="r", nonce="""#).unwrap();
        assert_ne!(with, plain);
        let credential = Credential::new("r", "u", "p");
        let input = AnswerInput {
            method: "REGISTER",
            uri: "sip:r",
            nonce_count: 1,
            cnonce: "c",
            body: b"",
        };
        assert!(answer(&with, &credential, &input).ends_with(r#", opaque="""#));
        assert!(!answer(&plain, &credential, &input).contains("opaque"));
    }

    #[test]
    fn quoting_escapes_and_strips_line_breaks() {
        assert_eq!(quote("a\"b\\c\r\nd"), "a\\\"b\\\\cd");
    }
}
