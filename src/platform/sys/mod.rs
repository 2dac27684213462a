//! The only module with `unsafe`: thin, checked wrappers over the few `libc` calls std
//! does not offer, one file per OS primitive, each behind a safe function or type. Every
//! wrapper turns a `-1` into `io::Error::last_os_error()`, so callers never see raw errno
//! handling; `errno` decides what an error means for the server. One wrapper is not over
//! libc: loading QuickJS bytecode (`js_bytecode`), which rquickjs marks `unsafe`.

mod epoll;
mod errno;
mod eventfd;
mod fs;
mod js_bytecode;
mod mem;
mod rlimit;
mod sched;
mod signal;
mod socket;
mod sysconf;
mod terminal;

pub use epoll::{Epoll, Event, Interest};
pub(crate) use errno::ErrnoClass;
pub use eventfd::EventFd;
pub use fs::{allocate, disk_space};
pub use js_bytecode::JsBytecode;
pub use mem::release_free_memory;
pub use rlimit::{nofile_limit, raise_nofile_limit};
pub use sched::lower_thread_priority;
pub use signal::{catch_hangup, take_hangup};
pub use socket::{reset_on_close, unacked_bytes};
pub use sysconf::{clock_ticks_per_second, page_size};
pub use terminal::read_hidden_line;

use std::io;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}
