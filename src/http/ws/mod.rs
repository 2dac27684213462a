//! WebSockets (RFC 6455): the upgrade handshake and the frame codec. Pure code: the
//! connection state machine (`http::conn`) owns the socket and feeds bytes in here.
//!
//! Invariants: no extension or subprotocol is ever negotiated, so RSV1-3 must be 0 on every
//! frame; client frames must be masked; a message is refused from its frame header, before
//! its payload is buffered, once it would outgrow the limit.

mod frame;
mod reader;

pub(crate) use frame::{close_frame, frame, Opcode};
pub(crate) use reader::{Reader, Received, WsError};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use crate::http::{Method, Request, Response};

/// RFC 6455 §1.3: appended to the client's key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// RFC 6455 §4.2.1: what a request for a WebSocket upgrade needs.
pub(crate) enum Handshake {
    /// No `Upgrade: websocket` header: an ordinary request (served as usual).
    NotUpgrade,
    /// A valid upgrade: the `Sec-WebSocket-Accept` value to answer with.
    Accept(String),
    /// An upgrade request that can't be accepted: the 4xx to answer.
    Refuse(Response),
}

/// Checks an upgrade request in the order a client can act on: the method, the HTTP version
/// and `Connection` (it asked for something else), the protocol version (426 tells it which
/// one we speak), then the key.
pub(crate) fn handshake(request: &Request) -> Handshake {
    if !has_token(request.header("upgrade"), "websocket") {
        return Handshake::NotUpgrade;
    }
    if request.method != Method::Get {
        let refusal = Response::error(405, "a WebSocket upgrade must be a GET");
        return Handshake::Refuse(refusal.header("Allow", "GET"));
    }
    if request.minor_version == 0 {
        return refuse(400, "a WebSocket upgrade needs HTTP/1.1");
    }
    if !has_token(request.header("connection"), "upgrade") {
        return refuse(400, "a WebSocket upgrade needs `Connection: Upgrade`");
    }
    if let Some(name) = ONCE_ONLY.iter().find(|name| repeated(request, name)) {
        return refuse(
            400,
            &format!("{name} may appear only once (RFC 6455 §11.3)"),
        );
    }
    if request.header_str("sec-websocket-version") != Some("13") {
        let refusal = Response::error(426, "only WebSocket version 13 is supported");
        return Handshake::Refuse(refusal.header("Sec-WebSocket-Version", "13"));
    }
    match request.header_str("sec-websocket-key") {
        Some(key) if is_valid_key(key) => Handshake::Accept(accept_key(key)),
        _ => refuse(400, "Sec-WebSocket-Key must be base64 of 16 bytes"),
    }
}

/// Headers a handshake may carry once only.
const ONCE_ONLY: [&str; 2] = ["Sec-WebSocket-Key", "Sec-WebSocket-Version"];

fn repeated(request: &Request, name: &str) -> bool {
    let mut same = request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()));
    same.next().is_some() && same.next().is_some()
}

fn refuse(status: u16, message: &str) -> Handshake {
    Handshake::Refuse(Response::error(status, message))
}

/// base64(SHA-1(key + GUID)), RFC 6455 §4.2.2. SHA-1 is what the protocol fixes; it proves
/// only that the server read the handshake, nothing about security.
pub(crate) fn accept_key(key: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(GUID.as_bytes());
    STANDARD.encode(context.finish().as_ref())
}

/// RFC 6455 §4.1: the key is a random 16-byte value, base64-encoded (24 characters).
fn is_valid_key(key: &str) -> bool {
    key.len() == 24 && STANDARD.decode(key).is_ok_and(|bytes| bytes.len() == 16)
}

