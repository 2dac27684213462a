//! `POST /api/deploy` (DESIGN §3, D3, D4): the one large write in fazt.
//!
//! The path of an upload:
//! 1. head only, on the thread reading the socket (`refuse_early`): API key, scope, rate
//!    limit, a free deploy slot and disk space are checked before a byte of the body is
//!    read, so a refused upload costs nothing;
//! 2. the body arrives into memory up to `FAZT_UPLOAD_RAM`, then into a temp file
//!    (`http::spool`), never past `FAZT_MAX_UPLOAD` (413);
//! 3. the admin thread hands the request to the deploy thread (`submit`): one deploy runs
//!    and one may wait, others get 503 with `Retry-After`;
//! 4. the deploy thread finds the zip (multipart part or raw body), validates and extracts
//!    it into a temp dir (`archive`), then the writer stores new blobs, the deployment and
//!    its files and flips the site's pointer in one transaction, and prunes old
//!    deployments; the answer goes back through the mailbox of the thread that owns the
//!    connection.
//!
//! Invariants: the live site changes only by that one transaction; every temp file
//! (spooled body, extracted files) is removed when the deploy ends, however it ends, and
//! leftovers of a crash are removed at start (`remove_leftovers`).

use super::archive::{self, ArchiveLimits};
use super::limits::DeployLimits;
use crate::analytics::ingest::QueryParams;
use crate::auth::audit::Entry;
use crate::auth::caller::{authenticate, Caller};
use crate::db::writer::WriterHandle;
use crate::db::DbError;
use crate::hosting::sites::{site_url, SiteServer};
use crate::hosting::store::{self, DeployResult};
use crate::hosting::urls::UrlBase;
use crate::http::multipart::{self, BodyWindow};
use crate::http::proxies::TrustedProxies;
use crate::http::spool::{self, SpoolPolicy};
use crate::http::{error_response, Method, Request, Response, ResponseError};
use crate::keys::{ApiKey, AuthGuard};
use crate::platform::disk::{DiskError, DiskGuard};
use crate::platform::metrics::Counter;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const DEPLOY_PATH: &str = "/api/deploy";
/// Extraction dirs start with this (see `remove_leftovers`).
const EXTRACT_PREFIX: &str = "fazt-deploy-";
/// Deploys that may wait while one runs; more get 503 at once instead of queueing
/// uploads (and their temp files) behind a slow deploy.
const WAITING_DEPLOYS: usize = 1;
/// What a client refused for a busy deploy slot is told to wait, in seconds.
const BUSY_RETRY_AFTER: &str = "5";
const RATE_WINDOW: Duration = Duration::from_secs(60);

/// Deploy counters, for `/api/system/health` and `/metrics`.
pub struct DeployStats {
    pub succeeded: Counter,
    pub failed: Counter,
    pub refused_busy: Counter,
    pub rate_limited: Counter,
}

pub static DEPLOY_STATS: DeployStats = DeployStats {
    succeeded: Counter::new(),
    failed: Counter::new(),
    refused_busy: Counter::new(),
    rate_limited: Counter::new(),
};

static DEPLOYS: crate::platform::metrics::Desc = crate::platform::metrics::Desc::new(
    crate::platform::metrics::Kind::Counter,
    "fazt_deploys_total",
    "deploys",
    "Deploys by outcome.",
)
.labelled("outcome");

impl crate::platform::metrics::Source for DeployStats {
    fn collect(&self, out: &mut crate::platform::metrics::Collector) {
        out.int_with(&DEPLOYS, "succeeded", self.succeeded.get());
        out.int_with(&DEPLOYS, "failed", self.failed.get());
        out.int_with(&DEPLOYS, "refused_busy", self.refused_busy.get());
        out.int_with(&DEPLOYS, "rate_limited", self.rate_limited.get());
    }
}

/// A deploy waiting for the deploy thread; `reply` sends the answer to the connection.
pub struct DeployJob {
    request: Request,
    caller: Caller,
    reply: Box<dyn FnOnce(Response) + Send>,
}

