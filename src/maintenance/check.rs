//! `fazt db check`: is the database whole and does it agree with itself?
//!
//! Every check reads one snapshot: the whole run is one read transaction on a read-only
//! connection, so a server writing meanwhile can neither change what is compared halfway
//! nor be blocked (in WAL mode a reader never blocks the writer; the WAL just cannot be
//! checkpointed past the snapshot until the check ends). Memory stays bounded: blobs are
//! hashed chunk by chunk, comparisons are done by SQLite and return only the mismatches,
//! and each check keeps at most [`MAX_LISTED`] problems (and counts the rest).

use crate::analytics::event::{Source, NOT_FOUND, PAGEVIEW};
use crate::analytics::store::{
    DIM_NOT_FOUND, DIM_PATH, DIM_REDIRECT, DIM_REFERRER, DIM_TAG, DIM_TYPE, DIM_UTM_CAMPAIGN,
    DIM_UTM_MEDIUM, DIM_UTM_SOURCE, KIND_TYPE,
};
use crate::db::{Context, DbError};
use crate::platform::units::hex;
use rusqlite::{params, Connection};
use sha2::{Digest, Sha256};

/// Problems listed per check; past it they are only counted.
pub(crate) const MAX_LISTED: usize = 20;

/// The outcome of one check: no problems, or the first [`MAX_LISTED`] and how many in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckResult {
    pub name: &'static str,
    /// What was looked at, for the summary (e.g. "12 blobs, 3.1 MiB").
    pub scope: String,
    pub problems: Vec<String>,
    pub problem_count: u64,
}

impl CheckResult {
    fn new(name: &'static str) -> CheckResult {
        CheckResult {
            name,
            scope: String::new(),
            problems: Vec::new(),
            problem_count: 0,
        }
    }

    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < MAX_LISTED {
            self.problems.push(text);
        }
    }

    pub fn ok(&self) -> bool {
        self.problem_count == 0
    }
}

/// Every check, in the order run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckReport {
    pub checks: Vec<CheckResult>,
}

impl CheckReport {
    pub fn passed(&self) -> bool {
        self.checks.iter().all(CheckResult::ok)
    }

    pub fn to_json(&self) -> serde_json::Value {
        let checks: Vec<_> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({"name": c.name, "ok": c.ok(), "scope": c.scope,
                    "problem_count": c.problem_count, "problems": c.problems})
            })
            .collect();
        serde_json::json!({"ok": self.passed(), "checks": checks})
    }

    /// One line per check, its problems indented under it, and a verdict.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let verdict = if c.ok() { "ok" } else { "FAILED" };
            out.push_str(&format!("{:<14} {verdict:<6} {}\n", c.name, c.scope));
            for p in &c.problems {
                out.push_str(&format!("    {p}\n"));
            }
            let unlisted = c.problem_count - c.problems.len() as u64;
            if unlisted > 0 {
                out.push_str(&format!("    ... and {unlisted} more\n"));
            }
        }
        let failed = self.checks.iter().filter(|c| !c.ok()).count();
        if failed == 0 {
            out.push_str("all checks passed\n");
        } else {
            out.push_str(&format!(
                "{failed} of {} checks failed\n",
                self.checks.len()
            ));
        }
        out
    }
}

/// Runs every check on `conn` (a read connection) inside one read transaction.
pub(crate) fn run(conn: &Connection) -> Result<CheckReport, DbError> {
    conn.execute_batch("BEGIN")
        .context("starting the check's read transaction")?;
    let result = run_checks(conn);
    // A read transaction changed nothing; ending it only lets checkpoints proceed.
    let _ = conn.execute_batch("COMMIT");
    result
}

fn run_checks(conn: &Connection) -> Result<CheckReport, DbError> {
    Ok(CheckReport {
        checks: vec![
            integrity(conn)?,
            foreign_keys(conn)?,
            blobs(conn)?,
            file_blobs(conn)?,
            rollups(conn)?,
        ],
    })
}

