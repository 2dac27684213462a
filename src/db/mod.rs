//! SQLite connections, migrations and the single writer (DESIGN §1, §3, D2).
//!
//! Invariants of this module:
//! - Exactly one connection writes: the one [`open_and_migrate`] returns, which is handed to
//!   [`writer::spawn`] and lives on the `fazt-writer` thread. Every other connection comes
//!   from [`open_read`] (`SQLITE_OPEN_READ_ONLY`), one per thread, never shared.
//! - Only [`migrate::run`] changes the schema, one transaction per migration. A database
//!   written by a newer fazt is refused before a single byte of it is written.
//! - Order at start: [`open_and_migrate`] → [`writer::spawn`] → [`open_read`] on each thread
//!   (readers need the file to exist and already be in WAL mode). Order at shutdown: drop the
//!   readers, then [`writer::WriterHandle::stop`] and [`writer::WriterThread::join`], so the
//!   final checkpoint can empty the WAL.

pub mod events;
pub mod migrate;
pub(crate) mod reader;
pub mod writer;

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};

use crate::http::error::io_status;
use crate::http::ResponseError;
use crate::platform::disk::DiskError;
use crate::platform::probe::Limits;
use crate::platform::reserve::Reserve;

/// The database file inside the data directory.
pub const DB_FILE: &str = "fazt.db";

/// How long a connection waits for a lock before giving up. With one writer and WAL
/// readers, waits are rare (WAL recovery, the final checkpoint); 5 s rides them out
/// without hanging a thread on a wedged database.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The path of the database in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Everything that can go wrong in the data layer. Its [`ResponseError`] impl is the one
/// place these map to HTTP statuses.
#[derive(Debug)]
pub enum DbError {
    /// An SQLite call failed; `context` says what was being done.
    Sqlite {
        context: String,
        source: rusqlite::Error,
    },
    /// A filesystem call failed; `context` says what was being done.
    Io { context: String, source: io::Error },
    /// The database's `user_version` is newer than the newest migration of this build.
    NewerSchema { found: i64, supported: i64 },
    /// The writer's queue is full: shed the request (503 + Retry-After).
    QueueFull,
    /// The writer has stopped (shutdown): the write was not done.
    WriterStopped,
    /// The disk breaker refused a bulk write (the filesystem is at or above its
    /// threshold), or could not inspect the filesystem.
    Disk(DiskError),
    /// A write job (or the writer thread itself) panicked. Its transaction was rolled back.
    Panicked { what: &'static str },
    /// Anything else that is our fault or the environment's, explained in full.
    Internal(String),
}

impl ResponseError for DbError {
    fn status(&self) -> u16 {
        match self {
            DbError::QueueFull | DbError::WriterStopped => 503,
            DbError::Disk(e) => e.status(),
            // The disk filled up under SQLite before the breaker saw it: still "no space".
            DbError::Sqlite { source, .. } if sqlite_disk_full(source) => 507,
            DbError::Io { source, .. } => io_status(source).0,
            DbError::Sqlite { .. }
            | DbError::NewerSchema { .. }
            | DbError::Panicked { .. }
            | DbError::Internal(_) => 500,
        }
    }

    fn retry_after_secs(&self) -> Option<u32> {
        match self {
            DbError::QueueFull => Some(1),
            // A shutdown takes seconds; the restarted server takes the write.
            DbError::WriterStopped => Some(10),
            _ => None,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            DbError::Sqlite { source, .. } if sqlite_disk_full(source) => "disk_full",
            DbError::Sqlite { .. } => "database_error",
            DbError::Io { source, .. } => io_status(source).1,
            DbError::NewerSchema { .. } => "newer_schema",
            DbError::QueueFull => "writer_queue_full",
            DbError::WriterStopped => "writer_stopped",
            DbError::Disk(e) => e.code(),
            DbError::Panicked { .. } | DbError::Internal(_) => "internal_error",
        }
    }
}

impl DbError {
    /// The write failed for lack of disk space (SQLITE_FULL, ENOSPC, EDQUOT): deleting the
    /// disk reserve and trying again can make it succeed.
    pub fn is_out_of_space(&self) -> bool {
        match self {
            DbError::Sqlite { source, .. } => sqlite_disk_full(source),
            DbError::Io { source, .. } => io_status(source).1 == "disk_full",
            _ => false,
        }
    }

