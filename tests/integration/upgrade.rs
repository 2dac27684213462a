//! Upgrades from the checked-in databases at schema versions 1 and 2
//! (tests/fixtures/db/v1.db and v2.db, made by tests/fixtures/db/make.py, which lists the
//! data these tests expect). Each test starts the real binary on a copy of a fixture,
//! which migrates it to the latest schema, and then checks what a user had the way the
//! user would: the sites' files byte for byte, the old API keys, the analytics, the short
//! links and webhooks, and that new deployments never take an old deployment's id.

use crate::common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

/// Tokens of the fixtures' keys (their sha-256 is what the databases hold).
const V1_OWNER: &str =
    "fzt_a1000001_1111111111111111111111111111111111111111111111111111111111111111";
const V1_LAPTOP: &str =
    "fzt_a1000002_1212121212121212121212121212121212121212121212121212121212121212";
const V2_OWNER: &str =
    "fzt_b2000001_2121212121212121212121212121212121212121212121212121212121212121";
/// Scope `deploy:blog`.
const V2_CI: &str = "fzt_b2000002_2222222222222222222222222222222222222222222222222222222222222222";

/// 2025-05-01 and 2025-07-01, 00:00 UTC: two whole months around every v2 event.
const MAY_1: i64 = 1_746_057_600;
const JULY_1: i64 = 1_751_328_000;
/// 2025-05-31 18:00 and 2025-06-01 10:00 UTC: hours inside two days.
const MAY_31_18H: i64 = 1_748_714_400;
const JUNE_1_10H: i64 = 1_748_772_000;
/// The last day with events in the v2 fixture (2025-06-02), in days since the epoch.
const LAST_FIXTURE_DAY: i64 = 20_241;

/// A data dir holding a copy of `tests/fixtures/db/<fixture>` as its database.
fn data_dir_from(fixture: &str) -> TempDir {
    let dir = TempDir::new(&format!("upgrade-{fixture}"));
    let source = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/db")
        .join(fixture);
    std::fs::copy(&source, dir.db()).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    dir
}

/// The server on `data`, its helpers authenticating with `token`. It prints no new owner
/// key: the fixture's keys survived the migration.
fn start_upgraded(data: &TempDir, token: &str) -> Server {
    let mut server = start_on(data.path(), &[("FAZT_EVENT_FLUSH", "50ms")]);
    assert_eq!(
        server.token, "",
        "a new owner key was printed, so the fixture's keys were not found"
    );
    server.token = token.to_string();
    server
}

/// `GET host path` answers 200 with exactly `bytes`, its content type and its ETag.
fn assert_serves(server: &Server, host: &str, path: &str, bytes: &[u8], mime: &str) {
    let r = server.get(host, path);
    assert_eq!(r.status, 200, "{host}{path}: {}", r.text());
    assert!(r.body == bytes, "{host}{path}: other bytes: {}", r.text());
    assert_eq!(r.header("content-type"), Some(mime), "{host}{path}");
    assert_eq!(
        r.header("etag"),
        Some(quoted_etag(bytes).as_str()),
        "{host}{path}"
    );
}

/// The make.py `noise` bytes: sha-256 of "<label>:<counter>", concatenated.
fn noise(label: &str, size: usize) -> Vec<u8> {
    use sha2::Digest;
    let mut out = Vec::with_capacity(size + 32);
    let mut counter = 0;
    while out.len() < size {
        out.extend_from_slice(&sha2::Sha256::digest(format!("{label}:{counter}")));
        counter += 1;
    }
    out.truncate(size);
    out
}

/// Deploys `files` to `site` as a raw zip with `token`; returns the JSON answer.
fn deploy(server: &Server, token: &str, site: &str, files: &[(&str, &[u8])]) -> Value {
    let zip = zips::zip_of(files, zip::CompressionMethod::Deflated);
    let auth = format!("Bearer {token}");
    let r = send(
        server,
        "POST",
        "admin.localhost",
        &format!("/api/deploy?site={site}"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/zip"),
        ],
        &zip,
    );
    assert_eq!(r.status, 200, "deploying {site}: {}", r.text());
    r.json()
}

