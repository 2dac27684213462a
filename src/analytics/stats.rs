//! Read-only analytics queries for the dashboard, the API and the CLI (DESIGN §3).
//!
//! Invariants:
//! - Totals, timelines and top lists read only the roll-up tables, each query an index
//!   range scan on a roll-up primary key (site first, then dimension, then time), so a
//!   year costs the same whether it held a thousand events or ten million. Only
//!   [`recent_events`] reads raw events, newest first by id, a bounded number per call.
//! - Top lists are exact: the range is covered by whole months, then whole days, then
//!   hours ([`cover`]); a partial month or day at an edge is read either directly or as
//!   the whole unit minus its complement, whichever reads fewer rows. A year reads about
//!   12 months, up to 30 days and up to 24 hours of dimension rows per site.
//! - Ranges are half-open unix seconds, widened to whole hours (the roll-up grain):
//!   `from` rounds down and `to` rounds up to an hour boundary.
//! - Visitors: a visitor is counted in the hour of their first event of the (UTC) day, so
//!   the hours of a day add up to that day's unique visitors, and a range of several days
//!   counts a returning visitor once per day. A range that starts mid-day does not count
//!   visitors first seen earlier that day.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use rusqlite::{params, Connection, OptionalExtension};
use serde_json::{json, Value};

use super::store::{
    first_day_of_month, month_of_day, source_name, string_id, DIMS, DIM_NOT_FOUND, DIM_PATH,
    DIM_REDIRECT, DIM_REFERRER, DIM_TAG, DIM_TYPE, DIM_UTM_CAMPAIGN, DIM_UTM_MEDIUM,
    DIM_UTM_SOURCE, KIND_DOMAIN, KIND_TAG, KIND_TYPE,
};
use crate::db::{Context, DbError};

pub(super) const HOUR: i64 = 3_600;
const HOURS_PER_DAY: i64 = 24;
/// The path of a short-link click is this followed by the slug.
const REDIRECT_PREFIX: &str = "/r/";

/// The width of a timeline bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    Hour,
    Day,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Hour => "hour",
            Bucket::Day => "day",
        }
    }

    /// `"hour"` or `"day"`.
    pub fn parse(text: &str) -> Option<Bucket> {
        match text {
            "hour" => Some(Bucket::Hour),
            "day" => Some(Bucket::Day),
            _ => None,
        }
    }

    fn seconds(self) -> i64 {
        match self {
            Bucket::Hour => HOUR,
            Bucket::Day => HOUR * HOURS_PER_DAY,
        }
    }
}

/// What [`stats`] reports on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatsQuery {
    /// The site as asked for, echoed in the answer.
    pub site: Option<String>,
    /// The domains (hosts) counted; `None` for all sites together.
    pub domains: Option<Vec<String>>,
    /// Unix seconds, half-open `[from, to)`, widened to whole hours.
    pub from: i64,
    pub to: i64,
    pub bucket: Bucket,
    /// Length of each top list.
    pub top: usize,
}

#[derive(Clone, Copy, Default)]
struct Totals {
    events: i64,
    pageviews: i64,
    visitors: i64,
}

impl Totals {
    fn add(&mut self, other: Totals) {
        self.events += other.events;
        self.pageviews += other.pageviews;
        self.visitors += other.visitors;
    }
}

