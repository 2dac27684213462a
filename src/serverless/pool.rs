//! The JS worker pool (DESIGN D7): a fixed number of worker threads, the only threads that
//! run JavaScript, fed through one bounded queue. A caller never waits: `try_run` either
//! queues the invocation (its answer comes through the callback, on the worker thread) or
//! says the queue is full, which the server answers with 503 at once. Each worker keeps the
//! sandboxes of the sites it ran, at most `runtimes_per_worker` (least recently used goes),
//! and a site's sandbox is made anew when its code changes (a new deployment).

use super::sandbox::{Limits, RunError, Sandbox};
use clru::CLruCache;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use std::num::NonZeroUsize;
use std::sync::Arc;

/// One invocation: run `code` of `site` (its version named by `code_id`, e.g. the
/// deployment) and evaluate `call` in the same context; `done` gets the JSON result.
pub struct Invocation {
    pub site: String,
    pub code_id: u64,
    pub code: Arc<str>,
    pub call: String,
    pub done: Box<dyn FnOnce(Result<String, RunError>) + Send>,
}

/// How the pool is sized.
#[derive(Clone, Copy, Debug)]
pub struct PoolConfig {
    pub workers: usize,
    /// Invocations waiting for a worker before more are refused.
    pub queue: usize,
    pub runtimes_per_worker: usize,
    pub limits: Limits,
}

/// The queue was full: the caller answers 503 with `Retry-After`.
#[derive(Debug)]
pub struct Full(pub Invocation);

/// The handle the server keeps; the workers end when it is dropped.
pub struct Pool {
    queue: Sender<Invocation>,
}

impl Pool {
    pub fn start(config: PoolConfig) -> std::io::Result<Pool> {
        let (queue, inbox) = crossbeam_channel::bounded(config.queue);
        for i in 0..config.workers.max(1) {
            let inbox = inbox.clone();
            std::thread::Builder::new()
                .name(format!("fazt-js-{i}"))
                .spawn(move || Worker::new(config).run(&inbox))?;
        }
        Ok(Pool { queue })
    }

    /// Queues `invocation`, or hands it back when the queue is full.
    pub fn try_run(&self, invocation: Invocation) -> Result<(), Full> {
        self.queue.try_send(invocation).map_err(|e| match e {
            TrySendError::Full(i) | TrySendError::Disconnected(i) => Full(i),
        })
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("site", &self.site)
            .field("code_id", &self.code_id)
            .finish_non_exhaustive()
    }
}

/// A site's sandbox with its code loaded, and which version that code is.
struct Loaded {
    code_id: u64,
    sandbox: Sandbox,
}

struct Worker {
    limits: Limits,
    sites: CLruCache<String, Loaded>,
}

impl Worker {
    fn new(config: PoolConfig) -> Worker {
        let capacity = NonZeroUsize::new(config.runtimes_per_worker.max(1)).expect("at least 1");
        Worker {
            limits: config.limits,
            sites: CLruCache::new(capacity),
        }
    }

    fn run(mut self, inbox: &Receiver<Invocation>) {
        for invocation in inbox {
            let Invocation {
                site,
                code_id,
                code,
                call,
                done,
            } = invocation;
            let outcome = self.invoke(site, code_id, &code, &call);
            done(outcome);
        }
    }

