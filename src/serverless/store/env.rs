//! `fazt.env`: a site's environment variables. Set and deleted through the admin API; the
//! runtime reads the values, everything else only the keys and lengths.

use super::StoreError;
use rusqlite::{params, Connection};

/// Variables one site may have.
pub const ENV_MAX_KEYS: u64 = 100;
/// Longest value, in bytes.
const VALUE_MAX_BYTES: usize = 4096;
/// Longest key.
const KEY_MAX: usize = 128;

/// A variable as listed: never its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    pub key: String,
    /// Of the value, in bytes.
    pub length: usize,
    /// Unix seconds.
    pub updated_at: i64,
}

/// Every variable of `site` with its value, by key: for the runtime only.
pub fn env_values(conn: &Connection, site: &str) -> rusqlite::Result<Vec<(String, String)>> {
    conn.prepare_cached("SELECT key, value FROM app_env WHERE site = ?1 ORDER BY key")?
        .query_map([site], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// The variables of `site`, by key, without their values.
pub fn env_list(conn: &Connection, site: &str) -> rusqlite::Result<Vec<EnvVar>> {
    conn.prepare_cached(
        "SELECT key, octet_length(value), updated_at FROM app_env WHERE site = ?1 ORDER BY key",
    )?
    .query_map([site], |r| {
        Ok(EnvVar {
            key: r.get(0)?,
            length: r.get::<_, i64>(1)?.max(0) as usize,
            updated_at: r.get(2)?,
        })
    })?
    .collect()
}

/// Sets (or replaces) `key` of `site`. Errors never contain the value.
pub fn env_set(
    conn: &mut Connection,
    site: &str,
    key: &str,
    value: &str,
    now: i64,
) -> Result<(), StoreError> {
    check_key(key)?;
    if value.len() > VALUE_MAX_BYTES {
        return Err(StoreError::Invalid(format!(
            "the value of {key} is {} bytes; at most {VALUE_MAX_BYTES} bytes are allowed",
            value.len()
        )));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (count, exists): (i64, bool) = tx
        .prepare_cached(
            "SELECT count(*), coalesce(sum(key = ?2), 0) > 0 FROM app_env WHERE site = ?1",
        )?
        .query_row(params![site, key], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if !exists && count as u64 >= ENV_MAX_KEYS {
        return Err(StoreError::Quota(format!(
            "site {site} has {count} environment variables, the most it may have; unset one first"
        )));
    }
    tx.prepare_cached(
        "INSERT INTO app_env (site, key, value, updated_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (site, key) DO UPDATE SET value = ?3, updated_at = ?4",
    )?
    .execute(params![site, key, value, now])?;
    tx.commit()?;
    Ok(())
}

/// Deletes `key` of `site`; whether it was set.
pub fn env_delete(conn: &mut Connection, site: &str, key: &str) -> Result<bool, StoreError> {
    check_key(key)?;
    let deleted = conn
        .prepare_cached("DELETE FROM app_env WHERE site = ?1 AND key = ?2")?
        .execute(params![site, key])?;
    Ok(deleted > 0)
}

/// `[A-Za-z_][A-Za-z0-9_]{0,127}`, as shells name variables.
pub fn check_key(key: &str) -> Result<(), StoreError> {
    let mut chars = key.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !first_ok || !rest_ok || key.len() > KEY_MAX {
        let shown: String = key.chars().take(40).collect();
        return Err(StoreError::Invalid(format!(
            "'{shown}' is not an environment variable name: a letter or _, then up to \
             {} letters, digits or _ (e.g. API_TOKEN)",
            KEY_MAX - 1
        )));
    }
    Ok(())
}