/// Totals, a timeline and top lists for one site (or all) over a range:
/// `{site, from, to, bucket, totals: {events, pageviews, visitors}, timeline: [{t, events,
/// pageviews, visitors}], top_paths, top_referrers, top_tags, event_types,
/// redirect_clicks, top_utm_sources, top_utm_mediums, top_utm_campaigns, top_404s:
/// [{value, count}]}`. `from`/`to` echo the hour-aligned range used; the
/// timeline lists non-empty buckets only, `t` being the bucket's start; top lists are
/// sorted by count, then value. Paths count pageviews; referrers, types and tags count
/// all events; `redirect_clicks` values are slugs; `top_404s` are the paths of `404`
/// events.
pub fn stats(conn: &Connection, q: &StatsQuery) -> Result<Value, DbError> {
    let hour_from = q.from.div_euclid(HOUR);
    let hour_to = div_ceil(q.to, HOUR).max(hour_from);
    let domains = domain_ids(conn, q.domains.as_deref())?;

    let mut totals = Totals::default();
    let mut timeline: BTreeMap<i64, Totals> = BTreeMap::new();
    let mut dims: IdMap<(i64, i64), i64> = IdMap::default();
    if !domains.is_empty() && hour_from < hour_to {
        let list = in_list(&domains);
        let mut stmt = conn
            .prepare_cached(&hourly_sql(&list))
            .context("preparing the hourly totals")?;
        let mut rows = stmt
            .query(params![hour_from, hour_to])
            .context("reading hourly totals")?;
        let per_bucket = q.bucket.seconds() / HOUR;
        while let Some(row) = rows.next().context("reading hourly totals")? {
            let hour: i64 = row.get(0)?;
            let t = Totals {
                events: row.get(1)?,
                pageviews: row.get(2)?,
                visitors: row.get(3)?,
            };
            totals.add(t);
            timeline
                .entry(hour.div_euclid(per_bucket))
                .or_default()
                .add(t);
        }
        drop(rows);
        drop(stmt);

        let mut spans = Vec::new();
        cover(hour_from, hour_to, Level::Month, 1, &mut spans);
        for span in spans {
            let mut stmt = conn
                .prepare_cached(&dims_sql(span.level, &list))
                .context("preparing the top lists")?;
            let mut rows = stmt
                .query(params![span.from, span.to])
                .context("reading top lists")?;
            while let Some(row) = rows.next().context("reading top lists")? {
                let (dim, key, count): (i64, i64, i64) = (row.get(0)?, row.get(1)?, row.get(2)?);
                *dims.entry((dim, key)).or_default() += span.sign * count;
            }
        }
    }

    let mut by_dim: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
    // Zero: only seen in a complement that was subtracted.
    for ((dim, key), count) in dims.into_iter().filter(|&(_, count)| count != 0) {
        by_dim.entry(dim).or_default().push((key, count));
    }
    let mut top = |dim: i64| -> Result<Value, DbError> {
        top_list(conn, by_dim.remove(&dim).unwrap_or_default(), q.top, dim)
    };
    let bucket_seconds = q.bucket.seconds();
    Ok(json!({
        "site": q.site,
        "from": hour_from * HOUR,
        "to": hour_to * HOUR,
        "bucket": q.bucket.as_str(),
        "totals": totals_json(totals),
        "timeline": timeline
            .into_iter()
            .map(|(bucket, t)| {
                let mut entry = totals_json(t);
                entry["t"] = json!(bucket * bucket_seconds);
                entry
            })
            .collect::<Vec<_>>(),
        "top_paths": top(DIM_PATH)?,
        "top_referrers": top(DIM_REFERRER)?,
        "top_tags": top(DIM_TAG)?,
        "event_types": top(DIM_TYPE)?,
        "redirect_clicks": top(DIM_REDIRECT)?,
        "top_utm_sources": top(DIM_UTM_SOURCE)?,
        "top_utm_mediums": top(DIM_UTM_MEDIUM)?,
        "top_utm_campaigns": top(DIM_UTM_CAMPAIGN)?,
        "top_404s": top(DIM_NOT_FOUND)?,
    }))
}

/// A site and the hosts its events are recorded under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SiteHosts {
    pub site: String,
    pub hosts: Vec<String>,
}

/// Most other domains [`by_site`] lists (those with the most pageviews): a wildcard
/// `FAZT_TRACK_DOMAINS` can bring thousands.
pub const MAX_OTHER_DOMAINS: usize = 100;

