//! Precompressed assets (DESIGN D8, issue #10): brotli and gzip variants made at deploy time
//! (`POST /api/deploy` and `fazt site import`), chosen per request by `Accept-Encoding`
//! (RFC 9110 §12.5.3), with `Vary`, `Content-Encoding` and an ETag per variant; Range gets
//! the identity bytes; unchanged files reuse their variants; GC removes them with their
//! file; the dashboard assets are served compressed too.
use crate::common::zips::zip_of;
use crate::common::*;
use std::io::Read;

/// Compressible text of about `len` bytes (varied enough that brotli and gzip differ).
fn text(seed: u64, len: usize) -> Vec<u8> {
    let words = [
        "static",
        "site",
        "deploy",
        "brotli",
        "gzip",
        "<div>",
        "</div>",
        "class=\"card\"",
        "function",
        "return",
        "const",
        "{",
        "}",
        "margin:0;",
        "color:#333;",
        "\n",
    ];
    let mut rng = Rng(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(words[rng.below(words.len())].as_bytes());
        out.push(b' ');
    }
    out
}

fn site_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("index.html", text(1, 20_000)),
        ("app.js", text(2, 12_000)),
        ("style.css", text(3, 4_000)),
        ("small.css", text(4, 900)),
        // Compressible bytes, but PNG is not a compressible type.
        ("logo.png", text(5, 5_000)),
        // Over the largest cached file of an 8 MiB cache (512 KiB): streamed.
        ("bundle.js", text(6, 700_000)),
    ]
}

fn file(path: &str) -> Vec<u8> {
    site_files()
        .into_iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| b)
        .unwrap()
}

/// A server whose data dir holds the site `blog`, imported by the CLI before start.
struct Fixture {
    server: Server,
    data: TempDir,
    _site: TempDir,
}

fn start_with_site() -> Fixture {
    let site = TempDir::new("compression-site");
    for (path, bytes) in site_files() {
        write_file(site.path(), path, &bytes);
    }
    let data = TempDir::new("compression-data");
    let out = import("blog", site.path(), data.path());
    assert!(out.contains("compressed 4 files"), "{out}");
    let server = start_on(data.path(), &[("FAZT_CACHE_BYTES", "8M")]);
    Fixture {
        server,
        data,
        _site: site,
    }
}

fn get(server: &Server, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    send(server, "GET", "blog.localhost", path, headers, b"")
}

