//! The response path for stored files: strong ETag from the content hash,
//! `Last-Modified` from the deployment, the preconditions of RFC 9110 §13 (`If-Match`,
//! `If-Unmodified-Since` → 412; `If-None-Match`, `If-Modified-Since` → 304), single
//! `Range` → 206/416, `HEAD` (the connection omits the body), `Content-Type` and
//! `Cache-Control`. Sites, the built-in pages and the admin assets all answer through it.

use crate::hosting::encoding::Encoding;
use crate::hosting::rules::{content_range, parse_range, unsatisfied_range, RangeOutcome};
use crate::http::{Body, Method, Request, Response};
use std::fmt;
use std::sync::Arc;

/// What the response path needs to know about a file, besides its bytes. The strings are
/// shared with the cache entry, so answering from the cache copies none of them.
#[derive(Clone, Debug)]
pub struct FileMeta {
    /// Quoted strong ETag: the hex sha-256 of the content.
    pub etag: Arc<str>,
    pub mime: Arc<str>,
    pub cache_control: &'static str,
    pub size: u64,
    /// The representation sent (`Content-Encoding` unless identity).
    pub encoding: Encoding,
    /// Whether the file has compressed variants: then every response about it carries
    /// `Vary: Accept-Encoding`.
    pub vary: bool,
    /// When the file was last modified (unix seconds, and that as an HTTP-date), for
    /// `Last-Modified` and the date preconditions; None for files of no deployment (the
    /// admin assets, the built-in 404 page).
    pub modified: Option<Modified>,
}

/// A file's modification time, as unix seconds and as the HTTP-date sent for it.
#[derive(Clone, Debug)]
pub struct Modified {
    pub unix: u64,
    pub http_date: Arc<str>,
}

#[cfg(test)]
/// The ETag of some bytes (hashes them).
pub fn etag_of(bytes: &[u8]) -> String {
    use sha2::Digest;
    etag_for(&sha2::Sha256::digest(bytes).into(), Encoding::Identity)
}

/// The ETag of the `encoding` representation of content with this sha-256: `"<hex>"` for the
/// identity bytes, `"<hex>-br"` / `"<hex>-gzip"` for a variant, so `If-None-Match` matches
/// only the representation the client holds.
pub fn etag_for(sha256: &[u8; 32], encoding: Encoding) -> String {
    let hex = crate::platform::units::hex(sha256);
    match encoding {
        Encoding::Identity => format!("\"{hex}\""),
        other => format!("\"{hex}-{}\"", other.token()),
    }
}

/// Answers GET or HEAD for a file with `status` (200, or 404 for not-found pages, which
/// take no conditional or range handling and carry no validators: a generated error page
/// is not a representation a client should revalidate). `body(start, len)` produces the
/// bytes of the part to send, so a range of a large file is read from storage, not
/// sliced from memory.
pub fn respond(
    request: &Request,
    meta: &FileMeta,
    status: u16,
    body: impl FnOnce(u64, u64) -> Body,
) -> Response {
    if !matches!(request.method, Method::Get | Method::Head) {
        return Response::error(405, "only GET and HEAD are allowed here")
            .header("Allow", "GET, HEAD");
    }
    // Room for every header a file response carries (Cache-Control, Vary, ETag,
    // Last-Modified, Accept-Ranges, Content-Range, Content-Type, Content-Encoding), so none
    // of them reallocates.
    let mut base = Response {
        headers: Vec::with_capacity(8),
        ..Response::new(status)
    }
    .header("Cache-Control", meta.cache_control);
    if meta.vary {
        base = base.header("Vary", "Accept-Encoding");
    }
    if status != 200 {
        return with_body(base, meta, body(0, meta.size));
    }
    let mut base = base.header("ETag", meta.etag.clone());
    if let Some(modified) = &meta.modified {
        base = base.header("Last-Modified", modified.http_date.clone());
    }
    match evaluate_preconditions(request, meta) {
        Precondition::Proceed => {}
        Precondition::NotModified => return base.with_status(304),
        Precondition::Failed(failed) => return crate::http::error_response(&failed),
    }
    let base = base.header("Accept-Ranges", "bytes");
    // If-Range (RFC 9110 §13.1.5): a range only of the version the client already has;
    // anything but an exact strong match gets the whole current file.
    let range = match request.header_str("if-range") {
        Some(validator) if validator != &*meta.etag => None,
        _ => request.header_str("range"),
    };
    match parse_range(range, meta.size) {
        RangeOutcome::Full => with_body(base, meta, body(0, meta.size)),
        RangeOutcome::Partial {
            start,
            end_inclusive,
        } => {
            let part = body(start, end_inclusive - start + 1);
            let base = base.with_status(206).header(
                "Content-Range",
                content_range(start, end_inclusive, meta.size),
            );
            with_body(base, meta, part)
        }
        RangeOutcome::Unsatisfiable => Response::error(416, "requested range is outside the file")
            .header("Content-Range", unsatisfied_range(meta.size)),
    }
}

