//! Owner access: keys are required on the admin API; readiness and metrics; key management
//! through the API and the CLI; the dedicated admin listener.
use crate::common::*;
use std::io::Write;

#[test]
fn first_start_prints_an_owner_key_once() {
    let mut server = Server::start();
    assert!(
        server.token.starts_with("fzt_"),
        "token printed: {:?}",
        server.token
    );
    let mut stored = std::fs::read(server.data.path().join("fazt.db")).unwrap();
    stored.extend(std::fs::read(server.data.path().join("fazt.db-wal")).unwrap_or_default());
    let secret = server.token.rsplit('_').next().unwrap();
    assert!(
        !stored.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "only the hash is stored"
    );
    assert_eq!(server.terminate().code(), Some(0));

    // A restart on the same data dir prints no new key, and the old one still works.
    let out = std::process::Command::new(BIN)
        .args(["key", "list", "--data"])
        .arg(server.data.path())
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout);
    // A header row and the one owner key, never used by this CLI listing.
    assert_eq!(listing.lines().count(), 2, "{listing}");
    assert!(
        listing.lines().next().unwrap().starts_with("ID"),
        "{listing}"
    );
    assert!(listing.contains("owner"));
}

#[test]
fn api_requires_a_valid_key() {
    let server = Server::start();
    assert_eq!(server.admin_get("/api/system/health", None).status, 401);
    assert_eq!(
        server
            .admin_get("/api/system/health", Some("fzt_00000000_00"))
            .status,
        401
    );
    assert_eq!(server.admin_get("/metrics", None).status, 401);
    let r = server.admin_get("/api/system/health", Some(&server.token));
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert!(body["limits"]["max_connections"].as_u64().unwrap() > 0);
    // Where each limit came from, as `fazt probe` says it (the harness sets no override).
    let sources = &body["limits"]["sources"];
    let source = sources["max_connections"].as_str().unwrap_or_default();
    assert!(source.starts_with("derived: "), "{sources}");
    assert_eq!(sources["upload_ram_bytes"], "default", "{sources}");
    assert_eq!(sources["core_threads"], "env FAZT_THREADS", "{sources}");
    assert!(body["counters"]["connections_accepted"].as_u64().unwrap() >= 1);
    assert!(body["process"]["resident_memory_bytes"].as_u64().unwrap() > 0);
    assert!(body["process"]["open_fds"].as_u64().unwrap() > 0);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
}

