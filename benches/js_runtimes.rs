//! Memory per cached JavaScript runtime (issue #14: target ≤ 2 MiB each), the figure that
//! sizes how many sites' runtimes a worker may keep: N sites' sandboxes, each with a
//! realistic handler (request, respond, fazt.app.kv through an in-memory host) loaded from
//! the shared bytecode cache and run once, then the process's resident memory per sandbox
//! and QuickJS' own count; then the runtime's own cost per invocation on one warm sandbox.
//!
//! Usage: `JS_BENCH=1 cargo bench --bench js_runtimes` (`JS_BENCH_RUNTIMES`, default 100).
//! Without `JS_BENCH=1` (as `cargo test --all-targets` runs every bench target) it prints the
//! usage and exits 0 at once.

use fazt::serverless::runtime::bench::{warm_invocations, warm_runtimes};
use fazt::serverless::sandbox::Limits;
use std::time::{Duration, Instant};

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    if std::env::var("JS_BENCH").as_deref() != Ok("1") {
        println!("usage: JS_BENCH=1 cargo bench --bench js_runtimes   (JS_BENCH_RUNTIMES=100)");
        return;
    }
    let n: usize = std::env::var("JS_BENCH_RUNTIMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let limits = Limits {
        timeout: Duration::from_secs(1),
        memory: 32 << 20,
        stack: 256 << 10,
    };
    // One first, so the engine's one-time costs are not charged to the N.
    let (warm, _) = warm_runtimes(1, limits).expect("a runtime");
    let before = rss_bytes();
    let started = Instant::now();
    let (runtimes, answer) = warm_runtimes(n, limits).expect("the runtimes");
    let took = started.elapsed();
    let after = rss_bytes();
    let per = (after.saturating_sub(before)) / n as u64;
    println!("js runtimes: {n} sites' sandboxes, each with the handler loaded and run once");
    println!("  last answer: {answer}");
    println!(
        "  resident memory {:.1} MiB -> {:.1} MiB: {per} B per runtime (target <= 2 MiB = 2097152 B)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    println!(
        "  QuickJS' own count: {} B per runtime",
        runtimes.quickjs_bytes() / n as i64
    );
    println!(
        "  made, loaded and first run: {:.0} us per runtime",
        took.as_secs_f64() * 1e6 / n as f64
    );
    drop(warm);
    let calls = 20_000;
    let took = warm_invocations(calls, limits).expect("the invocations");
    println!(
        "  one warm sandbox, {calls} invocations of the handler: {:.1} us each ({:.0}/s on one worker)",
        took.as_secs_f64() * 1e6 / calls as f64,
        calls as f64 / took.as_secs_f64()
    );
}
