//! The store: sites, immutable deployments, files and content-addressed blobs in SQLite.
//!
//! Invariants:
//! - a deployment and its files are written once and never changed; a site's current
//!   deployment is a pointer flipped in the same transaction that wrote the deployment,
//!   so a reader resolving one deployment id sees one whole deployment;
//! - blobs are keyed by the sha-256 of their bytes and shared by every file that has
//!   them; their bytes live in `CHUNK_SIZE` chunks, read one statement per chunk;
//! - reads go through the calling thread's own read-only connection (`install_reader`);
//!   all writes are made by whoever holds the one write connection (the writer thread in
//!   the server, or a CLI command on its own connection).

use crate::http::response::BodyStream;
use crate::platform::clock::unix_now;
use parking_lot::RwLock;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Bytes per stored chunk: a streamed response holds one chunk at a time.
pub const CHUNK_SIZE: usize = 128 * 1024;

/// A file of a deployment, as stored.
#[derive(Clone, Debug)]
pub struct FileRow {
    pub sha256: [u8; 32],
    pub size: u64,
    pub mime: String,
}

pub fn find_file(
    conn: &Connection,
    deployment: i64,
    path: &str,
) -> rusqlite::Result<Option<FileRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, size, mime FROM files WHERE deployment = ?1 AND path = ?2",
    )?;
    stmt.query_row(params![deployment, path], |row| {
        Ok(FileRow {
            sha256: row.get(0)?,
            size: row.get::<_, i64>(1)? as u64,
            mime: row.get(2)?,
        })
    })
    .optional()
}

/// Reads a whole blob (for files small enough to cache).
pub fn read_blob(conn: &Connection, sha256: &[u8; 32], size: u64) -> rusqlite::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size as usize);
    let mut stmt =
        conn.prepare_cached("SELECT data FROM blob_chunks WHERE sha256 = ?1 ORDER BY seq")?;
    let mut rows = stmt.query(params![&sha256[..]])?;
    while let Some(row) = rows.next()? {
        out.extend_from_slice(row.get_ref(0)?.as_blob()?);
    }
    if out.len() as u64 != size {
        return Err(corrupt(format!(
            "blob {} has {} bytes, expected {size}",
            crate::keys::hex(sha256),
            out.len()
        )));
    }
    Ok(out)
}

fn corrupt(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(message),
    )
}

/// Streams part of a blob chunk by chunk through the thread's read connection. Each
/// chunk is its own statement, so no read transaction spans the response.
#[derive(Debug)]
pub struct BlobStream {
    sha256: [u8; 32],
    next_seq: i64,
    /// Bytes to skip at the start of the next chunk (a range starting mid-chunk).
    skip: usize,
    remaining: u64,
}

impl BlobStream {
    pub fn new(sha256: [u8; 32], start: u64, len: u64) -> BlobStream {
        BlobStream {
            sha256,
            next_seq: (start / CHUNK_SIZE as u64) as i64,
            skip: (start % CHUNK_SIZE as u64) as usize,
            remaining: len,
        }
    }
}

impl BodyStream for BlobStream {
    fn remaining(&self) -> u64 {
        self.remaining
    }

    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let chunk: Option<Vec<u8>> = crate::db::reader::with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM blob_chunks WHERE sha256 = ?1 AND seq = ?2")?;
            stmt.query_row(params![&self.sha256[..], self.next_seq], |row| row.get(0))
                .optional()
        })
        .map_err(io::Error::other)?;
        let Some(mut chunk) = chunk else {
            return Err(io::Error::other(format!(
                "chunk {} of blob {} is missing",
                self.next_seq,
                crate::keys::hex(&self.sha256)
            )));
        };
        if self.skip > 0 {
            chunk.drain(..self.skip.min(chunk.len()));
            self.skip = 0;
        }
        chunk.truncate(self.remaining.min(chunk.len() as u64) as usize);
        if chunk.is_empty() {
            return Err(io::Error::other("blob ended before the expected length"));
        }
        self.remaining -= chunk.len() as u64;
        self.next_seq += 1;
        Ok(Some(chunk))
    }
}

/// Site name → current deployment id, shared by all threads so a request resolves its
/// deployment without a query. Reloaded from the database when it changes.
#[derive(Default)]
pub struct SiteTable {
    current: RwLock<SiteMap>,
}

/// foldhash, not SipHash: every request looks its site up here, and the names are the
/// deployed sites' (a client can't add keys).
type SiteMap = HashMap<String, i64, foldhash::fast::RandomState>;

