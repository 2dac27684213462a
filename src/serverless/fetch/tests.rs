//! `fetch` against real local servers (std `TcpListener` threads), with a table for a
//! resolver; the system resolver is tested in a mount namespace with its own `/etc/hosts`.

use super::*;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

/// What the test server does with a request.
enum Reply {
    Bytes(Vec<u8>),
    /// Nothing: holds the connection until the client closes it.
    Silent,
    /// A head, then one body byte every 50 ms, for ever.
    Drip,
}

/// A request as the server read it.
#[derive(Debug)]
struct Seen {
    head: String,
    body: Vec<u8>,
}

impl Seen {
    fn request_line(&self) -> &str {
        self.head.lines().next().unwrap_or("")
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

struct TestServer {
    port: u16,
    seen: mpsc::Receiver<Seen>,
    accepted: Arc<AtomicUsize>,
}

impl TestServer {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests read so far.
    fn requests(&self) -> Vec<Seen> {
        self.seen.try_iter().collect()
    }
}

/// A server on 127.0.0.1 answering each connection's one request with `reply(request)`.
fn serve(reply: impl Fn(&Seen) -> Reply + Send + 'static) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, seen) = mpsc::channel();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let Some(request) = read_request(&mut conn) else {
                continue;
            };
            let answer = reply(&request);
            let _ = tx.send(request);
            match answer {
                Reply::Bytes(bytes) => {
                    let _ = conn.write_all(&bytes);
                }
                Reply::Silent => {
                    let _ = conn.read_to_end(&mut Vec::new());
                }
                Reply::Drip => {
                    let _ = conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n");
                    while conn.write_all(b"x").is_ok() {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        }
    });
    TestServer {
        port,
        seen,
        accepted,
    }
}

fn read_request(conn: &mut TcpStream) -> Option<Seen> {
    let mut reader = BufReader::new(conn);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        head.push_str(&line);
    }
    let mut seen = Seen {
        head,
        body: Vec::new(),
    };
    let length: usize = seen
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    seen.body = vec![0; length];
    reader.read_exact(&mut seen.body).ok()?;
    Some(seen)
}

