//! A site's serverless app on the admin API (issue #14): its environment variables
//! (`/api/sites/<name>/env[/<KEY>]`) and its logs (`/api/sites/<name>/logs`), and the
//! periodic sweep of expired kv rows and old log lines.
//!
//! Invariants:
//! - an env value goes in (PUT) and never comes out: no answer, log line or audit entry
//!   holds one (the audit records `site.env.update` on `blog/TOKEN` and the outcome);
//! - who may: whoever may deploy the site (`sites::check_site`), as for its deployments;
//! - writes are writer jobs ([`write_then`]), which check the site exists in the same job;
//!   reads use this thread's reader; the admin thread never waits.

use super::sites::check_site;
use super::{write_then, AdminContext, Reply};
use crate::analytics::ingest::QueryParams;
use crate::db::writer::WriterHandle;
use crate::db::DbError;
use crate::hosting::store::site_exists;
use crate::http::error::Concealed;
use crate::http::{error_response, Method, Request, Response};
use crate::keys::ApiKey;
use crate::serverless::store::{self as apps, StoreError, SWEEP_BATCH};
use crossbeam_channel::{Receiver, TryRecvError};
use rusqlite::Connection;
use serde_json::json;
use std::time::{Duration, Instant};

/// Lines a logs request returns when it names no `limit`, and the most it may name.
const LOGS_DEFAULT_LIMIT: usize = 100;
const LOGS_MAX_LIMIT: usize = 1_000;

/// How often expired kv rows and old log lines are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// One of this module's routes, for site `site`.
pub(crate) struct AppsPath<'a> {
    site: &'a str,
    what: What<'a>,
}

enum What<'a> {
    Env,
    EnvKey(&'a str),
    Logs,
}

/// `/api/sites/<name>/env`, `/api/sites/<name>/env/<KEY>` or `/api/sites/<name>/logs`.
pub(crate) fn apps_path(path: &str) -> Option<AppsPath<'_>> {
    let rest = path.strip_prefix("/api/sites/")?;
    let (site, tail) = rest.split_once('/')?;
    let what = match tail.trim_end_matches('/') {
        "env" => What::Env,
        "logs" => What::Logs,
        tail => What::EnvKey(tail.strip_prefix("env/").filter(|k| !k.contains('/'))?),
    };
    Some(AppsPath { site, what })
}

/// Answers a request on an [`apps_path`]: `Some` now, or `None` when a writer job was
/// started and `reply` will answer.
pub(crate) fn handle(
    ctx: &AdminContext,
    key: &ApiKey,
    request: &Request,
    route: AppsPath<'_>,
    reply: Reply,
) -> Option<Response> {
    let AppsPath { site, what } = route;
    if let Some(refused) = check_site(key, site) {
        return Some(refused);
    }
    let reading = matches!(request.method, Method::Get | Method::Head);
    let path = request.path();
    let response = match (what, &request.method) {
        (What::Env, _) if reading => env_list(site),
        (What::Logs, _) if reading => logs(site, request.query()),
        (What::Env | What::Logs, _) => method_not_allowed(path, "GET, HEAD"),
        (What::EnvKey(name), Method::Put) => return env_set(ctx, site, name, request, reply),
        (What::EnvKey(name), Method::Delete) => return env_unset(ctx, site, name, reply),
        (What::EnvKey(_), _) => method_not_allowed(path, "PUT, DELETE"),
    };
    Some(response)
}

fn env_list(site: &str) -> Response {
    let listed = crate::db::reader::with_reader(|conn| {
        site_exists(conn, site)?
            .then(|| apps::env_list(conn, site))
            .transpose()
    });
    let vars = match listed {
        Ok(Some(vars)) => vars,
        Ok(None) => return unknown_site(site),
        Err(e) => return error_response(&Concealed::new("listing env variables", e)),
    };
    let env: Vec<_> = vars
        .iter()
        .map(|v| json!({"key": v.key, "length": v.length, "updated_at": v.updated_at}))
        .collect();
    Response::json(200, &json!({ "site": site, "env": env }))
}