    /// The database cannot take writes now (out of space, or the disk failing an I/O):
    /// analytics stop acknowledging events until a commit succeeds again.
    pub fn is_unwritable(&self) -> bool {
        self.is_out_of_space()
            || matches!(self, DbError::Sqlite { source, .. }
                if matches!(source.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::SystemIoFailure | rusqlite::ErrorCode::ReadOnly)))
    }
}

/// SQLITE_FULL: a write could not grow the database or its journal.
fn sqlite_disk_full(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

impl From<DiskError> for DbError {
    fn from(e: DiskError) -> DbError {
        DbError::Disk(e)
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DbError::Sqlite { context, source } if context.is_empty() => {
                write!(f, "database error: {source}")
            }
            DbError::Sqlite { context, source } => write!(f, "{context}: {source}"),
            DbError::Io { context, source } => write!(f, "{context}: {source}"),
            DbError::NewerSchema { found, supported } => write!(
                f,
                "the database was written by a newer fazt (schema {found}, this build knows up \
                 to {supported}); refusing to modify it. Run the newer fazt, or restore a backup \
                 made by this version"
            ),
            DbError::QueueFull => write!(
                f,
                "the database writer is busy (its queue is full); try again in a moment"
            ),
            DbError::WriterStopped => write!(
                f,
                "the database writer has stopped (fazt is shutting down); the write was not done"
            ),
            DbError::Disk(e) => e.fmt(f),
            DbError::Panicked { what } => {
                write!(f, "{what} panicked; nothing it started was committed")
            }
            DbError::Internal(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for DbError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DbError::Sqlite { source, .. } => Some(source),
            DbError::Io { source, .. } => Some(source),
            DbError::Disk(e) => e.source(),
            _ => None,
        }
    }
}

/// Lets write jobs use `?` on rusqlite calls; prefer [`Context::context`] where the
/// operation is worth naming.
impl From<rusqlite::Error> for DbError {
    fn from(source: rusqlite::Error) -> DbError {
        DbError::Sqlite {
            context: String::new(),
            source,
        }
    }
}

/// Attaches what was being done to an SQLite or I/O error.
pub trait Context<T> {
    fn context(self, what: impl Into<String>) -> Result<T, DbError>;
}

impl<T> Context<T> for Result<T, rusqlite::Error> {
    fn context(self, what: impl Into<String>) -> Result<T, DbError> {
        self.map_err(|source| DbError::Sqlite {
            context: what.into(),
            source,
        })
    }
}

impl<T> Context<T> for io::Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T, DbError> {
        self.map_err(|source| DbError::Io {
            context: what.into(),
            source,
        })
    }
}

/// Opens the write connection. Refuses a database from a newer fazt before writing
/// anything, chooses incremental auto-vacuum on a brand-new file (it must precede WAL,
/// which writes the header), then switches to WAL and applies the per-connection pragmas.
/// Prefer [`open_and_migrate`], which also brings the schema up to date.
pub fn open_write(path: &Path, limits: &Limits) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)
        .context(format!("opening {} for writing", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .context("setting the busy timeout")?;
    migrate::refuse_newer(&conn)?;
    migrate::prepare_new(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .context(format!("switching {} to WAL mode", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Internal(format!(
            "could not switch {} to WAL mode (SQLite kept '{mode}'); fazt needs WAL so that \
             readers never block the writer. Is the data directory on a network filesystem?",
            path.display()
        )));
    }
    apply_pragmas(&conn, limits)?;
    // Without a limit the WAL keeps the size of its largest transaction (a big deploy)
    // until shutdown; with one, SQLite truncates it to this size when a write restarts it
    // after a complete checkpoint.
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)
        .context("setting journal_size_limit")?;
    Ok(conn)
}

/// The size the WAL shrinks back to: 8 MiB is above one auto-checkpoint cycle (1,000 pages
/// of 4 KiB plus frame headers, about 4.1 MB), so steady writes never shrink and regrow the
/// file, while a deploy's peak of tens or hundreds of MB is given back.
pub const WAL_SIZE_LIMIT: i64 = 8 * 1024 * 1024;

/// Opens a read-only connection for one thread. The database must already exist and be
/// in WAL mode, i.e. [`open_and_migrate`] has run.
pub fn open_read(path: &Path, limits: &Limits) -> Result<Connection, DbError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).context(format!(
        "opening {} for reading (the writer must create it first)",
        path.display()
    ))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .context("setting the busy timeout")?;
    let mode: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .context(format!("reading the journal mode of {}", path.display()))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(DbError::Internal(format!(
            "{} is not in WAL mode ('{mode}'); open it for writing (open_and_migrate) before \
             opening readers",
            path.display()
        )));
    }
    apply_pragmas(&conn, limits)?;
    Ok(conn)
}

