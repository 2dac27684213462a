//! DESIGN §5 at the connection level: head size limits (431), an over-long request line
//! (414), slow heads (408), declared
//! and streamed bodies past the route limit (413), the connection cap (503), stalled and
//! non-reading clients, and the idle / header deadlines. Every test starts its own server
//! with small timeouts so each finishes in a few seconds.
use crate::common::source::{loopback, raw_request_from};
use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// helpers

/// The `/metrics` text, read through the dedicated admin listener when there is one so
/// that reading it never takes a public connection slot.
fn metrics_text(server: &Server) -> String {
    let mut s = connect(server.admin_addr.unwrap_or(server.addr));
    let raw = format!(
        "GET /metrics HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        server.token
    );
    s.write_all(raw.as_bytes()).unwrap();
    let r = read_response(&mut s).expect("a /metrics response");
    assert_eq!(r.status, 200, "{}", r.text());
    r.text()
}

/// The value of one series (name with labels, exactly as exposed) in `/metrics`.
fn metric(server: &Server, series: &str) -> i64 {
    let text = metrics_text(server);
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}")) as i64
}

/// Polls a metric until `pred` holds or `limit` passes; returns the last value.
fn wait_metric(server: &Server, series: &str, limit: Duration, pred: impl Fn(i64) -> bool) -> i64 {
    let deadline = Instant::now() + limit;
    loop {
        let v = metric(server, series);
        if pred(v) || Instant::now() >= deadline {
            return v;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

const LIMIT_431: &str = "fazt_limit_violations_total{status=\"431\"}";
const LIMIT_414: &str = "fazt_limit_violations_total{status=\"414\"}";
const LIMIT_413: &str = "fazt_limit_violations_total{status=\"413\"}";
const LIMIT_408: &str = "fazt_limit_violations_total{status=\"408\"}";

/// Resident set size of the server process in KiB.
fn rss_kib(server: &Server) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/<pid>/status")
}

/// Writes everything, ignoring a reset or broken pipe: the server is allowed to answer and
/// close before it has read all of an oversized request.
fn send_lenient(s: &mut TcpStream, bytes: &[u8]) {
    let _ = s.write_all(bytes);
}

fn assert_json_error(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "error body without a message: {body}"
    );
    assert!(body["error"]["code"].is_string(), "{body}");
    assert_eq!(r.header("connection"), Some("close"), "{r:?}");
}

/// Reads until EOF or reset (bounded); returns whether the peer closed, how long it took,
/// and the bytes received before that.
fn wait_for_close(s: &mut TcpStream, limit: Duration) -> (bool, Duration, Vec<u8>) {
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            return (false, start.elapsed(), got);
        }
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return (true, start.elapsed(), got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return (false, start.elapsed(), got)
            }
            Err(_) => return (true, start.elapsed(), got),
        }
    }
}

fn health_get() -> &'static str {
    "GET /health HTTP/1.1\r\nHost: root.localhost\r\n\r\n"
}

/// One `/health` request on a fresh connection; returns the status and how long it took.
fn timed_health(server: &Server) -> (u16, Duration) {
    let start = Instant::now();
    let r = server.get("root.localhost", "/health");
    (r.status, start.elapsed())
}

// ---------------------------------------------------------------------------------------
// 431: head size limits

