//! Static serving from the virtual filesystem (DESIGN §4), against sites published with
//! `fazt site import`: index and clean-URL lookup, the 404 chain, path normalisation
//! (traversal refused with 400), dot-paths, ETag/304/HEAD, Range, Content-Type and
//! Cache-Control, large files streamed from SQLite, and the pinned admin assets.
//!
//! Fixtures are generated at run time in temporary directories (the large file is
//! pseudo-random, so it is never checked in).
use crate::common::*;
use std::io::Write;

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// A 3 MiB + a partial chunk of pseudo-random bytes: over the 512 KiB cache-file limit of
/// an 8 MiB cache, and not a multiple of the 128 KiB storage chunk.
const BIG_LEN: usize = 3 * 1024 * 1024 + 12_345;
const CHUNK: usize = 128 * 1024;

fn big_bytes() -> Vec<u8> {
    Rng(0x9e37_79b9_7f4a_7c15).bytes(BIG_LEN)
}

/// The `blog` site's files: (path, bytes). Dot-paths are written too but must not publish.
fn blog_files() -> Vec<(&'static str, Vec<u8>)> {
    let digits: Vec<u8> = (0..1000u32).map(|i| b'0' + (i % 10) as u8).collect();
    vec![
        ("index.html", b"<h1>blog home</h1>".to_vec()),
        ("docs/index.html", b"<h1>docs index</h1>".to_vec()),
        ("about.html", b"<h1>about page</h1>".to_vec()),
        ("guide/index.html", b"<h1>guide index</h1>".to_vec()),
        ("404.html", b"<h1>blog has no such page</h1>".to_vec()),
        ("robots.txt", b"User-agent: *\n".to_vec()),
        ("LICENSE", b"MIT licence text".to_vec()),
        ("hello world.txt", b"spaced out".to_vec()),
        ("My Post.html", b"<p>my post</p>".to_vec()),
        ("caf\u{e9}/men\u{fc}.html", b"<p>menu</p>".to_vec()),
        ("\u{65e5}\u{672c}.txt", b"nihon".to_vec()),
        ("\u{1f980}.png", b"\x89PNG crab".to_vec()),
        ("digits.txt", digits),
        ("style.css", b"body { color: red }".to_vec()),
        ("app.js", b"console.log('app')".to_vec()),
        ("data.json", b"{\"a\":1}".to_vec()),
        (
            "logo.svg",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec(),
        ),
        ("image.png", b"\x89PNG\r\n\x1a\nnot really".to_vec()),
        ("blob.unknownext", b"mystery".to_vec()),
        ("assets/logo.png", b"\x89PNG asset".to_vec()),
        ("app-3f2a9c1b.js", b"console.log('fingerprinted')".to_vec()),
        (".git/config", b"[core] secret-git-config".to_vec()),
        (".env", b"SECRET_ENV=1".to_vec()),
        (".hidden/x.txt", b"secret hidden dir".to_vec()),
        ("docs/.secret", b"secret dotfile in subdir".to_vec()),
        ("empty.txt", Vec::new()),
        ("what?.txt", b"question mark".to_vec()),
        ("c#.txt", b"hash sign".to_vec()),
        ("x%41.txt", b"literal percent escape".to_vec()),
        ("admin.js", b"// the blog's own admin.js".to_vec()),
    ]
}

fn blog_file(path: &str) -> Vec<u8> {
    blog_files()
        .into_iter()
        .find(|(p, _)| *p == path)
        .map(|(_, b)| b)
        .unwrap_or_else(|| panic!("no fixture file {path}"))
}

/// A server whose data dir already holds `blog` (and, if asked, the large file) imported
/// by the CLI before start. Fields drop in order: the server stops before its dirs go.
struct Fixture {
    server: Server,
    data: TempDir,
    _site: TempDir,
}

fn start_with_blog(env: &[(&str, &str)], with_big: bool) -> Fixture {
    let site = TempDir::new("vfs-blog");
    for (path, bytes) in blog_files() {
        write_file(site.path(), path, &bytes);
    }
    if with_big {
        write_file(site.path(), "big.bin", &big_bytes());
    }
    let data = TempDir::new("vfs-data");
    import("blog", site.path(), data.path());
    let server = start_on(data.path(), env);
    Fixture {
        server,
        data,
        _site: site,
    }
}

