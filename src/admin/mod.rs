//! The admin host, served only on the reserved admin thread: the dashboard (pinned assets,
//! public) and the JSON API (every route needs `Authorization: Bearer <key>`). Reads use
//! this thread's read connection; every write is a job for the writer thread.
//!
//! Invariant (DESIGN §1): this thread never waits on the writer. A write route hands its
//! job over with [`write_then`] and returns; the answer is built when the job has run and
//! goes to the connection's owning thread through its mailbox ([`Reply`]). A full writer
//! queue is a 503 at once. Tick work (salt rotation, retention) likewise starts a job and
//! collects its result on a later tick. So readiness and reads answer during a large
//! deploy, a GC or a vacuum.
//!
//! Authorisation: the site routes (`/api/sites...`, see `sites`) check that the
//! key's scopes cover the site; so do the reads of one site's numbers (`/api/stats`,
//! `/api/events`, `/api/live` with `site=`, see `analytics::api`); every other route needs
//! the `owner` scope.

pub(crate) mod accounts;
mod apps;
mod audited;
mod certs;
mod metrics;
pub(crate) mod sites;

use crate::acme::manager::CertManager;
use crate::analytics::api::{Reader, Routed, Sites};
use crate::analytics::event::SaltBook;
use crate::analytics::retention::AutoRetention;
use crate::analytics::stats::SiteHosts;
use crate::auth::caller::{authenticate, Caller};
use crate::db::writer::WriterHandle;
use crate::db::DbError;
use crate::hosting::sites::SiteServer;
use crate::hosting::urls::UrlBase;
use crate::http::cap::ConnCap;
use crate::http::error::Concealed;
use crate::http::proxies::TrustedProxies;
use crate::http::tls::CertStore;
use crate::http::{error_response, Body, Method, Request, Response};
use crate::keys::{self, validate_name, ApiKey, AuthGuard, Scopes};
use crate::maintenance::backup::BackupSlot;
use crate::platform::disk::DiskGuard;
use crate::platform::metrics::METRICS;
use crate::platform::probe::Report;
use crossbeam_channel::{Receiver, TryRecvError};
use rusqlite::Connection;
use serde_json::json;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// Expired sessions and old audit entries are deleted this often.
const ACCOUNTS_PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// The API's paths, as opposed to `/health` and the dashboard's pages. Their answers
/// (keys, stats, health) are never cached: see [`crate::http::Response::no_store`].
pub(crate) fn is_api_path(path: &str) -> bool {
    path.starts_with("/api/") || path == "/metrics"
}

/// Sends the answer of a request whose response comes later (after a writer job) to the
/// thread that owns its connection. Runs on the writer thread: it only sends a mail.
pub type Reply = Box<dyn FnOnce(Response) + Send>;

/// What the admin API needs from the rest of the server, built by `server` at start.
pub struct AdminContext {
    pub started: Instant,
    /// Set when shutdown begins: readiness then reports "draining".
    pub draining: Arc<AtomicBool>,
    /// The public listener's connection cap (open/max, for readiness).
    pub public_cap: Arc<ConnCap>,
    pub sites: Arc<SiteServer>,
    pub writer: WriterHandle,
    pub disk: DiskGuard,
    /// The visitor salts the ingest path hashes with; rotated at midnight UTC.
    pub salts: Arc<SaltBook>,
    pub probe: Report,
    /// Automatic retention of raw events (`FAZT_RETENTION`), if configured.
    pub retention: Option<Duration>,
    /// Deployments kept per site when a site delete prunes old ones.
    pub keep_deployments: usize,
    /// The public domain, scheme and port, for site URLs.
    pub domain: String,
    pub url_base: UrlBase,
    /// Whose `X-Forwarded-Proto` is believed.
    pub proxies: TrustedProxies,
    /// API keys, with failed attempts throttled per address (shared with deploys).
    pub auth: Arc<AuthGuard>,
    /// The certificates served (empty without a TLS listener).
    pub certs: Arc<CertStore>,
    /// Automatic certificates, when on.
    pub acme: Option<AcmeContext>,
    /// Dashboard sign-in: the hasher thread, the login limit, session lifetimes.
    pub accounts: accounts::Accounts,
    /// The WebSocket clients by site, for the metrics (the server's hubs).
    pub sockets: Arc<dyn crate::platform::metrics::Source + Send + Sync>,
    /// One backup at a time, through the API or the schedule.
    pub backups: BackupSlot,
    /// How the scheduled backups go, when `FAZT_BACKUP_DIR` is set.
    pub backup_schedule: Option<Arc<crate::maintenance::schedule::BackupStatus>>,
}

