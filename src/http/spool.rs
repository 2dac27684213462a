//! Request bodies too large to hold in memory (deploy uploads): the first `in_memory`
//! bytes stay in `Request::body`; past that the body moves to a temp file and the rest
//! is appended there as it arrives. The file is the request's: it is removed when the
//! request is dropped, whatever happens to it (answered, refused, panicked, shut down).
//!
//! Writing to the file happens on the thread that reads the socket. These are page-cache
//! writes of at most one socket read each, so they don't hold the event loop longer than
//! copying the bytes would; the disk itself is checked every `DISK_CHECK_EVERY` bytes.

use super::HttpError;
use crate::platform::disk::{DiskError, DiskGuard};
use crate::platform::sys::ErrnoClass;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// File names of spooled bodies start with this, so start-up can remove what a crash
/// left behind without touching anything else in a shared temp dir.
pub const SPOOL_PREFIX: &str = "fazt-upload-";
/// How often, in bytes written, the disk breaker is consulted during an upload.
const DISK_CHECK_EVERY: u64 = 8 * 1024 * 1024;

static NEXT_SPOOL: AtomicU64 = AtomicU64::new(0);

/// How a route wants its large bodies kept.
#[derive(Clone, Debug)]
pub struct SpoolPolicy {
    /// Bytes kept in memory before the body moves to a file (`FAZT_UPLOAD_RAM`).
    pub in_memory: usize,
    /// Where the file goes (`FAZT_TEMP_DIR`).
    pub dir: PathBuf,
    /// Refuses the upload with 507 when the disk fills up while it arrives.
    pub disk: DiskGuard,
}

/// A body spooled to a temp file; the file is removed on drop.
#[derive(Debug)]
pub struct SpooledBody {
    file: File,
    path: PathBuf,
    len: u64,
    checked_at: u64,
}

impl SpooledBody {
    /// Creates the file (only ours: `create_new`, mode 0600) holding `head` so far.
    fn create(policy: &SpoolPolicy, head: &[u8]) -> io::Result<SpooledBody> {
        let n = NEXT_SPOOL.fetch_add(1, Ordering::Relaxed);
        let path = policy
            .dir
            .join(format!("{SPOOL_PREFIX}{}-{n}", std::process::id()));
        let file = create_private(&path)?;
        let mut spooled = SpooledBody {
            file,
            path,
            len: 0,
            checked_at: 0,
        };
        spooled.file.write_all(head)?;
        spooled.len = head.len() as u64;
        Ok(spooled)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A reader of the whole body from its start (an independent file offset).
    pub fn open(&self) -> io::Result<File> {
        File::open(&self.path)
    }
}

impl Drop for SpooledBody {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("removing upload spool {}: {e}", self.path.display());
        }
    }
}

