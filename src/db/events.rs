//! The buffered analytics path inside the writer (DESIGN §1, §4, §6, D2).
//!
//! Request handlers build an event (of any type; the analytics layer's `Event`) and hand it to [`EventQueue::try_record`], which
//! `try_send`s it on a bounded channel and never waits on the database. The writer thread
//! collects events into a batch and gives the batch to an [`EventSink`], which commits it
//! in one transaction (raw rows and roll-ups together).
//!
//! Invariants:
//! - Recording never blocks, and an event is acknowledged only once it is queued for a
//!   commit: `try_record` refuses (false, counted in `fazt_events_dropped_total{reason}`)
//!   when the channel is full (`queue_full`), the writer has stopped (`stopped`), or the
//!   last commit failed because the database cannot take writes (`unwritable`: out of
//!   space or an I/O error, until a commit succeeds again). Callers that acknowledge
//!   events (`/track`, `/pixel.gif`, webhooks) answer a refusal with 503 + `Retry-After`.
//! - A batch that fails for lack of space deletes the disk reserve (if there is one) and
//!   is tried again at once, so events already acknowledged commit on a full disk; the
//!   reserve is re-created after a later commit, once the disk has room for it.
//! - A batch closes at [`BatchPolicy::max_events`] events or [`BatchPolicy::max_delay`]
//!   after its first event reached the writer, whichever comes first.
//! - An event accepted by `try_record` is committed, or counted in
//!   [`super::writer::WriterReport::unwritten`] and logged: never discarded silently. A
//!   failed batch is kept and retried with exponential backoff; while it waits, new events
//!   stay in the channel (which may fill, and then drops are counted upstream) and write
//!   jobs keep running.
//! - At stop the channel is closed first (later events count as dropped, "stopped"), every
//!   event still in it is committed in batches, and a batch that still fails after a
//!   bounded number of attempts is counted as unwritten, so the process exits non-zero.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};
use rusqlite::Connection;

use super::writer::{close_open_transaction, WriterReport};
use super::DbError;
use crate::platform::metrics::{Counter, Histogram};
use crate::platform::reserve::Reserve;

// The metrics registry, which describes and renders the counters at the end of this file.
use crate::platform::metrics::Kind::{Counter as C, Gauge as G, Histogram as H};
use crate::platform::metrics::{Collector, Desc, Source, LATENCY_BUCKETS};

/// Commits batches of events for the writer thread. Implemented by the analytics store.
///
/// Contract: `write_batch` runs on the writer thread with the only write connection. It
/// opens its own transaction (`conn.transaction()`), writes every event of the batch and
/// its roll-ups, and commits. `Err` means the whole batch was rolled back (a transaction
/// left open is rolled back by the writer and the attempt counts as failed); the writer
/// then retries the *same* batch later, so one attempt must leave nothing behind. Check
/// the disk breaker here (return [`DbError::Disk`]) rather than failing half-way.
/// Bad input in a single event should be clamped or skipped, not returned as `Err`: a
/// batch that can never commit holds back every later event until shutdown.
pub trait EventSink<E>: Send {
    /// Commits one batch (its own transaction, rollups included). Err → the whole batch
    /// was rolled back.
    fn write_batch(&mut self, conn: &mut Connection, batch: &[E]) -> Result<(), DbError>;
}

/// Events per transaction at most, by default. A batch takes whatever is queued, so this
/// only matters under load, where bigger batches are cheaper per event: the roll-up rows
/// of a batch are one per distinct (site, dimension, hour/day/month, value), and those
/// repeat far more within 10,000 events than within 1,000 (`benches/analytics_writer.rs`:
/// writer throughput +30 % over 1,000 on 30 days of traffic, while a bare insert gains
/// nothing past 1,000). Such a batch is a few MiB of RAM and a commit of tens of
/// milliseconds, short enough for the write jobs queued behind it and the loss window.
pub const DEFAULT_MAX_EVENTS: usize = 10_000;

/// The longest an event waits in a batch before its commit starts. The loss window on
/// SIGKILL is this plus one commit (plus any write job running ahead of it): under a
/// second, as the README promises. Short enough to be invisible on a dashboard, long
/// enough that a trickle of events still shares transactions.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(250);

