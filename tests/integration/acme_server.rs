//! Automatic certificates (issue #12) end to end: the real `fazt` binary against Pebble
//! (`common::pebble`), with real validation. Pebble's validation ports are fazt's own
//! listeners: its HTTP-01 port is fazt's `--listen`, its TLS-ALPN-01 port fazt's
//! `--tls-listen`, and its mock DNS answers every name with 127.0.0.1. A client that
//! trusts only Pebble's issuing root then fetches each name over https.
//!
//! One Pebble and one fazt serve all the checks of a test where they do not interfere;
//! every wait is a bounded poll. Tests skip with a printed reason when Pebble is not
//! installed.

use crate::common::pebble::{
    free_port, now, pebble_missing, verify_chain_der, Pebble, PebbleOptions,
};
use crate::common::tls_client::{handshake, Tls};
use crate::common::*;
use rustls::pki_types::CertificateDer;
use rustls::ClientConfig;
use serde_json::Value;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The domain fazt serves (Pebble accepts `.example` names).
const DOMAIN: &str = "fazt.example";
const EMAIL: &str = "ops@fazt.example";
const DAY: i64 = 86_400;

/// `<label>.fazt.example`.
fn name(label: &str) -> String {
    format!("{label}.{DOMAIN}")
}

/// A Pebble and a fazt getting its certificates from it.
struct Acme {
    server: Server,
    pebble: Pebble,
    /// Pebble's issuing root, fetched while Pebble is up.
    root: CertificateDer<'static>,
    /// Where the admin API answers: the admin listener, or the public one.
    admin: SocketAddr,
    /// How fazt was started, to start it again.
    args: Vec<String>,
    env: Vec<(String, String)>,
    admin_listener: bool,
}

/// How a test's Pebble and fazt are started.
#[derive(Default)]
struct Setup<'a> {
    pebble: PebbleOptions,
    /// fazt's plain listener (default: Pebble's HTTP-01 port).
    listen: Option<u16>,
    /// fazt's TLS listener (default: Pebble's TLS-ALPN-01 port).
    tls_listen: Option<u16>,
    /// More `fazt server start` arguments.
    args: Vec<&'a str>,
    env: Vec<(&'a str, &'a str)>,
    /// The admin API on its own listener (`--admin-listen`).
    admin_listener: bool,
    /// Names the mock DNS answers with another address than 127.0.0.1, from the start.
    dns: Vec<(String, &'a str)>,
}

impl Setup<'_> {
    /// `--acme-challenge http-01`, all else default.
    fn http01() -> Setup<'static> {
        Setup {
            args: vec!["--acme-challenge", "http-01"],
            ..Setup::default()
        }
    }
}

/// Starts Pebble, then fazt for `DOMAIN` with ACME on, trusting Pebble's https.
fn start(setup: Setup) -> Acme {
    let pebble = Pebble::start(&setup.pebble);
    for (host, ip) in &setup.dns {
        pebble.resolve(host, ip);
    }
    let root = pebble.issuing_root();
    let listen = setup.listen.unwrap_or(pebble.http_port);
    let tls_listen = setup.tls_listen.unwrap_or(pebble.tls_port);
    let mut args: Vec<String> = [
        "--domain",
        DOMAIN,
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--tls-listen",
        &format!("127.0.0.1:{tls_listen}"),
        "--acme-email",
        EMAIL,
        "--acme-directory",
        &pebble.directory,
        "--acme-ca-file",
        s(&pebble.ca.ca_file),
    ]
    .map(String::from)
    .to_vec();
    args.extend(setup.args.iter().map(|a| a.to_string()));
    let env: Vec<(String, String)> = setup
        .env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let server = start_fazt(&args, &env, setup.admin_listener);
    assert_eq!(server.addr.port(), listen);
    assert_eq!(server.tls_addr.map(|a| a.port()), Some(tls_listen));
    Acme {
        admin: server.admin_addr.unwrap_or(server.addr),
        server,
        pebble,
        root,
        args,
        env,
        admin_listener: setup.admin_listener,
    }
}

fn start_fazt(args: &[String], env: &[(String, String)], admin_listener: bool) -> Server {
    let mut builder = Server::builder();
    for arg in args {
        builder = builder.arg(arg);
    }
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    if admin_listener {
        builder = builder.admin_listener();
    }
    builder.start()
}

impl Drop for Acme {
    /// A failed check shows whether fazt still runs, and what fazt and Pebble logged.
    fn drop(&mut self) {
        if std::thread::panicking() {
            let status = self.server.child.try_wait();
            eprintln!("fazt ({status:?}) logged:\n{}", self.server.stderr());
            eprintln!("pebble logged:\n{}", self.pebble.log());
        }
    }
}

