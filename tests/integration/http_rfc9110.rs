//! RFC 9110/9112 behaviour of the HTTP layer, over raw TCP against the real binary: the
//! absolute-form request target (its authority is the host), later HTTP/1.x minor versions
//! served as 1.1, other major versions (HTTP/2.0, the h2 connection preface) refused with
//! 505, unknown methods with 501 (known ones a route doesn't allow stay 405), and
//! `Cache-Control: no-store` on the admin API and `/health` but not on pages.
//! (414 for an over-long target is in `http_limits`, with the other limits.)
use crate::common::*;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

fn send(s: &mut TcpStream, raw: &[u8]) {
    s.write_all(raw).unwrap();
}

/// The first line of the response waiting on `s`, read without consuming it (so
/// `read_response` still sees the whole response).
fn peek_status_line(s: &mut TcpStream) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 64];
    loop {
        let n = s.peek(&mut buf).expect("a response");
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        if let Some((line, _)) = got.split_once("\r\n") {
            return line.to_string();
        }
        assert!(
            n > 0 && Instant::now() < deadline,
            "no status line: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A server with the `blog` site (`/` and `/about.html`).
fn start_with_blog() -> (Server, TempDir, TempDir) {
    let site = TempDir::new("rfc-blog");
    write_file(site.path(), "index.html", b"<h1>blog home</h1>");
    write_file(site.path(), "about.html", b"<h1>about</h1>");
    let data = TempDir::new("rfc-data");
    import("blog", site.path(), data.path());
    (start_on(data.path(), &[]), site, data)
}

/// `r` is the JSON error `code` with `status`, and its connection closed after it.
fn assert_refused(s: &mut TcpStream, r: &HttpResponse, status: u16, code: &str, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert_eq!(r.header("content-type"), Some("application/json"), "{what}");
    assert_eq!(r.json()["error"]["code"], code, "{what}");
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(!message.is_empty(), "{what}");
    assert_eq!(r.header("connection"), Some("close"), "{what}");
    assert!(
        closed_within(s, Duration::from_secs(3)),
        "{what}: left open after {status}"
    );
}

// ---------------------------------------------------------------------------------------
// absolute-form (RFC 9112 §3.2.2)

#[test]
fn absolute_form_target_names_the_site_and_the_host_header_is_ignored() {
    let (server, _site, _data) = start_with_blog();
    let mut s = server.connect();
    for (target, body) in [
        ("http://blog.localhost/", "<h1>blog home</h1>"),
        (
            "http://BLOG.localhost:4698/about.html?x=1",
            "<h1>about</h1>",
        ),
        ("https://blog.localhost", "<h1>blog home</h1>"),
        ("http://blog.localhost?utm=1", "<h1>blog home</h1>"),
    ] {
        // Host names another site, which must not be served.
        send(
            &mut s,
            format!("GET {target} HTTP/1.1\r\nHost: root.localhost\r\n\r\n").as_bytes(),
        );
        let r = read_response(&mut s).unwrap();
        assert_eq!((r.status, r.text().as_str()), (200, body), "{target}");
        assert_eq!(r.header("connection"), Some("keep-alive"), "{target}");
    }

    // The Host header alone still routes as before.
    let r = server.get("root.localhost", "/");
    assert_eq!((r.status, r.body.as_slice()), (200, LANDING));

    // An unknown host in the authority gets the 404 site, even with a known Host.
    send(
        &mut s,
        b"GET http://nosuch.localhost/ HTTP/1.1\r\nHost: blog.localhost\r\n\r\n",
    );
    let r = read_response(&mut s).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (404, NOT_FOUND));

    // The admin API and /health by authority too.
    send(
        &mut s,
        b"GET http://admin.localhost/api/system/health HTTP/1.1\r\nHost: blog.localhost\r\n\r\n",
    );
    let r = read_response(&mut s).unwrap();
    assert_eq!(
        r.status,
        401,
        "the admin API, which wants a key: {}",
        r.text()
    );
    send(
        &mut s,
        b"GET http://blog.localhost/health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    );
    let r = read_response(&mut s).unwrap();
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "ok\n"),
        "HTTP/1.0 without Host"
    );
}

