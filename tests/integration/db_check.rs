//! `fazt db check`, `fazt db vacuum [--full]` and `fazt db stats` on the data dir of a real
//! server: a healthy database passes (also while the server runs), and each kind of damage
//! a test does to the file by hand is found and named.

use crate::common::*;
use rusqlite::{params, Connection};
use serde_json::Value;

/// A server with site `blog` imported (a page and 1 MiB of random bytes) and a few
/// analytics events committed.
fn server_with_site_and_events() -> Server {
    let server = fast_server();
    let site = TempDir::new("db-check-site");
    write_file(site.path(), "index.html", b"<h1>blog</h1>");
    write_file(site.path(), "big.bin", &Rng(7).bytes(1 << 20));
    import("blog", site.path(), server.data.path());
    for (path, kind) in [("/", "pageview"), ("/a", "pageview"), ("/", "signup")] {
        let body = serde_json::json!({"h": "blog.test", "p": path, "e": kind, "t": ["x", "y"],
            "ref": "https://news.example/s", "q": {"utm_source": "mail"}});
        assert_eq!(track(&server, &body.to_string()).status, 204);
    }
    flush_events(&server, "blog.test", "/marker");
    server
}

fn db(args: &[&str], data: &std::path::Path) -> (i32, String, String) {
    let mut all = vec!["db"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--data", s(data)]);
    run_cli(&all, &[])
}

fn check_json(data: &std::path::Path) -> (i32, Value) {
    let (code, out, err) = db(&["check", "--json"], data);
    let json = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}{err}"));
    (code, json)
}

/// The checks that failed, by name, each with its problems.
fn failed(report: &Value) -> Vec<(String, Vec<String>)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            let problems = c["problems"].as_array().unwrap();
            let problems = problems.iter().map(|p| p.as_str().unwrap().to_string());
            (c["name"].as_str().unwrap().to_string(), problems.collect())
        })
        .collect()
}

/// A writable connection to the stopped server's database, its foreign keys off so a
/// test can break them (the bundled SQLite turns them on by default).
fn open_for_damage(data: &std::path::Path) -> Connection {
    let conn = Connection::open(fazt::db::db_path(data)).unwrap();
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    conn
}

/// The blob of `path` in site `blog`'s current deployment, as lower-case hex.
fn blob_of(conn: &Connection, path: &str) -> Vec<u8> {
    conn.query_row(
        "SELECT f.sha256 FROM files f JOIN sites s ON s.current_deployment = f.deployment
         WHERE s.name = 'blog' AND f.path = ?1",
        [path],
        |r| r.get(0),
    )
    .unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_healthy_database_passes_while_the_server_runs() {
    let server = server_with_site_and_events();
    let (code, report) = check_json(server.data.path());
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["ok"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "integrity",
            "foreign-keys",
            "blobs",
            "file-blobs",
            "rollups"
        ]
    );
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["ok"], true, "{c}");
        assert_eq!(c["problem_count"], 0, "{c}");
        assert_eq!(c["problems"], serde_json::json!([]), "{c}");
    }
    let blobs = &report["checks"][2]["scope"];
    assert!(
        blobs.as_str().unwrap().contains("blobs, 1.0 MiB hashed"),
        "{blobs}"
    );
    let rollups = &report["checks"][4]["scope"];
    assert!(
        rollups.as_str().unwrap().contains("1 day of raw events"),
        "{rollups}"
    );
    let (code, text, _) = db(&["check"], server.data.path());
    assert_eq!(code, 0);
    assert!(text.ends_with("all checks passed\n"), "{text}");
}

#[test]
fn a_corrupted_blob_is_named() {
    let mut server = server_with_site_and_events();
    server.terminate();
    let data = server.data.path();
    let conn = open_for_damage(data);
    let big = blob_of(&conn, "big.bin");
    // One byte flipped in the second chunk: same length, different hash.
    let mut chunk: Vec<u8> = conn
        .query_row(
            "SELECT data FROM blob_chunks WHERE sha256 = ?1 AND seq = 1",
            [&big],
            |r| r.get(0),
        )
        .unwrap();
    chunk[100] ^= 0x01;
    conn.execute(
        "UPDATE blob_chunks SET data = ?2 WHERE sha256 = ?1 AND seq = 1",
        params![big, chunk],
    )
    .unwrap();
    drop(conn);
    let (code, report) = check_json(data);
    assert_eq!(code, 1, "{report}");
    assert_eq!(report["ok"], false);
    let failed = failed(&report);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "blobs");
    assert_eq!(failed[0].1.len(), 1);
    let problem = &failed[0].1[0];
    assert!(
        problem.starts_with(&format!("blob {}: its bytes hash to ", hex(&big))),
        "{problem}"
    );
    let (code, text, _) = db(&["check"], data);
    assert_eq!(code, 1);
    assert!(text.contains(&hex(&big)), "{text}");
    assert!(text.ends_with("1 of 5 checks failed\n"), "{text}");
}

