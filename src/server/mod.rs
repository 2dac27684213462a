//! The server process (DESIGN §1, §6): opens the database and seeds it, binds the
//! listeners, starts N core threads (each an event loop on the shared public listener), the
//! reserved admin thread and the writer thread, and shuts them down in order on a signal.

mod apps;
mod certs;
pub(crate) mod config;
pub(crate) mod event_loop;
pub(crate) mod hubs;
pub(crate) mod router;
mod services;
mod sockets;
mod threads;
mod timers;
mod tls;

use crate::acme::manager::CertManager;
use crate::acme::Challenges;
use crate::admin::accounts::Accounts;
use crate::admin::{AcmeContext, AdminContext};
use crate::analytics::event::{day_of, SaltBook};
use crate::analytics::ingest::Ingest;
use crate::analytics::rate_limit::IngestLimits;
use crate::analytics::store::{delete_old_salts, load_or_create_salt, EventStore, StoreLimits};
use crate::db::events::EventPipeline;
use crate::db::writer::WriterHandle;
use crate::deploy::service::{DeployContext, Deployer};
use crate::hosting::cache::SiteCache;
use crate::hosting::sites::{SiteServer, SYSTEM_SITES};
use crate::hosting::store::{self, StagedFile};
use crate::http::cap::ConnCap;
use crate::http::tls::CertStore;
use crate::keys::AuthGuard;
use crate::platform::disk::DiskGuard;
use crate::platform::lock::DataDirLock;
use crate::platform::reserve::Reserve;
use crate::server::config::Config;
use rusqlite::Connection;
use std::io::Write;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Writer jobs that may wait before callers are told 503: admin mutations are few, and a
/// longer queue would only hide a stuck writer.
const WRITER_QUEUE: usize = 1024;
/// Sign-ins waiting for the password hasher (one hash at a time, 19 MiB each) before more
/// are refused with 503: a login flood can't take a small host's memory.
const HASHES_WAITING: usize = 8;

/// State shared by every thread of the server. Feature modules never see it: each gets
/// a narrow context built from it ([`App::admin_context`], [`DeployContext`]).
pub struct App {
    pub config: Config,
    pub started: Instant,
    pub public_cap: Arc<ConnCap>,
    pub sites: Arc<SiteServer>,
    pub writer: WriterHandle,
    pub disk: DiskGuard,
    pub ingest: Ingest,
    /// Per-client rate limits of the ingestion endpoints, checked at dispatch.
    pub ingest_limits: IngestLimits,
    pub deploy: Arc<DeployContext>,
    /// The certificates of the TLS listener, when there is one.
    pub tls: Option<tls::TlsState>,
    /// Certificates served (empty without a TLS listener), for the admin API and metrics.
    pub certs: Arc<CertStore>,
    /// Pending ACME challenge answers, when certificates come over ACME.
    pub challenges: Option<Arc<Challenges>>,
    /// The certificate thread, when certificates come over ACME.
    pub cert_manager: Option<CertManager>,
    /// Dashboard sign-in: the hasher thread, the login limit, session lifetimes.
    pub accounts: Accounts,
    /// Serverless apps: the JS worker pool (issue #14).
    pub apps: apps::Apps,
    /// The sites' WebSocket clients (issue #15).
    pub hubs: Arc<hubs::Hubs>,
    /// One backup at a time: `POST /api/system/backup` and the schedule share it.
    pub backup_slot: crate::maintenance::backup::BackupSlot,
    /// Scheduled backups (`FAZT_BACKUP_DIR`).
    pub backup_schedule: Option<crate::maintenance::schedule::Scheduler>,
    /// The site table's generation [`App::close_gone_hubs`] last looked at.
    hubs_synced: std::sync::atomic::AtomicU64,
    draining: Arc<AtomicBool>,
}