impl SiteTable {
    pub fn current(&self, site: &str) -> Option<i64> {
        self.current.read().get(site).copied()
    }

    /// Replaces the table from the database; returns the deployments no longer current
    /// (their cache entries can go).
    pub fn reload(&self, conn: &Connection) -> rusqlite::Result<Vec<i64>> {
        let mut stmt = conn.prepare_cached(
            "SELECT name, current_deployment FROM sites WHERE current_deployment IS NOT NULL",
        )?;
        let fresh: SiteMap = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        // Most database changes are analytics batches, not deploys: leave the table (and
        // the request threads reading it) alone when nothing moved.
        if *self.current.read() == fresh {
            return Ok(Vec::new());
        }
        let mut table = self.current.write();
        let replaced = table
            .iter()
            .filter(|(name, id)| fresh.get(*name) != Some(id))
            .map(|(_, id)| *id)
            .collect();
        *table = fresh;
        Ok(replaced)
    }
}

/// Where a staged file's bytes come from.
#[derive(Clone, Debug)]
pub enum FileSource {
    Disk(PathBuf),
    Embedded(&'static [u8]),
    /// `size` bytes at `offset` of a shared file: a deploy's extracted entries are packed
    /// into one temp file, so a deploy creates one file, not one per entry (creating and
    /// deleting thousands of files cost more than writing their bytes).
    Packed {
        file: Arc<File>,
        offset: u64,
    },
}

/// Reads a byte range of a shared file by position, leaving the file's offset alone.
struct PackedReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for PackedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the packed file ended early",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A file ready to be written into a deployment: path normalised, bytes hashed.
#[derive(Clone, Debug)]
pub struct StagedFile {
    pub path: String,
    pub source: FileSource,
    pub size: u64,
    pub sha256: [u8; 32],
    pub mime: &'static str,
}

impl StagedFile {
    /// The file's bytes, from wherever they are.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match &self.source {
            FileSource::Disk(path) => Box::new(File::open(path)?),
            FileSource::Embedded(bytes) => Box::new(*bytes),
            FileSource::Packed { file, offset } => Box::new(PackedReader {
                file,
                pos: *offset,
                end: offset + self.size,
            }),
        })
    }

    pub fn embedded(path: &str, bytes: &'static [u8]) -> StagedFile {
        StagedFile {
            path: path.to_string(),
            source: FileSource::Embedded(bytes),
            size: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
            mime: crate::hosting::rules::mime_for(path),
        }
    }
}

/// The sites fazt itself serves from: `root` (the bare domain) and `404` (the not-found
/// pages of every site). Only owner keys manage them, and they are never deleted.
pub const SYSTEM_SITE_NAMES: [&str; 2] = ["root", "404"];

pub fn is_system_site(name: &str) -> bool {
    SYSTEM_SITE_NAMES.contains(&name)
}

/// Names whose host is taken by fazt itself, so a site there could never be reached.
/// `admin` is the admin host; `api` and `www` are names people expect to mean the service
/// itself or the root site, so a site there would only confuse.
const RESERVED_SITE_NAMES: [&str; 3] = ["admin", "api", "www"];

/// Site names: DNS labels (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`), not reserved.
pub fn validate_site_name(name: &str) -> Result<(), String> {
    if RESERVED_SITE_NAMES.contains(&name) {
        return Err(format!(
            "site name '{name}' is reserved (admin, api and www are fazt's own)"
        ));
    }
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid site name '{name}': use 1 to 63 lower-case letters, digits and inner hyphens"
        ))
    }
}

/// Walks a directory into staged files: regular files only, dot-paths (`.git/`, `.env`)
/// skipped, symlinks refused, each file hashed by streaming it.
pub fn stage_directory(dir: &Path) -> Result<Vec<StagedFile>, String> {
    let mut files = Vec::new();
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    walk(dir, "", &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, files: &mut Vec<StagedFile>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(format!(
                "{}: file name is not UTF-8",
                entry.path().display()
            ));
        };
        if name.starts_with('.') {
            continue;
        }
        // Names are taken literally (a file `100%.txt` is served at `/100%25.txt`); only
        // what no URL path can name is refused.
        if name.contains('\\') || name.chars().any(char::is_control) {
            let path = entry.path();
            return Err(format!(
                "{}: backslashes and control characters can't be served",
                path.display()
            ));
        }
        let rel = format!("{prefix}{name}");
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{rel}/"), files)?;
        } else if kind.is_file() {
            let (sha256, size) =
                hash_file(&entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
            files.push(StagedFile {
                mime: crate::hosting::rules::mime_for(&rel),
                path: rel,
                source: FileSource::Disk(entry.path()),
                size,
                sha256,
            });
        } else {
            return Err(format!(
                "{}: not a regular file (links and devices are not published)",
                entry.path().display()
            ));
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher.finalize().into(), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}

/// The outcome of writing a deployment.
#[derive(Clone, Debug)]
pub struct DeployResult {
    pub site: String,
    pub deployment: i64,
    pub previous: Option<i64>,
    pub file_count: u64,
    pub total_bytes: u64,
    pub new_bytes: u64,
}

impl DeployResult {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "site": self.site, "deployment": self.deployment, "files": self.file_count,
            "bytes": self.total_bytes, "new_bytes": self.new_bytes,
        })
    }
}

