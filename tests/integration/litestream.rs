//! Beyond one machine (issue #16): fazt under Litestream. With `FAZT_EXTERNAL_CHECKPOINTS=1`
//! fazt leaves every WAL checkpoint to the replicator; the real `litestream` (the binary npm's
//! `@flydotio/litestream-linux-x64` carries, installed by scripts/test.sh into
//! target/tools) replicates to a file replica, and a restore on a new data dir serves the
//! same site and holds the same events.
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A deployment large enough that SQLite's automatic checkpoint (1,000 pages) would run.
fn big_site() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng(15);
    (0..12)
        .map(|i| (format!("f{i}.bin"), rng.bytes(512 * 1024)))
        .chain([("index.html".to_string(), b"<h1>replicated</h1>".to_vec())])
        .collect()
}

fn deploy_big(server: &Server, site: &str) {
    let files = big_site();
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (p.as_str(), &b[..])).collect();
    let r = deploy_files(server, site, &files, zip::CompressionMethod::Stored);
    assert_eq!(r.status, 200, "{}", r.text());
}

fn wal_of(data: &Path) -> PathBuf {
    let mut wal = fazt::db::db_path(data).into_os_string();
    wal.push("-wal");
    PathBuf::from(wal)
}

fn wal_len(data: &Path) -> u64 {
    std::fs::metadata(wal_of(data)).map_or(0, |m| m.len())
}

/// The WAL's header salt: SQLite changes it whenever the WAL is reset (restarted from its
/// first frame after a checkpoint), so an unchanged salt means it never was.
fn wal_salt(data: &Path) -> Vec<u8> {
    let bytes = std::fs::read(wal_of(data)).unwrap_or_default();
    bytes.get(16..24).map(<[u8]>::to_vec).unwrap_or_default()
}

#[test]
fn with_external_checkpoints_fazt_never_checkpoints_resets_or_deletes_the_wal() {
    let data = TempDir::new("external-ckpt");
    let mut server = start_on(data.path(), &[("FAZT_EXTERNAL_CHECKPOINTS", "1")]);
    let salt = wal_salt(data.path());
    assert_eq!(salt.len(), 8, "the WAL exists once the server has written");
    let db_before = std::fs::metadata(fazt::db::db_path(data.path()))
        .unwrap()
        .len();
    deploy_big(&server, "big");
    let wal_after_deploy = wal_len(data.path());
    assert!(
        wal_after_deploy > 6 << 20,
        "the deploy is in the WAL: {wal_after_deploy}"
    );
    deploy_big(&server, "big2");
    assert!(
        wal_len(data.path()) > wal_after_deploy,
        "the WAL only grows"
    );
    assert_eq!(wal_salt(data.path()), salt, "the WAL was reset");
    // Nothing was copied into the database file: no checkpoint ran.
    let db_now = std::fs::metadata(fazt::db::db_path(data.path()))
        .unwrap()
        .len();
    assert_eq!(db_now, db_before);
    assert!(server.terminate().success(), "{}", server.stderr());
    assert!(
        server
            .stderr()
            .contains("final checkpoint left to the replicator"),
        "{}",
        server.stderr()
    );
    // Closing the last connection neither checkpointed nor deleted the WAL.
    assert!(wal_len(data.path()) > wal_after_deploy);
    assert_eq!(wal_salt(data.path()), salt);

    // The next start recovers from that WAL: everything is there.
    let server = start_on(data.path(), &[("FAZT_EXTERNAL_CHECKPOINTS", "1")]);
    assert_eq!(
        server.get("big2.localhost", "/").text(),
        "<h1>replicated</h1>"
    );
}

#[test]
fn without_external_checkpoints_the_wal_is_emptied_at_shutdown() {
    // The contrast that gives the test above its meaning.
    let data = TempDir::new("own-ckpt");
    let mut server = start_on(data.path(), &[]);
    deploy_big(&server, "big");
    assert!(server.terminate().success());
    assert_eq!(
        wal_len(data.path()),
        0,
        "fazt checkpoints and truncates its own WAL"
    );
}

/// The `litestream` binary: target/tools/litestream (scripts/test.sh), or one on PATH.
fn litestream() -> PathBuf {
    let local = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/tools/litestream");
    if local.is_file() {
        return local;
    }
    let on_path = Command::new("litestream").arg("version").output();
    if on_path.is_ok_and(|o| o.status.success()) {
        return PathBuf::from("litestream");
    }
    panic!(
        "litestream is missing: scripts/test.sh installs it into target/tools from npm's \
         @flydotio/litestream-linux-x64 (needs npm)"
    );
}

struct Replicator(Child);

impl Drop for Replicator {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn config(dir: &Path, db: &Path, replica: &Path) -> PathBuf {
    let path = dir.join("litestream.yml");
    let yaml = format!(
        "dbs:\n  - path: {}\n    replicas:\n      - type: file\n        path: {}\n        sync-interval: 100ms\n",
        db.display(),
        replica.display()
    );
    std::fs::write(&path, yaml).unwrap();
    path
}

/// `litestream restore` of the replica into `out`; true when it wrote a database.
fn restore(bin: &Path, config: &Path, db: &Path, out: &Path) -> bool {
    let _ = std::fs::remove_file(out);
    let status = Command::new(bin)
        .args(["restore", "-config", s(config), "-o", s(out), s(db)])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    status.success() && out.is_file()
}

fn events_in(db: &Path, marker: &str) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row(
        "SELECT count(*) FROM events e JOIN strings s ON s.id = e.path
         WHERE s.kind = 2 AND s.value = ?1",
        [marker],
        |r| r.get(0),
    )
    .unwrap_or(0)
}

#[test]
fn litestream_replicates_fazt_to_a_file_replica_and_a_restore_serves_the_same_site() {
    let bin = litestream();
    let work = TempDir::new("litestream");
    let data = work.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let replica = work.path().join("replica");
    let db = fazt::db::db_path(&data);
    let mut server = start_on(&data, &[("FAZT_EXTERNAL_CHECKPOINTS", "1")]);
    let config = config(work.path(), &db, &replica);
    let child = Command::new(&bin)
        .args(["replicate", "-config", s(&config)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _replicator = Replicator(child);

    deploy_big(&server, "shop");
    for i in 0..50 {
        let body = serde_json::json!({"h": "shop.example", "p": "/replicated", "q": {"i": i}});
        assert_eq!(track(&server, &body.to_string()).status, 204);
    }
    flush_events(&server, "shop.example", "/last");

    // The replica catches up within seconds; a restore shows when it has.
    let restored = work.path().join("restored/fazt.db");
    std::fs::create_dir_all(restored.parent().unwrap()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(restore(&bin, &config, &db, &restored) && events_in(&restored, "/last") == 1) {
        assert!(Instant::now() < deadline, "the replica never caught up");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(events_in(&restored, "/replicated"), 50);
    assert!(server.terminate().success(), "{}", server.stderr());

    // A new machine: fazt on the restored file serves the same site, byte for byte.
    let new = start_on(restored.parent().unwrap(), &[]);
    assert_eq!(new.get("shop.localhost", "/").text(), "<h1>replicated</h1>");
    let (name, bytes) = &big_site()[3];
    let file = new.get("shop.localhost", &format!("/{name}"));
    assert_eq!(file.status, 200);
    assert!(file.body == *bytes, "{name} differs after the restore");
}
