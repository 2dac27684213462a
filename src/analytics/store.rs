//! Writing event batches together with their roll-ups, the daily salts, and retention
//! (DESIGN §3, schema 2 in `migrations/002_analytics.sql`).
//!
//! Invariants:
//! - A batch is one `BEGIN IMMEDIATE` transaction: its raw rows, the strings they refer to,
//!   `visitors_daily` and every roll-up row change together or not at all. A failed batch
//!   can be retried as a whole.
//! - The roll-ups always equal a recount of the raw events written through
//!   [`EventStore::write_batch`] (until retention prunes raw rows): per site and hour,
//!   events, pageviews and first-seen-of-the-day visitors; per site, dimension and
//!   hour/day/month, the count of each value. A visitor is counted in the hour of their
//!   earliest event in the batch that first saw them that day (events arrive in time
//!   order, so that is their first event of the day).
//! - The in-memory caches (string ids, visitor-days) only hold committed rows: they are
//!   cleared when a batch fails, since rows inserted by a rolled-back transaction do not
//!   exist. A visitor-day in the cache is in `visitors_daily`, so its insert is skipped
//!   (same answer: it would be ignored); one not in the cache is looked up by the insert.
//!   Only `fazt db prune --rollups` deletes `visitors_daily` rows, of days before its
//!   cutoff, which live events (stamped at ingest) never reach.
//! - Nothing here deletes strings: ids stay valid for as long as the database lives. So
//!   that junk cannot grow them without bound, the values of paths, referrers, event types,
//!   tags and campaigns pass the daily cap ([`super::caps`]) before they are interned:
//!   past it, raw rows and roll-ups alike name `(other)`.
//! - Memory given to a burst is given back: the caches are bounded in bytes and dropped
//!   (not just emptied) when over, and once a burst's queue has drained the batch
//!   buffers shrink and the allocator returns its free pages
//!   ([`release_memory_after_burst`]).

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::io::Read;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use rusqlite::{params, params_from_iter, Connection, OptionalExtension, TransactionBehavior};

use super::caps::{DailyValues, DayKey, Verdict, DEFAULT_MAX_DAILY_VALUES, OTHER};
use super::event::{day_of, Event, Source, NOT_FOUND, PAGEVIEW, REDIRECT_CLICK};
use crate::db::{Context, DbError};

/// `strings.kind` values.
pub const KIND_DOMAIN: u8 = 1;
pub const KIND_PATH: u8 = 2;
pub const KIND_REFERRER: u8 = 3;
pub const KIND_TYPE: u8 = 4;
pub const KIND_TAG: u8 = 5;
/// utm_source, utm_medium and utm_campaign values (schema 5).
pub const KIND_CAMPAIGN: u8 = 6;
const KINDS: usize = 6;

/// `rollup_*_dims.dim` values. Keys are `strings` ids of the kind in the comment.
/// Paths of pageviews (kind path).
pub const DIM_PATH: i64 = 1;
/// Referrer hosts of all events (kind referrer).
pub const DIM_REFERRER: i64 = 2;
/// Event types of all events (kind type).
pub const DIM_TYPE: i64 = 3;
/// Each tag of each event (kind tag).
pub const DIM_TAG: i64 = 4;
/// Redirect clicks by slug: the path of events whose source is [`Source::Redirect`].
pub const DIM_REDIRECT: i64 = 5;
/// Campaign dimensions (schema 5), of every event that carries them (kind campaign).
pub const DIM_UTM_SOURCE: i64 = 6;
pub const DIM_UTM_MEDIUM: i64 = 7;
pub const DIM_UTM_CAMPAIGN: i64 = 8;
/// Paths of `404` events (kind path), so broken links have a top list of their own. Counted
/// from this version on: older 404s are only in the raw events.
pub const DIM_NOT_FOUND: i64 = 9;
/// The campaign dimensions in the order of `Utm::values`.
pub const UTM_DIMS: [i64; 3] = [DIM_UTM_SOURCE, DIM_UTM_MEDIUM, DIM_UTM_CAMPAIGN];
/// Every dimension, in order.
pub const DIMS: [i64; 9] = [
    DIM_PATH,
    DIM_REFERRER,
    DIM_TYPE,
    DIM_TAG,
    DIM_REDIRECT,
    DIM_UTM_SOURCE,
    DIM_UTM_MEDIUM,
    DIM_UTM_CAMPAIGN,
    DIM_NOT_FOUND,
];

/// Past this many cached strings, or this many bytes of them (each counted with
/// [`CACHE_ENTRY_OVERHEAD`]), the cache starts over; the database remains the source of
/// truth, so this only costs some lookups. Values are clipped to 500 characters, so a
/// count alone would allow ~50 MB of long junk.
const MAX_CACHED_STRINGS: usize = 100_000;
const MAX_CACHED_BYTES: usize = 4 << 20;
/// A map entry's own bytes besides the string: key and value, String header, hash slot.
const CACHE_ENTRY_OVERHEAD: usize = 48;
/// A batch this large means a burst: when a later batch finds the queue drained, the
/// writer gives the burst's memory back (a quiet site's batches hold a few events).
const BURST_BATCH: usize = 1_000;
/// A burst is over after this long without a batch (`malloc_trim` walks every arena, so
/// not during one).
const RELEASE_INTERVAL: Duration = Duration::from_secs(1);

/// The writer's last burst: when its latest batch committed, and whether the memory it
/// took is still to be given back ([`release_memory_after_burst`], the admin thread's
/// tick: a tick, not the writer's next batch, so it happens when nothing more arrives).
static BURST: Mutex<Burst> = Mutex::new(Burst {
    pending: false,
    last_batch: None,
});

struct Burst {
    pending: bool,
    last_batch: Option<Instant>,
}

/// Returns the allocator's free pages to the kernel once a burst of events is over (no
/// batch for [`RELEASE_INTERVAL`]). The burst's events were allocated in the core
/// threads' arenas, where glibc would otherwise keep the freed pages for good. Cheap when
/// there is nothing to do; never during a burst.
pub fn release_memory_after_burst() {
    let mut burst = BURST.lock();
    let quiet = burst
        .last_batch
        .is_some_and(|at| at.elapsed() >= RELEASE_INTERVAL);
    if burst.pending && quiet {
        burst.pending = false;
        drop(burst);
        crate::platform::sys::release_free_memory();
    }
}