impl Acme {
    /// Stops fazt (SIGTERM, a clean exit) and starts it again on the same data and ports.
    fn restart(&mut self) {
        let status = self.server.terminate();
        assert!(status.success(), "{status}");
        let mut args = self.args.clone();
        args.extend(["--data".to_string(), s(self.server.data.path()).to_string()]);
        let mut server = start_fazt(&args, &self.env, self.admin_listener);
        // The data dir lives as long as the first server's TempDir: keep that one.
        std::mem::swap(&mut server.data, &mut self.server.data);
        // The owner key is printed on the first start only.
        server.token = self.server.token.clone();
        self.admin = server.admin_addr.unwrap_or(server.addr);
        self.server = server;
    }

    /// Points fazt at another ACME server (a restart with its directory and CA file).
    fn use_ca(&mut self, pebble: Pebble) {
        let set = |args: &mut Vec<String>, flag: &str, value: &str| {
            let at = args.iter().position(|a| a == flag).unwrap() + 1;
            args[at] = value.to_string();
        };
        set(&mut self.args, "--acme-directory", &pebble.directory);
        set(&mut self.args, "--acme-ca-file", s(&pebble.ca.ca_file));
        self.root = pebble.issuing_root();
        self.pebble = pebble;
        self.restart();
    }

    /// An owner-key request to the admin API (bare `localhost` is the admin host).
    fn admin_request(&self, method: &str, path: &str) -> HttpResponse {
        let auth = format!("Bearer {}", self.server.token);
        let raw = request_bytes(method, "localhost", path, &[("Authorization", &auth)], b"");
        raw_request(self.admin, raw)
    }

    /// `GET /api/certs`.
    fn certs(&self) -> Value {
        let r = self.admin_request("GET", "/api/certs");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    /// The names `GET /api/certs` lists, sorted.
    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = list(&self.certs())
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        names
    }

