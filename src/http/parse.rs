//! Request head parsing with the limits of DESIGN §5, body framing, and the chunked decoder.
//! Everything here works on bytes already received; nothing allocates in proportion to
//! what a client *claims* it will send.

use super::line::{self, TargetForm};
use super::request::{Method, Request};
use super::HttpError;
use std::net::SocketAddr;
use std::ops::Range;

/// Longest single line of a request head (request line or one header).
pub const MAX_HEAD_LINE: usize = 8 * 1024;
/// Largest whole request head.
pub const MAX_HEAD_TOTAL: usize = 64 * 1024;
/// Most headers in one request.
pub const MAX_HEADERS: usize = 100;

/// How the body of a request is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

// A short-lived return value moved once into the connection; boxing the request would
// cost an allocation per request for nothing.
#[allow(clippy::large_enum_variant)]
pub enum HeadStatus {
    /// More bytes are needed; the bytes so far are within limits.
    Partial,
    Complete {
        request: Request,
        framing: Framing,
        head_len: usize,
        expect_continue: bool,
    },
}

/// Incremental limit check for a head that is still arriving: remembers how far it has
/// scanned so a slowly dripping head costs O(n) in total, not O(n²).
#[derive(Default)]
pub struct HeadScanner {
    scanned: usize,
    line_start: usize,
    /// A line with content has ended: later lines are header lines, not the request line.
    past_request_line: bool,
}

impl HeadScanner {
    pub fn reset(&mut self) {
        *self = HeadScanner::default();
    }

    /// Checks line lengths and total size of the partial head in `buf`. An over-long
    /// request line is 414 (its target is what grows), an over-long header line 431.
    fn check(&mut self, buf: &[u8]) -> Result<(), HttpError> {
        if buf.len() <= MAX_HEAD_LINE {
            // No line of it can be too long, nor the whole too large (the usual head is a few
            // hundred bytes). The scan state is left as it is: once the head grows past this,
            // the scan resumes from there, still looking at each byte once.
            return Ok(());
        }
        for (i, &b) in buf.iter().enumerate().skip(self.scanned) {
            if b == b'\n' {
                let len = content_len(&buf[self.line_start..i]);
                if len > MAX_HEAD_LINE {
                    return Err(self.line_too_long());
                }
                self.past_request_line |= len > 0;
                self.line_start = i + 1;
            }
        }
        self.scanned = buf.len();
        if content_len(&buf[self.line_start..]) > MAX_HEAD_LINE {
            return Err(self.line_too_long());
        }
        if buf.len() > MAX_HEAD_TOTAL {
            return Err(HttpError::HeaderTooLarge(
                "the request head is larger than 64 KiB",
            ));
        }
        Ok(())
    }

    fn line_too_long(&self) -> HttpError {
        if self.past_request_line {
            HttpError::HeaderTooLarge("a header line is longer than 8 KiB")
        } else {
            HttpError::UriTooLong
        }
    }
}

/// Length of a head line without its line ending: the limit is on content.
fn content_len(line: &[u8]) -> usize {
    line.strip_suffix(b"\r").unwrap_or(line).len()
}

/// The parts of a complete head whose request line passed its checks, as ranges into
/// the buffer it was parsed from.
struct Parts {
    method: Method,
    method_text: Range<usize>,
    target: Range<usize>,
    form: TargetForm,
    minor_version: u8,
    headers: Vec<(Range<usize>, Range<usize>)>,
    len: usize,
}

/// Where `part` (a slice of `buf`) lies in `buf`.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - buf.as_ptr() as usize;
    start..start + part.len()
}

