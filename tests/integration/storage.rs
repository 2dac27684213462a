//! The store behind the sites (DESIGN §3, §5, §6): `fazt site import` before and while the
//! server runs, import errors, dedup, atomic deployment switches under concurrent reads,
//! the disk breaker (server and CLI), migrations and schema-version refusal, the WAL
//! after shutdown, and the byte-bounded cache.
//!
//! Fixtures are generated at run time in temporary directories.
use crate::common::*;
use rusqlite::{Connection, OpenFlags};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn site_dir(tag: &str, files: &[(&str, &[u8])]) -> TempDir {
    let dir = TempDir::new(tag);
    for (path, bytes) in files {
        write_file(dir.path(), path, bytes);
    }
    dir
}

fn admin_post(server: &Server, path: &str, body: &str) -> HttpResponse {
    server.request(&format!(
        "POST {path} HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.token,
        body.len()
    ))
}

fn health(server: &Server) -> (u16, serde_json::Value) {
    let r = server.admin_get("/api/system/health", Some(&server.token));
    (r.status, r.json())
}

fn db_path(data: &Path) -> PathBuf {
    data.join("fazt.db")
}

fn open_read_only(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("open {} read-only: {e}", path.display()))
}

fn user_version(conn: &Connection) -> i64 {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

/// Runs `fazt server start` on `data` and expects it to exit by itself within 10 s;
/// returns (exit code, stderr). Kills it and fails if it keeps running.
fn server_start_expecting_exit(data: &Path) -> (i32, String) {
    let stderr_path = data.with_extension("refusal-stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(BIN)
        .args([
            "server",
            "start",
            "--listen",
            "127.0.0.1:0",
            "--data",
            s(data),
        ])
        .env("FAZT_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fazt server start kept running: {}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    (status.code().unwrap_or(-1), err)
}

// ---------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------

#[test]
fn import_before_the_server_starts_is_served() {
    let data = TempDir::new("st-data");
    let site = site_dir(
        "st-site",
        &[
            ("index.html", b"<h1>imported first</h1>"),
            ("css/site.css", b"h1{}"),
            ("notes.txt", b"some notes"),
        ],
    );
    let out = import("blog", site.path(), data.path());
    assert!(
        out.contains("site blog is now deployment") && out.contains("3 files"),
        "{out}"
    );
    let server = start_on(data.path(), &[]);
    for (path, body) in [
        ("/", &b"<h1>imported first</h1>"[..]),
        ("/css/site.css", b"h1{}"),
        ("/notes.txt", b"some notes"),
    ] {
        let r = server.get("blog.localhost", path);
        assert_eq!((r.status, r.body.as_slice()), (200, body), "{path}");
    }
    // The system sites were seeded beside the imported one.
    assert_eq!(server.get("root.localhost", "/").status, 200);
    assert_eq!(server.get("404.localhost", "/").status, 200);
}

#[test]
fn import_while_the_server_runs_replaces_the_site_within_seconds() {
    let server = Server::start();
    let data = server.data.path();
    let v1 = site_dir(
        "st-v1",
        &[("index.html", b"<h1>v1</h1>"), ("old.html", b"old page")],
    );
    let v2 = site_dir(
        "st-v2",
        &[("index.html", b"<h1>v2</h1>"), ("new.html", b"new page")],
    );
    assert_eq!(server.get("blog.localhost", "/").status, 404);
    import("blog", v1.path(), data);
    let r = wait_for(&server, "blog.localhost", "/", |r| r.status == 200);
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>v1</h1>"));
    assert_eq!(server.get("blog.localhost", "/old").text(), "old page");

    let started = Instant::now();
    import("blog", v2.path(), data);
    let r = wait_for(&server, "blog.localhost", "/", |r| {
        r.text() == "<h1>v2</h1>"
    });
    assert_eq!(r.text(), "<h1>v2</h1>", "new content within 5 s");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        server.get("blog.localhost", "/old").status,
        404,
        "old content gone"
    );
    assert_eq!(server.get("blog.localhost", "/old.html").status, 404);
    let r = server.get("blog.localhost", "/new");
    assert_eq!((r.status, r.text().as_str()), (200, "new page"));
}

#[test]
fn import_errors_exit_non_zero_naming_the_problem() {
    let data = TempDir::new("st-data");
    let site = site_dir("st-site", &[("index.html", b"ok")]);
    let missing = site.path().join("no-such-dir");
    let a_file = site.path().join("index.html");
    let long = "a".repeat(64);
    let cases: Vec<(String, PathBuf, &str)> = vec![
        ("blog".into(), missing.clone(), "no-such-dir"),
        ("blog".into(), a_file.clone(), "not a directory"),
        ("Bad_Name".into(), site.path().into(), "invalid site name"),
        ("-x".into(), site.path().into(), "invalid site name"),
        ("x-".into(), site.path().into(), "invalid site name"),
        (long.clone(), site.path().into(), "invalid site name"),
        ("".into(), site.path().into(), "site name"),
        ("a.b".into(), site.path().into(), "invalid site name"),
        ("caf\u{e9}".into(), site.path().into(), "invalid site name"),
    ];
    for (name, dir, needle) in &cases {
        let (code, out, err) = try_import(name, dir, data.path(), &[]);
        assert_ne!(code, 0, "import {name:?} {}: {out}", dir.display());
        assert!(
            err.contains(needle),
            "import {name:?} {}: stderr should mention {needle:?}: {err}",
            dir.display()
        );
        if needle == &"invalid site name" {
            // Quoted as checked: lower-cased, as `fazt deploy --site` does.
            let checked = name.to_ascii_lowercase();
            assert!(err.contains(&checked), "the name is quoted: {err}");
        }
    }
    // Missing arguments.
    let (code, _, err) = run_cli(&["site", "import", "blog", "--data", s(data.path())], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("<DIR>"), "{err}");
    // The longest valid name works.
    let name63 = "b".repeat(63);
    import(&name63, site.path(), data.path());
}

/// File names are literal on disk: `100%.txt` is a name, not a URL. The import must not
/// percent-decode them (it refuses `100%.txt` as a "malformed percent-escape" and a
/// directory named `%2e%2e` as a `..` segment). Both are servable: a request for
/// `/100%25.txt` decodes to the stored name.
#[test]
fn import_takes_file_names_literally_not_as_percent_encoded_urls() {
    let data = TempDir::new("st-data");
    let site = site_dir(
        "st-site",
        &[
            ("index.html", b"home"),
            ("100%.txt", b"one hundred percent"),
            ("sale-50%off.html", b"half price"),
            ("%2e%2e/inside.txt", b"a directory literally named %2e%2e"),
        ],
    );
    let (code, out, err) = try_import("blog", site.path(), data.path(), &[]);
    assert_eq!(code, 0, "literal '%' in file names must import: {out}{err}");
    let server = start_on(data.path(), &[]);
    for (path, body) in [
        ("/100%25.txt", &b"one hundred percent"[..]),
        ("/sale-50%25off", b"half price"),
        (
            "/%252e%252e/inside.txt",
            b"a directory literally named %2e%2e",
        ),
    ] {
        let r = server.get("blog.localhost", path);
        assert_eq!((r.status, r.body.as_slice()), (200, body), "{path}");
    }
}

#[test]
fn a_symlink_in_the_dir_is_refused_and_the_live_site_is_unchanged() {
    let server = Server::start();
    let data = server.data.path();
    let v1 = site_dir("st-v1", &[("index.html", b"<h1>v1</h1>")]);
    import("blog", v1.path(), data);
    let r = wait_for(&server, "blog.localhost", "/", |r| r.status == 200);
    assert_eq!(r.text(), "<h1>v1</h1>");

    let outside = site_dir("st-outside", &[("secret.txt", b"outside the site")]);
    // A link to a file outside, a link to a file inside, a link to a directory.
    let cases = [
        ("leak.txt", outside.path().join("secret.txt")),
        ("alias.html", PathBuf::from("../index.html")),
        ("dirlink", outside.path().to_path_buf()),
    ];
    for (link, target) in cases {
        let v2 = site_dir("st-v2", &[("index.html", b"<h1>v2</h1>")]);
        std::fs::create_dir_all(v2.path().join("sub")).unwrap();
        std::os::unix::fs::symlink(&target, v2.path().join("sub").join(link)).unwrap();
        let (code, out, err) = try_import("blog", v2.path(), data, &[]);
        assert_ne!(code, 0, "{link}: a symlink must be refused: {out}");
        assert!(
            err.contains(link),
            "{link}: the message names the entry: {err}"
        );
        assert!(
            err.contains("link") || err.contains("regular file"),
            "{link}: the message says why: {err}"
        );
    }
    // Give a (wrongly) reloading server time to notice, then check nothing changed.
    std::thread::sleep(Duration::from_millis(600));
    let r = server.get("blog.localhost", "/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>v1</h1>"));
    assert_eq!(server.get("blog.localhost", "/sub/leak.txt").status, 404);
}

#[test]
fn dedup_a_second_site_with_the_same_files_stores_nothing_new() {
    let data = TempDir::new("st-data");
    let big = Rng(7).bytes(300 * 1024);
    let site = site_dir(
        "st-site",
        &[("index.html", b"<h1>same</h1>"), ("big.bin", &big)],
    );
    let first = import("blog", site.path(), data.path());
    assert!(
        !first.contains("(0 B new)"),
        "first import stores bytes: {first}"
    );
    assert!(first.contains("300.0 KiB"), "{first}");
    let second = import("mirror", site.path(), data.path());
    assert!(
        second.contains("site mirror is now deployment") && second.contains("(0 B new)"),
        "same files as another site: {second}"
    );
    // Re-importing the same site is also free; one changed file costs only itself.
    let again = import("blog", site.path(), data.path());
    assert!(again.contains("(0 B new)"), "{again}");
    write_file(site.path(), "index.html", b"<h1>changed</h1>");
    let changed = import("blog", site.path(), data.path());
    assert!(changed.contains("(16 B new)"), "{changed}");

    let conn = open_read_only(&db_path(data.path()));
    let blobs: i64 = conn
        .query_row("SELECT count(*) FROM blobs", [], |r| r.get(0))
        .unwrap();
    // index.html (two versions) and big.bin.
    assert_eq!(blobs, 3);
}

// ---------------------------------------------------------------------------------------
// Atomic switches
// ---------------------------------------------------------------------------------------

/// The files of version `v`: 20 numbered files, an index naming the version and the
/// manifest, a manifest, a clean-URL page that moves between `page.html` (v1) and a file
/// stored under the bare name `page` (v2; `page/index.html` would be a redirect to
/// `/page/`), and a per-site 404 page.
fn version_files(v: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            (
                format!("file{i:02}.txt"),
                format!("{v} file {i:02}\n").repeat(50).into_bytes(),
            )
        })
        .collect();
    let manifest: String = files.iter().map(|(p, _)| format!("{v} {p}\n")).collect();
    files.push((
        "index.html".into(),
        format!("<h1>version {v}</h1><a href=\"manifest.txt\">manifest of {v}</a>").into_bytes(),
    ));
    files.push(("manifest.txt".into(), manifest.into_bytes()));
    let page = if v == "v1" { "page.html" } else { "page" };
    files.push((page.into(), format!("<p>page of {v}</p>").into_bytes()));
    files.push((
        "404.html".into(),
        format!("<p>{v} not found</p>").into_bytes(),
    ));
    files
}

