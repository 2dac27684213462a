//! `/metrics` of a real server, read by a strict parser of the Prometheus text format
//! 0.0.4: one HELP and one TYPE per family before its samples, valid names, escaped label
//! values, cumulative histogram buckets whose `+Inf` equals `_count`, and Prometheus
//! naming conventions (`_total` counters, `_ratio` rather than `_percent`).

use crate::common::*;
use std::collections::{BTreeMap, HashMap, HashSet};

type Labels = Vec<(String, String)>;

/// One label set of a histogram: `(le, cumulative count)` buckets, `_count`, has `_sum`.
#[derive(Default)]
struct Series {
    buckets: Vec<(f64, f64)>,
    count: Option<f64>,
    has_sum: bool,
}

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

#[derive(Debug, Default)]
struct Family {
    help: Option<String>,
    kind: Option<String>,
    samples: Vec<Sample>,
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with("__")
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text.parse().map_err(|e| format!("value {text:?}: {e}")),
    }
}

/// HELP text: only `\\` and `\n` escapes.
fn unescape_help(text: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            other => return Err(format!("bad escape \\{other:?} in HELP {text:?}")),
        }
    }
    Ok(out)
}

/// `{a="x",b="y"}` at the start of `rest`; returns the labels and what follows.
fn parse_labels(rest: &str) -> Result<(Labels, &str), String> {
    let Some(mut rest) = rest.strip_prefix('{') else {
        return Ok((Vec::new(), rest));
    };
    let mut labels = Vec::new();
    loop {
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let (name, after) = rest
            .split_once("=\"")
            .ok_or_else(|| format!("label without =\" in {rest:?}"))?;
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err(format!("unterminated label value in {after:?}")),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label {name}")),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.iter().any(|(n, _)| n == name) {
            return Err(format!("label {name} repeated"));
        }
        labels.push((name.to_string(), value));
        rest = &after[end + 1..];
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected , or }} after label {name}: {rest:?}"));
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let (labels, rest) = parse_labels(&line[name_end..])?;
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut parts = rest.split(' ');
    let value = parse_value(parts.next().unwrap_or_default())?;
    if let Some(ts) = parts.next() {
        ts.parse::<i64>()
            .map_err(|e| format!("timestamp {ts:?}: {e}"))?;
    }
    if parts.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The family a sample name belongs to: histograms own `_bucket`, `_sum` and `_count`.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> &'a str {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix) {
            if families
                .get(base)
                .is_some_and(|f| f.kind.as_deref() == Some("histogram"))
            {
                return base;
            }
        }
    }
    name
}

/// Parses the whole exposition, enforcing the format's rules; panics naming the line.
fn parse(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the text ends with a newline");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut series = HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let fail = |why: String| -> ! { panic!("line {}: {why}\n{line}", n + 1) };
        let name = if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let help = unescape_help(help).unwrap_or_else(|e| fail(e));
            let family = families.entry(name.to_string()).or_default();
            if family.help.replace(help).is_some() {
                fail(format!("second HELP for {name}"));
            }
            name.to_string()
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| fail("TYPE without a type".into()));
            if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                fail(format!("unknown type {kind}"));
            }
            let family = families.entry(name.to_string()).or_default();
            if !family.samples.is_empty() {
                fail(format!("TYPE of {name} after its samples"));
            }
            if family.kind.replace(kind.to_string()).is_some() {
                fail(format!("second TYPE for {name}"));
            }
            name.to_string()
        } else if line.starts_with('#') || line.trim().is_empty() {
            fail("a comment or blank line (fazt writes neither)".into())
        } else {
            let sample = parse_sample(line).unwrap_or_else(|e| fail(e));
            let family = family_of(&sample.name, &families).to_string();
            let key = format!("{}{:?}", sample.name, sample.labels);
            if !series.insert(key) {
                fail("a duplicate series".into());
            }
            match families.get_mut(&family) {
                Some(f) if f.kind.is_some() => f.samples.push(sample),
                _ => fail(format!("a sample of {family} before its TYPE")),
            }
            family
        };
        if !valid_metric_name(&name) {
            fail(format!("bad metric name {name:?}"));
        }
        // A family's lines are contiguous: none may reopen after another began.
        if current.as_deref() != Some(name.as_str()) {
            if let Some(previous) = current.replace(name.clone()) {
                finished.insert(previous);
            }
            if finished.contains(&name) {
                fail(format!("{name} continues after another family"));
            }
        }
    }
    for (name, family) in &families {
        assert!(family.help.is_some(), "{name} has no HELP");
        assert!(family.kind.is_some(), "{name} has no TYPE");
    }
    families
}