/// One request on a fresh connection with extra header lines.
fn get_with(server: &Server, host: &str, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    server.request(&format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
    ))
}

/// HEAD, pipelined with `GET /health`: returns the HEAD response and checks that the
/// next response starts right after the head (no body bytes were sent).
fn head(server: &Server, host: &str, path: &str) -> HttpResponse {
    let mut s = server.connect();
    s.write_all(
        format!(
            "HEAD {path} HTTP/1.1\r\nHost: {host}\r\n\r\nGET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    let head = read_response_with(&mut s, true).unwrap();
    let next = read_response(&mut s).unwrap();
    assert_eq!(
        (next.status, next.text().as_str()),
        (200, "ok\n"),
        "HEAD {path} must carry no body bytes"
    );
    head
}

fn health(server: &Server) -> serde_json::Value {
    let r = server.admin_get("/api/system/health", Some(&server.token));
    assert!(
        r.status == 200 || r.status == 503,
        "health: {} {}",
        r.status,
        r.text()
    );
    r.json()
}

fn assert_json_error(r: &HttpResponse, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}: {}", r.text());
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json")),
        "{what}: JSON error expected, got {:?}",
        r.header("content-type")
    );
    let message = r.json()["error"]["message"].as_str().map(str::to_string);
    assert!(
        message.is_some_and(|m| !m.is_empty()),
        "{what}: an error message: {}",
        r.text()
    );
}

// ---------------------------------------------------------------------------------------
// Lookup: index.html, clean URLs, exact files, encoded names
// ---------------------------------------------------------------------------------------

#[test]
fn index_html_for_root_and_directories() {
    let f = start_with_blog(&[], false);
    for (path, file) in [
        ("/", "index.html"),
        ("/docs/", "docs/index.html"),
        ("/guide/", "guide/index.html"),
        ("/?utm=1", "index.html"),
        ("/docs/?x=y", "docs/index.html"),
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.body, blog_file(file), "{path}");
        assert_eq!(
            r.header("content-type"),
            Some("text/html; charset=utf-8"),
            "{path}"
        );
    }
    // Without the slash: a redirect to it (tests/integration/site_serving.rs has the rest).
    let r = f.server.get("blog.localhost", "/docs");
    assert_eq!((r.status, r.header("location")), (301, Some("/docs/")));
    // A directory with no index.html is not listed.
    let r = f.server.get("blog.localhost", "/assets/");
    assert_eq!(r.status, 404);
    assert_eq!(r.body, blog_file("404.html"));
}

#[test]
fn clean_urls_and_exact_files() {
    let f = start_with_blog(&[], false);
    for (path, file) in [
        ("/about", "about.html"),
        ("/about.html", "about.html"),
        ("/about?ref=home", "about.html"),
        ("/guide/index.html", "guide/index.html"),
        ("/docs/index.html", "docs/index.html"),
        ("/docs/index", "docs/index.html"),
        ("/robots.txt", "robots.txt"),
        // A file stored under a bare name is served as itself.
        ("/LICENSE", "LICENSE"),
        ("/assets/logo.png", "assets/logo.png"),
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.body, blog_file(file), "{path}");
    }
    // Clean URLs apply only to names without an extension.
    for path in ["/about.htm", "/robots", "/guide.html", "/docs.html"] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
}