/// Per-site numbers for an overview, from the hourly roll-ups only: `{from, to, bucket,
/// buckets: [t], totals, sites: [{site, kind, events, pageviews, visitors, timeline:
/// [pageviews per bucket]}]}`. Every given site is listed (`kind` "site"), most pageviews
/// first; with `other_domains`, so are up to [`MAX_OTHER_DOMAINS`] domains that are no
/// site's host but had pageviews in the range (`kind` "domain", tracked sites hosted
/// elsewhere). `buckets` are the starts of every bucket of the range, and each timeline
/// has one count per bucket. A site's numbers equal `/api/stats?site=` for its hosts.
pub fn by_site(
    conn: &Connection,
    sites: &[SiteHosts],
    other_domains: bool,
    from: i64,
    to: i64,
    bucket: Bucket,
) -> Result<Value, DbError> {
    let hour_from = from.div_euclid(HOUR);
    let hour_to = div_ceil(to, HOUR).max(hour_from);
    let per_bucket = bucket.seconds() / HOUR;
    let first_bucket = hour_from.div_euclid(per_bucket);
    let end_bucket = if hour_from < hour_to {
        (hour_to - 1).div_euclid(per_bucket) + 1
    } else {
        first_bucket
    };

    let mut rows: Vec<SiteRow> = Vec::new();
    let mut row_of: IdMap<i64, usize> = IdMap::default();
    for site in sites {
        for host in &site.hosts {
            if let Some(id) = string_id(conn, KIND_DOMAIN, host)? {
                row_of.insert(id, rows.len());
            }
        }
        rows.push(SiteRow::new(&site.site, "site"));
    }
    if other_domains {
        for (id, name) in all_domains(conn)? {
            if let std::collections::hash_map::Entry::Vacant(slot) = row_of.entry(id) {
                slot.insert(rows.len());
                rows.push(SiteRow::new(&name, "domain"));
            }
        }
    }
    let ids: Vec<i64> = row_of.keys().copied().collect();
    if !ids.is_empty() && hour_from < hour_to {
        let mut stmt = conn
            .prepare_cached(&site_hours_sql(&in_list(&ids)))
            .context("preparing the per-site totals")?;
        let mut hours = stmt
            .query(params![hour_from, hour_to])
            .context("reading per-site totals")?;
        while let Some(r) = hours.next().context("reading per-site totals")? {
            let (domain, hour): (i64, i64) = (r.get(0)?, r.get(1)?);
            let t = Totals {
                events: r.get(2)?,
                pageviews: r.get(3)?,
                visitors: r.get(4)?,
            };
            if let Some(&at) = row_of.get(&domain) {
                let row = &mut rows[at];
                row.totals.add(t);
                if t.pageviews != 0 {
                    row.pageviews_at
                        .push((hour.div_euclid(per_bucket), t.pageviews));
                }
            }
        }
    }
    rows.retain(|row| row.kind == "site" || row.totals.pageviews > 0);
    rows.sort_by(|a, b| {
        (a.kind != "site")
            .cmp(&(b.kind != "site"))
            .then(b.totals.pageviews.cmp(&a.totals.pageviews))
            .then(b.totals.events.cmp(&a.totals.events))
            .then_with(|| a.site.cmp(&b.site))
    });
    let listed_sites = rows.iter().filter(|row| row.kind == "site").count();
    rows.truncate(listed_sites + MAX_OTHER_DOMAINS);

    let mut totals = Totals::default();
    let span = usize::try_from(end_bucket - first_bucket).unwrap_or(0);
    let list: Vec<Value> = rows
        .into_iter()
        .map(|row| {
            totals.add(row.totals);
            let mut timeline = vec![0i64; span];
            for (b, n) in row.pageviews_at {
                if let Some(slot) = usize::try_from(b - first_bucket)
                    .ok()
                    .and_then(|i| timeline.get_mut(i))
                {
                    *slot += n;
                }
            }
            let mut entry = totals_json(row.totals);
            entry["site"] = json!(row.site);
            entry["kind"] = json!(row.kind);
            entry["timeline"] = json!(timeline);
            entry
        })
        .collect();
    let seconds = bucket.seconds();
    Ok(json!({
        "from": hour_from * HOUR,
        "to": hour_to * HOUR,
        "bucket": bucket.as_str(),
        "buckets": (first_bucket..end_bucket).map(|b| b * seconds).collect::<Vec<_>>(),
        "totals": totals_json(totals),
        "sites": list,
    }))
}

/// One line of [`by_site`] while it is being counted.
struct SiteRow {
    site: String,
    kind: &'static str,
    totals: Totals,
    /// (bucket, pageviews) of each hour with pageviews, summed per bucket at the end: a
    /// site's hosts interleave, and most domains never get a line.
    pageviews_at: Vec<(i64, i64)>,
}

impl SiteRow {
    fn new(site: &str, kind: &'static str) -> SiteRow {
        SiteRow {
            site: site.to_string(),
            kind,
            totals: Totals::default(),
            pageviews_at: Vec::new(),
        }
    }
}

fn site_hours_sql(list: &str) -> String {
    format!(
        "SELECT domain, hour, events, pageviews, visitors FROM rollup_hourly \
         WHERE domain IN ({list}) AND hour >= ?1 AND hour < ?2"
    )
}

fn totals_json(t: Totals) -> Value {
    json!({"events": t.events, "pageviews": t.pageviews, "visitors": t.visitors})
}

/// A roll-up grain for dimension counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Level {
    Hour,
    Day,
    Month,
}

impl Level {
    /// The dimension roll-up table of this grain and its time column.
    pub(super) fn table(self) -> (&'static str, &'static str) {
        match self {
            Level::Hour => ("rollup_hourly_dims", "hour"),
            Level::Day => ("rollup_daily_dims", "day"),
            Level::Month => ("rollup_monthly_dims", "month"),
        }
    }

    fn finer(self) -> Level {
        match self {
            Level::Month => Level::Day,
            Level::Day | Level::Hour => Level::Hour,
        }
    }

    /// The unit (hour, day or month number) containing `hour`.
    fn unit_of(self, hour: i64) -> i64 {
        match self {
            Level::Hour => hour,
            Level::Day => hour.div_euclid(HOURS_PER_DAY),
            Level::Month => month_of_day(hour.div_euclid(HOURS_PER_DAY)),
        }
    }

    /// The first hour of `unit`.
    fn start(self, unit: i64) -> i64 {
        match self {
            Level::Hour => unit,
            Level::Day => unit * HOURS_PER_DAY,
            Level::Month => first_day_of_month(unit) * HOURS_PER_DAY,
        }
    }
}

/// Units `[from, to)` of one grain, added (`sign` 1) or subtracted (-1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Span {
    pub(super) level: Level,
    pub(super) from: i64,
    pub(super) to: i64,
    pub(super) sign: i64,
}

