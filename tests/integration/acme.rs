//! The ACME client (`fazt::acme`) against Pebble, the ACME test server from Debian's
//! `pebble` package (harness: `common::pebble`), with real validation: `pebble-challtestsrv`
//! answers every name with 127.0.0.1, and Pebble's validation ports are small responders
//! here that answer from the client's `Challenges` store (HTTP-01 over plain HTTP,
//! TLS-ALPN-01 over rustls). `acme_server.rs` drives the same through the real binary.
//! Tests skip with a printed reason when Pebble is not installed (scripts/test.sh installs
//! it).

use crate::common::pebble::{
    free_port, make_ca, now, pebble_missing, verify_chain, Pebble, PebbleOptions, TestCa,
};
use crate::common::*;
use fazt::acme::{self, store, AcmeConfig, AcmeError, Attempt, ChallengeKind, Challenges};
use fazt::db::{self, writer};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// HTTP-01 and TLS-ALPN-01 responders on Pebble's validation ports, fed from `Challenges`.
struct Responders {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Responders {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Accepts on `listener` until `stop`, handing each connection to `serve` (bounded by the
/// flag: the listener is non-blocking and polled).
fn accept_loop(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    serve: impl Fn(TcpStream) + Send + 'static,
) -> JoinHandle<()> {
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    stream.set_nonblocking(false).unwrap();
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .unwrap();
                    serve(stream);
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    })
}

fn serve_http01(mut stream: TcpStream, challenges: &Challenges) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split(' ').nth(1).unwrap_or("");
    let answer = match challenges.http_answer_for_path(path) {
        Some(body) => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        ),
        None => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    let _ = stream.write_all(answer.as_bytes());
}

/// Answers a ClientHello offering `acme-tls/1` with the pending challenge certificate for
/// its SNI name, as the TLS listener will.
struct AlpnResolver(Arc<Challenges>);

impl std::fmt::Debug for AlpnResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AlpnResolver")
    }
}

impl rustls::server::ResolvesServerCert for AlpnResolver {
    fn resolve(
        &self,
        hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        let offers_acme = hello
            .alpn()
            .is_some_and(|mut protocols| protocols.any(|p| p == acme::challenge::ACME_TLS_ALPN));
        if !offers_acme {
            return None;
        }
        self.0.tls_alpn_cert(hello.server_name()?)
    }
}

fn serve_tls_alpn(stream: TcpStream, config: &Arc<rustls::ServerConfig>) {
    let mut stream = stream;
    let Ok(mut session) = rustls::ServerConnection::new(Arc::clone(config)) else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while session.is_handshaking() && Instant::now() < deadline {
        if session.complete_io(&mut stream).is_err() {
            return;
        }
    }
    // RFC 8737 §3: the validation ends after the handshake.
    session.send_close_notify();
    let _ = session.complete_io(&mut stream);
}

fn start_responders(http_port: u16, tls_port: u16, challenges: &Arc<Challenges>) -> Responders {
    let stop = Arc::new(AtomicBool::new(false));
    let http = TcpListener::bind(("127.0.0.1", http_port)).unwrap();
    let store = Arc::clone(challenges);
    let mut threads = vec![accept_loop(http, Arc::clone(&stop), move |s| {
        serve_http01(s, &store)
    })];
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(AlpnResolver(Arc::clone(challenges))));
    config.alpn_protocols = vec![acme::challenge::ACME_TLS_ALPN.to_vec()];
    let config = Arc::new(config);
    let tls = TcpListener::bind(("127.0.0.1", tls_port)).unwrap();
    threads.push(accept_loop(tls, Arc::clone(&stop), move |s| {
        serve_tls_alpn(s, &config)
    }));
    Responders { stop, threads }
}

/// Pebble with the responders of this process on its validation ports.
struct LocalPebble {
    pebble: Pebble,
    challenges: Arc<Challenges>,
    _responders: Responders,
}

impl LocalPebble {
    fn start() -> LocalPebble {
        LocalPebble::start_with_validity(90 * 86_400)
    }

