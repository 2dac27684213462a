//! The disk breaker (DESIGN §5): when the filesystem of the database or of the temp dir is
//! at or above a threshold (default 90 %), deploys and other bulk writes are refused with
//! 507 while serving, small writes and deletions that free space carry on. Checked just
//! before a bulk write starts, so it costs one `statvfs` per checked path per deploy.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::platform::metrics::Kind::{Counter as C, Gauge as G};
use crate::platform::metrics::{Collector, Counter, Desc, Source};
use crate::platform::reserve::{Reserve, RESERVE_RELEASES};
use crate::platform::sys;

/// Leaves room for SQLite to checkpoint and vacuum, and for the operator to react, before
/// the disk is actually full (a full disk can stop even deletions from committing).
pub const DEFAULT_THRESHOLD: u8 = 90;

/// Bulk writes refused by the breaker, process-wide.
pub static DISK_REFUSALS: Counter = Counter::new();

/// Watches the filesystems holding `paths` (e.g. the data dir and the temp dir).
#[derive(Clone, Debug)]
pub struct DiskGuard {
    paths: Vec<PathBuf>,
    threshold_percent: u8,
    /// The data dir's reserve, reported with the disk metrics.
    reserve: Option<Arc<Reserve>>,
}

/// Why the breaker refused a bulk write.
#[derive(Debug)]
pub enum DiskError {
    /// The filesystem holding `path` is at or above the threshold.
    Full {
        path: PathBuf,
        used_percent: u8,
        threshold: u8,
    },
    /// The filesystem holding `path` could not be inspected (statvfs failed).
    Unreadable { path: PathBuf, source: io::Error },
}

impl fmt::Display for DiskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DiskError::Full {
                path,
                used_percent,
                threshold,
            } => write!(
                f,
                "the filesystem holding {} is {used_percent}% full (the limit is {threshold}%, \
                 --disk-threshold); bulk writes are refused until space is freed",
                path.display()
            ),
            DiskError::Unreadable { path, source } => {
                write!(f, "checking free space on {}: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for DiskError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DiskError::Full { .. } => None,
            DiskError::Unreadable { source, .. } => Some(source),
        }
    }
}

/// Space on one watched path.
struct Usage {
    path: PathBuf,
    used_percent: u8,
    /// Exact, for metrics; `used_percent` (rounded down) drives the breaker.
    used_ratio: f64,
    avail_bytes: u64,
}

impl DiskGuard {
    /// `threshold_percent` is clamped to 1..=100.
    pub fn new(paths: Vec<PathBuf>, threshold_percent: u8) -> DiskGuard {
        DiskGuard {
            paths,
            threshold_percent: threshold_percent.clamp(1, 100),
            reserve: None,
        }
    }

    /// Reports `reserve` with the disk metrics (`fazt_disk_reserve_bytes`).
    pub fn with_reserve(mut self, reserve: Arc<Reserve>) -> DiskGuard {
        self.reserve = Some(reserve);
        self
    }

    /// The data dir's reserve, when the server has one.
    pub fn reserve(&self) -> Option<&Arc<Reserve>> {
        self.reserve.as_ref()
    }

    pub fn threshold_percent(&self) -> u8 {
        self.threshold_percent
    }

    /// `Err(DiskError::Full)` naming the fullest path when any watched filesystem is at
    /// or above the threshold; `Err(DiskError::Unreadable)` if one cannot be inspected.
    pub fn check(&self) -> Result<(), DiskError> {
        let mut worst: Option<Usage> = None;
        for path in &self.paths {
            let usage = measure(path)?;
            if worst
                .as_ref()
                .is_none_or(|w| usage.used_percent > w.used_percent)
            {
                worst = Some(usage);
            }
        }
        match worst {
            Some(w) if w.used_percent >= self.threshold_percent => {
                DISK_REFUSALS.inc();
                Err(DiskError::Full {
                    path: w.path,
                    used_percent: w.used_percent,
                    threshold: self.threshold_percent,
                })
            }
            _ => Ok(()),
        }
    }

    /// `(path, used percent, available bytes)` for each watched path, for the health API.
    /// A path whose filesystem cannot be inspected is left out (and logged).
    pub fn usage(&self) -> Vec<(PathBuf, u8, u64)> {
        self.paths
            .iter()
            .filter_map(|path| match measure(path) {
                Ok(u) => Some((u.path, u.used_percent, u.avail_bytes)),
                Err(e) => {
                    log::warn!("{e}");
                    None
                }
            })
            .collect()
    }
}

