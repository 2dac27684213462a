//! Writing a deployment: new blobs, the deployment, its files and the pointer flip in
//! one transaction.

use super::blobs::corrupt;
use super::staging::{FileSource, StagedFile};
use super::CHUNK_SIZE;
use crate::platform::clock::unix_now;
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};
use std::io::{self, Read};

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
/// deploy grew the server by the whole cache (bench/bench_deploy.sh). With this one the
/// dirty pages spill to the WAL sooner, which a large deploy does anyway; the time is
/// the same.
pub(super) const BLOB_WORK_CACHE_KIB: i64 = 2 * 1024;

/// Runs `work` with the connection's page cache at most `BLOB_WORK_CACHE_KIB`, then puts
/// back the size it had. Lowering the size frees the cached pages above it; the cache
/// refills with what the writer reads afterwards.
pub(super) fn with_small_cache<T>(
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
        if store_blob(&tx, &file.sha256, file.size, &file.source, &file.path, now)? {
            new_bytes += file.size;
        }
        // Variant bytes are not counted in `new_bytes`: that is the site's own content.
        if let Some(variants) = &file.variants {
            super::variants::store_variants(&tx, &file.sha256, &file.path, variants, now)?;
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

/// Stores the blob `sha256` of `size` bytes read from `source` unless present; true when it
/// was new. Reads the source a chunk at a time and checks that the bytes still hash to what
/// was staged; `label` names the file in errors.
pub(super) fn store_blob(
    tx: &rusqlite::Transaction,
    sha256: &[u8; 32],
    size: u64,
    source: &FileSource,
    label: &str,
    now: i64,
) -> rusqlite::Result<bool> {
    let exists: bool = tx
        .prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1")?
        .exists(params![&sha256[..]])?;
    if exists {
        return Ok(false);
    }
    tx.execute(
        "INSERT INTO blobs (sha256, size, chunk_size, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![&sha256[..], size as i64, CHUNK_SIZE as i64, now],
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO blob_chunks (sha256, seq, data) VALUES (?1, ?2, ?3)")?;
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    let mut put = |seq: i64, data: &[u8]| -> rusqlite::Result<()> {
        hasher.update(data);
        written += data.len() as u64;
        insert.execute(params![&sha256[..], seq, data]).map(|_| ())
    };
    let io_err = |e: io::Error| corrupt(format!("{label}: {e}"));
    let mut source = source.reader(size).map_err(io_err)?;
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
    if digest != *sha256 || written != size {
        return Err(corrupt(format!(
            "{label} changed while it was being stored"
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
