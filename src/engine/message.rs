//! Building REGISTER requests and reading the responses to them.
//!
//! Parsing is bounded before a byte is read (size, header count, header length), runs
//! under `catch_unwind`, and extracts only what a registration client needs into
//! [`ResponseInfo`]: one scan over the header lines, which copies nothing it does not keep
//! (it runs for every datagram). Compact header forms (`v`, `i`, `m`, `k`) and folded
//! header lines (RFC 3261 §7.3.1) are understood; a header value must be UTF-8 only if it
//! is read. No general SIP parser is used: rsip 0.4 neither parses nor prints IPv6 hosts,
//! rejected folding, and parsed every header into owned strings.

use crate::engine::digest::ChallengeKind;
use crate::engine::transport::Transport;
use crate::engine::uri::{HostPort, SipUri, parse_ip, push_decimal, push_host_port};
use std::net::{IpAddr, SocketAddr};

/// Largest message accepted (the UDP payload limit).
pub(crate) const MAX_MESSAGE_BYTES: usize = 65_535;
/// Most header lines accepted in one message.
pub(crate) const MAX_HEADERS: usize = 128;
/// Longest header line accepted, in bytes.
pub(crate) const MAX_HEADER_LINE: usize = 4_096;
/// Largest request built: far above any REGISTER a registrar needs (a few hundred bytes,
/// a few kilobytes with long nonces and routes), far below the datagram limit.
pub(crate) const MAX_REQUEST_BYTES: usize = 16 * 1024;

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
    /// Supported header value (option tags), if any.
    pub supported: Option<&'a str>,
}

/// Why a REGISTER could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError(pub String);

/// Appends one header line.
fn push_header(out: &mut String, name: &str, value: &str) {
    out.extend([name, ": ", value, "\r\n"]);
}

/// Serializes a REGISTER request, straight into one buffer (no header objects, no
/// intermediate strings: it runs for every request sent).
pub fn build_register(req: &RegisterRequest<'_>) -> Result<Vec<u8>, BuildError> {
    if SipUri::parse(req.request_uri).is_none() {
        return Err(BuildError(format!("bad Request-URI {}", req.request_uri)));
    }
    let variable: usize = [
        req.request_uri.len(),
        2 * req.aor.len(),
        req.from_tag.len(),
        req.call_id.len(),
        req.branch.len(),
        req.contact.len(),
        req.route.map_or(0, str::len),
        req.supported.map_or(0, str::len),
        req.user_agent.len(),
    ]
    .iter()
    .sum::<usize>()
        + req
            .authorization
            .iter()
            .map(|(name, value)| name.len() + value.len() + 4)
            .sum::<usize>();
    if variable + 200 > MAX_REQUEST_BYTES {
        return Err(BuildError(format!(
            "the request would be larger than {MAX_REQUEST_BYTES} bytes"
        )));
    }
    // Pieces are appended, not formatted with `write!`: this runs for every request sent.
    let mut out = String::with_capacity(variable + 320);
    out.extend([
        "REGISTER ",
        req.request_uri,
        " SIP/2.0\r\nVia: SIP/2.0/",
        req.transport.via_name(),
        " ",
    ]);
    push_host_port(&mut out, req.sent_by);
    out.extend([";rport;branch=", req.branch, "\r\nMax-Forwards: 70\r\n"]);
    if let Some(route) = req.route {
        push_header(&mut out, "Route", route);
    }
    out.extend([
        "From: <",
        req.aor,
        ">;tag=",
        req.from_tag,
        "\r\nTo: <",
        req.aor,
        ">\r\nCall-ID: ",
        req.call_id,
        "\r\nCSeq: ",
    ]);
    push_decimal(&mut out, u64::from(req.cseq));
    out.extend([" REGISTER\r\nContact: ", req.contact, "\r\nExpires: "]);
    push_decimal(&mut out, u64::from(req.expires));
    out.push_str("\r\n");
    for (name, value) in req.authorization {
        let name = match *name {
            "Proxy-Authorization" => "Proxy-Authorization",
            _ => "Authorization",
        };
        push_header(&mut out, name, value);
    }
    if let Some(supported) = req.supported {
        push_header(&mut out, "Supported", supported);
    }
    push_header(&mut out, "User-Agent", req.user_agent);
    out.push_str("Content-Length: 0\r\n\r\n");
    if out.len() > MAX_REQUEST_BYTES {
        return Err(BuildError(format!(
            "the request of {} bytes is larger than {MAX_REQUEST_BYTES}",
            out.len()
        )));
    }
    Ok(out.into_bytes())
}