/// Writes a new deployment of `site` and makes it current, in one transaction: blobs
/// not yet stored (dedup by hash), the deployment row, its file rows, the pointer flip.
/// A failure at any point rolls everything back; the previous deployment keeps serving.
pub fn apply_deployment(
    conn: &mut Connection,
    site: &str,
    files: &[StagedFile],
    source: &str,
) -> rusqlite::Result<DeployResult> {
    with_small_cache(conn, |conn| apply_in_transaction(conn, site, files, source))
}

/// The page cache of the connection writing or deleting blobs, in KiB. Those pages are
/// written (or, for a GC, read once to free them) and never read back through the writer,
/// so a full-size cache only fills with them: with the writer's 16 MiB cache a 100 MB
/// deploy grew the server by the whole cache (scripts/bench_deploy.sh). With this one the
/// dirty pages spill to the WAL sooner, which a large deploy does anyway; the time is
/// the same.
const BLOB_WORK_CACHE_KIB: i64 = 2 * 1024;

/// Runs `work` with the connection's page cache at most `BLOB_WORK_CACHE_KIB`, then puts
/// back the size it had. Lowering the size frees the cached pages above it; the cache
/// refills with what the writer reads afterwards.
fn with_small_cache<T>(
    conn: &mut Connection,
    work: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let previous: i64 = conn.pragma_query_value(None, "cache_size", |r| r.get(0))?;
    // Negative: KiB; positive: pages.
    let previous_kib = if previous < 0 {
        previous.saturating_neg()
    } else {
        let page_size: i64 = conn.pragma_query_value(None, "page_size", |r| r.get(0))?;
        previous.saturating_mul(page_size) / 1024
    };
    if previous_kib <= BLOB_WORK_CACHE_KIB {
        return work(conn);
    }
    conn.pragma_update(None, "cache_size", -BLOB_WORK_CACHE_KIB)?;
    let result = work(conn);
    // The work is committed (or rolled back) by now: failing to restore the size only
    // leaves a smaller cache, so it is logged, never reported as the work's failure.
    if let Err(e) = conn.pragma_update(None, "cache_size", previous) {
        log::warn!("restoring the writer's cache_size to {previous}: {e}");
    }
    result
}

fn apply_in_transaction(
    conn: &mut Connection,
    site: &str,
    files: &[StagedFile],
    source: &str,
) -> rusqlite::Result<DeployResult> {
    let now = unix_now();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute(
        "INSERT INTO sites (name, current_deployment, created_at, updated_at) VALUES (?1, NULL, ?2, ?2)
         ON CONFLICT (name) DO NOTHING",
        params![site, now],
    )?;
    let previous: Option<i64> = tx.query_row(
        "SELECT current_deployment FROM sites WHERE name = ?1",
        params![site],
        |r| r.get(0),
    )?;
    let mut new_bytes = 0u64;
    for file in files {
        if store_blob(&tx, file, now)? {
            new_bytes += file.size;
        }
    }
    let total_bytes: u64 = files.iter().map(|f| f.size).sum();
    // Never a reused id (see migrations/003_deployment_ids.sql).
    let deployment: i64 = tx.query_row(
        "UPDATE deployment_ids SET last = last + 1 WHERE one = 1 RETURNING last",
        [],
        |r| r.get(0),
    )?;
    tx.execute(
        "INSERT INTO deployments (id, site, created_at, file_count, total_bytes, new_bytes, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            deployment,
            site,
            now,
            files.len() as i64,
            total_bytes as i64,
            new_bytes as i64,
            source
        ],
    )?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO files (deployment, path, sha256, size, mime) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for file in files {
            insert.execute(params![
                deployment,
                file.path,
                &file.sha256[..],
                file.size as i64,
                file.mime
            ])?;
        }
    }
    tx.execute(
        "UPDATE sites SET current_deployment = ?1, updated_at = ?2 WHERE name = ?3",
        params![deployment, now, site],
    )?;
    tx.commit()?;
    Ok(DeployResult {
        site: site.to_string(),
        deployment,
        previous,
        file_count: files.len() as u64,
        total_bytes,
        new_bytes,
    })
}