/// Past this many cached visitor-days (~40 bytes each in the set, so ~4 MB) the visitor
/// cache starts over, like the string cache.
const MAX_KNOWN_VISITORS: usize = 100_000;

/// Seconds per roll-up hour and day.
const HOUR: i64 = 3_600;
const DAY: i64 = 86_400;

/// The hour (unix seconds / 3600) of a unix time.
pub fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR)
}

/// The calendar month (UTC) of a day, as months since 1970-01:
/// `(year - 1970) * 12 + month - 1`.
pub fn month_of_day(day: i64) -> i64 {
    // Howard Hinnant's civil_from_days, on March-based years.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let (year, month) = if mp < 10 {
        (yoe + era * 400, mp + 3)
    } else {
        (yoe + era * 400 + 1, mp - 9)
    };
    (year - 1970) * 12 + month - 1
}

/// The first day (days since the epoch) of a month from [`month_of_day`].
pub fn first_day_of_month(month: i64) -> i64 {
    // Howard Hinnant's days_from_civil for day 1 of the month.
    let (year, m) = (1970 + month.div_euclid(12), month.rem_euclid(12) + 1);
    let y = if m <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The name of a stored `events.source` number.
pub fn source_name(source: i64) -> &'static str {
    match source {
        1 => "track",
        2 => "pixel",
        3 => "redirect",
        4 => "webhook",
        5 => "page",
        _ => "unknown",
    }
}

pub(crate) const STRING_ID: &str = "SELECT id FROM strings WHERE kind = ?1 AND value = ?2";

/// The id of `value` in `strings` (kind `kind`), if it is there.
pub(crate) fn string_id(conn: &Connection, kind: u8, value: &str) -> Result<Option<i64>, DbError> {
    conn.prepare_cached(STRING_ID)
        .context("preparing the string lookup")?
        .query_row(params![kind, value], |row| row.get(0))
        .optional()
        .context("looking up a string")
}

/// Totals of one (site, hour) in a batch.
#[derive(Default, Clone, Copy)]
struct HourTotals {
    events: i64,
    pageviews: i64,
    visitors: i64,
}

/// How the store bounds what junk costs.
#[derive(Clone, Copy, Debug)]
pub struct StoreLimits {
    /// Distinct values per site, day and dimension (`FAZT_MAX_DAILY_VALUES`).
    pub max_daily_values: usize,
    /// Events in a full batch (`FAZT_EVENT_BATCH`): a batch smaller than this took every
    /// queued event, so the queue has drained.
    pub full_batch: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        StoreLimits {
            max_daily_values: DEFAULT_MAX_DAILY_VALUES,
            full_batch: crate::db::events::DEFAULT_MAX_EVENTS,
        }
    }
}

/// Commits event batches (the writer's event sink). Holds the string-id cache, so keep
/// one per writer for the life of the connection.
pub struct EventStore {
    /// One map per `strings.kind` (index kind - 1), so lookups borrow a `&str`.
    ids: [FastMap<String, i64>; KINDS],
    cached: usize,
    cached_bytes: usize,
    caps: DailyValues,
    limits: StoreLimits,
    /// A batch of at least [`BURST_BATCH`] was written since the queue last drained.
    in_burst: bool,
    /// (domain, day, visitor) rows committed to `visitors_daily`, of the newest day seen
    /// and the day before. Under live load a visitor's events span many batches a day:
    /// without this, every batch would look each of them up again.
    known_visitors: FastSet<(i64, i64, i64)>,
    /// The newest day in `known_visitors`.
    known_day: i64,
    tally: BatchTally,
}

impl Default for EventStore {
    fn default() -> EventStore {
        EventStore::new()
    }
}

impl EventStore {
    /// A store with the default limits. It never checks the disk breaker: analytics
    /// commits are tiny and keep committing past it, since the breaker stops bulk writes
    /// only; a commit that finds no room fails and is retried (DESIGN §6, `db::events`).
    pub fn new() -> EventStore {
        EventStore::with_limits(StoreLimits::default())
    }

    pub fn with_limits(limits: StoreLimits) -> EventStore {
        EventStore {
            ids: Default::default(),
            cached: 0,
            cached_bytes: 0,
            caps: DailyValues::new(limits.max_daily_values),
            limits,
            in_burst: false,
            known_visitors: FastSet::default(),
            known_day: i64::MIN,
            tally: BatchTally::default(),
        }
    }

    /// Strings currently cached.
    #[cfg(test)]
    pub fn cached_strings(&self) -> usize {
        self.cached
    }

