//! Starting the threads and stopping them in order (DESIGN §6): core threads drain first,
//! then the admin thread (so admin requests handed over during the drain still finish),
//! then the writer commits what it holds, checkpoints and closes the database last.

use super::event_loop::{EventLoop, LoopService, Mailbox};
use super::services::{AdminService, CoreService};
use super::App;
use crate::admin::AdminApi;
use crate::db::writer::{WriterHandle, WriterThread};
use crate::http::cap::ConnCap;
use crossbeam_channel::Receiver;
use rusqlite::Connection;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Threads {
    core_mailboxes: Vec<Mailbox>,
    admin_mailbox: Mailbox,
    admin_stop: Arc<AtomicBool>,
    exited: crossbeam_channel::Receiver<&'static str>,
    core_count: usize,
    deploy_worker: std::thread::JoinHandle<()>,
    writer: WriterThread,
}

/// Sends the thread's role when it ends, even by panic, so shutdown can count exits.
struct ExitNotice(crossbeam_channel::Sender<&'static str>, &'static str);

impl Drop for ExitNotice {
    fn drop(&mut self) {
        let _ = self.0.send(self.1);
    }
}

/// The bound listeners: the public one, and the admin and TLS ones if configured.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: Option<TcpListener>,
    pub tls: Option<TcpListener>,
}

/// Starts the admin thread, the core threads and the deploy thread. Each gets its own read connection
/// (opened by the caller, moved in here, never shared).
pub fn start_threads(
    app: &Arc<App>,
    listeners: Listeners,
    mut readers: Vec<Connection>,
    writer: WriterThread,
) -> Result<Threads, String> {
    let (exit_tx, exited) = crossbeam_channel::unbounded();
    let io_err = |e: std::io::Error| format!("starting threads: {e}");
    let limits = app.config.conn;

    let (admin_mailbox, admin_inbox) = Mailbox::new().map_err(io_err)?;
    let admin_stop = Arc::new(AtomicBool::new(false));
    // `--admin-tls`: the admin listener is the loop's TLS listener, and it has no plain one.
    let admin_tls = app.tls.as_ref().filter(|_| app.config.admin_tls());
    let (admin_plain, admin_secure) = match (admin_tls, listeners.admin) {
        (Some(tls), Some(listener)) => (None, Some(tls.listener(listener))),
        (_, listener) => (listener, None),
    };
    let mut admin_loop = EventLoop::new(
        admin_plain,
        ConnCap::new(app.config.admin_max_connections),
        admin_mailbox.clone(),
        admin_inbox,
        admin_stop.clone(),
        limits,
    )
    .map_err(io_err)?;
    if let Some(secure) = admin_secure {
        admin_loop = admin_loop.with_tls(secure).map_err(io_err)?;
    }
    let admin_service = AdminService {
        api: AdminApi::new(app.admin_context()),
        app: app.clone(),
        me: admin_mailbox.clone(),
    };
    let reader = readers
        .pop()
        .ok_or("no read connection for the admin thread")?;
    let notice = ExitNotice(exit_tx.clone(), "admin");
    spawn_loop(
        "fazt-admin".into(),
        notice,
        reader,
        admin_loop,
        admin_service,
    )
    .map_err(io_err)?;

    let core_count = app.config.probe.limits.core_threads;
    // Every core thread's mailbox exists before any of them accepts: a WebSocket client of
    // one thread may be sent a message through another's.
    let mut inboxes = Vec::new();
    let mut core_mailboxes = Vec::new();
    for _ in 0..core_count {
        let (mailbox, inbox) = Mailbox::new().map_err(io_err)?;
        core_mailboxes.push(mailbox);
        inboxes.push(inbox);
    }
    app.hubs.attach(core_mailboxes.clone());
    for (i, inbox) in inboxes.into_iter().enumerate() {
        let listener = listeners.public.try_clone().map_err(io_err)?;
        let mailbox = core_mailboxes[i].clone();
        let mut event_loop = EventLoop::new(
            Some(listener),
            app.public_cap.clone(),
            mailbox.clone(),
            inbox,
            app.draining.clone(),
            limits,
        )
        .map_err(io_err)?;
        if let (Some(tls), Some(listener)) = (&app.tls, &listeners.tls) {
            let listener = listener.try_clone().map_err(io_err)?;
            event_loop = event_loop
                .with_tls(tls.listener(listener))
                .map_err(io_err)?;
        }
        let service = CoreService {
            app: app.clone(),
            admin: admin_mailbox.clone(),
            me: mailbox,
            thread: i,
            redirect_http: app.config.tls.as_ref().is_some_and(|t| t.redirect_http),
        };
        let reader = readers
            .pop()
            .ok_or("no read connection for a core thread")?;
        let notice = ExitNotice(exit_tx.clone(), "core");
        spawn_loop(
            format!("fazt-core-{i}"),
            notice,
            reader,
            event_loop,
            service,
        )
        .map_err(io_err)?;
    }
    let reader = readers
        .pop()
        .ok_or("no read connection for the deploy thread")?;
    let deploy_worker =
        crate::deploy::service::spawn_worker(Arc::clone(&app.deploy), reader).map_err(io_err)?;
    Ok(Threads {
        core_mailboxes,
        admin_mailbox,
        admin_stop,
        exited,
        core_count,
        deploy_worker,
        writer,
    })
}