/// First wait after a batch fails while the server runs; it doubles on each failure.
pub const RETRY_BACKOFF_START: Duration = Duration::from_millis(50);
/// The longest wait between two attempts at a failing batch while the server runs
/// (one log line per attempt, so at most one every 5 s while the disk stays full).
pub const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);
/// Attempts per batch at shutdown before its events are counted as unwritten.
pub const STOP_ATTEMPTS: u32 = 5;
/// First wait between attempts at shutdown; it doubles: 150+300+600+1200 ms = 2.25 s.
pub const STOP_BACKOFF_START: Duration = Duration::from_millis(150);
/// Total time shutdown spends waiting to retry failed batches. After it, each remaining
/// batch still gets one attempt, so a transient error costs nothing and a dead disk
/// cannot hold shutdown past a service manager's stop timeout.
pub const STOP_RETRY_BUDGET: Duration = Duration::from_secs(3);
/// The retry budget after a second signal ("stop now"): the whole stop stays near 1 s.
pub const HURRIED_RETRY_BUDGET: Duration = Duration::from_millis(500);
/// `Retry-After` for an event refused while the database cannot take writes: freeing
/// space takes an operator, not a moment.
pub const UNWRITABLE_RETRY_AFTER: u32 = 10;

/// When the writer closes a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchPolicy {
    /// Commit as soon as the batch holds this many events (at least 1).
    pub max_events: usize,
    /// Commit once this much time has passed since the batch's first event reached the
    /// writer, however few events it holds.
    pub max_delay: Duration,
}

impl Default for BatchPolicy {
    /// [`DEFAULT_MAX_EVENTS`] events or [`DEFAULT_MAX_DELAY`], whichever comes first.
    fn default() -> Self {
        BatchPolicy {
            max_events: DEFAULT_MAX_EVENTS,
            max_delay: DEFAULT_MAX_DELAY,
        }
    }
}

/// Everything the writer needs to run the analytics path; see
/// [`super::writer::spawn_with_events`].
pub struct EventPipeline<E> {
    /// Events the channel holds (the probe's `event_channel_capacity`; at least 1).
    pub capacity: usize,
    pub policy: BatchPolicy,
    pub sink: Box<dyn EventSink<E>>,
    /// Released when a batch fails for lack of space, so acknowledged events commit.
    pub reserve: Option<Arc<Reserve>>,
}

/// Lets the writer close the event channel and wait for senders that are mid-send, so an
/// event is either refused or drained: never accepted and then left behind.
pub(super) struct Gate {
    closed: AtomicBool,
    in_flight: AtomicUsize,
    /// The last commit attempt failed because the database cannot take writes.
    unwritable: AtomicBool,
}

impl Gate {
    pub(super) fn new() -> Gate {
        Gate {
            closed: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            unwritable: AtomicBool::new(false),
        }
    }

