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
use parking_lot::{Mutex, RwLock};
use std::num::NonZeroUsize;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How far below the other threads the workers run (nice): when scripts keep every CPU
/// busy, the core threads (files, analytics, admin) still get the CPU first.
const WORKER_NICE: i32 = 10;

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
pub(crate) struct Full(
    // Handed back whole, not dropped inside the pool; the server answers 503 without it.
    #[cfg_attr(not(test), allow(dead_code))] pub Invocation,
);

/// The handle the server keeps, shared by the core threads.
pub(crate) struct Pool {
    /// `None` once stopped. A read lock on the request path: uncontended but for `stop`.
    queue: RwLock<Option<Sender<Invocation>>>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    #[cfg(test)]
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
            queue: RwLock::new(Some(queue)),
            workers: Mutex::new(workers),
            #[cfg(test)]
            bytecode,
        })
    }

    /// Queues `invocation`, or hands it back when the queue is full.
    // Handed back by value, so a refusal costs no allocation on the core thread.
    #[allow(clippy::result_large_err)]
    pub(crate) fn try_run(&self, invocation: Invocation) -> Result<(), Full> {
        let queue = self.queue.read();
        let Some(queue) = queue.as_ref() else {
            return Err(Full(invocation));
        };
        JS_STATS.queued().inc();
        queue.try_send(invocation).map_err(|e| {
            JS_STATS.queued().dec();
            match e {
                TrySendError::Full(i) | TrySendError::Disconnected(i) => Full(i),
            }
        })
    }

    /// Invocations waiting for a worker.
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.queue.read().as_ref().map_or(0, Sender::len)
    }

    /// Closes the queue (later invocations are handed back); the workers finish what is
    /// queued and exit; joins them (the drain). Idempotent.
    pub(crate) fn stop(&self) {
        self.queue.write().take();
        for worker in std::mem::take(&mut *self.workers.lock()) {
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
        if let Err(e) = crate::platform::sys::lower_thread_priority(WORKER_NICE) {
            log::warn!("a JS worker could not lower its priority: {e}");
        }
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
        if received.elapsed() >= self.limits.timeout {
            // Its client has waited a whole time limit already: busy, at once, rather than
            // a run that may take as long again (1,000 endless loops end at their deadline
            // or are shed, never queued for minutes).
            JS_STATS.finished(Outcome::Shed, received.elapsed());
            done(Err(RunError::Expired));
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serverless::runtime::fake::{FakeServices, Memory};
    use crate::serverless::runtime::Style;
    use std::sync::atomic::Ordering;

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(300),
        memory: 16 << 20,
        stack: 256 << 10,
    };

    fn pool(workers: usize, queue: usize, runtimes: usize) -> (Pool, Arc<Memory>) {
        pool_with(workers, queue, runtimes, LIMITS)
    }

    fn pool_with(
        workers: usize,
        queue: usize,
        runtimes: usize,
        limits: Limits,
    ) -> (Pool, Arc<Memory>) {
        let memory = Arc::new(Memory::default());
        let config = PoolConfig {
            workers,
            queue,
            runtimes_per_worker: runtimes,
            limits,
            idle_every: Duration::from_millis(50),
        };
        let services = Arc::new(FakeServices(Arc::clone(&memory)));
        (Pool::start(config, services).unwrap(), memory)
    }

    type Answer = Result<JsResponse, RunError>;

    /// An invocation of `source` on `site`; its answer goes to `tx`.
    fn invocation(
        memory: &Memory,
        site: &str,
        source: &str,
        tx: crossbeam_channel::Sender<Answer>,
    ) -> Invocation {
        Invocation {
            site: site.into(),
            code: memory.code(Style::Api, source),
            request: JsRequest {
                method: "GET".into(),
                path: "/api".into(),
                ..JsRequest::default()
            },
            received: Instant::now(),
            done: Box::new(move |answer| {
                let _ = tx.send(answer);
            }),
        }
    }

    /// Runs `source` on `site` and waits for the body (or the error).
    fn run(pool: &Pool, memory: &Memory, site: &str, source: &str) -> Result<String, RunError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.try_run(invocation(memory, site, source, tx)).unwrap();
        let answer = rx.recv_timeout(Duration::from_secs(10)).unwrap()?;
        Ok(String::from_utf8(answer.body).unwrap())
    }

    const COUNTER: &str = "globalThis.n = (globalThis.n || 0) + 1; return n;";
    const SPIN: &str = "for (;;) {}";

    #[test]
    fn a_sites_runtime_is_reused_until_its_code_changes_and_sites_share_nothing() {
        let (pool, memory) = pool(1, 8, 4);
        assert_eq!(run(&pool, &memory, "blog", COUNTER).unwrap(), "1");
        assert_eq!(run(&pool, &memory, "blog", COUNTER).unwrap(), "2", "kept");
        let changed = format!("{COUNTER} // v2");
        assert_eq!(
            run(&pool, &memory, "blog", &changed).unwrap(),
            "1",
            "a new deployment starts afresh"
        );
        assert_eq!(
            run(&pool, &memory, "shop", "return [typeof n];").unwrap(),
            r#"["undefined"]"#,
            "sites share nothing"
        );
        assert_eq!(
            run(&pool, &memory, "shop", COUNTER).unwrap(),
            "1",
            "the same code on another site: its own runtime"
        );
        pool.stop();
        assert_eq!(memory.starts.load(Ordering::Relaxed), 1);
        assert!(memory.idles.load(Ordering::Relaxed) >= 5, "after each");
    }

    #[test]
    fn the_least_recently_used_runtime_goes_past_the_bound() {
        let (pool, memory) = pool(1, 8, 2);
        for site in ["a", "b"] {
            assert_eq!(run(&pool, &memory, site, COUNTER).unwrap(), "1");
        }
        assert_eq!(run(&pool, &memory, "a", COUNTER).unwrap(), "2");
        assert_eq!(run(&pool, &memory, "c", COUNTER).unwrap(), "1", "b goes");
        assert_eq!(run(&pool, &memory, "a", COUNTER).unwrap(), "3", "a stayed");
        assert_eq!(
            run(&pool, &memory, "b", COUNTER).unwrap(),
            "1",
            "b was made again"
        );
    }

    #[test]
    fn a_second_worker_loads_the_cached_bytecode() {
        let (pool, memory) = pool(2, 8, 4);
        // The first holds its worker ~150 ms, so the second goes to the other worker.
        let busy = "const end = Date.now() + 150; while (Date.now() < end) {} return 1;";
        let (tx, rx) = crossbeam_channel::unbounded();
        pool.try_run(invocation(&memory, "blog", busy, tx.clone()))
            .unwrap();
        std::thread::sleep(Duration::from_millis(30));
        pool.try_run(invocation(&memory, "blog", busy, tx)).unwrap();
        for _ in 0..2 {
            let answer = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
            assert_eq!(answer.body, b"1");
        }
        assert_eq!(pool.compiles(), 1, "compiled once");
        assert_eq!(memory.loads.load(Ordering::Relaxed), 1, "read once");
        assert!(JS_STATS.runtimes().get() >= 2, "a sandbox on each worker");
    }

    #[test]
    fn hard_limits_map_as_before_and_the_worker_survives() {
        let (pool, memory) = pool(1, 8, 4);
        let timeouts = JS_STATS.outcome_count(Outcome::Timeout);
        assert_eq!(run(&pool, &memory, "s", SPIN), Err(RunError::Timeout));
        assert!(JS_STATS.outcome_count(Outcome::Timeout) > timeouts);
        let bomb = "let a = []; for (;;) a.push(new Array(100000).fill(1));";
        assert_eq!(run(&pool, &memory, "s", bomb), Err(RunError::Memory));
        let deep = "function f(n) { return f(n + 1) + 1 } return f(0);";
        assert_eq!(run(&pool, &memory, "s", deep), Err(RunError::Stack));
        assert_eq!(
            run(&pool, &memory, "s", "return 'alive';").unwrap(),
            "alive"
        );
        let logs = memory.logs_of("s");
        assert!(
            logs[0].starts_with("error: GET /api: the script ran past its time limit"),
            "{logs:?}"
        );
    }

    #[test]
    fn an_endless_loop_holds_one_worker_while_the_other_serves() {
        // A long deadline: the other worker's answer must come while the loop still runs,
        // however slow the machine is.
        let limits = Limits {
            timeout: Duration::from_millis(1500),
            ..LIMITS
        };
        let (pool, memory) = pool_with(2, 8, 4, limits);
        let (tx, looped) = crossbeam_channel::bounded(1);
        pool.try_run(invocation(&memory, "spin", SPIN, tx)).unwrap();
        assert_eq!(run(&pool, &memory, "blog", COUNTER).unwrap(), "1");
        assert!(looped.is_empty(), "served while the loop still ran");
        let answer = looped.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(answer, Err(RunError::Timeout));
    }

    #[test]
    fn a_full_queue_hands_the_invocation_back_at_once() {
        let (pool, memory) = pool(1, 1, 4);
        let (tx, rx) = crossbeam_channel::unbounded();
        pool.try_run(invocation(&memory, "spin", SPIN, tx.clone()))
            .unwrap();
        // Once the worker has taken the first (it then loops until its deadline), the
        // queue's one slot takes the second, and the third is refused.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut second = invocation(&memory, "spin", SPIN, tx.clone());
        while let Err(Full(back)) = pool.try_run(second) {
            assert!(Instant::now() < deadline, "the worker never took the first");
            std::thread::sleep(Duration::from_millis(1));
            second = back;
        }
        assert_eq!(pool.queued(), 1);
        let refused = pool
            .try_run(invocation(&memory, "spin", SPIN, tx))
            .expect_err("the queue is full");
        assert_eq!(refused.0.site, "spin", "handed back to answer 503");
        for _ in 0..2 {
            let _ = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }

    #[test]
    fn a_panic_in_a_host_call_is_an_error_and_the_worker_goes_on() {
        let (pool, memory) = pool(1, 8, 4);
        let script = "globalThis.n = (globalThis.n || 0) + 1; if (request.path === '/api') fazt.app.kv.get('panic'); return n;";
        assert_eq!(
            run(&pool, &memory, "blog", script),
            Err(RunError::Engine("the invocation panicked".into()))
        );
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut next = invocation(&memory, "blog", script, tx);
        next.request.path = "/api/ok".into();
        pool.try_run(next).unwrap();
        let answer = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        assert_eq!(answer.body, b"1", "the same worker, a fresh sandbox");
    }

    #[test]
    fn an_idle_worker_calls_idle_every_so_often() {
        let (pool, memory) = pool(1, 8, 4);
        let deadline = Instant::now() + Duration::from_secs(5);
        // idle_every is 50 ms: with no work at all, idle comes round again and again.
        while memory.idles.load(Ordering::Relaxed) < 3 {
            assert!(Instant::now() < deadline, "idle was not called");
            std::thread::sleep(Duration::from_millis(10));
        }
        pool.stop();
    }

    #[test]
    fn stop_finishes_the_queued_work() {
        let (pool, memory) = pool(1, 16, 4);
        let (tx, rx) = crossbeam_channel::unbounded();
        let slow = "const end = Date.now() + 20; while (Date.now() < end) {} fazt.app.kv.set('k' + Date.now(), 1); return 1;";
        for _ in 0..6 {
            pool.try_run(invocation(&memory, "blog", slow, tx.clone()))
                .unwrap();
        }
        pool.stop();
        let answers: Vec<Answer> = rx.try_iter().collect();
        assert_eq!(
            answers.len(),
            6,
            "every queued one answered before stop returned"
        );
        assert!(answers
            .iter()
            .all(|a| a.as_ref().is_ok_and(|r| r.body == b"1")));
    }
}
