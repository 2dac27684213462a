//! The dashboard in a real browser: `tests/browser/dashboard.mjs` drives headless Chromium
//! (Debian's, through playwright-core) against one real server that this test fills with
//! sites, events and a scoped account, and checks what a user sees and can do: first-run
//! setup, the numbers of each view, rollback, deploy, keys, short links, CSRF, logout,
//! wrong passwords and the lockout, a scoped session, and the banner once the server stops.
//! Screenshots of each view go to `target/screenshots/` (CI keeps them).
//!
//! `scripts/test.sh` installs Chromium, Node and playwright-core (`npm ci`) when it can (as
//! root); this test skips, saying why, only where they can't be installed.
use crate::common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// The longest the whole browser run may take; it takes about 20 s.
const BROWSER_LIMIT: Duration = Duration::from_secs(180);
const OWNER_PASSWORD: &str = "correct horse battery";
const SCOPED: (&str, &str) = ("blogger", "blogger's password");
const BLOG_V1: &str = "<h1>blog v1</h1>";
const BLOG_V2: &str = "<h1>blog v2</h1>";
/// Three visitors: each user agent is a visitor of the day.
const AGENTS: [&str; 3] = [
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) AppleWebKit/605.1.15 Version/17.0 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
];

/// `POST /track` as one visitor. A host is accepted once the server has loaded its site
/// (a refused event records nothing), so a 400 is retried for a few seconds.
fn send_event(server: &Server, agent: &str, body: serde_json::Value) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = track_with(server, &body.to_string(), &[("User-Agent", agent)]);
        if r.status == 204 {
            return;
        }
        assert!(
            r.status == 400 && Instant::now() < deadline,
            "{}: {}",
            r.status,
            r.text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The events of the test, and what each view must show for them.
fn send_events(server: &Server) -> serde_json::Value {
    let blog = |path: &str| json!({"h": "blog.localhost", "p": path});
    for (i, agent) in AGENTS.iter().enumerate() {
        let mut home = blog("/");
        if i < 2 {
            home["ref"] = json!("https://news.example/item?id=1");
        }
        send_event(server, agent, home);
    }
    send_event(server, AGENTS[0], blog("/"));
    send_event(server, AGENTS[0], blog("/about"));
    send_event(server, AGENTS[1], blog("/about"));
    let mut signup = blog("/about");
    signup["e"] = json!("signup");
    signup["t"] = json!(["launch"]);
    signup["q"] = json!({"utm_source": "news", "utm_campaign": "spring"});
    send_event(server, AGENTS[2], signup);
    // Enough clicks for a second page of recent events (25 a page).
    for _ in 0..20 {
        let mut click = blog("/");
        click["e"] = json!("click");
        send_event(server, AGENTS[0], click);
    }
    for _ in 0..3 {
        send_event(server, AGENTS[0], json!({"h": "shop.localhost", "p": "/"}));
    }
    // A short link clicked and a broken link followed, by a person's browser.
    let link = json!({"slug": "gh", "url": "http://blog.localhost/about.html", "tags": "promo"});
    assert_eq!(admin_post(server, "/api/redirects", &link).status, 200);
    let ua = [("User-Agent", AGENTS[1])];
    assert_eq!(
        send(server, "GET", "blog.localhost", "/r/gh", &ua, b"").status,
        302
    );
    assert_eq!(
        send(server, "GET", "blog.localhost", "/missing", &ua, b"").status,
        404
    );
    wait_events(server, "site=blog&limit=100", 29);
    wait_events(server, "site=shop&limit=100", 3);
    json!({
        "pageviews": 9, "events": 32, "visitors": 4,
        "sites": {"blog": 6, "shop": 3, "root": 0},
        "blog_paths": {"/": 4, "/about": 2},
        "blog_tags": {"launch": 1, "promo": 1},
        "blog_redirects": {"gh": 1},
        "blog_404s": {"/missing": 1},
        "blog_referrers": {"news.example": 2},
        "blog_campaigns": {"source: news": 1, "campaign: spring": 1},
        "blog_v1": BLOG_V1,
        "fresh_index": "<h1>fresh</h1>",
        "fresh_page": "<p>nested</p>",
    })
}

/// Adds a log line of blog's app to the server's database, as its runtime would.
fn write_log(server: &Server, message: &str) {
    let conn = rusqlite::Connection::open(fazt::db::db_path(server.data.path())).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    conn.execute(
        "INSERT INTO app_logs (site, ts, level, message) VALUES ('blog', ?1, 'warn', ?2)",
        rusqlite::params![now_ms, message],
    )
    .unwrap();
}

/// `fazt user set-password NAME --scope SCOPE` with the password on stdin.
fn add_account(server: &Server, name: &str, password: &str, scope: &str) {
    let (code, _, err) = set_password(server, name, password, &["--scope", scope]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn the_dashboard_in_a_real_browser() {
    if browser::must_skip() {
        return;
    }
    let mut server = Server::start();
    let setup = server
        .setup_link
        .clone()
        .expect("a setup link at first start");
    let sites = TempDir::new("dashboard-sites");
    write_file(sites.path(), "blog/index.html", BLOG_V1.as_bytes());
    write_file(sites.path(), "blog/about.html", b"<h1>about</h1>");
    import("blog", &sites.path().join("blog"), server.data.path());
    write_file(sites.path(), "blog/index.html", BLOG_V2.as_bytes());
    import("blog", &sites.path().join("blog"), server.data.path());
    write_file(sites.path(), "shop/index.html", b"<h1>shop</h1>");
    import("shop", &sites.path().join("shop"), server.data.path());
    write_file(sites.path(), "fresh/index.html", b"<h1>fresh</h1>");
    write_file(sites.path(), "fresh/sub/page.html", b"<p>nested</p>");
    add_account(&server, SCOPED.0, SCOPED.1, "deploy:blog");
    let mut expect = send_events(&server);
    let blog_logs = ["hello from blog", "careful:\nthe second line"];
    for line in blog_logs {
        write_log(&server, line);
    }
    expect["blog_logs"] = json!(blog_logs);

    let shots = browser::screenshots_dir();
    let port = server.addr.port();
    let config = json!({
        "base": format!("http://localhost:{port}"),
        "port": port,
        "setup": setup,
        "password": OWNER_PASSWORD,
        "scoped": {"username": SCOPED.0, "password": SCOPED.1},
        "shots": shots,
        "folder": sites.path().join("fresh"),
        "expect": expect,
    });
    let stderr_path = sites.path().join("node.stderr");
    let answer = |line: &str| match line {
        "LOG" => {
            write_log(&server, "written after the view opened");
            Some("logged".to_string())
        }
        // The script asks for the server to go away, to see the banner.
        "STOP" => {
            server.terminate();
            Some("stopped".to_string())
        }
        _ => None,
    };
    let (status, steps) = browser::run_driver(
        "dashboard.mjs",
        "FAZT_DASHBOARD",
        &config,
        &stderr_path,
        BROWSER_LIMIT,
        answer,
    );
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        status.success() && steps.last().map(String::as_str) == Some("DONE"),
        "the browser run failed ({status}) after: {steps:#?}\n{stderr}"
    );
}
