//! Test harness: starts the real `fazt` binary on free loopback ports with its own
//! temporary data directory, and speaks raw HTTP/1.1 to it.

pub mod browser;
pub mod hosts_namespace;
pub mod pebble;
pub mod source;
pub mod tls_client;
pub mod ws;
pub mod zips;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_fazt");

/// The landing page the binary embeds (the `root` site before anything is deployed).
pub const LANDING: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/landing.html"));

/// The built-in page of the `404` site.
pub const NOT_FOUND: &[u8] =
    include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/404.html"));

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("fazt-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The database file of this directory used as a data dir.
    pub fn db(&self) -> PathBuf {
        fazt::db::db_path(&self.0)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `FAZT_MEMORY_LIMIT` of 256 MiB, for limits that do not depend on the host.
pub const MEMORY_LIMIT_256_MIB: (&str, &str) = ("FAZT_MEMORY_LIMIT", "268435456");

/// Limits as the probe derives them for `data_dir` on a host without readable `/proc` or
/// cgroup files, with the size overrides `env` names as if set in the environment.
pub fn probe_limits(data_dir: &Path, env: &[(&str, &str)]) -> fazt::platform::probe::Limits {
    use fazt::platform::probe::{Given, Overrides};
    let readings = fazt::platform::probe::read(Path::new("/nonexistent-fazt-probe-root"));
    let mut overrides = Overrides::default();
    for (name, value) in env {
        let given = Some(Given {
            value: fazt::platform::units::parse_bytes(value).expect("a size"),
            source: format!("env {name}"),
        });
        match *name {
            "FAZT_MEMORY_LIMIT" => overrides.memory_limit = given,
            "FAZT_CACHE_BYTES" => overrides.cache_bytes = given,
            "FAZT_SQLITE_CACHE_BYTES" => overrides.sqlite_cache_bytes = given,
            "FAZT_SQLITE_MMAP_BYTES" => overrides.sqlite_mmap_bytes = given,
            other => panic!("probe_limits: no size override {other}"),
        }
    }
    fazt::platform::probe::derive(&readings, data_dir, &overrides).expect("derive limits")
}

/// Lower-case hex sha-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The strong ETag the server gives a stored file: its quoted hex sha-256.
pub fn quoted_etag(bytes: &[u8]) -> String {
    format!("\"{}\"", sha256_hex(bytes))
}

/// A test path as `&str` (test paths are UTF-8), for command-line arguments.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Writes `bytes` to `root/rel`, creating the parent directories.
pub fn write_file(root: &Path, rel: &str, bytes: &[u8]) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Deterministic pseudo-random numbers and bytes (xorshift64*), so no test depends on a
/// `rand` crate.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }

    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            items.swap(i, self.below(i + 1));
        }
    }
}

/// `fazt site import SITE DIR --data DATA` with extra environment; returns (code, stdout,
/// stderr).
pub fn try_import(
    site: &str,
    dir: &Path,
    data: &Path,
    env: &[(&str, &str)],
) -> (i32, String, String) {
    run_cli(&["site", "import", site, s(dir), "--data", s(data)], env)
}

/// `fazt site import SITE DIR --data DATA`, asserting success; returns stdout.
pub fn import(site: &str, dir: &Path, data: &Path) -> String {
    let (code, out, err) = try_import(site, dir, data, &[]);
    assert_eq!(code, 0, "import {site} failed: {out}{err}");
    out
}

pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    /// The TLS listener (`--tls-listen`), announced before the public one.
    pub tls_addr: Option<SocketAddr>,
    pub token: String,
    /// The dashboard's one-time setup link, printed while no account exists.
    pub setup_link: Option<String>,
    pub data: TempDir,
    stderr_path: PathBuf,
}

pub struct ServerBuilder {
    env: Vec<(String, String)>,
    admin_listener: bool,
    args: Vec<String>,
    hosts: Option<hosts_namespace::HostsNamespace>,
}

