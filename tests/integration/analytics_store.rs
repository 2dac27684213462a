//! Analytics storage through the library API: event batches with their roll-ups, stats
//! queries against brute-force recounts, recent events, retention, salts and the bytes an
//! event costs on disk (DESIGN §3).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use fazt::analytics::event::{day_of, Event, Source, Utm, PAGEVIEW};
use fazt::analytics::stats::{self, Bucket, StatsQuery};
use fazt::analytics::store::{self, EventStore};
use fazt::db;
use rusqlite::Connection;
use serde_json::{json, Value};

use crate::common::{probe_limits, TempDir};

// ---------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------

fn open(dir: &TempDir) -> Connection {
    db::open_and_migrate(&dir.db(), &probe_limits(&dir.0, &[])).expect("open_and_migrate")
}

/// Deterministic xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    /// Skewed towards small indices, like real traffic (a few popular pages).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

fn ev(ts: i64, domain: &str, path: &str, kind: &str) -> Event {
    Event {
        ts,
        domain: domain.into(),
        path: Some(path.into()),
        kind: kind.into(),
        referrer: None,
        visitor: 1,
        source: Source::Track,
        tags: Vec::new(),
        query: None,
        utm: Utm::default(),
    }
}

fn int(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2024-01-01T00:00:00Z.
const T0: i64 = 1_704_067_200;

// ---------------------------------------------------------------------------------------
// Recounts from the events as written
// ---------------------------------------------------------------------------------------

/// (dim, key) pairs an event counts under, as names.
fn dims_of(e: &Event) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    if e.kind == PAGEVIEW {
        if let Some(p) = &e.path {
            out.push((store::DIM_PATH, p.clone()));
        }
    }
    if let Some(r) = &e.referrer {
        out.push((store::DIM_REFERRER, r.clone()));
    }
    out.push((store::DIM_TYPE, e.kind.clone()));
    let tags: BTreeSet<&String> = e.tags.iter().collect();
    for t in tags {
        out.push((store::DIM_TAG, t.clone()));
    }
    if e.kind == "404" {
        if let Some(p) = &e.path {
            out.push((store::DIM_NOT_FOUND, p.clone()));
        }
    }
    if e.source == Source::Redirect {
        if let Some(p) = &e.path {
            out.push((store::DIM_REDIRECT, p.clone()));
        }
    }
    for (dim, value) in store::UTM_DIMS.into_iter().zip(e.utm.values()) {
        if let Some(value) = value {
            out.push((dim, value.to_string()));
        }
    }
    out
}

/// The hour in which each (domain, day, visitor) was first seen (events are written in
/// time order, so the first written is the earliest).
fn first_hours(events: &[Event]) -> HashMap<(String, i64, u64), i64> {
    let mut first = HashMap::new();
    for e in events {
        first
            .entry((e.domain.clone(), day_of(e.ts), e.visitor))
            .or_insert(e.ts.div_euclid(HOUR));
    }
    first
}

type HourRow = (i64, i64, i64);

fn recount_hourly(events: &[Event]) -> BTreeMap<(String, i64), HourRow> {
    let mut out: BTreeMap<(String, i64), HourRow> = BTreeMap::new();
    for e in events {
        let row = out
            .entry((e.domain.clone(), e.ts.div_euclid(HOUR)))
            .or_default();
        row.0 += 1;
        row.1 += i64::from(e.kind == PAGEVIEW);
    }
    for ((domain, _, _), hour) in first_hours(events) {
        out.get_mut(&(domain, hour)).expect("hour of a visitor").2 += 1;
    }
    out
}

fn recount_dims(
    events: &[Event],
    unit_of: fn(i64) -> i64,
) -> BTreeMap<(String, i64, i64, String), i64> {
    let mut out = BTreeMap::new();
    for e in events {
        for (dim, key) in dims_of(e) {
            *out.entry((e.domain.clone(), dim, unit_of(e.ts), key))
                .or_default() += 1;
        }
    }
    out
}

fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(HOUR)
}

fn month_of(ts: i64) -> i64 {
    store::month_of_day(day_of(ts))
}

fn db_hourly(conn: &Connection) -> BTreeMap<(String, i64), HourRow> {
    let mut stmt = conn
        .prepare(
            "SELECT d.value, r.hour, r.events, r.pageviews, r.visitors FROM rollup_hourly r \
             JOIN strings d ON d.id = r.domain AND d.kind = 1",
        )
        .unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?), (r.get(2)?, r.get(3)?, r.get(4)?)))
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn db_dims(
    conn: &Connection,
    table: &str,
    unit: &str,
) -> BTreeMap<(String, i64, i64, String), i64> {
    let sql = format!(
        "SELECT d.value, r.dim, r.{unit}, k.value, r.count FROM {table} r \
         JOIN strings d ON d.id = r.domain AND d.kind = 1 \
         JOIN strings k ON k.id = r.key \
         AND k.kind = CASE r.dim WHEN 1 THEN 2 WHEN 2 THEN 3 WHEN 3 THEN 4 WHEN 4 THEN 5 \
         WHEN 5 THEN 2 WHEN 9 THEN 2 ELSE 6 END"
    );
    let mut stmt = conn.prepare(&sql).unwrap();
    let rows = stmt
        .query_map([], |r| {
            Ok(((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?), r.get(4)?))
        })
        .unwrap();
    rows.map(|r| r.unwrap()).collect()
}