/// Whether a comma-separated header value (`keep-alive, Upgrade`) holds this token, ASCII
/// case-insensitively.
fn has_token(value: Option<&[u8]>, token: &str) -> bool {
    value.is_some_and(|value| {
        value
            .split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request with these headers, built the way the parser does: head bytes plus ranges.
    fn request(method: &str, version: u8, headers: &[(&str, &str)]) -> Request {
        let mut head = format!("{method} /chat HTTP/1.{version}\r\n").into_bytes();
        let target = method.len() + 1..method.len() + 6;
        let mut ranges = Vec::new();
        for (name, value) in headers {
            let name_start = head.len();
            head.extend_from_slice(name.as_bytes());
            let name_range = name_start..head.len();
            head.extend_from_slice(b": ");
            let value_start = head.len();
            head.extend_from_slice(value.as_bytes());
            ranges.push((name_range, value_start..head.len()));
            head.extend_from_slice(b"\r\n");
        }
        let peer = "127.0.0.1:9".parse().expect("address");
        Request::new(
            head,
            Method::parse(method),
            0..method.len(),
            target,
            version,
            ranges,
            peer,
        )
    }

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn upgrade_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Host", "server.example.com"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", KEY),
            ("Sec-WebSocket-Version", "13"),
        ]
    }

    fn with(replaced: &str, value: Option<&'static str>) -> Vec<(&'static str, &'static str)> {
        let mut headers = upgrade_headers();
        headers.retain(|(name, _)| !name.eq_ignore_ascii_case(replaced));
        if let Some(value) = value {
            let name = upgrade_headers()
                .into_iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(replaced))
                .map_or("X-Unknown", |(name, _)| name);
            headers.push((name, value));
        }
        headers
    }

    fn refused(handshake: Handshake) -> Response {
        match handshake {
            Handshake::Refuse(response) => response,
            Handshake::Accept(accept) => panic!("accepted: {accept}"),
            Handshake::NotUpgrade => panic!("not an upgrade"),
        }
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn valid_upgrade_is_accepted() {
        match handshake(&request("GET", 1, &upgrade_headers())) {
            Handshake::Accept(accept) => assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
            _ => panic!("refused"),
        }
    }

    #[test]
    fn token_lists_and_case_are_accepted() {
        let mut headers = with("connection", Some("keep-alive, Upgrade"));
        headers.retain(|(name, _)| *name != "Upgrade");
        headers.push(("upgrade", "WebSocket"));
        assert!(matches!(
            handshake(&request("GET", 1, &headers)),
            Handshake::Accept(_)
        ));
    }

    #[test]
    fn requests_without_a_websocket_upgrade_are_ordinary() {
        for headers in [with("upgrade", None), with("upgrade", Some("h2c"))] {
            assert!(matches!(
                handshake(&request("GET", 1, &headers)),
                Handshake::NotUpgrade
            ));
        }
        let plain = request("POST", 1, &[("Host", "a")]);
        assert!(matches!(handshake(&plain), Handshake::NotUpgrade));
    }

    #[test]
    fn other_methods_are_405_allowing_get() {
        let response = refused(handshake(&request("POST", 1, &upgrade_headers())));
        assert_eq!(response.status, 405);
        assert_eq!(response.get_header("allow"), Some("GET"));
    }

    #[test]
    fn other_versions_are_426_naming_13() {
        for version in [None, Some("8"), Some("14"), Some("")] {
            let headers = with("sec-websocket-version", version);
            let response = refused(handshake(&request("GET", 1, &headers)));
            assert_eq!(response.status, 426, "{version:?}");
            assert_eq!(response.get_header("sec-websocket-version"), Some("13"));
        }
    }

    #[test]
    fn bad_keys_connection_and_http_1_0_are_400() {
        let bad_keys = [
            None,
            Some(""),
            Some("not base64 at all!!!!!!!"),
            // 15 and 17 bytes.
            Some("dGhlIHNhbXBsZSBub25jZQ"),
            Some("AAAAAAAAAAAAAAAAAAAAAAA="),
            Some("AAAAAAAAAAAAAAAAAAAAAAAA"),
        ];
        for key in bad_keys {
            let headers = with("sec-websocket-key", key);
            let response = refused(handshake(&request("GET", 1, &headers)));
            assert_eq!(response.status, 400, "{key:?}");
        }
        for connection in [None, Some("keep-alive"), Some("upgraded")] {
            let headers = with("connection", connection);
            let response = refused(handshake(&request("GET", 1, &headers)));
            assert_eq!(response.status, 400, "{connection:?}");
        }
        let response = refused(handshake(&request("GET", 0, &upgrade_headers())));
        assert_eq!(response.status, 400);
    }
}
