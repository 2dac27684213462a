//! One QuickJS runtime and context with hard limits, as a JS worker will hold per site:
//! - time: the interrupt hook ends a script past its deadline (an uncatchable exception);
//! - memory: the runtime's allocation limit (the script gets an out-of-memory error, and the
//!   runtime stays usable after);
//! - stack: runaway recursion is an error, not a crash of the thread.

use rquickjs::{Context, Ctx, Runtime};
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
    /// The script threw; its message.
    Thrown(String),
    /// The engine itself failed (a runtime could not be made).
    Engine(String),
}

/// A runtime and its one context, reused across invocations of one site's code.
pub struct Sandbox {
    runtime: Runtime,
    context: Context,
    deadline: Arc<parking_lot::Mutex<Option<Instant>>>,
    limits: Limits,
}

impl Sandbox {
    pub fn new(limits: Limits) -> Result<Sandbox, RunError> {
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
        Ok(Sandbox {
            runtime,
            context,
            deadline,
            limits,
        })
    }

    /// Evaluates `code` within the limits and returns its value as JSON text (`undefined`
    /// for a value JSON cannot hold).
    pub fn eval_json(&self, code: &str) -> Result<String, RunError> {
        *self.deadline.lock() = Some(Instant::now() + self.limits.timeout);
        let outcome = self.context.with(|ctx| {
            let value: rquickjs::Result<rquickjs::Value> = ctx.eval(code);
            match value {
                Ok(value) => ctx
                    .json_stringify(value)
                    .map(|s| s.and_then(|s| s.to_string().ok()))
                    .map(|s| s.unwrap_or_else(|| "undefined".into()))
                    .map_err(|e| classify(&ctx, e)),
                Err(e) => Err(classify(&ctx, e)),
            }
        });
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

    /// Bytes the runtime holds now (QuickJS' own count).
    pub fn memory_used(&self) -> i64 {
        self.runtime.memory_usage().memory_used_size
    }
}

/// The error a failed evaluation stands for.
fn classify(ctx: &Ctx, error: rquickjs::Error) -> RunError {
    if !error.is_exception() {
        return RunError::Thrown(error.to_string());
    }
    let thrown = ctx.catch();
    let message = match thrown.as_exception() {
        Some(exception) => exception.message().unwrap_or_default(),
        None => thrown
            .as_string()
            .and_then(|s| s.to_string().ok())
            .unwrap_or_else(|| "a value that is not an Error".into()),
    };
    match message.as_str() {
        "out of memory" => RunError::Memory,
        "stack overflow" | "Maximum call stack size exceeded" => RunError::Stack,
        _ => RunError::Thrown(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        timeout: Duration::from_millis(200),
        memory: 16 << 20,
        stack: 256 << 10,
    };

    #[test]
    fn a_script_gives_its_value_as_json_and_keeps_its_globals() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        assert_eq!(
            sandbox.eval_json("({a: 1, b: [true, 'x']})").unwrap(),
            r#"{"a":1,"b":[true,"x"]}"#
        );
        sandbox.eval_json("globalThis.count = 41").unwrap();
        assert_eq!(sandbox.eval_json("count + 1").unwrap(), "42");
        assert_eq!(sandbox.eval_json("undefined").unwrap(), "undefined");
        assert_eq!(
            sandbox.eval_json("throw new TypeError('nope')"),
            Err(RunError::Thrown("nope".into()))
        );
    }

    #[test]
    fn an_endless_loop_ends_at_its_deadline_and_the_runtime_goes_on() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        let started = Instant::now();
        // Catching does not help: the interrupt cannot be caught.
        let outcome = sandbox.eval_json("for (;;) { try { while (true) {} } catch (e) {} }");
        assert_eq!(outcome, Err(RunError::Timeout));
        let took = started.elapsed();
        assert!(
            took >= LIMITS.timeout && took < LIMITS.timeout * 10,
            "{took:?}"
        );
        assert_eq!(sandbox.eval_json("1 + 1").unwrap(), "2", "usable after");
    }

    #[test]
    fn a_memory_bomb_is_an_error_and_the_runtime_survives() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        let bomb = "let a = []; for (;;) a.push(new Array(100000).fill(1));";
        assert_eq!(sandbox.eval_json(bomb), Err(RunError::Memory));
        assert!(sandbox.memory_used() <= LIMITS.memory as i64);
        assert_eq!(
            sandbox.eval_json("'still here'").unwrap(),
            r#""still here""#
        );
    }

    #[test]
    fn runaway_recursion_is_an_error_not_a_crash() {
        let sandbox = Sandbox::new(LIMITS).unwrap();
        let outcome = sandbox.eval_json("function f(n) { return f(n + 1) + 1 } f(0)");
        assert_eq!(outcome, Err(RunError::Stack));
        assert_eq!(sandbox.eval_json("[1,2].length").unwrap(), "2");
    }

    #[test]
    fn two_sandboxes_share_no_globals() {
        let (a, b) = (Sandbox::new(LIMITS).unwrap(), Sandbox::new(LIMITS).unwrap());
        a.eval_json("globalThis.secret = 'a'").unwrap();
        assert_eq!(b.eval_json("typeof secret").unwrap(), r#""undefined""#);
    }
}