/// Buckets ascend by `le`, counts never decrease, `+Inf` equals `_count`, `_sum` exists;
/// checked for each label set of the family.
fn check_histogram(name: &str, family: &Family) {
    let mut sets: HashMap<Labels, Series> = HashMap::new();
    for s in &family.samples {
        let mut labels = s.labels.clone();
        let le = labels
            .iter()
            .position(|(k, _)| k == "le")
            .map(|i| labels.remove(i).1);
        let entry = sets.entry(labels).or_default();
        match (s.name.strip_prefix(name), le) {
            (Some("_bucket"), Some(le)) => {
                let bound = parse_value(&le).unwrap_or_else(|e| panic!("{name}: le {e}"));
                entry.buckets.push((bound, s.value));
            }
            (Some("_count"), None) => entry.count = Some(s.value),
            (Some("_sum"), None) => entry.has_sum = true,
            _ => panic!("{name}: unexpected sample {s:?}"),
        }
    }
    assert!(!sets.is_empty(), "{name} has no series");
    for (labels, series) in sets {
        assert!(series.has_sum, "{name}{labels:?} has no _sum");
        let count = series
            .count
            .unwrap_or_else(|| panic!("{name}{labels:?} has no _count"));
        let buckets = &series.buckets;
        assert!(
            buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
            "{name}{labels:?}: buckets not ascending and cumulative: {buckets:?}"
        );
        let last = buckets.last().expect("buckets");
        assert_eq!(
            last.0,
            f64::INFINITY,
            "{name}{labels:?} ends with le=\"+Inf\""
        );
        assert_eq!(last.1, count, "{name}{labels:?}: +Inf bucket vs _count");
    }
}

fn check_conventions(families: &BTreeMap<String, Family>) {
    for (name, family) in families {
        assert!(!name.contains("_percent"), "{name}: use _ratio (0..1)");
        match family.kind.as_deref() {
            Some("counter") => {
                assert!(name.ends_with("_total"), "counter {name} ends with _total");
                assert!(family.samples.iter().all(|s| s.value >= 0.0), "{name}");
            }
            Some("histogram") => check_histogram(name, family),
            _ => assert!(
                !name.ends_with("_total"),
                "non-counter {name} ends with _total"
            ),
        }
        if name.ends_with("_ratio") {
            for s in &family.samples {
                assert!((0.0..=1.0).contains(&s.value), "{name}: {s:?}");
            }
        }
        for s in &family.samples {
            if family.kind.as_deref() != Some("histogram") {
                assert_eq!(&s.name, name, "a sample named apart from its family");
            }
        }
    }
}

fn value(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    let family = &families[family_of(name, families)];
    family
        .samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v))
        })
        .unwrap_or_else(|| panic!("no {name}{labels:?}"))
        .value
}

