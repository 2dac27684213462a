//! `SiteCache::get` throughput from 1 and 2 threads on a warm cache (DESIGN §1: "sharded if
//! contention shows in benchmarks").
//!
//! Usage: `CACHE_BENCH=1 cargo bench --bench cache_contention`
//!   Optional: `CACHE_BENCH_SECS` (default 2) seconds per run, `CACHE_BENCH_THREADS` (default
//!   "1,2") thread counts to measure, `CACHE_BENCH_WORK_NS` (default 2000) for `get+work`.
//!
//! Without `CACHE_BENCH=1` (as `cargo test --all-targets` / `cargo bench` run every bench target
//! with `harness = false`) it prints the usage and exits 0 at once.
//!
//! Setup: 2,000 files of 4 KiB across 4 deployments, all cached (the limit holds them with room to
//! spare, so every lookup hits), in a cache of 1 (`SiteCache::new`), 2 and 8 shards. Each thread loops over the keys in its own pseudo-random
//! order, calling `get_path` (the serving path: no key allocation), touching the first body byte
//! so the `Arc` is really used, then dropping the `Arc` — the whole hit path a core thread runs.
//! Modes:
//! - `get_path`: back-to-back lookups, the worst case for contention.
//! - `get`: the same with a `CacheKey` built per lookup (an `Arc<str>` allocation, outside the
//!   lock).
//! - `get+work`: `CACHE_BENCH_WORK_NS` of pure computation between lookups, a stand-in for the
//!   rest of a request (parse, route, write to the socket). The serving loop does ~115k
//!   requests/s per core, ~8.7 µs each, so 2 µs is still a lookup rate several times higher than a
//!   saturated server's.
//! - `work only`: the same computation without lookups — the control for how far 2 threads can
//!   scale on this machine at this moment (other load, SMT siblings, frequency).

use fazt::hosting::cache::{CacheKey, CachedFile, SiteCache};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: CACHE_BENCH=1 cargo bench --bench cache_contention \
                     [CACHE_BENCH_SECS=2] [CACHE_BENCH_THREADS=1,2] [CACHE_BENCH_WORK_NS=2000]";
const DEPLOYMENTS: i64 = 4;
const FILES_PER_DEPLOYMENT: usize = 500;
const BODY: usize = 4096;
const LIMIT: u64 = 64 << 20;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    if std::env::var("CACHE_BENCH").as_deref() != Ok("1") {
        println!("{USAGE}");
        return;
    }
    let secs: f64 = env_or("CACHE_BENCH_SECS", 2.0);
    let work_ns: f64 = env_or("CACHE_BENCH_WORK_NS", 2000.0);
    let threads: Vec<usize> = std::env::var("CACHE_BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();
    let cpus = thread::available_parallelism().map_or(1, |n| n.get());
    let work_iters = calibrate(work_ns);

    let mut keys = Vec::new();
    for d in 0..DEPLOYMENTS {
        for i in 0..FILES_PER_DEPLOYMENT {
            keys.push((d, format!("/assets/{i}/file-{i}.js")));
        }
    }
    let keys = Arc::new(keys);
    let warm = |shards: usize| -> Arc<SiteCache> {
        let cache = SiteCache::with_shards(LIMIT, LIMIT / 16, shards);
        for (i, (d, path)) in keys.iter().enumerate() {
            let body: Arc<[u8]> = vec![(i % 251) as u8; BODY].into();
            let file = Arc::new(CachedFile::new(body, [0; 32], "text/javascript"));
            if !cache.insert(CacheKey::new(*d, path.as_str()), file) {
                eprintln!("setup: insert refused");
                std::process::exit(1);
            }
        }
        Arc::new(cache)
    };
    let caches = [warm(1), warm(2), warm(8)];
    let s = caches[0].stats();
    println!(
        "cache_contention: {} entries, {} bytes used, {secs}s per run, {cpus} CPUs available",
        s.entries, s.bytes_used
    );

    let runs = [
        (Mode::GetPath, 0),
        (Mode::GetPath, 1),
        (Mode::GetPath, 2),
        (Mode::GetKey, 0),
        (Mode::GetKey, 1),
        (Mode::Work(work_iters), 0),
        (Mode::Work(work_iters), 1),
        (Mode::SpinOnly(work_iters), 0),
    ];
    for (mode, c) in runs {
        let cache = &caches[c];
        let mut base = None;
        for &n in &threads {
            let per_sec = run(cache, &keys, n, secs, mode);
            let base_rate = *base.get_or_insert(per_sec);
            println!(
                "{:<9} shards={} threads={n}  {:>7.2} M/s total  {:>6.2} M/s per thread  \
                 ({:.2}x of 1 thread, {:.0} ns per op per thread)",
                mode.name(),
                cache.shard_count(),
                per_sec / 1e6,
                per_sec / 1e6 / n as f64,
                per_sec / base_rate,
                1e9 * n as f64 / per_sec
            );
        }
    }
    let (hits, misses) = caches
        .iter()
        .map(|c| c.stats())
        .fold((0, 0), |(h, m), s| (h + s.hits, m + s.misses));
    println!("hits={hits} misses={misses}");
}

#[derive(Clone, Copy)]
enum Mode {
    GetPath,
    GetKey,
    /// `get_path` plus this many iterations of `spin` per lookup.
    Work(u64),
    /// The same `spin` without any lookup.
    SpinOnly(u64),
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::GetPath => "get_path",
            Mode::GetKey => "get",
            Mode::Work(_) => "get+work",
            Mode::SpinOnly(_) => "work only",
        }
    }
}

/// Pure computation standing in for the rest of a request; no memory shared between threads.
fn spin(iters: u64, mut x: u64) -> u64 {
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    std::hint::black_box(x)
}

/// Iterations of `spin` that take about `ns` nanoseconds on this machine.
fn calibrate(ns: f64) -> u64 {
    let iters = 10_000_000;
    let t = Instant::now();
    spin(iters, 1);
    let per_iter = t.elapsed().as_nanos() as f64 / iters as f64;
    (ns / per_iter.max(0.01)) as u64
}

/// Operations per second over all `threads` threads.
fn run(
    cache: &Arc<SiteCache>,
    keys: &Arc<Vec<(i64, String)>>,
    threads: usize,
    secs: f64,
    mode: Mode,
) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let start = Arc::new(Barrier::new(threads + 1));
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, keys, stop, start) = (
                Arc::clone(cache),
                Arc::clone(keys),
                Arc::clone(&stop),
                Arc::clone(&start),
            );
            thread::spawn(move || {
                let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1);
                let mut n = 0u64;
                let mut sink = 0u64;
                start.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..256 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let (d, path) = &keys[(x % keys.len() as u64) as usize];
                        let hit = match mode {
                            Mode::GetPath => cache.get_path(*d, path),
                            Mode::GetKey => cache.get(&CacheKey::new(*d, path.as_str())),
                            Mode::Work(iters) => {
                                sink = sink.wrapping_add(spin(iters, x));
                                cache.get_path(*d, path)
                            }
                            Mode::SpinOnly(iters) => {
                                sink = sink.wrapping_add(spin(iters, x));
                                None
                            }
                        };
                        if let Some(f) = hit {
                            sink = sink.wrapping_add(u64::from(f.body[0]));
                        }
                    }
                    n += 256;
                }
                std::hint::black_box(sink);
                n
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    total as f64 / began.elapsed().as_secs_f64()
}
