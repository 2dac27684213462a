//! The ingestion endpoints (D4, wire-compatible with the earlier Go fazt): `POST /track`,
//! `GET /pixel.gif`, `/r/<slug>`, `POST /webhook/<endpoint>`, plus pageviews of hosted
//! sites. Handlers run on core threads: they build an event and `try_record` it; they
//! never wait on the database. An event is acknowledged only once it is queued: when the
//! queue refuses it (full, stopping, or the database cannot take writes), `/track`,
//! `/pixel.gif` and webhooks answer 503 + `Retry-After` ([`unavailable`]); a short link
//! still redirects and a page is still served (their click or view is counted as dropped).

use super::event::EventQueue;
use super::event::{Event, SaltBook, Source, Utm, NOT_FOUND, PAGEVIEW};
use super::filter::{not_a_visit, Ignored, FILTER_STATS};
use crate::hosting::encoding::Encoding;
use crate::hosting::files::{etag_for, respond, FileMeta};
use crate::http::proxies::TrustedProxies;
use crate::http::{Body, Method, Request, Response};
use crate::platform::clock::unix_now;
use serde_json::Value;
use std::sync::Arc;

/// The 1×1 transparent GIF the Go fazt served, byte for byte.
pub const PIXEL_GIF: [u8; 42] = [
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x01, 0x44, 0x00, 0x3b,
];

/// fazt's own tracking script, served at [`SCRIPT_PATHS`] on every host.
pub const TRACK_JS: &[u8] = include_bytes!("../../assets/track.min.js");
/// Where the script is served: the Go fazt's documented path, and a short one.
pub const SCRIPT_PATHS: [&str; 2] = ["/static/js/track.min.js", "/fazt.js"];
/// Browsers revalidate the script hourly (its URL never changes, its content may with an
/// upgrade); the ETag makes that a 304.
const SCRIPT_CACHE_CONTROL: &str = "public, max-age=3600";

/// `/track` bodies: a beacon is small; more is abuse.
pub const TRACK_BODY_LIMIT: u64 = 10 * 1024;
/// `/webhook/<endpoint>` bodies.
pub const WEBHOOK_BODY_LIMIT: u64 = 64 * 1024;
/// Longest stored string field; longer values are cut (as the Go fazt did).
const MAX_FIELD: usize = 500;
/// Most tags kept from one event.
const MAX_TAGS: usize = 20;

/// Which ingestion endpoint a path names.
#[derive(Debug, PartialEq, Eq)]
pub enum Endpoint<'a> {
    Track,
    Pixel,
    Script,
    Redirect(&'a str),
    Webhook(&'a str),
}

impl Endpoint<'_> {
    pub fn of(path: &str) -> Option<Endpoint<'_>> {
        match path {
            "/track" => Some(Endpoint::Track),
            "/pixel.gif" => Some(Endpoint::Pixel),
            _ if SCRIPT_PATHS.contains(&path) => Some(Endpoint::Script),
            _ => path
                .strip_prefix("/r/")
                .map(Endpoint::Redirect)
                .or_else(|| path.strip_prefix("/webhook/").map(Endpoint::Webhook)),
        }
    }

    pub fn body_limit(&self) -> u64 {
        match self {
            Endpoint::Track => TRACK_BODY_LIMIT,
            Endpoint::Webhook(_) => WEBHOOK_BODY_LIMIT,
            Endpoint::Pixel | Endpoint::Script | Endpoint::Redirect(_) => 0,
        }
    }
}

/// Whether fazt serves a host (one of its sites under its domain); given by the server.
pub type ServesHost = Box<dyn Fn(&str) -> bool + Send + Sync>;

pub struct Ingest {
    pub queue: EventQueue,
    pub salts: Arc<SaltBook>,
    pub proxies: TrustedProxies,
    /// `/track` and `/pixel.gif` record events only for hosts fazt serves and these.
    pub track_domains: TrackDomains,
    pub serves_host: ServesHost,
}

/// `FAZT_TRACK_DOMAINS`: hosts outside fazt whose pages may send events, comma-separated;
/// `*.example.com` allows every subdomain of example.com (not example.com itself).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrackDomains {
    exact: Vec<String>,
    suffixes: Vec<String>,
}

