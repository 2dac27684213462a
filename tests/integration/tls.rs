//! HTTPS (issue #12): the TLS listener against a rustls client. Certificates are made with
//! rcgen here and written to the test's temp dir.

use crate::common::tls_client::{handshake, Tls};
use crate::common::*;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Accepts any certificate, so a test can look at which one the server chose.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algs = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn any_cert_config() -> Arc<ClientConfig> {
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider())))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A client that trusts only the PEM certificate at `root` (real verification).
fn trusting(root: &Path) -> Arc<ClientConfig> {
    let pem = std::fs::read(root).unwrap();
    let certs = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem).map(|c| c.unwrap());
    crate::common::tls_client::trusting(certs)
}

fn connect_tls(server: &Server, sni: &str) -> Tls {
    handshake(server.tls_addr.unwrap(), sni, any_cert_config()).expect("a TLS handshake")
}

fn served_cert(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

/// A self-signed certificate for `names`, written as `<tag>.crt`/`<tag>.key` into `dir`;
/// returns the paths and the certificate's DER.
fn make_cert(dir: &Path, tag: &str, names: &[&str]) -> (PathBuf, PathBuf, Vec<u8>) {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert, key) = (
        dir.join(format!("{tag}.crt")),
        dir.join(format!("{tag}.key")),
    );
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key, made.cert.der().to_vec())
}

/// A server with a TLS listener serving the given certificate files.
fn tls_server(certs: &[(&PathBuf, &PathBuf)], env: &[(&str, &str)]) -> Server {
    let list = |paths: Vec<&PathBuf>| paths.iter().map(|p| s(p)).collect::<Vec<_>>().join(",");
    let mut builder = Server::builder()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-cert")
        .arg(&list(certs.iter().map(|c| c.0).collect()))
        .arg("--tls-key")
        .arg(&list(certs.iter().map(|c| c.1).collect()));
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    builder.start()
}

fn localhost_server(env: &[(&str, &str)]) -> (Server, TempDir, Vec<u8>) {
    let dir = TempDir::new("tls-certs");
    let (cert, key, der) = make_cert(dir.path(), "local", &["localhost", "*.localhost"]);
    (tls_server(&[(&cert, &key)], env), dir, der)
}

fn get_over(tls: &mut Tls, host: &str, path: &str) -> HttpResponse {
    let head = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    tls.write_all(head.as_bytes()).unwrap();
    read_response(tls).expect("a response over TLS")
}

/// `metric`, or `None` while the server refuses the request (say, over the client share).
fn try_metric(server: &Server, series: &str) -> Option<u64> {
    let mut s = TcpStream::connect(server.addr).ok()?;
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        server.token
    );
    s.write_all(head.as_bytes()).ok()?;
    let r = read_response(&mut s).ok().filter(|r| r.status == 200)?;
    let text = r.text();
    let value = text
        .lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))?;
    value.trim().parse().ok()
}

fn handshakes(server: &Server, result: &str) -> u64 {
    metric(
        server,
        &format!("fazt_tls_handshakes_total{{result=\"{result}\"}}"),
    )
}

#[test]
fn sni_picks_the_certificate_of_each_name_and_unknown_names_get_the_default() {
    let dir = TempDir::new("tls-sni");
    let (a_cert, a_key, a_der) = make_cert(dir.path(), "a", &["localhost", "*.localhost"]);
    let (b_cert, b_key, b_der) = make_cert(dir.path(), "b", &["other.test", "*.other.test"]);
    let server = tls_server(&[(&a_cert, &a_key), (&b_cert, &b_key)], &[]);
    assert_eq!(served_cert(&connect_tls(&server, "blog.localhost")), a_der);
    assert_eq!(served_cert(&connect_tls(&server, "other.test")), b_der);
    assert_eq!(served_cert(&connect_tls(&server, "www.other.test")), b_der);
    assert_eq!(
        served_cert(&connect_tls(&server, "unknown.example")),
        a_der,
        "an unknown name gets the first (default) certificate"
    );
    // ALPN: http/1.1 was agreed.
    let tls = connect_tls(&server, "localhost");
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    // A TLS 1.3 client is done before the server has read its Finished: the count may lag
    // the clients by a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    while handshakes(&server, "ok") < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(handshakes(&server, "ok"), 5);
}