#[test]
fn header_line_longer_than_8_kib_is_431() {
    let server = Server::start();
    let before = metric(&server, LIMIT_431);

    // Whole head in one write.
    let long = "a".repeat(9 * 1024);
    let mut s = server.connect();
    send_lenient(
        &mut s,
        format!("GET / HTTP/1.1\r\nHost: root.localhost\r\nX-Long: {long}\r\n\r\n").as_bytes(),
    );
    let r = read_response(&mut s).expect("a 431");
    assert_json_error(&r, 431);
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "closed after 431"
    );

    // The line never ends: the partial-head check must answer without waiting for more.
    let mut s = server.connect();
    send_lenient(
        &mut s,
        format!("GET / HTTP/1.1\r\nHost: root.localhost\r\nX-Long: {long}").as_bytes(),
    );
    let start = Instant::now();
    let r = read_response(&mut s).expect("a 431 for an unfinished long line");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_json_error(&r, 431);
    assert!(closed_within(&mut s, Duration::from_secs(3)));

    // A 7 KiB header line is within the limit.
    let ok_line = "b".repeat(7 * 1024);
    let r = server.request(&format!(
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nX-Ok: {ok_line}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(r.status, 200);
    assert_eq!(r.body, LANDING);

    assert_eq!(metric(&server, LIMIT_431), before + 2);
    assert_eq!(server.get("root.localhost", "/health").status, 200);
}

// ---------------------------------------------------------------------------------------
// 414: the request line (its target) over the 8 KiB line limit

#[test]
fn request_target_longer_than_8_kib_is_414() {
    let server = Server::start();
    let (before_414, before_431) = (metric(&server, LIMIT_414), metric(&server, LIMIT_431));
    let path = format!("/{}", "p".repeat(9 * 1024));

    // Whole request in one write.
    let mut s = server.connect();
    send_lenient(
        &mut s,
        format!("GET {path} HTTP/1.1\r\nHost: root.localhost\r\n\r\n").as_bytes(),
    );
    let r = read_response(&mut s).expect("a 414");
    assert_json_error(&r, 414);
    assert_eq!(r.json()["error"]["code"], "uri_too_long");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("8 KiB"),
        "{}",
        r.text()
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "closed after 414"
    );

    // The target still arriving: answered without waiting for the rest of the line.
    let mut s = server.connect();
    send_lenient(&mut s, format!("GET {path}").as_bytes());
    let start = Instant::now();
    let r = read_response(&mut s).expect("a 414 for an unfinished target");
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    assert_json_error(&r, 414);

    // A 7 KiB target is within the limit.
    let fits = format!("/?q={}", "p".repeat(7 * 1024));
    let r = server.get("root.localhost", &fits);
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));

    assert_eq!(metric(&server, LIMIT_414), before_414 + 2);
    assert_eq!(metric(&server, LIMIT_431), before_431, "a 414 is not a 431");
}

