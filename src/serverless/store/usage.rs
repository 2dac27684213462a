//! What each site holds of its quotas (`app_usage`), changed in the transaction of the write
//! that changes the rows, and the quota checks with their messages.

use super::{Quotas, StoreError};
use rusqlite::{params, Connection, OptionalExtension};

/// What a site holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub kv_keys: u64,
    pub docs: u64,
    /// kv keys and values, doc ids and documents.
    pub bytes: u64,
}

/// What `site` holds (zeros for a site that never stored anything).
pub fn usage(conn: &Connection, site: &str) -> rusqlite::Result<Usage> {
    let row = conn
        .prepare_cached("SELECT kv_keys, docs, bytes FROM app_usage WHERE site = ?1")?
        .query_row([site], |r| {
            Ok(Usage {
                kv_keys: r.get::<_, i64>(0)?.max(0) as u64,
                docs: r.get::<_, i64>(1)?.max(0) as u64,
                bytes: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

/// A change of a site's usage.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Delta {
    pub kv_keys: i64,
    pub docs: i64,
    pub bytes: i64,
}

/// Adds `delta` to `site`'s counters (inside the caller's transaction).
pub(super) fn apply(conn: &Connection, site: &str, delta: Delta) -> rusqlite::Result<()> {
    if delta.kv_keys == 0 && delta.docs == 0 && delta.bytes == 0 {
        return Ok(());
    }
    conn.prepare_cached(
        "INSERT INTO app_usage (site, kv_keys, docs, bytes) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (site) DO UPDATE SET kv_keys = kv_keys + ?2, docs = docs + ?3,
                                          bytes = bytes + ?4",
    )?
    .execute(params![site, delta.kv_keys, delta.docs, delta.bytes])?;
    Ok(())
}

/// Refuses a change that adds keys, documents or bytes past a quota. A change that only
/// shrinks is always allowed, so a site over a lowered limit can still delete its way back.
pub(super) fn check(site: &str, held: Usage, delta: Delta, q: &Quotas) -> Result<(), StoreError> {
    let after = |held: u64, delta: i64| held.saturating_add_signed(delta);
    if delta.kv_keys > 0 && after(held.kv_keys, delta.kv_keys) > q.kv_keys {
        return Err(StoreError::Quota(format!(
            "site {site} holds {} keys, its limit (FAZT_APP_KEYS); delete some or raise the limit",
            held.kv_keys
        )));
    }
    if delta.docs > 0 && after(held.docs, delta.docs) > q.docs {
        return Err(StoreError::Quota(format!(
            "site {site} holds {} documents, its limit (FAZT_APP_DOCS); delete some or raise the \
             limit",
            held.docs
        )));
    }
    if delta.bytes > 0 && after(held.bytes, delta.bytes) > q.bytes {
        return Err(StoreError::Quota(format!(
            "site {site} would hold {} bytes of kv and documents, over its limit of {} \
             (FAZT_APP_BYTES); delete some or raise the limit",
            after(held.bytes, delta.bytes),
            q.bytes
        )));
    }
    Ok(())
}

/// Refuses one value or document larger than [`Quotas::value_bytes`].
pub(super) fn check_value(
    site: &str,
    what: &str,
    len: usize,
    q: &Quotas,
) -> Result<(), StoreError> {
    if len as u64 > q.value_bytes {
        return Err(StoreError::Quota(format!(
            "site {site}: {what} of {len} bytes is larger than the limit of {} bytes \
             (FAZT_APP_VALUE_BYTES)",
            q.value_bytes
        )));
    }
    Ok(())
}
