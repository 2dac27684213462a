//! Deploy archive validation and extraction through the library API, with zips built here:
//! well-formed ones with the zip crate's writer, malicious ones byte by byte (the writer
//! would refuse or repair them).

use crate::common::zips::*;
use crate::common::TempDir;
use fazt::deploy::archive::{extract, ArchiveError, ArchiveLimits, Extracted};
use fazt::hosting::store::FileSource;
use fazt::http::multipart::{boundary_from_content_type, parse_form};
use fazt::http::ResponseError;
use sha2::{Digest, Sha256};
use std::io::{Cursor, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

// ---- running extract ----

fn run(zip: &[u8], limits: &ArchiveLimits, out: &TempDir) -> Result<Extracted, ArchiveError> {
    extract(Cursor::new(zip), limits, out.path())
}

fn dir_entries(dir: &Path) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

/// Extracting `zip` fails with a 400 whose message contains every one of `needles`, and
/// leaves nothing in the output directory.
fn refused(zip: &[u8], limits: &ArchiveLimits, needles: &[&str]) -> String {
    let out = TempDir::new("archive-out");
    let err = match run(zip, limits, &out) {
        Ok(extracted) => panic!("accepted: {:?}", extracted.files),
        Err(err) => err,
    };
    assert_eq!(
        (err.status(), err.code()),
        (400, "invalid_archive"),
        "{err}"
    );
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "{message:?} lacks {needle:?}");
    }
    assert_eq!(
        dir_entries(out.path()),
        0,
        "temp files left after: {message}"
    );
    message
}

fn defaults() -> ArchiveLimits {
    ArchiveLimits::default()
}

/// A good entry first, so a refusal also proves its temp file was cleaned up.
fn with_good(bad: Raw) -> Vec<u8> {
    build(&[Raw::deflated("index.html", b"<h1>hi</h1>"), bad], 0)
}

// ---- accepted archives ----

#[test]
fn normal_archive_is_extracted_byte_exact() {
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("index.html", b"<!doctype html><h1>Home</h1>\n".to_vec()),
        ("css/site.css", b"body { color: #333 }\n".repeat(100)),
        ("js/app.js", b"console.log('hi');\n".to_vec()),
        ("img/data.bin", big),
        ("blog/café/日本.html", "<p>unicode</p>".as_bytes().to_vec()),
        ("100%.txt", b"literal name".to_vec()),
        ("empty.txt", Vec::new()),
    ];
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    let deflated = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(0o644);
    let stored = deflated.compression_method(CompressionMethod::Stored);
    writer.add_directory("css/", deflated).unwrap();
    for (i, (name, content)) in files.iter().enumerate() {
        let options = if i % 2 == 0 { deflated } else { stored };
        writer.start_file(*name, options).unwrap();
        writer.write_all(content).unwrap();
    }
    for hidden in [".env", ".git/config", "blog/.DS_Store"] {
        writer.start_file(hidden, deflated).unwrap();
        writer.write_all(b"SECRET=1").unwrap();
    }
    // A hidden symlink (npm's node_modules/.bin) is skipped, not refused.
    writer
        .add_symlink("node_modules/.bin/tool", "../tool/cli.js", deflated)
        .unwrap();
    let zip = writer.finish().unwrap().into_inner();

    let out = TempDir::new("archive-out");
    let extracted = run(&zip, &defaults(), &out).unwrap();
    assert_eq!(extracted.skipped_hidden, 4);
    let mut expected: Vec<&(&str, Vec<u8>)> = files.iter().collect();
    expected.sort_by_key(|(name, _)| *name);
    let paths: Vec<&str> = extracted.files.iter().map(|f| f.path.as_str()).collect();
    let expected_paths: Vec<&str> = expected.iter().map(|(name, _)| *name).collect();
    assert_eq!(paths, expected_paths);
    let mut total = 0;
    for (file, (_, content)) in extracted.files.iter().zip(&expected) {
        assert!(
            matches!(file.source, FileSource::Packed { .. }),
            "{} is not in the pack file",
            file.path
        );
        let mut bytes = Vec::new();
        file.reader().unwrap().read_to_end(&mut bytes).unwrap();
        assert_eq!(&bytes, content, "{}", file.path);
        assert_eq!(file.size, content.len() as u64);
        assert_eq!(file.sha256, <[u8; 32]>::from(Sha256::digest(content)));
        assert_eq!(file.mime, fazt::hosting::rules::mime_for(&file.path));
        total += file.size;
    }
    assert_eq!(extracted.total_bytes, total);
    let mime = |path: &str| {
        extracted
            .files
            .iter()
            .find(|f| f.path == path)
            .unwrap()
            .mime
    };
    assert!(mime("index.html").starts_with("text/html"));
    assert!(mime("css/site.css").starts_with("text/css"));
    assert_eq!(
        dir_entries(out.path()),
        1,
        "every entry is in one pack file"
    );
}

