//! The single writer thread (DESIGN §1, D2): the only connection that writes lives here,
//! and every write in the program reaches it as a message on one bounded channel.
//!
//! Invariants:
//! - Submitting never blocks: a full queue is [`DbError::QueueFull`] (shed with 503), a
//!   stopped writer is [`DbError::WriterStopped`].
//! - Each job owns its transaction (`conn.transaction()`), so a job that fails or panics
//!   leaves nothing half-written; the writer rolls back whatever a job leaves open and
//!   carries on with the next one.
//! - A job accepted by [`WriterHandle::try_submit`] is run, even if `stop` races with it;
//!   after the last job the writer checkpoints the WAL (TRUNCATE) and closes the connection.
//! - With [`spawn_with_events`] the writer also serves a second bounded channel of
//!   analytics events and commits them in batches (see [`super::events`]). One loop
//!   `select!`s over both channels and a timer: an idle writer sleeps; after every batch
//!   commit one waiting job runs before more events are taken, and every job is followed
//!   by a check of the batch deadline, so neither kind of work starves the other.
//! - At stop: every event accepted before the channel closed is committed (or counted in
//!   [`WriterReport::unwritten`] and logged), then the remaining jobs run, then the
//!   checkpoint.
//! - [`WriterHandle::stop_now`] (a second signal) interrupts the running job (SQLite
//!   rolls it back and its submitter gets the error), drops the jobs still queued (their
//!   submitters get [`DbError::WriterStopped`]) and still commits every accepted event,
//!   with a shorter retry budget, so stopping takes about a second.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvError, Sender, TryRecvError, TrySendError};
use rusqlite::Connection;

use super::events::{Batcher, EventPipeline, EventQueue, Gate};
use super::{Context, DbError};
use crate::platform::metrics::{Counter, Gauge, Histogram};

// The metrics registry, which describes and renders the counters at the end of this file.
use crate::platform::metrics::Kind::{Counter as C, Gauge as G, Histogram as H};
use crate::platform::metrics::{Collector, Desc, Source, LATENCY_BUCKETS};

/// Name of the writer thread (visible in `top -H`, panics and logs).
pub const THREAD_NAME: &str = "fazt-writer";

/// What a job reports back to the writer loop, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Failed,
    Panicked,
}

/// A unit of work run on the writer's connection. Build them with
/// [`WriterHandle::try_submit`], which also delivers the job's result.
pub type Job = Box<dyn FnOnce(&mut Connection) -> JobOutcome + Send>;

/// A message to the writer thread. New kinds of work (e.g. a batch of analytics events
/// committed in one transaction) are new variants here, handled in [`run`]'s match.
pub enum WriterMsg {
    /// A write job, and when it was queued (for the wait-time histogram).
    Job { job: Job, queued_at: Instant },
    /// Run everything queued before this, checkpoint, close the connection, exit.
    Stop,
}

/// The sending side, cloned into every thread that writes.
#[derive(Clone)]
pub struct WriterHandle {
    tx: Sender<WriterMsg>,
    shared: Arc<Shared>,
}

/// State shared by every handle and the writer thread.
struct Shared {
    stopped: AtomicBool,
    /// Submitters between their `stopped` check and the end of their send. The writer
    /// waits for this to reach zero after `Stop`, so no accepted job is left unrun.
    in_flight: AtomicUsize,
    capacity: usize,
    /// The event channel's gate, when the writer runs the analytics path.
    events: Option<Arc<Gate>>,
    /// Set by [`WriterHandle::stop_now`]: skip the queued jobs, commit the events, exit.
    hurry: AtomicBool,
    /// Aborts the statement running on the write connection (for `stop_now`).
    interrupt: rusqlite::InterruptHandle,
    /// A job (not an event batch) is running on the write connection: with `hurry`, the
    /// progress handler interrupts it. SQLite drops an `interrupt` that arrives before a
    /// statement starts stepping, so a job just starting its statement would miss it.
    job_running: AtomicBool,
}

/// VM instructions between two progress-handler checks on the write connection: a job is
/// interrupted within microseconds of `stop_now`, for an atomic load per thousand steps.
const PROGRESS_OPS: i32 = 1000;

