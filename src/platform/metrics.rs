//! The one metrics registry: primitives (counters, gauges, histograms) that hot paths
//! update with relaxed atomics, and one description of every metric, from which both
//! `/metrics` (Prometheus text, 0.0.4) and the JSON of `/api/system/health` are rendered.
//!
//! Each owner of metrics implements [`Source`]: at scrape time it reports every metric it
//! owns to a [`Collector`], with its [`Desc`] (name, help, kind, JSON path, label). Values
//! that are not counted but measured (disk space, cache bytes, RSS) are read right there,
//! so gauges are never stale. [`Registry`] holds the sources and renders both formats
//! from the same gathered families, so the two outputs cannot disagree about what exists.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;
use Kind::{Counter as C, Gauge as G, Histogram as H};

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

impl Default for Gauge {
    fn default() -> Self {
        Gauge::new()
    }
}

// ---------------------------------------------------------------------------------------
// Histograms
// ---------------------------------------------------------------------------------------

/// Nanoseconds per second: duration histograms count in nanoseconds, so a cached static
/// request of a few microseconds still adds to the sum.
const NANOS: f64 = 1e9;

/// Upper bounds (nanoseconds) of the writer's and event pipeline's latency buckets: from a
/// sub-millisecond job to a large deploy commit.
pub(crate) const LATENCY_BUCKETS: [u64; 12] = [
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    30_000_000_000,
];

/// Upper bounds (nanoseconds) of request-duration buckets: a cached file is answered in
/// tens of microseconds, a 100 MB deploy in seconds; one set serves every route class so
/// the classes can be compared bucket by bucket.
pub(crate) const REQUEST_BUCKETS: [u64; 16] = [
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    500_000_000,
    1_000_000_000,
    5_000_000_000,
    30_000_000_000,
];

/// A histogram over fixed bucket bounds. Each observation costs two relaxed atomic adds
/// (its bucket and the sum); the count is the sum of the buckets, so the `+Inf` bucket
/// equals `_count` in every snapshot.
pub struct Histogram<const N: usize> {
    bounds: &'static [u64; N],
    /// What one unit of `bounds` and of the sum is worth in the rendered value
    /// (1e9 for durations kept in nanoseconds, 1 for plain counts).
    per_unit: f64,
    /// `buckets[i]` counts values in `(bounds[i-1], bounds[i]]`; `buckets[N]` those above.
    buckets: [Counter; N],
    overflow: Counter,
    sum: Counter,
}

impl<const N: usize> Histogram<N> {
    /// A histogram of durations; `bounds` in nanoseconds, rendered in seconds.
    pub const fn seconds(bounds: &'static [u64; N]) -> Histogram<N> {
        Histogram::with_unit(bounds, NANOS)
    }

    /// A histogram of plain counts (sizes), rendered as they are.
    pub const fn counts(bounds: &'static [u64; N]) -> Histogram<N> {
        Histogram::with_unit(bounds, 1.0)
    }