/// Creates the data directory if needed, opens the write connection and migrates the
/// schema to the newest version this build knows. The result is the connection to hand to
/// [`writer::spawn`].
pub fn open_and_migrate(path: &Path, limits: &Limits) -> Result<Connection, DbError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        private_dir(parent)?;
    }
    create_private(path)?;
    let mut conn = open_write(path, limits)?;
    // SQLite gives a new WAL and SHM its database's mode; ones left by an older fazt keep
    // theirs until changed. (Only a chmod by path here: closing another descriptor of an
    // open database would drop this process's POSIX locks on it.)
    private_modes(path)?;
    migrate::run(&mut conn)?;
    Ok(conn)
}

/// Creates `dir` (and its parents) if needed and makes it `0700`: the database, its
/// uploads and the lock are the owner's alone, whatever the umask.
pub fn private_dir(dir: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .context(format!("creating the directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .context(format!("making {} private (mode 0700)", dir.display()))
}

/// Creates the database file `0600` if it is new (SQLite would create it `0644`), before
/// SQLite opens it in this process.
fn create_private(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.exists() {
        return Ok(());
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .context(format!("creating {}", path.display()))?;
    Ok(())
}

/// Makes the database, its WAL and its SHM `0600`: they hold the key hashes and visitor
/// data.
fn private_modes(path: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::PermissionsExt;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if file.exists() {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))
                .context(format!("making {} private (mode 0600)", file.display()))?;
        }
    }
    Ok(())
}

/// Returns free pages to the filesystem (the schema uses incremental auto-vacuum), at most
/// `max_pages` of them (`None`: all), and reports the bytes freed. Run it as a writer job;
/// a bounded `max_pages` keeps one call from holding the writer for long.
pub fn incremental_vacuum(conn: &Connection, max_pages: Option<u64>) -> Result<u64, DbError> {
    let int = |name: &str| -> Result<i64, DbError> {
        conn.pragma_query_value(None, name, |row| row.get(0))
            .context(format!("reading {name}"))
    };
    let before = int("freelist_count")?;
    let sql = match max_pages {
        Some(n) => format!("PRAGMA incremental_vacuum({n})"),
        None => "PRAGMA incremental_vacuum".to_string(),
    };
    let mut stmt = conn.prepare(&sql).context("preparing incremental_vacuum")?;
    let mut rows = stmt.query([]).context("running incremental_vacuum")?;
    // The pragma frees one page per step (each returns a row): a single step, as
    // `execute_batch` does, would free just one page.
    while rows.next().context("running incremental_vacuum")?.is_some() {}
    drop(rows);
    drop(stmt);
    let freed_pages = before.saturating_sub(int("freelist_count")?).max(0);
    let page_size = int("page_size")?;
    Ok(u64::try_from(freed_pages.saturating_mul(page_size)).unwrap_or(0))
}

/// Pages per step of [`reclaim_space`]: each step's relocated pages pass through the WAL,
/// which is emptied between steps, so a full disk needs only this much room (4 MiB at the
/// default 4 KiB pages, inside the disk reserve).
const RECLAIM_STEP_PAGES: u64 = 1024;

