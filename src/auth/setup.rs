//! The first-run setup link: a one-time token, valid for a day, that lets whoever holds it
//! choose the owner's username and password. Printed by the server when no user exists.

use crate::db::{Context, DbError};
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

/// How long a setup link works.
pub const SETUP_VALID_SECS: i64 = 24 * 3600;

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Makes a new setup token (older ones stay valid until they expire or one is used).
pub fn create(conn: &Connection, now: i64) -> Result<String, DbError> {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut random = [0u8; 24];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| DbError::Internal("no random numbers for the setup token".into()))?;
    let token = crate::platform::units::hex(&random);
    conn.execute(
        "INSERT INTO setup_tokens (token_sha256, expires_at) VALUES (?1, ?2)",
        params![&digest(&token)[..], now + SETUP_VALID_SECS],
    )
    .context("storing the setup token")?;
    Ok(token)
}

/// Whether `token` is a setup token valid at `now` (without using it).
pub fn is_valid(conn: &Connection, token: &str, now: i64) -> Result<bool, DbError> {
    conn.query_row(
        "SELECT EXISTS(SELECT 1 FROM setup_tokens WHERE token_sha256 = ?1 AND expires_at > ?2)",
        params![&digest(token)[..], now],
        |row| row.get(0),
    )
    .context("reading the setup token")
}

/// Uses `token`: true, and every setup token is gone, if it was valid at `now`.
pub fn consume(conn: &Connection, token: &str, now: i64) -> Result<bool, DbError> {
    if !is_valid(conn, token, now)? {
        return Ok(false);
    }
    conn.execute("DELETE FROM setup_tokens", [])
        .context("using the setup token")?;
    Ok(true)
}
