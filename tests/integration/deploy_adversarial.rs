//! `POST /api/deploy` against clients and archives that misbehave: uploads abandoned or
//! stalled half-way, other methods carrying bodies, pipelining, malformed forms and
//! archives, and a shutdown in the middle of an upload. Every case checks the answer,
//! that no temp file is left behind and that the server keeps deploying afterwards.
use crate::common::zips::*;
use crate::common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use zip::CompressionMethod;

fn small_zip(text: &str) -> Vec<u8> {
    zip_of(
        &[("index.html", text.as_bytes())],
        CompressionMethod::Deflated,
    )
}

fn head(method: &str, token: Option<&str>, path: &str, framing: &str, extra: &str) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "{method} {path} HTTP/1.1\r\nHost: admin.localhost\r\n{auth}\
         Content-Type: application/zip\r\n{framing}\r\n{extra}\r\n"
    )
}

/// A raw zip deploy of `zip` to `site` on a fresh connection.
fn deploy(server: &Server, site: &str, zip: &[u8]) -> HttpResponse {
    let mut raw = head(
        "POST",
        Some(&server.token),
        &format!("/api/deploy?site={site}"),
        &format!("Content-Length: {}", zip.len()),
        "Connection: close\r\n",
    )
    .into_bytes();
    raw.extend_from_slice(zip);
    raw_request(server.addr, raw)
}

