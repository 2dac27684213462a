//! Our own HTTP/1.1 layer (DESIGN D1): parsing with limits, the per-connection state
//! machine, and response serialisation. Handlers see a complete [`Request`] and return a
//! [`Response`]; everything about sockets stays in `conn` and `server::event_loop`.

pub mod cap;
pub mod conn;
pub mod parse;
pub mod request;
pub mod response;
pub mod spool;

pub use request::{Method, Request};
pub use response::{Body, HeaderValue, Response};

/// `GET /health`: liveness, answered by whichever thread read the request (a core thread
/// or the admin thread), so it lives below both.
pub fn liveness() -> Response {
    Response::new(200).body("text/plain; charset=utf-8", Body::Static(b"ok\n"))
}

/// Protocol-level failures, each answered with its status and then the connection closes.
#[derive(Debug)]
pub enum HttpError {
    BadRequest(String),
    HeaderTooLarge(&'static str),
    PayloadTooLarge {
        limit: u64,
    },
    HeadTimeout,
    BodyTimeout,
    ExpectationFailed,
    /// The disk filled up while a body was being stored (507).
    InsufficientStorage(String),
    /// Storing the body failed on our side (500).
    Internal(String),
}

impl HttpError {
    pub fn status(&self) -> u16 {
        match self {
            HttpError::BadRequest(_) => 400,
            HttpError::HeaderTooLarge(_) => 431,
            HttpError::PayloadTooLarge { .. } => 413,
            HttpError::HeadTimeout | HttpError::BodyTimeout => 408,
            HttpError::ExpectationFailed => 417,
            HttpError::InsufficientStorage(_) => 507,
            HttpError::Internal(_) => 500,
        }
    }

    pub fn message(&self) -> String {
        match self {
            HttpError::BadRequest(m)
            | HttpError::InsufficientStorage(m)
            | HttpError::Internal(m) => m.clone(),
            HttpError::HeaderTooLarge(m) => (*m).to_string(),
            HttpError::PayloadTooLarge { limit } => {
                format!("request body is larger than this route allows ({limit} bytes)")
            }
            HttpError::HeadTimeout => "request head not received in time".to_string(),
            HttpError::BodyTimeout => "request body stalled: no bytes received in time".to_string(),
            HttpError::ExpectationFailed => "only 'Expect: 100-continue' is supported".to_string(),
        }
    }

    pub fn to_response(&self) -> Response {
        Response::error(self.status(), &self.message()).closing()
    }
}
