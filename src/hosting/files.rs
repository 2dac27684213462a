//! The response path for stored files: strong ETag from the content hash,
//! `If-None-Match` → 304, single `Range` → 206/416, `HEAD` (the connection omits the
//! body), `Content-Type` and `Cache-Control`. Sites, the built-in pages and the admin
//! assets all answer through it.

use crate::hosting::encoding::Encoding;
use crate::hosting::rules::{content_range, parse_range, unsatisfied_range, RangeOutcome};
use crate::http::{Body, Method, Request, Response};
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
/// take no conditional or range handling). `body(start, len)` produces the bytes of the
/// part to send, so a range of a large file is read from storage, not sliced from memory.
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
    let mut base = Response::new(status)
        .header("ETag", meta.etag.clone())
        .header("Cache-Control", meta.cache_control);
    if meta.vary {
        base = base.header("Vary", "Accept-Encoding");
    }
    if status != 200 {
        return with_body(base, meta, body(0, meta.size));
    }
    if etag_matches(request.header_str("if-none-match"), &meta.etag) {
        return base.with_status(304);
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
        .push(("Content-Type", meta.mime.clone().into()));
    if meta.encoding != Encoding::Identity {
        response = response.header("Content-Encoding", meta.encoding.token());
    }
    response.body = body;
    response
}

/// `If-None-Match` comparison (RFC 9110 §13.1.2): weak comparison, `*` matches anything.
fn etag_matches(header: Option<&str>, etag: &str) -> bool {
    let Some(header) = header else { return false };
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let etag = "\"abc\"";
        assert!(etag_matches(Some("\"abc\""), etag));
        assert!(etag_matches(Some("\"x\", W/\"abc\""), etag));
        assert!(etag_matches(Some("*"), etag));
        assert!(!etag_matches(Some("\"abd\""), etag));
        assert!(!etag_matches(None, etag));
    }
}
