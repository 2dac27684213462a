//! The data layer through the library API: migrations, connection pragmas, the single
//! writer and the disk breaker (DESIGN §3, §5, §6, D2).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use fazt::db::writer::{self, WRITER_STATS};
use fazt::db::{self, migrate, DbError};
use fazt::http::ResponseError;
use fazt::platform::disk::{self, DiskError, DiskGuard};
use fazt::platform::probe::Limits;
use rusqlite::Connection;

use crate::common::{probe_limits, TempDir, MEMORY_LIMIT_256_MIB};

const CACHE_BYTES: u64 = 3 * 1024 * 1024;
const MMAP_BYTES: u64 = 8 * 1024 * 1024;

/// Limits as the probe derives them, with the SQLite sizes pinned for the assertions.
fn limits(dir: &Path) -> Limits {
    probe_limits(
        dir,
        &[
            MEMORY_LIMIT_256_MIB,
            ("FAZT_SQLITE_CACHE_BYTES", &CACHE_BYTES.to_string()),
            ("FAZT_SQLITE_MMAP_BYTES", &MMAP_BYTES.to_string()),
        ],
    )
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn int_pragma(conn: &Connection, name: &str) -> i64 {
    conn.pragma_query_value(None, name, |row| row.get(0))
        .expect(name)
}

fn text_pragma(conn: &Connection, name: &str) -> String {
    conn.pragma_query_value(None, name, |row| row.get(0))
        .expect(name)
}

fn tables(conn: &Connection) -> Vec<String> {
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .expect("prepare");
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

fn count(conn: &Connection, table: &str) -> i64 {
    conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

// ---------------------------------------------------------------------------------------
// Migrations
// ---------------------------------------------------------------------------------------

#[test]
fn migrations_from_empty_create_schema_one_with_incremental_vacuum_and_wal() {
    let dir = TempDir::new("migrate");
    let path = dir.0.join("nested/data").join(db::DB_FILE);
    let limits = limits(&dir.0);
    let mut conn = db::open_and_migrate(&path, &limits).expect("open_and_migrate");
    assert_eq!(int_pragma(&conn, "user_version"), migrate::latest_version());
    assert_eq!(migrate::latest_version(), 9);
    assert_eq!(
        tables(&conn),
        [
            "acme_accounts",
            "api_keys",
            "app_docs",
            "app_env",
            "app_kv",
            "app_logs",
            "app_usage",
            "audit_log",
            "blob_chunks",
            "blob_variants",
            "blobs",
            "certificates",
            "daily_values",
            "deployment_ids",
            "deployments",
            "events",
            "files",
            "redirects",
            "rollup_daily_dims",
            "rollup_hourly",
            "rollup_hourly_dims",
            "rollup_monthly_dims",
            "salts",
            "sessions",
            "setup_tokens",
            "sites",
            "sqlite_sequence",
            "strings",
            "users",
            "visitors_daily",
            "webhooks"
        ]
    );
    assert_eq!(int_pragma(&conn, "auto_vacuum"), 2, "INCREMENTAL");
    assert_eq!(text_pragma(&conn, "journal_mode"), "wal");

    // Re-running is a no-op, on the same connection and after reopening.
    assert!(migrate::run(&mut conn).expect("re-run").is_empty());
    drop(conn);
    let conn = db::open_and_migrate(&path, &limits).expect("reopen");
    assert_eq!(int_pragma(&conn, "user_version"), migrate::latest_version());
    assert_eq!(tables(&conn).len(), 31);
    assert_eq!(int_pragma(&conn, "auto_vacuum"), 2);
}

/// A file someone already switched to WAL has page 1 written, so `auto_vacuum` alone no
/// longer takes; the migration runner must still end with INCREMENTAL.
#[test]
fn incremental_vacuum_is_applied_to_an_empty_file_already_in_wal() {
    let dir = TempDir::new("vacuum");
    let path = dir.db();
    {
        let raw = Connection::open(&path).expect("open raw");
        let mode: String = raw
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        raw.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .expect("pragma");
        assert_eq!(
            int_pragma(&raw, "auto_vacuum"),
            0,
            "premise: WAL first blocks it"
        );
    }
    let conn = db::open_and_migrate(&path, &limits(&dir.0)).expect("open_and_migrate");
    assert_eq!(int_pragma(&conn, "auto_vacuum"), 2);
    assert_eq!(int_pragma(&conn, "user_version"), migrate::latest_version());
}

#[test]
fn a_database_from_a_newer_fazt_is_refused_and_left_untouched() {
    let dir = TempDir::new("newer");
    let path = dir.db();
    let limits = limits(&dir.0);
    {
        let conn = db::open_and_migrate(&path, &limits).expect("create");
        conn.pragma_update(None, "user_version", 99).expect("bump");
    }
    assert!(
        !wal_path(&path).exists(),
        "premise: clean close removes the WAL"
    );
    let bytes = std::fs::read(&path).expect("read db");
    let mtime = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    std::thread::sleep(Duration::from_millis(20));

    for attempt in [
        db::open_and_migrate(&path, &limits),
        db::open_write(&path, &limits),
    ] {
        match attempt {
            Err(DbError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (99, migrate::latest_version()));
            }
            Err(other) => panic!("expected NewerSchema, got {other}"),
            Ok(_) => panic!("expected NewerSchema, got a connection"),
        }
    }
    let err = db::open_and_migrate(&path, &limits).expect_err("refused");
    assert_eq!(err.status(), 500);
    let expected = format!(
        "newer fazt (schema 99, this build knows up to {}); refusing to modify it",
        migrate::latest_version()
    );
    assert!(err.to_string().contains(&expected), "{err}");

    assert_eq!(std::fs::read(&path).expect("reread"), bytes, "file bytes");
    let mtime_after = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(mtime_after, mtime, "file mtime");
    assert!(!wal_path(&path).exists(), "no WAL left behind");
    let reader = db::open_read(&path, &limits).expect("read-only still works");
    assert_eq!(int_pragma(&reader, "user_version"), 99);
    assert_eq!(tables(&reader).len(), 31);
}

/// A newer database still in rollback-journal mode must not even be switched to WAL.
#[test]
fn a_newer_database_in_rollback_mode_is_not_switched_to_wal() {
    let dir = TempDir::new("newer-delete");
    let path = dir.db();
    {
        let raw = Connection::open(&path).expect("open raw");
        raw.execute_batch("CREATE TABLE future (x); PRAGMA user_version = 99;")
            .expect("future schema");
    }
    let bytes = std::fs::read(&path).expect("read db");
    let err = db::open_and_migrate(&path, &limits(&dir.0)).expect_err("refused");
    assert!(
        matches!(err, DbError::NewerSchema { found: 99, .. }),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).expect("reread"), bytes);
    let raw = Connection::open(&path).expect("reopen raw");
    assert_eq!(text_pragma(&raw, "journal_mode"), "delete");
}

// ---------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------

fn assert_connection_pragmas(conn: &Connection, role: &str) {
    assert_eq!(int_pragma(conn, "foreign_keys"), 1, "{role} foreign_keys");
    assert_eq!(
        int_pragma(conn, "synchronous"),
        1,
        "{role} synchronous NORMAL"
    );
    assert_eq!(
        int_pragma(conn, "cache_size"),
        -((CACHE_BYTES / 1024) as i64),
        "{role} cache_size in KiB"
    );
    assert_eq!(
        int_pragma(conn, "busy_timeout"),
        5000,
        "{role} busy_timeout"
    );
    assert_eq!(
        int_pragma(conn, "mmap_size"),
        MMAP_BYTES as i64,
        "{role} mmap_size"
    );
    assert_eq!(int_pragma(conn, "temp_store"), 1, "{role} temp_store FILE");
    assert_eq!(
        text_pragma(conn, "journal_mode"),
        "wal",
        "{role} journal_mode"
    );
}

#[test]
fn read_and_write_connections_get_the_configured_pragmas() {
    let dir = TempDir::new("pragmas");
    let limits = limits(&dir.0);
    assert_eq!(limits.sqlite_cache_bytes, CACHE_BYTES);
    let writer = db::open_and_migrate(&dir.db(), &limits).expect("writer");
    assert_connection_pragmas(&writer, "write");
    let reader = db::open_read(&dir.db(), &limits).expect("reader");
    assert_connection_pragmas(&reader, "read");
}

#[test]
fn read_connections_cannot_write() {
    let dir = TempDir::new("readonly");
    let limits = limits(&dir.0);
    let _writer = db::open_and_migrate(&dir.db(), &limits).expect("writer");
    let reader = db::open_read(&dir.db(), &limits).expect("reader");
    let err = reader
        .execute(
            "INSERT INTO sites (name, created_at, updated_at) VALUES ('x', 0, 0)",
            [],
        )
        .expect_err("a read connection must not write");
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly),
        "{err}"
    );
    assert_eq!(count(&reader, "sites"), 0);
}