/// What the API shows of the ACME settings, and the certificate thread to wake.
pub struct AcmeContext {
    pub directory: String,
    pub email: String,
    pub challenge: &'static str,
    pub manager: CertManager,
}

impl AdminContext {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// The public URL of `site` in the answer to `request`.
    pub fn site_url(&self, request: &Request, site: &str) -> String {
        let trusted = self.proxies.trusts(request.peer.ip());
        let base = self.url_base.for_request(request, trusted);
        crate::hosting::sites::site_url(&self.domain, &base, site)
    }
}

/// Where a visitor salt the writer loads or creates arrives.
type SaltArrival = Receiver<Result<[u8; 32], DbError>>;

pub struct AdminApi {
    ctx: AdminContext,
    retention: Option<AutoRetention>,
    /// `PRAGMA data_version` when the site table was last loaded.
    seen_data_version: Option<i64>,
    /// Key id, or `session <id>`, → when its last use was last sent to the writer.
    last_used_sent: HashMap<String, Instant>,
    /// The day whose salt the writer is loading or creating, and where it arrives.
    salt_pending: Option<(i64, SaltArrival)>,
    /// When expired sessions and old audit entries were last pruned.
    accounts_pruned_at: Option<Instant>,
    /// Expired kv keys and old log lines of serverless apps.
    apps_sweep: apps::AppsSweep,
}

impl AdminApi {
    pub fn new(ctx: AdminContext) -> AdminApi {
        let retention = ctx.retention.map(AutoRetention::new);
        AdminApi {
            ctx,
            retention,
            seen_data_version: None,
            last_used_sent: HashMap::new(),
            salt_pending: None,
            accounts_pruned_at: None,
            apps_sweep: apps::AppsSweep::default(),
        }
    }

    /// Answers `request`: `Some` now, or `None` when a writer job was started and its
    /// answer will go through `reply` (never both). Never waits for the writer.
    pub fn handle(&mut self, request: &Request, reply: Reply) -> Option<Response> {
        METRICS.admin_requests.inc();
        let path = request.path();
        if path == "/health" {
            return Some(crate::http::liveness());
        }
        if !is_api_path(path) {
            let page = self.ctx.sites.serve_admin_asset(request);
            return Some(
                page.unwrap_or_else(|| Response::error(404, &format!("no admin page {path}"))),
            );
        }
        if accounts::is_public(path) {
            return accounts::public(&self.ctx, request, reply);
        }
        // A browser signs in with its cookie; scripts and the CLI send a key.
        let caller = match authenticate(request, &self.ctx.auth) {
            Ok(caller) => caller,
            Err(refused) => return Some(refused),
        };
        match &caller.session {
            Some(session) => self.note_session_used(session),
            None => self.note_key_used(&caller.key),
        }
        let reply = match accounts::route(&self.ctx, request, &caller, reply) {
            Ok(answer) => return answer,
            Err(reply) => reply,
        };
        let ip = self.ctx.proxies.client_ip(request).to_string();
        let Some(pending) = audited::Pending::of(request, &caller, ip, &self.ctx.writer) else {
            return self.route(request, &caller, reply);
        };
        let answer = self.route(request, &caller, pending.wrap(reply));
        if let Some(response) = &answer {
            pending.record(response);
        }
        answer
    }

    /// Moves a session's idle expiry forward, at most once per [`LAST_USED_INTERVAL`];
    /// never waits for the writer.
    fn note_session_used(&mut self, session: &crate::auth::sessions::Session) {
        let (id, policy) = (session.id.clone(), self.ctx.accounts.policy);
        let writer = self.ctx.writer.clone();
        self.at_most_once_a_minute(format!("session {}", session.id), |unix| {
            let job =
                move |conn: &mut Connection| crate::auth::sessions::touch(conn, &id, unix, policy);
            writer.try_submit(job).is_ok()
        });
    }

