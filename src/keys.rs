//! API keys, stored in SQLite (`api_keys`). Only the sha-256 of a token is stored. A token
//! names its key's id (`fzt_<id>_<secret>`), so lookup is one primary-key probe and the
//! hash comparison is constant-time; an unknown id is compared against a dummy digest, so
//! it costs the same work. Failed attempts are throttled per client address ([`AuthGuard`]).
//!
//! A key's `scope` column is a comma-separated list of scopes ([`Scopes`]): `owner` may do
//! everything; `deploy:*` and `deploy:<site>` may only manage (deploy, list, roll back,
//! delete) the sites they cover. The system sites `root` and `404` are covered by `owner`
//! alone.

use crate::db::writer::WriterHandle;
use crate::db::Context;
use crate::http::limiter::{retry_after_secs, too_many, Limiter, Rate};
use crate::http::proxies::{client_key, TrustedProxies};
use crate::http::{Request, Response};
use crate::platform::metrics::{Collector, Counter, Desc, Kind, Source};
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Read;
use std::time::Instant;

/// One permission a key carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Everything, including key management and the system sites.
    Owner,
    /// Deploy and manage any site except the system sites.
    DeployAll,
    /// Deploy and manage one site.
    DeploySite(String),
}

impl Scope {
    fn parse(text: &str) -> Result<Scope, String> {
        match text {
            "owner" => return Ok(Scope::Owner),
            "deploy:*" => return Ok(Scope::DeployAll),
            _ => {}
        }
        let Some(site) = text.strip_prefix("deploy:") else {
            return Err(format!(
                "unknown scope '{text}': use owner, deploy:* or deploy:<site>"
            ));
        };
        crate::hosting::store::validate_site_name(site)
            .map_err(|e| format!("scope '{text}': {e}"))?;
        if crate::hosting::store::is_system_site(site) {
            return Err(format!(
                "scope '{text}': the system site '{site}' can only be managed by an owner key"
            ));
        }
        Ok(Scope::DeploySite(site.to_string()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Scope::Owner => f.write_str("owner"),
            Scope::DeployAll => f.write_str("deploy:*"),
            Scope::DeploySite(site) => write!(f, "deploy:{site}"),
        }
    }
}

/// A key's scopes: at least one, no duplicates, in the order given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Scopes(Vec<Scope>);

impl Scopes {
    /// The scope of the owner key created at first start.
    pub fn owner() -> Scopes {
        Scopes(vec![Scope::Owner])
    }

    /// Parses a list given by a person (`owner`, `deploy:*`, `deploy:blog,deploy:shop`):
    /// entries trimmed and lower-cased, duplicates dropped; an empty or unknown entry is
    /// an error naming it.
    pub fn parse(text: &str) -> Result<Scopes, String> {
        let mut scopes = Vec::new();
        for entry in text.split(',') {
            let entry = entry.trim().to_ascii_lowercase();
            if entry.is_empty() {
                return Err(format!(
                    "invalid scope list '{text}': empty entry (use owner, deploy:* or \
                     deploy:<site>, separated by commas)"
                ));
            }
            let scope = Scope::parse(&entry)?;
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(Scopes(scopes))
    }

    /// Scopes as stored. Entries that no longer parse (none should: every write is
    /// validated) grant nothing.
    pub(crate) fn from_stored(text: &str) -> Scopes {
        Scopes(
            text.split(',')
                .filter_map(|entry| Scope::parse(entry.trim()).ok())
                .collect(),
        )
    }

    pub fn is_owner(&self) -> bool {
        self.0.contains(&Scope::Owner)
    }

    /// Whether these scopes allow deploying and managing `site`.
    pub fn can_deploy(&self, site: &str) -> bool {
        if self.is_owner() {
            return true;
        }
        if crate::hosting::store::is_system_site(site) {
            return false;
        }
        self.0.iter().any(|scope| match scope {
            Scope::DeployAll => true,
            Scope::DeploySite(s) => s == site,
            Scope::Owner => false,
        })
    }
}

impl fmt::Display for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, scope) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{scope}")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl ApiKey {
    pub fn scopes(&self) -> Scopes {
        Scopes::from_stored(&self.scope)
    }