    const fn with_unit(bounds: &'static [u64; N], per_unit: f64) -> Histogram<N> {
        Histogram {
            bounds,
            per_unit,
            buckets: [const { Counter::new() }; N],
            overflow: Counter::new(),
            sum: Counter::new(),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        self.observe_value(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    }

    pub fn observe_value(&self, value: u64) {
        let i = self.bounds.partition_point(|&bound| bound < value);
        self.buckets.get(i).unwrap_or(&self.overflow).inc();
        self.sum.add(value);
    }

    pub fn count(&self) -> u64 {
        self.buckets.iter().map(Counter::get).sum::<u64>() + self.overflow.get()
    }

    /// The sum of observed values in rendered units (seconds for durations).
    pub fn sum(&self) -> f64 {
        self.sum.get() as f64 / self.per_unit
    }

    fn snapshot(&self) -> HistogramSnapshot {
        let mut cumulative = Vec::with_capacity(N);
        let mut total = 0;
        for bucket in &self.buckets {
            total += bucket.get();
            cumulative.push(total);
        }
        HistogramSnapshot {
            bounds: self
                .bounds
                .iter()
                .map(|&b| b as f64 / self.per_unit)
                .collect(),
            cumulative,
            count: total + self.overflow.get(),
            sum: self.sum(),
        }
    }
}

/// One read of a histogram: cumulative bucket counts, as both renderers need them.
#[derive(Debug, Clone, PartialEq)]
struct HistogramSnapshot {
    bounds: Vec<f64>,
    cumulative: Vec<u64>,
    count: u64,
    sum: f64,
}

// ---------------------------------------------------------------------------------------
// Descriptions and collection
// ---------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// A constant `1` whose labels carry the information (`fazt_build_info`); in JSON the
    /// label value itself.
    Info,
}

impl Kind {
    fn prometheus(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge | Kind::Info => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a metric is, declared once by its owner.
#[derive(Debug)]
pub struct Desc {
    /// The Prometheus family name (`_total` for counters, base units, `_ratio` for 0..1).
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Where the value goes in the health JSON: keys joined with `.`. A labelled family
    /// becomes an object keyed by label value.
    pub json: &'static str,
    /// The one label of a family (`class`, `status`, `path`...), if it has one.
    pub label: Option<&'static str>,
}

impl Desc {
    pub const fn new(
        kind: Kind,
        name: &'static str,
        json: &'static str,
        help: &'static str,
    ) -> Desc {
        Desc {
            name,
            help,
            kind,
            json,
            label: None,
        }
    }

    pub const fn labelled(self, label: &'static str) -> Desc {
        Desc {
            label: Some(label),
            ..self
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Int(i64),
    Float(f64),
    Histogram(HistogramSnapshot),
    /// An info metric: the value of its label, rendered as `1` in Prometheus.
    Info,
}

#[derive(Debug)]
struct Sample {
    label: Option<String>,
    value: Value,
}

/// One metric family as gathered for rendering.
#[derive(Debug)]
pub struct Family {
    pub desc: &'static Desc,
    samples: Vec<Sample>,
}

/// Receives the metrics of each [`Source`] at scrape time.
#[derive(Default)]
pub struct Collector {
    families: Vec<Family>,
}

impl Collector {
    fn push(&mut self, desc: &'static Desc, label: Option<String>, value: Value) {
        debug_assert_eq!(
            desc.label.is_some(),
            label.is_some(),
            "{}: a label value exactly when the family declares a label",
            desc.name
        );
        let sample = Sample { label, value };
        match self.families.last_mut() {
            Some(family) if std::ptr::eq(family.desc, desc) => family.samples.push(sample),
            _ => self.families.push(Family {
                desc,
                samples: vec![sample],
            }),
        }
    }

    /// A counter or integer gauge without labels.
    pub fn int(&mut self, desc: &'static Desc, value: impl TryInto<i64>) {
        self.push(desc, None, Value::Int(saturate(value)));
    }

    /// A gauge with a fractional value (ratios, unix times).
    pub fn float(&mut self, desc: &'static Desc, value: f64) {
        self.push(desc, None, Value::Float(value));
    }

    /// One series of a labelled family; call once per label value, in a row.
    pub fn int_with(&mut self, desc: &'static Desc, label: &str, value: impl TryInto<i64>) {
        self.push(desc, Some(label.to_string()), Value::Int(saturate(value)));
    }

    pub fn float_with(&mut self, desc: &'static Desc, label: &str, value: f64) {
        self.push(desc, Some(label.to_string()), Value::Float(value));
    }

    pub fn histogram<const N: usize>(&mut self, desc: &'static Desc, h: &Histogram<N>) {
        self.push(desc, None, Value::Histogram(h.snapshot()));
    }

    pub fn histogram_with<const N: usize>(
        &mut self,
        desc: &'static Desc,
        label: &str,
        h: &Histogram<N>,
    ) {
        self.push(
            desc,
            Some(label.to_string()),
            Value::Histogram(h.snapshot()),
        );
    }

    /// An info metric: `name{label="value"} 1`, and `"value"` in JSON.
    pub fn info(&mut self, desc: &'static Desc, value: &str) {
        self.push(desc, Some(value.to_string()), Value::Info);
    }

    /// A family that has no series right now (e.g. no watched path could be measured)
    /// still renders its HELP and TYPE, so scrapers and the JSON see it exists.
    pub fn empty(&mut self, desc: &'static Desc) {
        if !self
            .families
            .last()
            .is_some_and(|f| std::ptr::eq(f.desc, desc))
        {
            self.families.push(Family {
                desc,
                samples: Vec::new(),
            });
        }
    }
}

fn saturate(value: impl TryInto<i64>) -> i64 {
    value.try_into().unwrap_or(i64::MAX)
}

/// An owner of metrics.
pub trait Source {
    fn collect(&self, out: &mut Collector);
}

/// The sources of one scrape, in the order they are rendered.
#[derive(Default)]
pub struct Registry<'a> {
    sources: Vec<&'a dyn Source>,
}

impl<'a> Registry<'a> {
    pub fn new() -> Registry<'a> {
        Registry::default()
    }

    pub fn with(mut self, source: &'a dyn Source) -> Registry<'a> {
        self.sources.push(source);
        self
    }

    pub fn gather(&self) -> Vec<Family> {
        let mut out = Collector::default();
        for source in &self.sources {
            source.collect(&mut out);
        }
        out.families
    }

    /// The Prometheus text exposition format, version 0.0.4.
    pub fn render_prometheus(&self) -> String {
        render_prometheus(&self.gather())
    }

    /// One JSON object holding every metric at its `Desc::json` path.
    pub fn to_json(&self) -> serde_json::Value {
        render_json(&self.gather())
    }
}

// ---------------------------------------------------------------------------------------
// Renderers
// ---------------------------------------------------------------------------------------

pub(crate) fn render_prometheus(families: &[Family]) -> String {
    let mut out = String::with_capacity(8192);
    for family in families {
        let desc = family.desc;
        let name = desc.name;
        let _ = writeln!(out, "# HELP {name} {}", escape_help(desc.help));
        let _ = writeln!(out, "# TYPE {name} {}", desc.kind.prometheus());
        for sample in &family.samples {
            let label = match (desc.label, &sample.label) {
                (Some(key), Some(value)) => Some((key, escape_label(value))),
                _ => None,
            };
            write_sample(&mut out, name, label, &sample.value);
        }
    }
    out
}

fn write_sample(out: &mut String, name: &str, label: Option<(&str, String)>, value: &Value) {
    let labels = |extra: Option<String>| -> String {
        let mut parts: Vec<String> = Vec::new();
        if let Some((key, value)) = &label {
            parts.push(format!("{key}=\"{value}\""));
        }
        parts.extend(extra);
        if parts.is_empty() {
            String::new()
        } else {
            format!("{{{}}}", parts.join(","))
        }
    };
    match value {
        Value::Int(v) => {
            let _ = writeln!(out, "{name}{} {v}", labels(None));
        }
        Value::Float(v) => {
            let _ = writeln!(out, "{name}{} {}", labels(None), float(*v));
        }
        Value::Info => {
            let _ = writeln!(out, "{name}{} 1", labels(None));
        }
        Value::Histogram(h) => {
            for (bound, n) in h.bounds.iter().zip(&h.cumulative) {
                let le = format!("le=\"{}\"", float(*bound));
                let _ = writeln!(out, "{name}_bucket{} {n}", labels(Some(le)));
            }
            let inf = labels(Some("le=\"+Inf\"".to_string()));
            let _ = writeln!(out, "{name}_bucket{inf} {}", h.count);
            let _ = writeln!(out, "{name}_sum{} {}", labels(None), float(h.sum));
            let _ = writeln!(out, "{name}_count{} {}", labels(None), h.count);
        }
    }
}

/// A float as Prometheus (and Go's `strconv.ParseFloat`) reads it.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_string()
    } else {
        v.to_string()
    }
}

/// HELP text escapes only `\` and newline (format 0.0.4).
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Label values escape `\`, `"` and newline (format 0.0.4).
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn render_json(families: &[Family]) -> serde_json::Value {
    let mut root = serde_json::Map::new();
    for family in families {
        let value = family_json(family);
        insert_at(&mut root, family.desc.json, value);
    }
    serde_json::Value::Object(root)
}

fn family_json(family: &Family) -> serde_json::Value {
    use serde_json::Value as J;
    let labelled = family.desc.label.is_some() && family.desc.kind != Kind::Info;
    if labelled {
        let map = family
            .samples
            .iter()
            .map(|s| (s.label.clone().unwrap_or_default(), value_json(s)))
            .collect();
        return J::Object(map);
    }
    family.samples.first().map_or(J::Null, value_json)
}

fn value_json(sample: &Sample) -> serde_json::Value {
    use serde_json::json;
    match &sample.value {
        Value::Int(v) => json!(v),
        Value::Float(v) if v.is_finite() => json!(v),
        Value::Float(_) => serde_json::Value::Null,
        Value::Histogram(h) => json!({ "count": h.count, "sum": h.sum }),
        Value::Info => json!(sample.label.as_deref().unwrap_or_default()),
    }
}

/// Puts `value` at the dotted `path` of `root`. A path through a non-object is a
/// declaration bug (caught by the registry tests); the later value wins there.
fn insert_at(
    root: &mut serde_json::Map<String, serde_json::Value>,
    path: &str,
    value: serde_json::Value,
) {
    let mut keys = path.split('.');
    let last = keys.next_back().unwrap_or(path);
    let mut node = root;
    for key in keys {
        let entry = node
            .entry(key.to_string())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(serde_json::Map::new());
        }
        let serde_json::Value::Object(map) = entry else {
            return;
        };
        node = map;
    }
    node.insert(last.to_string(), value);
}

// ---------------------------------------------------------------------------------------
// The server's own counters
// ---------------------------------------------------------------------------------------

/// Which part of fazt answered a request, for the request-duration histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteClass {
    /// Sites, the unknown-host page and liveness, answered by a core thread.
    Static,
    /// Analytics endpoints (`/track`, `/pixel.gif`, `/r/...`).
    Ingest,
    /// The admin API, timed from when the request was read to when it was answered.
    Admin,
    /// `POST /api/deploy`, from hand-over to the deploy thread to its answer.
    Deploy,
}