/// Stores a blob unless present; true when it was new. Reads the source a chunk at a
/// time and checks that the bytes still hash to what was staged.
fn store_blob(tx: &rusqlite::Transaction, file: &StagedFile, now: i64) -> rusqlite::Result<bool> {
    let exists: bool = tx
        .prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1")?
        .exists(params![&file.sha256[..]])?;
    if exists {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO blobs (sha256, size, chunk_size, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![&file.sha256[..], file.size as i64, CHUNK_SIZE as i64, now],
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO blob_chunks (sha256, seq, data) VALUES (?1, ?2, ?3)")?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut put = |seq: i64, data: &[u8]| -> rusqlite::Result<()> {
        hasher.update(data);
        written += data.len() as u64;
        insert
            .execute(params![&file.sha256[..], seq, data])
            .map(|_| ())
    };
    let io_err = |e: io::Error| corrupt(format!("{}: {e}", file.path));
    let mut source = file.reader().map_err(io_err)?;
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut seq = 0i64;
    loop {
        let n = read_full(&mut source, &mut buf).map_err(io_err)?;
        if n == 0 {
            break;
        }
        put(seq, &buf[..n])?;
        seq += 1;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    if digest != file.sha256 || written != file.size {
        return Err(corrupt(format!(
            "{} changed while it was being stored",
            file.path
        )));
    }
    Ok(true)
}

/// Fills `buf` unless the source ends first; returns the bytes read.
fn read_full(source: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Whether a site has any deployment yet (system sites are seeded only once).
pub fn site_exists(conn: &Connection, site: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM sites WHERE name = ?1")?
        .exists(params![site])
}

/// A site and its current deployment, for listings.
#[derive(Clone, Debug)]
pub struct SiteSummary {
    pub name: String,
    pub deployment: Option<i64>,
    pub file_count: u64,
    pub total_bytes: u64,
    pub updated_at: i64,
}

pub fn list_sites(conn: &Connection) -> rusqlite::Result<Vec<SiteSummary>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.name, s.current_deployment, d.file_count, d.total_bytes, s.updated_at
         FROM sites s LEFT JOIN deployments d ON d.id = s.current_deployment
         ORDER BY s.name",
    )?;
    let sites = stmt
        .query_map([], |row| {
            Ok(SiteSummary {
                name: row.get(0)?,
                deployment: row.get(1)?,
                file_count: row.get::<_, Option<i64>>(2)?.unwrap_or(0) as u64,
                total_bytes: row.get::<_, Option<i64>>(3)?.unwrap_or(0) as u64,
                updated_at: row.get(4)?,
            })
        })?
        .collect();
    sites
}

/// One deployment of a site, for listings.
#[derive(Clone, Debug)]
pub struct DeploymentSummary {
    pub id: i64,
    pub created_at: i64,
    pub file_count: u64,
    pub total_bytes: u64,
    pub new_bytes: u64,
    pub source: String,
}

/// A site's current deployment and all its deployments, newest first; `None` when there
/// is no such site.
pub fn list_deployments(
    conn: &Connection,
    site: &str,
) -> rusqlite::Result<Option<(Option<i64>, Vec<DeploymentSummary>)>> {
    let current: Option<Option<i64>> = conn
        .prepare_cached("SELECT current_deployment FROM sites WHERE name = ?1")?
        .query_row(params![site], |r| r.get(0))
        .optional()?;
    let Some(current) = current else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, created_at, file_count, total_bytes, new_bytes, source
         FROM deployments WHERE site = ?1 ORDER BY id DESC",
    )?;
    let deployments = stmt
        .query_map(params![site], |row| {
            Ok(DeploymentSummary {
                id: row.get(0)?,
                created_at: row.get(1)?,
                file_count: row.get::<_, i64>(2)? as u64,
                total_bytes: row.get::<_, i64>(3)? as u64,
                new_bytes: row.get::<_, i64>(4)? as u64,
                source: row.get(5)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Some((current, deployments)))
}

/// What a rollback did, or why it did nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RollbackOutcome {
    /// The site now serves `deployment`; it served `previous` before.
    Done {
        deployment: i64,
        previous: Option<i64>,
    },
    UnknownSite,
    /// No deployment with that id belongs to the site (never did, or garbage-collected).
    UnknownDeployment(i64),
    /// No deployment older than the current one is left.
    NothingEarlier,
    /// The requested deployment is the one being served.
    AlreadyCurrent(i64),
}

/// Points `site` back at an older deployment: `to`, or else the newest one older than
/// the current one. Only the pointer moves (one UPDATE): instant, nothing re-uploaded.
pub fn rollback(
    conn: &mut Connection,
    site: &str,
    to: Option<i64>,
) -> rusqlite::Result<RollbackOutcome> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let current: Option<Option<i64>> = tx
        .query_row(
            "SELECT current_deployment FROM sites WHERE name = ?1",
            params![site],
            |r| r.get(0),
        )
        .optional()?;
    let Some(current) = current else {
        return Ok(RollbackOutcome::UnknownSite);
    };
    let target = match to {
        Some(id) => {
            let belongs = tx
                .prepare_cached("SELECT 1 FROM deployments WHERE id = ?1 AND site = ?2")?
                .exists(params![id, site])?;
            if !belongs {
                return Ok(RollbackOutcome::UnknownDeployment(id));
            }
            if current == Some(id) {
                return Ok(RollbackOutcome::AlreadyCurrent(id));
            }
            id
        }
        None => {
            let earlier: Option<i64> = tx.query_row(
                "SELECT MAX(id) FROM deployments WHERE site = ?1 AND id < ?2",
                params![site, current.unwrap_or(i64::MAX)],
                |r| r.get(0),
            )?;
            match earlier {
                Some(id) => id,
                None => return Ok(RollbackOutcome::NothingEarlier),
            }
        }
    };
    tx.execute(
        "UPDATE sites SET current_deployment = ?1, updated_at = ?2 WHERE name = ?3",
        params![target, unix_now(), site],
    )?;
    tx.commit()?;
    Ok(RollbackOutcome::Done {
        deployment: target,
        previous: current,
    })
}

/// What garbage collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deployments_removed: u64,
    pub blobs_removed: u64,
    /// Bytes of blob content deleted (the database file keeps the pages for reuse until
    /// an incremental vacuum returns them).
    pub bytes_freed: u64,
}