#[test]
fn unicode_and_space_names_via_percent_encoding() {
    let f = start_with_blog(&[], false);
    for (path, file) in [
        ("/hello%20world.txt", "hello world.txt"),
        ("/My%20Post.html", "My Post.html"),
        ("/My%20Post", "My Post.html"),
        ("/caf%C3%A9/men%C3%BC.html", "caf\u{e9}/men\u{fc}.html"),
        ("/caf%c3%a9/men%c3%bc", "caf\u{e9}/men\u{fc}.html"),
        ("/%E6%97%A5%E6%9C%AC.txt", "\u{65e5}\u{672c}.txt"),
        ("/%F0%9F%A6%80.png", "\u{1f980}.png"),
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.body, blog_file(file), "{path}");
    }
    // Characters with a meaning in URLs are reached through their escapes, and a literal
    // `%` in a stored name is `%25`.
    for (path, file) in [
        ("/what%3F.txt", "what?.txt"),
        ("/c%23.txt", "c#.txt"),
        ("/x%2541.txt", "x%41.txt"),
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(r.body, blog_file(file), "{path}");
    }
    // `/what?.txt` is the path `/what` with a query; `/x%41.txt` decodes to `xA.txt`.
    assert_eq!(f.server.get("blog.localhost", "/what?.txt").status, 404);
    assert_eq!(f.server.get("blog.localhost", "/x%41.txt").status, 404);
    // `+` is not a space in a path.
    let r = f.server.get("blog.localhost", "/hello+world.txt");
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------
// The 404 chain
// ---------------------------------------------------------------------------------------

#[test]
fn site_404_page_is_served_with_status_404() {
    let f = start_with_blog(&[], false);
    for path in [
        "/missing",
        "/missing.css",
        "/docs/missing/",
        "/no/such/dir/",
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.body, blog_file("404.html"), "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    }
    // No range or conditional handling on a not-found page: the whole page, still 404.
    let etag = quoted_etag(&blog_file("404.html"));
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/missing",
        &[("Range", "bytes=0-3"), ("If-None-Match", &etag)],
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.body, blog_file("404.html"));
    // The site's own 404.html is also an ordinary page of the site.
    let r = f.server.get("blog.localhost", "/404.html");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, blog_file("404.html"));
}

#[test]
fn the_404_site_page_then_a_replaced_404_site() {
    let server = Server::start();
    let data = server.data.path();
    let plain = TempDir::new("vfs-plain");
    write_file(plain.path(), "index.html", b"<h1>plain</h1>");
    import("plain", plain.path(), data);
    let r = wait_for(&server, "plain.localhost", "/", |r| r.status == 200);
    assert_eq!(r.text(), "<h1>plain</h1>");

    // Without its own 404.html: the seeded `404` site's page, status 404.
    let seeded = server.get("404.localhost", "/");
    assert_eq!(seeded.status, 200, "the 404 site itself is a site");
    for (host, path) in [
        ("plain.localhost", "/missing"),
        ("a.b.localhost", "/"),
        ("127.0.0.1", "/x"),
        ("nosuchsite.localhost", "/"),
    ] {
        let r = server.get(host, path);
        assert_eq!(r.status, 404, "{host}{path}");
        assert_eq!(r.body, seeded.body, "{host}{path}");
    }

    // Replace the 404 site: its index.html becomes the not-found page everywhere.
    let custom = TempDir::new("vfs-404");
    let page = b"<h1>custom not found</h1>".to_vec();
    write_file(custom.path(), "index.html", &page);
    import("404", custom.path(), data);
    let r = wait_for(&server, "plain.localhost", "/missing", |r| r.body == page);
    assert_eq!(
        (r.status, r.text()),
        (404, String::from_utf8(page.clone()).unwrap())
    );
    for (host, path) in [
        ("a.b.localhost", "/"),
        ("127.0.0.1", "/x"),
        ("nosuchsite.localhost", "/y"),
    ] {
        let r = server.get(host, path);
        assert_eq!(r.status, 404, "{host}{path}");
        assert_eq!(r.body, page, "{host}{path}");
    }
    let r = server.get("404.localhost", "/");
    assert_eq!((r.status, r.body.clone()), (200, page.clone()));

    // A 404 site with its own 404.html: that file answers for missing pages.
    let with_404 = TempDir::new("vfs-404b");
    write_file(with_404.path(), "index.html", b"<h1>404 site home</h1>");
    write_file(with_404.path(), "404.html", b"<h1>the 404.html</h1>");
    import("404", with_404.path(), data);
    let r = wait_for(&server, "plain.localhost", "/gone", |r| {
        r.body == b"<h1>the 404.html</h1>"
    });
    assert_eq!(r.status, 404);
    assert_eq!(r.text(), "<h1>the 404.html</h1>");
    let r = server.get("a.b.localhost", "/");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "<h1>the 404.html</h1>")
    );
}