/// The writer thread; [`WriterThread::join`] waits for it after [`WriterHandle::stop`].
pub struct WriterThread {
    thread: JoinHandle<WriterReport>,
}

/// What the writer did over its life, returned by [`WriterThread::join`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterReport {
    /// Jobs that returned `Ok`.
    pub jobs_done: u64,
    /// Jobs that returned `Err` or panicked (rolled back).
    pub jobs_failed: u64,
    /// The subset of `jobs_failed` that panicked.
    pub jobs_panicked: u64,
    /// How the final `wal_checkpoint(TRUNCATE)` went.
    pub checkpoint: FinalCheckpoint,
    /// Closing the connection failed (logged); `None` when it closed cleanly.
    pub close_error: Option<String>,
    /// Accepted work whose data could not be committed and whose submitter could not be
    /// told. Always 0 for jobs (their callers get the error); analytics events that still
    /// failed at shutdown after the bounded retries add to it.
    pub unwritten: u64,
    /// Analytics events committed.
    pub events_committed: u64,
    /// Analytics event batches committed.
    pub event_batches: u64,
    /// Failed attempts at committing an event batch (retried, so not necessarily lost).
    pub event_batch_failures: u64,
}

impl WriterReport {
    /// Whether everything the writer accepted was either committed or reported as failed
    /// to its submitter: the condition for a clean (exit 0) shutdown.
    pub fn all_written(&self) -> bool {
        self.unwritten == 0
    }
}

impl std::fmt::Display for WriterReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} jobs done, {} failed ({} panicked), final checkpoint {}",
            self.jobs_done,
            self.jobs_failed,
            self.jobs_panicked,
            match self.checkpoint {
                FinalCheckpoint::Complete => "complete",
                FinalCheckpoint::Incomplete => "incomplete",
                FinalCheckpoint::External => "left to the replicator",
            }
        )?;
        if self.event_batches > 0 || self.event_batch_failures > 0 {
            write!(
                f,
                ", {} analytics events committed in {} batches ({} failed attempts)",
                self.events_committed, self.event_batches, self.event_batch_failures
            )?;
        }
        if self.unwritten > 0 {
            write!(
                f,
                ", {} accepted writes could not be written (lost)",
                self.unwritten
            )?;
        }
        if let Some(e) = &self.close_error {
            write!(f, ", closing failed: {e}")?;
        }
        Ok(())
    }
}

/// Starts the writer thread on `conn` (from [`super::open_and_migrate`]) with a queue of
/// `capacity` messages (at least 1). No analytics path: see [`spawn_with_events`].
pub fn spawn(conn: Connection, capacity: usize) -> Result<(WriterHandle, WriterThread), DbError> {
    let (handle, _, thread) = start::<()>(conn, capacity, None)?;
    Ok((handle, thread))
}

/// Like [`spawn`], and the writer also runs the analytics path: it commits the events
/// recorded through the returned [`EventQueue`] in batches through `events.sink`. Clone
/// the queue into every thread that records events. [`WriterHandle::stop`] closes it.
pub fn spawn_with_events<E: Send + 'static>(
    conn: Connection,
    capacity: usize,
    events: EventPipeline<E>,
) -> Result<(WriterHandle, EventQueue<E>, WriterThread), DbError> {
    let (handle, queue, thread) = start(conn, capacity, Some(events))?;
    let queue = queue.ok_or_else(|| {
        DbError::Internal("the writer started without its event queue".to_string())
    })?;
    Ok((handle, queue, thread))
}

