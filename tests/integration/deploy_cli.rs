//! The deploy client (`fazt deploy|login|sites|rollback`) against a fake admin API: a
//! loopback listener thread that records each request and answers a canned response.
//! End-to-end runs against the real server live with the server's deploy tests.
use crate::common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When the fake server answers relative to the request body.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// After reading the whole body (sending `100 Continue` first if asked).
    AfterReading,
    /// Right after the head, refusing the body as a server does for a bad token or a
    /// declared size over its limit.
    Early,
    /// After `100 Continue` and part of the body, then closing at once.
    MidUpload,
}

struct Canned {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    when: Answer,
}

fn answer(status: u16, body: &str) -> Canned {
    Canned {
        status,
        headers: Vec::new(),
        body: body.to_string(),
        when: Answer::AfterReading,
    }
}

fn error_answer(status: u16, message: &str, when: Answer) -> Canned {
    let mut canned = answer(
        status,
        &serde_json::json!({"error": {"code": "test", "message": message}}).to_string(),
    );
    canned.when = when;
    canned
}

#[derive(Debug)]
struct Recorded {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    sent_continue: bool,
}

impl Recorded {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct FakeServer {
    url: String,
    handle: JoinHandle<Vec<Recorded>>,
}

impl FakeServer {
    /// Serves one connection per canned answer, in order, for at most 30 s.
    fn start(answers: Vec<Canned>) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        listener.set_nonblocking(true).unwrap();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut recorded = Vec::new();
            for canned in answers {
                let stream = loop {
                    match listener.accept() {
                        Ok((stream, _)) => break Some(stream),
                        Err(_) if Instant::now() < deadline => {
                            std::thread::sleep(Duration::from_millis(5))
                        }
                        Err(_) => break None,
                    }
                };
                let Some(stream) = stream else { break };
                recorded.push(serve(stream, &canned));
            }
            recorded
        });
        FakeServer { url, handle }
    }

    fn requests(self) -> Vec<Recorded> {
        self.handle.join().expect("fake server thread")
    }
}

fn serve(mut stream: TcpStream, canned: &Canned) -> Recorded {
    stream.set_nonblocking(false).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut data = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(i) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "client closed before its request head ended");
        data.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8(data[..head_end].to_vec()).unwrap();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap().split(' ');
    let (method, path) = (
        request_line.next().unwrap().to_string(),
        request_line.next().unwrap().to_string(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut recorded = Recorded {
        method,
        path,
        headers,
        body: data[head_end..].to_vec(),
        sent_continue: false,
    };
    let length: usize = recorded
        .header("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let expects = recorded.header("expect") == Some("100-continue");
    if canned.when != Answer::Early {
        if expects {
            stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
            recorded.sent_continue = true;
        }
        let wanted = match canned.when {
            Answer::MidUpload => length.min(64 * 1024),
            _ => length,
        };
        while recorded.body.len() < wanted {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "client closed before its body ended");
            recorded.body.extend_from_slice(&buf[..n]);
        }
    }
    let mut response = format!(
        "HTTP/1.1 {} Canned\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        canned.status,
        canned.body.len()
    );
    for (name, value) in &canned.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&canned.body);
    // The client may already have given up writing; that is its business.
    let _ = stream.write_all(response.as_bytes());
    recorded
}

const DEPLOYED: &str = r#"{"site":"blog","deployment":12,"previous":11,"files":3,"bytes":70017,"new_bytes":1234,"url":"http://blog.example.com/"}"#;

/// A small site with dot-paths that must not be sent, and one incompressible image big
/// enough (> 64 KiB) that the upload asks for `100 Continue`.
fn sample_site(root: &Path) -> std::path::PathBuf {
    let site = root.join("site");
    write_file(&site, "index.html", b"<h1>hello</h1>\n");
    write_file(&site, "css/main.css", b"body { color: red }\n");
    write_file(&site, "img/photo.png", &Rng(7).bytes(70_000));
    write_file(&site, ".env", b"SECRET=1\n");
    write_file(&site, ".git/HEAD", b"ref: refs/heads/main\n");
    write_file(&site, "css/.cache", b"x");
    site
}