    /// Refuses every later `try_record`. Idempotent.
    pub(super) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
    }

    /// Waits until no `try_record` is between its `closed` check and the end of its send.
    fn wait_idle(&self) {
        while self.in_flight.load(Ordering::SeqCst) != 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// The sending side of the event channel, cloned into every request thread.
///
/// The channel itself is unbounded and the bound is enforced here, by its length: a
/// bounded crossbeam channel allocates and touches every slot up front, which for the
/// probe's capacity on a large host (a million events) was 160 MiB of resident memory at
/// idle. This way memory follows the events actually waiting. Concurrent senders can
/// overshoot the bound by at most one event each.
pub struct EventQueue<E> {
    tx: Sender<E>,
    gate: Arc<Gate>,
    capacity: usize,
}

// Not derived: a derive would require `E: Clone`, and events are only ever moved.
impl<E> Clone for EventQueue<E> {
    fn clone(&self) -> Self {
        EventQueue {
            tx: self.tx.clone(),
            gate: Arc::clone(&self.gate),
            capacity: self.capacity,
        }
    }
}

impl<E> EventQueue<E> {
    pub(super) fn new(tx: Sender<E>, gate: Arc<Gate>, capacity: usize) -> EventQueue<E> {
        EventQueue {
            tx,
            gate,
            capacity: capacity.max(1),
        }
    }

    /// A queue not connected to a writer: whoever holds the receiver gets the events. For
    /// tests of the handlers that record events.
    pub fn detached(capacity: usize) -> (EventQueue<E>, Receiver<E>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (EventQueue::new(tx, Arc::new(Gate::new()), capacity), rx)
    }

    /// Queues `event` for the writer. Never blocks. `false`: it was refused (and counted)
    /// because the channel is full, the writer has stopped or the database cannot take
    /// writes now; the event must not be acknowledged (see [`EventQueue::retry_after_secs`]).
    pub fn try_record(&self, event: E) -> bool {
        let gate = &self.gate;
        gate.in_flight.fetch_add(1, Ordering::SeqCst);
        let accepted = if gate.closed.load(Ordering::SeqCst) {
            EVENT_STATS.dropped_stopped.inc();
            false
        } else if gate.unwritable.load(Ordering::SeqCst) {
            EVENT_STATS.dropped_unwritable.inc();
            false
        } else if self.tx.len() >= self.capacity {
            EVENT_STATS.dropped_full.inc();
            false
        } else {
            match self.tx.try_send(event) {
                Ok(()) => {
                    // Inside the in-flight window, so the count is in before the final drain.
                    EVENT_STATS.accepted.inc();
                    true
                }
                Err(TrySendError::Full(_)) => {
                    EVENT_STATS.dropped_full.inc();
                    false
                }
                Err(TrySendError::Disconnected(_)) => {
                    EVENT_STATS.dropped_stopped.inc();
                    false
                }
            }
        };
        gate.in_flight.fetch_sub(1, Ordering::SeqCst);
        accepted
    }

    /// Events waiting in the channel right now.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the writer has stopped taking events (shutdown).
    pub fn is_closed(&self) -> bool {
        self.gate.closed.load(Ordering::SeqCst)
    }

    /// Whether events are refused because the database cannot take writes.
    pub fn is_unwritable(&self) -> bool {
        self.gate.unwritable.load(Ordering::SeqCst)
    }

    /// The `Retry-After` for an event [`EventQueue::try_record`] just refused: a second
    /// for a full queue (the writer drains it in one batch), longer while the database
    /// cannot take writes or the server is restarting.
    pub fn retry_after_secs(&self) -> u32 {
        if self.is_closed() || self.is_unwritable() {
            UNWRITABLE_RETRY_AFTER
        } else {
            1
        }
    }
}

/// How long shutdown may keep waiting to retry failed batches.
#[derive(Clone, Copy)]
struct StopDeadline<'a> {
    started: Instant,
    hurry: &'a AtomicBool,
}

impl StopDeadline<'_> {
    fn at(&self) -> Instant {
        let budget = if self.hurry.load(Ordering::SeqCst) {
            HURRIED_RETRY_BUDGET
        } else {
            STOP_RETRY_BUDGET
        };
        self.started + budget
    }
}

/// A failed batch waiting for its next attempt.
struct Failing {
    attempts: u32,
    delay: Duration,
    next_at: Instant,
}

/// The writer thread's side: the batch being filled (or retried) and the sink.
pub(super) struct Batcher<E> {
    policy: BatchPolicy,
    sink: Box<dyn EventSink<E>>,
    gate: Arc<Gate>,
    reserve: Option<Arc<Reserve>>,
    /// False once every [`EventQueue`] is gone (nothing more can arrive).
    rx_open: bool,
    batch: Vec<E>,
    /// When the first event of `batch` reached the writer.
    opened_at: Option<Instant>,
    /// Set while `batch` is a failed batch waiting to be retried.
    failing: Option<Failing>,
}

impl<E> Batcher<E> {
    pub(super) fn new(
        policy: BatchPolicy,
        sink: Box<dyn EventSink<E>>,
        gate: Arc<Gate>,
        reserve: Option<Arc<Reserve>>,
    ) -> Self {
        Batcher {
            policy: BatchPolicy {
                max_events: policy.max_events.max(1),
                max_delay: policy.max_delay,
            },
            sink,
            gate,
            reserve,
            rx_open: true,
            batch: Vec::new(),
            opened_at: None,
            failing: None,
        }
    }

    pub(super) fn gate(&self) -> Arc<Gate> {
        Arc::clone(&self.gate)
    }

