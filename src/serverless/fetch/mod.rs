//! A script's outbound `fetch` (issue #14): one blocking HTTP/1.1 exchange per hop, http or
//! https, on the JS worker that runs the script, ended by the invocation's deadline.
//!
//! The one rule that matters is where it may go: every address a host name resolves to is
//! checked with [`forbidden`] before any connection (one bad answer refuses the fetch: a
//! name mixing public and private answers is an attack), the connection goes to a checked
//! address (no second lookup), and each redirect hop is checked the same way. The rest is a
//! plain client: bounded by time and size, no decoding of `Content-Encoding`, `Connection:
//! close` (no pooling: a script's few fetches are not worth a cache of sockets across
//! sites), no proxy from the environment.

mod address;
mod resolve;
#[cfg(test)]
mod tests;
mod url;

pub(crate) use address::forbidden;
pub(crate) use resolve::{Resolve, SystemResolver};

use crate::http::blocking::{BodyTooLarge, Head, ResponseReader};
use rustls::pki_types::ServerName;
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};
use url::Url;

/// What a script asked for.
#[derive(Clone, Debug, Default)]
pub(crate) struct FetchRequest {
    pub url: String,
    /// Empty means GET.
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// The final response, after any redirects.
#[derive(Debug)]
pub(crate) struct FetchResponse {
    pub status: u16,
    /// Lower-case names, in the order received (a repeated header stays repeated).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub url: String,
}

/// The bounds every fetch keeps (from the settings).
#[derive(Clone)]
pub(crate) struct FetchPolicy {
    /// Largest response body (`FAZT_JS_FETCH_MAX`).
    pub max_response_bytes: u64,
    /// The longest one fetch may take; the invocation's deadline cuts it shorter.
    pub timeout: Duration,
    /// Tests only (`FAZT_JS_FETCH_ALLOW_LOOPBACK=1`): 127/8 and ::1 may be fetched.
    pub allow_loopback: bool,
    pub max_redirects: u8,
    /// The CAs https servers are checked against.
    pub roots: Arc<rustls::RootCertStore>,
}

impl Default for FetchPolicy {
    /// 1 MiB, 5 s, no loopback, 5 redirects, Mozilla's CAs.
    fn default() -> FetchPolicy {
        FetchPolicy {
            max_response_bytes: 1024 * 1024,
            timeout: Duration::from_secs(5),
            allow_loopback: false,
            max_redirects: 5,
            roots: Arc::new(rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
        }
    }
}

/// Why a fetch gave no response; `Display` is the message the script's `Error` carries.
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The target (or a redirect's) is an address scripts may not reach.
    Refused(String),
    BadUrl(String),
    /// A method or header the script may not send (not in the contract's list: added).
    BadRequest(String),
    /// The fetch's own time or the invocation's deadline ran out.
    Timeout,
    /// The body is larger than this many bytes.
    TooLarge(u64),
    /// Name lookup, connection, TLS or the server's answer failed.
    Failed(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Refused(m)
            | FetchError::BadUrl(m)
            | FetchError::BadRequest(m)
            | FetchError::Failed(m) => f.write_str(m),
            FetchError::Timeout => f.write_str("fetch timed out"),
            FetchError::TooLarge(limit) => write!(
                f,
                "fetch: the response body is larger than {limit} bytes (FAZT_JS_FETCH_MAX)"
            ),
        }
    }
}

impl std::error::Error for FetchError {}

/// Fetches `req`, following redirects, and ends by `deadline` or `policy.timeout` from
/// now, whichever comes first.
pub(crate) fn fetch(
    req: &FetchRequest,
    policy: &FetchPolicy,
    resolver: &dyn Resolve,
    deadline: Instant,
) -> Result<FetchResponse, FetchError> {
    let deadline = match Instant::now().checked_add(policy.timeout) {
        Some(cap) => deadline.min(cap),
        None => deadline,
    };
    let mut hop = Hop {
        url: Url::parse(&req.url).map_err(FetchError::BadUrl)?,
        method: method(&req.method)?,
        headers: script_headers(&req.headers)?,
        body: &req.body,
    };
    if matches!(hop.method.as_str(), "GET" | "HEAD") && !hop.body.is_empty() {
        return Err(FetchError::BadRequest(format!(
            "fetch: a {} request cannot have a body",
            hop.method
        )));
    }
    let mut client = Client {
        policy,
        resolver,
        deadline,
        tls: None,
    };
    for _ in 0..=policy.max_redirects {
        match client.exchange(&hop)? {
            Answer::Final(response) => return Ok(response),
            Answer::Redirect { status, location } => {
                let next = hop.url.join(&location).map_err(FetchError::BadUrl)?;
                hop.redirect(status, next);
            }
        }
    }
    Err(FetchError::Failed(format!(
        "fetch {}: more than {} redirects",
        req.url, policy.max_redirects
    )))
}

/// One request of the chain.
struct Hop<'a> {
    url: Url,
    method: String,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl Hop<'_> {
    /// The request a redirect leads to (the Fetch standard's rules): 303, and 301/302 after
    /// a POST, become a GET without a body (HEAD stays HEAD); credentials do not follow the
    /// request to another origin.
    fn redirect(&mut self, status: u16, next: Url) {
        let to_get = (status == 303 && self.method != "HEAD")
            || (matches!(status, 301 | 302) && self.method == "POST");
        if to_get {
            self.method = "GET".into();
            self.body = &[];
            self.headers.retain(|(name, _)| !is_body_header(name));
        }
        if !self.url.same_origin(&next) {
            self.headers.retain(|(name, _)| !is_credential(name));
        }
        self.url = next;
    }
}

