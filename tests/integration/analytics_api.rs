//! The analytics admin API against the real binary: `/api/stats`, `/api/events`,
//! `/api/domains`, `/api/tags` (shapes, bad parameters, auth, keyset pagination),
//! `/api/redirects` and `/api/webhooks` (validation, listing, delete), and retention with
//! `fazt db prune`.
use crate::common::*;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// `POST /track` with a JSON body, answered 204.
fn track_ok(server: &Server, body: &Value) {
    let r = track_with(server, &body.to_string(), &[("User-Agent", BROWSER_UA)]);
    assert_eq!(r.status, 204, "{body}: {}", r.text());
}

/// A 400 whose JSON error names `needle`.
fn assert_bad(r: &HttpResponse, needle: &str, what: &str) {
    assert_eq!(r.status, 400, "{what}: {}", r.text());
    let body = r.json();
    assert_eq!(body["error"]["code"], "bad_request", "{what}: {body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(needle), "{what}: {message}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Rows of every roll-up table (and `visitors_daily`) together.
fn rollup_rows(conn: &Connection) -> i64 {
    [
        "rollup_hourly",
        "rollup_hourly_dims",
        "rollup_daily_dims",
        "rollup_monthly_dims",
        "visitors_daily",
    ]
    .iter()
    .map(|t| count(conn, &format!("SELECT count(*) FROM {t}")))
    .sum()
}

/// Three events on shape.test (two pageviews of /a, one signup on /b) and one on
/// other.test, all from one visitor.
fn record_sample(server: &Server) {
    track_ok(
        server,
        &json!({"d": "shape.test", "p": "/a", "ref": "https://news.example/x", "t": ["x"]}),
    );
    track_ok(
        server,
        &json!({"d": "shape.test", "p": "/a", "t": ["x", "y"]}),
    );
    track_ok(
        server,
        &json!({"d": "shape.test", "p": "/b", "e": "signup", "t": ["y"]}),
    );
    track_ok(server, &json!({"d": "other.test", "p": "/o"}));
    wait_events(server, "", 4);
}

// ---------------------------------------------------------------------------------------
// Shapes
// ---------------------------------------------------------------------------------------

#[test]
fn stats_shape_totals_timeline_and_top_lists() {
    let server = fast_server();
    record_sample(&server);

    let s = get_json(&server, "/api/stats?site=shape.test");
    for key in [
        "site",
        "from",
        "to",
        "bucket",
        "totals",
        "timeline",
        "top_paths",
        "top_referrers",
        "top_tags",
        "event_types",
        "redirect_clicks",
    ] {
        assert!(s.get(key).is_some(), "{key} missing: {s}");
    }
    assert_eq!(s["site"], "shape.test");
    assert_eq!(s["bucket"], "hour");
    let (from, to) = (s["from"].as_i64().unwrap(), s["to"].as_i64().unwrap());
    assert_eq!(from % 3600, 0, "hour-aligned");
    assert_eq!(to % 3600, 0, "hour-aligned");
    assert!(
        from <= now() - 7 * 86_400 + 3600 && to > now(),
        "last 7 days: {s}"
    );
    assert_eq!(
        s["totals"],
        json!({"events": 3, "pageviews": 2, "visitors": 1})
    );
    let timeline = s["timeline"].as_array().unwrap();
    assert_eq!(timeline.len(), 1, "{s}");
    assert_eq!(timeline[0]["events"], 3);
    assert_eq!(timeline[0]["pageviews"], 2);
    assert_eq!(timeline[0]["visitors"], 1);
    assert_eq!(timeline[0]["t"].as_i64().unwrap(), now() / 3600 * 3600);
    assert_eq!(
        s["top_paths"],
        json!([{"value": "/a", "count": 2}]),
        "paths count pageviews only"
    );
    assert_eq!(
        s["top_referrers"],
        json!([{"value": "news.example", "count": 1}])
    );
    assert_eq!(
        s["top_tags"],
        json!([{"value": "x", "count": 2}, {"value": "y", "count": 2}]),
        "ties sorted by value"
    );
    assert_eq!(
        s["event_types"],
        json!([{"value": "pageview", "count": 2}, {"value": "signup", "count": 1}])
    );
    assert_eq!(s["redirect_clicks"], json!([]));

    // All sites together; top=1; bucket=day; explicit unix and date ranges.
    let all = get_json(&server, "/api/stats?top=1&bucket=day");
    assert_eq!(all["site"], Value::Null);
    assert_eq!(all["bucket"], "day");
    assert_eq!(all["totals"]["events"], 4);
    assert_eq!(all["totals"]["visitors"], 2, "one per site");
    assert_eq!(all["top_tags"], json!([{"value": "x", "count": 2}]));
    assert_eq!(all["top_paths"].as_array().unwrap().len(), 1);
    let day = all["timeline"][0]["t"].as_i64().unwrap();
    assert_eq!(day % 86_400, 0, "day buckets start at midnight");

    let t = now();
    let s = get_json(
        &server,
        &format!("/api/stats?site=shape.test&from={}&to={}", t - 60, t + 60),
    );
    assert_eq!(s["totals"]["events"], 3);
    assert_eq!(s["from"].as_i64().unwrap(), (t - 60) / 3600 * 3600);
    let s = get_json(
        &server,
        &format!(
            "/api/stats?site=shape.test&from={}&to={}",
            t - 7200,
            t - 3600
        ),
    );
    assert_eq!(s["totals"]["events"], 0, "a range before the events: {s}");
    assert_eq!(s["timeline"], json!([]));
    let s = get_json(
        &server,
        "/api/stats?site=shape.test&from=2000-01-01&to=2000-01-02",
    );
    assert_eq!(s["from"], 946_684_800);
    assert_eq!(s["totals"]["events"], 0);

    // A site never seen is a 404, not zeros (a typo is not a quiet site); a served site
    // with no events yet is zeros.
    let r = server.admin_get("/api/stats?site=never.test", Some(&server.token));
    assert_eq!(r.status, 404, "{}", r.text());
    let s = get_json(&server, "/api/stats?site=root");
    assert_eq!(
        s["totals"],
        json!({"events": 0, "pageviews": 0, "visitors": 0})
    );
}

#[test]
fn events_domains_and_tags_shapes() {
    let server = fast_server();
    record_sample(&server);

    let page = get_json(&server, "/api/events");
    assert_eq!(page["next_before"], Value::Null);
    let list = page["events"].as_array().unwrap();
    assert_eq!(list.len(), 4);
    let newest = &list[0];
    for key in [
        "id", "ts", "domain", "path", "type", "referrer", "source", "tags", "q",
    ] {
        assert!(newest.get(key).is_some(), "{key} missing: {newest}");
    }
    assert_eq!(newest["domain"], "other.test");
    let ids: Vec<i64> = list.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");

    // Filters by site, type and tag.
    let by_site = get_json(&server, "/api/events?site=shape.test");
    assert_eq!(by_site["events"].as_array().unwrap().len(), 3);
    let by_type = get_json(&server, "/api/events?type=signup");
    assert_eq!(by_type["events"].as_array().unwrap().len(), 1);
    assert_eq!(by_type["events"][0]["path"], "/b");
    let by_tag = get_json(&server, "/api/events?tag=x");
    let paths: Vec<&str> = by_tag["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/a", "/a"]);
    let r = server.admin_get("/api/events?site=never.test", Some(&server.token));
    assert_eq!(r.status, 404, "{}", r.text());
    for query in ["type=never", "tag=never"] {
        let page = get_json(&server, &format!("/api/events?{query}"));
        assert_eq!(page, json!({"events": [], "next_before": null}), "{query}");
    }

    let domains = get_json(&server, "/api/domains");
    let list = domains["domains"].as_array().unwrap();
    assert_eq!(list.len(), 2, "{domains}");
    assert_eq!(list[0]["domain"], "shape.test", "most events first");
    assert_eq!(list[0]["events"], 3);
    assert_eq!(list[0]["pageviews"], 2);
    let hour = now() / 3600 * 3600;
    assert_eq!(list[0]["first_seen"], hour);
    assert_eq!(list[0]["last_seen"], hour);
    assert_eq!(list[1]["domain"], "other.test");
    assert_eq!(list[1]["events"], 1);

    let tags = get_json(&server, "/api/tags");
    assert_eq!(
        tags,
        json!({"tags": [{"value": "x", "count": 2}, {"value": "y", "count": 2}], "next": null})
    );
}

#[test]
fn an_empty_database_has_empty_answers() {
    let server = Server::start();
    assert_eq!(
        get_json(&server, "/api/events"),
        json!({"events": [], "next_before": null})
    );
    assert_eq!(
        get_json(&server, "/api/domains"),
        json!({"domains": [], "next": null})
    );
    assert_eq!(
        get_json(&server, "/api/tags"),
        json!({"tags": [], "next": null})
    );
    assert_eq!(
        get_json(&server, "/api/redirects"),
        json!({"redirects": []})
    );
    assert_eq!(get_json(&server, "/api/webhooks"), json!({"webhooks": []}));
    let s = get_json(&server, "/api/stats");
    assert_eq!(s["totals"]["events"], 0);
    assert_eq!(s["timeline"], json!([]));
}

#[test]
fn events_paginate_by_keyset_with_next_before() {
    let server = fast_server();
    for i in 0..7 {
        track_ok(&server, &json!({"d": "page.test", "p": format!("/p{i}")}));
    }
    wait_events(&server, "", 7);

    let mut seen = Vec::new();
    let mut before: Option<i64> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        assert!(pages <= 10, "pagination does not end");
        let query = match before {
            Some(b) => format!("/api/events?limit=3&before={b}"),
            None => "/api/events?limit=3".to_string(),
        };
        let page = get_json(&server, &query);
        let list = page["events"].as_array().unwrap();
        assert!(list.len() <= 3);
        for e in list {
            seen.push(e["path"].as_str().unwrap().to_string());
            if let Some(b) = before {
                assert!(e["id"].as_i64().unwrap() < b, "older than the cursor");
            }
        }
        match page["next_before"].as_i64() {
            Some(b) => {
                assert_eq!(list.len(), 3, "a full page before a cursor");
                assert_eq!(Some(b), list.last().unwrap()["id"].as_i64());
                before = Some(b);
            }
            None => {
                assert_eq!(page["next_before"], Value::Null);
                break;
            }
        }
    }
    assert_eq!(pages, 3);
    let want: Vec<String> = (0..7).rev().map(|i| format!("/p{i}")).collect();
    assert_eq!(seen, want, "every event once, newest first");

    // A page that is exactly full with nothing older has no cursor.
    let page = get_json(&server, "/api/events?limit=7");
    assert_eq!(page["events"].as_array().unwrap().len(), 7);
    assert_eq!(page["next_before"], Value::Null);
    // Filters paginate too.
    let page = get_json(&server, "/api/events?site=page.test&limit=4");
    assert_eq!(page["events"].as_array().unwrap().len(), 4);
    let b = page["next_before"].as_i64().expect("a cursor");
    let rest = get_json(&server, &format!("/api/events?site=page.test&before={b}"));
    assert_eq!(rest["events"].as_array().unwrap().len(), 3);
    assert_eq!(rest["next_before"], Value::Null);
    // limit is capped, not refused.
    let page = get_json(&server, "/api/events?limit=100000");
    assert_eq!(page["events"].as_array().unwrap().len(), 7);
}

