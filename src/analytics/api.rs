//! The analytics part of the admin API: stats (per site too), live numbers, recent
//! events, domains, tags, and the management of short links and webhooks. Reads use the
//! admin thread's connection; changes are returned as a [`Change`] for the caller to hand
//! to the writer (the admin thread never waits for it). Bad parameters are 400s naming
//! the parameter.
//!
//! Scoped callers (a `deploy:blog` key or account, [`Reader::Scoped`]) may read
//! `/api/stats`, `/api/events` and `/api/live` of the sites their scopes cover, with
//! `site=` (and `/api/stats?by=site`, which then lists only those sites); anything else
//! is a 403 naming the scope.

use super::activity;
use super::ingest::{split_tags, QueryParams};
use super::manage::{self, SecretChange};
use super::stats::{self, Bucket, SiteHosts, StatsQuery};
use crate::db::reader::read_db;
use crate::db::DbError;
use crate::http::{Method, Request, Response, ResponseError};
use serde_json::{json, Value};

/// Default range of `/api/stats`: the last 7 days.
const DEFAULT_RANGE_SECS: i64 = 7 * 86_400;
const DEFAULT_TOP: usize = 10;
const MAX_TOP: usize = 100;
const DEFAULT_EVENTS: usize = 100;
const MAX_EVENTS: usize = 1000;
/// Page size of `/api/domains` and `/api/tags`: junk (a wildcard `FAZT_TRACK_DOMAINS`, a
/// flood of unique tags) must not make one answer megabytes long.
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// A validated change to run on the write connection; its `Ok` is the response body.
pub type Change = Box<dyn FnOnce(&rusqlite::Connection) -> Result<Value, ApiError> + Send>;

/// What an analytics route decided.
pub enum Routed {
    /// Answered from the reader (or refused).
    Now(Result<Response, ApiError>),
    /// A write: run it on the writer, answer with [`Response::json`] 200 of its body.
    Write(Change),
}

/// What the admin API knows of sites: the site table, not the analytics data.
pub struct Sites<'a> {
    /// The site a `site` parameter names (its name, or one of the hosts fazt serves it
    /// on) and the hosts its events are recorded under; `None` when it names no site.
    pub resolve: &'a dyn Fn(&str) -> Option<SiteHosts>,
    /// Every site, with its hosts.
    pub all: &'a dyn Fn() -> Vec<SiteHosts>,
}

/// Who reads.
pub enum Reader<'a> {
    /// Every site and domain.
    Owner,
    /// A key or account whose scopes (`scope`, as stored) cover only some sites.
    Scoped {
        scope: &'a str,
        covers: &'a dyn Fn(&str) -> bool,
    },
}

/// Whether a caller without the owner scope may be routed here for `path`: the reads of
/// one site's numbers ([`route`] then checks which site).
pub fn is_site_read(path: &str) -> bool {
    matches!(path, "/api/stats" | "/api/events" | "/api/live")
}

/// Answers the analytics routes; `None` when the path is not one of them.
pub fn route(request: &Request, sites: &Sites, reader: &Reader) -> Option<Routed> {
    let path = request.path();
    let params = QueryParams::parse(request.query());
    let reading = matches!(request.method, Method::Get | Method::Head);
    if let Reader::Scoped { scope, .. } = reader {
        if !(reading && is_site_read(path)) {
            return Some(refused(ApiError::Forbidden(format!(
                "this API key's scope ({scope}) does not allow {} {path}: it needs the owner scope",
                request.method_text()
            ))));
        }
    }
    let result = match path {
        "/api/stats" if reading => get_stats(&params, sites, reader),
        "/api/events" if reading => get_events(&params, sites, reader),
        "/api/live" if reading => get_live(&params, sites, reader),
        "/api/domains" if reading => paged(&params, stats::domains),
        "/api/tags" if reading => paged(&params, stats::tags),
        "/api/redirects" if reading => read(redirects_with_activity),
        "/api/redirects" if request.method == Method::Post => return Some(put_redirect(request)),
        "/api/webhooks" if reading => read(webhooks_with_activity),
        "/api/webhooks" if request.method == Method::Post => return Some(put_webhook(request)),
        "/api/stats" | "/api/events" | "/api/live" | "/api/domains" | "/api/tags" => {
            Err(ApiError::Method("GET, HEAD"))
        }
        "/api/redirects" | "/api/webhooks" => Err(ApiError::Method("GET, HEAD, POST")),
        _ => {
            if let Some(slug) = path.strip_prefix("/api/redirects/") {
                return Some(delete(request, "short link", slug, manage::delete_redirect));
            }
            let name = path.strip_prefix("/api/webhooks/")?;
            return Some(delete(request, "webhook", name, manage::delete_webhook));
        }
    };
    Some(Routed::Now(result.map(|body| Response::json(200, &body))))
}

