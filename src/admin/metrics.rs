//! Every metric source of the server in one list, read by both `/metrics` and
//! `/api/system/health`, so a metric added to a source appears in both.

use crate::db::events::EVENT_STATS;
use crate::db::writer::WRITER_STATS;
use crate::deploy::service::DEPLOY_STATS;
use crate::hosting::cache::SiteCache;
use crate::http::tls::CertStore;
use crate::platform::disk::DiskGuard;
use crate::platform::metrics::{Process, Registry, Source, METRICS};

/// The sources in rendering order: process, request counters, cache, writer, events,
/// disk, deploys, analytics filtering, rate limits. `cache` and `disk` are the running server's; the rest are process-wide.
pub(crate) fn registry<'a>(
    cache: &'a SiteCache,
    disk: &'a DiskGuard,
    certs: &'a CertStore,
    server: &[&'a dyn Source],
) -> Registry<'a> {
    let registry = Registry::new()
        .with(&Process)
        .with(&METRICS)
        .with(cache)
        .with(&WRITER_STATS)
        .with(&EVENT_STATS)
        .with(disk)
        .with(&DEPLOY_STATS)
        .with(&crate::analytics::filter::FILTER_STATS)
        .with(&crate::analytics::rate_limit::RATE_LIMITED)
        .with(&crate::keys::AUTH_STATS)
        .with(&crate::auth::guard::LOGIN_STATS)
        .with(certs)
        .with(&crate::acme::manager::ACME_STATS)
        .with(&crate::serverless::metrics::JS_STATS)
        .with(&crate::http::conn::WS_STATS);
    server.iter().fold(registry, |r, source| r.with(*source))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::platform::metrics::{render_json, render_prometheus, Kind};
    use std::collections::HashSet;

    /// The server's hubs stand in for by a source with no clients (they are tested in
    /// `server::hubs`).
    pub(crate) struct NoSockets;

    impl crate::platform::metrics::Source for NoSockets {
        fn collect(&self, _out: &mut crate::platform::metrics::Collector) {}
    }

    fn json_at<'v>(json: &'v serde_json::Value, path: &str) -> Option<&'v serde_json::Value> {
        path.split('.').try_fold(json, |node, key| node.get(key))
    }

    /// Every registered family is in both outputs: its HELP and TYPE lines in the
    /// Prometheus text, and a value at its own JSON path that no other family shares.
    #[test]
    fn every_metric_appears_in_both_outputs() {
        let cache = SiteCache::new(1 << 20, 1 << 16);
        let disk = DiskGuard::new(vec![std::env::temp_dir()], 90);
        let certs = CertStore::new();
        let families = registry(&cache, &disk, &certs, &[&NoSockets]).gather();
        let text = render_prometheus(&families);
        let json = render_json(&families);
        assert!(families.len() >= 40, "{} families", families.len());
        let mut names = HashSet::new();
        let mut paths: Vec<&str> = Vec::new();
        for family in &families {
            let desc = family.desc;
            assert!(names.insert(desc.name), "{} registered twice", desc.name);
            assert!(
                text.contains(&format!("\n# TYPE {} ", desc.name))
                    || text.starts_with(&format!("# HELP {} ", desc.name)),
                "{} missing from the Prometheus text",
                desc.name
            );
            let value = json_at(&json, desc.json)
                .unwrap_or_else(|| panic!("{} has nothing at {}", desc.name, desc.json));
            let expected_object =
                desc.label.is_some() && desc.kind != Kind::Info || desc.kind == Kind::Histogram;
            assert_eq!(value.is_object(), expected_object, "{}: {value}", desc.json);
            paths.push(desc.json);
        }
        // No JSON path is another's prefix: one family would hide the other.
        for a in &paths {
            for b in &paths {
                assert!(
                    a == b || !b.starts_with(&format!("{a}.")),
                    "{a} overlaps {b}"
                );
            }
        }
        assert_eq!(
            paths.iter().collect::<HashSet<_>>().len(),
            paths.len(),
            "JSON paths must be unique"
        );
    }

    /// The keys the dashboard (assets/admin/*.js) and the benchmark scripts read.
    #[test]
    fn health_keys_read_elsewhere_are_kept() {
        let cache = SiteCache::new(1 << 20, 1 << 16);
        let disk = DiskGuard::new(vec![std::env::temp_dir()], 90);
        let certs = CertStore::new();
        let json = registry(&cache, &disk, &certs, &[&NoSockets]).to_json();
        for path in [
            "version",
            "counters.connections_open",
            "counters.connections_accepted",
            "counters.requests.2xx",
            "counters.requests.5xx",
            "counters.shed_requests",
            "counters.limit_violations.431",
            "counters.request_duration_seconds.static.count",
            "counters.request_duration_seconds.deploy.sum",
            "process.resident_memory_bytes",
            "process.open_fds",
            "process.start_time_seconds",
            "cache.bytes_used",
            "cache.bytes_limit",
            "cache.entries",
            "cache.hits",
            "cache.misses",
            "cache.evictions",
            "cache.streamed_bytes",
            "cache.pinned_bytes",
            "writer.jobs_submitted",
            "writer.queue_depth",
            "writer.job_seconds.count",
            "events.accepted",
            "events.committed",
            "events.unwritten",
            "events.queue_depth",
            "events.batches",
            "events.batch_failures",
            "events.dropped.queue_full",
            "events.dropped.stopped",
            "disk.threshold_ratio",
            "disk.refusals",
            "deploys.succeeded",
            "deploys.failed",
        ] {
            let value = json_at(&json, path).unwrap_or_else(|| panic!("{path} in {json}"));
            assert!(value.is_number() || value.is_string(), "{path}: {value}");
        }
        assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
        assert_eq!(json["disk"]["threshold_ratio"], 0.9);
        let used = &json["disk"]["used_ratio"][std::env::temp_dir().display().to_string()];
        assert!(
            used.as_f64().is_some_and(|r| (0.0..=1.0).contains(&r)),
            "{json}"
        );
    }
}
