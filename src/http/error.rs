//! The one mapping of errors to responses. Each area keeps its own error type and says,
//! by implementing [`ResponseError`], what status, machine code and `Retry-After` it
//! means; [`error_response`] is the only place that turns one into a response, logs
//! server-side faults and counts shed requests. Every JSON error body in fazt has the
//! shape `{"error":{"code":"…","message":"…"}}`.

use std::fmt;
use std::io;

use super::{HttpError, Response};
use crate::platform::disk::DiskError;
use crate::platform::metrics::METRICS;
use crate::platform::sys::ErrnoClass;

/// An error that can be answered. The message is its `Display`: one sentence saying what
/// failed and, where there is one, what to do about it.
pub trait ResponseError: fmt::Display {
    /// The HTTP status.
    fn status(&self) -> u16;

    /// A stable machine-readable name (snake case); clients branch on it, not the message.
    fn code(&self) -> &'static str {
        status_code(self.status())
    }

    /// Seconds a client should wait before retrying, sent as `Retry-After`.
    fn retry_after_secs(&self) -> Option<u32> {
        None
    }

    /// The methods the resource does allow, sent as `Allow` (405 only).
    fn allow(&self) -> Option<&'static str> {
        None
    }

    /// Whether this is the server's fault and worth an error line in the log. 503 (load)
    /// and 507 (disk) are conditions the metrics and health report, not bugs; a flood of
    /// them must not flood the log.
    fn is_server_fault(&self) -> bool {
        let status = self.status();
        status >= 500 && status != 503 && status != 507
    }

    /// What the log says instead of the message, when the client is shown less.
    fn log_detail(&self) -> Option<String> {
        None
    }
}

/// The response for `error`: its status, the JSON body, `Retry-After` and `Allow` when it
/// has them. Logs server-side faults; counts 503s as shed requests.
pub fn error_response(error: &dyn ResponseError) -> Response {
    let status = error.status();
    if error.is_server_fault() {
        match error.log_detail() {
            Some(detail) => log::error!("answered {status} ({}): {detail}", error.code()),
            None => log::error!("answered {status} ({}): {error}", error.code()),
        }
    }
    let mut response = error_body(status, error.code(), &error.to_string());
    if let Some(secs) = error.retry_after_secs() {
        response = response.header("Retry-After", secs.to_string());
    }
    if let Some(allow) = error.allow() {
        response = response.header("Allow", allow);
    }
    if status == 503 {
        METRICS.shed_requests.inc();
    }
    response
}

/// `{"error":{"code":…,"message":…}}` with `status`; nothing logged or counted.
pub(crate) fn error_body(status: u16, code: &str, message: &str) -> Response {
    Response::json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

/// The code of an error known only by its status (see [`Response::error`]).
pub(crate) fn status_code(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        408 => "request_timeout",
        409 => "conflict",
        413 => "payload_too_large",
        414 => "uri_too_long",
        415 => "unsupported_media_type",
        416 => "range_not_satisfiable",
        417 => "expectation_failed",
        426 => "upgrade_required",
        429 => "rate_limited",
        431 => "header_too_large",
        500 => "internal_error",
        501 => "not_implemented",
        503 => "unavailable",
        505 => "http_version_not_supported",
        507 => "insufficient_storage",
        _ if status < 500 => "client_error",
        _ => "server_error",
    }
}

/// A failure on a public route (a site's files, a short link) whose cause stays in the
/// log: visitors are told what failed, never which table or SQLite error.
#[derive(Debug)]
pub(crate) struct Concealed {
    what: String,
    detail: String,
}

impl Concealed {
    /// `what` failed (e.g. "reading the site's files") because of `cause`.
    pub(crate) fn new(what: impl Into<String>, cause: impl fmt::Display) -> Concealed {
        Concealed {
            what: what.into(),
            detail: cause.to_string(),
        }
    }
}

impl fmt::Display for Concealed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed; see the server log", self.what)
    }
}

impl ResponseError for Concealed {
    fn status(&self) -> u16 {
        500
    }

    fn log_detail(&self) -> Option<String> {
        Some(format!("{}: {}", self.what, self.detail))
    }
}

/// A full filesystem is `disk_full` (507) wherever it is met; anything else is our fault.
pub(crate) fn io_status(error: &io::Error) -> (u16, &'static str) {
    match ErrnoClass::of(error) {
        ErrnoClass::DiskFull => (507, "disk_full"),
        _ => (500, "io_error"),
    }
}

impl ResponseError for HttpError {
    fn status(&self) -> u16 {
        HttpError::status(self)
    }

    fn code(&self) -> &'static str {
        match self {
            HttpError::InsufficientStorage(_) => "disk_full",
            other => status_code(other.status()),
        }
    }

    /// Only a failure to store a body is ours; 501 and 505 answer what the client sent.
    fn is_server_fault(&self) -> bool {
        matches!(self, HttpError::Internal(_))
    }
}