impl App {
    /// Closes (1001) the WebSocket clients of sites deleted or deployed without the
    /// endpoint since the last call; cheap when the site table has not changed.
    pub(crate) fn close_gone_hubs(&self) {
        let table = &self.sites.table;
        let generation = table.generation();
        if self.hubs_synced.swap(generation, Ordering::Relaxed) == generation {
            return;
        }
        for site in self.hubs.sites() {
            if !table.websocket(&site) {
                self.hubs
                    .close_site(&site, "the site's WebSocket endpoint is gone");
            }
        }
    }

    /// What the admin thread's API gets: shared handles, copies of settings.
    pub fn admin_context(&self) -> AdminContext {
        AdminContext {
            started: self.started,
            draining: Arc::clone(&self.draining),
            public_cap: Arc::clone(&self.public_cap),
            sites: Arc::clone(&self.sites),
            writer: self.writer.clone(),
            disk: self.disk.clone(),
            salts: Arc::clone(&self.ingest.salts),
            probe: self.config.probe.clone(),
            retention: self.config.retention,
            keep_deployments: self.config.keep_deployments,
            domain: self.config.domain.clone(),
            url_base: self.config.url_base(),
            proxies: self.config.trusted_proxies.clone(),
            auth: Arc::clone(&self.deploy.auth),
            certs: Arc::clone(&self.certs),
            sockets: Arc::clone(&self.hubs) as _,
            backups: self.backup_slot.clone(),
            backup_schedule: self.backup_schedule.as_ref().map(|s| Arc::clone(&s.status)),
            acme: self.acme_context(),
            accounts: self.accounts.clone(),
        }
    }

    fn acme_context(&self) -> Option<AcmeContext> {
        let settings = self.config.tls.as_ref()?.acme.as_ref()?;
        Some(AcmeContext {
            directory: settings.directory.clone(),
            email: settings.email.clone(),
            challenge: settings.challenge.as_str(),
            manager: self.cert_manager.clone()?,
        })
    }

    /// The answer to an ACME HTTP-01 validation request, if one is pending for its token.
    #[inline]
    pub fn acme_challenge(&self, request: &crate::http::Request) -> Option<crate::http::Response> {
        let answer = self
            .challenges
            .as_ref()?
            .http_answer_for_path(request.path())?;
        Some(
            crate::http::Response::new(200)
                .body("text/plain", crate::http::Body::Owned(answer.into_bytes()))
                .no_store(),
        )
    }
}