/// Covers hours `[a, b)` exactly with units of `level` and finer: the whole units inside,
/// then each partial unit at an edge either through finer units, or as the whole unit
/// minus the finer units of its complement when the complement is the smaller part.
pub(super) fn cover(a: i64, b: i64, level: Level, sign: i64, out: &mut Vec<Span>) {
    if a >= b {
        return;
    }
    if level == Level::Hour {
        out.push(Span {
            level,
            from: a,
            to: b,
            sign,
        });
        return;
    }
    let first = level.unit_of(a);
    let ua = if level.start(first) == a {
        first
    } else {
        first + 1
    };
    let ub = level.unit_of(b);
    if ua >= ub {
        // No whole unit inside: all of it at the finer grain.
        cover(a, b, level.finer(), sign, out);
        return;
    }
    let (mut lo, mut hi) = (ua, ub);
    let left_end = level.start(ua);
    if a < left_end {
        let unit_start = level.start(ua - 1);
        if left_end - a > a - unit_start {
            lo = ua - 1;
            cover(unit_start, a, level.finer(), -sign, out);
        } else {
            cover(a, left_end, level.finer(), sign, out);
        }
    }
    let right_start = level.start(ub);
    if right_start < b {
        let unit_end = level.start(ub + 1);
        if b - right_start > unit_end - b {
            hi = ub + 1;
            cover(b, unit_end, level.finer(), -sign, out);
        } else {
            cover(right_start, b, level.finer(), sign, out);
        }
    }
    out.push(Span {
        level,
        from: lo,
        to: hi,
        sign,
    });
}

fn hourly_sql(list: &str) -> String {
    format!(
        "SELECT hour, events, pageviews, visitors FROM rollup_hourly \
         WHERE domain IN ({list}) AND hour >= ?1 AND hour < ?2"
    )
}

/// `(dim, key, count)` of every dimension for units `[?1, ?2)` of `level`.
fn dims_sql(level: Level, list: &str) -> String {
    let (table, unit) = level.table();
    format!(
        "SELECT dim, key, count FROM {table} \
         WHERE domain IN ({list}) AND dim IN ({}) AND {unit} >= ?1 AND {unit} < ?2",
        in_list(&DIMS)
    )
}

/// A fast hasher for small integer keys (string ids): a year of stats hashes tens of
/// thousands of them, and SipHash's DoS resistance buys nothing for database ids.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_i64(&mut self, n: i64) {
        self.write_u64(n as u64);
    }
}

type IdMap<K, V> = HashMap<K, V, BuildHasherDefault<IdHasher>>;

/// Most values tied for the last place of a top list whose names are read to break the
/// tie by value; past it the tie goes to the first seen, so a list costs the same
/// whatever was sent.
const MAX_TIED_NAMES: usize = 1_000;

/// The `top` largest `(key, count)` of `dim` as `[{value, count}]`, by count descending,
/// then value (among more than [`MAX_TIED_NAMES`] values tied for the last place, the
/// first seen make the list). Only the strings that can make the list are looked up. Redirect clicks are
/// named by their slug (the click's path without `/r/`).
fn top_list(
    conn: &Connection,
    mut items: Vec<(i64, i64)>,
    top: usize,
    dim: i64,
) -> Result<Value, DbError> {
    if top == 0 || items.is_empty() {
        return Ok(json!([]));
    }
    if items.len() > top {
        items.select_nth_unstable_by(top - 1, |a, b| b.1.cmp(&a.1));
        let threshold = items[top - 1].1;
        let tied = items.iter().filter(|&&(_, n)| n == threshold).count();
        if tied <= MAX_TIED_NAMES {
            // Keep everything tied with the last place, so ties break by value, not by
            // chance.
            items.retain(|&(_, count)| count >= threshold);
        } else {
            // Junk: thousands of values seen once. Reading every name would cost more
            // than the rest of the stats; the first seen (smallest ids) fill the list.
            let above = items.iter().filter(|&&(_, n)| n > threshold).count();
            let (mut kept, mut at): (Vec<_>, Vec<_>) = items
                .into_iter()
                .filter(|&(_, n)| n >= threshold)
                .partition(|&(_, n)| n > threshold);
            at.sort_unstable_by_key(|&(key, _)| key);
            at.truncate(top - above);
            kept.extend(at);
            items = kept;
        }
    }
    let mut named: Vec<(String, i64)> = Vec::with_capacity(items.len());
    for (key, count) in items {
        let mut value = string_value(conn, key)?;
        if dim == DIM_REDIRECT {
            if let Some(slug) = value.strip_prefix(REDIRECT_PREFIX) {
                value = slug.to_string();
            }
        }
        named.push((value, count));
    }
    named.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    named.truncate(top);
    Ok(Value::Array(
        named
            .into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect(),
    ))
}