fn decode(r: &HttpResponse) -> Vec<u8> {
    let mut out = Vec::new();
    match r.header("content-encoding") {
        Some("br") => {
            brotli::Decompressor::new(&r.body[..], 4096)
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("gzip") => {
            flate2::read::GzDecoder::new(&r.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        None => out = r.body.clone(),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

fn etag(path: &str, suffix: &str) -> String {
    format!("\"{}{suffix}\"", sha256_hex(&file(path)))
}

#[test]
fn negotiation_picks_br_then_gzip_by_q_value() {
    let f = start_with_site();
    let original = file("index.html");
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("x-gzip"), Some("gzip")),
        (Some("br;q=0, gzip"), Some("gzip")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
        (Some("*"), Some("br")),
        (Some("gzip;q=0, *"), Some("br")),
        (Some("br, identity;q=0"), Some("br")),
        (Some("identity"), None),
        (Some("br;q=0, gzip;q=0"), None),
        (Some("deflate"), None),
        (None, None),
    ];
    for (accept, expected) in cases {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("Accept-Encoding", *a)).collect();
        // Twice: from the store, then from the cache.
        for _ in 0..2 {
            let r = get(&f.server, "/", &headers);
            assert_eq!(r.status, 200, "{accept:?}");
            assert_eq!(r.header("content-encoding"), *expected, "{accept:?}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept:?}");
            let suffix = expected.map(|e| format!("-{e}")).unwrap_or_default();
            assert_eq!(
                r.header("etag"),
                Some(etag("index.html", &suffix).as_str()),
                "{accept:?}"
            );
            assert_eq!(decode(&r), original, "{accept:?}");
            if expected.is_some() {
                assert!(r.body.len() * 10 <= original.len() * 9, "{accept:?}");
            }
        }
    }
    for path in ["/app.js", "/style.css"] {
        let r = get(&f.server, path, &[("Accept-Encoding", "br")]);
        assert_eq!(r.header("content-encoding"), Some("br"), "{path}");
        assert_eq!(decode(&r), file(&path[1..]), "{path}");
    }
}

#[test]
fn range_head_and_conditional_requests_per_variant() {
    let f = start_with_site();
    let original = file("app.js");
    let br = [("Accept-Encoding", "br, gzip")];

    // A range gets the identity bytes, still with Vary.
    let r = get(&f.server, "/app.js", &[br[0], ("Range", "bytes=10-109")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.body, &original[10..110]);

    // HEAD is GET without the body: the same encoding, length and ETag.
    let full = get(&f.server, "/app.js", &br);
    let mut s = f.server.connect();
    std::io::Write::write_all(
        &mut s,
        b"HEAD /app.js HTTP/1.1\r\nHost: blog.localhost\r\nAccept-Encoding: br, gzip\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let head = read_response_with(&mut s, true).unwrap();
    assert_eq!(head.status, 200);
    for name in ["content-encoding", "content-length", "etag", "vary"] {
        assert_eq!(head.header(name), full.header(name), "{name}");
    }
    assert_eq!(
        full.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );

    // If-None-Match matches the variant the client holds, not another one.
    let br_etag = etag("app.js", "-br");
    let r = get(&f.server, "/app.js", &[br[0], ("If-None-Match", &br_etag)]);
    assert_eq!(r.status, 304);
    assert_eq!(r.header("etag"), Some(br_etag.as_str()));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get(
        &f.server,
        "/app.js",
        &[("Accept-Encoding", "gzip"), ("If-None-Match", &br_etag)],
    );
    assert_eq!(
        (r.status, r.header("content-encoding")),
        (200, Some("gzip"))
    );
    let r = get(
        &f.server,
        "/app.js",
        &[("If-None-Match", &etag("app.js", ""))],
    );
    assert_eq!(r.status, 304);
    let r = get(
        &f.server,
        "/app.js",
        &[br[0], ("If-None-Match", &etag("app.js", ""))],
    );
    assert_eq!((r.status, r.header("content-encoding")), (200, Some("br")));
}

#[test]
fn small_and_incompressible_files_have_no_variants() {
    let f = start_with_site();
    for path in ["small.css", "logo.png"] {
        let r = get(
            &f.server,
            &format!("/{path}"),
            &[("Accept-Encoding", "br, gzip")],
        );
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
        assert_eq!(r.body, file(path), "{path}");
    }
    let conn = open_read_only(f.data.path());
    // index.html, app.js, style.css and bundle.js: a br and a gzip row each.
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM blob_variants"), 8);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM blob_variants WHERE variant IS NULL"
        ),
        0
    );
}

#[test]
fn large_files_stream_their_variant_and_ranges_stream_identity() {
    let f = start_with_site();
    let original = file("bundle.js");
    let r = get(&f.server, "/bundle.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(decode(&r), original);
    let r = get(&f.server, "/bundle.js", &[]);
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, Some("Accept-Encoding"))
    );
    assert_eq!(r.body, original);
    let r = get(
        &f.server,
        "/bundle.js",
        &[("Accept-Encoding", "br"), ("Range", "bytes=600000-")],
    );
    assert_eq!((r.status, r.header("content-encoding")), (206, None));
    assert_eq!(r.body, &original[600_000..]);
}

#[test]
fn redeploy_reuses_variants_and_gc_removes_them_with_their_file() {
    let server = Server::builder().env("FAZT_KEEP_DEPLOYMENTS", "1").start();
    let files = site_files();
    let list: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let zip = zip_of(&list, zip::CompressionMethod::Deflated);
    let deploy = |zip: &[u8]| {
        let r = send(
            &server,
            "POST",
            "admin.localhost",
            "/api/deploy?site=blog",
            &[
                ("Authorization", &format!("Bearer {}", server.token)),
                ("Content-Type", "application/zip"),
            ],
            zip,
        );
        assert_eq!(r.status, 200, "{}", r.text());
    };
    deploy(&zip);
    let r = get(&server, "/app.js", &[("Accept-Encoding", "br")]);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert!(
        server.stderr().contains("compressed 4 files"),
        "{}",
        server.stderr()
    );
    let conn = open_read_only(server.data.path());
    let blobs = count(&conn, "SELECT COUNT(*) FROM blobs");
    let variants = count(&conn, "SELECT COUNT(*) FROM blob_variants");
    assert_eq!(variants, 8);

    // The same files again: nothing compressed, the variants reused.
    deploy(&zip);
    assert!(
        server
            .stderr()
            .contains("compressed 0 files (0 B into 0 B of br and gzip variants)"),
        "{}",
        server.stderr()
    );
    assert!(server
        .stderr()
        .contains("reused the variants of 4 unchanged files"));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), blobs);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM blob_variants"), variants);
    let r = get(&server, "/app.js", &[("Accept-Encoding", "gzip")]);
    assert_eq!(decode(&r), file("app.js"));

    // Deleting the site collects its blobs: identity and variants alike.
    let r = admin_delete(&server, "/api/sites/blog");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM blob_variants"), 0);
    let left = count(
        &conn,
        "SELECT COUNT(*) FROM blobs WHERE sha256 NOT IN (SELECT sha256 FROM files)",
    );
    assert_eq!(left, 0, "variant blobs outlived their file");
}

#[test]
fn the_dashboard_is_served_compressed() {
    let server = Server::start();
    let js: &[u8] = include_bytes!("../../assets/admin/admin.js");
    let r = send(
        &server,
        "GET",
        "admin.localhost",
        "/admin.js",
        &[("Accept-Encoding", "gzip, deflate, br")],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(decode(&r), js);
    let r = send(&server, "GET", "admin.localhost", "/admin.js", &[], b"");
    assert_eq!(
        (r.header("content-encoding"), r.body.as_slice()),
        (None, js)
    );
    // Too small to compress: no Vary.
    let r = send(
        &server,
        "GET",
        "admin.localhost",
        "/favicon.svg",
        &[("Accept-Encoding", "br")],
        b"",
    );
    assert_eq!(
        (r.header("content-encoding"), r.header("vary")),
        (None, None)
    );
}
