//! The ACME account and the certificates in SQLite (migration 7). Writes go through the
//! writer (`WriterHandle::call`: the certificate thread may block, core threads never call
//! these); reads take the caller's read connection. A stored key is meant for the TLS
//! certificate store only, through [`CertRecord::certified_key`]; `Debug` never shows it.

use super::client::Issued;
use super::schedule;
use super::AcmeError;
use crate::db::writer::WriterHandle;
use crate::db::{Context, DbError};
use rusqlite::{params, Connection, OptionalExtension, Row};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::sign::CertifiedKey;

/// The account fazt holds at one ACME directory.
#[derive(Clone)]
pub struct AccountRecord {
    pub directory_url: String,
    pub key_pem: String,
    pub account_url: String,
    pub created_at: i64,
}

impl std::fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("directory_url", &self.directory_url)
            .field("account_url", &self.account_url)
            .finish_non_exhaustive()
    }
}

/// One name's certificate state. `chain_pem`/`key_pem`/validity are `None` until a
/// certificate was obtained; a failure never clears them.
#[derive(Clone, PartialEq, Eq)]
pub struct CertRecord {
    pub name: String,
    pub chain_pem: Option<String>,
    pub key_pem: Option<String>,
    pub not_before: Option<i64>,
    pub not_after: Option<i64>,
    pub issued_at: Option<i64>,
    pub last_error: Option<String>,
    pub last_attempt: Option<i64>,
    /// Failed attempts since the last success.
    pub failures: u32,
    pub next_attempt: i64,
}

impl CertRecord {
    /// The certificate and key as rustls serves them, for the TLS certificate store: the
    /// one way a stored key leaves the database. Checks that the key belongs to the leaf.
    pub fn certified_key(&self) -> Result<CertifiedKey, AcmeError> {
        let bad = |what: String| {
            AcmeError::Crypto(format!("the stored certificate of {}: {what}", self.name))
        };
        let (Some(chain), Some(key)) = (&self.chain_pem, &self.key_pem) else {
            return Err(bad("none obtained yet".into()));
        };
        let chain = super::der::chain_der(chain).map_err(bad)?;
        let key =
            PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| bad(format!("{e:?}")))?;
        crate::http::tls::certified_key(chain, &key).map_err(bad)
    }
}

impl std::fmt::Debug for CertRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertRecord")
            .field("name", &self.name)
            .field("has_chain", &self.chain_pem.is_some())
            .field("not_after", &self.not_after)
            .field("issued_at", &self.issued_at)
            .field("last_error", &self.last_error)
            .field("last_attempt", &self.last_attempt)
            .field("failures", &self.failures)
            .field("next_attempt", &self.next_attempt)
            .finish_non_exhaustive()
    }
}

const CERT_COLUMNS: &str = "name, chain_pem, key_pem, not_before, not_after, issued_at, \
                            last_error, last_attempt, failures, next_attempt";

fn cert_from_row(row: &Row) -> rusqlite::Result<CertRecord> {
    Ok(CertRecord {
        name: row.get(0)?,
        chain_pem: row.get(1)?,
        key_pem: row.get(2)?,
        not_before: row.get(3)?,
        not_after: row.get(4)?,
        issued_at: row.get(5)?,
        last_error: row.get(6)?,
        last_attempt: row.get(7)?,
        failures: row.get(8)?,
        next_attempt: row.get(9)?,
    })
}

pub fn load_account(
    conn: &Connection,
    directory_url: &str,
) -> Result<Option<AccountRecord>, DbError> {
    conn.query_row(
        "SELECT directory_url, key_pem, account_url, created_at FROM acme_accounts \
         WHERE directory_url = ?1",
        [directory_url],
        |row| {
            Ok(AccountRecord {
                directory_url: row.get(0)?,
                key_pem: row.get(1)?,
                account_url: row.get(2)?,
                created_at: row.get(3)?,
            })
        },
    )
    .optional()
    .context("reading the ACME account")
}

/// Stores (or replaces) the account for its directory.
pub fn save_account(writer: &WriterHandle, account: AccountRecord) -> Result<(), DbError> {
    writer.call(move |conn| {
        conn.execute(
            "INSERT OR REPLACE INTO acme_accounts (directory_url, key_pem, account_url, created_at) \
             VALUES (?1, ?2, ?3, ?4)",
            params![account.directory_url, account.key_pem, account.account_url, account.created_at],
        )
        .context("storing the ACME account")?;
        Ok(())
    })
}

pub fn load_cert(conn: &Connection, name: &str) -> Result<Option<CertRecord>, DbError> {
    conn.query_row(
        &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE name = ?1"),
        [name],
        cert_from_row,
    )
    .optional()
    .context("reading a certificate")
}

/// Every name, in name order (for `fazt certs`).
pub fn list_certs(conn: &Connection) -> Result<Vec<CertRecord>, DbError> {
    let mut statement = conn
        .prepare(&format!(
            "SELECT {CERT_COLUMNS} FROM certificates ORDER BY name"
        ))
        .context("listing certificates")?;
    let rows = statement
        .query_map([], cert_from_row)
        .context("listing certificates")?;
    rows.collect::<rusqlite::Result<_>>()
        .context("listing certificates")
}