/// SQLite's own check of every page, b-tree and index.
fn integrity(conn: &Connection) -> Result<CheckResult, DbError> {
    let mut result = CheckResult::new("integrity");
    // The pragma stops after this many errors: enough to list and to say "at least".
    let mut stmt = conn
        .prepare(&format!("PRAGMA integrity_check({})", MAX_LISTED + 1))
        .context("preparing integrity_check")?;
    let rows = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .context("running integrity_check")?;
    for row in rows {
        let line = row.context("running integrity_check")?;
        if line != "ok" {
            result.problem(line);
        }
    }
    result.scope = "integrity_check".into();
    Ok(result)
}

/// Rows whose foreign key names a row that does not exist.
fn foreign_keys(conn: &Connection) -> Result<CheckResult, DbError> {
    let mut result = CheckResult::new("foreign-keys");
    let mut stmt = conn
        .prepare("PRAGMA foreign_key_check")
        .context("preparing foreign_key_check")?;
    let mut rows = stmt.query([]).context("running foreign_key_check")?;
    while let Some(row) = rows.next().context("running foreign_key_check")? {
        let table: String = row.get(0).context("reading foreign_key_check")?;
        // WITHOUT ROWID tables have no rowid to name.
        let rowid: Option<i64> = row.get(1).context("reading foreign_key_check")?;
        let parent: String = row.get(2).context("reading foreign_key_check")?;
        let at = rowid.map(|r| format!(" {r}")).unwrap_or_default();
        result.problem(format!(
            "a {table} row{at} refers to a missing {parent} row"
        ));
    }
    result.scope = "foreign_key_check".into();
    Ok(result)
}

/// Every blob's bytes hash to its key and add up to its size, in whole chunks.
fn blobs(conn: &Connection) -> Result<CheckResult, DbError> {
    let mut result = CheckResult::new("blobs");
    let mut list = conn
        .prepare("SELECT sha256, size, chunk_size FROM blobs ORDER BY sha256")
        .context("preparing the blob list")?;
    let mut chunks = conn
        .prepare("SELECT seq, data FROM blob_chunks WHERE sha256 = ?1 ORDER BY seq")
        .context("preparing the chunk read")?;
    let mut rows = list.query([]).context("listing blobs")?;
    let (mut count, mut bytes) = (0u64, 0u64);
    while let Some(row) = rows.next().context("listing blobs")? {
        let key: Vec<u8> = row.get(0).context("reading a blob key")?;
        let size: i64 = row.get(1).context("reading a blob size")?;
        let chunk_size: i64 = row.get(2).context("reading a blob chunk size")?;
        count += 1;
        bytes += u64::try_from(size).unwrap_or(0);
        if let Some(problem) = check_blob(&mut chunks, &key, size, chunk_size)? {
            result.problem(format!("blob {}: {problem}", hex(&key)));
        }
    }
    result.scope = format!(
        "{count} blobs, {} hashed",
        crate::platform::units::format_bytes(bytes)
    );
    Ok(result)
}

/// What is wrong with one blob, reading one chunk at a time.
fn check_blob(
    chunks: &mut rusqlite::Statement<'_>,
    key: &[u8],
    size: i64,
    chunk_size: i64,
) -> Result<Option<String>, DbError> {
    let mut hasher = Sha256::new();
    let mut total: i64 = 0;
    let mut expected_seq: i64 = 0;
    let mut short_chunk = None;
    let mut rows = chunks.query(params![key]).context("reading blob chunks")?;
    while let Some(row) = rows.next().context("reading blob chunks")? {
        let seq: i64 = row.get(0).context("reading a chunk number")?;
        if seq != expected_seq {
            return Ok(Some(format!("chunk {expected_seq} is missing")));
        }
        let data = row
            .get_ref(1)
            .and_then(|v| v.as_blob().map_err(Into::into))
            .context("reading a chunk")?;
        // Only the last chunk may be shorter than the blob's chunk size.
        if let Some(seq) = short_chunk {
            return Ok(Some(format!("chunk {seq} is short but not the last")));
        }
        if data.len() as i64 != chunk_size {
            short_chunk = Some(seq);
        }
        hasher.update(data);
        total += data.len() as i64;
        expected_seq += 1;
    }
    if total != size {
        return Ok(Some(format!("holds {total} bytes, its row says {size}")));
    }
    let digest = hasher.finalize();
    if digest.as_slice() != key {
        return Ok(Some(format!("its bytes hash to {}", hex(&digest))));
    }
    Ok(None)
}

