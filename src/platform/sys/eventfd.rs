//! eventfd: how one thread wakes another's event loop.

use super::check;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// A non-blocking eventfd: other threads `notify`, the owning loop sees it readable.
/// Held as a `File` (as mio does), so reading and writing the counter is safe I/O.
pub struct EventFd {
    file: std::fs::File,
}

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: no pointers involved; the returned fd is owned here.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(EventFd {
            file: std::fs::File::from(owned),
        })
    }

    pub fn raw(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Adds one to the counter. A full counter (EAGAIN) still leaves the fd readable,
    /// which is all a wake-up needs, so the result is ignored.
    pub fn notify(&self) {
        use std::io::Write;
        let _ = (&self.file).write(&1u64.to_ne_bytes());
    }

    /// Resets the counter so the level-triggered registration stops reporting it;
    /// EAGAIN (already drained) is fine.
    pub fn drain(&self) {
        use std::io::Read;
        let _ = (&self.file).read(&mut [0u8; 8]);
    }
}