/// Tries to parse one request head from the front of `buf`; `tls`: it came over TLS.
pub fn parse_head(
    buf: &[u8],
    scanner: &mut HeadScanner,
    peer: SocketAddr,
    tls: bool,
) -> Result<HeadStatus, HttpError> {
    // Uninitialised slots: httparse fills only as many as the request has, so the 100
    // slots (3 KiB) are not zeroed for every request.
    let mut headers = [const { std::mem::MaybeUninit::<httparse::Header>::uninit() }; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut []);
    let len = match parsed.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Partial) => {
            scanner.check(buf)?;
            return Ok(HeadStatus::Partial);
        }
        Ok(httparse::Status::Complete(len)) => len,
        // httparse takes HTTP/1.0 and 1.1 only; other versions are read by hand.
        Err(httparse::Error::Version) => return parse_later_version(buf, scanner, peer, tls),
        Err(e) => return Err(head_error(e)),
    };
    // The scanner only saw partial heads; a head that arrived whole is checked here.
    scanner.check(&buf[..len])?;
    let (method_text, target) = (parsed.method.unwrap_or(""), parsed.path.unwrap_or(""));
    let method = line::check_method(method_text)?;
    let parts = Parts {
        method,
        method_text: range_in(buf, method_text.as_bytes()),
        target: range_in(buf, target.as_bytes()),
        form: line::target_form(method, target)?,
        minor_version: parsed.version.unwrap_or(1),
        headers: header_ranges(buf, parsed.headers),
        len,
    };
    build_request(buf, parts, peer, tls)
}

fn header_ranges(buf: &[u8], headers: &[httparse::Header]) -> Vec<(Range<usize>, Range<usize>)> {
    headers
        .iter()
        .map(|h| (range_in(buf, h.name.as_bytes()), range_in(buf, h.value)))
        .collect()
}

fn head_error(error: httparse::Error) -> HttpError {
    match error {
        httparse::Error::TooManyHeaders => HttpError::HeaderTooLarge("more than 100 headers"),
        e => HttpError::BadRequest(format!("malformed request head: {e}")),
    }
}

/// A head whose request line names a version httparse refuses: `HTTP/1.2` and later
/// minor versions are served as HTTP/1.1 (their headers parsed by httparse on their
/// own), any other major version is 505. Rare, so the slots here are simply zeroed, and
/// the code is kept off the usual path.
#[cold]
#[inline(never)]
fn parse_later_version(
    buf: &[u8],
    scanner: &mut HeadScanner,
    peer: SocketAddr,
    tls: bool,
) -> Result<HeadStatus, HttpError> {
    let line = match line::later_version(buf) {
        Ok(Some(line)) => line,
        Ok(None) => {
            scanner.check(buf)?;
            return Ok(HeadStatus::Partial);
        }
        // A request line too long to finish is the length's fault, not its version's.
        Err(e) => return Err(scanner.check(buf).err().unwrap_or(e)),
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let rest = &buf[line.headers_from..];
    let (headers_len, parsed) = match httparse::parse_headers(rest, &mut headers) {
        Ok(httparse::Status::Partial) => {
            scanner.check(buf)?;
            return Ok(HeadStatus::Partial);
        }
        Ok(httparse::Status::Complete(done)) => done,
        Err(e) => return Err(head_error(e)),
    };
    let len = line.headers_from + headers_len;
    scanner.check(&buf[..len])?;
    // httparse read both, as a token and as visible ASCII, before refusing the version.
    let text = |range: &Range<usize>| std::str::from_utf8(&buf[range.clone()]).unwrap_or("");
    let method = line::check_method(text(&line.method))?;
    let parts = Parts {
        method,
        form: line::target_form(method, text(&line.target))?,
        method_text: line.method,
        target: line.target,
        // RFC 9110 §2.5: a later minor version is answered as the highest one we have.
        minor_version: 1,
        headers: header_ranges(buf, parsed),
        len,
    };
    build_request(buf, parts, peer, tls)
}

/// The request of a head whose limits, method and target have been checked.
fn build_request(
    buf: &[u8],
    parts: Parts,
    peer: SocketAddr,
    tls: bool,
) -> Result<HeadStatus, HttpError> {
    let mut head = buf[..parts.len].to_vec();
    let target = match &parts.form {
        TargetForm::AsSent => parts.target,
        TargetForm::Absolute {
            path_from,
            add_slash,
            ..
        } => {
            let path = parts.target.start + path_from..parts.target.end;
            if *add_slash {
                // The origin form `/` + query is kept after the head bytes.
                let start = head.len();
                head.push(b'/');
                head.extend_from_slice(&buf[path]);
                start..head.len()
            } else {
                path
            }
        }
    };
    let minor_version = parts.minor_version;
    let mut request = Request::new(
        head,
        parts.method,
        parts.method_text,
        target,
        minor_version,
        parts.headers,
        peer,
    );
    request.tls = tls;
    // The Host header is checked even when the target names the host (RFC 9112 §3.2).
    request.host = host_of(&request)?;
    if let TargetForm::Absolute { host, .. } = parts.form {
        request.host = host;
    }
    let framing = framing_of(&request)?;
    let expect_continue = match request.header("expect") {
        None => false,
        Some(v) if v.trim_ascii().eq_ignore_ascii_case(b"100-continue") => minor_version == 1,
        Some(_) => return Err(HttpError::ExpectationFailed),
    };
    Ok(HeadStatus::Complete {
        request,
        framing,
        head_len: parts.len,
        expect_continue,
    })
}

/// The Host header without port, lower-cased and validated. HTTP/1.1 requires exactly one.
fn host_of(request: &Request) -> Result<String, HttpError> {
    let mut hosts = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"host"));
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(HttpError::BadRequest("more than one Host header".into()));
    }
    let raw = match first {
        Some((_, v)) => v.trim_ascii(),
        None if request.minor_version == 0 => return Ok(String::new()),
        None => return Err(HttpError::BadRequest("missing Host header".into())),
    };
    parse_host(raw).ok_or_else(|| {
        HttpError::BadRequest(format!(
            "invalid Host header '{}'",
            String::from_utf8_lossy(raw)
        ))
    })
}

