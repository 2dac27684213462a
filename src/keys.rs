//! API keys, stored in SQLite (`api_keys`). Only the sha-256 of a token is stored. A token
//! names its key's id (`fzt_<id>_<secret>`), so lookup is one primary-key probe and the
//! hash comparison is constant-time.

use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::io::Read;

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "scope": self.scope,
            "created_at": self.created_at, "last_used_at": self.last_used_at,
        })
    }
}

/// The key a token belongs to, if the token is valid.
pub fn authenticate(conn: &Connection, token: &str) -> rusqlite::Result<Option<ApiKey>> {
    let Some(id) = token
        .strip_prefix("fzt_")
        .and_then(|rest| rest.split('_').next())
    else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, scope, created_at, last_used_at, token_sha256 FROM api_keys WHERE id = ?1",
    )?;
    let row = stmt
        .query_row(params![id], |row| {
            let stored: Vec<u8> = row.get(5)?;
            Ok((key_from_row(row)?, stored))
        })
        .optional()?;
    let Some((key, stored)) = row else {
        return Ok(None);
    };
    let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    Ok(constant_time_eq(&presented, &stored).then_some(key))
}

fn key_from_row(row: &rusqlite::Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: row.get(0)?,
        name: row.get(1)?,
        scope: row.get(2)?,
        created_at: row.get(3)?,
        last_used_at: row.get(4)?,
    })
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, scope, created_at, last_used_at FROM api_keys ORDER BY created_at, id",
    )?;
    let keys = stmt.query_map([], key_from_row)?.collect();
    keys
}

/// Creates a key and returns it with its token, which is never stored.
pub fn create(conn: &Connection, name: &str, scope: &str) -> rusqlite::Result<(ApiKey, String)> {
    let mut random = [0u8; 36];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let id = hex(&random[..4]);
    let token = format!("fzt_{id}_{}", hex(&random[4..]));
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let now = crate::clock::unix_now();
    conn.execute(
        "INSERT INTO api_keys (id, name, scope, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, name, scope, &digest[..], now],
    )?;
    let key = ApiKey {
        id,
        name: name.to_string(),
        scope: scope.to_string(),
        created_at: now,
        last_used_at: None,
    };
    Ok((key, token))
}

/// Removes a key; false when no key has that id.
pub fn revoke(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM api_keys WHERE id = ?1", params![id])? > 0)
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Validates a key name given by a person: printable, ≤ 64 chars.
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(format!(
            "invalid key name '{name}': use 1 to 64 printable characters"
        ));
    }
    Ok(())
}

fn constant_time_eq(a: &[u8; 32], b: &[u8]) -> bool {
    if b.len() != 32 {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // black_box stops the compiler from turning the fold into an early-exit comparison.
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(include_str!("../migrations/001_initial.sql"))
            .unwrap();
        conn
    }

    #[test]
    fn create_authenticate_revoke() {
        let conn = db();
        let (key, token) = create(&conn, "laptop", "owner").unwrap();
        assert!(token.starts_with(&format!("fzt_{}_", key.id)));
        assert_eq!(
            authenticate(&conn, &token).unwrap().map(|k| k.id),
            Some(key.id.clone())
        );
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('0') { '1' } else { '0' });
        assert!(authenticate(&conn, &tampered).unwrap().is_none());
        assert!(authenticate(&conn, "nonsense").unwrap().is_none());
        assert_eq!(list(&conn).unwrap().len(), 1);
        assert!(revoke(&conn, &key.id).unwrap());
        assert!(!revoke(&conn, &key.id).unwrap());
        assert!(authenticate(&conn, &token).unwrap().is_none());
    }

    #[test]
    fn names() {
        assert!(validate_name("ci deploy").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\tb").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
    }
}