fn assert_rollups_match(conn: &Connection, events: &[Event]) {
    assert_eq!(db_hourly(conn), recount_hourly(events), "rollup_hourly");
    assert_eq!(
        db_dims(conn, "rollup_hourly_dims", "hour"),
        recount_dims(events, hour_of),
        "rollup_hourly_dims"
    );
    assert_eq!(
        db_dims(conn, "rollup_daily_dims", "day"),
        recount_dims(events, day_of),
        "rollup_daily_dims"
    );
    assert_eq!(
        db_dims(conn, "rollup_monthly_dims", "month"),
        recount_dims(events, month_of),
        "rollup_monthly_dims"
    );
    let visitor_days: BTreeSet<(String, i64, i64)> = events
        .iter()
        .map(|e| (e.domain.clone(), day_of(e.ts), e.visitor as i64))
        .collect();
    let stored: BTreeSet<(String, i64, i64)> = conn
        .prepare(
            "SELECT d.value, v.day, v.visitor FROM visitors_daily v \
             JOIN strings d ON d.id = v.domain",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(stored, visitor_days, "visitors_daily");
}

/// Every raw row read back through the strings table equals the event written.
fn assert_raw_rows_match(conn: &Connection, events: &[Event]) {
    let mut stmt = conn
        .prepare(
            "SELECT e.ts, d.value, p.value, t.value, r.value, e.visitor, e.source, e.tags, \
             e.query, us.value, um.value, uc.value FROM events e \
             JOIN strings d ON d.id = e.domain AND d.kind = 1 \
             LEFT JOIN strings us ON us.id = e.utm_source AND us.kind = 6 \
             LEFT JOIN strings um ON um.id = e.utm_medium AND um.kind = 6 \
             LEFT JOIN strings uc ON uc.id = e.utm_campaign AND uc.kind = 6 \
             LEFT JOIN strings p ON p.id = e.path AND p.kind = 2 \
             JOIN strings t ON t.id = e.type AND t.kind = 4 \
             LEFT JOIN strings r ON r.id = e.referrer AND r.kind = 3 \
             ORDER BY e.id",
        )
        .unwrap();
    let tag_name = |id: &str| -> String {
        conn.query_row(
            "SELECT value FROM strings WHERE kind = 5 AND id = ?1",
            [id.parse::<i64>().unwrap()],
            |r| r.get(0),
        )
        .unwrap()
    };
    let rows: Vec<Event> = stmt
        .query_map([], |r| {
            let source: i64 = r.get(6)?;
            let tags: Option<String> = r.get(7)?;
            Ok((
                Event {
                    ts: r.get(0)?,
                    domain: r.get(1)?,
                    path: r.get(2)?,
                    kind: r.get(3)?,
                    referrer: r.get(4)?,
                    visitor: r.get::<_, i64>(5)? as u64,
                    source: match source {
                        1 => Source::Track,
                        2 => Source::Pixel,
                        3 => Source::Redirect,
                        4 => Source::Webhook,
                        _ => Source::Page,
                    },
                    tags: Vec::new(),
                    query: r.get(8)?,
                    utm: Utm {
                        source: r.get(9)?,
                        medium: r.get(10)?,
                        campaign: r.get(11)?,
                    },
                },
                tags,
            ))
        })
        .unwrap()
        .map(|r| {
            let (mut e, tags) = r.unwrap();
            if let Some(t) = tags {
                assert!(t.starts_with(',') && t.ends_with(','), "{t}");
                e.tags = t
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(tag_name)
                    .collect();
            }
            e
        })
        .collect();
    let expected: Vec<Event> = events
        .iter()
        .map(|e| {
            let mut e = e.clone();
            let mut seen = BTreeSet::new();
            e.tags.retain(|t| seen.insert(t.clone()));
            e
        })
        .collect();
    assert_eq!(rows.len(), expected.len(), "raw row count");
    for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
        assert_eq!(got, want, "raw row {i}");
    }
}

// ---------------------------------------------------------------------------------------
// Random data
// ---------------------------------------------------------------------------------------

const SITES: [&str; 3] = ["a.example", "blog.example.org", "shop.example.net"];
const TYPES: [&str; 5] = ["click", "signup", "download", "play", "404"];
const TAGS: [&str; 6] = ["beta", "promo", "ios", "android", "newsletter", "ab-test"];

/// `n` events over `days` days from `T0`, in time order, with every field varied.
fn random_events(rng: &mut Rng, n: usize, days: i64) -> Vec<Event> {
    random_events_from(rng, n, T0, days)
}

fn random_events_from(rng: &mut Rng, n: usize, start: i64, days: i64) -> Vec<Event> {
    let span = days * DAY;
    let mut times: Vec<i64> = (0..n)
        .map(|_| start + rng.below(span as u64) as i64)
        .collect();
    times.sort_unstable();
    times
        .into_iter()
        .map(|ts| {
            let domain = rng.pick(&SITES).to_string();
            let source = match rng.below(10) {
                0 => Source::Pixel,
                1 => Source::Redirect,
                2 => Source::Webhook,
                3 | 4 => Source::Page,
                _ => Source::Track,
            };
            let kind = if source == Source::Page || rng.below(3) > 0 {
                PAGEVIEW.to_string()
            } else {
                rng.pick(&TYPES).to_string()
            };
            let path = match (source, rng.below(20)) {
                (Source::Redirect, _) => Some(format!("/r/slug{}", rng.skewed(5))),
                (_, 0) => None,
                _ => Some(format!("/p/{}", rng.skewed(20))),
            };
            let referrer = match rng.below(3) {
                0 => None,
                _ => Some(format!("ref{}.example", rng.skewed(8))),
            };
            let tags = (0..rng.below(4))
                .map(|_| rng.pick(&TAGS).to_string())
                .collect();
            let query = match rng.below(8) {
                0 => Some(format!("{{\"utm\":\"u{}\"}}", rng.below(3))),
                _ => None,
            };
            let mut utm_value = |n: u64| (rng.below(3) == 0).then(|| format!("u{}", rng.below(n)));
            let utm = Utm {
                source: utm_value(4),
                medium: utm_value(3),
                campaign: utm_value(5),
            };
            Event {
                ts,
                domain,
                path,
                kind,
                referrer,
                // Some hashes use the top bit: stored as negative i64s.
                visitor: rng.below(150).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                source,
                tags,
                query,
                utm,
            }
        })
        .collect()
}

