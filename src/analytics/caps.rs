//! Daily caps on distinct values (issue #11): per site, day (UTC) and dimension, at most
//! `max` distinct paths, referrer hosts, event types, tags or campaign values are stored
//! as themselves; later new values are stored and counted as [`OTHER`]. Junk with unique
//! strings then costs a bounded number of `strings` rows and roll-up rows a day, so
//! storage and stats time stay bounded whatever is sent. Total events, pageviews and
//! visitors stay exact: only the value's name is folded.
//! The store also counts hosts never seen before that clients name themselves under
//! site 0, dimension 0 (see `EventStore::domain_id`).
//!
//! Invariants:
//! - The admitted values of a (site, day, dimension) are the rows of `daily_values`
//!   (schema 6), written in the batch's transaction. The in-memory sets are a cache of
//!   those rows, loaded on first use, so a restart keeps the count; the owner clears them
//!   when a batch fails, since its rows were rolled back.
//! - Only today's and yesterday's rows are kept: when a newer day arrives, older days
//!   leave memory and the table (events are stamped at ingest, so no older day arrives).
//! - The raw rows get the folded value too: `strings` is never pruned, so a value kept in
//!   a raw event would grow it without bound.

use std::collections::hash_map::Entry;

use rusqlite::{params, Connection};

use super::store::{FastMap, FastSet};
use crate::db::{Context, DbError};

/// The value new values are stored as once a site's day is full.
pub const OTHER: &str = "(other)";

/// Distinct values per site, day and dimension by default. A personal site has tens to
/// hundreds of pages and rarely more than a few hundred referrer hosts, tags or campaign
/// values in a day, so real values fit with room to spare; and it bounds `/api/stats`:
/// a 7-day range reads at most about 8 × 1,001 rows per dimension (measured with
/// `bench/junk.sh`: well under the 50 ms target after 500k unique junk events).
pub const DEFAULT_MAX_DAILY_VALUES: usize = 1_000;

/// (domain id, day, dimension).
pub(crate) type DayKey = (i64, i64, i64);

/// What the cap says about a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Already one of the day's values.
    Known,
    /// New, and the day has room: admit it with [`DailyValues::admit`].
    Room,
    /// New, and the day is full: store [`OTHER`] instead.
    Full,
}

/// The writer's per-site, per-day distinct-value counter.
pub(crate) struct DailyValues {
    max: usize,
    days: FastMap<DayKey, FastSet<i64>>,
    /// The newest day seen; days before the one preceding it are forgotten.
    newest_day: i64,
}

impl DailyValues {
    pub(crate) fn new(max: usize) -> DailyValues {
        DailyValues {
            max,
            days: FastMap::default(),
            newest_day: i64::MIN,
        }
    }

    /// Whether the value with string id `id` (`None`: not in `strings` yet) may be kept.
    pub(crate) fn check(
        &mut self,
        conn: &Connection,
        key: DayKey,
        id: Option<i64>,
    ) -> Result<Verdict, DbError> {
        self.see_day(conn, key.1)?;
        let max = self.max;
        let set = self.load(conn, key)?;
        Ok(match id {
            Some(id) if set.contains(&id) => Verdict::Known,
            _ if set.len() >= max => Verdict::Full,
            _ => Verdict::Room,
        })
    }

    /// Records `id` as one of the day's values, in memory and in `daily_values`.
    pub(crate) fn admit(&mut self, conn: &Connection, key: DayKey, id: i64) -> Result<(), DbError> {
        let (domain, day, dim) = key;
        conn.prepare_cached(
            "INSERT OR IGNORE INTO daily_values (domain, day, dim, key) VALUES (?1, ?2, ?3, ?4)",
        )
        .context("preparing the daily value insert")?
        .execute(params![domain, day, dim, id])
        .context("recording a daily value")?;
        self.load(conn, key)?.insert(id);
        Ok(())
    }

    /// Forgets everything cached (after a failed batch, whose rows do not exist).
    pub(crate) fn clear(&mut self) {
        self.days = FastMap::default();
        self.newest_day = i64::MIN;
    }

