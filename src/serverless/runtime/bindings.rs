//! What a script reaches outside its sandbox: the [`Host`] of the invocation in progress,
//! through one native function that the prelude wraps (`host(generation, op, …)`). The
//! per-invocation caps live here: log lines and bytes, fetch calls, broadcasts. A call whose
//! generation is not the invocation in progress (a function kept from an earlier request)
//! throws.

use super::super::fetch::{FetchRequest, FetchResponse};
use super::super::metrics::count_storage;
use super::super::store::{KvEntry, LogLevel};
use rquickjs::function::Rest;
use rquickjs::{Ctx, Exception, Function, IntoJs, Value};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

/// What `site`'s script reaches outside the sandbox during one invocation. An `Err(msg)`
/// throws `Error(msg)` in the script.
pub(crate) trait Host {
    fn kv_get(&mut self, key: &str) -> Result<Option<String>, String>;
    fn kv_set(&mut self, key: &str, value_json: &str, ttl_ms: Option<u64>) -> Result<(), String>;
    fn kv_delete(&mut self, key: &str) -> Result<bool, String>;
    fn kv_list(&mut self, prefix: &str) -> Result<Vec<KvEntry>, String>;
    fn ds_insert(&mut self, coll: &str, doc_json: &str) -> Result<String, String>;
    fn ds_find(
        &mut self,
        coll: &str,
        query_json: &str,
        limit: Option<usize>,
    ) -> Result<Vec<String>, String>;
    fn ds_update(
        &mut self,
        coll: &str,
        query_json: &str,
        changes_json: &str,
    ) -> Result<u64, String>;
    fn ds_delete(&mut self, coll: &str, query_json: &str) -> Result<u64, String>;
    fn env(&mut self) -> Result<Vec<(String, String)>, String>;
    fn log(&mut self, level: LogLevel, message: &str);
    /// `deadline`: the invocation's own; the fetch must end by then.
    fn fetch(&mut self, request: FetchRequest, deadline: Instant) -> Result<FetchResponse, String>;
    /// Queues `text` for every WebSocket client of the site, never waiting on one; the
    /// number of clients it was queued for.
    fn socket_broadcast(&mut self, text: &str) -> Result<usize, String>;
    /// The site's WebSocket clients connected now.
    fn socket_clients(&mut self) -> Result<usize, String>;
}

/// Log lines one invocation may write (then one line says how many were dropped).
pub(crate) const LOG_LINES: usize = 100;
/// Bytes of log lines one invocation may write.
pub(crate) const LOG_BYTES: usize = 16 << 10;
/// Longest log line; a longer one is cut (ending with `…`).
pub(crate) const LOG_LINE_BYTES: usize = 2 << 10;
/// `fetch` calls one invocation may make.
pub(crate) const FETCHES: u32 = 10;
/// `socket.broadcast` calls one invocation may make (each one is a message to every client:
/// a script looping over it must not flood the hub).
pub(crate) const BROADCASTS: u32 = 100;

/// Whether `text` fits a hub's message of at most `max` bytes; else the error the script sees
/// (the hosts check it, as only they know their hubs' limit).
pub(crate) fn broadcast_fits(text: &str, max: usize) -> Result<(), String> {
    match text.len() <= max {
        true => Ok(()),
        false => Err(format!(
            "socket.broadcast: the message is {} bytes, over the limit of {max}",
            text.len()
        )),
    }
}

/// The invocation in progress, as the native function sees it.
pub(crate) struct Current {
    generation: u64,
    pub(crate) host: Box<dyn Host>,
    deadline: Instant,
    lines: usize,
    bytes: usize,
    dropped: usize,
    fetches: u32,
    broadcasts: u32,
}

/// The invocation in progress on a sandbox, if any.
pub(crate) type Slot = Rc<RefCell<Option<Current>>>;

impl Current {
    pub(crate) fn new(generation: u64, host: Box<dyn Host>, deadline: Instant) -> Current {
        Current {
            generation,
            host,
            deadline,
            lines: 0,
            bytes: 0,
            dropped: 0,
            fetches: 0,
            broadcasts: 0,
        }
    }

    /// A log line within the invocation's caps; once one is dropped, every later one is
    /// too, so the line that counts them is the last.
    fn log(&mut self, level: LogLevel, line: &str) {
        let line = cut(line, LOG_LINE_BYTES);
        if self.dropped > 0 || self.lines == LOG_LINES || self.bytes + line.len() > LOG_BYTES {
            self.dropped += 1;
            return;
        }
        self.lines += 1;
        self.bytes += line.len();
        self.host.log(level, &line);
    }

    /// The invocation is over: say how many log lines the caps dropped.
    pub(crate) fn end(&mut self) {
        if self.dropped > 0 {
            let line = format!(
                "… {} log lines dropped (limit per invocation)",
                self.dropped
            );
            self.host.log(LogLevel::Warn, &line);
        }
    }
}

/// `line` cut to at most `max` bytes at a character boundary, ending with `…` when cut.
fn cut(line: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if line.len() <= max {
        return line.into();
    }
    let mut end = max - '…'.len_utf8();
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &line[..end]).into()
}