    /// Pebble issuing certificates valid for `validity_secs`.
    fn start_with_validity(validity_secs: u64) -> LocalPebble {
        let options = PebbleOptions {
            validity_secs,
            ..PebbleOptions::default()
        };
        let challenges = Challenges::new();
        let responders = start_responders(options.http_port, options.tls_port, &challenges);
        LocalPebble {
            pebble: Pebble::start(&options),
            challenges,
            _responders: responders,
        }
    }

    fn config(&self) -> AcmeConfig {
        let mut config = AcmeConfig::with_roots(&self.directory, self.ca.roots.clone()).unwrap();
        config.email = Some("admin@fazt.example".into());
        config.poll.max_wait = Duration::from_millis(200);
        config.poll.default_wait = Duration::from_millis(100);
        config
    }
}

impl Deref for LocalPebble {
    type Target = Pebble;
    fn deref(&self) -> &Pebble {
        &self.pebble
    }
}

impl DerefMut for LocalPebble {
    fn deref_mut(&mut self) -> &mut Pebble {
        &mut self.pebble
    }
}

/// A migrated database with a running writer and a read connection.
struct Db {
    dir: TempDir,
    writer: writer::WriterHandle,
    thread: Option<writer::WriterThread>,
    reader: rusqlite::Connection,
}

impl Db {
    fn open() -> Db {
        let dir = TempDir::new("acme-db");
        let limits = probe_limits(dir.path(), &[MEMORY_LIMIT_256_MIB]);
        let conn = db::open_and_migrate(&dir.db(), &limits).unwrap();
        let (writer, thread) = writer::spawn(conn, 16).unwrap();
        let reader = db::open_read(&dir.db(), &limits).unwrap();
        Db {
            dir,
            writer,
            thread: Some(thread),
            reader,
        }
    }
}

impl Drop for Db {
    fn drop(&mut self) {
        self.writer.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let _ = &self.dir;
    }
}

#[test]
fn certificates_over_http01_and_tls_alpn01_verify_against_pebbles_root() {
    if pebble_missing("acme::certificates_over_http01_and_tls_alpn01_verify_against_pebbles_root") {
        return;
    }
    let pebble = LocalPebble::start();
    let db = Db::open();
    let config = pebble.config();
    let attempt = Attempt {
        config: &config,
        writer: &db.writer,
        reader: &db.reader,
        challenges: &pebble.challenges,
        now: now(),
    };
    let root = pebble.issuing_root();
    for (name, kind) in [
        ("fazt.example", ChallengeKind::Http01),
        ("blog.fazt.example", ChallengeKind::TlsAlpn01),
    ] {
        let record = acme::obtain(&attempt, name, kind)
            .unwrap_or_else(|e| panic!("{name} over {kind:?}: {e}"));
        let chain = record.chain_pem.as_deref().expect("a chain");
        verify_chain(chain, name, root.clone());
        // What the TLS store will serve: the key belongs to the leaf.
        let served = record.certified_key().unwrap();
        assert_eq!(served.cert, acme::der::chain_der(chain).unwrap());
        assert_eq!(record.failures, 0);
        assert_eq!(record.last_error, None);
        let (not_before, not_after) = (record.not_before.unwrap(), record.not_after.unwrap());
        let renew = acme::schedule::renew_at(not_before, not_after);
        assert!(record.next_attempt <= renew && record.next_attempt > attempt.now);
        // What the writer stored is what the reader reads.
        assert_eq!(store::load_cert(&db.reader, name).unwrap(), Some(record));
    }
    assert!(
        pebble.challenges.is_empty(),
        "answers are withdrawn after validation"
    );
    // One account, made once, reused for the second order.
    let account = store::load_account(&db.reader, &pebble.directory)
        .unwrap()
        .expect("the account is stored");
    assert!(account.account_url.starts_with("https://127.0.0.1:"));
    assert!(account.key_pem.contains("PRIVATE KEY"));
}

