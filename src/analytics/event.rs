//! The analytics event as it travels from a request handler to the writer, and the
//! visitor hash that replaces the IP address.

use parking_lot::RwLock;
use sha2::{Digest, Sha256};
use std::net::IpAddr;

/// Where an event came from (stored as its number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Source {
    Track = 1,
    Pixel = 2,
    Redirect = 3,
    Webhook = 4,
    /// A pageview recorded automatically when a hosted site served an HTML page.
    Page = 5,
}

/// The queue request handlers record events on; the writer commits them in batches.
pub type EventQueue = crate::db::events::EventQueue<Event>;

/// One event, built by a handler and committed by the writer.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Unix seconds.
    pub ts: i64,
    /// The site (domain) it belongs to, lower-case.
    pub domain: String,
    pub path: Option<String>,
    /// Event type; `pageview` unless the sender said otherwise.
    pub kind: String,
    /// Host part of the referrer, lower-case.
    pub referrer: Option<String>,
    /// 64-bit hash of (daily salt, site, client IP, user agent).
    pub visitor: u64,
    pub source: Source,
    pub tags: Vec<String>,
    /// The `q` object as compact JSON text.
    pub query: Option<String>,
    /// Campaign parameters the visit came with.
    pub utm: Utm,
}

/// `utm_source`, `utm_medium` and `utm_campaign`: where a campaign's visitors came from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Utm {
    pub source: Option<String>,
    pub medium: Option<String>,
    pub campaign: Option<String>,
}

impl Utm {
    /// The names of the parameters, in the order of [`Utm::values`].
    pub const NAMES: [&'static str; 3] = ["utm_source", "utm_medium", "utm_campaign"];

    /// From a lookup of parameter names (a query string, a `q` object).
    pub fn from_params(get: impl Fn(&str) -> Option<String>) -> Utm {
        let [source, medium, campaign] = Utm::NAMES.map(|name| {
            get(name)
                .map(|v| v.trim().chars().take(200).collect::<String>())
                .filter(|v| !v.is_empty())
        });
        Utm {
            source,
            medium,
            campaign,
        }
    }

    pub fn values(&self) -> [Option<&str>; 3] {
        [
            self.source.as_deref(),
            self.medium.as_deref(),
            self.campaign.as_deref(),
        ]
    }
}

pub const PAGEVIEW: &str = "pageview";
/// A GET on a hosted site that found no file (a broken link).
pub const NOT_FOUND: &str = "404";
/// A followed short link (`/r/<slug>`), never mixed with the `click` events pages send.
pub const REDIRECT_CLICK: &str = "redirect";

/// Days since the Unix epoch (UTC) of a unix time.
pub fn day_of(ts: i64) -> i64 {
    ts.div_euclid(86_400)
}

/// The current day's salt, shared by every thread that hashes visitors. The admin
/// thread rotates it at midnight UTC (persisting it, so a restart keeps counting the
/// same visitors as the same); request threads only read it.
#[derive(Default)]
pub struct SaltBook {
    current: RwLock<Option<(i64, [u8; 32])>>,
}

impl SaltBook {
    pub fn set(&self, day: i64, salt: [u8; 32]) {
        *self.current.write() = Some((day, salt));
    }

    /// The day of the salt in use, if any.
    pub fn day(&self) -> Option<i64> {
        self.current.read().map(|(day, _)| day)
    }

    /// The visitor hash: the first 8 bytes of sha-256(salt, site, ip, user agent),
    /// stored as the same 64 bits in an SQLite integer. Without a salt yet, 0.
    pub fn visitor(&self, site: &str, ip: IpAddr, user_agent: &str) -> u64 {
        let Some((_, salt)) = *self.current.read() else {
            return 0;
        };
        let mut hasher = Sha256::new();
        hasher.update(salt);
        hasher.update(site.as_bytes());
        hasher.update([0]);
        match ip {
            IpAddr::V4(v4) => hasher.update(v4.octets()),
            IpAddr::V6(v6) => hasher.update(v6.octets()),
        }
        hasher.update([0]);
        hasher.update(user_agent.as_bytes());
        let digest = hasher.finalize();
        u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitor_hash_depends_on_salt_site_ip_and_agent() {
        let book = SaltBook::default();
        let ip: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(book.visitor("a.com", ip, "UA"), 0, "no salt yet");
        book.set(1, [7; 32]);
        let base = book.visitor("a.com", ip, "UA");
        assert_ne!(base, 0);
        assert_eq!(base, book.visitor("a.com", ip, "UA"));
        assert_ne!(base, book.visitor("b.com", ip, "UA"));
        assert_ne!(
            base,
            book.visitor("a.com", "203.0.113.10".parse().unwrap(), "UA")
        );
        assert_ne!(base, book.visitor("a.com", ip, "UA2"));
        book.set(2, [8; 32]);
        assert_ne!(
            base,
            book.visitor("a.com", ip, "UA"),
            "a new day's salt unlinks visitors"
        );
    }

    #[test]
    fn days() {
        assert_eq!(day_of(0), 0);
        assert_eq!(day_of(86_399), 0);
        assert_eq!(day_of(86_400), 1);
        assert_eq!(day_of(-1), -1);
    }
}