/// Runs the server until a signal; returns the process exit code.
pub fn run(mut config: Config) -> Result<i32, String> {
    let limits = config.probe.limits.clone();
    let data_dir = config.data_dir.clone();
    crate::db::private_dir(&data_dir).map_err(|e| e.to_string())?;
    let _lock = match DataDirLock::acquire(&data_dir) {
        Ok(lock) => lock,
        Err(message) => {
            eprintln!("fazt: {message}");
            return Ok(1);
        }
    };
    prepare_temp_dir(&limits.temp_dir, &data_dir)?;
    crate::deploy::service::remove_leftovers(&limits.temp_dir);
    // Before the database opens: on a full disk, SQLite may need the room at once.
    let reserve = Arc::new(Reserve::new(&data_dir, config.disk_reserve));
    if config.disk_reserve > 0 && !reserve.ensure() {
        log::warn!(
            "no room for the {} disk reserve in {} (it needs twice its size free); it is \
             created once there is",
            crate::platform::units::format_bytes(config.disk_reserve),
            data_dir.display()
        );
    }
    let watched = vec![data_dir.clone(), limits.temp_dir.clone()];
    let disk = DiskGuard::new(watched, config.disk_threshold).with_reserve(Arc::clone(&reserve));
    let db_path = crate::db::db_path(&data_dir);
    let mut conn = crate::db::open_and_migrate(&db_path, &limits).map_err(|e| e.to_string())?;
    if config.external_checkpoints {
        crate::db::leave_checkpoints_to_replicator(&conn).map_err(|e| e.to_string())?;
        log::info!("WAL checkpoints are left to a replicator (FAZT_EXTERNAL_CHECKPOINTS)");
    }
    seed_system_sites(&mut conn)?;
    ensure_owner_key(&conn)?;
    let setup_token = setup_token_if_no_user(&conn)?;
    let salts = Arc::new(SaltBook::default());
    let today = day_of(crate::platform::clock::unix_now());
    salts.set(
        today,
        load_or_create_salt(&conn, today).map_err(|e| e.to_string())?,
    );
    // The midnight rotation deletes old salts only while running; a server that was down
    // (or an upgraded database) would keep them until the next midnight.
    delete_old_salts(&conn, today).map_err(|e| e.to_string())?;
    // Event batches are tiny: the breaker (bulk writes) never stops them. A batch that
    // fails for lack of space releases the reserve and is retried.
    let pipeline = EventPipeline {
        capacity: limits.event_channel_capacity,
        policy: config.event_batch,
        sink: Box::new(EventStore::with_limits(StoreLimits {
            max_daily_values: config.max_daily_values,
            full_batch: config.event_batch.max_events,
        })),
        reserve: Some(reserve),
    };
    let (writer, queue, writer_thread) =
        crate::db::writer::spawn_with_events(conn, WRITER_QUEUE, pipeline)
            .map_err(|e| e.to_string())?;
    let acme = config.tls.as_ref().and_then(|t| t.acme.clone());
    // One read connection per core thread, one for the admin thread and one for the deploy
    // thread (it looks up the variants earlier deploys made).
    let readers = (0..limits.core_threads + 2)
        .map(|_| crate::db::open_read(&db_path, &limits).map_err(|e| e.to_string()))
        .collect::<Result<Vec<Connection>, String>>()?;

    let sites = Arc::new(SiteServer::new(SiteCache::new(
        limits.cache_bytes,
        limits.max_cached_file,
    )));
    sites
        .table
        .reload(&readers[0])
        .map_err(|e| format!("reading sites: {e}"))?;
    crate::analytics::filter::prepare();
    let ingest = Ingest {
        queue,
        salts,
        proxies: config.trusted_proxies.clone(),
        track_domains: config.track_domains.clone(),
        serves_host: serves_host(Arc::clone(&sites), config.domain.clone()),
    };

    let signals = threads::handle_signals(writer.clone())?;
    let public = bind(config.listen, "--listen")?;
    // With port 0 the system picked one: site URLs (`site_url`) must name the real one.
    if let Ok(bound) = public.local_addr() {
        config.listen = bound;
    }
    let admin_listener = config
        .admin_listen
        .map(|addr| bind(addr, "--admin-listen"))
        .transpose()?;
    let challenges = acme.as_ref().map(|_| Challenges::new());
    let tls = config
        .tls
        .as_ref()
        .map(|t| tls::TlsState::start(t, &config.domain, &data_dir, challenges.clone()))
        .transpose()?;
    let cert_store = tls
        .as_ref()
        .map_or_else(CertStore::new, |t| Arc::clone(&t.store));
    let cert_manager = match (&acme, &challenges) {
        (Some(settings), Some(challenges)) => Some(certs::start(
            settings,
            &config.domain,
            Arc::clone(&sites),
            writer.clone(),
            crate::db::open_read(&db_path, &limits).map_err(|e| e.to_string())?,
            Arc::clone(challenges),
            Arc::clone(&cert_store),
        )?),
        _ => None,
    };
    let tls_listener = config
        .tls
        .as_ref()
        .map(|t| bind(t.listen, "--tls-listen"))
        .transpose()?;
    if let (Some(l), Some(tls)) = (&tls_listener, &mut config.tls) {
        announce_tls(l, "tls");
        // Port 0 again: URLs name the bound port.
        if let Ok(bound) = l.local_addr() {
            tls.listen = bound;
        }
    }
    announce(&public, "public");
    match &admin_listener {
        Some(l) if config.admin_tls() => announce_tls(l, "admin"),
        Some(l) => announce(l, "admin"),
        None => {}
    }
    announce_urls(&config, setup_token.as_deref());

    let deploy = Arc::new(DeployContext {
        deployer: Deployer::new(config.deploy.clone()),
        writer: writer.clone(),
        disk: disk.clone(),
        sites: Arc::clone(&sites),
        temp_dir: limits.temp_dir.clone(),
        upload_ram: limits.upload_ram as usize,
        keep_deployments: config.keep_deployments,
        domain: config.domain.clone(),
        url_base: config.url_base(),
        proxies: config.trusted_proxies.clone(),
        // One guard for deploys and the admin API: failures count together.
        auth: Arc::new(AuthGuard::new(
            config.rate_limits.auth_failures_per_minute,
            config.trusted_proxies.clone(),
        )),
    });
    let ingest_limits = IngestLimits::new(
        config.rate_limits.ingest_per_second,
        config.rate_limits.ingest_burst,
        config.trusted_proxies.clone(),
    );
    // Each JS worker reads the scripts' storage on its own connection.
    let js_readers = (0..config.js.workers)
        .map(|_| crate::db::open_read(&db_path, &limits).map_err(|e| e.to_string()))
        .collect::<Result<Vec<Connection>, String>>()?;
    let hubs = Arc::new(hubs::Hubs::new(config.ws.hubs, config.ws.connection));
    let backup_slot = crate::maintenance::backup::BackupSlot::default();
    let apps = apps::Apps::start(
        &config.js,
        writer.clone(),
        js_readers,
        config.trusted_proxies.clone(),
        Arc::clone(&hubs),
    )?;
    let app = Arc::new(App {
        public_cap: ConnCap::with_share(
            limits.max_connections,
            limits.conns_per_client,
            config.trusted_proxies.clone(),
        ),
        sites,
        writer,
        disk,
        ingest,
        ingest_limits,
        deploy,
        tls,
        certs: cert_store,
        challenges,
        cert_manager,
        accounts: Accounts {
            hasher: crate::auth::password::Hasher::spawn(HASHES_WAITING)
                .map_err(|e| format!("starting the password hasher: {e}"))?,
            guard: Default::default(),
            policy: config.sessions,
            audit_retention: config.audit_retention,
        },
        apps,
        hubs,
        backup_schedule: start_backups(&config, &db_path, &backup_slot)?,
        backup_slot,
        hubs_synced: Default::default(),
        started: Instant::now(),
        draining: Arc::new(AtomicBool::new(false)),
        config,
    });
    let listeners = threads::Listeners {
        public,
        admin: admin_listener,
        tls: tls_listener,
    };
    let threads = threads::start_threads(&app, listeners, readers, writer_thread)?;
    log::info!(
        "fazt {} serving domain {} with {} core thread(s); limits: {} connections ({} per client), {} cache",
        env!("CARGO_PKG_VERSION"),
        app.config.domain,
        limits.core_threads,
        limits.max_connections,
        limits.conns_per_client,
        crate::platform::units::format_bytes(limits.cache_bytes),
    );
    threads.wait_for_shutdown(&app, signals)
}

