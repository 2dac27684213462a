//! Issue #11's small fixes against the real binary: the WAL gives its peak back after a
//! large deploy, `streamed_bytes` counts what was written to the socket, and the admin
//! host's answers carry the security headers (hosted sites do not).
use crate::common::zips::*;
use crate::common::*;
use serde_json::json;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `db::WAL_SIZE_LIMIT`, the size the WAL is truncated to.
const WAL_LIMIT: u64 = 8 * 1024 * 1024;

fn wal_len(data: &Path) -> u64 {
    std::fs::metadata(data.join("fazt.db-wal")).map_or(0, |m| m.len())
}

/// A raw zip deploy with the owner key; asserts a 200.
fn deploy(server: &Server, site: &str, files: &[(&str, &[u8])]) {
    let zip = zip_of(files, zip::CompressionMethod::Stored);
    let head = format!(
        "POST /api/deploy?site={site} HTTP/1.1\r\nHost: admin.localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/zip\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        server.token,
        zip.len()
    );
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(&zip).unwrap();
    let r = read_response(&mut s).expect("a deploy response");
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn the_wal_shrinks_back_below_its_limit_after_a_large_deploy() {
    let server = Server::start();
    let data = server.data.path().to_path_buf();
    let mut rng = Rng(1111);
    let big = rng.bytes(24 * 1024 * 1024);
    // The WAL's peak is sampled while the deploy runs: the deploy's own later writes may
    // already shrink it before the response arrives.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (stop, data) = (stop.clone(), data.clone());
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(wal_len(&data));
                std::thread::sleep(Duration::from_millis(2));
            }
            peak
        })
    };
    deploy(
        &server,
        "big",
        &[("index.html", b"<h1>big</h1>"), ("big.bin", &big)],
    );
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap().max(wal_len(&data));
    assert!(
        peak > WAL_LIMIT,
        "the deploy should have grown the WAL past {WAL_LIMIT} (it is {peak})"
    );
    // Small writes after the deploy's checkpoint restart the WAL, which truncates it.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    while wal_len(&data) > WAL_LIMIT {
        assert!(
            Instant::now() < deadline,
            "the WAL stayed at {} bytes (peak {peak}, limit {WAL_LIMIT})",
            wal_len(&data)
        );
        n += 1;
        let r = admin_post(&server, "/api/keys", &json!({ "name": format!("k{n}") }));
        assert_eq!(r.status, 201, "{}", r.text());
        std::thread::sleep(Duration::from_millis(100));
    }
    // The server is still running and serving the deploy.
    assert_eq!(
        server.get("big.localhost", "/big.bin").body.len(),
        big.len()
    );
}
