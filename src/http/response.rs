//! Responses and their serialisation. Every response carries `Content-Length`, since the
//! body is always known in full when the handler returns.

use std::borrow::Cow;
use std::sync::Arc;

/// A source of body bytes produced while the response is being sent (a large file read
/// from the database chunk by chunk), so no response holds a whole large file in memory.
pub trait BodyStream: Send + std::fmt::Debug {
    /// Bytes still to come; exact, since it becomes the `Content-Length`.
    fn remaining(&self) -> u64;
    /// The next piece; `None` once `remaining()` bytes were produced.
    fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>>;
}

#[derive(Debug)]
pub enum Body {
    Empty,
    Static(&'static [u8]),
    /// A byte range of a shared buffer (a `Range` response from the cache), not copied.
    SharedRange(Arc<[u8]>, std::ops::Range<usize>),
    Owned(Vec<u8>),
    Stream(Box<dyn BodyStream>),
}

impl Body {
    /// The bytes of an in-memory body; empty for a stream (see [`Body::len`]).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Body::Empty | Body::Stream(_) => &[],
            Body::Static(b) => b,
            Body::SharedRange(b, range) => &b[range.clone()],
            Body::Owned(b) => b,
        }
    }

    pub fn len(&self) -> u64 {
        match self {
            Body::Stream(s) => s.remaining(),
            other => other.as_bytes().len() as u64,
        }
    }
}

/// A response header's value. Most values are constants or strings the file cache already
/// holds (ETag, MIME type), so building a response allocates only for values computed per
/// request.
#[derive(Debug, Clone)]
pub enum HeaderValue {
    Static(&'static str),
    Shared(Arc<str>),
    Owned(String),
}

impl std::ops::Deref for HeaderValue {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            HeaderValue::Static(s) => s,
            HeaderValue::Shared(s) => s,
            HeaderValue::Owned(s) => s,
        }
    }
}

impl From<&'static str> for HeaderValue {
    fn from(value: &'static str) -> Self {
        HeaderValue::Static(value)
    }
}

impl From<String> for HeaderValue {
    fn from(value: String) -> Self {
        HeaderValue::Owned(value)
    }
}

impl From<Arc<str>> for HeaderValue {
    fn from(value: Arc<str>) -> Self {
        HeaderValue::Shared(value)
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    /// Names are fazt's own (static) or a site script's (owned, checked by
    /// [`Response::header_checked`]).
    pub headers: Vec<(Cow<'static, str>, HeaderValue)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// A `101` to a WebSocket upgrade: the connection's WebSocket phase (issue #15).
    pub(crate) upgrade: Option<Box<super::conn::Upgrade>>,
}

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
            close: false,
            upgrade: None,
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<HeaderValue>) -> Response {
        self.headers.push((Cow::Borrowed(name), value.into()));
        self
    }

    /// Adds a header a site's script set, if it is one a response may carry: a token name,
    /// a value without line breaks, and none of the framing headers this server writes.
    pub fn header_checked(mut self, name: &str, value: &str) -> Result<Response, String> {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            return Err(format!("'{name}' is not a header name"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("the value of header '{name}' has a line break"));
        }
        const FRAMING: [&str; 5] = [
            "content-length",
            "transfer-encoding",
            "connection",
            "keep-alive",
            "date",
        ];
        if FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            return Err(format!("header '{name}' is set by the server"));
        }
        self.headers
            .push((Cow::Owned(name.to_string()), value.to_string().into()));
        Ok(self)
    }

