//! Browser sessions: an opaque random token in the `fazt_session` cookie, its sha-256 in
//! the database (a stolen database opens no browser), an idle expiry that slides forward
//! on use, and an id for listing and revoking without the token.

use super::users::User;
use crate::db::{Context, DbError};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// The cookie's name.
pub const COOKIE: &str = "fazt_session";

/// How long a session lives unused (`FAZT_SESSION_IDLE`, `FAZT_SESSION_REMEMBER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Seconds; each use moves the expiry this far ahead.
    pub idle: i64,
    /// Seconds, for "remember me".
    pub remember: i64,
}

impl SessionPolicy {
    pub fn idle_for(&self, remember: bool) -> i64 {
        if remember {
            self.remember
        } else {
            self.idle
        }
    }
}

/// A live session with its user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user: User,
    pub remember: bool,
    pub created_at: i64,
    pub last_seen: i64,
    pub expires_at: i64,
    pub device: String,
    pub ip: String,
}

impl Session {
    pub fn to_json(&self, current: Option<&str>) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "username": self.user.username, "remember": self.remember,
            "created_at": self.created_at, "last_seen": self.last_seen,
            "expires_at": self.expires_at, "device": self.device, "ip": self.ip,
            "current": current == Some(self.id.as_str()),
        })
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_hex(bytes: usize) -> Result<String, DbError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut random = vec![0u8; bytes];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| DbError::Internal("no random numbers for a session".into()))?;
    Ok(crate::platform::units::hex(&random))
}

/// Starts a session for `user`; returns it and the token for the cookie (shown once).
pub fn create(
    conn: &Connection,
    user: &User,
    remember: bool,
    device: &str,
    ip: &str,
    now: i64,
    policy: SessionPolicy,
) -> Result<(Session, String), DbError> {
    let id = random_hex(8)?;
    let token = format!("fzs_{}", random_hex(32)?);
    let expires_at = now + policy.idle_for(remember);
    // A User-Agent is the client's to fill: keep a readable bounded piece.
    let device: String = device
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    conn.execute(
        "INSERT INTO sessions (id, token_sha256, user_id, remember, created_at, last_seen, \
         expires_at, device, ip) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?6, ?7, ?8)",
        params![
            id,
            &digest(&token)[..],
            user.id,
            remember,
            now,
            expires_at,
            device,
            ip
        ],
    )
    .context("starting a session")?;
    let session = Session {
        id,
        user: user.clone(),
        remember,
        created_at: now,
        last_seen: now,
        expires_at,
        device,
        ip: ip.to_string(),
    };
    Ok((session, token))
}

const SELECT: &str = "SELECT s.id, s.remember, s.created_at, s.last_seen, s.expires_at, \
     s.device, s.ip, u.id, u.username, u.scope, u.created_at, u.password_changed_at \
     FROM sessions s JOIN users u ON u.id = s.user_id";

fn from_row(row: &rusqlite::Row) -> rusqlite::Result<Session> {
    Ok(Session {
        id: row.get(0)?,
        remember: row.get(1)?,
        created_at: row.get(2)?,
        last_seen: row.get(3)?,
        expires_at: row.get(4)?,
        device: row.get(5)?,
        ip: row.get(6)?,
        user: User {
            id: row.get(7)?,
            username: row.get(8)?,
            scope: row.get(9)?,
            created_at: row.get(10)?,
            password_changed_at: row.get(11)?,
        },
    })
}

/// The live session a cookie's token opens at `now`, if any.
pub fn lookup(conn: &Connection, token: &str, now: i64) -> Result<Option<Session>, DbError> {
    if !token.starts_with("fzs_") {
        return Ok(None);
    }
    conn.query_row(
        &format!("{SELECT} WHERE s.token_sha256 = ?1 AND s.expires_at > ?2"),
        params![&digest(token)[..], now],
        from_row,
    )
    .optional()
    .context("reading a session")
}

/// Records a use at `now`: the idle expiry moves forward.
pub fn touch(conn: &Connection, id: &str, now: i64, policy: SessionPolicy) -> Result<(), DbError> {
    conn.execute(
        "UPDATE sessions SET last_seen = ?2, \
         expires_at = ?2 + CASE remember WHEN 1 THEN ?4 ELSE ?3 END WHERE id = ?1",
        params![id, now, policy.idle, policy.remember],
    )
    .context("recording a session's use")?;
    Ok(())
}

/// Ends a session by its id; false when there was none.
pub fn revoke(conn: &Connection, id: &str) -> Result<bool, DbError> {
    let n = conn
        .execute("DELETE FROM sessions WHERE id = ?1", [id])
        .context("ending a session")?;
    Ok(n > 0)
}

/// The live sessions, most recently used first.
pub fn list(conn: &Connection, now: i64) -> Result<Vec<Session>, DbError> {
    let mut statement = conn
        .prepare(&format!(
            "{SELECT} WHERE s.expires_at > ?1 ORDER BY s.last_seen DESC, s.id"
        ))
        .context("listing sessions")?;
    let rows = statement
        .query_map([now], from_row)
        .context("listing sessions")?;
    rows.collect::<rusqlite::Result<_>>()
        .context("listing sessions")
}

/// Deletes expired sessions; returns how many.
pub fn prune(conn: &Connection, now: i64) -> Result<usize, DbError> {
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])
        .context("deleting expired sessions")
}
