//! `fazt db backup` and `POST /api/system/backup`: an online, consistent copy of the
//! database, verified before it is reported.
//!
//! How: SQLite's backup API on a read-only connection of our own, a step of
//! [`STEP_PAGES`] pages at a time with [`STEP_PAUSE`] between steps (so a backup of a large
//! file leaves the disk to the requests it shares it with). `VACUUM INTO` would write a
//! rebuilt file in one statement; the backup API copies the pages as they are (the same
//! page size, auto-vacuum mode and free list as the file restored later) and can pause.
//!
//! Invariants:
//! - The writer is never held: the copy runs inside one read transaction of its own
//!   connection, which WAL lets the writer commit beside. That one snapshot is also what
//!   keeps the copy consistent: without it, every commit of the server between two steps
//!   would restart the backup from page 1, and a busy server would never let it finish.
//!   (The price: a checkpoint cannot pass the snapshot, so the WAL grows during the copy.)
//! - The destination only ever holds a whole, verified copy: the pages go to a temp file
//!   in its directory, which is fsynced, reopened for `PRAGMA integrity_check`, and only
//!   then renamed (or, without `force`, hard-linked, which refuses an existing name
//!   atomically) to the destination; the directory is fsynced after.

use crate::db::{Context, DbError};
use crate::http::ResponseError;
use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Pages copied per step: 4 MiB at the default 4 KiB pages.
const STEP_PAGES: i32 = 1024;

/// The pause between steps.
const STEP_PAUSE: Duration = Duration::from_millis(2);

/// How long a step may keep finding the source or the copy locked before the backup gives
/// up (the same patience as every connection's busy timeout).
const BUSY_LIMIT: Duration = crate::db::BUSY_TIMEOUT;

/// What a finished backup reports.
#[derive(Debug, Clone)]
pub(crate) struct BackupReport {
    pub path: PathBuf,
    pub bytes: u64,
    pub pages: i64,
    pub duration: Duration,
    /// The copy's `user_version`: the schema it restores as.
    pub schema_version: i64,
}

impl BackupReport {
    /// The admin API's answer and `fazt db backup --json`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path.display().to_string(),
            "bytes": self.bytes,
            "pages": self.pages,
            "duration_ms": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            "schema_version": self.schema_version,
        })
    }
}

/// Why a backup was not made. Nothing is left at the destination in any case.
#[derive(Debug)]
pub(crate) enum BackupError {
    /// The request names no usable destination (relative, no such directory, the
    /// database itself): 400.
    Invalid(String),
    /// The destination exists and `force` was not given: 409.
    Exists(PathBuf),
    /// Reading the database, writing or verifying the copy failed (a full disk is 507).
    Failed(DbError),
}

impl fmt::Display for BackupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BackupError::Invalid(message) => f.write_str(message),
            BackupError::Exists(path) => write!(
                f,
                "{} already exists; choose another name, or pass --force (\"force\": true) to \
                 replace it",
                path.display()
            ),
            BackupError::Failed(e) => write!(f, "backup failed: {e}"),
        }
    }
}

impl ResponseError for BackupError {
    fn status(&self) -> u16 {
        match self {
            BackupError::Invalid(_) => 400,
            BackupError::Exists(_) => 409,
            BackupError::Failed(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            BackupError::Invalid(_) => "bad_request",
            BackupError::Exists(_) => "destination_exists",
            BackupError::Failed(e) => e.code(),
        }
    }
}

impl From<DbError> for BackupError {
    fn from(e: DbError) -> BackupError {
        BackupError::Failed(e)
    }
}

/// How far below the server's threads a backup runs (nice): copying pages and checking the
/// copy is CPU work, and on a small machine it must not take the CPU from requests.
const BACKUP_NICE: i32 = 10;

/// Makes the calling thread background work for backups; once per thread (nice adds up).
pub(crate) fn run_in_background() {
    if let Err(e) = crate::platform::sys::lower_thread_priority(BACKUP_NICE) {
        log::warn!("could not lower the backup's priority: {e}");
    }
}

/// Copies the database at `source` to `dest` (an absolute path whose directory exists),
/// replacing an existing file only when `force`. Works beside a running server.
pub(crate) fn backup(source: &Path, dest: &Path, force: bool) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    check_destination(source, dest, force)?;
    let temp = TempCopy::create(dest)?;
    copy_pages(source, &temp.path)?;
    sync_file(&temp.path)?;
    let (pages, schema_version) = verify(&temp.path)?;
    let bytes = std::fs::metadata(&temp.path)
        .context(format!("reading the size of {}", temp.path.display()))?
        .len();
    temp.publish(dest, force)?;
    Ok(BackupReport {
        path: dest.to_path_buf(),
        bytes,
        pages,
        duration: started.elapsed(),
        schema_version,
    })
}

