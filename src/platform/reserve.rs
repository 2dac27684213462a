//! The disk reserve: a file of zeros in the data dir (`fazt.reserve`) that holds a few MiB
//! of real blocks while the disk has room. When the disk fills up, SQLite needs room in
//! the WAL even to delete, and acknowledged analytics events need room to commit; deleting
//! the reserve gives that room back at once. It is released only when a write that must
//! succeed (an event batch, a site deletion, `db prune`, a vacuum) failed for lack of
//! space, and created again once the disk has room for it twice over.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::platform::metrics::Counter;
use crate::platform::sys;

/// File name of the reserve inside the data dir.
pub const FILE_NAME: &str = "fazt.reserve";
/// 8 MiB: the WAL's resting size (`journal_size_limit`), enough for a batch of 10,000
/// events with its roll-ups, or a site deletion's freelist pages, on a full disk.
pub const DEFAULT_SIZE: u64 = 8 << 20;
/// Fewest seconds between two attempts at re-creating a released reserve, so a disk that
/// stays full costs one `statvfs` per interval, not one per commit.
const RESTORE_INTERVAL: Duration = Duration::from_secs(5);

/// Times the reserve was deleted to make room, process-wide.
pub static RESERVE_RELEASES: Counter = Counter::new();

/// The reserve file of one data dir. Shared (`Arc`) by the writer and the admin thread.
#[derive(Debug)]
pub struct Reserve {
    path: PathBuf,
    size: u64,
    present: AtomicBool,
    last_restore: parking_lot::Mutex<Option<Instant>>,
}

impl Reserve {
    /// The reserve of `data_dir`, `size` bytes (0 disables it). Notes whether a whole one
    /// is already there; call [`Reserve::ensure`] to create it.
    pub fn new(data_dir: &Path, size: u64) -> Reserve {
        let path = data_dir.join(FILE_NAME);
        let present = size > 0 && fs::metadata(&path).is_ok_and(|m| m.len() == size);
        Reserve {
            path,
            size,
            present: AtomicBool::new(present),
            last_restore: parking_lot::Mutex::new(None),
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the reserve holds its space now.
    pub fn is_present(&self) -> bool {
        self.present.load(Ordering::SeqCst)
    }

    /// `"present"`, `"released"` (deleted to make room, or no room to create it yet) or
    /// `"disabled"` (`--disk-reserve 0`), for the health API.
    pub fn state(&self) -> &'static str {
        match (self.size, self.is_present()) {
            (0, _) => "disabled",
            (_, true) => "present",
            (_, false) => "released",
        }
    }

    /// Creates the reserve if it is missing and the disk has room for it twice over (so
    /// creating it never takes the last free space). Returns whether it is present.
    pub fn ensure(&self) -> bool {
        if self.size == 0 || self.is_present() {
            return self.is_present();
        }
        let dir = self.path.parent().unwrap_or(Path::new("."));
        match sys::disk_space(dir) {
            Ok((_, avail)) if avail >= self.size.saturating_mul(2) => {}
            Ok(_) => return false,
            Err(e) => {
                log::warn!(
                    "checking room for the disk reserve in {}: {e}",
                    dir.display()
                );
                return false;
            }
        }
        match self.create() {
            Ok(()) => {
                self.present.store(true, Ordering::SeqCst);
                log::info!(
                    "disk reserve of {} in place at {}",
                    crate::platform::units::format_bytes(self.size),
                    self.path.display()
                );
                true
            }
            Err(e) => {
                log::warn!("creating the disk reserve {}: {e}", self.path.display());
                false
            }
        }
    }

    /// [`Reserve::ensure`], at most once per few seconds: for the writer after each
    /// successful commit, while the reserve is missing.
    pub fn restore_soon(&self) {
        if self.size == 0 || self.is_present() {
            return;
        }
        {
            let mut last = self.last_restore.lock();
            if last.is_some_and(|t| t.elapsed() < RESTORE_INTERVAL) {
                return;
            }
            *last = Some(Instant::now());
        }
        self.ensure();
    }

    /// Deletes the reserve to give its space to a write that failed for lack of room.
    /// Returns whether space was freed (false: there was no reserve to delete).
    pub fn release(&self) -> bool {
        if self.size == 0 {
            return false;
        }
        self.present.store(false, Ordering::SeqCst);
        match fs::remove_file(&self.path) {
            Ok(()) => {
                RESERVE_RELEASES.inc();
                *self.last_restore.lock() = Some(Instant::now());
                log::warn!(
                    "the disk is full: released the {} disk reserve ({}) so writes can \
                     finish; free space, and it is re-created when there is room",
                    crate::platform::units::format_bytes(self.size),
                    self.path.display()
                );
                true
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => false,
            Err(e) => {
                log::error!("deleting the disk reserve {}: {e}", self.path.display());
                false
            }
        }
    }

    /// Allocates the blocks under a temp name (really allocated, unlike `set_len`'s sparse
    /// file), syncs and renames, so a crash never leaves a short file under the real name.
    fn create(&self) -> io::Result<()> {
        let tmp = self.path.with_extension("reserve.tmp");
        let written = allocate(&tmp, self.size).and_then(|()| fs::rename(&tmp, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        written
    }
}

/// `fallocate` (instant, no data written); where the filesystem can't, zeros are written.
fn allocate(path: &Path, size: u64) -> io::Result<()> {
    let mut file = File::create(path)?;
    if let Err(e) = sys::allocate(&file, size) {
        if e.kind() == io::ErrorKind::StorageFull || e.raw_os_error() == Some(libc::EFBIG) {
            return Err(e);
        }
        let chunk = [0u8; 64 * 1024];
        let mut left = size;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            file.write_all(&chunk[..n])?;
            left -= n as u64;
        }
    }
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fazt-reserve-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        dir
    }

    #[test]
    fn created_released_and_recreated() {
        let dir = dir("cycle");
        let reserve = Reserve::new(&dir, 256 * 1024);
        assert_eq!(reserve.state(), "released");
        assert!(reserve.ensure());
        assert_eq!(reserve.state(), "present");
        assert_eq!(
            fs::metadata(reserve.path()).expect("file").len(),
            256 * 1024
        );
        // A second server start sees the whole file.
        assert!(Reserve::new(&dir, 256 * 1024).is_present());
        let before = RESERVE_RELEASES.get();
        assert!(reserve.release());
        assert!(RESERVE_RELEASES.get() > before);
        assert!(!reserve.path().exists());
        assert!(!reserve.release(), "nothing left to free");
        // restore_soon waits its interval after a release; ensure does not.
        reserve.restore_soon();
        assert!(!reserve.is_present());
        assert!(reserve.ensure());
        // A short file (a crash mid-create under an older name) is not a reserve.
        fs::write(reserve.path(), b"short").expect("write");
        assert!(!Reserve::new(&dir, 256 * 1024).is_present());
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn zero_disables() {
        let dir = dir("off");
        let reserve = Reserve::new(&dir, 0);
        assert_eq!(reserve.state(), "disabled");
        assert!(!reserve.ensure());
        assert!(!reserve.release());
        assert!(!reserve.path().exists());
        let _ = fs::remove_dir_all(&dir);
    }
}