fn start<E: Send + 'static>(
    conn: Connection,
    capacity: usize,
    events: Option<EventPipeline<E>>,
) -> Result<(WriterHandle, Option<EventQueue<E>>, WriterThread), DbError> {
    let capacity = capacity.max(1);
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let (queue, event_rx, batcher) = match events {
        Some(EventPipeline {
            capacity,
            policy,
            sink,
            reserve,
        }) => {
            let (event_tx, event_rx) = crossbeam_channel::unbounded();
            let gate = Arc::new(Gate::new());
            let queue = EventQueue::new(event_tx, Arc::clone(&gate), capacity);
            (
                Some(queue),
                event_rx,
                Some(Batcher::new(policy, sink, gate, reserve)),
            )
        }
        None => (None, crossbeam_channel::never(), None),
    };
    let shared = Arc::new(Shared {
        stopped: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        capacity,
        events: batcher.as_ref().map(Batcher::gate),
        hurry: AtomicBool::new(false),
        interrupt: conn.get_interrupt_handle(),
        job_running: AtomicBool::new(false),
    });
    let watched = Arc::clone(&shared);
    conn.progress_handler(
        PROGRESS_OPS,
        Some(move || {
            watched.hurry.load(Ordering::SeqCst) && watched.job_running.load(Ordering::SeqCst)
        }),
    );
    let thread_shared = Arc::clone(&shared);
    let thread = thread::Builder::new()
        .name(THREAD_NAME.to_string())
        .spawn(move || run(conn, rx, &thread_shared, event_rx, batcher))
        .context("starting the database writer thread")?;
    Ok((WriterHandle { tx, shared }, queue, WriterThread { thread }))
}

impl WriterHandle {
    /// Queues `f` to run on the write connection and returns where its result will arrive.
    /// Never blocks. The receiver gets `Err(DbError::Panicked)` if `f` panics, and
    /// `Err(DbError::WriterStopped)` if the writer died without running it.
    pub fn try_submit<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<crossbeam_channel::Receiver<Result<T, DbError>>, DbError> {
        let (reply_tx, reply_rx) = crossbeam_channel::bounded(1);
        self.submit_then(f, move |result| {
            // The submitter may have stopped waiting; the work is done either way.
            let _ = reply_tx.send(result);
        })?;
        Ok(reply_rx)
    }

    /// Submits `f` and waits for its result. For the deploy and jobs threads and CLI
    /// commands, never for core threads or the admin thread (they must not block: see
    /// [`WriterHandle::submit_then`]). Never call it from inside a job: the writer would
    /// wait for itself.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        if thread::current().name() == Some(THREAD_NAME) {
            return Err(DbError::Internal(
                "WriterHandle::call was used inside a write job, which would wait for itself"
                    .to_string(),
            ));
        }
        let reply = self.try_submit(f)?;
        reply.recv().unwrap_or(Err(DbError::WriterStopped))
    }

    /// Sends a message without blocking, counting what is refused.
    fn try_send(&self, msg: WriterMsg) -> Result<(), DbError> {
        let shared = &self.shared;
        shared.in_flight.fetch_add(1, Ordering::SeqCst);
        let result = if shared.stopped.load(Ordering::SeqCst) {
            Err(DbError::WriterStopped)
        } else {
            self.tx.try_send(msg).map_err(|e| match e {
                TrySendError::Full(_) => DbError::QueueFull,
                TrySendError::Disconnected(_) => DbError::WriterStopped,
            })
        };
        // Inside the in-flight window: queue_depth rises before the final drain lowers it.
        match &result {
            Ok(()) => {
                WRITER_STATS.submitted.inc();
                WRITER_STATS.queue_depth.inc();
            }
            Err(DbError::QueueFull) => WRITER_STATS.rejected_full.inc(),
            Err(_) => WRITER_STATS.rejected_stopped.inc(),
        }
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        result
    }

    /// Asks the writer to finish what is queued, checkpoint and exit. Later submissions
    /// fail with [`DbError::WriterStopped`], and later events are dropped (counted as
    /// "stopped"); the writer commits every event accepted before. Idempotent; blocks only
    /// while the queue is full. Follow with [`WriterThread::join`].
    pub fn stop(&self) {
        if let Some(gate) = &self.shared.events {
            gate.close();
        }
        if self.shared.stopped.swap(true, Ordering::SeqCst) {
            return;
        }
        // A disconnected channel means the writer is already gone: nothing to stop.
        let _ = self.tx.send(WriterMsg::Stop);
    }

    /// [`WriterHandle::stop`], in a hurry (a second signal): the job running now is
    /// interrupted and rolled back, queued jobs are dropped (their submitters are told),
    /// and the writer commits the accepted events and exits. Idempotent.
    pub fn stop_now(&self) {
        self.shared.hurry.store(true, Ordering::SeqCst);
        self.shared.interrupt.interrupt();
        self.stop();
    }

    pub fn is_stopped(&self) -> bool {
        self.shared.stopped.load(Ordering::SeqCst)
    }

    /// Messages waiting in the queue right now.
    pub fn queue_len(&self) -> usize {
        self.tx.len()
    }

    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }
}