#[test]
fn head_larger_than_64_kib_is_431() {
    let server = Server::start();
    let before = metric(&server, LIMIT_431);
    let value = "v".repeat(1000);
    let head_with = |count: usize| {
        let mut head =
            String::from("GET / HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n");
        for i in 0..count {
            head.push_str(&format!("X-H{i}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    };

    // ~70 KiB in 70 headers (fewer than 100, each line well under 8 KiB).
    let big = head_with(70);
    assert!(big.len() > 64 * 1024);
    let mut s = server.connect();
    send_lenient(&mut s, big.as_bytes());
    let r = read_response(&mut s).expect("a 431");
    assert_json_error(&r, 431);
    assert!(closed_within(&mut s, Duration::from_secs(3)));

    // ~60 KiB is within the limit.
    let fits = head_with(60);
    assert!(fits.len() < 64 * 1024);
    let r = server.request(&fits);
    assert_eq!(r.status, 200, "{}", r.text());

    assert_eq!(metric(&server, LIMIT_431), before + 1);
}

#[test]
fn more_than_100_headers_is_431() {
    let server = Server::start();
    let before = metric(&server, LIMIT_431);
    let head_with = |extra: usize| {
        let mut head = String::from("GET /health HTTP/1.1\r\nHost: root.localhost\r\n");
        for i in 0..extra {
            head.push_str(&format!("X-N{i}: {i}\r\n"));
        }
        head.push_str("\r\n");
        head
    };

    let mut s = server.connect();
    send_lenient(&mut s, head_with(101).as_bytes());
    let r = read_response(&mut s).expect("a 431");
    assert_json_error(&r, 431);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("100"),
        "{}",
        r.text()
    );
    assert!(closed_within(&mut s, Duration::from_secs(3)));

    // Exactly 100 headers (Host + 99) are accepted.
    let mut s = server.connect();
    s.write_all(head_with(99).as_bytes()).unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));

    assert_eq!(metric(&server, LIMIT_431), before + 1);
}

// ---------------------------------------------------------------------------------------
// 408: head deadline

#[test]
fn slow_drip_head_gets_408_at_the_deadline_not_later() {
    let server = Server::builder().env("FAZT_HEADER_TIMEOUT", "1s").start();
    let before = metric(&server, LIMIT_408);
    let mut s = server.connect();
    let mut writer = s.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_drip = stop.clone();
    let start = Instant::now();
    // A byte every 100 ms for up to 5 s: activity must not extend the head deadline.
    let drip = std::thread::spawn(move || {
        let head = b"GET / HTTP/1.1\r\nHost: root.localhost\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        for &b in head.iter().take(50) {
            if stop_drip.load(Ordering::Relaxed) || writer.write_all(&[b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let r = read_response(&mut s).expect("a 408");
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert_json_error(&r, 408);
    assert!(
        elapsed >= Duration::from_millis(900),
        "408 fired early: {elapsed:?}"
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "the drip extended the deadline: 408 after {elapsed:?}"
    );
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "closed after 408"
    );
    drip.join().unwrap();
    drop(s);
    // Exactly once is checked by `a_refused_head_is_answered_and_counted_once`.
    assert!(metric(&server, LIMIT_408) > before);

    // A head dripped slowly but completed within the deadline is served.
    let mut s = server.connect();
    s.set_nodelay(true).unwrap();
    for &b in health_get().as_bytes() {
        s.write_all(&[b]).unwrap();
        std::thread::sleep(Duration::from_millis(12));
    }
    let r = read_response(&mut s).unwrap();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
}

/// After a 408 (or a 400 for a head that was slow to arrive) the connection lingers,
/// discarding input, until the client closes. The head deadline must not fire again
/// during that time: one refused request is one response and one count.
#[test]
fn a_refused_head_is_answered_and_counted_once() {
    let server = Server::builder()
        .env("FAZT_HEADER_TIMEOUT", "1s")
        .admin_listener()
        .start();
    let class_4xx = "fazt_requests_total{class=\"4xx\"}";
    let limit_400 = "fazt_limit_violations_total{status=\"400\"}";
    let (r408, r400, c4xx) = (
        metric(&server, LIMIT_408),
        metric(&server, limit_400),
        metric(&server, class_4xx),
    );

    // A head that never completes: one 408.
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: roo").unwrap();
    assert_json_error(&read_response(&mut s).unwrap(), 408);
    // Keep the connection open across several deadline sweeps (every 200 ms).
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(metric(&server, LIMIT_408), r408 + 1, "408 counted twice");
    assert_eq!(metric(&server, class_4xx), c4xx + 1);
    drop(s);

    // A head that takes 0.9 s and then turns out malformed: one 400, and no 408.
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(900));
    s.write_all(b"Host: bad host\r\n\r\n").unwrap();
    assert_json_error(&read_response(&mut s).unwrap(), 400);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(metric(&server, limit_400), r400 + 1);
    assert_eq!(
        metric(&server, LIMIT_408),
        r408 + 1,
        "a 408 was counted for a request already answered with 400"
    );
    assert_eq!(metric(&server, class_4xx), c4xx + 2);
    assert!(closed_within(&mut s, Duration::from_secs(3)));
}

#[test]
fn body_stalled_past_body_timeout_is_408_and_closed() {
    let server = Server::builder()
        .env("FAZT_BODY_TIMEOUT", "1s")
        .env("FAZT_HEADER_TIMEOUT", "5s")
        .start();
    let mut s = server.connect();
    let head = format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 100\r\n\r\n{{\"name\":",
        server.token
    );
    s.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let r = read_response(&mut s).expect("a 408 for the stalled body");
    let elapsed = start.elapsed();
    assert_json_error(&r, 408);
    assert!(elapsed >= Duration::from_millis(900), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(2500), "{elapsed:?}");
    assert!(closed_within(&mut s, Duration::from_secs(3)));
}

// ---------------------------------------------------------------------------------------
// 413: bodies past the route limit

/// Sends a head that declares a huge body, never the body; expects 413 within a second
/// and the connection closed.
fn expect_413_at_once(addr: std::net::SocketAddr, head: &str) {
    let mut s = connect(addr);
    s.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    let r = read_response(&mut s).expect("a 413 without sending the body");
    let elapsed = start.elapsed();
    assert!(elapsed < Duration::from_secs(1), "413 took {elapsed:?}");
    assert_json_error(&r, 413);
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "connection left open after 413"
    );
}

#[test]
fn huge_declared_content_length_is_413_at_once_and_allocates_nothing() {
    let server = Server::builder().admin_listener().start();
    // Warm up both paths so one-time allocations don't count as growth.
    assert_eq!(server.get("root.localhost", "/").status, 200);
    assert_eq!(
        server
            .admin_get("/api/system/health", Some(&server.token))
            .status,
        200
    );
    let rss_before = rss_kib(&server);
    let before = metric(&server, LIMIT_413);
    let token = &server.token;

    let heads = [
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 100000000000\r\n\r\n".to_string(),
        format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n"
        ),
        // Without a key: the size is refused before authentication needs the body.
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nContent-Length: 100000000000\r\n\r\n"
            .to_string(),
        // More than u64 can hold.
        "POST /x HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 99999999999999999999999999\r\n\r\n"
            .to_string(),
    ];
    for head in &heads {
        expect_413_at_once(server.addr, head);
    }
    // The dedicated admin listener applies the same limit.
    let admin = server.admin_addr.unwrap();
    expect_413_at_once(admin, &heads[1]);

    // With Expect: 100-continue the answer is the 413, never a 100 Continue.
    let mut s = server.connect();
    s.write_all(
        format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\
             Expect: 100-continue\r\nContent-Length: 100000000000\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let r = read_response(&mut s).unwrap();
    assert_json_error(&r, 413);

    assert_eq!(metric(&server, LIMIT_413), before + heads.len() as i64 + 2);
    assert_eq!(server.get("root.localhost", "/health").status, 200);
    assert_eq!(
        server.admin_get("/api/system/health", Some(token)).status,
        200
    );
    let rss_after = rss_kib(&server);
    assert!(
        rss_after < rss_before + 4 * 1024,
        "RSS grew from {rss_before} KiB to {rss_after} KiB"
    );
}

#[test]
fn chunked_body_streaming_past_admin_limit_is_413_and_closed() {
    let server = Server::start();
    let token = server.token.clone();
    let before = metric(&server, LIMIT_413);

    // Just under the 64 KiB limit, chunked: accepted.
    let pad = "p".repeat(60 * 1024);
    let json = format!("{{\"name\":\"big-but-fine\",\"pad\":\"{pad}\"}}");
    let mut body = String::new();
    for piece in json.as_bytes().chunks(7000) {
        body.push_str(&format!("{:x}\r\n", piece.len()));
        body.push_str(std::str::from_utf8(piece).unwrap());
        body.push_str("\r\n");
    }
    body.push_str("0\r\n\r\n");
    let r = server.request(&format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
    ));
    assert_eq!(r.status, 201, "{}", r.text());

    // Past it: 4 KiB chunks, streamed by a thread while this one waits for the answer.
    let mut s = server.connect();
    s.write_all(
        format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\
             Transfer-Encoding: chunked\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let mut writer = s.try_clone().unwrap();
    let stream = std::thread::spawn(move || {
        let mut chunk = b"1000\r\n".to_vec();
        chunk.extend(std::iter::repeat_n(b'x', 4096));
        chunk.extend_from_slice(b"\r\n");
        let mut sent = 0usize;
        // Up to 1 MiB, but the server should cut us off after 64 KiB.
        for _ in 0..256 {
            if writer.write_all(&chunk).is_err() {
                break;
            }
            sent += 4096;
            std::thread::sleep(Duration::from_millis(2));
        }
        sent
    });
    let r = read_response(&mut s).expect("a 413 for the streamed body");
    assert_json_error(&r, 413);
    assert!(
        closed_within(&mut s, Duration::from_secs(3)),
        "closed after 413"
    );
    let sent = stream.join().unwrap();
    assert!(sent < 1024 * 1024, "the server kept reading past the limit");
    assert_eq!(metric(&server, LIMIT_413), before + 1);
    assert_eq!(server.get("root.localhost", "/health").status, 200);
}

#[test]
fn content_length_body_past_public_limit_is_413() {
    let server = Server::start();
    // A real body of 65 KiB + 1 on a public route, sent in full.
    let body = vec![b'z'; 64 * 1024 + 1];
    let mut s = server.connect();
    let head = format!(
        "POST /track HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    send_lenient(&mut s, &body);
    let r = read_response(&mut s).expect("a 413");
    assert_json_error(&r, 413);
}

// ---------------------------------------------------------------------------------------
// 503: the connection cap

#[test]
fn connections_past_the_cap_get_503_and_service_resumes() {
    let server = Server::builder()
        .env("FAZT_MAX_CONNECTIONS", "4")
        .admin_listener()
        .start();
    let rejected_before = metric(&server, "fazt_connections_rejected_total");

    // Four holders, each proven accepted by a keep-alive request.
    let mut holders = Vec::new();
    for _ in 0..4 {
        let mut s = server.connect();
        s.write_all(health_get().as_bytes()).unwrap();
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
        holders.push(s);
    }

    // The fifth, without sending anything, and a sixth that sends a request.
    for send_request in [false, true] {
        let mut s = server.connect();
        if send_request {
            s.write_all(health_get().as_bytes()).unwrap();
        }
        let start = Instant::now();
        let r = read_response(&mut s).expect("a 503 past the cap");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        assert_json_error(&r, 503);
        assert_eq!(r.json()["error"]["code"], "unavailable");
        let retry: u64 = r
            .header("retry-after")
            .expect("Retry-After on 503")
            .parse()
            .expect("Retry-After in seconds");
        assert!(retry >= 1);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(
            closed_within(&mut s, Duration::from_secs(2)),
            "closed after 503"
        );
    }
    assert_eq!(
        metric(&server, "fazt_connections_rejected_total"),
        rejected_before + 2
    );

    // Holders are still served.
    for s in holders.iter_mut() {
        s.write_all(health_get().as_bytes()).unwrap();
        assert_eq!(read_response(s).unwrap().status, 200);
    }

    drop(holders);
    let deadline = Instant::now() + Duration::from_secs(3);
    let status = loop {
        let status = server.get("root.localhost", "/health").status;
        if status == 200 || Instant::now() >= deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        status, 200,
        "service did not resume after the holders closed"
    );
    // And all four slots are usable again, once the server has seen every holder's close
    // (one answered request above proves only the first).
    let deadline = Instant::now() + Duration::from_secs(3);
    let statuses = loop {
        let mut again = Vec::new();
        let mut statuses = Vec::new();
        for _ in 0..4 {
            let mut s = server.connect();
            s.write_all(health_get().as_bytes()).unwrap();
            statuses.push(read_response(&mut s).map_or(0, |r| r.status));
            again.push(s);
        }
        if statuses.iter().all(|&s| s == 200) || Instant::now() >= deadline {
            break statuses;
        }
        drop(again);
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        statuses, [200; 4],
        "four connections at once after the holders left"
    );
}

// ---------------------------------------------------------------------------------------
// stalled and non-reading clients

#[test]
fn stalled_half_open_connections_do_not_block_service() {
    let server = Server::builder()
        .env("FAZT_MAX_CONNECTIONS", "1000")
        // All 300 come from 127.0.0.1; the per-client share is fair_shares.rs's subject.
        .env("FAZT_CONNS_PER_CLIENT", "1000")
        .env("FAZT_HEADER_TIMEOUT", "2s")
        .admin_listener()
        .start();
    let mut stalled = Vec::new();
    for i in 0..300 {
        let mut s = server.connect();
        match i % 3 {
            0 => {}
            1 => s.write_all(b"GET / HTTP/1.1\r\nHost: roo").unwrap(),
            _ => s.write_all(b"POST /api/keys HTTP/1.1\r\n").unwrap(),
        }
        stalled.push(s);
    }
    let open = wait_metric(
        &server,
        "fazt_connections_open",
        Duration::from_secs(3),
        |v| v >= 300,
    );
    assert!(open >= 300, "only {open} connections open");

    for _ in 0..5 {
        let (status, took) = timed_health(&server);
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_secs(1),
            "request took {took:?} next to stalled ones"
        );
    }
    let start = Instant::now();
    let r = server.get("root.localhost", "/");
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));
    assert!(start.elapsed() < Duration::from_secs(1));

    // The header deadline clears them all out: slots are freed, partial heads get 408.
    let open = wait_metric(
        &server,
        "fazt_connections_open",
        Duration::from_secs(8),
        |v| v <= 1,
    );
    assert!(
        open <= 1,
        "{open} connections still open after the header deadline"
    );
    let (closed, _, got) = wait_for_close(&mut stalled[1], Duration::from_secs(1));
    assert!(closed);
    assert!(
        got.starts_with(b"HTTP/1.1 408 "),
        "partial head: {}",
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn non_reading_client_is_cut_off_and_others_are_served() {
    let server = Server::builder()
        .env("FAZT_WRITE_TIMEOUT", "1s")
        .admin_listener()
        .start();
    let before = metric(&server, "fazt_write_timeouts_total");
    let request = "GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n";
    let batch = request.repeat(20_000).into_bytes();

    let sink = server.connect();
    let mut writer = sink.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let start = Instant::now();
    let flood = std::thread::spawn(move || {
        let result = writer.write_all(&batch);
        (result.is_ok(), start.elapsed())
    });

    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..10 {
        let (status, took) = timed_health(&server);
        assert_eq!(status, 200);
        assert!(
            took < Duration::from_secs(1),
            "{took:?} while a client is not reading"
        );
    }
    let landing = server.get("root.localhost", "/");
    assert_eq!((landing.status, landing.body.as_slice()), (200, LANDING));

    let timeouts = wait_metric(
        &server,
        "fazt_write_timeouts_total",
        Duration::from_secs(6),
        |v| v > before,
    );
    assert_eq!(timeouts, before + 1, "the non-reader was not cut off");
    assert!(start.elapsed() < Duration::from_secs(7));

    // The writer is never left hanging: its requests either fit in the socket buffers
    // or the write fails once the server has closed.
    let (_all_written, took) = flood.join().unwrap();
    assert!(took < Duration::from_secs(8), "{took:?}");

    // What the kernel buffered for the non-reader ends in EOF or reset.
    let mut sink = sink;
    assert!(closed_within(&mut sink, Duration::from_secs(5)));
    assert_eq!(server.get("root.localhost", "/health").status, 200);
}

// ---------------------------------------------------------------------------------------
// idle and header deadlines without traffic

#[test]
fn idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let server = Server::builder()
        .env("FAZT_IDLE_TIMEOUT", "1s")
        .env("FAZT_HEADER_TIMEOUT", "10s")
        .start();

    let mut idle = server.connect();
    idle.write_all(health_get().as_bytes()).unwrap();
    assert_eq!(read_response(&mut idle).unwrap().status, 200);
    let (closed, took, got) = wait_for_close(&mut idle, Duration::from_secs(4));
    assert!(closed, "idle connection still open after {took:?}");
    assert!(
        got.is_empty(),
        "unexpected bytes: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(took >= Duration::from_millis(800), "closed early: {took:?}");
    assert!(took < Duration::from_secs(3), "closed late: {took:?}");

    // A connection used every 400 ms outlives the idle timeout.
    let mut busy = server.connect();
    for _ in 0..6 {
        busy.write_all(health_get().as_bytes()).unwrap();
        assert_eq!(read_response(&mut busy).unwrap().status, 200);
        std::thread::sleep(Duration::from_millis(400));
    }
    busy.write_all(health_get().as_bytes()).unwrap();
    assert_eq!(read_response(&mut busy).unwrap().status, 200);
}

#[test]
fn silent_connection_is_closed_after_header_timeout_not_idle_timeout() {
    let server = Server::builder()
        .env("FAZT_HEADER_TIMEOUT", "2s")
        .env("FAZT_IDLE_TIMEOUT", "500ms")
        .start();
    let mut s = server.connect();
    let start = Instant::now();
    let (closed, _, got) = wait_for_close(&mut s, Duration::from_secs(5));
    let took = start.elapsed();
    assert!(closed, "silent connection never closed");
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 408 "),
        "unexpected bytes: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        took >= Duration::from_millis(1800),
        "closed early: {took:?}"
    );
    assert!(took < Duration::from_millis(3500), "closed late: {took:?}");
}

#[test]
fn chunked_trailers_past_16_kib_are_431() {
    let server = Server::start();
    let mut s = server.connect();
    let mut raw = format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n",
        server.token
    );
    for i in 0..10 {
        raw.push_str(&format!("X-T{i}: {}\r\n", "t".repeat(2000)));
    }
    raw.push_str("\r\n");
    send_lenient(&mut s, raw.as_bytes());
    let r = read_response(&mut s).expect("a 431 for the trailers");
    assert_json_error(&r, 431);
    assert!(closed_within(&mut s, Duration::from_secs(2)));
}

// ---------------------------------------------------------------------------------------
// out of file descriptors

/// Sets the soft RLIMIT_NOFILE of `pid`, keeping its hard limit; returns the old soft limit.
fn set_soft_nofile(pid: u32, soft: u64) -> u64 {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY (test code): prlimit(2) on our own child's pid with valid pointers.
    let ret = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(ret, 0, "prlimit read: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: old.rlim_max,
    };
    let ret = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_NOFILE,
            &new,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(ret, 0, "prlimit set: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

#[test]
fn running_out_of_file_descriptors_pauses_accepting_and_recovers() {
    let server = Server::builder()
        .env("FAZT_MAX_CONNECTIONS", "1000")
        .admin_listener()
        .start();
    let pid = server.child.id();
    let errors_before = metric(&server, "fazt_accept_errors_total");
    let open_fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count() as u64;
    let old_soft = set_soft_nofile(pid, open_fds + 6);

    // 20 clients each send a request; only a few can be accepted.
    let mut clients: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(health_get().as_bytes()).unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut answered = Vec::new();
    let mut waiting = Vec::new();
    for (i, s) in clients.iter_mut().enumerate() {
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        match read_response(s) {
            Ok(r) => {
                assert_eq!(r.status, 200);
                answered.push(i);
            }
            Err(_) => waiting.push(i),
        }
    }
    assert!(!answered.is_empty(), "nothing was served at the fd limit");
    assert!(!waiting.is_empty(), "the fd limit did not bite");

    // Accepted connections keep working while accept() fails.
    for &i in &answered {
        clients[i]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        clients[i].write_all(health_get().as_bytes()).unwrap();
        let again = read_response(&mut clients[i]);
        let again = again.unwrap_or_else(|e| panic!("client {i} (answered {answered:?}): {e}"));
        assert_eq!(again.status, 200);
    }

    // Freeing descriptors lets the waiting clients in: accepting resumed by itself.
    for &i in &answered {
        clients[i].shutdown(std::net::Shutdown::Both).unwrap();
    }
    let start = Instant::now();
    let mut served_after = 0;
    for &i in &waiting {
        let s = &mut clients[i];
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        if let Ok(r) = read_response(s) {
            assert_eq!(r.status, 200);
            served_after += 1;
            // Free this one too so the next waiting client gets a descriptor.
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
    assert_eq!(
        served_after,
        waiting.len(),
        "waiting clients were not served after descriptors were freed"
    );
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    drop(clients);

    set_soft_nofile(pid, old_soft);
    assert!(metric(&server, "fazt_accept_errors_total") > errors_before);
    assert_eq!(server.get("root.localhost", "/health").status, 200);
}

/// The harness can play other clients: a connection bound to 127.0.0.2 is served like any
/// other (the per-client limits' tests rely on this).
#[test]
fn a_second_loopback_address_is_served() {
    let server = Server::start();
    let response = raw_request_from(loopback(2), server.addr, health_get());
    assert_eq!(response.status, 200, "{}", response.text());
}