/// The parts of a multipart body: (name, filename, content) in order.
fn multipart_parts(content_type: &str, body: &[u8]) -> Vec<(String, Option<String>, Vec<u8>)> {
    let boundary = content_type
        .strip_prefix("multipart/form-data; boundary=")
        .expect("multipart content type");
    let delimiter = format!("--{boundary}");
    let closing = format!("\r\n--{boundary}--\r\n");
    assert!(body.starts_with(delimiter.as_bytes()));
    assert!(
        body.ends_with(closing.as_bytes()),
        "closing boundary at the end"
    );
    let inner = &body[delimiter.len()..body.len() - closing.len()];
    let separator = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut rest = inner;
    loop {
        let end = rest
            .windows(separator.len())
            .position(|w| w == separator.as_bytes())
            .unwrap_or(rest.len());
        let part = &rest[..end];
        let part = part.strip_prefix(b"\r\n").expect("CRLF after the boundary");
        let split = part.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8(part[..split].to_vec()).unwrap();
        let disposition = head
            .lines()
            .find(|l| l.starts_with("Content-Disposition: form-data; "))
            .expect("Content-Disposition");
        let attr = |key: &str| {
            disposition
                .split("; ")
                .find_map(|a| a.strip_prefix(&format!("{key}=\"")))
                .map(|v| v.trim_end_matches('"').to_string())
        };
        parts.push((
            attr("name").unwrap(),
            attr("filename"),
            part[split + 4..].to_vec(),
        ));
        if end == rest.len() {
            return parts;
        }
        rest = &rest[end + separator.len()..];
    }
}

#[test]
fn deploy_streams_a_multipart_zip_of_the_directory_and_prints_the_result() {
    let home = TempDir::new("deploy-ok");
    let site = sample_site(home.path());
    let server = FakeServer::start(vec![answer(200, DEPLOYED)]);
    let (code, out, err) = run_client(
        &[
            "deploy",
            s(&site),
            "--site",
            "blog",
            "--server",
            &server.url,
            "--token",
            "fzt_test_token",
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        (request.method.as_str(), request.path.as_str()),
        ("POST", "/api/deploy")
    );
    assert_eq!(
        request.header("authorization"),
        Some("Bearer fzt_test_token")
    );
    assert_eq!(
        request.header("content-length").unwrap(),
        request.body.len().to_string(),
        "Content-Length is exact"
    );
    assert!(
        request.sent_continue,
        "a >64 KiB body waits for 100 Continue"
    );

    let parts = multipart_parts(request.header("content-type").unwrap(), &request.body);
    assert_eq!(parts.len(), 2);
    assert_eq!(
        (parts[0].0.as_str(), parts[0].1.as_deref()),
        ("site_name", None)
    );
    assert_eq!(parts[0].2, b"blog");
    assert_eq!(
        (parts[1].0.as_str(), parts[1].1.as_deref()),
        ("file", Some("site.zip"))
    );

    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(parts[1].2.clone())).unwrap();
    let mut names = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).unwrap();
        let name = entry.name().unwrap().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        assert_eq!(bytes, std::fs::read(site.join(&name)).unwrap(), "{name}");
        names.push(name);
    }
    names.sort();
    assert_eq!(
        names,
        ["css/main.css", "img/photo.png", "index.html"],
        "dot-paths are skipped"
    );

    assert!(
        out.contains(
            "site blog is now deployment 12 (previous 11): 3 files, 68.4 KiB (1.2 KiB new)"
        ),
        "{out}"
    );
    assert!(out.contains("http://blog.example.com/"), "{out}");
    // stderr is a pipe here: plain lines, no carriage-return redraws.
    assert!(err.contains("packing 3 files"), "{err}");
    assert!(
        err.contains("upload: ") && err.contains(" sent in "),
        "{err}"
    );
    assert!(
        !err.contains('\r'),
        "no bar redraws when not a terminal: {err:?}"
    );
}