impl RouteClass {
    pub(crate) const ALL: [RouteClass; 4] = [
        RouteClass::Static,
        RouteClass::Ingest,
        RouteClass::Admin,
        RouteClass::Deploy,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            RouteClass::Static => "static",
            RouteClass::Ingest => "ingest",
            RouteClass::Admin => "admin",
            RouteClass::Deploy => "deploy",
        }
    }
}

/// Records how long a request of `class` took to answer.
pub(crate) fn observe(class: RouteClass, elapsed: Duration) {
    METRICS.request_duration[class as usize].observe(elapsed);
}

/// Which side of a connection moved slower than its minimum rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RatePhase {
    /// The client sending a request body.
    Body,
    /// The client reading a response.
    Response,
}

impl RatePhase {
    const ALL: [RatePhase; 2] = [RatePhase::Body, RatePhase::Response];

    fn label(self) -> &'static str {
        match self {
            RatePhase::Body => "body",
            RatePhase::Response => "response",
        }
    }
}

/// How a TLS handshake ended (issue #12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    Ok,
    /// Not TLS, or a TLS error (garbage instead of a ClientHello, no common cipher).
    ProtocolError,
    /// The client closed (or a record was cut off) before the handshake completed.
    Closed,
    /// The handshake deadline passed.
    Timeout,
    /// Closed at once: the core thread had its cap of handshakes in progress.
    OverCap,
}

