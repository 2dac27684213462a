//! Our own HTTP/1.1 layer (DESIGN D1): parsing with limits, the per-connection state
//! machine, and response serialisation. Handlers see a complete [`Request`] and return a
//! [`Response`]; everything about sockets stays in `conn` and `server::event_loop`.

pub(crate) mod blocking;
pub(crate) mod cap;
pub(crate) mod conn;
pub(crate) mod error;
pub(crate) mod limiter;
mod line;
pub mod multipart;
pub(crate) mod parse;
pub(crate) mod proxies;
pub(crate) mod request;
pub(crate) mod response;
pub(crate) mod spool;
pub(crate) mod tls;
pub(crate) mod ws;
pub mod x509;

pub(crate) use error::error_response;
pub use error::ResponseError;
pub(crate) use request::{Method, Request};
pub(crate) use response::{Body, Response};

/// `GET /health`: liveness, answered by whichever thread read the request (a core thread
/// or the admin thread), so it lives below both. Never cached: a stored
/// "ok" would hide a server that has since gone down.
pub fn liveness() -> Response {
    Response::new(200)
        .body("text/plain; charset=utf-8", Body::Static(b"ok\n"))
        .no_store()
}

/// Protocol-level failures, each answered with its status and then the connection closes.
#[derive(Debug)]
pub enum HttpError {
    BadRequest(String),
    /// The request line is longer than the head line limit (414).
    UriTooLong,
    HeaderTooLarge(&'static str),
    PayloadTooLarge {
        limit: u64,
    },
    HeadTimeout,
    BodyTimeout,
    /// The body kept arriving, but slower on average than the floor (bytes/s) allows.
    BodyTooSlow {
        min_rate: u64,
    },
    ExpectationFailed,
    /// A method fazt implements on no route (501); the method as sent, shortened.
    NotImplemented(String),
    /// An HTTP major version other than 1 (505), such as `HTTP/2.0` or the HTTP/2
    /// connection preface; the version as sent.
    VersionNotSupported(String),
    /// The disk filled up while a body was being stored (507).
    InsufficientStorage(String),
    /// Storing the body failed on our side (500).
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::UriTooLong => 414,
            HttpError::HeaderTooLarge(_) => 431,
            HttpError::PayloadTooLarge { .. } => 413,
            HttpError::HeadTimeout | HttpError::BodyTimeout | HttpError::BodyTooSlow { .. } => 408,
            HttpError::ExpectationFailed => 417,
            HttpError::NotImplemented(_) => 501,
            HttpError::VersionNotSupported(_) => 505,
            HttpError::InsufficientStorage(_) => 507,
            HttpError::Internal(_) => 500,
        }
    }

    pub fn to_response(&self) -> Response {
        error_response(self).closing()
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::BadRequest(m)
            | HttpError::InsufficientStorage(m)
            | HttpError::Internal(m) => f.write_str(m),
            HttpError::HeaderTooLarge(m) => f.write_str(m),
            HttpError::PayloadTooLarge { limit } => {
                write!(
                    f,
                    "request body is larger than this route allows ({limit} bytes)"
                )
            }
            HttpError::HeadTimeout => f.write_str("request head not received in time"),
            HttpError::BodyTimeout => {
                f.write_str("request body stalled: no bytes received in time")
            }
            HttpError::BodyTooSlow { min_rate } => write!(
                f,
                "request body arrived too slowly: slower than {min_rate} bytes/s on average"
            ),
            HttpError::ExpectationFailed => f.write_str("only 'Expect: 100-continue' is supported"),
            HttpError::UriTooLong => f.write_str(
                "the request target is too long (the request line is longer than 8 KiB)",
            ),
            HttpError::NotImplemented(method) => write!(
                f,
                "method {method} is not implemented (fazt implements GET, HEAD, POST, PUT, \
                 PATCH, DELETE and OPTIONS)"
            ),
            HttpError::VersionNotSupported(version) => write!(
                f,
                "{version} is not supported on this port; fazt speaks HTTP/1.1 (and HTTP/1.0)"
            ),
        }
    }
}