/// What deploys need from the rest of the server, built by `server` at start.
pub struct DeployContext {
    pub deployer: Deployer,
    pub writer: WriterHandle,
    pub disk: DiskGuard,
    /// Reloaded in the deploy's own transaction, so the next request sees the new site.
    pub sites: Arc<SiteServer>,
    /// Uploads beyond `upload_ram` bytes spool here; archives are extracted here.
    pub temp_dir: PathBuf,
    pub upload_ram: usize,
    /// Deployments kept per site when old ones are pruned.
    pub keep_deployments: usize,
    /// The public domain, scheme and port, for the site URL in the answer.
    pub domain: String,
    pub url_base: UrlBase,
    /// Whose `X-Forwarded-Proto` is believed.
    pub proxies: TrustedProxies,
    /// API keys, with failed attempts throttled per address (shared with the admin API).
    pub auth: Arc<AuthGuard>,
}

impl DeployContext {
    /// The scheme and port of the URLs in the answer to `request`.
    fn url_base(&self, request: &Request) -> UrlBase {
        let trusted = self.proxies.trusts(request.peer.ip());
        self.url_base.for_request(request, trusted)
    }
}

/// The deploy slot, the per-key rate limit and the queue to the deploy thread.
pub struct Deployer {
    limits: DeployLimits,
    queue: Sender<DeployJob>,
    inbox: Mutex<Option<Receiver<DeployJob>>>,
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
    stop: AtomicBool,
}

impl Deployer {
    pub fn new(limits: DeployLimits) -> Deployer {
        let (queue, inbox) = crossbeam_channel::bounded(WAITING_DEPLOYS);
        Deployer {
            limits,
            queue,
            inbox: Mutex::new(Some(inbox)),
            recent: Mutex::new(HashMap::new()),
            stop: AtomicBool::new(false),
        }
    }

    pub fn limits(&self) -> &DeployLimits {
        &self.limits
    }

    /// Counts a deploy of `key` against its rate; `Err` carries the seconds to wait.
    fn admit(&self, key: &str, now: Instant) -> Result<(), u64> {
        let mut recent = self.recent.lock();
        let starts = recent.entry(key.to_string()).or_default();
        while starts
            .front()
            .is_some_and(|t| now.duration_since(*t) >= RATE_WINDOW)
        {
            starts.pop_front();
        }
        if starts.len() >= self.limits.rate_per_minute as usize {
            let oldest = starts.front().copied().unwrap_or(now);
            let wait = RATE_WINDOW.saturating_sub(now.duration_since(oldest));
            return Err(wait.as_secs().max(1));
        }
        starts.push_back(now);
        Ok(())
    }

    fn is_busy(&self) -> bool {
        self.queue.is_full()
    }
}

pub fn is_deploy(request: &Request) -> bool {
    request.path() == DEPLOY_PATH
}

/// The spool policy of deploy uploads.
pub fn spool_policy(ctx: &DeployContext) -> SpoolPolicy {
    SpoolPolicy {
        in_memory: ctx.upload_ram,
        dir: ctx.temp_dir.clone(),
        disk: ctx.disk.clone(),
    }
}

/// Step 1: what can be refused from the head alone, before the upload is read.
pub fn refuse_early(ctx: &DeployContext, request: &Request) -> Option<Response> {
    // A key, or the dashboard's cookie (a folder dropped on the Sites view).
    let key = match authenticate(request, &ctx.auth) {
        Ok(caller) => caller.key,
        Err(response) => return Some(response),
    };
    // Any method's body on this path would be spooled like an upload, then refused.
    if request.method != Method::Post {
        return Some(wrong_method());
    }
    if let Some(site) = QueryParams::parse(request.query()).get("site") {
        if let Some(refusal) = scope_refusal(&key, &site.to_ascii_lowercase()) {
            return Some(Response::error(403, &refusal));
        }
    }
    if ctx.deployer.is_busy() {
        return Some(busy());
    }
    if let Err(e) = ctx.disk.check() {
        return Some(error_response(&e));
    }
    // Counted last: a deploy refused as busy or for disk space is not one of the key's.
    if let Err(wait) = ctx.deployer.admit(&key.id, Instant::now()) {
        DEPLOY_STATS.rate_limited.inc();
        let message = format!(
            "too many deploys with this key: at most {} a minute; retry in {wait} s",
            ctx.deployer.limits.rate_per_minute
        );
        return Some(crate::http::limiter::too_many(&message, wait));
    }
    None
}

fn wrong_method() -> Response {
    Response::error(405, &format!("{DEPLOY_PATH} takes POST")).header("Allow", "POST")
}

