//! Short links (`/r/<slug>` → 302, counting the click) and webhooks
//! (`POST /webhook/<endpoint>`, optionally signed), as the Go fazt served them.

use super::event::{Source, REDIRECT_CLICK};
use super::ingest::{event_for, split_tags, Ingest, QueryParams};
use crate::db::reader::with_reader;
use crate::http::error::Concealed;
use crate::http::{error_response, Method, Request, Response};
use hmac::{Hmac, Mac};
use rusqlite::{params, OptionalExtension};
use serde_json::{json, Value};
use sha2::Sha256;

pub fn redirect(ingest: &Ingest, slug: &str, request: &Request) -> Response {
    let (url, tags) = match link_of(slug, request) {
        Ok(found) => found,
        Err(response) => return response,
    };
    let mut event = event_for(
        request,
        site_of(request),
        format!("/r/{slug}"),
        REDIRECT_CLICK.into(),
        Source::Redirect,
    );
    event.tags = split_tags(&tags.unwrap_or_default());
    if let Some(extra) = QueryParams::parse(request.query()).get("tags") {
        event.tags.extend(split_tags(&extra));
    }
    // A link preview or a crawler following the link is not a click. A click the queue
    // refuses is counted as dropped: the visitor still gets where the link goes.
    if ingest.is_visit(request) {
        ingest.record(request, event);
    }
    found_at(url)
}

/// A short link followed by a client over its rate limit: still redirected (a visitor is
/// never stranded on a link), but the click is not recorded.
pub fn redirect_unrecorded(slug: &str, request: &Request) -> Response {
    match link_of(slug, request) {
        Ok((url, _)) => found_at(url),
        Err(response) => response,
    }
}

fn found_at(url: String) -> Response {
    Response::new(302)
        .header("Location", url)
        .header("Cache-Control", "no-store")
}

/// The target URL and tags of a short link, or the answer when there is none.
fn link_of(slug: &str, request: &Request) -> Result<(String, Option<String>), Response> {
    if !matches!(request.method, Method::Get | Method::Head) {
        return Err(
            Response::error(405, "short links answer GET and HEAD").header("Allow", "GET, HEAD")
        );
    }
    if slug.is_empty() {
        return Err(Response::error(
            400,
            "missing short-link slug: use /r/<slug>",
        ));
    }
    let found = with_reader(|conn| {
        conn.prepare_cached("SELECT url, tags FROM redirects WHERE slug = ?1")?
            .query_row(params![slug], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, Option<String>>(1)?))
            })
            .optional()
    });
    match found {
        Ok(Some(found)) => Ok(found),
        Ok(None) => Err(Response::error(404, &format!("no short link '{slug}'"))),
        Err(e) => Err(lookup_failed("short link", e)),
    }
}

pub fn webhook(ingest: &Ingest, endpoint: &str, request: &Request) -> Response {
    if request.method != Method::Post {
        return Response::error(405, "webhooks take POST").header("Allow", "POST");
    }
    if endpoint.is_empty() {
        return Response::error(400, "missing webhook endpoint: use /webhook/<endpoint>");
    }
    let found = with_reader(|conn| {
        conn.prepare_cached("SELECT secret, active FROM webhooks WHERE endpoint = ?1")?
            .query_row(params![endpoint], |row| {
                Ok((row.get::<_, Option<String>>(0)?, row.get::<_, bool>(1)?))
            })
            .optional()
    });
    let (secret, active) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return Response::error(404, &format!("no webhook endpoint '{endpoint}'")),
        Err(e) => return lookup_failed("webhook", e),
    };
    if !active {
        return Response::error(403, &format!("webhook '{endpoint}' is disabled"));
    }
    if let Some(secret) = secret.filter(|s| !s.is_empty()) {
        match request.header_str("x-webhook-signature") {
            None => {
                return Response::error(
                    401,
                    "missing X-Webhook-Signature (hex HMAC-SHA256 of the body)",
                )
            }
            Some(sig) if !signature_valid(secret.as_bytes(), &request.body, sig) => {
                return Response::error(401, "invalid X-Webhook-Signature")
            }
            Some(_) => {}
        }
    }
    let payload: Value = serde_json::from_slice(&request.body)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({ "raw": String::from_utf8_lossy(&request.body) }));
    let kind = ["event", "type"]
        .iter()
        .find_map(|k| payload.get(*k).and_then(Value::as_str))
        .unwrap_or("webhook")
        .to_string();
    let mut event = event_for(
        request,
        endpoint.to_string(),
        format!("/webhook/{endpoint}"),
        kind,
        Source::Webhook,
    );
    event.query = Some(payload.to_string());
    // The sender retries on 503: the payload is not acknowledged unless it is queued.
    if !ingest.record(request, event) {
        return ingest.unavailable();
    }
    Response::json(
        200,
        &json!({ "status": "success", "message": "Webhook received", "webhook": endpoint }),
    )
}

/// Lower-case hex HMAC-SHA256 of the body, compared in constant time.
pub fn signature_valid(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let Some(signature) = decode_hex(signature_hex.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&signature).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The site a short link was followed on: the request's host.
fn site_of(request: &Request) -> String {
    if request.host.is_empty() {
        "unknown".to_string()
    } else {
        request.host.clone()
    }
}

fn lookup_failed(what: &str, e: rusqlite::Error) -> Response {
    error_response(&Concealed::new(format!("looking up the {what}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"s3cret").unwrap();
        mac.update(b"{\"a\":1}");
        let good = crate::platform::units::hex(&mac.finalize().into_bytes());
        assert!(signature_valid(b"s3cret", b"{\"a\":1}", &good));
        assert!(
            signature_valid(b"s3cret", b"{\"a\":1}", &good.to_uppercase()),
            "hex case does not matter"
        );
        assert!(!signature_valid(b"other", b"{\"a\":1}", &good));
        assert!(!signature_valid(b"s3cret", b"{\"a\":2}", &good));
        assert!(!signature_valid(b"s3cret", b"{\"a\":1}", "zz"));
        assert!(!signature_valid(b"s3cret", b"{\"a\":1}", ""));
    }
}
