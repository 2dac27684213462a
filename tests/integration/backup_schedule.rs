//! Scheduled backups (issue #16): `FAZT_BACKUP_DIR`, `FAZT_BACKUP_EVERY` and
//! `FAZT_BACKUP_KEEP`. Backups are whole databases, the oldest beyond the count go, a failure
//! shows in `/api/system/health` (readiness `degraded`) and `/metrics` until a backup
//! succeeds again, and a restart keeps the period of the backups already there.
use crate::common::*;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn backups_in(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy().into_owned();
                    name.starts_with("fazt-") && name.ends_with("Z.db")
                })
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

fn health(server: &Server) -> serde_json::Value {
    server
        .admin_get("/api/system/health", Some(&server.token))
        .json()
}

/// The site's page as a backup holds it.
fn page_in(backup: &Path) -> Vec<u8> {
    let conn =
        rusqlite::Connection::open_with_flags(backup, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let ok: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok", "{}", backup.display());
    let mut stmt = conn
        .prepare(
            "SELECT c.data FROM files f JOIN sites s ON s.current_deployment = f.deployment
             JOIN blob_chunks c ON c.sha256 = f.sha256
             WHERE s.name = 'kept' AND f.path = 'index.html' ORDER BY c.seq",
        )
        .unwrap();
    let chunks = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
    chunks.flat_map(Result::unwrap).collect()
}

#[test]
fn backups_are_taken_every_period_and_only_the_newest_are_kept() {
    let dir = TempDir::new("backups");
    let backups = dir.path().join("backups");
    let env = [
        ("FAZT_BACKUP_DIR", s(&backups)),
        ("FAZT_BACKUP_EVERY", "1s"),
        ("FAZT_BACKUP_KEEP", "2"),
    ];
    let data = TempDir::new("backups-data");
    let server = start_on(data.path(), &env);
    let r = deploy_files(
        &server,
        "kept",
        &[("index.html", b"<h1>kept</h1>")],
        zip::CompressionMethod::Deflated,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let runs =
        |server: &Server| metric_value(server, "fazt_backups_total{result=\"ok\"}").unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(20), || runs(&server) >= 4),
        "backups: {}",
        runs(&server)
    );
    let kept = backups_in(&backups);
    assert_eq!(kept.len(), 2, "{kept:?}");
    // The newest holds the site deployed before it.
    assert_eq!(page_in(kept.last().unwrap()), b"<h1>kept</h1>");
    let h = health(&server);
    assert_eq!(h["status"], "ok", "{h}");
    assert!(h["backups"]["last_success_at"].as_u64().unwrap() > 0, "{h}");
    assert!(h["backups"]["last_error"].is_null(), "{h}");
    assert!(metric_value(&server, "fazt_backup_last_size_bytes").unwrap() > 0);
}

#[test]
fn a_failing_backup_degrades_readiness_until_one_succeeds_again() {
    let dir = TempDir::new("backups-fail");
    let backups = dir.path().join("backups");
    let env = [
        ("FAZT_BACKUP_DIR", s(&backups)),
        ("FAZT_BACKUP_EVERY", "1s"),
    ];
    let data = TempDir::new("backups-fail-data");
    let server = start_on(data.path(), &env);
    assert!(eventually(Duration::from_secs(10), || !backups_in(
        &backups
    )
    .is_empty()));
    // The directory goes away (a file stands in its place): every backup now fails.
    std::fs::remove_dir_all(&backups).unwrap();
    std::fs::write(&backups, b"not a directory").unwrap();
    let degraded = eventually(Duration::from_secs(10), || {
        health(&server)["status"] == "degraded"
    });
    let h = health(&server);
    assert!(degraded, "{h}");
    let reasons = h["reasons"].to_string();
    assert!(
        reasons.contains("the last scheduled backup failed"),
        "{reasons}"
    );
    assert!(h["backups"]["last_error"].is_string(), "{h}");
    assert_eq!(metric_value(&server, "fazt_backup_last_failed"), Some(1));
    assert!(metric_value(&server, "fazt_backups_total{result=\"failed\"}").unwrap() >= 1);
    // It comes back by itself once the directory does.
    std::fs::remove_file(&backups).unwrap();
    std::fs::create_dir(&backups).unwrap();
    assert!(
        eventually(Duration::from_secs(10), || health(&server)["status"]
            == "ok"),
        "{}",
        health(&server)
    );
    assert_eq!(metric_value(&server, "fazt_backup_last_failed"), Some(0));
    assert!(!backups_in(&backups).is_empty());
}

#[test]
fn a_restart_keeps_the_period_of_the_backups_already_taken() {
    let dir = TempDir::new("backups-restart");
    let backups = dir.path().join("backups");
    let env = [
        ("FAZT_BACKUP_DIR", s(&backups)),
        ("FAZT_BACKUP_EVERY", "1h"),
    ];
    let data = TempDir::new("backups-restart-data");
    let mut server = start_on(data.path(), &env);
    assert!(eventually(Duration::from_secs(10), || backups_in(&backups)
        .len()
        == 1));
    // What a backup killed mid-copy leaves behind is removed at the next start.
    let unfinished = backups.join(".fazt-20261203T000000Z.db.fazt-backup-1-2");
    std::fs::write(&unfinished, b"half a copy").unwrap();
    let token = server.token.clone();
    assert!(server.terminate().success());
    let mut server = start_on(data.path(), &env);
    server.token = token;
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        backups_in(&backups).len(),
        1,
        "a backup was taken although one is an hour old at most"
    );
    assert!(!unfinished.exists(), "the unfinished copy is still there");
    let h = health(&server);
    assert_eq!(h["status"], "ok", "{h}");
    assert!(h["backups"]["last_success_at"].as_u64().unwrap() > 0, "{h}");
}
