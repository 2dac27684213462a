//! The analytics writer path alone (DESIGN §1, §3): `EventStore::write_batch` against a raw
//! `rusqlite` bulk insert of the same rows, bytes per stored event, and a year of generated
//! events for the stats benchmark of `bench/bench_analytics.sh`.
//!
//! Usage (release build; `cargo bench` builds benches with the release profile):
//!   ANALYTICS_BENCH=1 cargo bench --bench analytics_writer                    (= compare)
//!   ANALYTICS_BENCH=1 target/release/deps/analytics_writer-HASH compare
//!   ANALYTICS_BENCH=1 .../analytics_writer-HASH generate DATA_DIR EVENTS [DAYS] [BUDGET_SECS]
//!   ANALYTICS_BENCH=1 .../analytics_writer-HASH fill-rollups DATA_DIR
//!
//! Without `ANALYTICS_BENCH=1` (as `cargo test --all-targets` / `cargo bench` run every bench
//! target with `harness = false`) it prints the usage and exits 0 at once. Arguments starting
//! with `-` (`--bench`, filters) are ignored; the first other argument is the mode.
//!
//! Results go to stdout as `key=value` lines (read by the script), progress to stderr.
//!
//! Modes:
//! - `compare`: ANALYTICS_BENCH_EVENTS (default 200,000) realistic events over
//!   ANALYTICS_BENCH_SPAN_SECS seconds (default 60, printed as `span_secs`), the
//!   generator of `tests/integration/analytics_store.rs`'s bytes test (3 sites, 200 paths, 50 referrers,
//!   5 types, some tags and `q` objects, ~20 events per visitor and day), built before the
//!   clock starts.
//!
//!   Why 60 s: the span sets how many roll-up and visitor rows a batch touches (events per
//!   hour and per day), and the writer's ceiling only matters when events arrive faster
//!   than it commits them. Then they come in time order with `ts` stamped at ingest, so
//!   the span of N events is N / (arrival rate), and an arrival rate that outruns the
//!   writer (hundreds of thousands of events a second here) puts 200,000 events within a
//!   second or two. 60 s is a conservative live-load density: sparser than any load that
//!   could saturate the writer, so its roll-up work per event is if anything overstated.
//!   Slower traffic spread over days (ANALYTICS_BENCH_SPAN_SECS=2592000: 30 days, about one
//!   new `rollup_hourly_dims` row per event) costs the writer more per event, but then the
//!   writer idles between batches and its throughput is not what limits ingestion.
//!
//!   Each of ANALYTICS_BENCH_ROUNDS (default 5) rounds writes them into a fresh
//!   migrated database (`db::open_and_migrate`, the pragmas fazt runs with) twice:
//!   - writer: `EventStore::write_batch` in batches of ANALYTICS_BENCH_BATCH (default: the server's
//!     `FAZT_EVENT_BATCH` default, `db::events::DEFAULT_MAX_EVENTS`),
//!     as the server has it: strings interned, raw rows, visitors and
//!     every roll-up, one IMMEDIATE transaction per batch;
//!   - raw: the same rows into the same `events` table (same indexes) with one prepared
//!     INSERT, the same batch size per IMMEDIATE transaction, string ids interned and tag
//!     lists formatted beforehand (the `strings` rows are inserted before the clock starts),
//!     no roll-ups. The floor of what storing these rows can cost.
//!   - the two alternate (their order swaps every round); the median round of each is
//!     reported, and the ratio is the median of the rounds' writer/raw ratios. Bytes per event: `page_count * page_size` after `wal_checkpoint(TRUNCATE)`,
//!     over the events written, of the writer's database (raw rows, indexes, strings,
//!     visitors and roll-ups), also net of the empty migrated file.
//! - `generate DATA_DIR EVENTS [DAYS=365] [BUDGET_SECS=240]`: EVENTS events spread evenly over
//!   the DAYS days that end now (ANALYTICS_BENCH_END: another end, unix seconds), same
//!   generator, written in time order through `EventStore::write_batch` in batches of
//!   ANALYTICS_BENCH_GEN_BATCH (default 10,000) into `DATA_DIR/fazt.db`, ready for
//!   `fazt server start --data DATA_DIR`. With BUDGET_SECS > 0 it first writes a sample of
//!   the same density into a scratch database to measure the rate; if EVENTS would take
//!   longer than the budget it writes fewer (reported as `reduced=1`), and it stops at 1.5x
//!   the budget whatever happens (`stopped_early=1`).
//! - `fill-rollups DATA_DIR`: the roll-up tables alone, as a year of ~10 million events leaves
//!   them (the shape of `tests/integration/analytics_store.rs`'s ignored year benchmark: 3 sites, ~380
//!   events per site and hour; 150 paths, 40 referrers, 5 types, 10 tags, 5 slugs an hour;
//!   200/50/5/20/10 a day and month), for the 8,760 hours that end now, inserted with SQL, no
//!   raw events. Months are calendar months here.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fazt::analytics::event::{day_of, Event, Source, PAGEVIEW};
use fazt::analytics::store::EventStore;
use fazt::db;
use fazt::platform::probe::Report;
use rusqlite::{params, Connection, TransactionBehavior};