#[test]
fn a_reader_before_the_writer_is_a_clear_error() {
    let dir = TempDir::new("reader-first");
    let err = db::open_read(&dir.db(), &limits(&dir.0)).expect_err("no database yet");
    assert_eq!(err.status(), 500);
    assert!(
        err.to_string().contains("the writer must create it first"),
        "{err}"
    );
    assert!(!dir.db().exists(), "a reader must not create the file");
}

#[test]
fn incremental_vacuum_returns_every_free_page() {
    let dir = TempDir::new("vacuum-run");
    let conn = db::open_and_migrate(&dir.db(), &limits(&dir.0)).expect("open");
    conn.execute_batch(
        "CREATE TABLE big (x BLOB);
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100)
         INSERT INTO big SELECT zeroblob(3000) FROM n;
         DELETE FROM big;",
    )
    .expect("fill and empty");
    let free = int_pragma(&conn, "freelist_count");
    assert!(free >= 100, "premise: {free} free pages");
    let page_size = int_pragma(&conn, "page_size");
    let freed = db::incremental_vacuum(&conn, Some(10)).expect("bounded vacuum");
    assert_eq!(freed, 10 * page_size as u64);
    let freed = db::incremental_vacuum(&conn, None).expect("vacuum");
    assert_eq!(freed, (free - 10) as u64 * page_size as u64);
    assert_eq!(int_pragma(&conn, "freelist_count"), 0);
}