#[test]
fn a_down_or_refusing_ca_keeps_the_old_certificate_and_backs_off() {
    if pebble_missing("acme::a_down_or_refusing_ca_keeps_the_old_certificate_and_backs_off") {
        return;
    }
    let mut pebble = LocalPebble::start();
    let db = Db::open();
    let config = pebble.config();
    let t0 = now();
    let challenges = Arc::clone(&pebble.challenges);
    let at = |now| Attempt {
        config: &config,
        writer: &db.writer,
        reader: &db.reader,
        challenges: &challenges,
        now,
    };
    let held = acme::obtain(&at(t0), "keep.fazt.example", ChallengeKind::Http01).unwrap();

    // The CA refuses a name with a problem document: typed, with its type.
    let err = acme::obtain(&at(t0), "blocked.example", ChallengeKind::Http01).unwrap_err();
    match &err {
        AcmeError::Problem { kind, .. } => {
            assert_eq!(
                kind, "urn:ietf:params:acme:error:rejectedIdentifier",
                "{err}"
            )
        }
        other => panic!("expected a problem document, got {other:?}"),
    }
    let refused = store::load_cert(&db.reader, "blocked.example")
        .unwrap()
        .unwrap();
    assert_eq!(refused.chain_pem, None, "nothing stored as a certificate");
    assert!(refused.last_error.unwrap().contains("rejectedIdentifier"));

    // The CA goes down: the held certificate stays, the error and the backoff are recorded.
    pebble.stop();
    let err = acme::obtain(&at(t0 + 10), "keep.fazt.example", ChallengeKind::Http01).unwrap_err();
    assert!(matches!(err, AcmeError::Unreachable(_)), "{err:?}");
    let after = store::load_cert(&db.reader, "keep.fazt.example")
        .unwrap()
        .unwrap();
    assert_eq!(
        after.chain_pem, held.chain_pem,
        "the old certificate is kept"
    );
    assert_eq!(after.key_pem, held.key_pem);
    assert_eq!(after.not_after, held.not_after);
    assert_eq!(after.issued_at, held.issued_at);
    assert_eq!(after.failures, 1);
    assert_eq!(after.last_attempt, Some(t0 + 10));
    assert!(after.last_error.as_deref().unwrap().contains("unreachable"));
    assert!(
        (t0 + 10 + 60..=t0 + 10 + 66).contains(&after.next_attempt),
        "{after:?}"
    );

    // Trying again too soon doubles the wait.
    acme::obtain(&at(t0 + 80), "keep.fazt.example", ChallengeKind::Http01).unwrap_err();
    let again = store::load_cert(&db.reader, "keep.fazt.example")
        .unwrap()
        .unwrap();
    assert_eq!(again.failures, 2);
    assert!(
        (t0 + 80 + 120..=t0 + 80 + 132).contains(&again.next_attempt),
        "{again:?}"
    );
    assert_eq!(again.chain_pem, held.chain_pem);
}

#[test]
fn a_wrong_directory_url_is_a_typed_error_and_stores_no_certificate() {
    // No Pebble needed: nothing listens on the port.
    let db = Db::open();
    let port = free_port();
    let config = AcmeConfig::new(&format!("https://127.0.0.1:{port}/directory")).unwrap();
    let challenges = Challenges::new();
    let t0 = now();
    let attempt = Attempt {
        config: &config,
        writer: &db.writer,
        reader: &db.reader,
        challenges: &challenges,
        now: t0,
    };
    let err = acme::obtain(&attempt, "new.fazt.example", ChallengeKind::TlsAlpn01).unwrap_err();
    assert!(matches!(err, AcmeError::Unreachable(_)), "{err:?}");
    let record = store::load_cert(&db.reader, "new.fazt.example")
        .unwrap()
        .unwrap();
    assert_eq!((record.chain_pem, record.key_pem), (None, None));
    assert_eq!(record.failures, 1);
    assert!((t0 + 60..=t0 + 66).contains(&record.next_attempt));
    assert!(store::load_account(&db.reader, &config.directory_url)
        .unwrap()
        .is_none());
    // A plain-http directory is refused before any connection.
    let config = AcmeConfig::new("http://127.0.0.1:1/directory").unwrap();
    let attempt = Attempt {
        config: &config,
        ..attempt
    };
    assert!(matches!(
        acme::obtain(&attempt, "x.fazt.example", ChallengeKind::Http01),
        Err(AcmeError::Protocol(_))
    ));
}