/// Why an analytics request failed; answered through [`crate::http::error_response`].
#[derive(Debug)]
pub enum ApiError {
    BadParameter(String),
    /// A scoped caller asked for what its scopes do not cover.
    Forbidden(String),
    NotFound(String),
    Method(&'static str),
    Db(DbError),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> ApiError {
        ApiError::Db(e)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::BadParameter(m) | ApiError::Forbidden(m) | ApiError::NotFound(m) => {
                f.write_str(m)
            }
            ApiError::Method(allow) => write!(f, "method not allowed here; use {allow}"),
            ApiError::Db(e) => e.fmt(f),
        }
    }
}

impl ResponseError for ApiError {
    fn status(&self) -> u16 {
        match self {
            ApiError::BadParameter(_) => 400,
            ApiError::Forbidden(_) => 403,
            ApiError::NotFound(_) => 404,
            ApiError::Method(_) => 405,
            ApiError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ApiError::Db(e) => e.code(),
            other => crate::http::error::status_code(other.status()),
        }
    }

    fn retry_after_secs(&self) -> Option<u32> {
        match self {
            ApiError::Db(e) => e.retry_after_secs(),
            _ => None,
        }
    }

    fn allow(&self) -> Option<&'static str> {
        match self {
            ApiError::Method(allow) => Some(allow),
            _ => None,
        }
    }
}

fn read(query: fn(&rusqlite::Connection) -> Result<Value, DbError>) -> Result<Value, ApiError> {
    Ok(read_db(query)?)
}

/// A list read one page at a time: `?limit=` (default 100, at most 1000) items from
/// `?offset=` (default 0); the answer's `next` is the following page's offset.
fn paged(
    params: &QueryParams,
    query: fn(&rusqlite::Connection, stats::Page) -> Result<Value, DbError>,
) -> Result<Value, ApiError> {
    let limit = count_param(params, "limit", DEFAULT_PAGE, MAX_PAGE)?;
    let offset = match params.get("offset") {
        None => 0,
        Some(text) => text.parse::<usize>().map_err(|_| {
            ApiError::BadParameter(format!(
                "parameter 'offset' must be a whole number (0 or more), got '{text}'"
            ))
        })?,
    };
    let page = stats::Page { offset, limit };
    Ok(read_db(|conn| query(conn, page))?)
}

/// The domains `?site=` names: a site's name or a served host (its hosts), else a domain
/// with events; anything else is a 404, so a typo is not mistaken for a quiet site. A
/// scoped reader must name a site its scopes cover (403 otherwise, before anything is
/// looked up in the analytics data).
fn site_domains(
    params: &QueryParams,
    sites: &Sites,
    reader: &Reader,
    path: &str,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(site) = params.get("site").map(|s| s.to_ascii_lowercase()) else {
        if let Reader::Scoped { scope, .. } = reader {
            return Err(ApiError::Forbidden(format!(
                "this API key's scope ({scope}) allows {path} only with site=<a site it \
                 covers>; all sites together need the owner scope"
            )));
        }
        return Ok(None);
    };
    let resolved = (sites.resolve)(&site);
    if let Reader::Scoped { scope, covers } = reader {
        let covered = resolved.as_ref().is_some_and(|s| covers(&s.site));
        if !covered {
            return Err(ApiError::Forbidden(format!(
                "this API key's scope ({scope}) does not cover site '{site}' (needs a \
                 deploy scope that covers it, or owner)"
            )));
        }
    }
    if let Some(found) = resolved {
        return Ok(Some(found.hosts));
    }
    let known = read_db(|conn| {
        super::store::string_id(conn, super::store::KIND_DOMAIN, &site).map(|id| id.is_some())
    })?;
    if known {
        Ok(Some(vec![site]))
    } else {
        Err(ApiError::NotFound(format!(
            "no site or domain '{site}': give a site's name, its host, or a domain that sent events"
        )))
    }
}