impl TrackDomains {
    pub fn parse(text: &str) -> Result<TrackDomains, String> {
        let mut list = TrackDomains::default();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let item = item.to_ascii_lowercase();
            let (host, wildcard) = match item.strip_prefix("*.") {
                Some(rest) => (rest.to_string(), true),
                None => (item.clone(), false),
            };
            let valid = !host.is_empty()
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                });
            if !valid {
                return Err(format!(
                    "'{item}' is not a host name (like example.com) or a wildcard (like *.example.com)"
                ));
            }
            if wildcard {
                list.suffixes.push(format!(".{host}"));
            } else {
                list.exact.push(host);
            }
        }
        Ok(list)
    }

    pub fn allows(&self, host: &str) -> bool {
        self.exact.iter().any(|h| h == host) || self.suffixes.iter().any(|s| host.ends_with(s))
    }
}

impl Ingest {
    pub fn handle(&self, endpoint: Endpoint, request: &Request) -> Response {
        match endpoint {
            Endpoint::Track => self.track(request),
            Endpoint::Pixel => self.pixel(request),
            Endpoint::Script => script(request),
            Endpoint::Redirect(slug) => super::links::redirect(self, slug, request),
            Endpoint::Webhook(name) => super::links::webhook(self, name, request),
        }
    }

    /// Builds an event with the common fields and hands it to the writer. `false`: it was
    /// refused (counted); answer with [`Ingest::unavailable`] where the client sent it.
    pub fn record(&self, request: &Request, mut event: Event) -> bool {
        // A site's own host is never its referrer: that is navigation inside the site.
        if event.referrer.as_deref() == Some(event.domain.as_str()) {
            event.referrer = None;
        }
        let ip = self.proxies.client_ip(request);
        let agent = request.header_str("user-agent").unwrap_or("");
        event.visitor = self.salts.visitor(&event.domain, ip, agent);
        self.queue.try_record(event)
    }

    /// The answer to an event the queue refused: 503, and when to send it again.
    pub fn unavailable(&self) -> Response {
        let retry = self.queue.retry_after_secs();
        let message = if self.queue.is_unwritable() {
            "the event was not recorded: the database cannot take writes (disk full); retry later"
        } else if self.queue.is_closed() {
            "the event was not recorded: the server is shutting down; retry later"
        } else {
            "the event was not recorded: too many events are waiting; retry later"
        };
        Response::error(503, message).header("Retry-After", retry.to_string())
    }

    /// Whether `request` is a person's visit; if not, counts why.
    pub fn is_visit(&self, request: &Request) -> bool {
        match not_a_visit(request) {
            Some(reason) => {
                FILTER_STATS.count(reason);
                false
            }
            None => true,
        }
    }

    /// Whether events for `domain` are taken: a host fazt serves, or an allowed one.
    fn accepts(&self, domain: &str) -> bool {
        let accepted = (self.serves_host)(domain) || self.track_domains.allows(domain);
        if !accepted {
            FILTER_STATS.count(Ignored::ForeignHost);
        }
        accepted
    }

    fn track(&self, request: &Request) -> Response {
        match request.method {
            Method::Options => return preflight(),
            Method::Post => {}
            _ => {
                return cors(Response::error(405, "use POST to send events to /track"))
                    .header("Allow", "POST, OPTIONS")
            }
        }
        let fields = match parse_track(&request.body) {
            Ok(fields) => fields,
            Err(message) => return cors(Response::error(400, &message)),
        };
        let utm = fields.utm();
        let referer_header = request.header_str("referer");
        let domain = fields
            .d
            .or(fields.h)
            .or_else(|| referer_header.and_then(host_of_url))
            .unwrap_or_else(|| "unknown".to_string());
        let referrer = fields
            .referrer
            .as_deref()
            .or(referer_header)
            .and_then(host_of_url);
        let domain = clean_domain(&domain);
        if !self.accepts(&domain) {
            let message = format!(
                "events for '{domain}' are not accepted: it is not a site of this server; \
                 add it to FAZT_TRACK_DOMAINS to accept a site hosted elsewhere"
            );
            return cors(Response::error(400, &message));
        }
        if !self.is_visit(request) {
            return cors(Response::new(204));
        }
        let event = Event {
            ts: unix_now(),
            domain,
            // A page is its path: the query (campaigns are kept apart) and fragment are not.
            path: fields
                .p
                .map(|p| clip(p.split(['?', '#']).next().unwrap_or_default()))
                .filter(|p| !p.is_empty()),
            kind: fields
                .e
                .map(|e| clip(&e))
                .unwrap_or_else(|| PAGEVIEW.to_string()),
            referrer,
            visitor: 0,
            source: Source::Track,
            tags: fields.t,
            query: fields.q,
            utm,
        };
        if !self.record(request, event) {
            return cors(self.unavailable());
        }
        cors(Response::new(204))
    }