#[test]
fn certificate_records_round_trip_through_the_writer() {
    let db = Db::open();
    let t0 = 1_800_000_000;
    store::want(&db.writer, "Site.Fazt.Example", t0).unwrap();
    store::want(&db.writer, "later.fazt.example", t0).unwrap();
    let fresh = store::load_cert(&db.reader, "site.fazt.example")
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            fresh.chain_pem.as_deref(),
            fresh.failures,
            fresh.next_attempt
        ),
        (None, 0, t0)
    );
    assert_eq!(
        store::due_names(&db.reader, t0, 10).unwrap(),
        ["later.fazt.example", "site.fazt.example"]
    );
    assert!(store::due_names(&db.reader, t0 - 1, 10).unwrap().is_empty());

    // A certificate made here stands in for an issued one.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["site.fazt.example".to_string()]).unwrap();
    params.not_before = rcgen::date_time_ymd(2027, 1, 1);
    params.not_after = rcgen::date_time_ymd(2027, 4, 1);
    let cert = params.self_signed(&key).unwrap();
    let (not_before, not_after) = acme::der::leaf_validity(&cert.pem()).unwrap();
    let issued = acme::Issued {
        name: "site.fazt.example".into(),
        chain_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        not_before,
        not_after,
    };
    let saved = store::save_issued(&db.writer, &issued, t0, 0).unwrap();
    assert_eq!(
        saved.next_attempt,
        not_after - 30 * 86_400,
        "random 0: no jitter"
    );
    assert_eq!(
        store::load_cert(&db.reader, "site.fazt.example").unwrap(),
        Some(saved.clone())
    );
    assert_eq!(
        store::due_names(&db.reader, t0, 10).unwrap(),
        ["later.fazt.example"]
    );
    // `want` leaves a known name alone.
    store::want(&db.writer, "site.fazt.example", t0 + 5).unwrap();
    assert_eq!(
        store::load_cert(&db.reader, "site.fazt.example").unwrap(),
        Some(saved.clone())
    );
    // The key stays out of Debug output, and leaves only as a CertifiedKey.
    assert!(!format!("{saved:?}").contains("PRIVATE KEY"));
    assert_eq!(saved.certified_key().unwrap().cert[0], *cert.der());
    let mut other_key = saved.clone();
    other_key.key_pem = Some(rcgen::KeyPair::generate().unwrap().serialize_pem());
    assert!(
        other_key.certified_key().is_err(),
        "a key that is not the leaf's"
    );
    assert!(fresh.certified_key().is_err(), "no certificate yet");

    let account = store::AccountRecord {
        directory_url: "https://ca.example/dir".into(),
        key_pem: "key".into(),
        account_url: "https://ca.example/acct/1".into(),
        created_at: t0,
    };
    store::save_account(&db.writer, account).unwrap();
    let read = store::load_account(&db.reader, "https://ca.example/dir")
        .unwrap()
        .unwrap();
    assert_eq!(
        (read.account_url.as_str(), read.key_pem.as_str()),
        ("https://ca.example/acct/1", "key")
    );

    let names: Vec<_> = store::list_certs(&db.reader)
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["later.fazt.example", "site.fazt.example"]);
    assert!(store::forget(&db.writer, "site.fazt.example").unwrap());
    assert!(!store::forget(&db.writer, "site.fazt.example").unwrap());
    assert_eq!(
        store::load_cert(&db.reader, "site.fazt.example").unwrap(),
        None
    );
}

/// A scripted CA: answers the directory and newNonce, and each POST with the next of
/// `answers` (status, body); records the nonce each POST was signed with.
struct FakeCa {
    url: String,
    seen_nonces: Arc<parking_lot::Mutex<Vec<String>>>,
    _stop: Responders,
}