/// The native function the prelude wraps.
pub(crate) fn native<'js>(ctx: &Ctx<'js>, slot: Slot) -> rquickjs::Result<Function<'js>> {
    Function::new(
        ctx.clone(),
        move |ctx: Ctx<'js>, args: Rest<Value<'js>>| -> rquickjs::Result<Value<'js>> {
            let mut current = slot.borrow_mut();
            let generation = args.0.first().and_then(Value::as_number);
            let current = match current.as_mut() {
                Some(c) if generation == Some(c.generation as f64) => c,
                _ => {
                    return Err(Exception::throw_message(
                        &ctx,
                        "this function belongs to a request that has already been answered",
                    ))
                }
            };
            let op = string(&ctx, args.0.get(1), "op")?;
            dispatch(&ctx, current, &op, args.0.get(2..).unwrap_or_default())
        },
    )
}

/// One call of the prelude's: `op` with its arguments.
fn dispatch<'js>(
    ctx: &Ctx<'js>,
    current: &mut Current,
    op: &str,
    args: &[Value<'js>],
) -> rquickjs::Result<Value<'js>> {
    let args = Args { ctx, op, args };
    match op {
        "log" => {
            let level = match args.string(0, "a level")?.as_str() {
                "info" => LogLevel::Info,
                "warn" => LogLevel::Warn,
                "error" => LogLevel::Error,
                _ => LogLevel::Log,
            };
            current.log(level, &args.string(1, "a line")?);
            Ok(Value::new_undefined(ctx.clone()))
        }
        "env" => {
            let vars = current.host.env().map_err(|m| host_error(ctx, m))?;
            let object: serde_json::Map<String, serde_json::Value> = vars
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect();
            serde_json::Value::Object(object).to_string().into_js(ctx)
        }
        "fetch" => fetch(ctx, current, args.args),
        "socket_broadcast" => {
            let text = args.string(0, "the message must be a string")?;
            broadcast(ctx, current, &text)
        }
        "socket_clients" => {
            count_storage(op);
            (hosted(ctx, current.host.socket_clients())? as f64).into_js(ctx)
        }
        _ if op.starts_with("kv_") => {
            count_storage(op);
            kv(&args, current.host.as_mut())
        }
        _ if op.starts_with("ds_") => {
            count_storage(op);
            ds(&args, current.host.as_mut())
        }
        _ => Err(Exception::throw_message(ctx, &format!("no host call {op}"))),
    }
}

/// The arguments of one call, read with messages that name the script's function.
struct Args<'a, 'js> {
    ctx: &'a Ctx<'js>,
    op: &'a str,
    args: &'a [Value<'js>],
}

impl<'js> Args<'_, 'js> {
    /// Argument `i`, a string; else a TypeError "kv.get: `what`".
    fn string(&self, i: usize, what: &str) -> rquickjs::Result<String> {
        let name = self.op.replacen('_', ".", 1);
        string(self.ctx, self.args.get(i), &format!("{name}: {what}"))
    }

    fn get(&self, i: usize) -> Option<&Value<'js>> {
        self.args.get(i)
    }
}

fn host_error(ctx: &Ctx, message: String) -> rquickjs::Error {
    Exception::throw_message(ctx, &message)
}

/// A host call's outcome; its error thrown as `Error(message)`.
fn hosted<T>(ctx: &Ctx, outcome: Result<T, String>) -> rquickjs::Result<T> {
    outcome.map_err(|message| host_error(ctx, message))
}

fn kv<'js>(args: &Args<'_, 'js>, host: &mut dyn Host) -> rquickjs::Result<Value<'js>> {
    let ctx = args.ctx;
    let key = || args.string(0, "the key must be a string");
    match args.op {
        "kv_get" => match hosted(ctx, host.kv_get(&key()?))? {
            Some(json) => json.into_js(ctx),
            None => Ok(Value::new_undefined(ctx.clone())),
        },
        "kv_set" => {
            let ttl = ttl_ms(ctx, args.get(2))?;
            let value = args.string(1, "the value must be JSON")?;
            hosted(ctx, host.kv_set(&key()?, &value, ttl))?;
            Ok(Value::new_undefined(ctx.clone()))
        }
        "kv_delete" => hosted(ctx, host.kv_delete(&key()?))?.into_js(ctx),
        "kv_list" => {
            let prefix = args.string(0, "the prefix must be a string")?;
            kv_list_json(&hosted(ctx, host.kv_list(&prefix))?).into_js(ctx)
        }
        op => Err(Exception::throw_message(ctx, &format!("no host call {op}"))),
    }
}