    /// Whether the writer should receive events now: not while a failed batch waits (new
    /// events queue in the channel meanwhile) and not into a full batch.
    pub(super) fn wants_events(&self) -> bool {
        self.rx_open && self.failing.is_none() && self.batch.len() < self.policy.max_events
    }

    /// When the writer must wake up for this batch even if no message arrives.
    pub(super) fn wake_at(&self) -> Option<Instant> {
        match &self.failing {
            Some(f) => Some(f.next_at),
            None => self.opened_at.map(|t| t + self.policy.max_delay),
        }
    }

    /// Whether the batch should be committed (or retried) now.
    pub(super) fn is_due(&self, now: Instant) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        match &self.failing {
            Some(f) => now >= f.next_at,
            None => {
                self.batch.len() >= self.policy.max_events
                    || self
                        .opened_at
                        .is_some_and(|t| now >= t + self.policy.max_delay)
            }
        }
    }

    /// Handles what the event arm of the writer's `select!` received: the event plus
    /// whatever else is already waiting, up to a full batch.
    pub(super) fn receive(
        &mut self,
        received: Result<E, crossbeam_channel::RecvError>,
        rx: &Receiver<E>,
    ) {
        match received {
            Ok(event) => {
                self.push(event);
                self.fill(rx);
            }
            Err(_) => self.rx_open = false,
        }
    }

    fn push(&mut self, event: E) {
        if self.batch.is_empty() {
            self.opened_at = Some(Instant::now());
        }
        self.batch.push(event);
        EVENT_STATS.dequeued.inc();
    }

    /// Moves waiting events into the batch until it is full or the channel is empty.
    fn fill(&mut self, rx: &Receiver<E>) {
        while self.batch.len() < self.policy.max_events {
            match rx.try_recv() {
                Ok(event) => self.push(event),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    self.rx_open = false;
                    break;
                }
            }
        }
    }

    /// Commits the batch. When that fails for lack of space, first empties the WAL (on a
    /// nearly full disk it cannot grow to its auto-checkpoint size, but it can be reused
    /// from the start) and tries again, then releases the disk reserve and tries again in
    /// the room it leaves. Whether the database takes writes is decided here: refused
    /// events are answered 503 until a commit succeeds.
    fn attempt(&mut self, conn: &mut Connection, report: &mut WriterReport) -> Result<(), DbError> {
        let mut result = self.attempt_once(conn, report);
        if result.as_ref().is_err_and(DbError::is_out_of_space) {
            super::checkpoint_truncate(conn);
            result = self.attempt_once(conn, report);
        }
        if result.as_ref().is_err_and(DbError::is_out_of_space)
            && self.reserve.as_ref().is_some_and(|r| r.release())
        {
            result = self.attempt_once(conn, report);
        }
        match &result {
            Ok(()) => {
                self.gate.unwritable.store(false, Ordering::SeqCst);
                if let Some(reserve) = &self.reserve {
                    reserve.restore_soon();
                }
            }
            Err(e) if e.is_unwritable() => self.gate.unwritable.store(true, Ordering::SeqCst),
            Err(_) => {}
        }
        result
    }

    /// One attempt at committing the batch through the sink. Counts the outcome.
    fn attempt_once(
        &mut self,
        conn: &mut Connection,
        report: &mut WriterReport,
    ) -> Result<(), DbError> {
        let started = Instant::now();
        let sink = &mut self.sink;
        let batch = &self.batch;
        let result = catch_unwind(AssertUnwindSafe(|| sink.write_batch(conn, batch)));
        let left_open = close_open_transaction(conn);
        let result = match result {
            Ok(Ok(())) if left_open => Err(DbError::Internal(
                "the analytics event sink returned without committing its transaction; it \
                 was rolled back"
                    .to_string(),
            )),
            Ok(result) => result,
            Err(_) => Err(DbError::Panicked {
                what: "the analytics event sink",
            }),
        };
        let n = self.batch.len() as u64;
        match &result {
            Ok(()) => {
                EVENT_STATS.batches.inc();
                EVENT_STATS.committed.add(n);
                EVENT_STATS
                    .batch_size
                    .observe_value(self.batch.len() as u64);
                EVENT_STATS.commit_seconds.observe(started.elapsed());
                report.event_batches += 1;
                report.events_committed += n;
            }
            Err(_) => {
                EVENT_STATS.batch_failures.inc();
                report.event_batch_failures += 1;
            }
        }
        result
    }

    fn clear(&mut self) {
        self.batch.clear();
        self.opened_at = None;
        self.failing = None;
    }

    /// Commits the batch while the server runs; a failure keeps it for a later retry.
    pub(super) fn commit(&mut self, conn: &mut Connection, report: &mut WriterReport) {
        let n = self.batch.len();
        match self.attempt(conn, report) {
            Ok(()) => {
                if let Some(f) = &self.failing {
                    log::info!(
                        "committed a batch of {n} analytics events after {} failed attempt(s)",
                        f.attempts
                    );
                }
                self.clear();
            }
            Err(e) => {
                let (attempts, delay) = match &self.failing {
                    None => (1, RETRY_BACKOFF_START),
                    Some(f) => (f.attempts + 1, (f.delay * 2).min(RETRY_BACKOFF_MAX)),
                };
                log::warn!(
                    "committing a batch of {n} analytics events failed (attempt {attempts}): \
                     {e}; retrying in {} ms, new events wait in the queue meanwhile",
                    delay.as_millis()
                );
                self.failing = Some(Failing {
                    attempts,
                    delay,
                    next_at: Instant::now() + delay,
                });
            }
        }
    }

    /// At stop: closes the channel, waits for senders mid-send, then commits the batch in
    /// hand and every event left in the channel. What cannot be written after the bounded
    /// retries is counted in `report.unwritten` and logged. The retries wait at most
    /// [`STOP_RETRY_BUDGET`] in all, or [`HURRIED_RETRY_BUDGET`] once `hurry` is set (a
    /// second signal, which may come while this runs).
    pub(super) fn finish(
        &mut self,
        conn: &mut Connection,
        rx: &Receiver<E>,
        report: &mut WriterReport,
        hurry: &AtomicBool,
    ) {
        self.gate.close();
        self.gate.wait_idle();
        let deadline = StopDeadline {
            started: Instant::now(),
            hurry,
        };
        // A batch that was already failing is retried on its own: merging fresh events
        // into it would make them share its fate.
        if self.failing.is_some() {
            self.commit_at_stop(conn, report, deadline);
        }
        loop {
            self.fill(rx);
            if self.batch.is_empty() {
                break;
            }
            self.commit_at_stop(conn, report, deadline);
        }
    }

    fn commit_at_stop(
        &mut self,
        conn: &mut Connection,
        report: &mut WriterReport,
        deadline: StopDeadline,
    ) {
        let n = self.batch.len();
        let mut delay = STOP_BACKOFF_START;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let Err(e) = self.attempt(conn, report) else {
                break;
            };
            if attempts < STOP_ATTEMPTS && Instant::now() + delay <= deadline.at() {
                log::warn!(
                    "committing a batch of {n} analytics events at shutdown failed (attempt \
                     {attempts} of {STOP_ATTEMPTS}): {e}; retrying in {} ms",
                    delay.as_millis()
                );
                thread::sleep(delay);
                delay *= 2;
                continue;
            }
            log::error!(
                "{n} accepted analytics events could not be written at shutdown after \
                 {attempts} attempt(s): {e}"
            );
            report.unwritten += n as u64;
            EVENT_STATS.unwritten.add(n as u64);
            break;
        }
        self.clear();
    }
}