/// No file (or precompressed variant) names a blob that is not there, and each file's
/// size is its blob's.
fn file_blobs(conn: &Connection) -> Result<CheckResult, DbError> {
    let mut result = CheckResult::new("file-blobs");
    let mut stmt = conn
        .prepare(
            "SELECT coalesce(d.site, '(no deployment)'), f.deployment, f.path, f.sha256, \
                    f.size, b.size
             FROM files f LEFT JOIN deployments d ON d.id = f.deployment
                          LEFT JOIN blobs b ON b.sha256 = f.sha256
             WHERE b.sha256 IS NULL OR b.size != f.size",
        )
        .context("preparing the file check")?;
    let mut rows = stmt.query([]).context("checking files")?;
    while let Some(row) = rows.next().context("checking files")? {
        let site: String = row.get(0).context("reading a file row")?;
        let deployment: i64 = row.get(1).context("reading a file row")?;
        let path: String = row.get(2).context("reading a file row")?;
        let key: Vec<u8> = row.get(3).context("reading a file row")?;
        let size: i64 = row.get(4).context("reading a file row")?;
        let blob_size: Option<i64> = row.get(5).context("reading a file row")?;
        let what = match blob_size {
            None => format!("blob {} is missing", hex(&key)),
            Some(b) => format!("is {size} bytes but blob {} has {b}", hex(&key)),
        };
        result.problem(format!(
            "site {site} deployment {deployment} file {path}: {what}"
        ));
    }
    let mut variants = conn
        .prepare(
            "SELECT v.sha256, v.encoding, v.variant FROM blob_variants v
             WHERE v.variant IS NOT NULL
               AND NOT EXISTS (SELECT 1 FROM blobs b WHERE b.sha256 = v.variant)",
        )
        .context("preparing the variant check")?;
    let mut rows = variants.query([]).context("checking variants")?;
    while let Some(row) = rows.next().context("checking variants")? {
        let key: Vec<u8> = row.get(0).context("reading a variant row")?;
        let encoding: String = row.get(1).context("reading a variant row")?;
        let variant: Vec<u8> = row.get(2).context("reading a variant row")?;
        result.problem(format!(
            "the {encoding} variant of blob {} names missing blob {}",
            hex(&key),
            hex(&variant)
        ));
    }
    let files: i64 = conn
        .query_row("SELECT count(*) FROM files", [], |r| r.get(0))
        .context("counting files")?;
    result.scope = format!("{files} file rows");
    Ok(result)
}

/// The range where raw events are complete. Retention deletes the events with `ts` below
/// a cutoff (each prune its own), so every event at or after the oldest one left was kept
/// by every prune: the days after its day are complete. Its day may have lost its earlier
/// events while its roll-ups (kept unless `--rollups`) still count them, so there a roll-up
/// may count more than the raw rows, never fewer; days before it have no raw rows to
/// compare with. When the roll-ups hold exactly as many events as there are raw rows (in
/// `rollup_hourly` and in the daily event-type counts, each event counted once in each),
/// nothing pruned is counted anywhere and the first day is compared exactly too.
#[derive(Clone, Copy, Debug)]
struct Retained {
    /// The day of the oldest raw event (days since the epoch).
    first_day: i64,
    /// Its roll-ups may count events pruned since.
    first_day_partial: bool,
}