impl ResponseError for DiskError {
    fn status(&self) -> u16 {
        match self {
            DiskError::Full { .. } => 507,
            DiskError::Unreadable { source, .. } => io_status(source).0,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            DiskError::Full { .. } => "disk_full",
            DiskError::Unreadable { source, .. } => io_status(source).1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Busy;

    impl fmt::Display for Busy {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("busy; try again")
        }
    }

    impl ResponseError for Busy {
        fn status(&self) -> u16 {
            503
        }
        fn retry_after_secs(&self) -> Option<u32> {
            Some(3)
        }
    }

    fn body(response: &Response) -> serde_json::Value {
        serde_json::from_slice(response.body.as_bytes()).expect("JSON body")
    }

    #[test]
    fn one_shape_with_retry_after_and_the_shed_counter() {
        let shed = METRICS.shed_requests.get();
        let response = error_response(&Busy);
        assert_eq!(response.status, 503);
        assert_eq!(
            response.get_header("Content-Type"),
            Some("application/json")
        );
        assert_eq!(response.get_header("Retry-After"), Some("3"));
        assert_eq!(
            body(&response),
            serde_json::json!({"error": {"code": "unavailable", "message": "busy; try again"}})
        );
        assert!(METRICS.shed_requests.get() > shed);
    }

    #[test]
    fn response_error_has_the_same_shape() {
        let response = Response::error(405, "use POST");
        assert_eq!(
            body(&response),
            serde_json::json!({"error": {"code": "method_not_allowed", "message": "use POST"}})
        );
        assert_eq!(response.get_header("Retry-After"), None);
    }

    #[test]
    fn codes_follow_statuses() {
        for (status, code) in [
            (400, "bad_request"),
            (401, "unauthorized"),
            (403, "forbidden"),
            (404, "not_found"),
            (405, "method_not_allowed"),
            (409, "conflict"),
            (413, "payload_too_large"),
            (414, "uri_too_long"),
            (415, "unsupported_media_type"),
            (429, "rate_limited"),
            (431, "header_too_large"),
            (500, "internal_error"),
            (501, "not_implemented"),
            (503, "unavailable"),
            (505, "http_version_not_supported"),
            (507, "insufficient_storage"),
            (418, "client_error"),
            (599, "server_error"),
        ] {
            assert_eq!(status_code(status), code, "{status}");
        }
    }

    #[test]
    fn server_faults_are_500s_but_not_load_or_disk() {
        let fault = |status| HttpError::Internal(format!("{status}")).is_server_fault();
        assert!(fault(500));
        assert!(!HttpError::InsufficientStorage("full".into()).is_server_fault());
        assert!(!Busy.is_server_fault());
        assert!(!HttpError::BadRequest("x".into()).is_server_fault());
        // 501 and 505 answer what the client sent: no error line in the log.
        assert!(!HttpError::NotImplemented("BREW".into()).is_server_fault());
        assert!(!HttpError::VersionNotSupported("HTTP/2.0".into()).is_server_fault());
    }

    #[test]
    fn protocol_errors_keep_their_statuses() {
        let cases = [
            (HttpError::BadRequest("bad".into()), 400, "bad_request"),
            (HttpError::HeaderTooLarge("big"), 431, "header_too_large"),
            (HttpError::UriTooLong, 414, "uri_too_long"),
            (
                HttpError::NotImplemented("BREW".into()),
                501,
                "not_implemented",
            ),
            (
                HttpError::VersionNotSupported("HTTP/2.0".into()),
                505,
                "http_version_not_supported",
            ),
            (
                HttpError::PayloadTooLarge { limit: 10 },
                413,
                "payload_too_large",
            ),
            (HttpError::HeadTimeout, 408, "request_timeout"),
            (HttpError::BodyTimeout, 408, "request_timeout"),
            (HttpError::ExpectationFailed, 417, "expectation_failed"),
            (HttpError::InsufficientStorage("x".into()), 507, "disk_full"),
            (HttpError::Internal("x".into()), 500, "internal_error"),
        ];
        for (error, status, code) in cases {
            let response = error.to_response();
            assert_eq!(response.status, status, "{error}");
            assert!(response.close, "{error}");
            let body = body(&response);
            assert_eq!(body["error"]["code"], code, "{error}");
            assert_eq!(body["error"]["message"], error.to_string());
        }
    }

    #[test]
    fn disk_errors() {
        let full = DiskError::Full {
            path: "/data".into(),
            used_percent: 95,
            threshold: 90,
        };
        assert_eq!((full.status(), full.code()), (507, "disk_full"));
        assert!(full.to_string().contains("/data is 95% full"), "{full}");
        let unreadable = DiskError::Unreadable {
            path: "/data".into(),
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        assert_eq!((unreadable.status(), unreadable.code()), (500, "io_error"));
        assert!(unreadable.is_server_fault());
        assert!(unreadable
            .to_string()
            .starts_with("checking free space on /data: "));
    }

    #[test]
    fn concealed_faults_keep_their_cause_out_of_the_body() {
        let error = Concealed::new("reading the site's files", "no such table: files");
        assert_eq!(error.status(), 500);
        assert!(error.is_server_fault());
        assert_eq!(
            error.log_detail().as_deref(),
            Some("reading the site's files: no such table: files")
        );
        let body = body(&error_response(&error));
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(
            body["error"]["message"],
            "reading the site's files failed; see the server log"
        );
    }

    #[test]
    fn io_statuses_use_the_classifier() {
        let status = |errno| io_status(&io::Error::from_raw_os_error(errno));
        assert_eq!(status(libc::ENOSPC), (507, "disk_full"));
        assert_eq!(status(libc::EDQUOT), (507, "disk_full"));
        assert_eq!(status(libc::EFBIG), (500, "io_error"));
        assert_eq!(status(libc::EIO), (500, "io_error"));
    }
}
