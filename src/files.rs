//! The response path for stored files: strong ETag from the content hash,
//! `If-None-Match` → 304, `HEAD` (the connection omits the body), cache headers.
//! Embedded pages use it now; the virtual filesystem serves through it too.

use crate::http::{Body, Method, Request, Response};
use sha2::{Digest, Sha256};

/// A file ready to serve: its bytes and the headers that describe them.
#[derive(Clone, Debug)]
pub struct StoredFile {
    pub body: Body,
    /// Quoted strong ETag: the hex sha-256 of the content.
    pub etag: String,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

impl StoredFile {
    pub fn from_static(
        bytes: &'static [u8],
        content_type: &'static str,
        cache_control: &'static str,
    ) -> StoredFile {
        StoredFile {
            body: Body::Static(bytes),
            etag: etag_of(bytes),
            content_type,
            cache_control,
        }
    }
}

pub fn etag_of(bytes: &[u8]) -> String {
    let digest = Sha256::digest(bytes);
    let mut etag = String::with_capacity(66);
    etag.push('"');
    for b in digest {
        etag.push_str(&format!("{b:02x}"));
    }
    etag.push('"');
    etag
}

/// Answers a GET or HEAD for `file` with `status` (200, or 404 for not-found pages).
pub fn respond(request: &Request, file: &StoredFile, status: u16) -> Response {
    if !matches!(request.method, Method::Get | Method::Head) {
        return Response::error(405, "only GET and HEAD are allowed here")
            .header("Allow", "GET, HEAD");
    }
    let base = Response::new(status)
        .header("ETag", file.etag.clone())
        .header("Cache-Control", file.cache_control);
    if status == 200 && etag_matches(request.header_str("if-none-match"), &file.etag) {
        return base.with_status(304);
    }
    base.body(file.content_type, file.body.clone())
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
