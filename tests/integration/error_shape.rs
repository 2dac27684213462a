//! Every JSON error of fazt has one shape, `{"error":{"code":"…","message":"…"}}`, with
//! `Content-Type: application/json`: checked on each admin route family, on deploys, on
//! `/track`, and where a `Retry-After` or `Allow` belongs, against the real binary.

use crate::common::*;

/// Asserts the status, the content type, the one shape with `code` and a non-empty
/// message; returns the message.
fn assert_error(r: &HttpResponse, status: u16, code: &str, what: &str) -> String {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{what}: {}",
        r.text()
    );
    let body = r.json();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{what}: {body}");
    let message = error["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{what}: no message in {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{what}: {body}");
    assert_eq!(
        error.as_object().map(|o| o.len()),
        Some(2),
        "{what}: {body}"
    );
    message
}

fn admin(
    server: &Server,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: &str,
) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    send(
        server,
        method,
        "admin.localhost",
        path,
        &headers,
        body.as_bytes(),
    )
}

fn owner(server: &Server, method: &str, path: &str, body: &str) -> HttpResponse {
    admin(server, Some(&server.token), method, path, body)
}

fn deploy(
    server: &Server,
    token: Option<&str>,
    method: &str,
    site: &str,
    zip: &[u8],
) -> HttpResponse {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/zip")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let path = format!("/api/deploy?site={site}");
    send(server, method, "admin.localhost", &path, &headers, zip)
}

