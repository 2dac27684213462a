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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::users;
    use crate::keys::Scopes;

    const POLICY: SessionPolicy = SessionPolicy {
        idle: 100,
        remember: 1000,
    };

    fn db_with_user() -> (Connection, User) {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate::run(&mut conn).unwrap();
        let user =
            users::set_password(&mut conn, "owner", "$argon2id$x", &Scopes::owner(), 0).unwrap();
        (conn, user)
    }

    /// The clock is the `now` each call is given: expiry is tested without waiting.
    #[test]
    fn a_session_ends_after_its_idle_time_and_use_moves_that_on() {
        let (conn, user) = db_with_user();
        let (session, token) =
            create(&conn, &user, false, "Firefox", "10.0.0.1", 1000, POLICY).unwrap();
        assert_eq!(session.expires_at, 1100);
        assert!(lookup(&conn, &token, 1099).unwrap().is_some());
        assert!(
            lookup(&conn, &token, 1100).unwrap().is_none(),
            "ends at its expiry"
        );
        touch(&conn, &session.id, 1090, POLICY).unwrap();
        let alive = lookup(&conn, &token, 1150)
            .unwrap()
            .expect("used at 1090: until 1190");
        assert_eq!((alive.last_seen, alive.expires_at), (1090, 1190));
        assert!(lookup(&conn, &token, 1190).unwrap().is_none());

        let (kept, kept_token) =
            create(&conn, &user, true, "Firefox", "10.0.0.1", 1000, POLICY).unwrap();
        assert_eq!(kept.expires_at, 2000, "remember me: the longer idle time");
        touch(&conn, &kept.id, 1500, POLICY).unwrap();
        assert!(lookup(&conn, &kept_token, 2400).unwrap().is_some());
        assert_eq!(prune(&conn, 2400).unwrap(), 1, "the short one is gone");
        assert_eq!(list(&conn, 2400).unwrap().len(), 1);
    }

    #[test]
    fn tokens_are_stored_hashed_and_only_their_own_format_is_looked_up() {
        let (conn, user) = db_with_user();
        let (session, token) = create(&conn, &user, false, "x\u{7}\ny", "::1", 0, POLICY).unwrap();
        assert!(token.starts_with("fzs_") && token.len() == 4 + 64);
        assert_eq!(session.device, "xy", "control characters are dropped");
        let stored: Vec<u8> = conn
            .query_row("SELECT token_sha256 FROM sessions", [], |r| r.get(0))
            .unwrap();
        assert_eq!(stored, digest(&token));
        assert!(!String::from_utf8_lossy(&stored).contains(&token[4..]));
        assert!(lookup(&conn, &token[4..], 1).unwrap().is_none());
        assert!(revoke(&conn, &session.id).unwrap());
        assert!(lookup(&conn, &token, 1).unwrap().is_none());
    }

    #[test]
    fn a_new_password_ends_the_users_sessions() {
        let (mut conn, user) = db_with_user();
        let (_, token) = create(&conn, &user, false, "d", "ip", 0, POLICY).unwrap();
        users::set_password(&mut conn, "OWNER", "$argon2id$y", &Scopes::owner(), 5).unwrap();
        assert!(lookup(&conn, &token, 1).unwrap().is_none());
        let (found, hash) = users::find(&conn, "owner").unwrap().unwrap();
        assert_eq!(
            (found.id, hash.as_str()),
            (user.id, "$argon2id$y"),
            "one account, any case"
        );
    }
}