/// Runs one event loop on its own thread with its own read connection; the notice
/// reports the thread's end, however it ends.
fn spawn_loop<S: LoopService + Send + 'static>(
    name: String,
    notice: ExitNotice,
    reader: Connection,
    mut event_loop: EventLoop<S::Plan>,
    mut service: S,
) -> std::io::Result<()>
where
    S::Plan: Send + 'static,
{
    std::thread::Builder::new().name(name).spawn(move || {
        let _notice = notice;
        crate::db::reader::install_reader(reader);
        if let Err(e) = event_loop.run(&mut service) {
            log::error!(
                "{} stopped: {e}",
                std::thread::current().name().unwrap_or("thread")
            );
        }
    })?;
    Ok(())
}

/// A signal this soon after the previous one is the same stop request again: GNU
/// `timeout` signals both fazt and its process group, which fazt is in, so one `timeout`
/// delivers two SIGTERMs at once. A later one means "stop now" (see [`Signals`]).
const SIGNAL_ECHO: Duration = Duration::from_secs(1);

/// What the signal thread tells the main thread.
pub struct Signals {
    /// The first SIGINT/SIGTERM: drain, then stop.
    stop: Receiver<()>,
    /// A second one, more than [`SIGNAL_ECHO`] later: skip the HTTP drain. The handler
    /// has already told the writer to stop now ([`WriterHandle::stop_now`]): it commits
    /// every acknowledged event and exits within about a second. A third exits at once.
    now: Receiver<()>,
}

/// Installs the SIGINT/SIGTERM handler (ctrlc runs it on its own signal thread). Done
/// before the listeners are announced, so a signal sent right after start is never lost.
pub fn handle_signals(writer: WriterHandle) -> Result<Signals, String> {
    let (stop_tx, stop) = crossbeam_channel::bounded(1);
    let (now_tx, now) = crossbeam_channel::bounded(1);
    let mut signals: Vec<Instant> = Vec::new();
    ctrlc::set_handler(move || {
        if signals.last().is_some_and(|at| at.elapsed() < SIGNAL_ECHO) {
            return;
        }
        signals.push(Instant::now());
        match signals.len() {
            1 => {
                let _ = stop_tx.try_send(());
            }
            2 => {
                eprintln!(
                    "second signal: skipping the drain; committing the acknowledged events, \
                     then exiting (a third signal exits at once)"
                );
                writer.stop_now();
                let _ = now_tx.try_send(());
            }
            _ => {
                eprintln!("third signal: exiting now");
                std::process::exit(130);
            }
        }
    })
    .map_err(|e| format!("installing signal handler: {e}"))?;
    Ok(Signals { stop, now })
}