// ---------------------------------------------------------------------------------------
// Recent events
// ---------------------------------------------------------------------------------------

/// Most events one [`recent_events`] call returns.
pub const MAX_RECENT: usize = 1_000;

/// Most raw rows one [`recent_events`] call examines when filtering by type or tag (which
/// have no index): past it the call returns what it found with `next_before` set to where
/// it stopped, so a rare filter pages through history instead of scanning it all at once.
pub const RECENT_SCAN_BUDGET: usize = 50_000;

/// Raw events, newest first: `{events: [{id, ts, domain, path, type, referrer, source,
/// tags: [..], q, utm: {source, medium, campaign}}], next_before}`. Pass `next_before` back as `before_id` for the next
/// page; it is `null` when there is nothing older. `limit` is clamped to 1..=1000. A site,
/// type or tag that was never seen gives an empty page.
pub fn recent_events(
    conn: &Connection,
    sites: Option<&[String]>,
    kind: Option<&str>,
    tag: Option<&str>,
    before_id: Option<i64>,
    limit: usize,
) -> Result<Value, DbError> {
    let limit = limit.clamp(1, MAX_RECENT);
    let empty = || Ok(json!({"events": [], "next_before": null}));
    // A site seen under several hosts (the root site) lists its most used one's events.
    let domain = match sites {
        Some(names) => match domain_ids(conn, Some(names))?.first() {
            Some(&id) => Some(id),
            None => return empty(),
        },
        None => None,
    };
    let type_id = match kind {
        Some(k) => match string_id(conn, KIND_TYPE, k)? {
            Some(id) => Some(id),
            None => return empty(),
        },
        None => None,
    };
    let tag_needle = match tag {
        Some(t) => match string_id(conn, KIND_TAG, t)? {
            Some(id) => Some(format!(",{id},")),
            None => return empty(),
        },
        None => None,
    };
    let before = before_id.unwrap_or(i64::MAX);
    let mut stmt = match domain {
        Some(_) => conn.prepare_cached(RECENT_BY_SITE),
        None => conn.prepare_cached(RECENT_ALL),
    }
    .context("preparing recent events")?;
    let mut rows = match domain {
        Some(d) => stmt.query(params![d, before]),
        None => stmt.query(params![before]),
    }
    .context("reading recent events")?;

    let mut names: HashMap<i64, String> = HashMap::new();
    let mut name = |id: Option<i64>| -> Result<Value, DbError> {
        match id {
            None => Ok(Value::Null),
            Some(id) => {
                if let Some(v) = names.get(&id) {
                    return Ok(json!(v));
                }
                let v = string_value(conn, id)?;
                names.insert(id, v.clone());
                Ok(json!(v))
            }
        }
    };
    let mut events = Vec::new();
    let mut scanned = 0;
    let mut next_before = None;
    while let Some(row) = rows.next().context("reading recent events")? {
        let id: i64 = row.get(0)?;
        scanned += 1;
        let ev_type: i64 = row.get(4)?;
        let tags: Option<String> = row.get(7)?;
        let wanted = type_id.is_none_or(|t| t == ev_type)
            && tag_needle
                .as_deref()
                .is_none_or(|needle| tags.as_deref().is_some_and(|t| t.contains(needle)));
        if wanted {
            if events.len() == limit {
                // There is at least one more: the page ends at the last one returned.
                next_before = events
                    .last()
                    .and_then(|e: &Value| e["id"].as_i64())
                    .or(Some(id));
                break;
            }
            let query: Option<String> = row.get(8)?;
            let tag_names = match &tags {
                None => Vec::new(),
                Some(t) => {
                    let mut list = Vec::new();
                    for part in t.split(',').filter(|p| !p.is_empty()) {
                        if let Ok(tag_id) = part.parse::<i64>() {
                            list.push(name(Some(tag_id))?);
                        }
                    }
                    list
                }
            };
            events.push(json!({
                "id": id,
                "ts": row.get::<_, i64>(1)?,
                "domain": name(Some(row.get(2)?))?,
                "path": name(row.get(3)?)?,
                "type": name(Some(ev_type))?,
                "referrer": name(row.get(5)?)?,
                "source": source_name(row.get(6)?),
                "tags": tag_names,
                "q": query.map(|text| serde_json::from_str(&text).unwrap_or(Value::String(text))),
                "utm": {
                    "source": name(row.get(9)?)?,
                    "medium": name(row.get(10)?)?,
                    "campaign": name(row.get(11)?)?,
                },
            }));
        }
        if scanned >= RECENT_SCAN_BUDGET && (type_id.is_some() || tag_needle.is_some()) {
            next_before = Some(id);
            break;
        }
    }
    Ok(json!({"events": events, "next_before": next_before}))
}

const RECENT_BY_SITE: &str = "SELECT id, ts, domain, path, type, referrer, source, tags, query, \
     utm_source, utm_medium, utm_campaign FROM events WHERE domain = ?1 AND id < ?2 \
     ORDER BY id DESC";