    /// Writes `batch` — raw rows, strings, visitors and roll-ups — in one IMMEDIATE
    /// transaction. On error nothing is written and the same batch may be retried.
    pub fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        if batch.is_empty() {
            return Ok(());
        }
        if self.cached > MAX_CACHED_STRINGS || self.cached_bytes > MAX_CACHED_BYTES {
            self.clear_cache();
        }
        if self.known_visitors.len() > MAX_KNOWN_VISITORS {
            self.known_visitors = FastSet::default();
        }
        let result = self.write_in_transaction(conn, batch);
        match &result {
            Ok(()) => self.remember_visitors(),
            // Ids interned, visitors inserted and daily values admitted by the rolled-back
            // transaction do not exist any more.
            Err(_) => self.clear_cache(),
        }
        self.release_after_burst(conn, batch.len());
        result
    }

    /// Drops the caches with their allocations (a cleared map keeps its capacity, which
    /// after a burst is the burst's size).
    fn clear_cache(&mut self) {
        self.ids = Default::default();
        self.cached = 0;
        self.cached_bytes = 0;
        self.known_visitors = FastSet::default();
        self.tally.new_visitors.clear();
        self.caps.clear();
    }

    /// After a burst, once a batch finds the queue drained (it is not full), shrinks the
    /// batch buffers to what a quiet site needs, lets SQLite drop the write connection's
    /// page cache (the burst filled it; it refills from the OS cache as needed) and asks
    /// for the allocator's free memory to be handed back ([`release_memory_after_burst`]).
    fn release_after_burst(&mut self, conn: &Connection, batch_len: usize) {
        {
            let mut burst = BURST.lock();
            burst.last_batch = Some(Instant::now());
            burst.pending |= batch_len >= BURST_BATCH;
        }
        if batch_len >= BURST_BATCH {
            self.in_burst = true;
        }
        if !self.in_burst || batch_len >= self.limits.full_batch {
            return;
        }
        self.in_burst = false;
        self.tally = BatchTally::default();
        self.known_visitors.shrink_to_fit();
        for map in &mut self.ids {
            map.shrink_to_fit();
        }
        // Only frees memory; failing to is no reason to fail a committed batch.
        if let Err(e) = conn.execute_batch("PRAGMA shrink_memory") {
            log::debug!("PRAGMA shrink_memory after a burst: {e}");
        }
    }

    /// Adds the committed batch's visitor-days to the cache, keeping the newest day and
    /// the one before (events near midnight may still arrive for it).
    fn remember_visitors(&mut self) {
        let newest = self.tally.new_visitors.iter().map(|&(_, day, _)| day).max();
        if let Some(newest) = newest.filter(|&d| d > self.known_day) {
            self.known_day = newest;
            self.known_visitors
                .retain(|&(_, day, _)| day >= newest.saturating_sub(1));
        }
        self.known_visitors
            .extend(self.tally.new_visitors.drain(..));
    }

    fn write_in_transaction(
        &mut self,
        conn: &mut Connection,
        batch: &[Event],
    ) -> Result<(), DbError> {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .context("starting an event batch")?;
        let mut tally = std::mem::take(&mut self.tally);
        tally.clear();
        let result = self
            .insert_events(&tx, batch, &mut tally)
            .and_then(|()| write_rollups(&tx, &mut tally, &self.known_visitors));
        // Keep the allocations for the next batch.
        self.tally = tally;
        result?;
        tx.commit().context("committing an event batch")
    }

    /// Inserts the raw rows of `batch` and counts them into `tally`.
    fn insert_events(
        &mut self,
        tx: &Connection,
        batch: &[Event],
        tally: &mut BatchTally,
    ) -> Result<(), DbError> {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO events (ts, domain, path, type, referrer, visitor, source, tags, \
                 query, utm_source, utm_medium, utm_campaign) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )
            .context("preparing the event insert")?;
        let mut tag_ids: Vec<i64> = Vec::new();
        let mut tags_text = String::new();
        for event in batch {
            let day = day_of(event.ts);
            let domain = self.domain_id(tx, event, day)?;
            let path = match &event.path {
                Some(p) if path_is_bounded(event) => Some(self.intern(tx, KIND_PATH, p)?),
                Some(p) => Some(self.capped(tx, KIND_PATH, (domain, day, DIM_PATH), p)?),
                None => None,
            };
            let kind = if BUILT_IN_TYPES.contains(&event.kind.as_str()) {
                self.intern(tx, KIND_TYPE, &event.kind)?
            } else {
                self.capped(tx, KIND_TYPE, (domain, day, DIM_TYPE), &event.kind)?
            };
            let referrer = match &event.referrer {
                Some(r) => Some(self.capped(tx, KIND_REFERRER, (domain, day, DIM_REFERRER), r)?),
                None => None,
            };
            tag_ids.clear();
            for tag in &event.tags {
                let id = self.capped(tx, KIND_TAG, (domain, day, DIM_TAG), tag)?;
                if !tag_ids.contains(&id) {
                    tag_ids.push(id);
                }
            }
            let tags = if tag_ids.is_empty() {
                None
            } else {
                tags_text.clear();
                tags_text.push(',');
                for id in &tag_ids {
                    // Writing into a String cannot fail.
                    let _ = write!(tags_text, "{id},");
                }
                Some(tags_text.as_str())
            };
            let mut utm = [None; 3];
            for ((slot, value), dim) in utm.iter_mut().zip(event.utm.values()).zip(UTM_DIMS) {
                if let Some(value) = value {
                    *slot = Some(self.capped(tx, KIND_CAMPAIGN, (domain, day, dim), value)?);
                }
            }
            let visitor = event.visitor as i64;
            insert
                .execute(params![
                    event.ts,
                    domain,
                    path,
                    kind,
                    referrer,
                    visitor,
                    event.source as u8,
                    tags,
                    event.query,
                    utm[0],
                    utm[1],
                    utm[2],
                ])
                .context("inserting an event")?;

            let hour = hour_of(event.ts);
            let pageview = event.kind == PAGEVIEW;
            let totals = tally.hours.entry((domain, hour)).or_default();
            totals.events += 1;
            totals.pageviews += i64::from(pageview);
            tally
                .visitors
                .entry((domain, day_of(event.ts), visitor))
                .and_modify(|h| *h = (*h).min(hour))
                .or_insert(hour);

            let hour_dims = &mut tally.hour_dims;
            let mut count = |dim: i64, key: i64| {
                *hour_dims.entry((domain, dim, hour, key)).or_default() += 1;
            };
            if let (true, Some(path)) = (pageview, path) {
                count(DIM_PATH, path);
            }
            if let (true, Some(path)) = (event.kind == NOT_FOUND, path) {
                count(DIM_NOT_FOUND, path);
            }
            if let Some(referrer) = referrer {
                count(DIM_REFERRER, referrer);
            }
            count(DIM_TYPE, kind);
            for &tag in &tag_ids {
                count(DIM_TAG, tag);
            }
            if let (Source::Redirect, Some(path)) = (event.source, path) {
                count(DIM_REDIRECT, path);
            }
            for (dim, value) in UTM_DIMS.into_iter().zip(utm) {
                if let Some(value) = value {
                    count(dim, value);
                }
            }
        }
        Ok(())
    }

    /// The id of `value` in `strings` (kind `kind`), inserting it if new.
    fn intern(&mut self, conn: &Connection, kind: u8, value: &str) -> Result<i64, DbError> {
        match self.lookup(conn, kind, value)? {
            Some(id) => Ok(id),
            None => self.insert_string(conn, kind, value),
        }
    }

    /// The id of the event's site. Beacons, pixels and short links name their host
    /// themselves (a wildcard in `FAZT_TRACK_DOMAINS`, any `Host` for `/r/`), so a host
    /// never seen before counts against a daily cap of new hosts (kept under site 0,
    /// dimension 0); past it, `(other)`. Known hosts and the server's own pages are
    /// never folded.
    fn domain_id(&mut self, conn: &Connection, event: &Event, day: i64) -> Result<i64, DbError> {
        let named_by_client = matches!(
            event.source,
            Source::Track | Source::Pixel | Source::Redirect
        );
        if !named_by_client {
            return self.intern(conn, KIND_DOMAIN, &event.domain);
        }
        if let Some(id) = self.lookup(conn, KIND_DOMAIN, &event.domain)? {
            return Ok(id);
        }
        self.capped(conn, KIND_DOMAIN, (0, day, 0), &event.domain)
    }

    /// The id `value` is stored under in dimension `key.2` of its site's day: its own
    /// while it is one of the day's values or the day has room, else [`OTHER`]'s.
    fn capped(
        &mut self,
        conn: &Connection,
        kind: u8,
        key: DayKey,
        value: &str,
    ) -> Result<i64, DbError> {
        let known = self.lookup(conn, kind, value)?;
        match (self.caps.check(conn, key, known)?, known) {
            (Verdict::Full, _) => self.intern(conn, kind, OTHER),
            (Verdict::Known, Some(id)) => Ok(id),
            (_, known) => {
                let id = match known {
                    Some(id) => id,
                    None => self.insert_string(conn, kind, value)?,
                };
                self.caps.admit(conn, key, id)?;
                Ok(id)
            }
        }
    }

    /// The id of `value` in `strings` (kind `kind`), if it is there: from the cache, else
    /// from the database (and then cached).
    fn lookup(&mut self, conn: &Connection, kind: u8, value: &str) -> Result<Option<i64>, DbError> {
        if let Some(&id) = self.ids[usize::from(kind - 1)].get(value) {
            return Ok(Some(id));
        }
        let found = string_id(conn, kind, value)?;
        if let Some(id) = found {
            self.remember(kind, value, id);
        }
        Ok(found)
    }

    fn insert_string(&mut self, conn: &Connection, kind: u8, value: &str) -> Result<i64, DbError> {
        conn.prepare_cached("INSERT INTO strings (kind, value) VALUES (?1, ?2)")
            .context("preparing the string insert")?
            .execute(params![kind, value])
            .context("inserting a string")?;
        let id = conn.last_insert_rowid();
        self.remember(kind, value, id);
        Ok(id)
    }

    fn remember(&mut self, kind: u8, value: &str, id: i64) {
        self.ids[usize::from(kind - 1)].insert(value.to_string(), id);
        self.cached += 1;
        self.cached_bytes += value.len() + CACHE_ENTRY_OVERHEAD;
    }
}