    /// Sends the key's `last_used_at` to the writer, at most once per
    /// [`LAST_USED_INTERVAL`]; never waits, and skips the update when the writer is busy.
    fn note_key_used(&mut self, key: &ApiKey) {
        let writer = self.ctx.writer.clone();
        let id = key.id.clone();
        self.at_most_once_a_minute(key.id.clone(), |unix| {
            keys::touch_last_used(&writer, &id, unix)
        });
    }

    /// Runs `send` (true when the write was queued) for `slot` unless it ran less than
    /// [`LAST_USED_INTERVAL`] ago; the map of slots is swept when it grows.
    fn at_most_once_a_minute(&mut self, slot: String, send: impl FnOnce(i64) -> bool) {
        let now = Instant::now();
        let recent = |sent: &Instant| now.duration_since(*sent) < LAST_USED_INTERVAL;
        if self.last_used_sent.get(&slot).is_some_and(recent) {
            return;
        }
        if self.last_used_sent.len() >= LAST_USED_MAP_SWEEP {
            self.last_used_sent.retain(|_, sent| recent(sent));
        }
        if send(crate::platform::clock::unix_now()) {
            self.last_used_sent.insert(slot, now);
        }
    }

    fn route(&mut self, request: &Request, caller: &Caller, reply: Reply) -> Option<Response> {
        let key = &caller.key;
        let path = request.path();
        if let Some(route) = apps::apps_path(path) {
            return apps::handle(&self.ctx, key, request, route, reply);
        }
        if sites::is_sites_path(path) {
            return sites::handle(&self.ctx, key, request, reply);
        }
        if !key.is_owner() && crate::analytics::api::is_site_read(path) {
            let covers = |site: &str| key.can_deploy(site);
            let reader = Reader::Scoped {
                scope: &key.scope,
                covers: &covers,
            };
            return self.route_analytics(request, &reader, reply);
        }
        if !key.is_owner() {
            return Some(Response::error(
                403,
                &format!(
                    "this API key's scope ({}) does not allow {} {path}: it needs the owner scope",
                    key.scope,
                    request.method_text()
                ),
            ));
        }
        let response = match (request.method, path) {
            (Method::Get | Method::Head, "/api/system/health") => self.health(),
            (Method::Get | Method::Head, "/metrics") => Response::new(200).body(
                "text/plain; version=0.0.4; charset=utf-8",
                Body::Owned(self.prometheus().into_bytes()),
            ),
            (Method::Post, "/api/system/vacuum") => return self.vacuum(reply),
            (Method::Post, "/api/system/backup") => return self.backup(request, reply),
            (Method::Get | Method::Head, "/api/certs") => certs::list(&self.ctx),
            (Method::Post, _) if renew_path(path).is_some() => {
                return certs::renew(&self.ctx, renew_path(path).unwrap_or_default(), reply)
            }
            (Method::Get | Method::Head, "/api/keys") => self.list_keys(),
            (Method::Post, "/api/keys") => return self.create_key(request, reply),
            (Method::Delete, _) if path.starts_with("/api/keys/") => {
                return self.revoke_key(&path["/api/keys/".len()..], reply)
            }
            (
                _,
                "/api/system/health" | "/metrics" | "/api/keys" | "/api/system/vacuum"
                | "/api/system/backup" | "/api/certs",
            ) => method_not_allowed(path),
            _ if path.starts_with("/api/keys/") || renew_path(path).is_some() => {
                method_not_allowed(path)
            }
            _ => return self.route_analytics(request, &Reader::Owner, reply),
        };
        Some(response)
    }

    /// A site and the hosts it is served on, given its name or one of its hosts: `blog`
    /// or `blog.DOMAIN` → `blog.DOMAIN`; `root` → `DOMAIN` and `root.DOMAIN`.
    fn site_hosts(&self, site: &str) -> Option<SiteHosts> {
        let domain = &self.ctx.domain;
        let name = if site == domain.as_str() {
            "root"
        } else {
            site.strip_suffix(domain.as_str())
                .and_then(|rest| rest.strip_suffix('.'))
                .unwrap_or(site)
        };
        self.ctx.sites.table.current(name)?;
        let mut hosts = vec![format!("{name}.{domain}")];
        if name == "root" {
            hosts.insert(0, domain.clone());
        }
        // A host given as such is read first (the events of /api/events).
        if let Some(at) = hosts.iter().position(|h| h == site) {
            hosts.swap(0, at);
        }
        Some(SiteHosts {
            site: name.to_string(),
            hosts,
        })
    }

