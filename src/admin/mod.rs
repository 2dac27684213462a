//! The admin host, served only on the reserved admin thread: the dashboard (pinned assets,
//! public) and the JSON API (every route needs `Authorization: Bearer <key>`). Reads use
//! this thread's read connection; every write is a job for the writer thread.
//!
//! Authorisation: the site routes (`/api/sites...`, see `sites`) check that the
//! key's scopes cover the site; every other route needs the `owner` scope.

mod metrics;
pub mod sites;

use crate::http::error::Concealed;
use crate::http::{error_response, Body, Method, Request, Response};
use crate::keys::{self, validate_name, ApiKey, Scopes};
use crate::platform::metrics::METRICS;
use crate::server::App;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Largest body an admin route accepts: JSON documents only, until deploys arrive.
pub const ADMIN_BODY_LIMIT: u64 = 64 * 1024;

/// `api_keys.last_used_at` is written at most this often per key: it answers "is this key
/// still in use?", and a write per request would put every admin call on the writer.
const LAST_USED_INTERVAL: Duration = Duration::from_secs(60);

/// Keys remembered in the last-used map before stale entries are swept (keys are few;
/// this only bounds the map against many keys used once).
const LAST_USED_MAP_SWEEP: usize = 256;

pub struct AdminApi {
    app: Arc<App>,
    retention: Option<crate::analytics::retention::AutoRetention>,
    /// `PRAGMA data_version` when the site table was last loaded.
    seen_data_version: Option<i64>,
    /// Key id → when its `last_used_at` was last sent to the writer.
    last_used_sent: HashMap<String, Instant>,
}

impl AdminApi {
    pub fn new(app: Arc<App>) -> AdminApi {
        let retention = app
            .config
            .retention
            .map(crate::analytics::retention::AutoRetention::new);
        AdminApi {
            app,
            retention,
            seen_data_version: None,
            last_used_sent: HashMap::new(),
        }
    }

    pub fn handle(&mut self, request: &Request) -> Response {
        METRICS.admin_requests.inc();
        let path = request.path();
        if path == "/health" {
            return crate::server::liveness();
        }
        if !path.starts_with("/api/") && path != "/metrics" {
            return self
                .app
                .sites
                .serve_admin_asset(request)
                .unwrap_or_else(|| Response::error(404, &format!("no admin page {path}")));
        }
        match authenticate(request) {
            Ok(key) => {
                self.note_key_used(&key);
                self.route(request, &key)
            }
            Err(response) => response,
        }
    }

    /// Sends the key's `last_used_at` to the writer, at most once per
    /// [`LAST_USED_INTERVAL`]; never waits, and skips the update when the writer is busy.
    fn note_key_used(&mut self, key: &ApiKey) {
        let now = Instant::now();
        let recent = self
            .last_used_sent
            .get(&key.id)
            .is_some_and(|sent| now.duration_since(*sent) < LAST_USED_INTERVAL);
        if recent {
            return;
        }
        if self.last_used_sent.len() >= LAST_USED_MAP_SWEEP {
            self.last_used_sent
                .retain(|_, sent| now.duration_since(*sent) < LAST_USED_INTERVAL);
        }
        if keys::touch_last_used(
            &self.app.writer,
            &key.id,
            crate::platform::clock::unix_now(),
        ) {
            self.last_used_sent.insert(key.id.clone(), now);
        }
    }