// ---------------------------------------------------------------------------------------
// Bad parameters, methods and auth
// ---------------------------------------------------------------------------------------

#[test]
fn bad_parameters_are_400s_naming_the_parameter() {
    let server = Server::start();
    let t = now();
    let cases = [
        ("/api/stats?bucket=week".to_string(), "'bucket'"),
        ("/api/stats?from=yesterday".to_string(), "'from'"),
        ("/api/stats?to=tomorrow".to_string(), "'to'"),
        ("/api/stats?from=2026-13-01".to_string(), "'from'"),
        (format!("/api/stats?from={}&to={}", t + 100, t), "'from'"),
        (format!("/api/stats?from={t}&to={t}"), "'from'"),
        ("/api/stats?top=0".to_string(), "'top'"),
        ("/api/stats?top=many".to_string(), "'top'"),
        ("/api/events?limit=0".to_string(), "'limit'"),
        ("/api/events?limit=-1".to_string(), "'limit'"),
        ("/api/events?limit=ten".to_string(), "'limit'"),
        ("/api/events?before=x".to_string(), "'before'"),
        ("/api/events?before=1.5".to_string(), "'before'"),
    ];
    for (path, needle) in &cases {
        let r = server.admin_get(path, Some(&server.token));
        assert_bad(&r, needle, path);
    }
}

