//! SIGHUP as a flag: the handler only stores to an atomic (async-signal-safe); a thread
//! that has periodic work anyway looks at it (`take_hangup`).

use super::check;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};

static HANGUP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_hangup(_: libc::c_int) {
    HANGUP.store(true, Ordering::Relaxed);
}

/// Installs the SIGHUP handler (instead of the default, which ends the process).
pub fn catch_hangup() -> io::Result<()> {
    // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the handler only touches
    // an atomic, and `sigaction` reads the struct through a valid pointer.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_hangup as extern "C" fn(libc::c_int) as libc::sighandler_t;
        action.sa_flags = libc::SA_RESTART;
        check(libc::sigemptyset(&mut action.sa_mask))?;
        check(libc::sigaction(libc::SIGHUP, &action, std::ptr::null_mut()))?;
    }
    Ok(())
}

/// True once per SIGHUP received since the last call.
pub fn take_hangup() -> bool {
    HANGUP.swap(false, Ordering::Relaxed)
}
