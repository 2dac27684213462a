//! `fazt db vacuum`: giving the database's free pages back to the filesystem.
//!
//! Incremental (the default) is what `auto_vacuum = INCREMENTAL` allows: free pages at the
//! end of the file are dropped, in steps that keep the WAL small ([`crate::db::reclaim_space`]),
//! on a write connection of its own beside a running server (SQLite serialises the writes).
//! Full rewrites the whole file with `VACUUM`, which also defragments, but holds the write
//! lock for as long as the rewrite takes and needs room for a second copy: the caller must
//! hold the data-dir lock, so no server is running.

use crate::db::{checkpoint_truncate, Context, DbError};
use crate::platform::reserve::Reserve;
use rusqlite::Connection;
use std::path::Path;

/// The database before and after a vacuum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VacuumOutcome {
    pub full: bool,
    pub page_size: u64,
    pub free_pages_before: u64,
    pub free_pages_after: u64,
    /// The database file (without its WAL), in bytes.
    pub file_before: u64,
    pub file_after: u64,
}

impl VacuumOutcome {
    /// What the filesystem got back: the file's shrinkage, or the pages freed when a
    /// reader kept the checkpoint from shrinking the file yet.
    pub fn bytes_returned(self) -> u64 {
        let freed_pages = self.free_pages_before.saturating_sub(self.free_pages_after);
        self.file_before
            .saturating_sub(self.file_after)
            .max(freed_pages * self.page_size)
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "mode": if self.full { "full" } else { "incremental" },
            "bytes_returned": self.bytes_returned(),
            "file_bytes_before": self.file_before,
            "file_bytes_after": self.file_after,
            "free_pages_before": self.free_pages_before,
            "free_pages_after": self.free_pages_after,
            "page_size": self.page_size,
        })
    }

    pub fn to_text(self) -> String {
        let bytes = crate::platform::units::format_bytes;
        format!(
            "{} vacuum returned {} ({} bytes): file {} -> {}, free pages {} -> {}\n",
            if self.full { "full" } else { "incremental" },
            bytes(self.bytes_returned()),
            self.bytes_returned(),
            bytes(self.file_before),
            bytes(self.file_after),
            self.free_pages_before,
            self.free_pages_after
        )
    }
}

/// Frees what incremental auto-vacuum can, on the write connection `conn` of the database
/// at `path`. `reserve`: released if the disk is too full even for that.
pub(crate) fn incremental(
    conn: &mut Connection,
    path: &Path,
    reserve: Option<&Reserve>,
) -> Result<VacuumOutcome, DbError> {
    let (page_size, free_pages_before, file_before) = measure(conn, path)?;
    crate::db::reclaim_space(conn, reserve)?;
    let (_, free_pages_after, file_after) = measure(conn, path)?;
    Ok(VacuumOutcome {
        full: false,
        page_size,
        free_pages_before,
        free_pages_after,
        file_before,
        file_after,
    })
}

/// Rewrites the whole file. Only with the data-dir lock held (no server running): a
/// `VACUUM` holds the write lock until it ends and needs room for a copy of the database.
pub(crate) fn full(conn: &Connection, path: &Path) -> Result<VacuumOutcome, DbError> {
    checkpoint_truncate(conn);
    let (page_size, free_pages_before, file_before) = measure(conn, path)?;
    conn.execute_batch("VACUUM")
        .context(format!("rewriting {} (VACUUM)", path.display()))?;
    // The rewritten pages are in the WAL until a checkpoint copies them into the file.
    checkpoint_truncate(conn);
    let (_, free_pages_after, file_after) = measure(conn, path)?;
    Ok(VacuumOutcome {
        full: true,
        page_size,
        free_pages_before,
        free_pages_after,
        file_before,
        file_after,
    })
}

/// (page size, free pages, file bytes).
fn measure(conn: &Connection, path: &Path) -> Result<(u64, u64, u64), DbError> {
    let int = |name: &str| -> Result<u64, DbError> {
        let v: i64 = conn
            .pragma_query_value(None, name, |row| row.get(0))
            .context(format!("reading {name}"))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    let file = std::fs::metadata(path)
        .context(format!("reading the size of {}", path.display()))?
        .len();
    Ok((int("page_size")?, int("freelist_count")?, file))
}