fn with_body(response: Response, meta: &FileMeta, body: Body) -> Response {
    let mut response = response;
    response
        .headers
        .push(("Content-Type".into(), meta.mime.clone().into()));
    if meta.encoding != Encoding::Identity {
        response = response.header("Content-Encoding", meta.encoding.token());
    }
    response.body = body;
    response
}

/// What the preconditions of a GET or HEAD for an existing file decide.
#[derive(Debug, PartialEq, Eq)]
enum Precondition {
    Proceed,
    NotModified,
    Failed(PreconditionFailed),
}

/// RFC 9110 §13.2.2, steps 1–4, in that order: `If-Match`, else `If-Unmodified-Since`;
/// then `If-None-Match`, else `If-Modified-Since`. A date that is not a valid HTTP-date,
/// or a date header sent more than once, is ignored, as are the date preconditions of a
/// file without a modification time.
fn evaluate_preconditions(request: &Request, meta: &FileMeta) -> Precondition {
    // Most requests have none of the four: one pass over the names instead of four.
    let conditional = request
        .headers()
        .any(|(name, _)| name.len() > 3 && name[..3].eq_ignore_ascii_case(b"if-"));
    if !conditional {
        return Precondition::Proceed;
    }
    let modified = meta.modified.as_ref().map(|m| m.unix);
    if let Some(tags) = list_header(request, "if-match") {
        if !if_match(&tags, &meta.etag) {
            return Precondition::Failed(PreconditionFailed::IfMatch);
        }
    } else if let (Some(date), Some(modified)) =
        (date_header(request, "if-unmodified-since"), modified)
    {
        if modified > date {
            return Precondition::Failed(PreconditionFailed::IfUnmodifiedSince);
        }
    }
    if let Some(tags) = list_header(request, "if-none-match") {
        if if_none_match_hits(&tags, &meta.etag) {
            return Precondition::NotModified;
        }
    } else if let (Some(date), Some(modified)) =
        (date_header(request, "if-modified-since"), modified)
    {
        if modified <= date {
            return Precondition::NotModified;
        }
    }
    Precondition::Proceed
}

/// The members of a list header, every line of it joined (RFC 9110 §5.3); None when the
/// request has no such header.
fn list_header<'r>(request: &'r Request, name: &str) -> Option<Vec<&'r str>> {
    let mut present = false;
    let mut members = Vec::new();
    for (field, value) in request.headers() {
        if !field.eq_ignore_ascii_case(name.as_bytes()) {
            continue;
        }
        present = true;
        // A value that is not text matches no ETag of ours; it still counts as present.
        let value = std::str::from_utf8(value).unwrap_or("");
        members.extend(value.split(',').map(str::trim).filter(|m| !m.is_empty()));
    }
    present.then_some(members)
}

