//! Scheduled backups (`FAZT_BACKUP_DIR`, `FAZT_BACKUP_EVERY`, `FAZT_BACKUP_KEEP`): the
//! `fazt-backup` thread takes a backup the way `fazt db backup` does (`backup::backup`,
//! which never holds the writer) once a period into the directory, as
//! `fazt-<UTC time>.db`, and keeps the newest `keep` of them. How the last one went is in
//! [`BackupStatus`]: `/api/system/health` (readiness `degraded` when the last one failed or
//! the newest is older than two periods) and `/metrics`.
//!
//! The period runs from the newest backup in the directory, so a restart neither takes one
//! at once nor skips one. The disk breaker is honoured: while the directory's filesystem is
//! over `FAZT_DISK_THRESHOLD`, no copy is started (a failure, with that reason). A backup
//! through the API at the same time waits its turn ([`BackupSlot`]).

use super::backup::{backup, BackupSlot};
use crate::platform::disk::DiskGuard;
use crate::platform::metrics::{Collector, Desc, Kind, Source};
use parking_lot::{Condvar, Mutex};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where, how often, how many.
#[derive(Clone, Debug)]
pub(crate) struct BackupPolicy {
    pub dir: PathBuf,
    pub every: Duration,
    pub keep: usize,
}

/// A failed backup is tried again this soon (or at the next period, if that is sooner).
const RETRY_AFTER: Duration = Duration::from_secs(60);

/// How the scheduled backups have gone.
#[derive(Debug, Default)]
pub(crate) struct BackupStatus {
    every: Duration,
    last: Mutex<Last>,
}

#[derive(Debug, Default, Clone)]
struct Last {
    /// Unix seconds of the newest good backup (found in the directory at start, or made).
    success_at: Option<u64>,
    bytes: u64,
    duration_ms: u64,
    path: Option<PathBuf>,
    /// The last attempt's error; cleared by a success.
    error: Option<String>,
    successes: u64,
    failures: u64,
}

impl BackupStatus {
    fn new(every: Duration) -> BackupStatus {
        BackupStatus {
            every,
            last: Mutex::new(Last::default()),
        }
    }

    /// Why readiness is `degraded`, if it is: the last backup failed, or the newest is
    /// older than two periods (`started`: when the server started, so a fresh install gets
    /// two periods for its first).
    pub(crate) fn reasons(&self, now: u64, started: u64) -> Vec<String> {
        let last = self.last.lock();
        let mut reasons = Vec::new();
        if let Some(error) = &last.error {
            reasons.push(format!("the last scheduled backup failed: {error}"));
        }
        let since = last.success_at.unwrap_or(started);
        let age = now.saturating_sub(since);
        if age > 2 * self.every.as_secs() {
            reasons.push(match last.success_at {
                Some(_) => format!(
                    "the newest backup is {age} s old (FAZT_BACKUP_EVERY is {} s)",
                    self.every.as_secs()
                ),
                None => format!(
                    "no backup yet after {age} s (FAZT_BACKUP_EVERY is {} s)",
                    self.every.as_secs()
                ),
            });
        }
        reasons
    }

    /// The state as JSON, for `/api/system/health` (`backups`).
    pub(crate) fn to_json(&self) -> serde_json::Value {
        let last = self.last.lock();
        serde_json::json!({
            "last_success_at": last.success_at,
            "last_bytes": last.bytes,
            "last_duration_ms": last.duration_ms,
            "last_path": last.path.as_ref().map(|p| p.display().to_string()),
            "last_error": last.error,
            "every_seconds": self.every.as_secs(),
        })
    }

    fn succeeded(&self, at: u64, path: PathBuf, bytes: u64, duration_ms: u64) {
        let mut last = self.last.lock();
        last.success_at = Some(at);
        last.path = Some(path);
        last.bytes = bytes;
        last.duration_ms = duration_ms;
        last.error = None;
        last.successes += 1;
    }

    fn failed(&self, error: String) {
        log::error!("scheduled backup failed: {error}");
        let mut last = self.last.lock();
        last.error = Some(error);
        last.failures += 1;
    }
}