    fn route_analytics(
        &self,
        request: &Request,
        reader: &Reader,
        reply: Reply,
    ) -> Option<Response> {
        let resolve = |site: &str| self.site_hosts(site);
        let all = || {
            let names = self.ctx.sites.table.names();
            names.iter().filter_map(|n| self.site_hosts(n)).collect()
        };
        let sites = Sites {
            resolve: &resolve,
            all: &all,
        };
        match crate::analytics::api::route(request, &sites, reader) {
            Some(Routed::Now(Ok(response))) => Some(response),
            Some(Routed::Now(Err(e))) => Some(error_response(&e)),
            Some(Routed::Write(change)) => {
                // A refusal that is not a database failure (say, an unknown slug) is the
                // job's result, not a failed write.
                let job = move |conn: &mut Connection| match change(conn) {
                    Err(crate::analytics::api::ApiError::Db(e)) => Err(e),
                    other => Ok(other),
                };
                let answer = |result: Result<_, DbError>| match result {
                    Ok(Ok(body)) => Response::json(200, &body),
                    Ok(Err(e)) => error_response(&e),
                    Err(e) => error_response(&e),
                };
                write_then(&self.ctx.writer, reply, job, answer)
            }
            None => {
                let (method, path) = (request.method_text(), request.path());
                Some(Response::error(
                    404,
                    &format!("no admin route {method} {path}"),
                ))
            }
        }
    }

    /// Hourly: expired sessions and old audit entries go (never waits for the writer).
    pub fn prune_accounts(&mut self) {
        let now = Instant::now();
        if self
            .accounts_pruned_at
            .is_some_and(|at| now.duration_since(at) < ACCOUNTS_PRUNE_EVERY)
        {
            return;
        }
        self.accounts_pruned_at = Some(now);
        accounts::prune(&self.ctx);
    }

    /// One step of automatic retention, when configured, and of the apps' sweep (expired
    /// kv keys, old log lines; once a minute); never waits for the writer.
    pub fn run_retention(&mut self) {
        if let Some(retention) = &mut self.retention {
            retention.tick(&self.ctx.writer);
        }
        self.apps_sweep.tick(&self.ctx.writer);
    }

    /// At midnight UTC, starts the new day's visitor salt (stored, so a restart keeps
    /// it) and deletes salts older than yesterday's. The writer does it; a later tick
    /// puts the salt in use once it has arrived.
    pub fn rotate_salt_if_new_day(&mut self) {
        if let Some((day, rx)) = &self.salt_pending {
            let arrived = match rx.try_recv() {
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Disconnected) => Err(DbError::WriterStopped),
                Ok(result) => result,
            };
            match arrived {
                Ok(salt) => self.ctx.salts.set(*day, salt),
                Err(e) => log::error!("starting today's visitor salt: {e}"),
            }
            self.salt_pending = None;
        }
        let today = crate::analytics::event::day_of(crate::platform::clock::unix_now());
        if self.ctx.salts.day() == Some(today) {
            return;
        }
        let started = self.ctx.writer.try_submit(move |conn| {
            let salt = crate::analytics::store::load_or_create_salt(conn, today)?;
            crate::analytics::store::delete_old_salts(conn, today)?;
            Ok(salt)
        });
        match started {
            Ok(rx) => self.salt_pending = Some((today, rx)),
            // The next tick tries again.
            Err(DbError::QueueFull) => {}
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
        match crate::db::reader::with_reader(|conn| self.ctx.sites.reload(conn)) {
            Ok(()) => self.seen_data_version = Some(version),
            Err(e) => log::error!("reloading sites: {e}"),
        }
    }