/// Why a write job refused (not a database failure).
enum Refused {
    UnknownSite,
    Store(StoreError),
}

/// Runs `change` on the write connection if `site` exists; a database failure is the
/// job's error, any other refusal its result.
fn on_site<T>(
    conn: &mut Connection,
    site: &str,
    change: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
) -> Result<Result<T, Refused>, DbError> {
    if !site_exists(conn, site)? {
        return Ok(Err(Refused::UnknownSite));
    }
    match change(conn) {
        Ok(done) => Ok(Ok(done)),
        Err(StoreError::Db(e)) => Err(e.into()),
        Err(refused) => Ok(Err(Refused::Store(refused))),
    }
}

fn refused(site: &str, refusal: Refused) -> Response {
    match refusal {
        Refused::UnknownSite => unknown_site(site),
        Refused::Store(e) => error_response(&e),
    }
}

fn env_set(
    ctx: &AdminContext,
    site: &str,
    name: &str,
    request: &Request,
    reply: Reply,
) -> Option<Response> {
    if let Err(e) = apps::check_env_key(name) {
        return Some(error_response(&e));
    }
    let value = match env_value(&request.body) {
        Ok(value) => value,
        Err(message) => return Some(Response::error(400, &message)),
    };
    let length = value.len();
    let (site, name) = (site.to_string(), name.to_string());
    let (owned_site, owned_name) = (site.clone(), name.clone());
    let now = crate::platform::clock::unix_now();
    let job = move |conn: &mut Connection| {
        on_site(conn, &owned_site, |conn| {
            apps::env_set(conn, &owned_site, &owned_name, &value, now)
        })
    };
    let answer = move |result: Result<Result<(), Refused>, DbError>| match result {
        Ok(Ok(())) => {
            log::info!("site {site}: env variable {name} set ({length} bytes)");
            Response::json(200, &json!({ "key": name, "length": length }))
        }
        Ok(Err(refusal)) => refused(&site, refusal),
        Err(e) => error_response(&e),
    };
    write_then(&ctx.writer, reply, job, answer)
}

/// The value of a `PUT .../env/<KEY>` body, `{"value": "..."}`, or the 400 message (which
/// never quotes the body: it may be the value).
fn env_value(body: &[u8]) -> Result<String, String> {
    const SHAPE: &str = "the body must be a JSON object like {\"value\": \"...\"}";
    let parsed: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        format!(
            "{SHAPE}; it is not JSON (line {}, column {})",
            e.line(),
            e.column()
        )
    })?;
    match parsed.get("value") {
        Some(serde_json::Value::String(value)) => Ok(value.clone()),
        Some(_) => Err(format!("{SHAPE}: 'value' must be a string")),
        None => Err(format!("{SHAPE}: field 'value' is missing")),
    }
}

fn env_unset(ctx: &AdminContext, site: &str, name: &str, reply: Reply) -> Option<Response> {
    if let Err(e) = apps::check_env_key(name) {
        return Some(error_response(&e));
    }
    let (site, name) = (site.to_string(), name.to_string());
    let (owned_site, owned_name) = (site.clone(), name.clone());
    let job = move |conn: &mut Connection| {
        on_site(conn, &owned_site, |conn| {
            apps::env_delete(conn, &owned_site, &owned_name)
        })
    };
    let answer = move |result: Result<Result<bool, Refused>, DbError>| match result {
        Ok(Ok(true)) => {
            log::info!("site {site}: env variable {name} unset");
            Response::json(200, &json!({ "deleted": name }))
        }
        Ok(Ok(false)) => Response::error(
            404,
            &format!(
                "site '{site}' has no env variable {name} (GET /api/sites/{site}/env lists them)"
            ),
        ),
        Ok(Err(refusal)) => refused(&site, refusal),
        Err(e) => error_response(&e),
    };
    write_then(&ctx.writer, reply, job, answer)
}

