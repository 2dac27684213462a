//! Memory per cached JavaScript runtime (issue #14: target ≤ 2 MiB each), the figure that
//! sizes how many sites' runtimes a worker may keep: N sandboxes, each with a small handler
//! evaluated once, then the process's resident memory per sandbox and QuickJS' own count.
//!
//! Usage: `JS_BENCH=1 cargo bench --bench js_runtimes` (`JS_BENCH_RUNTIMES`, default 100).
//! Without `JS_BENCH=1` (as `cargo test --all-targets` runs every bench target) it prints the
//! usage and exits 0 at once.

use fazt::serverless::sandbox::{Limits, Sandbox};
use std::time::Duration;

const HANDLER: &str = r#"
globalThis.handler = function (request) {
  const items = [];
  for (let i = 0; i < 100; i++) items.push({ id: i, name: "item " + i });
  return { status: 200, body: { path: request.path, count: items.length } };
};
JSON.stringify(handler({ path: "/api/hello" }))
"#;

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
    let warm = Sandbox::new(limits).unwrap();
    warm.eval_json(HANDLER).unwrap();
    let before = rss_bytes();
    let sandboxes: Vec<Sandbox> = (0..n)
        .map(|_| {
            let sandbox = Sandbox::new(limits).unwrap();
            sandbox.eval_json(HANDLER).unwrap();
            sandbox
        })
        .collect();
    let after = rss_bytes();
    let quickjs: i64 = sandboxes.iter().map(Sandbox::memory_used).sum();
    let per = (after.saturating_sub(before)) / n as u64;
    println!("js runtimes: {n} sandboxes, each with a small handler evaluated once");
    println!(
        "  resident memory {:.1} MiB -> {:.1} MiB: {per} B per runtime (target <= 2 MiB = 2097152 B)",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    println!("  QuickJS' own count: {} B per runtime", quickjs / n as i64);
}