impl Handshake {
    const ALL: [Handshake; 5] = [
        Handshake::Ok,
        Handshake::ProtocolError,
        Handshake::Closed,
        Handshake::Timeout,
        Handshake::OverCap,
    ];

    fn label(self) -> &'static str {
        match self {
            Handshake::Ok => "ok",
            Handshake::ProtocolError => "protocol_error",
            Handshake::Closed => "closed",
            Handshake::Timeout => "timeout",
            Handshake::OverCap => "over_cap",
        }
    }
}

/// Statuses counted by `fazt_limit_violations_total`.
const LIMIT_STATUSES: [u16; 5] = [400, 408, 413, 414, 431];

pub struct Metrics {
    pub connections_open: Gauge,
    pub connections_accepted: Counter,
    /// Refused with 503 because the connection cap was reached.
    pub connections_rejected: Counter,
    pub accept_errors: Counter,
    /// Responses by status class, 1xx to 5xx.
    pub requests_by_class: [Counter; 5],
    /// Requests answered 503 because a queue or cap was full.
    pub shed_requests: Counter,
    /// By [`LIMIT_STATUSES`].
    limit_violations: [Counter; LIMIT_STATUSES.len()],
    pub write_timeouts: Counter,
    pub admin_requests: Counter,
    /// Bytes of streamed bodies (files too large to cache) the socket took: counted by the
    /// connection as it writes them, reported by the file cache as `cache.streamed_bytes`.
    pub streamed_bytes: Counter,
    // Fair shares per client (issue #11).
    /// Refused with 503 because the client address held its share of the connections.
    pub connections_over_share: Counter,
    /// Connections cut for transferring slower than the floor, by [`RatePhase`].
    rate_cuts: [Counter; RatePhase::ALL.len()],
    // TLS (issue #12).
    /// By [`Handshake`].
    tls_handshakes: [Counter; Handshake::ALL.len()],
    /// Completed handshakes that resumed a session (ticket or session ID).
    pub tls_resumed: Counter,
    /// By [`RouteClass`].
    request_duration: [Histogram<{ REQUEST_BUCKETS.len() }>; RouteClass::ALL.len()],
}

