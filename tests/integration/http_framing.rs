//! Strict framing (issue #11): `Content-Length` is 1*DIGIT between optional SP/HTAB, a
//! chunk size is hex digits only, a Host port is 1–65535. Every other shape is a 400 that
//! closes the connection, so no byte of a refused body is ever read as a request; the
//! shapes the RFCs allow keep working on a kept-alive connection.

use crate::common::*;
use std::io::Write;
use std::time::Duration;

/// A 42-byte `/track` body.
const EVENT: &str = r#"{"h":"blog.localhost","p":"/","e":"click"}"#;

/// A server that accepts [`EVENT`] at `/track` with a 204.
fn tracking_server() -> Server {
    Server::builder()
        .env("FAZT_TRACK_DOMAINS", "blog.localhost")
        .start()
}

fn track_head(framing: &[u8]) -> Vec<u8> {
    let mut head =
        b"POST /track HTTP/1.1\r\nHost: collector.test\r\nContent-Type: application/json\r\n"
            .to_vec();
    head.extend_from_slice(framing);
    head.extend_from_slice(b"\r\n\r\n");
    head
}

/// `raw` on a fresh connection gets a JSON 400 whose message contains `needle`, and the
/// connection is closed (what follows the head is never parsed as another request).
fn assert_refused(server: &Server, what: &str, raw: &[u8], needle: &str) {
    let mut s = server.connect();
    let _ = s.write_all(raw);
    let r = read_response(&mut s).unwrap_or_else(|e| panic!("{what}: no response ({e})"));
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    let message = r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(message.contains(needle), "{what}: {message:?}");
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "{what}: connection left open after 400"
    );
}

/// `raw` then a `/health` GET on one connection: the event is accepted (204) and the next
/// request starts exactly where the body ended (200).
fn assert_framed(server: &Server, what: &str, raw: &[u8]) {
    let mut s = server.connect();
    s.write_all(raw).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let first = read_response(&mut s).unwrap_or_else(|e| panic!("{what}: no response ({e})"));
    assert_eq!(first.status, 204, "{what}: {}", first.text());
    let second = read_response(&mut s).unwrap_or_else(|e| panic!("{what}: no 2nd ({e})"));
    assert_eq!(second.status, 200, "{what}: {}", second.text());
}

#[test]
fn content_length_is_digits_only_around_optional_whitespace() {
    let server = tracking_server();
    let refused: [(&str, &[u8]); 6] = [
        ("trailing NBSP", b"Content-Length: 42\xc2\xa0"),
        ("leading NBSP", b"Content-Length: \xc2\xa042"),
        ("plus sign", b"Content-Length: +42"),
        ("minus zero", b"Content-Length: -0"),
        ("hex", b"Content-Length: 0x2a"),
        ("inner space", b"Content-Length: 4 2"),
    ];
    for (what, framing) in refused {
        let mut raw = track_head(framing);
        raw.extend_from_slice(EVENT.as_bytes());
        assert_refused(&server, what, &raw, "Content-Length");
    }
    // RFC 9110 §5.5: OWS around a field value is not part of it.
    for (what, framing) in [
        ("plain", &b"Content-Length: 42"[..]),
        ("spaces and tabs", b"Content-Length:  \t42 \t"),
        ("leading zeros", b"Content-Length: 0042"),
    ] {
        let mut raw = track_head(framing);
        raw.extend_from_slice(EVENT.as_bytes());
        assert_framed(&server, what, &raw);
    }
}

#[test]
fn chunk_sizes_are_hex_digits_only() {
    let server = tracking_server();
    for (what, size) in [
        ("plus sign", "+2a"),
        ("0x prefix", "0x2a"),
        ("negative", "-1"),
        ("empty", ""),
        ("only an extension", ";ext=1"),
        ("leading space", " 2a"),
        ("NBSP", "2a\u{a0}"),
    ] {
        let mut raw = track_head(b"Transfer-Encoding: chunked");
        raw.extend_from_slice(format!("{size}\r\n{EVENT}\r\n0\r\n\r\n").as_bytes());
        assert_refused(&server, what, &raw, "chunk size");
    }
    // Extensions after `;` (with the grammar's BWS before it) are ignored, as before.
    for (what, size) in [
        ("plain", "2a"),
        ("upper case", "2A"),
        ("leading zeros", "002a"),
        ("extension", "2a;name=value"),
        ("space before extension", "2a \t;name=\"quoted\""),
    ] {
        let mut raw = track_head(b"Transfer-Encoding: chunked");
        raw.extend_from_slice(format!("{size}\r\n{EVENT}\r\n0\r\n\r\n").as_bytes());
        assert_framed(&server, what, &raw);
    }
}

#[test]
fn host_port_must_be_1_to_65535() {
    let server = Server::start();
    for host in [
        "x:99999",
        "x:0",
        "root.localhost:65536",
        "[::1]:0",
        "x:00000",
    ] {
        let raw = format!("GET /health HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_refused(&server, host, raw.as_bytes(), "invalid Host");
    }
    let absolute =
        "GET http://root.localhost:99999/health HTTP/1.1\r\nHost: root.localhost\r\n\r\n";
    let r = raw_request(server.addr, absolute);
    assert_eq!(r.status, 400, "absolute form: {}", r.text());
    // An empty port is valid (RFC 3986 §3.2.3 `port = *DIGIT`; RFC 9110 §4.2.3 reads it as
    // the default port), and so are the ends of the range.
    for host in [
        "root.localhost:",
        "root.localhost:1",
        "root.localhost:65535",
        "[::1]:",
    ] {
        let r = server.get(host, "/health");
        assert_eq!(r.status, 200, "Host {host}: {}", r.text());
    }
}
