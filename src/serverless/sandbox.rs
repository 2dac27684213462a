//! One QuickJS runtime and context with hard limits, as a JS worker holds per site:
//! - time: the interrupt hook ends a script past its deadline (an uncatchable exception);
//! - memory: the runtime's allocation limit (the script gets an out-of-memory error, and the
//!   runtime stays usable after);
//! - stack: runaway recursion is an error, not a crash of the thread.
//!
//! Each sandbox alive is counted in `fazt_js_runtimes`.

use super::metrics::JS_STATS;
use rquickjs::{Context, Ctx, Runtime, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The limits of one invocation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub timeout: Duration,
    /// Bytes the runtime may allocate in all.
    pub memory: usize,
    /// Bytes of native stack the interpreter may use.
    pub stack: usize,
}

/// Why a script did not give a value.
#[derive(Debug, PartialEq, Eq)]
pub enum RunError {
    /// Still running at its deadline.
    Timeout,
    /// Over the runtime's memory limit.
    Memory,
    /// Recursion past the stack limit.
    Stack,
    /// The script threw (or did not compile): `"TypeError: … at line N"`.
    Thrown(String),
    /// The engine itself failed (a runtime could not be made, the code could not be read).
    Engine(String),
    /// Not run: it waited for a worker as long as its time limit, so its client is
    /// answered "busy" (503) instead of being kept waiting longer still.
    Expired,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Timeout => f.write_str("the script ran past its time limit"),
            RunError::Memory => f.write_str("the script ran out of memory (its runtime's limit)"),
            RunError::Stack => f.write_str("the script recursed too deeply (stack overflow)"),
            RunError::Thrown(message) => f.write_str(message),
            RunError::Engine(message) => write!(f, "the JavaScript engine failed: {message}"),
            RunError::Expired => f.write_str("the site's scripts are busy; try again"),
        }
    }
}

/// A runtime and its one context, reused across invocations of one site's code.
pub(crate) struct Sandbox {
    runtime: Runtime,
    context: Context,
    deadline: Arc<parking_lot::Mutex<Option<Instant>>>,
}

impl Sandbox {
    pub(crate) fn new(limits: Limits) -> Result<Sandbox, RunError> {
        let engine = |e: rquickjs::Error| RunError::Engine(e.to_string());
        let runtime = Runtime::new().map_err(engine)?;
        runtime.set_memory_limit(limits.memory);
        runtime.set_max_stack_size(limits.stack);
        let deadline = Arc::new(parking_lot::Mutex::new(None::<Instant>));
        let watched = Arc::clone(&deadline);
        runtime.set_interrupt_handler(Some(Box::new(move || {
            watched.lock().is_some_and(|at| Instant::now() >= at)
        })));
        let context = Context::full(&runtime).map_err(engine)?;
        JS_STATS.runtimes().inc();
        Ok(Sandbox {
            runtime,
            context,
            deadline,
        })
    }

    /// Runs `f` in the context until `deadline`. A failure is classified; `file` names the
    /// user's module, whose line a thrown error's message then carries.
    pub(crate) fn run<T>(
        &self,
        deadline: Instant,
        file: Option<&str>,
        f: impl FnOnce(&Ctx) -> rquickjs::Result<T>,
    ) -> Result<T, RunError> {
        *self.deadline.lock() = Some(deadline);
        let outcome = self
            .context
            .with(|ctx| f(&ctx).map_err(|e| classify(&ctx, e, file)));
        let timed_out = self
            .deadline
            .lock()
            .take()
            .is_some_and(|at| Instant::now() >= at);
        match outcome {
            Err(RunError::Thrown(_)) if timed_out => Err(RunError::Timeout),
            other => other,
        }
    }

    /// Evaluates `code` as a script and returns its value as JSON text (`undefined` for a
    /// value JSON cannot hold).
    #[cfg(test)]
    pub(crate) fn eval_json(&self, code: &str, timeout: Duration) -> Result<String, RunError> {
        self.run(Instant::now() + timeout, None, |ctx| {
            let value: Value = ctx.eval(code)?;
            Ok(ctx
                .json_stringify(value)?
                .and_then(|s| s.to_string().ok())
                .unwrap_or_else(|| "undefined".into()))
        })
    }

    /// Bytes the runtime holds now (QuickJS' own count).
    pub(crate) fn memory_used(&self) -> i64 {
        self.runtime.memory_usage().memory_used_size
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        JS_STATS.runtimes().dec();
    }
}