/// Runs `op` (one or more transactions of its own); when it fails for lack of space,
/// deletes the disk reserve and runs it once more in the room that leaves. For the writes
/// that free space (site deletion, `db prune`, vacuum), which must work on a full disk.
pub fn with_room<T>(
    conn: &mut Connection,
    reserve: Option<&Reserve>,
    mut op: impl FnMut(&mut Connection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    match op(conn) {
        Err(e) if e.is_out_of_space() && reserve.is_some_and(Reserve::release) => {
            log::info!("retrying after releasing the disk reserve: {e}");
            op(conn)
        }
        result => result,
    }
}

/// Gives the database's free pages back to the filesystem on any fill level: checkpoints
/// (so the WAL holds nothing the file needs), then runs `incremental_vacuum` in steps of
/// [`RECLAIM_STEP_PAGES`], checkpointing after each, so the WAL never grows past one step.
/// Then re-creates the disk reserve if there is room again. Returns the bytes given back.
pub fn reclaim_space(conn: &mut Connection, reserve: Option<&Reserve>) -> Result<u64, DbError> {
    checkpoint_truncate(conn);
    let free_pages: i64 = conn
        .pragma_query_value(None, "freelist_count", |row| row.get(0))
        .context("reading freelist_count")?;
    // Each step frees up to a step's pages; two extra steps cover pages freed meanwhile.
    let steps = u64::try_from(free_pages).unwrap_or(0) / RECLAIM_STEP_PAGES + 2;
    let mut freed = 0;
    for _ in 0..steps {
        let step = with_room(conn, reserve, |conn| {
            incremental_vacuum(conn, Some(RECLAIM_STEP_PAGES))
        })?;
        checkpoint_truncate(conn);
        freed += step;
        if step == 0 {
            break;
        }
    }
    if let Some(reserve) = reserve {
        reserve.ensure();
    }
    Ok(freed)
}

/// Leaves WAL checkpoints to a replicator (Litestream, `FAZT_EXTERNAL_CHECKPOINTS`), which
/// must see every frame before it goes into the database: no automatic checkpoints on this
/// connection, none when it closes (SQLite would otherwise checkpoint and delete the WAL
/// when the last connection closes), and fazt's own are skipped ([`checkpoints_are_external`]).
pub fn leave_checkpoints_to_replicator(conn: &Connection) -> Result<(), DbError> {
    conn.pragma_update(None, "wal_autocheckpoint", 0)
        .context("turning off automatic checkpoints")?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)
        .context("turning off the checkpoint on close")?;
    Ok(())
}

/// Whether this connection leaves checkpoints to a replicator: fazt turns automatic ones off
/// only for that, so the connection itself says so (one place, every caller).
pub(crate) fn checkpoints_are_external(conn: &Connection) -> bool {
    conn.pragma_query_value(None, "wal_autocheckpoint", |row| row.get::<_, i64>(0))
        .is_ok_and(|pages| pages <= 0)
}

/// Copies the WAL into the database and truncates it, best effort: a reader in the middle
/// of a read keeps its frames (logged at debug), and the next checkpoint takes them. Not
/// when a replicator owns the checkpoints.
pub(crate) fn checkpoint_truncate(conn: &Connection) {
    if checkpoints_are_external(conn) {
        return;
    }
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    match result {
        Ok(0) => {}
        Ok(_) => log::debug!("checkpoint incomplete: a reader holds the WAL"),
        Err(e) => log::warn!("checkpointing the WAL: {e}"),
    }
}

/// The pragmas every connection gets. All of them are per-connection settings and write
/// nothing to the file.
fn apply_pragmas(conn: &Connection, limits: &Limits) -> Result<(), DbError> {
    // NORMAL in WAL mode fsyncs at checkpoints, not at every commit: a power loss can lose
    // the last commits but never corrupts the database.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .context("setting synchronous=NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .context("enabling foreign keys")?;
    // Temporary tables and sort spills go to files, never RAM (the memory budget is small).
    conn.pragma_update(None, "temp_store", "FILE")
        .context("setting temp_store=FILE")?;
    conn.pragma_update(
        None,
        "cache_size",
        cache_size_pragma(limits.sqlite_cache_bytes),
    )
    .context("setting cache_size")?;
    let mmap = i64::try_from(limits.sqlite_mmap_bytes).unwrap_or(i64::MAX);
    conn.pragma_update(None, "mmap_size", mmap)
        .context("setting mmap_size")?;
    Ok(())
}