/// A multipart deploy with `body` as sent and the test boundary.
fn deploy_form_body(server: &Server, body: &[u8]) -> HttpResponse {
    let mut raw = format!(
        "POST /api/deploy HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Content-Type: multipart/form-data; boundary={FORM_BOUNDARY}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        server.token,
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw_request(server.addr, raw)
}

fn error_of(r: &HttpResponse) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The server still takes a deploy and serves it.
fn assert_still_deploys(server: &Server, site: &str) {
    let r = deploy(server, site, &small_zip("still deploying"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        server.get(&format!("{site}.localhost"), "/").text(),
        "still deploying"
    );
}

#[test]
fn a_body_sent_to_the_deploy_path_with_another_method_is_refused_before_it_is_read() {
    let server = Server::builder().env("FAZT_UPLOAD_RAM", "64K").start();
    let temp = temp_dir_of(server.data.path());
    let declared = 200u64 << 20;
    for method in ["PUT", "GET", "PATCH", "DELETE"] {
        for token in [None, Some(server.token.as_str())] {
            // A client that waits for `100 Continue` must be answered without it: a
            // stranger must not be able to make the server read (and spool to disk) a
            // body the route is going to refuse anyway.
            let mut stream = server.connect();
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let request = head(
                method,
                token,
                "/api/deploy?site=blog",
                &format!("Content-Length: {declared}"),
                "Expect: 100-continue\r\n",
            );
            stream.write_all(request.as_bytes()).unwrap();
            let r = read_response(&mut stream).expect("an answer before the body");
            let expected = if token.is_some() { 405 } else { 401 };
            assert_eq!(
                r.status,
                expected,
                "{method} (token: {token:?}): {}",
                r.text()
            );
        }
    }
    // Without waiting for 100 Continue: the body bytes sent are not spooled.
    let mut stream = server.connect();
    let request = head(
        "PUT",
        None,
        "/api/deploy",
        &format!("Content-Length: {declared}"),
        "",
    );
    stream.write_all(request.as_bytes()).unwrap();
    let _ = stream.write_all(&vec![0u8; 1 << 20]);
    let r = read_response(&mut stream).expect("an answer");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(leftovers(&temp).is_empty(), "{:?}", leftovers(&temp));
    assert_still_deploys(&server, "blog");
}

#[test]
fn a_client_that_disconnects_mid_upload_leaves_no_spool_file_and_frees_nothing_it_held() {
    let server = Server::builder()
        .env("FAZT_UPLOAD_RAM", "64K")
        .env("FAZT_DEPLOY_RATE", "1000")
        .start();
    let temp = temp_dir_of(server.data.path());
    for _ in 0..3 {
        let mut stream = server.connect();
        let request = head(
            "POST",
            Some(&server.token),
            "/api/deploy?site=blog",
            &format!("Content-Length: {}", 4 << 20),
            "",
        );
        stream.write_all(request.as_bytes()).unwrap();
        stream.write_all(&vec![7u8; 1 << 20]).unwrap();
        assert!(
            wait_for_temp(
                &temp,
                "fazt-upload-",
                Duration::from_secs(10),
                &AtomicBool::new(false)
            ),
            "the upload was spooled"
        );
        drop(stream);
        let left = leftovers_after(&temp, Duration::from_secs(5));
        assert!(left.is_empty(), "after the client left: {left:?}");
    }
    assert_still_deploys(&server, "blog");
}

#[test]
fn a_stalled_upload_gets_408_and_its_spool_file_is_removed() {
    let server = Server::builder()
        .env("FAZT_UPLOAD_RAM", "64K")
        .env("FAZT_BODY_TIMEOUT", "1s")
        .start();
    let temp = temp_dir_of(server.data.path());
    let mut stream = server.connect();
    let request = head(
        "POST",
        Some(&server.token),
        "/api/deploy?site=blog",
        &format!("Content-Length: {}", 4 << 20),
        "",
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(&vec![7u8; 1 << 20]).unwrap();
    assert!(wait_for_temp(
        &temp,
        "fazt-upload-",
        Duration::from_secs(10),
        &AtomicBool::new(false)
    ));
    let r = read_response(&mut stream).expect("408 once the body stalls");
    assert_eq!(r.status, 408, "{}", r.text());
    let left = leftovers_after(&temp, Duration::from_secs(5));
    assert!(left.is_empty(), "after the timeout: {left:?}");
    assert_still_deploys(&server, "blog");
}

#[test]
fn requests_pipelined_behind_a_deploy_are_answered_in_order() {
    let server = Server::start();
    let zip = small_zip("pipelined");
    let auth = format!("Authorization: Bearer {}\r\n", server.token);
    let mut raw = head(
        "POST",
        Some(&server.token),
        "/api/deploy?site=blog",
        &format!("Content-Length: {}", zip.len()),
        "",
    )
    .into_bytes();
    raw.extend_from_slice(&zip);
    raw.extend_from_slice(
        format!("GET /api/sites HTTP/1.1\r\nHost: admin.localhost\r\n{auth}\r\n").as_bytes(),
    );
    raw.extend_from_slice(b"GET / HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n");
    let mut stream = server.connect();
    stream.write_all(&raw).unwrap();
    let first = read_response(&mut stream).unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(first.json()["site"], "blog");
    let second = read_response(&mut stream).unwrap();
    assert_eq!(second.status, 200, "{}", second.text());
    assert!(second.text().contains("\"blog\""), "{}", second.text());
    let third = read_response(&mut stream).unwrap();
    assert_eq!(third.text(), "pipelined");
}

#[test]
fn content_length_with_chunked_is_refused_and_no_body_is_read() {
    let server = Server::start();
    let mut stream = server.connect();
    let request = head(
        "POST",
        Some(&server.token),
        "/api/deploy?site=blog",
        "Content-Length: 10\r\nTransfer-Encoding: chunked",
        "",
    );
    stream.write_all(request.as_bytes()).unwrap();
    let r = read_response(&mut stream).unwrap();
    assert_eq!(r.status, 400, "{}", r.text());
    assert_still_deploys(&server, "blog");
}

#[test]
fn malformed_forms_get_400_naming_the_problem() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let zip = small_zip("form");
    let (_, good) = multipart_form(&[("site_name", "blog")], "file", &zip);

    // An empty file part.
    let (_, empty) = multipart_form(&[("site_name", "blog")], "file", b"");
    let r = deploy_form_body(&server, &empty);
    assert_eq!(r.status, 400, "{}", r.text());
    // Truncated anywhere: before the closing boundary, inside the zip, inside headers.
    for cut in [good.len() - 3, good.len() - 40, good.len() / 2, 60, 10] {
        let r = deploy_form_body(&server, &good[..cut]);
        assert_eq!(r.status, 400, "cut at {cut}: {}", r.text());
    }
    // The boundary never appears, or only as a prefix of a longer one.
    let other = String::from_utf8_lossy(&good).replace(FORM_BOUNDARY, "another-boundary");
    let r = deploy_form_body(&server, other.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(error_of(&r).contains("boundary"), "{}", r.text());
    let longer =
        String::from_utf8_lossy(&good).replace(FORM_BOUNDARY, &format!("{FORM_BOUNDARY}x"));
    let r = deploy_form_body(&server, longer.as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    // Only a closing boundary.
    let r = deploy_form_body(&server, format!("--{FORM_BOUNDARY}--\r\n").as_bytes());
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(error_of(&r).contains("site_name"), "{}", r.text());
    assert_eq!(server.get("blog.localhost", "/").status, 404);
    assert!(leftovers_after(&temp_dir_of(server.data.path()), Duration::from_secs(3)).is_empty());
    let r = deploy_form_body(&server, &good);
    assert_eq!(r.status, 200, "{}", r.text());
}

/// A zip whose central directory (and one entry) point past the end of the `file` part:
/// the bytes after it in the body (here another zip) must never be read as the archive.
#[test]
fn a_zip_pointing_outside_its_form_part_is_refused() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let inner = build(&[Raw::stored("index.html", b"inside the part")], 0);
    // The end record claims the central directory starts 1 MB further on.
    let mut far = inner.clone();
    let eocd = far.len() - 22;
    far[eocd + 16..eocd + 20].copy_from_slice(&(1u32 << 20).to_le_bytes());
    // The central directory's entry claims its local header is beyond the part.
    let mut entry_far = inner.clone();
    let cd = u32::from_le_bytes(entry_far[eocd + 16..eocd + 20].try_into().unwrap()) as usize;
    entry_far[cd + 42..cd + 46].copy_from_slice(&(5000u32).to_le_bytes());
    for zip in [far, entry_far] {
        let (_, mut body) = multipart_form(&[("site_name", "blog")], "file", &zip);
        // A well-formed zip after the part, where the lying offsets point.
        body.extend_from_slice(&vec![b' '; 4000]);
        body.extend_from_slice(&small_zip("outside the part"));
        let r = deploy_form_body(&server, &body);
        assert_eq!(r.status, 400, "{}", r.text());
    }
    assert_eq!(server.get("blog.localhost", "/").status, 404);
}

#[test]
fn more_entries_than_the_limit_are_refused_before_any_is_extracted() {
    let server = Server::builder()
        .env("FAZT_DEPLOY_MAX_FILES", "100")
        .env("FAZT_DEPLOY_RATE", "1000")
        .start();
    let many: Vec<Raw> = (0..101)
        .map(|i| Raw::stored(&format!("f{i}.txt"), b"x"))
        .collect();
    let r = deploy(&server, "blog", &build(&many, 0));
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(error_of(&r).contains("101 entries"), "{}", r.text());
    let r = deploy(&server, "blog", &build(&many[..100], 0));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["files"], 100);
}

#[test]
fn sigterm_during_an_upload_lets_it_finish_and_exits_cleanly() {
    let mut server = Server::builder()
        .env("FAZT_UPLOAD_RAM", "64K")
        .env("FAZT_SHUTDOWN_TIMEOUT", "20s")
        .start();
    let temp = temp_dir_of(server.data.path());
    let zip = zip_of(
        &[
            ("big.bin", &Rng(3).bytes(2 << 20)[..]),
            ("index.html", b"done"),
        ],
        CompressionMethod::Stored,
    );
    let mut stream = server.connect();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = head(
        "POST",
        Some(&server.token),
        "/api/deploy?site=blog",
        &format!("Content-Length: {}", zip.len()),
        "",
    );
    stream.write_all(request.as_bytes()).unwrap();
    let half = zip.len() / 2;
    stream.write_all(&zip[..half]).unwrap();
    assert!(wait_for_temp(
        &temp,
        "fazt-upload-",
        Duration::from_secs(10),
        &AtomicBool::new(false)
    ));
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    stream.write_all(&zip[half..]).unwrap();
    let r = read_response(&mut stream).expect("the deploy is answered");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("connection"), Some("close"));
    let status = server
        .wait(Duration::from_secs(30))
        .expect("exits after the deploy");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(leftovers(&temp).is_empty(), "{:?}", leftovers(&temp));
}

#[test]
fn an_upload_still_arriving_at_the_shutdown_deadline_leaves_no_temp_file() {
    let mut server = Server::builder()
        .env("FAZT_UPLOAD_RAM", "64K")
        .env("FAZT_SHUTDOWN_TIMEOUT", "1s")
        .start();
    let temp = temp_dir_of(server.data.path());
    let mut stream = server.connect();
    let request = head(
        "POST",
        Some(&server.token),
        "/api/deploy?site=blog",
        &format!("Content-Length: {}", 4 << 20),
        "",
    );
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(&vec![7u8; 1 << 20]).unwrap();
    assert!(wait_for_temp(
        &temp,
        "fazt-upload-",
        Duration::from_secs(10),
        &AtomicBool::new(false)
    ));
    signal(&server.child, libc::SIGTERM);
    let status = server
        .wait(Duration::from_secs(30))
        .expect("exits at the deadline");
    assert_eq!(status.code(), Some(1), "the drain did not finish");
    assert!(
        leftovers(&temp).is_empty(),
        "the abandoned upload's spool file is left: {:?}",
        leftovers(&temp)
    );
    drop(stream);
}

#[test]
fn a_deploy_through_the_public_port_and_the_admin_listener_alike() {
    let server = Server::builder()
        .admin_listener()
        .env("FAZT_DEPLOY_RATE", "1000")
        .start();
    let zip = small_zip("public port");
    // Public port with Host admin.localhost (the `deploy` helper) and bare localhost.
    assert_eq!(deploy(&server, "blog", &zip).status, 200);
    let mut raw = format!(
        "POST /api/deploy?site=blog HTTP/1.1\r\nHost: localhost:{}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/zip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        server.addr.port(),
        server.token,
        zip.len()
    )
    .into_bytes();
    raw.extend_from_slice(&zip);
    assert_eq!(raw_request(server.addr, &raw).status, 200);
    // A site host on the public port is not the admin API: no deploy there.
    let site_host = String::from_utf8_lossy(&raw).replace(
        &format!("Host: localhost:{}", server.addr.port()),
        "Host: blog.localhost",
    );
    let r = raw_request(server.addr, site_host.as_bytes());
    assert_ne!(r.status, 200, "{}", r.text());
    // The admin listener, whatever the Host.
    let admin = server.admin_addr.unwrap();
    assert_eq!(raw_request(admin, &raw).status, 200);
    let unauthenticated = head(
        "POST",
        None,
        "/api/deploy?site=blog",
        &format!("Content-Length: {}", 1u64 << 30),
        "",
    );
    let mut stream: TcpStream = connect(admin);
    stream.write_all(unauthenticated.as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().status, 401);
}

#[test]
fn a_temp_dir_deleted_at_runtime_fails_deploys_clearly_and_serving_goes_on() {
    let server = Server::builder()
        .env("FAZT_UPLOAD_RAM", "64K")
        .env("FAZT_DEPLOY_RATE", "1000")
        .start();
    let temp = temp_dir_of(server.data.path());
    assert_still_deploys(&server, "blog");
    std::fs::remove_dir_all(&temp).unwrap();
    let big = zip_of(
        &[("big.bin", &Rng(5).bytes(256 * 1024)[..])],
        CompressionMethod::Stored,
    );
    for zip in [small_zip("no temp dir"), big] {
        let r = deploy(&server, "blog", &zip);
        assert_eq!(r.status, 500, "{}", r.text());
        assert!(r.json()["error"]["message"].is_string(), "{}", r.text());
    }
    assert_eq!(server.get("blog.localhost", "/").text(), "still deploying");
    assert_eq!(server.get("localhost", "/health").status, 200);
    std::fs::create_dir(&temp).unwrap();
    assert_still_deploys(&server, "shop");
}

/// `count` files of `size` incompressible bytes: a deploy that takes a while to apply.
fn heavy_zip(seed: u64, count: usize, size: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    let files: Vec<(String, Vec<u8>)> = (0..count)
        .map(|i| (format!("d/f{i:04}.bin"), rng.bytes(size)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    zip_of(&refs, CompressionMethod::Stored)
}

#[test]
fn sigterm_while_a_deploy_runs_and_another_waits_answers_both_and_exits_0() {
    let mut server = Server::builder()
        .env("FAZT_DEPLOY_RATE", "1000")
        .env("FAZT_SHUTDOWN_TIMEOUT", "60s")
        .start();
    let temp = temp_dir_of(server.data.path());
    let heavy = heavy_zip(9, 300, 100_000);
    let send = |site: &str, zip: &[u8]| {
        let mut stream = server.connect();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let mut raw = head(
            "POST",
            Some(&server.token),
            &format!("/api/deploy?site={site}"),
            &format!("Content-Length: {}", zip.len()),
            "",
        )
        .into_bytes();
        raw.extend_from_slice(zip);
        stream.write_all(&raw).unwrap();
        stream
    };
    let mut first = send("heavy", &heavy);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !leftovers(&temp)
        .iter()
        .any(|n| n.starts_with("fazt-deploy-"))
    {
        assert!(Instant::now() < deadline, "the heavy deploy never started");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut second = send("second", &small_zip("second"));
    std::thread::sleep(Duration::from_millis(300));
    signal(&server.child, libc::SIGTERM);
    let r = read_response(&mut first).expect("the running deploy is answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = read_response(&mut second).expect("the waiting deploy is answered");
    assert_eq!(r.status, 200, "{}", r.text());
    let status = server.wait(Duration::from_secs(60)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(leftovers(&temp).is_empty(), "{:?}", leftovers(&temp));
}

#[test]
fn uploads_racing_for_the_deploy_queue_are_all_answered_and_leave_nothing() {
    let server = Server::builder()
        .env("FAZT_DEPLOY_RATE", "1000")
        .env("FAZT_UPLOAD_RAM", "64K")
        .start();
    let temp = temp_dir_of(server.data.path());
    let zips: Vec<Vec<u8>> = (0..4).map(|i| heavy_zip(20 + i, 40, 50_000)).collect();
    // Every head passes refuse_early while the queue is empty...
    let mut streams: Vec<TcpStream> = zips
        .iter()
        .enumerate()
        .map(|(i, zip)| {
            let mut stream = server.connect();
            stream
                .set_read_timeout(Some(Duration::from_secs(60)))
                .unwrap();
            let request = head(
                "POST",
                Some(&server.token),
                &format!("/api/deploy?site=race{i}"),
                &format!("Content-Length: {}", zip.len()),
                "",
            );
            stream.write_all(request.as_bytes()).unwrap();
            stream
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    // ...then the bodies all complete at once.
    for (stream, zip) in streams.iter_mut().zip(&zips) {
        stream.write_all(zip).unwrap();
    }
    let mut deployed = 0;
    for (i, stream) in streams.iter_mut().enumerate() {
        let r = read_response(stream).expect("every upload is answered");
        match r.status {
            200 => deployed += 1,
            503 => assert!(r.header("retry-after").is_some(), "race{i}: {}", r.text()),
            other => panic!("race{i}: {other} {}", r.text()),
        }
    }
    assert!(deployed >= 1);
    assert!(leftovers_after(&temp, Duration::from_secs(3)).is_empty());
    assert_still_deploys(&server, "after");
}
