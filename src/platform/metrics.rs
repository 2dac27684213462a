//! Process-wide counters, read by `/metrics` (Prometheus text) and `/api/system/health`.
//! Plain relaxed atomics: each counter is independent and only ever read for reporting.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

pub struct Counter(AtomicU64);

impl Counter {
    pub const fn new() -> Counter {
        Counter(AtomicU64::new(0))
    }
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

impl Default for Counter {
    fn default() -> Self {
        Counter::new()
    }
}

pub struct Gauge(AtomicI64);

impl Gauge {
    pub const fn new() -> Gauge {
        Gauge(AtomicI64::new(0))
    }
    pub fn inc(&self) -> i64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Upper bounds (seconds) of latency histogram buckets: from a sub-millisecond admin
/// request to a large deploy commit.
pub const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0,
];

pub struct Histogram {
    buckets: [Counter; LATENCY_BUCKETS.len()],
    count: Counter,
    sum_micros: Counter,
}

impl Histogram {
    pub const fn new() -> Histogram {
        Histogram {
            buckets: [const { Counter::new() }; LATENCY_BUCKETS.len()],
            count: Counter::new(),
            sum_micros: Counter::new(),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64();
        if let Some(i) = LATENCY_BUCKETS.iter().position(|&b| secs <= b) {
            self.buckets[i].inc();
        }
        self.count.inc();
        self.sum_micros
            .add(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    pub fn count(&self) -> u64 {
        self.count.get()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros.get() as f64 / 1e6
    }

    /// Appends the histogram in the Prometheus text format.
    pub fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cumulative = 0;
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.buckets) {
            cumulative += bucket.get();
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {cumulative}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count.get());
        let _ = writeln!(out, "{name}_sum {}", self.sum_micros.get() as f64 / 1e6);
        let _ = writeln!(out, "{name}_count {}", self.count.get());
    }
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

pub struct Metrics {
    pub connections_open: Gauge,
    pub connections_accepted: Counter,
    /// Refused with 503 because the connection cap was reached.
    pub connections_rejected: Counter,
    pub accept_errors: Counter,
    pub requests_by_class: [Counter; 5],
    /// Requests answered 503 because a queue or cap was full.
    pub shed_requests: Counter,
    pub limit_400: Counter,
    pub limit_408: Counter,
    pub limit_413: Counter,
    pub limit_431: Counter,
    pub write_timeouts: Counter,
    pub admin_requests: Counter,
    pub admin_latency: Histogram,
}

pub static METRICS: Metrics = Metrics {
    connections_open: Gauge::new(),
    connections_accepted: Counter::new(),
    connections_rejected: Counter::new(),
    accept_errors: Counter::new(),
    requests_by_class: [const { Counter::new() }; 5],
    shed_requests: Counter::new(),
    limit_400: Counter::new(),
    limit_408: Counter::new(),
    limit_413: Counter::new(),
    limit_431: Counter::new(),
    write_timeouts: Counter::new(),
    admin_requests: Counter::new(),
    admin_latency: Histogram::new(),
};

impl Metrics {
    pub fn count_status(&self, status: u16) {
        if let Some(c) = self
            .requests_by_class
            .get((status / 100).wrapping_sub(1) as usize)
        {
            c.inc();
        }
    }

    pub fn count_limit(&self, status: u16) {
        match status {
            400 => self.limit_400.inc(),
            408 => self.limit_408.inc(),
            413 => self.limit_413.inc(),
            431 => self.limit_431.inc(),
            _ => {}
        }
    }

    /// Counters as JSON for `/api/system/health`.
    pub fn to_json(&self) -> serde_json::Value {
        let classes = &self.requests_by_class;
        serde_json::json!({
            "connections_open": self.connections_open.get(),
            "connections_accepted": self.connections_accepted.get(),
            "connections_rejected": self.connections_rejected.get(),
            "accept_errors": self.accept_errors.get(),
            "requests": {
                "1xx": classes[0].get(), "2xx": classes[1].get(), "3xx": classes[2].get(),
                "4xx": classes[3].get(), "5xx": classes[4].get(),
            },
            "shed_requests": self.shed_requests.get(),
            "limit_violations": {
                "400": self.limit_400.get(), "408": self.limit_408.get(),
                "413": self.limit_413.get(), "431": self.limit_431.get(),
            },
            "write_timeouts": self.write_timeouts.get(),
            "admin_requests": self.admin_requests.get(),
            "resident_memory_bytes": resident_memory_bytes(),
        })
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut one = |name: &str, kind: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        one(
            "fazt_connections_open",
            "gauge",
            "Open client connections.",
            self.connections_open.get().to_string(),
        );
        one(
            "fazt_connections_accepted_total",
            "counter",
            "Accepted connections.",
            self.connections_accepted.get().to_string(),
        );
        one(
            "fazt_connections_rejected_total",
            "counter",
            "Connections refused with 503 at the connection cap.",
            self.connections_rejected.get().to_string(),
        );
        one(
            "fazt_accept_errors_total",
            "counter",
            "accept() failures survived (including out of file descriptors).",
            self.accept_errors.get().to_string(),
        );
        one(
            "fazt_shed_requests_total",
            "counter",
            "Requests answered 503 because a queue or cap was full.",
            self.shed_requests.get().to_string(),
        );
        one(
            "fazt_write_timeouts_total",
            "counter",
            "Connections closed because the client stopped reading.",
            self.write_timeouts.get().to_string(),
        );
        one(
            "fazt_admin_requests_total",
            "counter",
            "Requests handled by the admin thread.",
            self.admin_requests.get().to_string(),
        );
        one(
            "fazt_resident_memory_bytes",
            "gauge",
            "Resident set size of the process.",
            resident_memory_bytes().to_string(),
        );
        let _ = writeln!(out, "# HELP fazt_requests_total Responses sent, by status class.\n# TYPE fazt_requests_total counter");
        for (i, c) in self.requests_by_class.iter().enumerate() {
            let _ = writeln!(
                out,
                "fazt_requests_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.get()
            );
        }
        let _ = writeln!(out, "# HELP fazt_limit_violations_total Requests refused by a protocol limit, by status.\n# TYPE fazt_limit_violations_total counter");
        for (status, c) in [
            (400, &self.limit_400),
            (408, &self.limit_408),
            (413, &self.limit_413),
            (431, &self.limit_431),
        ] {
            let _ = writeln!(
                out,
                "fazt_limit_violations_total{{status=\"{status}\"}} {}",
                c.get()
            );
        }
        self.admin_latency.render(
            &mut out,
            "fazt_admin_request_duration_seconds",
            "Admin request handling time.",
        );
        out
    }
}

/// Resident set size from `/proc/self/statm` (pages × page size; 4 KiB pages on our targets).
pub fn resident_memory_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}