enum Answer {
    Final(FetchResponse),
    Redirect { status: u16, location: String },
}

struct Client<'a> {
    policy: &'a FetchPolicy,
    resolver: &'a dyn Resolve,
    deadline: Instant,
    /// Made at the first https hop, for the rest of the chain.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Client<'_> {
    /// Sends one request and reads its answer: the final response, or where a redirect
    /// leads (its body is not read).
    fn exchange(&mut self, hop: &Hop) -> Result<Answer, FetchError> {
        let addrs = self.addresses(&hop.url)?;
        let socket = self.connect(&hop.url, &addrs)?;
        let mut stream = self.secure(&hop.url, socket)?;
        let failed = |e: io::Error| self.io_failure(&hop.url, e);
        stream
            .write_all(&request_bytes(hop))
            .and_then(|()| stream.flush())
            .map_err(failed)?;
        let max = usize::try_from(self.policy.max_response_bytes).unwrap_or(usize::MAX);
        let mut reader = ResponseReader::new(max);
        let head = final_head(&mut reader, &mut *stream).map_err(failed)?;
        if let Some(location) = redirect_location(&head) {
            return Ok(Answer::Redirect {
                status: head.status,
                location,
            });
        }
        let response = reader
            .read_body(&mut *stream, head, &hop.method)
            .map_err(failed)?;
        Ok(Answer::Final(FetchResponse {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|(name, value)| (name.to_ascii_lowercase(), value))
                .collect(),
            body: response.body,
            url: hop.url.to_string(),
        }))
    }

    /// The addresses of the URL's host, every one of them allowed.
    fn addresses(&self, url: &Url) -> Result<Vec<SocketAddr>, FetchError> {
        if let Some(ip) = url.ip() {
            return match forbidden(ip, self.policy.allow_loopback) {
                Some(why) => Err(FetchError::Refused(format!("fetch refused: {ip} is {why}"))),
                None => Ok(vec![SocketAddr::new(ip, url.port)]),
            };
        }
        let addrs = self
            .resolver
            .resolve_by(&url.host, url.port, self.deadline)
            .map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => FetchError::Timeout,
                _ => FetchError::Failed(format!("fetch {url}: cannot resolve {}: {e}", url.host)),
            })?;
        if addrs.is_empty() {
            return Err(FetchError::Failed(format!(
                "fetch {url}: {} has no addresses",
                url.host
            )));
        }
        for addr in &addrs {
            if let Some(why) = forbidden(addr.ip(), self.policy.allow_loopback) {
                return Err(FetchError::Refused(format!(
                    "fetch refused: {} resolves to {}, {why}",
                    url.host,
                    addr.ip()
                )));
            }
        }
        Ok(addrs)
    }

    /// A connection to the first of `addrs` that accepts, within the time left.
    fn connect(&self, url: &Url, addrs: &[SocketAddr]) -> Result<TcpStream, FetchError> {
        let mut last = None;
        for addr in addrs {
            let left = left(self.deadline).ok_or(FetchError::Timeout)?;
            match TcpStream::connect_timeout(addr, left) {
                Ok(socket) => {
                    // The request goes in one write; a lost Nagle delay is all this saves.
                    let _ = socket.set_nodelay(true);
                    return Ok(socket);
                }
                Err(e) => last = Some((addr, e)),
            }
        }
        match last {
            Some((_, e)) if is_timeout(&e) => Err(FetchError::Timeout),
            Some((addr, e)) => Err(FetchError::Failed(format!(
                "fetch {url}: cannot connect to {addr}: {e}"
            ))),
            None => Err(FetchError::Timeout),
        }
    }

    /// The socket as is for http; TLS over it for https, the certificate checked for the
    /// URL's host (sent as SNI).
    fn secure(&mut self, url: &Url, socket: TcpStream) -> Result<Box<dyn Stream>, FetchError> {
        let socket = Timed {
            socket,
            deadline: self.deadline,
        };
        if url.scheme == url::Scheme::Http {
            return Ok(Box::new(socket));
        }
        let config = match &self.tls {
            Some(config) => Arc::clone(config),
            None => Arc::clone(self.tls.insert(tls_config(self.policy)?)),
        };
        let name = ServerName::try_from(url.host.clone())
            .map_err(|e| FetchError::BadUrl(format!("fetch: bad URL {url}: {e}")))?;
        let session = rustls::ClientConnection::new(config, name)
            .map_err(|e| FetchError::Failed(format!("fetch {url}: TLS: {e}")))?;
        Ok(Box::new(rustls::StreamOwned::new(session, socket)))
    }

    fn io_failure(&self, url: &Url, e: io::Error) -> FetchError {
        if BodyTooLarge::is(&e) {
            FetchError::TooLarge(self.policy.max_response_bytes)
        } else if is_timeout(&e) {
            FetchError::Timeout
        } else {
            FetchError::Failed(format!("fetch {url}: {e}"))
        }
    }
}

