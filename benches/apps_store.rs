//! The apps' storage (issue #14) on a real database file with fazt's pragmas: what one
//! `fazt.app.kv` / `fazt.app.ds` call costs on the writer (each write its own transaction,
//! as a script's call is one writer job) and on a worker's read connection, with a site
//! holding 10,000 keys and 10,000 documents (the default quotas).
//!
//! Usage: `APPS_BENCH=1 cargo bench --bench apps_store` (`APPS_BENCH_DIR` for the scratch
//! data directory, default in the temp dir; it is deleted at the end). Without
//! `APPS_BENCH=1` (as `cargo test --all-targets` runs every bench target) it prints the
//! usage and exits 0 at once. Numbers are printed, never asserted.

use fazt::db;
use fazt::platform::probe::Report;
use fazt::serverless::store::{self, LogLevel, NewLog, Quotas};
use rusqlite::Connection;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const KEYS: usize = 10_000;
const DOCS: usize = 10_000;
const GETS: usize = 100_000;
const QUERIES: usize = 1_000;

fn main() {
    if std::env::var("APPS_BENCH").as_deref() != Ok("1") {
        println!("usage: APPS_BENCH=1 cargo bench --bench apps_store   (APPS_BENCH_DIR=...)");
        return;
    }
    let dir = std::env::var_os("APPS_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("fazt-apps-store-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let limits = Report::system(&dir).expect("probe").limits;
    let path = db::db_path(&dir);
    let mut w = db::open_and_migrate(&path, &limits).expect("open the writer");
    let r = db::open_read(&path, &limits).expect("open a reader");
    println!(
        "apps store on {} ({} keys, {} documents in one site)",
        path.display(),
        KEYS,
        DOCS
    );
    kv(&mut w, &r);
    ds(&mut w, &r);
    logs(&mut w, &r);
    drop((w, r));
    let _ = std::fs::remove_dir_all(&dir);
}

fn report(what: &str, n: usize, took: Duration) {
    let per = took.as_secs_f64() / n as f64;
    println!(
        "  {what:<44} {:>9.0}/s  {:>8.1} µs each",
        1.0 / per,
        per * 1e6
    );
}

fn time<T>(n: usize, mut f: impl FnMut(usize) -> T) -> Duration {
    let started = Instant::now();
    for i in 0..n {
        std::hint::black_box(f(i));
    }
    started.elapsed()
}

fn kv(w: &mut Connection, r: &Connection) {
    let q = Quotas::default();
    let value = format!(
        r#"{{"name":"user","visits":1,"note":"{}"}}"#,
        "x".repeat(60)
    );
    let took = time(KEYS, |i| {
        store::kv_set(w, "blog", &format!("user:{i:05}"), &value, None, 0, &q).unwrap()
    });
    report("kv_set, new key (one transaction each)", KEYS, took);
    let took = time(KEYS, |i| {
        let expires = Some(1_000 + i as i64);
        store::kv_set(w, "blog", &format!("user:{i:05}"), "2", expires, 0, &q).unwrap()
    });
    report("kv_set, overwrite with a TTL", KEYS, took);
    let took = time(GETS, |i| {
        let key = format!("user:{:05}", (i * 7919) % KEYS);
        store::kv_get(r, "blog", &key, 0).unwrap()
    });
    report("kv_get (read connection)", GETS, took);
    let took = time(QUERIES, |i| {
        let prefix = format!("user:{:03}", i % 100);
        store::kv_list(r, "blog", &prefix, 0).unwrap()
    });
    report("kv_list, prefix matching 100 keys", QUERIES, took);
    let started = Instant::now();
    let (swept, _) = store::sweep(w, 1_000_000).unwrap();
    report(
        &format!("sweep of {swept} expired keys (one transaction)"),
        1,
        started.elapsed(),
    );
}

fn ds(w: &mut Connection, r: &Connection) {
    let q = Quotas::default();
    let took = time(DOCS, |i| {
        let doc = format!(
            r#"{{"id":"d{i:05}","user":"u{}","n":{i},"done":{},"text":"{}"}}"#,
            i % 100,
            i % 2 == 0,
            "t".repeat(80)
        );
        store::ds_insert(w, "blog", "posts", &doc, 0, &q).unwrap()
    });
    report("ds_insert (one transaction each)", DOCS, took);
    let took = time(QUERIES, |i| {
        let query = format!(r#"{{"id":"d{:05}"}}"#, (i * 7919) % DOCS);
        store::ds_find(r, "blog", "posts", &query, Some(1)).unwrap()
    });
    report("ds findOne by id", QUERIES, took);
    let took = time(QUERIES / 10, |i| {
        let query = format!(r#"{{"user":"u{}"}}"#, i % 100);
        store::ds_find(r, "blog", "posts", &query, None).unwrap()
    });
    report(
        "ds find by a field, 100 of 10,000 match",
        QUERIES / 10,
        took,
    );
    let took = time(QUERIES / 10, |i| {
        let query = format!(r#"{{"n":{}}}"#, DOCS - 1 - i);
        store::ds_find(r, "blog", "posts", &query, Some(1)).unwrap()
    });
    report("ds findOne by a field, near the end", QUERIES / 10, took);
    let took = time(QUERIES, |i| {
        let query = format!(r#"{{"id":"d{:05}"}}"#, (i * 7919) % DOCS);
        store::ds_update(
            w,
            "blog",
            "posts",
            &query,
            r#"{"done":true,"n":null}"#,
            1,
            &q,
        )
        .unwrap()
    });
    report("ds_update by id (one transaction each)", QUERIES, took);
}

fn logs(w: &mut Connection, r: &Connection) {
    let batch: Vec<NewLog> = (0..100)
        .map(|i| NewLog {
            site: "blog".into(),
            ts_ms: i,
            level: LogLevel::Log,
            message: format!("request {i} handled in 3 ms"),
        })
        .collect();
    let took = time(100, |_| store::append_logs(w, &batch).unwrap());
    report("append_logs, 100 lines a transaction (batch)", 100, took);
    let took = time(QUERIES, |_| store::logs_tail(r, "blog", 100).unwrap());
    report("logs_tail, the newest 100 lines", QUERIES, took);
}