impl ServerBuilder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn admin_listener(mut self) -> Self {
        self.admin_listener = true;
        self
    }

    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.into());
        self
    }

    /// Runs the server with an `/etc/hosts` of the test's own (see [`hosts_namespace`]).
    pub fn hosts(mut self, namespace: hosts_namespace::HostsNamespace) -> Self {
        self.hosts = Some(namespace);
        self
    }

    pub fn start(self) -> Server {
        let data = TempDir::new("data");
        let stderr_path = data.path().with_extension("stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.args(["server", "start", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .args(&self.args)
            .env("FAZT_THREADS", "2")
            .env("RUST_LOG", "info");
        if self.admin_listener {
            cmd.args(["--admin-listen", "127.0.0.1:0"]);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(namespace) = &self.hosts {
            cmd = namespace.wrap(&cmd);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = cmd.spawn().expect("start fazt");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut addr, mut admin_addr, mut token) = (None, None, String::new());
        let mut tls_addr = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        while addr.is_none() || (self.admin_listener && admin_addr.is_none()) {
            assert!(Instant::now() < deadline, "fazt did not start in time");
            let Some(Ok(line)) = lines.next() else {
                panic!(
                    "fazt exited early: {}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                )
            };
            if let Some(rest) = line.strip_prefix("listening on https://") {
                let (a, role) = rest.split_once(' ').unwrap();
                match role.contains("admin") {
                    true => admin_addr = a.parse().ok(),
                    false => tls_addr = a.parse().ok(),
                }
            } else if let Some(rest) = line.strip_prefix("listening on http://") {
                let (a, role) = rest.split_once(' ').unwrap();
                let a: SocketAddr = a.parse().unwrap();
                if role.contains("admin") {
                    admin_addr = Some(a);
                } else {
                    addr = Some(a);
                }
            } else if line.starts_with("owner API key") {
                token = line.rsplit(' ').next().unwrap().to_string();
            }
        }
        // The URLs follow the listeners; "root site:" is the last line of the start.
        let mut setup_link = None;
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if line.starts_with("set up the dashboard") {
                setup_link = line.rsplit(' ').next().map(str::to_string);
            }
            if line.starts_with("root site:") {
                break;
            }
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server {
            child,
            addr: addr.unwrap(),
            admin_addr,
            tls_addr,
            token,
            setup_link,
            data,
            stderr_path,
        }
    }
}

/// Starts the server on an existing data dir with extra environment (the harness passes its
/// own `--data` first; the last one wins).
pub fn start_on(data: &Path, env: &[(&str, &str)]) -> Server {
    let mut builder = Server::builder();
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    builder.arg("--data").arg(s(data)).start()
}

impl Server {
    /// A server that accepts analytics events for the test domains ([`TEST_TRACK_DOMAINS`]),
    /// without per-client rate limits; `.env("FAZT_TRACK_DOMAINS", …)` replaces that list,
    /// `.env("FAZT_INGEST_RATE", "")` brings the default limit back.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            env: vec![
                ("FAZT_TRACK_DOMAINS".into(), TEST_TRACK_DOMAINS.into()),
                // Tests send events and wrong keys from 127.0.0.1 faster than any client
                // may; rate_limits.rs sets these limits itself.
                ("FAZT_INGEST_RATE".into(), "0".into()),
                ("FAZT_AUTH_FAILURES".into(), "1000000".into()),
            ],
            admin_listener: false,
            args: Vec::new(),
            hosts: None,
        }
    }

    pub fn start() -> Server {
        Server::builder().start()
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        signal(&self.child, libc::SIGTERM);
        self.wait(Duration::from_secs(30))
            .expect("fazt did not exit after SIGTERM")
    }

    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// One request on a fresh connection; returns the parsed response.
    pub fn get(&self, host: &str, path: &str) -> HttpResponse {
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        ))
    }

    pub fn request(&self, raw: &str) -> HttpResponse {
        let mut s = self.connect();
        s.write_all(raw.as_bytes()).unwrap();
        read_response(&mut s).expect("a response")
    }

    pub fn admin_get(&self, path: &str, token: Option<&str>) -> HttpResponse {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        self.request(&format!(
            "GET {path} HTTP/1.1\r\nHost: admin.localhost\r\n{auth}Connection: close\r\n\r\n"
        ))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr_path);
    }
}

pub fn signal(child: &Child, sig: i32) {
    // SAFETY (test code): kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, sig) };
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(15))).unwrap();
    s
}

/// Sends raw request bytes on a fresh connection to `addr` and reads one response.
pub fn raw_request(addr: SocketAddr, raw: impl AsRef<[u8]>) -> HttpResponse {
    let mut stream = connect(addr);
    stream.write_all(raw.as_ref()).unwrap();
    read_response(&mut stream).expect("a response")
}