/// A new deployment gets an id above every id of the fixture (`old_max`), and deleting
/// the site that holds the newest one does not free its id (migration 3 seeded its counter
/// from the fixture's deployments).
fn assert_new_deployment_ids_are_fresh(server: &Server, old_max: i64) {
    let first = deploy(
        server,
        &server.token,
        "fresh",
        &[("index.html", b"fresh 1")],
    );
    assert_eq!(first["deployment"], old_max + 1, "{first}");
    assert_serves(
        server,
        "fresh.localhost",
        "/",
        b"fresh 1",
        "text/html; charset=utf-8",
    );
    assert_eq!(admin_delete(server, "/api/sites/fresh").status, 200);
    let second = deploy(
        server,
        &server.token,
        "fresh",
        &[("index.html", b"fresh 2")],
    );
    assert_eq!(second["deployment"], old_max + 2, "{second}");
    assert_serves(
        server,
        "fresh.localhost",
        "/",
        b"fresh 2",
        "text/html; charset=utf-8",
    );
}

/// After a clean shutdown the database is intact and at the latest schema.
fn assert_intact_at_latest(mut server: Server, data: &TempDir) {
    assert!(server.terminate().success(), "{}", server.stderr());
    let conn = open_read_only(data.path());
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let violations = conn
        .prepare("PRAGMA foreign_key_check")
        .unwrap()
        .query_map([], |_| Ok(()))
        .unwrap()
        .count();
    assert_eq!(violations, 0, "foreign key violations");
    assert_eq!(
        count(&conn, "PRAGMA user_version"),
        fazt::db::migrate::latest_version()
    );
}

/// The ids of a site's deployments, newest first, and the current one.
fn deployments(server: &Server, site: &str) -> (Vec<i64>, i64) {
    let list = get_json(server, &format!("/api/sites/{site}/deployments"));
    let ids = list["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    (ids, list["current"].as_i64().unwrap())
}

// ---------------------------------------------------------------------------------------
// Schema 1: sites and keys
// ---------------------------------------------------------------------------------------

const V1_HOME: &[u8] = b"<!doctype html><title>Blog</title><h1>Second post</h1>\n";
const V1_OLD_HOME: &[u8] = b"<!doctype html><title>Blog</title><h1>First post</h1>\n";
const V1_STYLE: &[u8] = b"body { font: 16px/1.5 serif; }\n";

#[test]
fn v1_sites_are_served_byte_exact_after_the_upgrade() {
    let data = data_dir_from("v1.db");
    let server = start_upgraded(&data, V1_OWNER);
    let html = "text/html; charset=utf-8";
    assert_serves(&server, "root.localhost", "/", LANDING, html);
    assert_serves(&server, "blog.localhost", "/", V1_HOME, html);
    assert_serves(
        &server,
        "blog.localhost",
        "/style.css",
        V1_STYLE,
        "text/css; charset=utf-8",
    );
    let notes = b"plain notes\n";
    assert_serves(
        &server,
        "blog.localhost",
        "/notes.txt",
        notes,
        "text/plain; charset=utf-8",
    );
    // Two 128 KiB chunks, the second one short; a range across the boundary.
    let big = noise("v1 big.bin", 128 * 1024 + 1000);
    assert_serves(
        &server,
        "blog.localhost",
        "/photos/big.bin",
        &big,
        "application/octet-stream",
    );
    let r = server.request(
        "GET /photos/big.bin HTTP/1.1\r\nHost: blog.localhost\r\nRange: bytes=131000-131171\r\n\
         Connection: close\r\n\r\n",
    );
    assert_eq!(r.status, 206);
    assert!(
        r.body == big[131_000..=131_171],
        "range across the chunk boundary"
    );

    let missing = server.get("blog.localhost", "/missing.html");
    assert_eq!(missing.status, 404);
    assert!(
        missing.body == NOT_FOUND,
        "the 404 site: {}",
        missing.text()
    );
    assert_eq!(server.get("nosuch.localhost", "/").body, NOT_FOUND);

    // Rollback to the deployment the first import made still works.
    assert_eq!(deployments(&server, "blog"), (vec![4, 3], 4));
    let r = admin_raw(&server, "POST", "/api/sites/blog/rollback", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["deployment"], 3);
    assert_serves(&server, "blog.localhost", "/", V1_OLD_HOME, html);
    assert_eq!(server.get("blog.localhost", "/notes.txt").status, 404);
    assert_intact_at_latest(server, &data);
}

#[test]
fn v1_keys_authenticate_after_the_upgrade() {
    let data = data_dir_from("v1.db");
    let server = start_upgraded(&data, V1_OWNER);
    let keys = get_json(&server, "/api/keys");
    let listed: Vec<(&str, &str, &str)> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| {
            let field = |name| k[name].as_str().unwrap();
            (field("id"), field("name"), field("scope"))
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("a1000001", "owner", "owner"),
            ("a1000002", "laptop", "owner")
        ]
    );
    assert_eq!(keys["keys"][0]["created_at"], 1_741_597_200);
    assert_eq!(server.admin_get("/api/sites", Some(V1_LAPTOP)).status, 200);
    let mut forged = V1_OWNER.to_string();
    forged.replace_range(forged.len() - 1.., "2");
    assert_eq!(server.admin_get("/api/sites", Some(&forged)).status, 401);
    assert_eq!(server.admin_get("/api/sites", None).status, 401);

    let sites = get_json(&server, "/api/sites");
    let names: Vec<&str> = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["404", "blog", "root"]);
    assert_eq!(sites["sites"][1]["deployment"], 4);
    assert_intact_at_latest(server, &data);
}

