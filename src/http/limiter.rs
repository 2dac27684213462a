//! Per-client token buckets, shared by every thread: ingestion rates, failed API keys (and
//! later passwords and sessions). A client is [`super::proxies::client_key`] of its address,
//! so a trusted proxy's client is counted, not the proxy, and an IPv6 /64 is one client.
//!
//! Each bucket is kept as its "theoretical arrival time" (GCRA, the token bucket written as
//! one number): the time at which the bucket would be full again. Taking a token pushes it
//! one interval later; a take is refused when that would put it more than `burst` intervals
//! ahead of now. A bucket whose time has passed is full, exactly as if it were not tracked,
//! so sweeping such entries forgets nothing.
//!
//! Memory is bounded: at most `max_clients` addresses are tracked, split over shards (one
//! hash and one uncontended lock per check). When a shard is full even after sweeping its
//! full buckets, a new address is counted in that shard's one overflow bucket instead:
//! memory cannot grow, addresses beyond the table still share a bounded rate (a flood from
//! many addresses stays limited, failing closed), and clients already tracked keep theirs.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Shards of the table: enough that core threads rarely meet on one lock.
const SHARDS: usize = 16;
/// A full shard is swept at most this often, so a flood of new addresses can't make every
/// check walk the shard.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// A bucket's shape: it holds `burst` tokens and regains one every `interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Rate {
    interval: Duration,
    burst: u32,
}

impl Rate {
    /// `per_second` tokens a second, `burst` at once (both at least 1).
    pub(crate) fn per_second(per_second: u32, burst: u32) -> Rate {
        Rate {
            interval: Duration::from_secs(1) / per_second.max(1),
            burst: burst.max(1),
        }
    }

    /// `n` tokens a minute, all `n` at once: "at most n in any minute" on average.
    pub(crate) fn per_minute(n: u32) -> Rate {
        Rate::per_window(n, Duration::from_secs(60))
    }

    /// `n` tokens per `window`, all `n` at once (5 failed logins in 15 minutes).
    pub(crate) fn per_window(n: u32, window: Duration) -> Rate {
        Rate {
            interval: window / n.max(1),
            burst: n.max(1),
        }
    }
}

struct Shard<K> {
    /// Client → when its bucket is full again (nanoseconds since the limiter's epoch).
    full_at: HashMap<K, u64, foldhash::fast::RandomState>,
    /// The bucket shared by addresses that found this shard full.
    overflow: u64,
    swept_at: u64,
}

/// A table of token buckets keyed by client: an address, or another key such as a
/// username.
pub(crate) struct Limiter<K = IpAddr> {
    interval: u64,
    /// How far ahead of now a bucket's time may run: `burst` intervals.
    depth: u64,
    per_shard: usize,
    shards: Box<[Mutex<Shard<K>>]>,
    /// Picks the shard; seeded apart from the maps' own hasher.
    spread: foldhash::fast::RandomState,
    epoch: Instant,
}

impl<K: Hash + Eq> Limiter<K> {
    /// Buckets of `rate` for at most `max_clients` tracked addresses.
    pub(crate) fn new(rate: Rate, max_clients: usize) -> Limiter<K> {
        let interval = u64::try_from(rate.interval.as_nanos()).unwrap_or(u64::MAX);
        let shard = || {
            Mutex::new(Shard {
                full_at: HashMap::with_hasher(foldhash::fast::RandomState::default()),
                overflow: 0,
                swept_at: 0,
            })
        };
        Limiter {
            interval,
            depth: interval.saturating_mul(u64::from(rate.burst)),
            per_shard: (max_clients / SHARDS).max(1),
            shards: (0..SHARDS).map(|_| shard()).collect(),
            spread: foldhash::fast::RandomState::default(),
            epoch: Instant::now(),
        }
    }

    /// Takes a token of `client`'s bucket; `Err` is how long until one is there.
    pub(crate) fn take(&self, client: K, now: Instant) -> Result<(), Duration> {
        self.with_bucket(client, now, |full_at, now| {
            let next = (*full_at).max(now).saturating_add(self.interval);
            let wait = (next - now).saturating_sub(self.depth);
            if wait > 0 {
                return Err(Duration::from_nanos(wait));
            }
            *full_at = next;
            Ok(())
        })
    }

    /// Whether a take would succeed now, without taking: `Err` is how long until it would.
    pub(crate) fn check(&self, client: K, now: Instant) -> Result<(), Duration> {
        self.with_bucket(client, now, |full_at, now| {
            let next = (*full_at).max(now).saturating_add(self.interval);
            match (next - now).saturating_sub(self.depth) {
                0 => Ok(()),
                wait => Err(Duration::from_nanos(wait)),
            }
        })
    }

