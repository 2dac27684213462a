//! Threads, routing and shutdown (DESIGN §1, §6): N core threads each run an event loop on
//! the shared public listener; one reserved admin thread runs its own loop (with its own
//! listener when `--admin-listen` is set) and receives admin requests from the core
//! threads; the signal thread (from `ctrlc`) starts a graceful shutdown.

pub mod event_loop;
pub mod router;

use crate::admin::{AdminApi, ADMIN_BODY_LIMIT};
use crate::config::Config;
use crate::http::conn::Service;
use crate::http::{Body, Request, Response};
use crate::keys::KeyStore;
use crate::sites::Sites;
use crossbeam_channel::Receiver;
use event_loop::{AdminJob, ConnCap, EventLoop, LoopService, Mail, Mailbox};
use router::{route, Target};
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Body limit of public routes: nothing public takes a body yet, so this only lets a
/// small stray body be read and discarded instead of breaking the connection.
const PUBLIC_BODY_LIMIT: u64 = 64 * 1024;

/// State shared by every thread.
pub struct App {
    pub config: Config,
    pub started: Instant,
    pub public_cap: Arc<ConnCap>,
    pub sites: Sites,
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
pub fn run(config: Config) -> Result<i32, String> {
    let data_dir = config.data_dir.clone();
    std::fs::create_dir_all(&data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", data_dir.display()))?;
    let temp_dir = &config.probe.limits.temp_dir;
    std::fs::create_dir_all(temp_dir)
        .map_err(|e| format!("cannot create temp directory {}: {e}", temp_dir.display()))?;
    let keys = open_keys(&config)?;
    let signals = handle_signals()?;

    let public = bind(config.listen, "--listen")?;
    let admin_listener = config
        .admin_listen
        .map(|addr| bind(addr, "--admin-listen"))
        .transpose()?;
    announce(&public, "public");
    if let Some(l) = &admin_listener {
        announce(l, "admin");
    }

    let draining = Arc::new(AtomicBool::new(false));
    let app = Arc::new(App {
        public_cap: ConnCap::new(config.probe.limits.max_connections),
        sites: Sites::embedded(),
        started: Instant::now(),
        draining: draining.clone(),
        config,
    });
    let threads = start_threads(&app, public, admin_listener, keys)?;
    log::info!(
        "fazt {} serving domain {} with {} core thread(s); limits: {} connections, {} cache",
        env!("CARGO_PKG_VERSION"),
        app.config.domain,
        app.config.probe.limits.core_threads,
        app.config.probe.limits.max_connections,
        crate::units::format_bytes(app.config.probe.limits.cache_bytes),
    );
    threads.wait_for_shutdown(&app, signals)
}

fn open_keys(config: &Config) -> Result<KeyStore, String> {
    let keys_err = |e| format!("API key storage in {}: {e}", config.data_dir.display());
    let mut keys = KeyStore::open(&config.data_dir).map_err(keys_err)?;
    if !keys.initialised() {
        let (_, token) = keys.create("owner", "owner").map_err(keys_err)?;
        println!("owner API key (printed once, store it now): {token}");
    }
    Ok(keys)
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

/// Handles requests read by a core thread.
struct CoreService {
    app: Arc<App>,
    admin: Mailbox,
    me: Mailbox,
}

impl Service for CoreService {
    fn body_limit(&self, request: &Request) -> u64 {
        match route(&request.host, request.path(), &self.app.config.domain) {
            Target::Admin => ADMIN_BODY_LIMIT,
            _ => PUBLIC_BODY_LIMIT,
        }
    }

    fn call(&mut self, request: Request, token: u64) -> Option<Response> {
        let response = match route(&request.host, request.path(), &self.app.config.domain) {
            Target::Health => liveness(),
            Target::Site(site) => self.app.sites.serve(site, &request),
            Target::Admin => {
                let job = AdminJob {
                    request,
                    token,
                    reply_to: self.me.clone(),
                    received: Instant::now(),
                };
                if self.admin.send(Mail::AdminJob(job)) {
                    return None;
                }
                Response::error(503, "the admin thread is not running").header("Retry-After", "1")
            }
        };
        Some(response)
    }
}

impl LoopService for CoreService {
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)> {
        match mail {
            Mail::Reply { token, response } => Some((token, response)),
            Mail::AdminJob(_) => None,
        }
    }
}

/// The reserved admin thread: answers its own listener's requests inline and admin
/// requests handed over by core threads.
struct AdminService {
    api: AdminApi,
}

impl Service for AdminService {
    fn body_limit(&self, _request: &Request) -> u64 {
        ADMIN_BODY_LIMIT
    }

    fn call(&mut self, request: Request, _token: u64) -> Option<Response> {
        let started = Instant::now();
        let response = self.api.handle(&request);
        crate::metrics::METRICS
            .admin_latency
            .observe(started.elapsed());
        Some(response)
    }
}

impl LoopService for AdminService {
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)> {
        if let Mail::AdminJob(job) = mail {
            let response = self.api.handle(&job.request);
            crate::metrics::METRICS
                .admin_latency
                .observe(job.received.elapsed());
            job.reply_to.send(Mail::Reply {
                token: job.token,
                response,
            });
        }
        None
    }
}

struct Threads {
    core_mailboxes: Vec<Mailbox>,
    admin_mailbox: Mailbox,
    admin_stop: Arc<AtomicBool>,
    exited: crossbeam_channel::Receiver<&'static str>,
    core_count: usize,
}

/// Sends the thread's role when it ends, even by panic, so shutdown can count exits.
struct ExitNotice(crossbeam_channel::Sender<&'static str>, &'static str);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

fn start_threads(
    app: &Arc<App>,
    public: TcpListener,
    admin_listener: Option<TcpListener>,
    keys: KeyStore,
) -> Result<Threads, String> {
    let (exit_tx, exited) = crossbeam_channel::unbounded();
    let io_err = |e: std::io::Error| format!("starting threads: {e}");
    let limits = app.config.conn;

    let (admin_mailbox, admin_inbox) = Mailbox::new().map_err(io_err)?;
    let admin_stop = Arc::new(AtomicBool::new(false));
    let mut admin_loop = EventLoop::new(
        admin_listener,
        ConnCap::new(app.config.admin_max_connections),
        admin_mailbox.clone(),
        admin_inbox,
        admin_stop.clone(),
        limits,
    )
    .map_err(io_err)?;
    let mut admin_service = AdminService {
        api: AdminApi::new(app.clone(), keys),
    };
    let notice = ExitNotice(exit_tx.clone(), "admin");
    std::thread::Builder::new()
        .name("fazt-admin".into())
        .spawn(move || {
            let _notice = notice;
            if let Err(e) = admin_loop.run(&mut admin_service) {
                log::error!("admin thread stopped: {e}");
            }
        })
        .map_err(io_err)?;

    let core_count = app.config.probe.limits.core_threads;
    let mut core_mailboxes = Vec::new();
    for i in 0..core_count {
        let listener = public.try_clone().map_err(io_err)?;
        let (mailbox, inbox) = Mailbox::new().map_err(io_err)?;
        let mut event_loop = EventLoop::new(
            Some(listener),
            app.public_cap.clone(),
            mailbox.clone(),
            inbox,
            app.draining.clone(),
            limits,
        )
        .map_err(io_err)?;
        let mut service = CoreService {
            app: app.clone(),
            admin: admin_mailbox.clone(),
            me: mailbox.clone(),
        };
        core_mailboxes.push(mailbox);
        let notice = ExitNotice(exit_tx.clone(), "core");
        std::thread::Builder::new()
            .name(format!("fazt-core-{i}"))
            .spawn(move || {
                let _notice = notice;
                if let Err(e) = event_loop.run(&mut service) {
                    log::error!("core thread stopped: {e}");
                }
            })
            .map_err(io_err)?;
    }
    Ok(Threads {
        core_mailboxes,
        admin_mailbox,
        admin_stop,
        exited,
        core_count,
    })
}

/// Signals seen so far; the second one exits at once.
static SIGNALS: AtomicUsize = AtomicUsize::new(0);

/// Installs the SIGINT/SIGTERM handler (ctrlc runs it on its own signal thread). Done
/// before the listeners are announced, so a signal sent right after start is never lost.
fn handle_signals() -> Result<Receiver<()>, String> {
    let (signal_tx, signal_rx) = crossbeam_channel::bounded(1);
    ctrlc::set_handler(move || {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) >= 1 {
            eprintln!("second signal: exiting now");
            std::process::exit(130);
        }
        let _ = signal_tx.try_send(());
    })
    .map_err(|e| format!("installing signal handler: {e}"))?;
    Ok(signal_rx)
}

