//! Per-client rate limits of the ingestion endpoints (`/track`, `/pixel.gif`, `/r/<slug>`,
//! `/webhook/<name>`): one token bucket per client address (`http::limiter`) shared by the
//! four, because what is bounded is the events one client can make the writer commit,
//! whichever door they come through. The script and CORS preflights are not events and
//! are never counted.
//!
//! The server calls [`IngestLimits::refuse`] where it dispatches an ingestion route, before
//! the handler. Over the limit a client gets 429 with `Retry-After`, except where a 429 would strand a
//! visitor: a short link still redirects (the click is not recorded), and the pixel still
//! answers its GIF (with status 429), so a page never shows a broken image.

use super::ingest::{Endpoint, PIXEL_GIF};
use crate::http::limiter::{retry_after_secs, too_many, Limiter, Rate};
use crate::http::proxies::{client_key, TrustedProxies};
use crate::http::{Body, Method, Request, Response};
use crate::platform::metrics::{Collector, Counter, Desc, Kind, Source};
use std::time::Instant;

/// Default of `FAZT_INGEST_RATE`: a busy reader's page views, clicks and custom events
/// fit many times over; a script flooding junk gets 20 a second.
pub const DEFAULT_INGEST_RATE: u32 = 20;
/// Default of `FAZT_INGEST_BURST`: a page firing a volley of events at load is not cut.
pub const DEFAULT_INGEST_BURST: u32 = 100;
/// Client addresses tracked at once (about 40 bytes each). An entry lasts only until its
/// bucket is full again (burst / rate: 5 s by default); beyond this many, new addresses
/// share one bucket per shard (see `http::limiter`).
const INGEST_CLIENTS: usize = 16_384;

/// The ingestion limiter; `None` inside when `FAZT_INGEST_RATE` is 0.
pub struct IngestLimits {
    limiter: Option<Limiter>,
    rate: u32,
    proxies: TrustedProxies,
}

impl IngestLimits {
    /// `per_second` events with `burst` at once per client; `per_second` 0 turns it off.
    pub fn new(per_second: u32, burst: u32, proxies: TrustedProxies) -> IngestLimits {
        let limiter = (per_second > 0)
            .then(|| Limiter::new(Rate::per_second(per_second, burst), INGEST_CLIENTS));
        IngestLimits {
            limiter,
            rate: per_second,
            proxies,
        }
    }

    /// Counts `request` against its client's bucket; `Some` is the answer when over the
    /// limit. `now` is the loop's clock when the request was complete.
    pub fn refuse(&self, endpoint: &Endpoint, request: &Request, now: Instant) -> Option<Response> {
        let limiter = self.limiter.as_ref()?;
        let label = label(endpoint)?;
        if request.method == Method::Options {
            return None;
        }
        let client = client_key(self.proxies.client_ip(request));
        let wait = retry_after_secs(limiter.take(client, now).err()?);
        RATE_LIMITED.count(label);
        Some(self.answer(endpoint, request, wait))
    }

    fn answer(&self, endpoint: &Endpoint, request: &Request, wait: u64) -> Response {
        match endpoint {
            Endpoint::Redirect(slug) => super::links::redirect_unrecorded(slug, request),
            Endpoint::Pixel => Response::new(429)
                .header("Retry-After", wait.to_string())
                .header("Cache-Control", "no-store")
                .body("image/gif", Body::Static(&PIXEL_GIF)),
            _ => {
                let message = format!(
                    "too many events from this address: at most {} a second; retry in {wait} s",
                    self.rate
                );
                // As every /track answer: a page on any origin may read it.
                too_many(&message, wait).header("Access-Control-Allow-Origin", "*")
            }
        }
    }
}

/// The metric label of a limited endpoint; `None` for the script, which is not an event.
fn label(endpoint: &Endpoint) -> Option<&'static str> {
    match endpoint {
        Endpoint::Track => Some("track"),
        Endpoint::Pixel => Some("pixel"),
        Endpoint::Redirect(_) => Some("redirect"),
        Endpoint::Webhook(_) => Some("webhook"),
        Endpoint::Script => None,
    }
}

/// Requests over the ingestion limit, by endpoint.
pub struct RateLimited {
    track: Counter,
    pixel: Counter,
    redirect: Counter,
    webhook: Counter,
}

pub static RATE_LIMITED: RateLimited = RateLimited {
    track: Counter::new(),
    pixel: Counter::new(),
    redirect: Counter::new(),
    webhook: Counter::new(),
};

static LIMITED: Desc = Desc::new(
    Kind::Counter,
    "fazt_ingest_rate_limited_total",
    "ingest.rate_limited",
    "Ingestion requests over their client's rate limit (429; a short link still redirects \
     but its click is not recorded), by endpoint.",
)
.labelled("endpoint");

impl RateLimited {
    fn count(&self, label: &str) {
        match label {
            "track" => self.track.inc(),
            "pixel" => self.pixel.inc(),
            "redirect" => self.redirect.inc(),
            _ => self.webhook.inc(),
        }
    }
}

impl Source for RateLimited {
    fn collect(&self, out: &mut Collector) {
        out.int_with(&LIMITED, "track", self.track.get());
        out.int_with(&LIMITED, "pixel", self.pixel.get());
        out.int_with(&LIMITED, "redirect", self.redirect.get());
        out.int_with(&LIMITED, "webhook", self.webhook.get());
    }
}