fn busy() -> Response {
    DEPLOY_STATS.refused_busy.inc();
    Response::error(503, "another deploy is in progress; retry shortly")
        .header("Retry-After", BUSY_RETRY_AFTER)
}

/// Step 3, on the admin thread: queues the deploy; `Some` is an immediate answer.
pub fn submit(
    ctx: &DeployContext,
    request: Request,
    reply: Box<dyn FnOnce(Response) + Send>,
) -> Option<Response> {
    if request.method != Method::Post {
        return Some(wrong_method());
    }
    let caller = match authenticate(&request, &ctx.auth) {
        Ok(caller) => caller,
        Err(response) => return Some(response),
    };
    if request.body_len() == 0 {
        return Some(Response::error(400, EMPTY_BODY));
    }
    let job = DeployJob {
        request,
        caller,
        reply,
    };
    match ctx.deployer.queue.try_send(job) {
        Ok(()) => None,
        Err(TrySendError::Full(_)) => Some(busy()),
        Err(TrySendError::Disconnected(_)) => {
            Some(Response::error(503, "the server is shutting down").header("Retry-After", "10"))
        }
    }
}

const EMPTY_BODY: &str = "empty body: send multipart/form-data with fields 'site_name' and \
                          'file' (a zip), or an application/zip body with ?site=NAME";

/// Starts the deploy thread. It runs queued deploys until `stop_worker`.
/// `reader` is the thread's read connection (finding variants made by earlier deploys).
pub fn spawn_worker(
    ctx: Arc<DeployContext>,
    reader: rusqlite::Connection,
) -> io::Result<std::thread::JoinHandle<()>> {
    let inbox = ctx
        .deployer
        .inbox
        .lock()
        .take()
        .ok_or_else(|| io::Error::other("the deploy thread was started twice"))?;
    std::thread::Builder::new()
        .name("fazt-deploy".into())
        .spawn(move || {
            crate::db::reader::install_reader(reader);
            while !ctx.deployer.stop.load(Ordering::SeqCst) {
                if let Ok(job) = inbox.recv_timeout(Duration::from_millis(200)) {
                    run_job(&ctx, job);
                }
            }
            // Deploys accepted before the stop still run: their clients are waiting.
            while let Ok(job) = inbox.try_recv() {
                run_job(&ctx, job);
            }
        })
}

/// Lets the deploy thread finish what it holds, then end (before the writer stops).
pub fn stop_worker(ctx: &DeployContext, worker: std::thread::JoinHandle<()>) {
    ctx.deployer.stop.store(true, Ordering::SeqCst);
    if worker.join().is_err() {
        log::error!("the deploy thread panicked");
    }
}

fn run_job(ctx: &DeployContext, job: DeployJob) {
    let started = Instant::now();
    let DeployJob {
        request,
        caller,
        reply,
    } = job;
    let key = &caller.key;
    let outcome =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| deploy(ctx, &request, key)))
            .unwrap_or_else(|_| Err(DeployError::Internal("the deploy panicked".into())));
    audit(ctx, &request, &caller, &outcome);
    let response = match outcome {
        Ok(body) => {
            DEPLOY_STATS.succeeded.inc();
            log::info!(
                "{} ({} new bytes) in {:?} with key {}",
                body["message"].as_str().unwrap_or("deployed"),
                body["new_bytes"],
                started.elapsed(),
                key.id
            );
            Response::json(200, &body)
        }
        Err(e) => {
            DEPLOY_STATS.failed.inc();
            error_response(&e)
        }
    };
    // The spooled body goes with the request, before the client hears back.
    drop(request);
    reply(response);
    crate::platform::sys::release_free_memory();
}

/// Records the deploy in the audit log: the site and deployment, or why it failed.
fn audit(
    ctx: &DeployContext,
    request: &Request,
    caller: &Caller,
    outcome: &Result<serde_json::Value, DeployError>,
) {
    let ip = ctx.proxies.client_ip(request).to_string();
    let (target, result) = match outcome {
        Ok(body) => (
            format!(
                "{} #{}",
                body["site"].as_str().unwrap_or("?"),
                body["deployment"]
            ),
            "ok".to_string(),
        ),
        Err(e) => (
            QueryParams::parse(request.query())
                .get("site")
                .unwrap_or_default(),
            e.to_string(),
        ),
    };
    let entry = Entry::now(&caller.actor(), &ip, "deploy", Some(&target), &result);
    crate::auth::audit::later(&ctx.writer, entry);
}

