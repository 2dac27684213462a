//! The only module with `unsafe`: thin, checked wrappers over the few `libc` calls
//! std does not offer (epoll, eventfd, rlimits, flock). Every wrapper turns a `-1`
//! into `io::Error::last_os_error()` so callers never see raw errno handling.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Readiness interest for a descriptor registered with [`Epoll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    pub read: bool,
    pub write: bool,
}

impl Interest {
    pub const READ: Interest = Interest {
        read: true,
        write: false,
    };
    pub const WRITE: Interest = Interest {
        read: false,
        write: true,
    };

    fn bits(self) -> u32 {
        let mut bits = 0u32;
        if self.read {
            bits |= libc::EPOLLIN as u32;
        }
        if self.write {
            bits |= libc::EPOLLOUT as u32;
        }
        bits
    }
}

/// One readiness report from [`Epoll::wait`].
#[derive(Clone, Copy, Debug)]
pub struct Event {
    pub token: u64,
    pub readable: bool,
    pub writable: bool,
    /// Error or hang-up: the peer is gone or the socket is broken.
    pub closed: bool,
}

/// A level-triggered epoll instance owned by one event loop.
pub struct Epoll {
    fd: OwnedFd,
    buf: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new(capacity: usize) -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; the returned fd is owned here.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fd is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let empty = libc::epoll_event { events: 0, u64: 0 };
        Ok(Epoll {
            fd,
            buf: vec![empty; capacity.max(1)],
        })
    }

    fn ctl(&self, op: libc::c_int, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` lives for the duration of the call; the kernel copies it.
        check(unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd, &mut ev) })?;
        Ok(())
    }

    pub fn add(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_ADD, fd, interest.bits(), token)
    }

    /// Registers a listening socket so that only one of the loops sharing it is woken
    /// per incoming connection (no thundering herd across core threads).
    pub fn add_exclusive(&self, fd: RawFd, token: u64) -> io::Result<()> {
        let bits = libc::EPOLLIN as u32 | libc::EPOLLEXCLUSIVE as u32;
        self.ctl(libc::EPOLL_CTL_ADD, fd, bits, token)
    }

    pub fn modify(&self, fd: RawFd, interest: Interest, token: u64) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_MOD, fd, interest.bits(), token)
    }

    pub fn delete(&self, fd: RawFd) -> io::Result<()> {
        self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0)
    }

    /// Waits for events; `None` waits forever. EINTR is reported as zero events.
    pub fn wait(&mut self, timeout: Option<Duration>, out: &mut Vec<Event>) -> io::Result<()> {
        out.clear();
        let ms = match timeout {
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as libc::c_int,
        };
        // SAFETY: buf is a valid, writable array of `buf.len()` epoll_event.
        let n = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                self.buf.as_mut_ptr(),
                self.buf.len() as libc::c_int,
                ms,
            )
        };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        for ev in &self.buf[..n as usize] {
            let bits = ev.events;
            out.push(Event {
                token: ev.u64,
                readable: bits & (libc::EPOLLIN as u32) != 0,
                writable: bits & (libc::EPOLLOUT as u32) != 0,
                closed: bits & ((libc::EPOLLERR | libc::EPOLLHUP) as u32) != 0,
            });
        }
        Ok(())
    }
}

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

/// Soft and hard limits of open file descriptors.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid out-pointer.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Raises the soft open-file limit to the hard limit and returns the new soft limit.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Ok(soft);
    }
    let lim = libc::rlimit {
        rlim_cur: hard,
        rlim_max: hard,
    };
    // SAFETY: `lim` is a valid in-pointer.
    check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) })?;
    Ok(hard)
}

/// The size of a memory page in bytes (`sysconf(_SC_PAGESIZE)`): 4 KiB on most x86-64
/// hosts, but 16 or 64 KiB on some arm64 kernels, so resident memory must not assume it.
pub fn page_size() -> Option<u64> {
    sysconf(libc::_SC_PAGESIZE)
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of times in `/proc/*/stat`.
pub fn clock_ticks_per_second() -> Option<u64> {
    sysconf(libc::_SC_CLK_TCK)
}

/// A positive `sysconf` value; `None` when the name is unsupported (`-1`) or not positive.
fn sysconf(name: libc::c_int) -> Option<u64> {
    // SAFETY: sysconf takes an integer name and no pointers.
    let value = unsafe { libc::sysconf(name) };
    u64::try_from(value).ok().filter(|&v| v > 0)
}

/// Size and space available to unprivileged users of the filesystem holding `path`, in
/// bytes: `(total, avail)`. `avail` excludes blocks reserved for root, as `df` reports.
pub fn disk_space(path: &std::path::Path) -> io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: statvfs is plain old data; all-zero bytes are a valid value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` a valid out-pointer.
    check(unsafe { libc::statvfs(c_path.as_ptr(), &mut st) })?;
    // Field widths differ between targets (`c_ulong` is 32 bits on some), hence the casts.
    #[allow(clippy::unnecessary_cast)]
    let (blocks, bavail, frsize) = (st.f_blocks as u64, st.f_bavail as u64, st.f_frsize as u64);
    Ok((blocks.saturating_mul(frsize), bavail.saturating_mul(frsize)))
}

/// What an I/O error means for the server, decided here and nowhere else: which errno
/// values are "the disk is full" (answer 507, stop bulk writes) and which are "out of
/// descriptors or kernel memory" (pause accepting instead of spinning).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrnoClass {
    /// No space (ENOSPC) or the user's quota is used up (EDQUOT): freeing space or waiting
    /// helps. EFBIG is not here: a file over RLIMIT_FSIZE or the filesystem's largest file
    /// size fails the same way however much space is freed, so it is our fault (500).
    DiskFull,
    /// The process (EMFILE) or the system (ENFILE) is out of file descriptors.
    DescriptorsExhausted,
    /// The kernel could not allocate socket buffers or memory (ENOBUFS, ENOMEM). accept(2)
    /// reports these under load like EMFILE, and retrying at once fails the same way.
    KernelMemory,
    /// Anything else: about one operation, not the server's resources.
    Other,
}

impl ErrnoClass {
    pub(crate) fn of(error: &io::Error) -> ErrnoClass {
        match error.raw_os_error() {
            Some(libc::ENOSPC | libc::EDQUOT) => ErrnoClass::DiskFull,
            Some(libc::EMFILE | libc::ENFILE) => ErrnoClass::DescriptorsExhausted,
            Some(libc::ENOBUFS | libc::ENOMEM) => ErrnoClass::KernelMemory,
            Some(_) => ErrnoClass::Other,
            // Errors built from a kind (by std or a library) carry no errno.
            None if error.kind() == io::ErrorKind::StorageFull => ErrnoClass::DiskFull,
            None => ErrnoClass::Other,
        }
    }

    /// A resource of the whole process ran out: an accept loop must back off.
    pub(crate) fn is_resource_exhaustion(self) -> bool {
        matches!(
            self,
            ErrnoClass::DescriptorsExhausted | ErrnoClass::KernelMemory
        )
    }
}

/// Hands the allocator's free memory back to the kernel. A deploy's extraction and blob
/// writing leave megabytes free in glibc's arenas that request traffic never reuses; run
/// after such rare bulk work, so resident memory returns to what the server holds.
pub fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only walks the allocator's own free lists; no pointer is passed.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_classes() {
        let class = |errno| ErrnoClass::of(&io::Error::from_raw_os_error(errno));
        assert_eq!(class(libc::ENOSPC), ErrnoClass::DiskFull);
        assert_eq!(class(libc::EDQUOT), ErrnoClass::DiskFull);
        assert_eq!(class(libc::EFBIG), ErrnoClass::Other);
        assert_eq!(class(libc::EMFILE), ErrnoClass::DescriptorsExhausted);
        assert_eq!(class(libc::ENFILE), ErrnoClass::DescriptorsExhausted);
        assert_eq!(class(libc::ENOBUFS), ErrnoClass::KernelMemory);
        assert_eq!(class(libc::ENOMEM), ErrnoClass::KernelMemory);
        for other in [libc::EIO, libc::ECONNABORTED, libc::EACCES, libc::EROFS] {
            assert_eq!(class(other), ErrnoClass::Other, "errno {other}");
        }
        let kind_only = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(ErrnoClass::of(&kind_only), ErrnoClass::DiskFull);
        assert_eq!(ErrnoClass::of(&io::Error::other("x")), ErrnoClass::Other);
    }

    #[test]
    fn only_process_resources_mean_backing_off() {
        assert!(ErrnoClass::DescriptorsExhausted.is_resource_exhaustion());
        assert!(ErrnoClass::KernelMemory.is_resource_exhaustion());
        assert!(!ErrnoClass::DiskFull.is_resource_exhaustion());
        assert!(!ErrnoClass::Other.is_resource_exhaustion());
    }
}