/// Completion callbacks: how a thread that must never wait (the admin thread) hands work
/// to the writer and still answers its client. `on_done` is the hand-back; it runs once.
impl WriterHandle {
    /// Queues `f` without blocking; when it has run, `on_done` is called with its result
    /// on the writer thread (so it must only hand the result on, e.g. send a mail). A
    /// panic in `f` arrives as `Err(DbError::Panicked)`, a job the writer dropped unrun
    /// (the writer died) as `Err(DbError::WriterStopped)`. When the job is refused (queue
    /// full, writer stopped) this returns the error and `on_done` is never called, so the
    /// caller answers at once.
    pub fn submit_then<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
        on_done: impl FnOnce(Result<T, DbError>) + Send + 'static,
    ) -> Result<(), DbError> {
        let completion = Arc::new(Completion::new(Box::new(on_done)));
        let guard = UnrunGuard(Arc::clone(&completion));
        let job: Job = Box::new(move |conn: &mut Connection| {
            let (outcome, result) = run_catching(conn, f);
            if let Some(on_done) = guard.0.take() {
                on_done(result);
            }
            outcome
        });
        let sent = self.try_send(WriterMsg::Job {
            job,
            queued_at: Instant::now(),
        });
        match sent {
            Ok(()) => {
                completion.arm();
                Ok(())
            }
            Err(e) => {
                // Refused: the caller answers; the callback must never run as well.
                completion.take();
                Err(e)
            }
        }
    }
}

/// Runs a job's closure, turning a panic or a transaction left open into an error.
fn run_catching<T>(
    conn: &mut Connection,
    f: impl FnOnce(&mut Connection) -> Result<T, DbError>,
) -> (JobOutcome, Result<T, DbError>) {
    match catch_unwind(AssertUnwindSafe(|| f(conn))) {
        Ok(Ok(_)) if close_open_transaction(conn) => (
            JobOutcome::Failed,
            Err(DbError::Internal(
                "a write job returned without committing its transaction; it was rolled back"
                    .to_string(),
            )),
        ),
        Ok(Ok(value)) => (JobOutcome::Done, Ok(value)),
        Ok(Err(e)) => (JobOutcome::Failed, Err(e)),
        Err(_) => (
            JobOutcome::Panicked,
            Err(DbError::Panicked {
                what: "a database write job",
            }),
        ),
    }
}

type OnDone<T> = Box<dyn FnOnce(Result<T, DbError>) + Send>;

/// The callback of one submitted job, called exactly once: by the job, or, if the job is
/// dropped unrun after it was accepted, with `WriterStopped`. The lock makes "accepted"
/// and "dropped" race-free (the writer may drop the job before `arm` runs).
struct Completion<T> {
    state: parking_lot::Mutex<CompletionState<T>>,
}

struct CompletionState<T> {
    on_done: Option<OnDone<T>>,
    armed: bool,
    dropped: bool,
}

impl<T> Completion<T> {
    fn new(on_done: OnDone<T>) -> Completion<T> {
        let state = CompletionState {
            on_done: Some(on_done),
            armed: false,
            dropped: false,
        };
        Completion {
            state: parking_lot::Mutex::new(state),
        }
    }

    fn take(&self) -> Option<OnDone<T>> {
        self.state.lock().on_done.take()
    }

    /// The job was accepted: from now on dropping it unrun reports `WriterStopped`.
    fn arm(&self) {
        let unrun = {
            let mut state = self.state.lock();
            state.armed = true;
            state.dropped.then(|| state.on_done.take()).flatten()
        };
        if let Some(on_done) = unrun {
            on_done(Err(DbError::WriterStopped));
        }
    }
}

/// Owned by the job; when the job is dropped without having run, reports it.
struct UnrunGuard<T>(Arc<Completion<T>>);

