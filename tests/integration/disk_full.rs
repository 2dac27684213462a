//! Full disks (issue #11): no acknowledgement without a commit, and freeing space always
//! works. Each test gives the server a small tmpfs of its own (mounting needs root: the
//! tests skip with a printed reason otherwise) and fills it with a filler file.
use crate::common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted for one test, unmounted (lazily, should a process still hold it) and
/// removed on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason printed) when this process can't mount.
    fn mount(tag: &str, size: &str) -> Option<Tmpfs> {
        // SAFETY (test code): geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = TempDir::new(tag);
        let path = dir.0.clone();
        std::mem::forget(dir); // removed by our own Drop, after the unmount
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(&path)
            .output()
            .expect("run mount");
        if !out.status.success() {
            eprintln!(
                "skipped: mount -t tmpfs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let _ = std::fs::remove_dir(&path);
            return None;
        }
        Some(Tmpfs(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn filler(&self) -> PathBuf {
        self.0.join("filler")
    }

    /// (total, available) bytes.
    fn space(&self) -> (u64, u64) {
        let c = std::ffi::CString::new(self.0.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY (test code): statvfs into a zeroed struct we own.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::statvfs(c.as_ptr(), &mut st) }, 0);
        let frsize = st.f_frsize as u64;
        (st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize)
    }

    fn used_percent(&self) -> u64 {
        let (total, avail) = self.space();
        (total - avail) * 100 / total
    }

    /// Grows the filler until the filesystem is at least `percent` used (100: until the
    /// filesystem refuses another byte).
    fn fill_to(&self, percent: u64) {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .unwrap();
        let chunk = vec![0x5a_u8; 64 * 1024];
        let bound = self.space().0 / 4096 + 16;
        for _ in 0..bound {
            let (total, avail) = self.space();
            let used = total - avail;
            let wanted = if percent >= 100 {
                total
            } else {
                total * percent / 100 + 4096
            };
            if used >= wanted {
                break;
            }
            let n = (wanted - used).min(chunk.len() as u64) as usize;
            if file.write_all(&chunk[..n.max(4096)]).is_err() {
                // Full: fill the last pages one at a time.
                for _ in 0..32 {
                    if file.write_all(&chunk[..4096]).is_err() {
                        break;
                    }
                }
                break;
            }
        }
        let _ = file.flush();
        assert!(
            self.used_percent() >= percent.min(99),
            "{}%",
            self.used_percent()
        );
    }

    fn empty(&self) {
        std::fs::remove_file(self.filler()).expect("remove the filler");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `/track` body of about `pad` bytes, unique to `i` (a unique path, and for big bodies
/// unique tags, so each event adds new strings to the database).
fn event_body(i: usize, pad: usize) -> String {
    let tags: Vec<String> = (0..pad / 400)
        .map(|t| format!("\"{i}-{t}-{}\"", "t".repeat(380)))
        .collect();
    format!(
        r#"{{"d":"disk.test","p":"/e/{i}","t":[{}]}}"#,
        tags.join(",")
    )
}

fn committed(data: &Path) -> i64 {
    count(&open_read_only(data), "SELECT count(*) FROM events")
}

fn health(server: &Server) -> serde_json::Value {
    server
        .admin_get("/api/system/health", Some(&server.token))
        .json()
}

/// Sends `n` events; returns how many were acknowledged (204), asserting that anything
/// else is a 503 with `Retry-After`.
fn send_events(server: &Server, from: usize, n: usize, pad: usize) -> (usize, usize) {
    let (mut acked, mut refused) = (0, 0);
    for i in from..from + n {
        let r = track(server, &event_body(i, pad));
        match r.status {
            204 => acked += 1,
            503 => {
                assert!(r.header("retry-after").is_some(), "{}", r.text());
                refused += 1;
            }
            other => panic!("event {i}: {other} {}", r.text()),
        }
    }
    (acked, refused)
}

fn over_the_breaker(percent: u64) {
    let Some(fs) = Tmpfs::mount("df-breaker", "32m") else {
        return;
    };
    let mut server = start_on(
        fs.path(),
        &[("FAZT_DISK_RESERVE", "1MiB"), ("FAZT_EVENT_FLUSH", "50ms")],
    );
    assert_eq!(health(&server)["reserve"], "present");
    fs.fill_to(percent);
    let (acked, refused) = send_events(&server, 0, 300, 0);
    eprintln!("{percent}%: {acked} acknowledged, {refused} refused");
    // Bulk writes stop at the breaker while events carry on.
    let r = deploy_files(
        &server,
        "blog",
        &[("index.html", b"<h1>hi</h1>")],
        zip::CompressionMethod::Stored,
    );
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "disk_full");
    if percent < 99 {
        assert_eq!(acked, 300, "a disk over the breaker still commits events");
    }
    assert!(acked > 0);
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert_eq!(committed(fs.path()), acked as i64, "every 204 is committed");
}

#[test]
fn every_acknowledged_event_commits_at_94_percent() {
    over_the_breaker(94);
}

#[test]
fn every_acknowledged_event_commits_at_99_percent() {
    over_the_breaker(99);
}

#[test]
fn a_full_database_disk_answers_503_until_space_is_freed() {
    let Some(fs) = Tmpfs::mount("df-full", "16m") else {
        return;
    };
    let mut server = start_on(
        fs.path(),
        &[("FAZT_DISK_RESERVE", "0"), ("FAZT_EVENT_FLUSH", "20ms")],
    );
    fs.fill_to(100);
    // Big unique events fill what the WAL and the database still have.
    let (mut acked, mut refused) = (0, 0);
    for round in 0..400 {
        let (a, r) = send_events(&server, round * 10, 10, 8000);
        acked += a;
        refused += r;
        if refused > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert!(
        refused > 0,
        "a full disk refuses events ({acked} acknowledged)"
    );
    let r = track(&server, &event_body(1_000_000, 0));
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("10"));
    assert!(r.text().contains("disk full"), "{}", r.text());
    let metrics = server.admin_get("/metrics", Some(&server.token)).text();
    assert!(
        metrics.contains("fazt_events_dropped_total{reason=\"unwritable\"} "),
        "{metrics}"
    );

    // Freed space: the held batch commits on its next retry, and events are taken again.
    fs.empty();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut next = 2_000_000;
    loop {
        assert!(
            Instant::now() < deadline,
            "still refusing after space was freed"
        );
        let r = track(&server, &event_body(next, 0));
        next += 1;
        if r.status == 204 {
            acked += 1;
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text());
        std::thread::sleep(Duration::from_millis(200));
    }
    acked += send_events(&server, 3_000_000, 20, 0).0;
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert_eq!(committed(fs.path()), acked as i64, "every 204 is committed");
}

/// 150 events of about 8 KB each (1.2 MB of new strings), held in the writer's batch
/// (10 s flush) on a tmpfs that is then filled to 100 %; then SIGTERM.
fn sigterm_on_a_full_disk(reserve: &str) -> (Option<i32>, i64, String) {
    let fs = Tmpfs::mount("df-stop", "16m").expect("checked by the caller");
    let mut server = start_on(
        fs.path(),
        &[("FAZT_DISK_RESERVE", reserve), ("FAZT_EVENT_FLUSH", "10s")],
    );
    assert_eq!(send_events(&server, 0, 150, 8000), (150, 0));
    fs.fill_to(100);
    let status = server.terminate();
    (status.code(), committed(fs.path()), server.stderr())
}

#[test]
fn sigterm_on_a_full_disk_commits_in_the_reserve() {
    if Tmpfs::mount("df-probe", "1m").is_none() {
        return;
    }
    let (code, committed, stderr) = sigterm_on_a_full_disk("2MiB");
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(committed, 150, "{stderr}");
    assert!(stderr.contains("released the"), "{stderr}");
}

#[test]
fn sigterm_on_a_full_disk_without_a_reserve_says_what_it_lost() {
    if Tmpfs::mount("df-probe", "1m").is_none() {
        return;
    }
    let (code, committed, stderr) = sigterm_on_a_full_disk("0");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(committed, 0);
    assert!(
        stderr.contains("150 accepted analytics events could not be written at shutdown"),
        "{stderr}"
    );
}

#[test]
fn a_full_temp_dir_blocks_uploads_only() {
    let Some(tmp) = Tmpfs::mount("df-temp", "4m") else {
        return;
    };
    let mut server = Server::builder()
        .env("FAZT_TEMP_DIR", tmp.path().to_str().unwrap())
        .env("FAZT_EVENT_FLUSH", "50ms")
        .start();
    tmp.fill_to(100);
    let (acked, refused) = send_events(&server, 0, 50, 0);
    assert_eq!((acked, refused), (50, 0));
    wait_events(&server, "site=disk.test&limit=100", 50);
    let r = deploy_files(
        &server,
        "blog",
        &[("index.html", b"<h1>hi</h1>")],
        zip::CompressionMethod::Stored,
    );
    assert_eq!(r.status, 507, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains(tmp.path().to_str().unwrap()), "{message}");
    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert_eq!(committed(server.data.path()), 50);
}

/// Events held in the writer's batch (a 10 s flush) when the signals arrive.
fn held_events(server: &Server, n: usize) {
    let (acked, _) = send_events(server, 0, n, 0);
    assert_eq!(acked, n);
}

#[test]
fn two_signals_50ms_apart_are_one_and_lose_nothing() {
    let mut server = Server::builder().env("FAZT_EVENT_FLUSH", "10s").start();
    held_events(&server, 200);
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(50));
    signal(&server.child, libc::SIGTERM);
    let status = server.wait(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(!server.stderr().contains("second signal"));
    assert_eq!(committed(server.data.path()), 200);
}

#[test]
fn a_second_signal_skips_the_drain_and_still_commits() {
    let mut server = Server::builder()
        .env("FAZT_EVENT_FLUSH", "10s")
        .env("FAZT_SHUTDOWN_TIMEOUT", "30s")
        .start();
    held_events(&server, 200);
    // A request that never finishes holds the drain for its whole 30 s.
    let mut stuck = server.connect();
    stuck
        .write_all(b"GET / HTTP/1.1\r\nHost: root.localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(server.child.try_wait().unwrap().is_none(), "still draining");
    let started = Instant::now();
    signal(&server.child, libc::SIGTERM);
    let status = server.wait(Duration::from_secs(10)).expect("exits");
    let took = started.elapsed();
    eprintln!("stopped {took:?} after the second signal");
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert_eq!(status.code(), Some(1), "requests were cut off");
    assert!(
        server.stderr().contains("second signal"),
        "{}",
        server.stderr()
    );
    assert_eq!(committed(server.data.path()), 200, "{}", server.stderr());
}

#[test]
fn site_deletion_and_vacuum_work_at_100_percent() {
    let Some(fs) = Tmpfs::mount("df-delete", "48m") else {
        return;
    };
    let mut server = start_on(fs.path(), &[("FAZT_DISK_RESERVE", "2MiB")]);
    // 6 MiB that does not compress, so the site really holds that much.
    let mut rng = Rng(7);
    let big: Vec<Vec<u8>> = (0..6).map(|_| rng.bytes(1 << 20)).collect();
    let names: Vec<String> = (0..6).map(|i| format!("blob{i}.bin")).collect();
    let files: Vec<(&str, &[u8])> = names
        .iter()
        .zip(&big)
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let r = deploy_files(&server, "big", &files, zip::CompressionMethod::Stored);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(health(&server)["reserve"], "present");
    fs.fill_to(100);
    let r = admin_post(&server, "/api/system/vacuum", &serde_json::json!({}));
    assert_eq!(r.status, 200, "vacuum at 100%: {}", r.text());
    // The vacuum's checkpoint emptied the WAL: fill what that gave back, so the delete
    // has no WAL room but the reserve's.
    fs.fill_to(100);
    let (_, before) = fs.space();
    let r = admin_delete(&server, "/api/sites/big");
    assert_eq!(r.status, 200, "delete at 100%: {}", r.text());
    assert!(
        r.json()["bytes_freed"].as_u64().unwrap() >= 6 << 20,
        "{}",
        r.text()
    );
    let (_, after) = fs.space();
    eprintln!("available: {before} bytes before the delete, {after} after");
    assert!(after >= before + (4 << 20), "{before} → {after}");
    assert_eq!(server.get("big.localhost", "/blob0.bin").status, 404);
    // The reserve was spent and is back now that there is room.
    assert_eq!(health(&server)["reserve"], "present", "{}", server.stderr());
    assert_eq!(
        std::fs::metadata(fs.path().join("fazt.reserve"))
            .unwrap()
            .len(),
        2 << 20
    );
    assert!(
        server.stderr().contains("released the"),
        "{}",
        server.stderr()
    );
    assert_eq!(server.terminate().code(), Some(0), "{}", server.stderr());
}

#[test]
fn db_prune_works_at_100_percent() {
    let Some(fs) = Tmpfs::mount("df-prune", "16m") else {
        return;
    };
    let mut server = start_on(
        fs.path(),
        &[("FAZT_DISK_RESERVE", "1MiB"), ("FAZT_EVENT_FLUSH", "50ms")],
    );
    assert_eq!(send_events(&server, 0, 100, 4000).0, 100);
    assert_eq!(server.terminate().code(), Some(0), "{}", server.stderr());
    // The prune takes events older than now minus 0 s: let the second they carry pass.
    std::thread::sleep(Duration::from_millis(1100));
    fs.fill_to(100);
    let data = fs.path().to_str().unwrap();
    let (code, out, err) = run_cli(
        &["db", "prune", "--older-than", "0s", "--data", data],
        &[("FAZT_DISK_RESERVE", "1MiB")],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("deleted 100 events"), "{out}");
    assert_eq!(committed(fs.path()), 0);
}

/// The SIGKILL loss window: under a steady stream of events (default 250 ms flush), every
/// event acknowledged more than `2 × flush + 1 s` before the kill is committed. An event
/// waits at most one flush in its batch, then its commit runs (milliseconds, but behind a
/// running write job or on a loaded machine it can take longer), so 2 × flush covers the
/// batch that closed just before the kill and the next one; the extra second is for a
/// shared, busy test machine. The test prints the oldest acknowledged event that was lost.
#[test]
fn sigkill_loses_only_the_last_batch_window() {
    let mut server = Server::start();
    let flush = Duration::from_millis(250);
    let bound = flush * 2 + Duration::from_secs(1);
    // Events go one after another, so they commit in the order they were acknowledged.
    let mut acked_at = Vec::new();
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let r = track(&server, &event_body(i, 0));
        assert_eq!(r.status, 204, "{}", r.text());
        acked_at.push(Instant::now());
        i += 1;
    }
    signal(&server.child, libc::SIGKILL);
    let killed = Instant::now();
    server.wait(Duration::from_secs(10)).expect("killed");
    let conn = rusqlite::Connection::open(fazt::db::db_path(server.data.path())).unwrap();
    let committed = count(&conn, "SELECT count(*) FROM events") as usize;
    assert!(committed > 0 && committed <= acked_at.len());
    let oldest_lost = acked_at.get(committed).map(|t| killed.duration_since(*t));
    eprintln!(
        "SIGKILL window: {} acknowledged, {committed} committed, oldest lost event \
         acknowledged {oldest_lost:?} before the kill",
        acked_at.len()
    );
    if let Some(age) = oldest_lost {
        assert!(
            age <= bound,
            "lost an event acknowledged {age:?} before the kill"
        );
    }
}

/// Files in `dir` and the sha-256 of their bytes, to see that nothing changed (the filler
/// and the lock file, which names its last holder, left out).
fn contents(dir: &Path) -> Vec<(String, String)> {
    let mut all: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
        .filter(|(name, _)| name != "filler" && name != "fazt.lock")
        .map(|(name, path)| (name, sha256_hex(&std::fs::read(path).unwrap())))
        .collect();
    all.sort();
    all
}

/// A data dir (not on the tmpfs) whose database holds about 1.5 MB of site files.
fn data_with_a_site() -> (TempDir, Server) {
    let data = TempDir::new("df-source");
    let server = start_on(data.path(), &[]);
    let mut rng = Rng(16);
    let files: Vec<(String, Vec<u8>)> = (0..3)
        .map(|i| (format!("f{i}.bin"), rng.bytes(512 * 1024)))
        .collect();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), &b[..])).collect();
    let r = deploy_files(&server, "big", &files, zip::CompressionMethod::Stored);
    assert_eq!(r.status, 200, "{}", r.text());
    (data, server)
}

#[test]
fn a_backup_onto_a_full_disk_fails_cleanly_and_works_once_space_returns() {
    let Some(fs) = Tmpfs::mount("df-backup", "8m") else {
        return;
    };
    let (data, server) = data_with_a_site();
    fs.fill_to(90);
    let dest = fs.path().join("copy.db");
    // From the CLI, beside the running server.
    let (code, out, err) = run_cli(&["db", "backup", s(&dest), "--data", s(data.path())], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("space") || err.contains("full"), "{err}");
    assert!(!dest.exists());
    assert_eq!(contents(fs.path()), vec![], "a partial copy was left");
    // Through the API: 507, nothing written.
    let body = serde_json::json!({"path": dest}).to_string();
    let r = admin_raw(&server, "POST", "/api/system/backup", &body);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(contents(fs.path()), vec![]);
    // The server never noticed: it serves, and backs up once there is room.
    assert_eq!(server.get("big.localhost", "/f0.bin").status, 200);
    fs.empty();
    let r = admin_raw(&server, "POST", "/api/system/backup", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let copy = rusqlite::Connection::open(&dest).unwrap();
    let ok: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(ok, "ok");
}

#[test]
fn a_restore_onto_a_full_disk_changes_nothing_and_works_once_space_returns() {
    let Some(fs) = Tmpfs::mount("df-restore", "8m") else {
        return;
    };
    // The backup to restore: the site's 1.5 MB database.
    let (source, mut server) = data_with_a_site();
    let backup = source.path().join("backup.db");
    let (code, out, err) = run_cli(
        &["db", "backup", s(&backup), "--data", s(source.path())],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(server.terminate().success());
    // The data dir to restore into is on the tmpfs, with a database of its own.
    let data = fs.path().join("data");
    let mut target = start_on(&data, &[("FAZT_DISK_RESERVE", "0")]);
    assert!(target.terminate().success());
    fs.fill_to(95);
    let before = contents(&data);
    let (code, out, err) = run_cli(&["db", "restore", s(&backup), "--data", s(&data)], &[]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(
        contents(&data),
        before,
        "a failed restore changed the data dir"
    );
    // Space back: the same restore works and the site is there.
    fs.empty();
    let (code, out, err) = run_cli(&["db", "restore", s(&backup), "--data", s(&data)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let restored = start_on(&data, &[("FAZT_DISK_RESERVE", "0")]);
    assert_eq!(restored.get("big.localhost", "/f0.bin").status, 200);
}