// ---------------------------------------------------------------------------------------
// Bad paths
// ---------------------------------------------------------------------------------------

#[test]
fn traversal_and_malformed_paths_are_400_json() {
    let f = start_with_blog(&[], false);
    let raw_paths: &[&[u8]] = &[
        b"/../x",
        b"/..",
        b"/a/../b",
        b"/docs/../index.html",
        b"/%2e%2e/x",
        b"/%2E%2e/x",
        b"/%2e%2E/x",
        b"/.%2e/x",
        b"/a/%2f/b",
        b"/a%2fb",
        b"/a%2Fb",
        b"/..%2f..%2fetc%2fpasswd",
        b"/a\\b",
        b"/..\\x",
        b"/a%5cb",
        b"/a%5Cb",
        b"/%00",
        b"/index.html%00.png",
        b"/a%0a",
        b"/a%0d%0ab",
        b"/a%01",
        b"/a%7f",
        b"/a\x01b",
        b"/a\x7fb",
        b"//double",
        b"/a//b",
        b"/./a",
        b"/a/.",
        b"/%zz",
        b"/%c0%ae%c0%ae/x",
        b"/%ff",
    ];
    for path in raw_paths {
        let mut raw = b"GET ".to_vec();
        raw.extend_from_slice(path);
        raw.extend_from_slice(b" HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n");
        let r = raw_request(f.server.addr, &raw);
        assert_json_error(&r, 400, &String::from_utf8_lossy(path));
    }
    // HEAD gets the same verdict.
    let mut s = f.server.connect();
    s.write_all(b"HEAD /../x HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(read_response_with(&mut s, true).unwrap().status, 400);
    // The server is still serving normally afterwards.
    assert_eq!(f.server.get("blog.localhost", "/").status, 200);
}

#[test]
fn files_of_other_sites_are_never_reachable_by_traversal() {
    let f = start_with_blog(&[], false);
    let secret_dir = TempDir::new("vfs-secret");
    let marker = b"TOP-SECRET-MARKER-6a1f".to_vec();
    write_file(secret_dir.path(), "key.txt", &marker);
    write_file(secret_dir.path(), "index.html", &marker);
    import("secret", secret_dir.path(), f.data.path());
    let r = wait_for(&f.server, "secret.localhost", "/key.txt", |r| {
        r.status == 200
    });
    assert_eq!(r.body, marker, "the secret site itself serves the file");
    let landing = f.server.get("root.localhost", "/").body;

    let attempts = [
        "/../secret/key.txt",
        "/../../secret/key.txt",
        "/%2e%2e/secret/key.txt",
        "/%2E%2E/secret/",
        "/.%2e/secret/key.txt",
        "/..%2fsecret%2fkey.txt",
        "/%252e%252e/secret/key.txt",
        "/%252e%252e%252fsecret%252fkey.txt",
        "/..%5csecret%5ckey.txt",
        "/..\\secret\\key.txt",
        "/%c0%ae%c0%ae/secret/key.txt",
        "/docs/../../secret/key.txt",
        "/secret/key.txt",
        "/secret.localhost/key.txt",
        "/../root/index.html",
        "/%2e%2e/root/",
        "/../root",
        "/key.txt",
    ];
    for path in attempts {
        let r = f.server.get("blog.localhost", path);
        assert_ne!(r.status, 200, "{path} must not be found");
        assert!(
            !r.body.windows(marker.len()).any(|w| w == marker),
            "{path} leaked another site's file"
        );
        assert_ne!(r.body, landing, "{path} returned the root site's page");
    }
}

#[test]
fn dot_paths_in_the_imported_dir_are_not_published() {
    let f = start_with_blog(&[], false);
    for path in [
        "/.git/config",
        "/.git/",
        "/.git",
        "/.env",
        "/.hidden/x.txt",
        "/.hidden/x",
        "/docs/.secret",
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("secret"), "{path}: {}", r.text());
        assert!(!r.text().contains("SECRET"), "{path}: {}", r.text());
    }
}