pub static METRICS: Metrics = Metrics {
    connections_open: Gauge::new(),
    connections_accepted: Counter::new(),
    connections_rejected: Counter::new(),
    accept_errors: Counter::new(),
    requests_by_class: [const { Counter::new() }; 5],
    shed_requests: Counter::new(),
    limit_violations: [const { Counter::new() }; LIMIT_STATUSES.len()],
    write_timeouts: Counter::new(),
    admin_requests: Counter::new(),
    streamed_bytes: Counter::new(),
    connections_over_share: Counter::new(),
    rate_cuts: [const { Counter::new() }; RatePhase::ALL.len()],
    tls_handshakes: [const { Counter::new() }; Handshake::ALL.len()],
    tls_resumed: Counter::new(),
    request_duration: [const { Histogram::seconds(&REQUEST_BUCKETS) }; RouteClass::ALL.len()],
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

    /// Counts a connection cut for transferring slower than the floor.
    pub fn count_rate_cut(&self, phase: RatePhase) {
        self.rate_cuts[phase as usize].inc();
    }

    pub fn count_handshake(&self, end: Handshake) {
        self.tls_handshakes[end as usize].inc();
    }

    pub fn count_limit(&self, status: u16) {
        if let Some(i) = LIMIT_STATUSES.iter().position(|&s| s == status) {
            self.limit_violations[i].inc();
        }
    }
}

