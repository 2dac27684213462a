//! Site logs: what scripts write with `console.*`, the newest [`LOG_ROWS_PER_SITE`] rows per
//! site, none older than the retention ([`super::sweep`]).

use super::LOG_ROWS_PER_SITE;
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::BTreeSet;

/// The `console` method a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Log,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Log => "log",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<LogLevel> {
        Some(match text {
            "log" => LogLevel::Log,
            "info" => LogLevel::Info,
            "warn" => LogLevel::Warn,
            "error" => LogLevel::Error,
            _ => return None,
        })
    }
}

/// A stored line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    pub id: i64,
    /// Unix ms.
    pub ts_ms: i64,
    pub level: LogLevel,
    pub message: String,
}

/// A line to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewLog {
    pub site: String,
    pub ts_ms: i64,
    pub level: LogLevel,
    pub message: String,
}

/// Longest message stored, in bytes; a longer one is cut (at a character) and marked. The
/// runtime keeps lines shorter; this bounds a site's logs whoever writes them.
pub const LOG_MESSAGE_MAX_BYTES: usize = 4096;

/// Stores `logs` in one transaction, then deletes the oldest rows of each site written to
/// beyond [`LOG_ROWS_PER_SITE`].
pub fn append_logs(conn: &mut Connection, logs: &[NewLog]) -> rusqlite::Result<()> {
    if logs.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO app_logs (site, ts, level, message) VALUES (?1, ?2, ?3, ?4)",
    )?;
    let mut sites = BTreeSet::new();
    for log in logs {
        let message = bounded(&log.message);
        insert.execute(params![log.site, log.ts_ms, log.level.as_str(), message])?;
        sites.insert(log.site.as_str());
    }
    drop(insert);
    let mut trim = tx.prepare_cached(
        "DELETE FROM app_logs WHERE site = ?1 AND id <= (
             SELECT id FROM app_logs WHERE site = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?;
    for site in sites {
        trim.execute(params![site, LOG_ROWS_PER_SITE as i64])?;
    }
    drop(trim);
    tx.commit()
}

/// The lines of `site` with an id above `after_id`, oldest first, at most `limit`.
pub fn logs_page(
    conn: &Connection,
    site: &str,
    after_id: i64,
    limit: usize,
) -> rusqlite::Result<Vec<LogEntry>> {
    conn.prepare_cached(
        "SELECT id, ts, level, message FROM app_logs WHERE site = ?1 AND id > ?2
         ORDER BY id LIMIT ?3",
    )?
    .query_map(params![site, after_id, limit as i64], |r| {
        let level: String = r.get(2)?;
        Ok(LogEntry {
            id: r.get(0)?,
            ts_ms: r.get(1)?,
            level: LogLevel::parse(&level).unwrap_or(LogLevel::Log),
            message: r.get(3)?,
        })
    })?
    .collect()
}

/// The newest lines of `site`, oldest first, at most `limit` (what `fazt logs` shows first).
pub fn logs_tail(conn: &Connection, site: &str, limit: usize) -> rusqlite::Result<Vec<LogEntry>> {
    let before: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM app_logs WHERE site = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
        )?
        .query_row(params![site, limit as i64], |r| r.get(0))
        .optional()?;
    logs_page(conn, site, before.unwrap_or(0), limit)
}

/// Deletes up to `limit` rows older than `cutoff_ms`, every site's (inside the caller's
/// transaction).
pub(super) fn delete_older(conn: &Connection, cutoff_ms: i64, limit: u64) -> rusqlite::Result<u64> {
    let deleted = conn
        .prepare_cached(
            "DELETE FROM app_logs WHERE id IN (
                 SELECT id FROM app_logs WHERE ts < ?1 ORDER BY ts LIMIT ?2)",
        )?
        .execute(params![cutoff_ms, limit as i64])?;
    Ok(deleted as u64)
}

/// `message`, cut to [`LOG_MESSAGE_MAX_BYTES`] with a mark when longer.
fn bounded(message: &str) -> std::borrow::Cow<'_, str> {
    const MARK: &str = "… (cut)";
    if message.len() <= LOG_MESSAGE_MAX_BYTES {
        return message.into();
    }
    let mut end = LOG_MESSAGE_MAX_BYTES - MARK.len();
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARK}", &message[..end]).into()
}
