//! `fazt db restore FILE`: replaces the data dir's database with a backup, with the server
//! stopped.
//!
//! Invariants:
//! - No server runs meanwhile: the restore holds the data-dir lock from start to end.
//! - The user's file is only read: it is copied into the data dir first, and the copy is
//!   checked (an SQLite file, `integrity_check`, a fazt schema this build knows) and
//!   migrated when older.
//! - Nothing changes until the copy is ready: a bad file leaves the current database as it
//!   was. Then the current database is checkpointed (its WAL emptied and removed, so it
//!   can never be replayed onto the restored file), kept as
//!   `fazt.db.before-restore-<UTC time>` by a hard link, and the copy is renamed over
//!   `fazt.db`. At every moment `fazt.db` is either the old database or the new one.

use super::backup::{integrity_problems, sync_dir, sync_file};
use crate::db::{self, Context, DbError};
use crate::platform::lock::DataDirLock;
use crate::platform::probe::Limits;
use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};

/// What a restore did.
#[derive(Debug)]
pub(crate) struct RestoreReport {
    /// The database restored over, as kept (`None` when the data dir had none).
    pub kept: Option<PathBuf>,
    /// The backup's schema version, and the version after migrating it.
    pub schema_from: i64,
    pub schema_to: i64,
    pub bytes: u64,
}

/// Restores `file` as the database of `data_dir` (created if new).
pub(crate) fn restore(
    file: &Path,
    data_dir: &Path,
    limits: &Limits,
) -> Result<RestoreReport, String> {
    if !file.is_file() {
        return Err(format!("{} is not a file", file.display()));
    }
    db::private_dir(data_dir).map_err(|e| e.to_string())?;
    let _lock = DataDirLock::acquire(data_dir)
        .map_err(|e| format!("cannot restore while a server runs: {e}"))?;
    let live = db::db_path(data_dir);
    let staged = Staged::copy_of(file, &live).map_err(|e| format!("{e}; nothing was changed"))?;
    let schema_from = check(&staged.path).map_err(|e| {
        format!(
            "{} cannot be restored: {e}; nothing was changed",
            file.display()
        )
    })?;
    let schema_to = prepare(&staged.path, limits).map_err(|e| {
        format!(
            "preparing {} failed: {e}; nothing was changed",
            file.display()
        )
    })?;
    let bytes = std::fs::metadata(&staged.path).map_or(0, |m| m.len());
    let kept = keep_current(&live)
        .map_err(|e| format!("keeping the current database failed: {e}; nothing was changed"))?;
    staged.swap_into(&live).map_err(|e| e.to_string())?;
    Ok(RestoreReport {
        kept,
        schema_from,
        schema_to,
        bytes,
    })
}

/// Checks the staged copy: SQLite, intact, and a fazt schema this build can run; returns
/// its schema version. Opening it this way writes nothing.
fn check(path: &Path) -> Result<i64, String> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| format!("cannot open it: {e}"))?;
    let problems = integrity_problems(&conn).map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) => "it is not an SQLite database".to_string(),
        _ => format!("it cannot be read: {e}"),
    })?;
    if !problems.is_empty() {
        return Err(format!(
            "it is corrupt (integrity_check: {})",
            problems.join("; ")
        ));
    }
    let version = db::migrate::schema_version(&conn).map_err(|e| e.to_string())?;
    let latest = db::migrate::latest_version();
    if version < 1 {
        return Err("it is not a fazt database (it has no schema version)".to_string());
    }
    if version > latest {
        return Err(format!(
            "it was written by a newer fazt (schema {version}, this build knows up to \
             {latest}); run the newer fazt, or restore a backup made by this version"
        ));
    }
    Ok(version)
}