#[test]
fn go_style_entries_with_data_descriptors_are_accepted() {
    // Go's archive/zip writes deflated entries with sizes and CRC after the data.
    let content = b"<p>from the Go client</p>".repeat(50);
    let mut entry = Raw::deflated("index.html", &content);
    entry.flags |= FLAG_DESCRIPTOR | 1 << 11;
    entry.made_by = 20; // MS-DOS, as Go writes
    entry.external = 0;
    let zip = build(&[entry, Raw::stored("./a//b.txt", b"b")], 0);
    let out = TempDir::new("archive-out");
    let extracted = run(&zip, &defaults(), &out).unwrap();
    assert_eq!(extracted.files.len(), 2);
    assert_eq!(extracted.files[0].path, "a/b.txt");
    assert_eq!(extracted.files[1].path, "index.html");
    assert_eq!(extracted.files[1].size, content.len() as u64);
}

// ---- one test per rejection rule ----

#[test]
fn absolute_paths_are_refused() {
    refused(
        &with_good(Raw::stored("/etc/passwd", b"x")),
        &defaults(),
        &["entry '/etc/passwd'", "absolute"],
    );
}

#[test]
fn dot_dot_components_are_refused() {
    for name in ["../etc/passwd", "a/../../b", "a/..", "../"] {
        refused(
            &with_good(Raw::stored(name, b"x")),
            &defaults(),
            &[&format!("entry '{name}'"), "'..'"],
        );
    }
}

#[test]
fn backslashes_are_refused() {
    refused(
        &with_good(Raw::stored("..\\..\\windows\\evil.dll", b"x")),
        &defaults(),
        &["entry '..\\..\\windows\\evil.dll'", "backslash"],
    );
}

#[test]
fn nul_and_control_characters_are_refused() {
    refused(
        &with_good(Raw::stored("index.html\0.png", b"x")),
        &defaults(),
        &["entry 'index.html\\u{0}.png'", "control character"],
    );
    refused(
        &with_good(Raw::stored("a\nb.html", b"x")),
        &defaults(),
        &["entry 'a\\nb.html'", "control character"],
    );
}

#[test]
fn symlinks_are_refused() {
    // With the real writer...
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    writer
        .start_file("index.html", SimpleFileOptions::default())
        .unwrap();
    writer.write_all(b"hi").unwrap();
    writer
        .add_symlink("passwd.txt", "/etc/passwd", SimpleFileOptions::default())
        .unwrap();
    let zip = writer.finish().unwrap().into_inner();
    refused(&zip, &defaults(), &["entry 'passwd.txt'", "symbolic link"]);
    // ...and by hand.
    refused(
        &with_good(Raw::stored("link", b"/etc/passwd").mode(0o120_777)),
        &defaults(),
        &["entry 'link'", "symbolic link"],
    );
}

#[test]
fn other_non_regular_entries_are_refused() {
    for (mode, what) in [
        (0o010_644, "0o10000"),  // fifo
        (0o020_644, "0o20000"),  // character device
        (0o060_644, "0o60000"),  // block device
        (0o140_644, "0o140000"), // socket
    ] {
        refused(
            &with_good(Raw::stored("dev", b"").mode(mode)),
            &defaults(),
            &["entry 'dev'", "not a regular file", what],
        );
    }
    refused(
        &with_good(Raw::stored("dir-without-slash", b"").mode(0o040_755)),
        &defaults(),
        &["entry 'dir-without-slash'", "directory"],
    );
}