#[test]
fn a_small_deploy_sends_without_waiting_and_lower_cases_the_site() {
    let home = TempDir::new("deploy-small");
    let site = home.path().join("site");
    write_file(&site, "index.html", b"hi");
    let server = FakeServer::start(vec![answer(200, DEPLOYED)]);
    let (code, out, err) = run_client(
        &["deploy", s(&site), "--site", "Blog"],
        home.path(),
        &[("FAZT_SERVER", &server.url), ("FAZT_TOKEN", "envtok")],
    );
    assert_eq!(code, 0, "{out}{err}");
    let request = &server.requests()[0];
    assert_eq!(request.header("expect"), None);
    assert_eq!(request.header("authorization"), Some("Bearer envtok"));
    let parts = multipart_parts(request.header("content-type").unwrap(), &request.body);
    assert_eq!(parts[0].2, b"blog");
}

#[test]
fn every_error_status_is_explained_with_a_non_zero_exit() {
    let home = TempDir::new("deploy-errors");
    let site = sample_site(home.path());
    let retry = |mut c: Canned, secs: &str| {
        c.headers.push(("Retry-After", secs.to_string()));
        c
    };
    let cases: Vec<(Canned, &str)> = vec![
        (
            error_answer(
                400,
                "archive entry '../x': path leaves the site",
                Answer::AfterReading,
            ),
            "answered 400: archive entry '../x': path leaves the site",
        ),
        (
            error_answer(401, "invalid token", Answer::Early),
            "the server refused the token (401: invalid token)",
        ),
        (
            error_answer(403, "token scope does not cover site 'blog'", Answer::Early),
            "not allowed to (403: token scope does not cover site 'blog')",
        ),
        (
            error_answer(413, "body over 1 KiB", Answer::Early),
            "larger than the server accepts (413: body over 1 KiB)",
        ),
        (
            error_answer(413, "body over 64 KiB", Answer::MidUpload),
            "larger than the server accepts (413: body over 64 KiB)",
        ),
        (
            retry(error_answer(429, "rate limited", Answer::Early), "30"),
            "too many requests (429: rate limited); retry in 30 s",
        ),
        (
            retry(
                error_answer(503, "another deploy is in progress", Answer::AfterReading),
                "5",
            ),
            "busy (503: another deploy is in progress); nothing was changed, retry in 5 s",
        ),
        (
            error_answer(507, "disk 95% full", Answer::AfterReading),
            "disk is too full (507: disk 95% full)",
        ),
        (
            error_answer(500, "database is locked", Answer::AfterReading),
            "answered 500: database is locked",
        ),
        (
            answer(502, "<html>Bad Gateway</html>"),
            "answered 502: <html>Bad Gateway</html>",
        ),
    ];
    for (canned, expected) in cases {
        let status = canned.status;
        let server = FakeServer::start(vec![canned]);
        let (code, out, err) = run_client(
            &[
                "deploy",
                s(&site),
                "--site",
                "blog",
                "--server",
                &server.url,
                "--token",
                "t",
            ],
            home.path(),
            &[],
        );
        assert_eq!(code, 1, "{status}: {out}{err}");
        assert!(
            err.contains("fazt: cannot deploy blog: ") && err.contains(expected),
            "{status}: expected '{expected}' in: {err}"
        );
        assert!(out.is_empty(), "{status}: nothing on stdout: {out}");
        let request = &server.requests()[0];
        if status == 401 {
            assert!(request.body.is_empty(), "a refused upload sends no body");
            assert!(
                !err.contains("upload: "),
                "no progress for an upload never started: {err}"
            );
        }
    }
}