impl<T> Drop for UnrunGuard<T> {
    fn drop(&mut self) {
        let unrun = {
            let mut state = self.0.state.lock();
            state.dropped = true;
            state.armed.then(|| state.on_done.take()).flatten()
        };
        if let Some(on_done) = unrun {
            on_done(Err(DbError::WriterStopped));
        }
    }
}

impl WriterThread {
    /// Waits for the writer to exit (after [`WriterHandle::stop`], or once every handle
    /// is dropped) and returns what it did.
    pub fn join(self) -> Result<WriterReport, DbError> {
        self.thread.join().map_err(|_| DbError::Panicked {
            what: "the database writer thread",
        })
    }
}

/// The writer loop.
fn run<E>(
    mut conn: Connection,
    rx: Receiver<WriterMsg>,
    shared: &Shared,
    event_rx: Receiver<E>,
    mut batcher: Option<Batcher<E>>,
) -> WriterReport {
    WRITER_STATS.running.inc();
    let mut report = WriterReport::default();
    let no_events = crossbeam_channel::never::<E>();
    loop {
        if shared.hurry.load(Ordering::SeqCst) {
            break;
        }
        if let Some(b) = batcher.as_mut().filter(|b| b.is_due(Instant::now())) {
            b.commit(&mut conn, &mut report);
            // A job waiting behind a flood of events runs before the next batch.
            match rx.try_recv() {
                Ok(msg) => {
                    if !handle(&mut conn, Ok(msg), shared, &mut report) {
                        break;
                    }
                }
                Err(TryRecvError::Empty) => {}
                Err(TryRecvError::Disconnected) => break,
            }
        }
        let events = if batcher.as_ref().is_some_and(Batcher::wants_events) {
            &event_rx
        } else {
            &no_events
        };
        let timer = batcher
            .as_ref()
            .and_then(Batcher::wake_at)
            .map_or_else(crossbeam_channel::never, crossbeam_channel::at);
        crossbeam_channel::select! {
            recv(rx) -> msg => {
                if !handle(&mut conn, msg, shared, &mut report) {
                    break;
                }
            }
            recv(events) -> event => {
                if let Some(b) = batcher.as_mut() {
                    b.receive(event, &event_rx);
                }
            }
            recv(timer) -> _ => {}
        }
    }
    // Jobs that were accepted while `stop` raced with their submission still run.
    while shared.in_flight.load(Ordering::SeqCst) != 0 {
        thread::sleep(Duration::from_millis(1));
    }
    if let Some(b) = batcher.as_mut() {
        b.finish(&mut conn, &event_rx, &mut report, &shared.hurry);
    }
    let hurry = shared.hurry.load(Ordering::SeqCst);
    loop {
        match rx.try_recv() {
            // Dropped unrun: its completion tells the submitter `WriterStopped`.
            Ok(WriterMsg::Job { .. }) if hurry => WRITER_STATS.queue_depth.dec(),
            Ok(WriterMsg::Job { job, queued_at }) => {
                run_job(&mut conn, job, queued_at, shared, &mut report)
            }
            Ok(WriterMsg::Stop) => {}
            Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
        }
    }
    report.checkpoint = checkpoint(&conn);
    if let Err((_, e)) = conn.close() {
        log::error!("closing the database write connection failed: {e}");
        report.close_error = Some(e.to_string());
    }
    WRITER_STATS.running.dec();
    if report.all_written() {
        log::debug!("database writer stopped: {report}");
    } else {
        log::error!("database writer stopped: {report}");
    }
    report
}

/// Handles one message from the job channel; false when the writer should stop (a
/// `Stop`, or every handle is gone).
fn handle(
    conn: &mut Connection,
    msg: Result<WriterMsg, RecvError>,
    shared: &Shared,
    report: &mut WriterReport,
) -> bool {
    match msg {
        Ok(WriterMsg::Job { job, queued_at }) => {
            run_job(conn, job, queued_at, shared, report);
            true
        }
        Ok(WriterMsg::Stop) | Err(RecvError) => false,
    }
}