/// One admin GET that may find the server gone: `None` when there is no answer.
fn try_admin_get(server: &Server, path: &str) -> Option<HttpResponse> {
    let mut stream =
        std::net::TcpStream::connect_timeout(&server.addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        server.token
    )
    .ok()?;
    read_response(&mut stream).ok()
}

#[test]
fn extreme_time_parameters_are_answered_without_crashing() {
    let mut server = Server::start();
    for query in [
        "to=-9223372036854775808",
        "from=-9223372036854775808",
        "to=9223372036854775807",
        "from=0&to=9223372036854775807",
        "from=-9223372036854775000&to=9223372036854775000",
    ] {
        let path = format!("/api/stats?{query}");
        let r = try_admin_get(&server, &path).unwrap_or_else(|| {
            let _ = server.wait(Duration::from_secs(5));
            panic!(
                "{path}: no answer; the server is gone: {:?}\n{}",
                server.child.try_wait(),
                server.stderr()
            )
        });
        assert!(
            r.status == 200 || r.status == 400,
            "{path}: {} {}",
            r.status,
            r.text()
        );
        if r.status == 400 {
            let message = r.json()["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            assert!(
                message.contains("'from'") || message.contains("'to'"),
                "{path}: {message}"
            );
        }
    }
    assert_eq!(
        server.child.try_wait().unwrap(),
        None,
        "still running: {}",
        server.stderr()
    );
    assert_eq!(get_json(&server, "/api/system/health")["status"], "ok");
}

