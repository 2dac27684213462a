//! Serverless apps in the server (issue #14): the JS worker pool started with what its
//! scripts reach (the database and outbound fetch), and the hand-off of a core thread's
//! request to it. A core thread never runs JavaScript and never waits: it queues the
//! invocation (or answers 503 at once) and gets the answer back by mail.

use super::event_loop::{Mail, Mailbox};
use super::hubs::Hubs;
use crate::db::writer::WriterHandle;
use crate::db::DbError;
use crate::hosting::store::{Script, ScriptKind};
use crate::http::proxies::TrustedProxies;
use crate::http::{Body, Request, Response};
use crate::platform::clock::unix_now_ms as now_ms;
use crate::server::config::JsConfig;
use crate::serverless::fetch::{self, FetchPolicy, FetchRequest, FetchResponse, SystemResolver};
use crate::serverless::metrics as js_metrics;
use crate::serverless::pool::{Full, Invocation, Pool, PoolConfig, Services};
use crate::serverless::runtime::bindings::broadcast_fits;
use crate::serverless::runtime::{Code, Host, JsRequest, JsResponse, Style};
use crate::serverless::sandbox::{Limits, RunError};
use crate::serverless::store::{self as app_store, KvEntry, LogLevel, NewLog, Quotas, StoreError};
use parking_lot::Mutex;
use rusqlite::Connection;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Log lines waiting for their commit before new ones are dropped (a script logging in a
/// tight loop across every worker must not grow memory).
const LOGS_WAITING: usize = 10_000;
/// Buffered log lines are committed once this many wait, or once the oldest is this old.
const LOG_BATCH: usize = 256;
const LOG_DELAY: Duration = Duration::from_millis(250);

/// The pool and what the server needs to hand it requests.
pub struct Apps {
    pool: Pool,
    logs: Arc<LogSink>,
    timeout: Duration,
    memory: u64,
    proxies: TrustedProxies,
}

impl Apps {
    /// Starts the workers; each takes one of `readers` as its read connection.
    pub fn start(
        config: &JsConfig,
        writer: WriterHandle,
        readers: Vec<Connection>,
        proxies: TrustedProxies,
        hubs: Arc<Hubs>,
    ) -> Result<Apps, String> {
        let logs = Arc::new(LogSink::new(writer.clone()));
        let services = Arc::new(DbServices {
            writer,
            readers: Mutex::new(readers),
            quotas: config.quotas,
            fetch: Arc::new(FetchPolicy {
                max_response_bytes: config.fetch_max,
                timeout: config.fetch_timeout,
                allow_loopback: config.fetch_allow_loopback,
                ..FetchPolicy::default()
            }),
            logs: Arc::clone(&logs),
            hubs,
        });
        let pool = Pool::start(
            PoolConfig {
                workers: config.workers,
                queue: config.queue,
                runtimes_per_worker: config.runtimes_per_worker,
                limits: Limits {
                    timeout: config.timeout,
                    memory: config.memory as usize,
                    stack: config.stack as usize,
                },
                idle_every: LOG_DELAY,
            },
            services,
        )
        .map_err(|e| format!("starting the JS workers: {e}"))?;
        Ok(Apps {
            pool,
            logs,
            timeout: config.timeout,
            memory: config.memory,
            proxies,
        })
    }

    /// Hands `request` for `site` to the pool; the answer is mailed to `reply_to` for
    /// connection `token`. `None`: queued; `Some`: the answer now (503, queue full).
    pub fn invoke(
        &self,
        site: String,
        script: Script,
        request: Request,
        token: u64,
        reply_to: Mailbox,
        received: Instant,
    ) -> Option<Response> {
        let errors = ErrorText {
            timeout: self.timeout,
            memory: self.memory,
        };
        let invocation = Invocation {
            site,
            code: Code {
                sha256: script.sha256,
                size: script.size,
                style: match script.kind {
                    ScriptKind::Api => Style::Api,
                    ScriptKind::Root => Style::Root,
                },
            },
            request: self.js_request(request),
            received,
            done: Box::new(move |outcome| {
                let response = errors.response(outcome);
                reply_to.send(Mail::Reply { token, response });
            }),
        };
        match self.pool.try_run(invocation) {
            Ok(()) => None,
            Err(Full(_)) => {
                js_metrics::count_shed();
                Some(busy())
            }
        }
    }

    /// Lets the workers finish what is queued and waits for them (the drain: before the
    /// writer stops, so every storage write a script was told of is committed), then
    /// commits the log lines they left.
    pub fn stop(&self) {
        self.pool.stop();
        self.logs.flush(true);
    }

    /// What the script sees of a request: copies only; parsing is the worker's job.
    fn js_request(&self, request: Request) -> JsRequest {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        JsRequest {
            method: request.method_text().to_string(),
            path: request.path().to_string(),
            query: request.query().to_string(),
            headers: request.headers().map(|(n, v)| (text(n), text(v))).collect(),
            client_ip: self.proxies.client_ip(&request).to_string(),
            body: request.body,
        }
    }
}

/// 503 with `Retry-After`: the pool's queue was full, or the invocation waited a whole
/// time limit for a worker. Counted as shed.
fn busy() -> Response {
    crate::platform::metrics::METRICS.shed_requests.inc();
    Response::error(503, "the site's scripts are busy; try again")
        .header("Retry-After", "1")
        .no_store()
}

/// Turns an invocation's outcome into the HTTP answer (the runtime has already written a
/// failure to the site's logs, where its owner looks for it).
struct ErrorText {
    timeout: Duration,
    memory: u64,
}

impl ErrorText {
    fn response(&self, outcome: Result<JsResponse, RunError>) -> Response {
        let error = match outcome {
            Ok(answer) => return script_response(answer),
            Err(e) => e,
        };
        let (status, message) = match error {
            RunError::Timeout => (
                504,
                format!(
                    "the site's script ran past its time limit ({:?})",
                    self.timeout
                ),
            ),
            RunError::Memory => (
                500,
                format!(
                    "the site's script ran out of memory (limit {})",
                    crate::platform::units::format_bytes(self.memory)
                ),
            ),
            RunError::Stack => (
                500,
                "the site's script recursed too deeply (stack limit)".to_string(),
            ),
            RunError::Thrown(message) => (500, format!("the site's script failed: {message}")),
            RunError::Engine(message) => (500, format!("the script engine failed: {message}")),
            RunError::Expired => return busy(),
        };
        Response::error(status, &message).no_store()
    }
}

/// A script's answer as an HTTP response; a header a response may not carry makes the
/// answer a 500 that says which (a half-applied set of headers would mislead).
fn script_response(answer: JsResponse) -> Response {
    let mut response = Response::new(answer.status);
    for (name, value) in &answer.headers {
        response = match response.header_checked(name, value) {
            Ok(r) => r,
            Err(why) => {
                let message = format!("the site's script set a bad header: {why}");
                return Response::error(500, &message).no_store();
            }
        };
    }
    response.body = Body::Owned(answer.body);
    response
}

/// The pool's view of the server: each worker's read connection, the writer for the
/// scripts' storage writes, fetch, the logs and the WebSocket hubs.
struct DbServices {
    writer: WriterHandle,
    /// Read connections not yet taken by a worker.
    readers: Mutex<Vec<Connection>>,
    quotas: Quotas,
    fetch: Arc<FetchPolicy>,
    logs: Arc<LogSink>,
    hubs: Arc<Hubs>,
}

impl Services for DbServices {
    fn start_worker(&self) {
        if let Some(conn) = self.readers.lock().pop() {
            crate::db::reader::install_reader(conn);
        }
    }

    fn load_code(&self, code: &Code) -> Result<String, String> {
        let bytes = crate::db::reader::with_reader(|conn| {
            crate::hosting::store::read_blob(conn, &code.sha256, code.size)
        })
        .map_err(|e| format!("reading the script: {e}"))?;
        String::from_utf8(bytes).map_err(|_| "the script is not UTF-8 text".to_string())
    }

    fn host(&self, site: &str) -> Box<dyn Host> {
        Box::new(DbHost {
            site: site.to_string(),
            writer: self.writer.clone(),
            quotas: self.quotas,
            fetch: Arc::clone(&self.fetch),
            logs: Arc::clone(&self.logs),
            hubs: Arc::clone(&self.hubs),
            lines: Vec::new(),
        })
    }

    fn idle(&self) {
        self.logs.flush(false);
    }
}

/// What one invocation of one site's script reaches.
struct DbHost {
    site: String,
    writer: WriterHandle,
    quotas: Quotas,
    fetch: Arc<FetchPolicy>,
    logs: Arc<LogSink>,
    hubs: Arc<Hubs>,
    /// This invocation's log lines, handed to the sink when it ends.
    lines: Vec<NewLog>,
}

impl Drop for DbHost {
    fn drop(&mut self) {
        self.logs.extend(std::mem::take(&mut self.lines));
    }
}

impl DbHost {
    /// Reads on this worker's own connection.
    fn read<T>(
        &self,
        op: &'static str,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, String> {
        crate::db::reader::with_reader(|conn| Ok(f(conn)))
            .map_err(|e| format!("{op}: {e}"))?
            .map_err(|e| format!("{op}: {e}"))
    }

    /// Writes through the writer; this worker waits for the commit, so the script reads
    /// its own writes (a core thread never waits for this).
    fn write<T: Send + 'static>(
        &self,
        op: &'static str,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, String> {
        let outcome = self.writer.call(move |conn| Ok(f(conn)));
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(format!("{op}: {e}")),
            Err(DbError::QueueFull) => Err(format!("{op}: the database is busy; try again")),
            Err(DbError::WriterStopped) => Err(format!("{op}: the server is stopping")),
            Err(e) => Err(format!("{op}: {e}")),
        }
    }
}

