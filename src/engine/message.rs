//! Building REGISTER requests and reading the responses to them.
//!
//! Parsing is bounded before rsip sees a byte (size, header count, header length), runs
//! under `catch_unwind`, and extracts only what a registration client needs into
//! [`ResponseInfo`]. Compact header forms (`v`, `i`, `m`) are understood.
//!
//! rsip frames the message and splits the headers; the Via and Contact values and the
//! request line are handled here because rsip 0.4 neither parses nor prints IPv6 hosts.

use crate::engine::digest::ChallengeKind;
use crate::engine::transport::Transport;
use crate::engine::uri::{HostPort, SipUri, parse_ip};
use rsip::prelude::*;
use std::net::{IpAddr, SocketAddr};

/// Largest message accepted (the UDP payload limit).
pub(crate) const MAX_MESSAGE_BYTES: usize = 65_535;
/// Most header lines accepted in one message.
pub(crate) const MAX_HEADERS: usize = 128;
/// Longest header line accepted, in bytes.
pub(crate) const MAX_HEADER_LINE: usize = 4_096;

/// The parts of a REGISTER that change from one request to the next.
#[derive(Debug, Clone)]
pub struct RegisterRequest<'a> {
    /// Request-URI, e.g. `sip:example.com`.
    pub request_uri: &'a str,
    /// Address of record for From and To, e.g. `sip:alice@example.com`.
    pub aor: &'a str,
    /// From tag, stable for the binding.
    pub from_tag: &'a str,
    /// Call-ID, stable for the binding.
    pub call_id: &'a str,
    /// CSeq number, increasing for the binding.
    pub cseq: u32,
    /// Via branch, fresh per transaction (starts with `z9hG4bK`).
    pub branch: &'a str,
    /// Transport named in the Via.
    pub transport: Transport,
    /// Via sent-by: our local address.
    pub sent_by: SocketAddr,
    /// Contact header value (URI in angle brackets, with parameters).
    pub contact: &'a str,
    /// Value of the Expires header.
    pub expires: u32,
    /// Route header value, when registering through an outbound proxy.
    pub route: Option<&'a str>,
    /// Authorization headers answering earlier challenges: (header name, value).
    pub authorization: &'a [(&'static str, String)],
    /// User-Agent header value.
    pub user_agent: &'a str,
}

/// Why a REGISTER could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

/// Serializes a REGISTER request with rsip.
pub fn build_register(req: &RegisterRequest<'_>) -> Result<Vec<u8>, BuildError> {
    if SipUri::parse(req.request_uri).is_none() {
        return Err(BuildError(format!("bad Request-URI {}", req.request_uri)));
    }
    let mut headers = rsip::Headers::default();
    headers.push(
        rsip::headers::Via::new(format!(
            "SIP/2.0/{} {};rport;branch={}",
            req.transport.via_name(),
            HostPort::from(req.sent_by),
            req.branch
        ))
        .into(),
    );
    headers.push(rsip::headers::MaxForwards::new("70").into());
    if let Some(route) = req.route {
        headers.push(rsip::headers::Route::new(route).into());
    }
    headers.push(rsip::headers::From::new(format!("<{}>;tag={}", req.aor, req.from_tag)).into());
    headers.push(rsip::headers::To::new(format!("<{}>", req.aor)).into());
    headers.push(rsip::headers::CallId::new(req.call_id).into());
    headers.push(rsip::headers::CSeq::new(format!("{} REGISTER", req.cseq)).into());
    headers.push(rsip::headers::Contact::new(req.contact).into());
    headers.push(rsip::headers::Expires::new(req.expires.to_string()).into());
    for (name, value) in req.authorization {
        let header = match *name {
            "Proxy-Authorization" => rsip::headers::ProxyAuthorization::new(value.as_str()).into(),
            _ => rsip::headers::Authorization::new(value.as_str()).into(),
        };
        headers.push(header);
    }
    headers.push(rsip::headers::UserAgent::new(req.user_agent).into());
    headers.push(rsip::headers::ContentLength::new("0").into());
    // The request line is written here: rsip 0.4 prints IPv6 hosts without brackets.
    Ok(format!("REGISTER {} SIP/2.0\r\n{}\r\n", req.request_uri, headers).into_bytes())
}