// ---------------------------------------------------------------------------------------
// ETag, 304, HEAD
// ---------------------------------------------------------------------------------------

#[test]
fn etag_is_the_sha256_of_the_bytes_and_if_none_match_gives_304() {
    let f = start_with_blog(&[], false);
    for (path, file) in [
        ("/", "index.html"),
        ("/style.css", "style.css"),
        ("/digits.txt", "digits.txt"),
        ("/about", "about.html"),
        ("/%F0%9F%A6%80.png", "\u{1f980}.png"),
    ] {
        let bytes = blog_file(file);
        let etag = quoted_etag(&bytes);
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, bytes, "{path}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{path}");

        for inm in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"nope\", {etag}"),
            "*".to_string(),
        ] {
            let r = get_with(
                &f.server,
                "blog.localhost",
                path,
                &[("If-None-Match", &inm)],
            );
            assert_eq!(r.status, 304, "{path} If-None-Match: {inm}");
            assert!(r.body.is_empty(), "{path}: a 304 has no body");
            assert_eq!(r.header("etag"), Some(etag.as_str()), "{path}");
            assert!(
                r.header("content-length").is_none_or(|v| v == "0"),
                "{path}: 304 must not announce a body: {:?}",
                r.header("content-length")
            );
        }
        let stale = get_with(
            &f.server,
            "blog.localhost",
            path,
            &[("If-None-Match", "\"0000\"")],
        );
        assert_eq!((stale.status, stale.body.clone()), (200, bytes.clone()));
    }
    // Same bytes under another name: same ETag (content-addressed).
    let a = f.server.get("blog.localhost", "/index.html");
    let b = f.server.get("blog.localhost", "/");
    assert_eq!(a.header("etag"), b.header("etag"));
}

#[test]
fn head_sends_headers_without_a_body() {
    let f = start_with_blog(&[], false);
    for (path, file) in [
        ("/", "index.html"),
        ("/digits.txt", "digits.txt"),
        ("/docs/", "docs/index.html"),
        ("/data.json", "data.json"),
    ] {
        let bytes = blog_file(file);
        let r = head(&f.server, "blog.localhost", path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(
            r.header("content-length"),
            Some(bytes.len().to_string().as_str()),
            "{path}"
        );
        assert_eq!(
            r.header("etag"),
            Some(quoted_etag(&bytes).as_str()),
            "{path}"
        );
        let get = f.server.get("blog.localhost", path);
        assert_eq!(r.header("content-type"), get.header("content-type"));
        assert_eq!(r.header("cache-control"), get.header("cache-control"));
    }
    let missing = head(&f.server, "blog.localhost", "/missing");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-length"),
        Some(blog_file("404.html").len().to_string().as_str())
    );
}

// ---------------------------------------------------------------------------------------
// Range
// ---------------------------------------------------------------------------------------