/// `from`, `to` (default: the 7 days up to now) and `bucket` (default hour) of a stats
/// query.
fn range_params(params: &QueryParams) -> Result<(i64, i64, Bucket), ApiError> {
    let now = crate::platform::clock::unix_now();
    let to = time_param(params, "to")?.unwrap_or(now + 1);
    let from = time_param(params, "from")?.unwrap_or((to - DEFAULT_RANGE_SECS).max(0));
    if from >= to {
        return Err(ApiError::BadParameter(
            "parameter 'from' must be before 'to'".into(),
        ));
    }
    let bucket = match params.get("bucket") {
        None => Bucket::Hour,
        Some(b) => Bucket::parse(&b).ok_or_else(|| {
            ApiError::BadParameter(format!(
                "parameter 'bucket' must be 'hour' or 'day', got '{b}'"
            ))
        })?,
    };
    Ok((from, to, bucket))
}

fn get_stats(params: &QueryParams, sites: &Sites, reader: &Reader) -> Result<Value, ApiError> {
    let (from, to, bucket) = range_params(params)?;
    match params.get("by").as_deref() {
        None => {}
        Some("site") => return get_stats_by_site(params, sites, reader, (from, to, bucket)),
        Some(other) => {
            return Err(ApiError::BadParameter(format!(
                "parameter 'by' must be 'site', got '{other}'"
            )))
        }
    }
    let top = count_param(params, "top", DEFAULT_TOP, MAX_TOP)?;
    let query = StatsQuery {
        site: params.get("site"),
        domains: site_domains(params, sites, reader, "/api/stats")?,
        from,
        to,
        bucket,
        top,
    };
    Ok(read_db(|conn| stats::stats(conn, &query))?)
}

/// `/api/stats?by=site`: every site (a scoped reader: those it covers) and, for the
/// owner, the other domains with pageviews.
fn get_stats_by_site(
    params: &QueryParams,
    sites: &Sites,
    reader: &Reader,
    (from, to, bucket): (i64, i64, Bucket),
) -> Result<Value, ApiError> {
    if params.get("site").is_some() {
        return Err(ApiError::BadParameter(
            "parameter 'site' does not go with 'by=site', which lists every site".into(),
        ));
    }
    let mut listed = (sites.all)();
    let owner = match reader {
        Reader::Owner => true,
        Reader::Scoped { covers, .. } => {
            listed.retain(|s| covers(&s.site));
            false
        }
    };
    Ok(read_db(|conn| {
        stats::by_site(conn, &listed, owner, from, to, bucket)
    })?)
}

fn get_events(params: &QueryParams, sites: &Sites, reader: &Reader) -> Result<Value, ApiError> {
    let domains = site_domains(params, sites, reader, "/api/events")?;
    let limit = count_param(params, "limit", DEFAULT_EVENTS, MAX_EVENTS)?;
    let before = match params.get("before") {
        None => None,
        Some(b) => Some(b.parse::<i64>().map_err(|_| {
            ApiError::BadParameter(format!("parameter 'before' must be an event id, got '{b}'"))
        })?),
    };
    let (kind, tag) = (params.get("type"), params.get("tag"));
    let events = |conn: &rusqlite::Connection| {
        stats::recent_events(
            conn,
            domains.as_deref(),
            kind.as_deref(),
            tag.as_deref(),
            before,
            limit,
        )
    };
    Ok(read_db(events)?)
}