/// One binding listed in a response's Contact header(s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo {
    /// The contact URI.
    pub uri: SipUri,
    /// The URI as written (for comparing URIs, RFC 3261 §19.1.4).
    pub raw: String,
    /// The `expires` parameter, if given.
    pub expires: Option<u32>,
    /// `+sip.instance` (RFC 5626 §4.1), without its quotes.
    pub instance: Option<String>,
    /// `reg-id` (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// `pub-gruu` (RFC 5627 §5.2), without its quotes.
    pub pub_gruu: Option<String>,
    /// `temp-gruu` (RFC 5627 §5.2), without its quotes.
    pub temp_gruu: Option<String>,
}

#[cfg(test)]
impl ContactInfo {
    /// A contact with this URI (which must parse) and no parameter but `expires`.
    pub(crate) fn of(raw: &str, expires: Option<u32>) -> ContactInfo {
        ContactInfo {
            uri: SipUri::parse(raw).expect("a SIP URI"),
            raw: raw.to_string(),
            expires,
            instance: None,
            reg_id: None,
            pub_gruu: None,
            temp_gruu: None,
        }
    }
}

/// What a registration client needs from a response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo {
    /// Status code.
    pub status: u16,
    /// Reason phrase (bounded, as received).
    pub reason: String,
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
    /// Service-Route entries, in order (RFC 3608).
    pub service_route: Vec<String>,
    /// P-Associated-URI entries, in order (RFC 3455).
    pub associated_uris: Vec<String>,
    /// Path entries, in order (RFC 3327).
    pub path: Vec<String>,
    /// Flow-Timer, seconds (RFC 5626 §5.4).
    pub flow_timer: Option<u32>,
    /// Option tags of Require and Supported, lower case (e.g. `outbound`, `gruu`).
    pub option_tags: Vec<String>,
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
    /// Not SIP syntax (the text says where).
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
    let head_end = header_end(bytes).map_or(bytes.len(), |i| i - 2);
    check_header_limits(&bytes[..head_end]).map_err(|limit| match limit {
        HeaderLimit::LineTooLong => ParseError::HeaderTooLong,
        HeaderLimit::TooManyLines => ParseError::TooManyHeaders,
    })?;
    if !bytes.starts_with(b"SIP/2.0 ") {
        return Err(ParseError::NotAResponse);
    }
    Ok(())
}

/// Which header limit a message breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeaderLimit {
    /// A line longer than [`MAX_HEADER_LINE`] bytes (its CR counted).
    LineTooLong,
    /// Too many lines (see [`check_header_limits`]).
    TooManyLines,
}

/// The header limits of every message, datagram or stream: no line longer than
/// [`MAX_HEADER_LINE`] bytes, and at most [`MAX_HEADERS`] + 1 lines counted with the start
/// line and the empty segment after the last CRLF. `head` ends before the CRLF of the empty
/// line, or is the part of the message received so far.
pub(crate) fn check_header_limits(head: &[u8]) -> Result<(), HeaderLimit> {
    for (i, line) in lines_of(head).enumerate() {
        if line.len() > MAX_HEADER_LINE {
            return Err(HeaderLimit::LineTooLong);
        }
        if i > MAX_HEADERS {
            return Err(HeaderLimit::TooManyLines);
        }
    }
    Ok(())
}

/// Where the header section of a message ends: just after its empty line (`CRLF CRLF`).
pub(crate) fn header_end(bytes: &[u8]) -> Option<usize> {
    memchr::memmem::find(bytes, b"\r\n\r\n").map(|i| i + 4)
}

/// The branch of the first Via of a message that could not be parsed, if one can be
/// seen: an unreadable answer is then told to the transaction it answers (for the
/// diagnostic only; nothing else of it is trusted).
pub fn branch_of(bytes: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b";branch=z9hG4bK";
    if !bytes.starts_with(b"SIP/") {
        return None; // a request, or noise: no answer of ours
    }
    let head = &bytes[..header_end(bytes).unwrap_or(bytes.len())];
    let at = memchr::memmem::find(head, KEY)? + KEY.len() - b"z9hG4bK".len();
    let len = head[at..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric())
        .count();
    std::str::from_utf8(&head[at..at + len]).ok()
}

