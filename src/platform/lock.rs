//! One server per data directory: an exclusive, non-blocking lock (`flock`, through std's
//! `File::try_lock`, so no `unsafe`) on `fazt.lock` in the data dir, held for the
//! server's life. Two servers on one database would each cache and serve their own view
//! and race each other's deploys. The lock file holds the holder's pid, so the refusal can
//! name it. CLI commands that write do not take it: SQLite serialises them.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const LOCK_FILE: &str = "fazt.lock";

/// Held while the server runs; the kernel releases the lock when the process ends, however
/// it ends, so a crash never leaves a stale lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

impl DataDirLock {
    /// Takes the lock of `data_dir`, or says who holds it.
    pub fn acquire(data_dir: &Path) -> Result<DataDirLock, String> {
        let path = data_dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("cannot open the lock file {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = holder_pid(&mut file)
                    .map(|pid| format!(" (pid {pid})"))
                    .unwrap_or_default();
                return Err(format!(
                    "another fazt server{holder} is already running on the data directory {}; \
                     stop it first, or give this one its own --data",
                    data_dir.display()
                ));
            }
            Err(TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        let pid = std::process::id();
        let written = file
            .set_len(0)
            .and_then(|_| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{pid}"));
        if let Err(e) = written {
            log::warn!("could not write the pid to {}: {e}", path.display());
        }
        Ok(DataDirLock { _file: file })
    }
}

fn holder_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_dir_is_refused_with_the_holders_pid() {
        let dir = std::env::temp_dir().join(format!("fazt-lock-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let first = DataDirLock::acquire(&dir).unwrap();
        let err = DataDirLock::acquire(&dir).unwrap_err();
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        assert!(err.contains(&dir.display().to_string()), "{err}");
        drop(first);
        let again = DataDirLock::acquire(&dir);
        assert!(again.is_ok());
        drop(again);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
