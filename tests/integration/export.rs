//! `fazt export site NAME [--deployment ID]` (issue #16): a deployment back as a zip whose
//! entries are the deployed files byte for byte (no brotli/gzip variants), read beside a
//! running server; unknown sites and deployments fail without writing anything.
use crate::common::*;
use std::io::Read;
use std::process::{Command, Stdio};

/// `fazt export site ARGS...`: (exit code, stdout bytes, stderr).
fn export(args: &[&str]) -> (i32, Vec<u8>, String) {
    let out = Command::new(BIN)
        .args(["export", "site"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run fazt");
    (
        out.status.code().unwrap_or(-1),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The entries of a zip, (path, bytes), sorted by path.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("a valid zip");
    let mut entries: Vec<_> = (0..archive.len())
        .map(|i| {
            let mut entry = archive.by_index(i).unwrap();
            let mut content = Vec::new();
            entry.read_to_end(&mut content).unwrap();
            (entry.name().unwrap().to_string(), content)
        })
        .collect();
    entries.sort();
    entries
}

fn sorted(files: &[(&str, &[u8])]) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = files
        .iter()
        .map(|(p, b)| (p.to_string(), b.to_vec()))
        .collect();
    files.sort();
    files
}

fn deployed(server: &Server, site: &str, files: &[(&str, &[u8])]) -> i64 {
    let r = deploy_files(server, site, files, zip::CompressionMethod::Deflated);
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["deployment"].as_i64().unwrap()
}

#[test]
fn exports_current_and_older_deployments_byte_exact_while_the_server_runs() {
    let server = Server::start();
    let data = s(server.data.path());
    let mut rng = Rng(16);
    let binary = rng.bytes(300_000); // more than two stored chunks, incompressible
    let text = "<p>compressible text, compressible text</p>\n".repeat(400);
    let first: Vec<(&str, &[u8])> = vec![
        ("index.html", text.as_bytes()),
        ("assets/img/photo.bin", &binary),
        ("a/b/c/deep.txt", b"nested\n"),
        ("empty.txt", b""),
        ("caf\u{e9}.txt", "unicode name".as_bytes()),
    ];
    let first_id = deployed(&server, "blog", &first);
    // The store made variants of the text: the export must hold the originals only.
    let variants: i64 = rusqlite::Connection::open(server.data.db())
        .unwrap()
        .query_row("SELECT count(*) FROM blob_variants", [], |r| r.get(0))
        .unwrap();
    assert!(variants > 0, "the test needs a file with br/gzip variants");
    let (code, zip, err) = export(&["blog", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(unzip(&zip), sorted(&first));
    assert!(
        err.contains(&format!("deployment {first_id}: 5 files")),
        "{err}"
    );

    let second: Vec<(&str, &[u8])> = vec![("index.html", b"v2")];
    let second_id = deployed(&server, "blog", &second);
    let (code, zip, err) = export(&["blog", "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(unzip(&zip), sorted(&second));
    // The older deployment, by id, after the redeploy, into a file.
    let out = server.data.path().with_extension("first.zip");
    let id = first_id.to_string();
    let (code, stdout, err) = export(&["blog", "--deployment", &id, "-o", s(&out), "--data", data]);
    assert_eq!(code, 0, "{err}");
    assert!(String::from_utf8_lossy(&stdout).contains(&format!("deployment {first_id}")));
    assert_eq!(unzip(&std::fs::read(&out).unwrap()), sorted(&first));
    std::fs::remove_file(&out).unwrap();
    assert!(second_id > first_id);
}

#[test]
fn unknown_site_or_deployment_fails_and_writes_nothing() {
    let server = Server::start();
    let data = s(server.data.path());
    let id = deployed(&server, "blog", &[("index.html", b"x")]);
    let other = deployed(&server, "docs", &[("index.html", b"y")]);
    let dir = TempDir::new("export-out");
    let out = dir.path().join("site.zip");

    let (code, stdout, err) = export(&["nope", "-o", s(&out), "--data", data]);
    assert_ne!(code, 0);
    assert!(err.contains("no site named 'nope'"), "{err}");
    assert!(stdout.is_empty());
    let (code, stdout, err) = export(&["nope", "--data", data]);
    assert_ne!(code, 0);
    assert!(stdout.is_empty(), "nothing on stdout for an unknown site");
    assert!(err.contains("nope"), "{err}");

    // A deployment of another site is not this site's.
    let foreign = other.to_string();
    let (code, _, err) = export(&[
        "blog",
        "--deployment",
        &foreign,
        "-o",
        s(&out),
        "--data",
        data,
    ]);
    assert_ne!(code, 0);
    assert!(err.contains(&format!("no deployment {other}")), "{err}");
    let (code, _, err) = export(&["blog", "--deployment", "0", "--data", data]);
    assert_eq!(code, 2, "{err}");
    // No output file and no temp file left beside it.
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    // A data dir without a database is not created by an export.
    let empty = TempDir::new("export-empty");
    let (code, _, err) = export(&["blog", "--data", s(empty.path())]);
    assert_ne!(code, 0);
    assert!(err.contains("no database"), "{err}");
    assert!(!empty.db().exists());
    assert!(id > 0);
}

#[test]
fn refuses_to_write_the_zip_to_a_terminal() {
    // `script` runs the command on a pseudo-terminal (util-linux; part of every Debian).
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` to give the command a terminal");
        return;
    }
    let data = TempDir::new("export-tty");
    import_text_site(data.path());
    let command = format!("{BIN} export site blog --data {}", s(data.path()));
    let out = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("stdout is a terminal"), "{text}");
    assert!(!text.contains("PK"), "no zip bytes on the terminal: {text}");
}

/// Works with no server at all too (a stopped service, a copy of the data dir).
#[test]
fn exports_with_the_server_stopped() {
    let data = TempDir::new("export-stopped");
    import_text_site(data.path());
    let (code, zip, err) = export(&["blog", "--data", s(data.path())]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        unzip(&zip),
        vec![("index.html".to_string(), b"hi".to_vec())]
    );
}

fn import_text_site(data: &std::path::Path) {
    let dir = TempDir::new("export-src");
    write_file(dir.path(), "index.html", b"hi");
    import("blog", dir.path(), data);
}