impl Retained {
    fn find(conn: &Connection) -> Result<Option<Retained>, DbError> {
        let (oldest, raw, hourly, daily): (Option<i64>, i64, i64, i64) = conn
            .query_row(
                "SELECT (SELECT min(ts) FROM events), (SELECT count(*) FROM events),
                        (SELECT coalesce(sum(events), 0) FROM rollup_hourly),
                        (SELECT coalesce(sum(count), 0) FROM rollup_daily_dims WHERE dim = ?1)",
                [DIM_TYPE],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .context("finding the oldest event")?;
        Ok(oldest.map(|oldest| Retained {
            first_day: oldest.div_euclid(86_400),
            first_day_partial: hourly != raw || daily != raw,
        }))
    }

    /// Whether a raw count and a roll-up count of `day` disagree beyond what pruning
    /// explains. `rollup_may_lag`: the roll-up was added after the events (404 paths are
    /// counted from a later version on), so it may also count fewer.
    fn disagree(&self, day: i64, raw: i64, rollup: i64, rollup_may_lag: bool) -> bool {
        let pruned_part = self.first_day_partial && day == self.first_day;
        match (pruned_part, rollup_may_lag) {
            (false, false) => raw != rollup,
            (true, false) => rollup < raw,
            (false, true) => rollup > raw,
            (true, true) => false,
        }
    }
}

/// Roll-ups equal a recount of the raw events over the retained range: per site and day
/// the events, pageviews and visitors of `rollup_hourly`, and per site, day, dimension and
/// value the counts of `rollup_daily_dims`.
fn rollups(conn: &Connection) -> Result<CheckResult, DbError> {
    let mut result = CheckResult::new("rollups");
    let Some(retained) = Retained::find(conn)? else {
        result.scope = "no raw events to compare with".into();
        return Ok(result);
    };
    let names = DomainNames::load(conn)?;
    let type_id = |name: &str| -> Result<i64, DbError> {
        Ok(crate::analytics::store::string_id(conn, KIND_TYPE, name)?.unwrap_or(-1))
    };
    let (pageview, not_found) = (type_id(PAGEVIEW)?, type_id(NOT_FOUND)?);
    compare_totals(conn, retained, pageview, &names, &mut result)?;
    for dim in dim_queries(pageview, not_found) {
        compare_dim(conn, retained, &dim, &names, &mut result)?;
    }
    let days: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT DISTINCT ts / 86400 FROM events)",
            [],
            |r| r.get(0),
        )
        .context("counting event days")?;
    let (y, m, d) = crate::http::response::civil_from_days(retained.first_day);
    result.scope = format!(
        "{days} day{} of raw events since {y:04}-{m:02}-{d:02}{}",
        if days == 1 { "" } else { "s" },
        if retained.first_day_partial {
            " (that day partly pruned: its roll-ups may count more)"
        } else {
            ""
        }
    );
    Ok(result)
}

/// Site names by their `strings` id, for messages.
struct DomainNames(std::collections::HashMap<i64, String>);

impl DomainNames {
    fn load(conn: &Connection) -> Result<DomainNames, DbError> {
        let mut stmt = conn
            .prepare("SELECT id, value FROM strings WHERE kind = 1")
            .context("listing site names")?;
        let names = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .context("listing site names")?
            .collect::<rusqlite::Result<_>>()
            .context("listing site names")?;
        Ok(DomainNames(names))
    }

    /// "site NAME day YYYY-MM-DD".
    fn at(&self, domain: i64, day: i64) -> String {
        let name = self
            .0
            .get(&domain)
            .cloned()
            .unwrap_or_else(|| format!("#{domain}"));
        let (y, m, d) = crate::http::response::civil_from_days(day);
        format!("site {name} day {y:04}-{m:02}-{d:02}")
    }
}

/// Per site and day: events, pageviews and visitors, raw against `rollup_hourly`. Only the
/// rows that differ come back.
const TOTALS: &str = "
WITH raw AS (
    SELECT domain, ts / 86400 AS day, count(*) AS events, sum(type = ?2) AS pageviews,
           count(DISTINCT visitor) AS visitors
    FROM events WHERE ts >= ?1 * 86400 GROUP BY domain, day),
roll AS (
    SELECT domain, hour / 24 AS day, sum(events) AS events, sum(pageviews) AS pageviews,
           sum(visitors) AS visitors
    FROM rollup_hourly WHERE hour >= ?1 * 24 GROUP BY domain, day)