#[test]
fn v1_upgrade_takes_new_deployments_and_events() {
    let data = data_dir_from("v1.db");
    let server = start_upgraded(&data, V1_OWNER);
    assert_new_deployment_ids_are_fresh(&server, 4);
    let update = deploy(&server, V1_OWNER, "blog", &[("index.html", b"third post")]);
    assert_eq!(
        (update["deployment"].as_i64(), update["previous"].as_i64()),
        (Some(7), Some(4))
    );

    // The analytics tables came with migration 2.
    let r = track(&server, r#"{"h":"blog.localhost","p":"/","e":"pageview"}"#);
    assert_eq!(r.status, 204, "{}", r.text());
    let events = wait_events(&server, "site=blog.localhost", 1);
    assert_eq!(events[0]["path"], "/");
    let stats = get_json(&server, "/api/stats?site=blog.localhost");
    assert_eq!(stats["totals"]["pageviews"], 1, "{stats}");
    assert_intact_at_latest(server, &data);
}

// ---------------------------------------------------------------------------------------
// Schema 2: sites, scoped keys, analytics, short links and webhooks
// ---------------------------------------------------------------------------------------

const V2_STYLE: &[u8] = b"body { font: 16px/1.5 sans-serif; }\n";

#[test]
fn v2_sites_and_scoped_keys_survive_the_upgrade() {
    let data = data_dir_from("v2.db");
    let server = start_upgraded(&data, V2_OWNER);
    let html = "text/html; charset=utf-8";
    assert_serves(&server, "root.localhost", "/", LANDING, html);
    let home = b"<!doctype html><title>Blog</title><p>Hello again</p>\n";
    assert_serves(&server, "blog.localhost", "/", home, html);
    let about = b"<!doctype html><title>About</title><p>About me</p>\n";
    assert_serves(&server, "blog.localhost", "/about/", about, html);
    let pricing = b"<!doctype html><title>Pricing</title><p>Free</p>\n";
    assert_serves(&server, "blog.localhost", "/pricing", pricing, html);
    let js = b"console.log('blog');\n";
    let asset = "/assets/app-3f2a9c1b.js";
    assert_serves(
        &server,
        "blog.localhost",
        asset,
        js,
        "text/javascript; charset=utf-8",
    );
    let immutable = server.get("blog.localhost", asset);
    assert_eq!(
        immutable.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let docs = b"<!doctype html><title>Docs</title><p>Read me</p>\n";
    assert_serves(&server, "docs.localhost", "/", docs, html);
    let intro = b"# Intro\n\nStart here.\n";
    assert_serves(
        &server,
        "docs.localhost",
        "/guide/intro.md",
        intro,
        "text/markdown; charset=utf-8",
    );
    let mut logo = b"\x89PNG\r\n\x1a\n".to_vec();
    logo.extend_from_slice(&noise("v2 logo.png", 600));
    assert_serves(&server, "docs.localhost", "/logo.png", &logo, "image/png");
    // One blob, shared by both sites.
    assert_serves(
        &server,
        "docs.localhost",
        "/style.css",
        V2_STYLE,
        "text/css; charset=utf-8",
    );
    assert_serves(
        &server,
        "blog.localhost",
        "/style.css",
        V2_STYLE,
        "text/css; charset=utf-8",
    );
    assert_eq!(deployments(&server, "blog"), (vec![4, 3], 4));

    // The deploy:blog key sees and deploys blog only.
    let ci_sites = server.admin_get("/api/sites", Some(V2_CI));
    assert_eq!(ci_sites.status, 200, "{}", ci_sites.text());
    let names: Vec<Value> = ci_sites.json()["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].clone())
        .collect();
    assert_eq!(names, [json!("blog")]);
    assert_eq!(server.admin_get("/api/stats", Some(V2_CI)).status, 403);
    assert_eq!(
        server
            .admin_get("/api/sites/docs/deployments", Some(V2_CI))
            .status,
        403
    );
    let by_ci = deploy(&server, V2_CI, "blog", &[("index.html", b"from ci")]);
    assert_eq!(by_ci["deployment"], 6, "{by_ci}");
    assert_serves(&server, "blog.localhost", "/", b"from ci", html);
    let keys = get_json(&server, "/api/keys");
    assert_eq!(keys["keys"][1]["scope"], "deploy:blog", "{keys}");
    assert_intact_at_latest(server, &data);
}

/// (value, count) pairs of a top list.
fn top(stats: &Value, list: &str) -> Vec<(String, i64)> {
    stats[list]
        .as_array()
        .unwrap_or_else(|| panic!("{list}: {stats}"))
        .iter()
        .map(|e| {
            (
                e["value"].as_str().unwrap().to_string(),
                e["count"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|&(v, n)| (v.to_string(), n)).collect()
}

fn totals(stats: &Value) -> (i64, i64, i64) {
    let t = &stats["totals"];
    let n = |name: &str| {
        t[name]
            .as_i64()
            .unwrap_or_else(|| panic!("{name}: {stats}"))
    };
    (n("events"), n("pageviews"), n("visitors"))
}

#[test]
fn v2_stats_and_events_read_the_same_after_the_upgrade() {
    let data = data_dir_from("v2.db");
    let server = start_upgraded(&data, V2_OWNER);

    // Two whole months: the monthly roll-ups.
    let months = get_json(
        &server,
        &format!("/api/stats?site=blog.localhost&from={MAY_1}&to={JULY_1}&bucket=day"),
    );
    assert_eq!(totals(&months), (8, 6, 5), "{months}");
    let timeline: Vec<(i64, i64)> = months["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["t"].as_i64().unwrap(), b["events"].as_i64().unwrap()))
        .collect();
    let day = |n: i64| (LAST_FIXTURE_DAY - 2 + n) * 86_400;
    assert_eq!(timeline, [(day(0), 4), (day(1), 3), (day(2), 1)]);
    assert_eq!(
        top(&months, "top_paths"),
        pairs(&[("/", 4), ("/about/", 1), ("/pricing", 1)])
    );
    assert_eq!(
        top(&months, "top_referrers"),
        pairs(&[("news.ycombinator.com", 2), ("google.com", 1)])
    );
    assert_eq!(
        top(&months, "top_tags"),
        pairs(&[("beta", 2), ("email", 1), ("launch", 1)])
    );
    assert_eq!(
        top(&months, "event_types"),
        pairs(&[("pageview", 6), ("newsletter", 1), ("signup", 1)])
    );
    assert_eq!(top(&months, "redirect_clicks"), []);

    // Hours inside two days: the hourly and daily roll-ups.
    let hours = get_json(
        &server,
        &format!("/api/stats?site=blog.localhost&from={MAY_31_18H}&to={JUNE_1_10H}"),
    );
    assert_eq!(totals(&hours), (4, 3, 2), "{hours}");
    assert_eq!(
        top(&hours, "top_paths"),
        pairs(&[("/", 2), ("/pricing", 1)])
    );
    assert_eq!(
        top(&hours, "top_tags"),
        pairs(&[("beta", 2), ("launch", 1)])
    );

    let links = get_json(
        &server,
        &format!("/api/stats?site=localhost&from={MAY_1}&to={JULY_1}"),
    );
    assert_eq!(totals(&links), (3, 0, 3), "{links}");
    assert_eq!(
        top(&links, "redirect_clicks"),
        pairs(&[("launch", 2), ("docs", 1)])
    );
    assert_eq!(
        top(&links, "top_tags"),
        pairs(&[("launch", 2), ("social", 2)])
    );

    // Raw events, newest first, with their strings, tags and `q` objects.
    let blog = events(&server, "site=blog.localhost");
    let ids: Vec<i64> = blog.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [10, 9, 6, 5, 4, 3, 2, 1]);
    let signup = &blog[4];
    assert_eq!(
        (
            &signup["type"],
            &signup["source"],
            &signup["path"],
            &signup["ts"]
        ),
        (
            &json!("signup"),
            &json!("track"),
            &json!("/"),
            &json!(1_748_714_580)
        )
    );
    assert_eq!(
        (&signup["tags"], &signup["q"]),
        (&json!(["beta"]), &json!({"plan": "pro"}))
    );
    let pixel = &blog[1];
    assert_eq!(
        (
            &pixel["source"],
            &pixel["path"],
            &pixel["type"],
            &pixel["tags"]
        ),
        (
            &json!("pixel"),
            &Value::Null,
            &json!("newsletter"),
            &json!(["email"])
        )
    );
    let hook = events(&server, "site=github");
    assert_eq!(hook.len(), 1);
    assert_eq!(
        (&hook[0]["source"], &hook[0]["type"]),
        (&json!("webhook"), &json!("push"))
    );
    assert_eq!(hook[0]["q"], json!({"event": "push", "ref": "main"}));
    let clicks = events(&server, "type=click&tag=social");
    assert_eq!(clicks.len(), 2, "{clicks:?}");

    let domains = get_json(&server, "/api/domains");
    let listed: Vec<(&str, i64)> = domains["domains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["domain"].as_str().unwrap(), d["events"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        listed,
        [("blog.localhost", 8), ("localhost", 3), ("github", 1)]
    );
    assert_intact_at_latest(server, &data);
}

#[test]
fn v2_short_links_and_webhooks_work_after_the_upgrade() {
    let data = data_dir_from("v2.db");
    let server = start_upgraded(&data, V2_OWNER);

    let launch = server.get("localhost", "/r/launch");
    assert_eq!(launch.status, 302);
    assert_eq!(
        launch.header("location"),
        Some("https://example.com/launch?utm=fazt")
    );
    let docs = server.get("localhost", "/r/docs");
    assert_eq!(docs.header("location"), Some("https://docs.example.com/"));
    let listed = get_json(&server, "/api/redirects");
    assert_eq!(
        listed.to_string().matches("\"slug\"").count(),
        2,
        "{listed}"
    );

    let body = br#"{"event":"release","tag":"v2"}"#;
    let signature = hmac_hex(b"fixture-secret", body);
    let signed = send(
        &server,
        "POST",
        "localhost",
        "/webhook/github",
        &[("X-Webhook-Signature", &signature)],
        body,
    );
    assert_eq!(signed.status, 200, "{}", signed.text());
    let unsigned = send(&server, "POST", "localhost", "/webhook/github", &[], body);
    assert_eq!(unsigned.status, 401);
    let inactive = send(
        &server,
        "POST",
        "localhost",
        "/webhook/old-hook",
        &[],
        b"{}",
    );
    assert_eq!(inactive.status, 403);

    // The new events continue the fixture's ids and reuse its strings and tags.
    let clicks = wait_events(&server, "site=localhost", 5);
    let newest = &clicks[4];
    assert!(newest["id"].as_i64().unwrap() > 12, "{newest}");
    assert_eq!(newest["path"], "/r/docs");
    assert_eq!(clicks[3]["tags"], json!(["launch", "social"]));
    wait_events(&server, "site=github", 2);
    let conn = open_read_only(data.path());
    assert_eq!(
        count(
            &conn,
            "SELECT count(*) FROM strings WHERE value IN ('localhost', 'launch')"
        ),
        2,
        "strings are reused, not inserted again"
    );
    drop(conn);
    assert_intact_at_latest(server, &data);
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn v2_upgrade_gives_fresh_deployment_ids_and_drops_stale_salts() {
    let data = data_dir_from("v2.db");
    let server = start_upgraded(&data, V2_OWNER);
    assert_new_deployment_ids_are_fresh(&server, 5);

    // The fixture's salts are from 2025: a running server deletes every salt older than
    // yesterday, so those visitors can no longer be re-identified.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stale = loop {
        let conn = open_read_only(data.path());
        let stale = count(
            &conn,
            &format!("SELECT count(*) FROM salts WHERE day <= {LAST_FIXTURE_DAY}"),
        );
        if stale == 0 || Instant::now() >= deadline {
            break stale;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(stale, 0, "the fixture's salts are still stored");
    assert_intact_at_latest(server, &data);
}
