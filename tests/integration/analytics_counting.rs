//! Analytics that count what a person would count (issue #10), against the real binary:
//! prefetches and bots are not views, self-referrals are not referrers, one page is one
//! path, 404s are their own events, events only for served or allowed hosts, redirect
//! clicks apart from page clicks, `?site=` by name, the pixel's and preflight's headers,
//! and the tracking script, also in a real browser.
use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHROME_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                         Chrome/124.0.0.0 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// A data dir with a `blog` site: pages at `/`, `/about.html` and `/posts/index.html`.
fn blog_data(extra: &[(&str, &[u8])]) -> TempDir {
    let data = TempDir::new("counting");
    let site = TempDir::new("counting-site");
    write_file(site.path(), "index.html", b"<h1>home</h1>");
    write_file(site.path(), "about.html", b"<h1>about</h1>");
    write_file(site.path(), "posts/index.html", b"<h1>posts</h1>");
    write_file(site.path(), "style.css", b"body{}");
    for (path, bytes) in extra {
        write_file(site.path(), path, bytes);
    }
    import("blog", site.path(), data.path());
    data
}

fn start(data: &Path, env: &[(&str, &str)]) -> Server {
    let mut all = vec![("FAZT_EVENT_FLUSH", "50ms")];
    all.extend_from_slice(env);
    start_on(data, &all)
}

fn get_as(server: &Server, host: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    send(server, "GET", host, path, headers, b"")
}

/// Events other than markers, oldest first.
fn recorded(server: &Server) -> Vec<Value> {
    let mut list: Vec<Value> = events(server, "limit=1000")
        .into_iter()
        .filter(|e| e["type"] != "marker")
        .collect();
    list.reverse();
    list
}

#[test]
fn prefetches_and_bots_are_not_views_and_are_counted() {
    let data = blog_data(&[]);
    let server = start(data.path(), &[]);
    let ua = ("User-Agent", CHROME_UA);
    for purpose in [
        ("Sec-Purpose", "prefetch"),
        ("Sec-Purpose", "prefetch;prerender"),
        ("Purpose", "prefetch"),
    ] {
        let r = get_as(&server, "blog.localhost", "/", &[ua, purpose]);
        assert_eq!(r.status, 200, "a prefetch is still answered");
    }
    let r = get_as(&server, "blog.localhost", "/", &[("User-Agent", GOOGLEBOT)]);
    assert_eq!(r.status, 200);
    let bot_track = track_with(
        &server,
        r#"{"h":"blog.localhost","p":"/"}"#,
        &[("User-Agent", GOOGLEBOT)],
    );
    assert_eq!(bot_track.status, 204);
    get_as(&server, "blog.localhost", "/about", &[ua]);
    flush_events(&server, "blog.localhost", "/m1");
    let list = recorded(&server);
    assert_eq!(list.len(), 1, "only the person's view: {list:?}");
    assert_eq!(list[0]["path"], "/about");
    assert_eq!(
        metric(&server, "fazt_analytics_ignored_total{reason=\"prefetch\"}"),
        3
    );
    assert_eq!(
        metric(&server, "fazt_analytics_ignored_total{reason=\"bot\"}"),
        2
    );
}

