//! The admin API additions the dashboard's views need (issue #13), against the real
//! binary: per-site numbers in one call (`/api/stats?by=site`), live visitors
//! (`/api/live`), the 404s of a range (`top_404s`), the last use and 30-day count of short
//! links and webhooks, webhook edits that keep the secret, and scoped callers reading the
//! numbers of the sites they cover (and nothing else).
use crate::common::*;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const OTHER_UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
                        Chrome/124.0.0.0 Safari/537.36";

/// A data dir with the sites `blog` (`/`, `/about.html`) and `shop` (`/`).
fn two_sites() -> TempDir {
    let data = TempDir::new("dashboard-api");
    for (site, pages) in [
        ("blog", &["index.html", "about.html"][..]),
        ("shop", &["index.html"][..]),
    ] {
        let dir = TempDir::new(site);
        for page in pages {
            write_file(
                dir.path(),
                page,
                format!("<h1>{site} {page}</h1>").as_bytes(),
            );
        }
        import(site, dir.path(), data.path());
    }
    data
}

fn start(data: &Path) -> Server {
    start_on(data, &[("FAZT_EVENT_FLUSH", "50ms")])
}

/// A page view (or a 404) of `host` by the browser `ua`.
fn visit(server: &Server, host: &str, path: &str, ua: &str) -> u16 {
    send(server, "GET", host, path, &[("User-Agent", ua)], b"").status
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn entry<'a>(list: &'a Value, key: &str, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|e| e[key] == name)
        .unwrap_or_else(|| panic!("no {key} '{name}' in {list}"))
}

// ---------------------------------------------------------------------------------------
// Per-site numbers
// ---------------------------------------------------------------------------------------

#[test]
fn stats_by_site_lists_every_site_with_the_numbers_of_stats_per_site() {
    let data = two_sites();
    let server = start(data.path());
    for (host, path, ua) in [
        ("blog.localhost", "/", BROWSER_UA),
        ("blog.localhost", "/about.html", BROWSER_UA),
        ("blog.localhost", "/", OTHER_UA),
        ("shop.localhost", "/", BROWSER_UA),
    ] {
        assert_eq!(visit(&server, host, path, ua), 200, "{host}{path}");
    }
    assert_eq!(visit(&server, "blog.localhost", "/gone", BROWSER_UA), 404);
    let beacon = json!({"d": "elsewhere.test", "p": "/x"}).to_string();
    let r = track_with(&server, &beacon, &[("User-Agent", BROWSER_UA)]);
    assert_eq!(r.status, 204);
    flush_events(&server, "marker.test", "/m1");

    let all = get_json(&server, "/api/stats?by=site&bucket=day");
    let buckets = all["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 8, "7 days and today's partial one: {all}");
    assert!(buckets.iter().all(|t| t.as_i64().unwrap() % 86_400 == 0));
    assert_eq!(
        buckets.last().unwrap().as_i64().unwrap(),
        now() / 86_400 * 86_400
    );
    let sites = &all["sites"];
    let blog = entry(sites, "site", "blog");
    assert_eq!(
        (
            &blog["kind"],
            &blog["pageviews"],
            &blog["visitors"],
            &blog["events"]
        ),
        (&json!("site"), &json!(3), &json!(2), &json!(4)),
        "3 pageviews by 2 browsers and a 404: {all}"
    );
    let timeline: Vec<i64> = blog["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect();
    assert_eq!(timeline.len(), buckets.len());
    assert_eq!(timeline[..7], [0; 7]);
    assert_eq!(timeline[7], 3, "today's pageviews");
    let shop = entry(sites, "site", "shop");
    assert_eq!(
        (&shop["pageviews"], &shop["visitors"]),
        (&json!(1), &json!(1))
    );
    let elsewhere = entry(sites, "site", "elsewhere.test");
    assert_eq!(elsewhere["kind"], "domain", "a tracked domain, no site");
    assert_eq!(elsewhere["pageviews"], 1);
    assert!(
        sites
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["site"] != "marker.test"),
        "a domain without pageviews is not listed: {all}"
    );
    // Sites first, most pageviews first.
    let order: Vec<&str> = sites
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["site"].as_str().unwrap())
        .collect();
    let blog_at = order.iter().position(|s| *s == "blog").unwrap();
    let shop_at = order.iter().position(|s| *s == "shop").unwrap();
    assert!(blog_at < shop_at, "{order:?}");
    assert_eq!(order.last(), Some(&"elsewhere.test"), "{order:?}");
    assert_eq!(all["totals"]["pageviews"], 5, "{all}");

    // Each site's numbers are those of /api/stats?site=.
    for site in ["blog", "shop"] {
        let one = get_json(&server, &format!("/api/stats?site={site}&bucket=day"));
        let listed = entry(sites, "site", site);
        for field in ["events", "pageviews", "visitors"] {
            assert_eq!(listed[field], one["totals"][field], "{site} {field}");
        }
        assert_eq!((&all["from"], &all["to"]), (&one["from"], &one["to"]));
    }

    // A range without events lists the sites with zeros; an hourly range has one count
    // per hour.
    let (from, to) = (now() - 3 * 86_400, now() - 2 * 86_400);
    let empty = get_json(&server, &format!("/api/stats?by=site&from={from}&to={to}"));
    let blog = entry(&empty["sites"], "site", "blog");
    assert_eq!(blog["pageviews"], 0);
    let hours = empty["buckets"].as_array().unwrap().len();
    assert!((24..=25).contains(&hours), "{hours}");
    assert_eq!(blog["timeline"].as_array().unwrap().len(), hours);
    assert!(blog["timeline"].as_array().unwrap().iter().all(|n| n == 0));

    for (path, needle) in [
        ("/api/stats?by=page", "'by'"),
        ("/api/stats?by=site&site=blog", "'site'"),
        ("/api/stats?by=site&bucket=week", "'bucket'"),
    ] {
        let r = server.admin_get(path, Some(&server.token));
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.text().contains(needle), "{path}: {}", r.text());
    }
}