SELECT coalesce(raw.domain, roll.domain), coalesce(raw.day, roll.day),
       coalesce(raw.events, 0), coalesce(raw.pageviews, 0), coalesce(raw.visitors, 0),
       coalesce(roll.events, 0), coalesce(roll.pageviews, 0), coalesce(roll.visitors, 0)
FROM raw FULL OUTER JOIN roll ON raw.domain = roll.domain AND raw.day = roll.day
WHERE raw.events IS NOT roll.events OR raw.pageviews IS NOT roll.pageviews
   OR raw.visitors IS NOT roll.visitors";

fn compare_totals(
    conn: &Connection,
    retained: Retained,
    pageview: i64,
    names: &DomainNames,
    result: &mut CheckResult,
) -> Result<(), DbError> {
    let mut stmt = conn
        .prepare(TOTALS)
        .context("preparing the roll-up totals check")?;
    let mut rows = stmt
        .query(params![retained.first_day, pageview])
        .context("comparing roll-up totals")?;
    while let Some(row) = rows.next().context("comparing roll-up totals")? {
        let v: [i64; 8] = std::array::from_fn(|i| row.get(i).unwrap_or(0));
        let (domain, day) = (v[0], v[1]);
        for (what, raw, rollup) in [
            ("events", v[2], v[5]),
            ("pageviews", v[3], v[6]),
            ("visitors", v[4], v[7]),
        ] {
            if retained.disagree(day, raw, rollup, false) {
                result.problem(format!(
                    "{}: {what} {raw} in raw events, {rollup} in rollup_hourly",
                    names.at(domain, day)
                ));
            }
        }
    }
    Ok(())
}

/// How the raw events of one dimension are counted: `key` over `source` where `filter`.
struct DimQuery {
    dim: i64,
    name: &'static str,
    source: &'static str,
    key: &'static str,
    filter: String,
    /// The roll-up may count fewer than the raw rows (see [`Retained::disagree`]).
    rollup_may_lag: bool,
}

/// The dimensions as `EventStore` counts them, in SQL over the raw rows.
fn dim_queries(pageview: i64, not_found: i64) -> Vec<DimQuery> {
    let plain = |dim, name, key: &'static str, filter: String| DimQuery {
        dim,
        name,
        source: "events e",
        key,
        filter,
        rollup_may_lag: dim == DIM_NOT_FOUND,
    };
    let redirect = Source::Redirect as i64;
    vec![
        plain(
            DIM_PATH,
            "path",
            "e.path",
            format!("e.type = {pageview} AND e.path IS NOT NULL"),
        ),
        plain(
            DIM_REFERRER,
            "referrer",
            "e.referrer",
            "e.referrer IS NOT NULL".into(),
        ),
        plain(DIM_TYPE, "type", "e.type", "1".into()),
        DimQuery {
            dim: DIM_TAG,
            name: "tag",
            // Tags are stored as ",3,7,": a JSON array once the commas are trimmed.
            source: "events e, json_each('[' || trim(e.tags, ',') || ']') t",
            key: "t.value",
            filter: "e.tags IS NOT NULL".into(),
            rollup_may_lag: false,
        },
        plain(
            DIM_REDIRECT,
            "redirect",
            "e.path",
            format!("e.source = {redirect} AND e.path IS NOT NULL"),
        ),
        plain(
            DIM_UTM_SOURCE,
            "utm_source",
            "e.utm_source",
            "e.utm_source IS NOT NULL".into(),
        ),
        plain(
            DIM_UTM_MEDIUM,
            "utm_medium",
            "e.utm_medium",
            "e.utm_medium IS NOT NULL".into(),
        ),
        plain(
            DIM_UTM_CAMPAIGN,
            "utm_campaign",
            "e.utm_campaign",
            "e.utm_campaign IS NOT NULL".into(),
        ),
        plain(
            DIM_NOT_FOUND,
            "404 path",
            "e.path",
            format!("e.type = {not_found} AND e.path IS NOT NULL"),
        ),
    ]
}

