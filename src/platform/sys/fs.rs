//! Filesystem space, for the disk breaker and the disk reserve.

use super::check;
use std::io;

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

/// Allocates `len` bytes of real blocks for `file` (`fallocate`, mode 0: the size grows to
/// `len` and the blocks are reserved, unlike a sparse `set_len`). Fails with the
/// filesystem's error, e.g. `EOPNOTSUPP` where it can't (the caller then writes zeros).
pub fn allocate(file: &std::fs::File, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let len = libc::off_t::try_from(len)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "size too large"))?;
    // SAFETY: the descriptor is open for writing for the duration of the call.
    check(unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, len) })?;
    Ok(())
}