// ---------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------

/// A migrated database with a scratch table `log (seq)`, and its writer.
fn writer_with_log(dir: &TempDir, capacity: usize) -> (writer::WriterHandle, writer::WriterThread) {
    let conn = db::open_and_migrate(&dir.db(), &limits(&dir.0)).expect("open");
    conn.execute_batch("CREATE TABLE log (seq INTEGER NOT NULL)")
        .expect("log table");
    writer::spawn(conn, capacity).expect("spawn")
}

fn insert_seq(seq: i64) -> impl FnOnce(&mut Connection) -> Result<(), DbError> + Send {
    move |conn: &mut Connection| {
        conn.execute("INSERT INTO log (seq) VALUES (?1)", [seq])?;
        Ok(())
    }
}

/// A job that tells `started` it runs, then waits for `gate` (or its sender to drop).
fn blocking_job(
    started: crossbeam_channel::Sender<()>,
    gate: crossbeam_channel::Receiver<()>,
) -> impl FnOnce(&mut Connection) -> Result<(), DbError> + Send {
    move |_: &mut Connection| {
        let _ = started.send(());
        let _ = gate.recv();
        Ok(())
    }
}

#[test]
fn jobs_run_in_submission_order() {
    let dir = TempDir::new("order");
    let (handle, thread) = writer_with_log(&dir, 256);
    assert_eq!(handle.capacity(), 256);
    let replies: Vec<_> = (0..100)
        .map(|i| handle.try_submit(insert_seq(i)).expect("queued"))
        .collect();
    for reply in replies {
        reply.recv().expect("reply").expect("job ok");
    }
    let seqs: Vec<i64> = handle
        .call(|conn| {
            let mut stmt = conn.prepare("SELECT seq FROM log ORDER BY rowid")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .expect("read back");
    assert_eq!(seqs, (0..100).collect::<Vec<i64>>());
    handle.stop();
    let report = thread.join().expect("join");
    assert_eq!(report.jobs_done, 101);
    assert!(report.all_written());
}

#[test]
fn a_failing_job_leaves_nothing_written() {
    let dir = TempDir::new("failing");
    let (handle, thread) = writer_with_log(&dir, 8);
    let failed_before = WRITER_STATS.failed.get();
    let result = handle.call(|conn| -> Result<(), DbError> {
        let tx = conn.transaction()?;
        for seq in 0..3 {
            tx.execute("INSERT INTO log (seq) VALUES (?1)", [seq])?;
        }
        // Fails on the fourth statement: NOT NULL.
        tx.execute("INSERT INTO log (seq) VALUES (NULL)", [])?;
        tx.commit()?;
        Ok(())
    });
    let err = result.expect_err("the job fails");
    assert_eq!(err.status(), 500);
    assert!(WRITER_STATS.failed.get() > failed_before);
    let rows = handle.call(|conn| Ok(count(conn, "log"))).expect("count");
    assert_eq!(rows, 0, "the partial inserts were rolled back");
    handle.stop();
    let report = thread.join().expect("join");
    assert_eq!((report.jobs_done, report.jobs_failed), (1, 1));
}

#[test]
fn a_panicking_job_does_not_kill_the_writer() {
    let dir = TempDir::new("panic");
    let (handle, thread) = writer_with_log(&dir, 8);
    let result = handle.call(|conn| -> Result<(), DbError> {
        let tx = conn.transaction()?;
        tx.execute("INSERT INTO log (seq) VALUES (1)", [])?;
        panic!("deliberate panic in a write job (test)");
    });
    match result {
        Err(e @ DbError::Panicked { .. }) => {
            assert_eq!(e.status(), 500);
            assert!(e.to_string().contains("panicked"), "{e}");
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    handle.call(insert_seq(2)).expect("the writer still works");
    let seqs: Vec<i64> = handle
        .call(|conn| {
            let mut stmt = conn.prepare("SELECT seq FROM log")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<i64>, _>>()?)
        })
        .expect("read");
    assert_eq!(seqs, [2]);
    handle.stop();
    let report = thread.join().expect("join");
    assert_eq!(report.jobs_panicked, 1);
    assert_eq!(report.jobs_done, 2);
}

#[test]
fn a_full_queue_is_refused_without_blocking() {
    let dir = TempDir::new("full");
    let (handle, thread) = writer_with_log(&dir, 2);
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let blocker = handle
        .try_submit(blocking_job(started_tx, gate_rx))
        .expect("blocker queued");
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("blocker started");
    // The writer is busy: two slots, then full.
    let a = handle.try_submit(insert_seq(1)).expect("slot 1");
    let b = handle.try_submit(insert_seq(2)).expect("slot 2");
    let full_before = WRITER_STATS.rejected_full.get();
    let refused = handle.try_submit(insert_seq(3));
    assert!(matches!(refused, Err(DbError::QueueFull)), "{refused:?}");
    let err = refused.expect_err("refused");
    assert_eq!(err.status(), 503);
    assert_eq!(err.retry_after_secs(), Some(1));
    assert!(WRITER_STATS.rejected_full.get() > full_before);
    assert_eq!(handle.queue_len(), 2);

    drop(gate_tx);
    blocker.recv().expect("reply").expect("blocker ok");
    a.recv().expect("reply").expect("a ok");
    b.recv().expect("reply").expect("b ok");
    assert_eq!(
        handle.call(|conn| Ok(count(conn, "log"))).expect("count"),
        2
    );
    handle.stop();
    thread.join().expect("join");
}

#[test]
fn stop_drains_the_queue_checkpoints_and_empties_the_wal() {
    let dir = TempDir::new("stop");
    let limits = limits(&dir.0);
    let (handle, thread) = writer_with_log(&dir, 16);
    let (started_tx, started_rx) = crossbeam_channel::bounded(1);
    let (gate_tx, gate_rx) = crossbeam_channel::bounded::<()>(0);
    let blocker = handle
        .try_submit(blocking_job(started_tx, gate_rx))
        .expect("blocker");
    started_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("blocker started");
    let queued: Vec<_> = (0..10)
        .map(|i| handle.try_submit(insert_seq(i)).expect("queued"))
        .collect();

    handle.stop();
    assert!(handle.is_stopped());
    let late = handle.clone().try_submit(insert_seq(99));
    assert!(matches!(late, Err(DbError::WriterStopped)), "{late:?}");
    assert_eq!(late.err().map(|e| e.status()), Some(503));
    handle.stop(); // idempotent

    drop(gate_tx);
    let report = thread.join().expect("join");
    blocker.recv().expect("reply").expect("blocker ok");
    for reply in queued {
        reply.recv().expect("reply").expect("queued job ran");
    }
    assert_eq!(report.jobs_done, 11);
    assert_eq!(report.jobs_failed, 0);
    assert_eq!(
        report.checkpoint,
        fazt::db::writer::FinalCheckpoint::Complete,
        "{report}"
    );
    assert_eq!(report.close_error, None);
    assert!(report.all_written());

    let wal = wal_path(&dir.db());
    let wal_len = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(wal_len, 0, "the WAL is empty or gone after shutdown");

    let call = handle.call(|_| Ok(()));
    assert!(matches!(call, Err(DbError::WriterStopped)), "{call:?}");

    let reader = db::open_read(&dir.db(), &limits).expect("reader");
    assert_eq!(count(&reader, "log"), 10, "drained jobs are durable");
}

/// Submitters racing with `stop`: every accepted job runs and replies, every refusal is
/// `WriterStopped` or `QueueFull`, and nothing hangs.
#[test]
fn jobs_accepted_while_stopping_still_run() {
    let dir = TempDir::new("stop-race");
    let limits = limits(&dir.0);
    let (handle, thread) = writer_with_log(&dir, 64);
    let submitters: Vec<_> = (0..4)
        .map(|t| {
            let handle = handle.clone();
            std::thread::spawn(move || {
                let mut accepted = Vec::new();
                for i in 0..500 {
                    match handle.try_submit(insert_seq(t * 1000 + i)) {
                        Ok(reply) => accepted.push(reply),
                        Err(DbError::QueueFull) => std::thread::yield_now(),
                        Err(DbError::WriterStopped) => break,
                        Err(other) => panic!("unexpected refusal: {other}"),
                    }
                }
                accepted
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(5));
    handle.stop();
    let mut accepted = 0;
    for submitter in submitters {
        for reply in submitter.join().expect("submitter") {
            reply
                .recv_timeout(Duration::from_secs(10))
                .expect("an accepted job always replies")
                .expect("and succeeds");
            accepted += 1;
        }
    }
    let report = thread.join().expect("join");
    assert_eq!(report.jobs_done, accepted as u64);
    let reader = db::open_read(&dir.db(), &limits).expect("reader");
    assert_eq!(count(&reader, "log"), accepted);
}

#[test]
fn dropping_every_handle_also_stops_the_writer() {
    let dir = TempDir::new("drop");
    let (handle, thread) = writer_with_log(&dir, 4);
    handle.call(insert_seq(1)).expect("job");
    drop(handle);
    let report = thread.join().expect("join");
    assert_eq!(
        report.checkpoint,
        fazt::db::writer::FinalCheckpoint::Complete
    );
    assert_eq!(report.jobs_done, 1);
}

/// A reader sees a multi-row update done by the writer in one transaction entirely or
/// not at all.
#[test]
fn readers_see_whole_transactions_only() {
    const ROWS: i64 = 20;
    const ROUNDS: i64 = 200;
    let dir = TempDir::new("snapshot");
    let limits = limits(&dir.0);
    let (handle, thread) = writer_with_log(&dir, 64);
    handle
        .call(|conn| {
            let tx = conn.transaction()?;
            tx.execute_batch("CREATE TABLE acct (id INTEGER PRIMARY KEY, v INTEGER NOT NULL)")?;
            for id in 0..ROWS {
                tx.execute("INSERT INTO acct (id, v) VALUES (?1, 0)", [id])?;
            }
            tx.commit()?;
            Ok(())
        })
        .expect("setup");

    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = Arc::clone(&done);
        let path = dir.db();
        let limits = limits.clone();
        std::thread::spawn(move || {
            let conn = db::open_read(&path, &limits).expect("reader");
            let mut stmt = conn
                .prepare("SELECT v FROM acct ORDER BY id")
                .expect("prepare");
            let mut reads = 0u64;
            let mut last = 0i64;
            loop {
                let finished = done.load(Ordering::SeqCst);
                let values: Vec<i64> = stmt
                    .query_map([], |r| r.get(0))
                    .expect("query")
                    .collect::<Result<_, _>>()
                    .expect("rows");
                assert_eq!(values.len() as i64, ROWS);
                assert!(
                    values.iter().all(|v| *v == values[0]),
                    "a mix of two transactions: {values:?}"
                );
                assert!(values[0] >= last, "went back in time");
                last = values[0];
                reads += 1;
                if finished {
                    return (reads, last);
                }
            }
        })
    };

    for round in 1..=ROUNDS {
        handle
            .call(move |conn| {
                let tx = conn.transaction()?;
                for id in 0..ROWS {
                    tx.execute("UPDATE acct SET v = ?1 WHERE id = ?2", [round, id])?;
                }
                tx.commit()?;
                Ok(())
            })
            .expect("update");
    }
    done.store(true, Ordering::SeqCst);
    let (reads, last) = reader.join().expect("reader thread");
    assert!(reads > 0);
    assert_eq!(last, ROUNDS, "the final read sees the last commit");
    handle.stop();
    thread.join().expect("join");
}

// ---------------------------------------------------------------------------------------
// Disk breaker
// ---------------------------------------------------------------------------------------

#[test]
fn the_disk_breaker_trips_at_its_threshold() {
    let dir = TempDir::new("disk");
    // The temp dir's filesystem, and a path not created yet (measured at its ancestor).
    let paths = vec![dir.0.clone(), dir.0.join("tmp/not-yet")];

    let open = DiskGuard::new(paths.clone(), 100);
    let usage = open.usage();
    assert_eq!(usage.len(), 2);
    let used = usage.iter().map(|(_, u, _)| *u).max().unwrap_or(0);
    assert!(usage.iter().all(|(_, u, avail)| *u <= 100 && *avail > 0));
    if used < 100 {
        open.check().expect("100% is never reached here");
    }

    let strict = DiskGuard::new(paths, 1);
    assert_eq!(strict.threshold_percent(), 1);
    if used >= 1 {
        match strict.check() {
            Err(e @ DiskError::Full { .. }) => {
                assert_eq!((e.status(), e.code()), (507, "disk_full"));
                let DiskError::Full {
                    used_percent,
                    threshold,
                    ..
                } = &e
                else {
                    unreachable!()
                };
                assert_eq!((*used_percent, *threshold), (used, 1));
                assert!(e.to_string().contains("--disk-threshold"), "{e}");
            }
            other => panic!("expected DiskFull at 1%, got {other:?}"),
        }
    } else {
        eprintln!("skipped the 1% check: the test filesystem reports 0% used");
    }
    let registry = fazt::platform::metrics::Registry::new().with(&strict);
    let json = registry.to_json();
    assert_eq!(json["disk"]["threshold_ratio"], 0.01);
    let ratios = json["disk"]["used_ratio"].as_object().expect("used_ratio");
    assert_eq!(ratios.len(), 2, "{json}");
    assert!(ratios
        .values()
        .all(|r| r.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r))));
    let text = registry.render_prometheus();
    assert!(text.contains("fazt_disk_used_ratio{path=\""), "{text}");
    assert!(!text.contains("_percent"), "{text}");
    assert!(text.contains("fazt_disk_refusals_total "), "{text}");
}

#[test]
fn the_disk_threshold_parses_percentages() {
    assert_eq!(disk::DEFAULT_THRESHOLD, 90);
    assert_eq!(disk::parse_threshold("95"), Ok(95));
    assert_eq!(disk::parse_threshold("85%"), Ok(85));
    let err = disk::parse_threshold("0").expect_err("0 is out of range");
    assert!(err.contains("between 1 and 100"), "{err}");
    assert!(disk::parse_threshold("lots").is_err());
}

#[test]
fn statvfs_reports_a_sane_filesystem() {
    let (total, avail) = fazt::platform::sys::disk_space(&std::env::temp_dir()).expect("statvfs");
    assert!(total > 0 && avail <= total, "total {total}, avail {avail}");
    assert!(fazt::platform::sys::disk_space(Path::new("/nonexistent/fazt/path")).is_err());
}