/// Accepts `name[:port]` with a DNS-style name or IPv4 literal, or `[ipv6][:port]`, and
/// returns it lower-cased without the port. Works on bytes, one pass per part: every
/// accepted byte is ASCII, so anything else is refused without a UTF-8 check.
pub fn parse_host(raw: &[u8]) -> Option<String> {
    let (name, port) = if raw.first() == Some(&b'[') {
        let end = raw.iter().position(|&b| b == b']')?;
        let inner = &raw[1..end];
        if inner.is_empty()
            || !inner
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        let after = &raw[end + 1..];
        let port = match after.split_first() {
            None => after,
            Some((b':', port)) => port,
            Some(_) => return None,
        };
        (&raw[..=end], port)
    } else {
        match raw.iter().rposition(|&b| b == b':') {
            Some(colon) => (&raw[..colon], &raw[colon + 1..]),
            None => (raw, &[][..]),
        }
    };
    if !valid_port(port) {
        return None;
    }
    if name.first() == Some(&b'[') {
        return ascii_lowercase(name);
    }
    let name = name.strip_suffix(b".").unwrap_or(name);
    if !is_dns_name(name) {
        return None;
    }
    ascii_lowercase(name)
}

/// `port = *DIGIT` (RFC 3986 §3.2.3), and when present a TCP port, 1–65535. An empty port
/// (`Host: x:`) is valid: RFC 9110 §4.2.3 reads it as the scheme's default port, and
/// RFC 3986 only asks producers to omit it. Leading zeros are digits like any other.
fn valid_port(port: &[u8]) -> bool {
    if port.is_empty() {
        return true;
    }
    if !port.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let value = port.iter().try_fold(0u32, |n, &d| {
        let n = n * 10 + u32::from(d - b'0');
        (n <= 65_535).then_some(n)
    });
    matches!(value, Some(1..))
}

/// The bytes a host label may hold: ASCII letters, digits, `-` and `_` (a table: this runs
/// for every byte of every request's Host).
const LABEL_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        table[b] = byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
        b += 1;
    }
    table
};