/// Why a deploy failed; each maps to its status here and nowhere else.
#[derive(Debug)]
enum DeployError {
    BadRequest(String),
    Forbidden(String),
    UnsupportedType(String),
    Archive(archive::ArchiveError),
    Db(DbError),
    Internal(String),
}

impl From<DbError> for DeployError {
    fn from(e: DbError) -> DeployError {
        DeployError::Db(e)
    }
}

impl From<DiskError> for DeployError {
    fn from(e: DiskError) -> DeployError {
        DeployError::Db(e.into())
    }
}

impl fmt::Display for DeployError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeployError::BadRequest(m) | DeployError::Forbidden(m) => f.write_str(m),
            DeployError::UnsupportedType(m) => f.write_str(m),
            DeployError::Archive(e) => e.fmt(f),
            DeployError::Db(e) => e.fmt(f),
            DeployError::Internal(m) => write!(f, "deploy failed: {m}"),
        }
    }
}

impl ResponseError for DeployError {
    fn status(&self) -> u16 {
        match self {
            DeployError::BadRequest(_) => 400,
            DeployError::Forbidden(_) => 403,
            DeployError::UnsupportedType(_) => 415,
            DeployError::Archive(e) => e.status(),
            DeployError::Db(e) => e.status(),
            DeployError::Internal(_) => 500,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            DeployError::Archive(e) => e.code(),
            DeployError::Db(e) => e.code(),
            other => crate::http::error::status_code(other.status()),
        }
    }

    fn retry_after_secs(&self) -> Option<u32> {
        match self {
            DeployError::Db(e) => e.retry_after_secs(),
            _ => None,
        }
    }
}

/// Why `key` may not deploy `site`, if it may not.
fn scope_refusal(key: &ApiKey, site: &str) -> Option<String> {
    (!key.can_deploy(site)).then(|| {
        format!(
            "this API key may not deploy site '{site}' (scope: {})",
            key.scope
        )
    })
}

/// Steps 4: find the archive, extract it, apply it through the writer.
fn deploy(
    ctx: &DeployContext,
    request: &Request,
    key: &ApiKey,
) -> Result<serde_json::Value, DeployError> {
    let (site, zip) = open_upload(request)?;
    store::validate_site_name(&site).map_err(DeployError::BadRequest)?;
    if let Some(refusal) = scope_refusal(key, &site) {
        return Err(DeployError::Forbidden(refusal));
    }
    ctx.disk.check()?;
    let dir = ExtractDir::create(&ctx.temp_dir)
        .map_err(|e| DeployError::Internal(format!("creating a temp dir for the archive: {e}")))?;
    let extracted = archive::extract(zip, &archive_limits(ctx.deployer.limits()), dir.path())
        .map_err(DeployError::Archive)?;
    let mut files = extracted.files;
    // Compressed here, before the writer's job, which only copies bytes (DESIGN D8).
    let compressed = crate::hosting::compress::precompress_with_reader(&mut files, dir.path())
        .map_err(|source| {
            DeployError::Archive(archive::ArchiveError::Io {
                context: "compressing the site's files".into(),
                source,
            })
        })?;
    if compressed.compressed + compressed.reused > 0 {
        log::info!("deploy of {site}: {compressed}");
    }
    // The extracted files are on disk now; the database is about to grow by their size.
    ctx.disk.check()?;
    let keep = ctx.keep_deployments;
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let warning = nested_site_warning(&paths);
    let sites = Arc::clone(&ctx.sites);
    let writer_site = site.clone();
    // The deploy thread may wait for the writer; the admin thread never does.
    let result = ctx.writer.call(move |conn| {
        let result = store::apply_deployment(conn, &writer_site, &files, "deploy")?;
        // The deploy is committed; pruning is housekeeping and must not fail it. The
        // replaced deployment is still being read by requests that resolved it before
        // the flip: it stays until the next collection.
        let spared: Vec<i64> = result.previous.into_iter().collect();
        if let Err(e) = store::prune_and_gc(conn, keep, &spared) {
            log::error!("pruning old deployments after deploying {writer_site}: {e}");
        }
        if let Err(e) = sites.reload(conn) {
            log::error!("reloading sites after deploying {writer_site}: {e}");
        }
        Ok(result)
    })?;
    drop(dir);
    crate::keys::touch_last_used(&ctx.writer, &key.id, crate::platform::clock::unix_now());
    let url = site_url(&ctx.domain, &ctx.url_base(request), &site);
    Ok(deploy_answer(&result, &url, warning.as_deref()))
}