fn fake_ca(ca: &TestCa, answers: Vec<(u16, &'static str)>) -> FakeCa {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let certs = acme::der::chain_der(&ca.cert_pem).unwrap();
    let key = PrivateKeyDer::from_pem_slice(ca.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let answers = Arc::new(parking_lot::Mutex::new(answers.into_iter()));
    let stop = Arc::new(AtomicBool::new(false));
    let (seen2, base2) = (Arc::clone(&seen), base.clone());
    let thread = accept_loop(listener, Arc::clone(&stop), move |socket| {
        let session = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
        let mut tls = rustls::StreamOwned::new(session, socket);
        let mut raw = Vec::new();
        let mut buf = [0u8; 4096];
        let (head, body) = loop {
            if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..end]).to_string();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if raw.len() >= end + 4 + len {
                    break (head, raw[end + 4..end + 4 + len].to_vec());
                }
            }
            match tls.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        };
        let (status, text) = if head.starts_with("GET /dir ") {
            let dir = serde_json::json!({
                "newNonce": format!("{base2}/nonce"),
                "newAccount": format!("{base2}/acct"),
                "newOrder": format!("{base2}/order"),
            });
            (200, dir.to_string())
        } else if head.starts_with("HEAD /nonce ") {
            (200, String::new())
        } else {
            let jws: serde_json::Value = serde_json::from_slice(&body).unwrap();
            let protected = base64_url_decode(jws["protected"].as_str().unwrap());
            let protected: serde_json::Value = serde_json::from_slice(&protected).unwrap();
            seen2
                .lock()
                .push(protected["nonce"].as_str().unwrap().to_string());
            let (status, text) = answers.lock().next().expect("a scripted answer");
            (status, text.to_string())
        };
        // A fresh nonce per answer: the number of POSTs seen so far, plus one.
        let next_nonce = format!("nonce-{}", seen2.lock().len() + 1);
        let length = if head.starts_with("HEAD") {
            0
        } else {
            text.len()
        };
        let answer = format!(
            "HTTP/1.1 {status} X\r\nReplay-Nonce: {next_nonce}\r\n\
                 Location: {base2}/acct/1\r\nContent-Length: {length}\r\n\
                 Connection: close\r\n\r\n{text}"
        );
        let _ = tls.write_all(answer.as_bytes());
        tls.conn.send_close_notify();
        let _ = tls.flush();
    });
    FakeCa {
        url: format!("{base}/dir"),
        seen_nonces: seen,
        _stop: Responders {
            stop,
            threads: vec![thread],
        },
    }
}

fn base64_url_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

const BAD_NONCE: &str = r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"JWS has an invalid anti-replay nonce"}"#;