impl Threads {
    fn wait_for_shutdown(self, app: &App, signal_rx: Receiver<()>) -> Result<i32, String> {
        crossbeam_channel::select! {
            recv(signal_rx) -> _ => {}
            recv(self.exited) -> role => {
                log::error!("a {} thread exited unexpectedly; shutting down", role.unwrap_or("server"));
                app.draining.store(true, Ordering::SeqCst);
                self.wake_all();
                return Ok(1);
            }
        }
        log::info!(
            "shutting down: draining in-flight requests (deadline {:?})",
            app.config.shutdown_timeout
        );
        let deadline = Instant::now() + app.config.shutdown_timeout;
        app.draining.store(true, Ordering::SeqCst);
        self.wake_all();
        let mut cores_left = self.core_count;
        let mut admin_running = true;
        while cores_left > 0 {
            match self.exited.recv_deadline(deadline) {
                Ok("core") => cores_left -= 1,
                Ok(_) => admin_running = false,
                Err(_) => break,
            }
        }
        // The admin thread outlives the core threads so their admin requests still finish.
        self.admin_stop.store(true, Ordering::SeqCst);
        self.admin_mailbox.wake();
        while admin_running && cores_left == 0 {
            match self.exited.recv_deadline(deadline) {
                Ok("admin") => admin_running = false,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        if cores_left > 0 || admin_running {
            let open = crate::metrics::METRICS.connections_open.get();
            log::error!(
                "shutdown deadline of {:?} passed with {open} connection(s) still open; exiting anyway",
                app.config.shutdown_timeout
            );
            return Ok(1);
        }
        log::info!("stopped cleanly");
        Ok(0)
    }

    fn wake_all(&self) {
        for mailbox in &self.core_mailboxes {
            mailbox.wake();
        }
        self.admin_mailbox.wake();
    }
}