    /// Polls `GET /api/certs` (at most `limit`) until `name` has a certificate that
    /// `accept` takes; returns its entry.
    fn wait_cert_for(&self, name: &str, limit: Duration, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let certs = self.certs();
            let entry = entry(&certs, name);
            if let Some(entry) = entry.filter(|e| !e["not_after"].is_null() && accept(e)) {
                return entry;
            }
            assert!(
                Instant::now() < deadline,
                "no certificate for {name} within {limit:?}: {certs:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The first certificate of `name`.
    fn wait_cert(&self, name: &str) -> Value {
        self.wait_cert_for(name, Duration::from_secs(60), |_| true)
    }

    /// Polls (at most `limit`) until `name`'s entry satisfies `accept` (certificate or not).
    fn wait_entry(&self, name: &str, limit: Duration, accept: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let certs = self.certs();
            if let Some(entry) = entry(&certs, name).filter(|e| accept(e)) {
                return entry;
            }
            assert!(
                Instant::now() < deadline,
                "{name} not as expected within {limit:?}: {certs:#}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A TLS connection to fazt's TLS listener for `sni`, verified against Pebble's
    /// issuing root only.
    fn connect(&self, sni: &str) -> std::io::Result<Tls> {
        handshake(self.server.tls_addr.unwrap(), sni, trusting(&self.root))
    }

    /// A verified connection for `sni`, polling (at most 10 s) while the handshake fails:
    /// a certificate is listed once stored, and served once the certificate thread has
    /// installed it, a moment later.
    fn connect_served(&self, sni: &str) -> Tls {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.connect(sni) {
                Ok(tls) => return tls,
                Err(e) => assert!(
                    Instant::now() < deadline,
                    "no verified handshake for {sni}: {e}"
                ),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The leaf fazt serves for `sni` (a verified handshake).
    fn served_leaf(&self, sni: &str) -> Vec<u8> {
        leaf(&self.connect_served(sni))
    }

    /// Polls new connections (at most 5 s) until `sni` is served a leaf other than `old`;
    /// returns it.
    fn wait_new_leaf(&self, sni: &str, old: &[u8]) -> Vec<u8> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let served = self.served_leaf(sni);
            if served != old {
                return served;
            }
            assert!(
                Instant::now() < deadline,
                "{sni} is still served its old certificate"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `fazt ARGS --server http://localhost:PORT --token T`: a client command against the
    /// admin API's listener (bare `localhost` is the admin host).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let home = TempDir::new("acme-home");
        let url = format!("http://localhost:{}", self.admin.port());
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", &url, "--token", &self.server.token]);
        run_client(&all, home.path(), &[])
    }

    /// The value of one series of `/metrics`, if present.
    fn metric(&self, series: &str) -> Option<f64> {
        let r = self.admin_request("GET", "/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        r.text()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    }
}

fn list(certs: &Value) -> Vec<Value> {
    certs["certificates"]
        .as_array()
        .unwrap_or_else(|| panic!("no certificates list: {certs}"))
        .clone()
}

fn entry(certs: &Value, name: &str) -> Option<Value> {
    list(certs).into_iter().find(|c| c["name"] == name)
}

fn int(entry: &Value, field: &str) -> i64 {
    entry[field]
        .as_i64()
        .unwrap_or_else(|| panic!("{field} is not a number: {entry}"))
}

/// The `YYYY-MM-DD HH:MM` times (UTC) in a line of `fazt certs`, as unix seconds, in
/// order.
fn utc_minutes_in(line: &str) -> Vec<i64> {
    let words: Vec<&str> = line.split_whitespace().collect();
    words
        .windows(2)
        .filter_map(|w| {
            let date: Vec<i64> = w[0]
                .split('-')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            let time: Vec<i64> = w[1]
                .split(':')
                .map(|p| p.parse().ok())
                .collect::<Option<_>>()?;
            match (date.as_slice(), time.as_slice()) {
                (&[y, m, d], &[h, min]) => {
                    Some(days_from_civil(y, m, d) * DAY + h * 3600 + min * 60)
                }
                _ => None,
            }
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A client trusting only `root`, offering `http/1.1`.
fn trusting(root: &CertificateDer<'static>) -> Arc<ClientConfig> {
    crate::common::tls_client::trusting([root.clone()])
}

fn chain(tls: &Tls) -> Vec<CertificateDer<'static>> {
    tls.conn
        .peer_certificates()
        .expect("the server's certificates")
        .iter()
        .map(|c| c.clone().into_owned())
        .collect()
}

fn leaf(tls: &Tls) -> Vec<u8> {
    chain(tls)[0].to_vec()
}

/// One keep-alive request on `tls`.
fn get_over(tls: &mut Tls, host: &str, path: &str, token: Option<&str>) -> HttpResponse {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    read_response(tls).expect("a response over TLS")
}

fn deploy_page(server: &Server, site: &str, body: &str) {
    let r = deploy_files(
        server,
        site,
        &[("index.html", body.as_bytes())],
        zip::CompressionMethod::Stored,
    );
    assert!((200..300).contains(&r.status), "{}", r.text());
}

/// Fetches `/` of `host` over a verified TLS connection for `host`, checks the chain, and
/// returns the body and the leaf.
fn fetch(acme: &Acme, host: &str) -> (HttpResponse, Vec<u8>) {
    let mut tls = acme.connect_served(host);
    verify_chain_der(&chain(&tls), host, acme.root.clone());
    let leaf = leaf(&tls);
    let r = get_over(&mut tls, host, "/", None);
    (r, leaf)
}

#[test]
fn http01_certificates_for_the_domain_admin_root_and_each_site_are_served_by_sni() {
    if pebble_missing("acme_server::http01_certificates_for_the_domain_admin_root_and_each_site_are_served_by_sni") {
        return;
    }
    let acme = start(Setup::http01());
    let certs = acme.certs();
    assert_eq!(
        certs["acme"],
        serde_json::json!({
            "directory": acme.pebble.directory,
            "email": EMAIL,
            "challenge": "http-01",
        })
    );
    // At start: the domain, admin. and root.; then a site deployed after the start.
    let admin = name("admin");
    let root = name("root");
    let blog = name("blog");
    for n in [DOMAIN, &admin, &root] {
        acme.wait_cert(n);
    }
    deploy_page(&acme.server, "blog", "<h1>blog over https</h1>");
    // Wanted within about a second of the deploy (the sync interval).
    acme.wait_entry(&blog, Duration::from_secs(2), |_| true);
    let blog_first = acme.wait_cert(&blog);

    // Each name over https, with its own certificate, verified against Pebble's root.
    let (r, domain_leaf) = fetch(&acme, DOMAIN);
    assert_eq!((r.status, &r.body[..]), (200, LANDING));
    let (r, root_leaf) = fetch(&acme, &root);
    assert_eq!((r.status, &r.body[..]), (200, LANDING));
    let (r, blog_leaf) = fetch(&acme, &blog);
    assert_eq!(
        (r.status, r.text().as_str()),
        (200, "<h1>blog over https</h1>")
    );
    let mut tls = acme.connect_served(&admin);
    verify_chain_der(&chain(&tls), &admin, acme.root.clone());
    let admin_leaf = leaf(&tls);
    let r = get_over(&mut tls, &admin, "/api/certs", Some(&acme.server.token));
    assert_eq!(r.status, 200, "{}", r.text());
    let mut leaves = vec![&domain_leaf, &root_leaf, &blog_leaf, &admin_leaf];
    leaves.sort();
    leaves.dedup();
    assert_eq!(leaves.len(), 4, "one certificate per name");

    // What the API says of them.
    let t = now();
    for n in [DOMAIN, &admin, &root, &blog] {
        let e = acme.wait_cert(n);
        assert_eq!(e["source"], "acme", "{e}");
        assert!(
            e["issuer"].as_str().is_some_and(|i| i.contains("Pebble")),
            "{e}"
        );
        let (not_before, not_after) = (int(&e, "not_before"), int(&e, "not_after"));
        assert!(not_before <= t + 1 && t < not_after, "{e}");
        assert!(
            (90 * DAY - 60..=90 * DAY + 60).contains(&(not_after - not_before)),
            "{e}"
        );
        assert!(int(&e, "issued_at") <= t + 1, "{e}");
        assert_eq!(e["failures"], 0, "{e}");
        assert_eq!(e["last_error"], Value::Null, "{e}");
        // Renewal 30 days before expiry, moved earlier by at most a tenth of the time left.
        let renew = not_after - 30 * DAY;
        let next = int(&e, "next_attempt");
        assert!(
            next <= renew && next >= renew - (renew - t) / 10 - 60,
            "{e}"
        );
    }

    // Names that are no site are never ordered: not by SNI, a Host, a renew request, nor
    // the system site 404.
    let nosuch = name("nosuch");
    assert!(
        acme.connect(&nosuch).is_err(),
        "no certificate for {nosuch}"
    );
    assert_eq!(acme.server.get(&nosuch, "/").status, 404);
    let r = admin_raw(
        &acme.server,
        "POST",
        &format!("/api/certs/{nosuch}/renew"),
        "",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "not_found", "{}", r.text());
    // A renewal asked through the API answers when it is done, with the new certificate.
    let root_before = acme.wait_cert(&root);
    let r = admin_raw(
        &acme.server,
        "POST",
        &format!("/api/certs/{root}/renew"),
        "",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let renewed = r.json();
    assert_eq!(renewed["name"], root.as_str(), "{renewed}");
    assert_eq!(renewed["last_error"], Value::Null, "{renewed}");
    assert!(
        renewed["issuer"]
            .as_str()
            .is_some_and(|i| i.contains("Pebble")),
        "{renewed}"
    );
    assert!(
        int(&renewed, "issued_at") >= int(&root_before, "issued_at"),
        "{renewed}"
    );
    assert_ne!(acme.served_leaf(&root), root_leaf, "served at once");
    deploy_page(&acme.server, "404", "<h1>custom not found</h1>");
    // A new deployment of a site keeps its certificate: no second order.
    deploy_page(&acme.server, "blog", "<h1>blog v2</h1>");
    std::thread::sleep(Duration::from_millis(1500));
    let blog_now = acme.wait_cert(&blog);
    assert_eq!(blog_now["issued_at"], blog_first["issued_at"], "{blog_now}");
    assert_eq!(blog_now["not_after"], blog_first["not_after"], "{blog_now}");
    let mut all = vec![
        DOMAIN.to_string(),
        admin.clone(),
        blog.clone(),
        root.clone(),
    ];
    all.sort();
    assert_eq!(acme.names(), all);

    // Expiry in /metrics; 90 days left is no reason to be degraded.
    let left = acme
        .metric(&format!(
            "fazt_tls_cert_expiry_seconds{{name=\"{DOMAIN}\"}}"
        ))
        .expect("the domain's expiry in /metrics");
    assert!(
        ((89 * DAY) as f64..=(90 * DAY) as f64).contains(&left),
        "{left}"
    );
    let health = get_json(&acme.server, "/api/system/health");
    assert_eq!(health["status"], "ok", "{health}");
    assert!(acme.metric("fazt_acme_orders_total{result=\"ok\"}") >= Some(4.0));
    // The same numbers in the health JSON.
    let in_health = health["tls"]["cert_expiry_seconds"][DOMAIN]
        .as_f64()
        .unwrap_or_else(|| panic!("no tls.cert_expiry_seconds.{DOMAIN}: {health}"));
    assert!(
        (in_health - left).abs() <= 60.0,
        "{in_health} against {left}"
    );
    assert!(
        health["acme"]["orders"]["ok"].as_i64() >= Some(4),
        "{health}"
    );

    // `fazt certs`: a table of the same names; `--json` is the API's listing.
    let (code, out, err) = acme.cli(&["certs"]);
    assert_eq!(code, 0, "{out}{err}");
    let header = out.lines().find(|l| l.starts_with("NAME")).unwrap_or("");
    for column in [
        "SOURCE",
        "ISSUER",
        "EXPIRES (UTC)",
        "RENEWED (UTC)",
        "NEXT TRY (UTC)",
        "ERROR",
    ] {
        assert!(header.contains(column), "{column}: {out}");
    }
    for n in &all {
        assert!(
            out.lines()
                .any(|l| l.split_whitespace().next() == Some(n) && l.contains("acme")),
            "{n}: {out}"
        );
    }
    let (code, out, err) = acme.cli(&["certs", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let json: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        json["certificates"].as_array().map(|l| l.len()),
        Some(4),
        "{json}"
    );

    // A deleted site's name is forgotten: not listed, not served, not renewed.
    let r = admin_delete(&acme.server, "/api/sites/blog");
    assert_eq!(r.status, 200, "{}", r.text());
    let deadline = Instant::now() + Duration::from_secs(5);
    while acme.names().contains(&blog) {
        assert!(Instant::now() < deadline, "{blog} is still listed");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        acme.connect(&blog).is_err(),
        "{blog} is still served its certificate"
    );
    let r = admin_raw(
        &acme.server,
        "POST",
        &format!("/api/certs/{blog}/renew"),
        "",
    );
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(
        acme.metric(&format!("fazt_tls_cert_expiry_seconds{{name=\"{blog}\"}}")),
        None
    );
    assert_eq!(fetch(&acme, DOMAIN).1, domain_leaf, "the others stay");

    // The site made again gets a new certificate.
    deploy_page(&acme.server, "blog", "<h1>blog again</h1>");
    acme.wait_cert(&blog);
    let (r, again_leaf) = fetch(&acme, &blog);
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>blog again</h1>"));
    assert_ne!(again_leaf, blog_leaf);
}

#[test]
fn tls_alpn01_needs_no_plain_port_and_covers_sites_imported_by_another_process() {
    if pebble_missing(
        "acme_server::tls_alpn01_needs_no_plain_port_and_covers_sites_imported_by_another_process",
    ) {
        return;
    }
    // fazt's plain listener is not where Pebble would validate HTTP-01: nothing is.
    let acme = start(Setup {
        listen: Some(free_port()),
        args: vec!["--acme-challenge", "tls-alpn-01"],
        ..Setup::default()
    });
    let unused = acme.pebble.http_port;
    assert_ne!(acme.server.addr.port(), unused);
    assert!(
        TcpStream::connect_timeout(&([127, 0, 0, 1], unused).into(), Duration::from_millis(500))
            .is_err(),
        "nothing answers on Pebble's HTTP-01 port"
    );
    assert_eq!(acme.certs()["acme"]["challenge"], "tls-alpn-01");
    acme.wait_cert(DOMAIN);
    deploy_page(&acme.server, "shop", "<h1>shop</h1>");
    let site = TempDir::new("acme-import");
    write_file(site.path(), "index.html", b"<h1>docs</h1>");
    import("docs", site.path(), acme.server.data.path());
    let (shop, docs) = (name("shop"), name("docs"));
    acme.wait_cert(&shop);
    acme.wait_cert(&docs);

    let (r, _) = fetch(&acme, DOMAIN);
    assert_eq!((r.status, &r.body[..]), (200, LANDING));
    let (r, _) = fetch(&acme, &shop);
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>shop</h1>"));
    let (r, _) = fetch(&acme, &docs);
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>docs</h1>"));
    for n in [DOMAIN, &shop, &docs] {
        let e = acme.wait_cert(n);
        assert_eq!(
            (&e["source"], &e["failures"]),
            (&"acme".into(), &0.into()),
            "{e}"
        );
    }
}

#[test]
fn a_renewal_is_served_without_a_restart_and_keep_alive_connections_survive_it() {
    if pebble_missing(
        "acme_server::a_renewal_is_served_without_a_restart_and_keep_alive_connections_survive_it",
    ) {
        return;
    }
    // 20-second certificates: renewed at two-thirds of their lifetime, about 13 s in.
    let mut acme = start(Setup {
        pebble: PebbleOptions {
            validity_secs: 20,
            ..PebbleOptions::default()
        },
        env: vec![("FAZT_IDLE_TIMEOUT", "120s")],
        ..Setup::http01()
    });
    let first = acme.wait_cert(DOMAIN);
    let (not_before, not_after) = (int(&first, "not_before"), int(&first, "not_after"));
    let lifetime = not_after - not_before;
    assert!((18..=21).contains(&lifetime), "{first}");
    // Two-thirds in, moved earlier by at most a tenth of the time left then.
    let renew = not_after - lifetime / 3;
    let next = int(&first, "next_attempt");
    let issued = int(&first, "issued_at");
    assert!(
        next <= renew && next >= renew - (renew - issued) / 10 - 1,
        "{first}"
    );

    let mut held = acme.connect_served(DOMAIN);
    let old_leaf = leaf(&held);
    let r = get_over(&mut held, DOMAIN, "/", None);
    assert_eq!((r.status, &r.body[..]), (200, LANDING));

    // Under 7 days left: degraded, and still serving (200).
    let r = acme
        .server
        .admin_get("/api/system/health", Some(&acme.server.token));
    assert_eq!(r.status, 200, "{}", r.text());
    let health = r.json();
    assert_eq!(health["status"], "degraded", "{health}");
    let reasons = health["reasons"].as_array().unwrap();
    assert!(
        reasons.iter().any(|r| r
            .as_str()
            .is_some_and(|r| r.starts_with("certificate for ") && r.contains(" expires in "))),
        "{health}"
    );
    let left = acme
        .metric(&format!(
            "fazt_tls_cert_expiry_seconds{{name=\"{DOMAIN}\"}}"
        ))
        .expect("the domain's expiry in /metrics");
    assert!((0.0..=20.0).contains(&left), "{left}");

    let renewed = acme.wait_cert_for(DOMAIN, Duration::from_secs(45), |e| {
        int(e, "issued_at") > int(&first, "issued_at")
    });
    assert!(int(&renewed, "not_after") > not_after, "{renewed}");
    // The connection opened on the first certificate goes on.
    let r = get_over(&mut held, DOMAIN, "/", None);
    assert_eq!((r.status, &r.body[..]), (200, LANDING));
    assert_eq!(leaf(&held), old_leaf);
    // New connections get the new certificate, from the same process.
    let new_leaf = acme.wait_new_leaf(DOMAIN, &old_leaf);
    let tls = acme.connect_served(DOMAIN);
    verify_chain_der(&chain(&tls), DOMAIN, acme.root.clone());
    assert_ne!(new_leaf, old_leaf);
    assert!(
        acme.server.child.try_wait().unwrap().is_none(),
        "no restart"
    );
    let r = get_over(&mut held, DOMAIN, "/", None);
    assert_eq!(r.status, 200);
}

#[test]
fn a_refusing_or_down_ca_keeps_the_old_certificate_shows_the_error_and_backs_off() {
    if pebble_missing("acme_server::a_refusing_or_down_ca_keeps_the_old_certificate_shows_the_error_and_backs_off") {
        return;
    }
    let mut acme = start(Setup::http01());
    acme.wait_cert(DOMAIN);
    let first_leaf = acme.served_leaf(DOMAIN);

    // A site whose DNS points elsewhere: the CA's validation fails, the order is refused,
    // the error is recorded and the next try backs off. (Pebble 2.4's `domainBlocklist`
    // would be the direct way, but it crashes its order handler for any name with fewer
    // labels than a blocked one, such as the bare domain.)
    let elsewhere = name("elsewhere");
    acme.pebble.resolve(&elsewhere, "127.0.0.2");
    deploy_page(&acme.server, "elsewhere", "<h1>elsewhere</h1>");
    let e = acme.wait_entry(&elsewhere, Duration::from_secs(30), |e| {
        !e["last_error"].is_null()
    });
    let refusal = e["last_error"].as_str().unwrap();
    assert!(refusal.contains("127.0.0.2"), "the CA's reason: {e}");
    assert_eq!(e["not_after"], Value::Null, "{e}");
    assert_eq!(e["failures"], 1, "{e}");
    assert!(
        int(&e, "next_attempt") >= int(&e, "last_attempt") + 60,
        "{e}"
    );
    assert!(
        acme.connect(&elsewhere).is_err(),
        "no certificate for {elsewhere}"
    );

    // `fazt certs renew` while the CA is up: a new certificate, served at once.
    let (code, out, err) = acme.cli(&["certs", "renew", DOMAIN]);
    assert_eq!(code, 0, "{out}{err}");
    let renewed = format!("renewed {DOMAIN}: expires ");
    assert!(
        out.lines()
            .any(|l| l.starts_with(&renewed) && l.contains("(issuer Pebble")),
        "{out}"
    );
    let renewed_leaf = acme.wait_new_leaf(DOMAIN, &first_leaf);
    let before = acme.wait_cert(DOMAIN);

    // The CA goes down.
    acme.pebble.stop();
    let (code, out, err) = acme.cli(&["certs", "renew", DOMAIN]);
    assert_eq!(code, 1, "{out}{err}");
    let e = acme.wait_entry(DOMAIN, Duration::from_secs(5), |e| {
        !e["last_error"].is_null()
    });
    let error = e["last_error"].as_str().unwrap().to_string();
    assert!(
        format!("{out}{err}").contains(&error),
        "the renew command prints the error {error:?}: {out}{err}"
    );
    assert_eq!(e["failures"], 1, "{e}");
    let last_attempt = int(&e, "last_attempt");
    assert!(int(&e, "next_attempt") >= last_attempt + 60, "{e}");
    assert!(int(&e, "next_attempt") >= now() + 50, "{e}");
    // The certificate held is kept, and served.
    for field in ["not_before", "not_after", "issued_at", "issuer"] {
        assert_eq!(e[field], before[field], "{field}: {e}");
    }
    assert_eq!(acme.served_leaf(DOMAIN), renewed_leaf);

    // `fazt certs` shows the error; the metrics count the failed orders.
    let (code, out, err) = acme.cli(&["certs"]);
    assert_eq!(code, 0, "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(DOMAIN))
        .unwrap_or_else(|| panic!("{DOMAIN} not listed: {out}"));
    let shown = error.chars().take(20).collect::<String>();
    assert!(line.contains(&shown), "{line:?} does not show {error:?}");
    // NEXT TRY (UTC), to the minute: at least a minute after the failed attempt.
    let times = utc_minutes_in(line);
    assert_eq!(times.len(), 3, "EXPIRES, RENEWED, NEXT TRY: {line:?}");
    assert_eq!(
        times[0],
        int(&e, "not_after") / 60 * 60,
        "EXPIRES: {line:?}"
    );
    let next_try = times[2];
    assert!(next_try + 59 >= last_attempt + 60, "{line:?}");
    let (code, out, _) = acme.cli(&["certs", "--json"]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(entry(&json, DOMAIN).unwrap()["last_error"], error.as_str());
    assert!(acme.metric("fazt_acme_orders_total{result=\"error\"}") >= Some(2.0));
    assert!(acme.metric("fazt_acme_orders_total{result=\"ok\"}") >= Some(2.0));

    // Failing again doubles the wait; the API answers with the CA's error.
    let r = admin_raw(
        &acme.server,
        "POST",
        &format!("/api/certs/{DOMAIN}/renew"),
        "",
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert_eq!(
        r.json()["error"]["code"],
        "acme_unreachable",
        "{}",
        r.text()
    );
    let e = acme.wait_entry(DOMAIN, Duration::from_secs(5), |e| e["failures"] == 2);
    assert!(
        int(&e, "next_attempt") >= int(&e, "last_attempt") + 120,
        "{e}"
    );
    assert_eq!(acme.served_leaf(DOMAIN), renewed_leaf);

    // A restart while the CA is still down: the stored certificate is served from the
    // first connection on, and the backoff is kept (no attempt before it).
    acme.restart();
    assert_eq!(
        leaf(
            &acme
                .connect(DOMAIN)
                .expect("served at once after a restart")
        ),
        renewed_leaf
    );
    let after = entry(&acme.certs(), DOMAIN).unwrap();
    for field in [
        "not_after",
        "issued_at",
        "last_attempt",
        "next_attempt",
        "failures",
    ] {
        assert_eq!(after[field], e[field], "{field}: {after}");
    }

    // Another CA (as from staging to production): every name is ordered again from it,
    // through the same listeners.
    let old_issuer = e["issuer"].clone();
    let next_ca = Pebble::start(&PebbleOptions {
        http_port: acme.pebble.http_port,
        tls_port: acme.pebble.tls_port,
        ..PebbleOptions::default()
    });
    acme.use_ca(next_ca);
    for n in [DOMAIN.to_string(), name("admin"), name("root"), elsewhere] {
        let e = acme.wait_cert_for(&n, Duration::from_secs(30), |e| e["issuer"] != old_issuer);
        assert_eq!(
            (&e["failures"], &e["last_error"]),
            (&0.into(), &Value::Null),
            "{e}"
        );
        let tls = acme.connect_served(&n);
        verify_chain_der(&chain(&tls), &n, acme.root.clone());
    }

    // Names are case-insensitive, as typed by a user too.
    let (code, out, err) = acme.cli(&["certs", "renew", "Root.FAZT.example"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("renewed {}: expires ", name("root"))),
        "{out}"
    );
}

#[test]
fn auto_tries_tls_alpn01_first_then_http01_which_passes_the_https_redirect() {
    if pebble_missing(
        "acme_server::auto_tries_tls_alpn01_first_then_http01_which_passes_the_https_redirect",
    ) {
        return;
    }
    // fazt's TLS listener is not where Pebble validates TLS-ALPN-01 (nothing is); its plain
    // listener is Pebble's HTTP-01 port, and redirects to https. The admin API has its own
    // listener, as the public one redirects.
    let acme = start(Setup {
        tls_listen: Some(free_port()),
        args: vec!["--redirect-http"],
        admin_listener: true,
        ..Setup::default()
    });
    assert_eq!(acme.certs()["acme"]["challenge"], "auto");
    let r = acme.server.get(DOMAIN, "/");
    assert!(matches!(r.status, 301 | 308), "{r:?}");
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with(&format!("https://{DOMAIN}"))),
        "{r:?}"
    );
    // The first attempt, over TLS-ALPN-01, fails.
    let e = acme.wait_entry(DOMAIN, Duration::from_secs(30), |e| {
        !e["last_error"].is_null()
    });
    assert!(
        e["last_error"].as_str().unwrap().contains("tls-alpn-01"),
        "{e}"
    );
    assert_eq!(
        (&e["failures"], &e["not_after"]),
        (&1.into(), &Value::Null),
        "{e}"
    );
    // The next one, asked for now instead of after the backoff, is over HTTP-01. It is
    // asked for at once, most likely in the same second as the failed attempt: `fazt certs
    // renew` must wait for the attempt it asked for, not report that one.
    let (code, out, err) = acme.cli(&["certs", "renew", DOMAIN]);
    assert_eq!(code, 0, "{out}{err}");
    let e = acme.wait_cert(DOMAIN);
    assert_eq!(
        (&e["failures"], &e["last_error"]),
        (&0.into(), &Value::Null),
        "{e}"
    );
    let (r, _) = fetch(&acme, DOMAIN);
    assert_eq!((r.status, &r.body[..]), (200, LANDING));
}

/// Accepts connections and never answers them: a validation that hangs.
struct Blackhole {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Blackhole {
    fn start(addr: SocketAddr) -> Blackhole {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Blackhole {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Blackhole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_certificate_is_served_once_listed_while_another_order_hangs() {
    if pebble_missing("acme_server::a_certificate_is_served_once_listed_while_another_order_hangs")
    {
        return;
    }
    // root.'s validation goes to an address where nothing answers: its order hangs, after
    // admin.'s and the domain's in the same round of orders at start.
    let options = PebbleOptions::default();
    let _hole = Blackhole::start(([127, 0, 0, 3], options.http_port).into());
    let root = name("root");
    let acme = start(Setup {
        pebble: options,
        dns: vec![(root.clone(), "127.0.0.3")],
        ..Setup::http01()
    });
    let admin = name("admin");
    acme.wait_cert(&admin);
    let listed = Instant::now();
    // What `fazt certs` lists as held is what a client gets, within a moment.
    let deadline = listed + Duration::from_secs(2);
    loop {
        match acme.connect(&admin) {
            Ok(tls) => {
                verify_chain_der(&chain(&tls), &admin, acme.root.clone());
                break;
            }
            Err(e) => assert!(
                Instant::now() < deadline,
                "{admin} listed {:?} ago, still not served ({e}); {root}: {}",
                listed.elapsed(),
                entry(&acme.certs(), &root).unwrap_or_default()
            ),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn acme_settings_are_checked_at_start_and_renew_without_acme_is_a_conflict() {
    let dir = TempDir::new("acme-flags");
    let data = dir.path().join("data");
    let (code, _, err) = run_cli(
        &[
            "server",
            "start",
            "--listen",
            "127.0.0.1:0",
            "--data",
            s(&data),
            "--acme-email",
            EMAIL,
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--acme-email") && err.contains("--tls-listen"),
        "{err}"
    );

    // A server with a self-signed certificate and no ACME.
    let server = Server::builder()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-self-signed")
        .start();
    let certs = get_json(&server, "/api/certs");
    assert_eq!(certs["acme"], Value::Null, "{certs}");
    assert!(
        list(&certs).iter().any(|c| c["source"] == "self-signed"),
        "{certs}"
    );
    let r = admin_raw(&server, "POST", "/api/certs/localhost/renew", "");
    assert_eq!(r.status, 409, "{}", r.text());
    // The contract named the code `acme_off`; fazt's one error mapping gives each
    // status its code, and 409 is `conflict`. The message says what to do.
    let error = &r.json()["error"];
    assert_eq!(error["code"], "conflict", "{}", r.text());
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("--acme-email")),
        "{}",
        r.text()
    );
}
