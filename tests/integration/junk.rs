//! Bounded cost for junk analytics (issue #11): the daily cap on distinct values per site
//! (`FAZT_MAX_DAILY_VALUES`; past it values are stored and counted as `(other)`, totals
//! stay exact) and the paged lists `/api/domains` and `/api/tags`. The 500k-event run is
//! `bench/junk.sh`; the cap's day change and restart are unit tests (`analytics::caps`).
use crate::common::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

const CAP: usize = 20;
const SENT: usize = 100;

fn capped_server() -> Server {
    Server::builder()
        .env("FAZT_EVENT_FLUSH", "50ms")
        .env("FAZT_MAX_DAILY_VALUES", &CAP.to_string())
        .start()
}

fn track_ok(server: &Server, body: &Value) {
    let r = track_with(server, &body.to_string(), &[("User-Agent", BROWSER_UA)]);
    assert_eq!(r.status, 204, "{body}: {}", r.text());
}

/// `SENT` pageviews of junk.test, each with its own path, referrer, tag and campaign
/// source and name, then 25 events of unique custom types; sent one after the other, so
/// the writer sees them in this order.
fn send_junk(server: &Server) {
    for i in 0..SENT {
        let body = json!({
            "d": "junk.test",
            "p": format!("/p{i}"),
            "ref": format!("https://r{i}.example/x"),
            "t": [format!("t{i}")],
            "q": {"utm_source": format!("s{i}"), "utm_campaign": format!("c{i}")},
        });
        track_ok(server, &body);
    }
    for i in 0..25 {
        track_ok(server, &json!({"d": "junk.test", "e": format!("e{i}")}));
    }
    wait_events(server, "site=junk.test&limit=1000", SENT + 25);
}

/// A top list's `(other)` count and the other values' names, checking that every value
/// but `(other)` was counted once.
fn split_other(list: &Value, what: &str) -> (i64, BTreeSet<String>) {
    let mut other = 0;
    let mut names = BTreeSet::new();
    for item in list.as_array().unwrap_or_else(|| panic!("{what}: {list}")) {
        let (value, count) = (
            item["value"].as_str().unwrap(),
            item["count"].as_i64().unwrap(),
        );
        if value == "(other)" {
            other = count;
        } else {
            assert_eq!(count, 1, "{what}: {list}");
            names.insert(value.to_string());
        }
    }
    (other, names)
}

fn first(prefix: &str, suffix: &str, n: usize) -> BTreeSet<String> {
    (0..n).map(|i| format!("{prefix}{i}{suffix}")).collect()
}

#[test]
fn past_the_daily_cap_new_values_count_as_other_and_totals_stay_exact() {
    let server = capped_server();
    send_junk(&server);

    let s = get_json(&server, "/api/stats?site=junk.test&top=100");
    let events = (SENT + 25) as i64;
    assert_eq!(s["totals"]["events"], events, "{s}");
    assert_eq!(s["totals"]["pageviews"], SENT as i64, "{s}");
    let rest = (SENT - CAP) as i64;
    for (list, prefix, suffix) in [
        ("top_paths", "/p", ""),
        ("top_referrers", "r", ".example"),
        ("top_tags", "t", ""),
        ("top_utm_sources", "s", ""),
        ("top_utm_campaigns", "c", ""),
    ] {
        let (other, names) = split_other(&s[list], list);
        assert_eq!(other, rest, "{list}: {}", s[list]);
        assert_eq!(
            names,
            first(prefix, suffix, CAP),
            "{list}: the first {CAP} sent"
        );
    }
    // Built-in types are never folded; custom ones are capped like the rest.
    let types = s["event_types"].as_array().unwrap();
    assert!(
        types.contains(&json!({"value": "pageview", "count": SENT})),
        "{types:?}"
    );
    let custom: Vec<&Value> = types.iter().filter(|t| t["value"] != "pageview").collect();
    let (other, names) = split_other(
        &Value::Array(custom.into_iter().cloned().collect()),
        "types",
    );
    assert_eq!((other, names), (5, first("e", "", CAP)));

    // The raw events name (other) too: nothing past the cap was stored as itself.
    let raw = events_page(&server, "site=junk.test&limit=1000");
    let last_pageview = raw.iter().find(|e| e["type"] == "pageview").unwrap();
    assert_eq!(last_pageview["path"], "(other)", "{last_pageview}");
    assert_eq!(last_pageview["referrer"], "(other)");
    assert_eq!(last_pageview["tags"], json!(["(other)"]));
    assert_eq!(last_pageview["utm"]["source"], "(other)");
    let conn = open_read_only(server.data.path());
    let paths = count(&conn, "SELECT count(*) FROM strings WHERE kind = 2");
    assert_eq!(paths, CAP as i64 + 1, "the cap's paths and (other)");
}