#[test]
fn range_requests_on_a_small_file() {
    let f = start_with_blog(&[], false);
    let bytes = blog_file("digits.txt");
    let n = bytes.len();
    let range = |spec: &str| {
        get_with(
            &f.server,
            "blog.localhost",
            "/digits.txt",
            &[("Range", spec)],
        )
    };

    let full = f.server.get("blog.localhost", "/digits.txt");
    assert_eq!(full.header("accept-ranges"), Some("bytes"));

    for (spec, start, end) in [
        ("bytes=0-9", 0, 9),
        ("bytes=-5", n - 5, n - 1),
        ("bytes=10-", 10, n - 1),
        ("bytes=990-5000", 990, n - 1),
        ("bytes=-5000", 0, n - 1),
        ("bytes=5-5", 5, 5),
        ("BYTES = 3 - 7", 3, 7),
    ] {
        let r = range(spec);
        assert_eq!(r.status, 206, "{spec}: {}", r.text());
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{n}").as_str()),
            "{spec}"
        );
        assert_eq!(r.body, &bytes[start..=end], "{spec}");
        assert_eq!(
            r.header("content-length"),
            Some((end - start + 1).to_string().as_str()),
            "{spec}"
        );
        assert_eq!(r.header("etag"), Some(quoted_etag(&bytes).as_str()));
    }

    for spec in [
        format!("bytes={n}-"),
        format!("bytes={}-", n + 10),
        "bytes=-0".into(),
    ] {
        let r = range(&spec);
        assert_eq!(r.status, 416, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{n}").as_str()),
            "{spec}"
        );
    }

    // Multi-range, other units, malformed and inverted ranges: the whole file with 200.
    for spec in [
        "bytes=0-1,5-6",
        "bytes=0-1, -3",
        "items=0-1",
        "bytes=abc",
        "bytes=9-2",
    ] {
        let r = range(spec);
        assert_eq!(r.status, 200, "{spec}");
        assert_eq!(r.body, bytes, "{spec}");
        assert!(r.header("content-range").is_none(), "{spec}");
    }

    // A matching If-None-Match wins over Range.
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/digits.txt",
        &[
            ("Range", "bytes=0-9"),
            ("If-None-Match", &quoted_etag(&bytes)),
        ],
    );
    assert_eq!(r.status, 304);
}

#[test]
fn an_empty_file_is_served_and_has_no_satisfiable_range() {
    let f = start_with_blog(&[], false);
    let r = f.server.get("blog.localhost", "/empty.txt");
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("etag"), Some(quoted_etag(b"").as_str()));
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/empty.txt",
        &[("Range", "bytes=0-0")],
    );
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */0"));
    let r = head(&f.server, "blog.localhost", "/empty.txt");
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
}

/// RFC 9110 §13.1.5 and §13.2.2 step 5: with Range and If-Range, "if the validator matches
/// … respond 206; otherwise, ignore the Range header field and respond 200". A weak ETag or
/// a date (these files have no Last-Modified) never matches. Otherwise a client resuming a
/// download splices bytes of the new version onto its copy of the old one.
#[test]
fn a_range_with_a_stale_if_range_gets_the_whole_file() {
    let f = start_with_blog(&[], false);
    let bytes = blog_file("digits.txt");
    let etag = quoted_etag(&bytes);
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/digits.txt",
        &[("Range", "bytes=0-9"), ("If-Range", &etag)],
    );
    assert_eq!(r.status, 206, "a matching If-Range keeps the range");
    assert_eq!(r.body, &bytes[..10]);
    for stale in [
        "\"0123456789abcdef\"",
        "W/\"0123456789abcdef\"",
        "Wed, 21 Oct 2015 07:28:00 GMT",
    ] {
        let r = get_with(
            &f.server,
            "blog.localhost",
            "/digits.txt",
            &[("Range", "bytes=0-9"), ("If-Range", stale)],
        );
        assert_eq!(
            r.status, 200,
            "If-Range: {stale} does not match (the file has no Last-Modified), so the \
             Range must be ignored"
        );
        assert_eq!(r.body, bytes, "If-Range: {stale}");
    }
}

#[test]
fn files_at_the_cache_file_limit_boundary() {
    // FAZT_CACHE_BYTES=8M: the largest cached file is 512 KiB.
    let server = Server::builder().env("FAZT_CACHE_BYTES", "8M").start();
    let limit = 512 * 1024;
    let mut rng = Rng(42);
    let at = rng.bytes(limit);
    let over = rng.bytes(limit + 1);
    let site = TempDir::new("vfs-edge");
    write_file(site.path(), "at.bin", &at);
    write_file(site.path(), "over.bin", &over);
    import("edge", site.path(), server.data.path());
    wait_for(&server, "edge.localhost", "/at.bin", |r| r.status == 200);

    let streamed = |server: &Server| health(server)["cache"]["streamed_bytes"].as_u64().unwrap();
    let s0 = streamed(&server);
    for _ in 0..2 {
        let r = server.get("edge.localhost", "/at.bin");
        assert!(r.status == 200 && r.body == at, "at.bin");
    }
    assert_eq!(
        streamed(&server),
        s0,
        "a file of exactly the limit is cached"
    );
    for _ in 0..2 {
        let r = server.get("edge.localhost", "/over.bin");
        assert!(r.status == 200 && r.body == over, "over.bin");
    }
    // Counted when the server's write returns, which can be just after the client has read
    // the last byte: wait for it, bounded.
    let want = s0 + 2 * over.len() as u64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while streamed(&server) < want && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(
        streamed(&server),
        want,
        "a file one byte over the limit is streamed"
    );
    let r = get_with(
        &server,
        "edge.localhost",
        "/over.bin",
        &[("Range", &format!("bytes={}-", limit - 3))],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &over[limit - 3..]);
}

