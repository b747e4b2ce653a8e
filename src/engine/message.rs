//! Building REGISTER requests and reading the responses to them.
//!
//! Parsing is bounded before a byte is read (size, header count, header length), runs
//! under `catch_unwind`, and extracts only what a registration client needs into
//! [`ResponseInfo`]: one scan over the header lines, whose text it borrows from the
//! datagram (it runs for every datagram). Compact header forms (`v`, `i`, `m`, `k`) and folded
//! header lines (RFC 3261 §7.3.1) are understood; a header value must be UTF-8 only if it
//! is read. No general SIP parser is used: rsip 0.4 neither parses nor prints IPv6 hosts,
//! rejected folding, and parsed every header into owned strings.

use crate::engine::digest::ChallengeKind;
use crate::engine::transport::Transport;
use crate::engine::uri::{HostPort, SipUri, parse_ip, push_decimal, push_host_port};
use std::borrow::Cow;
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
    if !SipUri::is_valid(req.request_uri) {
        return Err(BuildError(format!("bad Request-URI {}", req.request_uri)));
    }
    write_register(req)
}

/// [`build_register`] for a Request-URI already found valid with [`SipUri::is_valid`]: a
/// binding checks the URI it was configured with once, not for every request it sends.
pub(crate) fn write_register(req: &RegisterRequest<'_>) -> Result<Vec<u8>, BuildError> {
    debug_assert!(SipUri::is_valid(req.request_uri), "{}", req.request_uri);
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

/// One binding listed in a response's Contact header(s). Its text is borrowed from the
/// response where it can be (see [`ResponseInfo`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactInfo<'a> {
    /// The contact URI.
    pub uri: SipUri,
    /// The URI as written (for comparing URIs, RFC 3261 §19.1.4).
    pub raw: Cow<'a, str>,
    /// The `expires` parameter, if given.
    pub expires: Option<u32>,
    /// `+sip.instance` (RFC 5626 §4.1), without its quotes.
    pub instance: Option<Cow<'a, str>>,
    /// `reg-id` (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// `pub-gruu` (RFC 5627 §5.2), without its quotes.
    pub pub_gruu: Option<Cow<'a, str>>,
    /// `temp-gruu` (RFC 5627 §5.2), without its quotes.
    pub temp_gruu: Option<Cow<'a, str>>,
}

impl ContactInfo<'_> {
    /// The same contact, owning its text.
    pub fn into_owned(self) -> ContactInfo<'static> {
        ContactInfo {
            uri: self.uri,
            raw: owned(self.raw),
            expires: self.expires,
            instance: self.instance.map(owned),
            reg_id: self.reg_id,
            pub_gruu: self.pub_gruu.map(owned),
            temp_gruu: self.temp_gruu.map(owned),
        }
    }
}

#[cfg(test)]
impl ContactInfo<'static> {
    /// A contact with this URI (which must parse) and no parameter but `expires`.
    pub(crate) fn of(raw: &str, expires: Option<u32>) -> ContactInfo<'static> {
        ContactInfo {
            uri: SipUri::parse(raw).expect("a SIP URI"),
            raw: raw.to_string().into(),
            expires,
            instance: None,
            reg_id: None,
            pub_gruu: None,
            temp_gruu: None,
        }
    }
}

/// What a registration client needs from a response.
///
/// The text is borrowed from the received bytes (a response is read for every datagram,
/// and only a few of its values are kept); it is owned only when the response had folded
/// header lines, whose values are joined first. [`ResponseInfo::into_owned`] detaches it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseInfo<'a> {
    /// Status code.
    pub status: u16,
    /// Reason phrase (at most 128 characters, as received).
    pub reason: Cow<'a, str>,
    /// Branch of the top Via.
    pub branch: Cow<'a, str>,
    /// `received` of the top Via (RFC 3261 §18.2.1).
    pub received: Option<IpAddr>,
    /// `rport` value of the top Via (RFC 3581).
    pub rport: Option<u16>,
    /// Call-ID.
    pub call_id: Cow<'a, str>,
    /// CSeq number.
    pub cseq: u32,
    /// CSeq method, as received (a token; compare it without regard to case).
    pub cseq_method: Cow<'a, str>,
    /// Every binding listed in the Contact header(s).
    pub contacts: Vec<ContactInfo<'a>>,
    /// Expires header.
    pub expires: Option<u32>,
    /// Min-Expires header (in a 423).
    pub min_expires: Option<u32>,
    /// Retry-After header, seconds (RFC 3261 §20.33; a comment and parameters ignored).
    pub retry_after: Option<u32>,
    /// Raw digest challenges, with the header they came in.
    pub challenges: Vec<(ChallengeKind, Cow<'a, str>)>,
    /// Service-Route entries, in order (RFC 3608).
    pub service_route: Vec<Cow<'a, str>>,
    /// P-Associated-URI entries, in order (RFC 3455).
    pub associated_uris: Vec<Cow<'a, str>>,
    /// Path entries, in order (RFC 3327).
    pub path: Vec<Cow<'a, str>>,
    /// Flow-Timer, seconds (RFC 5626 §5.4).
    pub flow_timer: Option<u32>,
    /// Option tags of Require and Supported, as written (compare them without regard to
    /// case; e.g. `outbound`, `gruu`).
    pub option_tags: Vec<Cow<'a, str>>,
}