/// `?after=<id>`: the lines after it, oldest first (a follower passes the `next` of its last
/// answer); without it, the newest lines. `limit` of them at most.
fn logs(site: &str, query: &str) -> Response {
    let (after, limit) = match logs_params(query) {
        Ok(params) => params,
        Err(message) => return Response::error(400, &message),
    };
    let page = crate::db::reader::with_reader(|conn| {
        if !site_exists(conn, site)? {
            return Ok(None);
        }
        Ok(Some(match after {
            Some(after) => apps::logs_page(conn, site, after, limit)?,
            None => apps::logs_tail(conn, site, limit)?,
        }))
    });
    let lines = match page {
        Ok(Some(lines)) => lines,
        Ok(None) => return unknown_site(site),
        Err(e) => return error_response(&Concealed::new("reading the site's logs", e)),
    };
    let next = lines.last().map_or(after.unwrap_or(0), |l| l.id);
    let logs: Vec<_> = lines
        .iter()
        .map(
            |l| json!({"id": l.id, "ts": l.ts_ms, "level": l.level.as_str(), "message": l.message}),
        )
        .collect();
    Response::json(200, &json!({ "site": site, "logs": logs, "next": next }))
}

fn logs_params(query: &str) -> Result<(Option<i64>, usize), String> {
    let params = QueryParams::parse(query);
    let after = match params.get("after") {
        None => None,
        Some(text) => Some(
            text.parse::<i64>()
                .ok()
                .filter(|n| *n >= 0)
                .ok_or_else(|| format!("'after' must be a log id (a number ≥ 0), not '{text}'"))?,
        ),
    };
    let limit = match params.get("limit") {
        None => LOGS_DEFAULT_LIMIT,
        Some(text) => text
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=LOGS_MAX_LIMIT).contains(n))
            .ok_or_else(|| format!("'limit' must be 1 to {LOGS_MAX_LIMIT}, not '{text}'"))?,
    };
    Ok((after, limit))
}

fn unknown_site(site: &str) -> Response {
    Response::error(404, &format!("no site '{site}'"))
}

fn method_not_allowed(path: &str, allow: &'static str) -> Response {
    Response::error(405, &format!("method not allowed on {path}")).header("Allow", allow)
}

/// Expired kv rows and log lines past their retention go once a minute, one writer job at
/// a time, started and collected from the admin thread's tick without waiting; a sweep
/// that hit its batch bound is followed by another at the next tick.
#[derive(Default)]
pub(crate) struct AppsSweep {
    started: Option<Instant>,
    running: Option<Receiver<Result<(u64, u64), DbError>>>,
    more: bool,
}

