//! For `benches/js_runtimes.rs` only (a bench sees the crate's public items): N sites'
//! sandboxes, each with a realistic handler loaded from the shared bytecode cache and run
//! once through the in-memory host, as a worker's LRU keeps them.

use super::bytecode::BytecodeCache;
use super::fake::{FakeServices, Memory};
use super::{App, JsRequest, Style};
use crate::serverless::pool::Services;
use crate::serverless::sandbox::Limits;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The handler: reads the request, counts visits in kv, lists a prefix, answers JSON.
pub const HANDLER: &str = r#"
const name = request.query.name || "world";
const seen = (fazt.app.kv.get("visits:" + name) || 0) + 1;
fazt.app.kv.set("visits:" + name, seen);
const recent = fazt.app.kv.list("visits:").map((e) => e.key);
if (request.method !== "GET") return respond(405, { error: "GET only" });
respond(200, { hello: name, seen, recent, path: request.path, agent: request.headers["user-agent"] });
"#;

/// Sandboxes kept alive for measuring.
pub struct WarmRuntimes {
    apps: Vec<App>,
}

impl WarmRuntimes {
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    /// QuickJS' own count of the bytes all of them hold.
    pub fn quickjs_bytes(&self) -> i64 {
        self.apps.iter().map(App::memory_used).sum()
    }
}

/// The time `n` invocations of [`HANDLER`] take on one warm sandbox (in-memory host: the
/// runtime's own cost per request, without HTTP, the queue or SQLite).
pub fn warm_invocations(n: usize, limits: Limits) -> Result<Duration, String> {
    let memory = Arc::new(Memory::default());
    let services = FakeServices(Arc::clone(&memory));
    let code = memory.code(Style::Api, HANDLER);
    let cache = BytecodeCache::new(8 << 20);
    let app = App::load(limits, &code, &cache, || services.load_code(&code))
        .map_err(|e| e.to_string())?;
    let request = JsRequest {
        method: "GET".into(),
        path: "/api/hello".into(),
        query: "name=bench".into(),
        headers: vec![("User-Agent".into(), "bench".into())],
        ..JsRequest::default()
    };
    let started = Instant::now();
    for _ in 0..n {
        app.invoke(request.clone(), services.host("site"), limits)
            .map_err(|e| e.to_string())?;
    }
    Ok(started.elapsed())
}

/// `n` sites' sandboxes with [`HANDLER`] loaded and run once; the answer of the last run.
pub fn warm_runtimes(n: usize, limits: Limits) -> Result<(WarmRuntimes, String), String> {
    let memory = Arc::new(Memory::default());
    let services = FakeServices(Arc::clone(&memory));
    let code = memory.code(Style::Api, HANDLER);
    let cache = BytecodeCache::new(8 << 20);
    let mut apps = Vec::with_capacity(n);
    let mut last = String::new();
    for i in 0..n {
        let app = App::load(limits, &code, &cache, || services.load_code(&code))
            .map_err(|e| e.to_string())?;
        let request = JsRequest {
            method: "GET".into(),
            path: "/api/hello".into(),
            query: format!("name=site{i}"),
            headers: vec![("User-Agent".into(), "bench".into())],
            ..JsRequest::default()
        };
        let host = services.host(&format!("site{i}"));
        let response = app
            .invoke(request, host, limits)
            .map_err(|e| e.to_string())?;
        last = String::from_utf8_lossy(&response.body).into_owned();
        apps.push(app);
    }
    Ok((WarmRuntimes { apps }, last))
}
