//! Deleting: a whole site, deployments past the kept number, and the blobs nothing
//! references any more.

use super::apply::with_small_cache;
use super::catalog::site_exists;
use rusqlite::{params, Connection, OptionalExtension};

/// What garbage collection removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub deployments_removed: u64,
    pub blobs_removed: u64,
    /// Bytes of blob content deleted (the database file keeps the pages for reuse until
    /// an incremental vacuum returns them).
    pub bytes_freed: u64,
}

/// A deleted site: the ids of its deployments (their cache entries can go) and what
/// garbage collection then removed.
#[derive(Clone, Debug)]
pub struct SiteRemoval {
    pub deployments: Vec<i64>,
    pub gc: GcReport,
}

/// Deletes a site with its deployments and their file rows, its apps' rows (kv, documents,
/// env, logs), then the blobs no other file uses, in one transaction. `None` when there is no such site. Refusing the system
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
    // Its apps' kv, documents, env variables, logs and usage go with it: a site made later
    // under the same name starts empty.
    crate::serverless::store::delete_site_rows(&tx, site)?;
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
/// by cascade), with their compressed variants; a blob another site or deployment still
/// uses stays, and so does one that is a variant of a blob still stored. Returns the blobs
/// removed (variants included) and their bytes. Only the blobs of deleted deployments are
/// checked, so the cost follows what was deleted, not the size of the store.
pub fn gc_blobs(conn: &Connection, candidates: &[[u8; 32]]) -> rusqlite::Result<(u64, u64)> {
    let (mut removed, mut bytes) = (0u64, 0u64);
    for hash in candidates {
        let variants = super::variants::variant_blobs(conn, hash)?;
        let Some(size) = delete_unused_blob(conn, hash)? else {
            continue;
        };
        removed += 1;
        bytes += size;
        conn.prepare_cached("DELETE FROM blob_variants WHERE sha256 = ?1")?
            .execute(params![&hash[..]])?;
        for variant in &variants {
            if let Some(size) = delete_unused_blob(conn, variant)? {
                removed += 1;
                bytes += size;
            }
        }
    }
    Ok((removed, bytes))
}

/// Deletes the blob `hash` unless a file uses it or it is a variant of a stored blob;
/// returns its size when deleted.
fn delete_unused_blob(conn: &Connection, hash: &[u8; 32]) -> rusqlite::Result<Option<u64>> {
    let mut delete = conn.prepare_cached(
        "DELETE FROM blobs WHERE sha256 = ?1
           AND NOT EXISTS (SELECT 1 FROM files WHERE sha256 = ?1)
           AND NOT EXISTS (SELECT 1 FROM blob_variants WHERE variant = ?1)
         RETURNING size",
    )?;
    let size: Option<i64> = delete
        .query_row(params![&hash[..]], |r| r.get(0))
        .optional()?;
    Ok(size.map(|s| s as u64))
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
