//! What happened lately, for the dashboard: live visitors (the last 5 minutes of raw
//! events) and the last use and 30-day count of each short link and webhook.
//!
//! Invariants:
//! - Every query is an index search: raw events by `ts` (a bounded window, newest first,
//!   at most [`LIVE_SCAN_BUDGET`] rows) or by `(domain, id)`; counts and "when last" from
//!   the roll-ups, so they survive raw-event retention and cost the same however many
//!   events a year held.
//! - A short link's clicks are recorded under the host it was followed on, a webhook's
//!   deliveries under its endpoint's name (`links::webhook`); both are found that way here.

use std::collections::{HashMap, HashSet};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::event::PAGEVIEW;
use super::stats::{all_domains, cover, div_ceil, domain_ids, in_list, Level, HOUR};
use super::store::{first_day_of_month, string_id, DIM_REDIRECT, KIND_DOMAIN, KIND_TYPE};
use crate::db::{Context, DbError};

/// The window of "live" numbers.
pub const LIVE_WINDOW_SECS: i64 = 300;

/// Most raw events one [`live`] call reads (newest first). A flood of events can put
/// millions in 5 minutes; past the budget the answer says `complete: false`.
pub const LIVE_SCAN_BUDGET: usize = 500_000;

/// The window counted by "last 30 days".
const RECENT_DAYS: i64 = 30;

/// Distinct visitors and pageviews of the last [`LIVE_WINDOW_SECS`] before `now`, over the
/// given domains (all when `None`): `{visitors, pageviews, events, window_seconds, from,
/// complete}`. A visitor is a visitor hash (salted per site and day, like everywhere).
pub fn live(conn: &Connection, domains: Option<&[String]>, now: i64) -> Result<Value, DbError> {
    let from = now - LIVE_WINDOW_SECS;
    let wanted: Option<HashSet<i64>> = match domains {
        Some(names) => Some(domain_ids(conn, Some(names))?.into_iter().collect()),
        None => None,
    };
    let pageview = string_id(conn, KIND_TYPE, PAGEVIEW)?;
    let (mut visitors, mut pageviews, mut events) = (HashSet::new(), 0i64, 0i64);
    let mut complete = true;
    if wanted.as_ref().is_none_or(|w| !w.is_empty()) {
        let mut stmt = conn
            .prepare_cached(LIVE_EVENTS)
            .context("preparing the live events")?;
        let mut rows = stmt.query([from]).context("reading live events")?;
        let mut scanned = 0usize;
        while let Some(row) = rows.next().context("reading live events")? {
            if scanned == LIVE_SCAN_BUDGET {
                complete = false;
                break;
            }
            scanned += 1;
            let (domain, visitor, kind): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
            if wanted.as_ref().is_some_and(|w| !w.contains(&domain)) {
                continue;
            }
            events += 1;
            if Some(kind) == pageview {
                pageviews += 1;
                visitors.insert(visitor);
            }
        }
    }
    Ok(json!({
        "visitors": visitors.len(),
        "pageviews": pageviews,
        "events": events,
        "window_seconds": LIVE_WINDOW_SECS,
        "from": from,
        "complete": complete,
    }))
}

pub(crate) const LIVE_EVENTS: &str =
    "SELECT domain, visitor, type FROM events WHERE ts >= ?1 ORDER BY ts DESC";

/// When something was last used and how often in the last 30 days.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Activity {
    /// Unix seconds of the last use: the newest raw event's time, or the start of its
    /// hour once retention has deleted the raw events.
    pub last_at: Option<i64>,
    pub count_30d: i64,
}

impl Activity {
    /// Adds `last_at` and `count_30d` to a listed row.
    pub fn annotate(self, row: &mut Value) {
        row["last_at"] = json!(self.last_at);
        row["count_30d"] = json!(self.count_30d);
    }
}

/// The first hour of the last-30-days window ending at `now` (the roll-ups' grain).
fn recent_hours(now: i64) -> (i64, i64) {
    let to = div_ceil(now + 1, HOUR);
    (to - RECENT_DAYS * 24, to)
}

