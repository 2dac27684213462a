//! The admin thread never waits on the writer (DESIGN §1): with a writer job holding the
//! writer for seconds, readiness answers at once and writes answer when their job has run.

use super::*;
use crate::db::writer::WriterThread;
use crate::hosting::cache::SiteCache;
use crate::http::parse::{parse_head, HeadScanner, HeadStatus};
use crate::platform::probe::Report;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// How long the injected job holds the writer.
const SLOW_JOB: Duration = Duration::from_secs(3);
/// Generous bound for an answer that must not wait for the writer.
const AT_ONCE: Duration = Duration::from_secs(1);

/// An admin API over a fresh database, its writer, and an owner token. The test thread
/// plays the admin thread: it holds the read connection.
struct Fixture {
    api: AdminApi,
    writer: WriterHandle,
    writer_thread: Option<WriterThread>,
    token: String,
    dir: PathBuf,
}

impl Fixture {
    fn new(tag: &str, queue: usize) -> Fixture {
        let dir = std::env::temp_dir().join(format!("fazt-admin-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let probe = Report::collect(Path::new("/nonexistent"), &dir, &Default::default()).unwrap();
        let db = dir.join("fazt.db");
        let conn = crate::db::open_and_migrate(&db, &probe.limits).unwrap();
        let (_, token) = keys::create(&conn, "owner", &Scopes::owner()).unwrap();
        let (writer, writer_thread) = crate::db::writer::spawn(conn, queue).unwrap();
        crate::db::reader::install_reader(crate::db::open_read(&db, &probe.limits).unwrap());
        let ctx = AdminContext {
            started: Instant::now(),
            draining: Arc::new(AtomicBool::new(false)),
            public_cap: ConnCap::new(100),
            sites: Arc::new(SiteServer::new(SiteCache::new(1 << 20, 1 << 16))),
            writer: writer.clone(),
            disk: DiskGuard::new(vec![dir.clone()], 100),
            salts: Arc::new(SaltBook::default()),
            probe,
            retention: None,
            keep_deployments: 3,
            domain: "localhost".into(),
            url_base: crate::hosting::urls::UrlBase::listener(4698),
            proxies: Default::default(),
            auth: Arc::new(crate::keys::AuthGuard::new(10, Default::default())),
            certs: crate::http::tls::CertStore::new(),
            sockets: Arc::new(crate::admin::metrics::tests::NoSockets),
            backups: Default::default(),
            backup_schedule: None,
            acme: None,
            accounts: super::accounts::Accounts {
                hasher: crate::auth::password::Hasher::spawn(2).unwrap(),
                guard: Default::default(),
                policy: crate::auth::sessions::SessionPolicy {
                    idle: 3600,
                    remember: 86_400,
                },
                audit_retention: Duration::from_secs(86_400),
            },
        };
        Fixture {
            api: AdminApi::new(ctx),
            writer,
            writer_thread: Some(writer_thread),
            token,
            dir,
        }
    }

    fn request(&self, method: &str, path: &str, body: &str) -> Request {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\n\r\n",
            self.token,
            body.len()
        );
        let peer = "127.0.0.1:1".parse().unwrap();
        let Ok(HeadStatus::Complete { mut request, .. }) =
            parse_head(head.as_bytes(), &mut HeadScanner::default(), peer, false)
        else {
            panic!("test request did not parse: {head}");
        };
        request.body = body.as_bytes().to_vec();
        request
    }

    /// Handles a request; returns the immediate answer, or where the later one arrives.
    fn call(&mut self, method: &str, path: &str, body: &str) -> Answer {
        let request = self.request(method, path, body);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let reply: Reply = Box::new(move |response| {
            let _ = tx.send(response);
        });
        match self.api.handle(&request, reply) {
            Some(response) => Answer::Now(response),
            None => Answer::Later(rx),
        }
    }

    /// Occupies the writer with a job that sleeps for `hold`; returns once it is running,
    /// with the flag it sets when it ends.
    fn hold_writer(&self, hold: Duration) -> Arc<AtomicBool> {
        let (running_tx, running_rx) = crossbeam_channel::bounded(1);
        let ended = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ended);
        self.writer
            .try_submit(move |_| {
                let _ = running_tx.send(());
                std::thread::sleep(hold);
                flag.store(true, Ordering::SeqCst);
                Ok(())
            })
            .unwrap();
        running_rx.recv_timeout(AT_ONCE).unwrap();
        ended
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        crate::db::reader::drop_reader();
        self.writer.stop();
        if let Some(thread) = self.writer_thread.take() {
            let _ = thread.join();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

enum Answer {
    Now(Response),
    Later(Receiver<Response>),
}

fn json_of(response: &Response) -> serde_json::Value {
    match &response.body {
        Body::Owned(bytes) => serde_json::from_slice(bytes).unwrap(),
        _ => panic!("not a JSON body (status {})", response.status),
    }
}

#[test]
fn health_answers_at_once_while_a_write_waits_for_a_slow_job() {
    let mut fx = Fixture::new("slow-job", 16);
    let started = Instant::now();
    let job_ended = fx.hold_writer(SLOW_JOB);

    let Answer::Now(health) = fx.call("GET", "/api/system/health", "") else {
        panic!("readiness must answer at once");
    };
    assert_eq!(health.status, 200);
    assert_eq!(json_of(&health)["status"], "ok");
    assert!(
        started.elapsed() < AT_ONCE,
        "health took {:?}",
        started.elapsed()
    );

    let Answer::Later(created) = fx.call("POST", "/api/keys", r#"{"name":"ci"}"#) else {
        panic!("creating a key is a writer job, answered later");
    };
    assert!(
        started.elapsed() < AT_ONCE,
        "the admin thread waited for the writer"
    );
    // Reads stay served while the write is queued behind the slow job.
    let Answer::Now(listed) = fx.call("GET", "/api/keys", "") else {
        panic!("listing keys reads, never waits");
    };
    assert_eq!(json_of(&listed)["keys"].as_array().unwrap().len(), 1);
    assert!(started.elapsed() < AT_ONCE, "reads waited for the writer");
    assert!(created.try_recv().is_err(), "answered before its job ran");

    let response = created.recv_timeout(SLOW_JOB * 3).unwrap();
    assert!(
        job_ended.load(Ordering::SeqCst),
        "answered before the slow job ended"
    );
    assert_eq!(response.status, 201);
    let body = json_of(&response);
    assert_eq!(body["name"], "ci");
    assert!(body["token"].as_str().unwrap().starts_with("fzt_"));
    let Answer::Now(listed) = fx.call("GET", "/api/keys", "") else {
        panic!("listing keys reads, never waits");
    };
    assert_eq!(json_of(&listed)["keys"].as_array().unwrap().len(), 2);
}

#[test]
fn every_admin_write_is_answered_later_and_correctly() {
    let mut fx = Fixture::new("writes", 16);
    let cases: [(&str, &str, &str, u16); 7] = [
        (
            "POST",
            "/api/redirects",
            r#"{"slug":"a","url":"https://example.com/"}"#,
            200,
        ),
        ("DELETE", "/api/redirects/a", "", 200),
        ("DELETE", "/api/redirects/a", "", 404),
        (
            "POST",
            "/api/webhooks",
            r#"{"endpoint":"hook","secret":"s"}"#,
            200,
        ),
        ("DELETE", "/api/webhooks/hook", "", 200),
        ("POST", "/api/system/vacuum", "", 200),
        ("DELETE", "/api/keys/nosuchkey", "", 404),
    ];
    for (method, path, body, status) in cases {
        let Answer::Later(rx) = fx.call(method, path, body) else {
            panic!("{method} {path} must go to the writer");
        };
        let response = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(response.status, status, "{method} {path}");
    }
    // Refusals found before any write are answered at once.
    let Answer::Now(bad) = fx.call("POST", "/api/redirects", r#"{"slug":"a"}"#) else {
        panic!("a bad body never reaches the writer");
    };
    assert_eq!(bad.status, 400);
    let Answer::Now(system) = fx.call("DELETE", "/api/sites/root", "") else {
        panic!("system sites are refused at once");
    };
    assert_eq!(system.status, 403);
    let Answer::Later(rx) = fx.call("DELETE", "/api/sites/blog", "") else {
        panic!("deleting a site is a writer job");
    };
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap().status,
        404
    );
}

#[test]
fn a_full_writer_queue_is_503_at_once() {
    let mut fx = Fixture::new("queue-full", 1);
    let started = Instant::now();
    let _ended = fx.hold_writer(SLOW_JOB);
    // The writer is busy; this fills its one queue slot.
    fx.writer.try_submit(|_| Ok(())).unwrap();
    let Answer::Now(refused) = fx.call("POST", "/api/keys", r#"{"name":"x"}"#) else {
        panic!("a full queue is answered at once");
    };
    assert!(started.elapsed() < AT_ONCE, "the refusal waited");
    assert_eq!(refused.status, 503);
    assert_eq!(refused.get_header("retry-after"), Some("1"));
}

#[test]
fn a_panicking_job_is_answered_500() {
    let fx = Fixture::new("panic", 4);
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reply: Reply = Box::new(move |response| {
        let _ = tx.send(response);
    });
    let job = |_: &mut Connection| -> Result<(), DbError> { panic!("a bug in a job") };
    let answer = |result: Result<(), DbError>| match result {
        Ok(()) => Response::new(204),
        Err(e) => error_response(&e),
    };
    assert!(write_then(&fx.writer, reply, job, answer).is_none());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap().status,
        500
    );

    // A bug in building the answer still answers.
    let (tx, rx) = crossbeam_channel::bounded(1);
    let reply: Reply = Box::new(move |response| {
        let _ = tx.send(response);
    });
    let answer = |_: Result<(), DbError>| -> Response { panic!("a bug in an answer") };
    assert!(write_then(&fx.writer, reply, |_| Ok(()), answer).is_none());
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)).unwrap().status,
        500
    );
}