const RECENT_ALL: &str = "SELECT id, ts, domain, path, type, referrer, source, tags, query, \
     utm_source, utm_medium, utm_campaign FROM events WHERE id < ?1 ORDER BY id DESC";

// ---------------------------------------------------------------------------------------
// Domains and tags
// ---------------------------------------------------------------------------------------

/// One page of a list: skip `offset` items, return at most `limit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Page {
    pub offset: usize,
    pub limit: usize,
}

impl Page {
    /// The items of this page out of `total` sorted ones, and the offset of the next page
    /// (`None` when this one reaches the end).
    fn window(self, total: usize) -> (std::ops::Range<usize>, Option<usize>) {
        let start = self.offset.min(total);
        let end = start.saturating_add(self.limit).min(total);
        (start..end, (end < total).then_some(end))
    }
}

/// Every site with events: `{domains: [{domain, events, pageviews, first_seen,
/// last_seen}], next}`, most events first (then by name), `page.limit` from
/// `page.offset`; `next` is the offset of the next page, `null` after the last.
/// `first_seen`/`last_seen` are the starts of the first and last hours with events (from
/// the roll-ups, so they survive raw-event retention).
pub fn domains(conn: &Connection, page: Page) -> Result<Value, DbError> {
    let mut stmt = conn
        .prepare_cached(DOMAIN_TOTALS)
        .context("preparing the domain totals")?;
    let mut list = Vec::new();
    for (id, name) in all_domains(conn)? {
        let row: (Option<i64>, Option<i64>, Option<i64>, Option<i64>) = stmt
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .context("reading domain totals")?;
        if let (Some(events), Some(pageviews), Some(first), Some(last)) = row {
            list.push((name, events, pageviews, first, last));
        }
    }
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let (range, next) = page.window(list.len());
    Ok(json!({
        "next": next,
        "domains": list
            .drain(range)
            .map(|(domain, events, pageviews, first, last)| json!({
                "domain": domain,
                "events": events,
                "pageviews": pageviews,
                "first_seen": first * HOUR,
                "last_seen": last * HOUR,
            }))
            .collect::<Vec<_>>()
    }))
}

const DOMAIN_TOTALS: &str = "SELECT sum(events), sum(pageviews), min(hour), max(hour) \
     FROM rollup_hourly WHERE domain = ?1";

/// Every tag with its number of events over all sites and the whole history kept in the
/// (monthly) roll-ups: `{tags: [{value, count}], next}`, most used first (ties: the first
/// seen first), paged like [`domains`]. Only the page's names are read.
pub fn tags(conn: &Connection, page: Page) -> Result<Value, DbError> {
    let domains: Vec<i64> = all_domains(conn)?.into_iter().map(|(id, _)| id).collect();
    let mut counts: IdMap<i64, i64> = IdMap::default();
    if !domains.is_empty() {
        let mut stmt = conn
            .prepare_cached(&tags_sql(&in_list(&domains)))
            .context("preparing the tag counts")?;
        let mut rows = stmt.query([]).context("reading tag counts")?;
        while let Some(row) = rows.next().context("reading tag counts")? {
            *counts.entry(row.get(0)?).or_default() += row.get::<_, i64>(1)?;
        }
    }
    let mut items: Vec<(i64, i64)> = counts.into_iter().filter(|&(_, n)| n != 0).collect();
    // String ids grow as values are first seen: a total order without reading names.
    items.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let (range, next) = page.window(items.len());
    let mut tags = Vec::with_capacity(range.len());
    for &(key, count) in &items[range] {
        tags.push(json!({"value": string_value(conn, key)?, "count": count}));
    }
    Ok(json!({ "tags": tags, "next": next }))
}

fn tags_sql(list: &str) -> String {
    format!(
        "SELECT key, count FROM rollup_monthly_dims WHERE domain IN ({list}) AND dim = {DIM_TAG}"
    )
}

// ---------------------------------------------------------------------------------------
// Strings
// ---------------------------------------------------------------------------------------

/// The domain ids a query covers: one site's (none if it was never seen) or all.
pub(super) fn domain_ids(conn: &Connection, sites: Option<&[String]>) -> Result<Vec<i64>, DbError> {
    match sites {
        Some(names) => {
            let mut ids = Vec::new();
            for name in names {
                ids.extend(string_id(conn, KIND_DOMAIN, name)?);
            }
            Ok(ids)
        }
        None => Ok(all_domains(conn)?.into_iter().map(|(id, _)| id).collect()),
    }
}

pub(super) fn all_domains(conn: &Connection) -> Result<Vec<(i64, String)>, DbError> {
    conn.prepare_cached(ALL_DOMAINS)
        .context("preparing the domain list")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .context("listing domains")?
        .collect::<Result<_, _>>()
        .context("listing domains")
}