#[test]
fn metrics_are_prometheus_text() {
    let server = Server::start();
    server.get("root.localhost", "/");
    server.get("root.localhost", "/missing");
    let r = server.admin_get("/metrics", Some(&server.token));
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text();
    for needle in [
        "fazt_connections_open ",
        "fazt_connections_accepted_total ",
        "fazt_connections_rejected_total 0",
        "fazt_requests_total{class=\"2xx\"} ",
        "fazt_requests_total{class=\"4xx\"} ",
        "fazt_shed_requests_total 0",
        "fazt_limit_violations_total{status=\"408\"} 0",
        "fazt_limit_violations_total{status=\"413\"} 0",
        "fazt_limit_violations_total{status=\"431\"} 0",
        "fazt_admin_requests_total ",
        "fazt_request_duration_seconds_bucket{class=\"admin\",le=\"+Inf\"} ",
        "fazt_request_duration_seconds_count{class=\"static\"} ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_start_time_seconds ",
        "fazt_build_info{version=\"",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    let four_xx: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("fazt_requests_total{class=\"4xx\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(four_xx >= 1);
}

#[test]
fn keys_created_and_revoked_through_the_api() {
    let server = Server::start();
    let body = r#"{"name":"ci"}"#;
    let r = server.request(&format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        server.token,
        body.len()
    ));
    assert_eq!(r.status, 201, "{}", r.text());
    let created = r.json();
    let token = created["token"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(
        server.admin_get("/api/system/health", Some(&token)).status,
        200
    );

    let list = server.admin_get("/api/keys", Some(&token)).json();
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert!(
        list.to_string().find("fzt_").is_none(),
        "tokens are never listed"
    );

    let revoke = server.request(&format!(
        "DELETE /api/keys/{id} HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token
    ));
    assert_eq!(revoke.status, 200);
    assert_eq!(
        server.admin_get("/api/system/health", Some(&token)).status,
        401
    );

    let bad = server.request(&format!(
        "POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 6\r\nConnection: close\r\n\r\nnot js",
        server.token
    ));
    assert_eq!(bad.status, 400);
    assert!(bad.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("JSON"));
}

#[test]
fn cli_key_changes_reach_the_running_server() {
    let server = Server::start();
    let data = server.data.path().to_str().unwrap().to_string();
    let (code, out, err) = run_cli(&["key", "create", "laptop", "--data", &data], &[]);
    assert_eq!(code, 0, "{err}");
    let token = out.lines().last().unwrap().trim().to_string();
    assert_eq!(
        server.admin_get("/api/system/health", Some(&token)).status,
        200
    );

    let id = token.split('_').nth(1).unwrap();
    let (code, out, _) = run_cli(&["key", "revoke", id, "--data", &data], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("revoked"));
    assert_eq!(
        server.admin_get("/api/system/health", Some(&token)).status,
        401
    );
    let (code, _, err) = run_cli(&["key", "revoke", id, "--data", &data], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("no API key"), "{err}");
}

#[test]
fn dedicated_admin_listener_serves_the_api_on_any_host() {
    let server = Server::builder().admin_listener().start();
    let admin = server.admin_addr.unwrap();
    let mut s = connect(admin);
    write!(
        s,
        "GET /api/system/health HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    write!(
        s,
        "GET /api/system/health HTTP/1.1\r\nHost: root.localhost\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_response(&mut s).unwrap().status, 401);
}

#[test]
fn admin_answers_while_public_connections_are_at_the_cap() {
    let server = Server::builder()
        .admin_listener()
        .env("FAZT_MAX_CONNECTIONS", "3")
        .start();
    let holders: Vec<_> = (0..3).map(|_| server.connect()).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let refused = server.get("root.localhost", "/");
    assert_eq!(refused.status, 503);
    let mut s = connect(server.admin_addr.unwrap());
    write!(
        s,
        "GET /api/system/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let r = read_response(&mut s).unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["status"],
        "degraded",
        "at the cap readiness says degraded"
    );
    drop(holders);
}

/// DESIGN §1: the admin thread never waits on the writer. While a large deploy commits and
/// other admin writes queue behind it, readiness on `--admin-listen` keeps answering; only
/// a generous bound is asserted (the benchmark reports the real latencies).
#[test]
fn admin_health_stays_fast_while_a_large_deploy_and_admin_writes_commit() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};
    let server = Server::builder().admin_listener().start();
    let admin = server.admin_addr.unwrap();
    // Many distinct files (the archive's limit): the writer's commit inserts a blob and a
    // file row for each, which holds it for a while even on a fast disk.
    let mut rng = Rng(0x5eed_0009);
    let files: Vec<(String, Vec<u8>)> = (0..10_000)
        .map(|i| (format!("f/{i}.bin"), rng.bytes(4096)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (p.as_str(), &c[..])).collect();
    let zip = crate::common::zips::zip_of(&refs, zip::CompressionMethod::Stored);
    let health = format!(
        "GET /api/system/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        server.token
    );
    let done = AtomicBool::new(false);
    /// Sets `done` however the deploy ends (a panic too), so the sampling loop stops.
    struct Done<'a>(&'a AtomicBool);
    impl Drop for Done<'_> {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    let (mut samples, mut slowest) = (0, Duration::ZERO);
    std::thread::scope(|scope| {
        let deploy = scope.spawn(|| {
            let _done = Done(&done);
            let auth = format!("Bearer {}", server.token);
            let headers = [
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/zip"),
            ];
            // A loaded machine can take longer than the usual 15 s read timeout to commit
            // 10,000 files in a debug build.
            let raw = request_bytes(
                "POST",
                "admin.localhost",
                "/api/deploy?site=big",
                &headers,
                &zip,
            );
            let mut stream = server.connect();
            stream
                .set_read_timeout(Some(Duration::from_secs(120)))
                .unwrap();
            stream.write_all(&raw).unwrap();
            read_response(&mut stream).expect("the deploy's answer")
        });
        let writes = scope.spawn(|| {
            // Until the deploy has answered, so some of them queue behind its commit.
            let until = Instant::now() + Duration::from_secs(120);
            let mut n = 0;
            while !done.load(Ordering::SeqCst) && Instant::now() < until {
                let slug = format!("s{}", n % 100);
                let body = serde_json::json!({"slug": slug, "url": "https://example.com/"});
                let r = admin_post(&server, "/api/redirects", &body);
                assert_eq!(r.status, 200, "{}", r.text());
                n += 1;
            }
        });
        let give_up = Instant::now() + Duration::from_secs(150);
        while !done.load(Ordering::SeqCst) && Instant::now() < give_up {
            let started = Instant::now();
            let r = raw_request(admin, &health);
            slowest = slowest.max(started.elapsed());
            assert_eq!(r.status, 200, "{}", r.text());
            samples += 1;
            std::thread::sleep(Duration::from_millis(10));
        }
        let r = deploy.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
        writes.join().unwrap();
    });
    eprintln!("admin health during the deploy: {samples} checks, slowest {slowest:?}");
    assert!(
        samples >= 5,
        "only {samples} health checks ran during the deploy"
    );
    assert!(
        slowest < Duration::from_secs(1),
        "admin health took {slowest:?} during a deploy ({samples} checks)"
    );
}

/// An admin write answered later (after its writer job) goes back to its own connection,
/// in order before a pipelined read, on the admin listener and on the public one.
#[test]
fn deferred_admin_answers_reach_their_connection_in_order() {
    let server = Server::builder().admin_listener().start();
    for (addr, host) in [
        (server.admin_addr.unwrap(), "127.0.0.1"),
        (server.addr, "admin.localhost"),
    ] {
        let body = format!(
            r#"{{"slug":"via-{}","url":"https://example.com/"}}"#,
            addr.port()
        );
        let auth = format!("Authorization: Bearer {}\r\n", server.token);
        let mut s = connect(addr);
        write!(
            s,
            "POST /api/redirects HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Length: {}\r\n\r\n{body}\
             GET /api/system/health HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n",
            body.len()
        )
        .unwrap();
        let created = read_response(&mut s).unwrap();
        assert_eq!(created.status, 200, "{}", created.text());
        assert_eq!(created.json()["slug"], format!("via-{}", addr.port()));
        let health = read_response(&mut s).unwrap();
        assert_eq!(health.status, 200, "{}", health.text());
        assert_eq!(health.json()["status"], "ok");
    }
    let listed = get_json(&server, "/api/redirects");
    assert_eq!(listed["redirects"].as_array().unwrap().len(), 2, "{listed}");
}

/// Shutdown: an admin write whose writer job is still queued (behind a deploy's commit)
/// when SIGTERM arrives is answered, the deploy finishes, and the exit is clean.
#[test]
fn admin_writes_queued_at_shutdown_are_answered() {
    use std::time::{Duration, Instant};
    // The drain deadline is generous: this is about what gets answered, and a loaded machine
    // can take longer than the default 10 s to commit the 40 MB deploy.
    let mut server = Server::builder()
        .admin_listener()
        .env("FAZT_SHUTDOWN_TIMEOUT", "60s")
        .start();
    let admin = server.admin_addr.unwrap();
    let mut rng = Rng(0x5eed_0010);
    let files: Vec<(String, Vec<u8>)> = (0..10_000)
        .map(|i| (format!("f/{i}.bin"), rng.bytes(4096)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, c)| (p.as_str(), &c[..])).collect();
    let zip = crate::common::zips::zip_of(&refs, zip::CompressionMethod::Stored);
    let auth = format!("Authorization: Bearer {}\r\n", server.token);
    let mut deploy = connect(admin);
    deploy
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    write!(
        deploy,
        "POST /api/deploy?site=big HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/zip\r\n\
         Content-Length: {}\r\n\r\n",
        zip.len()
    )
    .unwrap();
    deploy.write_all(&zip).unwrap();

    // Keys are created until one is seen waiting in the writer's queue.
    let body = r#"{"name":"late"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut queued = None;
    while queued.is_none() && Instant::now() < deadline {
        let mut s = connect(admin);
        write!(
            s,
            "POST /api/keys HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let health = raw_request(
            admin,
            format!(
                "GET /api/system/health HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
            ),
        );
        if health.json()["writer"]["queue_depth"].as_u64() >= Some(1) {
            queued = Some(s);
        } else {
            assert_eq!(read_response(&mut s).unwrap().status, 201);
        }
    }
    let mut queued = queued.expect("no key creation was ever seen queued behind the deploy");
    signal(&server.child, libc::SIGTERM);
    let created = read_response(&mut queued).unwrap();
    assert_eq!(created.status, 201, "{}", created.text());
    assert!(created.json()["token"]
        .as_str()
        .unwrap()
        .starts_with("fzt_"));
    let deployed = read_response(&mut deploy).unwrap();
    assert_eq!(deployed.status, 200, "{}", deployed.text());
    let status = server.wait(Duration::from_secs(90)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
}