#[test]
fn range_on_a_streamed_file_crosses_chunk_boundaries_exactly() {
    let f = start_with_blog(&[("FAZT_CACHE_BYTES", "8M")], true);
    let big = big_bytes();
    let n = big.len();
    let cases = [
        (CHUNK - 72, 2 * CHUNK + 100), // mid-chunk start, crosses two boundaries
        (CHUNK - 1, CHUNK),            // one byte each side of a boundary
        (CHUNK, CHUNK),                // first byte of a chunk
        (3 * CHUNK + 5, 3 * CHUNK + 7), // inside one chunk
        (100_000, 900_000),            // many chunks
        (n - CHUNK - 10, n - 1),       // into the short last chunk
        (0, CHUNK - 1),                // exactly one chunk
        (7 * CHUNK + 12_345, 20 * CHUNK + 99), // long mid-file span
    ];
    for (start, end) in cases {
        let spec = format!("bytes={start}-{end}");
        let r = get_with(&f.server, "blog.localhost", "/big.bin", &[("Range", &spec)]);
        assert_eq!(r.status, 206, "{spec}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {start}-{end}/{n}").as_str()),
            "{spec}"
        );
        assert!(r.body == big[start..=end], "{spec}: wrong bytes");
    }
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/big.bin",
        &[("Range", "bytes=-5")],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &big[n - 5..]);
    let from = n - 200_000;
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/big.bin",
        &[("Range", &format!("bytes={from}-"))],
    );
    assert_eq!(r.status, 206);
    assert!(
        r.body == big[from..],
        "open-ended range of the streamed file"
    );
    let r = get_with(
        &f.server,
        "blog.localhost",
        "/big.bin",
        &[("Range", &format!("bytes={n}-"))],
    );
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{n}").as_str())
    );
    let r = head(&f.server, "blog.localhost", "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-length"), Some(n.to_string().as_str()));
    assert_eq!(r.header("etag"), Some(quoted_etag(&big).as_str()));
}

// ---------------------------------------------------------------------------------------
// Content-Type and Cache-Control
// ---------------------------------------------------------------------------------------

#[test]
fn content_type_and_cache_control_by_file_kind() {
    let f = start_with_blog(&[], false);
    let immutable = "public, max-age=31536000, immutable";
    let short = "public, max-age=300";
    for (path, mime, cache) in [
        ("/", "text/html; charset=utf-8", "no-cache"),
        ("/about", "text/html; charset=utf-8", "no-cache"),
        ("/docs/", "text/html; charset=utf-8", "no-cache"),
        ("/style.css", "text/css; charset=utf-8", short),
        ("/app.js", "text/javascript; charset=utf-8", short),
        ("/data.json", "application/json", short),
        ("/logo.svg", "image/svg+xml", short),
        ("/image.png", "image/png", short),
        ("/robots.txt", "text/plain; charset=utf-8", short),
        ("/blob.unknownext", "application/octet-stream", short),
        ("/LICENSE", "application/octet-stream", short),
        ("/assets/logo.png", "image/png", immutable),
        (
            "/app-3f2a9c1b.js",
            "text/javascript; charset=utf-8",
            immutable,
        ),
    ] {
        let r = f.server.get("blog.localhost", path);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
        assert_eq!(r.header("cache-control"), Some(cache), "{path}");
    }
}

