//! HTTP/1.1 protocol behaviour of our own server (DESIGN D1): keep-alive and closing,
//! pipelining (including across the hand-off to the admin thread), chunked uploads,
//! `Expect: 100-continue`, HEAD, malformed requests, and requests split into tiny writes.
use crate::common::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

fn send(s: &mut TcpStream, raw: &str) {
    s.write_all(raw.as_bytes()).unwrap();
}

fn next(s: &mut TcpStream) -> HttpResponse {
    read_response(s).expect("a response")
}

/// True if nothing at all arrives (and the connection stays open) for `wait`.
fn stays_open_and_quiet(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 64];
    let quiet = match s.read(&mut buf) {
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    };
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    quiet
}

fn create_key_request(token: &str, name: &str, extra_headers: &str) -> String {
    let body = format!("{{\"name\":\"{name}\"}}");
    format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\n{extra_headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Checks that `token` (a newly created key) is accepted by the admin API.
fn assert_key_works(server: &Server, token: &str) {
    let r = server.admin_get("/api/system/health", Some(token));
    assert_eq!(r.status, 200, "new key refused: {}", r.text());
    assert_eq!(r.json()["status"], "ok");
}

fn assert_json_400(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    let body = r.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{what}: no error message in {body}"
    );
    assert_eq!(body["error"]["code"], "bad_request", "{what}");
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    assert_eq!(r.header("connection"), Some("close"), "{what}");
}

// ---------------------------------------------------------------------------------------
// keep-alive and closing

#[test]
fn keep_alive_serves_several_requests_then_connection_close_closes() {
    let server = Server::start();
    let mut s = server.connect();
    for i in 0..6 {
        if i % 2 == 0 {
            send(
                &mut s,
                "GET /health HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
            );
            let r = next(&mut s);
            assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "request {i}");
        } else {
            send(&mut s, "GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
            let r = next(&mut s);
            assert_eq!((r.status, r.body.as_slice()), (200, LANDING), "request {i}");
        }
    }
    // An admin request (answered by the admin thread) on the same connection.
    send(
        &mut s,
        &format!(
            "GET /api/system/health HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            server.token
        ),
    );
    let r = next(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("keep-alive"));

    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n",
    );
    let r = next(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "Connection: close kept the connection"
    );
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let server = Server::start();

    let mut s = server.connect();
    send(&mut s, "GET /health HTTP/1.0\r\n\r\n");
    let r = next(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "HTTP/1.0 kept open"
    );

    let mut s = server.connect();
    send(
        &mut s,
        "GET / HTTP/1.0\r\nHost: root.localhost\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = next(&mut s);
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));
    assert_eq!(r.header("connection"), Some("keep-alive"));
    send(
        &mut s,
        "GET /health HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
    );
    assert_eq!(next(&mut s).status, 200);
    send(&mut s, "GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(next(&mut s).status, 200);
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

#[test]
fn requests_after_connection_close_in_a_pipeline_are_not_answered() {
    let server = Server::start();
    let mut s = server.connect();
    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: a.localhost\r\nConnection: close\r\n\r\n\
         GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
    );
    let r = next(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "answered past Connection: close: {}",
        String::from_utf8_lossy(&rest)
    );
}

// ---------------------------------------------------------------------------------------
// pipelining

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start();
    let mut s = server.connect();
    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: nosuch.localhost\r\n\r\n\
         GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n\
         GET /nope HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
    );
    let a = next(&mut s);
    let b = next(&mut s);
    let c = next(&mut s);
    assert_eq!((a.status, a.text().as_str()), (200, "ok\n"));
    assert_eq!((b.status, b.body.as_slice()), (200, LANDING));
    assert_eq!((c.status, c.body.as_slice()), (404, NOT_FOUND));
    // Still usable afterwards.
    send(&mut s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(next(&mut s).status, 200);
}