    fn route(&mut self, request: &Request, key: &ApiKey) -> Response {
        let path = request.path();
        if sites::is_sites_path(path) {
            return sites::handle(&self.app, key, request);
        }
        if !key.is_owner() {
            return Response::error(
                403,
                &format!(
                    "this API key's scope ({}) does not allow {} {path}: it needs the owner scope",
                    key.scope,
                    request.method_text()
                ),
            );
        }
        match (request.method, path) {
            (Method::Get | Method::Head, "/api/system/health") => self.health(),
            (Method::Get | Method::Head, "/metrics") => Response::new(200).body(
                "text/plain; version=0.0.4; charset=utf-8",
                Body::Owned(self.prometheus().into_bytes()),
            ),
            (Method::Post, "/api/system/vacuum") => self.vacuum(),
            (Method::Get | Method::Head, "/api/keys") => self.list_keys(),
            (Method::Post, "/api/keys") => self.create_key(request),
            (Method::Delete, _) if path.starts_with("/api/keys/") => {
                self.revoke_key(&path["/api/keys/".len()..])
            }
            (_, "/api/system/health" | "/metrics" | "/api/keys" | "/api/system/vacuum") => {
                method_not_allowed(path)
            }
            _ if path.starts_with("/api/keys/") => method_not_allowed(path),
            _ => match crate::analytics::api::route(request, &self.app.writer) {
                Some(Ok(response)) => response,
                Some(Err(e)) => error_response(&e),
                None => {
                    let method = request.method_text();
                    Response::error(404, &format!("no admin route {method} {path}"))
                }
            },
        }
    }

    /// One step of automatic retention, when configured.
    pub fn run_retention(&mut self) {
        if let Some(retention) = &mut self.retention {
            retention.tick(&self.app.writer);
        }
    }

    /// At midnight UTC, starts the new day's visitor salt (stored, so a restart keeps
    /// it) and deletes salts older than yesterday's.
    pub fn rotate_salt_if_new_day(&self) {
        let today = crate::analytics::event::day_of(crate::platform::clock::unix_now());
        if self.app.ingest.salts.day() == Some(today) {
            return;
        }
        let rotated = self.app.writer.call(move |conn| {
            let salt = crate::analytics::store::load_or_create_salt(conn, today)?;
            crate::analytics::store::delete_old_salts(conn, today)?;
            Ok(salt)
        });
        match rotated {
            Ok(salt) => self.app.ingest.salts.set(today, salt),
            Err(e) => log::error!("starting today's visitor salt: {e}"),
        }
    }

    /// Reloads the site table when the database changed (a deploy, or `fazt site import`
    /// from another process), and drops cache entries of deployments no longer current.
    pub fn refresh_sites_if_changed(&mut self) {
        let version = crate::db::reader::with_reader(|conn| {
            conn.query_row("PRAGMA data_version", [], |r| r.get(0))
        });
        let version: i64 = match version {
            Ok(v) => v,
            Err(e) => return log::error!("checking for database changes: {e}"),
        };
        if self.seen_data_version == Some(version) {
            return;
        }
        match crate::db::reader::with_reader(|conn| self.app.sites.reload(conn)) {
            Ok(()) => self.seen_data_version = Some(version),
            Err(e) => log::error!("reloading sites: {e}"),
        }
    }

    fn health(&self) -> Response {
        let draining = self.app.is_draining();
        let threshold = self.app.disk.threshold_percent();
        let full_disks: Vec<_> = self
            .app
            .disk
            .usage()
            .into_iter()
            .filter(|(_, used, _)| *used >= threshold)
            .collect();
        let open = self.app.public_cap.open();
        let near_cap = open * 10 >= self.app.public_cap.max() * 9;
        let mut reasons = Vec::new();
        if draining {
            reasons.push("shutting down".to_string());
        }
        for (path, used, _) in &full_disks {
            let path = path.display();
            reasons.push(format!(
                "disk {used}% used at {path} (bulk writes refused at {threshold}%)"
            ));
        }
        if near_cap {
            reasons.push(format!(
                "{open} of {} connections in use",
                self.app.public_cap.max()
            ));
        }
        let status = match (draining, reasons.is_empty()) {
            (true, _) => "draining",
            (false, false) => "degraded",
            (false, true) => "ok",
        };
        let mut body = metrics::registry(&self.app.sites.cache, &self.app.disk).to_json();
        body["status"] = json!(status);
        body["reasons"] = json!(reasons);
        body["uptime_seconds"] = json!(self.app.started.elapsed().as_secs());
        body["limits"] = self.app.config.probe.to_json()["limits"].clone();
        // Readiness: an open breaker (disk full) or draining takes this instance out.
        let ready = !draining && full_disks.is_empty();
        Response::json(if ready { 200 } else { 503 }, &body)
    }