/// Refuses a destination that cannot be written as asked, before any page is read.
fn check_destination(source: &Path, dest: &Path, force: bool) -> Result<(), BackupError> {
    if !dest.is_absolute() {
        return Err(BackupError::Invalid(format!(
            "the backup path '{}' must be absolute",
            dest.display()
        )));
    }
    let dir = dest.parent().unwrap_or(Path::new("/"));
    if dest.file_name().is_none() || !dir.is_dir() {
        return Err(BackupError::Invalid(format!(
            "cannot write {}: {} is not a directory",
            dest.display(),
            dir.display()
        )));
    }
    if !source.is_file() {
        return Err(BackupError::Invalid(format!(
            "there is no database at {} (is --data right?)",
            source.display()
        )));
    }
    if dest.is_dir() {
        return Err(BackupError::Invalid(format!(
            "{} is a directory; name the backup file",
            dest.display()
        )));
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(source, dest) {
        return Err(BackupError::Invalid(format!(
            "{} is the database itself; back it up to another file",
            dest.display()
        )));
    }
    if !force && dest.symlink_metadata().is_ok() {
        return Err(BackupError::Exists(dest.to_path_buf()));
    }
    Ok(())
}

/// Opens `source` read-only: the backup never writes the live database.
fn open_source(source: &Path) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(source, flags)
        .context(format!("opening {} for reading", source.display()))?;
    conn.busy_timeout(BUSY_LIMIT)
        .context("setting the busy timeout")?;
    Ok(conn)
}

/// Copies every page of `source` into the new file `copy` from one read snapshot.
fn copy_pages(source: &Path, copy: &Path) -> Result<(), DbError> {
    let from = open_source(source)?;
    // The snapshot: a read transaction the backup's steps all run inside (see the module
    // comment). `BEGIN` alone takes no snapshot; the first read does.
    from.execute_batch("BEGIN")
        .context("starting the read transaction")?;
    from.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
        .context(format!("reading {}", source.display()))?;
    let mut to = Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context(format!("opening {}", copy.display()))?;
    run_steps(&from, &mut to)?;
    drop(to);
    from.execute_batch("COMMIT")
        .context("ending the read transaction")?;
    Ok(())
}

/// Steps the backup to its end, pausing between steps; a lock that outlasts
/// [`BUSY_LIMIT`] ends it with an error.
fn run_steps(from: &Connection, to: &mut Connection) -> Result<(), DbError> {
    let backup = Backup::new(from, to).context("starting the backup")?;
    let mut busy_since: Option<Instant> = None;
    loop {
        match backup.step(STEP_PAGES).context("copying pages")? {
            StepResult::Done => return Ok(()),
            StepResult::More => busy_since = None,
            StepResult::Busy | StepResult::Locked => {
                let since = *busy_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= BUSY_LIMIT {
                    return Err(DbError::Internal(format!(
                        "the database stayed locked for {} s; the backup gave up",
                        BUSY_LIMIT.as_secs()
                    )));
                }
            }
            // A new variant of a non-exhaustive enum: treat it as the end of a step.
            _ => {}
        }
        std::thread::sleep(STEP_PAUSE);
    }
}