/// Event types fazt itself produces: never folded into `(other)`, so junk types cannot
/// push pageviews or broken links out of their own names.
const BUILT_IN_TYPES: [&str; 5] = [PAGEVIEW, NOT_FOUND, REDIRECT_CLICK, "pixel", "webhook"];

/// Paths that only the server's own state can produce, exempt from the daily cap: pages
/// of a deployed site (its canonical paths), short links and webhook endpoints (the
/// owner's). Beacons, pixels and 404s carry any path a client sends.
fn path_is_bounded(event: &Event) -> bool {
    match event.source {
        Source::Redirect | Source::Webhook => true,
        Source::Page => event.kind == PAGEVIEW,
        _ => false,
    }
}

impl crate::db::events::EventSink<Event> for EventStore {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        EventStore::write_batch(self, conn, batch)
    }
}

/// The batch's counts, collected in hash maps while its events are inserted and written
/// out in primary-key order afterwards (neighbouring keys share B-tree pages). Only the
/// hourly dimension counts are collected per event; the daily and monthly ones are sums
/// of the hourly ones, derived once per batch. Kept between batches for its allocations.
#[derive(Default)]
pub(crate) struct BatchTally {
    /// (domain, hour) -> totals of the batch's events in that hour.
    hours: FastMap<(i64, i64), HourTotals>,
    /// (domain, day, visitor) -> the earliest hour of that visitor's events in the batch.
    visitors: FastMap<(i64, i64, i64), i64>,
    /// The batch's visitor-days that were not cached: in `visitors_daily` once it commits.
    new_visitors: Vec<(i64, i64, i64)>,
    /// (domain, dim, hour, key) -> count.
    hour_dims: FastMap<(i64, i64, i64, i64), i64>,
    /// Roll-up rows `[domain, dim, unit, key, count]` of one grain at a time.
    rows: Vec<[i64; 5]>,
    coarser: Vec<[i64; 5]>,
}

impl BatchTally {
    fn clear(&mut self) {
        self.hours.clear();
        self.visitors.clear();
        self.new_visitors.clear();
        self.hour_dims.clear();
        self.rows.clear();
        self.coarser.clear();
    }
}

/// The writer's hash maps: integer keys it produces itself (string ids, hours, visitor
/// hashes already salted per day) and the string-id cache, 4-5 lookups per event where
/// SipHash showed up in profiles (a tenth of the writer at first). The cache's keys come
/// from clients, but each map has its own random seed, is never iterated where a client
/// could see the order, and holds at most `MAX_CACHED_STRINGS` entries, so a flood of
/// crafted collisions has little to aim at.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;
pub(crate) type FastSet<K> = HashSet<K, foldhash::fast::RandomState>;

/// Writes the batch's `visitors_daily`, `rollup_hourly` and dimension roll-up rows.
/// `known_visitors`: visitor-days already in `visitors_daily` (committed earlier).
fn write_rollups(
    tx: &Connection,
    tally: &mut BatchTally,
    known_visitors: &FastSet<(i64, i64, i64)>,
) -> Result<(), DbError> {
    let mut visitors: Vec<((i64, i64, i64), i64)> = tally
        .visitors
        .drain()
        .filter(|(visitor_day, _)| !known_visitors.contains(visitor_day))
        .collect();
    visitors.sort_unstable();
    {
        let mut seen = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO visitors_daily (domain, day, visitor) VALUES (?1, ?2, ?3)",
            )
            .context("preparing the visitor insert")?;
        for ((domain, day, visitor), hour) in visitors {
            tally.new_visitors.push((domain, day, visitor));
            if seen
                .execute(params![domain, day, visitor])
                .context("recording a daily visitor")?
                == 1
            {
                tally.hours.entry((domain, hour)).or_default().visitors += 1;
            }
        }
    }

    let mut hours: Vec<((i64, i64), HourTotals)> = tally.hours.drain().collect();
    hours.sort_unstable_by_key(|&(key, _)| key);
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO rollup_hourly (domain, hour, events, pageviews, visitors) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain, hour) DO UPDATE SET \
                 events = events + excluded.events, \
                 pageviews = pageviews + excluded.pageviews, \
                 visitors = visitors + excluded.visitors",
            )
            .context("preparing the hourly roll-up")?;
        for ((domain, hour), t) in hours {
            upsert
                .execute(params![domain, hour, t.events, t.pageviews, t.visitors])
                .context("updating the hourly roll-up")?;
        }
    }

    let BatchTally {
        hour_dims,
        rows,
        coarser,
        ..
    } = tally;
    rows.extend(
        hour_dims
            .drain()
            .map(|((domain, dim, hour, key), count)| [domain, dim, hour, key, count]),
    );
    rows.sort_unstable();
    upsert_dims(tx, &HOURLY_DIMS, rows)?;
    coarsen(rows, coarser, |hour| hour.div_euclid(24));
    upsert_dims(tx, &DAILY_DIMS, coarser)?;
    coarsen(coarser, rows, month_of_day);
    upsert_dims(tx, &MONTHLY_DIMS, rows)
}

