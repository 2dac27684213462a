//! Dashboard accounts: a username, an Argon2id password hash and a scope written like an
//! API key's (`owner`, `deploy:*`, `deploy:<site>`).

use crate::db::{Context, DbError};
use crate::keys::Scopes;
use rusqlite::{params, Connection, OptionalExtension};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub scope: String,
    pub created_at: i64,
    pub password_changed_at: i64,
}

impl User {
    pub fn scopes(&self) -> Scopes {
        Scopes::from_stored(&self.scope)
    }
}

/// Usernames: 1 to 64 letters, digits, `.`, `_`, `-` or `@` (an e-mail address works).
pub fn validate_username(name: &str) -> Result<(), String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@');
    if name.is_empty() || name.len() > 64 || !name.chars().all(allowed) {
        return Err(format!(
            "invalid username '{name}': use 1 to 64 letters, digits, '.', '_', '-' or '@'"
        ));
    }
    Ok(())
}

const COLUMNS: &str = "id, username, scope, created_at, password_changed_at";

fn from_row(row: &rusqlite::Row) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        scope: row.get(2)?,
        created_at: row.get(3)?,
        password_changed_at: row.get(4)?,
    })
}

/// A user and their password hash, by username (any case).
pub fn find(conn: &Connection, username: &str) -> Result<Option<(User, String)>, DbError> {
    conn.query_row(
        &format!("SELECT {COLUMNS}, password_hash FROM users WHERE username = ?1"),
        [username],
        |row| Ok((from_row(row)?, row.get(5)?)),
    )
    .optional()
    .context("reading a user")
}

/// Every account, by username.
pub fn list(conn: &Connection) -> Result<Vec<User>, DbError> {
    let mut statement = conn
        .prepare(&format!("SELECT {COLUMNS} FROM users ORDER BY username"))
        .context("listing users")?;
    let rows = statement.query_map([], from_row).context("listing users")?;
    rows.collect::<rusqlite::Result<_>>()
        .context("listing users")
}

/// Deletes an account and its sessions; false when there was none.
pub fn delete(conn: &Connection, username: &str) -> Result<bool, DbError> {
    let n = conn
        .execute("DELETE FROM users WHERE username = ?1", [username])
        .context("deleting a user")?;
    Ok(n > 0)
}

pub fn count(conn: &Connection) -> Result<u64, DbError> {
    conn.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0))
        .context("counting users")
}

/// Creates `username` with `password_hash` and `scopes`, or sets the password (and scope)
/// of the existing one; returns the user. Sessions of a user whose password changes are
/// ended (a stolen session must not outlive the password change).
pub fn set_password(
    conn: &mut Connection,
    username: &str,
    password_hash: &str,
    scopes: &Scopes,
    now: i64,
) -> Result<User, DbError> {
    let tx = conn.transaction().context("setting a password")?;
    tx.execute(
        "INSERT INTO users (username, password_hash, scope, created_at, password_changed_at) \
         VALUES (?1, ?2, ?3, ?4, ?4) \
         ON CONFLICT(username) DO UPDATE SET password_hash = ?2, scope = ?3, \
         password_changed_at = ?4",
        params![username, password_hash, scopes.to_string(), now],
    )
    .context("setting a password")?;
    let user = tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM users WHERE username = ?1"),
            [username],
            from_row,
        )
        .context("setting a password")?;
    tx.execute("DELETE FROM sessions WHERE user_id = ?1", [user.id])
        .context("ending the sessions of a changed password")?;
    tx.commit().context("setting a password")?;
    Ok(user)
}