// ---------------------------------------------------------------------------------------
// Live
// ---------------------------------------------------------------------------------------

/// Adds a raw pageview of `host` at `ts` straight into the database.
fn insert_old_pageview(data: &Path, host: &str, ts: i64) {
    let conn = Connection::open(data.join("fazt.db")).expect("open fazt.db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute(
        "INSERT INTO events (ts, domain, type, visitor, source) VALUES (?1, \
         (SELECT id FROM strings WHERE kind = 1 AND value = ?2), \
         (SELECT id FROM strings WHERE kind = 4 AND value = 'pageview'), 42, 5)",
        rusqlite::params![ts, host],
    )
    .expect("insert an old event");
}

#[test]
fn live_counts_visitors_and_pageviews_of_the_last_five_minutes() {
    let data = two_sites();
    let server = start(data.path());
    let zero = get_json(&server, "/api/live");
    assert_eq!(
        (
            &zero["visitors"],
            &zero["pageviews"],
            &zero["window_seconds"]
        ),
        (&json!(0), &json!(0), &json!(300))
    );
    for (host, path, ua) in [
        ("blog.localhost", "/", BROWSER_UA),
        ("blog.localhost", "/about.html", BROWSER_UA),
        ("blog.localhost", "/", OTHER_UA),
        ("shop.localhost", "/", OTHER_UA),
    ] {
        assert_eq!(visit(&server, host, path, ua), 200, "{host}{path}");
    }
    flush_events(&server, "marker.test", "/m2");
    // Six minutes ago: outside the window.
    insert_old_pageview(data.path(), "blog.localhost", now() - 360);
    assert_eq!(
        events(&server, "site=blog").len(),
        4,
        "the old one is there"
    );

    let live = get_json(&server, "/api/live");
    assert_eq!(live["visitors"], 3, "two on blog, one on shop: {live}");
    assert_eq!(live["pageviews"], 4, "{live}");
    assert_eq!(live["events"], 5, "and the marker: {live}");
    assert_eq!(live["complete"], true);
    let blog = get_json(&server, "/api/live?site=blog");
    assert_eq!(
        (&blog["site"], &blog["visitors"], &blog["pageviews"]),
        (&json!("blog"), &json!(2), &json!(3)),
        "{blog}"
    );
    let shop = get_json(&server, "/api/live?site=shop.localhost");
    assert_eq!(
        (&shop["visitors"], &shop["pageviews"]),
        (&json!(1), &json!(1))
    );
    let r = server.admin_get("/api/live?site=nope", Some(&server.token));
    assert_eq!(r.status, 404, "{}", r.text());
    let r = admin_raw(&server, "POST", "/api/live", "");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

// ---------------------------------------------------------------------------------------
// 404s
// ---------------------------------------------------------------------------------------

#[test]
fn top_404s_list_the_paths_of_broken_links_in_the_range() {
    let data = two_sites();
    let server = start(data.path());
    for path in ["/missing", "/gone", "/missing", "/about.html"] {
        visit(&server, "blog.localhost", path, BROWSER_UA);
    }
    visit(&server, "shop.localhost", "/nothing", BROWSER_UA);
    flush_events(&server, "marker.test", "/m3");

    let blog = get_json(&server, "/api/stats?site=blog");
    assert_eq!(
        blog["top_404s"],
        json!([{"value": "/missing", "count": 2}, {"value": "/gone", "count": 1}])
    );
    assert_eq!(
        blog["top_paths"],
        json!([{"value": "/about", "count": 1}]),
        "404s are not pages"
    );
    let all = get_json(&server, "/api/stats?top=1");
    assert_eq!(all["top_404s"], json!([{"value": "/missing", "count": 2}]));
    let (from, to) = (now() - 3 * 86_400, now() - 2 * 86_400);
    let before = get_json(
        &server,
        &format!("/api/stats?site=blog&from={from}&to={to}"),
    );
    assert_eq!(before["top_404s"], json!([]), "the range is followed");
}

// ---------------------------------------------------------------------------------------
// Short links and webhooks: last use
// ---------------------------------------------------------------------------------------

/// Moves every stored time `days` days into the past, each month roll-up recomputed from
/// the days (exact, unlike a fixed number of months).
fn age_everything(data: &Path, days: i64) {
    let conn = Connection::open(data.join("fazt.db")).expect("open fazt.db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(&format!(
        "BEGIN;
         UPDATE events SET ts = ts - {days} * 86400;
         UPDATE visitors_daily SET day = day - {days};
         UPDATE rollup_hourly SET hour = hour - {days} * 24;
         UPDATE rollup_hourly_dims SET hour = hour - {days} * 24;
         UPDATE rollup_daily_dims SET day = day - {days};
         DELETE FROM rollup_monthly_dims;
         INSERT INTO rollup_monthly_dims (domain, dim, month, key, count)
             SELECT domain, dim,
                 (CAST(strftime('%Y', day * 86400, 'unixepoch') AS INTEGER) - 1970) * 12
                 + CAST(strftime('%m', day * 86400, 'unixepoch') AS INTEGER) - 1 AS m,
                 key, sum(count)
             FROM rollup_daily_dims GROUP BY domain, dim, m, key;
         COMMIT;"
    ))
    .expect("age the data");
}