#[test]
fn readers_never_see_a_half_switched_deployment() {
    let versions = ["v1", "v2"];
    let dirs: Vec<TempDir> = versions
        .iter()
        .map(|v| {
            let dir = TempDir::new(&format!("st-{v}"));
            for (p, b) in version_files(v) {
                write_file(dir.path(), &p, &b);
            }
            dir
        })
        .collect();
    // URL path → (status, the body each version gives).
    let mut expected: HashMap<String, (u16, Vec<Vec<u8>>)> = HashMap::new();
    for v in versions {
        for (p, b) in version_files(v) {
            let (url, status) = match p.as_str() {
                "page.html" | "page" => ("/page".to_string(), 200),
                "404.html" => ("/missing".to_string(), 404),
                _ => (format!("/{p}"), 200),
            };
            expected
                .entry(url)
                .or_insert((status, Vec::new()))
                .1
                .push(b);
        }
    }
    expected.insert("/".into(), expected["/index.html"].clone());
    let urls: Vec<String> = expected.keys().cloned().collect();

    let data = TempDir::new("st-data");
    import("site", dirs[0].path(), data.path());
    let server = start_on(data.path(), &[]);
    let addr = server.addr;
    let stop = AtomicBool::new(false);
    let fetched = AtomicUsize::new(0);
    let seen_v2 = AtomicUsize::new(0);

    std::thread::scope(|scope| {
        let readers: Vec<_> = (0..2)
            .map(|t| {
                let (urls, expected, stop, fetched, seen_v2) =
                    (&urls, &expected, &stop, &fetched, &seen_v2);
                scope.spawn(move || {
                    let mut i = t * 7;
                    let deadline = Instant::now() + Duration::from_secs(8);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let url = &urls[i % urls.len()];
                        i += 1;
                        let r = raw_request(
                            addr,
                            format!(
                                "GET {url} HTTP/1.1\r\nHost: site.localhost\r\nConnection: close\r\n\r\n"
                            ),
                        );
                        let (status, bodies) = &expected[url];
                        assert_eq!(r.status, *status, "{url}: {}", r.text());
                        let version = bodies.iter().position(|b| *b == r.body);
                        assert!(
                            version.is_some(),
                            "{url}: body is neither version: {:?}",
                            r.text()
                        );
                        if version == Some(1) {
                            seen_v2.fetch_add(1, Ordering::Relaxed);
                        }
                        fetched.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();

        let deadline = Instant::now() + Duration::from_secs(6);
        let mut imports = 0;
        while imports < 15 && Instant::now() < deadline {
            let dir = &dirs[(imports + 1) % 2];
            let (code, out, err) = try_import("site", dir.path(), data.path(), &[]);
            if code != 0 {
                stop.store(true, Ordering::Relaxed);
                panic!("import {imports} failed: {out}{err}");
            }
            imports += 1;
            std::thread::sleep(Duration::from_millis(120));
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.join().unwrap();
        }
        assert!(imports >= 4, "only {imports} imports in time");
    });
    assert!(
        fetched.load(Ordering::Relaxed) > 50,
        "readers made too few requests"
    );
    assert!(
        seen_v2.load(Ordering::Relaxed) > 0,
        "the readers never saw a switch"
    );
}

// ---------------------------------------------------------------------------------------
// Disk breaker
// ---------------------------------------------------------------------------------------

#[test]
fn disk_breaker_refuses_bulk_writes_while_serving_continues() {
    let server = Server::builder().env("FAZT_DISK_THRESHOLD", "1").start();
    let data = s(server.data.path()).to_string();

    let r = deploy_files(
        &server,
        "blog",
        &[("index.html", b"<h1>hi</h1>")],
        zip::CompressionMethod::Stored,
    );
    assert_eq!(r.status, 507, "{}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{:?}",
        r.header("content-type")
    );
    assert_eq!(r.json()["error"]["code"], "disk_full");
    let error = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(error.contains("full"), "{error}");
    assert!(
        error.contains(&data),
        "the message names the filesystem: {error}"
    );

    // Serving continues.
    let r = server.get("root.localhost", "/");
    assert_eq!(r.status, 200);
    assert!(r.text().contains("fazt is running"));
    assert_eq!(server.get("nosuch.localhost", "/").status, 404);
    // Small writes carry on, and so does what frees space.
    let r = admin_post(&server, "/api/keys", r#"{"name":"small-write"}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    let r = admin_post(&server, "/api/system/vacuum", "");
    assert_eq!(r.status, 200, "vacuum frees space: {}", r.text());

    // Readiness reports the open breaker.
    let (status, body) = health(&server);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    let reasons = body["reasons"].as_array().expect("reasons");
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.contains("disk") && r.contains(&data))),
        "a reason names the disk: {body}"
    );
    assert_eq!(body["disk"]["threshold_ratio"], 0.01, "{body}");
    let metrics = server.admin_get("/metrics", Some(&server.token));
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.text().contains("fazt_disk_used_ratio{path="),
        "{}",
        metrics.text()
    );
}

#[test]
fn vacuum_with_the_default_threshold_answers_freed_bytes() {
    let server = Server::start();
    let r = admin_post(&server, "/api/system/vacuum", "");
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.json()["freed_bytes"].is_u64(), "{}", r.text());
    let (status, body) = health(&server);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    // Without a key: 401, nothing done.
    let r = server.request(
        "POST /api/system/vacuum HTTP/1.1\r\nHost: admin.localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 401);
}

#[test]
fn cli_import_honours_the_disk_breaker() {
    let server = Server::start();
    let data = server.data.path();
    let v1 = site_dir("st-v1", &[("index.html", b"<h1>v1</h1>")]);
    let v2 = site_dir("st-v2", &[("index.html", b"<h1>v2</h1>")]);
    import("blog", v1.path(), data);
    wait_for(&server, "blog.localhost", "/", |r| r.status == 200);

    let (code, out, err) = try_import("blog", v2.path(), data, &[("FAZT_DISK_THRESHOLD", "1")]);
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("full") && err.contains("--disk-threshold"),
        "the message names the disk breaker: {err}"
    );
    let (code, _, err) = try_import("fresh", v2.path(), data, &[("FAZT_DISK_THRESHOLD", "1")]);
    assert_ne!(code, 0, "a new site is refused too: {err}");

    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(server.get("blog.localhost", "/").text(), "<h1>v1</h1>");
    assert_eq!(server.get("fresh.localhost", "/").status, 404);
    let conn = open_read_only(&db_path(data));
    let deployments: i64 = conn
        .query_row(
            "SELECT count(*) FROM deployments WHERE site IN ('blog', 'fresh')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        deployments, 1,
        "nothing was written for the refused imports"
    );
}