#[test]
fn analytics_routes_require_a_key() {
    let server = Server::start();
    let paths = [
        "/api/stats",
        "/api/events",
        "/api/domains",
        "/api/tags",
        "/api/redirects",
        "/api/webhooks",
    ];
    for path in paths {
        for token in [None, Some("fzt_00000000_00"), Some("")] {
            let r = server.admin_get(path, token);
            assert_eq!(r.status, 401, "{path} with {token:?}: {}", r.text());
            assert!(r.header("www-authenticate").is_some(), "{path}");
            assert_eq!(r.json()["error"]["code"], "unauthorized");
        }
    }
    // Changes too, and nothing is created.
    let r = send(
        &server,
        "POST",
        "admin.localhost",
        "/api/redirects",
        &[],
        br#"{"slug":"x","url":"https://example.com"}"#,
    );
    assert_eq!(r.status, 401);
    let r = send(
        &server,
        "DELETE",
        "admin.localhost",
        "/api/webhooks/x",
        &[],
        b"",
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        get_json(&server, "/api/redirects"),
        json!({"redirects": []})
    );
    // The dedicated admin listener asks for the key as well.
    let server = Server::builder().admin_listener().start();
    let r = raw_request(
        server.admin_addr.unwrap(),
        "GET /api/stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let server = Server::start();
    for (method, path) in [
        ("POST", "/api/stats"),
        ("DELETE", "/api/events"),
        ("PUT", "/api/domains"),
        ("POST", "/api/tags"),
        ("PUT", "/api/redirects"),
        ("DELETE", "/api/webhooks"),
        ("GET", "/api/redirects/some-slug"),
        ("POST", "/api/webhooks/some-endpoint"),
    ] {
        let r = admin_raw(&server, method, path, "");
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert!(r.header("allow").is_some(), "{method} {path}");
    }
}

// ---------------------------------------------------------------------------------------
// Short links and webhooks: management
// ---------------------------------------------------------------------------------------

#[test]
fn redirects_are_validated_listed_replaced_and_deleted() {
    let server = fast_server();
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "promo-2026_a.b", "url": "https://example.com/x?y=1#z", "tags": "a, b"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"slug": "promo-2026_a.b", "url": "https://example.com/x?y=1#z", "tags": ["a", "b"]})
    );
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "docs", "url": "http://docs.example"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());

    let list = get_json(&server, "/api/redirects")["redirects"].clone();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["slug"], "docs", "sorted by slug");
    assert_eq!(list[0]["tags"], json!([]));
    assert_eq!(list[1]["url"], "https://example.com/x?y=1#z");
    assert_eq!(list[1]["tags"], json!(["a", "b"]));
    assert!(list[1]["created_at"].as_i64().unwrap() > 1_600_000_000);

    // Posting an existing slug replaces its destination.
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "docs", "url": "https://docs.example/v2"}),
    );
    assert_eq!(r.status, 200);
    let r = server.get("x.test", "/r/docs");
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://docs.example/v2"));

    // Validation: the field is named, nothing is stored.
    let bad_urls = [
        json!("javascript:alert(1)"),
        json!("ftp://files.example/x"),
        json!("//evil.example"),
        json!("https://"),
        json!("https://a b.example"),
        json!("data:text/html,hi"),
    ];
    for url in &bad_urls {
        let r = admin_post(
            &server,
            "/api/redirects",
            &json!({"slug": "bad", "url": url}),
        );
        assert_bad(&r, "url", &url.to_string());
    }
    let too_long = "x".repeat(65);
    for slug in ["", "a/b", "has space", "..", ".", "ü", too_long.as_str()] {
        let r = admin_post(
            &server,
            "/api/redirects",
            &json!({"slug": slug, "url": "https://example.com"}),
        );
        assert_bad(&r, "slug", slug);
    }
    let cases = [
        (json!({"url": "https://example.com"}), "'slug'"),
        (json!({"slug": "s"}), "'url'"),
        (json!({"slug": 5, "url": "https://example.com"}), "'slug'"),
        (
            json!({"slug": "s", "url": ["https://example.com"]}),
            "'url'",
        ),
        (
            json!({"slug": "s", "url": "https://example.com", "tags": ["a"]}),
            "'tags'",
        ),
        (json!(["slug"]), "object"),
    ];
    for (body, needle) in &cases {
        let r = admin_post(&server, "/api/redirects", body);
        assert_bad(&r, needle, &body.to_string());
    }
    let r = admin_raw(&server, "POST", "/api/redirects", "{not json");
    assert_bad(&r, "JSON", "not JSON");
    assert_eq!(
        get_json(&server, "/api/redirects")["redirects"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "nothing stored by bad requests"
    );

    // Delete: 200, then 404, and the link is gone.
    let r = admin_delete(&server, "/api/redirects/docs");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["deleted"], "docs");
    let r = admin_delete(&server, "/api/redirects/docs");
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("docs"));
    assert_eq!(server.get("x.test", "/r/docs").status, 404);
    let list = get_json(&server, "/api/redirects");
    assert_eq!(list["redirects"].as_array().unwrap().len(), 1);
    assert_eq!(list["redirects"][0]["slug"], "promo-2026_a.b");
}