/// Whether a host names one of the sites fazt serves now (the router's rule, then the
/// site table): the hosts `/track` and `/pixel.gif` take events for without an allowlist.
fn serves_host(sites: Arc<SiteServer>, domain: String) -> crate::analytics::ingest::ServesHost {
    Box::new(
        move |host: &str| match router::Route::of(host, "/", &domain).target(host, || "/") {
            router::Target::Site(name) => sites.table.current(name).is_some(),
            _ => false,
        },
    )
}

/// At first start (or whenever no key exists, so an owner who revoked every key can get
/// back in by restarting), creates an owner key and prints its token once.
fn ensure_owner_key(conn: &Connection) -> Result<(), String> {
    let keys = crate::keys::list(conn).map_err(|e| format!("reading API keys: {e}"))?;
    if keys.is_empty() {
        let (_, token) = crate::keys::create(conn, "owner", &crate::keys::Scopes::owner())
            .map_err(|e| format!("creating the owner API key: {e}"))?;
        println!("owner API key (printed once, store it now): {token}");
    }
    Ok(())
}

/// While no dashboard account exists, a new one-time setup link at each start (older ones
/// stay valid until they expire or one is used).
fn setup_token_if_no_user(conn: &Connection) -> Result<Option<String>, String> {
    let users = crate::auth::users::count(conn).map_err(|e| format!("reading users: {e}"))?;
    if users > 0 {
        return Ok(None);
    }
    let now = crate::platform::clock::unix_now();
    crate::auth::setup::create(conn, now)
        .map(Some)
        .map_err(|e| format!("making the setup link: {e}"))
}