fn ok(body: &str) -> Reply {
    Reply::Bytes(
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

fn redirect(status: u16, location: &str) -> Reply {
    Reply::Bytes(
        format!("HTTP/1.1 {status} Moved\r\nLocation: {location}\r\nContent-Length: 3\r\n\r\nbye")
            .into_bytes(),
    )
}

/// Loopback allowed (the test servers are local), else the defaults.
fn local() -> FetchPolicy {
    FetchPolicy {
        allow_loopback: true,
        ..FetchPolicy::default()
    }
}

fn get(url: &str) -> FetchRequest {
    FetchRequest {
        url: url.into(),
        ..FetchRequest::default()
    }
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

/// A fixed table of names (every name not in it is unknown).
struct Table(Vec<(&'static str, Vec<IpAddr>)>);

impl Table {
    fn new(entries: &[(&'static str, &[&str])]) -> Table {
        Table(
            entries
                .iter()
                .map(|(name, ips)| (*name, ips.iter().map(|ip| ip.parse().unwrap()).collect()))
                .collect(),
        )
    }
}

impl Resolve for Table {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let (_, ips) = self
            .0
            .iter()
            .find(|(name, _)| *name == host)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "unknown name"))?;
        Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
    }
}

fn run(req: &FetchRequest, policy: &FetchPolicy) -> Result<FetchResponse, FetchError> {
    fetch(req, policy, &SystemResolver, later())
}

fn refused(result: Result<FetchResponse, FetchError>) -> String {
    match result {
        Err(FetchError::Refused(why)) => why,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_get_returns_the_response_and_sends_our_headers_not_the_scripts_framing() {
    let server = serve(|_| {
        Reply::Bytes(
            b"HTTP/1.1 200 OK\r\nX-Answer: 42\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\
              Content-Length: 5\r\n\r\nhello"
                .to_vec(),
        )
    });
    let mut req = get(&server.url("/path?q=1"));
    req.method = "get".into();
    req.headers = vec![
        ("X-Token".into(), " abc ".into()),
        ("Host".into(), "evil.example".into()),
        ("Content-Length".into(), "999".into()),
        ("Transfer-Encoding".into(), "chunked".into()),
        ("Connection".into(), "keep-alive".into()),
        ("Accept-Encoding".into(), "gzip".into()),
    ];
    let response = run(&req, &local()).unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"hello");
    assert_eq!(response.url, server.url("/path?q=1"));
    let header = |name: &str| -> Vec<&str> {
        let values = response.headers.iter().filter(|(n, _)| n == name);
        values.map(|(_, v)| v.as_str()).collect()
    };
    assert_eq!(header("x-answer"), ["42"], "names lower-cased");
    assert_eq!(header("set-cookie"), ["a=1", "b=2"], "repeats kept");

    let seen = &server.requests()[0];
    assert_eq!(seen.request_line(), "GET /path?q=1 HTTP/1.1");
    assert_eq!(
        seen.header("host"),
        Some(format!("127.0.0.1:{}", server.port).as_str())
    );
    assert_eq!(seen.header("x-token"), Some("abc"));
    let ua = format!("fazt/{}", env!("CARGO_PKG_VERSION"));
    assert_eq!(seen.header("user-agent"), Some(ua.as_str()));
    assert_eq!(seen.header("accept-encoding"), Some("identity"));
    assert_eq!(seen.header("connection"), Some("close"));
    assert_eq!(seen.header("content-length"), None);
    assert_eq!(seen.header("transfer-encoding"), None);
    assert_eq!(seen.head.matches("Host:").count(), 1);
}

#[test]
fn a_post_sends_its_body_with_a_length() {
    let server = serve(|seen| ok(&format!("got {} bytes", seen.body.len())));
    let mut req = get(&server.url("/submit"));
    req.method = "POST".into();
    req.headers = vec![
        ("Content-Type".into(), "application/json".into()),
        ("User-Agent".into(), "my-app/1".into()),
    ];
    req.body = br#"{"a":1}"#.to_vec();
    let response = run(&req, &local()).unwrap();
    assert_eq!(response.body, b"got 7 bytes");
    let seen = &server.requests()[0];
    assert_eq!(seen.request_line(), "POST /submit HTTP/1.1");
    assert_eq!(seen.body, br#"{"a":1}"#);
    assert_eq!(seen.header("content-length"), Some("7"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    assert_eq!(
        seen.header("user-agent"),
        Some("my-app/1"),
        "a script may set it"
    );

    // An empty POST still says its length (servers answer 411 without one).
    req.body.clear();
    assert_eq!(run(&req, &local()).unwrap().body, b"got 0 bytes");
    assert_eq!(server.requests()[0].header("content-length"), Some("0"));
}

#[test]
fn chunked_length_and_close_delimited_bodies_are_read_whole() {
    let server = serve(|seen| {
        let raw: &[u8] = match seen.request_line() {
            l if l.contains("/chunked") => {
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
            }
            l if l.contains("/length") => b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
            _ => b"HTTP/1.1 200 OK\r\n\r\nhello world",
        };
        Reply::Bytes(raw.to_vec())
    });
    for path in ["/chunked", "/length", "/close"] {
        let response = run(&get(&server.url(path)), &local()).unwrap();
        assert_eq!(response.body, b"hello world", "{path}");
    }
    // HEAD: the length is the GET's, there is no body.
    let mut head = get(&server.url("/length"));
    head.method = "HEAD".into();
    assert!(run(&head, &local()).unwrap().body.is_empty());
}

#[test]
fn a_body_over_the_cap_is_too_large_however_it_is_framed() {
    let server = serve(|seen| {
        let n: usize = seen
            .request_line()
            .split(['/', ' ', '?'])
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        let body = "x".repeat(n);
        let raw = if seen.request_line().contains("?chunked") {
            format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{n:x}\r\n{body}\r\n0\r\n\r\n"
            )
        } else if seen.request_line().contains("?close") {
            format!("HTTP/1.1 200 OK\r\n\r\n{body}")
        } else {
            format!("HTTP/1.1 200 OK\r\nContent-Length: {n}\r\n\r\n{body}")
        };
        Reply::Bytes(raw.into_bytes())
    });
    let policy = FetchPolicy {
        max_response_bytes: 1000,
        ..local()
    };
    for framing in ["", "?chunked", "?close"] {
        let at_cap = run(&get(&server.url(&format!("/1000{framing}"))), &policy);
        assert_eq!(at_cap.unwrap().body.len(), 1000, "{framing}");
        match run(&get(&server.url(&format!("/1001{framing}"))), &policy) {
            Err(FetchError::TooLarge(1000)) => {}
            other => panic!("{framing}: {other:?}"),
        }
    }
    let message = FetchError::TooLarge(1000).to_string();
    assert!(
        message.contains("1000 bytes (FAZT_JS_FETCH_MAX)"),
        "{message}"
    );
}

#[test]
fn a_server_that_never_answers_is_given_up_at_the_deadline() {
    let server = serve(|_| Reply::Silent);
    let start = Instant::now();
    let result = fetch(
        &get(&server.url("/")),
        &local(),
        &SystemResolver,
        start + Duration::from_millis(300),
    );
    let took = start.elapsed();
    assert!(matches!(result, Err(FetchError::Timeout)), "{result:?}");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // The policy's own cap, when it is shorter than the invocation's deadline.
    let short = FetchPolicy {
        timeout: Duration::from_millis(200),
        ..local()
    };
    let start = Instant::now();
    assert!(matches!(
        run(&get(&server.url("/")), &short),
        Err(FetchError::Timeout)
    ));
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_millis(1500),
        "{took:?}"
    );
}

#[test]
fn a_server_that_sends_a_byte_at_a_time_is_given_up_at_the_deadline_too() {
    // Each read gets a byte in 50 ms, far within any per-read timeout: only a deadline
    // over the whole fetch ends this.
    let server = serve(|_| Reply::Drip);
    let start = Instant::now();
    let result = fetch(
        &get(&server.url("/")),
        &local(),
        &SystemResolver,
        start + Duration::from_millis(400),
    );
    assert!(matches!(result, Err(FetchError::Timeout)), "{result:?}");
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn a_deadline_already_past_fails_at_once() {
    // (A policy without a cap of its own leaves the deadline alone.)
    let endless = FetchPolicy {
        timeout: Duration::MAX,
        ..local()
    };
    let server = serve(|_| ok("in time"));
    let in_time = fetch(&get(&server.url("/")), &endless, &SystemResolver, later());
    assert_eq!(in_time.unwrap().body, b"in time");
    let server = serve(|_| ok("never"));
    let result = fetch(
        &get(&server.url("/")),
        &local(),
        &SystemResolver,
        Instant::now(),
    );
    assert!(matches!(result, Err(FetchError::Timeout)), "{result:?}");
}

#[test]
fn redirects_are_followed_with_the_fetch_standards_method_rules() {
    let server = serve(
        |seen| match seen.request_line().split(' ').nth(1).unwrap() {
            "/a" => redirect(307, "/b"),
            "/b" => redirect(302, "c?from=b"),
            "/c?from=b" => redirect(303, "/d"),
            "/d" => redirect(308, "/e"),
            _ => ok("done"),
        },
    );
    let mut req = get(&server.url("/a"));
    req.method = "POST".into();
    req.headers = vec![("Content-Type".into(), "text/plain".into())];
    req.body = b"payload".to_vec();
    let response = run(&req, &local()).unwrap();
    assert_eq!((response.status, &response.body[..]), (200, &b"done"[..]));
    assert_eq!(response.url, server.url("/e"));
    let seen = server.requests();
    let lines: Vec<&str> = seen.iter().map(Seen::request_line).collect();
    assert_eq!(
        lines,
        [
            "POST /a HTTP/1.1",
            "POST /b HTTP/1.1",
            "GET /c?from=b HTTP/1.1",
            "GET /d HTTP/1.1",
            "GET /e HTTP/1.1",
        ]
    );
    // 307 keeps the body; 302 after a POST drops it with its Content-Type.
    assert_eq!(seen[1].body, b"payload");
    assert_eq!(seen[1].header("content-type"), Some("text/plain"));
    assert!(seen[2].body.is_empty());
    assert_eq!(seen[2].header("content-type"), None);
    assert_eq!(seen[2].header("content-length"), None);
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let server = serve(|seen| match seen.header("host").unwrap() {
        h if h.starts_with("a.test") => {
            let port = h.rsplit(':').next().unwrap();
            redirect(302, &format!("http://b.test:{port}/"))
        }
        _ => ok("b"),
    });
    let names = Table::new(&[("a.test", &["127.0.0.1"]), ("b.test", &["127.0.0.1"])]);
    let mut req = get(&format!("http://a.test:{}/", server.port));
    req.headers = vec![
        ("Authorization".into(), "Bearer secret".into()),
        ("Cookie".into(), "s=1".into()),
        ("X-Other".into(), "kept".into()),
    ];
    let response = fetch(&req, &local(), &names, later()).unwrap();
    assert_eq!(response.body, b"b");
    let seen = server.requests();
    assert_eq!(seen[0].header("authorization"), Some("Bearer secret"));
    assert_eq!(
        seen[1].header("host"),
        Some(format!("b.test:{}", server.port).as_str())
    );
    assert_eq!(seen[1].header("authorization"), None);
    assert_eq!(seen[1].header("cookie"), None);
    assert_eq!(seen[1].header("x-other"), Some("kept"));
}

#[test]
fn a_redirect_into_a_forbidden_address_is_refused() {
    let server = serve(
        |seen| match seen.request_line().split(' ').nth(1).unwrap() {
            "/literal" => redirect(302, "http://169.254.169.254/latest/meta-data/"),
            "/name" => redirect(301, "http://inside.test/admin"),
            _ => redirect(307, "http://[::ffff:10.0.0.1]/"),
        },
    );
    let names = Table::new(&[("inside.test", &["192.168.1.10"])]);
    let go = |path: &str| fetch(&get(&server.url(path)), &local(), &names, later());
    assert_eq!(
        refused(go("/literal")),
        "fetch refused: 169.254.169.254 is a cloud metadata address"
    );
    assert_eq!(
        refused(go("/name")),
        "fetch refused: inside.test resolves to 192.168.1.10, a private address"
    );
    assert_eq!(
        refused(go("/mapped")),
        "fetch refused: ::ffff:10.0.0.1 is a private address"
    );
}

#[test]
fn too_many_redirects_fail_after_the_limit() {
    let server = serve(|_| redirect(302, "/again"));
    let result = run(&get(&server.url("/")), &local());
    match result {
        Err(FetchError::Failed(m)) => assert!(m.ends_with("more than 5 redirects"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        server.requests().len(),
        6,
        "the first request and 5 redirects"
    );
    let none = FetchPolicy {
        max_redirects: 0,
        ..local()
    };
    assert!(run(&get(&server.url("/")), &none).is_err());
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn a_name_with_one_private_answer_among_public_ones_is_refused() {
    let names = Table::new(&[
        ("evil.test", &["93.184.215.14", "10.0.0.1"]),
        ("evil6.test", &["2606:4700::1", "fd00:ec2::254"]),
    ]);
    let go = |url: &str| fetch(&get(url), &local(), &names, later());
    assert_eq!(
        refused(go("http://evil.test/")),
        "fetch refused: evil.test resolves to 10.0.0.1, a private address"
    );
    assert_eq!(
        refused(go("https://evil6.test:8443/")),
        "fetch refused: evil6.test resolves to fd00:ec2::254, a cloud metadata address"
    );
    match go("http://unknown.test/") {
        Err(FetchError::Failed(m)) => assert!(m.contains("cannot resolve unknown.test"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn loopback_is_refused_unless_allowed_and_nothing_connects() {
    let server = serve(|_| ok("local"));
    let names = Table::new(&[("localhost", &["127.0.0.1", "::1"])]);
    let strict = FetchPolicy::default();
    let url = format!("http://localhost:{}/", server.port);
    assert_eq!(
        refused(fetch(&get(&url), &strict, &names, later())),
        "fetch refused: localhost resolves to 127.0.0.1, a loopback address"
    );
    assert_eq!(
        refused(fetch(&get(&server.url("/")), &strict, &names, later())),
        "fetch refused: 127.0.0.1 is a loopback address"
    );
    // The old numeric forms getaddrinfo still reads are checked as what they resolve to.
    for host in ["127.1", "2130706433", "0x7f.0.0.1", "017700000001"] {
        let url = format!("http://{host}:{}/", server.port);
        let why = refused(fetch(&get(&url), &strict, &SystemResolver, later()));
        assert!(
            why.ends_with("resolves to 127.0.0.1, a loopback address"),
            "{host}: {why}"
        );
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    assert_eq!(
        fetch(&get(&url), &local(), &names, later()).unwrap().body,
        b"local"
    );
    assert_eq!(server.accepted.load(Ordering::SeqCst), 1);
}

#[test]
fn the_connection_goes_to_the_checked_address_not_a_second_lookup() {
    // The table says 127.0.0.1; the system resolver would fail on this name. The Host
    // header keeps the name.
    let server = serve(|_| ok("checked"));
    let names = Table::new(&[("only-in-table.test", &["127.0.0.1"])]);
    let url = format!("http://only-in-table.test:{}/", server.port);
    assert_eq!(
        fetch(&get(&url), &local(), &names, later()).unwrap().body,
        b"checked"
    );
    let expected = format!("only-in-table.test:{}", server.port);
    assert_eq!(server.requests()[0].header("host"), Some(expected.as_str()));
}

#[test]
fn bad_methods_headers_and_urls_are_refused_before_any_connection() {
    let server = serve(|_| ok("no"));
    let with = |method: &str, headers: &[(&str, &str)], body: &[u8]| FetchRequest {
        url: server.url("/"),
        method: method.into(),
        headers: headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        body: body.to_vec(),
    };
    for req in [
        with("CONNECT", &[], b""),
        with("trace", &[], b""),
        with("GE T", &[], b""),
        with("GET", &[], b"body"),
        with("HEAD", &[], b"body"),
        with("GET", &[("X-A", "one\r\nX-Injected: two")], b""),
        with("GET", &[("Bad Name", "v")], b""),
        with("GET", &[("", "v")], b""),
    ] {
        let result = run(&req, &local());
        assert!(
            matches!(result, Err(FetchError::BadRequest(_))),
            "{req:?}: {result:?}"
        );
    }
    for url in ["ftp://127.0.0.1/", "http://user@127.0.0.1/", "javascript:1"] {
        assert!(
            matches!(run(&get(url), &local()), Err(FetchError::BadUrl(_))),
            "{url}"
        );
    }
    assert_eq!(server.accepted.load(Ordering::SeqCst), 0);
    // Other methods are sent as written.
    let response = run(&with("PROPFIND", &[], b""), &local()).unwrap();
    assert_eq!(response.body, b"no");
    assert!(server.requests()[0]
        .request_line()
        .starts_with("PROPFIND / "));
}

#[test]
fn a_refused_connection_names_the_address() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    match run(&get(&format!("http://127.0.0.1:{port}/")), &local()) {
        Err(FetchError::Failed(m)) => {
            assert!(
                m.contains(&format!("cannot connect to 127.0.0.1:{port}")),
                "{m}"
            )
        }
        other => panic!("{other:?}"),
    }
}

/// An https server on 127.0.0.1 with a self-signed certificate for `name`; the roots
/// that trust it.
fn serve_tls(name: &str) -> (u16, Arc<rustls::RootCertStore>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], der)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { continue };
            let session = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            let mut tls = rustls::StreamOwned::new(session, conn);
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match tls.read(&mut byte) {
                    Ok(1) => head.push(byte[0]),
                    _ => break,
                }
            }
            let sni = tls.conn.server_name().unwrap_or("none").to_string();
            let body = format!("sni={sni}");
            let reply = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            let _ = tls.write_all(reply.as_bytes());
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
    });
    (port, Arc::new(roots))
}

#[test]
fn https_checks_the_certificate_for_the_host_and_sends_sni() {
    let (port, roots) = serve_tls("good.test");
    let names = Table::new(&[
        ("good.test", &["127.0.0.1"]),
        ("other.test", &["127.0.0.1"]),
    ]);
    let policy = FetchPolicy { roots, ..local() };
    let response = fetch(
        &get(&format!("https://good.test:{port}/")),
        &policy,
        &names,
        later(),
    );
    let response = response.unwrap();
    assert_eq!(
        (response.status, &response.body[..]),
        (200, &b"sni=good.test"[..])
    );
    assert_eq!(response.url, format!("https://good.test:{port}/"));

    // The same server under a name its certificate does not hold.
    let other = fetch(
        &get(&format!("https://other.test:{port}/")),
        &policy,
        &names,
        later(),
    );
    match other {
        Err(FetchError::Failed(m)) => assert!(m.contains("certificate"), "{m}"),
        r => panic!("{r:?}"),
    }
    // A CA that is not among the roots (Mozilla's only, by default).
    let public_only = FetchPolicy {
        allow_loopback: true,
        ..FetchPolicy::default()
    };
    let untrusted = fetch(
        &get(&format!("https://good.test:{port}/")),
        &public_only,
        &names,
        later(),
    );
    match untrusted {
        Err(FetchError::Failed(m)) => assert!(m.contains("certificate"), "{m}"),
        r => panic!("{r:?}"),
    }
}

/// Marks the child process of the namespace test.
const NAMESPACE_CHILD: &str = "FETCH_TEST_IN_HOSTS_NAMESPACE";

/// A name that resolves to a private or metadata address through the system resolver
/// (`/etc/hosts` here: the test runs this test binary again in a mount namespace where a
/// file of its own is bind-mounted over `/etc/hosts`; needs root or user namespaces).
#[test]
fn the_system_resolver_s_private_answers_are_refused() {
    let dir = std::env::temp_dir().join(format!("fazt-fetch-hosts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = dir.join("hosts");
    std::fs::write(
        &hosts,
        "127.0.0.1 localhost loop.test\n10.1.2.3 evil.test\n169.254.169.254 meta.test\n",
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let run_in = |unshare: &[&str]| {
        std::process::Command::new("unshare")
            .args(unshare)
            .args([
                "sh",
                "-c",
                r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#,
                "sh",
            ])
            .arg(&hosts)
            .arg(&exe)
            .args(["--exact", "serverless::fetch::tests::in_a_hosts_namespace"])
            .args(["--ignored", "--nocapture", "--test-threads=1"])
            .env(NAMESPACE_CHILD, "1")
            .output()
    };
    let output = match run_in(&["-m"]) {
        Ok(out) if out.status.success() => out,
        _ => match run_in(&["-r", "-m"]) {
            Ok(out) => out,
            Err(e) => {
                eprintln!("no unshare here ({e}): the system resolver is not tested");
                return;
            }
        },
    };
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() && stderr.contains("unshare failed") {
        eprintln!("no mount namespace here: the system resolver is not tested ({stderr})");
        return;
    }
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("hosts namespace: all checked"),
        "{stdout}\n{stderr}"
    );
}

#[test]
#[ignore = "run by the_system_resolver_s_private_answers_are_refused, in its namespace"]
fn in_a_hosts_namespace() {
    assert_eq!(
        std::env::var(NAMESPACE_CHILD).as_deref(),
        Ok("1"),
        "run by its parent"
    );
    assert_eq!(
        refused(run(&get("http://evil.test/"), &local())),
        "fetch refused: evil.test resolves to 10.1.2.3, a private address"
    );
    assert_eq!(
        refused(run(&get("http://meta.test/latest/meta-data/"), &local())),
        "fetch refused: meta.test resolves to 169.254.169.254, a cloud metadata address"
    );
    // The file is the one read: a name only it knows reaches the local server.
    let server = serve(|_| ok("via hosts"));
    let url = format!("http://loop.test:{}/", server.port);
    assert_eq!(run(&get(&url), &local()).unwrap().body, b"via hosts");
    assert_eq!(
        refused(run(&get(&url), &FetchPolicy::default())),
        "fetch refused: loop.test resolves to 127.0.0.1, a loopback address"
    );
    println!("hosts namespace: all checked");
}