/// `/api/events` newest first, one page.
fn events_page(server: &Server, query: &str) -> Vec<Value> {
    let page = get_json(server, &format!("/api/events?{query}"));
    page["events"].as_array().unwrap().clone()
}

/// Every page of `path` at `limit`, following `next`; checks that `next` ends.
fn all_pages(server: &Server, path: &str, key: &str, limit: usize) -> (Vec<Value>, usize) {
    let (mut items, mut pages, mut offset) = (Vec::new(), 0, Some(0));
    while let Some(at) = offset {
        assert!(pages < 100, "{path}: next never ends");
        let page = get_json(server, &format!("{path}?limit={limit}&offset={at}"));
        let list = page[key].as_array().unwrap();
        assert!(list.len() <= limit, "{page}");
        items.extend(list.iter().cloned());
        pages += 1;
        offset = page["next"].as_u64().map(|n| n as usize);
        if offset.is_some() {
            assert_eq!(list.len(), limit, "only the last page is short: {page}");
        }
    }
    (items, pages)
}

#[test]
fn domains_and_tags_are_paged_with_limit_and_offset() {
    let server = capped_server();
    // Five sites with 5, 4, 3, 2 and 1 events (so a clear order), each event tagged.
    for site in 0..5 {
        for i in 0..(5 - site) {
            let body =
                json!({"d": format!("d{site}.test"), "p": "/", "t": [format!("tag{site}-{i}")]});
            track_ok(&server, &body);
        }
    }
    wait_events(&server, "limit=1000", 15);

    let everything = get_json(&server, "/api/domains");
    assert_eq!(everything["next"], Value::Null, "{everything}");
    let (paged, pages) = all_pages(&server, "/api/domains", "domains", 2);
    assert_eq!(pages, 3);
    assert_eq!(Value::Array(paged.clone()), everything["domains"]);
    let names: Vec<&str> = paged
        .iter()
        .map(|d| d["domain"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["d0.test", "d1.test", "d2.test", "d3.test", "d4.test"]
    );
    let second = get_json(&server, "/api/domains?limit=2&offset=2");
    assert_eq!(second["next"], 4);
    let past_the_end = get_json(&server, "/api/domains?offset=50");
    assert_eq!(past_the_end, json!({"domains": [], "next": null}));

    let all_tags = get_json(&server, "/api/tags?limit=1000");
    assert_eq!(all_tags["tags"].as_array().unwrap().len(), 15);
    let (paged, pages) = all_pages(&server, "/api/tags", "tags", 4);
    assert_eq!(pages, 4);
    assert_eq!(Value::Array(paged), all_tags["tags"]);

    for path in ["/api/domains", "/api/tags"] {
        for query in ["limit=0", "limit=abc", "limit=-1", "offset=-1", "offset=x"] {
            let r = server.admin_get(&format!("{path}?{query}"), Some(&server.token));
            assert_eq!(r.status, 400, "{path}?{query}: {}", r.text());
            let body = r.json();
            assert_eq!(body["error"]["code"], "bad_request", "{body}");
            let name = query.split('=').next().unwrap();
            let message = body["error"]["message"].as_str().unwrap();
            assert!(message.contains(name), "{message}");
        }
    }
}

#[test]
fn new_hosts_past_the_daily_cap_count_as_other() {
    let server = capped_server();
    // *.test is an allowed wildcard: every event names a host never seen before.
    for i in 0..CAP + 10 {
        track_ok(&server, &json!({"d": format!("h{i}.test"), "p": "/"}));
    }
    wait_events(&server, "limit=1000", CAP + 10);
    let domains = get_json(&server, "/api/domains?limit=1000");
    let list = domains["domains"].as_array().unwrap();
    assert_eq!(list.len(), CAP + 1, "{domains}");
    assert_eq!(list[0]["domain"], "(other)", "{domains}");
    assert_eq!(list[0]["events"], 10);
    // A host seen before is still itself.
    track_ok(&server, &json!({"d": "h3.test", "p": "/again"}));
    wait_events(&server, "site=h3.test", 2);
}
