//! The analytics path inside the writer: batching by size and by time, drops on a full
//! channel, draining at stop, retries of failed batches, and fairness with write jobs
//! (DESIGN §1, §4, §6, D2).

use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use fazt::analytics::event::{Event, Source};
use fazt::db::events::{BatchPolicy, EventPipeline, EventQueue, EventSink, EVENT_STATS};
use fazt::db::writer::{self, WriterHandle, WriterThread};
use fazt::db::{self, DbError};
use fazt::platform::disk::DiskError;
use fazt::platform::reserve::Reserve;
use rusqlite::Connection;

use crate::common::{probe_limits, TempDir, MEMORY_LIMIT_256_MIB};

fn event(i: usize) -> Event {
    Event {
        ts: 1_700_000_000 + i as i64,
        domain: "blog.example".to_string(),
        path: Some(format!("/post/{i}")),
        kind: "pageview".to_string(),
        referrer: None,
        visitor: i as u64,
        source: Source::Track,
        tags: Vec::new(),
        query: None,
        utm: Default::default(),
    }
}

/// Writes each batch into `test_events` in one transaction.
struct TableSink;

impl EventSink<Event> for TableSink {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        let tx = conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO test_events (ts, domain, path, visitor) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for e in batch {
                stmt.execute(rusqlite::params![e.ts, e.domain, e.path, e.visitor as i64])?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

/// Fails its first `fail_first` attempts (all of them with `u32::MAX`), then writes.
struct FlakySink {
    fail_first: u32,
    attempts: Arc<AtomicU32>,
}

impl EventSink<Event> for FlakySink {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        let n = self.attempts.fetch_add(1, Ordering::SeqCst) + 1;
        if n <= self.fail_first {
            // Half-written first, to prove the attempt leaves nothing behind.
            let tx = conn.transaction()?;
            tx.execute(
                "INSERT INTO test_events (ts, domain, path, visitor) VALUES (0, 'x', NULL, 0)",
                [],
            )?;
            return Err(DbError::from(DiskError::Full {
                path: "/data".into(),
                used_percent: 95,
                threshold: 90,
            }));
        }
        TableSink.write_batch(conn, batch)
    }
}

/// Tells the test it has entered `write_batch`, then waits for the gate to open.
struct BlockingSink {
    entered: Sender<usize>,
    gate: Receiver<()>,
}

impl EventSink<Event> for BlockingSink {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        let _ = self.entered.send(batch.len());
        // Err: the test dropped the gate's sender, i.e. opened it for good.
        let _ = self.gate.recv();
        TableSink.write_batch(conn, batch)
    }
}

/// Sleeps in every commit, like a slow disk.
struct SlowSink(Duration);

impl EventSink<Event> for SlowSink {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        thread::sleep(self.0);
        TableSink.write_batch(conn, batch)
    }
}

struct Writer {
    dir: TempDir,
    handle: WriterHandle,
    queue: EventQueue<Event>,
    thread: WriterThread,
}

fn start(
    tag: &str,
    capacity: usize,
    policy: BatchPolicy,
    sink: Box<dyn EventSink<Event>>,
) -> Writer {
    start_with(tag, capacity, policy, sink, |_| None)
}

/// [`start`] with a disk reserve made for the writer's data dir.
fn start_with(
    tag: &str,
    capacity: usize,
    policy: BatchPolicy,
    sink: Box<dyn EventSink<Event>>,
    reserve: impl FnOnce(&Path) -> Option<Arc<Reserve>>,
) -> Writer {
    let dir = TempDir::new(tag);
    let reserve = reserve(dir.path());
    let conn = db::open_and_migrate(&dir.db(), &probe_limits(&dir.0, &[MEMORY_LIMIT_256_MIB]))
        .expect("open_and_migrate");
    conn.execute_batch(
        "CREATE TABLE test_events (ts INTEGER NOT NULL, domain TEXT NOT NULL, path TEXT, \
         visitor INTEGER NOT NULL)",
    )
    .expect("create table");
    let (handle, queue, thread) = writer::spawn_with_events(
        conn,
        16,
        EventPipeline {
            capacity,
            policy,
            sink,
            reserve,
        },
    )
    .expect("spawn");
    Writer {
        dir,
        handle,
        queue,
        thread,
    }
}

