//! Reading a password from the terminal without echoing it.

use super::check;
use std::io::{self, BufRead};
use std::os::fd::AsRawFd;

/// Reads one line from standard input (a terminal) with echo turned off, restoring the
/// terminal's mode afterwards even when the read fails.
pub fn read_hidden_line() -> io::Result<String> {
    let stdin = io::stdin();
    let fd = stdin.as_raw_fd();
    // SAFETY: all-zero is a valid bit pattern for `termios`; it is filled by tcgetattr.
    let mut saved: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open and `saved` a valid out-pointer.
    check(unsafe { libc::tcgetattr(fd, &mut saved) })?;
    let mut hidden = saved;
    hidden.c_lflag &= !libc::ECHO;
    hidden.c_lflag |= libc::ECHONL;
    // SAFETY: `hidden` is a valid termios read from this terminal.
    check(unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &hidden) })?;
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    // SAFETY: as above; restores what was read before.
    let restored = check(unsafe { libc::tcsetattr(fd, libc::TCSAFLUSH, &saved) });
    read?;
    restored?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