/// The unix seconds of a date header sent exactly once with a valid HTTP-date (any of the
/// three forms of RFC 9110 §5.6.7); None otherwise, which means "ignore it".
fn date_header(request: &Request, name: &str) -> Option<u64> {
    let mut values = request
        .headers()
        .filter(|(field, _)| field.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, value)| value);
    let value = std::str::from_utf8(values.next()?).ok()?;
    if values.next().is_some() {
        return None;
    }
    let time = httpdate::parse_http_date(value.trim()).ok()?;
    time.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// `If-Match` (RFC 9110 §13.1.1): `*` matches any existing file, else some listed tag must
/// be strongly equal to ours (a weak tag `W/"…"` never is).
fn if_match(tags: &[&str], etag: &str) -> bool {
    tags.iter().any(|tag| *tag == "*" || *tag == etag)
}

/// `If-None-Match` (RFC 9110 §13.1.2): weak comparison, `*` matches any existing file.
fn if_none_match_hits(tags: &[&str], etag: &str) -> bool {
    tags.iter()
        .any(|tag| *tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

/// A precondition of the request is false for the file: 412 (RFC 9110 §15.5.13).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PreconditionFailed {
    IfMatch,
    IfUnmodifiedSince,
}

impl crate::http::ResponseError for PreconditionFailed {
    fn status(&self) -> u16 {
        412
    }

    fn code(&self) -> &'static str {
        "precondition_failed"
    }
}