    fn pixel(&self, request: &Request) -> Response {
        // HEAD (a link checker, a prefetch) is not a view. A view that could not be queued
        // is not acknowledged with the image.
        if request.method == Method::Get && !self.pixel_event(request) {
            return self.unavailable().header("Cache-Control", "no-store");
        }
        // The image is answered when the view was recorded or not a view to record; never
        // cached, so each view asks again (no-store alone says it: Pragma and Expires are
        // HTTP/1.0).
        Response::new(200)
            .header("Cache-Control", "no-store")
            .body("image/gif", Body::Static(&PIXEL_GIF))
    }

    /// False only when a view to record was refused by the queue.
    fn pixel_event(&self, request: &Request) -> bool {
        let params = QueryParams::parse(request.query());
        let referer = request.header_str("referer");
        let domain = params
            .get("domain")
            .or_else(|| referer.and_then(host_of_url))
            .unwrap_or_else(|| "unknown".to_string());
        let domain = clean_domain(&domain);
        if !self.accepts(&domain) || !self.is_visit(request) {
            return true;
        }
        {
            let event = Event {
                ts: unix_now(),
                domain,
                path: None,
                kind: params
                    .get("source")
                    .map(|s| clip(&s))
                    .unwrap_or_else(|| "pixel".to_string()),
                referrer: referer.and_then(host_of_url),
                visitor: 0,
                source: Source::Pixel,
                tags: params
                    .get("tags")
                    .map(|t| split_tags(&t))
                    .unwrap_or_default(),
                query: None,
                utm: Utm::from_params(|name| params.get(name)),
            };
            self.record(request, event)
        }
    }

    /// A pageview of a hosted site's page, under the page's canonical path.
    pub fn record_pageview(&self, request: &Request, domain: &str, page: &str) {
        if self.is_visit(request) {
            let kind = PAGEVIEW.to_string();
            let event = event_for(
                request,
                domain.to_string(),
                page.to_string(),
                kind,
                Source::Page,
            );
            // The page is served either way; a refused view is counted as dropped.
            self.record(request, event);
        }
    }

    /// A GET on a hosted site that found nothing: its own event type, so owners see
    /// broken links (by path and referrer).
    pub fn record_not_found(&self, request: &Request, domain: &str) {
        if self.is_visit(request) {
            let (path, kind) = (request.path().to_string(), NOT_FOUND.to_string());
            let event = event_for(request, domain.to_string(), path, kind, Source::Page);
            self.record(request, event);
        }
    }
}

/// The tracking script, with its ETag (If-None-Match → 304) and Range support.
fn script(request: &Request) -> Response {
    static META: std::sync::LazyLock<FileMeta> = std::sync::LazyLock::new(|| {
        use sha2::Digest;
        let hash: [u8; 32] = sha2::Sha256::digest(TRACK_JS).into();
        FileMeta {
            etag: Arc::from(etag_for(&hash, Encoding::Identity)),
            mime: Arc::from("text/javascript; charset=utf-8"),
            cache_control: SCRIPT_CACHE_CONTROL,
            size: TRACK_JS.len() as u64,
            // Sent as it is: 1.6 KB, under a kilobyte compressed, cached for an hour.
            encoding: Encoding::Identity,
            vary: false,
            // Part of the binary, not of a deployment: the ETag is its validator.
            modified: None,
        }
    });
    let body = |start: u64, len: u64| {
        let range = usize::try_from(start).unwrap_or(0)..usize::try_from(start + len).unwrap_or(0);
        Body::Static(TRACK_JS.get(range).unwrap_or_default())
    };
    respond(request, &META, 200, body)
}

/// What every `/track` answer carries, so a page on any origin can read it.
fn cors(response: Response) -> Response {
    response.header("Access-Control-Allow-Origin", "*")
}

