//! Host routing, the embedded landing page's response path (ETag, 304, HEAD), liveness.
use crate::common::*;
use std::io::Write;

#[test]
fn root_site_answers_on_root_host_and_domain() {
    let server = Server::builder().arg("--domain").arg("example.com").start();
    for host in [
        "example.com",
        "root.example.com",
        "ROOT.Example.com:8080",
        "root.localhost",
    ] {
        let r = server.get(host, "/");
        assert_eq!(r.status, 200, "host {host}");
        assert!(r.text().contains("fazt is running"), "host {host}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
}

#[test]
fn unknown_sites_and_paths_get_the_404_page() {
    let server = Server::start();
    for (host, path) in [
        ("blog.localhost", "/"),
        ("root.localhost", "/missing"),
        ("127.0.0.1", "/"),
        ("a.b.localhost", "/"),
    ] {
        let r = server.get(host, path);
        assert_eq!(r.status, 404, "{host}{path}");
        assert!(r.text().contains("404 Not Found"), "{host}{path}");
    }
}

#[test]
fn the_404_site_is_a_site_of_its_own() {
    let server = Server::start();
    let r = server.get("404.localhost", "/");
    assert_eq!(r.status, 200, "404.<domain> previews the 404 site");
    assert!(r.text().contains("404 Not Found"));
}

#[test]
fn admin_host_is_the_dashboard_and_api_not_a_site() {
    let server = Server::start();
    for host in ["admin.localhost", "localhost", "localhost:4698"] {
        let page = server.get(host, "/");
        assert_eq!(page.status, 200, "host {host}");
        assert!(
            page.text().contains("fazt admin"),
            "the dashboard on {host}"
        );
        let r = server.get(host, "/api/system/health");
        assert_eq!(r.status, 401, "host {host}: {}", r.text());
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("API key"));
    }
}

#[test]
fn health_answers_on_every_host() {
    let server = Server::start();
    for host in [
        "root.localhost",
        "admin.localhost",
        "localhost",
        "nosuch.localhost",
        "10.0.0.1",
    ] {
        let r = server.get(host, "/health");
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "host {host}");
    }
}

#[test]
fn etag_and_if_none_match() {
    let server = Server::start();
    let first = server.get("root.localhost", "/");
    let etag = first.header("etag").expect("an ETag").to_string();
    assert!(
        etag.starts_with('"') && etag.len() == 66,
        "strong sha-256 ETag: {etag}"
    );
    let cached = server.request(&format!(
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nIf-None-Match: {etag}\r\nConnection: close\r\n\r\n"
    ));
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());
    assert_eq!(cached.header("etag"), Some(etag.as_str()));
    let stale = server.request(
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nIf-None-Match: \"other\"\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(stale.status, 200);
    assert_eq!(stale.body, first.body);
}

#[test]
fn head_sends_headers_only() {
    let server = Server::start();
    let get = server.get("root.localhost", "/");
    let mut s = server.connect();
    s.write_all(
        b"HEAD / HTTP/1.1\r\nHost: root.localhost\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let head = read_response_with(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(get.body.len().to_string().as_str())
    );
    assert_eq!(head.header("etag"), get.header("etag"));
    // The next response starts right away: HEAD carried no body bytes.
    let next = read_response(&mut s).unwrap();
    assert_eq!((next.status, next.text().as_str()), (200, "ok\n"));
}

#[test]
fn other_methods_on_a_site_are_405() {
    let server = Server::start();
    let r =
        server.request("DELETE / HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
}

#[test]
fn bad_host_headers_are_400() {
    let server = Server::start();
    for host in ["bad host", "a/b", "a..b", "x:port", "[zz]", "-"] {
        let r = server.request(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n"));
        assert_eq!(r.status, 400, "host {host:?}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains("Host"),
            "host {host:?}"
        );
    }
    let missing = server.request("GET / HTTP/1.1\r\n\r\n");
    assert_eq!(missing.status, 400);
}
