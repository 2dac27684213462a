//! Per-site WebSocket hubs (issue #15). A hub counts its site's clients on each core
//! thread; a message for the hub is framed once and mailed to every core thread that holds
//! a client of it, whose event loop queues it for each of them ([`Mail::Broadcast`]). No
//! lock is held while anything is sent, and nothing here waits on a client: a slow one is
//! closed by its own connection when its queue fills.

use super::event_loop::{Mail, Mailbox};
use crate::http::conn::{Member, Upgrade, WsLimits};
use crate::http::ws::{self, Opcode};
use crate::platform::metrics::{Collector, Desc, Kind, Source};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

/// Limits on the number of clients (`FAZT_WS_MAX`, `FAZT_WS_PER_SITE`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct HubLimits {
    pub total: usize,
    pub per_site: usize,
}

/// Every site's hub, created at its first client.
pub(crate) struct Hubs {
    sites: RwLock<HashMap<String, Arc<Hub>>>,
    /// The core threads' mailboxes, by thread index; set once before they accept.
    mailboxes: OnceLock<Vec<Mailbox>>,
    clients: AtomicUsize,
    next_id: AtomicU64,
    limits: HubLimits,
    connection: WsLimits,
}

/// One site's clients, counted per core thread.
pub(crate) struct Hub {
    id: u64,
    clients: AtomicUsize,
    per_thread: Box<[AtomicUsize]>,
}

/// Why an upgrade was refused: the limit reached, for a 503.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Full {
    Total(usize),
    Site(usize),
}

impl Hubs {
    pub(crate) fn new(limits: HubLimits, connection: WsLimits) -> Hubs {
        Hubs {
            sites: RwLock::new(HashMap::new()),
            mailboxes: OnceLock::new(),
            clients: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            limits,
            connection,
        }
    }

    /// Hubs with room for 10 clients of `message_max`-byte messages, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(message_max: usize) -> Hubs {
        let connection = WsLimits {
            message_max,
            queue_max: 4 * message_max,
            rate: 10,
            ping_every: std::time::Duration::from_secs(30),
        };
        let limits = HubLimits {
            total: 10,
            per_site: 10,
        };
        Hubs::new(limits, connection)
    }

    /// The core threads' mailboxes, before any of them accepts a connection.
    pub(crate) fn attach(&self, mailboxes: Vec<Mailbox>) {
        let _ = self.mailboxes.set(mailboxes);
    }

    /// A new client of `site` on core thread `thread`, within the limits.
    pub(crate) fn join(self: &Arc<Hubs>, site: &str, thread: usize) -> Result<Upgrade, Full> {
        reserve(&self.clients, self.limits.total).map_err(Full::Total)?;
        let hub = self.hub_of(site);
        if let Err(limit) = reserve(&hub.clients, self.limits.per_site) {
            self.clients.fetch_sub(1, Ordering::Relaxed);
            return Err(Full::Site(limit));
        }
        hub.per_thread[thread].fetch_add(1, Ordering::Relaxed);
        let member = Membership {
            hubs: Arc::clone(self),
            hub,
            thread,
        };
        Ok(Upgrade {
            member: Box::new(member),
            limits: self.connection,
        })
    }

    fn hub_of(&self, site: &str) -> Arc<Hub> {
        if let Some(hub) = self.sites.read().get(site) {
            return Arc::clone(hub);
        }
        let threads = self.mailboxes.get().map_or(1, Vec::len);
        let mut sites = self.sites.write();
        let hub = sites.entry(site.to_string()).or_insert_with(|| {
            Arc::new(Hub {
                id: self.next_id.fetch_add(1, Ordering::Relaxed),
                clients: AtomicUsize::new(0),
                per_thread: (0..threads).map(|_| AtomicUsize::new(0)).collect(),
            })
        });
        Arc::clone(hub)
    }

    fn find(&self, site: &str) -> Option<Arc<Hub>> {
        self.sites.read().get(site).cloned()
    }

    /// Mails `mail` (made per thread) to every core thread holding a client of `hub`.
    fn mail(&self, hub: &Hub, mail: impl Fn() -> Mail) {
        let Some(mailboxes) = self.mailboxes.get() else {
            return;
        };
        for (thread, count) in hub.per_thread.iter().enumerate() {
            if count.load(Ordering::Relaxed) > 0 {
                mailboxes[thread].send(mail());
            }
        }
    }

    fn fan_out(&self, hub: &Hub, opcode: Opcode, payload: &[u8]) {
        let frame: Arc<[u8]> = ws::frame(opcode, payload).into();
        let id = hub.id;
        self.mail(hub, || Mail::Broadcast {
            hub: id,
            frame: Arc::clone(&frame),
        });
    }

    /// Queues a text message for every client of `site`'s hub (on every core thread), never
    /// waiting on any client; the number of clients it was queued for (0: none connected).
    pub(crate) fn broadcast_text(&self, site: &str, text: &str) -> usize {
        let Some(hub) = self.find(site) else {
            return 0;
        };
        let clients = hub.clients.load(Ordering::Relaxed);
        if clients > 0 {
            self.fan_out(&hub, Opcode::Text, text.as_bytes());
        }
        clients
    }

    /// Clients connected to `site`'s hub now.
    pub(crate) fn clients(&self, site: &str) -> usize {
        self.find(site)
            .map_or(0, |hub| hub.clients.load(Ordering::Relaxed))
    }

    /// Largest message a client may send and a broadcast may carry (FAZT_WS_MESSAGE_MAX).
    pub(crate) fn message_max(&self) -> usize {
        self.connection.message_max
    }

    /// Closes every client of `site` with 1001 (the site was deleted, or no longer has the
    /// endpoint); a client that connects later starts a new hub.
    pub(crate) fn close_site(&self, site: &str, reason: &'static str) {
        let Some(hub) = self.sites.write().remove(site) else {
            return;
        };
        let id = hub.id;
        self.mail(&hub, || Mail::CloseHub {
            hub: id,
            code: 1001,
            reason,
        });
    }

    /// The sites with a hub, for [`Hubs::close_site`] after the site table changed.
    pub(crate) fn sites(&self) -> Vec<String> {
        self.sites.read().keys().cloned().collect()
    }
}

