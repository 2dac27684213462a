//! WebSockets (issue #15) through the real binary: the upgrade and its refusals, the hub
//! (echo, broadcast, isolation between sites), the limits (message size, slow clients,
//! rate, client counts), ping/pong and idle clients, protocol errors, broadcasts from
//! serverless code, closes on delete/redeploy/SIGTERM, a real client library and wss.
use crate::common::ws::{self, End, Out, Ws, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT};
use crate::common::*;
use std::time::{Duration, Instant};

/// The bound of every single wait for a frame.
const T: Duration = Duration::from_secs(5);

fn host(site: &str) -> String {
    format!("{site}.localhost")
}

/// Deploys `files` to `site` with the owner key; panics unless it worked.
fn deploy(server: &Server, site: &str, files: &[(&str, &str)]) {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_bytes())).collect();
    let r = deploy_files(server, site, &files, zip::CompressionMethod::Deflated);
    assert_eq!(r.status, 200, "deploy {site}: {}", r.text());
}

/// A server with `env`, and a static site for each of `sites`.
fn server_with(env: &[(&str, &str)], sites: &[&str]) -> Server {
    let mut builder = Server::builder();
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let server = builder.start();
    for site in sites {
        let page = format!("<h1>{site}</h1>");
        let missing = format!("<h1>{site}: no such page</h1>");
        deploy(
            &server,
            site,
            &[("index.html", &page), ("404.html", &missing)],
        );
    }
    server
}

fn open(server: &Server, site: &str) -> Ws {
    ws::open(server.addr, &host(site))
}

/// The upgrade's answer when it is refused; panics on a `101`.
fn refused(server: &Server, site: &str, extra: &[(&str, &str)]) -> HttpResponse {
    match ws::try_open(server.addr, &host(site), extra) {
        Ok(_) => panic!("{site} upgraded with {extra:?}"),
        Err(r) => r,
    }
}

/// The value of one metrics series (0 while it is not listed yet).
fn metric(server: &Server, series: &str) -> u64 {
    let text = server.admin_get("/metrics", Some(&server.token)).text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

fn closed_total(server: &Server, reason: &str) -> u64 {
    metric(server, &format!("fazt_ws_closed_total{{reason=\"{reason}\"}}"))
}

/// Waits (bounded) until `f` holds.
fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}

fn assert_json_error(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[test]
fn refused_upgrades_answer_with_their_status_and_a_plain_get_is_a_page() {
    let env = [("FAZT_WS_ORIGINS", "chat=https://x.org")];
    let server = server_with(&env, &["chat", "blog"]);

    let evil = refused(&server, "chat", &[("Origin", "http://evil.localhost")]);
    assert_json_error(&evil, 403);
    // The site's own origin and the listed one are taken; no Origin at all too.
    ws::try_open(server.addr, &host("chat"), &[("Origin", "http://chat.localhost")])
        .unwrap_or_else(|r| panic!("own origin: {} {}", r.status, r.text()));
    ws::try_open(server.addr, &host("chat"), &[("Origin", "https://x.org")])
        .unwrap_or_else(|r| panic!("listed origin: {} {}", r.status, r.text()));
    // Listed for chat only.
    assert_json_error(&refused(&server, "blog", &[("Origin", "https://x.org")]), 403);

    let old = refused(&server, "chat", &[("Sec-WebSocket-Version", "8")]);
    assert_json_error(&old, 426);
    assert_eq!(old.header("sec-websocket-version"), Some("13"));
    let bad_key = refused(&server, "chat", &[("Sec-WebSocket-Key", "c2hvcnQ=")]);
    assert_json_error(&bad_key, 400);
    let no_key = refused(&server, "chat", &[("Sec-WebSocket-Key", "")]);
    assert_json_error(&no_key, 400);
    let keep_alive = refused(&server, "chat", &[("Connection", "keep-alive")]);
    assert_json_error(&keep_alive, 400);

    let post = ws::upgrade_request("POST", &host("chat"), &ws::new_key(), &[]);
    let post = raw_request(server.addr, format!("{}\r\nContent-Length: 0\r\n\r\n", post.trim_end()));
    assert_json_error(&post, 405);

    // Without Upgrade, /ws is a path like any other: this site has no such page.
    let plain = server.get(&host("chat"), "/ws");
    assert_eq!(plain.status, 404);
    assert_eq!(plain.text(), "<h1>chat: no such page</h1>");
}