/// One binding listed in a response's Contact header(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// The contact URI.
    pub uri: SipUri,
    /// The `expires` parameter, if given.
    pub expires: Option<u32>,
}

/// What a registration client needs from a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseInfo {
    /// Status code.
    pub status: u16,
    /// Branch of the top Via.
    pub branch: String,
    /// `received` of the top Via (RFC 3261 §18.2.1).
    pub received: Option<IpAddr>,
    /// `rport` value of the top Via (RFC 3581).
    pub rport: Option<u16>,
    /// Call-ID.
    pub call_id: String,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method, upper case.
    pub cseq_method: String,
    /// Every binding listed in the Contact header(s).
    pub contacts: Vec<ContactInfo>,
    /// Expires header.
    pub expires: Option<u32>,
    /// Min-Expires header (in a 423).
    pub min_expires: Option<u32>,
    /// Retry-After header, seconds (RFC 3261 §20.33; a comment and parameters ignored).
    pub retry_after: Option<u32>,
    /// Raw digest challenges, with the header they came in.
    pub challenges: Vec<(ChallengeKind, String)>,
}

/// Why bytes from the network were not accepted as a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Larger than [`MAX_MESSAGE_BYTES`].
    TooLarge(usize),
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// A header line longer than [`MAX_HEADER_LINE`].
    HeaderTooLong,
    /// A request, not a response (we are a pure client).
    NotAResponse,
    /// rsip rejected the syntax.
    Syntax(String),
    /// A header the response must have is missing or unreadable.
    MissingHeader(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::TooLarge(n) => write!(f, "message of {n} bytes is too large"),
            ParseError::TooManyHeaders => write!(f, "more than {MAX_HEADERS} header lines"),
            ParseError::HeaderTooLong => {
                write!(f, "a header line is longer than {MAX_HEADER_LINE} bytes")
            }
            ParseError::NotAResponse => write!(f, "not a SIP response"),
            ParseError::Syntax(e) => write!(f, "syntax error: {e}"),
            ParseError::MissingHeader(h) => write!(f, "missing or invalid {h} header"),
        }
    }
}

/// Checks the size limits without parsing.
fn check_bounds(bytes: &[u8]) -> Result<(), ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let head_end = find(bytes, b"\r\n\r\n").map_or(bytes.len(), |i| i + 2);
    let mut lines = 0usize;
    for line in bytes[..head_end].split(|&b| b == b'\n') {
        if line.len() > MAX_HEADER_LINE {
            return Err(ParseError::HeaderTooLong);
        }
        lines += 1;
        if lines > MAX_HEADERS + 1 {
            return Err(ParseError::TooManyHeaders);
        }
    }
    if !bytes.starts_with(b"SIP/2.0 ") {
        return Err(ParseError::NotAResponse);
    }
    Ok(())
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Parses a response received from the network.
pub fn parse_response(bytes: &[u8]) -> Result<ResponseInfo, ParseError> {
    check_bounds(bytes)?;
    std::panic::catch_unwind(|| parse_bounded(bytes))
        .unwrap_or_else(|_| Err(ParseError::Syntax("parser panicked".into())))
}