/// Labels of 1–63 letters, digits, `-` or `_`, not starting or ending with `-`, separated
/// by single dots; at most 253 bytes in all.
fn is_dns_name(name: &[u8]) -> bool {
    if name.is_empty() || name.len() > 253 {
        return false;
    }
    let mut label_len = 0;
    let mut previous = b'.';
    for &b in name {
        if b == b'.' {
            if label_len == 0 || previous == b'-' {
                return false;
            }
            label_len = 0;
        } else {
            let allowed = LABEL_BYTES[usize::from(b)] && (b != b'-' || label_len > 0);
            label_len += 1;
            if !allowed || label_len > 63 {
                return false;
            }
        }
        previous = b;
    }
    label_len > 0 && previous != b'-'
}

/// `bytes` lower-cased into a `String`; `None` if they are not UTF-8 (callers pass only
/// ASCII, so the check costs a few instructions and never fails).
fn ascii_lowercase(bytes: &[u8]) -> Option<String> {
    let mut lower = bytes.to_vec();
    lower.make_ascii_lowercase();
    String::from_utf8(lower).ok()
}

/// Works out body framing, refusing the ambiguous combinations used for request smuggling.
fn framing_of(request: &Request) -> Result<Framing, HttpError> {
    let mut length: Option<u64> = None;
    let mut chunked = false;
    for (name, value) in request.headers() {
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = content_length_value(value)?;
            if length.is_some_and(|l| l != n) {
                return Err(HttpError::BadRequest(
                    "conflicting Content-Length headers".into(),
                ));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Only a lone `chunked`: we decode no other coding, and chunked twice is invalid.
            if !value.trim_ascii().eq_ignore_ascii_case(b"chunked") || chunked {
                return Err(HttpError::BadRequest(
                    "unsupported Transfer-Encoding (only chunked is accepted)".into(),
                ));
            }
            chunked = true;
        }
    }
    match (length, chunked) {
        (Some(_), true) => Err(HttpError::BadRequest(
            "both Content-Length and Transfer-Encoding".into(),
        )),
        (_, true) if request.minor_version == 0 => Err(HttpError::BadRequest(
            "Transfer-Encoding in an HTTP/1.0 request".into(),
        )),
        (_, true) => Ok(Framing::Chunked),
        (Some(0), false) | (None, false) => Ok(Framing::None),
        (Some(n), false) => Ok(Framing::Length(n)),
    }
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6) around optional SP/HTAB (the field's OWS).
/// Nothing else is stripped: a sign, a non-breaking space or any other byte is a 400, as
/// nginx answers, since a parser that reads `38\xc2\xa0` as 38 disagrees with one that
/// refuses it about where the body ends.
pub(crate) fn content_length_value(value: &[u8]) -> Result<u64, HttpError> {
    let digits = trim_ows(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::BadRequest(format!(
            "invalid Content-Length '{}' (digits only)",
            String::from_utf8_lossy(value).escape_debug()
        )));
    }
    // Digits only, so the one failure left is overflow: the client claims more than u64
    // can hold, which is more than any route allows.
    Ok(digits
        .iter()
        .try_fold(0u64, |n, &d| {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        })
        .unwrap_or(u64::MAX))
}

/// `bytes` without leading and trailing SP and HTAB (RFC 9110 §5.6.3 OWS), and nothing
/// else: `trim_ascii` would also strip CR, LF and form feed.
fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    &bytes[start..end]
}

/// A chunk size: 1 to 16 hex digits (RFC 9112 §7.1 `chunk-size = 1*HEXDIG`), optionally
/// followed by SP/HTAB before a `;` extension (the grammar's BWS). No sign, no `0x`, no
/// leading space: `u64::from_str_radix` alone would take `+26`.
fn chunk_size(line: &[u8]) -> Result<u64, HttpError> {
    let before_ext = line.split(|&b| b == b';').next().unwrap_or(b"");
    let end = before_ext
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    let digits = &before_ext[..end];
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return Err(HttpError::BadRequest(format!(
            "invalid chunk size '{}' (hex digits only)",
            String::from_utf8_lossy(&digits[..digits.len().min(32)]).escape_debug()
        )));
    }
    // At most 16 hex digits: always fits in a u64.
    Ok(digits
        .iter()
        .fold(0u64, |n, &d| (n << 4) | u64::from(hex_value(d))))
}