/// Polls `GET path` on `host` until `accept` holds, for at most 5 s; returns the last
/// response.
pub fn wait_for(
    server: &Server,
    host: &str,
    path: &str,
    accept: impl Fn(&HttpResponse) -> bool,
) -> HttpResponse {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = server.get(host, path);
        if accept(&r) || Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Reads one response (Content-Length framed, or to EOF); `head_only` for HEAD requests.
pub fn read_response_with(s: &mut impl Read, head_only: bool) -> std::io::Result<HttpResponse> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut byte)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a response head",
            ));
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            l.split_once(':')
                .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        })
        .collect();
    let mut response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if (100..200).contains(&status) {
        return Ok(response);
    }
    if head_only || status == 204 || status == 304 {
        return Ok(response);
    }
    match response
        .header("content-length")
        .map(|v| v.parse::<usize>().unwrap())
    {
        Some(len) => {
            response.body = vec![0; len];
            s.read_exact(&mut response.body)?;
        }
        None => {
            s.read_to_end(&mut response.body)?;
        }
    }
    Ok(response)
}

pub fn read_response(s: &mut impl Read) -> std::io::Result<HttpResponse> {
    read_response_with(s, false)
}

/// Deploys `files`, zipped with `method`, to `site` as a raw `application/zip` upload with
/// the owner key on a fresh connection; waits up to two minutes for the answer.
pub fn deploy_files(
    server: &Server,
    site: &str,
    files: &[(&str, &[u8])],
    method: zip::CompressionMethod,
) -> HttpResponse {
    let zip = zips::zip_of(files, method);
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
    read_response(&mut s).expect("a deploy response")
}

/// True when the server has closed the connection (EOF or reset) within `limit`.
pub fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Runs `fazt` with arguments and returns (exit code, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    output_of(cmd)
}

/// [`run_cli`] with `input` on stdin (a password for `fazt user set-password`).
pub fn run_cli_input(args: &[&str], input: &str) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    output_with_input(cmd, input)
}