    pub fn body(mut self, content_type: &'static str, body: Body) -> Response {
        self.headers.push((
            Cow::Borrowed("Content-Type"),
            HeaderValue::Static(content_type),
        ));
        self.body = body;
        self
    }

    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        let mut text = value.to_string().into_bytes();
        text.push(b'\n');
        Response::new(status).body("application/json", Body::Owned(text))
    }

    /// An error known only by its status and message, in the one shape of every error
    /// body: `{"error":{"code":…,"message":…}}`, the code derived from the status. An
    /// area's error type goes through [`super::error_response`] instead.
    pub fn error(status: u16, message: &str) -> Response {
        super::error::error_body(status, super::error::status_code(status), message)
    }

    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    /// `Cache-Control: no-store` (RFC 9111 §5.2.2.5): no cache, shared or private, may
    /// keep this response. Replaces any `Cache-Control` the handler set.
    pub fn no_store(mut self) -> Response {
        self.headers
            .retain(|(name, _)| !name.eq_ignore_ascii_case("cache-control"));
        self.header("Cache-Control", "no-store")
    }

    pub fn closing(mut self) -> Response {
        self.close = true;
        self
    }

    #[cfg(test)]
    pub fn get_header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| &**v)
    }

    /// Writes status line and headers. `body_len` is declared even for HEAD, as RFC 9110
    /// allows, so clients can learn the size without the bytes. Appends the pieces directly
    /// (no `fmt` machinery): this runs once per response on the hot path.
    pub fn write_head(&self, out: &mut Vec<u8>, date: &str, keep_alive: bool) {
        out.extend_from_slice(b"HTTP/1.1 ");
        push_decimal(out, u64::from(self.status));
        out.push(b' ');
        out.extend_from_slice(reason(self.status).as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
        out.extend_from_slice(date.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        if !(100..200).contains(&self.status) && self.status != 204 && self.status != 304 {
            out.extend_from_slice(b"Content-Length: ");
            push_decimal(out, self.body.len());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(if self.status == 101 {
            b"Connection: Upgrade\r\n\r\n"
        } else if keep_alive {
            b"Connection: keep-alive\r\n\r\n"
        } else {
            b"Connection: close\r\n\r\n"
        });
    }

    /// An upper bound of the bytes [`Response::write_head`] appends, so the buffer is
    /// allocated once.
    pub fn head_len_bound(&self, date: &str) -> usize {
        // Status line, Date, Content-Length and Connection lines with their longest values.
        const FIXED: usize = 64 + 16 + 40 + 30;
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum();
        FIXED + date.len() + headers
    }
}

/// Appends `n` in decimal.
fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        414 => "URI Too Long",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Status",
    }
}

/// `Date` header value, recomputed at most once a second per event loop.
pub struct DateCache {
    second: u64,
    text: String,
}

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            second: u64::MAX,
            text: String::new(),
        }
    }
}

impl DateCache {
    pub fn get(&mut self) -> &str {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if now != self.second {
            self.second = now;
            self.text = http_date(now);
        }
        &self.text
    }
}

/// IMF-fixdate (RFC 9110 §5.6.7) from Unix seconds.
pub fn http_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm: (year, month, day) of a day since 1970.
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn head_has_length_and_connection() {
        let r = Response::new(200).body("text/plain", Body::Static(b"hi"));
        let mut out = Vec::new();
        r.write_head(&mut out, "D", true);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: D\r\n"));
        assert!(text.contains("Content-Length: 2\r\n"));
        assert!(text.ends_with("Connection: keep-alive\r\n\r\n"));
    }

    #[test]
    fn head_lists_headers_in_order_and_fits_its_bound() {
        let r = Response::new(404)
            .header("ETag", HeaderValue::Shared(Arc::from("\"e\"")))
            .header("Retry-After", 10.to_string())
            .body("text/html", Body::Owned(vec![b'x'; 12_345]));
        let mut out = Vec::new();
        r.write_head(&mut out, "Tue, 14 Nov 2023 22:13:20 GMT", false);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 404 Not Found\r\nDate: Tue, 14 Nov 2023 22:13:20 GMT\r\n\
             ETag: \"e\"\r\nRetry-After: 10\r\nContent-Type: text/html\r\n\
             Content-Length: 12345\r\nConnection: close\r\n\r\n"
        );
        assert!(text.len() <= r.head_len_bound("Tue, 14 Nov 2023 22:13:20 GMT"));
    }

    #[test]
    fn no_store_replaces_any_cache_control() {
        let r = Response::new(200)
            .header("cache-control", "public, max-age=300")
            .header("ETag", "\"e\"")
            .no_store();
        let caching: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Cache-Control"))
            .map(|(_, v)| &**v)
            .collect();
        assert_eq!(caching, ["no-store"]);
        assert_eq!(r.get_header("ETag"), Some("\"e\""));
    }

    #[test]
    fn new_statuses_have_their_reason_phrases() {
        assert_eq!(reason(414), "URI Too Long");
        assert_eq!(reason(501), "Not Implemented");
        assert_eq!(reason(505), "HTTP Version Not Supported");
    }

    #[test]
    fn decimals() {
        for n in [0, 7, 10, 799, 1_000_000, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
    }
}