fn write_in_random_batches(
    rng: &mut Rng,
    store: &mut EventStore,
    conn: &mut Connection,
    events: &[Event],
) {
    let mut i = 0;
    while i < events.len() {
        let size = 1 + rng.below(300) as usize;
        let end = (i + size).min(events.len());
        store.write_batch(conn, &events[i..end]).expect("batch");
        i = end;
    }
}

// ---------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------

#[test]
fn a_batch_writes_raw_rows_and_rollups_and_ids_are_reused() {
    let dir = TempDir::new("batch");
    let mut conn = open(&dir);
    let mut store = EventStore::new();
    let mut first = ev(T0 + 10, "a.example", "/", PAGEVIEW);
    first.referrer = Some("news.example".into());
    first.tags = vec!["x".into()];
    first.query = Some(r#"{"k":"v"}"#.into());
    let mut second = ev(T0 + 20, "a.example", "/about", "click");
    second.visitor = u64::MAX;
    let batch1 = vec![first.clone(), second.clone()];
    store.write_batch(&mut conn, &batch1).expect("batch 1");
    assert_eq!(int(&conn, "SELECT count(*) FROM events"), 2);
    let strings = int(&conn, "SELECT count(*) FROM strings");
    assert_eq!(strings, 7, "domain, 2 paths, referrer, 2 types, tag");
    assert_eq!(
        int(&conn, "SELECT visitor FROM events WHERE id = 2"),
        -1,
        "u64::MAX stored as the same 64 bits"
    );
    assert_eq!(
        db_hourly(&conn),
        BTreeMap::from([(("a.example".to_string(), T0 / HOUR), (2, 1, 2))])
    );

    // Same strings again, from a fresh store (empty cache) and from the warm one.
    let mut third = ev(T0 + 30, "a.example", "/", PAGEVIEW);
    third.tags = vec!["x".into()];
    EventStore::new()
        .write_batch(&mut conn, std::slice::from_ref(&third))
        .expect("cold cache");
    store
        .write_batch(&mut conn, std::slice::from_ref(&second))
        .expect("warm cache");
    assert_eq!(int(&conn, "SELECT count(*) FROM strings"), strings);
    assert_eq!(int(&conn, "SELECT count(DISTINCT domain) FROM events"), 1);
    let all = vec![first, second.clone(), third, second];
    assert_raw_rows_match(&conn, &all);
    assert_rollups_match(&conn, &all);
    assert_eq!(
        int(&conn, "SELECT visitors FROM rollup_hourly"),
        2,
        "returning visitors of the day are not counted again"
    );
}

/// Rows of the tables a batch writes to.
fn row_counts(conn: &Connection) -> Vec<i64> {
    [
        "SELECT count(*) FROM events",
        "SELECT count(*) FROM strings",
        "SELECT count(*) FROM rollup_hourly",
        "SELECT count(*) FROM rollup_hourly_dims",
        "SELECT count(*) FROM rollup_daily_dims",
        "SELECT count(*) FROM visitors_daily",
    ]
    .iter()
    .map(|sql| int(conn, sql))
    .collect()
}

#[test]
fn a_failed_batch_leaves_nothing_and_the_id_cache_stays_correct() {
    let dir = TempDir::new("fail");
    let mut conn = open(&dir);
    let mut store = EventStore::new();
    let good = vec![ev(T0, "a.example", "/", PAGEVIEW)];
    store.write_batch(&mut conn, &good).expect("first batch");

    // Fail half-way through a batch that introduces new strings.
    conn.execute_batch(
        "CREATE TEMP TRIGGER inject BEFORE INSERT ON events WHEN NEW.ts = 666 \
         BEGIN SELECT RAISE(ABORT, 'injected failure'); END;",
    )
    .expect("trigger");
    let mut failing: Vec<Event> = (0..10)
        .map(|i| ev(T0 + i, "new.example", &format!("/new{i}"), "signup"))
        .collect();
    failing[5].ts = 666;
    let before = row_counts(&conn);
    let err = store
        .write_batch(&mut conn, &failing)
        .expect_err("injected failure");
    assert!(err.to_string().contains("injected failure"), "{err}");
    assert!(conn.is_autocommit(), "the transaction was rolled back");
    let after = row_counts(&conn);
    assert_eq!(before, after, "nothing of the failed batch is left");
    conn.execute_batch("DROP TRIGGER inject")
        .expect("drop trigger");

    // Other new strings first, so a stale cached id would now name something else.
    let other = vec![ev(T0 + 1, "other.example", "/other", "play")];
    store.write_batch(&mut conn, &other).expect("other batch");
    failing[5].ts = T0 + 5;
    store.write_batch(&mut conn, &failing).expect("retry");
    let mut all = good;
    all.extend(other);
    all.extend(failing);
    assert_raw_rows_match(&conn, &all);
    assert_rollups_match(&conn, &all);
}

#[test]
fn rollups_equal_a_recount_of_random_events() {
    let dir = TempDir::new("recount");
    let mut conn = open(&dir);
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    // 3 days across a month boundary (2024-01-30 to 2024-02-02).
    let events = random_events_from(&mut rng, 5_000, T0 + 29 * DAY, 3);
    let mut store = EventStore::new();
    write_in_random_batches(&mut rng, &mut store, &mut conn, &events);
    assert_raw_rows_match(&conn, &events);
    assert_rollups_match(&conn, &events);
    // The recount also holds against the raw rows in SQL.
    assert_eq!(
        int(&conn, "SELECT sum(events) FROM rollup_hourly"),
        int(&conn, "SELECT count(*) FROM events")
    );
    assert_eq!(
        int(&conn, "SELECT sum(visitors) FROM rollup_hourly"),
        int(
            &conn,
            "SELECT count(*) FROM (SELECT DISTINCT domain, ts / 86400, visitor FROM events)"
        )
    );
}

// ---------------------------------------------------------------------------------------
// Stats
// ---------------------------------------------------------------------------------------

fn brute_top(counts: HashMap<String, i64>, top: usize) -> Value {
    let mut items: Vec<(String, i64)> = counts.into_iter().collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    items.truncate(top);
    Value::Array(
        items
            .into_iter()
            .map(|(value, count)| json!({"value": value, "count": count}))
            .collect(),
    )
}

/// What `stats` must answer, computed from the events themselves.
fn brute_stats(events: &[Event], q: &StatsQuery) -> Value {
    let from = q.from.div_euclid(HOUR) * HOUR;
    let to = (-(-q.to).div_euclid(HOUR) * HOUR).max(from);
    let in_site = |e: &Event| q.site.as_deref().is_none_or(|s| s == e.domain);
    let firsts = first_hours(events);
    let width = match q.bucket {
        Bucket::Hour => HOUR,
        Bucket::Day => DAY,
    };
    let mut totals = (0i64, 0i64, 0i64);
    let mut timeline: BTreeMap<i64, (i64, i64, i64)> = BTreeMap::new();
    let mut dims: HashMap<i64, HashMap<String, i64>> = HashMap::new();
    for e in events
        .iter()
        .filter(|e| in_site(e) && e.ts >= from && e.ts < to)
    {
        let pv = i64::from(e.kind == PAGEVIEW);
        totals.0 += 1;
        totals.1 += pv;
        let t = timeline.entry(e.ts.div_euclid(width)).or_default();
        t.0 += 1;
        t.1 += pv;
        for (dim, key) in dims_of(e) {
            *dims.entry(dim).or_default().entry(key).or_default() += 1;
        }
    }
    for ((domain, _, _), hour) in firsts {
        let ts = hour * HOUR;
        if q.site.as_deref().is_none_or(|s| s == domain) && ts >= from && ts < to {
            totals.2 += 1;
            timeline.entry(ts.div_euclid(width)).or_default().2 += 1;
        }
    }
    // Redirect clicks are listed by slug.
    let clicks: HashMap<String, i64> = dims
        .remove(&store::DIM_REDIRECT)
        .unwrap_or_default()
        .into_iter()
        .map(|(path, n)| (path.trim_start_matches("/r/").to_string(), n))
        .collect();
    dims.insert(store::DIM_REDIRECT, clicks);
    let mut top = |dim| brute_top(dims.remove(&dim).unwrap_or_default(), q.top);
    json!({
        "site": q.site,
        "from": from,
        "to": to,
        "bucket": q.bucket.as_str(),
        "totals": {"events": totals.0, "pageviews": totals.1, "visitors": totals.2},
        "timeline": timeline
            .into_iter()
            .map(|(b, t)| json!({"t": b * width, "events": t.0, "pageviews": t.1, "visitors": t.2}))
            .collect::<Vec<_>>(),
        "top_paths": top(store::DIM_PATH),
        "top_referrers": top(store::DIM_REFERRER),
        "top_tags": top(store::DIM_TAG),
        "event_types": top(store::DIM_TYPE),
        "redirect_clicks": top(store::DIM_REDIRECT),
        "top_utm_sources": top(store::DIM_UTM_SOURCE),
        "top_utm_mediums": top(store::DIM_UTM_MEDIUM),
        "top_utm_campaigns": top(store::DIM_UTM_CAMPAIGN),
        "top_404s": top(store::DIM_NOT_FOUND),
    })
}

#[test]
fn stats_equal_a_brute_force_recount() {
    let dir = TempDir::new("stats");
    let mut conn = open(&dir);
    let mut rng = Rng(0xDA7A_5EED_0000_0042);
    let events = random_events(&mut rng, 5_000, 3);
    let mut store = EventStore::new();
    write_in_random_batches(&mut rng, &mut store, &mut conn, &events);

    let mut ranges: Vec<(i64, i64)> = vec![
        (T0, T0 + 3 * DAY),                       // everything, whole days
        (T0 - DAY, T0 + 10 * DAY),                // wider than the data
        (T0 + DAY, T0 + 2 * DAY),                 // one whole day
        (T0 + 5 * HOUR, T0 + 2 * DAY + 7 * HOUR), // partial days at both edges
        (T0 + 30 * HOUR, T0 + 40 * HOUR),         // inside one day
        (T0 + 100, T0 + 100),                     // empty
        (T0 + 10 * DAY, T0 + 11 * DAY),           // no data
    ];
    for _ in 0..12 {
        // Unaligned seconds: widened to whole hours.
        let a = T0 - HOUR + rng.below((3 * DAY + 2 * HOUR) as u64) as i64;
        let b = a + rng.below(2 * DAY as u64) as i64;
        ranges.push((a, b));
    }
    let sites = [
        None,
        Some("a.example"),
        Some("shop.example.net"),
        Some("nope"),
    ];
    for (i, &(from, to)) in ranges.iter().enumerate() {
        for bucket in [Bucket::Hour, Bucket::Day] {
            let site = sites[i % sites.len()].map(str::to_string);
            for top in [3, 50] {
                let q = StatsQuery {
                    site: site.clone(),
                    domains: site.clone().map(|s| vec![s]),
                    from,
                    to,
                    bucket,
                    top,
                };
                let got = stats::stats(&conn, &q).expect("stats");
                let want = brute_stats(&events, &q);
                assert_eq!(got, want, "{q:?}");
            }
        }
    }
    // All sites over everything: the lists are not trivially empty.
    let q = StatsQuery {
        site: None,
        domains: None,
        from: T0,
        to: T0 + 3 * DAY,
        bucket: Bucket::Day,
        top: 5,
    };
    let all = stats::stats(&conn, &q).expect("stats");
    assert_eq!(all["totals"]["events"], 5_000);
    assert_eq!(all["timeline"].as_array().map(Vec::len), Some(3));
    for list in [
        "top_paths",
        "top_referrers",
        "top_tags",
        "event_types",
        "redirect_clicks",
        "top_404s",
    ] {
        assert!(!all[list].as_array().expect(list).is_empty(), "{list}");
    }

    // Domains and tags lists.
    let all = stats::Page {
        offset: 0,
        limit: usize::MAX,
    };
    let domains = stats::domains(&conn, all).expect("domains");
    let listed = domains["domains"].as_array().expect("array");
    assert_eq!(listed.len(), 3);
    let total: i64 = listed.iter().map(|d| d["events"].as_i64().unwrap()).sum();
    assert_eq!(total, 5_000);
    for d in listed {
        let name = d["domain"].as_str().unwrap();
        let mine: Vec<&Event> = events.iter().filter(|e| e.domain == name).collect();
        assert_eq!(d["events"], mine.len());
        assert_eq!(
            d["pageviews"],
            mine.iter().filter(|e| e.kind == PAGEVIEW).count()
        );
        assert_eq!(d["first_seen"], mine[0].ts / HOUR * HOUR);
        assert_eq!(d["last_seen"], mine[mine.len() - 1].ts / HOUR * HOUR);
    }
    let mut tag_counts: HashMap<String, i64> = HashMap::new();
    for e in &events {
        for (dim, key) in dims_of(e) {
            if dim == store::DIM_TAG {
                *tag_counts.entry(key).or_default() += 1;
            }
        }
    }
    let tags = stats::tags(&conn, all).expect("tags");
    assert_eq!(tags["next"], Value::Null);
    // Most used first; ties in the order the tags were first seen, not by name.
    let listed = tags["tags"].as_array().expect("tags");
    let counts: Vec<i64> = listed
        .iter()
        .map(|t| t["count"].as_i64().unwrap())
        .collect();
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{counts:?}");
    let mut by_name = listed.clone();
    by_name.sort_by(|a, b| {
        let count = |t: &Value| t["count"].as_i64().unwrap();
        count(b)
            .cmp(&count(a))
            .then_with(|| a["value"].as_str().cmp(&b["value"].as_str()))
    });
    assert_eq!(Value::Array(by_name), brute_top(tag_counts, usize::MAX));
}

/// A partial day read as the whole day minus its complement must not list values seen
/// only in the complement (with a count of zero).
#[test]
fn values_seen_only_outside_the_range_are_not_listed() {
    let dir = TempDir::new("complement");
    let mut conn = open(&dir);
    let mut early = ev(T0 + HOUR, "a.example", "/early", PAGEVIEW);
    early.tags = vec!["early-tag".into()];
    let late = ev(T0 + 10 * HOUR, "a.example", "/late", PAGEVIEW);
    let next_day = ev(T0 + DAY + HOUR, "a.example", "/late", PAGEVIEW);
    EventStore::new()
        .write_batch(&mut conn, &[early, late, next_day])
        .expect("batch");
    let q = StatsQuery {
        site: None,
        domains: None,
        from: T0 + 5 * HOUR,
        to: T0 + 2 * DAY,
        bucket: Bucket::Day,
        top: 10,
    };
    let v = stats::stats(&conn, &q).expect("stats");
    assert_eq!(v["top_paths"], json!([{"value": "/late", "count": 2}]));
    assert_eq!(v["top_tags"], json!([]));
    assert_eq!(v["totals"]["events"], 2);
}

/// Ranges over months, read through monthly, daily and hourly roll-ups (and their
/// complements), still equal the recount.
#[test]
fn stats_over_months_equal_a_brute_force_recount() {
    let dir = TempDir::new("stats-months");
    let mut conn = open(&dir);
    let mut rng = Rng(0x3017_0000_5EED_0003);
    // 2023-12-20 to 2024-04-08, leap day included.
    let start = T0 - 12 * DAY;
    let events = random_events_from(&mut rng, 6_000, start, 110);
    let mut store = EventStore::new();
    write_in_random_batches(&mut rng, &mut store, &mut conn, &events);
    assert_rollups_match(&conn, &events);
    let mut ranges: Vec<(i64, i64)> = vec![
        (start, start + 110 * DAY),
        (T0, T0 + 31 * DAY),                        // January exactly
        (T0 + 5 * HOUR, T0 + 90 * DAY + 19 * HOUR), // complements at both edges
        (T0 + 20 * DAY + 23 * HOUR, T0 + 62 * DAY + HOUR),
        (T0 + 58 * DAY + 20 * HOUR, T0 + 61 * DAY), // across the leap day
    ];
    for _ in 0..10 {
        let a = start + rng.below((110 * DAY) as u64) as i64;
        let b = a + rng.below((100 * DAY) as u64) as i64;
        ranges.push((a, b));
    }
    for (i, &(from, to)) in ranges.iter().enumerate() {
        for bucket in [Bucket::Hour, Bucket::Day] {
            let site = [None, Some("blog.example.org")][i % 2].map(str::to_string);
            let q = StatsQuery {
                domains: site.clone().map(|s| vec![s]),
                site,
                from,
                to,
                bucket,
                top: 4,
            };
            assert_eq!(
                stats::stats(&conn, &q).expect("stats"),
                brute_stats(&events, &q),
                "{q:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Recent events
// ---------------------------------------------------------------------------------------

#[test]
fn recent_events_page_by_id_and_filter() {
    let dir = TempDir::new("recent");
    let mut conn = open(&dir);
    let mut rng = Rng(0x0BAD_CAFE_1234_5678);
    let events = random_events(&mut rng, 600, 1);
    let mut store = EventStore::new();
    write_in_random_batches(&mut rng, &mut store, &mut conn, &events);

    // Ids are 1..=600 in write order on a fresh table.
    let filters: [(Option<&str>, Option<&str>, Option<&str>); 5] = [
        (None, None, None),
        (Some("blog.example.org"), None, None),
        (None, Some("click"), None),
        (None, None, Some("promo")),
        (Some("a.example"), Some(PAGEVIEW), Some("beta")),
    ];
    for (site, kind, tag) in filters {
        let want: Vec<i64> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| {
                site.is_none_or(|s| s == e.domain)
                    && kind.is_none_or(|k| k == e.kind)
                    && tag.is_none_or(|t| e.tags.iter().any(|x| x == t))
            })
            .map(|(i, _)| i as i64 + 1)
            .rev()
            .collect();
        assert!(!want.is_empty(), "{site:?} {kind:?} {tag:?}");
        let mut got = Vec::new();
        let mut before = None;
        let mut pages = 0;
        loop {
            let page = stats::recent_events(
                &conn,
                site.map(|s| vec![s.to_string()]).as_deref(),
                kind,
                tag,
                before,
                7,
            )
            .expect("page");
            let list = page["events"].as_array().expect("events");
            assert!(list.len() <= 7);
            for e in list {
                let id = e["id"].as_i64().unwrap();
                let src = &events[id as usize - 1];
                assert_eq!(e["ts"], src.ts);
                assert_eq!(e["domain"], src.domain);
                assert_eq!(e["path"], json!(src.path));
                assert_eq!(e["type"], src.kind);
                assert_eq!(e["referrer"], json!(src.referrer));
                let mut tags: Vec<String> = Vec::new();
                for t in &src.tags {
                    if !tags.contains(t) {
                        tags.push(t.clone());
                    }
                }
                assert_eq!(e["tags"], json!(tags));
                let q: Value = src
                    .query
                    .as_deref()
                    .map_or(Value::Null, |q| serde_json::from_str(q).unwrap());
                assert_eq!(e["q"], q);
                let source = e["source"].as_str().unwrap();
                assert_eq!(store::source_name(src.source as i64), source);
                got.push(id);
            }
            pages += 1;
            match page["next_before"].as_i64() {
                Some(next) => {
                    assert_eq!(list.len(), 7, "a page with more to come is full");
                    assert_eq!(Some(next), got.last().copied());
                    before = Some(next);
                }
                None => break,
            }
        }
        assert_eq!(got, want, "{site:?} {kind:?} {tag:?}");
        assert_eq!(pages, want.len().div_ceil(7).max(1));
    }
    // Unknown filters: an empty page, not an error.
    for (site, kind, tag) in [
        (Some("nope"), None, None),
        (None, Some("nope"), None),
        (None, None, Some("nope")),
    ] {
        let page = stats::recent_events(
            &conn,
            site.map(|s| vec![s.to_string()]).as_deref(),
            kind,
            tag,
            None,
            10,
        )
        .expect("page");
        assert_eq!(page, json!({"events": [], "next_before": null}));
    }
    // An old cursor continues below it.
    let page = stats::recent_events(&conn, None, None, None, Some(3), 10).expect("page");
    let ids: Vec<i64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 1]);
    assert_eq!(page["next_before"], Value::Null);
}

// ---------------------------------------------------------------------------------------
// Retention
// ---------------------------------------------------------------------------------------

#[test]
fn prune_removes_exactly_what_is_older_than_the_cutoff() {
    let dir = TempDir::new("prune");
    let mut conn = open(&dir);
    let mut rng = Rng(0x9121_7E00_0000_0001);
    // 2023-12-31 to 2024-01-03: the cutoff leaves December's monthly rows behind.
    let mut events = random_events_from(&mut rng, 3_000, T0 - DAY, 3);
    // Events exactly at the cutoff stay.
    let cutoff = T0 + DAY + 5 * HOUR + 17;
    let at = events.partition_point(|e| e.ts < cutoff);
    for e in &mut events[at..at + 3] {
        e.ts = cutoff;
    }
    events.sort_by_key(|e| e.ts);
    let mut store = EventStore::new();
    write_in_random_batches(&mut rng, &mut store, &mut conn, &events);

    let rollups = |conn: &Connection| -> Vec<i64> {
        [
            "SELECT count(*) FROM rollup_hourly",
            "SELECT count(*) FROM rollup_hourly_dims",
            "SELECT count(*) FROM rollup_daily_dims",
            "SELECT count(*) FROM rollup_monthly_dims",
            "SELECT count(*) FROM visitors_daily",
        ]
        .iter()
        .map(|sql| int(conn, sql))
        .collect()
    };
    let before = rollups(&conn);
    let older = events.iter().filter(|e| e.ts < cutoff).count();
    let mut deleted = 0;
    let mut rounds = 0;
    loop {
        let p = store::prune_batch(&mut conn, cutoff, false, 250).expect("prune");
        assert!(p.events_deleted <= 250);
        assert_eq!(p.rollup_rows_deleted, 0);
        deleted += p.events_deleted;
        rounds += 1;
        if p.done {
            break;
        }
        assert!(rounds < 100, "prune never finished");
    }
    assert_eq!(deleted, older);
    assert_eq!(rounds, older.div_ceil(250));
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM events WHERE ts < {cutoff}")
        ),
        0
    );
    assert_eq!(
        int(
            &conn,
            &format!("SELECT count(*) FROM events WHERE ts = {cutoff}")
        ),
        3
    );
    assert_eq!(
        int(&conn, "SELECT count(*) FROM events") as usize,
        events.len() - older
    );
    assert_eq!(rollups(&conn), before, "roll-ups are kept");
    // The survivors are the newest events, unchanged.
    assert_raw_rows_match_tail(&conn, &events[older..]);

    // Now the roll-ups too, in small steps.
    let cutoff_hour = cutoff.div_euclid(HOUR);
    let cutoff_day = cutoff.div_euclid(DAY);
    let cutoff_month = store::month_of_day(cutoff_day);
    let expect_left = [
        int(
            &conn,
            &format!("SELECT count(*) FROM rollup_hourly WHERE hour >= {cutoff_hour}"),
        ),
        int(
            &conn,
            &format!("SELECT count(*) FROM rollup_hourly_dims WHERE hour >= {cutoff_hour}"),
        ),
        int(
            &conn,
            &format!("SELECT count(*) FROM rollup_daily_dims WHERE day >= {cutoff_day}"),
        ),
        int(
            &conn,
            &format!("SELECT count(*) FROM rollup_monthly_dims WHERE month >= {cutoff_month}"),
        ),
        int(
            &conn,
            &format!("SELECT count(*) FROM visitors_daily WHERE day >= {cutoff_day}"),
        ),
    ];
    let total_before: i64 = before.iter().sum();
    let mut rollup_deleted = 0;
    loop {
        let p = store::prune_batch(&mut conn, cutoff, true, 500).expect("prune roll-ups");
        assert_eq!(p.events_deleted, 0);
        assert!(p.rollup_rows_deleted <= 500);
        rollup_deleted += p.rollup_rows_deleted;
        if p.done {
            break;
        }
    }
    assert_eq!(rollups(&conn), expect_left);
    assert_eq!(
        rollup_deleted as i64,
        total_before - expect_left.iter().sum::<i64>()
    );
    assert!(expect_left.iter().all(|&n| n > 0));
    assert!(
        expect_left[3] < before[3],
        "some monthly rows were old enough to go"
    );
    // Space comes back through incremental vacuum.
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    let freed = db::incremental_vacuum(&conn, None).expect("vacuum");
    assert!(freed > 0, "pruning freed pages");
}