impl GcReport {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "deployments_removed": self.deployments_removed,
            "blobs_removed": self.blobs_removed,
            "bytes_freed": self.bytes_freed,
        })
    }
}

/// A deleted site: the ids of its deployments (their cache entries can go) and what
/// garbage collection then removed.
#[derive(Clone, Debug)]
pub struct SiteRemoval {
    pub deployments: Vec<i64>,
    pub gc: GcReport,
}

/// Deletes a site with its deployments and their file rows, then the blobs no other
/// file uses, in one transaction. `None` when there is no such site. Refusing the system
/// sites is the caller's policy.
pub fn delete_site(conn: &mut Connection, site: &str) -> rusqlite::Result<Option<SiteRemoval>> {
    // Deletes the site's unshared blobs: the same small cache as `prune_and_gc`.
    with_small_cache(conn, |conn| delete_site_in_transaction(conn, site))
}

fn delete_site_in_transaction(
    conn: &mut Connection,
    site: &str,
) -> rusqlite::Result<Option<SiteRemoval>> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    if !site_exists(&tx, site)? {
        return Ok(None);
    }
    let deployments: Vec<i64> = tx
        .prepare_cached("SELECT id FROM deployments WHERE site = ?1 ORDER BY id")?
        .query_map(params![site], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let candidates = blobs_of(&tx, &deployments)?;
    // The pointer references the current deployment: clear it before the rows go.
    tx.execute(
        "UPDATE sites SET current_deployment = NULL WHERE name = ?1",
        params![site],
    )?;
    tx.execute("DELETE FROM deployments WHERE site = ?1", params![site])?;
    tx.execute("DELETE FROM sites WHERE name = ?1", params![site])?;
    let (blobs_removed, bytes_freed) = gc_blobs(&tx, &candidates)?;
    tx.commit()?;
    Ok(Some(SiteRemoval {
        gc: GcReport {
            deployments_removed: deployments.len() as u64,
            blobs_removed,
            bytes_freed,
        },
        deployments,
    }))
}