/// Writes the embedded `root` and `404` sites the first time; deploys replace them later.
fn seed_system_sites(conn: &mut Connection) -> Result<(), String> {
    for (site, path, bytes) in SYSTEM_SITES {
        let exists = store::site_exists(conn, site).map_err(|e| format!("reading sites: {e}"))?;
        if !exists {
            store::apply_deployment(conn, site, &[StagedFile::embedded(path, bytes)], "seed")
                .map_err(|e| format!("seeding the {site} site: {e}"))?;
        }
    }
    Ok(())
}

fn bind(addr: std::net::SocketAddr, flag: &str) -> Result<TcpListener, String> {
    let listener =
        TcpListener::bind(addr).map_err(|e| format!("{flag}: cannot listen on {addr}: {e}"))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| format!("{flag}: {e}"))?;
    Ok(listener)
}

fn announce(listener: &TcpListener, role: &str) {
    if let Ok(addr) = listener.local_addr() {
        println!("listening on http://{addr} ({role})");
        let _ = std::io::stdout().flush();
    }
}

fn announce_tls(listener: &TcpListener, role: &str) {
    if let Ok(addr) = listener.local_addr() {
        println!("listening on https://{addr} ({role})");
        let _ = std::io::stdout().flush();
    }
}

/// The temp dir holds uploads in progress: private like the data dir when fazt owns it
/// (the default `<data dir>/tmp`, or one it creates); a shared one given by
/// `--temp-dir` keeps its mode, and each upload's files in it are private anyway (spooled
/// bodies `0600`, extraction dirs `0700`).
fn prepare_temp_dir(temp_dir: &Path, data_dir: &Path) -> Result<(), String> {
    if temp_dir.starts_with(data_dir) || !temp_dir.exists() {
        crate::db::private_dir(temp_dir).map_err(|e| e.to_string())
    } else {
        Ok(())
    }
}

/// Where to point a browser: the dashboard and the root site, with the public scheme and
/// port. The listener line above is what scripts parse; on its own it shows the 404 page.
fn announce_urls(config: &Config, setup_token: Option<&str>) {
    let base = config.url_base();
    let dashboard = crate::hosting::urls::dashboard_url(&config.domain, &base);
    println!("dashboard: {dashboard}");
    if let Some(token) = setup_token {
        println!("set up the dashboard's owner account (one-time link, valid 24 h): {dashboard}setup#{token}");
    }
    println!(
        "root site: {}",
        crate::hosting::sites::site_url(&config.domain, &base, "root")
    );
    let _ = std::io::stdout().flush();
}

/// The scheduled backups' thread, when `FAZT_BACKUP_DIR` is set.
fn start_backups(
    config: &Config,
    db: &std::path::Path,
    slot: &crate::maintenance::backup::BackupSlot,
) -> Result<Option<crate::maintenance::schedule::Scheduler>, String> {
    let Some(policy) = &config.backups else {
        return Ok(None);
    };
    let scheduler = crate::maintenance::schedule::Scheduler::start(
        policy.clone(),
        db.to_path_buf(),
        slot.clone(),
        config.disk_threshold,
    )
    .map_err(|e| {
        format!(
            "starting scheduled backups into {}: {e}",
            policy.dir.display()
        )
    })?;
    log::info!(
        "scheduled backups into {} every {:?}, keeping {}",
        policy.dir.display(),
        policy.every,
        policy.keep
    );
    Ok(Some(scheduler))
}