/// Each short link's clicks (by slug): the last one and those of the last 30 days, on
/// any host. Slugs never clicked are absent.
pub fn redirect_activity(
    conn: &Connection,
    now: i64,
) -> Result<HashMap<String, Activity>, DbError> {
    let domains: Vec<i64> = all_domains(conn)?.into_iter().map(|(id, _)| id).collect();
    if domains.is_empty() {
        return Ok(HashMap::new());
    }
    let list = in_list(&domains);
    // Counts: the range read exactly as /api/stats reads it.
    let (from, to) = recent_hours(now);
    let mut counts: HashMap<i64, i64> = HashMap::new();
    let mut spans = Vec::new();
    cover(from, to, Level::Month, 1, &mut spans);
    for span in spans {
        let sql = redirect_counts_sql(span.level, &list);
        let mut stmt = conn
            .prepare_cached(&sql)
            .context("preparing click counts")?;
        let mut rows = stmt
            .query(params![span.from, span.to])
            .context("reading click counts")?;
        while let Some(row) = rows.next().context("reading click counts")? {
            let (key, count): (i64, i64) = (row.get(0)?, row.get(1)?);
            *counts.entry(key).or_default() += span.sign * count;
        }
    }
    // Last clicks: the newest month with clicks of each slug, then its newest day, hour
    // and raw event, each step a short range of the roll-ups' keys.
    let mut newest: HashMap<i64, (i64, Vec<i64>)> = HashMap::new();
    let mut stmt = conn
        .prepare_cached(&redirect_months_sql(&list))
        .context("preparing the last clicks")?;
    let mut rows = stmt.query([]).context("reading the last clicks")?;
    while let Some(row) = rows.next().context("reading the last clicks")? {
        let (domain, month, key): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
        let entry = newest.entry(key).or_insert((month, Vec::new()));
        if month > entry.0 {
            *entry = (month, Vec::new());
        }
        if month == entry.0 {
            entry.1.push(domain);
        }
    }
    drop(rows);
    drop(stmt);
    let mut out = HashMap::new();
    for (key, (month, domains)) in newest {
        let slug_path: String = conn
            .prepare_cached("SELECT value FROM strings WHERE id = ?1")
            .context("preparing a string lookup")?
            .query_row([key], |row| row.get(0))
            .context("looking up a short link's path")?;
        let Some(slug) = slug_path.strip_prefix("/r/") else {
            continue;
        };
        let last_at = last_click(conn, &domains, key, month)?;
        let count_30d = counts.get(&key).copied().unwrap_or(0);
        out.insert(slug.to_string(), Activity { last_at, count_30d });
    }
    Ok(out)
}

/// The time of the last click of path `key` in `month` on `domains`.
fn last_click(
    conn: &Connection,
    domains: &[i64],
    key: i64,
    month: i64,
) -> Result<Option<i64>, DbError> {
    let list = in_list(domains);
    let (first, end) = (first_day_of_month(month), first_day_of_month(month + 1));
    let day: Option<i64> = conn
        .prepare_cached(&last_unit_sql("rollup_daily_dims", "day", &list))
        .context("preparing the last click's day")?
        .query_row(params![first, end, key], |row| row.get(0))
        .context("reading the last click's day")?;
    let Some(day) = day else { return Ok(None) };
    let hour: Option<i64> = conn
        .prepare_cached(&last_unit_sql("rollup_hourly_dims", "hour", &list))
        .context("preparing the last click's hour")?
        .query_row(params![day * 24, day * 24 + 24, key], |row| row.get(0))
        .context("reading the last click's hour")?;
    let Some(hour) = hour else { return Ok(None) };
    let ts: Option<i64> = conn
        .prepare_cached(LAST_CLICK_TS)
        .context("preparing the last click")?
        .query_row(params![hour * HOUR, hour * HOUR + HOUR, key], |row| {
            row.get(0)
        })
        .context("reading the last click")?;
    Ok(Some(ts.unwrap_or(hour * HOUR)))
}