// ---------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------

/// Upper bounds of the batch-size histogram buckets (events per committed batch).
pub const BATCH_SIZE_BUCKETS: [u64; 5] = [1, 10, 100, 1000, 10000];

/// Analytics pipeline counters, process-wide (every writer in the process adds to them).
pub struct EventStats {
    /// Events accepted into the channel.
    pub accepted: Counter,
    /// Dropped because the channel was full.
    pub dropped_full: Counter,
    /// Dropped because the writer had stopped (or was stopping).
    pub dropped_stopped: Counter,
    /// Refused because the last commit failed for lack of space or an I/O error.
    pub dropped_unwritable: Counter,
    /// Events the writer took out of the channel; `accepted - dequeued` is the depth.
    pub dequeued: Counter,
    /// Batches committed.
    pub batches: Counter,
    /// Failed attempts at committing a batch (each retry counts again).
    pub batch_failures: Counter,
    /// Events committed.
    pub committed: Counter,
    /// Accepted events that could not be written at shutdown.
    pub unwritten: Counter,
    /// Events per committed batch.
    pub batch_size: Histogram<{ BATCH_SIZE_BUCKETS.len() }>,
    /// Time a successful batch commit takes.
    pub commit_seconds: Histogram<{ LATENCY_BUCKETS.len() }>,
}