#[test]
fn an_unreachable_server_is_named() {
    let home = TempDir::new("deploy-unreachable");
    let site = sample_site(home.path());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{addr}");
    let (code, out, err) = run_client(
        &[
            "deploy",
            s(&site),
            "--site",
            "blog",
            "--server",
            &url,
            "--token",
            "t",
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains(&format!("cannot connect to {url}: ")), "{err}");
    let (code, _, err) = run_client(
        &["sites", "--server", &url, "--token", "t"],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect to"), "{err}");
}

type Env<'a> = &'a [(&'a str, &'a str)];
/// Arguments, environment, and what stderr must say.
type UsageCase<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);

#[test]
fn usage_and_configuration_errors_exit_2_before_any_request() {
    let home = TempDir::new("deploy-usage");
    let site = sample_site(home.path());
    let file = site.join("index.html");
    let empty = home.path().join("empty");
    write_file(&empty, ".git/HEAD", b"x");
    let missing = home.path().join("missing");
    let srv = "http://127.0.0.1:9";
    let cases: Vec<UsageCase> = vec![
        (vec!["deploy", s(&site)], vec![], "--site <NAME>"),
        (vec!["deploy", "--site", "blog"], vec![], "<DIR>"),
        (
            vec![
                "deploy",
                s(&missing),
                "--site",
                "blog",
                "--server",
                srv,
                "--token",
                "t",
            ],
            vec![],
            "missing",
        ),
        (
            vec![
                "deploy",
                s(&file),
                "--site",
                "blog",
                "--server",
                srv,
                "--token",
                "t",
            ],
            vec![],
            "is not a directory",
        ),
        (
            vec![
                "deploy",
                s(&empty),
                "--site",
                "blog",
                "--server",
                srv,
                "--token",
                "t",
            ],
            vec![],
            "has no files to deploy",
        ),
        (
            vec![
                "deploy",
                s(&site),
                "--site",
                "bad_name",
                "--server",
                srv,
                "--token",
                "t",
            ],
            vec![],
            "invalid site name 'bad_name'",
        ),
        (
            vec![
                "deploy",
                s(&site),
                "--site",
                "admin",
                "--server",
                srv,
                "--token",
                "t",
            ],
            vec![],
            "reserved",
        ),
        (
            vec!["deploy", s(&site), "--site", "blog", "--token", "t"],
            vec![],
            "no server",
        ),
        (
            vec!["deploy", s(&site), "--site", "blog", "--server", srv],
            vec![],
            "no API token",
        ),
        (
            vec![
                "deploy",
                s(&site),
                "--site",
                "blog",
                "--server",
                "localhost:4698",
                "--token",
                "t",
            ],
            vec![],
            "must start with http:// or https://",
        ),
        (vec!["sites"], vec![("FAZT_TOKEN", "t")], "no server"),
        (vec!["sites", "rm"], vec![], "<NAME>"),
        (vec!["sites", "rm", "Bad!"], vec![], "invalid site name"),
        (
            vec!["rollback", "blog", "--to", "x"],
            vec![],
            "invalid value 'x' for --to: is not a deployment id",
        ),
        (
            vec!["rollback", "blog", "--to", "0"],
            vec![],
            "not a deployment id",
        ),
        (vec!["rollback"], vec![], "<NAME>"),
        (vec!["login"], vec![], "usage: fazt login"),
        (vec!["login", "--server", "example.com"], vec![], "http://"),
        (
            vec!["deploy", s(&site), "--site", "blog", "--bogus"],
            vec![],
            "--bogus",
        ),
    ];
    for (args, env, expected) in cases {
        let (code, out, err) = run_client(&args, home.path(), &env);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert!(
            err.contains(expected),
            "{args:?}: expected '{expected}' in: {err}"
        );
    }
}

#[test]
fn login_writes_a_private_config_that_env_and_flags_override() {
    let home = TempDir::new("deploy-login");
    // Login checks the server and token first (GET /api/sites), then three listings, then
    // the second login's check.
    let server = FakeServer::start((0..5).map(|_| answer(200, r#"{"sites":[]}"#)).collect());
    let (code, out, err) = run_client(
        &["login", "--server", &server.url, "--token", "file-token"],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let config = home.path().join("config/fazt/config");
    assert!(out.contains(s(&config)), "{out}");
    assert!(
        !out.contains("file-token"),
        "the token is not echoed: {out}"
    );
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "config file mode");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("server = {}", server.url)), "{text}");
    assert!(text.contains("token = file-token"), "{text}");

    // File only, then the environment over the file, then a flag over the environment.
    let runs: [(&[&str], Env); 3] = [
        (&["sites"], &[]),
        (&["sites"], &[("FAZT_TOKEN", "env-token")]),
        (
            &["sites", "--token", "flag-token"],
            &[("FAZT_TOKEN", "env-token")],
        ),
    ];
    for (args, env) in runs {
        let (code, out, err) = run_client(args, home.path(), env);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        assert!(out.contains("no sites yet"), "{out}");
    }
    let saved_url = server.url.clone();

    // A server from the environment beats the saved one.
    let other = FakeServer::start(vec![answer(200, r#"{"sites":[]}"#)]);
    let (code, _, err) = run_client(&["sites"], home.path(), &[("FAZT_SERVER", &other.url)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(other.requests().len(), 1);

    // Logging in again with only a token keeps the saved server (and checks the token there).
    let (code, out, err) = run_client(&["login", "--token", "second"], home.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    let requests = server.requests();
    let tokens: Vec<_> = requests
        .iter()
        .map(|r| r.header("authorization").unwrap().to_string())
        .collect();
    assert_eq!(
        tokens,
        [
            "Bearer file-token",
            "Bearer file-token",
            "Bearer env-token",
            "Bearer flag-token",
            "Bearer second"
        ]
    );
    assert!(requests.iter().all(|r| r.path == "/api/sites"));
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(&format!("server = {saved_url}")) && text.contains("token = second"));
    assert_eq!(
        std::fs::metadata(&config).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn sites_lists_a_table_or_json() {
    let home = TempDir::new("deploy-sites");
    let body = r#"{"sites":[
        {"name":"blog","deployment":12,"files":1000,"bytes":104857600,"updated_at":1790000000,"url":"http://blog.example.com/"},
        {"name":"root","deployment":1,"files":1,"bytes":512,"updated_at":1700000000,"url":"http://example.com/"}]}"#;
    let server = FakeServer::start(vec![answer(200, body), answer(200, body)]);
    let auth = ["--server", server.url.as_str(), "--token", "tok"];
    let (code, out, err) = run_client(&[&["sites"][..], &auth].concat(), home.path(), &[]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for column in ["NAME", "DEPLOYMENT", "FILES", "SIZE", "UPDATED", "URL"] {
        assert!(lines[0].contains(column), "{out}");
    }
    assert_eq!(
        lines[1],
        "blog  12          1000   100.0 MiB  2026-09-21 14:13  http://blog.example.com/"
    );
    assert!(
        lines[2].starts_with("root  1           1      512 B      2023-11-14 22:13"),
        "{out}"
    );
    let (code, out, _) = run_client(
        &[&["sites", "--json"][..], &auth].concat(),
        home.path(),
        &[],
    );
    assert_eq!(code, 0);
    let parsed: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["sites"][0]["name"], "blog");
    for request in server.requests() {
        assert_eq!(
            (request.method.as_str(), request.path.as_str()),
            ("GET", "/api/sites")
        );
        assert_eq!(request.header("authorization"), Some("Bearer tok"));
    }
}

#[test]
fn sites_rm_and_rollback_send_the_contract_requests() {
    let home = TempDir::new("deploy-manage");
    let rolled =
        r#"{"site":"blog","deployment":11,"previous":12,"url":"http://blog.example.com/"}"#;
    let server = FakeServer::start(vec![
        answer(200, r#"{"deleted":"blog"}"#),
        error_answer(
            403,
            "system site 'root' cannot be deleted",
            Answer::AfterReading,
        ),
        answer(200, rolled),
        answer(200, rolled),
        error_answer(409, "nothing to roll back to", Answer::AfterReading),
        error_answer(404, "no site 'nope'", Answer::AfterReading),
    ]);
    let auth = ["--server", server.url.as_str(), "--token", "tok"];
    let run = |args: &[&str]| run_client(&[args, &auth[..]].concat(), home.path(), &[]);

    // Not a terminal: nothing is sent without --yes.
    let (code, _, err) = run(&["sites", "rm", "blog"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    let (code, out, err) = run(&["sites", "rm", "blog", "--yes"]);
    assert_eq!((code, out.trim()), (0, "deleted site blog"), "{err}");
    let (code, _, err) = run(&["sites", "rm", "root", "-y"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot delete site root: the token is not allowed to (403: system site 'root' cannot be deleted)"), "{err}");

    let (code, out, err) = run(&["rollback", "blog"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "site blog is now deployment 11 (was 12)\nhttp://blog.example.com/\n"
    );
    let (code, _, err) = run(&["rollback", "blog", "--to", "11"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = run(&["rollback", "blog"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot roll back blog: nothing to roll back to (409)"),
        "{err}"
    );
    let (code, _, err) = run(&["rollback", "nope"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("cannot roll back nope: not found (404: no site 'nope')"),
        "{err}"
    );

    let requests = server.requests();
    let shapes: Vec<(&str, &str, &[u8])> = requests
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str(), r.body.as_slice()))
        .collect();
    assert_eq!(
        shapes,
        [
            ("DELETE", "/api/sites/blog", &b""[..]),
            ("DELETE", "/api/sites/root", b""),
            ("POST", "/api/sites/blog/rollback", b""),
            ("POST", "/api/sites/blog/rollback", br#"{"deployment":11}"#),
            ("POST", "/api/sites/blog/rollback", b""),
            ("POST", "/api/sites/nope/rollback", b""),
        ]
    );
    assert_eq!(requests[2].header("content-length"), Some("0"));
    assert_eq!(requests[3].header("content-type"), Some("application/json"));
    assert!(requests
        .iter()
        .all(|r| r.header("authorization") == Some("Bearer tok")));
}

#[test]
fn help_lists_the_client_commands() {
    let home = TempDir::new("deploy-help");
    let (code, out, _) = run_client(&["--help"], home.path(), &[]);
    assert_eq!(code, 0);
    for needle in [
        "deploy",
        "login",
        "sites",
        "rollback",
        "FAZT_SERVER",
        "FAZT_TOKEN",
    ] {
        assert!(out.contains(needle), "help mentions {needle}");
    }
    let usages: [(&[&str], &str); 5] = [
        (
            &["deploy"],
            "Usage: fazt deploy [OPTIONS] --site <NAME> <DIR>",
        ),
        (&["login"], "Usage: fazt login [OPTIONS]"),
        (&["sites"], "Usage: fazt sites [OPTIONS]"),
        (&["sites", "rm"], "Usage: fazt sites rm [OPTIONS] <NAME>"),
        (&["rollback"], "Usage: fazt rollback [OPTIONS] <NAME>"),
    ];
    for (command, usage) in usages {
        let args: Vec<&str> = command.iter().copied().chain(["--help"]).collect();
        let (code, out, _) = run_client(&args, home.path(), &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains(usage), "{args:?} shows {usage}:\n{out}");
    }
}

#[test]
fn a_server_that_stops_reading_mid_upload_is_reported_with_its_answer() {
    let home = TempDir::new("deploy-midbody");
    let site = home.path().join("site");
    write_file(&site, "video.mp4", &Rng(11).bytes(16 << 20));
    let server = FakeServer::start(vec![error_answer(
        413,
        "body over 64 KiB",
        Answer::MidUpload,
    )]);
    let (code, out, err) = run_client(
        &[
            "deploy",
            s(&site),
            "--site",
            "blog",
            "--server",
            &server.url,
            "--token",
            "t",
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("(413: body over 64 KiB)"), "{err}");
    // The progress line says how far the upload got, not that it finished.
    assert!(err.contains(" of 16.0 MiB sent in "), "{err}");
    assert!(!err.contains("waiting for the server"), "{err}");
    assert!(server.requests()[0].body.len() < 16 << 20);
}

#[test]
fn https_speaks_tls_and_reports_a_failed_handshake_as_a_connect_error() {
    let home = TempDir::new("deploy-https");
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let plain_server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut record_type = [0u8; 1];
        s.read_exact(&mut record_type).unwrap();
        let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        record_type[0]
    });
    let url = format!("https://{addr}");
    let (code, out, err) = run_client(
        &["sites", "--server", &url, "--token", "t"],
        home.path(),
        &[],
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        err.contains(&format!("cannot connect to {url}: TLS handshake: ")),
        "{err}"
    );
    assert_eq!(
        plain_server.join().unwrap(),
        22,
        "a TLS handshake record was sent"
    );
}