static LAST_SUCCESS: Desc = Desc::new(
    Kind::Gauge,
    "fazt_backup_last_success_timestamp_seconds",
    "backups.last_success_timestamp_seconds",
    "Unix time of the newest good scheduled backup (0: none yet)",
);
static LAST_BYTES: Desc = Desc::new(
    Kind::Gauge,
    "fazt_backup_last_size_bytes",
    "backups.last_size_bytes",
    "Size of the newest good scheduled backup",
);
static LAST_FAILED: Desc = Desc::new(
    Kind::Gauge,
    "fazt_backup_last_failed",
    "backups.last_failed",
    "1 when the last scheduled backup failed (its error is in /api/system/health)",
);
static RUNS: Desc = Desc::new(
    Kind::Counter,
    "fazt_backups_total",
    "backups.runs",
    "Scheduled backups by result",
)
.labelled("result");

impl Source for BackupStatus {
    fn collect(&self, out: &mut Collector) {
        let last = self.last.lock().clone();
        out.int(&LAST_SUCCESS, last.success_at.unwrap_or(0));
        out.int(&LAST_BYTES, last.bytes);
        out.int(&LAST_FAILED, u64::from(last.error.is_some()));
        out.int_with(&RUNS, "ok", last.successes);
        out.int_with(&RUNS, "failed", last.failures);
    }
}

/// The running schedule; [`Scheduler::stop`] ends it.
pub(crate) struct Scheduler {
    wake: Arc<(Mutex<bool>, Condvar)>,
    pub(crate) status: Arc<BackupStatus>,
}

impl Scheduler {
    /// Starts the `fazt-backup` thread for the database at `db`.
    pub(crate) fn start(
        policy: BackupPolicy,
        db: PathBuf,
        slot: BackupSlot,
        threshold_percent: u8,
    ) -> std::io::Result<Scheduler> {
        std::fs::create_dir_all(&policy.dir)?;
        remove_unfinished(&policy.dir);
        let status = Arc::new(BackupStatus::new(policy.every));
        if let Some((at, path, bytes)) = newest(&policy.dir) {
            status.succeeded(at, path, bytes, 0);
        }
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let run = Run {
            retry_at: None,
            guard: DiskGuard::new(vec![policy.dir.clone()], threshold_percent),
            policy,
            db,
            slot,
            status: Arc::clone(&status),
            wake: Arc::clone(&wake),
        };
        std::thread::Builder::new()
            .name("fazt-backup".into())
            .spawn(move || run.run())?;
        Ok(Scheduler { wake, status })
    }

    /// Stops the schedule. Not joined: a backup in progress (of a large file, minutes) must
    /// not hold the shutdown; its temp file is removed at the next start
    /// ([`remove_unfinished`]), and the published backups are whole whenever it stops.
    pub(crate) fn stop(&self) {
        *self.wake.0.lock() = true;
        self.wake.1.notify_all();
    }
}

struct Run {
    /// After a failure: when to try again (unix seconds).
    retry_at: Option<u64>,
    policy: BackupPolicy,
    db: PathBuf,
    slot: BackupSlot,
    guard: DiskGuard,
    status: Arc<BackupStatus>,
    wake: Arc<(Mutex<bool>, Condvar)>,
}

impl Run {
    fn run(mut self) {
        super::backup::run_in_background();
        loop {
            let wait = self.until_due();
            let mut stopped = self.wake.0.lock();
            if !*stopped && !wait.is_zero() {
                self.wake.1.wait_for(&mut stopped, wait);
            }
            if *stopped {
                return;
            }
            drop(stopped);
            if self.until_due().is_zero() {
                self.take_one();
            }
        }
    }

    /// Time until the next backup is due: a period after the newest good one, or the
    /// retry after a failure.
    fn until_due(&self) -> Duration {
        let now = now();
        let due = match (self.retry_at, self.status.last.lock().success_at) {
            (Some(at), _) => at,
            (None, Some(at)) => at + self.policy.every.as_secs(),
            (None, None) => now,
        };
        Duration::from_secs(due.saturating_sub(now))
    }

    fn take_one(&mut self) {
        self.retry_at = None;
        if let Err(error) = self.attempt() {
            self.status.failed(error);
            let retry = RETRY_AFTER.min(self.policy.every).as_secs().max(1);
            self.retry_at = Some(now() + retry);
        }
    }

