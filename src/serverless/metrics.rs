//! The serverless metrics, declared once: invocations by outcome, their duration (from the
//! hand-over by the core thread, so queue wait counts), the queue depth, the sandboxes alive
//! across workers, and the storage (and WebSocket hub) calls scripts make. `JS_STATS` is the source the admin
//! metrics list renders.

use crate::platform::metrics::{
    Collector, Counter, Desc, Gauge, Histogram, Kind, Source, REQUEST_BUCKETS,
};
use std::time::Duration;

/// How an invocation ended, as `fazt_js_invocations_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Timeout,
    Memory,
    Shed,
}

const OUTCOMES: [(Outcome, &str); 5] = [
    (Outcome::Ok, "ok"),
    (Outcome::Error, "error"),
    (Outcome::Timeout, "timeout"),
    (Outcome::Memory, "memory"),
    (Outcome::Shed, "shed"),
];

/// The storage and hub calls a script makes, as `fazt_js_storage_ops_total` labels them.
pub(crate) const STORAGE_OPS: [&str; 10] = [
    "kv_get",
    "kv_set",
    "kv_delete",
    "kv_list",
    "ds_insert",
    "ds_find",
    "ds_update",
    "ds_delete",
    "socket_broadcast",
    "socket_clients",
];

pub(crate) struct JsStats {
    outcomes: [Counter; OUTCOMES.len()],
    duration: Histogram<{ REQUEST_BUCKETS.len() }>,
    queued: Gauge,
    runtimes: Gauge,
    storage: [Counter; STORAGE_OPS.len()],
}

pub(crate) static JS_STATS: JsStats = JsStats {
    outcomes: [const { Counter::new() }; OUTCOMES.len()],
    duration: Histogram::seconds(&REQUEST_BUCKETS),
    queued: Gauge::new(),
    runtimes: Gauge::new(),
    storage: [const { Counter::new() }; STORAGE_OPS.len()],
};

/// An invocation the queue refused (the server answered 503).
pub(crate) fn count_shed() {
    JS_STATS.count(Outcome::Shed);
}

/// A storage call of a script that reached its site's host; `op` is one of [`STORAGE_OPS`].
pub(crate) fn count_storage(op: &str) {
    if let Some(i) = STORAGE_OPS.iter().position(|&known| known == op) {
        JS_STATS.storage[i].inc();
    }
}

impl JsStats {
    pub(crate) fn count(&self, outcome: Outcome) {
        let i = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .unwrap_or(0);
        self.outcomes[i].inc();
    }

    /// An invocation ended `elapsed` after the core thread handed it over.
    pub(crate) fn finished(&self, outcome: Outcome, elapsed: Duration) {
        self.count(outcome);
        self.duration.observe(elapsed);
    }

    #[cfg(test)]
    pub(crate) fn outcome_count(&self, outcome: Outcome) -> u64 {
        let i = OUTCOMES
            .iter()
            .position(|(o, _)| *o == outcome)
            .unwrap_or(0);
        self.outcomes[i].get()
    }

    pub(crate) fn queued(&self) -> &Gauge {
        &self.queued
    }

    pub(crate) fn runtimes(&self) -> &Gauge {
        &self.runtimes
    }
}

static INVOCATIONS: Desc = Desc::new(
    Kind::Counter,
    "fazt_js_invocations_total",
    "js.invocations",
    "JavaScript invocations by outcome (ok, error, timeout, memory, shed: refused by a full queue)",
)
.labelled("outcome");
static DURATION: Desc = Desc::new(
    Kind::Histogram,
    "fazt_js_duration_seconds",
    "js.duration_seconds",
    "JavaScript invocations from the hand-over by the core thread (queue wait included) to the answer",
);
static QUEUE_DEPTH: Desc = Desc::new(
    Kind::Gauge,
    "fazt_js_queue_depth",
    "js.queue_depth",
    "JavaScript invocations waiting for a worker",
);
static RUNTIMES: Desc = Desc::new(
    Kind::Gauge,
    "fazt_js_runtimes",
    "js.runtimes",
    "QuickJS runtimes alive (sites' sandboxes kept by the JS workers)",
);
static STORAGE: Desc = Desc::new(
    Kind::Counter,
    "fazt_js_storage_ops_total",
    "js.storage_ops",
    "kv, ds and socket calls made by scripts, by operation",
)
.labelled("op");

impl Source for JsStats {
    fn collect(&self, out: &mut Collector) {
        for (i, (_, label)) in OUTCOMES.iter().enumerate() {
            out.int_with(&INVOCATIONS, label, self.outcomes[i].get());
        }
        out.histogram(&DURATION, &self.duration);
        out.int(&QUEUE_DEPTH, self.queued.get().max(0));
        out.int(&RUNTIMES, self.runtimes.get().max(0));
        for (i, op) in STORAGE_OPS.iter().enumerate() {
            out.int_with(&STORAGE, op, self.storage[i].get());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::metrics::Registry;

    #[test]
    fn every_family_renders_with_its_labels() {
        count_shed();
        count_storage("ds_update");
        count_storage("socket_broadcast");
        count_storage("not an op");
        let text = Registry::new().with(&JS_STATS).render_prometheus();
        for line in [
            "# TYPE fazt_js_invocations_total counter",
            "# TYPE fazt_js_duration_seconds histogram",
            "# TYPE fazt_js_queue_depth gauge",
            "# TYPE fazt_js_runtimes gauge",
            "fazt_js_storage_ops_total{op=\"kv_get\"}",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
        for outcome in ["ok", "error", "timeout", "memory", "shed"] {
            let series = format!("fazt_js_invocations_total{{outcome=\"{outcome}\"}}");
            assert!(text.contains(&series), "{series}");
        }
        let ds_update = text
            .lines()
            .find(|l| l.starts_with("fazt_js_storage_ops_total{op=\"ds_update\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert!(ds_update >= Some(1), "{ds_update:?}");
        let broadcasts = text
            .lines()
            .find(|l| l.starts_with("fazt_js_storage_ops_total{op=\"socket_broadcast\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        assert!(broadcasts >= Some(1), "{broadcasts:?}");
        assert!(JS_STATS.outcome_count(Outcome::Shed) >= 1);
        let json = Registry::new().with(&JS_STATS).to_json();
        assert!(
            json["js"]["invocations"]["shed"].as_i64() >= Some(1),
            "{json}"
        );
    }
}