/// `/api/live`: the last 5 minutes of raw events, of one site or all.
fn get_live(params: &QueryParams, sites: &Sites, reader: &Reader) -> Result<Value, ApiError> {
    let domains = site_domains(params, sites, reader, "/api/live")?;
    let now = crate::platform::clock::unix_now();
    let mut body = read_db(|conn| activity::live(conn, domains.as_deref(), now))?;
    body["site"] = json!(params.get("site"));
    Ok(body)
}

/// `/api/redirects`, each with its last click and clicks of the last 30 days.
fn redirects_with_activity(conn: &rusqlite::Connection) -> Result<Value, DbError> {
    let mut list = manage::list_redirects(conn)?;
    let clicks = activity::redirect_activity(conn, crate::platform::clock::unix_now())?;
    for row in list["redirects"].as_array_mut().into_iter().flatten() {
        let slug = row["slug"].as_str().unwrap_or_default();
        let seen = clicks.get(slug).copied().unwrap_or_default();
        seen.annotate(row);
    }
    Ok(list)
}

/// `/api/webhooks`, each with its last delivery and deliveries of the last 30 days.
fn webhooks_with_activity(conn: &rusqlite::Connection) -> Result<Value, DbError> {
    let mut list = manage::list_webhooks(conn)?;
    let now = crate::platform::clock::unix_now();
    for row in list["webhooks"].as_array_mut().into_iter().flatten() {
        let endpoint = row["endpoint"].as_str().unwrap_or_default().to_string();
        activity::webhook_activity(conn, &endpoint, now)?.annotate(row);
    }
    Ok(list)
}

/// Latest time accepted (year 9999): keeps every later computation far from overflow.
const MAX_TIME: i64 = 253_402_300_799;

/// Unix seconds, or a UTC date `YYYY-MM-DD` (its midnight), from 1970 to 9999.
fn time_param(params: &QueryParams, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = params.get(name) else {
        return Ok(None);
    };
    let parsed = text.parse::<i64>().ok().or_else(|| parse_date(&text));
    match parsed {
        Some(secs) if (0..=MAX_TIME).contains(&secs) => Ok(Some(secs)),
        _ => Err(ApiError::BadParameter(format!(
            "parameter '{name}' must be unix seconds or a date YYYY-MM-DD from 1970 to 9999, got '{text}'"
        ))),
    }
}

fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.split('-');
    let (y, m, d) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || y.len() != 4 || m.len() != 2 || d.len() != 2 {
        return None;
    }
    let (y, m, d): (i64, i64, i64) = (y.parse().ok()?, m.parse().ok()?, d.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Days from civil (Howard Hinnant), the inverse of response::civil_from_days.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some((era * 146_097 + doe - 719_468) * 86_400)
}

fn count_param(
    params: &QueryParams,
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match params.get(name) {
        None => Ok(default),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(ApiError::BadParameter(format!(
                "parameter '{name}' must be a whole number from 1 to {max}, got '{text}'"
            ))),
        },
    }
}

fn json_body(request: &Request) -> Result<serde_json::Map<String, Value>, ApiError> {
    match serde_json::from_slice(&request.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::BadParameter("body must be a JSON object".into())),
        Err(e) => Err(ApiError::BadParameter(format!(
            "body is not valid JSON: {e}"
        ))),
    }
}

fn string_field(
    map: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<String>, ApiError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(_) => Err(ApiError::BadParameter(format!(
            "field '{name}' must be a string"
        ))),
    }
}

/// A refusal found before any write.
fn refused(e: ApiError) -> Routed {
    Routed::Now(Err(e))
}

fn put_redirect(request: &Request) -> Routed {
    validated_redirect(request).map_or_else(refused, Routed::Write)
}