static CONNECTIONS_OPEN: Desc = Desc::new(
    G,
    "fazt_connections_open",
    "counters.connections_open",
    "Open client connections.",
);
static CONNECTIONS_ACCEPTED: Desc = Desc::new(
    C,
    "fazt_connections_accepted_total",
    "counters.connections_accepted",
    "Accepted connections.",
);
static CONNECTIONS_REJECTED: Desc = Desc::new(
    C,
    "fazt_connections_rejected_total",
    "counters.connections_rejected",
    "Connections refused with 503 at the connection cap.",
);
static ACCEPT_ERRORS: Desc = Desc::new(
    C,
    "fazt_accept_errors_total",
    "counters.accept_errors",
    "accept() failures survived (including out of file descriptors).",
);
static REQUESTS: Desc = Desc::new(
    C,
    "fazt_requests_total",
    "counters.requests",
    "Responses sent, by status class.",
)
.labelled("class");
static SHED: Desc = Desc::new(
    C,
    "fazt_shed_requests_total",
    "counters.shed_requests",
    "Requests answered 503 because a queue or cap was full.",
);
static LIMIT_VIOLATIONS: Desc = Desc::new(
    C,
    "fazt_limit_violations_total",
    "counters.limit_violations",
    "Requests refused by a protocol limit, by status.",
)
.labelled("status");
static WRITE_TIMEOUTS: Desc = Desc::new(
    C,
    "fazt_write_timeouts_total",
    "counters.write_timeouts",
    "Connections closed because the client stopped reading.",
);
static CONNECTIONS_OVER_SHARE: Desc = Desc::new(
    C,
    "fazt_connections_over_share_total",
    "counters.connections_over_share",
    "Connections refused with 503 because their client address held its share (FAZT_CONNS_PER_CLIENT).",
);
static RATE_CUTS: Desc = Desc::new(
    C,
    "fazt_rate_cuts_total",
    "counters.rate_cuts",
    "Connections cut for sending a body or reading a response slower than the minimum rate, by phase.",
)
.labelled("phase");
static TLS_HANDSHAKES: Desc = Desc::new(
    C,
    "fazt_tls_handshakes_total",
    "counters.tls_handshakes",
    "TLS handshakes by how they ended: ok, protocol_error, closed, timeout, over_cap.",
)
.labelled("result");
static TLS_RESUMED: Desc = Desc::new(
    C,
    "fazt_tls_resumed_total",
    "counters.tls_resumed",
    "Completed TLS handshakes that resumed a session (resumption rate: this over result=ok).",
);
static ADMIN_REQUESTS: Desc = Desc::new(
    C,
    "fazt_admin_requests_total",
    "counters.admin_requests",
    "Requests handled by the admin thread.",
);
static REQUEST_DURATION: Desc = Desc::new(
    H,
    "fazt_request_duration_seconds",
    "counters.request_duration_seconds",
    "Time from a complete request to its response, by route class.",
)
.labelled("class");

impl Source for Metrics {
    fn collect(&self, out: &mut Collector) {
        out.int(&CONNECTIONS_OPEN, self.connections_open.get());
        out.int(&CONNECTIONS_ACCEPTED, self.connections_accepted.get());
        out.int(&CONNECTIONS_REJECTED, self.connections_rejected.get());
        out.int(&ACCEPT_ERRORS, self.accept_errors.get());
        for (class, c) in ["1xx", "2xx", "3xx", "4xx", "5xx"]
            .iter()
            .zip(&self.requests_by_class)
        {
            out.int_with(&REQUESTS, class, c.get());
        }
        out.int(&SHED, self.shed_requests.get());
        for (status, c) in LIMIT_STATUSES.iter().zip(&self.limit_violations) {
            out.int_with(&LIMIT_VIOLATIONS, &status.to_string(), c.get());
        }
        out.int(&WRITE_TIMEOUTS, self.write_timeouts.get());
        out.int(&ADMIN_REQUESTS, self.admin_requests.get());
        out.int(&CONNECTIONS_OVER_SHARE, self.connections_over_share.get());
        for (phase, c) in RatePhase::ALL.iter().zip(&self.rate_cuts) {
            out.int_with(&RATE_CUTS, phase.label(), c.get());
        }
        for (end, c) in Handshake::ALL.iter().zip(&self.tls_handshakes) {
            out.int_with(&TLS_HANDSHAKES, end.label(), c.get());
        }
        out.int(&TLS_RESUMED, self.tls_resumed.get());
        for (class, h) in RouteClass::ALL.iter().zip(&self.request_duration) {
            out.histogram_with(&REQUEST_DURATION, class.label(), h);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The process
// ---------------------------------------------------------------------------------------

/// The standard `process_*` metrics and `fazt_build_info`, read from `/proc` at scrape time.
pub(crate) struct Process;

static RESIDENT_MEMORY: Desc = Desc::new(
    G,
    "process_resident_memory_bytes",
    "process.resident_memory_bytes",
    "Resident memory size in bytes.",
);
static OPEN_FDS: Desc = Desc::new(
    G,
    "process_open_fds",
    "process.open_fds",
    "Number of open file descriptors.",
);
static START_TIME: Desc = Desc::new(
    G,
    "process_start_time_seconds",
    "process.start_time_seconds",
    "Start time of the process since the unix epoch in seconds.",
);
static BUILD_INFO: Desc = Desc::new(
    Kind::Info,
    "fazt_build_info",
    "version",
    "The running fazt build; the value is always 1.",
)
.labelled("version");

impl Source for Process {
    fn collect(&self, out: &mut Collector) {
        match resident_memory_bytes() {
            Some(bytes) => out.int(&RESIDENT_MEMORY, bytes),
            None => out.empty(&RESIDENT_MEMORY),
        }
        match open_fds() {
            Some(n) => out.int(&OPEN_FDS, n),
            None => out.empty(&OPEN_FDS),
        }
        match start_time_seconds() {
            Some(t) => out.float(&START_TIME, t),
            None => out.empty(&START_TIME),
        }
        out.info(&BUILD_INFO, env!("CARGO_PKG_VERSION"));
    }
}

/// Resident set size: `/proc/self/statm`'s resident pages × the page size from `sysconf`.
fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages.saturating_mul(super::sys::page_size()?))
}

/// Open descriptors, not counting the one used to list them.
fn open_fds() -> Option<u64> {
    let listed = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(listed.saturating_sub(1))
}

/// Boot time (`/proc/stat` `btime`) plus the process's start in clock ticks after boot
/// (`/proc/self/stat` field 22), as Prometheus client libraries compute it.
fn start_time_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let ticks = parse_start_ticks(&stat)?;
    let boot = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = boot
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let per_second = super::sys::clock_ticks_per_second()?;
    Some(btime as f64 + ticks as f64 / per_second as f64)
}