impl AppsSweep {
    pub(crate) fn tick(&mut self, writer: &WriterHandle) {
        if let Some(rx) = &self.running {
            match rx.try_recv() {
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => self.more = false,
                Ok(Ok((kv, logs))) => {
                    if kv + logs > 0 {
                        log::info!("apps: swept {kv} expired kv key(s) and {logs} old log line(s)");
                    }
                    self.more = kv >= SWEEP_BATCH || logs >= SWEEP_BATCH;
                }
                Ok(Err(e)) => {
                    log::warn!("apps: sweeping expired kv keys and old logs: {e}; next minute");
                    self.more = false;
                }
            }
            self.running = None;
        }
        let due = self.started.is_none_or(|at| at.elapsed() >= SWEEP_EVERY);
        if !due && !self.more {
            return;
        }
        let now_ms = crate::platform::clock::unix_now() * 1000;
        match writer.try_submit(move |conn| Ok(apps::sweep(conn, now_ms)?)) {
            Ok(rx) => {
                self.running = Some(rx);
                self.started = Some(Instant::now());
            }
            // A busy writer: the next tick tries again.
            Err(DbError::QueueFull) => {}
            Err(e) => log::warn!("apps: sweeping expired kv keys and old logs: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let route = |p| {
            apps_path(p).map(|r| {
                (
                    r.site,
                    matches!(r.what, What::Env),
                    matches!(r.what, What::Logs),
                )
            })
        };
        assert_eq!(route("/api/sites/blog/env"), Some(("blog", true, false)));
        assert_eq!(route("/api/sites/blog/env/"), Some(("blog", true, false)));
        assert_eq!(route("/api/sites/blog/logs"), Some(("blog", false, true)));
        assert!(matches!(
            apps_path("/api/sites/blog/env/TOKEN").map(|r| r.what),
            Some(What::EnvKey("TOKEN"))
        ));
        assert!(apps_path("/api/sites/blog/env/A/B").is_none());
        assert!(apps_path("/api/sites/blog/deployments").is_none());
        assert!(apps_path("/api/sites/blog").is_none());
    }

    #[test]
    fn env_bodies_never_quote_the_value() {
        assert_eq!(env_value(br#"{"value":"s3cr3t"}"#).as_deref(), Ok("s3cr3t"));
        for body in [
            &br#"{"value":5}"#[..],
            br#"{"valeu":"s3cr3t"}"#,
            br#"s3cr3t"#,
            br#"{"value":"s3cr3t""#,
        ] {
            let message = env_value(body).unwrap_err();
            assert!(!message.contains("s3cr3t"), "{message}");
            assert!(message.contains("{\"value\": \"...\"}"), "{message}");
        }
    }

    /// Ticks until the running sweep (if any) has been collected.
    fn settle(sweep: &mut AppsSweep, writer: &WriterHandle) {
        let deadline = Instant::now() + Duration::from_secs(10);
        sweep.tick(writer);
        while sweep.running.is_some() {
            assert!(Instant::now() < deadline, "the sweep never finished");
            std::thread::sleep(Duration::from_millis(5));
            sweep.tick(writer);
        }
    }

    /// Adds `n` kv rows of site `blog` that expired long ago; returns the rows left.
    fn expired(writer: &WriterHandle, n: usize) -> i64 {
        writer
            .call(move |conn| {
                let q = apps::Quotas {
                    kv_keys: u64::MAX,
                    bytes: u64::MAX,
                    ..apps::Quotas::default()
                };
                for i in 0..n {
                    let key = format!("k{i}");
                    apps::kv_set(conn, "blog", &key, "1", Some(1), 0, &q)
                        .map_err(|e| DbError::Internal(e.to_string()))?;
                }
                Ok(conn.query_row("SELECT count(*) FROM app_kv", [], |r| r.get(0))?)
            })
            .unwrap()
    }

    #[test]
    fn the_sweep_runs_at_once_then_once_a_minute_or_again_after_a_full_batch() {
        let mut conn = Connection::open_in_memory().unwrap();
        crate::db::migrate::run(&mut conn).unwrap();
        let (writer, thread) = crate::db::writer::spawn(conn, 4).unwrap();
        let mut sweep = AppsSweep::default();
        assert_eq!(expired(&writer, 3), 3);
        settle(&mut sweep, &writer);
        assert_eq!(expired(&writer, 0), 0, "the first tick sweeps");

        assert_eq!(expired(&writer, 2), 2);
        settle(&mut sweep, &writer);
        assert_eq!(expired(&writer, 0), 2, "not again within the minute");
        sweep.started = Some(Instant::now() - SWEEP_EVERY);
        settle(&mut sweep, &writer);
        assert_eq!(expired(&writer, 0), 0, "a minute later");

        // More than a batch: the next sweep follows at the next tick, not a minute later.
        let many = SWEEP_BATCH as usize + 5;
        assert_eq!(expired(&writer, many), many as i64);
        sweep.started = Some(Instant::now() - SWEEP_EVERY);
        settle(&mut sweep, &writer);
        assert_eq!(expired(&writer, 0), 0, "two sweeps, one after the other");
        assert!(!sweep.more);
        writer.stop();
        thread.join().unwrap();
    }

    #[test]
    fn logs_parameters() {
        assert_eq!(logs_params(""), Ok((None, 100)));
        assert_eq!(logs_params("after=7&limit=1000"), Ok((Some(7), 1000)));
        for bad in ["after=-1", "after=x", "limit=0", "limit=1001", "limit=ten"] {
            assert!(logs_params(bad).is_err(), "{bad}");
        }
    }
}