const USAGE: &str = "usage: ANALYTICS_BENCH=1 cargo bench --bench analytics_writer [-- compare]\n\
     \x20      ANALYTICS_BENCH=1 <bench exe> generate DATA_DIR EVENTS [DAYS=365] [BUDGET_SECS=240]\n\
     \x20      ANALYTICS_BENCH=1 <bench exe> fill-rollups DATA_DIR\n\
     env: ANALYTICS_BENCH_EVENTS=200000 ANALYTICS_BENCH_ROUNDS=5 ANALYTICS_BENCH_BATCH=10000 \
     ANALYTICS_BENCH_SPAN_SECS=60 ANALYTICS_BENCH_GEN_BATCH=10000 ANALYTICS_BENCH_END=<unix secs> ANALYTICS_BENCH_DIR=<scratch dir>";

const DAY: i64 = 86_400;
const HOUR: i64 = 3_600;
/// 2024-01-01T00:00:00Z, the start of the `compare` events (as in the store tests).
const T0: i64 = 1_704_067_200;
/// The default span of the `compare` events: a live-load density (see the header).
const LIVE_SPAN_SECS: i64 = 60;
const SITES: [&str; 3] = ["a.example", "blog.example.org", "shop.example.net"];

type Res<T> = Result<T, String>;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var("ANALYTICS_BENCH").as_deref() != Ok("1") {
        println!("{USAGE}");
        return;
    }
    let words: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    // A marker the script checks: a libtest harness (no `harness = false`) never prints it.
    println!("analytics_writer=1");
    let result = match words.as_slice() {
        [] | ["compare"] => compare(),
        ["generate", dir, events, rest @ ..] if rest.len() <= 2 => (|| {
            let events: u64 = parse(events, "EVENTS")?;
            let days: i64 = rest.first().map_or(Ok(365), |d| parse(d, "DAYS"))?;
            let budget: f64 = rest.get(1).map_or(Ok(240.0), |b| parse(b, "BUDGET_SECS"))?;
            generate(Path::new(dir), events, days, budget)
        })(),
        ["fill-rollups", dir] => fill_rollups(Path::new(dir)),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        eprintln!("analytics_writer: {e}");
        std::process::exit(1);
    }
}

fn parse<T: std::str::FromStr>(text: &str, what: &str) -> Res<T> {
    text.parse()
        .map_err(|_| format!("{what} must be a number, got '{text}'"))
}

// ---------------------------------------------------------------------------------------
// Databases
// ---------------------------------------------------------------------------------------

/// A fresh data directory with a migrated database, opened as fazt's writer opens it
/// (probe limits of this host and the process environment).
fn open_fresh(dir: &Path) -> Res<Connection> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    open_existing(dir)
}

fn open_existing(dir: &Path) -> Res<Connection> {
    let limits = Report::system(dir).map_err(|e| e.to_string())?.limits;
    db::open_and_migrate(&db::db_path(dir), &limits).map_err(|e| e.to_string())
}

fn int(conn: &Connection, sql: &str) -> Res<i64> {
    conn.query_row(sql, [], |r| r.get(0))
        .map_err(|e| format!("{sql}: {e}"))
}

/// The database's size after a full checkpoint: page_count * page_size.
fn db_bytes(conn: &Connection) -> Res<i64> {
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .map_err(|e| format!("checkpoint: {e}"))?;
    Ok(int(conn, "PRAGMA page_count")? * int(conn, "PRAGMA page_size")?)
}