/// Deletes every deployment beyond the newest `keep` of its site, except a site's current
/// one (after a rollback it may be older) and those in `spared`. File rows go with them
/// (cascade). Returns the deleted ids and the blobs their files used (candidates for
/// [`gc_blobs`]).
pub fn prune_deployments(
    conn: &Connection,
    keep: usize,
    spared: &[i64],
) -> rusqlite::Result<(Vec<i64>, Vec<[u8; 32]>)> {
    let mut doomed: Vec<i64> = conn
        .prepare_cached(
            "SELECT r.id FROM (
                 SELECT id, site, ROW_NUMBER() OVER (PARTITION BY site ORDER BY id DESC) AS rank
                 FROM deployments
             ) r JOIN sites s ON s.name = r.site
             WHERE r.rank > ?1 AND r.id IS NOT s.current_deployment
             ORDER BY r.id",
        )?
        .query_map(params![keep as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    doomed.retain(|id| !spared.contains(id));
    let candidates = blobs_of(conn, &doomed)?;
    let mut delete = conn.prepare_cached("DELETE FROM deployments WHERE id = ?1")?;
    for id in &doomed {
        delete.execute(params![id])?;
    }
    Ok((doomed, candidates))
}

/// The distinct blobs the files of `deployments` use.
fn blobs_of(conn: &Connection, deployments: &[i64]) -> rusqlite::Result<Vec<[u8; 32]>> {
    let mut hashes = std::collections::HashSet::new();
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT sha256 FROM files WHERE deployment = ?1")?;
    for id in deployments {
        let rows = stmt.query_map(params![id], |r| r.get::<_, [u8; 32]>(0))?;
        for hash in rows {
            hashes.insert(hash?);
        }
    }
    Ok(hashes.into_iter().collect())
}

/// Deletes those of `candidates` that no file row references any more (their chunks go
/// by cascade); a blob another site or deployment still uses stays. Returns the blobs
/// removed and their bytes. Only the blobs of deleted deployments are checked, so the
/// cost follows what was deleted, not the size of the store.
pub fn gc_blobs(conn: &Connection, candidates: &[[u8; 32]]) -> rusqlite::Result<(u64, u64)> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM blobs WHERE sha256 = ?1
           AND NOT EXISTS (SELECT 1 FROM files WHERE sha256 = ?1)
         RETURNING size",
    )?;
    let (mut removed, mut bytes) = (0u64, 0u64);
    for hash in candidates {
        let size: Option<i64> = delete
            .query_row(params![&hash[..]], |r| r.get(0))
            .optional()?;
        if let Some(size) = size {
            removed += 1;
            bytes += size as u64;
        }
    }
    Ok((removed, bytes))
}

