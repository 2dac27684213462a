//! The connection cap shared by the event loops of one listener.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Open connections of one listener (shared by the loops that accept from it) and the cap.
pub struct ConnCap {
    open: AtomicUsize,
    max: usize,
}

impl ConnCap {
    pub fn new(max: usize) -> Arc<ConnCap> {
        Arc::new(ConnCap {
            open: AtomicUsize::new(0),
            max,
        })
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// Takes a place for a new connection; false (and nothing taken) at the cap.
    pub fn try_acquire(&self) -> bool {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max {
            self.open.fetch_sub(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// Gives back the place of a closed connection.
    pub fn release(&self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}