    fn health(&self) -> Response {
        let draining = self.ctx.is_draining();
        let threshold = self.ctx.disk.threshold_percent();
        let full_disks: Vec<_> = self
            .ctx
            .disk
            .usage()
            .into_iter()
            .filter(|(_, used, _)| *used >= threshold)
            .collect();
        let open = self.ctx.public_cap.open();
        let near_cap = open * 10 >= self.ctx.public_cap.max() * 9;
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
                self.ctx.public_cap.max()
            ));
        }
        reasons.extend(certs::expiry_reasons(&self.ctx));
        if let Some(schedule) = &self.ctx.backup_schedule {
            let started =
                crate::platform::clock::unix_now() as u64 - self.ctx.started.elapsed().as_secs();
            reasons.extend(schedule.reasons(crate::platform::clock::unix_now() as u64, started));
        }
        let status = match (draining, reasons.is_empty()) {
            (true, _) => "draining",
            (false, false) => "degraded",
            (false, true) => "ok",
        };
        let mut body = metrics::registry(
            &self.ctx.sites.cache,
            &self.ctx.disk,
            &self.ctx.certs,
            &self.server_metrics(),
        )
        .to_json();
        body["status"] = json!(status);
        body["reasons"] = json!(reasons);
        body["uptime_seconds"] = json!(self.ctx.started.elapsed().as_secs());
        body["limits"] = self.ctx.probe.limits_json();
        // "present", "released" (the disk filled up; re-created when there is room) or
        // "disabled".
        body["reserve"] = json!(self.ctx.disk.reserve().map_or("disabled", |r| r.state()));
        if let Some(schedule) = &self.ctx.backup_schedule {
            body["backups"] = schedule.to_json();
        }
        // Readiness: an open breaker (disk full) or draining takes this instance out.
        let ready = !draining && full_disks.is_empty();
        Response::json(if ready { 200 } else { 503 }, &body)
    }

    /// The server's own metric sources: its WebSocket hubs and the backup schedule.
    fn server_metrics(&self) -> Vec<&dyn crate::platform::metrics::Source> {
        let mut sources: Vec<&dyn crate::platform::metrics::Source> = vec![&*self.ctx.sockets];
        if let Some(schedule) = &self.ctx.backup_schedule {
            sources.push(&**schedule);
        }
        sources
    }

    fn prometheus(&self) -> String {
        metrics::registry(
            &self.ctx.sites.cache,
            &self.ctx.disk,
            &self.ctx.certs,
            &self.server_metrics(),
        )
        .render_prometheus()
    }

    /// Returns free pages to the filesystem (the schema uses incremental auto-vacuum). It
    /// frees space, so the breaker never refuses it: on a full disk it works in small
    /// steps inside the room the disk reserve gives back.
    fn vacuum(&self, reply: Reply) -> Option<Response> {
        let reserve = self.ctx.disk.reserve().cloned();
        let job = move |conn: &mut Connection| crate::db::reclaim_space(conn, reserve.as_deref());
        let answer = |result: Result<u64, DbError>| match result {
            Ok(freed) => Response::json(200, &json!({ "freed_bytes": freed })),
            Err(e) => error_response(&e),
        };
        write_then(&self.ctx.writer, reply, job, answer)
    }

    /// Copies the database to the body's `path` on a thread of its own (the copy takes
    /// seconds per GB; this thread must not wait), one at a time: a second request while
    /// one runs is 409. The answer is mailed when the copy is verified.
    fn backup(&self, request: &Request, reply: Reply) -> Option<Response> {
        let (dest, force) = match backup_request(&request.body) {
            Ok(parsed) => parsed,
            Err(message) => return Some(Response::error(400, &message)),
        };
        // The file this server serves: the admin thread's own connection knows its path.
        let source = crate::db::reader::with_reader(|conn| Ok(conn.path().map(PathBuf::from)));
        let Ok(Some(source)) = source else {
            return Some(Response::error(500, "the database path is unknown"));
        };
        let Some(slot) = self.ctx.backups.try_take() else {
            return Some(Response::error(
                409,
                "a backup is already running; try again when it has finished",
            ));
        };
        let run = move || {
            crate::maintenance::backup::run_in_background();
            let answer = catch_unwind(AssertUnwindSafe(
                || match crate::maintenance::backup::backup(&source, &dest, force) {
                    Ok(report) => Response::json(200, &report.to_json()),
                    Err(e) => error_response(&e),
                },
            ));
            // Freed before the answer leaves: a client that waits for it and starts the
            // next backup must not meet a 409. (A panic frees it too: the slot is a guard.)
            drop(slot);
            reply(answer.unwrap_or_else(|_| {
                log::error!("a backup panicked; answered 500");
                Response::error(500, "internal error; see the server log")
            }));
        };
        match std::thread::Builder::new()
            .name("fazt-backup".into())
            .spawn(run)
        {
            Ok(_) => None,
            Err(e) => Some(Response::error(
                500,
                &format!("cannot start the backup thread: {e}"),
            )),
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

    fn create_key(&self, request: &Request, reply: Reply) -> Option<Response> {
        let (name, scopes) = match key_request(&request.body) {
            Ok(parsed) => parsed,
            Err(message) => return Some(Response::error(400, &message)),
        };
        let job = move |conn: &mut Connection| Ok(keys::create(conn, &name, &scopes)?);
        let answer = |result: Result<(ApiKey, String), DbError>| match result {
            Ok((key, token)) => {
                let mut body = key.to_json();
                body["token"] = json!(token);
                Response::json(201, &body)
            }
            Err(e) => error_response(&e),
        };
        write_then(&self.ctx.writer, reply, job, answer)
    }

    fn revoke_key(&self, id: &str, reply: Reply) -> Option<Response> {
        let id = id.to_string();
        let owned = id.clone();
        let job = move |conn: &mut Connection| Ok(keys::revoke(conn, &owned)?);
        let answer = move |result: Result<bool, DbError>| match result {
            Ok(true) => Response::json(200, &json!({ "revoked": id })),
            Ok(false) => Response::error(404, &format!("no API key with id '{id}'")),
            Err(e) => error_response(&e),
        };
        write_then(&self.ctx.writer, reply, job, answer)
    }
}

/// The name and scopes of a `POST /api/keys` body, or the 400 message.
fn key_request(body: &[u8]) -> Result<(String, Scopes), String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Some(name) = parsed.get("name").and_then(|n| n.as_str()) else {
        return Err("field 'name' (a string) is required".to_string());
    };
    validate_name(name)?;
    let scopes = match parsed.get("scope") {
        None | Some(serde_json::Value::Null) => Scopes::owner(),
        Some(serde_json::Value::String(text)) => Scopes::parse(text)?,
        Some(_) => {
            return Err(
                "field 'scope' must be a string like \"owner\" or \"deploy:blog,deploy:shop\""
                    .to_string(),
            )
        }
    };
    Ok((name.to_string(), scopes))
}