/// The error a failed evaluation stands for.
fn classify(ctx: &Ctx, error: rquickjs::Error, file: Option<&str>) -> RunError {
    if !error.is_exception() {
        return match error {
            rquickjs::Error::Allocation => RunError::Memory,
            other => RunError::Thrown(other.to_string()),
        };
    }
    let thrown = ctx.catch();
    let Some(exception) = thrown.as_exception() else {
        return RunError::Thrown(format!("Uncaught {}", describe(ctx, thrown)));
    };
    let message = exception.message().unwrap_or_default();
    match message.as_str() {
        "out of memory" => return RunError::Memory,
        "stack overflow" | "Maximum call stack size exceeded" => return RunError::Stack,
        _ => {}
    }
    let name: String = exception
        .get("name")
        .ok()
        .filter(|n: &String| !n.is_empty())
        .unwrap_or_else(|| "Error".into());
    let line = file.and_then(|file| user_line(&exception.stack().unwrap_or_default(), file));
    RunError::Thrown(match line {
        Some(line) => format!("{name}: {message} at line {line}"),
        None => format!("{name}: {message}"),
    })
}

/// A thrown value that is not an Error, as the message shows it.
fn describe<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    if let Some(s) = value.as_string().and_then(|s| s.to_string().ok()) {
        return s;
    }
    ctx.json_stringify(value)
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| "a value that is not an Error".into())
}

/// The line of the first stack frame in `file` (`    at f (api/main.js:3:7)` or, for a
/// syntax error, `    at api/main.js:3:7`).
fn user_line(stack: &str, file: &str) -> Option<u32> {
    let marker = format!("{file}:");
    stack.lines().find_map(|frame| {
        let at = frame.find(&marker)?;
        let rest = &frame[at + marker.len()..];
        let digits: &str = &rest[..rest.find(|c: char| !c.is_ascii_digit())?];
        // "api/main.js:3" within "x/api/main.js:3" is not ours: the name must start there.
        let before = frame[..at].chars().last();
        (matches!(before, Some(' ' | '(')) || at == 0)
            .then(|| digits.parse().ok())
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(200),
        memory: 16 << 20,
        stack: 256 << 10,
    };
    const T: Duration = LIMITS.timeout;

    #[test]
    fn a_script_gives_its_value_as_json_and_keeps_its_globals() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        assert_eq!(
            sandbox.eval_json("({a: 1, b: [true, 'x']})", T).unwrap(),
            r#"{"a":1,"b":[true,"x"]}"#
        );
        sandbox.eval_json("globalThis.count = 41", T).unwrap();
        assert_eq!(sandbox.eval_json("count + 1", T).unwrap(), "42");
        assert_eq!(sandbox.eval_json("undefined", T).unwrap(), "undefined");
        assert_eq!(
            sandbox.eval_json("throw new TypeError('nope')", T),
            Err(RunError::Thrown("TypeError: nope".into()))
        );
        assert_eq!(
            sandbox.eval_json("throw {code: 7}", T),
            Err(RunError::Thrown(r#"Uncaught {"code":7}"#.into()))
        );
    }

    #[test]
    fn an_endless_loop_ends_at_its_deadline_and_the_runtime_goes_on() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        let started = Instant::now();
        // Catching does not help: the interrupt cannot be caught.
        let outcome = sandbox.eval_json("for (;;) { try { while (true) {} } catch (e) {} }", T);
        assert_eq!(outcome, Err(RunError::Timeout));
        let took = started.elapsed();
        assert!(took >= T && took < T * 10, "{took:?}");
        assert_eq!(sandbox.eval_json("1 + 1", T).unwrap(), "2", "usable after");
    }

    #[test]
    fn a_memory_bomb_is_an_error_and_the_runtime_survives() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        let bomb = "let a = []; for (;;) a.push(new Array(100000).fill(1));";
        assert_eq!(sandbox.eval_json(bomb, T), Err(RunError::Memory));
        assert!(sandbox.memory_used() <= LIMITS.memory as i64);
        assert_eq!(
            sandbox.eval_json("'still here'", T).unwrap(),
            r#""still here""#
        );
    }

    #[test]
    fn runaway_recursion_is_an_error_not_a_crash() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        let outcome = sandbox.eval_json("function f(n) { return f(n + 1) + 1 } f(0)", T);
        assert_eq!(outcome, Err(RunError::Stack));
        assert_eq!(sandbox.eval_json("[1,2].length", T).unwrap(), "2");
    }

    #[test]
    fn two_sandboxes_share_no_globals() {
        let (a, b) = (Sandbox::new(LIMITS).unwrap(), Sandbox::new(LIMITS).unwrap());
        a.eval_json("globalThis.secret = 'a'", T).unwrap();
        assert_eq!(b.eval_json("typeof secret", T).unwrap(), r#""undefined""#);
    }

    #[test]
    fn the_users_line_is_read_from_the_stack() {
        let stack = "    at get (<fazt>:12:3)\n    at f (api/main.js:7:9)\n    at default (api/main.js:9:1)\n";
        assert_eq!(user_line(stack, "api/main.js"), Some(7));
        assert_eq!(
            user_line("    at api/main.js:2:9\n", "api/main.js"),
            Some(2)
        );
        assert_eq!(
            user_line("    at x (lib/api/main.js:2:9)\n", "api/main.js"),
            None
        );
        assert_eq!(user_line("    at main.js:4:1\n", "main.js"), Some(4));
    }
}