/// Reopens the copy from disk and checks it page by page; returns its page count and
/// schema version.
fn verify(copy: &Path) -> Result<(i64, i64), DbError> {
    let conn = Connection::open_with_flags(
        copy,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context(format!("opening the copy {}", copy.display()))?;
    // The pages came from a WAL database; in rollback-journal mode the copy is one
    // self-contained file that even a read-only opener needs no `-wal`/`-shm` beside
    // (a restore switches it back to WAL).
    conn.pragma_update_and_check(None, "journal_mode", "DELETE", |_| Ok(()))
        .context("switching the copy to journal_mode=DELETE")?;
    let problems = integrity_problems(&conn)
        .map_err(|e| DbError::Internal(format!("checking the copy: {e}")))?;
    if !problems.is_empty() {
        return Err(DbError::Internal(format!(
            "the copy failed its integrity check: {}",
            problems.join("; ")
        )));
    }
    let pages = conn
        .pragma_query_value(None, "page_count", |r| r.get(0))
        .context("reading the copy's page count")?;
    let version = crate::db::migrate::schema_version(&conn)?;
    Ok((pages, version))
}

/// The rows of `PRAGMA integrity_check` other than a single "ok" (the first 10).
pub(crate) fn integrity_problems(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare("PRAGMA integrity_check(10)")?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    let rows: Vec<String> = rows.collect::<rusqlite::Result<_>>()?;
    Ok(if rows == ["ok"] { Vec::new() } else { rows })
}

/// fsyncs a file's data and size.
pub(crate) fn sync_file(path: &Path) -> Result<(), DbError> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .context(format!("syncing {}", path.display()))
}

/// fsyncs a directory, so a rename or link in it survives a power loss.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), DbError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .context(format!("syncing the directory {}", dir.display()))
}

/// The copy being written, beside its destination (mode 0600: it holds key hashes and
/// visitor data); removed, with any `-wal`/`-shm` SQLite left, when dropped (after a
/// rename that name is gone already; after a link the destination keeps the data).
struct TempCopy {
    path: PathBuf,
}

impl TempCopy {
    fn create(dest: &Path) -> Result<TempCopy, DbError> {
        use std::os::unix::fs::OpenOptionsExt;
        let name = dest.file_name().unwrap_or_default().to_string_lossy();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = dest.with_file_name(format!(
            ".{name}.fazt-backup-{}-{nanos}",
            std::process::id()
        ));
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .context(format!("creating {}", path.display()))?;
        Ok(TempCopy { path })
    }

    /// Moves the verified copy to `dest`: a rename over it when `force`, else a hard link
    /// that fails if `dest` appeared meanwhile (never replacing a file not asked to).
    fn publish(self, dest: &Path, force: bool) -> Result<(), BackupError> {
        if force {
            std::fs::rename(&self.path, dest)
                .context(format!("renaming the copy to {}", dest.display()))?;
        } else {
            match std::fs::hard_link(&self.path, dest) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Err(BackupError::Exists(dest.to_path_buf()))
                }
                Err(e) => {
                    return Err(DbError::Io {
                        context: format!("linking the copy to {}", dest.display()),
                        source: e,
                    }
                    .into())
                }
            }
        }
        drop(self);
        sync_dir(dest.parent().unwrap_or(Path::new("/")))?;
        Ok(())
    }
}

impl Drop for TempCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        for suffix in ["-wal", "-shm", "-journal"] {
            let mut name = self.path.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

/// At most one backup at a time through the API: a second request while one runs is 409.
#[derive(Default, Clone)]
pub(crate) struct BackupSlot(std::sync::Arc<std::sync::atomic::AtomicBool>);

/// The slot, taken; freed when dropped (also when the backup panics).
pub(crate) struct SlotTaken(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl BackupSlot {
    /// Takes the slot, or `None` while another backup holds it.
    pub fn try_take(&self) -> Option<SlotTaken> {
        use std::sync::atomic::Ordering;
        self.0
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| SlotTaken(self.0.clone()))
    }
}

impl Drop for SlotTaken {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::maintenance::tests::Dir;