fn create_private(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

/// Appends `data` to a body that may spool: in memory while it fits, else in the file.
pub fn append(
    body: &mut Vec<u8>,
    spooled: &mut Option<Box<SpooledBody>>,
    policy: Option<&SpoolPolicy>,
    data: &[u8],
) -> Result<(), HttpError> {
    let Some(policy) = policy else {
        body.extend_from_slice(data);
        return Ok(());
    };
    if spooled.is_none() && body.len() + data.len() <= policy.in_memory {
        body.extend_from_slice(data);
        return Ok(());
    }
    let file = match spooled {
        Some(file) => file,
        None => {
            let file = Box::new(SpooledBody::create(policy, body).map_err(spool_error)?);
            *body = Vec::new();
            spooled.insert(file)
        }
    };
    file.file.write_all(data).map_err(spool_error)?;
    file.len += data.len() as u64;
    if file.len - file.checked_at >= DISK_CHECK_EVERY {
        file.checked_at = file.len;
        policy.disk.check().map_err(|e| match e {
            DiskError::Full { .. } => HttpError::InsufficientStorage(e.to_string()),
            // The disk could not even be inspected: our fault, not a full disk.
            DiskError::Unreadable { .. } => HttpError::Internal(e.to_string()),
        })?;
    }
    Ok(())
}

/// A full disk is the client's answer 507 (try later); anything else is our fault (500,
/// logged where it is answered).
fn spool_error(e: io::Error) -> HttpError {
    match ErrnoClass::of(&e) {
        ErrnoClass::DiskFull => {
            HttpError::InsufficientStorage(format!("no space left for the upload: {e}"))
        }
        _ => HttpError::Internal(format!("could not store the upload: {e}")),
    }
}

/// Removes spooled bodies a crash left in `dir` (only ours, by prefix); returns how many.
pub fn remove_orphans(dir: &Path, prefix: &str) -> io::Result<usize> {
    let mut removed = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(prefix) {
            continue;
        }
        let path = entry.path();
        let result = if entry.file_type()?.is_dir() {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        match result {
            Ok(()) => removed += 1,
            Err(e) => log::warn!("removing leftover {}: {e}", path.display()),
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(dir: &Path, in_memory: usize) -> SpoolPolicy {
        SpoolPolicy {
            in_memory,
            dir: dir.to_path_buf(),
            disk: DiskGuard::new(vec![dir.to_path_buf()], 100),
        }
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("fazt-spool-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn only_a_full_disk_or_quota_is_507() {
        for (errno, status) in [
            (libc::ENOSPC, 507),
            (libc::EDQUOT, 507),
            (libc::EFBIG, 500),
            (libc::EIO, 500),
            (libc::EACCES, 500),
        ] {
            let error = spool_error(io::Error::from_raw_os_error(errno));
            assert_eq!(error.status(), status, "errno {errno}: {error}");
        }
    }

    #[test]
    fn small_bodies_stay_in_memory_large_ones_move_to_a_file_removed_on_drop() {
        let dir = temp_dir("move");
        let policy = policy(&dir, 10);
        let (mut body, mut spooled) = (Vec::new(), None);
        append(&mut body, &mut spooled, Some(&policy), b"hello").unwrap();
        assert!(spooled.is_none());
        assert_eq!(body, b"hello");
        append(&mut body, &mut spooled, Some(&policy), b" world!").unwrap();
        append(&mut body, &mut spooled, Some(&policy), b" more").unwrap();
        assert!(body.is_empty(), "the memory part moved into the file");
        let file = spooled.take().unwrap();
        assert_eq!(file.len(), 17);
        assert_eq!(std::fs::read(file.path()).unwrap(), b"hello world! more");
        let path = file.path().to_path_buf();
        drop(file);
        assert!(!path.exists(), "the spool file is removed with the request");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn orphans_with_our_prefix_are_removed_and_nothing_else() {
        let dir = temp_dir("orphans");
        std::fs::write(dir.join(format!("{SPOOL_PREFIX}1-2")), b"x").unwrap();
        std::fs::create_dir(dir.join("fazt-deploy-1-2")).unwrap();
        std::fs::write(dir.join("fazt-deploy-1-2/a"), b"x").unwrap();
        std::fs::write(dir.join("keep.txt"), b"x").unwrap();
        assert_eq!(remove_orphans(&dir, SPOOL_PREFIX).unwrap(), 1);
        assert_eq!(remove_orphans(&dir, "fazt-deploy-").unwrap(), 1);
        assert!(dir.join("keep.txt").exists());
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_disk_is_checked_every_8_mib_written_and_a_full_one_refuses_with_507() {
        let dir = temp_dir("disk");
        // A threshold of 1 %: any real filesystem is "full".
        let full = SpoolPolicy {
            disk: DiskGuard::new(vec![dir.clone()], 1),
            ..policy(&dir, 0)
        };
        let (mut body, mut spooled) = (Vec::new(), None);
        let chunk = vec![0u8; 1024 * 1024];
        for _ in 0..7 {
            append(&mut body, &mut spooled, Some(&full), &chunk).unwrap();
        }
        let err = append(&mut body, &mut spooled, Some(&full), &chunk).unwrap_err();
        assert_eq!(err.status(), 507);
        drop(spooled);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_temp_dir_is_an_internal_error_not_a_crash() {
        let parent = temp_dir("missing");
        let policy = policy(&parent.join("gone"), 0);
        let (mut body, mut spooled) = (Vec::new(), None);
        let err = append(&mut body, &mut spooled, Some(&policy), b"x").unwrap_err();
        assert_eq!(err.status(), 500);
        std::fs::remove_dir_all(&parent).unwrap();
    }
}
