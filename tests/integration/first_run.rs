//! A first run as a user sees it: the URLs printed at start (and with FAZT_PUBLIC_URL or a
//! trusted proxy's X-Forwarded-Proto, the URLs returned), the modes of the data dir and the
//! database files, and the lock that keeps a second server off the same data dir.
use crate::common::zips::zip_of;
use crate::common::*;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Starts `fazt server start` on `data` with `args`; returns the child and its stdout lines
/// up to and including the `root site:` line.
fn start_printing(data: &std::path::Path, args: &[&str]) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(BIN)
        .args(["server", "start", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(args)
        .env("FAZT_THREADS", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start fazt");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !seen.iter().any(|l: &String| l.starts_with("root site:")) {
        assert!(Instant::now() < deadline, "no URLs printed: {seen:?}");
        match lines.next() {
            Some(Ok(line)) => seen.push(line),
            _ => panic!("fazt exited before printing its URLs: {seen:?}"),
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, seen)
}

fn stop(mut child: std::process::Child) {
    signal(&child, libc::SIGTERM);
    let _ = child.wait();
}

fn port_of(lines: &[String]) -> u16 {
    let line = lines
        .iter()
        .find(|l| l.starts_with("listening on http://") && l.ends_with("(public)"))
        .expect("the public listener line");
    let addr: std::net::SocketAddr = line["listening on http://".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    addr.port()
}

#[test]
fn start_prints_the_dashboard_and_the_root_site() {
    let data = TempDir::new("urls");
    let (child, lines) = start_printing(data.path(), &[]);
    let port = port_of(&lines);
    assert!(
        lines.contains(&format!("dashboard: http://localhost:{port}/")),
        "{lines:?}"
    );
    assert!(
        lines.contains(&format!("root site: http://root.localhost:{port}/")),
        "{lines:?}"
    );
    // The dashboard URL is the dashboard, the root site URL the landing page.
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    let dash = raw_request(
        addr,
        "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(dash.status, 200);
    assert!(dash.text().to_lowercase().contains("<html"));
    let root = raw_request(
        addr,
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(root.status, 200);
    assert!(root.text().contains("fazt is running"));
    stop(child);
}

#[test]
fn the_public_url_sets_scheme_and_port_everywhere() {
    let data = TempDir::new("public-url");
    let args = [
        "--domain",
        "example.test",
        "--public-url",
        "https://example.test",
    ];
    let (child, lines) = start_printing(data.path(), &args);
    assert!(
        lines.contains(&"dashboard: https://admin.example.test/".to_string()),
        "{lines:?}"
    );
    assert!(
        lines.contains(&"root site: https://example.test/".to_string()),
        "{lines:?}"
    );
    stop(child);

    let server = args.iter().fold(Server::builder(), |b, a| b.arg(a)).start();
    let zip = zip_of(
        &[("index.html", b"hi".as_slice())],
        zip::CompressionMethod::Stored,
    );
    let r = deploy_raw(&server, "blog", &zip, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["url"], "https://blog.example.test/");
    let sites = server.admin_get("/api/sites", Some(&server.token)).json();
    let blog = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "blog")
        .cloned();
    assert_eq!(blog.unwrap()["url"], "https://blog.example.test/");
}

#[test]
fn a_public_url_on_another_host_is_refused() {
    let (code, _, err) = run_cli(
        &[
            "server",
            "start",
            "--public-url",
            "https://example.com",
            "--data",
            "/nonexistent/x",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("FAZT_PUBLIC_URL (--public-url)"), "{err}");
    assert!(err.contains("FAZT_DOMAIN=example.com"), "{err}");
    let (code, _, err) = run_cli(&["server", "start", "--public-url", "example.com"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("must start with http:// or https://"), "{err}");
}

#[test]
fn forwarded_proto_counts_only_from_a_trusted_proxy() {
    let zip = zip_of(
        &[("index.html", b"hi".as_slice())],
        zip::CompressionMethod::Stored,
    );
    let https = [("X-Forwarded-Proto", "https")];
    // The test client is 127.0.0.1: not a proxy here, so its header is ignored.
    let server = Server::start();
    let r = deploy_raw(&server, "blog", &zip, &https);
    let port = server.addr.port();
    assert_eq!(r.json()["url"], format!("http://blog.localhost:{port}/"));
    drop(server);

    let server = Server::builder()
        .env("FAZT_TRUSTED_PROXIES", "127.0.0.1")
        .start();
    let r = deploy_raw(&server, "blog", &zip, &https);
    assert_eq!(r.json()["url"], "https://blog.localhost/", "{}", r.text());
    let auth = format!("Bearer {}", server.token);
    let headers = [
        ("Authorization", auth.as_str()),
        ("X-Forwarded-Proto", "https"),
    ];
    let sites = send(
        &server,
        "GET",
        "admin.localhost",
        "/api/sites",
        &headers,
        b"",
    )
    .json();
    let blog = sites["sites"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "blog")
        .cloned();
    assert_eq!(blog.unwrap()["url"], "https://blog.localhost/");
    // Without the header, the listener's own scheme and port.
    let r = deploy_raw(&server, "blog", &zip, &[]);
    let port = server.addr.port();
    assert_eq!(r.json()["url"], format!("http://blog.localhost:{port}/"));
}

#[test]
fn a_folder_wrapped_site_comes_back_with_a_warning() {
    let server = Server::start();
    let nested = zip_of(
        &[
            ("dist/index.html", b"hi".as_slice()),
            ("dist/app.js", b"1".as_slice()),
        ],
        zip::CompressionMethod::Stored,
    );
    let r = deploy_raw(&server, "blog", &nested, &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    let warning = r.json()["warning"].as_str().unwrap_or_default().to_string();
    assert!(warning.contains("'dist/'"), "{}", r.text());
    let flat = zip_of(
        &[
            ("index.html", b"hi".as_slice()),
            ("dist/app.js", b"1".as_slice()),
        ],
        zip::CompressionMethod::Stored,
    );
    let r = deploy_raw(&server, "blog", &flat, &[]);
    assert_eq!(r.status, 200);
    assert!(r.json().get("warning").is_none(), "{}", r.text());
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn the_data_dir_and_database_are_private_even_when_they_were_not() {
    let data = TempDir::new("modes");
    let server = start_on(data.path(), &[]);
    let db = data.db();
    let wal = db.with_extension("db-wal");
    assert_eq!(mode(data.path()), 0o700);
    assert_eq!(mode(&db), 0o600);
    assert_eq!(mode(&wal), 0o600, "{}", wal.display());
    assert_eq!(mode(&data.path().join("tmp")), 0o700);
    drop(server);
    // An older fazt left them open; the next start closes them.
    for (path, m) in [(data.path().to_path_buf(), 0o755), (db.clone(), 0o644)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m)).unwrap();
    }
    let server = start_on(data.path(), &[]);
    assert_eq!(mode(data.path()), 0o700);
    assert_eq!(mode(&db), 0o600);
    drop(server);
    // A CLI command creating the database makes it private too.
    let fresh = TempDir::new("modes-cli");
    let dir = fresh.path().join("new");
    let (code, out, err) = run_cli(&["key", "list", "--data", s(&dir)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("fazt.db")), 0o600);
}

#[test]
fn a_second_server_on_the_same_data_dir_exits_1() {
    let data = TempDir::new("lock");
    let first = start_on(data.path(), &[]);
    let (code, out, err) = run_cli(
        &[
            "server",
            "start",
            "--listen",
            "127.0.0.1:0",
            "--data",
            s(data.path()),
        ],
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&data.path().display().to_string()), "{err}");
    assert!(err.contains(&format!("pid {}", first.child.id())), "{err}");
    assert!(err.contains("already running"), "{err}");
    // The first keeps serving; a CLI command that writes still works beside it.
    assert_eq!(first.get("root.localhost", "/").status, 200);
    let (code, out, err) = run_cli(&["key", "create", "ci", "--data", s(data.path())], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(first.get("root.localhost", "/").status, 200);
}

/// A raw zip deploy of `zip` to `site`, with extra headers.
fn deploy_raw(server: &Server, site: &str, zip: &[u8], extra: &[(&str, &str)]) -> HttpResponse {
    let auth = format!("Bearer {}", server.token);
    let mut headers = vec![
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/zip"),
    ];
    headers.extend_from_slice(extra);
    let path = format!("/api/deploy?site={site}");
    let mut stream = server.connect();
    let mut head =
        format!("POST {path} HTTP/1.1\r\nHost: admin.localhost\r\nConnection: close\r\n");
    for (k, v) in &headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", zip.len()));
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(zip).unwrap();
    read_response(&mut stream).unwrap()
}
