//! The connection caps shared by the event loops of one listener: the total, and each
//! client's share of it. Core threads accept from one shared listener, so one client's
//! connections land on several threads; the per-client counts live here, beside the total,
//! where every loop sees them.

use super::proxies::{client_key, TrustedProxies};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Locks of the per-client table: loops accepting at once rarely wait on each other.
const SHARDS: usize = 16;

/// Open connections of one listener (shared by the loops that accept from it) and the cap.
pub struct ConnCap {
    open: AtomicUsize,
    max: usize,
    share: Option<ClientShare>,
}

/// Each client's share: open connections by client key (an entry exists only while the
/// client has one open, so the table is bounded by the open connections).
struct ClientShare {
    /// At least 1, so an entry is never left at zero.
    per_client: u32,
    /// Proxies carry many clients and say who they are only in a header, after accept.
    exempt: TrustedProxies,
    shards: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
}

/// Why a new connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The listener is at its connection cap.
    Full,
    /// This client holds its whole share.
    OverShare,
}

/// A connection's place, given back with [`ConnCap::release`]; it knows the client key it
/// is counted under, if any.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Place(Option<IpAddr>);

impl ConnCap {
    /// A cap on the total only (the admin listener's).
    pub fn new(max: usize) -> Arc<ConnCap> {
        Arc::new(ConnCap {
            open: AtomicUsize::new(0),
            max,
            share: None,
        })
    }

    /// A cap on the total and on each client's share of it; `exempt` addresses (trusted
    /// proxies) are held to the total only.
    pub fn with_share(max: usize, per_client: usize, exempt: TrustedProxies) -> Arc<ConnCap> {
        Arc::new(ConnCap {
            open: AtomicUsize::new(0),
            max,
            share: Some(ClientShare {
                per_client: u32::try_from(per_client).unwrap_or(u32::MAX).max(1),
                exempt,
                shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            }),
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a place for a new connection from `peer`; nothing is taken when refused.
    pub fn try_acquire(&self, peer: IpAddr) -> Result<Place, Refused> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return Err(Refused::Full);
        }
        let Some(share) = &self.share else {
            return Ok(Place(None));
        };
        match share.take(peer) {
            Ok(key) => Ok(Place(key)),
            Err(refused) => {
                self.open.fetch_sub(1, Ordering::Relaxed);
                Err(refused)
            }
        }
    }

    /// Gives back the place of a closed connection.
    pub fn release(&self, place: Place) {
        self.open.fetch_sub(1, Ordering::Relaxed);
        if let (Some(share), Place(Some(key))) = (&self.share, place) {
            share.give_back(key);
        }
    }

    /// Clients with a connection open (entries of the per-client table).
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.share.as_ref().map_or(0, |s| {
            s.shards
                .iter()
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).len())
                .sum()
        })
    }
}

impl ClientShare {
    /// Counts one more connection for `peer`'s key; `None` when the peer is exempt.
    fn take(&self, peer: IpAddr) -> Result<Option<IpAddr>, Refused> {
        // (`trusts` also matches a proxy a dual-stack listener sees as mapped IPv6.)
        if self.exempt.trusts(peer) {
            return Ok(None);
        }
        let key = client_key(peer);
        let mut counts = self.shard(key);
        let count = counts.entry(key).or_insert(0);
        if *count >= self.per_client {
            return Err(Refused::OverShare);
        }
        *count += 1;
        Ok(Some(key))
    }

    fn give_back(&self, key: IpAddr) {
        let mut counts = self.shard(key);
        if let Some(count) = counts.get_mut(&key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&key);
            }
        }
    }

    fn shard(&self, key: IpAddr) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        let bits = match key {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            // The /64 prefix: the low half of a key is zero.
            IpAddr::V6(v6) => u128::from(v6) >> 64,
        };
        // Fold and mix so neighbouring addresses spread over the shards.
        let folded = (bits as u64) ^ ((bits >> 64) as u64);
        let index = (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 60) as usize % SHARDS;
        // A panic elsewhere while holding the lock left the counts consistent (each
        // change is one statement), so a poisoned lock is used as is.
        self.shards[index].lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_total_caps_every_client() {
        let cap = ConnCap::new(2);
        let a = cap.try_acquire(ip("10.0.0.1")).unwrap();
        let _b = cap.try_acquire(ip("10.0.0.2")).unwrap();
        assert_eq!(cap.try_acquire(ip("10.0.0.3")), Err(Refused::Full));
        assert_eq!(cap.open(), 2);
        cap.release(a);
        assert!(cap.try_acquire(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn a_client_over_its_share_is_refused_and_entries_go_at_zero() {
        let cap = ConnCap::with_share(10, 2, TrustedProxies::default());
        let a1 = cap.try_acquire(ip("10.0.0.1")).unwrap();
        let a2 = cap.try_acquire(ip("10.0.0.1")).unwrap();
        assert_eq!(cap.try_acquire(ip("10.0.0.1")), Err(Refused::OverShare));
        assert_eq!(cap.open(), 2, "a refusal takes no place");
        let b = cap.try_acquire(ip("10.0.0.2")).unwrap();
        assert_eq!(cap.clients(), 2);
        cap.release(a1);
        assert_eq!(cap.clients(), 2);
        cap.release(a2);
        cap.release(b);
        assert_eq!(
            cap.clients(),
            0,
            "an entry is removed when its count reaches zero"
        );
        assert_eq!(cap.open(), 0);
    }

    #[test]
    fn ipv6_counts_by_64_and_mapped_ipv4_as_ipv4() {
        let cap = ConnCap::with_share(10, 2, TrustedProxies::default());
        let _ = cap.try_acquire(ip("2001:db8:1:2::1")).unwrap();
        let _ = cap.try_acquire(ip("2001:db8:1:2:ffff::9")).unwrap();
        let third = cap.try_acquire(ip("2001:db8:1:2:abcd::3"));
        assert_eq!(third, Err(Refused::OverShare), "one /64 is one client");
        assert!(cap.try_acquire(ip("2001:db8:1:3::1")).is_ok());
        let _ = cap.try_acquire(ip("192.0.2.7")).unwrap();
        let _ = cap.try_acquire(ip("192.0.2.7")).unwrap();
        let mapped = cap.try_acquire(ip("::ffff:192.0.2.7"));
        assert_eq!(mapped, Err(Refused::OverShare));
        assert_eq!(cap.clients(), 3);
    }

    #[test]
    fn a_trusted_proxy_is_held_to_the_total_only() {
        let proxies = TrustedProxies::parse("10.0.0.0/8").unwrap();
        let cap = ConnCap::with_share(4, 1, proxies);
        let places: Vec<_> = (0..4)
            .map(|_| cap.try_acquire(ip("::ffff:10.1.2.3")).unwrap())
            .collect();
        assert_eq!(cap.try_acquire(ip("10.1.2.3")), Err(Refused::Full));
        assert_eq!(
            cap.clients(),
            0,
            "a proxy's connections are not in the table"
        );
        for place in places {
            cap.release(place);
        }
        assert_eq!(cap.open(), 0);
    }
}