/// A key with the scope `deploy:blog`.
fn narrow_key(server: &Server) -> String {
    let r = owner(
        server,
        "POST",
        "/api/keys",
        r#"{"name":"narrow","scope":"deploy:blog"}"#,
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().expect("a token").to_string()
}

#[test]
fn authentication_and_scope_errors() {
    let server = Server::start();
    let narrow = narrow_key(&server);
    for path in [
        "/api/system/health",
        "/metrics",
        "/api/keys",
        "/api/sites",
        "/api/stats",
    ] {
        for token in [None, Some("fzt_00000000_00"), Some("")] {
            let r = admin(&server, token, "GET", path, "");
            let what = format!("{path} with {token:?}");
            assert_error(&r, 401, "unauthorized", &what);
            assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{what}");
        }
    }
    for (method, path) in [
        ("GET", "/api/system/health"),
        ("GET", "/metrics"),
        ("POST", "/api/system/vacuum"),
        ("GET", "/api/keys"),
        ("GET", "/api/stats"),
        ("GET", "/api/redirects"),
        ("POST", "/api/webhooks"),
        ("GET", "/api/sites/shop/deployments"),
        ("DELETE", "/api/sites/shop"),
        ("POST", "/api/sites/root/rollback"),
    ] {
        let r = admin(&server, Some(&narrow), method, path, "{}");
        let message = assert_error(&r, 403, "forbidden", &format!("narrow {method} {path}"));
        assert!(message.contains("scope"), "{path}: {message}");
    }
}

#[test]
fn keys_and_system_errors() {
    let server = Server::start();
    let cases: [(&str, &str, &str, u16, &str); 8] = [
        ("POST", "/api/keys", "not json", 400, "bad_request"),
        ("POST", "/api/keys", "{}", 400, "bad_request"),
        (
            "POST",
            "/api/keys",
            r#"{"name":"k","scope":"root"}"#,
            400,
            "bad_request",
        ),
        ("DELETE", "/api/keys/nope", "", 404, "not_found"),
        ("PUT", "/api/keys", "{}", 405, "method_not_allowed"),
        ("GET", "/api/system/vacuum", "", 405, "method_not_allowed"),
        (
            "POST",
            "/api/system/health",
            "{}",
            405,
            "method_not_allowed",
        ),
        ("GET", "/api/keys/abc", "", 405, "method_not_allowed"),
    ];
    for (method, path, body, status, code) in cases {
        let r = owner(&server, method, path, body);
        assert_error(&r, status, code, &format!("{method} {path} {body}"));
        if status == 405 {
            assert!(r.header("allow").is_some(), "{method} {path}: no Allow");
        }
    }
    let r = owner(&server, "POST", "/api/keys", "not json");
    assert!(assert_error(&r, 400, "bad_request", "bad JSON").contains("JSON"));
}

#[test]
fn unknown_routes_and_pages() {
    let server = Server::start();
    for (method, path) in [
        ("GET", "/api/nope"),
        ("POST", "/api/system"),
        ("GET", "/api/sites/blog/nope"),
    ] {
        let r = owner(&server, method, path, "");
        assert_error(&r, 404, "not_found", &format!("{method} {path}"));
    }
    // An admin page that does not exist needs no key.
    let r = admin(&server, None, "GET", "/no-such-page", "");
    assert_error(&r, 404, "not_found", "admin page");
}

#[test]
fn sites_errors() {
    let server = Server::start();
    let cases: [(&str, &str, &str, u16, &str); 9] = [
        ("GET", "/api/sites/nope/deployments", "", 404, "not_found"),
        ("DELETE", "/api/sites/nope", "", 404, "not_found"),
        ("POST", "/api/sites/nope/rollback", "{}", 404, "not_found"),
        (
            "POST",
            "/api/sites/nope/rollback",
            "not json",
            400,
            "bad_request",
        ),
        (
            "GET",
            "/api/sites/Bad..Name/deployments",
            "",
            404,
            "not_found",
        ),
        ("DELETE", "/api/sites/root", "", 403, "forbidden"),
        ("PUT", "/api/sites", "{}", 405, "method_not_allowed"),
        ("POST", "/api/sites/blog", "{}", 405, "method_not_allowed"),
        (
            "GET",
            "/api/sites/blog/rollback",
            "",
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let r = owner(&server, method, path, body);
        assert_error(&r, status, code, &format!("{method} {path} {body}"));
        if status == 405 {
            assert!(r.header("allow").is_some(), "{method} {path}: no Allow");
        }
    }
}

#[test]
fn analytics_errors() {
    let server = Server::start();
    let cases: [(&str, &str, &str, u16, &str); 12] = [
        ("GET", "/api/stats?bucket=week", "", 400, "bad_request"),
        (
            "GET",
            "/api/stats?from=2026-01-02&to=2026-01-01",
            "",
            400,
            "bad_request",
        ),
        ("GET", "/api/events?limit=many", "", 400, "bad_request"),
        ("POST", "/api/stats", "{}", 405, "method_not_allowed"),
        ("DELETE", "/api/events", "", 405, "method_not_allowed"),
        ("POST", "/api/redirects", "not json", 400, "bad_request"),
        (
            "POST",
            "/api/redirects",
            r#"{"slug":"x"}"#,
            400,
            "bad_request",
        ),
        ("DELETE", "/api/redirects/nope", "", 404, "not_found"),
        ("PUT", "/api/redirects", "{}", 405, "method_not_allowed"),
        ("POST", "/api/webhooks", "[1]", 400, "bad_request"),
        ("DELETE", "/api/webhooks/nope", "", 404, "not_found"),
        ("GET", "/api/webhooks/nope", "", 405, "method_not_allowed"),
    ];
    for (method, path, body, status, code) in cases {
        let r = owner(&server, method, path, body);
        let what = format!("{method} {path} {body}");
        assert_error(&r, status, code, &what);
        if status == 405 {
            assert!(
                r.header("allow").is_some_and(|a| !a.is_empty()),
                "{what}: no Allow"
            );
        }
    }
}

#[test]
fn deploy_errors_and_the_rate_limits_retry_after() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1").start();
    let narrow = narrow_key(&server);
    let token = Some(server.token.as_str());
    let zip = b"PK not really a zip";
    assert_error(
        &deploy(&server, None, "POST", "blog", zip),
        401,
        "unauthorized",
        "no key",
    );
    let r = deploy(&server, token, "GET", "blog", b"");
    assert_error(&r, 405, "method_not_allowed", "GET deploy");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = deploy(&server, Some(&narrow), "POST", "shop", zip);
    assert_error(&r, 403, "forbidden", "narrow key, other site");
    // An empty body is refused before it counts; the one deploy the rate allows is no zip.
    let r = deploy(&server, token, "POST", "blog", b"");
    assert_error(&r, 400, "bad_request", "empty body");
    let r = deploy(&server, token, "POST", "blog", zip);
    assert_error(&r, 400, "invalid_archive", "not a zip");
    let r = deploy(&server, token, "POST", "blog", zip);
    assert_error(&r, 429, "rate_limited", "third deploy in a minute");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After on 429")
        .parse()
        .expect("Retry-After in seconds");
    assert!((1..=60).contains(&wait), "{wait}");
}

#[test]
fn a_full_disk_is_507_disk_full() {
    let server = Server::builder().env("FAZT_DISK_THRESHOLD", "1").start();
    let health = server.admin_get("/api/system/health", Some(&server.token));
    let used = health.json()["disk"]["paths"]
        .as_array()
        .map(|paths| {
            paths
                .iter()
                .filter_map(|p| p["used_percent"].as_u64())
                .max()
        })
        .unwrap_or_default()
        .unwrap_or(0);
    if used < 1 {
        eprintln!("skipped: the test filesystem reports 0% used");
        return;
    }
    let r = deploy(&server, Some(&server.token), "POST", "blog", b"PK");
    let message = assert_error(&r, 507, "disk_full", "deploy");
    assert!(message.contains("--disk-threshold"), "{message}");
    assert_eq!(r.header("retry-after"), None);
}

#[test]
fn track_errors() {
    let server = Server::start();
    let post = |body: &str| track(&server, body);
    for (body, needle) in [
        ("not json", "JSON"),
        ("[1, 2]", "object"),
        (r#"{"t": 5}"#, "'t'"),
    ] {
        let message = assert_error(&post(body), 400, "bad_request", body);
        assert!(message.contains(needle), "{body}: {message}");
    }
    let r = send(&server, "GET", "collector.test", "/track", &[], b"");
    assert_error(&r, 405, "method_not_allowed", "GET /track");
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
}
