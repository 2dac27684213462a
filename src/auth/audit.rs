//! The audit log: who did what, from where, and how it went. Written by the writer (in the
//! job of the change it records where there is one), read by `GET /api/audit`, pruned by
//! its own retention (`FAZT_AUDIT_RETENTION`).

use crate::db::writer::WriterHandle;
use crate::db::{Context, DbError};
use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// One entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub at: i64,
    /// `user NAME`, `key NAME`, or for a failed login the username tried.
    pub actor: String,
    pub ip: String,
    /// `login`, `logout`, `password`, `key.create`, `site.delete`, ...
    pub action: String,
    pub target: Option<String>,
    /// `ok`, or why it was refused.
    pub outcome: String,
}

impl Entry {
    /// An entry dated now.
    pub fn now(actor: &str, ip: &str, action: &str, target: Option<&str>, outcome: &str) -> Entry {
        Entry {
            at: crate::platform::clock::unix_now(),
            actor: actor.to_string(),
            ip: ip.to_string(),
            action: action.to_string(),
            target: target.map(str::to_string),
            outcome: outcome.to_string(),
        }
    }
}

/// Records `entry` as a writer job of its own, for changes that have no job to join (or
/// were refused); never waits, and a full queue skips it (logged).
pub fn later(writer: &WriterHandle, entry: Entry) {
    let action = entry.action.clone();
    if writer.try_submit(move |conn| record(conn, &entry)).is_err() {
        log::warn!("audit log: the writer is busy; not recorded: {action}");
    }
}

pub fn record(conn: &Connection, entry: &Entry) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO audit_log (at, actor, ip, action, target, outcome) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            entry.at,
            entry.actor,
            entry.ip,
            entry.action,
            entry.target,
            entry.outcome
        ],
    )
    .context("writing the audit log")?;
    Ok(())
}

/// Entries newest first, at most `limit`, older than entry id `before` when given (keyset
/// paging): the JSON list and the id to pass as `before` for the next page.
pub fn page(
    conn: &Connection,
    before: Option<i64>,
    limit: u32,
) -> Result<(Vec<Value>, Option<i64>), DbError> {
    let mut statement = conn
        .prepare(
            "SELECT id, at, actor, ip, action, target, outcome FROM audit_log \
             WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        )
        .context("reading the audit log")?;
    let rows = statement
        .query_map(params![before.unwrap_or(i64::MAX), limit], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                json!({
                    "id": row.get::<_, i64>(0)?, "at": row.get::<_, i64>(1)?,
                    "actor": row.get::<_, String>(2)?, "ip": row.get::<_, String>(3)?,
                    "action": row.get::<_, String>(4)?,
                    "target": row.get::<_, Option<String>>(5)?,
                    "outcome": row.get::<_, String>(6)?,
                }),
            ))
        })
        .context("reading the audit log")?;
    let rows: Vec<(i64, Value)> = rows
        .collect::<rusqlite::Result<_>>()
        .context("reading the audit log")?;
    let next = (rows.len() == limit as usize)
        .then(|| rows.last().map(|(id, _)| *id))
        .flatten();
    Ok((rows.into_iter().map(|(_, v)| v).collect(), next))
}

/// Deletes entries older than `cutoff`; returns how many.
pub fn prune(conn: &Connection, cutoff: i64) -> Result<usize, DbError> {
    conn.execute("DELETE FROM audit_log WHERE at < ?1", [cutoff])
        .context("pruning the audit log")
}