#[test]
fn pipelined_order_holds_across_the_admin_hand_off() {
    let server = Server::start();
    let token = &server.token;
    let mut s = server.connect();
    let mut raw = String::new();
    raw.push_str("GET /health HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
    raw.push_str(&format!(
        "GET /api/system/health HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
    ));
    raw.push_str("GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
    raw.push_str("GET /api/keys HTTP/1.1\r\nHost: localhost\r\n\r\n");
    raw.push_str(&create_key_request(token, "piped", ""));
    raw.push_str("HEAD /nope HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
    raw.push_str("GET /health HTTP/1.1\r\nHost: admin.localhost\r\nConnection: close\r\n\r\n");
    send(&mut s, &raw);

    let r = next(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    let r = next(&mut s);
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    let r = next(&mut s);
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));
    let r = next(&mut s);
    assert_eq!(r.status, 401, "no key on the 4th request: {}", r.text());
    let r = next(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["name"], "piped");
    let r = read_response_with(&mut s, true).unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(
        r.header("content-length"),
        Some(NOT_FOUND.len().to_string().as_str())
    );
    let r = next(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

/// More pipelined output than the server queues before it pauses parsing (64 KiB), with
/// every request already buffered by the server and the client just reading.
#[test]
fn pipelined_responses_past_the_output_high_water_mark_are_all_sent() {
    // A short idle timeout so a stalled connection fails the test in seconds.
    let server = Server::builder().env("FAZT_IDLE_TIMEOUT", "3s").start();
    let mut s = server.connect();
    let count = 200; // ~200 KiB of landing pages
    send(
        &mut s,
        &"GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n".repeat(count),
    );
    let start = Instant::now();
    for i in 0..count {
        let r = read_response(&mut s)
            .unwrap_or_else(|e| panic!("response {i} of {count} after {:?}: {e}", start.elapsed()));
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, LANDING),
            "response {i}"
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    send(&mut s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(next(&mut s).status, 200);
}

#[test]
fn many_pipelined_requests_then_half_close_are_all_answered() {
    let server = Server::start();
    let mut s = server.connect();
    let count = 300;
    let mut raw = String::new();
    for i in 0..count {
        if i % 3 == 2 {
            raw.push_str("GET /health HTTP/1.1\r\nHost: x.localhost\r\n\r\n");
        } else {
            raw.push_str("GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
        }
    }
    // More output than the server queues before it stops reading (64 KiB), then EOF.
    send(&mut s, &raw);
    s.shutdown(Shutdown::Write).unwrap();
    for i in 0..count {
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("response {i}: {e}"));
        if i % 3 == 2 {
            assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "response {i}");
        } else {
            assert_eq!(
                (r.status, r.body.as_slice()),
                (200, LANDING),
                "response {i}"
            );
        }
    }
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

#[test]
fn small_body_on_a_get_is_read_and_discarded() {
    let server = Server::start();
    let mut s = server.connect();
    send(
        &mut s,
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 11\r\n\r\nhello worldGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let r = next(&mut s);
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));
    let r = next(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

// ---------------------------------------------------------------------------------------
// bodies: chunked, Expect: 100-continue

#[test]
fn chunked_upload_with_extensions_and_trailer_creates_a_key() {
    let server = Server::start();
    let mut s = server.connect();
    send(
        &mut s,
        &format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
            server.token
        ),
    );
    // {"name":"chunked-key"} in pieces, sizes in both hex cases, with extensions.
    let pieces = [
        "4;ext=1\r\n{\"na\r\n",
        "A;name=\"quoted value\";flag\r\nme\":\"chunk\r\n",
        "8\r\ned-key\"}\r\n",
        "0;last\r\nX-Trailer: yes\r\nX-Checksum: abc\r\n\r\n",
    ];
    for piece in pieces {
        send(&mut s, piece);
        std::thread::sleep(Duration::from_millis(30));
    }
    let r = next(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    assert_eq!(created["name"], "chunked-key");
    let token = created["token"].as_str().expect("a token").to_string();

    // The connection is still in sync after the trailer: use the new key on it.
    send(
        &mut s,
        &format!(
            "GET /api/system/health HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\r\n"
        ),
    );
    let r = next(&mut s);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_key_works(&server, &token);
}

#[test]
fn expect_100_continue_gets_interim_response_before_the_body() {
    let server = Server::start();
    let body = r#"{"name":"expect"}"#;
    let mut s = server.connect();
    send(
        &mut s,
        &format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            server.token,
            body.len()
        ),
    );
    let start = Instant::now();
    let interim = next(&mut s);
    assert_eq!(interim.status, 100, "{interim:?}");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    send(&mut s, body);
    let r = next(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_key_works(&server, r.json()["token"].as_str().unwrap());

    // Same with a chunked body.
    send(
        &mut s,
        &format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
             Expect: 100-Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
            server.token
        ),
    );
    assert_eq!(next(&mut s).status, 100);
    send(&mut s, &format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len()));
    assert_eq!(next(&mut s).status, 201);

    // Any other expectation is refused.
    let r = server
        .request("GET /health HTTP/1.1\r\nHost: root.localhost\r\nExpect: something-else\r\n\r\n");
    assert_eq!(r.status, 417, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "expectation_failed");
}

// ---------------------------------------------------------------------------------------
// HEAD

#[test]
fn head_has_get_length_and_no_body() {
    let server = Server::start();
    let get = server.get("root.localhost", "/");
    assert_eq!((get.status, get.body.as_slice()), (200, LANDING));

    let mut s = server.connect();
    send(&mut s, "HEAD / HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
    let head = read_response_with(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(LANDING.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), get.header("etag"));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    // If a body had been sent, this would read its first bytes instead of a status line.
    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
    );
    let r = next(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    // Pipelined HEAD (handed to the admin thread) followed by a GET.
    send(
        &mut s,
        &format!(
            "HEAD /api/system/health HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\r\n\
             HEAD / HTTP/1.1\r\nHost: root.localhost\r\n\r\n\
             GET /nope HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n",
            server.token
        ),
    );
    let r = read_response_with(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.header("content-length").is_some_and(|l| l != "0"));
    let r = read_response_with(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    let r = next(&mut s);
    assert_eq!((r.status, r.body.as_slice()), (404, NOT_FOUND));
    let mut rest = Vec::new();
    let _ = s.read_to_end(&mut rest);
    assert!(
        rest.is_empty(),
        "stray bytes: {}",
        String::from_utf8_lossy(&rest)
    );
}

// ---------------------------------------------------------------------------------------
// malformed requests

#[test]
fn malformed_requests_get_400_with_a_json_error_and_close() {
    let server = Server::start();
    let cases: [(&str, &str); 17] = [
        ("garbage line", "GARBAGE\r\n\r\n"),
        ("binary junk", "\x01\x02\x03 / HTTP/1.1\r\nHost: a\r\n\r\n"),
        ("malformed version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n"),
        ("Content-Length abc", "POST / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: abc\r\n\r\n"),
        ("negative Content-Length", "POST / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: -1\r\n\r\n"),
        ("empty Content-Length", "POST / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: \r\n\r\n"),
        (
            "conflicting Content-Lengths",
            "POST / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
        ),
        (
            "Content-Length and Transfer-Encoding",
            "POST / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "unsupported Transfer-Encoding",
            "POST / HTTP/1.1\r\nHost: root.localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
        ),
        ("Host with a space", "GET / HTTP/1.1\r\nHost: bad host\r\n\r\n"),
        ("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        ("Host with a bad port", "GET / HTTP/1.1\r\nHost: a:port\r\n\r\n"),
        ("missing Host in HTTP/1.1", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
        ("two Host headers", "GET / HTTP/1.1\r\nHost: root.localhost\r\nHost: admin.localhost\r\n\r\n"),
        ("target without a slash", "GET index.html HTTP/1.1\r\nHost: root.localhost\r\n\r\n"),
        ("absolute form with user info", "GET http://me@root.localhost/ HTTP/1.1\r\nHost: root.localhost\r\n\r\n"),
        ("bad chunk size", "POST / HTTP/1.1\r\nHost: root.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ];
    for (what, raw) in cases {
        let mut s = server.connect();
        let _ = s.write_all(raw.as_bytes());
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("{what}: no response ({e})"));
        assert_json_400(&r, what);
        assert!(
            closed_within(&mut s, Duration::from_secs(2)),
            "{what}: connection left open after 400"
        );
    }
    // A malformed request after a good one on the same connection.
    let mut s = server.connect();
    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: a\r\n\r\nNOT HTTP AT ALL\r\n\r\n",
    );
    assert_eq!(next(&mut s).status, 200);
    assert_json_400(&next(&mut s), "garbage after a good request");
    assert!(closed_within(&mut s, Duration::from_secs(2)));

    // Valid Host forms.
    for host in [
        "root.localhost:8080",
        "ROOT.LOCALHOST",
        "127.0.0.1:1",
        "[::1]:80",
        "root.localhost.",
    ] {
        let r = server.get(host, "/health");
        assert_eq!(r.status, 200, "Host {host}: {}", r.text());
    }
    assert_eq!(server.get("root.localhost", "/health").status, 200);
}

// ---------------------------------------------------------------------------------------
// tiny writes

/// Writes `raw` one byte per write, with Nagle off and a short pause now and then so the
/// bytes really arrive in many segments.
fn send_bytewise(s: &mut TcpStream, raw: &[u8]) {
    s.set_nodelay(true).unwrap();
    for (i, b) in raw.iter().enumerate() {
        s.write_all(std::slice::from_ref(b)).unwrap();
        if i % 4 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

#[test]
fn requests_split_into_one_byte_writes_work() {
    let server = Server::start();
    let mut s = server.connect();

    send_bytewise(&mut s, b"GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
    let r = next(&mut s);
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));

    // Content-Length body, byte by byte, handed to the admin thread.
    send_bytewise(
        &mut s,
        create_key_request(&server.token, "bytewise", "").as_bytes(),
    );
    let r = next(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_key_works(&server, r.json()["token"].as_str().unwrap());

    // Chunked body with a trailer, byte by byte.
    let raw = format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n5;x=y\r\n{{\"nam\r\n11\r\ne\":\"bytewise-ch\"}}\r\n0\r\nT: 1\r\n\r\n",
        server.token
    );
    send_bytewise(&mut s, raw.as_bytes());
    let r = next(&mut s);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["name"], "bytewise-ch");

    // Two pipelined requests, byte by byte, then the connection closes on request.
    send_bytewise(
        &mut s,
        b"HEAD / HTTP/1.1\r\nHost: root.localhost\r\n\r\nGET /health HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n",
    );
    let r = read_response_with(&mut s, true).unwrap();
    assert_eq!(r.status, 200);
    let r = next(&mut s);
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

#[test]
fn half_closed_client_still_gets_its_answer() {
    let server = Server::start();
    let mut s = server.connect();
    send(&mut s, "GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n");
    s.shutdown(Shutdown::Write).unwrap();
    let r = next(&mut s);
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));
    assert!(closed_within(&mut s, Duration::from_secs(2)));

    // Also when the answer comes from the admin thread.
    let mut s = server.connect();
    send(
        &mut s,
        &format!(
            "GET /api/system/health HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\r\n",
            server.token
        ),
    );
    s.shutdown(Shutdown::Write).unwrap();
    let r = next(&mut s);
    assert_eq!(r.status, 200);
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

#[test]
fn quiet_keep_alive_connection_gets_no_unsolicited_bytes() {
    let server = Server::start();
    let mut s = server.connect();
    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
    );
    assert_eq!(next(&mut s).status, 200);
    assert!(stays_open_and_quiet(&mut s, Duration::from_millis(500)));
    send(
        &mut s,
        "GET /health HTTP/1.1\r\nHost: root.localhost\r\n\r\n",
    );
    assert_eq!(next(&mut s).status, 200);
}