/// Sums `finer` roll-up rows into `out` at the grain `unit` maps their unit to, sorted by
/// primary key.
fn coarsen(finer: &[[i64; 5]], out: &mut Vec<[i64; 5]>, unit: impl Fn(i64) -> i64) {
    out.clear();
    out.extend(
        finer
            .iter()
            .map(|&[domain, dim, at, key, count]| [domain, dim, unit(at), key, count]),
    );
    out.sort_unstable();
    out.dedup_by(|next, kept| {
        let same = next[..4] == kept[..4];
        if same {
            kept[4] += next[4];
        }
        same
    });
}

/// The statement and error contexts of one dimension roll-up table.
struct DimTable {
    upsert: &'static str,
    preparing: &'static str,
    updating: &'static str,
}

const HOURLY_DIMS: DimTable = DimTable {
    upsert: "INSERT INTO rollup_hourly_dims (domain, dim, hour, key, count) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain, dim, hour, key) \
             DO UPDATE SET count = count + excluded.count",
    preparing: "preparing the rollup_hourly_dims upsert",
    updating: "updating rollup_hourly_dims",
};
const DAILY_DIMS: DimTable = DimTable {
    upsert: "INSERT INTO rollup_daily_dims (domain, dim, day, key, count) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain, dim, day, key) \
             DO UPDATE SET count = count + excluded.count",
    preparing: "preparing the rollup_daily_dims upsert",
    updating: "updating rollup_daily_dims",
};
const MONTHLY_DIMS: DimTable = DimTable {
    upsert: "INSERT INTO rollup_monthly_dims (domain, dim, month, key, count) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (domain, dim, month, key) \
             DO UPDATE SET count = count + excluded.count",
    preparing: "preparing the rollup_monthly_dims upsert",
    updating: "updating rollup_monthly_dims",
};

/// One upsert per row `[domain, dim, unit, key, count]`, in the order given.
fn upsert_dims(conn: &Connection, table: &DimTable, rows: &[[i64; 5]]) -> Result<(), DbError> {
    let mut upsert = conn.prepare_cached(table.upsert).context(table.preparing)?;
    for row in rows {
        upsert
            .execute(params_from_iter(row))
            .context(table.updating)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Salts
// ---------------------------------------------------------------------------------------

/// The salt of `day` (days since the epoch, UTC), created from the OS's randomness and
/// stored if that day has none yet. Stable within a day, also across restarts.
pub fn load_or_create_salt(conn: &Connection, day: i64) -> Result<[u8; 32], DbError> {
    if let Some(salt) = read_salt(conn, day)? {
        return Ok(salt);
    }
    let mut fresh = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut fresh))
        .context("reading a new salt from /dev/urandom")?;
    // OR IGNORE + re-read: if another connection created it meanwhile, theirs wins.
    conn.execute(
        "INSERT OR IGNORE INTO salts (day, salt) VALUES (?1, ?2)",
        params![day, &fresh[..]],
    )
    .context(format!("storing the salt of day {day}"))?;
    read_salt(conn, day)?.ok_or_else(|| {
        DbError::Internal(format!(
            "the salt of day {day} vanished right after storing it"
        ))
    })
}

fn read_salt(conn: &Connection, day: i64) -> Result<Option<[u8; 32]>, DbError> {
    let blob: Option<Vec<u8>> = conn
        .query_row("SELECT salt FROM salts WHERE day = ?1", [day], |row| {
            row.get(0)
        })
        .optional()
        .context(format!("reading the salt of day {day}"))?;
    match blob {
        None => Ok(None),
        Some(bytes) => bytes.try_into().map(Some).map_err(|bytes: Vec<u8>| {
            DbError::Internal(format!(
                "the stored salt of day {day} has {} bytes, not 32",
                bytes.len()
            ))
        }),
    }
}

/// Deletes the salts of days before yesterday, so yesterday's visitors can no longer be
/// re-identified. Returns how many were deleted.
pub fn delete_old_salts(conn: &Connection, today: i64) -> Result<usize, DbError> {
    conn.execute("DELETE FROM salts WHERE day < ?1", [today - 1])
        .context("deleting old salts")
}

// ---------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------

/// What one [`prune_batch`] call did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneProgress {
    pub events_deleted: usize,
    /// Rows of `rollup_hourly`, `rollup_hourly_dims`, `rollup_daily_dims`,
    /// `rollup_monthly_dims` and `visitors_daily` deleted.
    pub rollup_rows_deleted: usize,
    /// Nothing older than the cutoff is left (of what this call prunes).
    pub done: bool,
}