impl ResponseInfo<'_> {
    /// The same response, owning its text.
    pub fn into_owned(self) -> ResponseInfo<'static> {
        let all = |v: Vec<Cow<'_, str>>| v.into_iter().map(owned).collect();
        ResponseInfo {
            status: self.status,
            reason: owned(self.reason),
            branch: owned(self.branch),
            received: self.received,
            rport: self.rport,
            call_id: owned(self.call_id),
            cseq: self.cseq,
            cseq_method: owned(self.cseq_method),
            contacts: self
                .contacts
                .into_iter()
                .map(ContactInfo::into_owned)
                .collect(),
            expires: self.expires,
            min_expires: self.min_expires,
            retry_after: self.retry_after,
            challenges: self
                .challenges
                .into_iter()
                .map(|(kind, value)| (kind, owned(value)))
                .collect(),
            service_route: all(self.service_route),
            associated_uris: all(self.associated_uris),
            path: all(self.path),
            flow_timer: self.flow_timer,
            option_tags: all(self.option_tags),
        }
    }
}

/// Text that owns itself.
fn owned(text: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(text.into_owned())
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

/// Checks the size limits without parsing; returns where the header section ends
/// ([`header_end`]).
fn check_bounds(bytes: &[u8]) -> Result<Option<usize>, ParseError> {
    if bytes.len() > MAX_MESSAGE_BYTES {
        return Err(ParseError::TooLarge(bytes.len()));
    }
    let end = header_end(bytes);
    check_header_limits(&bytes[..end.map_or(bytes.len(), |i| i - 2)]).map_err(
        |limit| match limit {
            HeaderLimit::LineTooLong => ParseError::HeaderTooLong,
            HeaderLimit::TooManyLines => ParseError::TooManyHeaders,
        },
    )?;
    if !bytes.starts_with(b"SIP/2.0 ") {
        return Err(ParseError::NotAResponse);
    }
    Ok(end)
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
pub fn parse_response(bytes: &[u8]) -> Result<ResponseInfo<'_>, ParseError> {
    let head_end = check_bounds(bytes)?;
    std::panic::catch_unwind(|| match parse_bounded(bytes, head_end)? {
        Some(response) => Ok(response),
        // Folded lines (RFC 3261 §7.3.1) are rare: their values are joined in a copy first.
        None => {
            let unfolded = unfold(bytes)?;
            match parse_bounded(&unfolded, header_end(&unfolded))? {
                Some(response) => Ok(response.into_owned()),
                None => Err(ParseError::Syntax("a folded line after unfolding".into())),
            }
        }
    })
    .unwrap_or_else(|_| Err(ParseError::Syntax("parser panicked".into())))
}

/// The message with each folded header value (RFC 3261 §7.3.1) joined to its line with a
/// single space; the body is kept as it was.
fn unfold(bytes: &[u8]) -> Result<Vec<u8>, ParseError> {
    let end = header_end(bytes).unwrap_or(bytes.len());
    let mut out = Vec::with_capacity(bytes.len());
    let mut lines = lines_of(&bytes[..end]);
    let start = lines.next().unwrap_or_default();
    out.extend_from_slice(start.strip_suffix(b"\r").unwrap_or(start));
    let mut first = true;
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            if first {
                return Err(ParseError::Syntax(
                    "a continuation line starts the headers".into(),
                ));
            }
            let more = line.trim_ascii();
            if !more.is_empty() {
                while out.last().is_some_and(u8::is_ascii_whitespace) {
                    out.pop();
                }
                out.push(b' ');
                out.extend_from_slice(more);
            }
            continue;
        }
        first = false;
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(&bytes[end..]);
    Ok(out)
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

/// Scans the few headers a registration client reads, in one pass over the header lines
/// that copies nothing (a value must be UTF-8 only if it is read). `None`: the message has
/// a folded line, to be joined first. `head_end`: [`header_end`] of `bytes`.
fn parse_bounded(
    bytes: &[u8],
    head_end: Option<usize>,
) -> Result<Option<ResponseInfo<'_>>, ParseError> {
    let status = status_code(bytes)?;
    let mut top_via: Option<&str> = None;
    let mut call_id: Option<&str> = None;
    let mut cseq = None;
    let mut response = ResponseInfo {
        status,
        ..ResponseInfo::default()
    };
    for line in lines_of(&bytes[..head_end.unwrap_or(bytes.len())]).skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Ok(None);
        }
        let colon = memchr::memchr(b':', line)
            .ok_or_else(|| ParseError::Syntax("a header line without a colon".into()))?;
        let name = line[..colon].trim_ascii_end();
        if name.is_empty() || !name.iter().all(|&b| is_token_char(b)) {
            return Err(ParseError::Syntax(
                "a header name that is not a token".into(),
            ));
        }
        let Some(header) = Header::named(name) else {
            continue;
        };
        let Ok(value) = std::str::from_utf8(line[colon + 1..].trim_ascii()) else {
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
        let r = &mut response;
        match header {
            Header::Via => {
                top_via = top_via.or_else(|| Some(list_items(value).next().unwrap_or_default()))
            }
            Header::CallId => call_id = call_id.or(Some(value)),
            Header::CSeq if cseq.is_none() => {
                let mut parts = value.split_ascii_whitespace();
                let number = parts.next().and_then(|n| n.parse::<u32>().ok());
                let method = parts.next().filter(|m| m.bytes().all(is_token_char));
                match (number, method, parts.next()) {
                    (Some(n), Some(m), None) => cseq = Some((n, m)),
                    _ => return Err(ParseError::MissingHeader("CSeq")),
                }
            }
            Header::CSeq => {}
            Header::Contact => parse_contacts(value, &mut r.contacts),
            Header::Expires => r.expires = value.parse().ok().or(r.expires),
            Header::MinExpires => r.min_expires = value.parse().ok().or(r.min_expires),
            Header::WwwAuthenticate => r.challenges.push((ChallengeKind::Www, value.into())),
            Header::ProxyAuthenticate => r.challenges.push((ChallengeKind::Proxy, value.into())),
            Header::RetryAfter => r.retry_after = r.retry_after.or(leading_number(value)),
            Header::Require | Header::Supported => r.option_tags.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(Cow::Borrowed),
            ),
            Header::ServiceRoute => r.service_route.extend(list_items(value).map(Cow::Borrowed)),
            Header::PAssociatedUri => {
                r.associated_uris
                    .extend(list_items(value).map(Cow::Borrowed));
            }
            Header::Path => r.path.extend(list_items(value).map(Cow::Borrowed)),
            Header::FlowTimer => r.flow_timer = r.flow_timer.or(leading_number(value)),
            Header::ContentLength => {
                // RFC 3261 §18.3: a body shorter than it says is not a whole message (and
                // a length that is not a plain size is no length at all); anything after
                // the body it names is ignored.
                let length = Some(value)
                    .filter(|v| {
                        !v.is_empty() && v.len() <= 5 && v.bytes().all(|b| b.is_ascii_digit())
                    })
                    .and_then(|v| v.parse::<usize>().ok());
                let body = head_end.map_or(0, |end| bytes.len() - end);
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
    let via = top_via.ok_or(ParseError::MissingHeader("Via"))?;
    let via_params = via_params(via).ok_or(ParseError::MissingHeader("Via"))?;
    let (mut branch, mut received, mut rport) = (None, None, None);
    for (name, value) in via_params {
        if name.eq_ignore_ascii_case("branch") {
            branch = branch.or(Some(value));
        } else if name.eq_ignore_ascii_case("received") {
            received = received.or(Some(value));
        } else if name.eq_ignore_ascii_case("rport") {
            rport = rport.or(Some(value));
        }
    }
    response.branch = branch
        .flatten()
        .filter(|b| !b.is_empty())
        .ok_or(ParseError::MissingHeader("Via branch"))?
        .into();
    // Read strictly (RFC 3261 §18.2.1, RFC 3581 §4): an address whole or nothing, an
    // IPv4-mapped IPv6 address as the IPv4 one; a port of digits, not zero.
    response.received = received
        .flatten()
        .and_then(parse_ip)
        .map(|ip| ip.to_canonical());
    response.rport = rport
        .flatten()
        .filter(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|p| p.parse::<u16>().ok())
        .filter(|p| *p != 0);
    let (number, method) = cseq.ok_or(ParseError::MissingHeader("CSeq"))?;
    response.cseq = number;
    response.cseq_method = method.into();
    response.call_id = call_id.ok_or(ParseError::MissingHeader("Call-ID"))?.into();
    response.reason = reason_phrase(bytes);
    Ok(Some(response))
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

    /// The header of this name, if we read it: the one candidate its length and first
    /// letters allow, compared whole (this runs for every header line received).
    fn named(name: &[u8]) -> Option<Header> {
        let lower = |i: usize| name.get(i).map_or(0, u8::to_ascii_lowercase);
        let index = match (name.len(), lower(0)) {
            (1, b'v') => 1,
            (1, b'i') => 3,
            (1, b'm') => 6,
            (1, b'k') => 14,
            (1, b'l') => 20,
            (3, b'v') => 0,
            (4, b'c') => 4,
            (4, b'p') => 17,
            (7, b'c') if lower(1) == b'a' => 2,
            (7, b'c') => 5,
            (7, b'e') => 7,
            (7, b'r') => 12,
            (9, b's') => 13,
            (10, b'f') => 18,
            (11, b'm') => 8,
            (11, b'r') => 11,
            (13, b's') => 15,
            (14, b'c') => 19,
            (16, b'w') => 9,
            (16, b'p') => 16,
            (18, b'p') => 10,
            _ => return None,
        };
        let (full, header) = Self::NAMES[index];
        full.as_bytes().eq_ignore_ascii_case(name).then_some(header)
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

/// The reason phrase of a status line, at most 128 characters (borrowed when it is
/// UTF-8).
fn reason_phrase(bytes: &[u8]) -> Cow<'_, str> {
    fn cut(line: &str) -> &str {
        let reason = line.trim_end().splitn(3, ' ').nth(2).unwrap_or_default();
        if reason.len() <= 128 {
            return reason; // no more characters than bytes
        }
        match reason.char_indices().nth(128) {
            Some((end, _)) => &reason[..end],
            None => reason,
        }
    }
    let line = &bytes[..memchr::memchr(b'\n', bytes).unwrap_or(bytes.len())];
    match std::str::from_utf8(line) {
        Ok(line) => Cow::Borrowed(cut(line)),
        Err(_) => Cow::Owned(cut(&String::from_utf8_lossy(line)).to_string()),
    }
}

/// The delta-seconds that starts a header value (`30 (maintenance);duration=60`).
fn leading_number(value: &str) -> Option<u32> {
    let value = value.trim_start();
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    value[..digits].parse().ok()
}

fn parse_contacts<'a>(value: &'a str, out: &mut Vec<ContactInfo<'a>>) {
    for part in list_items(value) {
        if let Some(contact) = parse_contact(part) {
            out.push(contact); // an unreadable entry cannot be ours: skipped
        }
    }
}

/// Parses one Contact entry: `["name"] <uri>;params` or `uri;params`.
fn parse_contact(entry: &str) -> Option<ContactInfo<'_>> {
    let (uri, params) = match memchr::memchr(b'<', entry.as_bytes()) {
        Some(open) => {
            let close = open + memchr::memchr(b'>', &entry.as_bytes()[open..])?;
            (&entry[open + 1..close], &entry[close + 1..])
        }
        // Without brackets, parameters after the URI belong to the header (RFC 3261 §20).
        None => entry.split_once(';').map_or((entry, ""), |(u, p)| (u, p)),
    };
    let raw = uri.trim();
    let mut contact = ContactInfo {
        uri: SipUri::parse(raw)?,
        raw: raw.into(),
        expires: None,
        instance: None,
        reg_id: None,
        pub_gruu: None,
        temp_gruu: None,
    };
    // The first of each name counts.
    let (mut expires, mut instance, mut reg_id, mut pub_gruu, mut temp_gruu) =
        (None, None, None, None, None);
    for (name, value) in params_of(params) {
        let slot = if name.eq_ignore_ascii_case("expires") {
            &mut expires
        } else if name.eq_ignore_ascii_case("+sip.instance") {
            &mut instance
        } else if name.eq_ignore_ascii_case("reg-id") {
            &mut reg_id
        } else if name.eq_ignore_ascii_case("pub-gruu") {
            &mut pub_gruu
        } else if name.eq_ignore_ascii_case("temp-gruu") {
            &mut temp_gruu
        } else {
            continue;
        };
        slot.get_or_insert(value);
    }
    contact.expires = expires.flatten().and_then(|v| v.parse().ok());
    contact.instance = instance.flatten().map(Cow::Borrowed);
    contact.reg_id = reg_id.flatten().and_then(|v| v.parse().ok());
    contact.pub_gruu = pub_gruu.flatten().map(Cow::Borrowed);
    contact.temp_gruu = temp_gruu.flatten().map(Cow::Borrowed);
    Some(contact)
}

