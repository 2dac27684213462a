//! System constants the metrics need (page size, clock ticks).

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