#[test]
fn duplicate_paths_after_normalisation_are_refused() {
    for (first, second) in [
        ("a/b.txt", "a//b.txt"),
        ("a.txt", "./a.txt"),
        ("x/y", "x/./y"),
        ("same", "same"),
    ] {
        let zip = build(&[Raw::stored(first, b"1"), Raw::stored(second, b"2")], 0);
        refused(
            &zip,
            &defaults(),
            &[&format!("entry '{second}'"), &format!("entry '{first}'")],
        );
    }
}

#[test]
fn more_entries_than_max_files_are_refused() {
    let limits = ArchiveLimits {
        max_files: 5,
        ..defaults()
    };
    let names: Vec<String> = (0..6).map(|i| format!("f{i}.txt")).collect();
    let entries: Vec<Raw> = names.iter().map(|n| Raw::stored(n, b"x")).collect();
    refused(&build(&entries, 0), &limits, &["6 entries", "limit of 5"]);
    // Exactly at the limit is fine.
    let out = TempDir::new("archive-out");
    assert_eq!(
        run(&build(&entries[..5], 0), &limits, &out)
            .unwrap()
            .files
            .len(),
        5
    );
}

#[test]
fn an_entry_over_max_entry_bytes_is_refused() {
    let limits = ArchiveLimits {
        max_entry_bytes: 1000,
        ..defaults()
    };
    refused(
        &with_good(Raw::deflated("big.bin", &[7u8; 1001])),
        &limits,
        &["entry 'big.bin'", "1001 bytes", "limit of 1000"],
    );
    let out = TempDir::new("archive-out");
    assert!(run(
        &with_good(Raw::deflated("ok.bin", &[7u8; 1000])),
        &limits,
        &out
    )
    .is_ok());
}

#[test]
fn an_entry_that_lies_about_its_size_is_refused() {
    let limits = ArchiveLimits {
        max_entry_bytes: 1000,
        ..defaults()
    };
    // Declares 10 bytes, holds 100 000: stopped after the declared size, not at the end.
    let mut liar = Raw::deflated("liar.bin", &[1u8; 100_000]);
    liar.uncompressed = 10;
    refused(
        &with_good(liar),
        &limits,
        &["entry 'liar.bin'", "header lies", "declared"],
    );
    // Declares more than it holds.
    let mut short = Raw::deflated("short.bin", &[1u8; 100]);
    short.uncompressed = 200;
    refused(
        &with_good(short),
        &defaults(),
        &[
            "entry 'short.bin'",
            "holds 100 bytes but its header declares 200",
        ],
    );
    // A local header naming another file than the central directory (zip cloaking).
    let mut cloaked = Raw::stored("index.txt", b"x");
    cloaked.local_name = Some(b"../../etc/passwd".to_vec());
    refused(&with_good(cloaked), &defaults(), &["entry #2"]);
}

#[test]
fn archives_over_max_total_bytes_are_refused() {
    let limits = ArchiveLimits {
        max_total_bytes: 2500,
        ..defaults()
    };
    let entries: Vec<Raw> = (0..3)
        .map(|i| Raw::deflated(&format!("part{i}.bin"), &[i as u8; 1000]))
        .collect();
    refused(
        &build(&entries, 0),
        &limits,
        &["entry 'part2.bin'", "limit of 2500"],
    );
    // Hidden files are not read, so they don't count.
    let mut with_hidden = entries[..2].to_vec();
    with_hidden.push(Raw::deflated(".big", &[0u8; 5000]));
    let out = TempDir::new("archive-out");
    let extracted = run(&build(&with_hidden, 0), &limits, &out).unwrap();
    assert_eq!(extracted.total_bytes, 2000);
    assert_eq!(extracted.skipped_hidden, 1);
}

/// A 1 GiB entry of zeros, 6.8 MB compressed.
fn bomb_entry() -> Raw {
    const GIB: u64 = 1 << 30;
    let data = deflate_zeros(GIB);
    Raw {
        method: 8,
        compressed: data.len() as u32,
        uncompressed: GIB as u32,
        crc: 0,
        data,
        ..Raw::stored("bomb.bin", b"")
    }
}

