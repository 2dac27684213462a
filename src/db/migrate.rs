//! Schema migrations (DESIGN §3): SQL files embedded in the binary, applied in order, each
//! in its own `BEGIN IMMEDIATE … COMMIT` that also sets `PRAGMA user_version`, so a crash
//! leaves the schema at a whole version and re-running is a no-op.
//!
//! Invariants: versions start at 1 and have no gaps; a published migration is never edited,
//! only followed by a new one; a database whose `user_version` is newer than the last entry
//! here is never written to.

use rusqlite::{Connection, TransactionBehavior};

use super::{Context, DbError};

/// `(version, name, sql)`, in the order they are applied.
pub const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/001_initial.sql"),
    ),
    (
        2,
        "analytics",
        include_str!("../../migrations/002_analytics.sql"),
    ),
    (
        3,
        "deployment_ids",
        include_str!("../../migrations/003_deployment_ids.sql"),
    ),
    (
        4,
        "blob_variants",
        include_str!("../../migrations/004_blob_variants.sql"),
    ),
    (
        5,
        "campaigns",
        include_str!("../../migrations/005_campaigns.sql"),
    ),
    (
        6,
        "daily_values",
        include_str!("../../migrations/006_daily_values.sql"),
    ),
    (7, "acme", include_str!("../../migrations/007_acme.sql")),
    (
        8,
        "accounts",
        include_str!("../../migrations/008_accounts.sql"),
    ),
    (9, "apps", include_str!("../../migrations/009_apps.sql")),
];

/// `PRAGMA auto_vacuum` value for INCREMENTAL.
const AUTO_VACUUM_INCREMENTAL: i64 = 2;

/// The newest schema version this build knows.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |(version, _, _)| *version)
}

/// The schema version recorded in the database (`PRAGMA user_version`).
pub fn schema_version(conn: &Connection) -> Result<i64, DbError> {
    conn.pragma_query_value(None, "user_version", |row| row.get(0))
        .context("reading the schema version (user_version)")
}

/// Fails with [`DbError::NewerSchema`] if the database comes from a newer fazt; otherwise
/// returns its schema version. Only reads.
pub fn refuse_newer(conn: &Connection) -> Result<i64, DbError> {
    let found = schema_version(conn)?;
    let supported = latest_version();
    if found > supported {
        return Err(DbError::NewerSchema { found, supported });
    }
    Ok(found)
}

/// Whether the database has no table, index or view yet.
fn is_empty(conn: &Connection) -> Result<bool, DbError> {
    let objects: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_master", [], |row| row.get(0))
        .context("inspecting the schema")?;
    Ok(objects == 0)
}

fn auto_vacuum(conn: &Connection) -> Result<i64, DbError> {
    conn.pragma_query_value(None, "auto_vacuum", |row| row.get(0))
        .context("reading auto_vacuum")
}

/// On a database with no table yet, asks for incremental auto-vacuum (freed pages can be
/// returned to the filesystem later without a full VACUUM). Must run before the switch to
/// WAL: that writes page 1, after which the setting only takes effect through a VACUUM.
pub fn prepare_new(conn: &Connection) -> Result<(), DbError> {
    if is_empty(conn)? {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
            .context("setting auto_vacuum=INCREMENTAL")?;
    }
    Ok(())
}

/// Makes sure an empty database uses incremental auto-vacuum before migration 1 creates
/// the first table. If the file was already initialised (e.g. switched to WAL by someone
/// else), the pragma alone does not take; a VACUUM of the empty file applies it cheaply.
fn ensure_incremental_vacuum(conn: &Connection) -> Result<(), DbError> {
    if !is_empty(conn)? || auto_vacuum(conn)? == AUTO_VACUUM_INCREMENTAL {
        return Ok(());
    }
    conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")
        .context("setting auto_vacuum=INCREMENTAL")?;
    if auto_vacuum(conn)? != AUTO_VACUUM_INCREMENTAL {
        conn.execute_batch("VACUUM")
            .context("vacuuming the empty database to apply auto_vacuum=INCREMENTAL")?;
    }
    let mode = auto_vacuum(conn)?;
    if mode != AUTO_VACUUM_INCREMENTAL {
        // Not fatal: the database works, it just cannot shrink without a full VACUUM.
        log::warn!("auto_vacuum is {mode}, not INCREMENTAL; the database file will not shrink");
    }
    Ok(())
}

/// Brings the schema up to [`latest_version`]. Returns the versions applied (empty when
/// the database was already current). Needs the write connection, outside any transaction.
pub fn run(conn: &mut Connection) -> Result<Vec<i64>, DbError> {
    let current = refuse_newer(conn)?;
    if current == 0 {
        ensure_incremental_vacuum(conn)?;
    }
    let mut applied = Vec::new();
    for &(version, name, sql) in MIGRATIONS.iter().filter(|(v, _, _)| *v > current) {
        if apply(conn, version, name, sql)? {
            log::info!("database schema migrated to version {version} ({name})");
            applied.push(version);
        }
    }
    Ok(applied)
}

/// Applies one migration in its own IMMEDIATE transaction. The version is re-read under
/// the write lock, so two processes (server and CLI) racing to migrate apply it once.
fn apply(conn: &mut Connection, version: i64, name: &str, sql: &str) -> Result<bool, DbError> {
    let what = || format!("applying migration {version} ({name})");
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context(format!("{}: starting the transaction", what()))?;
    if schema_version(&tx)? >= version {
        return Ok(false);
    }
    tx.execute_batch(sql).context(what())?;
    tx.pragma_update(None, "user_version", version)
        .context(format!("{}: recording the version", what()))?;
    tx.commit().context(format!("{}: committing", what()))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_start_at_one_without_gaps() {
        for (i, (version, name, sql)) in MIGRATIONS.iter().enumerate() {
            assert_eq!(*version, i as i64 + 1, "migration {name}");
            assert!(!name.is_empty());
            assert!(!sql.trim().is_empty(), "migration {version} is empty");
        }
        assert_eq!(latest_version(), MIGRATIONS.len() as i64);
    }

    #[test]
    fn migrations_apply_to_an_in_memory_database() {
        let mut conn = Connection::open_in_memory().expect("open");
        assert_eq!(
            run(&mut conn).expect("migrate"),
            (1..=latest_version()).collect::<Vec<_>>()
        );
        assert_eq!(schema_version(&conn).expect("version"), latest_version());
        assert!(run(&mut conn).expect("re-run").is_empty());
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().expect("open");
        conn.pragma_update(None, "user_version", 99).expect("set");
        match run(&mut conn) {
            Err(DbError::NewerSchema { found, supported }) => {
                assert_eq!((found, supported), (99, latest_version()));
            }
            other => panic!("expected NewerSchema, got {other:?}"),
        }
    }

    #[test]
    fn a_failed_migration_leaves_the_version_alone() {
        let mut conn = Connection::open_in_memory().expect("open");
        let err = apply(
            &mut conn,
            1,
            "broken",
            "CREATE TABLE a (x); CREATE TABLE a (x);",
        )
        .expect_err("duplicate table must fail");
        assert!(
            err.to_string().starts_with("applying migration 1 (broken)"),
            "{err}"
        );
        assert_eq!(schema_version(&conn).expect("version"), 0);
        assert!(is_empty(&conn).expect("schema"), "partial migration kept");
    }
}
