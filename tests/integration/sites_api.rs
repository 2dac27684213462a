//! Site management on the admin API (issue #5): listing sites and deployments, rollback
//! (served at once), deleting a site (then the 404 chain; system sites protected), garbage
//! collection of old deployments and unreferenced blobs, and API key scopes (HTTP and CLI),
//! including `last_used_at`.
//!
//! Content is published with `fazt site import` while the server runs.
use crate::common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Imports one version of `site` (files as (path, text)) and waits until the server
/// serves its `index.html`; returns the new deployment id.
fn publish(server: &Server, site: &str, files: &[(&str, &str)]) -> i64 {
    let dir = TempDir::new("sa-site");
    for (path, text) in files {
        write_file(dir.path(), path, text.as_bytes());
    }
    let out = import(site, dir.path(), server.data.path());
    let id: i64 = out
        .split("is now deployment ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no deployment id in {out:?}"));
    if let Some((_, index)) = files.iter().find(|(path, _)| *path == "index.html") {
        let host = format!("{site}.localhost");
        let r = wait_for(server, &host, "/", |r| r.text() == *index);
        assert_eq!(r.text(), *index, "{site} deployment {id} served within 5 s");
    }
    id
}

fn rollback(server: &Server, site: &str, body: &str) -> HttpResponse {
    admin_raw(server, "POST", &format!("/api/sites/{site}/rollback"), body)
}