fn compare_dim(
    conn: &Connection,
    retained: Retained,
    q: &DimQuery,
    names: &DomainNames,
    result: &mut CheckResult,
) -> Result<(), DbError> {
    let sql = format!(
        "WITH raw AS (
             SELECT e.domain AS domain, e.ts / 86400 AS day, {key} AS key, count(*) AS n
             FROM {source} WHERE e.ts >= ?1 * 86400 AND {filter} GROUP BY 1, 2, 3),
         roll AS (
             SELECT domain, day, key, count AS n FROM rollup_daily_dims
             WHERE dim = ?2 AND day >= ?1)
         -- Both sides in one grouping (sorting once) rather than a join of two
         -- unindexed lists, which SQLite runs as a nested loop: quadratic in the values.
         SELECT domain, day, key, sum(raw_n), sum(roll_n),
                (SELECT value FROM strings WHERE id = key)
         FROM (SELECT domain, day, key, n AS raw_n, 0 AS roll_n FROM raw
               UNION ALL
               SELECT domain, day, key, 0, n FROM roll)
         GROUP BY domain, day, key
         HAVING sum(raw_n) != sum(roll_n)",
        key = q.key,
        source = q.source,
        filter = q.filter
    );
    let context = format!("comparing the {} roll-up", q.name);
    let mut stmt = conn.prepare(&sql).context(context.clone())?;
    let mut rows = stmt
        .query(params![retained.first_day, q.dim])
        .context(context.clone())?;
    while let Some(row) = rows.next().context(context.clone())? {
        let num = |i| row.get::<_, i64>(i).context(context.clone());
        let (domain, day, key, raw, rollup) = (num(0)?, num(1)?, num(2)?, num(3)?, num(4)?);
        if !retained.disagree(day, raw, rollup, q.rollup_may_lag) {
            continue;
        }
        let value: Option<String> = row.get(5).context(context.clone())?;
        let value = value.unwrap_or_else(|| format!("#{key}"));
        result.problem(format!(
            "{}: {} '{value}' counted {raw} in raw events, {rollup} in rollup_daily_dims",
            names.at(domain, day),
            q.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::event::{Event, Utm};
    use crate::analytics::store::{prune_batch, tests::migrated, EventStore};

    const DAY: i64 = 20_000;

    fn event(ts: i64, path: &str, kind: &str, visitor: u64) -> Event {
        Event {
            ts,
            domain: "blog.test".into(),
            path: Some(path.into()),
            kind: kind.into(),
            referrer: Some("news.example".into()),
            visitor,
            source: Source::Track,
            tags: vec!["a".into(), "b".into()],
            query: None,
            utm: Utm {
                source: Some("mail".into()),
                ..Utm::default()
            },
        }
    }

    /// Two days of events, the first one spread over its morning and evening.
    fn two_days() -> Connection {
        let mut conn = migrated();
        let at = |day: i64, hour: i64| day * 86_400 + hour * 3600;
        let batch = vec![
            event(at(DAY, 8), "/", PAGEVIEW, 1),
            event(at(DAY, 9), "/a", PAGEVIEW, 2),
            event(at(DAY, 20), "/", PAGEVIEW, 1),
            event(at(DAY, 21), "/gone", NOT_FOUND, 3),
            event(at(DAY + 1, 10), "/", PAGEVIEW, 4),
            event(at(DAY + 1, 11), "/", "signup", 4),
        ];
        EventStore::new().write_batch(&mut conn, &batch).unwrap();
        conn
    }

    fn rollup_problems(conn: &Connection) -> Vec<String> {
        let report = run(conn).unwrap();
        let rollups = report.checks.iter().find(|c| c.name == "rollups").unwrap();
        rollups.problems.clone()
    }

    #[test]
    fn roll_ups_written_with_their_events_agree() {
        let conn = two_days();
        let report = run(&conn).unwrap();
        assert!(report.passed(), "{}", report.to_text());
        assert!(report.to_text().contains("2 days of raw events"));
    }

    #[test]
    fn a_day_pruned_in_part_still_agrees_but_not_if_its_roll_up_counts_less() {
        let mut conn = two_days();
        // Retention at noon of the first day: its morning events go, its roll-ups stay.
        let cutoff = DAY * 86_400 + 12 * 3600;
        prune_batch(&mut conn, cutoff, false, 100).unwrap();
        let report = run(&conn).unwrap();
        assert!(report.passed(), "{}", report.to_text());
        assert!(report
            .to_text()
            .contains("since 2024-10-04 (that day partly pruned"));
        // Fewer than the raw rows left is wrong even on the pruned day.
        conn.execute(
            "UPDATE rollup_hourly SET events = 0 WHERE hour / 24 = ?1",
            [DAY],
        )
        .unwrap();
        let problems = rollup_problems(&conn);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0]
                == "site blog.test day 2024-10-04: events 2 in raw events, 0 in rollup_hourly",
            "{problems:?}"
        );
    }

    #[test]
    fn the_first_day_is_compared_exactly_when_nothing_was_pruned() {
        let conn = two_days();
        conn.execute(
            "UPDATE rollup_daily_dims SET count = count + 1 WHERE dim = ?1 AND day = ?2",
            params![DIM_REFERRER, DAY],
        )
        .unwrap();
        assert_eq!(
            rollup_problems(&conn),
            [
                "site blog.test day 2024-10-04: referrer 'news.example' counted 4 in raw events, \
              5 in rollup_daily_dims"
            ]
        );
    }

    #[test]
    fn a_changed_count_on_a_whole_day_is_named() {
        let conn = two_days();
        conn.execute(
            "UPDATE rollup_daily_dims SET count = count + 1 WHERE dim = ?1 AND day = ?2",
            params![DIM_TAG, DAY + 1],
        )
        .unwrap();
        conn.execute(
            "UPDATE rollup_hourly SET visitors = visitors + 1 WHERE hour = ?1",
            [(DAY + 1) * 24 + 10],
        )
        .unwrap();
        let problems = rollup_problems(&conn);
        assert!(
            problems.contains(
                &"site blog.test day 2024-10-05: visitors 1 in raw events, 2 in rollup_hourly"
                    .to_string()
            ),
            "{problems:?}"
        );
        for tag in ["a", "b"] {
            let line = format!(
                "site blog.test day 2024-10-05: tag '{tag}' counted 2 in raw events, 3 in rollup_daily_dims"
            );
            assert!(problems.contains(&line), "{problems:?}");
        }
        assert_eq!(problems.len(), 3, "{problems:?}");
    }

    #[test]
    fn a_missing_roll_up_row_and_an_extra_one_are_both_found() {
        let conn = two_days();
        conn.execute(
            "DELETE FROM rollup_daily_dims WHERE dim = ?1 AND day = ?2",
            params![DIM_UTM_SOURCE, DAY + 1],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO rollup_daily_dims (domain, dim, day, key, count)
             SELECT domain, ?1, ?2, key, 5 FROM rollup_daily_dims WHERE dim = ?1 LIMIT 1",
            params![DIM_PATH, DAY + 3],
        )
        .unwrap();
        let problems = rollup_problems(&conn);
        assert_eq!(problems.len(), 2, "{problems:?}");
        // (In the order of the dimensions: paths first.)
        assert!(
            problems[0].contains("day 2024-10-07: path '/' counted 0 in raw events, 5"),
            "{problems:?}"
        );
        assert!(
            problems[1].contains("day 2024-10-05: utm_source 'mail' counted 2 in raw events, 0")
        );
    }

    #[test]
    fn problems_past_the_listed_ones_are_counted() {
        let mut result = CheckResult::new("x");
        for i in 0..MAX_LISTED + 5 {
            result.problem(format!("p{i}"));
        }
        assert_eq!(result.problems.len(), MAX_LISTED);
        assert_eq!(result.problem_count, MAX_LISTED as u64 + 5);
        let report = CheckReport {
            checks: vec![result],
        };
        assert!(report.to_text().contains("... and 5 more"));
        assert_eq!(report.to_json()["checks"][0]["problem_count"], 25);
    }
}