/// Deletes, in one transaction, at most `max_rows` raw events with `ts < cutoff_ts`
/// (oldest first, through the `ts` index) and, when `include_rollups`, at most `max_rows`
/// roll-up rows of the hours, days and months that end at or before the cutoff (hours
/// before `cutoff_ts / 3600`, days before `cutoff_ts / 86400`, months before the cutoff
/// day's month) and `visitors_daily` rows of those days. A roll-up row that straddles the
/// cutoff is kept whole, so stats over ranges reaching before the cutoff may still count
/// some of that time at the coarser grains. Call it until `done`, then
/// `db::incremental_vacuum` to give the space back.
pub fn prune_batch(
    conn: &mut Connection,
    cutoff_ts: i64,
    include_rollups: bool,
    max_rows: usize,
) -> Result<PruneProgress, DbError> {
    let max_rows = max_rows.max(1);
    let limit = i64::try_from(max_rows).unwrap_or(i64::MAX);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .context("starting a prune batch")?;
    let mut progress = PruneProgress::default();

    // Oldest ids first; deleting them in id order walks the table's b-tree once.
    let mut ids: Vec<i64> = tx
        .prepare_cached(PRUNE_EVENT_IDS)
        .context("preparing the prune")?
        .query_map(params![cutoff_ts, limit], |row| row.get(0))
        .context("finding events to prune")?
        .collect::<Result<_, _>>()
        .context("finding events to prune")?;
    ids.sort_unstable();
    {
        let mut delete = tx
            .prepare_cached(PRUNE_EVENT_RANGE)
            .context("preparing the event delete")?;
        // Consecutive ids are deleted as one range.
        let mut i = 0;
        while i < ids.len() {
            let mut j = i;
            while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
                j += 1;
            }
            progress.events_deleted += delete
                .execute(params![ids[i], ids[j], cutoff_ts])
                .context("deleting old events")?;
            i = j + 1;
        }
    }
    let mut done = !tx
        .prepare_cached(PRUNE_EVENTS_LEFT)
        .context("preparing the prune check")?
        .exists([cutoff_ts])
        .context("checking for older events")?;

    if include_rollups {
        let cutoff_hour = cutoff_ts.div_euclid(HOUR);
        let cutoff_day = cutoff_ts.div_euclid(DAY);
        let cutoff_month = month_of_day(cutoff_day);
        let mut budget = max_rows;
        let domains: Vec<i64> = tx
            .prepare_cached("SELECT id FROM strings WHERE kind = 1")
            .context("preparing the domain list")?
            .query_map([], |row| row.get(0))
            .context("listing domains")?
            .collect::<Result<_, _>>()
            .context("listing domains")?;
        for &domain in &domains {
            for (select, delete, before) in [
                (PRUNE_HOURLY_KEYS, PRUNE_HOURLY_ROW, cutoff_hour),
                (PRUNE_VISITOR_KEYS, PRUNE_VISITOR_ROW, cutoff_day),
            ] {
                let deleted = prune_keys(&tx, select, delete, &[domain], before, &mut budget)?;
                progress.rollup_rows_deleted += deleted;
            }
            for dim in DIMS {
                for (select, delete, before) in [
                    (PRUNE_HOUR_DIM_KEYS, PRUNE_HOUR_DIM_ROW, cutoff_hour),
                    (PRUNE_DAY_DIM_KEYS, PRUNE_DAY_DIM_ROW, cutoff_day),
                    (PRUNE_MONTH_DIM_KEYS, PRUNE_MONTH_DIM_ROW, cutoff_month),
                ] {
                    let deleted =
                        prune_keys(&tx, select, delete, &[domain, dim], before, &mut budget)?;
                    progress.rollup_rows_deleted += deleted;
                }
            }
        }
        // A spent budget may have left rows behind; the next call finds out.
        if budget == 0 {
            done = false;
        }
    }
    tx.commit().context("committing a prune batch")?;
    progress.done = done;
    Ok(progress)
}

/// Deletes up to `budget` rows whose key starts with `prefix` and whose time column is
/// below `before`: `select` lists their remaining key columns (prefix bound first, then
/// `before`, then the limit), `delete` removes one row by its full key.
fn prune_keys(
    conn: &Connection,
    select: &str,
    delete: &str,
    prefix: &[i64],
    before: i64,
    budget: &mut usize,
) -> Result<usize, DbError> {
    if *budget == 0 {
        return Ok(0);
    }
    let mut args: Vec<i64> = prefix.to_vec();
    args.push(before);
    args.push(i64::try_from(*budget).unwrap_or(i64::MAX));
    let mut stmt = conn
        .prepare_cached(select)
        .context("preparing a roll-up prune")?;
    let columns = stmt.column_count();
    let keys: Vec<Vec<i64>> = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |row| {
            (0..columns).map(|i| row.get(i)).collect()
        })
        .context("finding old roll-up rows")?
        .collect::<Result<_, _>>()
        .context("finding old roll-up rows")?;
    let mut delete = conn
        .prepare_cached(delete)
        .context("preparing a roll-up delete")?;
    let mut deleted = 0;
    for key in &keys {
        let full = prefix.iter().chain(key.iter());
        deleted += delete
            .execute(rusqlite::params_from_iter(full))
            .context("deleting old roll-up rows")?;
    }
    *budget = budget.saturating_sub(keys.len());
    Ok(deleted)
}

/// The statements of retention, named so a test can check their query plans.
pub(crate) const PRUNE_EVENT_IDS: &str = "SELECT id FROM events WHERE ts < ?1 ORDER BY ts LIMIT ?2";
pub(crate) const PRUNE_EVENT_RANGE: &str =
    "DELETE FROM events WHERE id BETWEEN ?1 AND ?2 AND ts < ?3";
pub(crate) const PRUNE_EVENTS_LEFT: &str = "SELECT 1 FROM events WHERE ts < ?1 LIMIT 1";
pub(crate) const PRUNE_HOURLY_KEYS: &str =
    "SELECT hour FROM rollup_hourly WHERE domain = ?1 AND hour < ?2 ORDER BY hour LIMIT ?3";
pub(crate) const PRUNE_HOURLY_ROW: &str =
    "DELETE FROM rollup_hourly WHERE domain = ?1 AND hour = ?2";
pub(crate) const PRUNE_VISITOR_KEYS: &str = "SELECT day, visitor FROM visitors_daily \
     WHERE domain = ?1 AND day < ?2 ORDER BY day, visitor LIMIT ?3";
pub(crate) const PRUNE_VISITOR_ROW: &str =
    "DELETE FROM visitors_daily WHERE domain = ?1 AND day = ?2 AND visitor = ?3";
pub(crate) const PRUNE_HOUR_DIM_KEYS: &str = "SELECT hour, key FROM rollup_hourly_dims \
     WHERE domain = ?1 AND dim = ?2 AND hour < ?3 ORDER BY hour, key LIMIT ?4";
pub(crate) const PRUNE_HOUR_DIM_ROW: &str = "DELETE FROM rollup_hourly_dims \
     WHERE domain = ?1 AND dim = ?2 AND hour = ?3 AND key = ?4";
pub(crate) const PRUNE_DAY_DIM_KEYS: &str = "SELECT day, key FROM rollup_daily_dims \
     WHERE domain = ?1 AND dim = ?2 AND day < ?3 ORDER BY day, key LIMIT ?4";