/// Opens the copy as the server would (WAL, migrated to this build's schema), then closes
/// it with its WAL checkpointed into the file, and fsyncs it. Returns the schema version.
fn prepare(path: &Path, limits: &Limits) -> Result<i64, DbError> {
    let conn = db::open_and_migrate(path, limits)?;
    let version = db::migrate::schema_version(&conn)?;
    close_checkpointed(conn, path)?;
    sync_file(path)?;
    Ok(version)
}

/// Closes the only connection of `path` after a full checkpoint, and makes sure no WAL
/// remains beside it: a WAL left there would be replayed onto whatever file takes the name.
fn close_checkpointed(conn: Connection, path: &Path) -> Result<(), DbError> {
    let busy: i64 = conn
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
        .context(format!("checkpointing {}", path.display()))?;
    if busy != 0 {
        return Err(DbError::Internal(format!(
            "another process has {} open (a `fazt` command?); let it finish, then try again",
            path.display()
        )));
    }
    conn.close()
        .map_err(|(_, e)| e)
        .context(format!("closing {}", path.display()))?;
    for suffix in ["-wal", "-shm"] {
        let side = with_suffix(path, suffix);
        match std::fs::metadata(&side) {
            Ok(meta) if suffix == "-wal" && meta.len() > 0 => {
                return Err(DbError::Internal(format!(
                    "{} still holds changes after the checkpoint; is another process using it?",
                    side.display()
                )))
            }
            // An empty WAL, or the index of one, holds nothing of the database.
            Ok(_) => std::fs::remove_file(&side).context(format!("removing {}", side.display()))?,
            Err(_) => {}
        }
    }
    Ok(())
}