// ---------------------------------------------------------------------------------------
// Migrations and durability
// ---------------------------------------------------------------------------------------

#[test]
fn fresh_data_dir_is_migrated_once_and_restarts_are_idempotent() {
    let data = TempDir::new("st-data");
    for round in 0..2 {
        let mut server = start_on(data.path(), &[]);
        let r = server.get("root.localhost", "/");
        assert_eq!(r.status, 200, "round {round}");
        let status = server.terminate();
        assert!(
            status.success(),
            "round {round}: {status:?} {}",
            server.stderr()
        );

        let conn = open_read_only(&db_path(data.path()));
        assert_eq!(
            user_version(&conn),
            fazt::db::migrate::latest_version(),
            "round {round}"
        );
        let auto_vacuum: i64 = conn
            .pragma_query_value(None, "auto_vacuum", |r| r.get(0))
            .unwrap();
        assert_eq!(auto_vacuum, 2, "incremental auto-vacuum");
        let journal: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
        let seeded: i64 = conn
            .query_row(
                "SELECT count(*) FROM deployments WHERE site IN ('root', '404')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(seeded, 2, "round {round}: system sites seeded once");
        let keys: i64 = conn
            .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(keys, 1, "round {round}: one owner key");
    }
}

#[test]
fn a_database_from_a_newer_fazt_is_refused_and_left_untouched() {
    let data = TempDir::new("st-data");
    let mut server = start_on(data.path(), &[]);
    assert!(server.terminate().success());

    let copy = TempDir::new("st-copy");
    let copied = db_path(copy.path());
    std::fs::copy(db_path(data.path()), &copied).unwrap();
    {
        let conn = Connection::open(&copied).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    assert!(
        !copy.path().join("fazt.db-wal").exists(),
        "the copy is checkpointed"
    );
    let before = std::fs::read(&copied).unwrap();
    assert_eq!(user_version(&open_read_only(&copied)), 99);

    let (code, err) = server_start_expecting_exit(copy.path());
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("newer fazt"), "{err}");
    assert!(
        err.contains("99"),
        "the message gives the version found: {err}"
    );
    assert!(
        std::fs::read(&copied).unwrap() == before,
        "the database file was modified"
    );

    let site = site_dir("st-site", &[("index.html", b"x")]);
    let (code, _, err) = try_import("blog", site.path(), copy.path(), &[]);
    assert_ne!(code, 0, "{err}");
    assert!(err.contains("newer fazt"), "{err}");
    assert!(std::fs::read(&copied).unwrap() == before);
    assert_eq!(user_version(&open_read_only(&copied)), 99);
}

#[test]
fn shutdown_leaves_an_empty_wal() {
    let mut server = Server::start();
    let data = server.data.path().to_path_buf();
    let mut rng = Rng(11);
    let v1 = site_dir(
        "st-v1",
        &[
            ("index.html", b"<h1>v1</h1>"),
            ("a.bin", &rng.bytes(200_000)),
        ],
    );
    let v2 = site_dir(
        "st-v2",
        &[
            ("index.html", b"<h1>v2</h1>"),
            ("b.bin", &rng.bytes(300_000)),
            ("c.txt", b"c"),
        ],
    );
    import("blog", v1.path(), &data);
    wait_for(&server, "blog.localhost", "/", |r| r.status == 200);
    for _ in 0..20 {
        assert_eq!(server.get("blog.localhost", "/a.bin").status, 200);
        assert_eq!(server.get("root.localhost", "/").status, 200);
    }
    import("blog", v2.path(), &data);
    wait_for(&server, "blog.localhost", "/", |r| {
        r.text() == "<h1>v2</h1>"
    });
    assert_eq!(
        admin_post(&server, "/api/keys", r#"{"name":"k2"}"#).status,
        201
    );
    assert_eq!(admin_post(&server, "/api/system/vacuum", "").status, 200);

    let status = server.terminate();
    assert!(status.success(), "{status:?}: {}", server.stderr());
    let wal = data.join("fazt.db-wal");
    let wal_len = std::fs::metadata(&wal).map_or(0, |m| m.len());
    assert_eq!(wal_len, 0, "{} still holds {wal_len} bytes", wal.display());

    // Everything is in the main file.
    let conn = open_read_only(&db_path(&data));
    let files: i64 = conn
        .query_row(
            "SELECT d.file_count FROM sites s JOIN deployments d ON d.id = s.current_deployment
             WHERE s.name = 'blog'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(files, 3);
    let keys: i64 = conn
        .query_row("SELECT count(*) FROM api_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(keys, 2);
}

// ---------------------------------------------------------------------------------------
// Cache bounds
// ---------------------------------------------------------------------------------------

#[test]
fn the_cache_stays_bounded_and_keeps_pinned_assets() {
    let mut rng = Rng(0x5eed);
    let site = TempDir::new("st-many");
    let mut files = Vec::new();
    for i in 0..200 {
        let len = 100 * 1024 + rng.below(300 * 1024);
        let bytes = rng.bytes(len);
        let path = format!("f/{i:03}.bin");
        write_file(site.path(), &path, &bytes);
        files.push((path, bytes));
    }
    let total: usize = files.iter().map(|f| f.1.len()).sum();
    assert!(total > 3 * 8 * 1024 * 1024);
    let data = TempDir::new("st-data");
    import("many", site.path(), data.path());
    let server = start_on(data.path(), &[("FAZT_CACHE_BYTES", "8M")]);

    let admin_js = server.get("admin.localhost", "/admin.js");
    assert_eq!(admin_js.status, 200);
    let (_, before) = health(&server);
    let pinned = before["cache"]["pinned_bytes"].clone();
    assert!(pinned.as_u64().unwrap() > 0, "{before}");

    let mut order: Vec<usize> = (0..files.len()).chain(0..files.len()).collect();
    rng.shuffle(&mut order);
    for i in order {
        let (path, bytes) = &files[i];
        let r = server.get("many.localhost", &format!("/{path}"));
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body.len(), bytes.len(), "{path}");
        assert!(r.body == *bytes, "{path}: wrong bytes");
    }

    let (_, after) = health(&server);
    let cache = &after["cache"];
    let used = cache["bytes_used"].as_u64().unwrap();
    let limit = cache["bytes_limit"].as_u64().unwrap();
    assert_eq!(limit, 8 * 1024 * 1024, "{cache}");
    assert!(used <= limit, "cache over its limit: {cache}");
    assert!(cache["evictions"].as_u64().unwrap() > 0, "{cache}");
    assert!(cache["entries"].as_u64().unwrap() > 0, "{cache}");
    assert_eq!(
        cache["pinned_bytes"], pinned,
        "pinned bytes changed: {cache}"
    );

    let again = server.get("admin.localhost", "/admin.js");
    assert_eq!(again.status, 200);
    assert!(again.body == admin_js.body, "the pinned asset changed");
    let page = server.get("admin.localhost", "/");
    assert!(page.text().contains("fazt admin"));
    let metrics = server.admin_get("/metrics", Some(&server.token)).text();
    for name in [
        "fazt_cache_bytes",
        "fazt_cache_limit_bytes",
        "fazt_cache_evictions_total",
        "fazt_cache_pinned_bytes",
        "fazt_writer_",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
}