impl Host for DbHost {
    fn kv_get(&mut self, key: &str) -> Result<Option<String>, String> {
        let (site, now) = (&self.site, now_ms());
        self.read("kv_get", |c| Ok(app_store::kv_get(c, site, key, now)?))
    }

    fn kv_set(&mut self, key: &str, value_json: &str, ttl_ms: Option<u64>) -> Result<(), String> {
        let now = now_ms();
        let expires = ttl_ms.map(|ttl| now.saturating_add(i64::try_from(ttl).unwrap_or(i64::MAX)));
        let (site, key, value, quotas) = (
            self.site.clone(),
            key.to_string(),
            value_json.to_string(),
            self.quotas,
        );
        self.write("kv_set", move |c| {
            app_store::kv_set(c, &site, &key, &value, expires, now, &quotas)
        })
    }

    fn kv_delete(&mut self, key: &str) -> Result<bool, String> {
        let (site, key) = (self.site.clone(), key.to_string());
        self.write("kv_delete", move |c| app_store::kv_delete(c, &site, &key))
    }

    fn kv_list(&mut self, prefix: &str) -> Result<Vec<KvEntry>, String> {
        let (site, now) = (&self.site, now_ms());
        self.read("kv_list", |c| Ok(app_store::kv_list(c, site, prefix, now)?))
    }