#[test]
fn salt_rotation_never_waits_for_the_writer() {
    let mut fx = Fixture::new("salt", 16);
    let started = Instant::now();
    let job_ended = fx.hold_writer(SLOW_JOB);
    fx.api.rotate_salt_if_new_day();
    assert!(
        started.elapsed() < AT_ONCE,
        "the tick waited for the writer"
    );
    assert_eq!(fx.api.ctx.salts.day(), None, "no salt before the job ran");
    let today = crate::analytics::event::day_of(crate::platform::clock::unix_now());
    let deadline = Instant::now() + SLOW_JOB * 3;
    while fx.api.ctx.salts.day() != Some(today) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        fx.api.rotate_salt_if_new_day();
    }
    assert!(job_ended.load(Ordering::SeqCst));
    assert_eq!(fx.api.ctx.salts.day(), Some(today));
}

/// A certificate for `name` valid from now for `secs`, as a file would give it.
fn cert_valid_for(name: &str, secs: i64) -> crate::http::tls::NamedCert {
    let now = crate::platform::clock::unix_now();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    let time = |unix: i64| rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(unix as u64);
    params.not_before = time(now - 60);
    params.not_after = time(now + secs);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let der = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    crate::http::tls::NamedCert {
        names: vec![name.to_string()],
        info: crate::http::tls::CertInfo::of(cert.der()).unwrap(),
        key: Arc::new(crate::http::tls::certified_key(vec![cert.der().clone()], &der).unwrap()),
    }
}

