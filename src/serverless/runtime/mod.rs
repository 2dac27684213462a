//! A site's script on a sandbox: the types the pool and the server exchange, and [`App`], one
//! site's sandbox with its handler loaded.
//!
//! The file is the body of a function: it is compiled once per content hash (and style) as a
//! module `export default function () {<code>\n}` (so its line numbers are the file's, and it
//! is strict), to bytecode kept in the pool's shared [`bytecode::BytecodeCache`]. Each
//! invocation puts that request's globals on the sandbox (`prelude.js`: `request`/`respond`
//! or `req`/`res`/`db`, `console`, `fazt`, `fetch`), calls the function, runs the promise
//! jobs it queued, and turns what it answered into a [`JsResponse`] (`respond.rs`). Globals
//! a script sets itself persist in its site's warm sandbox, never across sites.

pub(crate) mod bindings;
pub(crate) mod bytecode;
pub(crate) mod request;
pub(crate) mod respond;

#[doc(hidden)]
pub mod bench;
pub(crate) mod fake;
#[cfg(test)]
mod tests;

use super::sandbox::{Limits, RunError, Sandbox};
use super::store::LogLevel;
use crate::platform::sys::JsBytecode;
use bindings::{Current, Slot};
use bytecode::{BytecodeCache, Compiled};
use rquickjs::{Ctx, Exception, Function, Object, Persistent, Value};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Instant;

pub(crate) use bindings::Host;

/// Which programming model a site's script follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Style {
    /// `api/main.js`, for `/api` and `/api/*`: `request`, `respond`.
    Api,
    /// `main.js` (v0.7.1), for every path: `req`, `res`, `db`, `process.env`.
    Root,
}

impl Style {
    /// The file's name, as stack traces and error messages show it.
    pub(crate) fn file(self) -> &'static str {
        match self {
            Style::Api => "api/main.js",
            Style::Root => "main.js",
        }
    }
}

/// Which code a site runs: the deployment's file, named by its content.
#[derive(Clone, Debug)]
pub(crate) struct Code {
    pub sha256: [u8; 32],
    pub size: u64,
    pub style: Style,
}

/// A request as the core thread hands it over: copies, no parsing.
#[derive(Clone, Debug, Default)]
pub(crate) struct JsRequest {
    pub method: String,
    /// The request path, no query.
    pub path: String,
    /// The raw query string, without '?'.
    pub query: String,
    /// As received, in order (lossy UTF-8).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub client_ip: String,
}

/// What the script answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JsResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One site's sandbox with its code loaded, as a worker keeps it.
pub(crate) struct App {
    // The persistent handles go before the sandbox: they must be freed before its runtime.
    handler: Persistent<Function<'static>>,
    begin: Persistent<Function<'static>>,
    finish: Persistent<Function<'static>>,
    end: Persistent<Function<'static>>,
    slot: Slot,
    /// The number of the invocation in progress or last run.
    generation: Cell<u64>,
    sha256: [u8; 32],
    style: Style,
    sandbox: Sandbox,
}

const PRELUDE: &str = include_str!("prelude.js");

/// Time for the prelude's `end` after an invocation (it clears four globals).
const END_TIME: std::time::Duration = std::time::Duration::from_millis(50);

impl App {
    /// A fresh sandbox with `code` loaded: its bytecode from `cache`, or compiled from the
    /// source `load` gives (and then cached, a syntax error too).
    pub(crate) fn load(
        limits: Limits,
        code: &Code,
        cache: &BytecodeCache,
        load: impl FnOnce() -> Result<String, String>,
    ) -> Result<App, RunError> {
        let deadline = Instant::now() + limits.timeout;
        let file = code.style.file();
        let cached = match cache.get(&code.sha256, code.style) {
            Some(Compiled::Ok(bytecode)) => Some(bytecode),
            Some(Compiled::Failed(message)) => return Err(RunError::Thrown(message.to_string())),
            None => None,
        };
        let sandbox = Sandbox::new(limits)?;
        let bytecode = match cached {
            Some(bytecode) => bytecode,
            None => compile(&sandbox, deadline, code, cache, load)?,
        };
        let slot: Slot = Rc::new(RefCell::new(None));
        let (handler, [begin, finish, end]) = sandbox.run(deadline, Some(file), |ctx| {
            let (module, _) = bytecode.load(ctx)?.eval()?;
            let handler: Function = module.get("default")?;
            Ok((Persistent::save(ctx, handler), install_prelude(ctx, &slot)?))
        })?;
        Ok(App {
            handler,
            begin,
            finish,
            end,
            slot,
            generation: Cell::new(0),
            sha256: code.sha256,
            style: code.style,
            sandbox,
        })
    }

    /// Whether this is `code` loaded.
    pub(crate) fn runs(&self, code: &Code) -> bool {
        self.sha256 == code.sha256 && self.style == code.style
    }