#[test]
fn bad_absolute_forms_are_400_and_close() {
    let server = Server::start();
    for (what, target) in [
        ("another scheme", "ftp://root.localhost/"),
        ("no host", "http:///index.html"),
        ("user info", "http://me:pw@root.localhost/"),
        ("a bad host", "http://bad_host!/"),
        ("a bad port", "http://root.localhost:port/"),
        ("a relative path", "index.html"),
    ] {
        let mut s = server.connect();
        send(
            &mut s,
            format!("GET {target} HTTP/1.1\r\nHost: root.localhost\r\n\r\n").as_bytes(),
        );
        let r = read_response(&mut s).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_refused(&mut s, &r, 400, "bad_request", what);
    }
    // The Host header is still required in HTTP/1.1 (RFC 9112 §3.2).
    let mut s = server.connect();
    send(&mut s, b"GET http://root.localhost/ HTTP/1.1\r\n\r\n");
    let r = read_response(&mut s).unwrap();
    assert_refused(&mut s, &r, 400, "bad_request", "no Host");
}

// ---------------------------------------------------------------------------------------
// versions (RFC 9110 §2.5, §15.6.6)

#[test]
fn later_http_1_minor_versions_are_answered_as_http_1_1() {
    let server = Server::start();
    let mut s = server.connect();
    send(&mut s, b"GET / HTTP/1.2\r\nHost: root.localhost\r\n\r\n");
    assert_eq!(peek_status_line(&mut s), "HTTP/1.1 200 OK");
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.body, LANDING);
    // Kept alive, as a 1.1 request is.
    assert_eq!(r.header("connection"), Some("keep-alive"));
    send(
        &mut s,
        b"GET /health HTTP/1.9\r\nHost: root.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(peek_status_line(&mut s), "HTTP/1.1 200 OK");
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.text(), "ok\n");
    assert!(closed_within(&mut s, Duration::from_secs(3)));

    // With a body, split across writes, on the admin API (a key is created).
    let body = r#"{"name":"from-1.2"}"#;
    let mut s = server.connect();
    send(
        &mut s,
        format!(
            "POST /api/keys HTTP/1.2\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n",
            server.token
        )
        .as_bytes(),
    );
    std::thread::sleep(Duration::from_millis(50));
    send(
        &mut s,
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).as_bytes(),
    );
    let r = read_response(&mut s).unwrap();
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        server.admin_get("/api/system/health", Some(&token)).status,
        200
    );
}

#[test]
fn other_major_versions_and_the_h2_preface_are_505_and_close() {
    let server = Server::start();
    let cases: [(&str, &[u8]); 5] = [
        ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: root.localhost\r\n\r\n"),
        ("HTTP/3.0", b"GET /health HTTP/3.0\r\nHost: root.localhost\r\n\r\n"),
        ("HTTP/0.9", b"GET / HTTP/0.9\r\n\r\n"),
        ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        (
            // What an h2 client with prior knowledge sends: the preface, then SETTINGS.
            "h2 preface and SETTINGS",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x03\x00\x00\x00\x64",
        ),
    ];
    for (what, raw) in cases {
        let mut s = server.connect();
        send(&mut s, raw);
        assert!(
            peek_status_line(&mut s).starts_with("HTTP/1.1 505 HTTP Version Not Supported"),
            "{what}"
        );
        let r = read_response(&mut s).unwrap();
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("HTTP/1.1"),
            "{what}: says what is supported: {}",
            r.text()
        );
        assert_refused(&mut s, &r, 505, "http_version_not_supported", what);
    }
    // Not logged as a server fault: the client's mistake, not ours.
    assert_eq!(server.get("root.localhost", "/health").status, 200);
    assert!(
        !server.stderr().contains("answered 505"),
        "{}",
        server.stderr()
    );
}

// ---------------------------------------------------------------------------------------
// methods (RFC 9110 §9.1, §15.5.6, §15.6.2)

