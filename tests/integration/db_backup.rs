//! `fazt db backup`, `fazt db restore` and `POST /api/system/backup` (issue #16): online
//! copies while the server serves and writes, offline copies, refusals that change
//! nothing, and restores (from a backup, and from the checked-in schema-1 fixture, which
//! is migrated).

use crate::common::*;
use rusqlite::{Connection, OpenFlags};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

const PAGE_V1: &[u8] = b"<!doctype html><h1>version one</h1>\n";
const PAGE_V2: &[u8] = b"<!doctype html><h1>version two</h1>\n";

fn deploy_page(server: &Server, site: &str, page: &[u8]) {
    let r = deploy_files(
        server,
        site,
        &[("index.html", page)],
        zip::CompressionMethod::Deflated,
    );
    assert!(r.status == 200 || r.status == 201, "{}", r.text());
}

/// `fazt db backup FILE --data DATA [extra]`.
fn backup_cli(data: &Path, file: &Path, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["db", "backup", s(file), "--data", s(data)];
    args.extend_from_slice(extra);
    run_cli(&args, &[])
}

/// `fazt db restore FILE --data DATA`.
fn restore_cli(data: &Path, file: &Path) -> (i32, String, String) {
    run_cli(&["db", "restore", s(file), "--data", s(data)], &[])
}

fn open_copy(path: &Path) -> Connection {
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).expect("open the copy")
}

/// The copy passes `integrity_check` and holds `site` at the latest schema.
fn assert_good_copy(path: &Path, site: &str) {
    let conn = open_copy(path);
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok", "{}", path.display());
    let sql = format!("SELECT count(*) FROM sites WHERE name = '{site}'");
    assert_eq!(count(&conn, &sql), 1, "{site} in {}", path.display());
    assert_eq!(
        count(&conn, "PRAGMA user_version"),
        fazt::db::migrate::latest_version()
    );
}