fn run_job(
    conn: &mut Connection,
    job: Job,
    queued_at: Instant,
    shared: &Shared,
    report: &mut WriterReport,
) {
    WRITER_STATS.queue_depth.dec();
    let started = Instant::now();
    WRITER_STATS.wait_seconds.observe(started - queued_at);
    shared.job_running.store(true, Ordering::SeqCst);
    // Jobs from try_submit catch their own panics; this guards any other Job.
    let outcome = catch_unwind(AssertUnwindSafe(|| job(conn))).unwrap_or(JobOutcome::Panicked);
    shared.job_running.store(false, Ordering::SeqCst);
    if close_open_transaction(conn) {
        log::warn!("a write job left a transaction open; it was rolled back");
    }
    WRITER_STATS.job_seconds.observe(started.elapsed());
    match outcome {
        JobOutcome::Done => {
            report.jobs_done += 1;
            WRITER_STATS.completed.inc();
        }
        JobOutcome::Failed | JobOutcome::Panicked => {
            report.jobs_failed += 1;
            WRITER_STATS.failed.inc();
        }
    }
    if outcome == JobOutcome::Panicked {
        log::error!("a database write job panicked; its transaction was rolled back");
        report.jobs_panicked += 1;
        WRITER_STATS.panicked.inc();
    }
}

/// Rolls back a transaction a job (or an event sink) left open. Returns whether there was one.
pub(super) fn close_open_transaction(conn: &Connection) -> bool {
    if conn.is_autocommit() {
        return false;
    }
    if let Err(e) = conn.execute_batch("ROLLBACK") {
        log::error!("rolling back a write job's open transaction failed: {e}");
    }
    true
}

/// How the writer's last checkpoint went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum FinalCheckpoint {
    /// The WAL is empty.
    Complete,
    /// A reader held some frames (or it failed): SQLite finishes it on the next start.
    #[default]
    Incomplete,
    /// Checkpoints are a replicator's (`FAZT_EXTERNAL_CHECKPOINTS`): the WAL is left as is.
    External,
}

/// Moves every WAL frame into the database and truncates the WAL to zero bytes; with
/// checkpoints left to a replicator, leaves the WAL as it is.
fn checkpoint(conn: &Connection) -> FinalCheckpoint {
    if super::checkpoints_are_external(conn) {
        return FinalCheckpoint::External;
    }
    let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?))
    });
    match result {
        Ok((0, _)) => FinalCheckpoint::Complete,
        Ok((_, frames)) => {
            log::warn!(
                "final WAL checkpoint incomplete ({frames} frames; a reader still open?); \
                 SQLite finishes it on the next start"
            );
            FinalCheckpoint::Incomplete
        }
        Err(e) => {
            log::error!("final WAL checkpoint failed: {e}");
            FinalCheckpoint::Incomplete
        }
    }
}

// ---------------------------------------------------------------------------------------
// Counters
// ---------------------------------------------------------------------------------------

/// Writer counters, process-wide (all writers in the process add to them).
pub struct WriterStats {
    pub submitted: Counter,
    /// Jobs that returned `Ok`.
    pub completed: Counter,
    /// Jobs that returned `Err` or panicked.
    pub failed: Counter,
    pub panicked: Counter,
    /// Refused because the queue was full (the caller answered 503).
    pub rejected_full: Counter,
    /// Refused because the writer had stopped.
    pub rejected_stopped: Counter,
    /// Jobs queued and not yet started.
    pub queue_depth: Gauge,
    /// Writer threads running (1 in a healthy server).
    pub running: Gauge,
    /// Time a job spends running, including its commit.
    pub job_seconds: Histogram<{ LATENCY_BUCKETS.len() }>,
    /// Time a job waits in the queue before it starts.
    pub wait_seconds: Histogram<{ LATENCY_BUCKETS.len() }>,
}

pub static WRITER_STATS: WriterStats = WriterStats {
    submitted: Counter::new(),
    completed: Counter::new(),
    failed: Counter::new(),
    panicked: Counter::new(),
    rejected_full: Counter::new(),
    rejected_stopped: Counter::new(),
    queue_depth: Gauge::new(),
    running: Gauge::new(),
    job_seconds: Histogram::seconds(&LATENCY_BUCKETS),
    wait_seconds: Histogram::seconds(&LATENCY_BUCKETS),
};