#[test]
fn a_file_whose_blob_is_gone_is_named() {
    let mut server = server_with_site_and_events();
    server.terminate();
    let data = server.data.path();
    let conn = open_for_damage(data);
    let page = blob_of(&conn, "index.html");
    let deployment = count(
        &conn,
        "SELECT current_deployment FROM sites WHERE name = 'blog'",
    );
    assert_eq!(
        conn.execute("DELETE FROM blobs WHERE sha256 = ?1", [&page])
            .unwrap(),
        1
    );
    drop(conn);
    let (code, report) = check_json(data);
    assert_eq!(code, 1, "{report}");
    let failed = failed(&report);
    let files = failed.iter().find(|(name, _)| name == "file-blobs");
    let (_, problems) = files.unwrap_or_else(|| panic!("{failed:?}"));
    assert_eq!(
        problems,
        &[format!(
            "site blog deployment {deployment} file index.html: blob {} is missing",
            hex(&page)
        )]
    );
    // SQLite's own check sees the dangling references too (the file and its chunk).
    let fk = failed.iter().find(|(name, _)| name == "foreign-keys");
    let (_, problems) = fk.unwrap_or_else(|| panic!("{failed:?}"));
    assert!(problems
        .iter()
        .any(|p| p.contains("a files row refers to a missing blobs row")));
    assert!(!failed
        .iter()
        .any(|(name, _)| name == "blobs" || name == "rollups"));
}

#[test]
fn a_changed_roll_up_count_is_named() {
    let mut server = server_with_site_and_events();
    server.terminate();
    let data = server.data.path();
    let conn = open_for_damage(data);
    let changed = conn
        .execute(
            "UPDATE rollup_daily_dims SET count = count + 1
             WHERE dim = 1 AND key = (SELECT id FROM strings WHERE kind = 2 AND value = '/a')",
            [],
        )
        .unwrap();
    assert_eq!(changed, 1);
    drop(conn);
    let (code, report) = check_json(data);
    assert_eq!(code, 1, "{report}");
    let failed = failed(&report);
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "rollups");
    let problems = &failed[0].1;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with("site blog.test day ")
            && problems[0].ends_with(": path '/a' counted 1 in raw events, 2 in rollup_daily_dims"),
        "{problems:?}"
    );
}

#[test]
fn vacuum_returns_a_deleted_sites_space_and_full_needs_the_server_stopped() {
    let mut server = server_with_site_and_events();
    let data = server.data.path().to_path_buf();
    // A running server holds the data-dir lock: a full rewrite is refused, nothing changes.
    let (code, out, err) = db(&["vacuum", "--full"], &data);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("a fazt server is running"), "{err}");
    assert!(err.contains("POST /api/system/vacuum"), "{err}");
    server.terminate();
    // The site deleted by hand as `sites rm` does, without the space given back after.
    let conn = Connection::open(fazt::db::db_path(&data)).unwrap();
    conn.execute_batch(
        "UPDATE sites SET current_deployment = NULL WHERE name = 'blog';
         DELETE FROM deployments WHERE site = 'blog';
         DELETE FROM sites WHERE name = 'blog';
         DELETE FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM files)
             AND sha256 NOT IN (SELECT variant FROM blob_variants WHERE variant IS NOT NULL);",
    )
    .unwrap();
    drop(conn);
    let (code, out, err) = db(&["vacuum", "--json"], &data);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["mode"], "incremental");
    // 1 MiB of random bytes went with the site.
    assert!(v["bytes_returned"].as_u64().unwrap() >= 1 << 20, "{v}");
    assert!(v["free_pages_before"].as_u64().unwrap() >= 256, "{v}");
    assert_eq!(v["free_pages_after"], 0, "{v}");
    let (before, after) = (
        v["file_bytes_before"].as_u64(),
        v["file_bytes_after"].as_u64(),
    );
    assert!(after.unwrap() + (1 << 20) <= before.unwrap(), "{v}");
    // Stopped: the full rewrite runs, and the database is still whole.
    let (code, out, err) = db(&["vacuum", "--full"], &data);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("full vacuum returned "), "{out}");
    let (code, report) = check_json(&data);
    assert_eq!(code, 0, "{report}");
}