fn scratch_dir() -> PathBuf {
    std::env::var_os("ANALYTICS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("fazt-analytics-writer-{}", std::process::id()))
        })
}

// ---------------------------------------------------------------------------------------
// Traffic
// ---------------------------------------------------------------------------------------

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

    /// Skewed towards small indices, like real traffic (a few popular pages).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

/// The events of `tests/integration/analytics_store.rs`'s bytes test: `n` events spread evenly over
/// `[start, start + span)` in time order, ~20 events per visitor and day.
struct Traffic {
    rng: Rng,
    paths: Vec<String>,
    referrers: Vec<String>,
    start: i64,
    span: i64,
    n: u64,
    visitors_per_day: u64,
}

const TYPES: [&str; 5] = [PAGEVIEW, "click", "signup", "download", "scroll"];

impl Traffic {
    fn new(n: u64, start: i64, span: i64) -> Traffic {
        let days = (span / DAY).max(1) as u64;
        Traffic {
            rng: Rng(0xB17E_5000_0000_0007),
            paths: (0..200)
                .map(|i| match i % 4 {
                    0 => format!("/blog/{i}-a-longer-post-title-like-people-write"),
                    1 => format!("/docs/section-{}/page-{i}", i % 7),
                    2 => format!("/p/{i}"),
                    _ => format!("/products/item-{i}?ref=nav"),
                })
                .collect(),
            referrers: (0..50)
                .map(|i| format!("www.referrer-site-{i}.example.com"))
                .collect(),
            start,
            span,
            n: n.max(1),
            visitors_per_day: (n / days / 20).max(1),
        }
    }