/// Keeps the current database (if any) as `fazt.db.before-restore-<UTC time>`, its WAL
/// checkpointed into it first. `fazt.db` stays in place (a hard link) until the swap.
fn keep_current(live: &Path) -> Result<Option<PathBuf>, DbError> {
    if !live.exists() {
        return Ok(None);
    }
    let conn = Connection::open_with_flags(
        live,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .context(format!("opening {}", live.display()))?;
    conn.busy_timeout(db::BUSY_TIMEOUT)
        .context("setting the busy timeout")?;
    close_checkpointed(conn, live)?;
    let kept = with_suffix(
        live,
        &format!(
            ".before-restore-{}",
            utc_stamp(crate::platform::clock::unix_now())
        ),
    );
    std::fs::hard_link(live, &kept).context(format!("keeping {}", kept.display()))?;
    Ok(Some(kept))
}

/// `20261203T133316Z`: sorts by time, and has no character a shell or a file system minds.
fn utc_stamp(unix: i64) -> String {
    let (y, m, d) = crate::http::response::civil_from_days(unix.div_euclid(86_400));
    let secs = unix.rem_euclid(86_400);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// The copy of the user's file in the data dir; removed with its side files unless it was
/// swapped in.
struct Staged {
    path: PathBuf,
}

impl Staged {
    /// Copies `file` (and its `-wal`, which may hold committed pages) beside `live`.
    fn copy_of(file: &Path, live: &Path) -> Result<Staged, DbError> {
        let staged = Staged {
            path: with_suffix(live, &format!(".restoring-{}", std::process::id())),
        };
        staged.remove();
        copy_private(file, &staged.path)?;
        let wal = with_suffix(file, "-wal");
        if wal.is_file() {
            copy_private(&wal, &with_suffix(&staged.path, "-wal"))?;
        }
        Ok(staged)
    }

    /// Renames the prepared copy over `live` and syncs the directory.
    fn swap_into(self, live: &Path) -> Result<(), DbError> {
        std::fs::rename(&self.path, live).context(format!(
            "renaming {} to {}",
            self.path.display(),
            live.display()
        ))?;
        sync_dir(live.parent().unwrap_or(Path::new("/")))
    }

    fn remove(&self) {
        let _ = std::fs::remove_file(&self.path);
        for suffix in ["-wal", "-shm", "-journal"] {
            let _ = std::fs::remove_file(with_suffix(&self.path, suffix));
        }
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        // After the swap the staged name is gone and only side files could remain.
        self.remove();
    }
}

/// Copies `from` to a new file `to` with mode 0600 (the database holds key hashes).
fn copy_private(from: &Path, to: &Path) -> Result<(), DbError> {
    use std::os::unix::fs::OpenOptionsExt;
    let what = || format!("copying {} to {}", from.display(), to.display());
    let mut source = std::fs::File::open(from).context(what())?;
    let mut target = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(to)
        .context(what())?;
    std::io::copy(&mut source, &mut target).context(what())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::maintenance::tests::Dir;

    fn limits(dir: &Path) -> Limits {
        crate::platform::probe::Report::system(dir).unwrap().limits
    }

    /// A fazt database in `dir` holding one API key row named `name`, committed to its
    /// WAL only (the connection stays open and never checkpoints).
    fn live_database(dir: &Path, name: &str) -> Connection {
        let conn = db::open_and_migrate(&db::db_path(dir), &limits(dir)).unwrap();
        conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
        crate::keys::create(&conn, name, &crate::keys::Scopes::owner()).unwrap();
        conn
    }

    fn key_names(path: &Path) -> Vec<String> {
        let conn = Connection::open(path).unwrap();
        let mut stmt = conn
            .prepare("SELECT name FROM api_keys ORDER BY name")
            .unwrap();
        let names = stmt.query_map([], |r| r.get(0)).unwrap();
        names.map(Result::unwrap).collect()
    }

    #[test]
    fn a_copy_taken_with_its_wal_restores_what_the_wal_holds() {
        let source = Dir::new("wal-source");
        let live = live_database(&source.0, "in-the-wal");
        let wal = with_suffix(&db::db_path(&source.0), "-wal");
        assert!(
            std::fs::metadata(&wal).unwrap().len() > 0,
            "the row is in the WAL"
        );
        // What `cp fazt.db fazt.db-wal` of a running server's dir gives.
        let copied = Dir::new("wal-copied");
        let file = copied.0.join("copy.db");
        std::fs::copy(db::db_path(&source.0), &file).unwrap();
        std::fs::copy(&wal, with_suffix(&file, "-wal")).unwrap();
        drop(live);

        let data = Dir::new("wal-data");
        let done = restore(&file, &data.0, &limits(&data.0)).unwrap();
        assert!(done.kept.is_none());
        assert_eq!(done.schema_to, db::migrate::latest_version());
        assert_eq!(key_names(&db::db_path(&data.0)), ["in-the-wal"]);
        assert!(!with_suffix(&db::db_path(&data.0), "-wal").exists());
    }

    #[test]
    fn a_held_lock_refuses_the_restore_and_changes_nothing() {
        let data = Dir::new("locked");
        drop(live_database(&data.0, "current"));
        let other = Dir::new("locked-file");
        drop(live_database(&other.0, "backup"));
        let before = std::fs::read(db::db_path(&data.0)).unwrap();
        let server = DataDirLock::acquire(&data.0).unwrap();
        let err = restore(&db::db_path(&other.0), &data.0, &limits(&data.0)).unwrap_err();
        assert!(err.contains("cannot restore while a server runs"), "{err}");
        assert_eq!(std::fs::read(db::db_path(&data.0)).unwrap(), before);
        drop(server);
        let done = restore(&db::db_path(&other.0), &data.0, &limits(&data.0)).unwrap();
        let kept = done.kept.expect("the current database is kept");
        assert_eq!(key_names(&kept), ["current"]);
        assert_eq!(key_names(&db::db_path(&data.0)), ["backup"]);
    }

    #[test]
    fn stamps_are_utc_and_sortable() {
        assert_eq!(utc_stamp(0), "19700101T000000Z");
        // 2026-12-03 13:33:16 UTC.
        assert_eq!(utc_stamp(1_796_304_796), "20261203T133316Z");
    }
}