fn validated_redirect(request: &Request) -> Result<Change, ApiError> {
    let body = json_body(request)?;
    let slug = string_field(&body, "slug")?
        .ok_or_else(|| ApiError::BadParameter("field 'slug' (a string) is required".into()))?;
    let url = string_field(&body, "url")?
        .ok_or_else(|| ApiError::BadParameter("field 'url' (a string) is required".into()))?;
    manage::validate_name("slug", &slug).map_err(ApiError::BadParameter)?;
    manage::validate_url(&url).map_err(ApiError::BadParameter)?;
    let tags = split_tags(&string_field(&body, "tags")?.unwrap_or_default());
    Ok(Box::new(move |conn| {
        manage::put_redirect(conn, &slug, &url, &tags)?;
        Ok(json!({ "slug": slug, "url": url, "tags": tags }))
    }))
}

fn put_webhook(request: &Request) -> Routed {
    validated_webhook(request).map_or_else(refused, Routed::Write)
}

fn validated_webhook(request: &Request) -> Result<Change, ApiError> {
    let body = json_body(request)?;
    let endpoint = string_field(&body, "endpoint")?
        .ok_or_else(|| ApiError::BadParameter("field 'endpoint' (a string) is required".into()))?;
    manage::validate_name("endpoint", &endpoint).map_err(ApiError::BadParameter)?;
    // An edit that leaves `secret` out keeps the stored one (pausing a webhook must not
    // unsign it); `null` or "" removes it.
    let secret = match body.get("secret") {
        None => SecretChange::Keep,
        Some(_) => match string_field(&body, "secret")?.filter(|s| !s.is_empty()) {
            None => SecretChange::Remove,
            Some(s) if s.len() > 256 => {
                return Err(ApiError::BadParameter(
                    "field 'secret' must be at most 256 characters".into(),
                ))
            }
            Some(s) => SecretChange::Set(s),
        },
    };
    // Likewise `active`: left out, an edit keeps it, and a new webhook is active.
    let active = match body.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::BadParameter(
                "field 'active' must be true or false".into(),
            ))
        }
    };
    Ok(Box::new(move |conn| {
        let (signed, active) = manage::put_webhook(conn, &endpoint, &secret, active)?;
        Ok(json!({ "endpoint": endpoint, "signed": signed, "active": active }))
    }))
}

fn delete(
    request: &Request,
    what: &'static str,
    name: &str,
    remove: fn(&rusqlite::Connection, &str) -> Result<bool, DbError>,
) -> Routed {
    if request.method != Method::Delete {
        return refused(ApiError::Method("DELETE"));
    }
    let name = name.to_string();
    Routed::Write(Box::new(move |conn| {
        if remove(conn, &name)? {
            Ok(json!({ "deleted": name }))
        } else {
            Err(ApiError::NotFound(format!("no {what} '{name}'")))
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(951_868_800));
        assert_eq!(parse_date("2026-11-27"), Some(1_795_737_600));
        assert_eq!(parse_date("2026-13-01"), None);
        assert_eq!(parse_date("26-11-27"), None);
        assert_eq!(parse_date("yesterday"), None);
    }

    #[test]
    fn errors_map_to_statuses_codes_and_headers() {
        use crate::http::error_response;
        let cases = [
            (ApiError::BadParameter("p".into()), 400, "bad_request", None),
            (ApiError::NotFound("n".into()), 404, "not_found", None),
            (
                ApiError::Method("GET, HEAD"),
                405,
                "method_not_allowed",
                None,
            ),
            (
                ApiError::Db(DbError::QueueFull),
                503,
                "writer_queue_full",
                Some("1"),
            ),
        ];
        for (error, status, code, retry) in cases {
            let response = error_response(&error);
            assert_eq!(response.status, status, "{error}");
            let body: Value = serde_json::from_slice(response.body.as_bytes()).unwrap();
            assert_eq!(body["error"]["code"], code, "{error}");
            assert_eq!(body["error"]["message"], error.to_string());
            assert_eq!(response.get_header("Retry-After"), retry, "{error}");
            let allow = (status == 405).then_some("GET, HEAD");
            assert_eq!(response.get_header("Allow"), allow, "{error}");
        }
    }
}
