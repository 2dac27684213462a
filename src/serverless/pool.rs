//! The JS worker pool (DESIGN D7): a fixed number of worker threads, the only threads that
//! run JavaScript, fed through one bounded queue. A caller never waits: `try_run` either
//! queues the invocation (its answer comes through the callback, on the worker thread) or
//! hands it back when the queue is full, which the server answers with 503 at once. Each
//! worker keeps the sandboxes of the sites it ran, at most `runtimes_per_worker` (least
//! recently used goes); a site's sandbox is made anew when its code changes (a new
//! deployment), and dropped after it hit the time or memory limit. Compiled code is shared
//! by all workers ([`BytecodeCache`]).

use super::metrics::{Outcome, JS_STATS};
use super::runtime::bytecode::{BytecodeCache, BYTECODE_CACHE_BYTES};
use super::runtime::{App, Code, Host, JsRequest, JsResponse};
use super::sandbox::{Limits, RunError};
use super::store::LogLevel;
use clru::CLruCache;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One request for a site's script.
pub(crate) struct Invocation {
    pub site: String,
    pub code: Code,
    pub request: JsRequest,
    /// When the core thread handed it over (queue wait counts in the duration metric).
    pub received: Instant,
    /// Gets the answer, on the worker thread.
    pub done: Box<dyn FnOnce(Result<JsResponse, RunError>) + Send>,
}

/// What the pool needs from the server (which implements it over the database).
pub(crate) trait Services: Send + Sync + 'static {
    /// Once on each worker thread before it takes work (the server installs its read
    /// connection).
    fn start_worker(&self);
    /// The source of the code with this content hash (the deployment's file).
    fn load_code(&self, code: &Code) -> Result<String, String>;
    /// What `site`'s script reaches outside the sandbox during one invocation.
    fn host(&self, site: &str) -> Box<dyn Host>;
    /// After each invocation and whenever the worker waited `idle_every` for work (flush
    /// buffered logs).
    fn idle(&self) {}
}

/// How the pool is sized.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolConfig {
    pub workers: usize,
    /// Invocations waiting for a worker before more are refused.
    pub queue: usize,
    pub runtimes_per_worker: usize,
    pub limits: Limits,
    /// How long a worker waits for work before calling [`Services::idle`].
    pub idle_every: Duration,
}

/// The queue was full (or the pool stopped): the caller answers 503 with `Retry-After`.
#[derive(Debug)]
pub(crate) struct Full(pub Invocation);

/// The handle the server keeps.
pub(crate) struct Pool {
    queue: Sender<Invocation>,
    workers: Vec<JoinHandle<()>>,
    bytecode: Arc<BytecodeCache>,
}

impl Pool {
    pub(crate) fn start(config: PoolConfig, services: Arc<dyn Services>) -> std::io::Result<Pool> {
        let (queue, inbox) = crossbeam_channel::bounded(config.queue);
        let bytecode = Arc::new(BytecodeCache::new(BYTECODE_CACHE_BYTES));
        let mut workers = Vec::new();
        for i in 0..config.workers.max(1) {
            let (services, bytecode) = (Arc::clone(&services), Arc::clone(&bytecode));
            let inbox = inbox.clone();
            // Sandboxes never leave the thread that made them: the worker is made there.
            workers.push(
                std::thread::Builder::new()
                    .name(format!("fazt-js-{i}"))
                    .spawn(move || Worker::new(config, services, bytecode).run(&inbox))?,
            );
        }
        Ok(Pool {
            queue,
            workers,
            bytecode,
        })
    }

    /// Queues `invocation`, or hands it back when the queue is full.
    pub(crate) fn try_run(&self, invocation: Invocation) -> Result<(), Full> {
        JS_STATS.queued().inc();
        self.queue.try_send(invocation).map_err(|e| {
            JS_STATS.queued().dec();
            match e {
                TrySendError::Full(i) | TrySendError::Disconnected(i) => Full(i),
            }
        })
    }

    /// Invocations waiting for a worker.
    pub(crate) fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Closes the queue; the workers finish what is queued and exit; joins them (the drain).
    pub(crate) fn stop(self) {
        let Pool { queue, workers, .. } = self;
        drop(queue);
        for worker in workers {
            let _ = worker.join();
        }
    }

    /// Files compiled so far (for tests: a second worker loads the cached bytecode).
    #[cfg(test)]
    pub(crate) fn compiles(&self) -> u64 {
        self.bytecode.compiles()
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("site", &self.site)
            .field("method", &self.request.method)
            .field("path", &self.request.path)
            .finish_non_exhaustive()
    }
}

struct Worker {
    limits: Limits,
    idle_every: Duration,
    services: Arc<dyn Services>,
    bytecode: Arc<BytecodeCache>,
    sites: CLruCache<String, App>,
}

impl Worker {
    fn new(
        config: PoolConfig,
        services: Arc<dyn Services>,
        bytecode: Arc<BytecodeCache>,
    ) -> Worker {
        let capacity = NonZeroUsize::new(config.runtimes_per_worker.max(1)).expect("at least 1");
        Worker {
            limits: config.limits,
            idle_every: config.idle_every,
            services,
            bytecode,
            sites: CLruCache::new(capacity),
        }
    }

    fn run(mut self, inbox: &Receiver<Invocation>) {
        self.services.start_worker();
        loop {
            match inbox.recv_timeout(self.idle_every) {
                Ok(invocation) => {
                    JS_STATS.queued().dec();
                    self.handle(invocation);
                    self.services.idle();
                }
                Err(RecvTimeoutError::Timeout) => self.services.idle(),
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn handle(&mut self, invocation: Invocation) {
        let Invocation {
            site,
            code,
            request,
            received,
            done,
        } = invocation;
        // A panic (in a host call, say) must not take the worker with it; the site's
        // sandbox may be half-way through an invocation, so it goes.
        let outcome =
            std::panic::catch_unwind(AssertUnwindSafe(|| self.invoke(&site, &code, request)))
                .unwrap_or_else(|_| {
                    self.sites.pop(&site);
                    Err(RunError::Engine("the invocation panicked".into()))
                });
        let counted = match &outcome {
            Ok(_) => Outcome::Ok,
            Err(RunError::Timeout) => Outcome::Timeout,
            Err(RunError::Memory) => Outcome::Memory,
            Err(_) => Outcome::Error,
        };
        JS_STATS.finished(counted, received.elapsed());
        done(outcome);
    }

    fn invoke(
        &mut self,
        site: &str,
        code: &Code,
        request: JsRequest,
    ) -> Result<JsResponse, RunError> {
        if !self.sites.peek(site).is_some_and(|app| app.runs(code)) {
            // A new site here, or its code changed: a fresh sandbox, so nothing of the old
            // code (or of another site) survives into the new one. The old one goes first.
            self.sites.pop(site);
            let services = &self.services;
            match App::load(self.limits, code, &self.bytecode, || {
                services.load_code(code)
            }) {
                Ok(app) => {
                    self.sites.put(site.to_string(), app);
                }
                Err(e) => {
                    let line = format!("{} {}: {e}", request.method, request.path);
                    self.services.host(site).log(LogLevel::Error, &line);
                    return Err(e);
                }
            }
        }
        let app = self
            .sites
            .get(site)
            .ok_or_else(|| RunError::Engine("the site's runtime went away".into()))?;
        let outcome = app.invoke(request, self.services.host(site), self.limits);
        if matches!(outcome, Err(RunError::Memory | RunError::Timeout)) {
            // A runtime that hit a hard limit may hold half-built state: the next call gets
            // a fresh one.
            self.sites.pop(site);
        }
        outcome
    }
}