/// Parses a response received from the network.
pub fn parse_response(bytes: &[u8]) -> Result<ResponseInfo, ParseError> {
    check_bounds(bytes)?;
    std::panic::catch_unwind(|| parse_bounded(bytes))
        .unwrap_or_else(|_| Err(ParseError::Syntax("parser panicked".into())))
}

/// A header line: its name, and its value (owned only when it was folded).
type HeaderLine<'a> = (&'a [u8], std::borrow::Cow<'a, [u8]>);

/// The header lines of a message (after its start line), up to the empty line or the end;
/// a folded value (RFC 3261 §7.3.1) is joined with single spaces.
fn header_lines(head: &[u8]) -> Result<Vec<HeaderLine<'_>>, ParseError> {
    use std::borrow::Cow;
    let mut headers: Vec<HeaderLine<'_>> = Vec::with_capacity(16);
    for line in lines_of(head).skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            let (_, value) = headers.last_mut().ok_or_else(|| {
                ParseError::Syntax("a continuation line starts the headers".into())
            })?;
            let more = line.trim_ascii();
            if !more.is_empty() {
                let value = value.to_mut();
                value.push(b' ');
                value.extend_from_slice(more);
            }
            continue;
        }
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| ParseError::Syntax("a header line without a colon".into()))?;
        let name = line[..colon].trim_ascii_end();
        if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
            return Err(ParseError::Syntax(
                "a header name that is not a token".into(),
            ));
        }
        headers.push((name, Cow::Borrowed(line[colon + 1..].trim_ascii())));
    }
    Ok(headers)
}

/// The lines of `bytes` split at LF (as `split` would, found with memchr).
fn lines_of(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(bytes);
    std::iter::from_fn(move || {
        let current = rest?;
        match memchr::memchr(b'\n', current) {
            Some(i) => {
                rest = Some(&current[i + 1..]);
                Some(&current[..i])
            }
            None => {
                rest = None;
                Some(current)
            }
        }
    })
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(b: u8) -> bool {
    const TOKEN: [bool; 256] = {
        let mut table = [false; 256];
        let mut i = 0;
        while i < 256 {
            let c = i as u8;
            table[i] = c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
                );
            i += 1;
        }
        table
    };
    TOKEN[usize::from(b)]
}

/// The status code of a status line `SIP/2.0 NNN reason`.
fn status_code(bytes: &[u8]) -> Result<u16, ParseError> {
    let rest = &bytes[b"SIP/2.0 ".len().min(bytes.len())..];
    let digits = rest.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
    let after = rest.get(3).copied();
    match (digits, after) {
        (Some(d), None | Some(b' ' | b'\r' | b'\n')) => {
            let code = d.iter().fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
            (100..=699)
                .contains(&code)
                .then_some(code)
                .ok_or_else(|| ParseError::Syntax(format!("status code {code}")))
        }
        _ => Err(ParseError::Syntax("no status code".into())),
    }
}