    fn ds_insert(&mut self, coll: &str, doc_json: &str) -> Result<String, String> {
        let (site, coll, doc, quotas, now) = (
            self.site.clone(),
            coll.to_string(),
            doc_json.to_string(),
            self.quotas,
            now_ms(),
        );
        self.write("ds_insert", move |c| {
            app_store::ds_insert(c, &site, &coll, &doc, now, &quotas)
        })
    }

    fn ds_find(
        &mut self,
        coll: &str,
        query_json: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>, String> {
        let site = &self.site;
        self.read("ds_find", |c| {
            app_store::ds_find(c, site, coll, query_json, limit)
        })
    }

    fn ds_update(
        &mut self,
        coll: &str,
        query_json: &str,
        changes_json: &str,
    ) -> Result<u64, String> {
        let (site, coll, query, changes, quotas, now) = (
            self.site.clone(),
            coll.to_string(),
            query_json.to_string(),
            changes_json.to_string(),
            self.quotas,
            now_ms(),
        );
        self.write("ds_update", move |c| {
            app_store::ds_update(c, &site, &coll, &query, &changes, now, &quotas)
        })
    }

    fn ds_delete(&mut self, coll: &str, query_json: &str) -> Result<u64, String> {
        let (site, coll, query) = (self.site.clone(), coll.to_string(), query_json.to_string());
        self.write("ds_delete", move |c| {
            app_store::ds_delete(c, &site, &coll, &query)
        })
    }

    fn env(&mut self) -> Result<Vec<(String, String)>, String> {
        let site = &self.site;
        self.read("env", |c| Ok(app_store::env_values(c, site)?))
    }

    fn log(&mut self, level: LogLevel, message: &str) {
        self.lines.push(NewLog {
            site: self.site.clone(),
            ts_ms: now_ms(),
            level,
            message: message.to_string(),
        });
    }

    fn fetch(&mut self, request: FetchRequest, deadline: Instant) -> Result<FetchResponse, String> {
        fetch::fetch(&request, &self.fetch, &SystemResolver, deadline).map_err(|e| e.to_string())
    }

    /// Only queued: the hubs' mailboxes take it and this worker goes on at once.
    fn socket_broadcast(&mut self, text: &str) -> Result<usize, String> {
        broadcast_fits(text, self.hubs.message_max())?;
        Ok(self.hubs.broadcast_text(&self.site, text))
    }

    fn socket_clients(&mut self) -> Result<usize, String> {
        Ok(self.hubs.clients(&self.site))
    }
}

/// Scripts' log lines on their way to the database: buffered from every worker, committed
/// in batches through the writer without anyone waiting; bounded, and what is dropped
/// past the bound is counted in one line of its own.
struct LogSink {
    writer: WriterHandle,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    lines: Vec<NewLog>,
    since: Option<Instant>,
    /// Lines dropped (no room) since the last batch.
    dropped: u64,
}

impl LogSink {
    fn new(writer: WriterHandle) -> LogSink {
        LogSink {
            writer,
            waiting: Mutex::new(Waiting::default()),
        }
    }

