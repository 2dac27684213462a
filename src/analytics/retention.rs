//! Retention: deleting raw events older than a cutoff in bounded batches, each its own
//! short transaction, so serving and ingestion never wait long on the write lock; then
//! returning the freed pages (incremental vacuum). Roll-ups are kept unless asked.

use super::store::{prune_batch, PruneProgress};
use crate::db::writer::WriterHandle;
use crate::db::{incremental_vacuum, reclaim_space, with_room, DbError};
use crate::platform::reserve::Reserve;
use crossbeam_channel::{Receiver, TryRecvError};
use rusqlite::Connection;
use std::time::{Duration, Instant};

/// Raw events deleted per transaction.
pub const PRUNE_BATCH_ROWS: usize = 5_000;

/// What a whole prune removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PruneTotals {
    pub events_deleted: usize,
    pub rollup_rows_deleted: usize,
    pub bytes_reclaimed: u64,
}

/// Prunes on a write connection of its own (the `fazt db prune` command). It frees space,
/// so it works on a full disk: a batch that fails for lack of room releases `reserve` and
/// is retried, and the pages go back to the filesystem in small steps.
pub fn prune_now(
    conn: &mut Connection,
    cutoff_ts: i64,
    include_rollups: bool,
    reserve: Option<&Reserve>,
) -> Result<PruneTotals, DbError> {
    let mut totals = PruneTotals::default();
    loop {
        let progress = with_room(conn, reserve, |conn| {
            prune_batch(conn, cutoff_ts, include_rollups, PRUNE_BATCH_ROWS)
        })?;
        totals.events_deleted += progress.events_deleted;
        totals.rollup_rows_deleted += progress.rollup_rows_deleted;
        if progress.done {
            break;
        }
    }
    totals.bytes_reclaimed = reclaim_space(conn, reserve)?;
    Ok(totals)
}

/// Automatic retention (`FAZT_RETENTION`): once an hour, raw events older than the
/// retention are pruned one batch per writer job, then the freed pages are returned. The
/// admin thread drives it from its tick and never waits: a tick starts the next step or
/// collects a finished one (`try_recv`), and does nothing while a step is running.
pub struct AutoRetention {
    keep: Duration,
    next_run: Instant,
    totals: PruneTotals,
    step: Option<Step>,
}

/// The writer job in progress, and where its result arrives.
enum Step {
    Prune(Receiver<Result<PruneProgress, DbError>>),
    Vacuum(Receiver<Result<u64, DbError>>),
}

const RUN_EVERY: Duration = Duration::from_secs(3600);

impl AutoRetention {
    pub fn new(keep: Duration) -> AutoRetention {
        AutoRetention {
            keep,
            next_run: Instant::now(),
            totals: PruneTotals::default(),
            step: None,
        }
    }

    pub fn tick(&mut self, writer: &WriterHandle) {
        match self.step.take() {
            None if Instant::now() >= self.next_run => self.prune_next(writer),
            None => {}
            Some(Step::Prune(rx)) => match rx.try_recv() {
                Err(TryRecvError::Empty) => self.step = Some(Step::Prune(rx)),
                Err(TryRecvError::Disconnected) => self.failed(DbError::WriterStopped),
                Ok(Err(e)) => self.failed(e),
                Ok(Ok(progress)) => {
                    self.totals.events_deleted += progress.events_deleted;
                    if progress.done {
                        self.vacuum(writer);
                    } else {
                        self.prune_next(writer);
                    }
                }
            },
            Some(Step::Vacuum(rx)) => match rx.try_recv() {
                Err(TryRecvError::Empty) => self.step = Some(Step::Vacuum(rx)),
                Err(TryRecvError::Disconnected) => self.finish(0),
                Ok(freed) => self.finish(freed.unwrap_or(0)),
            },
        }
    }

    fn prune_next(&mut self, writer: &WriterHandle) {
        let cutoff = crate::platform::clock::unix_now() - self.keep.as_secs() as i64;
        match writer.try_submit(move |conn| prune_batch(conn, cutoff, false, PRUNE_BATCH_ROWS)) {
            Ok(rx) => self.step = Some(Step::Prune(rx)),
            // A busy writer: try again at the next tick.
            Err(DbError::QueueFull) => {}
            Err(e) => self.failed(e),
        }
    }

    fn vacuum(&mut self, writer: &WriterHandle) {
        match writer.try_submit(|conn| incremental_vacuum(conn, None)) {
            Ok(rx) => self.step = Some(Step::Vacuum(rx)),
            Err(_) => self.finish(0),
        }
    }

    fn failed(&mut self, e: DbError) {
        log::error!("retention: pruning failed, will retry in an hour: {e}");
        self.totals = PruneTotals::default();
        self.next_run = Instant::now() + RUN_EVERY;
    }

    fn finish(&mut self, bytes_reclaimed: u64) {
        let totals = std::mem::take(&mut self.totals);
        if totals.events_deleted > 0 {
            log::info!(
                "retention: deleted {} events older than {:?}, reclaimed {bytes_reclaimed} bytes",
                totals.events_deleted,
                self.keep,
            );
        }
        self.next_run = Instant::now() + RUN_EVERY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_events(writer: &WriterHandle) -> i64 {
        writer
            .call(|conn| Ok(conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?))
            .unwrap()
    }

    /// The admin thread's tick never waits: with the writer held, a tick returns at once;
    /// later ticks collect each batch and start the next until the old events are gone.
    #[test]
    fn ticks_never_wait_and_prune_in_batches_through_the_writer() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate::run(&mut conn).unwrap();
        let (writer, thread) = crate::db::writer::spawn(conn, 4).unwrap();
        let old_events = 2 * PRUNE_BATCH_ROWS + 7;
        writer
            .call(move |conn| {
                let tx = conn.transaction()?;
                for _ in 0..old_events {
                    tx.execute(
                        "INSERT INTO events (ts, domain, type, visitor, source) \
                         VALUES (1000, 1, 1, 0, 1)",
                        [],
                    )?;
                }
                tx.commit()?;
                Ok(())
            })
            .unwrap();
        let (running_tx, running_rx) = crossbeam_channel::bounded(1);
        writer
            .try_submit(move |_| {
                let _ = running_tx.send(());
                std::thread::sleep(Duration::from_secs(2));
                Ok(())
            })
            .unwrap();
        running_rx.recv_timeout(Duration::from_secs(5)).unwrap();

        let mut retention = AutoRetention::new(Duration::from_secs(86_400));
        let started = Instant::now();
        retention.tick(&writer);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the tick waited"
        );
        assert!(retention.step.is_some(), "the first batch is queued");

        let deadline = Instant::now() + Duration::from_secs(30);
        while (retention.step.is_some() || retention.next_run <= Instant::now())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
            retention.tick(&writer);
        }
        assert!(retention.step.is_none(), "retention did not finish");
        assert!(retention.next_run > Instant::now() + RUN_EVERY / 2);
        assert_eq!(count_events(&writer), 0);
        writer.stop();
        thread.join().unwrap();
    }
}