/// Scans the few headers a registration client reads, without copying the others; a value
/// must be UTF-8 only if it is read.
fn parse_bounded(bytes: &[u8]) -> Result<ResponseInfo, ParseError> {
    let status = status_code(bytes)?;
    let mut top_via: Option<&str> = None;
    let mut call_id: Option<&str> = None;
    let mut cseq = None;
    let mut contacts = Vec::new();
    let mut expires = None;
    let mut min_expires = None;
    let mut retry_after = None;
    let mut challenges = Vec::new();
    let mut service_route = Vec::new();
    let mut associated_uris = Vec::new();
    let mut path = Vec::new();
    let mut flow_timer = None;
    let mut option_tags = Vec::new();
    let headers = header_lines(bytes)?;
    for (name, value) in &headers {
        let Some(header) = Header::named(name) else {
            continue;
        };
        let Ok(value) = std::str::from_utf8(value) else {
            // What identifies and decides the answer must be readable; an informative header
            // that is not (Supported, Service-Route, Retry-After…) is left out instead.
            if header.essential() {
                return Err(ParseError::Syntax(format!(
                    "{} is not UTF-8",
                    header.name()
                )));
            }
            continue;
        };
        match header {
            Header::Via => {
                top_via = top_via.or_else(|| Some(list_items(value).next().unwrap_or_default()))
            }
            Header::CallId => call_id = call_id.or(Some(value.trim())),
            Header::CSeq if cseq.is_none() => {
                let mut parts = value.split_ascii_whitespace();
                let number = parts.next().and_then(|n| n.parse::<u32>().ok());
                let method = parts.next().filter(|m| m.bytes().all(is_token_char));
                match (number, method, parts.next()) {
                    (Some(n), Some(m), None) => cseq = Some((n, m.to_ascii_uppercase())),
                    _ => return Err(ParseError::MissingHeader("CSeq")),
                }
            }
            Header::CSeq => {}
            Header::Contact => parse_contacts(value, &mut contacts),
            Header::Expires => expires = value.parse().ok().or(expires),
            Header::MinExpires => min_expires = value.parse().ok().or(min_expires),
            Header::WwwAuthenticate => challenges.push((ChallengeKind::Www, value.to_string())),
            Header::ProxyAuthenticate => challenges.push((ChallengeKind::Proxy, value.to_string())),
            Header::RetryAfter => retry_after = retry_after.or(leading_number(value)),
            Header::Require | Header::Supported => push_tags(value, &mut option_tags),
            Header::ServiceRoute => push_entries(value, &mut service_route),
            Header::PAssociatedUri => push_entries(value, &mut associated_uris),
            Header::Path => push_entries(value, &mut path),
            Header::FlowTimer => flow_timer = flow_timer.or(leading_number(value)),
            Header::ContentLength => {
                // RFC 3261 §18.3: a body shorter than it says is not a whole message (and
                // a length that is not a plain size is no length at all); anything after
                // the body it names is ignored.
                let length = Some(value)
                    .filter(|v| {
                        !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                let body = header_end(bytes).map_or(0, |end| bytes.len() - end);
                match length {
                    Some(length) if length <= body => {}
                    Some(length) => {
                        return Err(ParseError::Syntax(format!(
                            "Content-Length {length} but a body of {body} bytes"
                        )));
                    }
                    None => return Err(ParseError::MissingHeader("Content-Length")),
                }
            }
        }
    }
    let via_value = top_via.ok_or(ParseError::MissingHeader("Via"))?;
    let via_params = parse_via_params(via_value).ok_or(ParseError::MissingHeader("Via"))?;
    let param = |name: &str| {
        via_params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| *v)
    };
    let branch = param("branch")
        .filter(|b| !b.is_empty())
        .map(str::to_string)
        .ok_or(ParseError::MissingHeader("Via branch"))?;
    // Read strictly (RFC 3261 §18.2.1, RFC 3581 §4): an address whole or nothing, an
    // IPv4-mapped IPv6 address as the IPv4 one; a port of digits, not zero.
    let received = param("received")
        .and_then(parse_ip)
        .map(|ip| ip.to_canonical());
    let rport = param("rport")
        .filter(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    let (cseq, cseq_method) = cseq.ok_or(ParseError::MissingHeader("CSeq"))?;
    Ok(ResponseInfo {
        status,
        reason: reason_phrase(bytes),
        branch,
        received,
        rport,
        call_id: call_id
            .ok_or(ParseError::MissingHeader("Call-ID"))?
            .to_string(),
        cseq,
        cseq_method,
        contacts,
        expires,
        min_expires,
        retry_after,
        challenges,
        service_route,
        associated_uris,
        path,
        flow_timer,
        option_tags,
    })
}

/// The headers a registration client reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Header {
    Via,
    CallId,
    CSeq,
    Contact,
    Expires,
    MinExpires,
    WwwAuthenticate,
    ProxyAuthenticate,
    RetryAfter,
    Require,
    Supported,
    ServiceRoute,
    PAssociatedUri,
    Path,
    FlowTimer,
    ContentLength,
}

impl Header {
    /// Full names and compact forms (RFC 3261 §7.3.3), matched without regard to case.
    const NAMES: [(&'static str, Header); 21] = [
        ("via", Header::Via),
        ("v", Header::Via),
        ("call-id", Header::CallId),
        ("i", Header::CallId),
        ("cseq", Header::CSeq),
        ("contact", Header::Contact),
        ("m", Header::Contact),
        ("expires", Header::Expires),
        ("min-expires", Header::MinExpires),
        ("www-authenticate", Header::WwwAuthenticate),
        ("proxy-authenticate", Header::ProxyAuthenticate),
        ("retry-after", Header::RetryAfter),
        ("require", Header::Require),
        ("supported", Header::Supported),
        ("k", Header::Supported),
        ("service-route", Header::ServiceRoute),
        ("p-associated-uri", Header::PAssociatedUri),
        ("path", Header::Path),
        ("flow-timer", Header::FlowTimer),
        ("content-length", Header::ContentLength),
        ("l", Header::ContentLength),
    ];

    fn named(name: &[u8]) -> Option<Header> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.as_bytes().eq_ignore_ascii_case(name))
            .map(|(_, h)| *h)
    }

    /// Whether a response cannot be understood without this header.
    fn essential(self) -> bool {
        matches!(
            self,
            Header::Via
                | Header::CallId
                | Header::CSeq
                | Header::Contact
                | Header::Expires
                | Header::MinExpires
                | Header::WwwAuthenticate
                | Header::ProxyAuthenticate
                | Header::ContentLength
        )
    }

    fn name(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, h)| *h == self)
            .map_or("a header", |(n, _)| n)
    }
}