#[test]
fn certificates_are_listed_and_one_near_expiry_degrades_readiness() {
    use crate::http::tls::CertSource;
    let mut fx = Fixture::new("certs", 16);
    let Answer::Now(health) = fx.call("GET", "/api/system/health", "") else {
        panic!("health answers at once");
    };
    assert_eq!(json_of(&health)["status"], "ok");

    let soon = cert_valid_for("soon.example", 3 * 86_400 - 3600);
    let later = cert_valid_for("later.example", 60 * 86_400);
    fx.api
        .ctx
        .certs
        .replace_files(&[later, soon], CertSource::File);
    let Answer::Now(listed) = fx.call("GET", "/api/certs", "") else {
        panic!("the list answers at once");
    };
    let listed = json_of(&listed);
    assert_eq!(listed["acme"], serde_json::Value::Null);
    let names: Vec<_> = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["source"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("later.example", "file"), ("soon.example", "file")]);
    assert_eq!(
        listed["certificates"][1]["issuer"],
        "rcgen self signed cert"
    );

    let Answer::Now(health) = fx.call("GET", "/api/system/health", "") else {
        panic!("health answers at once");
    };
    assert_eq!(health.status, 200, "degraded is still ready");
    let health = json_of(&health);
    assert_eq!(health["status"], "degraded");
    let reasons = health["reasons"].to_string();
    assert!(
        reasons.contains("certificate for soon.example expires in 2 days"),
        "{reasons}"
    );
    assert!(!reasons.contains("later.example"), "{reasons}");
    let metrics = fx.api.ctx.certs.served().len();
    assert_eq!(metrics, 2);
}

#[test]
fn renewing_without_acme_is_a_conflict_that_says_how_to_turn_it_on() {
    let mut fx = Fixture::new("certs-off", 16);
    let Answer::Now(refused) = fx.call("POST", "/api/certs/example.com/renew", "") else {
        panic!("answered at once");
    };
    assert_eq!(refused.status, 409);
    assert!(json_of(&refused).to_string().contains("--acme-email"));
    let Answer::Now(wrong) = fx.call("GET", "/api/certs/example.com/renew", "") else {
        panic!("answered at once");
    };
    assert_eq!(wrong.status, 405);
    assert_eq!(wrong.get_header("allow"), Some("POST"));
}
