//! The login rate limit: per client address (trusted proxies' rule, `client_key`) and per
//! username, 5 failures in 15 minutes; past either, logins are refused with 429 and
//! `Retry-After` before any password is hashed.

use crate::http::limiter::{retry_after_secs, too_many, Limiter, Rate};
use crate::http::proxies::client_key;
use crate::http::Response;
use crate::platform::metrics::{Collector, Counter, Desc, Kind, Source};
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const FAILURES: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Addresses and usernames tracked at most (beyond, they share overflow buckets).
const TRACKED: usize = 16_384;

/// `client` below is the address a request came from, after the trusted-proxy rule.
pub struct LoginGuard {
    by_client: Limiter,
    by_username: Limiter<String>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        let rate = Rate::per_window(FAILURES, WINDOW);
        LoginGuard {
            by_client: Limiter::new(rate, TRACKED),
            by_username: Limiter::new(rate, TRACKED),
        }
    }
}

impl LoginGuard {
    /// The 429 for a login from `client` as `username`, if either is over its limit.
    pub fn refuse(&self, client: IpAddr, username: &str) -> Option<Response> {
        let now = Instant::now();
        let client = client_key(client);
        let waits = [
            self.by_client.check(client, now).err(),
            self.by_username
                .check(username.to_ascii_lowercase(), now)
                .err(),
        ];
        let wait = waits.into_iter().flatten().max()?;
        LOGIN_STATS.throttled.inc();
        let wait = retry_after_secs(wait);
        let message = format!(
            "too many failed logins: at most {FAILURES} in {} minutes from one address or for one username; retry in {wait} s",
            WINDOW.as_secs() / 60
        );
        Some(too_many(&message, wait))
    }

    /// Counts a failed login against the address and the username.
    pub fn failed(&self, client: IpAddr, username: &str) {
        LOGIN_STATS.failures.inc();
        let now = Instant::now();
        let client = client_key(client);
        // A take refused here was counted by a failure racing this one: nothing to add.
        let _ = self.by_client.take(client, now);
        let _ = self.by_username.take(username.to_ascii_lowercase(), now);
    }
}

pub struct LoginStats {
    failures: Counter,
    throttled: Counter,
}

pub static LOGIN_STATS: LoginStats = LoginStats {
    failures: Counter::new(),
    throttled: Counter::new(),
};

static LOGIN_FAILURES: Desc = Desc::new(
    Kind::Counter,
    "fazt_login_failures_total",
    "auth.login_failures",
    "Dashboard logins refused for a wrong username or password",
);
static LOGIN_THROTTLED: Desc = Desc::new(
    Kind::Counter,
    "fazt_login_throttled_total",
    "auth.login_throttled",
    "Dashboard logins refused with 429: too many failures from the address or for the username",
);

impl Source for LoginStats {
    fn collect(&self, out: &mut Collector) {
        out.int(&LOGIN_FAILURES, self.failures.get());
        out.int(&LOGIN_THROTTLED, self.throttled.get());
    }
}