fn ds<'js>(args: &Args<'_, 'js>, host: &mut dyn Host) -> rquickjs::Result<Value<'js>> {
    let ctx = args.ctx;
    let coll = args.string(0, "the collection must be a string")?;
    let query = || args.string(1, "the query must be an object");
    match args.op {
        "ds_insert" => {
            let doc = args.string(1, "the document must be an object")?;
            hosted(ctx, host.ds_insert(&coll, &doc))?.into_js(ctx)
        }
        "ds_find" => {
            let limit = args.get(2).and_then(Value::as_number).map(|n| n as usize);
            let docs = hosted(ctx, host.ds_find(&coll, &query()?, limit))?;
            format!("[{}]", docs.join(",")).into_js(ctx)
        }
        "ds_update" => {
            let changes = args.string(2, "the changes must be an object")?;
            let n = hosted(ctx, host.ds_update(&coll, &query()?, &changes))?;
            (n as f64).into_js(ctx)
        }
        "ds_delete" => (hosted(ctx, host.ds_delete(&coll, &query()?))? as f64).into_js(ctx),
        op => Err(Exception::throw_message(ctx, &format!("no host call {op}"))),
    }
}

/// One `fetch` within the invocation's cap, its answer as JSON for the prelude.
fn fetch<'js>(
    ctx: &Ctx<'js>,
    current: &mut Current,
    args: &[Value<'js>],
) -> rquickjs::Result<Value<'js>> {
    if current.fetches == FETCHES {
        let message = format!("fetch: at most {FETCHES} calls per invocation");
        return Err(Exception::throw_message(ctx, &message));
    }
    current.fetches += 1;
    let request = fetch_request(ctx, args)?;
    let response = hosted(ctx, current.host.fetch(request, current.deadline))?;
    fetch_response_json(response).into_js(ctx)
}

/// One broadcast within the invocation's cap; the number of clients it was queued for.
fn broadcast<'js>(
    ctx: &Ctx<'js>,
    current: &mut Current,
    text: &str,
) -> rquickjs::Result<Value<'js>> {
    if current.broadcasts == BROADCASTS {
        let message = format!("socket.broadcast: at most {BROADCASTS} calls per invocation");
        return Err(Exception::throw_message(ctx, &message));
    }
    current.broadcasts += 1;
    count_storage("socket_broadcast");
    (hosted(ctx, current.host.socket_broadcast(text))? as f64).into_js(ctx)
}

/// The prelude's arguments: URL, method, headers as JSON pairs, body (a string, if any).
fn fetch_request(ctx: &Ctx, args: &[Value]) -> rquickjs::Result<FetchRequest> {
    let url = string(ctx, args.first(), "fetch: the URL must be a string")?;
    let method = string(ctx, args.get(1), "fetch: the method must be a string")?;
    let headers = string(ctx, args.get(2), "fetch: the headers must be an object")?;
    let headers: Vec<(String, String)> = serde_json::from_str(&headers)
        .map_err(|e| Exception::throw_type(ctx, &format!("fetch: the headers: {e}")))?;
    let body = match args.get(3) {
        Some(v) if !v.is_undefined() => {
            string(ctx, Some(v), "fetch: the body must be a string")?.into_bytes()
        }
        _ => Vec::new(),
    };
    Ok(FetchRequest {
        url,
        method,
        headers,
        body,
    })
}

/// `{status, url, headers, body}`: header names lower-case, repeated ones joined with ", ",
/// the body as text (invalid UTF-8 replaced).
fn fetch_response_json(response: FetchResponse) -> String {
    let mut headers = serde_json::Map::new();
    for (name, value) in response.headers {
        let name = name.to_ascii_lowercase();
        let joined = match headers.remove(&name) {
            Some(serde_json::Value::String(before)) => format!("{before}, {value}"),
            _ => value,
        };
        headers.insert(name, serde_json::Value::String(joined));
    }
    serde_json::json!({
        "status": response.status,
        "url": response.url,
        "headers": headers,
        "body": String::from_utf8_lossy(&response.body),
    })
    .to_string()
}

/// `[{"key":…,"value":…,"expiresAt":…}]`, the values inserted as the JSON they are.
fn kv_list_json(entries: &[KvEntry]) -> String {
    let mut out = String::from("[");
    for (i, entry) in entries.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let key = serde_json::Value::String(entry.key.clone());
        out.push_str(&format!("{{\"key\":{key},\"value\":{}", entry.value));
        if let Some(at) = entry.expires_at_ms {
            out.push_str(&format!(",\"expiresAt\":{at}"));
        }
        out.push('}');
    }
    out.push(']');
    out
}

/// A TTL in milliseconds: absent, or a positive finite number.
fn ttl_ms(ctx: &Ctx, value: Option<&Value>) -> rquickjs::Result<Option<u64>> {
    let Some(value) = value.filter(|v| !v.is_undefined() && !v.is_null()) else {
        return Ok(None);
    };
    match value.as_number() {
        Some(ms) if ms.is_finite() && ms >= 1.0 => Ok(Some(ms.ceil() as u64)),
        _ => Err(Exception::throw_range(
            ctx,
            "kv.set: ttlMs must be a positive number of milliseconds",
        )),
    }
}

/// The string `value`, else a TypeError with the message `what`.
fn string(ctx: &Ctx, value: Option<&Value>, what: &str) -> rquickjs::Result<String> {
    match value.and_then(Value::as_string) {
        Some(s) => s.to_string(),
        None => Err(Exception::throw_type(ctx, what)),
    }
}