// ---------------------------------------------------------------------------------------
// Large files
// ---------------------------------------------------------------------------------------

#[test]
fn a_file_over_the_cache_limit_streams_in_full_to_concurrent_clients() {
    let f = start_with_blog(&[("FAZT_CACHE_BYTES", "8M")], true);
    let big = big_bytes();
    let before = health(&f.server)["cache"].clone();
    assert_eq!(before["bytes_limit"], 8 * 1024 * 1024, "{before}");

    let r = f.server.get("blog.localhost", "/big.bin");
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), big.len());
    assert!(r.body == big, "streamed body differs from the file");
    assert_eq!(r.header("etag"), Some(quoted_etag(&big).as_str()));
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));

    let addr = f.server.addr;
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    raw_request(
                        addr,
                        b"GET /big.bin HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n",
                    )
                })
            })
            .collect();
        for w in workers {
            let r = w.join().unwrap();
            assert_eq!(r.status, 200);
            assert!(r.body == big, "a concurrent client got different bytes");
        }
    });

    let after = health(&f.server)["cache"].clone();
    let streamed =
        after["streamed_bytes"].as_u64().unwrap() - before["streamed_bytes"].as_u64().unwrap();
    assert!(
        streamed >= 5 * big.len() as u64,
        "streamed_bytes grew by {streamed}, expected at least {}",
        5 * big.len()
    );
    assert!(
        after["bytes_used"].as_u64().unwrap() <= after["bytes_limit"].as_u64().unwrap(),
        "{after}"
    );
    assert!(
        after["bytes_used"].as_u64().unwrap() < big.len() as u64,
        "the large file must not be cached: {after}"
    );
}

// ---------------------------------------------------------------------------------------
// Methods and the admin dashboard
// ---------------------------------------------------------------------------------------

#[test]
fn post_to_a_site_is_405() {
    let f = start_with_blog(&[], false);
    for (host, path) in [
        ("blog.localhost", "/"),
        ("blog.localhost", "/about"),
        ("blog.localhost", "/missing"),
        ("root.localhost", "/"),
        ("a.b.localhost", "/"),
    ] {
        let r = f.server.request(&format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc"
        ));
        assert_json_error(&r, 405, &format!("POST {host}{path}"));
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{host}{path}");
    }
    for method in ["PUT", "DELETE", "PATCH"] {
        let r = f.server.request(&format!(
            "{method} /about HTTP/1.1\r\nHost: blog.localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        ));
        assert_eq!(r.status, 405, "{method}");
    }
    // The site is unchanged.
    assert_eq!(
        f.server.get("blog.localhost", "/about").body,
        blog_file("about.html")
    );
}

#[test]
fn admin_dashboard_and_pinned_assets() {
    let f = start_with_blog(&[], false);
    let page = f.server.get("admin.localhost", "/");
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("fazt admin"));
    let js = f.server.get("admin.localhost", "/admin.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(!js.body.is_empty());
    assert_eq!(js.header("etag"), Some(quoted_etag(&js.body).as_str()));
    let css = f.server.get("admin.localhost", "/admin.css");
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
    let r = get_with(
        &f.server,
        "admin.localhost",
        "/admin.js",
        &[("If-None-Match", js.header("etag").unwrap())],
    );
    assert_eq!(r.status, 304);
    // The admin assets are not a site's files, and a site's files are not admin assets:
    // a site's own `admin.js` and `index.html` are its own, whatever is pinned.
    let own = f.server.get("blog.localhost", "/admin.js");
    assert_eq!((own.status, own.body.clone()), (200, blog_file("admin.js")));
    assert_eq!(
        f.server.get("blog.localhost", "/").body,
        blog_file("index.html")
    );
    assert_eq!(f.server.get("blog.localhost", "/admin.css").status, 404);
    assert_eq!(f.server.get("root.localhost", "/admin.js").status, 404);
    assert_eq!(f.server.get("admin.localhost", "/about.html").status, 404);
    assert_ne!(f.server.get("admin.localhost", "/../admin.js").status, 200);
}
