//! Crash loops (issue #16): analytics and deploy traffic, SIGKILL at a random moment,
//! restart; again and again on one data dir. After each kill the database passes its checks,
//! every event acknowledged longer than the flush window before the kill is stored, the site
//! serves one whole deployment (the last acknowledged one or a later one), and no temp file
//! is left. `FAZT_CRASH_ITERATIONS` changes the count (50).
use crate::common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The flush window the server is started with, and how much later than it an acknowledged
/// event must be stored (a commit on a busy debug build takes a while).
const FLUSH: Duration = Duration::from_millis(100);
const MARGIN: Duration = Duration::from_millis(900);
const FILES: usize = 4;

/// One request; the status, or `None` when the connection failed (the server was killed).
fn try_send(addr: SocketAddr, head: &str, body: &[u8]) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body).ok()?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).ok()?;
    let status = answer.get(9..12)?;
    std::str::from_utf8(status).ok()?.parse().ok()
}

fn track_event(addr: SocketAddr, path: &str) -> Option<u16> {
    let body = serde_json::json!({"h": "crash.test", "p": path}).to_string();
    let head = format!(
        "POST /track HTTP/1.1\r\nHost: collector.test\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    try_send(addr, &head, body.as_bytes())
}

/// Version `v` of the site: every file says which version it belongs to.
fn version(v: u64) -> Vec<(String, Vec<u8>)> {
    (0..FILES)
        .map(|i| {
            (
                format!("f{i}.txt"),
                format!("v{v} {}", "x".repeat(i * 3000)).into_bytes(),
            )
        })
        .collect()
}

fn deploy(addr: SocketAddr, token: &str, v: u64) -> Option<u16> {
    let files = version(v);
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), &b[..])).collect();
    let zip = zips::zip_of(&files, zip::CompressionMethod::Deflated);
    let head = format!(
        "POST /api/deploy?site=crash HTTP/1.1\r\nHost: admin.localhost\r\n\
         Authorization: Bearer {token}\r\nContent-Type: application/zip\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        zip.len()
    );
    try_send(addr, &head, &zip)
}

/// What one round of traffic had acknowledged when the server was killed.
#[derive(Default)]
struct Acked {
    events: Vec<(String, Instant)>,
    deployed: u64,
}

fn traffic(
    server: &Server,
    round: usize,
    first: u64,
    stop: &Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Acked>> {
    let addr = server.addr;
    let token = server.token.clone();
    let events = {
        let stop = Arc::clone(stop);
        std::thread::spawn(move || {
            let mut acked = Acked::default();
            for n in 0.. {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let path = format!("/e/{round}/{n}");
                match track_event(addr, &path) {
                    Some(204) => acked.events.push((path, Instant::now())),
                    Some(status) => panic!("/track answered {status}"),
                    None => break,
                }
            }
            acked
        })
    };
    let deploys = {
        let stop = Arc::clone(stop);
        std::thread::spawn(move || {
            let mut acked = Acked::default();
            let mut v = first;
            while !stop.load(Ordering::SeqCst) {
                v += 1;
                match deploy(addr, &token, v) {
                    Some(200) => acked.deployed = v,
                    Some(status) => panic!("deploy v{v} answered {status}"),
                    None => break,
                }
            }
            acked
        })
    };
    vec![events, deploys]
}

/// The version every file of the site serves, or a panic naming the mix.
fn served_version(server: &Server) -> u64 {
    let versions: Vec<u64> = (0..FILES)
        .map(|i| {
            let r = server.get("crash.localhost", &format!("/f{i}.txt"));
            assert_eq!(r.status, 200, "f{i}.txt: {}", r.text());
            let text = r.text();
            let v = text[1..].split(' ').next().unwrap().parse().unwrap();
            assert_eq!(r.body, version(v)[i].1, "f{i}.txt is not whole");
            v
        })
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] == w[1]),
        "a mix of versions: {versions:?}"
    );
    versions[0]
}

fn stored_paths(data: &std::path::Path, round: usize) -> std::collections::HashSet<String> {
    let conn = open_read_only(data);
    let mut stmt = conn
        .prepare(
            "SELECT s.value FROM events e JOIN strings s ON s.id = e.path
             WHERE s.kind = 2 AND s.value LIKE ?1",
        )
        .unwrap();
    let like = format!("/e/{round}/%");
    let rows = stmt.query_map([like], |r| r.get::<_, String>(0)).unwrap();
    rows.map(Result::unwrap).collect()
}

/// `fazt db check`: integrity, foreign keys, every blob against its hash, files against
/// their blobs, roll-ups against the raw events.
fn check_database(data: &std::path::Path) {
    let (code, out, err) = run_cli(&["db", "check", "--data", s(data)], &[]);
    assert_eq!(code, 0, "fazt db check after a kill:\n{out}{err}");
}

#[test]
fn fifty_kills_in_the_middle_of_ingest_and_deploys_lose_nothing_acknowledged() {
    let iterations: usize = std::env::var("FAZT_CRASH_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let data = TempDir::new("crash-loop");
    let env = [
        ("FAZT_EVENT_FLUSH", "100ms"),
        ("FAZT_DEPLOY_RATE", "100000"),
        // Every event has a path of its own: none may become `(other)`.
        ("FAZT_MAX_DAILY_VALUES", "1000000"),
    ];
    let mut server = start_on(data.path(), &env);
    let token = server.token.clone();
    assert_eq!(deploy(server.addr, &token, 0), Some(200));
    let mut rng = Rng(0x16);
    // Versions only grow, round after round: what is served never goes below this.
    let mut floor = 0;
    for round in 0..iterations {
        let stop = Arc::new(AtomicBool::new(false));
        let first = (round as u64 + 1) * 1_000_000;
        let threads = traffic(&server, round, first, &stop);
        std::thread::sleep(Duration::from_millis(200 + rng.below(1300) as u64));
        signal(&server.child, libc::SIGKILL);
        let killed = Instant::now();
        server.wait(Duration::from_secs(10)).expect("killed");
        stop.store(true, Ordering::SeqCst);
        let acked: Vec<Acked> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        drop(server);

        check_database(data.path());
        server = start_on(data.path(), &env);
        server.token = token.clone();
        let stored = stored_paths(data.path(), round);
        let old_enough = killed - FLUSH - MARGIN;
        for (path, at) in acked.iter().flat_map(|a| &a.events) {
            if *at < old_enough {
                assert!(
                    stored.contains(path),
                    "round {round}: {path}, acknowledged {:?} before the kill, was lost",
                    killed - *at
                );
            }
        }
        floor = acked.iter().map(|a| a.deployed).fold(floor, u64::max);
        let served = served_version(&server);
        assert!(
            served >= floor,
            "round {round}: v{floor} was acknowledged, v{served} is served"
        );
        floor = served;
        assert_eq!(
            leftovers(&temp_dir_of(data.path())),
            Vec::<String>::new(),
            "round {round}"
        );
    }
    assert!(server.terminate().success());
    check_database(data.path());
}