/// The reason phrase of a status line, at most 128 characters.
fn reason_phrase(bytes: &[u8]) -> String {
    let line = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.trim_end().splitn(3, ' ');
    parts.nth(2).unwrap_or_default().chars().take(128).collect()
}

/// Appends the entries of a comma-separated list of name-addrs, as written.
fn push_entries(value: &str, out: &mut Vec<String>) {
    out.extend(list_items(value).map(str::to_string));
}

/// Appends the option tags of a Require or Supported value, lower case.
fn push_tags(value: &str, out: &mut Vec<String>) {
    out.extend(
        value
            .split(',')
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty()),
    );
}

/// The delta-seconds that starts a header value (`30 (maintenance);duration=60`).
fn leading_number(value: &str) -> Option<u32> {
    let value = value.trim_start();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

fn parse_contacts(value: &str, out: &mut Vec<ContactInfo>) {
    for part in list_items(value) {
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
    let raw = uri.trim();
    let params = parse_params(params);
    let param = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| *v)
    };
    Some(ContactInfo {
        uri: SipUri::parse(raw)?,
        raw: raw.to_string(),
        expires: param("expires").and_then(|v| v.parse().ok()),
        instance: param("+sip.instance").map(str::to_string),
        reg_id: param("reg-id").and_then(|v| v.parse().ok()),
        pub_gruu: param("pub-gruu").map(str::to_string),
        temp_gruu: param("temp-gruu").map(str::to_string),
    })
}

/// Parses `SIP/2.0/UDP host[:port];params` into its parameters.
fn parse_via_params(via: &str) -> Option<Vec<(&str, Option<&str>)>> {
    let mut parts = via.splitn(2, ';');
    let sent = parts.next()?.trim();
    let (protocol, sent_by) = sent.split_once(char::is_whitespace)?;
    if !protocol
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/2.0/"))
    {
        return None;
    }
    HostPort::parse(sent_by.trim())?;
    Some(parse_params(parts.next().unwrap_or("")))
}

/// Parses `;name[=value]` parameters (values may be quoted, and may hold `;` then).
fn parse_params(s: &str) -> Vec<(&str, Option<&str>)> {
    let mut params = Vec::with_capacity(8);
    params.extend(
        split_outside_quotes(s, ';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            }),
    );
    params
}

/// Splits `s` at every `sep` that is not inside a quoted string.
fn split_outside_quotes(s: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut start = Some(0usize);
    std::iter::from_fn(move || {
        let from = start?;
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in s[from..].char_indices() {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, _, '"') => quoted = !quoted,
                (false, _, c) if c == sep => {
                    start = Some(from + i + c.len_utf8());
                    return Some(&s[from..from + i]);
                }
                _ => {}
            }
        }
        start = None;
        Some(&s[from..])
    })
}

