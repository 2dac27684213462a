//! Listing sites and deployments, and moving a site's pointer back (rollback).

use crate::platform::clock::unix_now;
use rusqlite::{params, Connection, OptionalExtension};

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
