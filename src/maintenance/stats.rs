//! `fazt db stats`: where the bytes of the database go, read on a read-only connection.
//!
//! Sizes by table and index come from SQLite's `dbstat` virtual table, which the bundled
//! SQLite is built with (`SQLITE_ENABLE_DBSTAT_VTAB` in libsqlite3-sys's bundled build).
//! Should a build lack it, the rest of the report still comes and says the sizes are
//! missing rather than failing.

use crate::db::{Context, DbError};
use crate::platform::units::format_bytes;
use rusqlite::Connection;
use std::path::Path;

/// One table or index: its pages and their bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ObjectSize {
    pub name: String,
    /// "table" or "index".
    pub kind: String,
    /// The table an index belongs to (the table itself for a table).
    pub table: String,
    pub pages: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DbStats {
    pub page_size: u64,
    pub page_count: u64,
    pub free_pages: u64,
    pub file_bytes: u64,
    pub wal_bytes: u64,
    /// Largest first; empty when `dbstat` is missing (then `sizes_unavailable` says why).
    pub objects: Vec<ObjectSize>,
    pub sizes_unavailable: Option<String>,
    pub sites: u64,
    pub deployments: u64,
    pub files: u64,
    pub blobs: u64,
    pub blob_bytes: u64,
    pub events: u64,
}

/// Collects the statistics of the database at `path` through `conn` (a read connection).
pub(crate) fn collect(conn: &Connection, path: &Path) -> Result<DbStats, DbError> {
    let pragma = |name: &str| -> Result<u64, DbError> {
        let v: i64 = conn
            .pragma_query_value(None, name, |r| r.get(0))
            .context(format!("reading {name}"))?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    let count = |sql: &str| -> Result<u64, DbError> {
        let v: i64 = conn
            .query_row(sql, [], |r| r.get(0))
            .context(sql.to_string())?;
        Ok(u64::try_from(v).unwrap_or(0))
    };
    let file_size = |suffix: &str| -> u64 {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        // A WAL that is not there (after a clean shutdown) holds nothing.
        std::fs::metadata(name).map(|m| m.len()).unwrap_or(0)
    };
    let (objects, sizes_unavailable) = match object_sizes(conn) {
        Ok(objects) => (objects, None),
        Err(e) => (
            Vec::new(),
            Some(format!("sizes by table need SQLite's dbstat: {e}")),
        ),
    };
    Ok(DbStats {
        page_size: pragma("page_size")?,
        page_count: pragma("page_count")?,
        free_pages: pragma("freelist_count")?,
        file_bytes: file_size(""),
        wal_bytes: file_size("-wal"),
        objects,
        sizes_unavailable,
        sites: count("SELECT count(*) FROM sites")?,
        deployments: count("SELECT count(*) FROM deployments")?,
        files: count("SELECT count(*) FROM files")?,
        blobs: count("SELECT count(*) FROM blobs")?,
        blob_bytes: count("SELECT coalesce(sum(size), 0) FROM blobs")?,
        events: count("SELECT count(*) FROM events")?,
    })
}

/// Pages and bytes of every b-tree, largest first (`aggregate`: one row per b-tree, its
/// `pageno` the page count and `pgsize` the bytes).
fn object_sizes(conn: &Connection) -> rusqlite::Result<Vec<ObjectSize>> {
    let mut stmt = conn.prepare(
        "SELECT d.name, coalesce(m.type, 'table'), coalesce(m.tbl_name, d.name),
                d.pageno, d.pgsize
         FROM dbstat AS d LEFT JOIN sqlite_schema AS m ON m.name = d.name
         WHERE d.aggregate = TRUE ORDER BY d.pgsize DESC, d.name",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(ObjectSize {
            name: r.get(0)?,
            kind: r.get(1)?,
            table: r.get(2)?,
            pages: r.get::<_, i64>(3)?.max(0) as u64,
            bytes: r.get::<_, i64>(4)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

impl DbStats {
    pub fn to_json(&self) -> serde_json::Value {
        let objects: Vec<_> = self
            .objects
            .iter()
            .map(|o| {
                serde_json::json!({"name": o.name, "type": o.kind, "table": o.table,
                    "pages": o.pages, "bytes": o.bytes})
            })
            .collect();
        serde_json::json!({
            "page_size": self.page_size,
            "page_count": self.page_count,
            "free_pages": self.free_pages,
            "free_bytes": self.free_pages * self.page_size,
            "file_bytes": self.file_bytes,
            "wal_bytes": self.wal_bytes,
            "objects": objects,
            "sizes_unavailable": self.sizes_unavailable,
            "sites": self.sites,
            "deployments": self.deployments,
            "files": self.files,
            "blobs": {"count": self.blobs, "bytes": self.blob_bytes},
            "events": self.events,
        })
    }

    pub fn to_text(&self) -> String {
        let mut out = format!(
            "file        {} ({} pages of {} B), WAL {}\n\
             free        {} ({} pages)\n\
             sites       {}\ndeployments {}\nfiles       {}\n\
             blobs       {} ({})\nevents      {}\n\n",
            format_bytes(self.file_bytes),
            self.page_count,
            self.page_size,
            format_bytes(self.wal_bytes),
            format_bytes(self.free_pages * self.page_size),
            self.free_pages,
            self.sites,
            self.deployments,
            self.files,
            self.blobs,
            format_bytes(self.blob_bytes),
            self.events,
        );
        if let Some(why) = &self.sizes_unavailable {
            out.push_str(&format!("(no sizes by table: {why})\n"));
            return out;
        }
        // (The client's table aligner is above this layer; five columns are aligned here.)
        let width = |f: &dyn Fn(&ObjectSize) -> usize, title: &str| {
            self.objects
                .iter()
                .map(f)
                .max()
                .unwrap_or(0)
                .max(title.len())
        };
        let name_w = width(&|o| o.name.len(), "NAME");
        let table_w = width(&|o| o.table.len(), "TABLE");
        out.push_str(&format!(
            "{:<name_w$}  {:<5}  {:<table_w$}  {:>8}  SIZE\n",
            "NAME", "TYPE", "TABLE", "PAGES"
        ));
        for o in &self.objects {
            out.push_str(&format!(
                "{:<name_w$}  {:<5}  {:<table_w$}  {:>8}  {}\n",
                o.name,
                o.kind,
                o.table,
                o.pages,
                format_bytes(o.bytes)
            ));
        }
        out
    }
}