static USED_RATIO: Desc = Desc::new(
    G,
    "fazt_disk_used_ratio",
    "disk.used_ratio",
    "Used fraction (0 to 1) of a watched filesystem; space reserved for root counts as used.",
)
.labelled("path");
static AVAILABLE: Desc = Desc::new(
    G,
    "fazt_disk_available_bytes",
    "disk.available_bytes",
    "Space available to fazt on a watched filesystem.",
)
.labelled("path");
static THRESHOLD: Desc = Desc::new(
    G,
    "fazt_disk_threshold_ratio",
    "disk.threshold_ratio",
    "Used fraction at which bulk writes are refused.",
);
static RESERVE_BYTES: Desc = Desc::new(
    G,
    "fazt_disk_reserve_bytes",
    "disk.reserve_bytes",
    "Bytes the disk reserve (data/fazt.reserve) holds now; 0 while it is released.",
);
static RESERVE_RELEASED: Desc = Desc::new(
    C,
    "fazt_disk_reserve_releases_total",
    "disk.reserve_releases",
    "Times the disk reserve was deleted to let a write on a full disk finish.",
);
static REFUSALS: Desc = Desc::new(
    C,
    "fazt_disk_refusals_total",
    "disk.refusals",
    "Bulk writes refused with 507 by the disk breaker.",
);

impl Source for DiskGuard {
    /// Measures each watched path once per scrape; one that cannot be inspected is left
    /// out (and logged), as in [`DiskGuard::usage`].
    fn collect(&self, out: &mut Collector) {
        let measured: Vec<Usage> = self
            .paths
            .iter()
            .filter_map(|path| measure(path).map_err(|e| log::warn!("{e}")).ok())
            .collect();
        out.empty(&USED_RATIO);
        for u in &measured {
            out.float_with(&USED_RATIO, &u.path.display().to_string(), u.used_ratio);
        }
        out.empty(&AVAILABLE);
        for u in &measured {
            out.int_with(&AVAILABLE, &u.path.display().to_string(), u.avail_bytes);
        }
        out.float(&THRESHOLD, f64::from(self.threshold_percent) / 100.0);
        out.int(&REFUSALS, DISK_REFUSALS.get());
        let reserved = self
            .reserve
            .as_ref()
            .filter(|r| r.is_present())
            .map_or(0, |r| r.size());
        out.int(&RESERVE_BYTES, reserved);
        out.int(&RESERVE_RELEASED, RESERVE_RELEASES.get());
    }
}

/// Parses a disk threshold: a whole percentage 1–100, `%` optional (`90`, `85%`).
pub fn parse_threshold(text: &str) -> Result<u8, String> {
    let digits = text.trim();
    let digits = digits.strip_suffix('%').unwrap_or(digits).trim_end();
    match digits.parse::<u8>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err("must be a whole percentage between 1 and 100".to_string()),
    }
}

/// Used space in whole percent, rounded down: `(total - avail) / total`. Space reserved
/// for root counts as used, since fazt cannot write to it.
pub fn used_percent(total: u64, avail: u64) -> u8 {
    if total == 0 {
        return 0;
    }
    let used = u128::from(total.saturating_sub(avail));
    u8::try_from(used * 100 / u128::from(total)).unwrap_or(100)
}

/// Used space as a fraction 0..=1, with the same rules as [`used_percent`].
pub fn used_ratio(total: u64, avail: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    total.saturating_sub(avail) as f64 / total as f64
}

/// Usage of the filesystem holding `path`. A path that does not exist yet (a temp dir
/// created on first use) is measured at its nearest existing ancestor.
fn measure(path: &Path) -> Result<Usage, DiskError> {
    let existing = path
        .ancestors()
        .find(|p| !p.as_os_str().is_empty() && p.exists())
        .unwrap_or(Path::new("."));
    let (total, avail) = sys::disk_space(existing).map_err(|source| DiskError::Unreadable {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Usage {
        path: path.to_path_buf(),
        used_percent: used_percent(total, avail),
        used_ratio: used_ratio(total, avail),
        avail_bytes: avail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threshold_parses() {
        assert_eq!(parse_threshold("75"), Ok(75));
        assert_eq!(parse_threshold(" 80% "), Ok(80));
        assert_eq!(parse_threshold("1"), Ok(1));
        assert_eq!(parse_threshold("100"), Ok(100));
        for bad in ["0", "101", "-5", "ninety", "", "90.5", "256"] {
            let err = parse_threshold(bad).expect_err(bad);
            assert!(err.contains("between 1 and 100"), "{err}");
        }
    }

    #[test]
    fn used_percent_rounds_down() {
        assert_eq!(used_percent(100, 100), 0);
        assert_eq!(used_percent(100, 0), 100);
        assert_eq!(used_percent(1000, 101), 89);
        assert_eq!(used_percent(1000, 100), 90);
        assert_eq!(used_percent(0, 0), 0);
        assert_eq!(used_percent(u64::MAX, 0), 100);
        assert_eq!(used_percent(10, 20), 0);
    }

    #[test]
    fn used_ratio_is_exact() {
        assert_eq!(used_ratio(1000, 101), 0.899);
        assert_eq!(used_ratio(100, 100), 0.0);
        assert_eq!(used_ratio(100, 0), 1.0);
        assert_eq!(used_ratio(0, 0), 0.0);
        assert_eq!(used_ratio(10, 20), 0.0);
    }

    #[test]
    fn a_missing_path_is_measured_at_its_ancestor() {
        let missing = std::env::temp_dir().join("fazt-disk-missing/a/b");
        let usage = measure(&missing).expect("measure");
        assert_eq!(usage.path, missing);
        assert!(usage.used_percent <= 100);
    }
}