pub static EVENT_STATS: EventStats = EventStats {
    accepted: Counter::new(),
    dropped_full: Counter::new(),
    dropped_stopped: Counter::new(),
    dropped_unwritable: Counter::new(),
    dequeued: Counter::new(),
    batches: Counter::new(),
    batch_failures: Counter::new(),
    committed: Counter::new(),
    unwritten: Counter::new(),
    batch_size: Histogram::counts(&BATCH_SIZE_BUCKETS),
    commit_seconds: Histogram::seconds(&LATENCY_BUCKETS),
};

impl EventStats {
    /// Events accepted and not yet taken by the writer.
    pub fn queue_depth(&self) -> u64 {
        // Read `dequeued` first: it never runs ahead of an `accepted` read after it by
        // more than the sends in flight, and saturating covers those.
        let dequeued = self.dequeued.get();
        self.accepted.get().saturating_sub(dequeued)
    }
}

static ACCEPTED: Desc = Desc::new(
    C,
    "fazt_events_accepted_total",
    "events.accepted",
    "Analytics events accepted into the writer's event channel.",
);
static DROPPED: Desc = Desc::new(
    C,
    "fazt_events_dropped_total",
    "events.dropped",
    "Analytics events refused before the writer (answered 503 where the client sent them), by reason.",
)
.labelled("reason");
static BATCHES: Desc = Desc::new(
    C,
    "fazt_event_batches_total",
    "events.batches",
    "Analytics event batches committed.",
);
static BATCH_FAILURES: Desc = Desc::new(
    C,
    "fazt_event_batch_failures_total",
    "events.batch_failures",
    "Failed attempts at committing an analytics event batch (each is retried).",
);
static COMMITTED: Desc = Desc::new(
    C,
    "fazt_events_committed_total",
    "events.committed",
    "Analytics events committed to the database.",
);
static UNWRITTEN: Desc = Desc::new(
    C,
    "fazt_events_unwritten_total",
    "events.unwritten",
    "Accepted analytics events that could not be written at shutdown.",
);
static QUEUE_DEPTH: Desc = Desc::new(
    G,
    "fazt_event_queue_depth",
    "events.queue_depth",
    "Analytics events waiting in the writer's event channel.",
);
static BATCH_SIZE: Desc = Desc::new(
    H,
    "fazt_event_batch_size",
    "events.batch_size",
    "Analytics events per committed batch.",
);
static COMMIT_SECONDS: Desc = Desc::new(
    H,
    "fazt_event_commit_seconds",
    "events.commit_seconds",
    "Time an analytics event batch commit takes.",
);