    pub fn is_owner(&self) -> bool {
        self.scopes().is_owner()
    }

    /// Whether this key may deploy, list, roll back and delete `site`.
    pub fn can_deploy(&self, site: &str) -> bool {
        self.scopes().can_deploy(site)
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "id": self.id, "name": self.name, "scope": self.scope,
            "created_at": self.created_at, "last_used_at": self.last_used_at,
        })
    }
}

/// The key a token belongs to, if the token is valid.
pub fn authenticate(conn: &Connection, token: &str) -> rusqlite::Result<Option<ApiKey>> {
    authenticate_with(conn, token, token_matches)
}

/// What an unknown key id is compared against: the digest of a token no key can have
/// (ids are hex, this one is not), computed once. An unknown id then costs the same hash
/// and comparison as a known one, so the answer's timing does not say which ids exist.
static UNKNOWN_ID_DIGEST: std::sync::LazyLock<[u8; 32]> =
    std::sync::LazyLock::new(|| Sha256::digest(b"fzt_unknown-id_dummy").into());

/// [`authenticate`], with the digest comparison given (the tests watch what it compares).
/// A failure costs the same whether the id exists or not: one primary-key probe for the
/// 32-byte digest alone, one hash, one comparison. Only once the token has matched is the
/// key itself read (a second probe), since a success's timing tells nothing secret.
fn authenticate_with(
    conn: &Connection,
    token: &str,
    matches: impl FnOnce(&str, &[u8]) -> bool,
) -> rusqlite::Result<Option<ApiKey>> {
    let Some(id) = token
        .strip_prefix("fzt_")
        .and_then(|rest| rest.split('_').next())
    else {
        return Ok(None);
    };
    let stored = conn
        .prepare_cached("SELECT token_sha256 FROM api_keys WHERE id = ?1")?
        .query_row(params![id], |row| {
            let blob = row.get_ref(0)?.as_blob().ok();
            Ok(blob.and_then(|b| <[u8; 32]>::try_from(b).ok()))
        })
        .optional()?
        .flatten();
    let known = stored.is_some();
    // Always compared, then decided: an unknown id does the same work as a wrong secret.
    let matched = matches(token, &stored.unwrap_or(*UNKNOWN_ID_DIGEST));
    if !(matched && known) {
        return Ok(None);
    }
    conn.prepare_cached(
        "SELECT id, name, scope, created_at, last_used_at FROM api_keys WHERE id = ?1",
    )?
    .query_row(params![id], key_from_row)
    .optional()
}

/// Whether `token` hashes to `stored`, compared in constant time.
fn token_matches(token: &str, stored: &[u8]) -> bool {
    let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    constant_time_eq(&presented, stored)
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
pub fn create(
    conn: &Connection,
    name: &str,
    scopes: &Scopes,
) -> rusqlite::Result<(ApiKey, String)> {
    let scope = scopes.to_string();
    let mut random = [0u8; 36];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut random))
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    let id = crate::platform::units::hex(&random[..4]);
    let token = format!("fzt_{id}_{}", crate::platform::units::hex(&random[4..]));
    let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
    let now = crate::platform::clock::unix_now();
    conn.execute(
        "INSERT INTO api_keys (id, name, scope, token_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, name, scope, &digest[..], now],
    )?;
    let key = ApiKey {
        id,
        name: name.to_string(),
        scope,
        created_at: now,
        last_used_at: None,
    };
    Ok((key, token))
}

/// Records that a key was just used, as a fire-and-forget writer job: the request never
/// waits for it, and when the writer's queue is full the update is skipped (false) —
/// `last_used_at` is a hint, not an audit log.
pub fn touch_last_used(writer: &WriterHandle, id: &str, now: i64) -> bool {
    let id = id.to_string();
    let submitted = writer.try_submit(move |conn| {
        conn.execute(
            "UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2",
            params![now, id],
        )
        .context("recording when an API key was last used")
    });
    submitted.is_ok()
}