/// The parameters of `SIP/2.0/UDP host[:port];params`, if its protocol and sent-by are
/// valid.
fn via_params(via: &str) -> Option<impl Iterator<Item = (&str, Option<&str>)>> {
    let (sent, params) = via.split_once(';').unwrap_or((via, ""));
    let (protocol, sent_by) = sent.trim().split_once(char::is_whitespace)?;
    if !protocol
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("SIP/2.0/"))
    {
        return None;
    }
    HostPort::parse(sent_by.trim())?;
    Some(params_of(params))
}

/// The `;name[=value]` parameters of `s` (values may be quoted, and may hold `;` then),
/// trimmed, a value without its quotes.
fn params_of(s: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    split_outside_quotes(s, b';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        })
}

/// A set of ASCII bytes, as a table.
const fn byte_set(bytes: &[u8]) -> [bool; 256] {
    let mut set = [false; 256];
    let mut i = 0;
    while i < bytes.len() {
        set[bytes[i] as usize] = true;
        i += 1;
    }
    set
}

/// Where the first byte of `set` is in `bytes`, or its length.
fn find_in(bytes: &[u8], set: &[bool; 256]) -> usize {
    bytes
        .iter()
        .position(|&b| set[usize::from(b)])
        .unwrap_or(bytes.len())
}

/// Where the quoted string that starts just before `bytes` ends: just after its closing
/// quote (a backslash escapes the byte after it), or the length when it does not end.
fn after_quoted(bytes: &[u8]) -> usize {
    let mut i = 0;
    while let Some(at) = memchr::memchr2(b'"', b'\\', &bytes[i..]) {
        i += at;
        if bytes[i] == b'"' {
            return i + 1;
        }
        i += 2; // the escaped byte, whatever it is
        if i >= bytes.len() {
            break;
        }
    }
    bytes.len()
}

/// Splits `s` at every `;` that is not inside a quoted string. Bytes are scanned, not
/// characters: no byte of a multi-byte character is ASCII.
fn split_outside_quotes(s: &str, sep: u8) -> impl Iterator<Item = &str> {
    debug_assert!(sep.is_ascii() && sep != b'"' && sep != b'\\');
    let mut start = Some(0usize);
    std::iter::from_fn(move || {
        let from = start?;
        let bytes = &s.as_bytes()[from..];
        let mut i = 0;
        while let Some(at) = memchr::memchr2(sep, b'"', &bytes[i..]) {
            i += at;
            if bytes[i] == sep {
                start = Some(from + i + 1);
                return Some(&s[from..from + i]);
            }
            i += 1 + after_quoted(&bytes[i + 1..]);
        }
        start = None;
        Some(&s[from..])
    })
}

/// The entries of a comma-separated header value (honouring `<...>` and quoted strings),
/// trimmed, without empty ones. A comma separates entries where no more `<` than `>`
/// came before it outside quoted strings. Bytes are scanned, as in
/// [`split_outside_quotes`].
fn list_items(value: &str) -> impl Iterator<Item = &str> {
    const SPECIAL: [bool; 256] = byte_set(b",\"<>");
    let mut start = 0usize;
    std::iter::from_fn(move || {
        while start <= value.len() {
            let rest = &value.as_bytes()[start..];
            let mut depth = 0i32;
            let mut i = 0;
            let end = loop {
                i += find_in(&rest[i..], &SPECIAL);
                match rest.get(i) {
                    None => break rest.len(),
                    Some(b',') if depth <= 0 => break i,
                    Some(b'"') => {
                        i += 1 + after_quoted(&rest[i + 1..]);
                        continue;
                    }
                    Some(b'<') => depth += 1,
                    Some(b'>') => depth -= 1,
                    Some(_) => {}
                }
                i += 1;
            };
            let item = value[start..start + end].trim();
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

    /// The scanners as first written, a character at a time: the reference for the
    /// byte-skipping ones.
    fn reference_split(s: &str, sep: char) -> Vec<&str> {
        let mut pieces = Vec::new();
        let mut from = 0;
        let (mut quoted, mut escaped) = (false, false);
        for (i, c) in s.char_indices() {
            match (quoted, escaped, c) {
                (true, true, _) => escaped = false,
                (true, false, '\\') => escaped = true,
                (_, _, '"') => quoted = !quoted,
                (false, _, c) if c == sep => {
                    pieces.push(&s[from..i]);
                    from = i + 1;
                }
                _ => {}
            }
        }
        pieces.push(&s[from..]);
        pieces
    }

    fn reference_items(value: &str) -> Vec<&str> {
        let mut items = Vec::new();
        let mut start = 0usize;
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
                items.push(item);
            }
        }
        items
    }

    #[test]
    fn the_reason_phrase_is_kept_to_128_characters() {
        let reason = |phrase: &[u8]| {
            let mut text = b"SIP/2.0 403 ".to_vec();
            text.extend_from_slice(phrase);
            text.extend_from_slice(
                b"\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n\r\n",
            );
            parse_response(&text).unwrap().reason.into_owned()
        };
        let ascii = "a".repeat(128);
        assert_eq!(reason(ascii.as_bytes()), ascii);
        assert_eq!(reason(format!("{ascii}b").as_bytes()), ascii);
        let wide = "é".repeat(200);
        assert_eq!(reason(wide.as_bytes()), "é".repeat(128));
        assert_eq!(reason(b"Forbidden \xff here"), "Forbidden \u{fffd} here");
        assert_eq!(reason(b""), "");
    }

    #[test]
    fn every_header_name_is_found_in_any_case_and_no_other() {
        for (name, header) in Header::NAMES {
            assert_eq!(Header::named(name.as_bytes()), Some(header), "{name}");
            let upper = name.to_ascii_uppercase();
            assert_eq!(Header::named(upper.as_bytes()), Some(header), "{upper}");
            // One letter changed: no longer the name.
            let mut other = name.as_bytes().to_vec();
            let last = other.len() - 1;
            other[last] = if other[last] == b'x' { b'y' } else { b'x' };
            assert_eq!(Header::named(&other), None, "{name}");
        }
        for name in [
            "",
            "to",
            "from",
            "x",
            "Server",
            "contacts",
            "p-associated-urx",
        ] {
            assert_eq!(Header::named(name.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn the_scanners_split_as_the_reference_does() {
        // Every string of up to five of these characters (a multi-byte one among them).
        let alphabet = [',', '"', '<', '>', '\\', ';', 'a', 'é'];
        let checked = crate::engine::every_string(&alphabet, 5, |text| {
            assert_eq!(
                split_outside_quotes(text, b';').collect::<Vec<_>>(),
                reference_split(text, ';'),
                "{text:?}"
            );
            assert_eq!(
                list_items(text).collect::<Vec<_>>(),
                reference_items(text),
                "{text:?}"
            );
        });
        assert_eq!(checked, 37_449);
    }

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
        assert_eq!((r.cseq, &*r.cseq_method), (7, "REGISTER"));
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
        assert_eq!(
            (info.cseq, &*info.cseq_method),
            (7, "register"),
            "as received"
        );
        assert!(
            matches!(info.branch, Cow::Owned(_)),
            "the text of an unfolded copy is owned"
        );
        let joined = b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5070 ;branch=z9hG4bKabc\r\n\
            X-Junk: \xff\xfe\r\nCall-ID: cid@host\r\nCSeq: 7 register\r\n\
            Contact: <sip:alice@127.0.0.1:5070> ;expires=60\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            Ok(info.clone()),
            parse_response(joined),
            "read as the same lines written whole"
        );
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
            parse_response(text.as_bytes()).map(ResponseInfo::into_owned)
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
        assert_eq!(r.option_tags, ["outbound", "path", "GRUU"], "as written");
        assert!(
            matches!(r.branch, Cow::Borrowed(_)) && matches!(r.reason, Cow::Borrowed(_)),
            "an unfolded response is borrowed"
        );
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