#[test]
fn one_page_is_one_path_and_self_referrals_are_dropped() {
    let data = blog_data(&[]);
    let server = start(data.path(), &[]);
    let ua = ("User-Agent", CHROME_UA);
    let own = ("Referer", "http://blog.localhost/posts/");
    let other = ("Referer", "https://news.example.org/item?id=1");
    for (path, referer) in [
        ("/", own),
        ("/index.html", own),
        ("/about", other),
        ("/about.html", own),
        ("/posts/", own),
        ("/posts/index.html", own),
        ("/style.css", own),
    ] {
        let r = get_as(&server, "blog.localhost", path, &[ua, referer]);
        assert_eq!(r.status, 200, "{path}");
    }
    flush_events(&server, "blog.localhost", "/m2");
    let list = recorded(&server);
    let paths: Vec<&str> = list.iter().map(|e| e["path"].as_str().unwrap()).collect();
    assert_eq!(
        paths,
        ["/", "/", "/about", "/about", "/posts/", "/posts/"],
        "canonical paths, no asset"
    );
    let referrers: Vec<&Value> = list.iter().map(|e| &e["referrer"]).collect();
    assert_eq!(referrers.iter().filter(|r| r.is_null()).count(), 5);
    assert_eq!(list[2]["referrer"], "news.example.org");
    let stats = get_json(&server, "/api/stats?site=blog");
    assert_eq!(
        stats["top_paths"],
        json!([{"value": "/", "count": 2}, {"value": "/about", "count": 2},
               {"value": "/posts/", "count": 2}])
    );
    assert_eq!(
        stats["top_referrers"],
        json!([{"value": "news.example.org", "count": 1}])
    );
}

#[test]
fn not_found_hits_are_their_own_event_type() {
    let data = blog_data(&[]);
    let server = start(data.path(), &[]);
    let headers = [
        ("User-Agent", CHROME_UA),
        ("Referer", "https://elsewhere.example/links"),
    ];
    assert_eq!(
        get_as(&server, "blog.localhost", "/old-post.html", &headers).status,
        404
    );
    flush_events(&server, "blog.localhost", "/m3");
    let list = recorded(&server);
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["type"], "404");
    assert_eq!(list[0]["path"], "/old-post.html");
    assert_eq!(list[0]["referrer"], "elsewhere.example");
    let stats = get_json(&server, "/api/stats?site=blog.localhost");
    assert_eq!(stats["totals"]["pageviews"], 0, "a 404 is not a pageview");
    assert_eq!(events(&server, "site=blog&type=404").len(), 1);
}

