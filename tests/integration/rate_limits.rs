//! Per-client rate limits against the real binary (issue #11): ingestion token buckets on
//! `/track`, `/pixel.gif`, `/r/` and `/webhook/`, and the throttle on failed API keys.
//! Clients are played from different loopback addresses (127.0.0.2, .3, …).
use crate::common::source::{connect_from, loopback, raw_request_from};
use crate::common::*;
use serde_json::json;
use std::io::Write;
use std::time::Instant;

/// One request from `127.0.0.n` on a fresh connection.
fn from(
    server: &Server,
    n: u8,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let bytes = request_bytes(method, host, path, headers, body);
    raw_request_from(loopback(n), server.addr, bytes)
}

fn track_body(domain: &str, path: &str) -> Vec<u8> {
    json!({"d": domain, "p": path}).to_string().into_bytes()
}

fn retry_after(r: &HttpResponse) -> u64 {
    let value = r.header("retry-after").expect("Retry-After on a 429");
    value.parse().expect("Retry-After in whole seconds")
}

fn assert_rate_limited_json(r: &HttpResponse) {
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(retry_after(r) >= 1);
    let body = r.json();
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
}

/// With the default limit (20 a second, 100 at once), a pipelined flood of 300 events from
/// one address is cut to its burst plus what refilled, and answered 429; another address
/// is still accepted and its events are committed.
#[test]
fn a_track_flood_from_one_address_gets_429_while_another_is_served() {
    let server = Server::builder()
        .env("FAZT_INGEST_RATE", "") // empty: the default
        .env("FAZT_EVENT_FLUSH", "50ms")
        .start();
    const FLOOD: usize = 300;
    let body = track_body("flood.test", "/x");
    let one = format!(
        "POST /track HTTP/1.1\r\nHost: flood.test\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        String::from_utf8_lossy(&body)
    );
    let mut stream = connect_from(loopback(2), server.addr);
    let mut writer = stream.try_clone().unwrap();
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        for _ in 0..FLOOD {
            writer.write_all(one.as_bytes()).unwrap();
        }
    });
    let (mut accepted, mut refused) = (0usize, 0usize);
    for _ in 0..FLOOD {
        let r = read_response(&mut stream).expect("a response to each pipelined event");
        match r.status {
            204 => accepted += 1,
            429 => {
                refused += 1;
                assert_rate_limited_json(&r);
                assert_eq!(r.header("access-control-allow-origin"), Some("*"));
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    sender.join().unwrap();
    let most = 100 + (20.0 * elapsed).ceil() as usize + 1;
    assert!(
        (100..=most).contains(&accepted),
        "{accepted} accepted in {elapsed:.2} s"
    );
    assert_eq!(accepted + refused, FLOOD);

    // Another client is not affected, and its events reach the database.
    for i in 0..3 {
        let r = from(
            &server,
            3,
            "POST",
            "other.test",
            "/track",
            &[],
            &track_body("other.test", &format!("/page{i}")),
        );
        assert_eq!(r.status, 204, "{}", r.text());
    }
    wait_events(&server, "site=other.test", 3);
    // Every 204 was an event committed, every 429 none.
    wait_events(&server, "site=flood.test&limit=1000", accepted);
    assert_eq!(
        metric(
            &server,
            "fazt_ingest_rate_limited_total{endpoint=\"track\"}"
        ),
        refused as u64
    );
    // A preflight is never counted, even from the flooding address.
    let r = from(&server, 2, "OPTIONS", "flood.test", "/track", &[], b"");
    assert_eq!(r.status, 204);
}

/// The pixel, short links and webhooks share one bucket per address; each endpoint is
/// driven from its own address. Over the limit the pixel still answers its GIF (status
/// 429) and a short link still redirects, without recording the click.
#[test]
fn pixel_redirect_and_webhook_limits_hold() {
    let server = Server::builder()
        .env("FAZT_INGEST_RATE", "1")
        .env("FAZT_INGEST_BURST", "2")
        .env("FAZT_EVENT_FLUSH", "50ms")
        .start();
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "promo", "url": "https://example.com/landing"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin_post(&server, "/api/webhooks", &json!({"endpoint": "hook"}));
    assert!(r.status == 200 || r.status == 201, "{}", r.text());

    let pixel = |n| {
        from(
            &server,
            n,
            "GET",
            "px.test",
            "/pixel.gif?domain=px.test",
            &[],
            b"",
        )
    };
    let first = pixel(4);
    assert_eq!(first.status, 200);
    assert_eq!(pixel(4).status, 200);
    let over = pixel(4);
    assert_eq!(over.status, 429);
    assert!(retry_after(&over) >= 1);
    assert_eq!(over.header("content-type"), Some("image/gif"));
    assert_eq!(over.body, first.body, "the same 1x1 GIF");
    assert!(over
        .header("cache-control")
        .unwrap_or("")
        .contains("no-store"));

    for _ in 0..4 {
        let r = from(&server, 5, "GET", "links.test", "/r/promo", &[], b"");
        assert_eq!(r.status, 302, "a visitor is always redirected");
        assert_eq!(r.header("location"), Some("https://example.com/landing"));
    }

    let hook = |n| {
        from(
            &server,
            n,
            "POST",
            "x.test",
            "/webhook/hook",
            &[],
            b"{\"event\":\"push\"}",
        )
    };
    assert_eq!(hook(6).status, 200);
    assert_eq!(hook(6).status, 200);
    assert_rate_limited_json(&hook(6));
    // Another address still gets through on each endpoint.
    assert_eq!(hook(7).status, 200);
    assert_eq!(pixel(7).status, 200);

    // Two clicks recorded of the four redirects; a marker from a fresh address, committed
    // after them, shows nothing else is on its way.
    let r = from(
        &server,
        8,
        "POST",
        "marker.test",
        "/track",
        &[],
        &track_body("marker.test", "/m"),
    );
    assert_eq!(r.status, 204);
    wait_events(&server, "site=marker.test", 1);
    wait_events(&server, "site=links.test", 2);
    wait_events(&server, "site=px.test", 3);

    let limited = |endpoint: &str| {
        metric(
            &server,
            &format!("fazt_ingest_rate_limited_total{{endpoint=\"{endpoint}\"}}"),
        )
    };
    assert_eq!(limited("pixel"), 1);
    assert_eq!(limited("redirect"), 2);
    assert_eq!(limited("webhook"), 1);
    assert_eq!(limited("track"), 0);
}

/// After N wrong keys in a minute an address gets 429 with Retry-After, before its key is
/// looked at (even the right one, even on deploys); another address with the right key
/// is served; a request without a key is not a failed attempt; metrics count both.
#[test]
fn failed_api_keys_are_throttled_per_address() {
    let server = Server::builder().env("FAZT_AUTH_FAILURES", "3").start();
    let bearer = |token: &str| format!("Bearer {token}");
    let wrong =
        bearer("fzt_00000000_0000000000000000000000000000000000000000000000000000000000000000");
    let right = bearer(&server.token);
    let keys = |n, auth: &str| {
        from(
            &server,
            n,
            "GET",
            "admin.localhost",
            "/api/keys",
            &[("Authorization", auth)],
            b"",
        )
    };

    for _ in 0..3 {
        let r = keys(2, &wrong);
        assert_eq!(r.status, 401, "{}", r.text());
    }
    let r = keys(2, &wrong);
    assert_rate_limited_json(&r);
    assert!(retry_after(&r) <= 60, "{:?}", r.header("retry-after"));
    // Throttled before the key is checked: the right key from that address waits too.
    assert_rate_limited_json(&keys(2, &right));
    // Deploys share the throttle (refused from the head, before any upload is read).
    let r = from(
        &server,
        2,
        "POST",
        "admin.localhost",
        "/api/deploy?site=blog",
        &[
            ("Authorization", &wrong),
            ("Content-Type", "application/zip"),
        ],
        b"PK",
    );
    assert_rate_limited_json(&r);

    // Another address with the right key is served.
    let r = keys(3, &right);
    assert_eq!(r.status, 200, "{}", r.text());
    // No key at all is not an attempt: never throttled.
    for _ in 0..5 {
        let r = from(&server, 4, "GET", "admin.localhost", "/api/keys", &[], b"");
        assert_eq!(r.status, 401, "{}", r.text());
    }

    assert_eq!(metric(&server, "fazt_auth_failures_total"), 3);
    assert_eq!(metric(&server, "fazt_auth_throttled_total"), 3);
    let health = get_json(&server, "/api/system/health");
    assert_eq!(health["auth"]["failures"], 3, "{health}");
    assert_eq!(health["auth"]["throttled"], 3, "{health}");
}

/// Behind a trusted proxy the client its `X-Forwarded-For` names is limited, not the proxy;
/// an IPv6 /64 is one client. An untrusted peer's header is ignored: its own address counts.
#[test]
fn a_trusted_proxy_s_clients_are_limited_apart_and_a_v6_64_is_one() {
    let server = Server::builder()
        .env("FAZT_INGEST_RATE", "1")
        .env("FAZT_INGEST_BURST", "2")
        .env("FAZT_TRUSTED_PROXIES", "127.0.0.1")
        .start();
    let track = |n: u8, client: &str| {
        from(
            &server,
            n,
            "POST",
            "proxied.test",
            "/track",
            &[("X-Forwarded-For", client)],
            &track_body("proxied.test", "/p"),
        )
        .status
    };
    // Through the proxy (127.0.0.1): two clients, each with its own burst of two.
    assert_eq!(track(1, "203.0.113.5"), 204);
    assert_eq!(track(1, "203.0.113.5"), 204);
    assert_eq!(track(1, "203.0.113.5"), 429);
    assert_eq!(track(1, "203.0.113.6"), 204);
    // One /64: two addresses share a bucket; the next /64 has its own.
    assert_eq!(track(1, "2001:db8:1:2::1"), 204);
    assert_eq!(track(1, "2001:db8:1:2:ffff::9"), 204);
    assert_eq!(track(1, "2001:db8:1:2::abcd"), 429);
    assert_eq!(track(1, "2001:db8:1:3::1"), 204);
    // 127.0.0.9 is not a trusted proxy: the header is its own word, and it is ignored.
    assert_eq!(track(9, "198.51.100.1"), 204);
    assert_eq!(track(9, "198.51.100.2"), 204);
    assert_eq!(track(9, "198.51.100.3"), 429);
    assert_eq!(
        metric(
            &server,
            "fazt_ingest_rate_limited_total{endpoint=\"track\"}"
        ),
        3
    );
}

fn metric(server: &Server, series: &str) -> u64 {
    metric_value(server, series).unwrap_or_else(|| panic!("{series} is not in /metrics"))
}
