//! Managing short links and webhooks (admin API): validation and the SQL, run by the
//! writer for changes and on the admin thread's reader for listings.

use crate::db::DbError;
use rusqlite::{params, Connection};
use serde_json::{json, Value};

/// Slugs and webhook endpoint names: what fits in one URL path segment unescaped.
pub fn validate_name(what: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok && name != "." && name != ".." {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} '{name}': use 1 to 64 letters, digits, '-', '_' or '.'"
        ))
    }
}

/// Redirect destinations: absolute `http`/`https` URLs with a host, no whitespace.
pub fn validate_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            format!("invalid url '{url}': only http:// and https:// destinations are allowed")
        })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || url.len() > 2048
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "invalid url '{url}': it needs a host and no spaces, at most 2048 characters"
        ));
    }
    Ok(())
}

pub fn list_redirects(conn: &Connection) -> Result<Value, DbError> {
    let mut stmt =
        conn.prepare_cached("SELECT slug, url, tags, created_at FROM redirects ORDER BY slug")?;
    let rows = stmt
        .query_map([], |row| {
            Ok(json!({
                "slug": row.get::<_, String>(0)?,
                "url": row.get::<_, String>(1)?,
                "tags": super::ingest::split_tags(&row.get::<_, Option<String>>(2)?.unwrap_or_default()),
                "created_at": row.get::<_, i64>(3)?,
            }))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(json!({ "redirects": rows }))
}

/// Creates or replaces a short link.
pub fn put_redirect(
    conn: &Connection,
    slug: &str,
    url: &str,
    tags: &[String],
) -> Result<(), DbError> {
    let tags = (!tags.is_empty()).then(|| tags.join(","));
    conn.execute(
        "INSERT INTO redirects (slug, url, tags, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (slug) DO UPDATE SET url = excluded.url, tags = excluded.tags",
        params![slug, url, tags, crate::platform::clock::unix_now()],
    )?;
    Ok(())
}

pub fn delete_redirect(conn: &Connection, slug: &str) -> Result<bool, DbError> {
    Ok(conn.execute("DELETE FROM redirects WHERE slug = ?1", params![slug])? > 0)
}

pub fn list_webhooks(conn: &Connection) -> Result<Value, DbError> {
    let mut stmt = conn.prepare_cached(
        "SELECT endpoint, secret, active, created_at FROM webhooks ORDER BY endpoint",
    )?;
    let rows = stmt
        .query_map([], |row| {
            let secret: Option<String> = row.get(1)?;
            Ok(json!({
                "endpoint": row.get::<_, String>(0)?,
                "signed": secret.is_some_and(|s| !s.is_empty()),
                "active": row.get::<_, bool>(2)?,
                "created_at": row.get::<_, i64>(3)?,
            }))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(json!({ "webhooks": rows }))
}

/// What an edit does to a webhook's secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretChange {
    /// Leave the stored secret (none for a new webhook).
    Keep,
    Remove,
    Set(String),
}

/// Creates a webhook endpoint or changes one: the secret as `secret` says, `active` when
/// given (a new webhook is active). Returns whether it is now signed and active. The
/// secret is never returned by listings.
pub fn put_webhook(
    conn: &Connection,
    endpoint: &str,
    secret: &SecretChange,
    active: Option<bool>,
) -> Result<(bool, bool), DbError> {
    let (change_secret, new_secret) = match secret {
        SecretChange::Keep => (false, None),
        SecretChange::Remove => (true, None),
        SecretChange::Set(s) => (true, Some(s.as_str())),
    };
    conn.execute(
        "INSERT INTO webhooks (endpoint, secret, active, created_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (endpoint) DO UPDATE SET
             secret = CASE WHEN ?5 THEN excluded.secret ELSE secret END,
             active = CASE WHEN ?6 THEN excluded.active ELSE active END",
        params![
            endpoint,
            new_secret,
            active.unwrap_or(true),
            crate::platform::clock::unix_now(),
            change_secret,
            active.is_some(),
        ],
    )?;
    Ok(conn.query_row(
        "SELECT coalesce(secret, '') != '', active FROM webhooks WHERE endpoint = ?1",
        params![endpoint],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )?)
}

pub fn delete_webhook(conn: &Connection, endpoint: &str) -> Result<bool, DbError> {
    Ok(conn.execute(
        "DELETE FROM webhooks WHERE endpoint = ?1",
        params![endpoint],
    )? > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_urls() {
        assert!(validate_name("slug", "promo-2026_a.b").is_ok());
        for bad in ["", "a/b", "a b", "..", "é", &"x".repeat(65)] {
            assert!(validate_name("slug", bad).is_err(), "{bad}");
        }
        assert!(validate_url("https://example.com/x?y#z").is_ok());
        assert!(validate_url("http://a.b").is_ok());
        for bad in [
            "javascript:alert(1)",
            "ftp://x",
            "https://",
            "https:///x",
            "https://a b",
            "//x.com",
        ] {
            assert!(validate_url(bad).is_err(), "{bad}");
        }
    }
}
