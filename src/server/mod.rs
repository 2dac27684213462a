//! The server process (DESIGN §1, §6): opens the database and seeds it, binds the
//! listeners, starts N core threads (each an event loop on the shared public listener), the
//! reserved admin thread and the writer thread, and shuts them down in order on a signal.

pub mod config;
pub mod event_loop;
pub mod router;
mod services;
mod threads;
mod timers;

use crate::analytics::event::{day_of, SaltBook};
use crate::analytics::ingest::Ingest;
use crate::analytics::store::{load_or_create_salt, EventStore};
use crate::db::writer::EventPipeline;
use crate::db::writer::WriterHandle;
use crate::hosting::cache::SiteCache;
use crate::hosting::sites::{SiteServer, SYSTEM_SITES};
use crate::hosting::store::{self, StagedFile};
use crate::http::cap::ConnCap;
use crate::http::{Body, Response};
use crate::platform::disk::DiskGuard;
use crate::server::config::Config;
use rusqlite::Connection;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Writer jobs that may wait before callers are told 503: admin mutations are few, and a
/// longer queue would only hide a stuck writer.
const WRITER_QUEUE: usize = 1024;

/// State shared by every thread.
pub struct App {
    pub config: Config,
    pub started: Instant,
    pub public_cap: Arc<ConnCap>,
    pub sites: SiteServer,
    pub writer: WriterHandle,
    pub disk: DiskGuard,
    pub ingest: Ingest,
    pub deployer: crate::deploy::service::Deployer,
    pub db_path: PathBuf,
    draining: Arc<AtomicBool>,
}

impl App {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }
}

/// `GET /health`: liveness, answered by whichever thread read the request.
pub fn liveness() -> Response {
    Response::new(200).body("text/plain; charset=utf-8", Body::Static(b"ok\n"))
}

/// Runs the server until a signal; returns the process exit code.
pub fn run(mut config: Config) -> Result<i32, String> {
    let limits = config.probe.limits.clone();
    let data_dir = config.data_dir.clone();
    for dir in [&data_dir, &limits.temp_dir] {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    crate::deploy::service::remove_leftovers(&limits.temp_dir);
    let watched = vec![data_dir.clone(), limits.temp_dir.clone()];
    let disk = DiskGuard::new(watched.clone(), config.disk_threshold);
    let db_path = crate::db::db_path(&data_dir);
    let mut conn = crate::db::open_and_migrate(&db_path, &limits).map_err(|e| e.to_string())?;
    seed_system_sites(&mut conn)?;
    ensure_owner_key(&conn)?;
    let salts = Arc::new(SaltBook::default());
    let today = day_of(crate::platform::clock::unix_now());
    salts.set(
        today,
        load_or_create_salt(&conn, today).map_err(|e| e.to_string())?,
    );
    // Event batches are bulk writes too: at the disk threshold they wait and retry.
    let pipeline = EventPipeline {
        capacity: limits.event_channel_capacity,
        policy: config.event_batch,
        sink: Box::new(EventStore::new(Some(DiskGuard::new(
            watched,
            config.disk_threshold,
        )))),
    };
    let (writer, queue, writer_thread) =
        crate::db::writer::spawn_with_events(conn, WRITER_QUEUE, pipeline)
            .map_err(|e| e.to_string())?;
    let ingest = Ingest {
        queue,
        salts,
        proxies: config.trusted_proxies.clone(),
    };
    // One read connection per core thread and one for the admin thread.
    let readers = (0..=limits.core_threads)
        .map(|_| crate::db::open_read(&db_path, &limits).map_err(|e| e.to_string()))
        .collect::<Result<Vec<Connection>, String>>()?;

    let sites = SiteServer::new(SiteCache::new(limits.cache_bytes, limits.max_cached_file));
    sites
        .table
        .reload(&readers[0])
        .map_err(|e| format!("reading sites: {e}"))?;

    let signals = threads::handle_signals()?;
    let public = bind(config.listen, "--listen")?;
    // With port 0 the system picked one: site URLs (`site_url`) must name the real one.
    if let Ok(bound) = public.local_addr() {
        config.listen = bound;
    }
    let admin_listener = config
        .admin_listen
        .map(|addr| bind(addr, "--admin-listen"))
        .transpose()?;
    announce(&public, "public");
    if let Some(l) = &admin_listener {
        announce(l, "admin");
    }

    let app = Arc::new(App {
        public_cap: ConnCap::new(limits.max_connections),
        sites,
        writer,
        disk,
        ingest,
        deployer: crate::deploy::service::Deployer::new(config.deploy.clone()),
        db_path,
        started: Instant::now(),
        draining: Arc::new(AtomicBool::new(false)),
        config,
    });
    let threads = threads::start_threads(&app, public, admin_listener, readers, writer_thread)?;
    log::info!(
        "fazt {} serving domain {} with {} core thread(s); limits: {} connections, {} cache",
        env!("CARGO_PKG_VERSION"),
        app.config.domain,
        limits.core_threads,
        limits.max_connections,
        crate::platform::units::format_bytes(limits.cache_bytes),
    );
    threads.wait_for_shutdown(&app, signals)
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