/// Garbage collection, run by the writer after a deploy (and so serialised with
/// [`apply_deployment`]): keeps the newest `keep` deployments of every site, each site's
/// current one and those in `spared`, then deletes the blobs nothing references any more,
/// in one transaction.
///
/// A deploy spares the deployment it replaced: requests that resolved the site just
/// before the flip still look its files up, and large files stream chunk by chunk from
/// their blobs, so deleting it at once (`keep` 1) answers them 404 or cuts them off
/// mid-body. It goes at the next collection.
pub fn prune_and_gc(
    conn: &mut Connection,
    keep: usize,
    spared: &[i64],
) -> rusqlite::Result<GcReport> {
    // Deleting a blob reads every page of its chunks (SQLite walks overflow chains to free
    // them): the same small cache as a deploy.
    with_small_cache(conn, |conn| {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let (removed, candidates) = prune_deployments(&tx, keep.max(1), spared)?;
        let (blobs_removed, bytes_freed) = gc_blobs(&tx, &candidates)?;
        tx.commit()?;
        Ok(GcReport {
            deployments_removed: removed.len() as u64,
            blobs_removed,
            bytes_freed,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_names() {
        for good in ["blog", "a", "my-site-2", &"x".repeat(63)] {
            assert!(validate_site_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Blog",
            "-x",
            "x-",
            "a.b",
            "a_b",
            "café",
            &"x".repeat(64),
            "admin",
        ] {
            assert!(validate_site_name(bad).is_err(), "{bad}");
        }
    }

    fn test_db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::db::migrate::run(&mut conn).unwrap();
        conn
    }

    /// Deploys `files` (path, content) to `site`; returns the deployment id.
    fn deploy(conn: &mut Connection, site: &str, files: &[(&str, &str)]) -> i64 {
        let staged: Vec<StagedFile> = files
            .iter()
            .map(|(path, text)| {
                let bytes: &'static [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
                StagedFile::embedded(path, bytes)
            })
            .collect();
        apply_deployment(conn, site, &staged, "test")
            .unwrap()
            .deployment
    }

    #[test]
    fn deploys_and_gc_put_back_the_cache_size_they_lowered() {
        let cache_size = |conn: &Connection| -> i64 {
            conn.pragma_query_value(None, "cache_size", |r| r.get(0))
                .unwrap()
        };
        let mut conn = test_db();
        conn.pragma_update(None, "cache_size", -16384).unwrap();
        let seen_inside = with_small_cache(&mut conn, |conn| Ok(cache_size(conn))).unwrap();
        assert_eq!(seen_inside, -BLOB_WORK_CACHE_KIB);
        deploy(&mut conn, "blog", &[("index.html", "one")]);
        prune_and_gc(&mut conn, 1, &[]).unwrap();
        assert_eq!(cache_size(&conn), -16384);
        // Already small (in pages here): left alone.
        conn.pragma_update(None, "cache_size", 100).unwrap();
        let seen_inside = with_small_cache(&mut conn, |conn| Ok(cache_size(conn))).unwrap();
        assert_eq!(seen_inside, 100);
        // A failed deploy restores it too.
        conn.pragma_update(None, "cache_size", -8192).unwrap();
        let failed: rusqlite::Result<()> =
            with_small_cache(&mut conn, |_| Err(rusqlite::Error::InvalidQuery));
        assert!(failed.is_err());
        assert_eq!(cache_size(&conn), -8192);
    }

    fn current(conn: &Connection, site: &str) -> Option<i64> {
        conn.query_row(
            "SELECT current_deployment FROM sites WHERE name = ?1",
            params![site],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
        .flatten()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn rollback_to_previous_or_given_deployment() {
        let mut conn = test_db();
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::UnknownSite
        );
        let d1 = deploy(&mut conn, "blog", &[("index.html", "one")]);
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::NothingEarlier
        );
        let d2 = deploy(&mut conn, "blog", &[("index.html", "two")]);
        let d3 = deploy(&mut conn, "blog", &[("index.html", "three")]);
        let other = deploy(&mut conn, "shop", &[("index.html", "shop")]);
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::Done {
                deployment: d2,
                previous: Some(d3)
            }
        );
        // "Previous" is older than the current one, not the one served before.
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::Done {
                deployment: d1,
                previous: Some(d2)
            }
        );
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::NothingEarlier
        );
        assert_eq!(
            rollback(&mut conn, "blog", Some(d3)).unwrap(),
            RollbackOutcome::Done {
                deployment: d3,
                previous: Some(d1)
            }
        );
        assert_eq!(
            rollback(&mut conn, "blog", Some(d3)).unwrap(),
            RollbackOutcome::AlreadyCurrent(d3)
        );
        assert_eq!(
            rollback(&mut conn, "blog", Some(other)).unwrap(),
            RollbackOutcome::UnknownDeployment(other)
        );
        assert_eq!(current(&conn, "blog"), Some(d3));
        assert_eq!(current(&conn, "shop"), Some(other));
    }

    #[test]
    fn prune_keeps_the_newest_and_the_current_and_gc_keeps_shared_blobs() {
        let mut conn = test_db();
        let shared = ("shared.css", "body{}");
        let mut blog = Vec::new();
        for n in 0..5 {
            let text = format!("blog {n}");
            blog.push(deploy(&mut conn, "blog", &[("index.html", &text), shared]));
        }
        // Roll back to the oldest: it is current, so it survives pruning.
        rollback(&mut conn, "blog", Some(blog[0])).unwrap();
        let shop = deploy(&mut conn, "shop", &[("index.html", "blog 1"), shared]);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 6);

        let report = prune_and_gc(&mut conn, 2, &[]).unwrap();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM deployments WHERE site = 'blog' ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, vec![blog[0], blog[3], blog[4]]);
        assert_eq!(current(&conn, "shop"), Some(shop));
        // blog 1 is shop's too; blog 2 is nobody's any more.
        assert_eq!(
            report,
            GcReport {
                deployments_removed: 2,
                blobs_removed: 1,
                bytes_freed: 6,
            }
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 5);
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM files WHERE deployment NOT IN (SELECT id FROM deployments)"
            ),
            0
        );
        // Nothing more to do the second time.
        assert_eq!(
            prune_and_gc(&mut conn, 2, &[]).unwrap(),
            GcReport::default()
        );
    }

    #[test]
    fn a_spared_deployment_and_its_blobs_survive_one_collection() {
        let mut conn = test_db();
        let old = deploy(&mut conn, "blog", &[("index.html", "old")]);
        let new = deploy(&mut conn, "blog", &[("index.html", "new")]);
        assert_eq!(
            prune_and_gc(&mut conn, 1, &[old]).unwrap(),
            GcReport::default()
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 2);
        let report = prune_and_gc(&mut conn, 1, &[]).unwrap();
        assert_eq!(report.deployments_removed, 1);
        assert_eq!(report.blobs_removed, 1);
        assert_eq!(current(&conn, "blog"), Some(new));
    }

    #[test]
    fn delete_site_removes_its_rows_and_unshared_blobs() {
        let mut conn = test_db();
        let big: String = "x".repeat(CHUNK_SIZE * 2 + 1);
        let d1 = deploy(
            &mut conn,
            "blog",
            &[("index.html", "mine"), ("big.bin", &big)],
        );
        let d2 = deploy(
            &mut conn,
            "blog",
            &[("index.html", "mine too"), ("common.txt", "c")],
        );
        deploy(&mut conn, "shop", &[("common.txt", "c")]);
        assert!(delete_site(&mut conn, "nope").unwrap().is_none());

        let removal = delete_site(&mut conn, "blog").unwrap().unwrap();
        assert_eq!(removal.deployments, vec![d1, d2]);
        assert_eq!(removal.gc.deployments_removed, 2);
        assert_eq!(removal.gc.blobs_removed, 3);
        assert_eq!(removal.gc.bytes_freed, (4 + 8 + big.len()) as u64);
        assert!(!site_exists(&conn, "blog").unwrap());
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM deployments WHERE site = 'blog'"
            ),
            0
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM files WHERE deployment IN (1, 2)"
            ),
            0
        );
        // The shared blob stays; the big blob's chunks went with it.
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 1);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blob_chunks"), 1);
        assert!(site_exists(&conn, "shop").unwrap());
    }

    #[test]
    fn listings() {
        let mut conn = test_db();
        let d1 = deploy(&mut conn, "blog", &[("index.html", "one")]);
        let d2 = deploy(&mut conn, "blog", &[("index.html", "one"), ("a.css", "a")]);
        deploy(&mut conn, "a-site", &[]);
        let sites = list_sites(&conn).unwrap();
        let names: Vec<_> = sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a-site", "blog"]);
        assert_eq!(sites[1].deployment, Some(d2));
        assert_eq!((sites[1].file_count, sites[1].total_bytes), (2, 4));
        let (current, deployments) = list_deployments(&conn, "blog").unwrap().unwrap();
        assert_eq!(current, Some(d2));
        let ids: Vec<_> = deployments.iter().map(|d| d.id).collect();
        assert_eq!(ids, [d2, d1]);
        assert_eq!(deployments[0].new_bytes, 1);
        assert!(list_deployments(&conn, "nope").unwrap().is_none());
    }

    #[test]
    fn deployment_ids_are_never_reused_after_the_newest_site_is_deleted() {
        let mut conn = test_db();
        let file = StagedFile::embedded("index.html", b"x");
        let files = std::slice::from_ref(&file);
        apply_deployment(&mut conn, "a", files, "test").unwrap();
        let newest = apply_deployment(&mut conn, "b", files, "test")
            .unwrap()
            .deployment;
        delete_site(&mut conn, "b").unwrap().unwrap();
        let next = apply_deployment(&mut conn, "c", files, "test")
            .unwrap()
            .deployment;
        assert!(next > newest, "{next} reuses an id up to {newest}");
    }

    #[test]
    fn blob_stream_reads_a_range_across_chunks() {
        let mut conn = test_db();
        let bytes: &'static [u8] = Box::leak((0..CHUNK_SIZE * 2 + 10).map(|i| i as u8).collect());
        let file = StagedFile::embedded("big.bin", bytes);
        apply_deployment(&mut conn, "s", std::slice::from_ref(&file), "test").unwrap();
        crate::db::reader::install_reader(conn);
        let start = CHUNK_SIZE as u64 - 3;
        let mut stream = BlobStream::new(file.sha256, start, CHUNK_SIZE as u64 + 6);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next_chunk().unwrap() {
            out.extend(chunk);
        }
        assert_eq!(out, &bytes[start as usize..start as usize + CHUNK_SIZE + 6]);
        crate::db::reader::drop_reader();
    }
}