    /// Runs the handler for `request` with `host` as what it reaches outside. A failure is
    /// written to the site's log as well.
    pub(crate) fn invoke(
        &self,
        request: JsRequest,
        host: Box<dyn Host>,
        limits: Limits,
    ) -> Result<JsResponse, RunError> {
        let deadline = Instant::now() + limits.timeout;
        let generation = self.generation.get() + 1;
        self.generation.set(generation);
        *self.slot.borrow_mut() = Some(Current::new(generation, host, deadline));
        let outcome = self.sandbox.run(deadline, Some(self.style.file()), |ctx| {
            self.call(ctx, generation, &request, deadline)
        });
        // From here on a call through this invocation's functions throws.
        let ended = self.slot.borrow_mut().take();
        if !matches!(outcome, Err(RunError::Timeout | RunError::Memory)) {
            // (After those the worker drops this sandbox anyway.)
            let _ = self.sandbox.run(Instant::now() + END_TIME, None, |ctx| {
                self.end.clone().restore(ctx)?.call::<_, ()>(())
            });
        }
        if let Some(mut current) = ended {
            current.end();
            if let Err(e) = &outcome {
                let line = format!("{} {}: {e}", request.method, request.path);
                current.host.log(LogLevel::Error, &line);
            }
        }
        outcome
    }

    fn call<'js>(
        &self,
        ctx: &Ctx<'js>,
        generation: u64,
        request: &JsRequest,
        deadline: Instant,
    ) -> rquickjs::Result<JsResponse> {
        let root = self.style == Style::Root;
        let request = request::build(ctx, request, self.style)?;
        let begin = self.begin.clone().restore(ctx)?;
        let state: Object = begin.call((generation as f64, root, request))?;
        let handler = self.handler.clone().restore(ctx)?;
        let mut value: Value = handler.call(())?;
        run_jobs(ctx, deadline)?;
        if let Some(promise) = value.as_promise() {
            value = match promise.result::<Value>() {
                Some(settled) => settled?,
                None => {
                    return Err(Exception::throw_message(
                        ctx,
                        "the handler's promise did not settle (nothing was left to run)",
                    ))
                }
            };
        }
        let finish = self.finish.clone().restore(ctx)?;
        let answer: Object = finish.call((state, value))?;
        respond::response(ctx, &answer)
    }

    /// Bytes this site's runtime holds (QuickJS' own count).
    pub(crate) fn memory_used(&self) -> i64 {
        self.sandbox.memory_used()
    }
}

/// Compiles `code` (its source from `load`) in `sandbox` and caches the outcome; a syntax
/// error is kept too, so a broken deployment is not compiled again on every request.
fn compile(
    sandbox: &Sandbox,
    deadline: Instant,
    code: &Code,
    cache: &BytecodeCache,
    load: impl FnOnce() -> Result<String, String>,
) -> Result<JsBytecode, RunError> {
    let file = code.style.file();
    let source = load().map_err(RunError::Engine)?;
    // On the first line, so the module's line numbers are the file's.
    let wrapped = format!("export default function () {{{source}\n}}");
    match sandbox.run(deadline, Some(file), |ctx| {
        JsBytecode::compile(ctx, file, &wrapped)
    }) {
        Ok(bytecode) => {
            cache.insert(code.sha256, code.style, Compiled::Ok(bytecode.clone()));
            Ok(bytecode)
        }
        Err(RunError::Thrown(message)) => {
            let failed = Compiled::Failed(message.as_str().into());
            cache.insert(code.sha256, code.style, failed);
            Err(RunError::Thrown(message))
        }
        Err(other) => Err(other),
    }
}

/// Evaluates the prelude with the native `host` function; its `begin`, `finish` and `end`.
fn install_prelude(ctx: &Ctx<'_>, slot: &Slot) -> rquickjs::Result<[Glue; 3]> {
    let mut options = rquickjs::context::EvalOptions::default();
    options.filename = Some("<fazt>".into());
    let make: Function = ctx.eval_with_options(PRELUDE, options)?;
    let glue: Object = make.call((bindings::native(ctx, Rc::clone(slot))?,))?;
    let get = |name: &str| -> rquickjs::Result<Glue> {
        Ok(Persistent::save(ctx, glue.get::<_, Function>(name)?))
    };
    Ok([get("begin")?, get("finish")?, get("end")?])
}

type Glue = Persistent<Function<'static>>;

/// Runs the promise jobs the script queued, until none is left or the deadline passes (a
/// job that throws rejects its promise; the interrupt ends one that runs too long).
fn run_jobs(ctx: &Ctx, deadline: Instant) -> rquickjs::Result<()> {
    while ctx.execute_pending_job() {
        if Instant::now() >= deadline {
            return Err(Exception::throw_internal(ctx, "interrupted"));
        }
    }
    Ok(())
}