fn parse_bounded(bytes: &[u8]) -> Result<ResponseInfo, ParseError> {
    let message =
        rsip::SipMessage::try_from(bytes).map_err(|e| ParseError::Syntax(e.to_string()))?;
    let rsip::SipMessage::Response(response) = message else {
        return Err(ParseError::NotAResponse);
    };
    let mut top_via: Option<String> = None;
    let mut call_id = None;
    let mut cseq = None;
    let mut contacts = Vec::new();
    let mut expires = None;
    let mut min_expires = None;
    let mut retry_after = None;
    let mut challenges = Vec::new();
    for header in response.headers.iter() {
        match header {
            rsip::Header::Via(v) => set_top_via(&mut top_via, v.value()),
            rsip::Header::CallId(v) => set_once(&mut call_id, v.value()),
            rsip::Header::CSeq(v) if cseq.is_none() => {
                cseq = Some(
                    v.typed()
                        .map_err(|_| ParseError::MissingHeader("CSeq"))
                        .map(|c| (c.seq, c.method.to_string().to_ascii_uppercase()))?,
                );
            }
            rsip::Header::Contact(v) => parse_contacts(v.value(), &mut contacts),
            rsip::Header::Expires(v) => expires = v.value().trim().parse().ok().or(expires),
            rsip::Header::MinExpires(v) => {
                min_expires = v.value().trim().parse().ok().or(min_expires)
            }
            rsip::Header::WwwAuthenticate(v) => {
                challenges.push((ChallengeKind::Www, v.value().to_string()))
            }
            rsip::Header::ProxyAuthenticate(v) => {
                challenges.push((ChallengeKind::Proxy, v.value().to_string()))
            }
            rsip::Header::RetryAfter(v) => retry_after = retry_after.or(leading_number(v.value())),
            rsip::Header::Other(name, value) => match name.to_ascii_lowercase().as_str() {
                "retry-after" => retry_after = retry_after.or(leading_number(value)),
                "v" => set_top_via(&mut top_via, value),
                "i" => set_once(&mut call_id, value),
                "m" => parse_contacts(value, &mut contacts),
                _ => {}
            },
            _ => {}
        }
    }
    let via_value = top_via.ok_or(ParseError::MissingHeader("Via"))?;
    let via_params = parse_via_params(&via_value).ok_or(ParseError::MissingHeader("Via"))?;
    let param = |name: &str| {
        via_params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| v.as_deref())
    };
    let branch = param("branch")
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .ok_or(ParseError::MissingHeader("Via branch"))?;
    let received = param("received").and_then(parse_ip);
    let rport = param("rport").and_then(|p| p.parse::<u16>().ok());
    let (cseq, cseq_method) = cseq.ok_or(ParseError::MissingHeader("CSeq"))?;
    Ok(ResponseInfo {
        status: response.status_code.code(),
        branch,
        received,
        rport,
        call_id: call_id.ok_or(ParseError::MissingHeader("Call-ID"))?,
        cseq,
        cseq_method,
        contacts,
        expires,
        min_expires,
        retry_after,
        challenges,
    })
}

/// The delta-seconds that starts a header value (`30 (maintenance);duration=60`).
fn leading_number(value: &str) -> Option<u32> {
    let value = value.trim_start();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

fn set_once(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        *slot = Some(value.trim().to_string());
    }
}

fn set_top_via(slot: &mut Option<String>, value: &str) {
    if slot.is_none() {
        let first = split_list(value).into_iter().next().unwrap_or_default();
        *slot = Some(first.to_string());
    }
}

fn parse_contacts(value: &str, out: &mut Vec<ContactInfo>) {
    for part in split_list(value) {
        if let Some(contact) = parse_contact(part) {
            out.push(contact); // an unreadable entry cannot be ours: skipped
        }
    }
}

/// Parses one Contact entry: `["name"] <uri>;params` or `uri;params`.
fn parse_contact(entry: &str) -> Option<ContactInfo> {
    let (uri, params) = match entry.find('<') {
        Some(open) => {
            let close = open + entry[open..].find('>')?;
            (&entry[open + 1..close], &entry[close + 1..])
        }
        // Without brackets, parameters after the URI belong to the header (RFC 3261 §20).
        None => entry.split_once(';').map_or((entry, ""), |(u, p)| (u, p)),
    };
    let uri = SipUri::parse(uri.trim())?;
    let expires = parse_params(params)
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("expires"))
        .and_then(|(_, v)| v?.parse().ok());
    Some(ContactInfo { uri, expires })
}