impl Source for EventStats {
    fn collect(&self, out: &mut Collector) {
        out.int(&ACCEPTED, self.accepted.get());
        out.int_with(&DROPPED, "queue_full", self.dropped_full.get());
        out.int_with(&DROPPED, "stopped", self.dropped_stopped.get());
        out.int_with(&DROPPED, "unwritable", self.dropped_unwritable.get());
        out.int(&BATCHES, self.batches.get());
        out.int(&BATCH_FAILURES, self.batch_failures.get());
        out.int(&COMMITTED, self.committed.get());
        out.int(&UNWRITTEN, self.unwritten.get());
        out.int(&QUEUE_DEPTH, self.queue_depth());
        out.histogram(&BATCH_SIZE, &self.batch_size);
        out.histogram(&COMMIT_SECONDS, &self.commit_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    /// Events here are plain numbers: the pipeline never looks inside them.
    type Event = usize;

    fn event(i: usize) -> Event {
        i
    }

    struct NullSink;

    impl EventSink<Event> for NullSink {
        fn write_batch(&mut self, _: &mut Connection, _: &[Event]) -> Result<(), DbError> {
            Ok(())
        }
    }

    #[test]
    fn stats_render_every_series() {
        let registry = crate::platform::metrics::Registry::new().with(&EVENT_STATS);
        let out = registry.render_prometheus();
        for name in [
            "fazt_events_accepted_total ",
            "fazt_events_dropped_total{reason=\"queue_full\"} ",
            "fazt_events_dropped_total{reason=\"stopped\"} ",
            "fazt_events_dropped_total{reason=\"unwritable\"} ",
            "fazt_event_batches_total ",
            "fazt_event_batch_failures_total ",
            "fazt_events_committed_total ",
            "fazt_events_unwritten_total ",
            "fazt_event_batch_size_bucket{le=\"10000\"} ",
            "fazt_event_batch_size_count ",
            "fazt_event_commit_seconds_bucket{le=\"+Inf\"} ",
            "fazt_event_queue_depth ",
        ] {
            assert!(out.contains(name), "{name} missing from:\n{out}");
        }
        let json = &registry.to_json()["events"];
        for key in [
            "accepted",
            "batches",
            "committed",
            "unwritten",
            "queue_depth",
        ] {
            assert!(json[key].is_u64(), "{key}: {json}");
        }
        assert!(json["dropped"]["queue_full"].is_u64(), "{json}");
        assert!(json["batch_size"]["count"].is_u64(), "{json}");
    }

    #[test]
    fn a_closed_queue_refuses_without_blocking() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let gate = Arc::new(Gate::new());
        let queue = EventQueue::new(tx, Arc::clone(&gate), 4);
        assert_eq!(queue.capacity(), 4);
        assert!(queue.try_record(event(1)));
        assert_eq!(queue.len(), 1);
        let stopped_before = EVENT_STATS.dropped_stopped.get();
        gate.close();
        assert!(queue.is_closed());
        assert!(!queue.try_record(event(2)));
        assert!(EVENT_STATS.dropped_stopped.get() > stopped_before);
        assert_eq!(rx.len(), 1, "a refused event never enters the channel");
        drop(rx);
        // Disconnected (the writer is gone) also counts as stopped.
        let (queue, rx) = EventQueue::detached(4);
        drop(rx);
        let before = EVENT_STATS.dropped_stopped.get();
        assert!(!queue.try_record(event(3)));
        assert!(EVENT_STATS.dropped_stopped.get() > before);
    }

    #[test]
    fn batches_close_at_max_events_or_max_delay() {
        let policy = BatchPolicy {
            max_events: 3,
            max_delay: Duration::from_millis(100),
        };
        let (tx, rx) = crossbeam_channel::bounded(16);
        let mut b = Batcher::new(policy, Box::new(NullSink), Arc::new(Gate::new()), None);
        assert!(b.wants_events());
        assert_eq!(b.wake_at(), None, "an idle writer sleeps");
        assert!(!b.is_due(Instant::now()));
        for i in 0..5 {
            tx.send(event(i)).expect("send");
        }
        let first = rx.recv();
        b.receive(first, &rx);
        assert_eq!(b.batch.len(), 3, "filled up to max_events, no further");
        assert_eq!(rx.len(), 2);
        assert!(!b.wants_events());
        assert!(b.is_due(Instant::now()));

        let mut b = Batcher::new(policy, Box::new(NullSink), Arc::new(Gate::new()), None);
        let first = rx.recv();
        b.receive(first, &rx);
        assert_eq!(b.batch.len(), 2);
        let opened = b.opened_at.expect("opened");
        assert_eq!(b.wake_at(), Some(opened + policy.max_delay));
        assert!(!b.is_due(opened));
        assert!(b.is_due(opened + policy.max_delay));
        drop(tx);
        b.receive(Err(crossbeam_channel::RecvError), &rx);
        assert!(
            !b.wants_events(),
            "a disconnected channel is not selected again"
        );
    }

    #[test]
    fn default_policy_keeps_the_loss_window_under_a_second() {
        let p = BatchPolicy::default();
        assert_eq!(p.max_events, DEFAULT_MAX_EVENTS);
        assert!(p.max_delay < Duration::from_millis(500));
        let mut stop_waits = Duration::ZERO;
        let mut d = STOP_BACKOFF_START;
        for _ in 1..STOP_ATTEMPTS {
            stop_waits += d;
            d *= 2;
        }
        assert!(stop_waits <= STOP_RETRY_BUDGET, "{stop_waits:?}");
    }
}