/// Adds one to `count` unless it is at `limit` (then the limit).
fn reserve(count: &AtomicUsize, limit: usize) -> Result<(), usize> {
    count
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
            (n < limit).then_some(n + 1)
        })
        .map(|_| ())
        .map_err(|_| limit)
}

/// One connection's place in its hub; dropped when the connection closes.
struct Membership {
    hubs: Arc<Hubs>,
    hub: Arc<Hub>,
    thread: usize,
}

impl Member for Membership {
    fn hub(&self) -> u64 {
        self.hub.id
    }

    fn publish(&self, opcode: Opcode, payload: &[u8]) {
        self.hubs.fan_out(&self.hub, opcode, payload);
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.hub.per_thread[self.thread].fetch_sub(1, Ordering::Relaxed);
        self.hub.clients.fetch_sub(1, Ordering::Relaxed);
        self.hubs.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

static SITE_CONNECTIONS: Desc = Desc::new(
    Kind::Gauge,
    "fazt_ws_site_connections",
    "ws.site_connections",
    "WebSocket clients connected, by site",
)
.labelled("site");

impl Source for Hubs {
    fn collect(&self, out: &mut Collector) {
        let sites = self.sites.read();
        for (site, hub) in sites.iter() {
            let clients = hub.clients.load(Ordering::Relaxed) as u64;
            out.int_with(&SITE_CONNECTIONS, site, clients);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::metrics::{render_prometheus, Registry};

    #[test]
    fn clients_are_counted_per_site_within_both_limits_and_leave_on_drop() {
        let hubs = Arc::new(Hubs::new(
            HubLimits {
                total: 3,
                per_site: 2,
            },
            Hubs::for_tests(8).connection,
        ));
        let a1 = hubs.join("a", 0).unwrap();
        let a2 = hubs.join("a", 0).unwrap();
        assert_eq!(hubs.join("a", 0).unwrap_err(), Full::Site(2));
        let b1 = hubs.join("b", 0).unwrap();
        assert_eq!(hubs.join("b", 0).unwrap_err(), Full::Total(3));
        assert_eq!((hubs.clients("a"), hubs.clients("b")), (2, 1));
        assert_eq!(a1.member.hub(), a2.member.hub());
        assert_ne!(a1.member.hub(), b1.member.hub());
        let text = render_prometheus(&Registry::new().with(&*hubs).gather());
        assert!(
            text.contains("fazt_ws_site_connections{site=\"a\"} 2"),
            "{text}"
        );
        drop(a1);
        assert_eq!(hubs.clients("a"), 1);
        let _b2 = hubs.join("b", 0).unwrap();
        // A site closed goes out of the table; its members' counts leave with them.
        hubs.close_site("a", "gone");
        assert_eq!(hubs.clients("a"), 0);
        drop(a2);
        assert_eq!(hubs.clients.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_message_is_framed_once_and_mailed_only_to_threads_holding_clients_of_the_hub() {
        let hubs = Arc::new(Hubs::for_tests(64));
        let (boxes, inboxes): (Vec<_>, Vec<_>) = (0..3).map(|_| Mailbox::new().unwrap()).unzip();
        hubs.attach(boxes);
        let _a = hubs.join("a", 0).unwrap();
        let _b = hubs.join("a", 2).unwrap();
        let _other = hubs.join("b", 1).unwrap();
        assert_eq!(hubs.broadcast_text("a", "hi"), 2);
        assert_eq!(hubs.broadcast_text("nobody", "hi"), 0);
        let frames: Vec<Vec<u8>> = inboxes
            .iter()
            .map(|inbox| match inbox.try_recv() {
                Ok(Mail::Broadcast { frame, .. }) => frame.to_vec(),
                _ => Vec::new(),
            })
            .collect();
        assert_eq!(
            frames,
            [
                ws::frame(Opcode::Text, b"hi"),
                vec![],
                ws::frame(Opcode::Text, b"hi")
            ]
        );
        hubs.close_site("a", "gone");
        assert!(matches!(
            inboxes[0].try_recv(),
            Ok(Mail::CloseHub { code: 1001, .. })
        ));
        assert!(inboxes[1].try_recv().is_err());
    }
}