#[test]
fn keep_alive_gets_a_track_post_and_hsts_over_tls_only() {
    let (server, _dir, _) = localhost_server(&[]);
    let mut tls = connect_tls(&server, "localhost");
    for _ in 0..3 {
        let r = get_over(&mut tls, "localhost", "/health");
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("strict-transport-security"), Some("max-age=86400"));
    }
    let body = r#"{"d":"a.test","p":"/tls","e":"pageview"}"#;
    let post = format!(
        "POST /track HTTP/1.1\r\nHost: collector.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tls.write_all(post.as_bytes()).unwrap();
    let r = read_response(&mut tls).unwrap();
    assert!((200..300).contains(&r.status), "{} {}", r.status, r.text());
    let plain = server.get("localhost", "/health");
    assert_eq!(plain.status, 200);
    assert_eq!(plain.header("strict-transport-security"), None);
}

#[test]
fn hsts_can_be_turned_off() {
    let (server, _dir, _) = localhost_server(&[("FAZT_HSTS", "0")]);
    let r = get_over(
        &mut connect_tls(&server, "localhost"),
        "localhost",
        "/health",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), None);
}

#[test]
fn a_large_file_over_tls_arrives_whole() {
    let (server, _dir, _) = localhost_server(&[]);
    // Larger than the socket and rustls buffers, and than one file-cache entry.
    let big = Rng(7).bytes(6 << 20);
    let r = deploy_files(
        &server,
        "big",
        &[("index.html", b"hi"), ("big.bin", &big)],
        zip::CompressionMethod::Stored,
    );
    assert!((200..300).contains(&r.status), "{}", r.text());
    // With a TLS listener, the URLs fazt returns are https on its port.
    let url = format!("https://big.localhost:{}/", server.tls_addr.unwrap().port());
    assert!(r.text().contains(&url), "{}", r.text());
    let mut tls = connect_tls(&server, "big.localhost");
    let r = get_over(&mut tls, "big.localhost", "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(sha256_hex(&r.body), sha256_hex(&big));
    // The connection is still good for the next request.
    assert_eq!(get_over(&mut tls, "big.localhost", "/").status, 200);
}

#[test]
fn garbage_and_a_truncated_hello_close_only_their_connection() {
    let (server, _dir, _) = localhost_server(&[]);
    let addr = server.tls_addr.unwrap();
    let mut garbage = connect(addr);
    garbage
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    assert!(closed_within(&mut garbage, Duration::from_secs(5)));
    // A record header announcing 512 bytes of handshake, then 10 of them and the end.
    let mut truncated = connect(addr);
    truncated
        .write_all(&[22, 3, 1, 2, 0, 1, 0, 1, 252, 3, 3, 0, 0, 0, 0])
        .unwrap();
    truncated.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(closed_within(&mut truncated, Duration::from_secs(5)));
    let r = get_over(
        &mut connect_tls(&server, "localhost"),
        "localhost",
        "/health",
    );
    assert_eq!(r.status, 200);
    assert!(eventually(Duration::from_secs(5), || {
        handshakes(&server, "protocol_error") == 1 && handshakes(&server, "closed") == 1
    }));
}

#[test]
fn a_stalled_handshake_is_closed_at_its_deadline_while_others_are_served() {
    let (server, _dir, _) = localhost_server(&[("FAZT_TLS_HANDSHAKE_TIMEOUT", "1s")]);
    let addr = server.tls_addr.unwrap();
    let started = Instant::now();
    let mut stalled = connect(addr);
    // Half a ClientHello, then nothing.
    stalled.write_all(&[22, 3, 1, 0, 200, 1, 0, 0]).unwrap();
    for _ in 0..3 {
        let r = get_over(
            &mut connect_tls(&server, "localhost"),
            "localhost",
            "/health",
        );
        assert_eq!(r.status, 200);
    }
    assert!(!closed_within(&mut stalled, Duration::from_millis(300)));
    assert!(closed_within(&mut stalled, Duration::from_secs(5)));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(eventually(Duration::from_secs(5), || handshakes(
        &server, "timeout"
    ) == 1));
}

#[test]
fn past_the_handshake_cap_new_connections_are_closed_at_once() {
    let (server, _dir, _) = localhost_server(&[
        ("FAZT_THREADS", "1"),
        ("FAZT_TLS_MAX_HANDSHAKES", "2"),
        ("FAZT_TLS_HANDSHAKE_TIMEOUT", "60s"),
    ]);
    let addr = server.tls_addr.unwrap();
    let mut stalled: Vec<TcpStream> = (0..2).map(|_| connect(addr)).collect();
    // Both are accepted and in their handshake before the next one comes.
    for s in &mut stalled {
        s.write_all(&[22, 3, 1]).unwrap();
    }
    std::thread::sleep(Duration::from_millis(300));
    let refused = handshake(addr, "localhost", any_cert_config());
    assert!(refused.is_err(), "the third handshake was refused");
    assert_eq!(handshakes(&server, "over_cap"), 1);
    assert!(!closed_within(&mut stalled[0], Duration::from_millis(100)));
    drop(stalled);
    // Once they are gone, handshakes are taken again.
    assert!(eventually(Duration::from_secs(5), || handshake(
        addr,
        "localhost",
        any_cert_config()
    )
    .is_ok()));
}

#[test]
fn http_limits_hold_over_tls() {
    let (server, _dir, _) =
        localhost_server(&[("FAZT_HEADER_TIMEOUT", "1s"), ("FAZT_BODY_TIMEOUT", "1s")]);
    // A head that never ends: 408 at the head deadline, counted from the handshake.
    let mut slow = connect_tls(&server, "localhost");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: loc")
        .unwrap();
    let started = Instant::now();
    let r = read_response(&mut slow).unwrap();
    assert_eq!(r.status, 408);
    assert!(started.elapsed() < Duration::from_secs(5));
    // A body that stops coming.
    let mut stuck = connect_tls(&server, "localhost");
    stuck
        .write_all(b"POST /track HTTP/1.1\r\nHost: collector.test\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    assert_eq!(read_response(&mut stuck).unwrap().status, 408);
    // A head over the size limit.
    let mut big = connect_tls(&server, "localhost");
    let huge = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(64 << 10)
    );
    let _ = big.write_all(huge.as_bytes());
    let status = read_response(&mut big).map(|r| r.status).unwrap_or(0);
    assert!(status == 414 || status == 431, "{status}");
}

#[test]
fn a_client_that_stops_reading_is_cut_at_the_write_deadline() {
    let (server, _dir, _) = localhost_server(&[("FAZT_WRITE_TIMEOUT", "1s")]);
    let big = Rng(3).bytes(8 << 20);
    let r = deploy_files(
        &server,
        "big",
        &[("index.html", b"hi"), ("big.bin", &big)],
        zip::CompressionMethod::Stored,
    );
    assert!((200..300).contains(&r.status), "{}", r.text());
    let mut tls = connect_tls(&server, "big.localhost");
    tls.write_all(b"GET /big.bin HTTP/1.1\r\nHost: big.localhost\r\n\r\n")
        .unwrap();
    tls.flush().unwrap();
    let before = metric(&server, "fazt_write_timeouts_total");
    // Nothing read: the socket buffers fill and the server gives up after a second.
    assert!(eventually(Duration::from_secs(10), || metric(
        &server,
        "fazt_write_timeouts_total"
    ) > before));
    let mut rest = Vec::new();
    let _ = tls.sock.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = tls.read_to_end(&mut rest);
    assert!(rest.len() < big.len(), "the response was cut");
}

#[test]
fn the_self_signed_certificate_is_written_for_clients_to_trust() {
    let server = Server::builder()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-self-signed")
        .start();
    let pem = server.data.path().join("tls-self-signed.pem");
    let addr = server.tls_addr.unwrap();
    for name in ["localhost", "admin.localhost", "root.localhost"] {
        let mut tls = handshake(addr, name, trusting(&pem)).expect(name);
        assert_eq!(get_over(&mut tls, name, "/health").status, 200);
    }
    // A site's name is covered by `*.localhost` (browsers take it; rustls and OpenSSL
    // refuse wildcards under a single label).
    let served = served_cert(&connect_tls(&server, "blog.localhost"));
    let bytes = std::fs::read(&pem).unwrap();
    let written = rustls::pki_types::pem::PemObject::pem_slice_iter(&bytes)
        .map(|c: Result<CertificateDer<'static>, _>| c.unwrap().to_vec())
        .next();
    assert_eq!(Some(served), written);
    let stranger = handshake(addr, "example.com", trusting(&pem));
    assert!(stranger.is_err(), "not valid for other names");
}

#[test]
fn bad_tls_settings_stop_the_start_with_the_flags_named() {
    let dir = TempDir::new("tls-bad");
    let data = dir.path().join("data");
    let data = s(&data);
    let listen = ["--listen", "127.0.0.1:0", "--data", data];
    let run = |extra: &[&str]| {
        let mut args = vec!["server", "start"];
        args.extend_from_slice(&listen);
        args.extend_from_slice(extra);
        run_cli(&args, &[])
    };
    let (code, _, err) = run(&["--tls-listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("--tls-cert") && err.contains("--tls-self-signed"),
        "{err}"
    );
    let (a_cert, _, _) = make_cert(dir.path(), "a", &["localhost"]);
    let (_, b_key, _) = make_cert(dir.path(), "b", &["localhost"]);
    let (code, _, err) = run(&[
        "--tls-listen",
        "127.0.0.1:0",
        "--tls-cert",
        s(&a_cert),
        "--tls-key",
        s(&b_key),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("a.crt") && err.contains("does not belong"),
        "{err}"
    );
    let (code, _, err) = run(&["--tls-cert", s(&a_cert), "--tls-key", s(&b_key)]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("needs --tls-listen"), "{err}");
}

#[test]
fn bad_acme_settings_stop_the_start_with_the_flags_named() {
    let dir = TempDir::new("acme-bad");
    let data = dir.path().join("data");
    let base = [
        "server",
        "start",
        "--listen",
        "127.0.0.1:0",
        "--data",
        s(&data),
    ];
    let tls = ["--tls-listen", "127.0.0.1:0"];
    let email = ["--acme-email", "me@fazt.example"];
    let run = |parts: &[&[&str]]| {
        let mut args = base.to_vec();
        parts.iter().for_each(|p| args.extend_from_slice(p));
        run_cli(&args, &[])
    };
    let cases: [(&[&[&str]], &[&str]); 7] = [
        (&[&email], &["FAZT_ACME_EMAIL", "needs --tls-listen"]),
        (
            &[&tls, &["--acme-staging"]],
            &["--acme-staging", "needs --acme-email"],
        ),
        (
            &[
                &tls,
                &email,
                &[
                    "--acme-staging",
                    "--acme-directory",
                    "https://ca.example/dir",
                ],
            ],
            &["--acme-staging", "use one of them"],
        ),
        (
            &[&tls, &["--acme-email", "me"]],
            &["--acme-email", "not an e-mail"],
        ),
        (
            &[&tls, &email, &["--acme-directory", "http://ca.example/dir"]],
            &["--acme-directory", "https://"],
        ),
        (
            &[&tls, &email, &["--acme-challenge", "dns-01"]],
            &["--acme-challenge", "http-01"],
        ),
        // The default domain, localhost, can't be validated by a CA.
        (&[&tls, &email], &["--domain", "localhost"]),
    ];
    for (args, wanted) in cases {
        let (code, _, err) = run(args);
        assert_eq!(code, 2, "{args:?}: {err}");
        for part in wanted {
            assert!(err.contains(part), "{args:?}: {part} not in {err}");
        }
    }
}

#[test]
fn certificate_files_are_reloaded_on_sighup_and_a_bad_file_keeps_the_old_one() {
    let dir = TempDir::new("tls-reload");
    let (cert, key, first) = make_cert(dir.path(), "site", &["localhost", "*.localhost"]);
    let server = tls_server(&[(&cert, &key)], &[]);
    let mut kept = connect_tls(&server, "localhost");
    assert_eq!(served_cert(&kept), first);
    // A key that does not match: logged, the old certificate stays.
    let (_, other_key, _) = make_cert(dir.path(), "other", &["localhost"]);
    std::fs::copy(&other_key, &key).unwrap();
    signal(&server.child, libc::SIGHUP);
    assert!(eventually(Duration::from_secs(5), || server
        .stderr()
        .contains("still serving the previous certificates")));
    assert_eq!(served_cert(&connect_tls(&server, "localhost")), first);
    // A good pair: served to new connections after the signal, no restart.
    let (new_cert, new_key, second) = make_cert(dir.path(), "new", &["localhost"]);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    signal(&server.child, libc::SIGHUP);
    assert!(eventually(Duration::from_secs(5), || served_cert(
        &connect_tls(&server, "localhost")
    ) == second));
    assert!(server.child.id() > 0 && server.stderr().contains("certificates reloaded (SIGHUP)"));
    // The connection from before still works, on its certificate.
    assert_eq!(get_over(&mut kept, "localhost", "/health").status, 200);
}

#[test]
fn changed_certificate_files_are_picked_up_without_a_signal() {
    let dir = TempDir::new("tls-watch");
    let (cert, key, first) = make_cert(dir.path(), "site", &["localhost"]);
    let server = tls_server(&[(&cert, &key)], &[]);
    assert_eq!(served_cert(&connect_tls(&server, "localhost")), first);
    // The file system's mtime may be coarse: make sure the new files look newer.
    std::thread::sleep(Duration::from_millis(1100));
    let (new_cert, new_key, second) = make_cert(dir.path(), "new", &["localhost"]);
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    assert!(eventually(Duration::from_secs(10), || served_cert(
        &connect_tls(&server, "localhost")
    ) == second));
    assert!(server.stderr().contains("the files changed"));
}

#[test]
fn redirect_http_sends_plain_requests_to_https_except_challenges_and_health() {
    let dir = TempDir::new("tls-redirect");
    let (cert, key, _) = make_cert(dir.path(), "local", &["localhost", "*.localhost"]);
    let server = Server::builder()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-cert")
        .arg(s(&cert))
        .arg("--tls-key")
        .arg(s(&key))
        .arg("--redirect-http")
        .start();
    let port = server.tls_addr.unwrap().port();
    let r = server.get("blog.localhost", "/a/b?x=1");
    assert_eq!(r.status, 301);
    let location = format!("https://blog.localhost:{port}/a/b?x=1");
    assert_eq!(r.header("location"), Some(location.as_str()));
    // A body is not read: 308 keeps the method, the client sends it again over https.
    let r = send(&server, "POST", "collector.test", "/track", &[], b"{}");
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://collector.test:{port}/track").as_str())
    );
    assert_eq!(server.get("localhost", "/health").status, 200);
    let challenge = server.get("localhost", "/.well-known/acme-challenge/token");
    assert_ne!(challenge.status, 301);
    // The metrics the tests read come over https on the admin host.
    let mut tls = connect_tls(&server, "admin.localhost");
    let head = format!(
        "GET /metrics HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    );
    tls.write_all(head.as_bytes()).unwrap();
    let r = read_response(&mut tls).unwrap();
    assert_eq!(r.status, 200);
    assert!(r
        .text()
        .contains("fazt_tls_handshakes_total{result=\"ok\"} 1"));
}

#[test]
fn fazt_deploy_reaches_an_https_fazt_with_a_self_signed_certificate_through_ca_file() {
    let server = Server::builder()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-self-signed")
        .start();
    let url = format!("https://localhost:{}", server.tls_addr.unwrap().port());
    let site = TempDir::new("tls-site");
    write_file(site.path(), "index.html", b"<h1>over https</h1>");
    let home = TempDir::new("tls-home");
    let pem = server.data.path().join("tls-self-signed.pem");
    let deploy = |extra: &[&str], env: &[(&str, &str)]| {
        let mut args = vec!["deploy", s(site.path()), "--site", "blog", "--server", &url];
        args.extend_from_slice(&["--token", &server.token]);
        args.extend_from_slice(extra);
        run_client(&args, home.path(), env)
    };
    // Without the certificate trusted, the client refuses the server.
    let (code, out, err) = deploy(&[], &[]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("certificate"), "{err}");
    let (code, out, err) = deploy(&["--ca-file", s(&pem)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("https://blog.localhost:"), "{out}");
    let (code, out, err) = deploy(&[], &[("FAZT_CA_FILE", s(&pem))]);
    assert_eq!(code, 0, "{out}{err}");
    let mut tls = connect_tls(&server, "blog.localhost");
    assert_eq!(
        get_over(&mut tls, "blog.localhost", "/").text(),
        "<h1>over https</h1>"
    );
    // A file that is no certificate is named in the error.
    let (code, _, err) = deploy(&["--ca-file", s(&site.path().join("index.html"))], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("--ca-file") && err.contains("index.html"),
        "{err}"
    );
}

#[test]
fn a_tls_connection_past_its_client_share_is_closed_without_a_plain_answer() {
    let (server, _dir, _) = localhost_server(&[("FAZT_CONNS_PER_CLIENT", "2")]);
    let held: Vec<Tls> = (0..2).map(|_| connect_tls(&server, "localhost")).collect();
    // The reset may even come before connect() returns: that is a close too.
    let mut got = Vec::new();
    if let Ok(mut raw) = TcpStream::connect(server.tls_addr.unwrap()) {
        raw.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = raw.read_to_end(&mut got);
    }
    assert!(
        !got.starts_with(b"HTTP/"),
        "no plain HTTP on the TLS port: {}",
        String::from_utf8_lossy(&got)
    );
    assert!(handshake(server.tls_addr.unwrap(), "localhost", any_cert_config()).is_err());
    drop(held);
    let over_share = || try_metric(&server, "fazt_connections_over_share_total");
    assert!(eventually(Duration::from_secs(5), || over_share() >= Some(2)));
}

#[test]
fn the_admin_listener_speaks_tls_with_admin_tls() {
    let dir = TempDir::new("tls-admin");
    let (cert, key, der) = make_cert(dir.path(), "local", &["localhost", "*.localhost"]);
    let server = Server::builder()
        .admin_listener()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-cert")
        .arg(s(&cert))
        .arg("--tls-key")
        .arg(s(&key))
        .arg("--admin-tls")
        .start();
    let admin = server.admin_addr.unwrap();
    let mut tls = handshake(admin, "localhost", any_cert_config()).expect("TLS on the admin port");
    assert_eq!(served_cert(&tls), der);
    let head = format!(
        "GET /api/system/health HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    );
    tls.write_all(head.as_bytes()).unwrap();
    let r = read_response(&mut tls).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("strict-transport-security"), Some("max-age=86400"));
    // Plain http is not spoken there any more.
    let mut plain = connect(admin);
    plain
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let _ = plain.read_to_end(&mut got);
    assert!(
        !got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    // --admin-tls without an admin listener is a start-up error.
    let data = dir.path().join("data");
    let (code, _, err) = run_cli(
        &[
            "server",
            "start",
            "--listen",
            "127.0.0.1:0",
            "--data",
            s(&data),
            "--tls-listen",
            "127.0.0.1:0",
            "--tls-self-signed",
            "--admin-tls",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--admin-listen"), "{err}");
}

#[test]
fn a_large_upload_over_tls_is_received_whole() {
    let (server, _dir, _) = localhost_server(&[]);
    let big = Rng(11).bytes(5 << 20);
    let zip = zips::zip_of(
        &[("index.html", b"hi"), ("big.bin", &big)],
        zip::CompressionMethod::Stored,
    );
    let head = format!(
        "POST /api/deploy?site=up HTTP/1.1\r\nHost: admin.localhost\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/zip\r\n\
         Content-Length: {}\r\n\r\n",
        server.token,
        zip.len()
    );
    let mut tls = connect_tls(&server, "admin.localhost");
    tls.sock
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    tls.write_all(head.as_bytes()).unwrap();
    tls.write_all(&zip).unwrap();
    let r = read_response(&mut tls).unwrap();
    assert!((200..300).contains(&r.status), "{}", r.text());
    let r = get_over(&mut tls, "up.localhost", "/big.bin");
    assert_eq!(sha256_hex(&r.body), sha256_hex(&big));
}

/// Dashboard sessions over TLS (issue #13): the cookie is `Secure`, and a session lives in
/// the database, so a restart keeps it.
#[test]
fn a_session_cookie_over_tls_is_secure_and_survives_a_restart() {
    let tls_args = |b: ServerBuilder| {
        b.arg("--tls-listen")
            .arg("127.0.0.1:0")
            .arg("--tls-self-signed")
    };
    let mut server = tls_args(Server::builder()).start();
    let data = server.data.path().to_path_buf();
    assert_eq!(
        set_password(&server, "owner", "correct horse battery", &[]).0,
        0
    );

    let body = r#"{"username":"owner","password":"correct horse battery","remember":true}"#;
    let mut tls = connect_tls(&server, "localhost");
    write!(
        tls,
        "POST /api/login HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let signed_in = read_response(&mut tls).unwrap();
    assert_eq!(signed_in.status, 200, "{}", signed_in.text());
    let set = signed_in.header("set-cookie").unwrap().to_string();
    assert!(
        set.ends_with("; Secure") && set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();

    assert_eq!(server.terminate().code(), Some(0));
    let again = tls_args(Server::builder())
        .arg("--data")
        .arg(s(&data))
        .start();
    let me = send(
        &again,
        "GET",
        "localhost",
        "/api/session",
        &[("Cookie", &cookie)],
        b"",
    );
    assert_eq!(
        me.status,
        200,
        "the session outlived the restart: {}",
        me.text()
    );
    assert_eq!(me.json()["username"], "owner");
}

fn metric(server: &Server, series: &str) -> u64 {
    metric_value(server, series).unwrap_or_else(|| panic!("{series} is not in /metrics"))
}