/// The answer to a CORS preflight of `/track`: the only response that needs the
/// methods, headers and how long the browser may remember them.
fn preflight() -> Response {
    cors(Response::new(204))
        .header("Access-Control-Allow-Methods", "POST, OPTIONS")
        .header("Access-Control-Allow-Headers", "Content-Type")
        .header("Access-Control-Max-Age", "86400")
}

/// The fields of a `/track` body, type-checked.
#[derive(Debug, Default, PartialEq)]
struct TrackFields {
    h: Option<String>,
    d: Option<String>,
    p: Option<String>,
    e: Option<String>,
    t: Vec<String>,
    referrer: Option<String>,
    q: Option<String>,
}

impl TrackFields {
    /// Campaign parameters: from `q` (what fazt's script sends), else from the query
    /// string of `p`.
    fn utm(&self) -> Utm {
        let q: Option<serde_json::Map<String, Value>> =
            self.q.as_deref().and_then(|q| serde_json::from_str(q).ok());
        let from_q = Utm::from_params(|name| {
            q.as_ref()?.get(name).map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        if from_q != Utm::default() {
            return from_q;
        }
        let query = self
            .p
            .as_deref()
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| q);
        let params = QueryParams::parse(query.unwrap_or_default());
        Utm::from_params(|name| params.get(name))
    }
}

/// Parses a `/track` body (any Content-Type: `sendBeacon` sends `text/plain`).
fn parse_track(body: &[u8]) -> Result<TrackFields, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("body must be a JSON object".to_string());
    };
    let text = |name: &str| -> Result<Option<String>, String> {
        match map.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(format!("field '{name}' must be a string")),
        }
    };
    let tags = match map.get("t") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut tags = Vec::new();
            for item in items {
                match item {
                    Value::String(s) => tags.extend(split_tags(s)),
                    _ => return Err("field 't' must be an array of strings".to_string()),
                }
            }
            tags.truncate(MAX_TAGS);
            tags
        }
        Some(_) => return Err("field 't' must be an array of strings".to_string()),
    };
    let query = match map.get("q") {
        None | Some(Value::Null) => None,
        Some(Value::Object(q)) if q.is_empty() => None,
        Some(Value::Object(q)) => {
            if let Some((key, _)) = q
                .iter()
                .find(|(_, v)| !(v.is_string() || v.is_number() || v.is_boolean()))
            {
                return Err(format!(
                    "field 'q.{key}' must be a string, number or boolean"
                ));
            }
            Some(Value::Object(q.clone()).to_string())
        }
        Some(_) => return Err("field 'q' must be an object".to_string()),
    };
    Ok(TrackFields {
        h: text("h")?,
        d: text("d")?,
        p: text("p")?,
        e: text("e")?,
        t: tags,
        referrer: text("ref")?,
        q: query,
    })
}

/// Tags from a comma-separated list: trimmed, non-empty, clipped, at most `MAX_TAGS`.
pub fn split_tags(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .take(MAX_TAGS)
        .map(|t| t.chars().take(100).collect())
        .collect()
}

fn clip(text: &str) -> String {
    text.trim().chars().take(MAX_FIELD).collect()
}

/// A domain as stored: lower-case, no port, clipped.
fn clean_domain(domain: &str) -> String {
    let domain = domain.trim().to_ascii_lowercase();
    let host = domain.split(':').next().unwrap_or("");
    clip(if host.is_empty() { "unknown" } else { host })
}

/// The host of a URL (`https://a.example/x` → `a.example`), or of a bare host.
pub fn host_of_url(url: &str) -> Option<String> {
    let rest = url.trim();
    let rest = rest.split_once("://").map_or(rest, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority
        .rsplit('@')
        .next()?
        .split(':')
        .next()?
        .to_ascii_lowercase();
    (!host.is_empty()).then(|| clip(&host))
}

/// `application/x-www-form-urlencoded` query parameters, decoded.
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: &str) -> QueryParams {
        QueryParams(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (form_decode(k), form_decode(v))
                })
                .collect(),
        )
    }

    /// The first non-empty value of a parameter.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    }
}