#[test]
fn webhooks_are_validated_listed_without_secrets_and_deleted() {
    let server = fast_server();
    let secret = "very-secret-value-9c1d";
    let r = admin_post(
        &server,
        "/api/webhooks",
        &json!({"endpoint": "github", "secret": secret}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"endpoint": "github", "signed": true, "active": true})
    );
    assert!(!r.text().contains(secret));
    let r = admin_post(
        &server,
        "/api/webhooks",
        &json!({"endpoint": "stripe", "active": false}),
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({"endpoint": "stripe", "signed": false, "active": false})
    );

    let r = server.admin_get("/api/webhooks", Some(&server.token));
    assert!(!r.text().contains(secret), "secrets are never listed");
    let list = r.json()["webhooks"].clone();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[0]["endpoint"], "github");
    assert_eq!(list[0]["signed"], true);
    assert_eq!(list[0]["active"], true);
    assert_eq!(list[1]["endpoint"], "stripe");
    assert_eq!(list[1]["active"], false);
    assert!(list[1]["created_at"].as_i64().is_some());

    // Re-posting turns the endpoint back on.
    let r = admin_post(
        &server,
        "/api/webhooks",
        &json!({"endpoint": "stripe", "active": true}),
    );
    assert_eq!(r.status, 200);
    let r = send(&server, "POST", "x.test", "/webhook/stripe", &[], b"{}");
    assert_eq!(r.status, 200, "{}", r.text());

    let long_secret = "s".repeat(257);
    let cases = [
        (json!({"secret": "x"}), "'endpoint'"),
        (json!({"endpoint": "a/b"}), "endpoint"),
        (json!({"endpoint": ".."}), "endpoint"),
        (json!({"endpoint": 7}), "'endpoint'"),
        (json!({"endpoint": "e", "secret": 1}), "'secret'"),
        (json!({"endpoint": "e", "secret": long_secret}), "'secret'"),
        (json!({"endpoint": "e", "active": "no"}), "'active'"),
    ];
    for (body, needle) in &cases {
        let r = admin_post(&server, "/api/webhooks", body);
        assert_bad(&r, needle, &body.to_string());
    }
    assert_eq!(
        get_json(&server, "/api/webhooks")["webhooks"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let r = admin_delete(&server, "/api/webhooks/github");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(admin_delete(&server, "/api/webhooks/github").status, 404);
    let r = send(&server, "POST", "x.test", "/webhook/github", &[], b"{}");
    assert_eq!(r.status, 404, "a deleted endpoint is unknown");
}

// ---------------------------------------------------------------------------------------
// Retention: fazt db prune
// ---------------------------------------------------------------------------------------

fn prune(data: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["db", "prune"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["--data", s(data)]);
    run_cli(&args, &[])
}

/// Moves every stored time (events, visitors and roll-ups) `days` days into the past, as
/// if the events had been recorded then (roll-ups of the current hour, day and month
/// straddle any recent cutoff and are kept whole by design).
fn age_everything(data: &Path, days: i64) {
    let conn = Connection::open(data.join("fazt.db")).expect("open fazt.db");
    conn.execute_batch(&format!(
        "BEGIN;
         UPDATE events SET ts = ts - {days} * 86400;
         UPDATE visitors_daily SET day = day - {days};
         UPDATE rollup_hourly SET hour = hour - {days} * 24;
         UPDATE rollup_hourly_dims SET hour = hour - {days} * 24;
         UPDATE rollup_daily_dims SET day = day - {days};
         UPDATE rollup_monthly_dims SET month = month - ({days} / 28 + 1);
         COMMIT;"
    ))
    .expect("age the data");
}

#[test]
fn prune_deletes_raw_events_and_keeps_rollups_unless_asked() {
    let mut server = fast_server();
    for i in 0..6 {
        track_ok(
            &server,
            &json!({"d": "prune.test", "p": format!("/{i}"), "t": ["kept"]}),
        );
    }
    wait_events(&server, "", 6);
    assert_eq!(server.terminate().code(), Some(0), "{}", server.stderr());
    let data = server.data.path().to_path_buf();
    let token = server.token.clone();
    std::thread::sleep(Duration::from_secs(2));

    let (code, out, err) = prune(&data, &["--older-than", "1s"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deleted 6 events"), "{out}");
    {
        let conn = open_read_only(&data);
        assert_eq!(count(&conn, "SELECT count(*) FROM events"), 0);
        assert_eq!(
            count(&conn, "SELECT coalesce(sum(events), 0) FROM rollup_hourly"),
            6,
            "roll-ups kept"
        );
    }

    // The dashboard still shows the totals; the raw list is empty.
    let mut server = start_on(&data, &[]);
    // A restart prints no new owner key; the first one still works.
    server.token = token.clone();
    let stats = get_json(&server, "/api/stats?site=prune.test");
    assert_eq!(stats["totals"]["events"], 6, "{stats}");
    assert_eq!(stats["totals"]["pageviews"], 6);
    assert_eq!(stats["top_tags"], json!([{"value": "kept", "count": 6}]));
    assert_eq!(
        get_json(&server, "/api/events"),
        json!({"events": [], "next_before": null})
    );
    assert_eq!(get_json(&server, "/api/domains")["domains"][0]["events"], 6);
    assert_eq!(server.terminate().code(), Some(0));

    // Nothing older is left: a second prune deletes nothing.
    let (code, out, _) = prune(&data, &["--older-than", "1s"]);
    assert_eq!(code, 0);
    assert!(out.contains("deleted 0 events"), "{out}");

    // --rollups removes the roll-ups of the hours, days and months before the cutoff.
    age_everything(&data, 100);
    let before = rollup_rows(&open_read_only(&data));
    assert!(before > 0);
    let (code, out, err) = prune(&data, &["--older-than", "1s", "--rollups"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("deleted 0 events and {before} roll-up rows")),
        "{out}"
    );
    assert_eq!(rollup_rows(&open_read_only(&data)), 0);

    let mut server = start_on(&data, &[]);
    server.token = token;
    let stats = get_json(&server, "/api/stats?site=prune.test&from=0");
    assert_eq!(stats["totals"]["events"], 0, "{stats}");
    assert_eq!(stats["top_tags"], json!([]));
    assert_eq!(
        get_json(&server, "/api/tags"),
        json!({"tags": [], "next": null})
    );
}

#[test]
fn prune_with_rollups_deletes_old_events_and_their_rollups_together() {
    let mut server = fast_server();
    for i in 0..4 {
        track_ok(&server, &json!({"d": "old.test", "p": format!("/{i}")}));
    }
    wait_events(&server, "", 4);
    assert_eq!(server.terminate().code(), Some(0));
    let data = server.data.path().to_path_buf();
    age_everything(&data, 100);

    // A cutoff 30 days back: everything (100 days old) goes, events and roll-ups.
    let (code, out, err) = prune(&data, &["--older-than", "30d", "--rollups"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deleted 4 events and "), "{out}");
    let conn = open_read_only(&data);
    assert_eq!(count(&conn, "SELECT count(*) FROM events"), 0);
    assert_eq!(rollup_rows(&conn), 0);
}

#[test]
fn prune_needs_a_valid_older_than() {
    let dir = TempDir::new("prune-args");
    let data = dir.path();
    let (code, out, err) = prune(data, &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("--older-than"), "{err}");
    for bad in ["soon", "-5d", "10 parsecs", ""] {
        let (code, out, err) = prune(data, &["--older-than", bad]);
        assert_ne!(code, 0, "--older-than {bad:?}: {out}");
        assert!(
            err.contains("older-than") || err.contains("duration"),
            "--older-than {bad:?}: {err}"
        );
    }
    let (code, _, err) = run_cli(&["db", "prune", "--data", s(data), "--older-than"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("older-than"), "{err}");
    let (code, _, err) = prune(data, &["--older-than", "1d", "--bogus"]);
    assert_ne!(code, 0);
    assert!(err.contains("bogus"), "{err}");
}
