//! The calling thread's scheduling priority: JS workers run below the threads that serve
//! requests, so a CPU-bound script never delays a static file.

use super::check;
use std::io;

/// Adds `increment` to the calling thread's nice value (Linux: `setpriority` on a thread id
/// sets that thread only). Lowering one's own priority needs no privilege.
pub fn lower_thread_priority(increment: i32) -> io::Result<()> {
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    // getpriority returns the nice value itself, so -1 is a valid answer: errno tells.
    // SAFETY: plain integer arguments.
    let now = unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
    let target = now.saturating_add(increment).min(19);
    // SAFETY: plain integer arguments.
    check(unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, target) })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_lowers_its_own_priority_only() {
        // SAFETY: as above.
        let nice_of =
            |tid: libc::pid_t| unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) };
        let main = unsafe { libc::gettid() };
        let before = nice_of(main);
        let (lowered, start) = std::thread::spawn(move || {
            let tid = unsafe { libc::gettid() };
            let start = nice_of(tid);
            lower_thread_priority(5).unwrap();
            (nice_of(tid), start)
        })
        .join()
        .unwrap();
        assert_eq!(lowered, (start + 5).min(19));
        assert_eq!(nice_of(main), before, "the other threads keep theirs");
    }
}