    fn extend(&self, lines: Vec<NewLog>) {
        if lines.is_empty() {
            return;
        }
        let mut waiting = self.waiting.lock();
        let room = LOGS_WAITING.saturating_sub(waiting.lines.len());
        let dropped = lines.len().saturating_sub(room);
        waiting.dropped += dropped as u64;
        waiting.lines.extend(lines.into_iter().take(room));
        waiting.since.get_or_insert_with(Instant::now);
    }

    /// Commits the waiting lines if there are enough or they waited long enough (`all`:
    /// whatever waits, and this thread waits for the commit: the drain).
    fn flush(&self, all: bool) {
        let batch = {
            let mut waiting = self.waiting.lock();
            let due = waiting.lines.len() >= LOG_BATCH
                || waiting.since.is_some_and(|s| s.elapsed() >= LOG_DELAY);
            if waiting.lines.is_empty() || !(due || all) {
                return;
            }
            if waiting.dropped > 0 {
                log::warn!(
                    "{} script log lines were dropped: more were written than the database took",
                    waiting.dropped
                );
                waiting.dropped = 0;
            }
            waiting.since = None;
            std::mem::take(&mut waiting.lines)
        };
        let job = move |c: &mut Connection| {
            app_store::append_logs(c, &batch).map_err(|e| DbError::Sqlite {
                context: "storing scripts' log lines".into(),
                source: e,
            })
        };
        let outcome = match all {
            true => self.writer.call(job),
            false => self.writer.submit_then(job, |_| {}),
        };
        if let Err(e) = outcome {
            log::warn!("scripts' log lines were not stored: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A site's host on a writer that is never written to, with hubs of this message limit.
    fn host(message_max: usize) -> (DbHost, crate::db::writer::WriterThread) {
        let conn = Connection::open_in_memory().unwrap();
        let (writer, thread) = crate::db::writer::spawn(conn, 1).unwrap();
        let host = DbHost {
            site: "blog".into(),
            writer: writer.clone(),
            quotas: Quotas::default(),
            fetch: Arc::new(FetchPolicy::default()),
            logs: Arc::new(LogSink::new(writer)),
            hubs: Arc::new(Hubs::for_tests(message_max)),
            lines: Vec::new(),
        };
        (host, thread)
    }

    #[test]
    fn a_broadcast_goes_to_the_hubs_within_their_message_limit() {
        let (mut host, thread) = host(8);
        assert_eq!(host.socket_clients(), Ok(0));
        assert_eq!(host.socket_broadcast("12345678"), Ok(0), "no client yet");
        assert_eq!(
            host.socket_broadcast("123456789"),
            Err("socket.broadcast: the message is 9 bytes, over the limit of 8".to_string())
        );
        host.writer.stop();
        drop(host);
        thread.join().unwrap();
    }
}