/// Names whose next attempt is due at `now`, soonest first, at most `limit`.
pub fn due_names(conn: &Connection, now: i64, limit: u32) -> Result<Vec<String>, DbError> {
    let mut statement = conn
        .prepare(
            "SELECT name FROM certificates WHERE next_attempt <= ?1 \
             ORDER BY next_attempt, name LIMIT ?2",
        )
        .context("finding due certificates")?;
    let rows = statement
        .query_map(params![now, limit], |row| row.get(0))
        .context("finding due certificates")?;
    rows.collect::<rusqlite::Result<_>>()
        .context("finding due certificates")
}

/// When the soonest attempt is due, if any name is known.
pub fn next_due(conn: &Connection) -> Result<Option<i64>, DbError> {
    conn.query_row("SELECT MIN(next_attempt) FROM certificates", [], |row| {
        row.get(0)
    })
    .context("finding the next certificate attempt")
}

/// Every known name (held or wanted), lower-case.
pub fn names(conn: &Connection) -> Result<Vec<String>, DbError> {
    let mut statement = conn
        .prepare("SELECT name FROM certificates ORDER BY name")
        .context("listing certificate names")?;
    let rows = statement
        .query_map([], |row| row.get(0))
        .context("listing certificate names")?;
    rows.collect::<rusqlite::Result<_>>()
        .context("listing certificate names")
}

/// Makes every name due at `now`: the CA changed, so the certificates of the old one are
/// replaced (and served until then). A renewal of one name (`fazt certs renew`) needs no
/// row change: the certificate thread attempts it at once.
pub fn all_due_now(writer: &WriterHandle, now: i64) -> Result<(), DbError> {
    writer.call(move |conn| {
        conn.execute("UPDATE certificates SET next_attempt = ?1", [now])
            .context("scheduling certificate renewals")?;
        Ok(())
    })
}

/// Adds `name` as wanted now (a site was created); a name already known is left alone.
pub fn want(writer: &WriterHandle, name: &str, now: i64) -> Result<(), DbError> {
    let name = name.to_ascii_lowercase();
    writer.call(move |conn| {
        conn.execute(
            "INSERT OR IGNORE INTO certificates (name, next_attempt) VALUES (?1, ?2)",
            params![name, now],
        )
        .context("adding a certificate name")?;
        Ok(())
    })
}

/// Forgets `name` and its certificate (its site was deleted): it is never renewed again.
/// Returns whether it was known.
pub fn forget(writer: &WriterHandle, name: &str) -> Result<bool, DbError> {
    let name = name.to_ascii_lowercase();
    writer.call(move |conn| {
        let n = conn
            .execute("DELETE FROM certificates WHERE name = ?1", [name])
            .context("forgetting a certificate")?;
        Ok(n > 0)
    })
}

/// Stores a new certificate for its name at `now`, clears the failure state and schedules
/// the renewal (jittered with `random`). Returns the stored record.
pub fn save_issued(
    writer: &WriterHandle,
    issued: &Issued,
    now: i64,
    random: u64,
) -> Result<CertRecord, DbError> {
    let renew = schedule::renew_at(issued.not_before, issued.not_after);
    let record = CertRecord {
        name: issued.name.clone(),
        chain_pem: Some(issued.chain_pem.clone()),
        key_pem: Some(issued.key_pem.clone()),
        not_before: Some(issued.not_before),
        not_after: Some(issued.not_after),
        issued_at: Some(now),
        last_error: None,
        last_attempt: Some(now),
        failures: 0,
        next_attempt: schedule::jittered(renew, now, random),
    };
    let stored = record.clone();
    writer.call(move |conn| {
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO certificates ({CERT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
            params![
                record.name,
                record.chain_pem,
                record.key_pem,
                record.not_before,
                record.not_after,
                record.issued_at,
                record.last_error,
                record.last_attempt,
                record.failures,
                record.next_attempt
            ],
        )
        .context("storing a certificate")?;
        Ok(())
    })?;
    Ok(stored)
}

/// Records a failed attempt at `now`: the error, one more failure, and the next attempt
/// after the backoff. A certificate already held stays as it is. Returns the record.
pub fn record_failure(
    writer: &WriterHandle,
    name: &str,
    error: &str,
    now: i64,
    random: u64,
) -> Result<CertRecord, DbError> {
    let (name, error) = (name.to_ascii_lowercase(), error.to_string());
    writer.call(move |conn| {
        let tx = conn
            .transaction()
            .context("recording a certificate failure")?;
        let failures: u32 = tx
            .query_row(
                "SELECT failures FROM certificates WHERE name = ?1",
                [&name],
                |row| row.get(0),
            )
            .optional()
            .context("recording a certificate failure")?
            .unwrap_or(0);
        let failures = failures.saturating_add(1);
        let next = schedule::next_after_failure(now, failures, random);
        tx.execute(
            "INSERT INTO certificates (name, last_error, last_attempt, failures, next_attempt) \
             VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT(name) DO UPDATE SET last_error = ?2, last_attempt = ?3, \
             failures = ?4, next_attempt = ?5",
            params![name, error, now, failures, next],
        )
        .context("recording a certificate failure")?;
        let record = tx
            .query_row(
                &format!("SELECT {CERT_COLUMNS} FROM certificates WHERE name = ?1"),
                [&name],
                cert_from_row,
            )
            .context("recording a certificate failure")?;
        tx.commit().context("recording a certificate failure")?;
        Ok(record)
    })
}