    fn invoke(
        &mut self,
        site: String,
        code_id: u64,
        code: &str,
        call: &str,
    ) -> Result<String, RunError> {
        let current = self.sites.get(&site).is_some_and(|l| l.code_id == code_id);
        if !current {
            // A new site here, or its code changed: a fresh context, so nothing of the old
            // code (or of another site) survives into the new one.
            let sandbox = Sandbox::new(self.limits)?;
            sandbox.eval_json(code)?;
            self.sites.put(site.clone(), Loaded { code_id, sandbox });
        }
        let loaded = self
            .sites
            .get(&site)
            .ok_or_else(|| RunError::Engine("the site's runtime went away".into()))?;
        let outcome = loaded.sandbox.eval_json(call);
        if matches!(outcome, Err(RunError::Memory | RunError::Timeout)) {
            // A runtime that hit a hard limit may hold half-built state: the next call gets a
            // fresh one.
            self.sites.pop(&site);
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(300),
        memory: 16 << 20,
        stack: 256 << 10,
    };

    fn pool(workers: usize, queue: usize, runtimes: usize) -> Pool {
        pool_with(workers, queue, runtimes, LIMITS)
    }

    fn pool_with(workers: usize, queue: usize, runtimes: usize, limits: Limits) -> Pool {
        Pool::start(PoolConfig {
            workers,
            queue,
            runtimes_per_worker: runtimes,
            limits,
        })
        .unwrap()
    }

    /// Runs `call` on `site`'s `code` and waits for the answer.
    fn run(
        pool: &Pool,
        site: &str,
        code_id: u64,
        code: &str,
        call: &str,
    ) -> Result<String, RunError> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        pool.try_run(Invocation {
            site: site.into(),
            code_id,
            code: code.into(),
            call: call.into(),
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        })
        .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    const COUNTER: &str = "globalThis.n = 0; globalThis.hit = () => ++n;";

    /// An invocation that loops until its deadline; its outcome goes to `tx`.
    fn spin(tx: Sender<Result<String, RunError>>) -> Invocation {
        Invocation {
            site: "spin".into(),
            code_id: 1,
            code: "globalThis.spin = () => { for (;;) {} }".into(),
            call: "spin()".into(),
            done: Box::new(move |r| {
                let _ = tx.send(r);
            }),
        }
    }

    #[test]
    fn a_sites_runtime_is_reused_until_its_code_changes() {
        let pool = pool(1, 8, 4);
        assert_eq!(run(&pool, "blog", 1, COUNTER, "hit()").unwrap(), "1");
        assert_eq!(
            run(&pool, "blog", 1, COUNTER, "hit()").unwrap(),
            "2",
            "kept"
        );
        assert_eq!(
            run(&pool, "blog", 2, COUNTER, "hit()").unwrap(),
            "1",
            "a new deployment starts afresh"
        );
        assert_eq!(
            run(&pool, "shop", 1, "globalThis.hit = () => typeof n", "hit()").unwrap(),
            r#""undefined""#,
            "sites share nothing"
        );
    }

    #[test]
    fn the_least_recently_used_runtime_goes_past_the_bound() {
        let pool = pool(1, 8, 2);
        for site in ["a", "b"] {
            assert_eq!(run(&pool, site, 1, COUNTER, "hit()").unwrap(), "1");
        }
        assert_eq!(run(&pool, "a", 1, COUNTER, "hit()").unwrap(), "2");
        assert_eq!(run(&pool, "c", 1, COUNTER, "hit()").unwrap(), "1", "b goes");
        assert_eq!(
            run(&pool, "a", 1, COUNTER, "hit()").unwrap(),
            "3",
            "a stayed"
        );
        assert_eq!(
            run(&pool, "b", 1, COUNTER, "hit()").unwrap(),
            "1",
            "b was made again"
        );
    }

    #[test]
    fn an_endless_loop_holds_one_worker_while_the_other_serves() {
        // A long deadline: the other worker's answer must come while the loop still runs,
        // however slow the machine is.
        let limits = Limits {
            timeout: Duration::from_secs(3),
            ..LIMITS
        };
        let pool = pool_with(2, 8, 4, limits);
        let (tx, looped) = crossbeam_channel::bounded(1);
        pool.try_run(spin(tx)).unwrap();
        assert_eq!(run(&pool, "blog", 1, COUNTER, "hit()").unwrap(), "1");
        assert!(looped.is_empty(), "served while the loop still ran");
        assert_eq!(
            looped.recv_timeout(Duration::from_secs(10)).unwrap(),
            Err(RunError::Timeout)
        );
        // The timed-out runtime is dropped: the site's next call starts afresh and works.
        assert_eq!(
            run(&pool, "spin", 1, "globalThis.spin = () => 7", "spin()").unwrap(),
            "7"
        );
    }

    #[test]
    fn a_full_queue_hands_the_invocation_back_at_once() {
        let pool = pool(1, 1, 4);
        let (tx, rx) = crossbeam_channel::unbounded();
        pool.try_run(spin(tx.clone())).unwrap();
        // Once the worker has taken the first (it then loops until its deadline), the
        // queue's one slot takes the second, and the third is refused.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut second = spin(tx.clone());
        while let Err(Full(back)) = pool.try_run(second) {
            assert!(Instant::now() < deadline, "the worker never took the first");
            std::thread::sleep(Duration::from_millis(1));
            second = back;
        }
        let refused = pool.try_run(spin(tx)).expect_err("the queue is full");
        assert_eq!(refused.0.site, "spin", "handed back to answer 503");
        for _ in 0..2 {
            let _ = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        }
    }
}