/// The 200 body, decodable by every client: today's fields; the `data` envelope the Go
/// fazt v0.29 client requires (it exits 1 without it); and `success`, `message`,
/// `file_count`, `size_bytes` at the top level, which the v0.7 client reads.
fn deploy_answer(result: &DeployResult, url: &str, warning: Option<&str>) -> serde_json::Value {
    let files = match result.file_count {
        1 => "1 file".to_string(),
        n => format!("{n} files"),
    };
    let message = format!(
        "deployed {files} to {} as deployment {}",
        result.site, result.deployment
    );
    let mut body = result.to_json();
    body["previous"] = serde_json::json!(result.previous);
    body["url"] = serde_json::json!(url);
    body["success"] = serde_json::json!(true);
    body["message"] = serde_json::json!(message);
    body["file_count"] = serde_json::json!(result.file_count);
    body["size_bytes"] = serde_json::json!(result.total_bytes);
    body["data"] = serde_json::json!({
        "site": result.site, "file_count": result.file_count,
        "size_bytes": result.total_bytes, "message": message,
    });
    if let Some(warning) = warning {
        body["warning"] = serde_json::json!(warning);
    }
    body
}

/// A site zipped with its folder (`dist/index.html`, `dist/app.js`) serves nothing at `/`:
/// said in the answer, which the CLI prints, since the deploy itself is valid.
pub(crate) fn nested_site_warning(paths: &[&str]) -> Option<String> {
    let first = paths.first()?;
    let (folder, _) = first.split_once('/')?;
    let prefix = format!("{folder}/");
    let all_inside = paths.iter().all(|p| p.starts_with(&prefix));
    let root_index = paths.contains(&"index.html");
    (all_inside && !root_index).then(|| {
        format!(
            "every file is inside the folder '{folder}/' and there is no index.html at the \
             root, so the site's / is a 404; publish what is inside '{folder}/' instead"
        )
    })
}

fn archive_limits(limits: &DeployLimits) -> ArchiveLimits {
    let mut archive = ArchiveLimits::default();
    if let Some(n) = limits.max_files {
        archive.max_files = n;
    }
    if let Some(n) = limits.max_total_bytes {
        archive.max_total_bytes = n;
        archive.max_entry_bytes = archive.max_entry_bytes.min(n);
    }
    archive
}

/// The uploaded body, in memory or spooled, readable and seekable from its start.
enum UploadBody<'a> {
    Memory(Cursor<&'a [u8]>),
    File(File),
}

impl Read for UploadBody<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UploadBody::Memory(c) => c.read(buf),
            UploadBody::File(f) => f.read(buf),
        }
    }
}

impl Seek for UploadBody<'_> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        match self {
            UploadBody::Memory(c) => c.seek(pos),
            UploadBody::File(f) => f.seek(pos),
        }
    }
}

/// The site name and the zip inside the upload: a multipart form (`site_name`, `file`),
/// as the earlier Go client sends it, or a raw zip body with `?site=`.
fn open_upload(request: &Request) -> Result<(String, BodyWindow<UploadBody<'_>>), DeployError> {
    let len = request.body_len();
    let mut body = match &request.spooled {
        Some(file) => UploadBody::File(
            file.open()
                .map_err(|e| DeployError::Internal(format!("reopening the spooled upload: {e}")))?,
        ),
        None => UploadBody::Memory(Cursor::new(&request.body[..])),
    };
    let content_type = request
        .header_str("content-type")
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mime = content_type.split(';').next().unwrap_or("").trim();
    let (site, offset, zip_len) = match mime {
        "multipart/form-data" => {
            let boundary = multipart::boundary_from_content_type(
                request.header_str("content-type").unwrap_or(""),
            )
            .map_err(DeployError::BadRequest)?;
            let form = multipart::parse_form(&mut body, len, &boundary)
                .map_err(DeployError::BadRequest)?;
            let site = form.text("site_name").ok_or_else(|| {
                DeployError::BadRequest("the form has no 'site_name' field".into())
            })?;
            let file = form.file("file").ok_or_else(|| {
                DeployError::BadRequest("the form has no 'file' field (the zip)".into())
            })?;
            (site.to_string(), file.offset, file.len)
        }
        "application/zip" | "application/x-zip-compressed" | "application/octet-stream" => {
            let site = QueryParams::parse(request.query())
                .get("site")
                .ok_or_else(|| DeployError::BadRequest("a raw zip body needs ?site=NAME".into()))?;
            (site, 0, len)
        }
        other => {
            return Err(DeployError::UnsupportedType(format!(
                "Content-Type '{other}' is not a deploy: use multipart/form-data or application/zip"
            )))
        }
    };
    let window = BodyWindow::new(body, offset, zip_len);
    Ok((site.trim().to_ascii_lowercase(), window))
}