/// Rows committed so far, read through a separate connection (a WAL snapshot).
fn rows(path: &Path) -> i64 {
    let conn = Connection::open(path).expect("open reader");
    conn.query_row("SELECT count(*) FROM test_events", [], |r| r.get(0))
        .expect("count")
}

/// Polls `rows` until it reaches `want` or `within` passes; returns when it got there.
fn wait_for_rows(path: &Path, want: i64, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < within {
        if rows(path) >= want {
            return Some(started.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
    None
}

#[test]
fn a_batch_closes_at_max_events() {
    let policy = BatchPolicy {
        max_events: 10,
        max_delay: Duration::from_secs(10),
    };
    let w = start("max-events", 1024, policy, Box::new(TableSink));
    for i in 0..25 {
        assert!(w.queue.try_record(event(i)));
    }
    let took = wait_for_rows(&w.dir.db(), 20, Duration::from_secs(3));
    assert!(took.is_some(), "two full batches commit promptly");
    thread::sleep(Duration::from_millis(200));
    assert_eq!(
        rows(&w.dir.db()),
        20,
        "the last 5 wait for max_delay, never a batch above 10"
    );
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!(rows(&w.dir.db()), 25, "stop commits the partial batch");
    assert_eq!(report.events_committed, 25);
    assert_eq!(report.event_batches, 3);
    assert!(report.all_written());
    assert_eq!(
        report.checkpoint,
        fazt::db::writer::FinalCheckpoint::Complete
    );
}

#[test]
fn a_batch_closes_at_max_delay() {
    let policy = BatchPolicy {
        max_events: 1000,
        max_delay: Duration::from_millis(100),
    };
    let w = start("max-delay", 1024, policy, Box::new(TableSink));
    let recorded = Instant::now();
    assert!(w.queue.try_record(event(1)));
    wait_for_rows(&w.dir.db(), 1, Duration::from_secs(2)).expect("committed");
    let took = recorded.elapsed();
    assert!(
        took >= Duration::from_millis(90),
        "committed before max_delay: {took:?}"
    );
    assert!(
        took <= Duration::from_millis(600),
        "the loss window must stay well under a second: {took:?}"
    );
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!((report.events_committed, report.event_batches), (1, 1));
}

#[test]
fn a_full_channel_drops_and_counts_without_blocking() {
    let (entered_tx, entered_rx) = crossbeam_channel::unbounded();
    let (gate_tx, gate_rx) = crossbeam_channel::unbounded::<()>();
    let policy = BatchPolicy {
        max_events: 1,
        max_delay: Duration::from_secs(10),
    };
    let sink = BlockingSink {
        entered: entered_tx,
        gate: gate_rx,
    };
    let w = start("full", 2, policy, Box::new(sink));
    assert_eq!(w.queue.capacity(), 2);
    assert!(w.queue.try_record(event(0)));
    // The writer holds event 0 inside the blocked sink; the channel is empty again.
    entered_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("the sink was entered");
    assert!(w.queue.try_record(event(1)));
    assert!(w.queue.try_record(event(2)));
    assert_eq!(w.queue.len(), 2);
    let full_before = EVENT_STATS.dropped_full.get();
    let started = Instant::now();
    let mut refused = 0;
    for i in 3..103 {
        if !w.queue.try_record(event(i)) {
            refused += 1;
        }
    }
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "try_record must never block"
    );
    assert_eq!(refused, 100);
    assert!(EVENT_STATS.dropped_full.get() >= full_before + 100);
    // The request threads are unaffected; the writer catches up once the sink returns.
    drop(gate_tx);
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!(rows(&w.dir.db()), 3, "every accepted event was committed");
    assert_eq!(report.events_committed, 3);
    assert!(report.all_written());
    // After stop the queue refuses, counted as "stopped".
    let stopped_before = EVENT_STATS.dropped_stopped.get();
    assert!(w.queue.is_closed());
    assert!(!w.queue.try_record(event(999)));
    assert!(EVENT_STATS.dropped_stopped.get() > stopped_before);
}

#[test]
fn stop_drains_every_accepted_event() {
    let w = start(
        "drain",
        16 * 1024,
        BatchPolicy::default(),
        Box::new(TableSink),
    );
    for i in 0..10_000 {
        assert!(w.queue.try_record(event(i)), "event {i} refused");
    }
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!(rows(&w.dir.db()), 10_000);
    assert_eq!(report.events_committed, 10_000);
    assert_eq!(report.unwritten, 0);
    assert!(report.all_written());
    assert_eq!(
        report.checkpoint,
        fazt::db::writer::FinalCheckpoint::Complete
    );
}

#[test]
fn stop_drains_events_recorded_by_racing_threads() {
    let w = start(
        "race",
        64 * 1024,
        BatchPolicy {
            max_events: 100,
            max_delay: Duration::from_millis(20),
        },
        Box::new(TableSink),
    );
    let accepted = Arc::new(AtomicUsize::new(0));
    let recorders: Vec<_> = (0..4)
        .map(|t| {
            let queue = w.queue.clone();
            let accepted = Arc::clone(&accepted);
            thread::spawn(move || {
                for i in 0..5_000 {
                    if queue.try_record(event(t * 10_000 + i)) {
                        accepted.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    while accepted.load(Ordering::SeqCst) < 100 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "recorders started"
        );
        thread::yield_now();
    }
    // Stop while the recorders are still sending: whatever was accepted must be written.
    w.handle.stop();
    for r in recorders {
        r.join().expect("recorder");
    }
    let report = w.thread.join().expect("join");
    let accepted = accepted.load(Ordering::SeqCst) as i64;
    assert!(accepted > 0);
    assert_eq!(rows(&w.dir.db()), accepted);
    assert_eq!(report.events_committed as i64, accepted);
    assert!(report.all_written());
}

#[test]
fn a_failing_batch_is_retried_until_it_commits() {
    let attempts = Arc::new(AtomicU32::new(0));
    let sink = FlakySink {
        fail_first: 3,
        attempts: Arc::clone(&attempts),
    };
    let policy = BatchPolicy {
        max_events: 100,
        max_delay: Duration::from_millis(20),
    };
    let failures_before = EVENT_STATS.batch_failures.get();
    let w = start("flaky", 1024, policy, Box::new(sink));
    for i in 0..50 {
        assert!(w.queue.try_record(event(i)));
    }
    // Backoff 50 + 100 + 200 ms, then the fourth attempt commits.
    let took = wait_for_rows(&w.dir.db(), 50, Duration::from_secs(5));
    assert!(
        took.is_some(),
        "the events were committed after the failures"
    );
    assert!(EVENT_STATS.batch_failures.get() >= failures_before + 3);
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!(rows(&w.dir.db()), 50, "failed attempts left nothing behind");
    assert_eq!(report.event_batch_failures, 3);
    assert_eq!(report.events_committed, 50);
    assert!(report.all_written());
}

#[test]
fn events_that_never_commit_are_counted_as_unwritten_and_jobs_still_run() {
    let attempts = Arc::new(AtomicU32::new(0));
    let sink = FlakySink {
        fail_first: u32::MAX,
        attempts: Arc::clone(&attempts),
    };
    let policy = BatchPolicy {
        max_events: 100,
        max_delay: Duration::from_millis(10),
    };
    let unwritten_before = EVENT_STATS.unwritten.get();
    let w = start("dead", 1024, policy, Box::new(sink));
    for i in 0..250 {
        assert!(w.queue.try_record(event(i)));
    }
    let started = Instant::now();
    while attempts.load(Ordering::SeqCst) < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the batch is retried"
        );
        thread::sleep(Duration::from_millis(5));
    }
    // Jobs keep running while the batch waits for its retry.
    for i in 0..20 {
        let asked = Instant::now();
        let n = w
            .handle
            .call(move |conn| {
                conn.execute(
                    "INSERT INTO test_events (ts, domain, path, visitor) VALUES (?1, 'job', NULL, 0)",
                    [i],
                )?;
                Ok(1)
            })
            .expect("job");
        assert_eq!(n, 1);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "a job waited {:?} behind a failing batch",
            asked.elapsed()
        );
    }
    w.handle.stop();
    let stopping = Instant::now();
    let report = w.thread.join().expect("join");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown retries are bounded: {:?}",
        stopping.elapsed()
    );
    assert_eq!(report.unwritten, 250);
    assert!(!report.all_written());
    assert_eq!(report.events_committed, 0);
    assert_eq!(report.jobs_done, 20);
    assert!(EVENT_STATS.unwritten.get() >= unwritten_before + 250);
    assert!(
        report.to_string().contains("250 accepted writes"),
        "{report}"
    );
    assert_eq!(rows(&w.dir.db()), 20, "only the jobs' rows");
}

#[test]
fn jobs_are_not_starved_by_a_steady_event_flow() {
    let policy = BatchPolicy {
        max_events: 100,
        max_delay: Duration::from_millis(50),
    };
    let w = start(
        "fair",
        4096,
        policy,
        Box::new(SlowSink(Duration::from_millis(5))),
    );
    let stop_flow = Arc::new(AtomicU32::new(0));
    let recorder = {
        let queue = w.queue.clone();
        let stop_flow = Arc::clone(&stop_flow);
        thread::spawn(move || {
            let mut accepted = 0u64;
            let mut i = 0;
            while stop_flow.load(Ordering::SeqCst) == 0 {
                for _ in 0..50 {
                    if queue.try_record(event(i)) {
                        accepted += 1;
                    }
                    i += 1;
                }
                thread::sleep(Duration::from_millis(1));
            }
            accepted
        })
    };
    thread::sleep(Duration::from_millis(50));
    let mut slowest = Duration::ZERO;
    for _ in 0..30 {
        let asked = Instant::now();
        w.handle
            .call(|conn| {
                Ok(conn.query_row("SELECT count(*) FROM test_events", [], |r| {
                    r.get::<_, i64>(0)
                })?)
            })
            .expect("job");
        slowest = slowest.max(asked.elapsed());
        thread::sleep(Duration::from_millis(10));
    }
    stop_flow.store(1, Ordering::SeqCst);
    let accepted = recorder.join().expect("recorder");
    assert!(
        slowest < Duration::from_millis(500),
        "a job waited {slowest:?} behind events"
    );
    // Events were not starved by the jobs either: they are committing as they flow.
    assert!(rows(&w.dir.db()) > 0);
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!(report.events_committed, accepted);
    assert_eq!(rows(&w.dir.db()), accepted as i64);
    assert!(report.all_written());
}

#[test]
fn plain_spawn_still_works_without_events() {
    let dir = TempDir::new("plain");
    let conn = db::open_and_migrate(&dir.db(), &probe_limits(&dir.0, &[MEMORY_LIMIT_256_MIB]))
        .expect("open");
    let (handle, thread) = writer::spawn(conn, 4).expect("spawn");
    let v = handle.call(|_| Ok(7)).expect("job");
    assert_eq!(v, 7);
    handle.stop();
    let report = thread.join().expect("join");
    assert_eq!(report.jobs_done, 1);
    assert_eq!(report.event_batches, 0);
    assert!(report.all_written());
}

/// SQLITE_FULL, as SQLite reports a write that could not grow the database or the WAL.
fn sqlite_full() -> DbError {
    DbError::Sqlite {
        context: "committing".into(),
        source: rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            None,
        ),
    }
}

/// Fails with SQLITE_FULL while `full` is set.
struct FullDiskSink {
    full: Arc<std::sync::atomic::AtomicBool>,
    attempts: Arc<AtomicU32>,
}

impl EventSink<Event> for FullDiskSink {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.full.load(Ordering::SeqCst) {
            return Err(sqlite_full());
        }
        TableSink.write_batch(conn, batch)
    }
}