    /// A WAL database with `rows` rows of 1 KiB, at schema version 7.
    fn database(path: &Path, rows: i64) -> Connection {
        let conn = Connection::open(path).unwrap();
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))
            .unwrap();
        conn.execute_batch(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB); PRAGMA user_version = 7;",
        )
        .unwrap();
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
             INSERT INTO t (v) SELECT randomblob(1024) FROM n",
            [rows],
        )
        .unwrap();
        conn
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_backup_is_a_verified_copy_with_its_report() {
        let dir = Dir::new("copy");
        let source = dir.0.join("fazt.db");
        let live = database(&source, 3000);
        let out = Dir::new("copy-out");
        let dest = out.0.join("copy.db");
        let report = backup(&source, &dest, false).unwrap();
        assert_eq!(report.path, dest);
        assert_eq!(report.schema_version, 7);
        assert_eq!(report.bytes, std::fs::metadata(&dest).unwrap().len());
        let copy = Connection::open(&dest).unwrap();
        let pages: i64 = copy
            .pragma_query_value(None, "page_count", |r| r.get(0))
            .unwrap();
        assert_eq!(report.pages, pages);
        let sum = |c: &Connection| -> (i64, i64) {
            c.query_row("SELECT count(*), sum(length(v)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap()
        };
        assert_eq!(sum(&copy), (3000, 3000 * 1024));
        assert_eq!(sum(&copy), sum(&live));
        let mode: String = copy
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete", "a self-contained file");
        drop(copy);
        // Only the copy is left: no temp file, no -wal or -shm of it.
        assert_eq!(names_in(&out.0), ["copy.db"]);
    }

    #[test]
    fn an_existing_destination_is_kept_unless_forced() {
        let dir = Dir::new("exists");
        let source = dir.0.join("fazt.db");
        let _live = database(&source, 10);
        let dest = dir.0.join("old.db");
        std::fs::write(&dest, b"an older backup").unwrap();
        match backup(&source, &dest, false) {
            Err(BackupError::Exists(path)) => assert_eq!(path, dest),
            other => panic!("expected Exists, got {other:?}"),
        }
        assert_eq!(std::fs::read(&dest).unwrap(), b"an older backup");
        let report = backup(&source, &dest, true).unwrap();
        assert_eq!(report.schema_version, 7);
        assert_ne!(std::fs::read(&dest).unwrap(), b"an older backup");
    }

    #[test]
    fn unusable_destinations_are_refused_before_copying() {
        let dir = Dir::new("invalid");
        let source = dir.0.join("fazt.db");
        let _live = database(&source, 1);
        let cases = [
            (PathBuf::from("relative.db"), "must be absolute"),
            (dir.0.join("no/such/dir/x.db"), "is not a directory"),
            (dir.0.clone(), "is a directory"),
            (source.clone(), "is the database itself"),
        ];
        for (dest, words) in cases {
            match backup(&source, &dest, true) {
                Err(e @ BackupError::Invalid(_)) => {
                    assert!(e.to_string().contains(words), "{e}");
                    assert_eq!(e.status(), 400);
                }
                other => panic!("{}: expected Invalid, got {other:?}", dest.display()),
            }
        }
        let missing = backup(&dir.0.join("none.db"), &dir.0.join("x.db"), false);
        assert!(matches!(missing, Err(BackupError::Invalid(_))));
        assert_eq!(names_in(&dir.0), ["fazt.db", "fazt.db-shm", "fazt.db-wal"]);
    }

    #[test]
    fn commits_during_the_backup_neither_restart_nor_tear_it() {
        let dir = Dir::new("online");
        let source = dir.0.join("fazt.db");
        drop(database(&source, 20_000));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (source, stop) = (source.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&source).unwrap();
                let mut commits = 0;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.execute("INSERT INTO t (v) VALUES (randomblob(1024))", [])
                        .unwrap();
                    commits += 1;
                }
                commits
            })
        };
        let dest = dir.0.join("copy.db");
        let report = backup(&source, &dest, false).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let commits = writer.join().unwrap();
        assert!(commits > 0, "the writer committed during the backup");
        let copy = Connection::open(&dest).unwrap();
        assert!(integrity_problems(&copy).unwrap().is_empty());
        let rows: i64 = copy
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert!(rows >= 20_000, "{rows}");
        assert!(report.pages > 20_000 / 4, "{}", report.pages);
    }

    #[test]
    fn one_backup_slot_at_a_time() {
        let slot = BackupSlot::default();
        let taken = slot.try_take().expect("free at first");
        assert!(slot.try_take().is_none(), "taken twice");
        drop(taken);
        assert!(slot.try_take().is_some(), "freed on drop");
    }
}
