//! The deadlines of one event loop's connections, in a binary heap, so that a tick touches
//! only what has expired instead of every connection (10,000 idle keep-alive connections
//! then cost nothing between their deadlines).
//!
//! Each key (a connection slot) has at most one deadline. Entries are never removed from
//! the middle of the heap (lazy deletion): an entry carries its key's stamp at the time it
//! was pushed, and one whose stamp is no longer its key's is stale and skipped when it
//! reaches the top. Moving a deadline later, which every keep-alive request does, pushes
//! nothing: the key's entry fires at the earlier time, finds the later deadline and is
//! pushed again once. Only a deadline moved earlier pushes a new entry.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// Stale entries tolerated beyond twice the live ones before the heap is compacted, so
/// that connections closing or moving their deadlines earlier can't grow it without bound.
const COMPACT_SLACK: usize = 64;

#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Entry {
    at: Instant,
    key: u32,
    stamp: u32,
}

#[derive(Clone, Copy, Default)]
struct KeyState {
    /// When the key is due, as last set.
    deadline: Option<Instant>,
    /// The time of the key's live heap entry, if it has one (never later than `deadline`).
    armed: Option<Instant>,
    /// Entries pushed for this key with another stamp are stale.
    stamp: u32,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    keys: Vec<KeyState>,
    /// Keys with a live entry; the rest of the heap is stale.
    armed: usize,
}

impl Timers {
    /// Sets `key`'s deadline, replacing any earlier one; `None` cancels it. Called after
    /// every connection event, so the usual case (a later deadline) only stores it.
    #[inline]
    pub(crate) fn set(&mut self, key: u32, deadline: Option<Instant>) {
        let index = key as usize;
        if index >= self.keys.len() {
            self.keys.resize(index + 1, KeyState::default());
        }
        let state = &mut self.keys[index];
        state.deadline = deadline;
        let Some(at) = deadline else {
            // The live entry, if any, stays: when it fires it finds no deadline.
            return;
        };
        if state.armed.is_some_and(|armed| armed <= at) {
            return;
        }
        self.arm(key, at);
    }

    /// Pushes a live entry for `key` at `at`; any earlier entry of the key becomes stale.
    fn arm(&mut self, key: u32, at: Instant) {
        let state = &mut self.keys[key as usize];
        if state.armed.is_none() {
            self.armed += 1;
        }
        state.armed = Some(at);
        state.stamp = state.stamp.wrapping_add(1);
        let stamp = state.stamp;
        self.heap.push(Reverse(Entry { at, key, stamp }));
        if self.heap.len() > 2 * self.armed + COMPACT_SLACK {
            self.compact();
        }
    }

    /// Drops the stale entries; runs when they outnumber the live ones, so its cost is
    /// paid for by the pushes that made them.
    fn compact(&mut self) {
        let keys = &self.keys;
        self.heap
            .retain(|Reverse(e)| keys[e.key as usize].stamp == e.stamp);
    }