/// The entries of a comma-separated header value (honouring `<...>` and quoted strings),
/// trimmed, without empty ones.
fn list_items(value: &str) -> impl Iterator<Item = &str> {
    let mut start = 0usize;
    std::iter::from_fn(move || {
        while start <= value.len() {
            let rest = &value[start..];
            let (mut depth, mut quoted, mut escaped) = (0i32, false, false);
            let mut end = rest.len();
            for (i, c) in rest.char_indices() {
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
                        end = i;
                        break;
                    }
                    _ => {}
                }
            }
            let item = rest[..end].trim();
            start += end + 1;
            if !item.is_empty() {
                return Some(item);
            }
        }
        None
    })
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
            supported: Some("outbound, path, gruu"),
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
            "Supported: outbound, path, gruu\r\n",
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
    fn the_scan_unfolds_and_reads_only_what_it_needs() {
        // A folded Contact and Via (RFC 3261 §7.3.1), and a header we do not read carrying
        // bytes that are not UTF-8: the response is read.
        let folded =
            b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070\r\n \t;branch=z9hG4bKabc\r\n\
            X-Junk: \xff\xfe\r\nCall-ID: cid@host\r\nCSeq: 7 register\r\n\
            Contact: <sip:alice@127.0.0.1:5070>\r\n  ;expires=60\r\nContent-Length: 0\r\n\r\n";
        let info = parse_response(folded).expect("a folded response is read");
        assert_eq!(info.branch, "z9hG4bKabc");
        assert_eq!((info.cseq, info.cseq_method.as_str()), (7, "REGISTER"));
        assert_eq!(info.contacts.len(), 1);
        assert_eq!(info.contacts[0].expires, Some(60));
        // Not UTF-8 in a header that is read: rejected, and the text names it.
        let bad = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK\xff\r\n\r\n";
        assert_eq!(
            parse_response(bad),
            Err(ParseError::Syntax("via is not UTF-8".into()))
        );
        for (text, why) in [
            (
                &b"SIP/2.0 200 OK\r\nNo colon here\r\n\r\n"[..],
                "without a colon",
            ),
            (
                b"SIP/2.0 200 OK\r\n folded first: x\r\n\r\n",
                "continuation",
            ),
            (b"SIP/2.0 200 OK\r\nBad Name: x\r\n\r\n", "not a token"),
            (b"SIP/2.0 099 Low\r\n\r\n", "status code 99"),
            (b"SIP/2.0 2000 OK\r\n\r\n", "no status code"),
        ] {
            match parse_response(text) {
                Err(ParseError::Syntax(e)) => assert!(e.contains(why), "{e}"),
                other => panic!("{other:?}"),
            }
        }
        // A CSeq that is not `number METHOD` is unreadable.
        let cseq = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKa\r\n\
            Call-ID: c\r\nCSeq: 7 REGISTER extra\r\n\r\n";
        assert_eq!(parse_response(cseq), Err(ParseError::MissingHeader("CSeq")));
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
            ContactInfo::of("sip:alice@[2001:db8::9]:6000;transport=udp", Some(30))
        );
        assert_eq!(r.contacts[0].uri.transport, Some(Transport::Udp));
        assert_eq!(r.contacts[1].expires, Some(10));
        assert_eq!(r.contacts[1].uri.host_port.to_string(), "example.com");
    }

    #[test]
    fn a_content_length_beyond_the_datagram_discards_it() {
        let with = |length: &str, body: &str| {
            let text = format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCall-ID: c\r\n\
                 CSeq: 1 REGISTER\r\n{length}\r\n{body}"
            );
            parse_response(text.as_bytes())
        };
        assert!(with("Content-Length: 0\r\n", "").is_ok());
        assert!(with("l: 3\r\n", "abc").is_ok());
        assert!(
            with("Content-Length: 2\r\n", "abcdef").is_ok(),
            "the rest ignored"
        );
        assert!(
            with("", "").is_ok(),
            "no Content-Length on a datagram: the rest is the body"
        );
        for bad in [
            "Content-Length: 4\r\n",
            "Content-Length: 70000\r\n",
            "Content-Length: -1\r\n",
            "Content-Length: +0\r\n",
            "Content-Length: 18446744073709551617\r\n",
            "Content-Length: 0x0\r\n",
            "Content-Length:\r\n",
        ] {
            assert!(with(bad, "abc").is_err(), "{bad}");
        }
    }

    #[test]
    fn received_and_rport_are_read_strictly() {
        let via = |params: &str| {
            let text = format!(
                "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx;{params}\r\n\
                 Call-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n"
            );
            let r = parse_response(text.as_bytes()).unwrap();
            (r.received.map(|ip| ip.to_string()), r.rport)
        };
        let none = (None, None);
        assert_eq!(via("received=[::1"), none, "no closing bracket");
        assert_eq!(via("received=::1]"), none);
        assert_eq!(via("received=1.2.3"), none);
        assert_eq!(via("received=1.2.3.4x"), none);
        assert_eq!(via("received="), none);
        assert_eq!(
            via("received=[::ffff:127.0.0.1]").0.as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(
            via("received=::ffff:192.0.2.7").0.as_deref(),
            Some("192.0.2.7")
        );
        assert_eq!(
            via("received=[2001:db8::1]").0.as_deref(),
            Some("2001:db8::1")
        );
        assert_eq!(via("received=192.0.2.1").0.as_deref(), Some("192.0.2.1"));
        for bad in [
            "rport=0",
            "rport=+5",
            "rport=65536",
            "rport=-1",
            "rport=5x",
            "rport",
        ] {
            assert_eq!(via(bad).1, None, "{bad}");
        }
        assert_eq!(via("rport=00080").1, Some(80));
        assert_eq!(via("rport=65535").1, Some(65535));
    }

    #[test]
    fn list_splitting_respects_quotes_and_brackets() {
        assert_eq!(
            list_items(r#""a, \"b\"" <sip:x@y;p=1,2>, <sip:z>"#).collect::<Vec<_>>(),
            vec![r#""a, \"b\"" <sip:x@y;p=1,2>"#, "<sip:z>"]
        );
    }

    #[test]
    fn outbound_gruu_and_routes_of_a_2xx() {
        let text = "SIP/2.0 200 Registered Fine\r\n\
            Via: SIP/2.0/TCP 192.0.2.1:5062;branch=z9hG4bKo\r\n\
            Call-ID: c\r\nCSeq: 3 REGISTER\r\n\
            Require: outbound\r\nSupported: path, GRUU\r\nFlow-Timer: 25\r\n\
            Service-Route: <sip:orig@scscf.example.com;lr>, <sip:pcscf.example.com;lr>\r\n\
            Service-Route: <sip:third.example.com;lr>\r\n\
            P-Associated-URI: <sip:alice@example.com>, <tel:+15551234>\r\n\
            Path: <sip:edge.example.com;lr;ob>\r\n\
            Contact: <sip:alice@192.0.2.1:5062;transport=tcp;ob>;expires=3600;\
            +sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\";reg-id=1;\
            pub-gruu=\"sip:alice@example.com;gr=urn:uuid:00000000-0000-1000-8000-000A95A0E128\";\
            temp-gruu=\"sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr\"\r\n\r\n";
        let r = parse_response(text.as_bytes()).unwrap();
        assert_eq!(r.reason, "Registered Fine");
        assert_eq!(r.flow_timer, Some(25));
        assert_eq!(r.option_tags, ["outbound", "path", "gruu"]);
        assert_eq!(
            r.service_route,
            [
                "<sip:orig@scscf.example.com;lr>",
                "<sip:pcscf.example.com;lr>",
                "<sip:third.example.com;lr>"
            ]
        );
        assert_eq!(
            r.associated_uris,
            ["<sip:alice@example.com>", "<tel:+15551234>"]
        );
        assert_eq!(r.path, ["<sip:edge.example.com;lr;ob>"]);
        let c = &r.contacts[0];
        assert_eq!(c.raw, "sip:alice@192.0.2.1:5062;transport=tcp;ob");
        assert_eq!(c.expires, Some(3600));
        assert_eq!(
            c.instance.as_deref(),
            Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
        );
        assert_eq!(c.reg_id, Some(1));
        assert_eq!(
            c.pub_gruu.as_deref(),
            Some("sip:alice@example.com;gr=urn:uuid:00000000-0000-1000-8000-000A95A0E128")
        );
        assert_eq!(
            c.temp_gruu.as_deref(),
            Some("sip:tgruu.7hs==jd7vnzga5w7fajsc7-ajd6fabz0f8g5@example.com;gr")
        );
    }
}