    /// Addresses tracked now (each shard's table; overflow buckets not counted).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.shards.iter().map(|s| s.lock().full_at.len()).sum()
    }

    /// Runs `f` on `client`'s bucket (its own, or the shard's overflow bucket when the
    /// shard is full), creating a full one if it has none.
    fn with_bucket<T>(&self, client: K, now: Instant, f: impl FnOnce(&mut u64, u64) -> T) -> T {
        let now =
            u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX);
        // The hash's high bits pick the shard (Lemire's multiply-shift): foldhash's low bits
        // are weak for keys that differ only in their last bytes (neighbouring addresses),
        // and `% SHARDS` put a run of them in one shard.
        let hash = self.spread.hash_one(&client);
        let index = ((u128::from(hash) * SHARDS as u128) >> 64) as usize;
        let mut guard = self.shards[index].lock();
        let shard = &mut *guard;
        if let Some(full_at) = shard.full_at.get_mut(&client) {
            return f(full_at, now);
        }
        if shard.full_at.len() >= self.per_shard && shard.swept_at + sweep_nanos() <= now {
            shard.swept_at = now;
            shard.full_at.retain(|_, full_at| *full_at > now);
        }
        if shard.full_at.len() >= self.per_shard {
            return f(&mut shard.overflow, now);
        }
        let mut full_at = 0;
        let result = f(&mut full_at, now);
        // A bucket that is still full (a check takes nothing) needs no entry: absent is full.
        if full_at > now {
            shard.full_at.insert(client, full_at);
        }
        result
    }
}

fn sweep_nanos() -> u64 {
    SWEEP_EVERY.as_nanos() as u64
}

/// The 429 a client over one of its limits gets: the JSON error naming the limit, and
/// `Retry-After` in whole seconds.
pub(crate) fn too_many(message: &str, wait_secs: u64) -> super::Response {
    super::Response::error(429, message).header("Retry-After", wait_secs.to_string())
}

/// Whole seconds to tell a client in `Retry-After`: rounded up, at least 1.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proxies::client_key;

    fn ip(text: &str) -> IpAddr {
        client_key(text.parse().unwrap())
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = Limiter::new(Rate::per_second(10, 5), 1024);
        let t0 = Instant::now();
        let a = ip("203.0.113.1");
        for _ in 0..5 {
            assert_eq!(limiter.take(a, t0), Ok(()));
        }
        let wait = limiter.take(a, t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert_eq!(limiter.check(a, t0), Err(wait));
        // One token back per 100 ms, never more than the burst.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.check(a, t1), Ok(()));
        assert_eq!(limiter.take(a, t1), Ok(()));
        assert!(limiter.take(a, t1).is_err());
        let later = t0 + Duration::from_secs(60);
        for _ in 0..5 {
            assert_eq!(limiter.take(a, later), Ok(()));
        }
        assert!(limiter.take(a, later).is_err());
    }

    #[test]
    fn clients_are_apart_and_check_takes_nothing() {
        let limiter = Limiter::new(Rate::per_minute(2), 1024);
        let t0 = Instant::now();
        let (a, b) = (ip("198.51.100.7"), ip("198.51.100.8"));
        for _ in 0..10 {
            assert_eq!(limiter.check(a, t0), Ok(()));
        }
        limiter.take(a, t0).unwrap();
        limiter.take(a, t0).unwrap();
        assert_eq!(limiter.check(a, t0), Err(Duration::from_secs(30)));
        assert_eq!(limiter.take(b, t0), Ok(()));
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
        assert_eq!(retry_after_secs(Duration::from_millis(30_001)), 31);
        assert_eq!(retry_after_secs(Duration::from_millis(40)), 1);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }

    #[test]
    fn an_ipv6_64_is_one_client() {
        let limiter = Limiter::new(Rate::per_second(1, 2), 1024);
        let t0 = Instant::now();
        limiter.take(ip("2001:db8:1:2::1"), t0).unwrap();
        limiter.take(ip("2001:db8:1:2:ffff::9"), t0).unwrap();
        assert!(limiter.take(ip("2001:db8:1:2::abcd"), t0).is_err());
        assert!(limiter.take(ip("2001:db8:1:3::1"), t0).is_ok());
        // A mapped IPv4 address is that IPv4 client.
        limiter.take(ip("192.0.2.1"), t0).unwrap();
        limiter.take(ip("::ffff:192.0.2.1"), t0).unwrap();
        assert!(limiter.take(ip("192.0.2.1"), t0).is_err());
    }

    #[test]
    fn the_table_is_bounded_and_full_buckets_are_swept() {
        let max = 1024;
        let limiter = Limiter::new(Rate::per_second(1, 1), max);
        // The limiter's own epoch, so the times below don't depend on the test's pace.
        let t0 = limiter.epoch;
        let addr = |i: u32| IpAddr::from((0x0a00_0000 + i).to_be_bytes());
        let mut refused = 0;
        for i in 0..10_000 {
            if limiter.take(addr(i), t0).is_err() {
                refused += 1;
            }
        }
        assert!(limiter.tracked() <= max, "{} tracked", limiter.tracked());
        // Beyond the table, addresses share their shard's overflow bucket: one token each.
        assert!(refused >= 10_000 - max - SHARDS, "{refused} refused");
        // Once their buckets are full again, the entries go and new clients get their own.
        let later = t0 + Duration::from_secs(5);
        for i in 20_000..20_000 + max as u32 / 4 {
            assert_eq!(limiter.take(addr(i), later), Ok(()));
        }
        // Only a shard that gets a new client sweeps (how the keys spread over shards
        // depends on the random seed), so the table is only known to stay within bounds;
        // the takes above prove the sweep: without it every full shard would send its
        // second new client to the spent overflow bucket.
        assert!(limiter.tracked() <= max, "{} tracked", limiter.tracked());
    }

    #[test]
    fn untouched_clients_cost_no_entry() {
        let limiter = Limiter::new(Rate::per_minute(10), 1024);
        let t0 = Instant::now();
        for i in 0..100u32 {
            let _ = limiter.check(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert_eq!(limiter.tracked(), 0);
    }
}
