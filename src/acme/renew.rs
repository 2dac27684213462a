//! One attempt at a name's certificate, as the certificate thread will make it: the account
//! from the database (or a new one), the order, and the outcome stored either way.

use super::client::{AcmeClient, AcmeConfig, Issued};
use super::jws::AccountKey;
use super::store::{self, AccountRecord, CertRecord};
use super::{schedule, AcmeError, ChallengeKind, ChallengePolicy, Challenges};
use crate::db::writer::WriterHandle;
use rusqlite::Connection;
use std::sync::Arc;

/// What the certificate thread needs for an attempt.
pub struct Attempt<'a> {
    pub config: &'a AcmeConfig,
    pub writer: &'a WriterHandle,
    /// The calling thread's read connection.
    pub reader: &'a Connection,
    pub challenges: &'a Arc<Challenges>,
    /// Unix seconds.
    pub now: i64,
}

/// Obtains a certificate for `name` over `kind` and stores it. On failure the error is
/// recorded with the backoff (the certificate already held, if any, is kept) and returned;
/// the record then says when to try next.
pub fn obtain(at: &Attempt, name: &str, kind: ChallengeKind) -> Result<CertRecord, AcmeError> {
    match issue(at, name, kind) {
        Ok(issued) => Ok(store::save_issued(
            at.writer,
            &issued,
            at.now,
            schedule::random_u64(),
        )?),
        Err(error) => {
            let text = error.to_string();
            if let Err(db) =
                store::record_failure(at.writer, name, &text, at.now, schedule::random_u64())
            {
                // The database error is what the caller must act on; the CA's is logged.
                log::warn!("certificate for {name}: {text}; recording it failed: {db}");
                return Err(db.into());
            }
            Err(error)
        }
    }
}

/// A name and what its attempt gave.
pub type Outcome = (String, Result<CertRecord, AcmeError>);

/// Makes an attempt for every name due at `at.now` (at most `limit`, soonest first), one
/// after the other, each with the challenge type `policy` picks after that name's failures
/// so far, and returns each outcome. A name forgotten with [`store::forget`] (its site was
/// deleted) is never due again. Fails only when the due names cannot be read.
pub fn renew_due(
    at: &Attempt,
    policy: impl Into<ChallengePolicy>,
    limit: u32,
) -> Result<Vec<Outcome>, AcmeError> {
    let policy = policy.into();
    let names = store::due_names(at.reader, at.now, limit)?;
    let mut outcomes = Vec::with_capacity(names.len());
    for name in names {
        let failures = store::load_cert(at.reader, &name)?.map_or(0, |r| r.failures);
        let outcome = obtain(at, &name, policy.kind(failures));
        outcomes.push((name, outcome));
    }
    Ok(outcomes)
}

fn issue(at: &Attempt, name: &str, kind: ChallengeKind) -> Result<Issued, AcmeError> {
    let stored = store::load_account(at.reader, &at.config.directory_url)?;
    let key = match &stored {
        Some(account) => AccountKey::from_pem(&account.key_pem)?,
        None => AccountKey::generate()?,
    };
    let mut client = AcmeClient::connect(at.config.clone(), key)?;
    match stored {
        Some(account) => client.set_account_url(Some(account.account_url)),
        None => register(at, &mut client)?,
    }
    match client.issue(name, kind, at.challenges) {
        // The CA forgot the account: register the same key again and retry once.
        Err(e) if e.is_unknown_account() => {
            client.set_account_url(None);
            register(at, &mut client)?;
            client.issue(name, kind, at.challenges)
        }
        outcome => outcome,
    }
}

/// Makes (or finds by its key) the account and stores it for this directory.
fn register(at: &Attempt, client: &mut AcmeClient) -> Result<(), AcmeError> {
    let account_url = client.account()?;
    let record = AccountRecord {
        directory_url: at.config.directory_url.clone(),
        key_pem: client.key().pem().to_string(),
        account_url,
        created_at: at.now,
    };
    Ok(store::save_account(at.writer, record)?)
}