#[test]
fn redirects_and_webhooks_show_their_last_use_and_30_day_count() {
    let data = TempDir::new("dashboard-links");
    let server = start(data.path());
    for body in [
        json!({"slug": "promo", "url": "https://example.com/promo"}),
        json!({"slug": "idle", "url": "https://example.com/idle"}),
    ] {
        assert_eq!(admin_post(&server, "/api/redirects", &body).status, 200);
    }
    for endpoint in ["hook", "quiet"] {
        let r = admin_post(&server, "/api/webhooks", &json!({ "endpoint": endpoint }));
        assert_eq!(r.status, 200);
    }
    let started = now();
    for host in ["go.test", "blog.example"] {
        let r = send(
            &server,
            "GET",
            host,
            "/r/promo",
            &[("User-Agent", BROWSER_UA)],
            b"",
        );
        assert_eq!(r.status, 302);
    }
    for _ in 0..3 {
        let r = send(&server, "POST", "x.test", "/webhook/hook", &[], b"{}");
        assert_eq!(r.status, 200, "{}", r.text());
    }
    flush_events(&server, "marker.test", "/m4");
    let ended = now();

    let links = get_json(&server, "/api/redirects")["redirects"].clone();
    let promo = entry(&links, "slug", "promo");
    assert_eq!(promo["count_30d"], 2, "clicks on any host: {links}");
    let last = promo["last_at"].as_i64().expect("a last click");
    assert!(
        (started..=ended).contains(&last),
        "{last} in {started}..={ended}"
    );
    let idle = entry(&links, "slug", "idle");
    assert_eq!(
        (&idle["last_at"], &idle["count_30d"]),
        (&Value::Null, &json!(0))
    );

    let hooks = get_json(&server, "/api/webhooks")["webhooks"].clone();
    let hook = entry(&hooks, "endpoint", "hook");
    assert_eq!(hook["count_30d"], 3, "{hooks}");
    let last = hook["last_at"].as_i64().expect("a last delivery");
    assert!((started..=ended).contains(&last), "{last}");
    let quiet = entry(&hooks, "endpoint", "quiet");
    assert_eq!(
        (&quiet["last_at"], &quiet["count_30d"]),
        (&Value::Null, &json!(0))
    );

    // Forty days later: no use in the last 30 days, and the last use is still known,
    // from the roll-ups once the raw events are gone too.
    age_everything(data.path(), 40);
    let links = get_json(&server, "/api/redirects")["redirects"].clone();
    let promo = entry(&links, "slug", "promo");
    assert_eq!(promo["count_30d"], 0, "{links}");
    assert_eq!(
        promo["last_at"].as_i64(),
        Some(last_click_aged(started, ended, promo))
    );
    let (code, _, err) = run_cli(
        &[
            "db",
            "prune",
            "--older-than",
            "30d",
            "--data",
            s(data.path()),
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let links = get_json(&server, "/api/redirects")["redirects"].clone();
    let promo = entry(&links, "slug", "promo");
    let at = promo["last_at"].as_i64().expect("from the roll-ups");
    assert_eq!(
        at % 3600,
        0,
        "the start of the hour of the last click: {promo}"
    );
    assert!(
        at <= ended - 40 * 86_400 && at > started - 40 * 86_400 - 3600,
        "{at}"
    );
    let hooks = get_json(&server, "/api/webhooks")["webhooks"].clone();
    let hook = entry(&hooks, "endpoint", "hook");
    assert_eq!(hook["count_30d"], 0, "{hooks}");
    let at = hook["last_at"].as_i64().expect("from the roll-ups");
    assert_eq!(at % 3600, 0, "{hook}");
}

/// The aged last click, checked to be 40 days before the real one.
fn last_click_aged(started: i64, ended: i64, promo: &Value) -> i64 {
    let at = promo["last_at"].as_i64().expect("a last click after aging");
    let shift = 40 * 86_400;
    assert!(
        (started - shift..=ended - shift).contains(&at),
        "{at} in {}..={}",
        started - shift,
        ended - shift
    );
    at
}

// ---------------------------------------------------------------------------------------
// Webhook edits
// ---------------------------------------------------------------------------------------

fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A delivery to `/webhook/gh`, signed with `secret` when given.
fn deliver(server: &Server, secret: Option<&str>) -> u16 {
    let body = br#"{"event":"push"}"#;
    let sig = secret.map(|s| signature(s, body));
    let headers: Vec<(&str, &str)> = sig
        .iter()
        .map(|s| ("X-Webhook-Signature", s.as_str()))
        .collect();
    send(server, "POST", "x.test", "/webhook/gh", &headers, body).status
}

fn edit(server: &Server, body: Value) -> Value {
    let r = admin_post(server, "/api/webhooks", &body);
    assert_eq!(r.status, 200, "{body}: {}", r.text());
    r.json()
}

#[test]
fn editing_a_webhook_keeps_its_secret_unless_told_otherwise() {
    let server = fast_server();
    let secret = "s3cret-for-gh";
    let made = edit(&server, json!({"endpoint": "gh", "secret": secret}));
    assert_eq!(
        made,
        json!({"endpoint": "gh", "signed": true, "active": true})
    );
    assert_eq!(deliver(&server, None), 401);
    assert_eq!(deliver(&server, Some(secret)), 200);

    // Pausing leaves the secret alone, and so does resuming.
    let paused = edit(&server, json!({"endpoint": "gh", "active": false}));
    assert_eq!(
        paused,
        json!({"endpoint": "gh", "signed": true, "active": false})
    );
    assert_eq!(deliver(&server, Some(secret)), 403, "paused");
    let resumed = edit(&server, json!({"endpoint": "gh", "active": true}));
    assert_eq!(resumed["signed"], true);
    assert_eq!(deliver(&server, None), 401, "still signed");
    assert_eq!(deliver(&server, Some(secret)), 200);

    // A new secret replaces the old one; left out, `active` stays as it was.
    let rotated = edit(&server, json!({"endpoint": "gh", "secret": "new-one"}));
    assert_eq!(
        rotated,
        json!({"endpoint": "gh", "signed": true, "active": true})
    );
    assert_eq!(deliver(&server, Some(secret)), 401);
    assert_eq!(deliver(&server, Some("new-one")), 200);
    edit(&server, json!({"endpoint": "gh", "active": false}));
    let still_paused = edit(&server, json!({"endpoint": "gh", "secret": "third"}));
    assert_eq!(still_paused["active"], false);
    edit(&server, json!({"endpoint": "gh", "active": true}));

    // `""` and `null` remove it.
    for removal in [json!(""), Value::Null] {
        edit(&server, json!({"endpoint": "gh", "secret": "again"}));
        let unsigned = edit(&server, json!({"endpoint": "gh", "secret": removal}));
        assert_eq!(unsigned["signed"], false, "{removal}");
        assert_eq!(deliver(&server, None), 200, "{removal}");
    }
    let listed = get_json(&server, "/api/webhooks")["webhooks"].clone();
    assert_eq!(entry(&listed, "endpoint", "gh")["signed"], false);
}

// ---------------------------------------------------------------------------------------
// Scoped callers
// ---------------------------------------------------------------------------------------

#[test]
fn a_scoped_key_reads_the_numbers_of_the_sites_it_covers_and_nothing_else() {
    let data = two_sites();
    let server = start(data.path());
    visit(&server, "blog.localhost", "/", BROWSER_UA);
    visit(&server, "shop.localhost", "/", BROWSER_UA);
    visit(&server, "shop.localhost", "/", OTHER_UA);
    flush_events(&server, "marker.test", "/m5");
    let r = admin_post(
        &server,
        "/api/keys",
        &json!({"name": "blog-ci", "scope": "deploy:blog"}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let token = r.json()["token"].as_str().unwrap().to_string();
    let get = |path: &str| server.admin_get(path, Some(&token));

    for path in [
        "/api/stats?site=blog",
        "/api/stats?site=blog.localhost",
        "/api/events?site=blog",
        "/api/live?site=blog",
    ] {
        let r = get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
    }
    assert_eq!(get("/api/stats?site=blog").json()["totals"]["pageviews"], 1);
    assert_eq!(
        get("/api/events?site=blog").json()["events"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(get("/api/live?site=blog").json()["pageviews"], 1);
    let by_site = get("/api/stats?by=site").json();
    let names: Vec<&str> = by_site["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["site"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["blog"], "only its own sites, no domains: {by_site}");
    assert_eq!(by_site["totals"]["pageviews"], 1);

    for path in [
        "/api/stats",
        "/api/events",
        "/api/live",
        "/api/stats?site=shop",
        "/api/events?site=shop.localhost",
        "/api/live?site=shop",
        "/api/stats?site=root",
        "/api/stats?site=marker.test",
        "/api/stats?site=nope",
        "/api/domains",
        "/api/tags",
        "/api/redirects",
        "/api/webhooks",
        "/api/keys",
    ] {
        let r = get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("deploy:blog"), "{path}: {message}");
        assert!(!r.text().contains("\"totals\""), "{path}");
    }
    let r = admin_raw_as(
        &server,
        &token,
        "POST",
        "/api/redirects",
        r#"{"slug":"x","url":"https://example.com"}"#,
    );
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(
        get_json(&server, "/api/redirects"),
        json!({"redirects": []})
    );
    // A deploy:* key covers every site but the system ones.
    let r = admin_post(
        &server,
        "/api/keys",
        &json!({"name": "ci", "scope": "deploy:*"}),
    );
    let all = r.json()["token"].as_str().unwrap().to_string();
    assert_eq!(
        server.admin_get("/api/stats?site=shop", Some(&all)).status,
        200
    );
    assert_eq!(
        server.admin_get("/api/stats?site=root", Some(&all)).status,
        403
    );
}

/// A signed-in account scoped to `blog`: the same rule as a scoped key.
#[test]
fn a_scoped_account_reads_its_sites_numbers_with_its_session() {
    let data = two_sites();
    let server = start(data.path());
    visit(&server, "blog.localhost", "/", BROWSER_UA);
    flush_events(&server, "marker.test", "/m6");
    let password = "correct horse battery staple";
    // The server runs on `data` (not its harness's own data dir).
    let args = [
        "user",
        "set-password",
        "alice",
        "--scope",
        "deploy:blog",
        "--data",
    ];
    let (code, _, err) = run_cli_input(
        &[&args[..], &[s(data.path())]].concat(),
        &format!("{password}\n"),
    );
    assert_eq!(code, 0, "{err}");
    let body = json!({"username": "alice", "password": password}).to_string();
    let login = send(
        &server,
        "POST",
        "admin.localhost",
        "/api/login",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_eq!(login.status, 200, "{}", login.text());
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let get = |path: &str| {
        send(
            &server,
            "GET",
            "admin.localhost",
            path,
            &[("Cookie", &cookie)],
            b"",
        )
    };
    let mine = get("/api/stats?site=blog");
    assert_eq!(mine.status, 200, "{}", mine.text());
    assert_eq!(mine.json()["totals"]["pageviews"], 1);
    assert_eq!(get("/api/live?site=blog").status, 200);
    for path in ["/api/stats", "/api/stats?site=shop", "/api/redirects"] {
        let r = get(path);
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(r.text().contains("deploy:blog"), "{path}: {}", r.text());
    }
}