#[test]
fn an_unwritable_database_refuses_events_until_a_commit_succeeds() {
    let full = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attempts = Arc::new(AtomicU32::new(0));
    let sink = FullDiskSink {
        full: Arc::clone(&full),
        attempts: Arc::clone(&attempts),
    };
    let policy = BatchPolicy {
        max_events: 100,
        max_delay: Duration::from_millis(10),
    };
    let w = start("unwritable", 1024, policy, Box::new(sink));
    assert!(w.queue.try_record(event(0)), "accepted before any failure");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !w.queue.is_unwritable() {
        assert!(
            Instant::now() < deadline,
            "the failed commit marks the queue"
        );
        thread::sleep(Duration::from_millis(5));
    }
    let before = EVENT_STATS.dropped_unwritable.get();
    assert!(
        !w.queue.try_record(event(1)),
        "not acknowledged: it could not commit"
    );
    assert!(EVENT_STATS.dropped_unwritable.get() > before);
    assert_eq!(w.queue.retry_after_secs(), 10);
    // Space again: the held event commits on its retry and events are taken again.
    full.store(false, Ordering::SeqCst);
    assert!(wait_for_rows(&w.dir.db(), 1, Duration::from_secs(10)).is_some());
    assert!(!w.queue.is_unwritable());
    assert!(w.queue.try_record(event(2)));
    w.handle.stop();
    let report = w.thread.join().expect("join");
    assert_eq!(rows(&w.dir.db()), 2);
    assert!(report.all_written());
    assert!(attempts.load(Ordering::SeqCst) >= 2);
}