fn hex_value(digit: u8) -> u8 {
    match digit {
        b'0'..=b'9' => digit - b'0',
        b'a'..=b'f' => digit - b'a' + 10,
        _ => digit - b'A' + 10,
    }
}

/// Longest chunk-size line (size, extensions) or trailer line we accept.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Total trailer bytes we are willing to skip.
const MAX_TRAILERS: usize = 16 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    SizeLine,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Incremental decoder for `Transfer-Encoding: chunked`.
#[derive(Debug)]
pub struct ChunkedDecoder {
    state: ChunkState,
    line: Vec<u8>,
    trailer_bytes: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder {
            state: ChunkState::SizeLine,
            line: Vec::new(),
            trailer_bytes: 0,
        }
    }
}

impl ChunkedDecoder {
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes bytes from `input`, calling `sink` with each piece of body data.
    /// Returns how many input bytes were consumed; stops at the end of the body.
    pub fn decode(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), HttpError>,
    ) -> Result<usize, HttpError> {
        let mut pos = 0;
        while pos < input.len() && self.state != ChunkState::Done {
            match self.state {
                ChunkState::Data(remaining) => {
                    let take = remaining.min((input.len() - pos) as u64) as usize;
                    sink(&input[pos..pos + take])?;
                    pos += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                }
                ChunkState::SizeLine | ChunkState::DataEnd | ChunkState::Trailers => {
                    let Some(line) = self.take_line(input, &mut pos)? else {
                        break;
                    };
                    self.state = self.after_line(&line)?;
                }
                ChunkState::Done => break,
            }
        }
        Ok(pos)
    }

    /// Accumulates one CRLF-terminated line (bounded); `None` until it is complete.
    fn take_line(&mut self, input: &[u8], pos: &mut usize) -> Result<Option<Vec<u8>>, HttpError> {
        let rest = &input[*pos..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                self.line.extend_from_slice(&rest[..i]);
                *pos += i + 1;
                if self.line.len() > MAX_CHUNK_LINE {
                    return Err(HttpError::BadRequest("chunk line too long".into()));
                }
                let mut line = std::mem::take(&mut self.line);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                Ok(Some(line))
            }
            None => {
                self.line.extend_from_slice(rest);
                *pos = input.len();
                if self.line.len() > MAX_CHUNK_LINE {
                    return Err(HttpError::BadRequest("chunk line too long".into()));
                }
                Ok(None)
            }
        }
    }

    fn after_line(&mut self, line: &[u8]) -> Result<ChunkState, HttpError> {
        match self.state {
            ChunkState::SizeLine => {
                let size = chunk_size(line)?;
                Ok(if size == 0 {
                    ChunkState::Trailers
                } else {
                    ChunkState::Data(size)
                })
            }
            ChunkState::DataEnd if line.is_empty() => Ok(ChunkState::SizeLine),
            ChunkState::DataEnd => Err(HttpError::BadRequest(
                "chunk data longer than its size".into(),
            )),
            ChunkState::Trailers if line.is_empty() => Ok(ChunkState::Done),
            ChunkState::Trailers => {
                self.trailer_bytes += line.len();
                if self.trailer_bytes > MAX_TRAILERS {
                    return Err(HttpError::HeaderTooLarge(
                        "chunked trailers larger than 16 KiB",
                    ));
                }
                Ok(ChunkState::Trailers)
            }
            state => Ok(state),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:1".parse().unwrap()
    }

    fn parse(text: &str) -> Result<HeadStatus, HttpError> {
        parse_head(text.as_bytes(), &mut HeadScanner::default(), peer(), false)
    }

    #[test]
    fn complete_head_with_host_and_length() {
        let HeadStatus::Complete {
            request,
            framing,
            head_len,
            ..
        } = parse(
            "POST /a?b=1 HTTP/1.1\r\nHost: Blog.Example.com:8080\r\nContent-Length: 5\r\n\r\nhello",
        )
        .unwrap()
        else {
            panic!("expected complete")
        };
        assert_eq!(request.host, "blog.example.com");
        assert_eq!(request.path(), "/a");
        assert_eq!(request.query(), "b=1");
        assert_eq!(framing, Framing::Length(5));
        assert_eq!(head_len, 72);
    }

    #[test]
    fn refuses_smuggling_shapes() {
        let both =
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(matches!(parse(both), Err(HttpError::BadRequest(_))));
        let two = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
        assert!(matches!(parse(two), Err(HttpError::BadRequest(_))));
        let twice = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n";
        assert!(matches!(parse(twice), Err(HttpError::BadRequest(_))));
        let gzip = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n";
        assert!(matches!(parse(gzip), Err(HttpError::BadRequest(_))));
    }

    #[test]
    fn huge_content_length_is_a_number_not_an_allocation() {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000000000000000000000\r\n\r\n";
        let Ok(HeadStatus::Complete { framing, .. }) = parse(head) else {
            panic!()
        };
        assert_eq!(framing, Framing::Length(u64::MAX));
    }

    #[test]
    fn long_partial_line_is_431() {
        let mut scanner = HeadScanner::default();
        let mut buf = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        buf.extend(std::iter::repeat_n(b'a', MAX_HEAD_LINE - 8));
        assert!(matches!(
            parse_head(&buf, &mut scanner, peer(), false),
            Ok(HeadStatus::Partial)
        ));
        buf.extend_from_slice(b"\r");
        assert!(matches!(
            parse_head(&buf, &mut scanner, peer(), false),
            Ok(HeadStatus::Partial)
        ));
        let mut scanner = HeadScanner::default();
        let mut buf = b"GET / HTTP/1.1\r\nX-Long: ".to_vec();
        buf.extend(std::iter::repeat_n(b'a', MAX_HEAD_LINE - 7));
        assert!(matches!(
            parse_head(&buf, &mut scanner, peer(), false),
            Err(HttpError::HeaderTooLarge(_))
        ));
    }

    #[test]
    fn long_request_line_is_414_and_long_header_line_431() {
        let target = format!("/{}", "p".repeat(MAX_HEAD_LINE));
        // Still arriving, then whole.
        let partial = format!("GET {target}");
        assert!(matches!(parse(&partial), Err(HttpError::UriTooLong)));
        let whole = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        assert!(matches!(parse(&whole), Err(HttpError::UriTooLong)));
        // After an empty line, which a client may send before its request line.
        let after_empty = format!("\r\nGET {target} HTTP/1.1\r\n");
        assert!(matches!(parse(&after_empty), Err(HttpError::UriTooLong)));
        let header = format!("GET / HTTP/1.1\r\nX-Long: {target}");
        assert!(matches!(parse(&header), Err(HttpError::HeaderTooLarge(_))));
        // A request line of exactly the limit is fine.
        let fits = format!(
            "GET /{} HTTP/1.1\r\nHost: a\r\n\r\n",
            "p".repeat(MAX_HEAD_LINE - 14)
        );
        assert!(matches!(parse(&fits), Ok(HeadStatus::Complete { .. })));
    }

    fn complete(text: &str) -> Request {
        match parse(text) {
            Ok(HeadStatus::Complete { request, .. }) => request,
            Ok(HeadStatus::Partial) => panic!("partial: {text}"),
            Err(e) => panic!("{e}: {text}"),
        }
    }

    #[test]
    fn absolute_form_names_the_host() {
        let request = complete(
            "GET http://Blog.localhost:4698/a/b?c=1 HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
        );
        assert_eq!(request.host, "blog.localhost");
        assert_eq!((request.path(), request.query()), ("/a/b", "c=1"));
        let request = complete("GET https://blog.localhost?c=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!((request.target(), request.path()), ("/?c=1", "/"));
        assert_eq!(request.header("host"), Some(&b"x"[..]));
        let request = complete("GET http://blog.localhost HTTP/1.0\r\n\r\n");
        assert_eq!(
            (request.host.as_str(), request.path()),
            ("blog.localhost", "/")
        );
        // The Host header is still required and checked.
        for bad in [
            "GET http://blog.localhost/ HTTP/1.1\r\n\r\n",
            "GET http://blog.localhost/ HTTP/1.1\r\nHost: bad host\r\n\r\n",
            "GET http://bad_host!/ HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(matches!(parse(bad), Err(HttpError::BadRequest(_))), "{bad}");
        }
    }

    #[test]
    fn versions() {
        let request = complete("POST /x HTTP/1.2\r\nHost: A\r\nContent-Length: 2\r\n\r\nhi");
        assert_eq!(request.minor_version, 1);
        assert!(request.keep_alive);
        assert_eq!((request.host.as_str(), request.path()), ("a", "/x"));
        assert_eq!(request.header("content-length"), Some(&b"2"[..]));
        let Ok(HeadStatus::Complete {
            head_len, framing, ..
        }) = parse("POST /x HTTP/1.2\r\nHost: A\r\nContent-Length: 2\r\n\r\nhi")
        else {
            panic!()
        };
        assert_eq!((head_len, framing), (48, Framing::Length(2)));
        // Headers still arriving, then too many of them.
        assert!(matches!(
            parse("GET / HTTP/1.3\r\nHost: a\r\n"),
            Ok(HeadStatus::Partial)
        ));
        let many = format!(
            "GET / HTTP/1.3\r\n{}\r\n",
            "X: 1\r\n".repeat(MAX_HEADERS + 1)
        );
        assert!(matches!(parse(&many), Err(HttpError::HeaderTooLarge(_))));
        for other in [
            "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ] {
            assert!(
                matches!(parse(other), Err(HttpError::VersionNotSupported(_))),
                "{other}"
            );
        }
    }

    #[test]
    fn unknown_methods_are_501_before_their_target_is_read() {
        for line in [
            "BREW / HTTP/1.1\r\nHost: a\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n",
        ] {
            assert!(
                matches!(parse(line), Err(HttpError::NotImplemented(_))),
                "{line}"
            );
        }
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_host(b"localhost:4698").as_deref(), Some("localhost"));
        assert_eq!(parse_host(b"[::1]:80").as_deref(), Some("[::1]"));
        assert_eq!(parse_host(b"a.b.").as_deref(), Some("a.b"));
        assert_eq!(parse_host(b"bad host"), None);
        assert_eq!(parse_host(b"a/b"), None);
        assert_eq!(parse_host(b"a:port"), None);
        assert_eq!(parse_host(b""), None);
        assert_eq!(parse_host(b"a..b"), None);
        assert_eq!(parse_host(b"-a.b"), None);
        assert_eq!(parse_host(b"a-.b"), None);
        assert_eq!(parse_host(b"a.b-"), None);
        assert_eq!(parse_host(b"a.-b"), None);
        assert_eq!(parse_host(b".a"), None);
        assert_eq!(parse_host(b"a.."), None);
        assert_eq!(parse_host(b"."), None);
        assert_eq!(parse_host(b"a:123456"), None);
        assert_eq!(parse_host(b"a:99999"), None);
        assert_eq!(parse_host(b"a:65536"), None);
        assert_eq!(parse_host(b"a:0"), None);
        assert_eq!(parse_host(b"a:00000"), None);
        assert_eq!(parse_host(b"[::1]:0"), None);
        assert_eq!(parse_host(b"[::1]:70000"), None);
        assert_eq!(parse_host(b"a:+80"), None);
        assert_eq!(parse_host(b"a:65535").as_deref(), Some("a"));
        assert_eq!(parse_host(b"a:1").as_deref(), Some("a"));
        assert_eq!(parse_host(b"a:000080").as_deref(), Some("a"));
        assert_eq!(parse_host(b"a:").as_deref(), Some("a"));
        assert_eq!(
            parse_host(b"Blog.Ex_1-2.COM:8080").as_deref(),
            Some("blog.ex_1-2.com")
        );
        assert_eq!(parse_host(b"10.0.0.1").as_deref(), Some("10.0.0.1"));
        assert_eq!(parse_host(b"caf\xc3\xa9.com"), None);
        assert_eq!(parse_host(b"[FE80::1]").as_deref(), Some("[fe80::1]"));
        assert_eq!(parse_host(b"[::1]:").as_deref(), Some("[::1]"));
        assert_eq!(parse_host(b"[::1]x"), None);
        assert_eq!(parse_host(b"[::1"), None);
        assert_eq!(parse_host(b"[]"), None);
        let label = "a".repeat(63);
        assert!(parse_host(label.as_bytes()).is_some());
        assert_eq!(parse_host(format!("{label}a").as_bytes()), None);
        let name = ["a"; 127].join(".");
        assert_eq!(name.len(), 253);
        assert!(parse_host(name.as_bytes()).is_some());
        assert_eq!(parse_host(format!("{name}a").as_bytes()), None);
    }

    #[test]
    fn chunked_in_pieces() {
        let body = b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
        for split in 0..body.len() {
            let mut decoder = ChunkedDecoder::default();
            let mut out = Vec::new();
            let mut sink = |d: &[u8]| {
                out.extend_from_slice(d);
                Ok(())
            };
            let a = decoder.decode(&body[..split], &mut sink).unwrap();
            let b = decoder.decode(&body[a..], &mut sink).unwrap();
            assert!(decoder.is_done());
            assert_eq!(a + b, body.len() - 4, "split {split}");
            assert_eq!(out, b"hello world");
        }
    }

    #[test]
    fn chunked_rejects_bad_size() {
        let mut decoder = ChunkedDecoder::default();
        let err = decoder.decode(b"zz\r\n", &mut |_| Ok(())).unwrap_err();
        assert!(matches!(err, HttpError::BadRequest(_)));
    }

    #[test]
    fn content_length_is_digits_between_ows() {
        assert_eq!(content_length_value(b"38").unwrap(), 38);
        assert_eq!(content_length_value(b" 38\t ").unwrap(), 38);
        assert_eq!(content_length_value(b"007").unwrap(), 7);
        assert_eq!(content_length_value(&[b'9'; 40]).unwrap(), u64::MAX);
        for bad in [
            &b"38\xc2\xa0"[..],
            b"\xc2\xa038",
            b"+38",
            b"-1",
            b"3 8",
            b"38\x0c",
            b"0x26",
            b"",
            b"  ",
        ] {
            assert!(
                matches!(content_length_value(bad), Err(HttpError::BadRequest(_))),
                "{bad:?}"
            );
        }
        let head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 38\u{a0}\r\n\r\n";
        assert!(matches!(parse(head), Err(HttpError::BadRequest(_))));
    }

    #[test]
    fn chunk_sizes_are_hex_digits_only() {
        assert_eq!(chunk_size(b"1a").unwrap(), 26);
        assert_eq!(chunk_size(b"1A;name=value").unwrap(), 26);
        assert_eq!(chunk_size(b"1a \t; ext").unwrap(), 26);
        assert_eq!(chunk_size(b"ffffffffffffffff").unwrap(), u64::MAX);
        assert_eq!(chunk_size(b"0").unwrap(), 0);
        for bad in [
            &b"+1a"[..],
            b"0x1a",
            b"-1",
            b"",
            b";ext",
            b" 1a",
            b"1 a",
            b"1g",
            b"10000000000000000",
        ] {
            assert!(
                matches!(chunk_size(bad), Err(HttpError::BadRequest(_))),
                "{bad:?}"
            );
        }
    }
}