    /// The day's set, read from `daily_values` the first time.
    fn load(&mut self, conn: &Connection, key: DayKey) -> Result<&mut FastSet<i64>, DbError> {
        match self.days.entry(key) {
            Entry::Occupied(set) => Ok(set.into_mut()),
            Entry::Vacant(slot) => {
                let (domain, day, dim) = key;
                let ids: FastSet<i64> = conn
                    .prepare_cached(DAY_VALUES)
                    .context("preparing the daily values read")?
                    .query_map(params![domain, day, dim], |row| row.get(0))
                    .context("reading daily values")?
                    .collect::<Result<_, _>>()
                    .context("reading daily values")?;
                Ok(slot.insert(ids))
            }
        }
    }

    /// On a new newest day, drops the days before yesterday from memory and the table.
    fn see_day(&mut self, conn: &Connection, day: i64) -> Result<(), DbError> {
        if day <= self.newest_day {
            return Ok(());
        }
        self.newest_day = day;
        let keep_from = day.saturating_sub(1);
        self.days.retain(|&(_, d, _), _| d >= keep_from);
        conn.prepare_cached("DELETE FROM daily_values WHERE day < ?1")
            .context("preparing the daily values prune")?
            .execute([keep_from])
            .context("deleting old daily values")?;
        Ok(())
    }
}

pub(crate) const DAY_VALUES: &str =
    "SELECT key FROM daily_values WHERE domain = ?1 AND day = ?2 AND dim = ?3";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::store::tests::migrated;

    fn count_rows(conn: &Connection) -> i64 {
        conn.query_row("SELECT count(*) FROM daily_values", [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn admits_up_to_the_cap_then_only_known_values() {
        let conn = migrated();
        let mut caps = DailyValues::new(2);
        let key = (1, 100, 1);
        for id in [10, 11] {
            assert_eq!(caps.check(&conn, key, Some(id)).unwrap(), Verdict::Room);
            caps.admit(&conn, key, id).unwrap();
        }
        assert_eq!(caps.check(&conn, key, Some(12)).unwrap(), Verdict::Full);
        assert_eq!(caps.check(&conn, key, None).unwrap(), Verdict::Full);
        assert_eq!(caps.check(&conn, key, Some(10)).unwrap(), Verdict::Known);
        // Other sites and dimensions have their own count.
        assert_eq!(caps.check(&conn, (2, 100, 1), None).unwrap(), Verdict::Room);
        assert_eq!(caps.check(&conn, (1, 100, 4), None).unwrap(), Verdict::Room);
    }

    #[test]
    fn the_count_survives_a_restart_and_a_cleared_cache() {
        let conn = migrated();
        let key = (1, 100, 2);
        let mut caps = DailyValues::new(1);
        caps.admit(&conn, key, 7).unwrap();
        caps.clear();
        assert_eq!(caps.check(&conn, key, Some(8)).unwrap(), Verdict::Full);
        let mut restarted = DailyValues::new(1);
        assert_eq!(
            restarted.check(&conn, key, Some(7)).unwrap(),
            Verdict::Known
        );
        assert_eq!(restarted.check(&conn, key, Some(8)).unwrap(), Verdict::Full);
    }

    #[test]
    fn a_new_day_starts_empty_and_days_before_yesterday_are_deleted() {
        let conn = migrated();
        let mut caps = DailyValues::new(1);
        for day in [100, 101] {
            assert_eq!(caps.check(&conn, (1, day, 1), None).unwrap(), Verdict::Room);
            caps.admit(&conn, (1, day, 1), 5).unwrap();
        }
        assert_eq!(count_rows(&conn), 2);
        // Day 102 is empty; day 100 goes, day 101 (yesterday) stays full.
        assert_eq!(caps.check(&conn, (1, 102, 1), None).unwrap(), Verdict::Room);
        assert_eq!(count_rows(&conn), 1);
        assert_eq!(caps.check(&conn, (1, 101, 1), None).unwrap(), Verdict::Full);
        assert!(caps.days.keys().all(|&(_, day, _)| day >= 101));
    }
}
