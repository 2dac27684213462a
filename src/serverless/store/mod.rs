//! Apps' storage (issue #14): each site's key-value pairs (`fazt.app.kv`), documents
//! (`fazt.app.ds`), environment variables (`fazt.env`) and logs (`console.*`), in the tables
//! of migration 9, keyed by site name.
//!
//! Invariants:
//! - reads take the caller's read connection (a JS worker's own, the admin thread's);
//!   writes take the one write connection, inside a writer job, and each is one
//!   transaction that also checks the site's quotas and keeps its `app_usage` row right;
//!   so a write refused for a quota changes nothing, and the counters always equal what
//!   the rows hold (a test recounts them);
//! - an expired kv row is invisible to reads at once; [`sweep`] (or overwriting it)
//!   deletes it and gives its bytes back;
//! - a site keeps at most [`LOG_ROWS_PER_SITE`] log rows, none older than
//!   [`LOG_RETENTION_DAYS`]; log ids only grow, so a follower polling with the last id it
//!   saw never misses a line;
//! - env values leave this module only through [`env_values`], for the runtime.
//!
//! Public (not `pub(crate)`) for `benches/apps_store.rs`.

mod ds;
mod env;
mod kv;
mod logs;
mod usage;

pub use ds::{ds_delete, ds_find, ds_insert, ds_update};
pub use env::{
    check_key as check_env_key, env_delete, env_list, env_set, env_values, EnvVar, ENV_MAX_KEYS,
};
pub use kv::{kv_delete, kv_get, kv_list, kv_set, KvEntry, KV_LIST_MAX};
pub use logs::{
    append_logs, logs_page, logs_tail, LogEntry, LogLevel, NewLog, LOG_MESSAGE_MAX_BYTES,
};
pub use usage::{usage, Usage};

use crate::http::error::ResponseError;
use rusqlite::Connection;
use std::fmt;

/// The newest log rows kept per site.
pub const LOG_ROWS_PER_SITE: u64 = 1_000;
/// Log rows older than this are deleted by [`sweep`].
pub const LOG_RETENTION_DAYS: i64 = 7;

/// Rows [`sweep`] deletes at most per call and per kind: a sweep is one short write
/// transaction; when it hits this, the caller sweeps again soon.
pub const SWEEP_BATCH: u64 = 10_000;

/// What one site may hold (the lead fills it from the settings).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// Keys in `kv` (`FAZT_APP_KEYS`).
    pub kv_keys: u64,
    /// Documents in `ds`, all collections together (`FAZT_APP_DOCS`).
    pub docs: u64,
    /// Bytes of kv keys and values and of doc ids and documents (`FAZT_APP_BYTES`).
    pub bytes: u64,
    /// Bytes of one kv value or one stored document (`FAZT_APP_VALUE_BYTES`).
    pub value_bytes: u64,
}

/// The quotas' defaults (the settings' defaults in `cli::settings`).
pub const DEFAULT_QUOTAS: Quotas = Quotas {
    kv_keys: 10_000,
    docs: 10_000,
    bytes: 32 * 1024 * 1024,
    value_bytes: 1024 * 1024,
};

impl Default for Quotas {
    fn default() -> Quotas {
        DEFAULT_QUOTAS
    }
}

/// Why a storage call failed. `Display` is the message a script or an API client sees.
#[derive(Debug)]
pub enum StoreError {
    /// A quota of the site: its name, the limit and the setting that raises it.
    Quota(String),
    /// A bad key, collection, query, document or env variable.
    Invalid(String),
    Db(rusqlite::Error),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Quota(m) | StoreError::Invalid(m) => f.write_str(m),
            // The detail goes to the server log (`log_detail`), not to a script.
            StoreError::Db(_) => f.write_str("the app's storage failed; see the server log"),
        }
    }
}

impl std::error::Error for StoreError {}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Db(e)
    }
}

impl ResponseError for StoreError {
    fn status(&self) -> u16 {
        match self {
            StoreError::Invalid(_) => 400,
            // The request is fine; the site's state refuses it until something is deleted.
            StoreError::Quota(_) => 409,
            StoreError::Db(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) => {
                507
            }
            StoreError::Db(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            StoreError::Invalid(_) => "bad_request",
            StoreError::Quota(_) => "quota_exceeded",
            StoreError::Db(_) if self.status() == 507 => "disk_full",
            StoreError::Db(_) => "database_error",
        }
    }

    fn log_detail(&self) -> Option<String> {
        match self {
            StoreError::Db(e) => Some(format!("apps' storage: {e}")),
            _ => None,
        }
    }
}

/// Deletes expired kv rows and log rows past [`LOG_RETENTION_DAYS`], at most
/// [`SWEEP_BATCH`] of each, in one transaction, giving the kv rows' usage back. Returns
/// how many of each went.
pub fn sweep(conn: &mut Connection, now_ms: i64) -> rusqlite::Result<(u64, u64)> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let expired = kv::delete_expired(&tx, now_ms, SWEEP_BATCH)?;
    let cutoff = now_ms - LOG_RETENTION_DAYS * 24 * 3600 * 1000;
    let old_logs = logs::delete_older(&tx, cutoff, SWEEP_BATCH)?;
    tx.commit()?;
    Ok((expired, old_logs))
}

/// Deletes every row of `site` (kv, docs, env, logs, usage). Runs inside the caller's
/// transaction: `hosting::store::delete_site`'s.
pub fn delete_site_rows(conn: &Connection, site: &str) -> rusqlite::Result<()> {
    for table in ["app_kv", "app_docs", "app_env", "app_logs", "app_usage"] {
        conn.prepare_cached(&format!("DELETE FROM {table} WHERE site = ?1"))?
            .execute([site])?;
    }
    Ok(())
}

/// Whether `text` is JSON (SQLite's parser: the one that reads it back in queries).
fn is_json(conn: &Connection, text: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT json_valid(?1)")?
        .query_row([text], |r| r.get(0))
}

#[cfg(test)]
mod tests;