/// Files in `dir` whose name starts with `prefix`.
fn named(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

#[test]
fn an_online_backup_has_the_site_while_events_and_a_deploy_go_on() {
    let server = fast_server();
    deploy_page(&server, "blog", PAGE_V1);
    let out = TempDir::new("backup-online");
    let stop = Arc::new(AtomicBool::new(false));
    let tracked = Arc::new(AtomicUsize::new(0));
    let load = thread::scope(|scope| {
        let load = scope.spawn(|| {
            let mut served = 0;
            while !stop.load(Ordering::SeqCst) {
                let body = json!({"h": "load.test", "p": "/during-backup"}).to_string();
                assert_eq!(track(&server, &body).status, 204);
                tracked.fetch_add(1, Ordering::SeqCst);
                assert_eq!(server.get("blog.localhost", "/").body, PAGE_V1);
                served += 1;
            }
            served
        });
        let deploy = scope.spawn(|| deploy_page(&server, "shop", PAGE_V2));
        // Events committed before the copy starts, and more arriving while it runs.
        flush_events(&server, "load.test", "/before-backup");
        assert!(tracked.load(Ordering::SeqCst) > 0);
        let copy = out.path().join("online.db");
        let (code, stdout, stderr) = backup_cli(server.data.path(), &copy, &[]);
        assert_eq!(code, 0, "{stdout}{stderr}");
        assert!(stdout.contains("integrity_check ok"), "{stdout}");
        deploy.join().unwrap();
        stop.store(true, Ordering::SeqCst);
        load.join().unwrap()
    });
    assert!(load > 0, "the site was served during the backup");
    let copy = out.path().join("online.db");
    assert_good_copy(&copy, "blog");
    let conn = open_copy(&copy);
    assert!(count(&conn, "SELECT count(*) FROM events") >= 1);
    // Only the copy is left in its directory: no temp file, WAL or index.
    assert_eq!(named(out.path(), ""), std::slice::from_ref(&copy));
    // The server is unaffected: it takes events and deploys after the backup.
    flush_events(&server, "load.test", "/after-backup");
    deploy_page(&server, "blog", PAGE_V2);
    assert_eq!(server.get("blog.localhost", "/").body, PAGE_V2);

    // Restored on a fresh data dir: the site as it was, the events up to the backup, and
    // the keys.
    let fresh = TempDir::new("backup-online-restored");
    let (code, stdout, stderr) = restore_cli(fresh.path(), &copy);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mut restored = start_on(fresh.path(), &[]);
    assert_eq!(restored.token, "", "the backup's owner key was found");
    restored.token = server.token.clone();
    assert_eq!(restored.get("blog.localhost", "/").body, PAGE_V1);
    let markers: Vec<_> = events(&restored, "type=marker")
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(markers, ["/before-backup"]);
    deploy_page(&restored, "blog", PAGE_V2);
    assert_eq!(restored.get("blog.localhost", "/").body, PAGE_V2);
}

#[test]
fn an_offline_backup_refuses_an_existing_file_unless_forced() {
    let mut server = Server::start();
    deploy_page(&server, "blog", PAGE_V1);
    server.terminate();
    let data = server.data.path();
    let out = TempDir::new("backup-offline");
    let copy = out.path().join("offline.db");
    let (code, stdout, stderr) = backup_cli(data, &copy, &["--json"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
    assert_eq!(report["path"], s(&copy));
    assert_eq!(
        report["bytes"].as_u64(),
        Some(std::fs::metadata(&copy).unwrap().len())
    );
    assert!(report["pages"].as_i64().unwrap() > 1, "{report}");
    assert!(report["duration_ms"].is_u64(), "{report}");
    assert_eq!(
        report["schema_version"].as_i64(),
        Some(fazt::db::migrate::latest_version())
    );
    assert_good_copy(&copy, "blog");

    let before = std::fs::read(&copy).unwrap();
    std::fs::write(&copy, b"an older backup").unwrap();
    let (code, stdout, stderr) = backup_cli(data, &copy, &[]);
    assert_ne!(code, 0, "{stdout}");
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&copy).unwrap(), b"an older backup");
    let (code, stdout, stderr) = backup_cli(data, &copy, &["--force"]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert_eq!(std::fs::read(&copy).unwrap().len(), before.len());
    assert_good_copy(&copy, "blog");
    assert_eq!(named(out.path(), ""), std::slice::from_ref(&copy));

    // No database there: a clear error, and nothing written.
    let empty = TempDir::new("backup-nodb");
    let (code, _, stderr) = backup_cli(empty.path(), &out.path().join("x.db"), &[]);
    assert_ne!(code, 0);
    assert!(stderr.contains("there is no database"), "{stderr}");
    assert!(!out.path().join("x.db").exists());
}

#[test]
fn the_backup_route_answers_when_the_copy_is_verified() {
    let server = Server::start();
    deploy_page(&server, "blog", PAGE_V1);
    let out = TempDir::new("backup-api");
    let copy = out.path().join("api.db");
    let r = admin_post(&server, "/api/system/backup", &json!({"path": s(&copy)}));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["path"], s(&copy));
    assert_eq!(
        body["bytes"].as_u64(),
        Some(std::fs::metadata(&copy).unwrap().len())
    );
    assert!(body["pages"].as_i64().unwrap() > 1);
    assert!(body["duration_ms"].is_u64());
    assert_eq!(
        body["schema_version"].as_i64(),
        Some(fazt::db::migrate::latest_version())
    );
    assert_good_copy(&copy, "blog");

    let refused = |body: serde_json::Value, status: u16, words: &str| {
        let r = admin_post(&server, "/api/system/backup", &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains(words), "{body}: {message}");
    };
    refused(json!({"path": "relative.db"}), 400, "must be absolute");
    refused(json!({}), 400, "'path'");
    refused(json!({"path": s(&copy), "force": "yes"}), 400, "'force'");
    let nowhere = out.path().join("no/such/dir.db");
    refused(json!({"path": s(&nowhere)}), 400, "is not a directory");
    refused(json!({"path": s(&copy)}), 409, "already exists");
    let r = admin_post(
        &server,
        "/api/system/backup",
        &json!({"path": s(&copy), "force": true}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        admin_raw(&server, "GET", "/api/system/backup", "").header("allow"),
        Some("POST")
    );

    // Requests at once: each is copied or refused with 409 while another runs, never both
    // at once, and a refused one writes nothing.
    let answers: Vec<(PathBuf, u16)> = thread::scope(|scope| {
        let requests: Vec<_> = (0..4)
            .map(|i| {
                let path = out.path().join(format!("at-once-{i}.db"));
                let server = &server;
                scope.spawn(move || {
                    let r = admin_post(server, "/api/system/backup", &json!({"path": s(&path)}));
                    (path, r.status)
                })
            })
            .collect();
        requests.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(answers.iter().any(|(_, status)| *status == 200));
    for (path, status) in answers {
        match status {
            200 => assert_good_copy(&path, "blog"),
            409 => assert!(!path.exists(), "{}", path.display()),
            other => panic!("{}: {other}", path.display()),
        }
    }
    // The admin thread went on answering.
    assert_eq!(
        server
            .admin_get("/api/system/health", Some(&server.token))
            .status,
        200
    );
    // Each answered backup is in the audit log (written after the answer), with its
    // outcome.
    let backups = |outcome: &str| {
        let audit = get_json(&server, "/api/audit");
        let entries = audit["entries"].as_array().unwrap().clone();
        let matches = |e: &&serde_json::Value| {
            e["action"] == "backup" && e["outcome"].as_str().unwrap_or("").contains(outcome)
        };
        entries.iter().filter(matches).count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while backups("ok") < 3 && std::time::Instant::now() < deadline {
        thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(backups("ok") >= 3);
    assert_eq!(backups("must be absolute"), 1);

    // Only the owner scope may copy the database.
    let data = s(server.data.path());
    let args = [
        "key",
        "create",
        "ci",
        "--scope",
        "deploy:blog",
        "--data",
        data,
    ];
    let (code, printed, err) = run_cli(&args, &[]);
    assert_eq!(code, 0, "{err}");
    let narrow = printed.lines().last().unwrap().trim().to_string();
    let stolen = out.path().join("stolen.db");
    let body = json!({ "path": s(&stolen) }).to_string();
    let r = admin_raw_as(&server, &narrow, "POST", "/api/system/backup", &body);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(!stolen.exists());
}

#[test]
fn a_restore_brings_the_backed_up_site_back_and_keeps_the_old_database() {
    let mut first = Server::start();
    deploy_page(&first, "blog", PAGE_V1);
    let out = TempDir::new("restore");
    let copy = out.path().join("v1.db");
    let (code, stdout, stderr) = backup_cli(first.data.path(), &copy, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    deploy_page(&first, "blog", PAGE_V2);
    assert_eq!(first.get("blog.localhost", "/").body, PAGE_V2);

    // Refused while the server holds the data dir; nothing changed.
    let data = first.data.path().to_path_buf();
    let (code, _, stderr) = restore_cli(&data, &copy);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("cannot restore while a server runs"),
        "{stderr}"
    );
    assert_eq!(first.get("blog.localhost", "/").body, PAGE_V2);
    assert!(
        named(&data, "fazt.db.").is_empty(),
        "{:?}",
        named(&data, "")
    );

    first.terminate();
    let (code, stdout, stderr) = restore_cli(&data, &copy);
    assert_eq!(code, 0, "{stdout}{stderr}");
    assert!(stdout.contains("restored"), "{stdout}");
    let kept = named(&data, "fazt.db.before-restore-");
    assert_eq!(kept.len(), 1, "{:?}", named(&data, ""));
    assert!(stdout.contains(s(&kept[0])), "{stdout}");
    // No staged copy left, and no WAL of the old database to replay onto the new one.
    assert!(named(&data, "fazt.db.restoring").is_empty());
    assert!(!data.join("fazt.db-wal").exists());
    // The kept database is the one restored over: it has the second deployment.
    let old = open_copy(&kept[0]);
    let blog = "SELECT count(*) FROM deployments WHERE site = 'blog'";
    assert_eq!(count(&old, blog), 2);

    let mut second = start_on(&data, &[]);
    second.token = first.token.clone();
    assert_eq!(second.get("blog.localhost", "/").body, PAGE_V1);
    // The restored keys work: the backup's owner key deploys.
    deploy_page(&second, "blog", PAGE_V2);
    assert_eq!(second.get("blog.localhost", "/").body, PAGE_V2);
}

/// The data dir's files and the database's bytes, to show a refused restore changed
/// nothing.
fn snapshot(data: &Path) -> (Vec<PathBuf>, Vec<u8>) {
    (
        named(data, ""),
        std::fs::read(data.join("fazt.db")).unwrap(),
    )
}

#[test]
fn a_bad_file_is_refused_and_nothing_changes() {
    let mut server = Server::start();
    deploy_page(&server, "blog", PAGE_V1);
    server.terminate();
    let data = server.data.path();
    let out = TempDir::new("restore-bad");
    // A backup from a newer fazt (schema above this build's).
    let newer = out.path().join("newer.db");
    let (code, stdout, stderr) = backup_cli(data, &newer, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let conn = Connection::open(&newer).unwrap();
    let future = fazt::db::migrate::latest_version() + 1;
    conn.pragma_update(None, "user_version", future).unwrap();
    drop(conn);
    let newer_bytes = std::fs::read(&newer).unwrap();
    // A corrupt one: a backup with a page in the middle overwritten.
    let corrupt = out.path().join("corrupt.db");
    let (code, stdout, stderr) = backup_cli(data, &corrupt, &[]);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let mut bytes = std::fs::read(&corrupt).unwrap();
    let page = 4096;
    assert!(bytes.len() > 4 * page);
    for b in &mut bytes[2 * page..3 * page] {
        *b = 0xA5;
    }
    std::fs::write(&corrupt, &bytes).unwrap();
    let before = snapshot(data);

    let text = out.path().join("notes.txt");
    std::fs::write(
        &text,
        "not a database at all, but long enough to look like one\n".repeat(100),
    )
    .unwrap();
    let (code, _, stderr) = restore_cli(data, &text);
    assert_ne!(code, 0);
    assert!(stderr.contains("not an SQLite database"), "{stderr}");
    assert!(stderr.contains("nothing was changed"), "{stderr}");
    assert_eq!(snapshot(data), before);

    let (code, _, stderr) = restore_cli(data, &newer);
    assert_ne!(code, 0);
    assert!(stderr.contains("newer fazt"), "{stderr}");
    assert_eq!(snapshot(data), before);
    assert_eq!(
        std::fs::read(&newer).unwrap(),
        newer_bytes,
        "the user's file"
    );

    let (code, _, stderr) = restore_cli(data, &corrupt);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("corrupt") || stderr.contains("cannot be read"),
        "{stderr}"
    );
    assert_eq!(snapshot(data), before);

    // The data dir still serves its site.
    let server = start_on(data, &[]);
    assert_eq!(server.get("blog.localhost", "/").body, PAGE_V1);
}

#[test]
fn an_older_schema_is_migrated_on_restore() {
    // tests/fixtures/db/v1.db: schema 1, made by tests/fixtures/db/make.py (see upgrade.rs).
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/db/v1.db");
    let original = std::fs::read(&fixture).unwrap();
    let data = TempDir::new("restore-old");
    let out = TempDir::new("restore-old-file");
    let old = out.path().join("v1.db");
    std::fs::copy(&fixture, &old).unwrap();
    let (code, stdout, stderr) = restore_cli(data.path(), &old);
    assert_eq!(code, 0, "{stdout}{stderr}");
    let latest = fazt::db::migrate::latest_version();
    assert!(
        stdout.contains(&format!("schema 1 migrated to {latest}")),
        "{stdout}"
    );
    assert!(stdout.contains("no previous database"), "{stdout}");
    // The user's file is untouched: migrated on a copy.
    assert_eq!(std::fs::read(&old).unwrap(), original);
    assert_eq!(
        count(&open_read_only(data.path()), "PRAGMA user_version"),
        latest
    );
    let server = start_on(data.path(), &[]);
    let home = b"<!doctype html><title>Blog</title><h1>Second post</h1>\n";
    assert_eq!(server.get("blog.localhost", "/").body, home);
}