static RUNNING: Desc = Desc::new(
    G,
    "fazt_writer_running",
    "writer.running",
    "Database writer threads running.",
);
static SUBMITTED: Desc = Desc::new(
    C,
    "fazt_writer_jobs_submitted_total",
    "writer.jobs_submitted",
    "Write jobs accepted by the writer queue.",
);
static COMPLETED: Desc = Desc::new(
    C,
    "fazt_writer_jobs_completed_total",
    "writer.jobs_completed",
    "Write jobs that committed (or had nothing to commit).",
);
static FAILED: Desc = Desc::new(
    C,
    "fazt_writer_jobs_failed_total",
    "writer.jobs_failed",
    "Write jobs that failed or panicked and were rolled back.",
);
static PANICKED: Desc = Desc::new(
    C,
    "fazt_writer_jobs_panicked_total",
    "writer.jobs_panicked",
    "Write jobs that panicked (also counted as failed).",
);
static QUEUE_DEPTH: Desc = Desc::new(
    G,
    "fazt_writer_queue_depth",
    "writer.queue_depth",
    "Write jobs waiting in the writer queue.",
);
static REJECTED: Desc = Desc::new(
    C,
    "fazt_writer_rejected_total",
    "writer.rejected",
    "Write jobs refused, by reason.",
)
.labelled("reason");
static JOB_SECONDS: Desc = Desc::new(
    H,
    "fazt_writer_job_duration_seconds",
    "writer.job_seconds",
    "Time a write job runs, including its commit.",
);
static WAIT_SECONDS: Desc = Desc::new(
    H,
    "fazt_writer_job_wait_seconds",
    "writer.wait_seconds",
    "Time a write job waits in the queue.",
);

impl Source for WriterStats {
    fn collect(&self, out: &mut Collector) {
        out.int(&RUNNING, self.running.get());
        out.int(&SUBMITTED, self.submitted.get());
        out.int(&COMPLETED, self.completed.get());
        out.int(&FAILED, self.failed.get());
        out.int(&PANICKED, self.panicked.get());
        out.int(&QUEUE_DEPTH, self.queue_depth.get().max(0));
        out.int_with(&REJECTED, "queue_full", self.rejected_full.get());
        out.int_with(&REJECTED, "stopped", self.rejected_stopped.get());
        out.histogram(&JOB_SECONDS, &self.job_seconds);
        out.histogram(&WAIT_SECONDS, &self.wait_seconds);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_render_every_series() {
        let registry = crate::platform::metrics::Registry::new().with(&WRITER_STATS);
        let out = registry.render_prometheus();
        for name in [
            "fazt_writer_running",
            "fazt_writer_jobs_submitted_total",
            "fazt_writer_jobs_failed_total",
            "fazt_writer_queue_depth",
            "fazt_writer_rejected_total{reason=\"queue_full\"}",
            "fazt_writer_job_duration_seconds_count",
            "fazt_writer_job_wait_seconds_count",
        ] {
            assert!(out.contains(name), "{name} missing from:\n{out}");
        }
        let json = &registry.to_json()["writer"];
        assert!(json["jobs_submitted"].is_u64(), "{json}");
        assert!(json["queue_depth"].is_i64() || json["queue_depth"].is_u64());
        assert!(json["rejected"]["stopped"].is_u64(), "{json}");
    }

    #[test]
    fn writer_survives_a_panicking_job_and_rolls_back() {
        let conn = Connection::open_in_memory().expect("open");
        conn.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        let (handle, thread) = spawn(conn, 4).expect("spawn");
        let panicked = handle.call(|conn| -> Result<(), DbError> {
            conn.execute_batch("BEGIN; INSERT INTO t VALUES (1);")?;
            panic!("test panic inside a write job");
        });
        assert!(
            matches!(panicked, Err(DbError::Panicked { .. })),
            "{panicked:?}"
        );
        let forgot = handle.call(|conn| -> Result<(), DbError> {
            conn.execute_batch("BEGIN; INSERT INTO t VALUES (2);")?;
            Ok(())
        });
        assert!(matches!(forgot, Err(DbError::Internal(_))), "{forgot:?}");
        let rows = handle
            .call(|conn| Ok(conn.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))?));
        assert_eq!(rows.expect("count"), 0);
        handle.stop();
        let report = thread.join().expect("join");
        assert_eq!(report.jobs_done, 1);
        assert_eq!(report.jobs_failed, 2);
        assert_eq!(report.jobs_panicked, 1);
    }
}