    /// The next key whose deadline is at or before `now`, in deadline order; its deadline
    /// is cleared (set a new one after handling it).
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<u32> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if top.at > now {
                return None;
            }
            let Reverse(entry) = self.heap.pop()?;
            let state = &mut self.keys[entry.key as usize];
            if state.stamp != entry.stamp {
                continue;
            }
            state.armed = None;
            self.armed -= 1;
            let deadline = state.deadline;
            match deadline {
                None => {}
                Some(later) if later > now => self.arm(entry.key, later),
                Some(_) => {
                    self.keys[entry.key as usize].deadline = None;
                    return Some(entry.key);
                }
            }
        }
        None
    }

    /// When the earliest entry is due (possibly a stale one: waking for it is harmless,
    /// and it is dropped then).
    #[inline]
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    #[cfg(test)]
    fn entries(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn drain(timers: &mut Timers, now: Instant) -> Vec<u32> {
        std::iter::from_fn(|| timers.pop_expired(now)).collect()
    }

    #[test]
    fn expires_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(3, Some(t0 + ms(30)));
        timers.set(1, Some(t0 + ms(10)));
        timers.set(2, Some(t0 + ms(20)));
        timers.set(4, Some(t0 + ms(40)));
        assert_eq!(timers.next_due(), Some(t0 + ms(10)));
        assert_eq!(drain(&mut timers, t0 + ms(5)), Vec::<u32>::new());
        assert_eq!(drain(&mut timers, t0 + ms(30)), vec![1, 2, 3]);
        assert_eq!(timers.next_due(), Some(t0 + ms(40)));
        assert_eq!(drain(&mut timers, t0 + ms(100)), vec![4]);
        assert_eq!(timers.next_due(), None);
        // An expired key's deadline is cleared: it does not fire again.
        assert_eq!(drain(&mut timers, t0 + ms(200)), Vec::<u32>::new());
    }

    #[test]
    fn a_later_deadline_pushes_nothing_and_fires_at_its_new_time() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(7, Some(t0 + ms(10)));
        for i in 1..=100 {
            timers.set(7, Some(t0 + ms(10 + i)));
        }
        assert_eq!(timers.entries(), 1);
        // The old entry fires, finds the later deadline, and is re-armed once.
        assert_eq!(drain(&mut timers, t0 + ms(50)), Vec::<u32>::new());
        assert_eq!(timers.next_due(), Some(t0 + ms(110)));
        assert_eq!(timers.entries(), 1);
        assert_eq!(drain(&mut timers, t0 + ms(110)), vec![7]);
    }

    #[test]
    fn an_earlier_deadline_replaces_the_armed_one() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(1, Some(t0 + ms(60)));
        timers.set(2, Some(t0 + ms(30)));
        timers.set(1, Some(t0 + ms(10)));
        assert_eq!(drain(&mut timers, t0 + ms(10)), vec![1]);
        // The entry at 60 ms is stale: key 1 has no deadline any more.
        assert_eq!(drain(&mut timers, t0 + ms(100)), vec![2]);
        assert_eq!(timers.entries(), 0);
    }

    #[test]
    fn cancelled_and_stale_entries_are_ignored() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(1, Some(t0 + ms(10)));
        timers.set(2, Some(t0 + ms(20)));
        timers.set(1, None);
        assert_eq!(drain(&mut timers, t0 + ms(50)), vec![2]);
        // Re-armed after a cancel, later than the old (still queued) entry.
        timers.set(3, Some(t0 + ms(60)));
        timers.set(3, None);
        timers.set(3, Some(t0 + ms(80)));
        assert_eq!(drain(&mut timers, t0 + ms(70)), Vec::<u32>::new());
        assert_eq!(drain(&mut timers, t0 + ms(80)), vec![3]);
    }

    #[test]
    fn a_key_re_armed_after_expiring_fires_again() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.set(5, Some(t0 + ms(10)));
        assert_eq!(timers.pop_expired(t0 + ms(10)), Some(5));
        timers.set(5, Some(t0 + ms(20)));
        assert_eq!(drain(&mut timers, t0 + ms(15)), Vec::<u32>::new());
        assert_eq!(drain(&mut timers, t0 + ms(20)), vec![5]);
    }

    #[test]
    fn many_timers_expire_in_order_and_stale_entries_stay_bounded() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let n = 10_000u32;
        // Keys in a scrambled order, each moved earlier several times (each a push).
        for round in (0..4u64).rev() {
            for i in 0..n {
                let key = (i * 7919) % n;
                let at = t0 + ms(key as u64 + round * 100_000);
                timers.set(key, Some(at));
            }
        }
        assert!(
            timers.entries() <= 2 * n as usize + COMPACT_SLACK,
            "{} entries for {n} keys",
            timers.entries()
        );
        let fired = drain(&mut timers, t0 + ms(1_000_000));
        assert_eq!(fired, (0..n).collect::<Vec<_>>());
        assert_eq!(timers.entries(), 0);
    }
}