fn redirect_counts_sql(level: Level, list: &str) -> String {
    let (table, unit) = level.table();
    format!(
        "SELECT key, count FROM {table} \
         WHERE domain IN ({list}) AND dim = {DIM_REDIRECT} AND {unit} >= ?1 AND {unit} < ?2"
    )
}

fn redirect_months_sql(list: &str) -> String {
    format!(
        "SELECT domain, month, key FROM rollup_monthly_dims \
         WHERE domain IN ({list}) AND dim = {DIM_REDIRECT}"
    )
}

fn last_unit_sql(table: &str, unit: &str, list: &str) -> String {
    format!(
        "SELECT max({unit}) FROM {table} WHERE domain IN ({list}) AND dim = {DIM_REDIRECT} \
         AND {unit} >= ?1 AND {unit} < ?2 AND key = ?3"
    )
}

/// Short-link clicks are source 3 (`Source::Redirect`).
pub(crate) const LAST_CLICK_TS: &str =
    "SELECT max(ts) FROM events WHERE ts >= ?1 AND ts < ?2 AND path = ?3 AND source = 3";

/// A webhook's deliveries (events recorded under its endpoint's name): the last one and
/// those of the last 30 days.
pub fn webhook_activity(conn: &Connection, endpoint: &str, now: i64) -> Result<Activity, DbError> {
    let Some(domain) = string_id(conn, KIND_DOMAIN, endpoint)? else {
        return Ok(Activity::default());
    };
    let raw: Option<i64> = conn
        .prepare_cached(LAST_DELIVERY_TS)
        .context("preparing the last delivery")?
        .query_row([domain], |row| row.get(0))
        .optional()
        .context("reading the last delivery")?;
    let last_at = match raw {
        Some(ts) => Some(ts),
        None => conn
            .prepare_cached(LAST_DELIVERY_HOUR)
            .context("preparing the last delivery's hour")?
            .query_row([domain], |row| row.get::<_, Option<i64>>(0))
            .context("reading the last delivery's hour")?
            .map(|hour| hour * HOUR),
    };
    let count_30d: Option<i64> = conn
        .prepare_cached(DELIVERIES_SINCE)
        .context("preparing the delivery count")?
        .query_row(params![domain, recent_hours(now).0], |row| row.get(0))
        .context("reading the delivery count")?;
    Ok(Activity {
        last_at,
        count_30d: count_30d.unwrap_or(0),
    })
}

/// Webhook deliveries are source 4 (`Source::Webhook`).
pub(crate) const LAST_DELIVERY_TS: &str =
    "SELECT ts FROM events WHERE domain = ?1 AND source = 4 ORDER BY id DESC LIMIT 1";
pub(crate) const LAST_DELIVERY_HOUR: &str = "SELECT max(hour) FROM rollup_hourly WHERE domain = ?1";
pub(crate) const DELIVERIES_SINCE: &str =
    "SELECT sum(events) FROM rollup_hourly WHERE domain = ?1 AND hour >= ?2";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::store::tests::migrated;

    /// Every statement here is an index search, never a full scan or a sort.
    #[test]
    fn every_query_is_an_index_search() {
        let conn = migrated();
        let mut statements = vec![
            LIVE_EVENTS.to_string(),
            LAST_CLICK_TS.to_string(),
            LAST_DELIVERY_TS.to_string(),
            LAST_DELIVERY_HOUR.to_string(),
            DELIVERIES_SINCE.to_string(),
            redirect_months_sql("1,2"),
            last_unit_sql("rollup_daily_dims", "day", "1,2"),
            last_unit_sql("rollup_hourly_dims", "hour", "3"),
        ];
        for level in [Level::Hour, Level::Day, Level::Month] {
            statements.push(redirect_counts_sql(level, "1,2,3"));
        }
        for sql in &statements {
            crate::analytics::stats::tests::assert_index_search(&conn, sql);
        }
    }
}