#[test]
fn unknown_methods_are_501_and_known_ones_not_allowed_stay_405() {
    let (server, _site, _data) = start_with_blog();
    for (host, method) in [
        ("blog.localhost", "BREW"),
        ("root.localhost", "PROPFIND"),
        ("admin.localhost", "TRACE"),
        ("nosuch.localhost", "PURGE"),
    ] {
        let mut s = server.connect();
        send(
            &mut s,
            format!("{method} / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes(),
        );
        assert!(
            peek_status_line(&mut s).starts_with("HTTP/1.1 501 Not Implemented"),
            "{method}"
        );
        let r = read_response(&mut s).unwrap();
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(method), "{message}");
        assert_refused(&mut s, &r, 501, "not_implemented", method);
    }
    // CONNECT's authority-form target: the method decides.
    let mut s = server.connect();
    send(
        &mut s,
        b"CONNECT blog.localhost:443 HTTP/1.1\r\nHost: blog.localhost:443\r\n\r\n",
    );
    let r = read_response(&mut s).unwrap();
    assert_refused(&mut s, &r, 501, "not_implemented", "CONNECT");

    // Known methods a route doesn't allow: 405 with Allow, connection kept.
    let mut s = server.connect();
    for (method, host, path, allow) in [
        ("DELETE", "blog.localhost", "/", "GET, HEAD"),
        ("PUT", "blog.localhost", "/about.html", "GET, HEAD"),
        ("PATCH", "admin.localhost", "/api/keys", "GET, HEAD, POST"),
    ] {
        send(
            &mut s,
            format!(
                "{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nContent-Length: 0\r\n\r\n",
                server.token
            )
            .as_bytes(),
        );
        let r = read_response(&mut s).unwrap();
        assert_eq!(r.status, 405, "{method} {path}: {}", r.text());
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(r.json()["error"]["code"], "method_not_allowed");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    assert!(
        !server.stderr().contains("answered 501"),
        "{}",
        server.stderr()
    );
}

// ---------------------------------------------------------------------------------------
// Cache-Control: no-store on the admin API and /health (RFC 9111 §5.2.2.5)

fn assert_no_store(r: &HttpResponse, what: &str) {
    assert_eq!(r.header("cache-control"), Some("no-store"), "{what}: {r:?}");
    let count = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("cache-control"))
        .count();
    assert_eq!(count, 1, "{what}: one Cache-Control");
}

fn create_key(server: &Server, addr: std::net::SocketAddr, name: &str) -> HttpResponse {
    let body = format!(r#"{{"name":"{name}"}}"#);
    raw_request(
        addr,
        format!(
            "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            server.token,
            body.len()
        ),
    )
}

#[test]
fn admin_api_and_health_are_never_cached_but_pages_keep_their_caching() {
    let (server, _site, _data) = start_with_blog();
    let token = Some(server.token.as_str());

    // Liveness on a site host, on an unknown host and on the admin host.
    for host in ["blog.localhost", "127.0.0.1", "admin.localhost"] {
        assert_no_store(&server.get(host, "/health"), host);
    }

    // Reads, answered at once by the admin thread.
    for path in ["/api/system/health", "/metrics", "/api/keys", "/api/sites"] {
        let r = server.admin_get(path, token);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_no_store(&r, path);
    }
    // A write answered after the writer ran: the response carrying a new key.
    let r = create_key(&server, server.addr, "never-cached");
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    assert!(r.json()["token"].is_string());
    assert_no_store(&r, "POST /api/keys");
    // Refusals too: no key, an unknown route, a wrong method, a deploy without a key
    // (refused from its head, before the body).
    assert_no_store(&server.admin_get("/api/keys", None), "401");
    assert_no_store(&server.admin_get("/api/nothing-here", token), "404");
    let r = admin_raw(&server, "PUT", "/api/keys", "{}");
    assert_eq!(r.status, 405);
    assert_no_store(&r, "405");
    let r = server.request(
        "POST /api/deploy?site=blog HTTP/1.1\r\nHost: admin.localhost\r\nContent-Length: 10\r\n\
         Connection: close\r\n\r\n0123456789",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    assert_no_store(&r, "deploy refused early");

    // Pages keep theirs: a site's HTML revalidates, the dashboard likewise.
    let page = server.get("blog.localhost", "/");
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-cache"));
    let dashboard = server.get("admin.localhost", "/");
    assert_eq!(dashboard.status, 200);
    let caching = dashboard.header("cache-control");
    assert!(caching.is_some_and(|c| c != "no-store"), "{dashboard:?}");
}

#[test]
fn the_dedicated_admin_listener_marks_its_api_answers_no_store_too() {
    let server = Server::builder().admin_listener().start();
    let admin = server.admin_addr.unwrap();
    let r = raw_request(
        admin,
        format!(
            "GET /api/system/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            server.token
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_no_store(&r, "health on the admin listener");
    let r = create_key(&server, admin, "on-the-admin-listener");
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
    assert_no_store(&r, "new key on the admin listener");
    let r = raw_request(
        admin,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_no_store(&r, "/health on the admin listener");
}