fn form_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match (bytes[i], escaped) {
            (_, Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (byte, None) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An event with the fields every source fills the same way (path, type, referrer).
pub(super) fn event_for(
    request: &Request,
    domain: String,
    path: String,
    kind: String,
    source: Source,
) -> Event {
    Event {
        ts: unix_now(),
        domain,
        path: Some(clip(&path)),
        kind: clip(&kind),
        referrer: request.header_str("referer").and_then(host_of_url),
        visitor: 0,
        source,
        tags: Vec::new(),
        query: None,
        utm: {
            let params = QueryParams::parse(request.query());
            Utm::from_params(|name| params.get(name))
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Endpoint::of("/track"), Some(Endpoint::Track));
        assert_eq!(Endpoint::of("/pixel.gif"), Some(Endpoint::Pixel));
        assert_eq!(Endpoint::of("/fazt.js"), Some(Endpoint::Script));
        assert_eq!(
            Endpoint::of("/static/js/track.min.js"),
            Some(Endpoint::Script)
        );
        assert_eq!(Endpoint::of("/r/promo"), Some(Endpoint::Redirect("promo")));
        assert_eq!(Endpoint::of("/r/"), Some(Endpoint::Redirect("")));
        assert_eq!(Endpoint::of("/webhook/gh"), Some(Endpoint::Webhook("gh")));
        assert_eq!(Endpoint::of("/tracker"), None);
        assert_eq!(Endpoint::of("/"), None);
    }

    #[test]
    fn track_domains() {
        let list = TrackDomains::parse(" Shop.Example.com, *.docs.example ,").unwrap();
        assert!(list.allows("shop.example.com"));
        assert!(
            !list.allows("www.shop.example.com"),
            "exact names are exact"
        );
        assert!(list.allows("a.docs.example") && list.allows("a.b.docs.example"));
        assert!(
            !list.allows("docs.example"),
            "a wildcard is for subdomains only"
        );
        assert!(!list.allows("evildocs.example"));
        assert_eq!(TrackDomains::parse("").unwrap(), TrackDomains::default());
        for bad in ["http://a.com", "a..com", "*", "*.", "a com", "a.com/x"] {
            let err = TrackDomains::parse(bad).unwrap_err();
            assert!(err.contains("host name"), "{bad}: {err}");
        }
    }

    #[test]
    fn track_bodies() {
        let f = parse_track(br#"{"h":"a.com","p":"/x","e":"signup","t":["a","b, c"],"ref":"https://g.co/s","q":{"n":1,"ok":true,"s":"x"}}"#).unwrap();
        assert_eq!(f.h.as_deref(), Some("a.com"));
        assert_eq!(f.t, vec!["a", "b", "c"]);
        assert_eq!(f.q.as_deref(), Some(r#"{"n":1,"ok":true,"s":"x"}"#));
        assert!(parse_track(b"not json").unwrap_err().contains("JSON"));
        assert!(parse_track(b"[1]").unwrap_err().contains("object"));
        assert!(parse_track(br#"{"p":5}"#).unwrap_err().contains("'p'"));
        assert!(parse_track(br#"{"t":"a"}"#).unwrap_err().contains("'t'"));
        assert!(parse_track(br#"{"t":[1]}"#).unwrap_err().contains("'t'"));
        assert!(parse_track(br#"{"q":[1]}"#).unwrap_err().contains("'q'"));
        assert!(parse_track(br#"{"q":{"x":{"y":1}}}"#)
            .unwrap_err()
            .contains("'q.x'"));
        assert_eq!(parse_track(b"{}").unwrap(), TrackFields::default());
    }

    #[test]
    fn urls_and_params() {
        assert_eq!(
            host_of_url("https://User@Blog.Example.com:8443/p?q#f").as_deref(),
            Some("blog.example.com")
        );
        assert_eq!(host_of_url("example.org/x").as_deref(), Some("example.org"));
        assert_eq!(host_of_url(""), None);
        let p = QueryParams::parse("domain=a.com&tags=x%2Cy+z&empty=&source=news");
        assert_eq!(p.get("domain").as_deref(), Some("a.com"));
        assert_eq!(p.get("tags").as_deref(), Some("x,y z"));
        assert_eq!(p.get("empty"), None);
        assert_eq!(split_tags(" a, ,b "), vec!["a", "b"]);
        assert_eq!(form_decode("%zz%4"), "%zz%4");
    }
}