#[test]
fn events_only_for_served_or_allowed_hosts() {
    let data = blog_data(&[]);
    let server = start(
        data.path(),
        &[("FAZT_TRACK_DOMAINS", "shop.example.com,*.docs.example")],
    );
    let before = metric(
        &server,
        "fazt_analytics_ignored_total{reason=\"foreign_host\"}",
    );
    for body in [
        r#"{}"#,
        r#"{"h":"evil.example.net","p":"/"}"#,
        r#"{"d":"ghost.localhost"}"#,
        r#"{"d":"example.com"}"#,
    ] {
        let r = track(&server, body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("FAZT_TRACK_DOMAINS"), "{message}");
    }
    let pixel = server.get("x.test", "/pixel.gif?domain=evil.example.net");
    assert_eq!(pixel.status, 200, "the pixel still answers");
    assert_eq!(pixel.header("content-type"), Some("image/gif"));
    let after = metric(
        &server,
        "fazt_analytics_ignored_total{reason=\"foreign_host\"}",
    );
    assert_eq!(after - before, 5);

    for body in [
        r#"{"h":"blog.localhost","p":"/a"}"#,
        r#"{"h":"shop.example.com","p":"/b"}"#,
        r#"{"h":"a.docs.example","p":"/c"}"#,
    ] {
        assert_eq!(track(&server, body).status, 204, "{body}");
    }
    assert_eq!(
        server
            .get("x.test", "/pixel.gif?domain=shop.example.com")
            .status,
        200
    );
    flush_events(&server, "blog.localhost", "/m4");
    let domains: Vec<String> = recorded(&server)
        .iter()
        .map(|e| e["domain"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        domains,
        [
            "blog.localhost",
            "shop.example.com",
            "a.docs.example",
            "shop.example.com"
        ]
    );
}

#[test]
fn redirect_clicks_are_not_page_clicks() {
    let data = blog_data(&[]);
    let server = start(data.path(), &[]);
    let r = admin_post(
        &server,
        "/api/redirects",
        &json!({"slug": "promo", "url": "https://example.org/"}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = get_as(
        &server,
        "blog.localhost",
        "/r/promo",
        &[("User-Agent", CHROME_UA)],
    );
    assert_eq!(r.status, 302);
    let r = track(&server, r#"{"h":"blog.localhost","p":"/","e":"click"}"#);
    assert_eq!(r.status, 204);
    flush_events(&server, "blog.localhost", "/m5");
    assert_eq!(
        events(&server, "type=click").len(),
        1,
        "only the page's click"
    );
    let redirects = events(&server, "type=redirect");
    assert_eq!(redirects.len(), 1);
    assert_eq!(redirects[0]["source"], "redirect");
}

#[test]
fn stats_and_events_take_a_site_name_and_refuse_unknown_sites() {
    let data = blog_data(&[]);
    let server = start(data.path(), &[]);
    get_as(&server, "blog.localhost", "/", &[("User-Agent", CHROME_UA)]);
    flush_events(&server, "blog.localhost", "/m6");
    let by_name = get_json(&server, "/api/stats?site=blog");
    let by_host = get_json(&server, "/api/stats?site=blog.localhost");
    assert_eq!(by_name["totals"], by_host["totals"]);
    assert_eq!(by_name["totals"]["pageviews"], 1);
    assert_eq!(events(&server, "site=blog&type=pageview").len(), 1);
    for path in ["/api/stats?site=nope", "/api/events?site=nope.localhost"] {
        let r = server.admin_get(path, Some(&server.token));
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert_eq!(r.json()["error"]["code"], "not_found");
    }
}

#[test]
fn pixel_and_cors_headers() {
    let server = fast_server();
    let pixel = server.get("x.test", "/pixel.gif?domain=a.test");
    assert_eq!(pixel.header("cache-control"), Some("no-store"));
    assert_eq!(pixel.header("pragma"), None);
    assert_eq!(pixel.header("expires"), None);

    let post = track(&server, r#"{"d":"a.test"}"#);
    assert_eq!(post.header("access-control-allow-origin"), Some("*"));
    for name in [
        "access-control-allow-methods",
        "access-control-allow-headers",
        "access-control-max-age",
    ] {
        assert_eq!(post.header(name), None, "{name} only on the preflight");
    }
    let preflight = send(&server, "OPTIONS", "x.test", "/track", &[], b"");
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    assert_eq!(preflight.header("access-control-max-age"), Some("86400"));
}

#[test]
fn the_tracking_script_is_served_on_every_host() {
    let server = Server::start();
    let script = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/track.min.js"));
    for (host, path) in [
        ("blog.localhost", "/static/js/track.min.js"),
        ("anything.example", "/fazt.js"),
        ("admin.localhost", "/fazt.js"),
    ] {
        let r = server.get(host, path);
        assert_eq!(r.status, 200, "{host}{path}");
        assert_eq!(r.body, script);
        assert!(r
            .header("content-type")
            .unwrap()
            .starts_with("text/javascript"));
        assert_eq!(r.header("cache-control"), Some("public, max-age=3600"));
        let etag = r.header("etag").expect("an ETag").to_string();
        let again = send(&server, "GET", host, path, &[("If-None-Match", &etag)], b"");
        assert_eq!(again.status, 304);
    }
    let gzipped = gzip_size(script);
    eprintln!(
        "tracking script: {} bytes, {gzipped} bytes gzipped (target 1536)",
        script.len()
    );
}

/// The gzip -9 size of `bytes`, by the system's gzip (printed, never asserted).
fn gzip_size(bytes: &[u8]) -> String {
    use std::io::Write;
    let child = Command::new("gzip")
        .arg("-9c")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        return "unknown (no gzip)".into();
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(bytes);
    }
    child
        .wait_with_output()
        .map(|o| o.stdout.len().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
}

/// A page with the one-line snippet, loaded in headless Chromium, records a pageview
/// (sent by the script: automatic pageviews are off), then an SPA navigation and a
/// marked click, all read back through /api/events.
#[test]
fn a_browser_running_the_script_records_a_pageview() {
    let Some(bin) = chromium() else {
        eprintln!("SKIPPED: no chromium on this machine (scripts/test.sh installs it)");
        return;
    };
    let page = br#"<!doctype html><title>t</title>
<script defer src="/fazt.js"></script>
<button id="b" data-fazt-event="signup" data-fazt-tags="hero">Sign up</button>
<script>addEventListener("load", function () {
  setTimeout(function () {
    history.pushState({}, "", "/app/settings");
    document.getElementById("b").click();
    window.fazt.track("custom", {plan: "pro"});
  }, 100);
});</script>"#;
    let data = blog_data(&[("spa.html", page)]);
    let server = start(data.path(), &[("FAZT_AUTO_PAGEVIEWS", "off")]);
    let profile = TempDir::new("chromium-profile");
    let url = format!(
        "http://blog.localhost:{}/spa.html?utm_source=news",
        server.addr.port()
    );
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=3000",
            &format!("--user-data-dir={}", profile.path().display()),
            &format!("--user-agent={CHROME_UA}"),
            "--dump-dom",
            &url,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let list = loop {
        let list = recorded(&server);
        if list.len() >= 4 || Instant::now() > deadline {
            break list;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let seen: Vec<(String, String)> = list
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().into(),
                e["path"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        seen.contains(&("pageview".into(), "/spa.html".into())),
        "the load's pageview: {list:?}"
    );
    assert!(
        seen.contains(&("pageview".into(), "/app/settings".into())),
        "{list:?}"
    );
    let signup = list
        .iter()
        .find(|e| e["type"] == "signup")
        .expect("the click");
    assert_eq!(signup["tags"], json!(["hero"]));
    let custom = list
        .iter()
        .find(|e| e["type"] == "custom")
        .expect("fazt.track");
    assert_eq!(custom["q"], json!({"plan": "pro"}));
    let first = list.iter().find(|e| e["path"] == "/spa.html").unwrap();
    assert_eq!(first["q"], json!({"utm_source": "news"}));
    // The browser's own request for /favicon.ico (the site has none) is a 404 event.
    assert!(
        list.iter()
            .all(|e| e["source"] == "track" || e["type"] == "404"),
        "{list:?}"
    );
}

#[test]
fn utm_parameters_are_campaign_dimensions_in_stats_and_events() {
    let data = blog_data(&[]);
    let server = start(data.path(), &[]);
    let ua = ("User-Agent", CHROME_UA);
    let page = "/about?utm_source=newsletter&utm_medium=email&utm_campaign=spring";
    assert_eq!(get_as(&server, "blog.localhost", page, &[ua]).status, 200);
    let beacon = json!({"h": "blog.localhost", "p": "/",
                        "q": {"utm_source": "mastodon", "utm_campaign": "spring"}});
    assert_eq!(track_with(&server, &beacon.to_string(), &[ua]).status, 204);
    let in_path = json!({"h": "blog.localhost", "p": "/?utm_source=newsletter&x=1"});
    assert_eq!(track_with(&server, &in_path.to_string(), &[ua]).status, 204);
    flush_events(&server, "blog.localhost", "/m7");
    let stats = get_json(&server, "/api/stats?site=blog");
    assert_eq!(
        stats["top_utm_sources"],
        json!([{"value": "newsletter", "count": 2}, {"value": "mastodon", "count": 1}])
    );
    assert_eq!(
        stats["top_utm_mediums"],
        json!([{"value": "email", "count": 1}])
    );
    assert_eq!(
        stats["top_utm_campaigns"],
        json!([{"value": "spring", "count": 2}])
    );
    assert_eq!(
        stats["top_paths"],
        json!([{"value": "/", "count": 2}, {"value": "/about", "count": 1}]),
        "the query string is not part of a page"
    );
    let first = &recorded(&server)[0];
    assert_eq!(
        first["utm"],
        json!({"source": "newsletter", "medium": "email", "campaign": "spring"})
    );
}

fn metric(server: &Server, series: &str) -> u64 {
    metric_value(server, series).unwrap_or_else(|| panic!("{series} is not in /metrics"))
}
