//! `fazt.app.kv`: a site's keys, each with a JSON value and an optional expiry.

use super::usage::{self, Delta};
use super::{Quotas, StoreError};
use rusqlite::{params, Connection, OptionalExtension};
use std::collections::HashMap;

/// Entries `kv_list` returns at most.
pub const KV_LIST_MAX: usize = 1_000;
/// Longest key, in bytes.
const KEY_MAX_BYTES: usize = 256;

/// One listed pair. `value` is JSON text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvEntry {
    pub key: String,
    pub value: String,
    pub expires_at_ms: Option<i64>,
}

/// The value of `key`, unless missing or expired at `now_ms`.
pub fn kv_get(
    conn: &Connection,
    site: &str,
    key: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT value FROM app_kv
         WHERE site = ?1 AND key = ?2 AND (expires_at IS NULL OR expires_at > ?3)",
    )?
    .query_row(params![site, key, now_ms], |r| r.get(0))
    .optional()
}

/// The live pairs whose key starts with `prefix` (literally), by key, at most
/// [`KV_LIST_MAX`].
pub fn kv_list(
    conn: &Connection,
    site: &str,
    prefix: &str,
    now_ms: i64,
) -> rusqlite::Result<Vec<KvEntry>> {
    // A key range, not LIKE: no wildcard to escape, no case folding, and the primary key
    // index serves it. Keys compare as UTF-8 bytes, which is code point order.
    let mut stmt = conn.prepare_cached(
        "SELECT key, value, expires_at FROM app_kv
         WHERE site = ?1 AND key >= ?2 AND (?3 IS NULL OR key < ?3)
           AND (expires_at IS NULL OR expires_at > ?4)
         ORDER BY key LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![site, prefix, prefix_end(prefix), now_ms, KV_LIST_MAX as i64],
        |r| {
            Ok(KvEntry {
                key: r.get(0)?,
                value: r.get(1)?,
                expires_at_ms: r.get(2)?,
            })
        },
    )?;
    rows.collect()
}

/// The least string above every string that starts with `prefix`: its last character that
/// can be, incremented, and what follows dropped. `None` when no such string exists (an
/// empty prefix, or only U+10FFFF characters): then there is no upper bound.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => Some('\u{E000}'),
            n => char::from_u32(n),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// Sets `key` to `value_json` (JSON text), expiring at `expires_at_ms` (`None`: never).
/// Refused past the site's quotas; expired rows of the site are deleted first when that
/// makes room.
pub fn kv_set(
    conn: &mut Connection,
    site: &str,
    key: &str,
    value_json: &str,
    expires_at_ms: Option<i64>,
    now_ms: i64,
    q: &Quotas,
) -> Result<(), StoreError> {
    check_key(key)?;
    usage::check_value(site, "a value", value_json.len(), q)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    // Readers parse what they get: only JSON goes in.
    if !super::is_json(&tx, value_json)? {
        return Err(StoreError::Invalid(format!(
            "the value of key '{key}' is not JSON text"
        )));
    }
    // An expired row is replaced like a live one: its bytes are given back either way.
    let old: Option<i64> = tx
        .prepare_cached(
            "SELECT octet_length(key) + octet_length(value) FROM app_kv
             WHERE site = ?1 AND key = ?2",
        )?
        .query_row(params![site, key], |r| r.get(0))
        .optional()?;
    let delta = Delta {
        kv_keys: i64::from(old.is_none()),
        docs: 0,
        bytes: (key.len() + value_json.len()) as i64 - old.unwrap_or(0),
    };
    let held = usage::usage(&tx, site)?;
    if usage::check(site, held, delta, q).is_err() && delete_expired_of(&tx, site, now_ms)? > 0 {
        usage::check(site, usage::usage(&tx, site)?, delta, q)?;
    } else {
        usage::check(site, held, delta, q)?;
    }
    tx.prepare_cached(
        "INSERT INTO app_kv (site, key, value, expires_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (site, key) DO UPDATE SET value = ?3, expires_at = ?4",
    )?
    .execute(params![site, key, value_json, expires_at_ms])?;
    usage::apply(&tx, site, delta)?;
    tx.commit()?;
    Ok(())
}

/// Deletes `key`; whether it was there (an expired row counts as not there).
pub fn kv_delete(conn: &mut Connection, site: &str, key: &str) -> Result<bool, StoreError> {
    check_key(key)?;
    let now_ms = crate::platform::clock::unix_now_ms();
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let deleted: Option<(i64, Option<i64>)> = tx
        .prepare_cached(
            "DELETE FROM app_kv WHERE site = ?1 AND key = ?2
             RETURNING octet_length(key) + octet_length(value), expires_at",
        )?
        .query_row(params![site, key], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((bytes, expires_at)) = deleted else {
        return Ok(false);
    };
    usage::apply(&tx, site, removed(1, bytes))?;
    tx.commit()?;
    Ok(expires_at.is_none_or(|at| at > now_ms))
}

/// Deletes up to `limit` rows expired at `now_ms`, of every site, giving their usage back
/// (inside the caller's transaction). Returns how many went.
pub(super) fn delete_expired(conn: &Connection, now_ms: i64, limit: u64) -> rusqlite::Result<u64> {
    let mut per_site: HashMap<String, (i64, i64)> = HashMap::new();
    let mut stmt = conn.prepare_cached(
        "DELETE FROM app_kv WHERE (site, key) IN (
             SELECT site, key FROM app_kv WHERE expires_at <= ?1 LIMIT ?2)
         RETURNING site, octet_length(key) + octet_length(value)",
    )?;
    let rows = stmt.query_map(params![now_ms, limit as i64], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    for row in rows {
        let (site, bytes) = row?;
        let entry = per_site.entry(site).or_default();
        entry.0 += 1;
        entry.1 += bytes;
    }
    let mut total = 0;
    for (site, (keys, bytes)) in per_site {
        usage::apply(conn, &site, removed(keys, bytes))?;
        total += keys as u64;
    }
    Ok(total)
}

/// Deletes `site`'s rows expired at `now_ms` (inside the caller's transaction).
fn delete_expired_of(conn: &Connection, site: &str, now_ms: i64) -> rusqlite::Result<u64> {
    let sizes: Vec<i64> = conn
        .prepare_cached(
            "DELETE FROM app_kv WHERE site = ?1 AND expires_at <= ?2
             RETURNING octet_length(key) + octet_length(value)",
        )?
        .query_map(params![site, now_ms], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let (keys, bytes) = (sizes.len() as i64, sizes.iter().sum::<i64>());
    usage::apply(conn, site, removed(keys, bytes))?;
    Ok(keys as u64)
}

fn removed(keys: i64, bytes: i64) -> Delta {
    Delta {
        kv_keys: -keys,
        docs: 0,
        bytes: -bytes,
    }
}

fn check_key(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > KEY_MAX_BYTES {
        return Err(StoreError::Invalid(format!(
            "a kv key must be 1 to {KEY_MAX_BYTES} bytes long, not {}",
            key.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn the_end_of_a_prefix_is_the_least_string_above_it() {
        assert_eq!(prefix_end("ab").as_deref(), Some("ac"));
        assert_eq!(prefix_end("a%").as_deref(), Some("a&"));
        assert_eq!(prefix_end("").as_deref(), None);
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end("\u{D7FF}").as_deref(), Some("\u{E000}"));
    }
}