const ALL_DOMAINS: &str = "SELECT id, value FROM strings WHERE kind = 1";
const STRING_VALUE: &str = "SELECT value FROM strings WHERE id = ?1";

fn string_value(conn: &Connection, id: i64) -> Result<String, DbError> {
    conn.prepare_cached(STRING_VALUE)
        .context("preparing a string lookup")?
        .query_row([id], |row| row.get(0))
        .optional()
        .context("looking up a string")?
        .ok_or_else(|| DbError::Internal(format!("string {id} is referenced but missing")))
}

/// `1,2,3` for an SQL `IN (...)`: the values are integers from the database, never text
/// from a request.
pub(super) fn in_list(ids: &[i64]) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub(super) fn div_ceil(a: i64, b: i64) -> i64 {
    -(-a).div_euclid(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::analytics::store;
    use crate::analytics::store::tests::migrated;

    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        let n = stmt.parameter_count();
        let args: Vec<i64> = vec![1; n];
        stmt.query_map(rusqlite::params_from_iter(args), |row| {
            row.get::<_, String>(3)
        })
        .expect("plan")
        .collect::<Result<_, _>>()
        .expect("plan rows")
    }

    /// Every statement on the stats, recent-events and retention paths is an index search
    /// (`SEARCH ... USING ... KEY/INDEX`), never a full `SCAN` of a table.
    #[test]
    fn every_query_is_an_index_range_scan() {
        let conn = migrated();
        let list = "1,2,3";
        let mut statements = vec![
            hourly_sql(list),
            hourly_sql("7"),
            site_hours_sql(list),
            tags_sql(list),
            RECENT_BY_SITE.to_string(),
            dims_sql(Level::Hour, list),
            dims_sql(Level::Day, list),
            dims_sql(Level::Month, list),
            dims_sql(Level::Day, "7"),
            RECENT_ALL.to_string(),
            DOMAIN_TOTALS.to_string(),
            ALL_DOMAINS.to_string(),
            store::STRING_ID.to_string(),
            STRING_VALUE.to_string(),
            crate::analytics::caps::DAY_VALUES.to_string(),
        ];
        for sql in [
            store::PRUNE_EVENT_IDS,
            store::PRUNE_EVENT_RANGE,
            store::PRUNE_EVENTS_LEFT,
            store::PRUNE_HOURLY_KEYS,
            store::PRUNE_HOURLY_ROW,
            store::PRUNE_VISITOR_KEYS,
            store::PRUNE_VISITOR_ROW,
            store::PRUNE_HOUR_DIM_KEYS,
            store::PRUNE_HOUR_DIM_ROW,
            store::PRUNE_DAY_DIM_KEYS,
            store::PRUNE_DAY_DIM_ROW,
            store::PRUNE_MONTH_DIM_KEYS,
            store::PRUNE_MONTH_DIM_ROW,
        ] {
            statements.push(sql.to_string());
        }
        for sql in &statements {
            assert_index_search(&conn, sql);
        }
    }

    /// `sql` is an index search (`SEARCH ... USING ... KEY/INDEX`), never a full `SCAN`
    /// of a table nor a sort.
    pub(crate) fn assert_index_search(conn: &Connection, sql: &str) {
        let lines = plan(conn, sql);
        assert!(!lines.is_empty(), "{sql}");
        for line in &lines {
            let table_access = line.starts_with("SCAN") || line.starts_with("SEARCH");
            if table_access {
                assert!(
                    line.starts_with("SEARCH") && line.contains("USING"),
                    "{sql}\n  does a full scan: {line}\n  plan: {lines:?}"
                );
            }
            assert!(
                !line.contains("TEMP B-TREE"),
                "{sql}\n  sorts: {line}\n  plan: {lines:?}"
            );
        }
    }

    /// Expands spans to hours with their signs.
    fn weights(spans: &[Span]) -> BTreeMap<i64, i64> {
        let mut w = BTreeMap::new();
        for span in spans {
            for unit in span.from..span.to {
                for hour in span.level.start(unit)..span.level.start(unit + 1) {
                    *w.entry(hour).or_insert(0) += span.sign;
                }
            }
        }
        w.retain(|_, v| *v != 0);
        w
    }

    #[test]
    fn cover_counts_every_hour_of_the_range_once() {
        let h = |day: i64, hour: i64| day * 24 + hour;
        // 2024-01-01 is day 19723; 2024-03-01 is 19783.
        let jan1 = 19_723;
        let mut cases = vec![
            (h(jan1, 0), h(jan1 + 366, 0)), // a whole (leap) year: 12 months
            (h(jan1, 5), h(jan1 + 365, 7)), // a year with partial edges
            (h(jan1, 3), h(jan1, 9)),       // hours of one day
            (h(jan1 + 1, 0), h(jan1 + 3, 0)),
            (h(jan1 + 2, 20), h(jan1 + 40, 2)),
            (h(jan1 + 59, 23), h(jan1 + 61, 1)), // across the leap day
            (h(jan1, 0), h(jan1, 0)),
        ];
        let mut x: u64 = 0x1234_5678_9ABC_DEF1;
        for _ in 0..400 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let a = h(jan1 - 40, 0) + (x % (500 * 24)) as i64;
            let len = ((x >> 20) % (120 * 24)) as i64;
            cases.push((a, a + len));
        }
        for (a, b) in cases {
            let mut spans = Vec::new();
            cover(a, b, Level::Month, 1, &mut spans);
            let want: BTreeMap<i64, i64> = (a..b).map(|hour| (hour, 1)).collect();
            assert_eq!(weights(&spans), want, "[{a}, {b}): {spans:?}");
        }
        // A year reads 12 months, not 365 days.
        let mut spans = Vec::new();
        cover(h(jan1, 0), h(jan1 + 366, 0), Level::Month, 1, &mut spans);
        assert_eq!(
            spans,
            [Span {
                level: Level::Month,
                from: 648,
                to: 660,
                sign: 1
            }]
        );
        // Partial edges: at most ~half a month of days and half a day of hours per edge.
        let mut spans = Vec::new();
        cover(h(jan1, 5), h(jan1 + 365, 7), Level::Month, 1, &mut spans);
        let units = |level| -> i64 {
            spans
                .iter()
                .filter(|s| s.level == level)
                .map(|s| s.to - s.from)
                .sum()
        };
        assert_eq!(units(Level::Month), 12);
        assert!(units(Level::Day) <= 2 * 15, "{spans:?}");
        assert!(units(Level::Hour) <= 2 * 12, "{spans:?}");
        // Whatever the range, each edge costs at most half a month of days and half a
        // day of hours (plus one unit for the complement).
        for (a, b) in [
            (h(jan1, 5), h(jan1 + 200, 13)),
            (h(jan1 + 16, 11), h(jan1 + 75, 12)),
        ] {
            let mut spans = Vec::new();
            cover(a, b, Level::Month, 1, &mut spans);
            let days: i64 = spans
                .iter()
                .filter(|s| s.level == Level::Day)
                .map(|s| s.to - s.from)
                .sum();
            let hours: i64 = spans
                .iter()
                .filter(|s| s.level == Level::Hour)
                .map(|s| s.to - s.from)
                .sum();
            assert!(days <= 2 * 16 && hours <= 2 * 12, "{spans:?}");
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(div_ceil(0, 3600), 0);
        assert_eq!(div_ceil(1, 3600), 1);
        assert_eq!(div_ceil(3600, 3600), 1);
        assert_eq!(div_ceil(-1, 3600), 0);
        assert_eq!(Bucket::parse("day"), Some(Bucket::Day));
        assert_eq!(Bucket::parse("week"), None);
        assert_eq!(Bucket::Hour.as_str(), "hour");
    }

    #[test]
    fn a_tie_of_thousands_for_the_last_place_goes_to_the_first_seen() {
        let conn = migrated();
        let mut items = Vec::new();
        for i in 0..3_000i64 {
            conn.execute(
                "INSERT INTO strings (kind, value) VALUES (2, ?1)",
                [format!("/p{}", 3_000 - i)],
            )
            .unwrap();
            items.push((conn.last_insert_rowid(), if i == 2_000 { 5 } else { 1 }));
        }
        let list = top_list(&conn, items.clone(), 3, DIM_PATH).unwrap();
        // "/p1000" leads; then the two first seen of the tie ("/p3000", "/p2999"), by
        // value, not the two smallest names.
        assert_eq!(
            list,
            json!([
                {"value": "/p1000", "count": 5},
                {"value": "/p2999", "count": 1},
                {"value": "/p3000", "count": 1},
            ])
        );
        // A small tie still breaks by value.
        items.truncate(10);
        let list = top_list(&conn, items, 2, DIM_PATH).unwrap();
        assert_eq!(
            list,
            json!([{"value": "/p2991", "count": 1}, {"value": "/p2992", "count": 1}])
        );
    }

    #[test]
    fn an_unknown_site_has_empty_stats() {
        let conn = migrated();
        let q = StatsQuery {
            site: Some("nope.example".into()),
            domains: Some(vec!["nope.example".into()]),
            from: 0,
            to: 86_400,
            bucket: Bucket::Day,
            top: 5,
        };
        let v = stats(&conn, &q).expect("stats");
        assert_eq!(v["totals"]["events"], 0);
        assert_eq!(v["timeline"], json!([]));
        assert_eq!(v["top_paths"], json!([]));
        let r = recent_events(&conn, Some(&["nope.example".into()]), None, None, None, 10)
            .expect("recent");
        assert_eq!(r, json!({"events": [], "next_before": null}));
    }
}