/// The absolute path and `force` of a `POST /api/system/backup` body, or the 400 message.
fn backup_request(body: &[u8]) -> Result<(PathBuf, bool), String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Some(path) = parsed.get("path").and_then(|p| p.as_str()) else {
        return Err("field 'path' (an absolute file path on the server) is required".into());
    };
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(format!(
            "field 'path' must be absolute (the server's working directory is no place for \
             backups): '{}'",
            path.display()
        ));
    }
    let force = match parsed.get("force") {
        None | Some(serde_json::Value::Null) => false,
        Some(serde_json::Value::Bool(force)) => *force,
        Some(_) => return Err("field 'force' must be true or false".into()),
    };
    Ok((path, force))
}

/// Hands `job` to the writer without waiting: `None`, and when the job has run `answer`
/// turns its result into the response that `reply` delivers; or, when the writer refuses
/// the job (queue full, stopping), `Some` of the error response to send at once.
pub(crate) fn write_then<T: Send + 'static>(
    writer: &WriterHandle,
    reply: Reply,
    job: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    answer: impl FnOnce(Result<T, DbError>) -> Response + Send + 'static,
) -> Option<Response> {
    let on_done = move |result: Result<T, DbError>| {
        // A bug in building the answer must still answer the client.
        let response = catch_unwind(AssertUnwindSafe(|| answer(result))).unwrap_or_else(|_| {
            log::error!("building an admin answer panicked; answered 500");
            Response::error(500, "internal error; see the server log")
        });
        reply(response);
    };
    match writer.submit_then(job, on_done) {
        Ok(()) => None,
        Err(e) => Some(error_response(&e)),
    }
}

/// The name in `/api/certs/<name>/renew`.
fn renew_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/api/certs/")?.strip_suffix("/renew")?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

fn method_not_allowed(path: &str) -> Response {
    let allow = match path {
        "/api/keys" => "GET, HEAD, POST",
        "/api/system/vacuum" | "/api/system/backup" => "POST",
        p if renew_path(p).is_some() => "POST",
        p if p.starts_with("/api/keys/") => "DELETE",
        _ => "GET, HEAD",
    };
    Response::error(405, &format!("method not allowed on {path}")).header("Allow", allow)
}

#[cfg(test)]
mod tests;