/// Parses `SIP/2.0/UDP host[:port];params` into its parameters.
fn parse_via_params(via: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut parts = via.splitn(2, ';');
    let sent = parts.next()?.trim();
    let (protocol, sent_by) = sent.split_once(char::is_whitespace)?;
    if !protocol.to_ascii_uppercase().starts_with("SIP/2.0/") {
        return None;
    }
    HostPort::parse(sent_by.trim())?;
    Some(
        parse_params(parts.next().unwrap_or(""))
            .into_iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect(),
    )
}

/// Parses `;name[=value]` parameters (values may be quoted).
fn parse_params(s: &str) -> Vec<(&str, Option<&str>)> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        })
        .collect()
}

/// Splits a comma-separated header value, honouring `<...>` and quoted strings.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0usize);
    for (i, c) in value.char_indices() {
        if quoted {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => quoted = true,
            '<' => depth += 1,
            '>' => depth -= 1,
            ',' if depth <= 0 => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts.retain(|p| !p.is_empty());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Vec<u8> {
        build_register(&RegisterRequest {
            request_uri: "sip:example.com",
            aor: "sip:alice@example.com",
            from_tag: "tag1",
            call_id: "cid@host",
            cseq: 7,
            branch: "z9hG4bKabc",
            transport: Transport::Udp,
            sent_by: "127.0.0.1:5070".parse().unwrap(),
            contact: "<sip:alice@127.0.0.1:5070>",
            expires: 3600,
            route: Some("<sip:proxy.example.com:5060;lr>"),
            authorization: &[("Authorization", "Digest username=\"alice\"".into())],
            user_agent: "test",
        })
        .unwrap()
    }

    #[test]
    fn register_has_every_mandatory_header() {
        let text = String::from_utf8(request()).unwrap();
        assert!(
            text.starts_with("REGISTER sip:example.com SIP/2.0\r\n"),
            "{text}"
        );
        for needle in [
            "Via: SIP/2.0/UDP 127.0.0.1:5070;rport;branch=z9hG4bKabc\r\n",
            "Max-Forwards: 70\r\n",
            "Route: <sip:proxy.example.com:5060;lr>\r\n",
            "From: <sip:alice@example.com>;tag=tag1\r\n",
            "To: <sip:alice@example.com>\r\n",
            "Call-ID: cid@host\r\n",
            "CSeq: 7 REGISTER\r\n",
            "Contact: <sip:alice@127.0.0.1:5070>\r\n",
            "Expires: 3600\r\n",
            "Authorization: Digest username=\"alice\"\r\n",
            "Content-Length: 0\r\n",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in {text}");
        }
        assert!(text.ends_with("\r\n\r\n"));
    }

    const OK: &str = "SIP/2.0 200 OK\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5070;rport=40000;received=203.0.113.5;branch=z9hG4bKabc, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKother\r\n\
        From: <sip:alice@example.com>;tag=tag1\r\n\
        To: <sip:alice@example.com>;tag=srv\r\n\
        Call-ID: cid@host\r\n\
        CSeq: 7 REGISTER\r\n\
        Contact: <sip:alice@127.0.0.1:5070>;expires=120, \"Other, Phone\" <sip:alice@[2001:db8::1]:5062>;expires=60\r\n\
        Contact: <sip:alice@198.51.100.7>\r\n\
        Expires: 300\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn ok_response_fields() {
        let r = parse_response(OK.as_bytes()).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.branch, "z9hG4bKabc");
        assert_eq!(r.received, Some("203.0.113.5".parse().unwrap()));
        assert_eq!(r.rport, Some(40000));
        assert_eq!(r.call_id, "cid@host");
        assert_eq!((r.cseq, r.cseq_method.as_str()), (7, "REGISTER"));
        assert_eq!(r.expires, Some(300));
        assert_eq!(r.contacts.len(), 3);
        assert_eq!(r.contacts[0].expires, Some(120));
        assert_eq!(r.contacts[0].uri.host_port.port, Some(5070));
        assert_eq!(
            r.contacts[1].uri.host_port.to_string(),
            "[2001:db8::1]:5062"
        );
        assert_eq!(r.contacts[2].uri.host_port.port, None);
    }

    #[test]
    fn compact_forms_and_challenges() {
        let text = "SIP/2.0 401 Unauthorized\r\n\
            v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n\
            i: abc\r\n\
            CSeq: 1 REGISTER\r\n\
            WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-256\r\n\
            WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"\r\n\
            m: <sip:bob@127.0.0.1>\r\n\
            l: 0\r\n\r\n";
        let r = parse_response(text.as_bytes()).unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.call_id, "abc");
        assert_eq!(r.branch, "z9hG4bKx");
        assert_eq!(r.challenges.len(), 2);
        assert_eq!(r.contacts[0].uri.user.as_deref(), Some("bob"));
        assert_eq!(r.rport, None);
    }

    #[test]
    fn hostile_input_is_rejected_not_panicking() {
        assert_eq!(
            parse_response(&vec![b'a'; MAX_MESSAGE_BYTES + 1]),
            Err(ParseError::TooLarge(MAX_MESSAGE_BYTES + 1))
        );
        let huge = format!("SIP/2.0 200 OK\r\nX: {}\r\n\r\n", "a".repeat(10_000));
        assert_eq!(
            parse_response(huge.as_bytes()),
            Err(ParseError::HeaderTooLong)
        );
        let many = format!("SIP/2.0 200 OK\r\n{}\r\n", "X: y\r\n".repeat(200));
        assert_eq!(
            parse_response(many.as_bytes()),
            Err(ParseError::TooManyHeaders)
        );
        assert_eq!(
            parse_response(b"REGISTER sip:x SIP/2.0\r\n\r\n"),
            Err(ParseError::NotAResponse)
        );
        assert!(parse_response(b"SIP/2.0 200 OK\r\nCSeq: 1 REGISTER\r\n\r\n").is_err());
        assert!(parse_response(b"SIP/2.0 abc\r\n\r\n").is_err());
        // every prefix of a valid response must be handled without panicking
        for n in 0..OK.len() {
            let _ = parse_response(&OK.as_bytes()[..n]);
        }
        for garbage in [
            &b"\xff\xfe\x00"[..],
            b"",
            b"SIP/2.0 ",
            b"SIP/2.0 200 OK\r\nVia: \r\n\r\n",
        ] {
            assert!(parse_response(garbage).is_err());
        }
    }

    #[test]
    fn ipv6_via_and_contacts() {
        let text = "SIP/2.0 200 OK\r\n\
            Via: SIP/2.0/UDP [2001:db8::5]:5070;branch=z9hG4bKv6;received=[2001:db8::9];rport=6000\r\n\
            Call-ID: c\r\nCSeq: 2 REGISTER\r\n\
            Contact: <sip:alice@[2001:db8::9]:6000;transport=udp>;expires=30;q=0.5\r\n\
            Contact: sip:bob@example.com;expires=10\r\n\r\n";
        let r = parse_response(text.as_bytes()).unwrap();
        assert_eq!(r.branch, "z9hG4bKv6");
        assert_eq!(r.received, Some("2001:db8::9".parse().unwrap()));
        assert_eq!(r.rport, Some(6000));
        assert_eq!(
            r.contacts[0],
            ContactInfo {
                uri: SipUri::parse("sip:alice@[2001:db8::9]:6000;transport=udp").unwrap(),
                expires: Some(30)
            }
        );
        assert_eq!(r.contacts[0].uri.transport, Some(Transport::Udp));
        assert_eq!(r.contacts[1].expires, Some(10));
        assert_eq!(r.contacts[1].uri.host_port.to_string(), "example.com");
    }

    #[test]
    fn list_splitting_respects_quotes_and_brackets() {
        assert_eq!(
            split_list(r#""a, \"b\"" <sip:x@y;p=1,2>, <sip:z>"#),
            vec![r#""a, \"b\"" <sip:x@y;p=1,2>"#, "<sip:z>"]
        );
    }
}