fn error_of(r: &HttpResponse) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Creates a key with `scope` through the API; returns (id, token).
fn create_key(server: &Server, name: &str, scope: &str) -> (String, String) {
    let r = admin_post(
        server,
        "/api/keys",
        &json!({ "name": name, "scope": scope }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let body = r.json();
    (
        body["id"].as_str().unwrap().to_string(),
        body["token"].as_str().unwrap().to_string(),
    )
}

fn site_names(list: &Value) -> Vec<String> {
    list["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn sites_and_deployments_are_listed_newest_first() {
    let server = Server::start();
    let d1 = publish(&server, "blog", &[("index.html", "v1"), ("a.css", "a{}")]);
    let d2 = publish(&server, "blog", &[("index.html", "v2"), ("a.css", "a{}")]);

    let list = get_json(&server, "/api/sites");
    assert_eq!(site_names(&list), ["404", "blog", "root"]);
    let blog = &list["sites"][1];
    let port = server.addr.port();
    assert_eq!(blog["deployment"], d2);
    assert_eq!(
        (blog["files"].as_u64(), blog["bytes"].as_u64()),
        (Some(2), Some(5))
    );
    assert!(blog["updated_at"].as_i64().unwrap() > 1_700_000_000);
    assert_eq!(blog["url"], format!("http://blog.localhost:{port}/"));
    assert_eq!(
        list["sites"][2]["url"],
        format!("http://root.localhost:{port}/")
    );

    let deployments = get_json(&server, "/api/sites/blog/deployments");
    assert_eq!(deployments["site"], "blog");
    assert_eq!(deployments["current"], d2);
    let list = deployments["deployments"].as_array().unwrap();
    let ids: Vec<i64> = list.iter().map(|d| d["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [d2, d1]);
    assert_eq!(list[0]["current"], true);
    assert_eq!(list[1]["current"], false);
    assert_eq!(list[0]["files"], 2);
    assert_eq!(
        list[0]["new_bytes"], 2,
        "a.css was stored by the first deployment"
    );
    assert_eq!(list[1]["new_bytes"], 5);
    assert_eq!(list[0]["source"], "import");

    let missing = server.admin_get("/api/sites/nope/deployments", Some(&server.token));
    assert_eq!(missing.status, 404);
    assert!(error_of(&missing).contains("nope"));
    let bad_name = server.admin_get("/api/sites/Bad_Name/deployments", Some(&server.token));
    assert_eq!(bad_name.status, 404);
    assert_eq!(admin_raw(&server, "POST", "/api/sites", "").status, 405);
    let wrong = admin_raw(&server, "GET", "/api/sites/blog/rollback", "");
    assert_eq!((wrong.status, wrong.header("allow")), (405, Some("POST")));
    assert_eq!(server.admin_get("/api/sites", None).status, 401);
}

#[test]
fn rollback_switches_the_served_content_at_once() {
    let server = Server::start();
    let d1 = publish(&server, "blog", &[("index.html", "v1")]);
    let d2 = publish(&server, "blog", &[("index.html", "v2")]);
    let d3 = publish(&server, "blog", &[("index.html", "v3"), ("only3.txt", "3")]);
    let shop = publish(&server, "shop", &[("index.html", "shop")]);
    assert_eq!(server.get("blog.localhost", "/only3.txt").text(), "3");

    // No wait between the answer and the next request: the site table moved already.
    let r = rollback(&server, "blog", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        (body["deployment"].as_i64(), body["previous"].as_i64()),
        (Some(d2), Some(d3))
    );
    assert_eq!(body["site"], "blog");
    assert_eq!(
        body["url"],
        format!("http://blog.localhost:{}/", server.addr.port())
    );
    assert_eq!(server.get("blog.localhost", "/").text(), "v2");
    assert_eq!(server.get("blog.localhost", "/only3.txt").status, 404);

    let r = rollback(&server, "blog", "{}");
    assert_eq!(r.json()["deployment"], d1);
    assert_eq!(server.get("blog.localhost", "/").text(), "v1");
    let r = rollback(&server, "blog", "");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(error_of(&r).contains("no deployment older"), "{}", r.text());

    // Forward again, by id.
    let r = rollback(&server, "blog", &json!({ "deployment": d3 }).to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        (
            r.json()["deployment"].as_i64(),
            r.json()["previous"].as_i64()
        ),
        (Some(d3), Some(d1))
    );
    assert_eq!(server.get("blog.localhost", "/").text(), "v3");
    assert_eq!(server.get("blog.localhost", "/only3.txt").text(), "3");
    assert_eq!(
        get_json(&server, "/api/sites/blog/deployments")["current"],
        d3
    );

    let again = rollback(&server, "blog", &json!({ "deployment": d3 }).to_string());
    assert_eq!(again.status, 409, "{}", again.text());
    let foreign = rollback(&server, "blog", &json!({ "deployment": shop }).to_string());
    assert_eq!(
        foreign.status,
        404,
        "another site's deployment: {}",
        foreign.text()
    );
    let unknown = rollback(&server, "blog", r#"{"deployment": 999999}"#);
    assert_eq!(unknown.status, 404);
    assert!(error_of(&unknown).contains("999999"));
    assert_eq!(
        rollback(&server, "blog", r#"{"deployment": "3"}"#).status,
        400
    );
    assert_eq!(rollback(&server, "blog", "not json").status, 400);
    assert_eq!(rollback(&server, "nope", "").status, 404);
    let single = rollback(&server, "shop", "");
    assert_eq!(single.status, 409, "{}", single.text());
    assert_eq!(server.get("shop.localhost", "/").text(), "shop");
    assert_eq!(server.get("blog.localhost", "/").text(), "v3");
}

#[test]
fn a_deleted_site_falls_to_the_404_chain_and_system_sites_are_protected() {
    let server = Server::start();
    publish(
        &server,
        "blog",
        &[("index.html", "blog v1"), ("own.txt", "only blog has this")],
    );
    publish(
        &server,
        "blog",
        &[("index.html", "blog v2"), ("shared.txt", "shared bytes")],
    );
    publish(
        &server,
        "shop",
        &[("index.html", "shop"), ("shared.txt", "shared bytes")],
    );
    let not_found_page = server.get("nosuchsite.localhost", "/").text();
    assert_eq!(
        server.get("blog.localhost", "/shared.txt").text(),
        "shared bytes"
    );

    let r = admin_delete(&server, "/api/sites/blog");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["deleted"], "blog");
    assert_eq!(body["deployments_removed"], 2);
    // blog v1, blog v2, own.txt; shared.txt stays for shop.
    assert_eq!(body["blobs_removed"], 3);

    // At once, not on the next tick.
    let gone = server.get("blog.localhost", "/");
    assert_eq!(gone.status, 404);
    assert_eq!(gone.text(), not_found_page);
    assert_eq!(server.get("blog.localhost", "/shared.txt").status, 404);
    assert_eq!(
        server.get("shop.localhost", "/shared.txt").text(),
        "shared bytes"
    );
    assert_eq!(
        site_names(&get_json(&server, "/api/sites")),
        ["404", "root", "shop"]
    );
    assert_eq!(
        server
            .admin_get("/api/sites/blog/deployments", Some(&server.token))
            .status,
        404
    );
    assert_eq!(admin_delete(&server, "/api/sites/blog").status, 404);

    let db = open_read_only(server.data.path());
    assert_eq!(
        count(&db, "SELECT COUNT(*) FROM deployments WHERE site = 'blog'"),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM files WHERE deployment NOT IN (SELECT id FROM deployments)"
        ),
        0
    );
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM files)"
        ),
        0
    );

    for system in ["root", "404"] {
        let r = admin_delete(&server, &format!("/api/sites/{system}"));
        assert_eq!(r.status, 403, "{system}: {}", r.text());
        assert!(error_of(&r).contains("system site"));
    }
    assert_eq!(server.get("localhost", "/").status, 200);

    // The name can be used again, with nothing of the old site left in the cache.
    publish(&server, "blog", &[("index.html", "blog reborn")]);
    assert_eq!(server.get("blog.localhost", "/own.txt").status, 404);
}

#[test]
fn gc_keeps_the_last_k_deployments_and_blobs_still_in_use() {
    let server = Server::builder().env("FAZT_KEEP_DEPLOYMENTS", "2").start();
    let shared = ("shared.js", "console.log('shared by blog and shop')");
    let mut blog = Vec::new();
    for n in 1..=4 {
        let index = format!("blog v{n}");
        blog.push(publish(&server, "blog", &[("index.html", &index), shared]));
    }
    publish(&server, "shop", &[("index.html", "blog v1"), shared]);
    publish(&server, "tmp", &[("index.html", "temporary")]);
    // Deleting a site runs the collection for every site.
    let r = admin_delete(&server, "/api/sites/tmp");
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(
        body["deployments_removed"], 3,
        "tmp's one and blog's two oldest: {body}"
    );
    // "temporary" and "blog v2"; "blog v1" is shop's index too.
    assert_eq!(body["blobs_removed"], 2, "{body}");
    assert_eq!(
        body["bytes_freed"],
        ("temporary".len() + "blog v2".len()) as u64
    );

    let deployments = get_json(&server, "/api/sites/blog/deployments");
    let ids: Vec<i64> = deployments["deployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [blog[3], blog[2]]);
    let db = open_read_only(server.data.path());
    assert_eq!(
        count(
            &db,
            "SELECT COUNT(*) FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM files)"
        ),
        0
    );
    assert_eq!(server.get("shop.localhost", "/").text(), "blog v1");
    assert_eq!(server.get("shop.localhost", "/shared.js").text(), shared.1);

    // Only the kept deployments can be rolled back to.
    assert_eq!(rollback(&server, "blog", "").json()["deployment"], blog[2]);
    assert_eq!(server.get("blog.localhost", "/").text(), "blog v3");
    assert_eq!(rollback(&server, "blog", "").status, 409);
    let pruned = rollback(
        &server,
        "blog",
        &json!({ "deployment": blog[0] }).to_string(),
    );
    assert_eq!(pruned.status, 404);
}

#[test]
fn scopes_limit_keys_to_their_sites_and_the_owner_can_do_everything() {
    let server = Server::start();
    publish(&server, "blog", &[("index.html", "blog v1")]);
    publish(&server, "blog", &[("index.html", "blog v2")]);
    publish(&server, "shop", &[("index.html", "shop v1")]);
    publish(&server, "shop", &[("index.html", "shop v2")]);

    let r = admin_post(
        &server,
        "/api/keys",
        &json!({ "name": "ci", "scope": " Deploy:Blog " }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["scope"], "deploy:blog");
    let blog_token = r.json()["token"].as_str().unwrap().to_string();

    for (method, path) in [
        ("GET", "/api/keys"),
        ("POST", "/api/keys"),
        ("GET", "/api/system/health"),
        ("GET", "/metrics"),
        ("GET", "/api/stats"),
        ("POST", "/api/system/vacuum"),
    ] {
        let r = admin_raw_as(&server, &blog_token, method, path, "{}");
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(
            error_of(&r).contains("owner"),
            "names the scope needed: {}",
            r.text()
        );
    }
    let listed = admin_raw_as(&server, &blog_token, "GET", "/api/sites", "").json();
    assert_eq!(site_names(&listed), ["blog"]);
    let refused = [
        ("GET", "/api/sites/shop/deployments"),
        ("POST", "/api/sites/shop/rollback"),
        ("DELETE", "/api/sites/shop"),
        ("POST", "/api/sites/root/rollback"),
        ("DELETE", "/api/sites/root"),
        ("GET", "/api/sites/nope/deployments"),
    ];
    for (method, path) in refused {
        let r = admin_raw_as(&server, &blog_token, method, path, "");
        assert_eq!(r.status, 403, "{method} {path}: {}", r.text());
        assert!(error_of(&r).contains("scope"), "{}", r.text());
    }
    assert_eq!(server.get("shop.localhost", "/").text(), "shop v2");
    let r = admin_raw_as(&server, &blog_token, "POST", "/api/sites/blog/rollback", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.get("blog.localhost", "/").text(), "blog v1");
    let r = admin_raw_as(
        &server,
        &blog_token,
        "GET",
        "/api/sites/blog/deployments",
        "",
    );
    assert_eq!(r.status, 200);

    // deploy:* covers every site but the system ones.
    let (_, any_token) = create_key(&server, "any", "deploy:*");
    let listed = admin_raw_as(&server, &any_token, "GET", "/api/sites", "").json();
    assert_eq!(site_names(&listed), ["blog", "shop"]);
    let r = admin_raw_as(&server, &any_token, "POST", "/api/sites/shop/rollback", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.get("shop.localhost", "/").text(), "shop v1");
    assert_eq!(
        admin_raw_as(&server, &any_token, "POST", "/api/sites/404/rollback", "").status,
        403
    );

    // The owner: everything, including the system sites and listing all of them.
    assert_eq!(
        site_names(&get_json(&server, "/api/sites")),
        ["404", "blog", "root", "shop"]
    );
    assert_eq!(
        rollback(&server, "root", "").status,
        409,
        "root has one deployment"
    );
    assert_eq!(admin_delete(&server, "/api/sites/shop").status, 200);
    assert_eq!(
        get_json(&server, "/api/keys")["keys"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    for (scope, needle) in [
        (json!("deploy:Bad_Name"), "invalid site name"),
        (json!("admin"), "unknown scope"),
        (json!("deploy:root"), "system site"),
        (json!("owner,,deploy:*"), "empty entry"),
        (json!(""), "empty entry"),
        (json!(["owner"]), "must be a string"),
    ] {
        let r = admin_post(
            &server,
            "/api/keys",
            &json!({ "name": "x", "scope": scope }),
        );
        assert_eq!(r.status, 400, "{scope}: {}", r.text());
        assert!(error_of(&r).contains(needle), "{scope}: {}", r.text());
    }
    let r = admin_post(&server, "/api/keys", &json!({ "name": "default" }));
    assert_eq!(r.json()["scope"], "owner");
}

#[test]
fn cli_key_create_takes_a_scope_list() {
    let data = TempDir::new("sa-cli");
    let d = s(data.path());
    let (code, out, err) = run_cli(
        &[
            "key",
            "create",
            "ci",
            "--scope",
            "deploy:blog,deploy:shop,deploy:blog",
            "--data",
            d,
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("scope deploy:blog,deploy:shop"), "{out}");
    assert!(out.lines().last().unwrap().starts_with("fzt_"), "{out}");
    let (code, out, _) = run_cli(&["key", "create", "laptop", "--data", d], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("scope owner"), "{out}");

    for (scope, needle) in [
        ("deploy:Bad_Name", "invalid site name"),
        ("everything", "unknown scope"),
        ("deploy:404", "system site"),
        ("owner,", "empty entry"),
    ] {
        let (code, out, err) = run_cli(
            &["key", "create", "bad", "--scope", scope, "--data", d],
            &[],
        );
        assert_eq!(code, 2, "{scope}: {out}{err}");
        assert!(
            err.contains("--scope") && err.contains(needle),
            "{scope}: {err}"
        );
    }
    let (code, out, _) = run_cli(&["key", "list", "--json", "--data", d], &[]);
    assert_eq!(code, 0);
    let keys: Value = serde_json::from_str(&out).unwrap();
    let scopes: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["scope"].as_str().unwrap())
        .collect();
    assert_eq!(scopes.len(), 2, "bad scopes created nothing: {out}");
    assert!(scopes.contains(&"deploy:blog,deploy:shop") && scopes.contains(&"owner"));
}

#[test]
fn a_used_key_gets_its_last_used_time_recorded() {
    let server = Server::start();
    let (id, token) = create_key(&server, "ci", "deploy:*");
    let last_used = |id: &str| -> Value {
        let keys = get_json(&server, "/api/keys");
        keys["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == id)
            .map(|k| k["last_used_at"].clone())
            .unwrap()
    };
    assert_eq!(last_used(&id), Value::Null);
    let before = fazt::platform::clock::unix_now();
    assert_eq!(
        admin_raw_as(&server, &token, "GET", "/api/sites", "").status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = last_used(&id);
    while seen.is_null() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        seen = last_used(&id);
    }
    let at = seen
        .as_i64()
        .unwrap_or_else(|| panic!("last_used_at still {seen}"));
    assert!(
        at >= before && at <= fazt::platform::clock::unix_now(),
        "{at}"
    );
    // A failed authentication records nothing.
    let (other, _) = create_key(&server, "unused", "owner");
    let wrong = format!("fzt_{other}_{}", "0".repeat(64));
    assert_eq!(
        admin_raw_as(&server, &wrong, "GET", "/api/sites", "").status,
        401
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(last_used(&other), Value::Null);
}