    fn prometheus(&self) -> String {
        metrics::registry(&self.app.sites.cache, &self.app.disk).render_prometheus()
    }

    /// Returns free pages to the filesystem (the schema uses incremental auto-vacuum).
    fn vacuum(&self) -> Response {
        if let Err(e) = self.app.disk.check() {
            return error_response(&e);
        }
        let result = self
            .app
            .writer
            .call(|conn| crate::db::incremental_vacuum(conn, None));
        match result {
            Ok(freed) => Response::json(200, &json!({ "freed_bytes": freed })),
            Err(e) => error_response(&e),
        }
    }

    fn list_keys(&self) -> Response {
        match crate::db::reader::with_reader(keys::list) {
            Ok(keys) => Response::json(
                200,
                &json!({ "keys": keys.iter().map(|k| k.to_json()).collect::<Vec<_>>() }),
            ),
            Err(e) => error_response(&Concealed::new("listing API keys", e)),
        }
    }

    fn create_key(&self, request: &Request) -> Response {
        let parsed: serde_json::Value = match serde_json::from_slice(&request.body) {
            Ok(v) => v,
            Err(e) => return Response::error(400, &format!("body is not valid JSON: {e}")),
        };
        let Some(name) = parsed.get("name").and_then(|n| n.as_str()) else {
            return Response::error(400, "field 'name' (a string) is required");
        };
        if let Err(e) = validate_name(name) {
            return Response::error(400, &e);
        }
        let scopes =
            match parsed.get("scope") {
                None | Some(serde_json::Value::Null) => Scopes::owner(),
                Some(serde_json::Value::String(text)) => match Scopes::parse(text) {
                    Ok(scopes) => scopes,
                    Err(e) => return Response::error(400, &e),
                },
                Some(_) => return Response::error(
                    400,
                    "field 'scope' must be a string like \"owner\" or \"deploy:blog,deploy:shop\"",
                ),
            };
        let name = name.to_string();
        match self
            .app
            .writer
            .call(move |conn| Ok(keys::create(conn, &name, &scopes)?))
        {
            Ok((key, token)) => {
                let mut body = key.to_json();
                body["token"] = json!(token);
                Response::json(201, &body)
            }
            Err(e) => error_response(&e),
        }
    }

    fn revoke_key(&self, id: &str) -> Response {
        let owned = id.to_string();
        match self
            .app
            .writer
            .call(move |conn| Ok(keys::revoke(conn, &owned)?))
        {
            Ok(true) => Response::json(200, &json!({ "revoked": id })),
            Ok(false) => Response::error(404, &format!("no API key with id '{id}'")),
            Err(e) => error_response(&e),
        }
    }
}

/// The API key of `Authorization: Bearer <token>`, or the 401 (or 500) to answer. Uses
/// the calling thread's read connection, so core threads can check keys too.
pub fn authenticate(request: &Request) -> Result<keys::ApiKey, Response> {
    let token = request
        .header_str("authorization")
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let Some(token) = token else {
        return Err(
            Response::error(401, "missing API key: send 'Authorization: Bearer <key>'")
                .header("WWW-Authenticate", "Bearer"),
        );
    };
    match crate::db::reader::with_reader(|conn| keys::authenticate(conn, token)) {
        Ok(Some(key)) => Ok(key),
        Ok(None) => {
            Err(Response::error(401, "invalid or revoked API key")
                .header("WWW-Authenticate", "Bearer"))
        }
        Err(e) => Err(error_response(&Concealed::new("checking the API key", e))),
    }
}

fn method_not_allowed(path: &str) -> Response {
    let allow = match path {
        "/api/keys" => "GET, HEAD, POST",
        "/api/system/vacuum" => "POST",
        p if p.starts_with("/api/keys/") => "DELETE",
        _ => "GET, HEAD",
    };
    Response::error(405, &format!("method not allowed on {path}")).header("Allow", allow)
}
