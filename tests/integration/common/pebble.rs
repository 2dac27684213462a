//! Pebble, the ACME test server from Debian's `pebble` package, with its mock DNS
//! `pebble-challtestsrv` answering every name with 127.0.0.1, and real validation (never
//! the always-valid mode): Pebble connects to `http_port` for HTTP-01 and `tls_port` for
//! TLS-ALPN-01 on 127.0.0.1. Who answers there is the test's choice: responders in this
//! process (`acme.rs`), or the real fazt's listeners (`acme_server.rs`).
//!
//! Tests skip with a printed reason when Pebble is not installed (scripts/test.sh
//! installs it).

use super::TempDir;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// A port free on 127.0.0.1 for TCP and UDP at the time of the call.
pub fn free_port() -> u16 {
    for _ in 0..50 {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both TCP and UDP");
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Pebble is needed; says why the test `test` (its module path) did nothing when it is
/// missing.
pub fn pebble_missing(test: &str) -> bool {
    let missing = !installed("pebble") || !installed("pebble-challtestsrv");
    if missing {
        eprintln!("SKIP {test}: pebble is not installed (apt-get install pebble)");
    }
    missing
}

/// Unix seconds now.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A child process killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_listening(addr: SocketAddr, what: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "{what} is not listening on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The test CA Pebble's own https endpoints are served under, made here (the Debian package
/// ships no test certificate).
pub struct TestCa {
    pub roots: rustls::RootCertStore,
    /// The CA certificate, PEM, as a file: what `--acme-ca-file` is given.
    pub ca_file: PathBuf,
    /// The https certificate (for localhost and 127.0.0.1) and its key, PEM.
    pub cert_pem: String,
    pub key_pem: String,
}

/// Makes a CA and an https certificate it signs, written as `ca.pem`, `cert.pem` and
/// `key.pem` into `dir`.
pub fn make_ca(dir: &Path) -> TestCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fazt test CA for pebble");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, ca_cert.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    TestCa {
        roots,
        ca_file,
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// How a Pebble is started.
pub struct PebbleOptions {
    /// Where Pebble connects (on 127.0.0.1) to validate HTTP-01 challenges.
    pub http_port: u16,
    /// Where Pebble connects to validate TLS-ALPN-01 challenges.
    pub tls_port: u16,
    /// The lifetime of the certificates it issues.
    pub validity_secs: u64,
    /// Names it refuses with `rejectedIdentifier` (a domain and its subdomains).
    pub blocklist: Vec<String>,
}

impl Default for PebbleOptions {
    /// Free validation ports, 90-day certificates, `blocked.example` refused.
    fn default() -> PebbleOptions {
        PebbleOptions {
            http_port: free_port(),
            tls_port: free_port(),
            validity_secs: 90 * 86_400,
            blocklist: vec!["blocked.example".into()],
        }
    }
}

/// Pebble and its mock DNS, killed on drop.
pub struct Pebble {
    _dir: TempDir,
    pebble: Option<Proc>,
    _dns: Proc,
    /// The ACME directory URL.
    pub directory: String,
    pub management: SocketAddr,
    /// `pebble-challtestsrv`'s management API (plain http).
    dns_management: SocketAddr,
    /// The CA of Pebble's own https (not the one it issues under: see `issuing_root`).
    pub ca: TestCa,
    pub http_port: u16,
    pub tls_port: u16,
}

impl Pebble {
    pub fn start(options: &PebbleOptions) -> Pebble {
        let dir = TempDir::new("pebble");
        let ca = make_ca(dir.path());
        let (listen, management, dns, dns_management) =
            (free_port(), free_port(), free_port(), free_port());
        let config = serde_json::json!({ "pebble": {
            "listenAddress": format!("127.0.0.1:{listen}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.path().join("cert.pem"),
            "privateKey": dir.path().join("key.pem"),
            "httpPort": options.http_port,
            "tlsPort": options.tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "domainBlocklist": options.blocklist,
            "certificateValidityPeriod": options.validity_secs,
        }});
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();

        let mut dns_child = Command::new("pebble-challtestsrv")
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        wait_listening(
            ([127, 0, 0, 1], dns_management).into(),
            "pebble-challtestsrv",
            &mut dns_child,
        );
        let dns_proc = Proc(dns_child);

        let log = std::fs::File::create(dir.path().join("pebble.log")).unwrap();
        let mut child = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // Real validation, without Pebble's random sleeps before it, and no random
            // badNonce refusals (their single retry is covered by the unit tests' shape;
            // a 5 % rate twice in a row would make this test flaky).
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .env_remove("PEBBLE_VA_ALWAYS_VALID")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start pebble");
        wait_listening(([127, 0, 0, 1], listen).into(), "pebble", &mut child);
        Pebble {
            _dir: dir,
            pebble: Some(Proc(child)),
            _dns: dns_proc,
            directory: format!("https://127.0.0.1:{listen}/dir"),
            management: ([127, 0, 0, 1], management).into(),
            dns_management: ([127, 0, 0, 1], dns_management).into(),
            ca,
            http_port: options.http_port,
            tls_port: options.tls_port,
        }
    }

    /// What Pebble logged (its requests, validations and errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("pebble.log")).unwrap_or_default()
    }

    /// Makes the mock DNS answer `host` with `ip` instead of 127.0.0.1: a name whose DNS
    /// does not point at the server, so the CA's validation of it fails.
    pub fn resolve(&self, host: &str, ip: &str) {
        let body = serde_json::json!({ "host": host, "addresses": [ip] }).to_string();
        let request = format!(
            "POST /add-a HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let r = super::raw_request(self.dns_management, request);
        assert_eq!(r.status, 200, "add-a {host}: {}", r.text());
    }

    /// Kills Pebble (the DNS stays): the CA is down.
    pub fn stop(&mut self) {
        self.pebble.take();
    }

    /// Pebble's issuing root (its management port's `/roots/0`), to verify chains with.
    pub fn issuing_root(&self) -> CertificateDer<'static> {
        let body = https_get(&self.ca.roots, self.management, "/roots/0");
        let pem = String::from_utf8(body).unwrap();
        pem_chain(&pem).remove(0)
    }
}

/// One HTTP/1.0 GET over TLS (Go answers 1.0 without chunking), the body.
pub fn https_get(roots: &rustls::RootCertStore, addr: SocketAddr, path: &str) -> Vec<u8> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let session = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let socket = TcpStream::connect(addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut tls = rustls::StreamOwned::new(session, socket);
    write!(tls, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    // Go closes without close_notify after HTTP/1.0: read to the end, tolerating that.
    let _ = tls.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head")
        + 4;
    assert!(raw.starts_with(b"HTTP/1.0 200") || raw.starts_with(b"HTTP/1.1 200"));
    raw.split_off(split)
}

/// Verifies the DER `chain` (leaf first) for `name` against `root` as a TLS client
/// would, and checks that it does not verify for another name.
pub fn verify_chain_der(chain: &[CertificateDer<'_>], name: &str, root: CertificateDer<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(root).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    verifier
        .verify_server_cert(
            &chain[0],
            &chain[1..],
            &ServerName::try_from(name.to_string()).unwrap(),
            &[],
            UnixTime::now(),
        )
        .unwrap_or_else(|e| panic!("the chain for {name} does not verify: {e}"));
    assert!(
        verifier
            .verify_server_cert(
                &chain[0],
                &chain[1..],
                &ServerName::try_from("other.example").unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_err(),
        "the certificate for {name} is valid for other names too"
    );
}

/// [`verify_chain_der`] for a PEM chain.
pub fn verify_chain(chain_pem: &str, name: &str, root: CertificateDer<'static>) {
    let chain = pem_chain(chain_pem);
    verify_chain_der(&chain, name, root);
}

/// The certificates of a PEM text, in order.
pub fn pem_chain(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .map(|c| c.expect("a PEM certificate"))
        .collect()
}