static NEXT_EXTRACT_DIR: AtomicU64 = AtomicU64::new(0);

/// A private temp dir for one deploy's extracted files, removed on drop.
struct ExtractDir(PathBuf);

impl ExtractDir {
    fn create(temp_dir: &Path) -> io::Result<ExtractDir> {
        use std::os::unix::fs::DirBuilderExt;
        let n = NEXT_EXTRACT_DIR.fetch_add(1, Ordering::Relaxed);
        let path = temp_dir.join(format!("{EXTRACT_PREFIX}{}-{n}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&path)?;
        Ok(ExtractDir(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ExtractDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            log::warn!("removing {}: {e}", self.0.display());
        }
    }
}

/// At start: removes spooled uploads and extraction dirs a crash left in the temp dir.
pub fn remove_leftovers(temp_dir: &Path) {
    for prefix in [spool::SPOOL_PREFIX, EXTRACT_PREFIX] {
        match spool::remove_orphans(temp_dir, prefix) {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "removed {n} leftover temp file(s) {prefix}* from {} (an earlier run ended mid-deploy)",
                temp_dir.display()
            ),
            Err(e) => log::error!("cleaning {}: {e}", temp_dir.display()),
        }
    }
}

/// At exit, once the deploy thread has ended: removes this process's temp files still
/// there, the spooled bodies of uploads a drain past its deadline abandoned (their
/// threads end with the process, without running the destructors that remove them).
pub fn remove_own_leftovers(temp_dir: &Path) {
    let pid = std::process::id();
    for prefix in [spool::SPOOL_PREFIX, EXTRACT_PREFIX] {
        match spool::remove_orphans(temp_dir, &format!("{prefix}{pid}-")) {
            Ok(0) => {}
            Ok(n) => log::warn!(
                "removed {n} temp file(s) {prefix}* of uploads still arriving at exit from {}",
                temp_dir.display()
            ),
            Err(e) => log::error!("cleaning {}: {e}", temp_dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_inside_one_folder_is_warned_about() {
        let warned = |paths: &[&str]| nested_site_warning(paths);
        assert!(warned(&["dist/app.js", "dist/index.html"])
            .unwrap()
            .contains("'dist/'"));
        assert_eq!(warned(&["dist/a.js", "index.html"]), None);
        assert_eq!(warned(&["a/index.html", "b/index.html"]), None);
        assert_eq!(warned(&["index.html"]), None);
        // A folder's own index.html at the root is a site, even if nothing else is there.
        assert_eq!(warned(&["docs/a.html", "index.html"]), None);
        assert_eq!(warned(&[]), None);
    }

    #[test]
    fn the_rate_limit_counts_per_key_within_a_minute() {
        let deployer = Deployer::new(DeployLimits {
            rate_per_minute: 2,
            ..DeployLimits::default()
        });
        let t0 = Instant::now();
        assert!(deployer.admit("a", t0).is_ok());
        assert!(deployer.admit("a", t0).is_ok());
        let wait = deployer
            .admit("a", t0 + Duration::from_secs(20))
            .unwrap_err();
        assert_eq!(wait, 40);
        assert!(
            deployer.admit("b", t0).is_ok(),
            "keys are limited separately"
        );
        assert!(
            deployer.admit("a", t0 + RATE_WINDOW).is_ok(),
            "the window slides"
        );
    }
}
