//! Analytics ingestion against the real binary: `/track`, `/pixel.gif`, `/r/<slug>`,
//! `/webhook/<endpoint>` and hosted pageviews (DESIGN §3–§6, D4); what reaches the
//! database (and what never does: raw IPs, user agents); `X-Forwarded-For` only from
//! trusted proxies; a full event channel; and SIGTERM under a sustained ingest load.
use crate::common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use std::io::{self, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Go fazt's 1×1 GIF, as the issue gives it.
const PIXEL_B64: &str = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7";

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Records a marker event and waits until it is committed. Events go through one FIFO
/// channel, so everything recorded before the marker has been committed too: what is not
/// listed by then was never recorded.
fn flush(server: &Server, name: &str) {
    let r = track(server, &json!({"d": "marker.test", "p": name}).to_string());
    assert_eq!(r.status, 204, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if events(server, "site=marker.test")
            .iter()
            .any(|e| e["path"] == name)
        {
            return;
        }
        assert!(Instant::now() < deadline, "marker {name} never committed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every event not from the marker site, oldest first.
fn non_marker_events(server: &Server) -> Vec<Value> {
    let mut list: Vec<Value> = events(server, "limit=1000")
        .into_iter()
        .filter(|e| e["domain"] != "marker.test")
        .collect();
    list.reverse();
    list
}

fn error_text(r: &HttpResponse) -> String {
    let body = r.json();
    assert!(body["error"]["code"].is_string(), "error shape: {body}");
    body["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn base64_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().filter(|&c| c != b'=') {
        let v = ALPHABET.iter().position(|&a| a == c).expect("base64") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A sample of a Prometheus counter from `/metrics` text.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{series} missing from\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A keep-alive client that reconnects after the server closes; used by the load tests.
struct Client {
    addr: SocketAddr,
    stream: Option<TcpStream>,
}

impl Client {
    fn new(addr: SocketAddr) -> Client {
        Client { addr, stream: None }
    }

    fn send(&mut self, request: &[u8]) -> io::Result<HttpResponse> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(2))?;
            s.set_read_timeout(Some(Duration::from_secs(10)))?;
            s.set_write_timeout(Some(Duration::from_secs(10)))?;
            self.stream = Some(s);
        }
        let stream = self.stream.as_mut().expect("connected");
        let result = stream
            .write_all(request)
            .and_then(|()| read_response(stream));
        let close = match &result {
            Ok(r) => r
                .header("connection")
                .is_some_and(|v| v.eq_ignore_ascii_case("close")),
            Err(_) => true,
        };
        if close {
            self.stream = None;
        }
        result
    }
}

fn keep_alive_track(body: &str) -> Vec<u8> {
    format!(
        "POST /track HTTP/1.1\r\nHost: load.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

// ---------------------------------------------------------------------------------------
// /track
// ---------------------------------------------------------------------------------------

#[test]
fn track_records_an_event_and_answers_204_with_cors() {
    let server = fast_server();
    let body = json!({
        "d": "Shop.Example",
        "p": "/pricing",
        "t": ["launch", "ads, spring"],
        "ref": "https://www.Search.example/results?q=fazt",
        "q": {"plan": "pro", "seats": 5, "annual": true, "ratio": 0.5}
    });
    let r = track(&server, &body.to_string());
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r.body.is_empty());

    let list = wait_events(&server, "", 1);
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["domain"], "shop.example", "domain is lower-cased: {e}");
    assert_eq!(e["path"], "/pricing");
    assert_eq!(e["type"], "pageview", "the default type: {e}");
    assert_eq!(e["source"], "track");
    assert_eq!(e["referrer"], "www.search.example", "ref → its host: {e}");
    assert_eq!(e["tags"], json!(["launch", "ads", "spring"]));
    assert_eq!(
        e["q"],
        json!({"plan": "pro", "seats": 5, "annual": true, "ratio": 0.5}),
        "numbers and booleans of q come back as JSON: {e}"
    );
    assert!(e["ts"].as_i64().unwrap() > 1_600_000_000);
    assert!(e["id"].as_i64().unwrap() >= 1);
}

#[test]
fn track_event_type_is_taken_from_e() {
    let server = fast_server();
    let r = track(&server, r#"{"d":"a.test","p":"/signup","e":"signup"}"#);
    assert_eq!(r.status, 204);
    let list = wait_events(&server, "", 1);
    assert_eq!(list[0]["type"], "signup");
    assert_eq!(list[0]["q"], Value::Null);
    assert_eq!(list[0]["tags"], json!([]));
    assert_eq!(list[0]["referrer"], Value::Null);
}

#[test]
fn track_keeps_at_most_20_tags_of_at_most_100_characters() {
    let server = fast_server();
    let mut tags: Vec<String> = (0..25).map(|i| format!("tag{i:02}")).collect();
    tags[0] = "L".repeat(150);
    let r = track(&server, &json!({"d": "tags.test", "t": tags}).to_string());
    assert_eq!(r.status, 204);
    let list = wait_events(&server, "", 1);
    let kept = list[0]["tags"].as_array().unwrap();
    assert_eq!(kept.len(), 20, "{kept:?}");
    assert_eq!(kept[0].as_str().unwrap().len(), 100);
    assert_eq!(kept[19], "tag19");
}

#[test]
fn track_preflight_and_wrong_methods() {
    let server = Server::start();
    let r = send(
        &server,
        "OPTIONS",
        "collector.test",
        "/track",
        &[
            ("Origin", "https://blog.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        b"",
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    let methods = r.header("access-control-allow-methods").unwrap_or("");
    assert!(methods.contains("POST"), "{methods}");
    assert!(methods.contains("OPTIONS"), "{methods}");
    let headers = r.header("access-control-allow-headers").unwrap_or("");
    assert!(
        headers.to_ascii_lowercase().contains("content-type"),
        "{headers}"
    );

    for method in ["GET", "PUT"] {
        let r = send(&server, method, "collector.test", "/track", &[], b"{}");
        assert_eq!(r.status, 405, "{method}: {}", r.text());
        let allow = r.header("allow").unwrap_or("");
        assert!(allow.contains("POST"), "{method}: Allow {allow:?}");
        assert!(!error_text(&r).is_empty());
    }
}

#[test]
fn track_rejects_bad_bodies_naming_the_field() {
    let server = fast_server();
    let cases = [
        ("{not json", "JSON"),
        ("", "JSON"),
        ("[1,2]", "object"),
        (r#"{"p": 5}"#, "'p'"),
        (r#"{"h": 1}"#, "'h'"),
        (r#"{"d": ["a"]}"#, "'d'"),
        (r#"{"e": true}"#, "'e'"),
        (r#"{"ref": 3}"#, "'ref'"),
        (r#"{"t": "a,b"}"#, "'t'"),
        (r#"{"t": [1]}"#, "'t'"),
        (r#"{"q": {"x": {"y": 1}}}"#, "'q.x'"),
        (r#"{"q": {"x": [1]}}"#, "'q.x'"),
        (r#"{"q": [1]}"#, "'q'"),
        (r#"{"q": "a=b"}"#, "'q'"),
    ];
    for (body, needle) in cases {
        let r = track(&server, body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(
            r.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{body}"
        );
        let message = error_text(&r);
        assert!(message.contains(needle), "{body}: {message}");
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("*"),
            "a page can read why its beacon failed: {body}"
        );
    }
    flush(&server, "/after-bad-bodies");
    assert_eq!(
        non_marker_events(&server),
        Vec::<Value>::new(),
        "nothing recorded"
    );
}

#[test]
fn track_body_limit_is_10_kib() {
    let server = fast_server();
    // Exactly 10 KiB of valid JSON is accepted.
    let prefix = r#"{"d":"big.test","p":""#;
    let suffix = r#""}"#;
    let fill = "x".repeat(10 * 1024 - prefix.len() - suffix.len());
    let body = format!("{prefix}{fill}{suffix}");
    assert_eq!(body.len(), 10 * 1024);
    assert_eq!(track(&server, &body).status, 204);
    // One byte more is refused before it is parsed.
    let body = format!("{prefix}{fill}x{suffix}");
    let r = track(&server, &body);
    assert_eq!(r.status, 413, "{}", r.text());
    // Much more, too.
    let r = track(&server, &format!("{prefix}{}{suffix}", "y".repeat(200_000)));
    assert_eq!(r.status, 413);

    // A chunked body is held to the same limit as it streams in.
    let chunked = |body: &str| {
        let mut raw = b"POST /track HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
            Transfer-Encoding: chunked\r\n\r\n"
            .to_vec();
        for piece in body.as_bytes().chunks(1000) {
            raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
            raw.extend_from_slice(piece);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"0\r\n\r\n");
        raw_request(server.addr, raw)
    };
    let r = chunked(&format!(
        r#"{{"d":"big.test","p":"/chunked-over","x":"{}"}}"#,
        "c".repeat(12_000)
    ));
    assert_eq!(r.status, 413, "streamed past 10 KiB: {}", r.text());
    let r = chunked(r#"{"d":"chunked.test","p":"/chunked"}"#);
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(wait_events(&server, "site=chunked.test", 1).len(), 1);

    let list = wait_events(&server, "site=big.test", 1);
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0]["path"].as_str().unwrap().chars().count(),
        500,
        "long fields are clipped to 500 characters"
    );
    flush(&server, "/after-413");
    assert_eq!(events(&server, "site=big.test").len(), 1);
}

#[test]
fn track_domain_precedence_is_d_then_h_then_referer_and_none_is_refused() {
    let server = fast_server();
    let referer = [("Referer", "https://From-Referer.example:8443/page?x=1")];
    let cases = [
        (
            json!({"d": "d.example", "h": "h.example", "p": "/1"}),
            "d.example",
        ),
        (json!({"h": "h.example", "p": "/2"}), "h.example"),
        (json!({"p": "/3"}), "from-referer.example"),
        (
            json!({"d": "  ", "h": "", "p": "/4"}),
            "from-referer.example",
        ),
    ];
    for (body, _) in &cases {
        let r = track_with(&server, &body.to_string(), &referer);
        assert_eq!(r.status, 204);
    }
    // No domain at all is no site this server serves.
    let r = track(&server, r#"{"p":"/5"}"#);
    assert_eq!(r.status, 400, "{}", r.text());

    let list = wait_events(&server, "", 4);
    let domain_of = |path: &str| {
        list.iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} missing: {list:?}"))["domain"]
            .clone()
    };
    for (body, want) in &cases {
        let path = body["p"].as_str().unwrap();
        assert_eq!(domain_of(path), *want, "{body}");
    }
    // The Referer header's host is the site here, so it is no referrer (a self-referral).
    let third = list.iter().find(|e| e["path"] == "/3").unwrap();
    assert_eq!(third["referrer"], Value::Null);
    let first = list.iter().find(|e| e["path"] == "/1").unwrap();
    assert_eq!(first["referrer"], "from-referer.example");
}

#[test]
fn track_accepts_send_beacon_text_plain_and_no_content_type() {
    let server = fast_server();
    let body = r#"{"d":"beacon.test","p":"/b1"}"#;
    let r = send(
        &server,
        "POST",
        "collector.test",
        "/track",
        &[("Content-Type", "text/plain;charset=UTF-8")],
        body.as_bytes(),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let body = r#"{"d":"beacon.test","p":"/b2"}"#;
    let r = send(&server, "POST", "x", "/track", &[], body.as_bytes());
    assert_eq!(r.status, 204, "{}", r.text());
    let list = wait_events(&server, "site=beacon.test", 2);
    let paths: Vec<&str> = list.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["/b1", "/b2"]);
}

#[test]
fn track_answers_on_every_host() {
    let server = fast_server();
    for host in [
        "admin.localhost",
        "root.localhost",
        "blog.localhost",
        "other.org",
    ] {
        let r = send(
            &server,
            "POST",
            host,
            "/track",
            &[],
            br#"{"d":"hosts.test"}"#,
        );
        assert_eq!(r.status, 204, "{host}: {}", r.text());
    }
    assert_eq!(wait_events(&server, "site=hosts.test", 4).len(), 4);
}

// ---------------------------------------------------------------------------------------
// /pixel.gif
// ---------------------------------------------------------------------------------------

fn assert_pixel(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 200, "{what}");
    assert_eq!(r.body, base64_decode(PIXEL_B64), "{what}: the 42-byte GIF");
    assert_eq!(r.body.len(), 42);
    assert_eq!(r.header("content-type"), Some("image/gif"), "{what}");
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(r.header("pragma"), None, "{what}");
    assert_eq!(r.header("expires"), None, "{what}");
}

#[test]
fn pixel_is_the_go_gif_and_records_its_params() {
    let server = fast_server();
    let r = server.get(
        "any.host",
        "/pixel.gif?domain=News.Example&tags=email%2Cweekly,%20promo&source=newsletter",
    );
    assert_pixel(&r, "with params");

    // Without params: the Referer's host, type "pixel".
    let r = send(
        &server,
        "GET",
        "any.host",
        "/pixel.gif",
        &[("Referer", "https://Mail.Example/inbox")],
        b"",
    );
    assert_pixel(&r, "referer only");

    let list = wait_events(&server, "", 2);
    assert_eq!(list.len(), 2, "{list:?}");
    let first = &list[0];
    assert_eq!(first["domain"], "news.example");
    assert_eq!(first["source"], "pixel");
    assert_eq!(first["type"], "newsletter", "source param → type: {first}");
    assert_eq!(first["tags"], json!(["email", "weekly", "promo"]));
    let second = &list[1];
    assert_eq!(second["domain"], "mail.example");
    assert_eq!(second["type"], "pixel");
    assert_eq!(
        second["referrer"],
        Value::Null,
        "its own host is no referrer"
    );
}

#[test]
fn pixel_is_answered_for_weird_params() {
    let server = fast_server();
    // Long values (under the request-line limit) are clipped, not refused.
    let long = "z".repeat(700);
    let paths = [
        "/pixel.gif?".to_string(),
        "/pixel.gif?&&&=&==&%".to_string(),
        "/pixel.gif?domain=%zz%4&tags=%E0%A4&source=%00".to_string(),
        "/pixel.gif?domain=&tags=,,,&source=".to_string(),
        "/pixel.gif?domain=a.test&domain=b.test&tags=x&tags=y".to_string(),
        format!("/pixel.gif?domain={long}&tags={long}&source={long}"),
        "/pixel.gif?tags=%2C%2C%2C&domain=%20%20".to_string(),
    ];
    for (i, path) in paths.iter().enumerate() {
        let r = server.get("weird.test", path);
        assert_pixel(&r, &format!("weird params #{i}"));
    }
    // Only a domain this server accepts records an event (the others are no site).
    flush(&server, "/after-pixels");
    let list = non_marker_events(&server);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["source"], "pixel");
    assert_eq!(list[0]["domain"], "a.test", "the first value wins");
    assert_eq!(list[0]["tags"], json!(["x"]));
}

// ---------------------------------------------------------------------------------------
// /r/<slug>
// ---------------------------------------------------------------------------------------

#[test]
fn short_link_redirects_and_counts_the_click() {
    let server = fast_server();
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "promo", "url": "https://example.com/landing?utm=x", "tags": "spring, email"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let r = send(
        &server,
        "GET",
        "links.test",
        "/r/promo?tags=extra",
        &[("Referer", "https://social.example/post/1")],
        b"",
    );
    assert_eq!(r.status, 302, "{}", r.text());
    assert_eq!(
        r.header("location"),
        Some("https://example.com/landing?utm=x")
    );
    assert!(r.header("cache-control").unwrap_or("").contains("no-store"));

    let list = wait_events(&server, "", 1);
    assert_eq!(list.len(), 1, "{list:?}");
    let e = &list[0];
    assert_eq!(e["source"], "redirect");
    assert_eq!(
        e["type"], "redirect",
        "not mixed with the clicks pages send"
    );
    assert_eq!(e["path"], "/r/promo");
    assert_eq!(e["domain"], "links.test", "the host it was followed on");
    assert_eq!(e["referrer"], "social.example");
    assert_eq!(e["tags"], json!(["spring", "email", "extra"]));

    let stats = get_json(&server, "/api/stats");
    assert_eq!(
        stats["redirect_clicks"],
        json!([{"value": "promo", "count": 1}]),
        "{stats}"
    );
    assert_eq!(stats["totals"]["events"], 1);
    assert_eq!(stats["totals"]["pageviews"], 0, "a click is not a pageview");
}

#[test]
fn short_link_errors() {
    let server = fast_server();
    let r = server.get("links.test", "/r/nope");
    assert_eq!(r.status, 404);
    assert!(error_text(&r).contains("nope"));
    let r = server.get("links.test", "/r/");
    assert_eq!(r.status, 400);
    assert!(error_text(&r).contains("slug"));
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "go", "url": "https://example.com/"}),
    );
    assert_eq!(r.status, 200);
    let r = send(&server, "POST", "links.test", "/r/go", &[], b"");
    assert_eq!(r.status, 405);
    assert!(r.header("allow").unwrap_or("").contains("GET"));
    flush(&server, "/after-link-errors");
    assert_eq!(non_marker_events(&server), Vec::<Value>::new());
}

// ---------------------------------------------------------------------------------------
// /webhook/<endpoint>
// ---------------------------------------------------------------------------------------

fn post_webhook(server: &Server, endpoint: &str, body: &[u8], sig: Option<&str>) -> HttpResponse {
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(sig) = sig {
        headers.push(("X-Webhook-Signature", sig));
    }
    send(
        server,
        "POST",
        "hooks.test",
        &format!("/webhook/{endpoint}"),
        &headers,
        body,
    )
}

#[test]
fn signed_webhook_checks_the_hmac() {
    let server = fast_server();
    let r = admin_post(
        &server,
        "/api/webhooks",
        &json!({"endpoint": "github", "secret": "s3cret-key"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let body = br#"{"event":"push","type":"ignored","repo":"fazt","n":3}"#;
    let good = hmac_hex("s3cret-key", body);
    assert_eq!(good.len(), 64);
    let r = post_webhook(&server, "github", body, Some(&good));
    assert_eq!(r.status, 200, "{}", r.text());
    let reply = r.json();
    assert_eq!(reply["status"], "success");
    assert_eq!(reply["webhook"], "github");

    // Wrong secret, a tampered body, garbage and an empty header: 401.
    let wrong = hmac_hex("other", body);
    let tampered = hmac_hex("s3cret-key", b"{}");
    for sig in [wrong.as_str(), tampered.as_str(), "zz", "", "sha256=abc"] {
        let r = post_webhook(&server, "github", body, Some(sig));
        assert_eq!(r.status, 401, "signature {sig:?}: {}", r.text());
        assert!(error_text(&r).contains("X-Webhook-Signature"));
    }
    let r = post_webhook(&server, "github", body, None);
    assert_eq!(r.status, 401);
    assert!(error_text(&r).contains("missing"), "{}", r.text());

    // `type` is used when there is no `event`.
    let body2 = br#"{"type":"release"}"#;
    let r = post_webhook(
        &server,
        "github",
        body2,
        Some(&hmac_hex("s3cret-key", body2)),
    );
    assert_eq!(r.status, 200);

    let list = wait_events(&server, "", 2);
    assert_eq!(list.len(), 2, "only the signed ones: {list:?}");
    assert_eq!(list[0]["source"], "webhook");
    assert_eq!(list[0]["type"], "push", "`event` wins over `type`");
    assert_eq!(list[0]["domain"], "github");
    assert_eq!(list[0]["path"], "/webhook/github");
    assert_eq!(
        list[0]["q"],
        json!({"event":"push","type":"ignored","repo":"fazt","n":3})
    );
    assert_eq!(list[1]["type"], "release");
}

#[test]
fn unsigned_inactive_and_unknown_webhooks() {
    let server = fast_server();
    let r = admin_post(&server, "/api/webhooks", &json!({"endpoint": "open"}));
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin_post(
        &server,
        "/api/webhooks",
        &json!({"endpoint": "paused", "secret": "k", "active": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let r = post_webhook(&server, "open", br#"{"x":1}"#, None);
    assert_eq!(r.status, 200, "{}", r.text());
    // A non-JSON body is kept as text; the type defaults to "webhook".
    let r = post_webhook(&server, "open", b"plain text payload", None);
    assert_eq!(r.status, 200, "{}", r.text());

    let body = br#"{"event":"x"}"#;
    let r = post_webhook(&server, "paused", body, Some(&hmac_hex("k", body)));
    assert_eq!(r.status, 403, "{}", r.text());
    let r = post_webhook(&server, "nobody", body, None);
    assert_eq!(r.status, 404, "{}", r.text());
    let r = send(&server, "GET", "hooks.test", "/webhook/open", &[], b"");
    assert_eq!(r.status, 405);

    // Over 64 KiB: 413 (exactly 64 KiB is fine).
    let big = format!(r#"{{"pad":"{}"}}"#, "p".repeat(64 * 1024 - 10));
    assert_eq!(big.len(), 64 * 1024);
    let r = post_webhook(&server, "open", big.as_bytes(), None);
    assert_eq!(r.status, 200, "exactly 64 KiB");
    let bigger = format!(r#"{{"pad":"{}"}}"#, "p".repeat(64 * 1024 - 9));
    let r = post_webhook(&server, "open", bigger.as_bytes(), None);
    assert_eq!(r.status, 413, "{}", r.text());

    let list = wait_events(&server, "", 3);
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.iter().all(|e| e["domain"] == "open"));
    assert_eq!(list[0]["type"], "webhook");
    assert_eq!(list[1]["q"], json!({"raw": "plain text payload"}));
    flush(&server, "/after-webhooks");
    assert_eq!(non_marker_events(&server).len(), 3);
}

// ---------------------------------------------------------------------------------------
// Hosted pageviews
// ---------------------------------------------------------------------------------------

fn head(server: &Server, host: &str, path: &str) -> HttpResponse {
    let mut s = server.connect();
    write!(
        s,
        "HEAD {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response_with(&mut s, true).expect("a HEAD response")
}

#[test]
fn html_pages_of_sites_are_pageviews_assets_errors_and_head_are_not() {
    let data = TempDir::new("pv-data");
    let site = TempDir::new("pv-site");
    write_file(
        site.path(),
        "index.html",
        b"<!doctype html><title>blog</title><link rel=stylesheet href=/style.css>",
    );
    write_file(site.path(), "about/index.html", b"<!doctype html><p>about");
    write_file(site.path(), "style.css", b"body { color: #333 }");
    write_file(site.path(), "app.js", b"console.log(1)");
    import("blog", site.path(), data.path());
    let server = start_on(data.path(), &[("FAZT_EVENT_FLUSH", "50ms")]);

    // Assets, HEAD and hosts without a site: no events; missing pages: 404 events only.
    let r = server.get("blog.localhost", "/style.css");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/css"));
    assert_eq!(server.get("blog.localhost", "/app.js").status, 200);
    assert_eq!(server.get("blog.localhost", "/missing.html").status, 404);
    assert_eq!(server.get("blog.localhost", "/missing/").status, 404);
    assert_eq!(head(&server, "blog.localhost", "/").status, 200);
    assert_eq!(server.get("nosuchsite.localhost", "/").status, 404);
    flush(&server, "/after-non-views");
    let missing: Vec<(Value, Value)> = non_marker_events(&server)
        .iter()
        .map(|e| (e["type"].clone(), e["path"].clone()))
        .collect();
    assert_eq!(
        missing,
        [
            (json!("404"), json!("/missing.html")),
            (json!("404"), json!("/missing/"))
        ],
        "no pageviews yet"
    );

    // HTML pages: one pageview each, source page, the request's host as the domain.
    let r = send(
        &server,
        "GET",
        "blog.localhost",
        "/?utm_source=x",
        &[("Referer", "https://Friend.example/links")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(server.get("blog.localhost", "/about/").status, 200);
    let r = server.get("root.localhost", "/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    flush(&server, "/after-views");
    let list: Vec<Value> = non_marker_events(&server)
        .into_iter()
        .filter(|e| e["type"] == "pageview")
        .collect();
    let seen: Vec<(String, String, String)> = list
        .iter()
        .map(|e| {
            (
                e["domain"].as_str().unwrap().to_string(),
                e["path"].as_str().unwrap().to_string(),
                e["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("blog.localhost", "/", "page"),
        ("blog.localhost", "/about/", "page"),
        ("root.localhost", "/", "page"),
    ]
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
    assert_eq!(seen, want);
    assert!(list.iter().all(|e| e["type"] == "pageview"));
    assert_eq!(list[0]["referrer"], "friend.example");
}

#[test]
fn a_revalidated_page_view_is_still_a_pageview() {
    let server = fast_server();
    let first = server.get("root.localhost", "/");
    assert_eq!(first.status, 200);
    assert!(first
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    // HTML is served `no-cache`: browsers revalidate it on every repeat view.
    assert!(first
        .header("cache-control")
        .is_some_and(|c| c.contains("no-cache")));
    let etag = first.header("etag").expect("an ETag").to_string();
    let again = send(
        &server,
        "GET",
        "root.localhost",
        "/",
        &[("If-None-Match", &etag)],
        b"",
    );
    assert_eq!(again.status, 304);
    flush(&server, "/after-revalidation");
    let views = non_marker_events(&server);
    assert_eq!(
        views.len(),
        2,
        "the 304 answered a GET of the page by a returning visitor, so it is a view too: \
         {views:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Privacy: no raw IP or user agent stored; X-Forwarded-For only from trusted proxies
// ---------------------------------------------------------------------------------------

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The database file and its WAL, concatenated.
fn db_bytes(data: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(data.join("fazt.db")).expect("fazt.db");
    bytes.extend(std::fs::read(data.join("fazt.db-wal")).unwrap_or_default());
    bytes
}

#[test]
fn no_raw_ip_or_user_agent_reaches_the_database() {
    const VISITOR: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 9));
    // A browser's agent (a bot's would record nothing) with a marker to search for.
    const UA: &str =
        "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0 FaztPrivacyProbe/7f3a91";
    let mut server = fast_server();
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "p", "url": "https://example.com/"}),
    );
    assert_eq!(r.status, 200);
    let r = admin_post(&server, "/api/webhooks", &json!({"endpoint": "hook"}));
    assert_eq!(r.status, 200);
    // Visitors come from 127.0.0.9: the admin calls above come from 127.0.0.1, and the
    // audit log records the address of whoever changes the configuration (that is its
    // job); a visitor's address must be nowhere.
    let ua = [("User-Agent", UA)];
    let visit = |method: &str, host: &str, path: &str, body: &[u8]| {
        let raw = request_bytes(method, host, path, &ua, body);
        crate::common::source::raw_request_from(VISITOR, server.addr, raw).status
    };
    let body = br#"{"d":"privacy.test","p":"/t","t":["x"],"q":{"k":"v"}}"#;
    assert_eq!(visit("POST", "privacy.test", "/track", body), 204);
    let pixel = "/pixel.gif?domain=privacy.test";
    assert_eq!(visit("GET", "a.test", pixel, b""), 200);
    assert_eq!(visit("GET", "a.test", "/r/p", b""), 302);
    assert_eq!(visit("POST", "a.test", "/webhook/hook", b"{}"), 200);
    assert_eq!(visit("GET", "root.localhost", "/", b""), 200);
    let list = wait_events(&server, "", 5);
    assert_eq!(list.len(), 5, "{list:?}");

    let data = server.data.path().to_path_buf();
    let check = |when: &str| {
        let bytes = db_bytes(&data);
        assert!(
            !contains(&bytes, VISITOR.to_string().as_bytes()),
            "{when}: the visitor's IP is in the database file"
        );
        assert!(
            !contains(&bytes, UA.as_bytes()) && !contains(&bytes, b"FaztPrivacyProbe"),
            "{when}: the user agent is in the database file"
        );
        let conn = open_read_only(&data);
        let columns: Vec<String> = conn
            .prepare("SELECT name FROM pragma_table_info('events')")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for column in &columns {
            let c = column.to_ascii_lowercase();
            assert!(
                !(c.contains("ip") || c.contains("agent") || c == "ua" || c.contains("addr")),
                "{when}: events has a column {column}: {columns:?}"
            );
        }
        assert!(columns.iter().any(|c| c == "visitor"), "{columns:?}");
        // Every stored value of every event, as text.
        let sql = format!(
            "SELECT {} FROM events",
            columns
                .iter()
                .map(|c| format!("CAST(\"{c}\" AS TEXT)"))
                .collect::<Vec<_>>()
                .join(" || '|' || ")
        );
        let rows: Vec<Option<String>> = conn
            .prepare(&sql)
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), 5);
        for row in rows.iter().flatten() {
            assert!(
                !row.contains("127.0.0.9") && !row.contains("ProbeAgent"),
                "{row}"
            );
        }
        let strings = count(
            &conn,
            "SELECT count(*) FROM strings WHERE value LIKE '%127.0.0.9%' \
             OR value LIKE '%ProbeAgent%'",
        );
        assert_eq!(strings, 0, "{when}");
    };
    check("while running");
    assert_eq!(server.terminate().code(), Some(0), "{}", server.stderr());
    check("after shutdown");
}

/// Two `/track` posts from 127.0.0.1 with the same user agent and different
/// `X-Forwarded-For`, plus one whose nearest hop repeats the second address behind a
/// spoofed one; returns `totals.visitors` of the site.
fn visitors_with_forwarded_for(server: &Server) -> i64 {
    let ua = ("User-Agent", BROWSER_UA);
    for xff in ["203.0.113.7", "198.51.100.9", "192.0.2.99, 198.51.100.9"] {
        let r = track_with(
            server,
            r#"{"d":"xff.test","p":"/"}"#,
            &[ua, ("X-Forwarded-For", xff)],
        );
        assert_eq!(r.status, 204);
    }
    assert_eq!(wait_events(server, "site=xff.test", 3).len(), 3);
    let stats = get_json(server, "/api/stats?site=xff.test");
    assert_eq!(stats["totals"]["events"], 3, "{stats}");
    stats["totals"]["visitors"].as_i64().unwrap()
}

#[test]
fn forwarded_for_is_ignored_from_an_untrusted_peer() {
    let server = fast_server();
    assert_eq!(
        visitors_with_forwarded_for(&server),
        1,
        "one peer, one user agent: one visitor whatever the header says"
    );
}

#[test]
fn forwarded_for_is_used_from_a_trusted_proxy() {
    let server = Server::builder()
        .env("FAZT_EVENT_FLUSH", "50ms")
        .env("FAZT_TRUSTED_PROXIES", "127.0.0.1")
        .start();
    assert_eq!(
        visitors_with_forwarded_for(&server),
        2,
        "two client addresses (the spoofed left-most hop is ignored)"
    );
}

/// Starts `fazt server start` with `env` and expects it to refuse: returns its exit code
/// and stderr. A server that starts anyway is killed after 5 s and fails the test.
fn start_refused(env: &[(&str, &str)]) -> (i32, String) {
    let dir = TempDir::new("refused");
    let mut child = std::process::Command::new(BIN)
        .args(["server", "start", "--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run fazt");
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("fazt started with {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_analytics_settings_stop_the_start_naming_the_setting() {
    for (var, value) in [
        ("FAZT_TRUSTED_PROXIES", "127.0.0.1,not-an-ip"),
        ("FAZT_TRUSTED_PROXIES", "10.0.0.0/33"),
        ("FAZT_EVENT_CHANNEL", "0"),
        ("FAZT_EVENT_CHANNEL", "lots"),
        ("FAZT_EVENT_BATCH", "0"),
        ("FAZT_EVENT_BATCH", "100001"),
        ("FAZT_EVENT_FLUSH", "0s"),
        ("FAZT_EVENT_FLUSH", "soon"),
        ("FAZT_RETENTION", "forever"),
    ] {
        let (code, err) = start_refused(&[(var, value)]);
        assert_ne!(code, 0, "{var}={value}");
        assert!(err.contains(var), "{var}={value}: {err}");
    }
}

// ---------------------------------------------------------------------------------------
// Overload and shutdown
// ---------------------------------------------------------------------------------------

#[test]
fn a_full_channel_refuses_with_503_and_every_acknowledged_event_is_committed() {
    let server = Server::builder()
        .env("FAZT_EVENT_CHANNEL", "1")
        .env("FAZT_EVENT_FLUSH", "10s")
        .env("FAZT_EVENT_BATCH", "100000")
        .start();
    let health = server.admin_get("/api/system/health", Some(&server.token));
    assert_eq!(health.status, 200);
    assert_eq!(
        health.json()["limits"]["event_channel_capacity"],
        1,
        "FAZT_EVENT_CHANNEL=1 is accepted: {}",
        health.text()
    );

    const THREADS: usize = 6;
    const PER_THREAD: usize = 300;
    let addr = server.addr;
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            std::thread::spawn(move || {
                let mut client = Client::new(addr);
                let (mut acknowledged, mut refused) = (0u64, 0u64);
                let body = format!(r#"{{"d":"full.test","p":"/{t}"}}"#);
                let track = keep_alive_track(&body);
                let pixel = b"GET /pixel.gif?domain=full.test HTTP/1.1\r\nHost: x\r\n\r\n";
                for i in 0..PER_THREAD {
                    let (r, ok) = if i % 5 == 4 {
                        (client.send(pixel).expect("pixel answered"), 200)
                    } else {
                        (client.send(&track).expect("track answered"), 204)
                    };
                    if r.status == ok {
                        if ok == 200 {
                            assert_eq!(r.body.len(), 42);
                            assert_eq!(r.header("content-type"), Some("image/gif"));
                        }
                        acknowledged += 1;
                    } else {
                        // Not acknowledged: the client is told to send it again.
                        assert_eq!(r.status, 503, "{}", r.text());
                        assert_eq!(r.header("retry-after"), Some("1"));
                        assert!(r.text().contains("too many events"), "{}", r.text());
                        refused += 1;
                    }
                }
                (acknowledged, refused)
            })
        })
        .collect();
    let (mut acknowledged, mut refused) = (0, 0);
    for h in handles {
        let (a, r) = h.join().expect("client thread");
        acknowledged += a;
        refused += r;
    }
    assert_eq!(acknowledged + refused, (THREADS * PER_THREAD) as u64);

    assert_eq!(server.admin_get("/metrics", None).status, 401);
    let r = server.admin_get("/metrics", Some(&server.token));
    assert_eq!(r.status, 200);
    let text = r.text();
    let dropped = metric(&text, "fazt_events_dropped_total{reason=\"queue_full\"}");
    let stopped = metric(&text, "fazt_events_dropped_total{reason=\"stopped\"}");
    let accepted = metric(&text, "fazt_events_accepted_total");
    eprintln!("{acknowledged} acknowledged, {refused} refused (queue full)");
    assert!(
        refused > 0,
        "a channel of 1 under {THREADS} clients refuses:\n{text}"
    );
    assert_eq!(dropped, refused, "every refusal is counted");
    assert_eq!(stopped, 0);
    assert_eq!(accepted, acknowledged, "acknowledged means accepted");

    // What was acknowledged is committed at shutdown (within the 10 s flush it never ran).
    let mut server = server;
    assert_eq!(server.terminate().code(), Some(0), "{}", server.stderr());
    let conn = open_read_only(server.data.path());
    assert_eq!(
        count(&conn, "SELECT count(*) FROM events") as u64,
        acknowledged
    );
}

#[test]
fn sigterm_during_sustained_ingest_loses_no_acknowledged_event() {
    let mut server = Server::start();
    const THREADS: usize = 3;
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut client = Client::new(addr);
                let (mut acked, mut failed) = (0u64, 0u64);
                let mut i = 0u64;
                let hard_stop = Instant::now() + Duration::from_secs(8);
                while !stop.load(Ordering::Relaxed) && Instant::now() < hard_stop {
                    i += 1;
                    let body = format!(r#"{{"d":"load.test","p":"/{t}/{i}"}}"#);
                    match client.send(&keep_alive_track(&body)) {
                        Ok(r) if r.status == 204 => acked += 1,
                        Ok(r) => panic!("unexpected {}: {}", r.status, r.text()),
                        // Refused or reset: the server is going away; not acknowledged.
                        Err(_) => {
                            failed += 1;
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                }
                (acked, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (mut acked, mut failed) = (0, 0);
    for h in handles {
        let (a, f) = h.join().expect("client thread");
        acked += a;
        failed += f;
    }
    assert!(
        failed > 0,
        "the clients were still sending when the server went away"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let status = server
        .wait(Duration::from_secs(20))
        .expect("exits after SIGTERM");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(acked > 50, "the load ran: {acked} acknowledged");
    eprintln!("{acked} /track events acknowledged around SIGTERM");

    let conn = open_read_only(server.data.path());
    let stored = count(&conn, "SELECT count(*) FROM events WHERE source = 1");
    assert_eq!(
        stored as u64, acked,
        "every acknowledged /track event is in the database, and nothing else"
    );
    let rolled = count(
        &conn,
        "SELECT coalesce(sum(events), 0) FROM rollup_hourly h JOIN strings s \
         ON s.id = h.domain WHERE s.kind = 1 AND s.value = 'load.test'",
    );
    assert_eq!(rolled as u64, acked, "roll-ups committed with the raw rows");
}

#[test]
fn automatic_pageviews_can_be_turned_off() {
    let server = Server::builder()
        .env("FAZT_EVENT_FLUSH", "50ms")
        .env("FAZT_AUTO_PAGEVIEWS", "off")
        .start();
    assert_eq!(server.get("root.localhost", "/").status, 200);
    flush(&server, "/after-page");
    assert_eq!(
        non_marker_events(&server),
        Vec::<Value>::new(),
        "no pageview recorded"
    );
    // Beacons still count.
    assert_eq!(track(&server, r#"{"d":"blog.test","p":"/x"}"#).status, 204);
    wait_events(&server, "site=blog.test", 1);
}