    fn event(&mut self, i: u64) -> Event {
        let rng = &mut self.rng;
        let ts = self.start + (i128::from(i) * i128::from(self.span) / i128::from(self.n)) as i64;
        let day = day_of(ts);
        // A visitor mostly stays on one site.
        let visitor_no = rng.below(self.visitors_per_day);
        let site = SITES[(visitor_no % 6).min(2) as usize];
        let visitor = (visitor_no ^ (day as u64) << 32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let kind = match rng.below(10) {
            0 => TYPES[1 + rng.below(4) as usize],
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
        Event {
            ts,
            domain: site.to_string(),
            path: Some(self.paths[rng.skewed(200) as usize].clone()),
            kind: kind.to_string(),
            referrer: match rng.below(10) {
                0..=5 => None,
                _ => Some(self.referrers[rng.skewed(50) as usize].clone()),
            },
            visitor,
            source,
            tags,
            utm: Default::default(),
            query: match rng.below(20) {
                0 => Some(format!(r#"{{"utm_source":"s{}"}}"#, rng.below(5))),
                _ => None,
            },
        }
    }
}

// ---------------------------------------------------------------------------------------
// compare
// ---------------------------------------------------------------------------------------

/// One `events` row with its strings already interned.
struct RawRow {
    ts: i64,
    domain: i64,
    path: Option<i64>,
    kind: i64,
    referrer: Option<i64>,
    visitor: i64,
    source: i64,
    tags: Option<String>,
    query: Option<String>,
}

/// The rows of `events` and the `strings` they refer to (kind, value; id = index + 1).
struct RawData {
    strings: Vec<(u8, String)>,
    rows: Vec<RawRow>,
}

fn intern_all(events: &[Event]) -> RawData {
    use std::collections::HashMap;
    let mut ids: HashMap<(u8, String), i64> = HashMap::new();
    let mut strings = Vec::new();
    let mut id = |kind: u8, value: &str| -> i64 {
        if let Some(&id) = ids.get(&(kind, value.to_string())) {
            return id;
        }
        strings.push((kind, value.to_string()));
        let id = strings.len() as i64;
        ids.insert((kind, value.to_string()), id);
        id
    };
    let mut rows = Vec::with_capacity(events.len());
    for e in events {
        let domain = id(1, &e.domain);
        let path = e.path.as_deref().map(|p| id(2, p));
        let kind = id(4, &e.kind);
        let referrer = e.referrer.as_deref().map(|r| id(3, r));
        let mut tag_ids: Vec<i64> = Vec::new();
        for t in &e.tags {
            let t = id(5, t);
            if !tag_ids.contains(&t) {
                tag_ids.push(t);
            }
        }
        let tags = (!tag_ids.is_empty()).then(|| {
            let mut s = String::from(",");
            for t in &tag_ids {
                s.push_str(&t.to_string());
                s.push(',');
            }
            s
        });
        rows.push(RawRow {
            ts: e.ts,
            domain,
            path,
            kind,
            referrer,
            visitor: e.visitor as i64,
            source: e.source as i64,
            tags,
            query: e.query.clone(),
        });
    }
    RawData { strings, rows }
}

/// The SQL statements `EventStore::write_batch` executes per event for these events
/// (string look-ups aside, which the id cache absorbs): the event INSERT, then one statement
/// per distinct (site, day, visitor) not committed by an earlier batch (the writer's
/// visitor-day cache skips those), (site, hour) and (site, dimension, hour|day|month, value)
/// of each batch. Returns (total per event, "name per-event, ..." breakdown).
fn writer_statements(events: &[Event], batch: usize) -> (f64, String) {
    use std::collections::HashSet;
    let (mut visitors, mut hours, mut hour_dims, mut day_dims, mut month_dims) = (0, 0, 0, 0, 0);
    let mut committed_visitors = HashSet::new();
    for chunk in events.chunks(batch) {
        let mut v = HashSet::new();
        let mut h = HashSet::new();
        let mut hd = HashSet::new();
        let mut dd = HashSet::new();
        let mut md = HashSet::new();
        for e in chunk {
            let (hour, day) = (e.ts.div_euclid(HOUR), day_of(e.ts));
            let month = fazt::analytics::store::month_of_day(day);
            v.insert((e.domain.as_str(), day, e.visitor));
            h.insert((e.domain.as_str(), hour));
            let mut keys: Vec<(u8, &str)> = Vec::new();
            if let (true, Some(p)) = (e.kind == PAGEVIEW, e.path.as_deref()) {
                keys.push((1, p));
            }
            if let Some(r) = e.referrer.as_deref() {
                keys.push((2, r));
            }
            keys.push((3, e.kind.as_str()));
            for t in &e.tags {
                if !keys.contains(&(4, t.as_str())) {
                    keys.push((4, t.as_str()));
                }
            }
            if let (Source::Redirect, Some(p)) = (e.source, e.path.as_deref()) {
                keys.push((5, p));
            }
            for (dim, key) in keys {
                hd.insert((e.domain.as_str(), dim, hour, key));
                dd.insert((e.domain.as_str(), dim, day, key));
                md.insert((e.domain.as_str(), dim, month, key));
            }
        }
        visitors += v.difference(&committed_visitors).count();
        committed_visitors.extend(v);
        hours += h.len();
        hour_dims += hd.len();
        day_dims += dd.len();
        month_dims += md.len();
    }
    let n = events.len().max(1) as f64;
    let per = |x: usize| x as f64 / n;
    let total = 1.0 + per(visitors + hours + hour_dims + day_dims + month_dims);
    let breakdown = format!(
        "events insert 1.00, visitors_daily {:.2}, rollup_hourly {:.2}, rollup_hourly_dims {:.2}, \
         rollup_daily_dims {:.2}, rollup_monthly_dims {:.2}",
        per(visitors),
        per(hours),
        per(hour_dims),
        per(day_dims),
        per(month_dims)
    );
    (total, breakdown)
}

struct WriterRound {
    secs: f64,
    bytes_before: i64,
    bytes_after: i64,
}

fn writer_round(dir: &Path, events: &[Event], batch: usize) -> Res<WriterRound> {
    let mut conn = open_fresh(dir)?;
    let bytes_before = db_bytes(&conn)?;
    let mut store = EventStore::new();
    let started = Instant::now();
    for chunk in events.chunks(batch) {
        store
            .write_batch(&mut conn, chunk)
            .map_err(|e| format!("write_batch: {e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = int(&conn, "SELECT count(*) FROM events")?;
    if stored != events.len() as i64 {
        return Err(format!(
            "writer path: {stored} rows in events after writing {}",
            events.len()
        ));
    }
    let bytes_after = db_bytes(&conn)?;
    Ok(WriterRound {
        secs,
        bytes_before,
        bytes_after,
    })
}

fn raw_round(dir: &Path, data: &RawData, batch: usize) -> Res<(f64, i64)> {
    let mut conn = open_fresh(dir)?;
    {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| e.to_string())?;
        {
            let mut insert = tx
                .prepare("INSERT INTO strings (id, kind, value) VALUES (?1, ?2, ?3)")
                .map_err(|e| e.to_string())?;
            for (i, (kind, value)) in data.strings.iter().enumerate() {
                insert
                    .execute(params![i as i64 + 1, kind, value])
                    .map_err(|e| format!("inserting strings: {e}"))?;
            }
        }
        tx.commit().map_err(|e| e.to_string())?;
    }
    let started = Instant::now();
    for chunk in data.rows.chunks(batch) {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| format!("begin: {e}"))?;
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO events (ts, domain, path, type, referrer, visitor, source, tags, \
                     query) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(|e| format!("prepare: {e}"))?;
            for r in chunk {
                insert
                    .execute(params![
                        r.ts, r.domain, r.path, r.kind, r.referrer, r.visitor, r.source, r.tags,
                        r.query
                    ])
                    .map_err(|e| format!("insert: {e}"))?;
            }
        }
        tx.commit().map_err(|e| format!("commit: {e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let stored = int(&conn, "SELECT count(*) FROM events")?;
    if stored != data.rows.len() as i64 {
        return Err(format!(
            "raw path: {stored} rows in events after writing {}",
            data.rows.len()
        ));
    }
    Ok((secs, db_bytes(&conn)?))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[(v.len() - 1) / 2]
}

fn compare() -> Res<()> {
    let n: u64 = env_or("ANALYTICS_BENCH_EVENTS", 200_000).max(1000);
    let rounds: usize = env_or("ANALYTICS_BENCH_ROUNDS", 5).max(1);
    let batch: usize = env_or(
        "ANALYTICS_BENCH_BATCH",
        fazt::db::events::DEFAULT_MAX_EVENTS,
    )
    .max(1);
    let base = scratch_dir();
    std::fs::create_dir_all(&base).map_err(|e| format!("creating {}: {e}", base.display()))?;

    let span: i64 = env_or("ANALYTICS_BENCH_SPAN_SECS", LIVE_SPAN_SECS).max(1);
    let mut traffic = Traffic::new(n, T0, span);
    let events: Vec<Event> = (0..n).map(|i| traffic.event(i)).collect();
    let raw = intern_all(&events);
    eprintln!(
        "analytics_writer compare: {n} events over {span} s ({} distinct strings), batches of \
         {batch}, {rounds} rounds, scratch {}",
        raw.strings.len(),
        base.display()
    );

    let mut writer_eps = Vec::new();
    let mut raw_eps = Vec::new();
    let mut last_writer = None;
    let mut raw_bytes = 0;
    for r in 0..rounds {
        let writer_dir = base.join(format!("writer-{r}"));
        let raw_dir = base.join(format!("raw-{r}"));
        let mut run_writer = || -> Res<()> {
            let w = writer_round(&writer_dir, &events, batch)?;
            writer_eps.push(n as f64 / w.secs);
            eprintln!(
                "  round {}: writer path {:.3} s, {:.0} events/s",
                r + 1,
                w.secs,
                n as f64 / w.secs
            );
            last_writer = Some(w);
            Ok(())
        };
        let mut run_raw = || -> Res<()> {
            let (secs, bytes) = raw_round(&raw_dir, &raw, batch)?;
            raw_eps.push(n as f64 / secs);
            raw_bytes = bytes;
            eprintln!(
                "  round {}: raw insert  {secs:.3} s, {:.0} events/s",
                r + 1,
                n as f64 / secs
            );
            Ok(())
        };
        if r % 2 == 0 {
            run_writer()?;
            run_raw()?;
        } else {
            run_raw()?;
            run_writer()?;
        }
        if r + 1 < rounds {
            let _ = std::fs::remove_dir_all(&writer_dir);
        }
        let _ = std::fs::remove_dir_all(&raw_dir);
    }

    // Where the bytes go, from the last writer database.
    let last_dir = base.join(format!("writer-{}", rounds - 1));
    let conn = open_existing(&last_dir)?;
    let mut stmt = conn
        .prepare(
            "SELECT name, sum(pgsize) FROM dbstat GROUP BY name HAVING count(*) > 1 \
             ORDER BY sum(pgsize) DESC",
        )
        .map_err(|e| format!("dbstat: {e}"))?;
    let rows: Vec<(String, i64)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| format!("dbstat: {e}"))?;
    drop(stmt);
    let count = |table: &str| int(&conn, &format!("SELECT count(*) FROM {table}"));
    let rollup_rows = [
        ("rollup_hourly", count("rollup_hourly")?),
        ("rollup_hourly_dims", count("rollup_hourly_dims")?),
        ("rollup_daily_dims", count("rollup_daily_dims")?),
        ("rollup_monthly_dims", count("rollup_monthly_dims")?),
        ("visitors_daily", count("visitors_daily")?),
        ("strings", count("strings")?),
    ];
    drop(conn);
    let _ = std::fs::remove_dir_all(&last_dir);
    let _ = std::fs::remove_dir(&base);

    let w = last_writer.ok_or("no writer round ran")?;
    let writer = median(writer_eps.clone());
    let raw_med = median(raw_eps.clone());
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("events={n}");
    println!("batch={batch}");
    println!("span_secs={span}");
    println!("rounds={rounds}");
    println!("writer_eps={writer:.0}");
    println!("writer_eps_all={}", fmt(&writer_eps));
    println!("raw_eps={raw_med:.0}");
    println!("raw_eps_all={}", fmt(&raw_eps));
    // Per round: the two runs of a round are back to back, so a machine that slows down
    // for a while (it is shared) moves both.
    let ratios: Vec<f64> = writer_eps
        .iter()
        .zip(&raw_eps)
        .map(|(w, r)| w / r)
        .collect();
    println!("ratio={:.2}", median(ratios.clone()));
    println!(
        "ratio_all={}",
        ratios
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("db_bytes={}", w.bytes_after);
    println!("empty_db_bytes={}", w.bytes_before);
    println!("bytes_per_event={:.1}", w.bytes_after as f64 / n as f64);
    println!(
        "bytes_per_event_net={:.1}",
        (w.bytes_after - w.bytes_before) as f64 / n as f64
    );
    println!(
        "raw_bytes_per_event={:.1}",
        (raw_bytes - w.bytes_before) as f64 / n as f64
    );
    let breakdown: Vec<String> = rows
        .iter()
        .map(|(name, bytes)| format!("{name} {:.1}", *bytes as f64 / n as f64))
        .collect();
    println!("bytes_breakdown={}", breakdown.join(", "));
    let rollups: Vec<String> = rollup_rows
        .iter()
        .map(|(t, c)| format!("{t} {c}"))
        .collect();
    println!("rows={}", rollups.join(", "));
    let (statements, statement_breakdown) = writer_statements(&events, batch);
    println!("writer_statements_per_event={statements:.2}");
    println!("writer_statements_breakdown={statement_breakdown}");
    Ok(())
}

// ---------------------------------------------------------------------------------------
// generate
// ---------------------------------------------------------------------------------------

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Writes events `0..count` of `traffic` through the writer path in batches; stops early
/// (returning how many it wrote) once `stop_after` has passed. Returns (written, seconds
/// in `write_batch`).
fn write_traffic(
    conn: &mut Connection,
    store: &mut EventStore,
    traffic: &mut Traffic,
    count: u64,
    batch: usize,
    stop_after: Option<Duration>,
    progress: bool,
) -> Res<(u64, f64)> {
    let started = Instant::now();
    let mut in_write = Duration::ZERO;
    let mut buf: Vec<Event> = Vec::with_capacity(batch);
    let mut written = 0u64;
    let mut next_report = count / 10;
    while written < count {
        buf.clear();
        let upto = (written + batch as u64).min(count);
        buf.extend((written..upto).map(|i| traffic.event(i)));
        let t = Instant::now();
        store
            .write_batch(conn, &buf)
            .map_err(|e| format!("write_batch: {e}"))?;
        in_write += t.elapsed();
        written = upto;
        if progress && written >= next_report && written < count {
            let secs = started.elapsed().as_secs_f64();
            eprintln!(
                "  {written} events in {secs:.1} s ({:.0}/s)",
                written as f64 / secs
            );
            next_report += count / 10;
        }
        if stop_after.is_some_and(|limit| started.elapsed() > limit) {
            break;
        }
    }
    Ok((written, in_write.as_secs_f64()))
}

fn generate(dir: &Path, target: u64, days: i64, budget: f64) -> Res<()> {
    if target == 0 || days <= 0 {
        return Err("EVENTS and DAYS must be positive".into());
    }
    let batch: usize = env_or("ANALYTICS_BENCH_GEN_BATCH", 10_000).max(1);
    let end: i64 = env_or("ANALYTICS_BENCH_END", now_secs());
    let span = days * DAY;
    let start = end - span;
    let mut events = target;
    let mut reduced = false;

    if budget > 0.0 {
        // A sample of the same density (events per day), so per-batch roll-up work matches.
        let sample = target.min(300_000);
        let sample_span = ((span as f64) * sample as f64 / target as f64).max(HOUR as f64) as i64;
        let calib_dir = PathBuf::from(format!("{}-calibration", dir.display()));
        let mut conn = open_fresh(&calib_dir)?;
        let mut store = EventStore::new();
        let mut traffic = Traffic::new(sample, start, sample_span);
        let t = Instant::now();
        write_traffic(
            &mut conn,
            &mut store,
            &mut traffic,
            sample,
            batch,
            None,
            false,
        )?;
        let rate = sample as f64 / t.elapsed().as_secs_f64();
        drop(conn);
        let _ = std::fs::remove_dir_all(&calib_dir);
        // 10 % for a bigger file and more roll-up rows at the full size.
        let projected = target as f64 / rate * 1.1;
        println!("calibration_events={sample}");
        println!("calibration_eps={rate:.0}");
        println!("projected_secs={projected:.0}");
        eprintln!(
            "analytics_writer generate: calibration {sample} events at {rate:.0}/s; {target} \
             events projected at {projected:.0} s (budget {budget:.0} s)"
        );
        if projected > budget {
            let fit = (rate * budget / 1.1) as u64;
            events = (fit / 100_000 * 100_000).max(100_000).min(target);
            reduced = events < target;
        }
    }

    eprintln!(
        "analytics_writer generate: {events} events over {days} days ending at {end} into {}, \
         batches of {batch}",
        db::db_path(dir).display()
    );
    let mut conn = open_fresh(dir)?;
    let mut store = EventStore::new();
    let mut traffic = Traffic::new(events, start, span);
    let started = Instant::now();
    let stop_after = (budget > 0.0).then(|| Duration::from_secs_f64(budget * 1.5));
    let (written, write_secs) = write_traffic(
        &mut conn,
        &mut store,
        &mut traffic,
        events,
        batch,
        stop_after,
        true,
    )?;
    let secs = started.elapsed().as_secs_f64();
    let last_ts = traffic.start
        + (i128::from(written.saturating_sub(1)) * i128::from(span) / i128::from(events)) as i64;
    let bytes = db_bytes(&conn)?;
    let count = |table: &str| int(&conn, &format!("SELECT count(*) FROM {table}"));
    println!("target_events={target}");
    println!("events={written}");
    println!("reduced={}", u8::from(reduced));
    println!("stopped_early={}", u8::from(written < events));
    println!("batch={batch}");
    println!("days={days}");
    println!("from_ts={start}");
    println!("to_ts={end}");
    println!("last_event_ts={last_ts}");
    println!("seconds={secs:.1}");
    println!("write_seconds={write_secs:.1}");
    println!("eps={:.0}", written as f64 / secs);
    println!("db_bytes={bytes}");
    println!(
        "bytes_per_event={:.1}",
        bytes as f64 / written.max(1) as f64
    );
    println!("rows_events={}", count("events")?);
    println!("rows_rollup_hourly={}", count("rollup_hourly")?);
    println!("rows_rollup_hourly_dims={}", count("rollup_hourly_dims")?);
    println!("rows_rollup_daily_dims={}", count("rollup_daily_dims")?);
    println!("rows_rollup_monthly_dims={}", count("rollup_monthly_dims")?);
    println!("rows_visitors_daily={}", count("visitors_daily")?);
    println!("busiest_site={}", SITES[2]);
    eprintln!(
        "analytics_writer generate: {written} events in {secs:.1} s ({:.0}/s; {write_secs:.1} s in \
         write_batch), {bytes} bytes",
        written as f64 / secs
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------
// fill-rollups
// ---------------------------------------------------------------------------------------

fn fill_rollups(dir: &Path) -> Res<()> {
    let end: i64 = env_or("ANALYTICS_BENCH_END", now_secs());
    let conn = open_fresh(dir)?;
    let started = Instant::now();
    // The 8,760 hours and 365 days that end with the current one.
    let h0 = end.div_euclid(HOUR) - 8_759;
    let d0 = end.div_euclid(DAY) - 364;
    conn.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 200)
         INSERT INTO strings (id, kind, value)
             SELECT x, 1, 'site' || x || '.example' FROM n WHERE x <= 3
             UNION ALL SELECT 100 + x, 2, '/path/' || x FROM n
             UNION ALL SELECT 400 + x, 3, 'ref' || x || '.example' FROM n WHERE x <= 50
             UNION ALL SELECT 500 + x, 4, 'type' || x FROM n WHERE x <= 5
             UNION ALL SELECT 600 + x, 5, 'tag' || x FROM n WHERE x <= 20;
         WITH RECURSIVE h(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM h WHERE x < 8759),
             d(x) AS (VALUES (1), (2), (3))
         INSERT INTO rollup_hourly SELECT d.x, {h0} + h.x, 380, 300, 40 FROM d, h;
         WITH RECURSIVE h(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM h WHERE x < 8759),
             k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < 149),
             d(x) AS (VALUES (1), (2), (3)),
             dims(dim, n, base, modulo) AS (VALUES (1, 150, 100, 200), (2, 40, 400, 50),
                 (3, 5, 500, 5), (4, 10, 600, 20), (5, 5, 100, 10))
         INSERT INTO rollup_hourly_dims
             SELECT d.x, dims.dim, {h0} + h.x, dims.base + 1 + (h.x * 7 + k.x) % dims.modulo,
                 1 + (h.x + k.x) % 9
             FROM d, dims, h, k WHERE k.x < dims.n
             ORDER BY 1, 2, 3, 4;
         WITH RECURSIVE y(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM y WHERE x < 364),
             k(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM k WHERE x < 199),
             d(x) AS (VALUES (1), (2), (3)),
             dims(dim, n, base) AS (VALUES (1, 200, 100), (2, 50, 400), (3, 5, 500),
                 (4, 20, 600), (5, 10, 100))
         INSERT INTO rollup_daily_dims
             SELECT d.x, dims.dim, {d0} + y.x, dims.base + 1 + k.x, 1 + (y.x * 13 + k.x) % 97
             FROM d, dims, y, k WHERE k.x < dims.n;
         INSERT INTO rollup_monthly_dims
             SELECT domain, dim,
                 (CAST(strftime('%Y', day * 86400, 'unixepoch') AS INTEGER) - 1970) * 12
                     + CAST(strftime('%m', day * 86400, 'unixepoch') AS INTEGER) - 1,
                 key, sum(count)
             FROM rollup_daily_dims GROUP BY 1, 2, 3, 4;
         COMMIT;"
    ))
    .map_err(|e| format!("filling the roll-ups: {e}"))?;
    let secs = started.elapsed().as_secs_f64();
    let bytes = db_bytes(&conn)?;
    let count = |table: &str| int(&conn, &format!("SELECT count(*) FROM {table}"));
    let events = int(&conn, "SELECT sum(events) FROM rollup_hourly")?;
    println!("events_represented={events}");
    println!("from_ts={}", end - 365 * DAY);
    println!("to_ts={end}");
    println!("seconds={secs:.1}");
    println!("db_bytes={bytes}");
    println!("rows_rollup_hourly={}", count("rollup_hourly")?);
    println!("rows_rollup_hourly_dims={}", count("rollup_hourly_dims")?);
    println!("rows_rollup_daily_dims={}", count("rollup_daily_dims")?);
    println!("rows_rollup_monthly_dims={}", count("rollup_monthly_dims")?);
    println!("busiest_site=site2.example");
    eprintln!(
        "analytics_writer fill-rollups: {events} events' worth of roll-ups in {secs:.1} s, \
         {bytes} bytes"
    );
    Ok(())
}