/// Why a wait during the drain ended.
enum Waited {
    Exited(&'static str),
    Deadline,
    StopNow,
}

impl Threads {
    /// Waits for a signal (or a thread dying), then drains; returns the exit code.
    pub fn wait_for_shutdown(self, app: &App, signals: Signals) -> Result<i32, String> {
        crossbeam_channel::select! {
            recv(signals.stop) -> _ => {}
            recv(self.exited) -> role => {
                log::error!("a {} thread exited unexpectedly; shutting down", role.unwrap_or("server"));
                app.draining.store(true, Ordering::SeqCst);
                self.wake_all();
                self.stop_writer(app, false);
                return Ok(1);
            }
        }
        log::info!(
            "shutting down: draining in-flight requests (deadline {:?})",
            app.config.shutdown_timeout
        );
        let deadline = Instant::now() + app.config.shutdown_timeout;
        app.draining.store(true, Ordering::SeqCst);
        if let Some(certs) = &app.cert_manager {
            certs.stop();
        }
        if let Some(backups) = &app.backup_schedule {
            backups.stop();
        }
        self.wake_all();
        let mut cores_left = self.core_count;
        let mut admin_running = true;
        let mut now = false;
        while cores_left > 0 && !now {
            match self.wait(deadline, &signals.now) {
                Waited::Exited("core") => cores_left -= 1,
                Waited::Exited(_) => admin_running = false,
                Waited::Deadline => break,
                Waited::StopNow => now = true,
            }
        }
        // The admin thread outlives the core threads so their admin requests still finish.
        self.admin_stop.store(true, Ordering::SeqCst);
        self.admin_mailbox.wake();
        while admin_running && cores_left == 0 && !now {
            match self.wait(deadline, &signals.now) {
                Waited::Exited("admin") => admin_running = false,
                Waited::Exited(_) => {}
                Waited::Deadline => break,
                Waited::StopNow => now = true,
            }
        }
        if now {
            log::warn!("stopping now: in-flight requests were cut off");
            // Exit 1 either way (requests were cut off); the writer logged what it could
            // not write, if anything.
            self.stop_writer(app, true);
            return Ok(1);
        }
        let drained = cores_left == 0 && !admin_running;
        if !drained {
            let open = crate::platform::metrics::METRICS.connections_open.get();
            log::error!(
                "shutdown deadline of {:?} passed with {open} connection(s) still open; exiting anyway",
                app.config.shutdown_timeout
            );
        }
        let written = self.stop_writer(app, false);
        if drained && written {
            log::info!("stopped cleanly");
            Ok(0)
        } else {
            Ok(1)
        }
    }

    /// Waits for a thread's exit, the drain deadline or a second signal.
    fn wait(&self, deadline: Instant, now: &Receiver<()>) -> Waited {
        crossbeam_channel::select! {
            recv(self.exited) -> role => role.map_or(Waited::Deadline, Waited::Exited),
            recv(now) -> _ => Waited::StopNow,
            default(deadline.saturating_duration_since(Instant::now())) => Waited::Deadline,
        }
    }

    /// Lets a running deploy finish (it needs the writer) and removes the temp files of
    /// uploads still arriving, then lets the writer finish its queue, checkpoint and
    /// close; false if anything acknowledged could not be written. `now` (a second
    /// signal): the deploy is not waited for (the writer, stopped, refuses its apply) and
    /// the writer commits the acknowledged events without running queued jobs.
    fn stop_writer(self, app: &App, now: bool) -> bool {
        if now {
            app.writer.stop_now();
        } else {
            crate::deploy::service::stop_worker(&app.deploy, self.deploy_worker);
        }
        crate::deploy::service::remove_own_leftovers(&app.config.probe.limits.temp_dir);
        if !now {
            // Scripts still running (their clients may have gone) finish, and their writes
            // commit, before the writer stops.
            app.apps.stop();
        }
        app.writer.stop();
        match self.writer.join() {
            Ok(report) => {
                log::info!("database closed: {report}");
                report.all_written()
            }
            Err(e) => {
                log::error!("closing the database: {e}");
                false
            }
        }
    }

    fn wake_all(&self) {
        for mailbox in &self.core_mailboxes {
            mailbox.wake();
        }
        self.admin_mailbox.wake();
    }
}