impl fmt::Display for PreconditionFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PreconditionFailed::IfMatch => "If-Match names no current version of this file",
            PreconditionFailed::IfUnmodifiedSince => {
                "the file was modified after the If-Unmodified-Since date"
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse::{parse_head, HeadScanner, HeadStatus};

    /// 2023-11-14 22:13:20 UTC.
    const MODIFIED: u64 = 1_700_000_000;
    const ETAG: &str = "\"abc\"";

    fn request(headers: &[(&str, &str)]) -> Request {
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let head = format!("GET /f HTTP/1.1\r\nHost: a\r\n{extra}\r\n");
        let peer = "127.0.0.1:1".parse().unwrap();
        match parse_head(head.as_bytes(), &mut HeadScanner::default(), peer, false) {
            Ok(HeadStatus::Complete { request, .. }) => request,
            _ => panic!("not a complete head: {head:?}"),
        }
    }

    fn meta(modified: Option<u64>) -> FileMeta {
        FileMeta {
            etag: Arc::from(ETAG),
            mime: Arc::from("text/plain"),
            cache_control: "no-cache",
            size: 3,
            encoding: Encoding::Identity,
            vary: false,
            modified: modified.map(|unix| Modified {
                unix,
                http_date: Arc::from(crate::http::response::http_date(unix)),
            }),
        }
    }

    fn decide(headers: &[(&str, &str)]) -> Precondition {
        evaluate_preconditions(&request(headers), &meta(Some(MODIFIED)))
    }

    const AT: &str = "Tue, 14 Nov 2023 22:13:20 GMT";
    const BEFORE: &str = "Tue, 14 Nov 2023 22:13:19 GMT";
    const AFTER: &str = "Tue, 14 Nov 2023 22:13:21 GMT";

    #[test]
    fn if_match_is_strong_and_star_matches_a_file() {
        use Precondition::*;
        for good in [ETAG, "*", "\"x\", \"abc\"", " \"abc\" "] {
            assert_eq!(decide(&[("If-Match", good)]), Proceed, "{good}");
        }
        for bad in ["\"x\"", "W/\"abc\"", "abc", "", ","] {
            assert_eq!(
                decide(&[("If-Match", bad)]),
                Failed(PreconditionFailed::IfMatch),
                "{bad:?}"
            );
        }
        // Two header lines are one list.
        assert_eq!(
            decide(&[("If-Match", "\"x\""), ("If-Match", ETAG)]),
            Proceed
        );
    }

    #[test]
    fn if_none_match_is_weak() {
        use Precondition::*;
        for hit in [ETAG, "W/\"abc\"", "*", "\"x\", W/\"abc\""] {
            assert_eq!(decide(&[("If-None-Match", hit)]), NotModified, "{hit}");
        }
        assert_eq!(decide(&[("If-None-Match", "\"abd\"")]), Proceed);
        assert_eq!(
            decide(&[("If-None-Match", "\"x\""), ("If-None-Match", ETAG)]),
            NotModified
        );
    }

    #[test]
    fn dates_compare_by_the_second() {
        use Precondition::*;
        let failed = Failed(PreconditionFailed::IfUnmodifiedSince);
        assert_eq!(decide(&[("If-Unmodified-Since", AT)]), Proceed);
        assert_eq!(decide(&[("If-Unmodified-Since", AFTER)]), Proceed);
        assert_eq!(decide(&[("If-Unmodified-Since", BEFORE)]), failed);
        assert_eq!(decide(&[("If-Modified-Since", AT)]), NotModified);
        assert_eq!(decide(&[("If-Modified-Since", AFTER)]), NotModified);
        assert_eq!(decide(&[("If-Modified-Since", BEFORE)]), Proceed);
        // The obsolete forms a recipient must accept (RFC 9110 §5.6.7).
        for old in [
            "Tuesday, 14-Nov-23 22:13:19 GMT",
            "Tue Nov 14 22:13:19 2023",
        ] {
            assert_eq!(decide(&[("If-Unmodified-Since", old)]), failed, "{old}");
            assert_eq!(decide(&[("If-Modified-Since", old)]), Proceed, "{old}");
        }
    }

    #[test]
    fn invalid_or_repeated_dates_are_ignored() {
        use Precondition::*;
        for ignored in [
            "yesterday",
            "",
            "Tue, 14 Nov 2023 22:13:19",
            "Wed, 14 Nov 2023 22:13:19 GMT", // wrong weekday
            "Tue, 14 Nov 2023 25:13:19 GMT",
            "1700000000",
        ] {
            assert_eq!(decide(&[("If-Unmodified-Since", ignored)]), Proceed);
            assert_eq!(decide(&[("If-Modified-Since", ignored)]), Proceed);
        }
        assert_eq!(
            decide(&[
                ("If-Unmodified-Since", BEFORE),
                ("If-Unmodified-Since", BEFORE)
            ]),
            Proceed
        );
        assert_eq!(
            decide(&[("If-Modified-Since", AT), ("If-Modified-Since", AT)]),
            Proceed
        );
        // No modification time: the date preconditions do not apply.
        let no_date = meta(None);
        let r = request(&[("If-Unmodified-Since", BEFORE), ("If-Modified-Since", AT)]);
        assert_eq!(evaluate_preconditions(&r, &no_date), Proceed);
    }

    #[test]
    fn the_order_of_rfc_9110_13_2_2() {
        use Precondition::*;
        // If-Match decides, If-Unmodified-Since is not looked at.
        assert_eq!(
            decide(&[("If-Match", ETAG), ("If-Unmodified-Since", BEFORE)]),
            Proceed
        );
        assert_eq!(
            decide(&[("If-Match", "\"x\""), ("If-Unmodified-Since", AFTER)]),
            Failed(PreconditionFailed::IfMatch)
        );
        // A failed If-Match or If-Unmodified-Since beats a 304.
        assert_eq!(
            decide(&[("If-None-Match", ETAG), ("If-Match", "\"x\"")]),
            Failed(PreconditionFailed::IfMatch)
        );
        assert_eq!(
            decide(&[("If-Modified-Since", AT), ("If-Unmodified-Since", BEFORE)]),
            Failed(PreconditionFailed::IfUnmodifiedSince)
        );
        // If-None-Match decides, If-Modified-Since is not looked at.
        assert_eq!(
            decide(&[("If-None-Match", "\"x\""), ("If-Modified-Since", AFTER)]),
            Proceed
        );
        assert_eq!(
            decide(&[("If-None-Match", ETAG), ("If-Modified-Since", BEFORE)]),
            NotModified
        );
        assert_eq!(
            decide(&[("If-Match", ETAG), ("If-None-Match", ETAG)]),
            NotModified
        );
    }
}