#[test]
fn a_bad_nonce_is_retried_once_with_the_nonce_the_refusal_carried() {
    let dir = TempDir::new("fake-ca");
    let ca = make_ca(dir.path());
    let fake = fake_ca(&ca, vec![(400, BAD_NONCE), (201, r#"{"status":"valid"}"#)]);
    let config = AcmeConfig::with_roots(&fake.url, ca.roots.clone()).unwrap();
    let key = acme::jws::AccountKey::generate().unwrap();
    let mut client = acme::AcmeClient::connect(config, key).unwrap();
    let account = client.account().unwrap();
    assert!(account.ends_with("/acct/1"), "{account}");
    // The first POST used newNonce's nonce; the retry the one the refusal carried.
    assert_eq!(*fake.seen_nonces.lock(), ["nonce-1", "nonce-2"]);

    // Refused twice: no third try, the CA's problem document comes back.
    let fake = fake_ca(&ca, vec![(400, BAD_NONCE), (400, BAD_NONCE)]);
    let config = AcmeConfig::with_roots(&fake.url, ca.roots.clone()).unwrap();
    let key = acme::jws::AccountKey::generate().unwrap();
    let mut client = acme::AcmeClient::connect(config, key).unwrap();
    match client.account().unwrap_err() {
        AcmeError::Problem {
            status,
            kind,
            detail,
        } => {
            assert_eq!(status, 400);
            assert_eq!(kind, "urn:ietf:params:acme:error:badNonce");
            assert!(detail.contains("anti-replay"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.seen_nonces.lock().len(), 2);
}

#[test]
fn an_account_the_ca_forgot_is_registered_again() {
    if pebble_missing("acme::an_account_the_ca_forgot_is_registered_again") {
        return;
    }
    let pebble = LocalPebble::start();
    let db = Db::open();
    // A key fazt holds, under an account URL this Pebble never issued (it keeps no state
    // across restarts, like a reset staging CA).
    let key = acme::jws::AccountKey::generate().unwrap();
    let stale = format!(
        "{}/my-account/999",
        pebble.directory.trim_end_matches("/dir")
    );
    let account = store::AccountRecord {
        directory_url: pebble.directory.clone(),
        key_pem: key.pem().to_string(),
        account_url: stale.clone(),
        created_at: 1,
    };
    store::save_account(&db.writer, account).unwrap();
    let config = pebble.config();
    let attempt = Attempt {
        config: &config,
        writer: &db.writer,
        reader: &db.reader,
        challenges: &pebble.challenges,
        now: now(),
    };
    let record = acme::obtain(&attempt, "again.fazt.example", ChallengeKind::Http01).unwrap();
    assert!(record.chain_pem.is_some());
    let account = store::load_account(&db.reader, &pebble.directory)
        .unwrap()
        .unwrap();
    assert_ne!(account.account_url, stale, "the new account URL is stored");
    assert_eq!(account.key_pem, key.pem(), "under the same key");
}

#[test]
fn due_names_are_renewed_and_deleted_ones_are_not() {
    if pebble_missing("acme::due_names_are_renewed_and_deleted_ones_are_not") {
        return;
    }
    // One-hour certificates: renewed at two-thirds of their lifetime.
    let pebble = LocalPebble::start_with_validity(3600);
    let db = Db::open();
    let config = pebble.config();
    let t0 = now();
    let challenges = Arc::clone(&pebble.challenges);
    let at = |now| Attempt {
        config: &config,
        writer: &db.writer,
        reader: &db.reader,
        challenges: &challenges,
        now,
    };
    let first = acme::obtain(&at(t0), "renew.fazt.example", ChallengeKind::Http01).unwrap();
    let (not_before, not_after) = (first.not_before.unwrap(), first.not_after.unwrap());
    assert!(
        (3590..=3610).contains(&(not_after - not_before)),
        "{first:?}"
    );
    let renew = not_before + (not_after - not_before) * 2 / 3;
    assert!(first.next_attempt <= renew + 1, "{first:?}");
    assert!(
        first.next_attempt >= renew - (renew - t0) / 10 - 1,
        "{first:?}"
    );

    store::want(&db.writer, "new.fazt.example", t0).unwrap();
    store::want(&db.writer, "gone.fazt.example", t0).unwrap();
    assert!(store::forget(&db.writer, "gone.fazt.example").unwrap());

    // Before the renewal time only the new name is due.
    let outcomes = acme::renew_due(&at(t0 + 1), ChallengeKind::TlsAlpn01, 10).unwrap();
    let names: Vec<_> = outcomes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["new.fazt.example"]);
    assert!(outcomes[0].1.is_ok(), "{:?}", outcomes[0].1);

    // At the renewal time, the certificate is replaced; the deleted name never comes up.
    // (new.fazt.example, issued a second later with a jittered schedule, may be due too.)
    let outcomes = acme::renew_due(&at(first.next_attempt), ChallengeKind::Http01, 10).unwrap();
    let names: Vec<_> = outcomes.iter().map(|(n, _)| n.as_str()).collect();
    assert!(names.contains(&"renew.fazt.example"), "{names:?}");
    assert!(!names.contains(&"gone.fazt.example"), "{names:?}");
    let renewed = outcomes
        .into_iter()
        .find(|(n, _)| n == "renew.fazt.example")
        .unwrap()
        .1
        .unwrap();
    assert_ne!(renewed.chain_pem, first.chain_pem);
    assert_ne!(
        renewed.key_pem, first.key_pem,
        "a new key with each certificate"
    );
    assert!(renewed.next_attempt > first.next_attempt);
    verify_chain(
        renewed.chain_pem.as_deref().unwrap(),
        "renew.fazt.example",
        pebble.issuing_root(),
    );
    assert!(
        acme::renew_due(&at(first.next_attempt), ChallengeKind::Http01, 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store::load_cert(&db.reader, "gone.fazt.example").unwrap(),
        None
    );
}