fn tls_config(policy: &FetchPolicy) -> Result<Arc<rustls::ClientConfig>, FetchError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| FetchError::Failed(format!("fetch: TLS setup: {e}")))?
        .with_root_certificates(Arc::clone(&policy.roots))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A socket whose every read and write ends by the fetch's deadline: a per-call timeout
/// alone would let a server that sends a byte a second hold the worker for ever.
struct Timed {
    socket: TcpStream,
    deadline: Instant,
}

impl Timed {
    fn time_left(&self) -> io::Result<Duration> {
        left(self.deadline).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))
    }
}

impl Read for Timed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.socket.set_read_timeout(Some(self.time_left()?))?;
        self.socket.read(buf)
    }
}

impl Write for Timed {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.socket.set_write_timeout(Some(self.time_left()?))?;
        self.socket.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.socket.flush()
    }
}

/// The time until `deadline`, `None` once it has passed.
fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The head of the final response, after any interim (1xx) ones.
fn final_head(reader: &mut ResponseReader, stream: &mut dyn Stream) -> io::Result<Head> {
    loop {
        let head = reader.read_head(stream)?;
        if !head.is_interim() {
            return Ok(head);
        }
    }
}

/// Where a redirect response leads; `None` for any other response (a 3xx without
/// `Location` is given to the script as it is).
fn redirect_location(head: &Head) -> Option<String> {
    if !matches!(head.status, 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    head.headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("location"))
        .map(|(_, value)| value.clone())
}

/// The method, upper-cased when it is one of the usual ones (as `fetch` in browsers does,
/// and PATCH too); CONNECT, TRACE and TRACK are refused, as there.
fn method(given: &str) -> Result<String, FetchError> {
    if given.is_empty() {
        return Ok("GET".into());
    }
    let upper = given.to_ascii_uppercase();
    match upper.as_str() {
        "CONNECT" | "TRACE" | "TRACK" => Err(FetchError::BadRequest(format!(
            "fetch: the {upper} method is not allowed"
        ))),
        "DELETE" | "GET" | "HEAD" | "OPTIONS" | "PATCH" | "POST" | "PUT" => Ok(upper),
        _ if is_token(given) => Ok(given.to_string()),
        _ => Err(FetchError::BadRequest(format!(
            "fetch: bad method {given:?}"
        ))),
    }
}

/// The script's headers that are sent: names checked as tokens, values without CR, LF or
/// other control characters; those fazt sets itself are dropped (as a browser ignores
/// them), and `Accept-Encoding` too, since the body is not decoded.
fn script_headers(given: &[(String, String)]) -> Result<Vec<(String, String)>, FetchError> {
    let mut headers = Vec::with_capacity(given.len());
    for (name, value) in given {
        if !is_token(name) {
            return Err(FetchError::BadRequest(format!(
                "fetch: bad header name {name:?}"
            )));
        }
        let value = value.trim_matches([' ', '\t']);
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(FetchError::BadRequest(format!(
                "fetch: header {name} has a control character in its value"
            )));
        }
        if !is_set_by_fazt(name) {
            headers.push((name.clone(), value.to_string()));
        }
    }
    Ok(headers)
}

fn is_set_by_fazt(name: &str) -> bool {
    const OURS: &[&str] = &[
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "accept-encoding",
    ];
    OURS.iter().any(|ours| name.eq_ignore_ascii_case(ours))
}

fn is_body_header(name: &str) -> bool {
    [
        "content-type",
        "content-encoding",
        "content-language",
        "content-location",
    ]
    .iter()
    .any(|h| name.eq_ignore_ascii_case(h))
}

fn is_credential(name: &str) -> bool {
    ["authorization", "cookie", "proxy-authorization"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
}

/// RFC 9110 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// The request head and body, in one buffer for one write.
fn request_bytes(hop: &Hop) -> Vec<u8> {
    let has = |name: &str| {
        hop.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    };
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}\r\n",
        hop.method,
        hop.url.target,
        hop.url.host_header()
    );
    for (name, value) in &hop.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !has("user-agent") {
        head.push_str(concat!(
            "User-Agent: fazt/",
            env!("CARGO_PKG_VERSION"),
            "\r\n"
        ));
    }
    if !has("accept") {
        head.push_str("Accept: */*\r\n");
    }
    head.push_str("Accept-Encoding: identity\r\nConnection: close\r\n");
    // Servers want a length on a POST even when it is empty (else 411).
    if !hop.body.is_empty() || matches!(hop.method.as_str(), "POST" | "PUT" | "PATCH") {
        head.push_str(&format!("Content-Length: {}\r\n", hop.body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(hop.body);
    bytes
}