#[test]
fn a_real_servers_metrics_parse_strictly() {
    // A data dir whose path needs label escaping (a quote and a backslash).
    let root = TempDir::new("metrics");
    let data = root.path().join("we\"ird\\data");
    std::fs::create_dir_all(&data).unwrap();
    let server = start_on(&data, &[]);
    // One request of each route class.
    server.get("root.localhost", "/");
    send(
        &server,
        "GET",
        "x.localhost",
        "/track?d=a.example&p=/",
        &[],
        b"",
    );
    let zip = zips::zip_of(
        &[("index.html", b"<p>metrics</p>".as_slice())],
        zip::CompressionMethod::Stored,
    );
    let auth = format!("Bearer {}", server.token);
    let deployed = send(
        &server,
        "POST",
        "admin.localhost",
        "/api/deploy?site=m",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/zip"),
        ],
        &zip,
    );
    assert_eq!(deployed.status, 200, "{}", deployed.text());
    assert_eq!(
        server
            .admin_get("/api/system/health", Some(&server.token))
            .status,
        200
    );

    let r = server.admin_get("/metrics", Some(&server.token));
    assert_eq!(r.status, 200);
    let text = r.text();
    assert!(!text.contains("_percent"), "{text}");
    let families = parse(&text);
    check_conventions(&families);

    for class in ["static", "ingest", "admin", "deploy"] {
        let n = value(
            &families,
            "fazt_request_duration_seconds_count",
            &[("class", class)],
        );
        assert!(n >= 1.0, "{class}: {n} requests timed\n{text}");
    }
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        value(&families, "fazt_build_info", &[("version", version)]),
        1.0
    );
    assert!(value(&families, "process_resident_memory_bytes", &[]) > 1e6);
    assert!(value(&families, "process_open_fds", &[]) >= 4.0);
    let started = value(&families, "process_start_time_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        started <= now + 1.0 && started > now - 120.0,
        "{started} vs {now}"
    );
    let path = data.display().to_string();
    let used = value(&families, "fazt_disk_used_ratio", &[("path", &path)]);
    assert!((0.0..=1.0).contains(&used), "{used}");
    assert!(
        text.contains("path=\"") && text.contains("we\\\"ird\\\\data"),
        "{text}"
    );
    assert_eq!(
        value(&families, "fazt_deploys_total", &[("outcome", "succeeded")]),
        1.0
    );
}

/// The JSON of the health API carries the same metrics, at the keys its readers use.
#[test]
fn health_json_matches_the_registry() {
    let server = Server::start();
    server.get("root.localhost", "/");
    let health = server
        .admin_get("/api/system/health", Some(&server.token))
        .json();
    let text = server.admin_get("/metrics", Some(&server.token)).text();
    let families = parse(&text);
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    let limit = value(&families, "fazt_cache_limit_bytes", &[]);
    assert_eq!(health["cache"]["bytes_limit"].as_f64(), Some(limit));
    let threshold = value(&families, "fazt_disk_threshold_ratio", &[]);
    assert_eq!(health["disk"]["threshold_ratio"].as_f64(), Some(threshold));
    assert!(health["counters"]["request_duration_seconds"]["static"]["count"].as_u64() >= Some(1));
    assert!(health["process"]["start_time_seconds"].as_f64().is_some());
}

#[test]
fn the_parser_rejects_what_the_format_forbids() {
    let ok = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\"} 1\n";
    assert_eq!(parse(ok)["a_total"].samples[0].labels[0].1, "q\"");
    for bad in [
        "# HELP a A.\n# HELP a B.\n# TYPE a gauge\na 1\n",
        "# HELP a A.\n# TYPE a gauge\n# TYPE a gauge\na 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\q\"} 1\n",
        "# HELP a A.\n# TYPE a gauge\na{x=\"unterminated} 1\n",
        "# HELP 1a A.\n# TYPE 1a gauge\n1a 1\n",
        "# HELP a A.\n# TYPE a gauge\nb 1\n",
        "# HELP a A.\n# TYPE a gauge\na 1\n# HELP b B.\n# TYPE b gauge\nb 1\na{x=\"y\"} 2\n",
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",
        "# HELP a A.\n# TYPE a gauge\na one\n",
    ] {
        let result = std::panic::catch_unwind(|| parse(bad));
        assert!(result.is_err(), "accepted:\n{bad}");
    }
    let not_cumulative = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 2\n\
                          h_bucket{le=\"+Inf\"} 1\nh_sum 3\nh_count 1\n";
    let families = parse(not_cumulative);
    let result = std::panic::catch_unwind(|| check_conventions(&families));
    assert!(result.is_err(), "a decreasing bucket was accepted");
    let inf_not_count = "# HELP h H.\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\n\
                         h_bucket{le=\"+Inf\"} 2\nh_sum 3\nh_count 3\n";
    let families = parse(inf_not_count);
    assert!(std::panic::catch_unwind(|| check_conventions(&families)).is_err());
    let percent = "# HELP a_percent A.\n# TYPE a_percent gauge\na_percent 50\n";
    let families = parse(percent);
    assert!(std::panic::catch_unwind(|| check_conventions(&families)).is_err());
}