pub(crate) const PRUNE_DAY_DIM_ROW: &str = "DELETE FROM rollup_daily_dims \
     WHERE domain = ?1 AND dim = ?2 AND day = ?3 AND key = ?4";
pub(crate) const PRUNE_MONTH_DIM_KEYS: &str = "SELECT month, key FROM rollup_monthly_dims \
     WHERE domain = ?1 AND dim = ?2 AND month < ?3 ORDER BY month, key LIMIT ?4";
pub(crate) const PRUNE_MONTH_DIM_ROW: &str = "DELETE FROM rollup_monthly_dims \
     WHERE domain = ?1 AND dim = ?2 AND month = ?3 AND key = ?4";

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An in-memory database with every migration applied.
    pub(crate) fn migrated() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::db::migrate::run(&mut conn).expect("migrate");
        conn
    }

    fn event(ts: i64, domain: &str, path: &str, kind: &str, tags: &[&str]) -> Event {
        Event {
            ts,
            domain: domain.into(),
            path: Some(path.into()),
            kind: kind.into(),
            referrer: None,
            visitor: 42,
            source: Source::Track,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            query: None,
            utm: Default::default(),
        }
    }

    fn visitors_in_hour(conn: &Connection, hour: i64) -> i64 {
        conn.query_row(
            "SELECT visitors FROM rollup_hourly WHERE hour = ?1",
            params![hour],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_visitor_is_counted_once_a_day_even_across_a_failed_batch() {
        let mut conn = migrated();
        let mut store = EventStore::new();
        store
            .write_batch(&mut conn, &[event(7_200, "a.com", "/", PAGEVIEW, &[])])
            .unwrap();
        // The same visitor again, in a later batch: not counted twice.
        store
            .write_batch(&mut conn, &[event(7_300, "a.com", "/b", PAGEVIEW, &[])])
            .unwrap();
        assert_eq!(visitors_in_hour(&conn, 2), 1);

        // A new visitor whose batch fails after the visitor row was written: the retry must
        // still count them, since the failed batch left nothing behind.
        conn.execute_batch(
            "CREATE TRIGGER inject BEFORE UPDATE ON rollup_hourly \
             BEGIN SELECT RAISE(ABORT, 'injected'); END;",
        )
        .unwrap();
        let mut newcomer = event(7_400, "a.com", "/c", PAGEVIEW, &[]);
        newcomer.visitor = 43;
        assert!(store.write_batch(&mut conn, &[newcomer.clone()]).is_err());
        conn.execute_batch("DROP TRIGGER inject").unwrap();
        store.write_batch(&mut conn, &[newcomer]).unwrap();
        assert_eq!(visitors_in_hour(&conn, 2), 2);
    }

    fn visitors_on_day(conn: &Connection, day: i64) -> i64 {
        conn.query_row(
            "SELECT coalesce(sum(visitors), 0) FROM rollup_hourly \
             WHERE hour >= ?1 * 24 AND hour < (?1 + 1) * 24",
            params![day],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn cached_visitors_are_counted_once_a_day_across_batches_days_and_restarts() {
        let mut conn = migrated();
        let mut store = EventStore::new();
        let at = |ts: i64, visitor: u64| Event {
            visitor,
            ..event(ts, "a.com", "/", PAGEVIEW, &[])
        };
        // Day 1: visitors 1 and 2, over several batches (the later ones hit the cache).
        for ts in [DAY + 10, DAY + 20, DAY + 3_700] {
            store
                .write_batch(&mut conn, &[at(ts, 1), at(ts + 1, 2)])
                .unwrap();
        }
        assert_eq!(visitors_on_day(&conn, 1), 2);
        // Day 2 and day 3: the same visitors are new each day. Day 1 leaves the cache when
        // day 3 arrives; a late day-1 event after that is found in the database.
        store
            .write_batch(&mut conn, &[at(2 * DAY + 5, 1), at(2 * DAY + 6, 2)])
            .unwrap();
        store.write_batch(&mut conn, &[at(3 * DAY + 5, 1)]).unwrap();
        assert!(store.known_visitors.iter().all(|&(_, day, _)| day >= 2));
        store
            .write_batch(&mut conn, &[at(DAY + 7_300, 2), at(DAY + 7_301, 3)])
            .unwrap();
        assert_eq!(
            [1, 2, 3].map(|day| visitors_on_day(&conn, day)),
            [3, 2, 1],
            "day 1 gained only visitor 3"
        );
        // A restarted writer (empty cache) does not count them again.
        let mut restarted = EventStore::new();
        restarted
            .write_batch(&mut conn, &[at(3 * DAY + 50, 1), at(3 * DAY + 51, 2)])
            .unwrap();
        assert_eq!(
            visitors_on_day(&conn, 3),
            2,
            "only visitor 2 is new on day 3"
        );
        restarted
            .write_batch(&mut conn, &[at(3 * DAY + 60, 1), at(3 * DAY + 61, 2)])
            .unwrap();
        assert_eq!(visitors_on_day(&conn, 3), 2);
        let rows: i64 = conn
            .query_row("SELECT count(*) FROM visitors_daily", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 3 + 2 + 2);
    }

    #[test]
    fn tags_are_stored_once_each_between_commas() {
        let mut conn = migrated();
        let mut store = EventStore::new();
        let batch = [
            event(7_200, "a.com", "/", PAGEVIEW, &["x", "y", "x"]),
            event(7_201, "a.com", "/", PAGEVIEW, &[]),
        ];
        store.write_batch(&mut conn, &batch).expect("write");
        let tags: Vec<Option<String>> = conn
            .prepare("SELECT tags FROM events ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let x: i64 = conn
            .query_row(
                "SELECT id FROM strings WHERE kind = 5 AND value = 'x'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let y: i64 = conn
            .query_row(
                "SELECT id FROM strings WHERE kind = 5 AND value = 'y'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tags, [Some(format!(",{x},{y},")), None]);
        let tag_count: i64 = conn
            .query_row(
                "SELECT sum(count) FROM rollup_hourly_dims WHERE dim = 4",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tag_count, 2, "a repeated tag counts once per event");
    }

    #[test]
    fn the_cache_is_bounded_and_cleared_on_failure() {
        let mut conn = migrated();
        let mut store = EventStore::new();
        store
            .write_batch(&mut conn, &[event(0, "a.com", "/", PAGEVIEW, &["t"])])
            .expect("write");
        assert_eq!(store.cached_strings(), 4);
        conn.execute_batch("DROP TABLE rollup_daily_dims").unwrap();
        let err = store
            .write_batch(&mut conn, &[event(0, "b.com", "/b", PAGEVIEW, &[])])
            .expect_err("missing table");
        assert!(err.to_string().contains("rollup_daily_dims"), "{err}");
        assert_eq!(store.cached_strings(), 0);
        assert!(conn.is_autocommit(), "rolled back");
    }

    #[test]
    fn values_past_the_daily_cap_are_stored_as_other() {
        let mut conn = migrated();
        let limits = StoreLimits {
            max_daily_values: 2,
            ..StoreLimits::default()
        };
        let mut store = EventStore::with_limits(limits);
        let junk = |ts: i64, i: usize| Event {
            referrer: Some(format!("r{i}.example")),
            utm: crate::analytics::event::Utm {
                campaign: Some(format!("c{i}")),
                ..Default::default()
            },
            ..event(
                ts,
                "a.com",
                &format!("/p{i}"),
                PAGEVIEW,
                &[&format!("t{i}")],
            )
        };
        let day1: Vec<Event> = (0..5).map(|i| junk(DAY + i as i64, i)).collect();
        store.write_batch(&mut conn, &day1).unwrap();
        // A restarted writer keeps the day's count; "/p1" is still one of the day's.
        let mut store = EventStore::with_limits(limits);
        store
            .write_batch(&mut conn, &[junk(DAY + 9, 1), junk(DAY + 9, 7)])
            .unwrap();
        let strings = |conn: &Connection, kind: u8| -> Vec<String> {
            let mut stmt = conn
                .prepare("SELECT value FROM strings WHERE kind = ?1 ORDER BY value")
                .unwrap();
            stmt.query_map([kind], |r| r.get(0))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        assert_eq!(strings(&conn, KIND_PATH), ["(other)", "/p0", "/p1"]);
        assert_eq!(
            strings(&conn, KIND_REFERRER),
            ["(other)", "r0.example", "r1.example"]
        );
        assert_eq!(strings(&conn, KIND_TAG), ["(other)", "t0", "t1"]);
        assert_eq!(strings(&conn, KIND_CAMPAIGN), ["(other)", "c0", "c1"]);
        let paths: Vec<(String, i64)> = conn
            .prepare(
                "SELECT s.value, d.count FROM rollup_daily_dims d JOIN strings s ON s.id = d.key \
                 WHERE d.dim = 1 ORDER BY s.value",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            paths,
            [("(other)".into(), 4), ("/p0".into(), 1), ("/p1".into(), 2)]
        );
        let pageviews: i64 = conn
            .query_row("SELECT sum(pageviews) FROM rollup_hourly", [], |r| r.get(0))
            .unwrap();
        assert_eq!(pageviews, 7, "totals stay exact");
        // A new day has room again.
        store.write_batch(&mut conn, &[junk(2 * DAY, 8)]).unwrap();
        assert!(strings(&conn, KIND_PATH).contains(&"/p8".to_string()));
    }

    #[test]
    fn new_hosts_named_by_clients_are_capped_per_day() {
        let mut conn = migrated();
        let limits = StoreLimits {
            max_daily_values: 2,
            ..StoreLimits::default()
        };
        let mut store = EventStore::with_limits(limits);
        let at = |ts: i64, domain: &str, source: Source| Event {
            source,
            ..event(ts, domain, "/", PAGEVIEW, &[])
        };
        let mut batch: Vec<Event> = ["a.x", "b.x", "c.x", "d.x"]
            .iter()
            .map(|d| at(DAY, d, Source::Track))
            .collect();
        // A hosted site's own page is never folded.
        batch.push(at(DAY, "site.local", Source::Page));
        store.write_batch(&mut conn, &batch).unwrap();
        // The next day: a known host stays itself, new ones count again.
        let next: Vec<Event> = ["c.x", "a.x", "e.x", "f.x", "g.x"]
            .iter()
            .map(|d| at(2 * DAY, d, Source::Redirect))
            .collect();
        store.write_batch(&mut conn, &next).unwrap();
        let domains: Vec<String> = conn
            .prepare("SELECT value FROM strings WHERE kind = 1 ORDER BY value")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            domains,
            ["(other)", "a.x", "b.x", "c.x", "e.x", "site.local"]
        );
        let events: i64 = conn
            .query_row("SELECT sum(events) FROM rollup_hourly", [], |r| r.get(0))
            .unwrap();
        assert_eq!(events, 10, "every event is counted");
    }

    #[test]
    fn an_empty_batch_writes_nothing() {
        let mut conn = migrated();
        let mut store = EventStore::new();
        store.write_batch(&mut conn, &[]).expect("empty");
        let n: i64 = conn
            .query_row("SELECT count(*) FROM strings", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn months_follow_the_calendar() {
        assert_eq!(month_of_day(0), 0, "1970-01-01");
        assert_eq!(month_of_day(30), 0, "1970-01-31");
        assert_eq!(month_of_day(31), 1, "1970-02-01");
        assert_eq!(first_day_of_month(2), 59, "1970-03-01");
        // 2024-02-29 (leap day) is day 19782; 2024-03-01 is 19783.
        assert_eq!(month_of_day(19_782), (2024 - 1970) * 12 + 1);
        assert_eq!(month_of_day(19_783), (2024 - 1970) * 12 + 2);
        assert_eq!(first_day_of_month((2024 - 1970) * 12 + 2), 19_783);
        assert_eq!(month_of_day(-1), -1, "1969-12-31");
        assert_eq!(first_day_of_month(-1), -31);
        // 1900 and 2100 are not leap years, 2000 is.
        for day in -30_000..80_000 {
            let m = month_of_day(day);
            assert!(
                first_day_of_month(m) <= day && day < first_day_of_month(m + 1),
                "{day}"
            );
            let len = first_day_of_month(m + 1) - first_day_of_month(m);
            assert!((28..=31).contains(&len), "{day}");
        }
    }

    #[test]
    fn source_names() {
        assert_eq!(source_name(Source::Redirect as i64), "redirect");
        assert_eq!(source_name(Source::Page as i64), "page");
        assert_eq!(source_name(0), "unknown");
    }
}
