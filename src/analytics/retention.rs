//! Retention: deleting raw events older than a cutoff in bounded batches, each its own
//! short transaction, so serving and ingestion never wait long on the write lock; then
//! returning the freed pages (incremental vacuum). Roll-ups are kept unless asked.

use super::store::prune_batch;
use crate::db::writer::WriterHandle;
use crate::db::{incremental_vacuum, DbError};
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

/// Prunes on a write connection of its own (the `fazt db prune` command).
pub fn prune_now(
    conn: &mut Connection,
    cutoff_ts: i64,
    include_rollups: bool,
) -> Result<PruneTotals, DbError> {
    let mut totals = PruneTotals::default();
    loop {
        let progress = prune_batch(conn, cutoff_ts, include_rollups, PRUNE_BATCH_ROWS)?;
        totals.events_deleted += progress.events_deleted;
        totals.rollup_rows_deleted += progress.rollup_rows_deleted;
        if progress.done {
            break;
        }
    }
    totals.bytes_reclaimed = incremental_vacuum(conn, None)?;
    Ok(totals)
}

/// Automatic retention (`FAZT_RETENTION`): once an hour, raw events older than the
/// retention are pruned, one batch per admin tick through the writer, so the admin
/// thread never waits long.
pub struct AutoRetention {
    keep: Duration,
    next_run: Instant,
    running: Option<PruneTotals>,
}

const RUN_EVERY: Duration = Duration::from_secs(3600);

impl AutoRetention {
    pub fn new(keep: Duration) -> AutoRetention {
        AutoRetention {
            keep,
            next_run: Instant::now(),
            running: None,
        }
    }

    pub fn tick(&mut self, writer: &WriterHandle) {
        if self.running.is_none() && Instant::now() < self.next_run {
            return;
        }
        let cutoff = crate::platform::clock::unix_now() - self.keep.as_secs() as i64;
        let step = writer.call(move |conn| prune_batch(conn, cutoff, false, PRUNE_BATCH_ROWS));
        let mut totals = self.running.take().unwrap_or_default();
        match step {
            Ok(progress) if !progress.done => {
                totals.events_deleted += progress.events_deleted;
                self.running = Some(totals);
            }
            Ok(progress) => {
                totals.events_deleted += progress.events_deleted;
                totals.bytes_reclaimed = writer
                    .call(|conn| incremental_vacuum(conn, None))
                    .unwrap_or(0);
                if totals.events_deleted > 0 {
                    log::info!(
                        "retention: deleted {} events older than {:?}, reclaimed {} bytes",
                        totals.events_deleted,
                        self.keep,
                        totals.bytes_reclaimed
                    );
                }
                self.next_run = Instant::now() + RUN_EVERY;
            }
            Err(e) => {
                log::error!("retention: pruning failed, will retry in an hour: {e}");
                self.next_run = Instant::now() + RUN_EVERY;
            }
        }
    }
}
