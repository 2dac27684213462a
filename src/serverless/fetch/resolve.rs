//! Host names to addresses. `fetch` resolves once, checks every answer, and connects to
//! the checked addresses themselves: a second lookup (a connect by name) could get another
//! answer from a DNS server the script's author controls (DNS rebinding).

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// How `fetch` turns a host name into addresses (tests give a fixed table).
pub(crate) trait Resolve {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;

    /// The same, given up (`TimedOut`) at `deadline`. By default the lookup is not cut
    /// short: a table answers at once.
    fn resolve_by(&self, host: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
        let _ = deadline;
        self.resolve(host, port)
    }
}

/// The system's resolver (`getaddrinfo`: `/etc/hosts`, then DNS, as `nsswitch.conf` says).
pub(crate) struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        Ok((host, port).to_socket_addrs()?.collect())
    }

    /// `getaddrinfo` has no timeout of its own (a dead DNS server holds it for the
    /// resolver's 5 s per try), so the lookup runs on a thread of its own and the caller
    /// stops waiting at the deadline; the thread ends when the lookup does.
    fn resolve_by(&self, host: &str, port: u16, deadline: Instant) -> io::Result<Vec<SocketAddr>> {
        let host = host.to_string();
        by_deadline(deadline, move || SystemResolver.resolve(&host, port))
    }
}

/// Lookups abandoned at their deadline still hold a thread until `getaddrinfo` returns;
/// past this many at once, new ones are refused rather than piling threads up.
const MAX_LOOKUPS: usize = 32;
static LOOKUPS: AtomicUsize = AtomicUsize::new(0);

/// Runs `lookup` on its own thread and waits for it until `deadline`.
fn by_deadline<T: Send + 'static>(
    deadline: Instant,
    lookup: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    if LOOKUPS.fetch_add(1, Ordering::Relaxed) >= MAX_LOOKUPS {
        LOOKUPS.fetch_sub(1, Ordering::Relaxed);
        return Err(io::Error::other("too many DNS lookups are still running"));
    }
    let (answer, wait) = crossbeam_channel::bounded(1);
    let spawned = std::thread::Builder::new()
        .name("fazt-dns".into())
        .spawn(move || {
            let result = lookup();
            LOOKUPS.fetch_sub(1, Ordering::Relaxed);
            let _ = answer.send(result);
        });
    if let Err(e) = spawned {
        LOOKUPS.fetch_sub(1, Ordering::Relaxed);
        return Err(e);
    }
    wait.recv_deadline(deadline)
        .unwrap_or_else(|_| Err(io::Error::from(io::ErrorKind::TimedOut)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_lookup_that_hangs_is_given_up_at_the_deadline() {
        let start = Instant::now();
        let result = by_deadline(start + Duration::from_millis(100), || {
            std::thread::sleep(Duration::from_secs(3));
            Ok(1)
        });
        assert_eq!(result.unwrap_err().kind(), io::ErrorKind::TimedOut);
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
        let quick = by_deadline(Instant::now() + Duration::from_secs(5), || Ok(7));
        assert_eq!(quick.unwrap(), 7);
    }

    #[test]
    fn the_system_resolver_reads_numeric_hosts() {
        let at = Instant::now() + Duration::from_secs(5);
        let addrs = SystemResolver.resolve_by("127.0.0.1", 8080, at).unwrap();
        assert_eq!(addrs, vec!["127.0.0.1:8080".parse().unwrap()]);
    }
}