/// Field 22 (`starttime`) of a `/proc/<pid>/stat` line. The command name (field 2) may
/// hold spaces and parentheses, so fields are counted from its closing `)`.
fn parse_start_ticks(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    // Fields 3.. follow the name; starttime is the 20th of them.
    after_name.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    static TEST_DESC: Desc = Desc::new(C, "t_total", "t.total", "A test counter.");
    static TEST_LABELLED: Desc =
        Desc::new(G, "t_ratio", "t.ratio", "Help with a \\ and\na newline.").labelled("path");
    static TEST_HIST: Desc = Desc::new(H, "t_seconds", "t.seconds", "Durations.").labelled("class");
    static TEST_EMPTY: Desc = Desc::new(G, "t_empty", "t.empty", "Nothing measured.");

    struct TestSource;

    impl Source for TestSource {
        fn collect(&self, out: &mut Collector) {
            out.int(&TEST_DESC, 7u64);
            out.float_with(&TEST_LABELLED, "/a\"b\\c\nd", 0.25);
            out.float_with(&TEST_LABELLED, "/e", 1.0);
            let h = Histogram::seconds(&LATENCY_BUCKETS);
            h.observe(Duration::from_micros(300));
            h.observe(Duration::from_millis(3));
            h.observe(Duration::from_secs(60));
            out.histogram_with(&TEST_HIST, "x", &h);
            out.empty(&TEST_EMPTY);
        }
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_inf_is_the_count() {
        let h = Histogram::seconds(&LATENCY_BUCKETS);
        h.observe(Duration::from_micros(300));
        h.observe(Duration::from_micros(500));
        h.observe(Duration::from_millis(3));
        h.observe(Duration::from_secs(60));
        let s = h.snapshot();
        assert_eq!(s.bounds[0], 0.0005);
        assert_eq!(
            s.cumulative[0], 2,
            "a value equal to a bound is in that bucket"
        );
        assert_eq!(s.cumulative[3], 3);
        assert_eq!(*s.cumulative.last().unwrap(), 3);
        assert_eq!(s.count, 4);
        assert!((s.sum - 60.0038).abs() < 1e-9, "{}", s.sum);
    }

    #[test]
    fn count_histograms_render_plain_values() {
        static BOUNDS: [u64; 5] = [1, 10, 100, 1000, 10000];
        let h = Histogram::counts(&BOUNDS);
        for n in [1, 7, 10, 11, 1000, 20000] {
            h.observe_value(n);
        }
        let s = h.snapshot();
        assert_eq!(s.bounds, vec![1.0, 10.0, 100.0, 1000.0, 10000.0]);
        assert_eq!(s.cumulative, vec![1, 3, 4, 5, 5]);
        assert_eq!((s.count, s.sum), (6, 21029.0));
    }

    #[test]
    fn prometheus_text_has_one_help_and_type_and_escapes() {
        let text = Registry::new().with(&TestSource).render_prometheus();
        let expected = "\
# HELP t_total A test counter.
# TYPE t_total counter
t_total 7
# HELP t_ratio Help with a \\\\ and\\na newline.
# TYPE t_ratio gauge
t_ratio{path=\"/a\\\"b\\\\c\\nd\"} 0.25
t_ratio{path=\"/e\"} 1
# HELP t_seconds Durations.
# TYPE t_seconds histogram
t_seconds_bucket{class=\"x\",le=\"0.0005\"} 1
";
        assert!(text.starts_with(expected), "{text}");
        assert!(
            text.contains("t_seconds_bucket{class=\"x\",le=\"30\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_seconds_bucket{class=\"x\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_seconds_count{class=\"x\"} 3\n"), "{text}");
        assert!(
            text.contains("t_seconds_sum{class=\"x\"} 60.0033\n"),
            "{text}"
        );
        assert!(text.ends_with("# HELP t_empty Nothing measured.\n# TYPE t_empty gauge\n"));
    }

    #[test]
    fn json_puts_each_family_at_its_path() {
        let json = Registry::new().with(&TestSource).to_json();
        assert_eq!(json["t"]["total"], 7);
        assert_eq!(json["t"]["ratio"]["/a\"b\\c\nd"], 0.25);
        assert_eq!(json["t"]["ratio"]["/e"], 1.0);
        assert_eq!(json["t"]["seconds"]["x"]["count"], 3);
        assert!(json["t"].as_object().unwrap().contains_key("empty"));
        assert!(json["t"]["empty"].is_null());
    }

    #[test]
    fn route_classes_are_observed_separately() {
        let before = METRICS.request_duration[RouteClass::Ingest as usize].count();
        observe(RouteClass::Ingest, Duration::from_micros(40));
        let after = METRICS.request_duration[RouteClass::Ingest as usize].count();
        assert_eq!(after, before + 1);
        let json = Registry::new().with(&METRICS).to_json();
        let ingest = &json["counters"]["request_duration_seconds"]["ingest"];
        assert!(ingest["count"].as_u64().unwrap() >= 1, "{json}");
        for class in RouteClass::ALL {
            assert!(json["counters"]["request_duration_seconds"][class.label()].is_object());
        }
    }

    #[test]
    fn limit_statuses_are_counted_by_status() {
        let before = METRICS.limit_violations[2].get();
        METRICS.count_limit(413);
        METRICS.count_limit(404);
        assert_eq!(METRICS.limit_violations[2].get(), before + 1);
    }

    #[test]
    fn process_metrics_are_read_from_proc() {
        let rss = resident_memory_bytes().expect("statm");
        assert!(rss > 0 && rss.is_multiple_of(crate::platform::sys::page_size().unwrap()));
        let fds = open_fds().expect("fd dir");
        assert!(fds >= 3, "stdin, stdout and stderr at least: {fds}");
        let start = start_time_seconds().expect("start time");
        let now = crate::platform::clock::unix_now() as f64;
        assert!(
            start <= now + 1.0 && start > now - 86_400.0,
            "{start} vs {now}"
        );
    }

    #[test]
    fn start_ticks_skip_a_name_with_spaces_and_parens() {
        let line = "42 (a (b) c) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 12345 19 20";
        assert_eq!(parse_start_ticks(line), Some(12345));
        assert_eq!(parse_start_ticks("42 (x) S 1"), None);
    }
}