#[test]
fn stats_show_the_tables_and_counts() {
    let server = server_with_site_and_events();
    let (code, out, err) = db(&["stats", "--json"], server.data.path());
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let conn = open_read_only(server.data.path());
    // blog and the built-in root and 404 sites.
    assert_eq!(v["sites"], 3, "{v}");
    for (key, sql) in [
        ("deployments", "SELECT count(*) FROM deployments"),
        ("files", "SELECT count(*) FROM files"),
    ] {
        assert_eq!(v[key], count(&conn, sql), "{key}: {v}");
    }
    assert_eq!(
        v["blobs"]["count"],
        count(&conn, "SELECT count(*) FROM blobs")
    );
    let blob_bytes = v["blobs"]["bytes"].as_u64().unwrap();
    assert_eq!(
        blob_bytes as i64,
        count(&conn, "SELECT sum(size) FROM blobs")
    );
    assert!(blob_bytes > 1 << 20);
    // Three events and the marker.
    assert_eq!(v["events"], 4);
    assert_eq!(v["page_size"], 4096);
    assert_eq!(v["sizes_unavailable"], Value::Null);
    let objects = v["objects"].as_array().unwrap();
    let find = |name: &str| {
        objects
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("{name} not in {v}"))
    };
    // The largest b-tree comes first: the chunks of the 1 MiB file.
    assert_eq!(objects[0]["name"], "blob_chunks");
    assert!(find("blob_chunks")["bytes"].as_u64().unwrap() >= blob_bytes);
    assert_eq!(find("events")["type"], "table");
    let index = find("events_by_ts");
    assert_eq!(
        (&index["type"], &index["table"]),
        (&"index".into(), &"events".into())
    );
    // Every page but the free ones (and the auto-vacuum pointer maps) is in some b-tree.
    let in_btrees: u64 = objects.iter().map(|o| o["pages"].as_u64().unwrap()).sum();
    let pages = v["page_count"].as_u64().unwrap() - v["free_pages"].as_u64().unwrap();
    assert!(
        in_btrees <= pages && in_btrees + 4 >= pages,
        "{in_btrees} of {pages}"
    );
    let (code, text, _) = db(&["stats"], server.data.path());
    assert_eq!(code, 0);
    assert!(text.contains("events      4\n"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("blob_chunks ") && l.contains(" table ")),
        "{text}"
    );
    // Stopped, the WAL has been checkpointed into the file: its pages are the file.
    drop(conn);
    let mut server = server;
    server.terminate();
    let (code, out, _) = db(&["stats", "--json"], server.data.path());
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let on_disk = std::fs::metadata(server.data.db()).unwrap().len();
    assert_eq!(v["file_bytes"].as_u64().unwrap(), on_disk);
    assert_eq!(on_disk, v["page_count"].as_u64().unwrap() * 4096, "{v}");
}

#[test]
fn a_missing_database_is_a_usage_error_and_none_is_created() {
    let dir = TempDir::new("db-check-none");
    for cmd in [&["check"][..], &["stats"], &["vacuum"]] {
        let (code, out, err) = db(cmd, dir.path());
        assert_eq!(code, 2, "{cmd:?}: {out}{err}");
        assert!(err.contains("no database at"), "{err}");
    }
    assert!(!dir.db().exists());
}

#[test]
fn a_check_passes_while_events_keep_arriving() {
    let server = server_with_site_and_events();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let body = serde_json::json!({"h": "blog.test", "p": format!("/p{}", n % 7),
                    "t": ["x"], "ref": "https://news.example/"});
                assert_eq!(track(&server, &body.to_string()).status, 204);
                n += 1;
            }
        });
        // Batches commit every 50 ms, roll-ups with their events: a check reading beside the
        // writer must find them equal however the commits fall between its reads.
        for _ in 0..5 {
            let (code, report) = check_json(server.data.path());
            assert_eq!(code, 0, "{report}");
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let events = count(
        &open_read_only(server.data.path()),
        "SELECT count(*) FROM events",
    );
    assert!(
        events > 10,
        "only {events} events arrived during the checks"
    );
}