#[cfg(test)]
mod completion_tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    type LastResult = Arc<parking_lot::Mutex<Option<Result<u32, DbError>>>>;

    /// A callback that counts its calls and records the last result.
    fn recorder() -> (
        Arc<AtomicU32>,
        LastResult,
        impl FnOnce(Result<u32, DbError>) + Send + 'static,
    ) {
        let calls = Arc::new(AtomicU32::new(0));
        let last = Arc::new(parking_lot::Mutex::new(None));
        let (c, l) = (Arc::clone(&calls), Arc::clone(&last));
        let on_done = move |result| {
            c.fetch_add(1, Ordering::SeqCst);
            *l.lock() = Some(result);
        };
        (calls, last, on_done)
    }

    #[test]
    fn on_done_gets_the_result_on_the_writer_thread() {
        let (writer, thread) = spawn(Connection::open_in_memory().unwrap(), 4).unwrap();
        let (tx, rx) = crossbeam_channel::bounded(1);
        writer
            .submit_then(
                |conn| Ok(conn.query_row("SELECT 41 + 1", [], |r| r.get::<_, u32>(0))?),
                move |result| {
                    let _ = tx.send((result.ok(), thread::current().name().map(String::from)));
                },
            )
            .unwrap();
        let (value, thread_name) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(value, Some(42));
        assert_eq!(thread_name.as_deref(), Some(THREAD_NAME));
        writer.stop();
        thread.join().unwrap();
    }

    #[test]
    fn a_refused_job_returns_the_error_and_never_calls_back() {
        let (writer, thread) = spawn(Connection::open_in_memory().unwrap(), 1).unwrap();
        let (running_tx, running_rx) = crossbeam_channel::bounded(1);
        let (release_tx, release_rx) = crossbeam_channel::bounded::<()>(1);
        writer
            .try_submit(move |_| {
                let _ = running_tx.send(());
                let _ = release_rx.recv_timeout(Duration::from_secs(10));
                Ok(())
            })
            .unwrap();
        running_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        writer.try_submit(|_| Ok(())).unwrap();
        let (calls, _, on_done) = recorder();
        let refused = writer.submit_then(|_| Ok(1), on_done);
        assert!(matches!(refused, Err(DbError::QueueFull)), "{refused:?}");
        release_tx.send(()).unwrap();
        writer.stop();
        thread.join().unwrap();
        let (calls_after_stop, _, on_done) = recorder();
        let stopped = writer.submit_then(|_| Ok(1), on_done);
        assert!(
            matches!(stopped, Err(DbError::WriterStopped)),
            "{stopped:?}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        assert_eq!(calls_after_stop.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_job_dropped_unrun_reports_writer_stopped_exactly_once() {
        // Dropped after it was accepted.
        let (calls, last, on_done) = recorder();
        let completion = Arc::new(Completion::new(Box::new(on_done)));
        let guard = UnrunGuard(Arc::clone(&completion));
        completion.arm();
        drop(guard);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(*last.lock(), Some(Err(DbError::WriterStopped))));

        // Dropped by a dying writer before the submitter armed it.
        let (calls, last, on_done) = recorder();
        let completion = Arc::new(Completion::new(Box::new(on_done)));
        drop(UnrunGuard(Arc::clone(&completion)));
        assert_eq!(calls.load(Ordering::SeqCst), 0, "not accepted yet");
        completion.arm();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(*last.lock(), Some(Err(DbError::WriterStopped))));

        // Refused: the submitter took the callback; the dropped job stays silent.
        let (calls, _, on_done) = recorder();
        let completion = Arc::new(Completion::new(Box::new(on_done)));
        let guard = UnrunGuard(Arc::clone(&completion));
        assert!(completion.take().is_some());
        drop(guard);
        assert_eq!(calls.load(Ordering::SeqCst), 0);
    }
}