fn assert_raw_rows_match_tail(conn: &Connection, tail: &[Event]) {
    let ts: Vec<i64> = conn
        .prepare("SELECT ts FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    let want: Vec<i64> = tail.iter().map(|e| e.ts).collect();
    assert_eq!(ts, want);
}

// ---------------------------------------------------------------------------------------
// Salts
// ---------------------------------------------------------------------------------------

#[test]
fn salts_are_stable_within_a_day_and_old_ones_are_deleted() {
    let dir = TempDir::new("salts");
    let conn = open(&dir);
    let today = day_of(T0 + 10 * DAY);
    let salt = store::load_or_create_salt(&conn, today).expect("salt");
    assert_ne!(salt, [0; 32]);
    assert_eq!(
        store::load_or_create_salt(&conn, today).expect("again"),
        salt
    );
    let yesterday = store::load_or_create_salt(&conn, today - 1).expect("yesterday");
    assert_ne!(yesterday, salt);
    for day in today - 5..today - 1 {
        store::load_or_create_salt(&conn, day).expect("old");
    }
    assert_eq!(int(&conn, "SELECT count(*) FROM salts"), 6);
    assert_eq!(store::delete_old_salts(&conn, today).expect("delete"), 4);
    let days: Vec<i64> = conn
        .prepare("SELECT day FROM salts ORDER BY day")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(days, [today - 1, today]);
    // Still the same after reopening (a restart keeps counting the same visitors).
    drop(conn);
    let conn = open(&dir);
    assert_eq!(
        store::load_or_create_salt(&conn, today).expect("reopen"),
        salt
    );
    assert_eq!(store::delete_old_salts(&conn, today).expect("again"), 0);
}

// ---------------------------------------------------------------------------------------
// Bytes per event
// ---------------------------------------------------------------------------------------

fn db_bytes(conn: &Connection) -> i64 {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .expect("checkpoint");
    int(conn, "PRAGMA page_count") * int(conn, "PRAGMA page_size")
}

/// 200,000 realistic events (3 sites, ~200 paths, ~50 referrers, 5 types, some tags,
/// ~20 events per visitor per day, 30 days) in batches of 1000: the file grows by at most
/// 120 bytes per event, raw rows, indexes and roll-ups included.
#[test]
fn an_event_costs_at_most_120_bytes_on_disk() {
    const N: usize = 200_000;
    const DAYS: i64 = 30;
    let dir = TempDir::new("bytes");
    let mut conn = open(&dir);
    let before = db_bytes(&conn);
    let mut rng = Rng(0xB17E_5000_0000_0007);
    let paths: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("/blog/{i}-a-longer-post-title-like-people-write"),
            1 => format!("/docs/section-{}/page-{i}", i % 7),
            2 => format!("/p/{i}"),
            _ => format!("/products/item-{i}?ref=nav"),
        })
        .collect();
    let referrers: Vec<String> = (0..50)
        .map(|i| format!("www.referrer-site-{i}.example.com"))
        .collect();
    let types = [PAGEVIEW, "click", "signup", "download", "scroll"];
    let per_day = N as i64 / DAYS;
    let visitors_per_day = per_day / 20;
    let mut store = EventStore::new();
    let started = std::time::Instant::now();
    let mut batch = Vec::with_capacity(1000);
    for i in 0..N as i64 {
        let day = i / per_day;
        let ts = T0 + day * DAY + (i % per_day) * DAY / per_day;
        // A visitor mostly stays on one site.
        let visitor_no = rng.below(visitors_per_day as u64);
        let site = SITES[(visitor_no % 6).min(2) as usize];
        let visitor = (visitor_no ^ (day as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let kind = match rng.below(10) {
            0 => types[1 + rng.below(4) as usize],
            _ => PAGEVIEW,
        };
        let tags = match rng.below(10) {
            0 => vec![format!("campaign-{}", rng.below(8))],
            1 => vec!["beta".to_string(), format!("v{}", rng.below(3))],
            _ => Vec::new(),
        };
        let source = match rng.below(100) {
            0 => Source::Redirect,
            1..=10 => Source::Pixel,
            11..=40 => Source::Page,
            _ => Source::Track,
        };
        batch.push(Event {
            ts,
            domain: site.to_string(),
            path: Some(paths[rng.skewed(200) as usize].clone()),
            kind: kind.to_string(),
            referrer: match rng.below(10) {
                0..=5 => None,
                _ => Some(referrers[rng.skewed(50) as usize].clone()),
            },
            visitor,
            source,
            tags,
            utm: Default::default(),
            query: match rng.below(20) {
                0 => Some(format!(r#"{{"utm_source":"s{}"}}"#, rng.below(5))),
                _ => None,
            },
        });
        if batch.len() == 1000 {
            store.write_batch(&mut conn, &batch).expect("batch");
            batch.clear();
        }
    }
    store.write_batch(&mut conn, &batch).expect("last batch");
    let elapsed = started.elapsed();
    let after = db_bytes(&conn);
    let per_event = (after - before) as f64 / N as f64;

    let mut breakdown = String::new();
    let mut stmt = conn
        .prepare(
            "SELECT name, count(*), sum(pgsize), sum(payload), sum(unused) FROM dbstat \
             GROUP BY name ORDER BY sum(pgsize) DESC",
        )
        .expect("dbstat");
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
            ))
        })
        .expect("dbstat rows");
    for row in rows {
        let (name, pages, bytes, payload, unused) = row.expect("row");
        if pages < 2 {
            continue;
        }
        breakdown.push_str(&format!(
            "  {name:28} {pages:6} pages {:7.1} B/event (payload {:5.1}, unused {:4.1}%)\n",
            bytes as f64 / N as f64,
            payload as f64 / N as f64,
            100.0 * unused as f64 / bytes as f64
        ));
    }
    let rows_of = |table: &str| int(&conn, &format!("SELECT count(*) FROM {table}"));
    eprintln!(
        "analytics storage: {per_event:.1} bytes/event ({} bytes for {N} events, generated \
         and written in {elapsed:?})\n{breakdown}  \
         rows: rollup_hourly {}, rollup_hourly_dims {}, rollup_daily_dims {}, \
         visitors_daily {}, strings {}",
        after - before,
        rows_of("rollup_hourly"),
        rows_of("rollup_hourly_dims"),
        rows_of("rollup_daily_dims"),
        rows_of("visitors_daily"),
        rows_of("strings"),
    );
    assert_eq!(rows_of("events"), N as i64);
    assert!(
        per_event <= 120.0,
        "{per_event:.1} bytes/event is over the 120 target\n{breakdown}"
    );

    // A filter with no index pages through history in bounded steps.
    let mut before_id = None;
    let mut found = 0;
    let mut calls = 0;
    loop {
        let page = stats::recent_events(&conn, None, Some("signup"), Some("beta"), before_id, 50)
            .expect("recent");
        found += page["events"].as_array().unwrap().len();
        calls += 1;
        match page["next_before"].as_i64() {
            Some(id) => before_id = Some(id),
            None => break,
        }
    }
    let want = int(
        &conn,
        "SELECT count(*) FROM events WHERE type = (SELECT id FROM strings WHERE kind = 4 \
         AND value = 'signup') AND tags LIKE '%,' || (SELECT id FROM strings WHERE kind = 5 \
         AND value = 'beta') || ',%'",
    );
    assert_eq!(found as i64, want);
    assert!(calls >= N / stats::RECENT_SCAN_BUDGET, "{calls} calls");
}

// ---------------------------------------------------------------------------------------
// Speed (reported, not asserted): `cargo test --release --test analytics_store -- --ignored`
// ---------------------------------------------------------------------------------------