#[test]
fn a_zip_bomb_is_refused_quickly() {
    let bomb = bomb_entry();
    assert!(bomb.data.len() < 8 << 20, "{}", bomb.data.len());
    // Honest headers: refused on the declared ratio before a byte is inflated, even with
    // size limits that would let 1 GiB through.
    let roomy = ArchiveLimits {
        max_entry_bytes: 2 << 30,
        max_total_bytes: 2 << 30,
        ..defaults()
    };
    let zip = with_good(bomb.clone());
    let started = Instant::now();
    refused(&zip, &roomy, &["entry 'bomb.bin'", "zip bomb"]);
    assert!(started.elapsed() < Duration::from_secs(2));

    // Headers that lie: the claimed compressed size covers 5 MB of filler after the data,
    // so the declared ratio looks like 95x. The bytes actually inflated give it away.
    let mut liar = bomb.clone();
    let gap = 5 << 20;
    liar.compressed = (liar.data.len() + gap) as u32;
    let zip = build(&[Raw::deflated("index.html", b"hi"), liar], gap);
    let started = Instant::now();
    refused(
        &zip,
        &roomy,
        &[
            "entry 'bomb.bin'",
            "expanded 8192 compressed bytes",
            "zip bomb",
        ],
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // Headers that lie about the uncompressed size: stopped at the declared size.
    let mut small_claim = bomb;
    small_claim.uncompressed = 4096;
    let started = Instant::now();
    refused(
        &with_good(small_claim),
        &defaults(),
        &["entry 'bomb.bin'", "header lies"],
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[test]
fn not_a_zip_or_corrupt_is_refused() {
    refused(b"", &defaults(), &["not a readable zip archive"]);
    refused(
        b"<html>definitely not a zip</html>",
        &defaults(),
        &["not a readable zip archive"],
    );
    let good = with_good(Raw::stored("two.txt", b"second file"));
    // Truncated: the central directory is gone.
    refused(
        &good[..good.len() - 30],
        &defaults(),
        &["not a readable zip archive"],
    );
    // A flipped data byte: the CRC check fails.
    let mut flipped = good.clone();
    let at = flipped
        .windows(b"second file".len())
        .position(|w| w == b"second file")
        .unwrap();
    flipped[at] ^= 0x20;
    refused(
        &flipped,
        &defaults(),
        &["entry 'two.txt'", "corrupt", "checksum"],
    );
    // Encrypted entries.
    let mut encrypted = Raw::stored("secret.txt", b"xx");
    encrypted.flags |= FLAG_ENCRYPTED;
    refused(
        &with_good(encrypted),
        &defaults(),
        &["entry 'secret.txt'", "encrypted"],
    );
    // Only hidden files: nothing to publish.
    refused(
        &build(&[Raw::stored(".env", b"x")], 0),
        &defaults(),
        &["no files to publish"],
    );
}

#[test]
fn temp_dir_failures_are_server_errors() {
    let out = TempDir::new("archive-out");
    let missing = out.path().join("missing");
    let err = extract(
        Cursor::new(with_good(Raw::stored("a", b"a"))),
        &defaults(),
        &missing,
    )
    .unwrap_err();
    assert!(matches!(err, ArchiveError::Io { .. }), "{err}");
    assert_eq!((err.status(), err.code()), (500, "io_error"));
}

#[test]
fn a_zip_inside_a_multipart_body_is_read_in_place() {
    let zip = with_good(Raw::deflated("about.html", b"<p>about</p>"));
    let boundary = "7c3e5d2a0b9f4e1d8a6c";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"site_name\"\r\n\r\nblog\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"site.zip\"\r\n\
         Content-Type: application/octet-stream\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(&zip);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let boundary_param =
        boundary_from_content_type(&format!("multipart/form-data; boundary={boundary}")).unwrap();

    let mut cursor = Cursor::new(&body);
    let form = parse_form(&mut cursor, body.len() as u64, &boundary_param).unwrap();
    assert_eq!(form.text("site_name"), Some("blog"));
    let part = form.file("file").unwrap();
    assert_eq!(part.len, zip.len() as u64);
    let out = TempDir::new("archive-out");
    let extracted = extract(part.window(&mut cursor), &defaults(), out.path()).unwrap();
    let paths: Vec<&str> = extracted.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, ["about.html", "index.html"]);
}