    fn attempt(&self) -> Result<(), String> {
        self.guard.check().map_err(|e| e.to_string())?;
        let Some(_slot) = self.slot.try_take() else {
            return Err("another backup (through the API) was running".into());
        };
        let at = now();
        let path = self.policy.dir.join(file_name(at));
        let report = backup(&self.db, &path, false).map_err(|e| e.to_string())?;
        let ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
        log::info!(
            "scheduled backup {} ({} bytes, {ms} ms)",
            path.display(),
            report.bytes
        );
        self.status.succeeded(at, path, report.bytes, ms);
        prune(&self.policy.dir, self.policy.keep);
        Ok(())
    }
}

fn now() -> u64 {
    crate::platform::clock::unix_now().max(0) as u64
}

/// `fazt-20261203T134500Z.db`: sorts by time, and names nothing else.
fn file_name(unix: u64) -> String {
    let (y, mo, d) = crate::http::response::civil_from_days((unix / 86_400) as i64);
    let s = unix % 86_400;
    format!(
        "fazt-{y:04}{mo:02}{d:02}T{:02}{:02}{:02}Z.db",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Whether `name` is one of ours (so pruning never deletes anything else).
fn is_ours(name: &str) -> bool {
    name.len() == "fazt-20261203T134500Z.db".len()
        && name.starts_with("fazt-")
        && name.ends_with("Z.db")
        && name.as_bytes()[13] == b'T'
}

/// Our backups in `dir`, oldest first.
fn ours(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| is_ours(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// The newest backup in `dir`: when it was taken (its mtime), its path and size.
fn newest(dir: &Path) -> Option<(u64, PathBuf, u64)> {
    let path = ours(dir).pop()?;
    let meta = std::fs::metadata(&path).ok()?;
    let at = meta
        .modified()
        .ok()?
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs();
    Some((at, path, meta.len()))
}

/// Deletes our oldest backups beyond the newest `keep`.
fn prune(dir: &Path, keep: usize) {
    let all = ours(dir);
    let excess = all.len().saturating_sub(keep);
    for old in &all[..excess] {
        match std::fs::remove_file(old) {
            Ok(()) => log::info!("deleted old backup {}", old.display()),
            Err(e) => log::warn!("deleting old backup {}: {e}", old.display()),
        }
    }
}

/// Removes what a backup stopped mid-copy left in `dir`: its temp files
/// (`.fazt-….db.fazt-backup-…`, see `backup::backup`) and their journals.
fn remove_unfinished(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(".fazt-") && name.contains(".db.fazt-backup-") {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => log::info!("removed an unfinished backup {}", entry.path().display()),
                Err(e) => log::warn!("removing {}: {e}", entry.path().display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backup_names_sort_by_time_and_only_ours_are_pruned() {
        assert_eq!(file_name(1_796_306_851), "fazt-20261203T140731Z.db");
        assert!(is_ours(&file_name(0)));
        for other in [
            "fazt.db",
            "fazt-20261203T140731Z.db.bak",
            "notes.txt",
            "fazt-x.db",
        ] {
            assert!(!is_ours(other), "{other}");
        }
        let tmp = crate::maintenance::tests::Dir::new("prune");
        let dir = &tmp.0;
        let names: Vec<String> = (0..5)
            .map(|i| file_name(1_796_306_851 + i * 86_400))
            .collect();
        for name in names.iter().chain([&"keep-me.db".to_string()]) {
            std::fs::write(dir.join(name), b"x").unwrap();
        }
        prune(dir, 2);
        let mut left: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [names[3].clone(), names[4].clone(), "keep-me.db".to_string()]
        );
    }

    #[test]
    fn readiness_degrades_on_a_failure_or_a_backup_two_periods_old() {
        let status = BackupStatus::new(Duration::from_secs(100));
        assert!(
            status.reasons(1_000, 900).is_empty(),
            "a fresh start has time"
        );
        assert_eq!(
            status.reasons(1_201, 1_000).len(),
            1,
            "no backup after two periods"
        );
        status.succeeded(1_000, PathBuf::from("/b"), 10, 1);
        assert!(status.reasons(1_200, 0).is_empty());
        assert_eq!(status.reasons(1_201, 0).len(), 1, "two periods old");
        status.failed("disk".into());
        assert!(status.reasons(1_010, 0)[0].contains("disk"));
        status.succeeded(1_020, PathBuf::from("/c"), 10, 1);
        assert!(
            status.reasons(1_030, 0).is_empty(),
            "a success clears the failure"
        );
    }
}
