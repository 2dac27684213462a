//! Issue #11's small fixes against the real binary: the WAL gives its peak back after a
//! large deploy, `streamed_bytes` counts what was written to the socket, and the admin
//! host's answers carry the security headers (hosted sites do not).
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
    let r = deploy_files(server, site, files, zip::CompressionMethod::Stored);
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

// ---------------------------------------------------------------------------------------
// Security headers on the admin host
// ---------------------------------------------------------------------------------------

fn get_on(addr: std::net::SocketAddr, host: &str, path: &str, token: Option<&str>) -> HttpResponse {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    raw_request(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"),
    )
}

fn assert_guarded(r: &HttpResponse, what: &str) {
    let csp = r.header("content-security-policy").unwrap_or_default();
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{what}: CSP {csp:?}"
    );
    assert_eq!(
        r.header("x-content-type-options"),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{what}");
}

#[test]
fn admin_answers_carry_security_headers_and_hosted_sites_do_not() {
    let server = Server::builder().admin_listener().start();
    let token = server.token.clone();
    let admin = server.admin_addr.unwrap();
    for (addr, host) in [(server.addr, "admin.localhost"), (admin, "127.0.0.1")] {
        for (path, key, status) in [
            ("/", None, 200),
            ("/admin.js", None, 200),
            ("/api/system/health", Some(token.as_str()), 200),
            ("/api/system/health", None, 401),
            ("/api/nothing-here", Some(token.as_str()), 404),
        ] {
            let r = get_on(addr, host, path, key);
            assert_eq!(r.status, status, "{host}{path}: {}", r.text());
            assert_guarded(&r, &format!("{addr} {host}{path}"));
        }
        // A deploy refused from its head, before the body is read.
        let r = raw_request(
            addr,
            format!(
                "POST /api/deploy?site=x HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/zip\r\n\
                 Content-Length: 10\r\nConnection: close\r\n\r\n"
            ),
        );
        assert_eq!(r.status, 401, "{}", r.text());
        assert_guarded(&r, "refused deploy");
    }
    // Hosted sites set their own policies: none of the admin headers leak onto them.
    for (host, path) in [("root.localhost", "/"), ("nosuch.localhost", "/")] {
        let r = server.get(host, path);
        for name in ["content-security-policy", "referrer-policy"] {
            assert_eq!(r.header(name), None, "{host}{path} has {name}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// streamed_bytes counts what the socket took
// ---------------------------------------------------------------------------------------

fn streamed_bytes(server: &Server) -> u64 {
    get_json(server, "/api/system/health")["cache"]["streamed_bytes"]
        .as_u64()
        .expect("cache.streamed_bytes in the health JSON")
}

/// Polls until the counter holds still for a few readings (the server notices a gone
/// client on its next write).
fn settled_streamed_bytes(server: &Server) -> u64 {
    let mut last = streamed_bytes(server);
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let now = streamed_bytes(server);
        if now == last {
            return now;
        }
        last = now;
    }
    last
}

#[test]
fn streamed_bytes_counts_what_was_written_not_what_was_planned() {
    let server = Server::builder().env("FAZT_MAX_CACHED_FILE", "64K").start();
    let big = Rng(2222).bytes(32 * 1024 * 1024);
    deploy(
        &server,
        "files",
        &[("index.html", b"<p>files</p>"), ("big.bin", &big)],
    );
    let before = settled_streamed_bytes(&server);

    // A whole download counts exactly the file.
    let r = server.get("files.localhost", "/big.bin");
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big, "the streamed file differs");
    let after_full = settled_streamed_bytes(&server);
    assert_eq!(after_full - before, big.len() as u64);

    // A client that reads 1 MiB and leaves: the counter grows by about what was sent (what
    // it read plus what the two kernel buffers held), not by the whole file.
    let mut s = server.connect();
    let rcvbuf: libc::c_int = 64 * 1024;
    // SAFETY (test code): setsockopt on a socket this test owns, with a valid int option;
    // a fixed receive buffer keeps the kernel from growing it while the test reads.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            (&rcvbuf as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: files.localhost\r\n\r\n")
        .unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    while got < 1024 * 1024 {
        let n = std::io::Read::read(&mut s, &mut buf).unwrap();
        assert!(n > 0, "the server closed after {got} bytes");
        got += n;
    }
    std::thread::sleep(Duration::from_millis(500));
    drop(s);
    let partial = settled_streamed_bytes(&server) - after_full;
    eprintln!("streamed_bytes grew by {partial} for a client that read {got} bytes and left");
    assert!(
        partial >= (got as u64).saturating_sub(64 * 1024),
        "counted {partial} bytes, the client read {got}"
    );
    assert!(
        partial < 12 * 1024 * 1024,
        "counted {partial} bytes for a client that read {got} of {} and left",
        big.len()
    );
}