/// Why a request carries no usable key.
enum Refused {
    /// No `Authorization: Bearer` at all: not an attempt at a key, so not a failure.
    Missing,
    /// A token that names no key, or the wrong secret: a failed attempt.
    Invalid,
    /// The database could not be read.
    Failed(rusqlite::Error),
}

/// The API key of `Authorization: Bearer <token>`. Uses the calling thread's read
/// connection, so core threads can check keys too.
fn key_of(request: &Request) -> Result<ApiKey, Refused> {
    let token = request
        .header_str("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or(Refused::Missing)?;
    match crate::db::reader::with_reader(|conn| authenticate(conn, token)) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => Err(Refused::Invalid),
        Err(e) => Err(Refused::Failed(e)),
    }
}

impl Refused {
    fn response(self) -> Response {
        match self {
            Refused::Missing => {
                Response::error(401, "missing API key: send 'Authorization: Bearer <key>'")
                    .header("WWW-Authenticate", "Bearer")
            }
            Refused::Invalid => Response::error(401, "invalid or revoked API key")
                .header("WWW-Authenticate", "Bearer"),
            Refused::Failed(e) => {
                log::error!("checking the API key: {e}");
                Response::error(500, "checking the API key failed; see the server log")
            }
        }
    }
}

/// Default of `FAZT_AUTH_FAILURES`: failed API keys one client may send a minute. Enough
/// for a person mistyping or a script with a stale key; a guesser gets ten a minute.
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: u32 = 10;
/// Client addresses whose recent failures are remembered (about 40 bytes each). An entry
/// lasts at most a minute after its last failure; beyond this many, new addresses share
/// one bucket per shard (see `http::limiter`).
const AUTH_CLIENTS: usize = 16_384;

/// Authentication of API requests with failed attempts throttled per client address
/// (`http::proxies::client_key`, so a trusted proxy's client, an IPv6 /64): after
/// `FAZT_AUTH_FAILURES` failures within a minute, that address gets 429 with
/// `Retry-After` before its key is even looked at, so a guessing flood costs a hash of
/// its address and nothing else. Other addresses, and a correct key from them, are
/// unaffected. One guard serves the admin API and deploys, so both count together.
pub struct AuthGuard {
    failures: Limiter,
    per_minute: u32,
    proxies: TrustedProxies,
}

impl AuthGuard {
    pub fn new(per_minute: u32, proxies: TrustedProxies) -> AuthGuard {
        AuthGuard {
            failures: Limiter::new(Rate::per_minute(per_minute), AUTH_CLIENTS),
            per_minute,
            proxies,
        }
    }

    /// The API key of `Authorization: Bearer <token>`, or the 401, 429 (or 500) to answer.
    pub fn authenticate(&self, request: &Request) -> Result<ApiKey, Response> {
        let client = client_key(self.proxies.client_ip(request));
        let now = Instant::now();
        if let Err(wait) = self.failures.check(client, now) {
            AUTH_STATS.throttled.inc();
            let wait = retry_after_secs(wait);
            let message = format!(
                "too many failed API keys from this address: at most {} a minute; retry in {wait} s",
                self.per_minute
            );
            return Err(too_many(&message, wait));
        }
        key_of(request).map_err(|refused| {
            if matches!(refused, Refused::Invalid) {
                AUTH_STATS.failures.inc();
                // A take refused here raced another failure past the check: already counted.
                let _ = self.failures.take(client, now);
            }
            refused.response()
        })
    }
}

/// Failed and throttled API-key attempts, for `/metrics` and `/api/system/health`.
pub struct AuthStats {
    failures: Counter,
    throttled: Counter,
}

pub static AUTH_STATS: AuthStats = AuthStats {
    failures: Counter::new(),
    throttled: Counter::new(),
};

static AUTH_FAILURES: Desc = Desc::new(
    Kind::Counter,
    "fazt_auth_failures_total",
    "auth.failures",
    "Requests with an API key that names no key or has the wrong secret.",
);
static AUTH_THROTTLED: Desc = Desc::new(
    Kind::Counter,
    "fazt_auth_throttled_total",
    "auth.throttled",
    "Requests refused with 429 because their address sent too many failed API keys.",
);