/// `cache_size` takes KiB when negative; at least 1 KiB so a tiny limit never means
/// "default" (0).
fn cache_size_pragma(bytes: u64) -> i64 {
    -i64::try_from((bytes / 1024).max(1)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite_error(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    fn full_disk() -> DbError {
        DbError::from(DiskError::Full {
            path: "/data".into(),
            used_percent: 95,
            threshold: 90,
        })
    }

    #[test]
    fn statuses_codes_and_retry_after_are_mapped_in_one_place() {
        let io = |errno| DbError::Io {
            context: "x".into(),
            source: io::Error::from_raw_os_error(errno),
        };
        let sqlite = |code| DbError::Sqlite {
            context: "x".into(),
            source: sqlite_error(code),
        };
        let cases: Vec<(DbError, u16, &str, Option<u32>)> = vec![
            (
                sqlite(rusqlite::ffi::SQLITE_CORRUPT),
                500,
                "database_error",
                None,
            ),
            (sqlite(rusqlite::ffi::SQLITE_FULL), 507, "disk_full", None),
            (io(libc::EIO), 500, "io_error", None),
            (io(libc::ENOSPC), 507, "disk_full", None),
            (io(libc::EDQUOT), 507, "disk_full", None),
            (io(libc::EFBIG), 500, "io_error", None),
            (
                DbError::NewerSchema {
                    found: 3,
                    supported: 1,
                },
                500,
                "newer_schema",
                None,
            ),
            (DbError::QueueFull, 503, "writer_queue_full", Some(1)),
            (DbError::WriterStopped, 503, "writer_stopped", Some(10)),
            (full_disk(), 507, "disk_full", None),
            (
                DbError::from(DiskError::Unreadable {
                    path: "/data".into(),
                    source: io::Error::from_raw_os_error(libc::EACCES),
                }),
                500,
                "io_error",
                None,
            ),
            (
                DbError::Panicked { what: "a job" },
                500,
                "internal_error",
                None,
            ),
            (DbError::Internal("x".into()), 500, "internal_error", None),
        ];
        for (error, status, code, retry) in cases {
            assert_eq!(error.status(), status, "{error}");
            assert_eq!(error.code(), code, "{error}");
            assert_eq!(error.retry_after_secs(), retry, "{error}");
            assert!(!error.to_string().is_empty());
            let response = crate::http::error_response(&error);
            assert_eq!(response.status, status);
            let retry_header = response.get_header("Retry-After").map(str::to_string);
            assert_eq!(retry_header, retry.map(|s| s.to_string()), "{error}");
            let body: serde_json::Value =
                serde_json::from_slice(response.body.as_bytes()).expect("JSON");
            assert_eq!(body["error"]["code"], code);
            assert_eq!(body["error"]["message"], error.to_string());
        }
    }

    #[test]
    fn messages_are_clear() {
        let newer = DbError::NewerSchema {
            found: 3,
            supported: 1,
        };
        assert!(newer
            .to_string()
            .starts_with("the database was written by a newer fazt (schema 3, this build knows up to 1); refusing to modify it"));
        let full = full_disk();
        assert!(full.to_string().contains("/data is 95% full"), "{full}");
        let ctx: Result<(), DbError> =
            Err(sqlite_error(rusqlite::ffi::SQLITE_CORRUPT)).context("reading site foo");
        let message = ctx.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.starts_with("reading site foo: "), "{message}");
        let bare = DbError::from(sqlite_error(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(bare.to_string().starts_with("database error: "), "{bare}");
    }

    #[test]
    fn cache_size_is_negative_kib() {
        assert_eq!(cache_size_pragma(2 * 1024 * 1024), -2048);
        assert_eq!(cache_size_pragma(0), -1);
        assert_eq!(cache_size_pragma(1500), -1);
    }

    #[test]
    fn db_path_is_in_the_data_dir() {
        assert_eq!(
            db_path(Path::new("/var/lib/fazt")),
            PathBuf::from("/var/lib/fazt/fazt.db")
        );
    }
}