/// Fails with SQLITE_FULL until the reserve file is gone, like a disk whose last free
/// space is the reserve.
struct ReserveSink {
    reserve: std::path::PathBuf,
}

impl EventSink<Event> for ReserveSink {
    fn write_batch(&mut self, conn: &mut Connection, batch: &[Event]) -> Result<(), DbError> {
        if self.reserve.exists() {
            return Err(sqlite_full());
        }
        TableSink.write_batch(conn, batch)
    }
}

#[test]
fn a_full_disk_releases_the_reserve_and_commits_at_once() {
    let policy = BatchPolicy {
        max_events: 100,
        max_delay: Duration::from_millis(10),
    };
    // The reserve sits in a directory of its own: the sink only looks at whether it exists.
    let made = TempDir::new("reserve-data");
    let reserve = Arc::new(Reserve::new(made.path(), 64 * 1024));
    assert!(reserve.ensure());
    let reserve_path = reserve.path().to_path_buf();
    let sink = ReserveSink {
        reserve: reserve_path.clone(),
    };
    let w = start_with("reserve", 1024, policy, Box::new(sink), |_| {
        Some(Arc::clone(&reserve))
    });
    let failures = EVENT_STATS.batch_failures.get();
    let started = Instant::now();
    assert!(w.queue.try_record(event(0)));
    let took = wait_for_rows(&w.dir.db(), 1, Duration::from_secs(5)).expect("committed");
    // Released and retried in the same attempt: no backoff wait.
    assert!(took < Duration::from_secs(1), "{took:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(EVENT_STATS.batch_failures.get() > failures);
    assert!(!reserve.is_present());
    assert!(!reserve_path.exists());
    w.handle.stop();
    assert!(w.thread.join().expect("join").all_written());
}

#[test]
fn stop_now_interrupts_the_job_drops_the_queued_ones_and_commits_the_events() {
    let policy = BatchPolicy {
        max_events: 10_000,
        max_delay: Duration::from_secs(30),
    };
    let w = start("stop-now", 1024, policy, Box::new(TableSink));
    for i in 0..50 {
        assert!(w.queue.try_record(event(i)));
    }
    let (running_tx, running) = crossbeam_channel::bounded(1);
    let long = w
        .handle
        .try_submit(move |conn| {
            let _ = running_tx.send(());
            // Minutes of work unless interrupted.
            let n: i64 = conn.query_row(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c \
                 WHERE x < 10000000000) SELECT count(*) FROM c",
                [],
                |r| r.get(0),
            )?;
            Ok(n)
        })
        .expect("submit");
    let queued: Vec<_> = (0..3)
        .map(|_| w.handle.try_submit(|_| Ok(())).expect("submit"))
        .collect();
    running
        .recv_timeout(Duration::from_secs(5))
        .expect("the long job runs");
    let started = Instant::now();
    w.handle.stop_now();
    let report = w.thread.join().expect("join");
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(long.recv().expect("answered").is_err(), "interrupted");
    for rx in queued {
        assert!(
            matches!(rx.recv(), Ok(Err(DbError::WriterStopped))),
            "queued jobs are dropped and their submitters told"
        );
    }
    assert_eq!(rows(&w.dir.db()), 50, "every accepted event is committed");
    assert!(report.all_written());
}