impl Source for AuthStats {
    fn collect(&self, out: &mut Collector) {
        out.int(&AUTH_FAILURES, self.failures.get());
        out.int(&AUTH_THROTTLED, self.throttled.get());
    }
}

/// Removes a key; false when no key has that id.
pub fn revoke(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute("DELETE FROM api_keys WHERE id = ?1", params![id])? > 0)
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
        let (key, token) = create(&conn, "laptop", &Scopes::owner()).unwrap();
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

    /// An unknown id is compared against the dummy digest, a known one against its own:
    /// the same hash and comparison either way, and neither matches a wrong token.
    #[test]
    fn an_unknown_id_does_the_same_work_as_a_known_one() {
        let conn = db();
        let (key, token) = create(&conn, "laptop", &Scopes::owner()).unwrap();
        let stored: Vec<u8> = conn
            .query_row(
                "SELECT token_sha256 FROM api_keys WHERE id = ?1",
                params![key.id],
                |r| r.get(0),
            )
            .unwrap();
        let compared = |token: &str| {
            let mut seen = None;
            let found = authenticate_with(&conn, token, |t, digest| {
                seen = Some(digest.to_vec());
                token_matches(t, digest)
            })
            .unwrap();
            (found.map(|k| k.id), seen)
        };
        let wrong_secret = format!("fzt_{}_{}", key.id, "0".repeat(64));
        assert_eq!(compared(&wrong_secret), (None, Some(stored.clone())));
        assert_eq!(compared(&token), (Some(key.id.clone()), Some(stored)));
        let unknown = compared(&format!("fzt_ffffffff_{}", "0".repeat(64)));
        assert_eq!(unknown, (None, Some(UNKNOWN_ID_DIGEST.to_vec())));
        // The dummy itself is no key's digest: even its own preimage finds nothing.
        assert_eq!(
            authenticate(&conn, "fzt_unknown-id_dummy")
                .unwrap()
                .map(|k| k.id),
            None
        );
    }

    #[test]
    fn scopes_parse_normalise_and_decide() {
        let scopes = Scopes::parse(" Deploy:Blog, deploy:shop,deploy:blog ").unwrap();
        assert_eq!(scopes.to_string(), "deploy:blog,deploy:shop");
        assert!(!scopes.is_owner());
        assert!(scopes.can_deploy("blog") && scopes.can_deploy("shop"));
        assert!(!scopes.can_deploy("other") && !scopes.can_deploy("root"));

        let all = Scopes::parse("deploy:*").unwrap();
        assert!(all.can_deploy("anything") && !all.can_deploy("root") && !all.can_deploy("404"));

        let owner = Scopes::parse("owner").unwrap();
        assert_eq!(owner, Scopes::owner());
        assert!(owner.is_owner() && owner.can_deploy("root") && owner.can_deploy("404"));

        for (bad, needle) in [
            ("", "empty entry"),
            ("owner,", "empty entry"),
            ("admin", "unknown scope"),
            ("deploy", "unknown scope"),
            ("deploy:", "invalid site name"),
            ("deploy:Bad_Name", "invalid site name"),
            ("deploy:admin", "reserved"),
            ("deploy:root", "system site"),
            ("deploy:404", "system site"),
        ] {
            let err = Scopes::parse(bad).unwrap_err();
            assert!(err.contains(needle), "{bad:?}: {err}");
        }
    }

    #[test]
    fn stored_scopes_grant_only_what_parses() {
        let key = |scope: &str| ApiKey {
            id: "k".into(),
            name: "k".into(),
            scope: scope.into(),
            created_at: 0,
            last_used_at: None,
        };
        assert!(key("owner").is_owner());
        assert!(key("deploy:blog,bogus").can_deploy("blog"));
        assert!(!key("bogus").can_deploy("blog"));
        assert!(!key("").is_owner());
    }

    #[test]
    fn names() {
        assert!(validate_name("ci deploy").is_ok());
        assert!(validate_name("").is_err());
        assert!(validate_name("a\tb").is_err());
        assert!(validate_name(&"x".repeat(65)).is_err());
    }
}