/// Runs `cmd` with `input` on its stdin; (exit code, stdout, stderr).
fn output_with_input(mut cmd: Command, input: &str) -> (i32, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fazt");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().expect("run fazt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `fazt user set-password NAME [args]` on `server`'s data dir, the password on stdin.
pub fn set_password(
    server: &Server,
    name: &str,
    password: &str,
    args: &[&str],
) -> (i32, String, String) {
    let data = s(server.data.path());
    let mut all = vec!["user", "set-password", name, "--data", data];
    all.extend_from_slice(args);
    run_cli_input(&all, &format!("{password}\n"))
}

/// Runs a client command (`deploy`, `login`, `sites`, `rollback`) with a clean client
/// environment: no FAZT_SERVER/FAZT_TOKEN from the caller, and HOME/XDG_CONFIG_HOME inside
/// `home`, so no real `fazt login` file is read or written.
pub fn run_client(args: &[&str], home: &Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = client_command(args, home);
    cmd.stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    output_of(cmd)
}

/// [`run_client`] with `input` on stdin (`fazt env set` reading the value).
pub fn run_client_input(args: &[&str], home: &Path, input: &str) -> (i32, String, String) {
    output_with_input(client_command(args, home), input)
}

fn client_command(args: &[&str], home: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("FAZT_SERVER")
        .env_remove("FAZT_TOKEN")
        .env_remove("FAZT_CA_FILE")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"));
    cmd
}

fn output_of(mut cmd: Command) -> (i32, String, String) {
    let out = cmd.output().expect("run fazt");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------
// Analytics: /track, the admin API and the database of a data dir
// ---------------------------------------------------------------------------------------

/// Waits until every event recorded so far is committed: a marker event for `host` (one
/// the server takes events for) is recorded last, and events are committed in order.
pub fn flush_events(server: &Server, host: &str, marker: &str) {
    let body = serde_json::json!({"h": host, "p": marker, "e": "marker"}).to_string();
    assert_eq!(track(server, &body).status, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !events(server, "type=marker")
        .iter()
        .any(|e| e["path"] == marker)
    {
        assert!(Instant::now() < deadline, "marker never committed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A browser's user agent: analytics records nothing for known bots.
pub const BROWSER_UA: &str =
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";

/// The hosts outside fazt that the analytics tests send events for.
pub const TEST_TRACK_DOMAINS: &str = "*.test,*.example";

/// A server that commits analytics events within 50 ms.
pub fn fast_server() -> Server {
    Server::builder().env("FAZT_EVENT_FLUSH", "50ms").start()
}

/// One request on a fresh connection (`Connection: close`; a `Content-Length` whenever
/// there is a body or the method usually carries one).
pub fn send(
    server: &Server,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    raw_request(
        server.addr,
        request_bytes(method, host, path, headers, body),
    )
}

/// The bytes of the request [`send`] sends.
pub fn request_bytes(
    method: &str,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || matches!(method, "POST" | "PUT") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// An authenticated admin request (JSON content type) on the admin host of the public
/// listener, with a raw body.
pub fn admin_raw(server: &Server, method: &str, path: &str, body: &str) -> HttpResponse {
    admin_raw_as(server, &server.token, method, path, body)
}

/// [`admin_raw`] with another API key.
pub fn admin_raw_as(
    server: &Server,
    token: &str,
    method: &str,
    path: &str,
    body: &str,
) -> HttpResponse {
    let auth = format!("Bearer {token}");
    send(
        server,
        method,
        "admin.localhost",
        path,
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
}

/// An authenticated admin `POST` with a JSON body.
pub fn admin_post(server: &Server, path: &str, body: &Value) -> HttpResponse {
    admin_raw(server, "POST", path, &body.to_string())
}

/// An authenticated admin `DELETE`.
pub fn admin_delete(server: &Server, path: &str) -> HttpResponse {
    admin_raw(server, "DELETE", path, "")
}

/// An authenticated admin `GET` answered 200 with JSON; returns the JSON.
pub fn get_json(server: &Server, path: &str) -> Value {
    let r = server.admin_get(path, Some(&server.token));
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    assert!(r
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    r.json()
}

/// `POST /track` with a JSON body (on a host that names no site: `/track` answers on
/// every host).
pub fn track(server: &Server, body: &str) -> HttpResponse {
    track_with(server, body, &[])
}

/// `POST /track` with a JSON body and extra headers.
pub fn track_with(server: &Server, body: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    send(
        server,
        "POST",
        "collector.test",
        "/track",
        &all,
        body.as_bytes(),
    )
}

/// `/api/events` (newest first) with a query string. A `site=` that has sent nothing yet
/// (a 404) lists nothing, so a test can poll for its first event.
pub fn events(server: &Server, query: &str) -> Vec<Value> {
    let path = format!("/api/events?{query}");
    let r = server.admin_get(&path, Some(&server.token));
    if r.status == 404 && query.contains("site=") {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{path}: {}", r.text());
    r.json()["events"].as_array().cloned().unwrap_or_default()
}

/// Polls `/api/events?<query>` until it lists `n` events (at most 5 s), asserts that it
/// lists exactly `n`, and returns them oldest first.
pub fn wait_events(server: &Server, query: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut list = events(server, query);
        if list.len() >= n || Instant::now() >= deadline {
            assert_eq!(list.len(), n, "{query}: {list:?}");
            list.reverse();
            return list;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The data dir's database, opened read-only.
pub fn open_read_only(data: &Path) -> Connection {
    Connection::open_with_flags(fazt::db::db_path(data), OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open fazt.db read-only")
}

/// The one integer an SQL query answers.
pub fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

// ---------------------------------------------------------------------------------------
// Deploy temp files
// ---------------------------------------------------------------------------------------

/// The temp dir of a server started on `data` with the default `FAZT_TEMP_DIR`.
pub fn temp_dir_of(data: &Path) -> PathBuf {
    data.join("tmp")
}

/// Deploy temp files (spooled uploads, extraction dirs) in `dir`.
pub fn leftovers(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("fazt-upload-") || n.starts_with("fazt-deploy-"))
        .collect()
}

/// Polls (at most `limit`) until `dir` has no deploy temp files; returns what is left.
pub fn leftovers_after(dir: &Path, limit: Duration) -> Vec<String> {
    let deadline = Instant::now() + limit;
    loop {
        let left = leftovers(dir);
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Polls `dir` (at most `limit`) until a deploy temp file with `prefix` exists or `stop`
/// is set; true when one was seen.
pub fn wait_for_temp(dir: &Path, prefix: &str, limit: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline && !stop.load(Ordering::SeqCst) {
        if leftovers(dir).iter().any(|n| n.starts_with(prefix)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    false
}

/// One series of the server's `/metrics` (read with the owner's key), such as
/// `fazt_ws_closed_total{reason="slow"}`; `None` while it is not listed.
pub fn metric_value(server: &Server, series: &str) -> Option<u64> {
    let r = server.admin_get("/metrics", Some(&server.token));
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?;
    value.trim().parse().ok()
}

/// Polls `f` (every 25 ms, at most `limit`); true as soon as it holds.
pub fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    f()
}
