//! Serving fixes from using fazt with real sites and clients (issue #10): a directory
//! reached without its trailing slash redirects; `.well-known/` is published by every way
//! a site gets in; `If-Match`/`If-Unmodified-Since` → 412 and `Last-Modified` with
//! `If-Modified-Since` → 304, in the order of RFC 9110 §13.2.2; generated 404 pages carry
//! no validators. The browser-level check of the redirect is in `browser.rs`.
use crate::common::*;
use std::io::Write;

/// The `blog` site of these tests: (path, bytes).
fn blog_files() -> Vec<(&'static str, &'static [u8])> {
    vec![
        ("index.html", b"<h1>home</h1>"),
        ("blog/index.html", b"<h1>blog index</h1>"),
        ("a/b/index.html", b"<h1>a/b index</h1>"),
        ("caf\u{e9}/index.html", b"<h1>cafe index</h1>"),
        ("about.html", b"<h1>about</h1>"),
        // A clean-URL page wins over a directory of the same name.
        ("guide.html", b"<h1>guide page</h1>"),
        ("guide/index.html", b"<h1>guide index</h1>"),
        ("style.css", b"body { color: red }"),
        ("404.html", b"<h1>blog: no such page</h1>"),
    ]
}

fn blog_dir() -> TempDir {
    let dir = TempDir::new("serving-blog");
    for (path, bytes) in blog_files() {
        write_file(dir.path(), path, bytes);
    }
    dir
}

/// A server whose data dir holds `blog`, imported before start. Fields drop in order: the
/// server stops before its directories go.
struct Fixture {
    server: Server,
    _data: TempDir,
    _site: TempDir,
}

fn start_with_blog() -> Fixture {
    let site = blog_dir();
    let data = TempDir::new("serving-data");
    import("blog", site.path(), data.path());
    Fixture {
        server: start_on(data.path(), &[]),
        _data: data,
        _site: site,
    }
}

fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    send(server, "GET", "blog.localhost", path, headers, b"")
}

/// HEAD on a connection of its own: reads the head only, then checks that nothing follows.
fn head_of(server: &Server, path: &str) -> HttpResponse {
    let mut s = server.connect();
    s.write_all(
        format!("HEAD {path} HTTP/1.1\r\nHost: blog.localhost\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .unwrap();
    let r = read_response_with(&mut s, true).unwrap();
    let mut rest = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut rest);
    assert!(
        rest.is_empty(),
        "HEAD {path}: body bytes followed: {rest:?}"
    );
    r
}

fn error_code(r: &HttpResponse) -> String {
    r.json()["error"]["code"].as_str().unwrap_or("").to_string()
}

// ---------------------------------------------------------------------------------------
// A directory without its trailing slash
// ---------------------------------------------------------------------------------------

#[test]
fn a_directory_without_its_slash_redirects_keeping_the_query() {
    let f = start_with_blog();
    let server = &f.server;
    for (path, location) in [
        ("/blog", "/blog/"),
        ("/blog?utm_source=x&q=a%20b", "/blog/?utm_source=x&q=a%20b"),
        ("/a/b", "/a/b/"),
        ("/caf%C3%A9", "/caf%C3%A9/"),
        ("/caf%c3%a9?x", "/caf%c3%a9/?x"),
    ] {
        let r = server.get("blog.localhost", path);
        assert_eq!(r.status, 301, "{path}: {}", r.text());
        assert_eq!(r.header("location"), Some(location), "{path}");
        assert!(r.body.is_empty(), "{path}");
        assert!(r.header("etag").is_none(), "{path}: a redirect has no ETag");
        assert_eq!(r.header("cache-control"), Some("public, max-age=300"));
        let head = head_of(server, path);
        assert_eq!(head.status, 301, "HEAD {path}");
        assert_eq!(head.header("location"), Some(location), "HEAD {path}");
        // Following it serves the directory's page.
        let followed = server.get("blog.localhost", location);
        assert_eq!(followed.status, 200, "{location}");
        assert!(followed.text().contains("index"), "{location}");
    }
    // Preconditions do not turn a redirect into something else.
    let r = get_with(server, "/blog", &[("If-Match", "\"nope\"")]);
    assert_eq!((r.status, r.header("location")), (301, Some("/blog/")));
}

#[test]
fn pages_and_files_are_still_served_in_place() {
    let f = start_with_blog();
    let server = &f.server;
    for (path, body) in [
        ("/about", "<h1>about</h1>"),
        ("/about?x=1", "<h1>about</h1>"),
        ("/about.html", "<h1>about</h1>"),
        ("/guide", "<h1>guide page</h1>"),
        ("/guide/", "<h1>guide index</h1>"),
        ("/blog/", "<h1>blog index</h1>"),
        ("/blog/index.html", "<h1>blog index</h1>"),
        ("/", "<h1>home</h1>"),
    ] {
        let r = server.get("blog.localhost", path);
        assert_eq!((r.status, r.text().as_str()), (200, body), "{path}");
        assert!(r.header("location").is_none(), "{path}");
    }
    // A missing directory is the site's 404, not a redirect.
    let r = server.get("blog.localhost", "/nothing");
    assert_eq!(
        (r.status, r.text().as_str()),
        (404, "<h1>blog: no such page</h1>")
    );
}

// ---------------------------------------------------------------------------------------
// .well-known/
// ---------------------------------------------------------------------------------------

const SECURITY_TXT: &[u8] = b"Contact: mailto:security@example.com\n";

/// A site directory with a `.well-known/` and the dot-paths that must stay private.
fn well_known_dir() -> TempDir {
    let dir = TempDir::new("serving-wk");
    write_file(dir.path(), "index.html", b"<h1>wk</h1>");
    write_file(dir.path(), ".well-known/security.txt", SECURITY_TXT);
    write_file(
        dir.path(),
        ".well-known/matrix/server",
        b"{\"m.server\":\"m.example.com:443\"}",
    );
    write_file(dir.path(), ".git/config", b"[core] secret");
    write_file(dir.path(), ".env", b"SECRET=1");
    write_file(dir.path(), "docs/.well-known/x.txt", b"secret nested");
    dir
}

/// What every way of publishing `well_known_dir` must serve and hide on `host`.
fn assert_well_known_only(server: &Server, host: &str) {
    let r = wait_for(server, host, "/.well-known/security.txt", |r| {
        r.status == 200
    });
    assert_eq!(r.status, 200, "{host}: {}", r.text());
    assert_eq!(r.body, SECURITY_TXT);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    let r = server.get(host, "/.well-known/matrix/server");
    assert_eq!(r.status, 200, "{host}");
    for path in ["/.git/config", "/.git/", "/.env", "/docs/.well-known/x.txt"] {
        let r = server.get(host, path);
        assert_eq!(r.status, 404, "{host}{path}");
        assert!(!r.text().contains("secret"), "{host}{path}");
        assert!(!r.text().contains("SECRET"), "{host}{path}");
    }
    // The URL rules still refuse traversal through it.
    for path in [
        "/.well-known/../.env",
        "/.well-known/%2e%2e/.env",
        "/.well-known/./x",
    ] {
        assert_eq!(server.get(host, path).status, 400, "{host}{path}");
    }
}

#[test]
fn well_known_is_published_by_import() {
    let server = &Server::start();
    let dir = well_known_dir();
    import("wk", dir.path(), server.data.path());
    assert_well_known_only(server, "wk.localhost");
}

/// Deploys a zip of `files` to `site` through the admin API, asserting a 200.
fn deploy_zip(server: &Server, site: &str, files: &[(&str, &[u8])]) {
    let r = deploy_files(server, site, files, zip::CompressionMethod::Deflated);
    assert_eq!(r.status, 200, "{}", r.text());
}

#[test]
fn a_file_stored_under_the_bare_name_wins_over_the_redirect() {
    // Only an archive can hold both `notes` and `notes/index.html` (a directory can't).
    let server = &Server::start();
    deploy_zip(
        server,
        "notes",
        &[
            ("notes", b"plain notes file"),
            ("notes/index.html", b"<h1>notes index</h1>"),
        ],
    );
    let r = wait_for(server, "notes.localhost", "/notes", |r| r.status == 200);
    assert_eq!((r.status, r.text().as_str()), (200, "plain notes file"));
    let r = server.get("notes.localhost", "/notes/");
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>notes index</h1>"));
}

#[test]
fn well_known_is_published_by_a_deploy_archive() {
    let server = &Server::start();
    let files: [(&str, &[u8]); 5] = [
        ("index.html", b"<h1>wk</h1>"),
        (".well-known/security.txt", SECURITY_TXT),
        (".well-known/matrix/server", b"{}"),
        (".git/config", b"[core] secret"),
        (".env", b"SECRET=1"),
    ];
    let mut files = files.to_vec();
    files.push(("docs/.well-known/x.txt", b"secret nested"));
    deploy_zip(server, "wk", &files);
    assert_well_known_only(server, "wk.localhost");
}

#[test]
fn well_known_is_published_by_the_deploy_client() {
    let server = &Server::start();
    let home = TempDir::new("serving-home");
    let dir = well_known_dir();
    let url = format!("http://localhost:{}", server.addr.port());
    let (code, out, err) = run_client(
        &[
            "deploy",
            s(dir.path()),
            "--site",
            "wk",
            "--server",
            &url,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    assert_well_known_only(server, "wk.localhost");
}

// ---------------------------------------------------------------------------------------
// Last-Modified and preconditions
// ---------------------------------------------------------------------------------------

/// Unix seconds of an HTTP-date as fazt writes it (IMF-fixdate).
fn unix_of(date: &str) -> i64 {
    let t = httpdate::parse_http_date(date).unwrap_or_else(|_| panic!("not a date: {date}"));
    t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn date_of(unix: i64) -> String {
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix as u64))
}

/// (created_at of the current deployment, updated_at) of `site`.
fn deployment_times(server: &Server, site: &str) -> (i64, i64) {
    let conn = open_read_only(server.data.path());
    conn.query_row(
        "SELECT d.created_at, s.updated_at FROM sites s
         JOIN deployments d ON d.id = s.current_deployment WHERE s.name = ?1",
        [site],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .unwrap()
}

#[test]
fn last_modified_is_the_deployment_time_and_if_modified_since_gives_304() {
    let server = &Server::start();
    let dir = blog_dir();
    import("blog", dir.path(), server.data.path());
    let page = wait_for(server, "blog.localhost", "/about", |r| r.status == 200);
    let (created, live_since) = deployment_times(server, "blog");
    assert_eq!(created, live_since, "a deploy goes live when it is created");
    let last_modified = page
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    assert_eq!(last_modified, date_of(created));
    assert!(last_modified.ends_with(" GMT") && last_modified.len() == 29);
    let css = server.get("blog.localhost", "/style.css");
    assert_eq!(css.header("last-modified"), Some(last_modified.as_str()));

    // If-Modified-Since at or after it: 304 with the validators; before it: the file.
    for since in [last_modified.clone(), date_of(created + 3600)] {
        let r = get_with(server, "/about", &[("If-Modified-Since", &since)]);
        assert_eq!(r.status, 304, "If-Modified-Since: {since}");
        assert!(r.body.is_empty());
        assert_eq!(r.header("last-modified"), Some(last_modified.as_str()));
        assert_eq!(r.header("etag"), page.header("etag"));
    }
    let r = get_with(
        server,
        "/about",
        &[("If-Modified-Since", &date_of(created - 1))],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "<h1>about</h1>"));
    // The obsolete asctime form is understood too; a date that is no date is ignored.
    let asctime = httpdate_asctime(created);
    let r = get_with(server, "/about", &[("If-Modified-Since", &asctime)]);
    assert_eq!(r.status, 304, "{asctime}");
    let r = get_with(server, "/about", &[("If-Modified-Since", "last tuesday")]);
    assert_eq!(r.status, 200);
    // HEAD the same way.
    let mut s = server.connect();
    s.write_all(
        format!(
            "HEAD /about HTTP/1.1\r\nHost: blog.localhost\r\nIf-Modified-Since: {last_modified}\r\nConnection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(read_response_with(&mut s, true).unwrap().status, 304);
    // If-None-Match decides alone when present: a stale tag gets the file whatever the date.
    let r = get_with(
        server,
        "/about",
        &[
            ("If-None-Match", "\"stale\""),
            ("If-Modified-Since", &last_modified),
        ],
    );
    assert_eq!(r.status, 200);
    // A POST is refused before any precondition.
    let r = send(
        server,
        "POST",
        "blog.localhost",
        "/about",
        &[("If-Modified-Since", &last_modified)],
        b"",
    );
    assert_eq!(r.status, 405);
}

/// `Sun Nov  6 08:49:37 1994`, the asctime form, of unix seconds.
fn httpdate_asctime(unix: i64) -> String {
    // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT" → asctime "Sun Nov  6 08:49:37 1994".
    let fixdate = date_of(unix);
    let parts: Vec<&str> = fixdate.split(' ').collect();
    let day: u32 = parts[1].parse().unwrap();
    format!(
        "{} {} {:>2} {} {}",
        parts[0].trim_end_matches(','),
        parts[2],
        day,
        parts[4],
        parts[3]
    )
}

#[test]
fn last_modified_moves_forward_on_a_rollback() {
    let server = &Server::start();
    let v1 = TempDir::new("serving-v1");
    write_file(v1.path(), "index.html", b"v1");
    import("blog", v1.path(), server.data.path());
    wait_for(server, "blog.localhost", "/", |r| r.text() == "v1");
    let (v1_created, _) = deployment_times(server, "blog");
    // Deployment times are in seconds: the second deploy must be in a later one.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let v2 = TempDir::new("serving-v2");
    write_file(v2.path(), "index.html", b"v2");
    import("blog", v2.path(), server.data.path());
    let r2 = wait_for(server, "blog.localhost", "/", |r| r.text() == "v2");
    let v2_modified = r2.header("last-modified").unwrap().to_string();
    assert!(unix_of(&v2_modified) > v1_created);

    let r = admin_raw(server, "POST", "/api/sites/blog/rollback", "");
    assert_eq!(r.status, 200, "{}", r.text());
    let r1 = wait_for(server, "blog.localhost", "/", |r| r.text() == "v1");
    let modified = r1.header("last-modified").unwrap().to_string();
    // v1's own created_at would be older than what a client holding v2 has, and that
    // client's If-Modified-Since would wrongly get a 304 for v1.
    assert!(
        unix_of(&modified) >= unix_of(&v2_modified),
        "{modified} < {v2_modified}"
    );
    let (_, live_since) = deployment_times(server, "blog");
    assert_eq!(unix_of(&modified), live_since);
    let r = get_with(
        server,
        "/",
        &[("If-Modified-Since", &date_of(live_since - 1))],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "v1"));
}

#[test]
fn failed_if_match_and_if_unmodified_since_are_412() {
    let f = start_with_blog();
    let server = &f.server;
    let page = server.get("blog.localhost", "/about");
    let etag = page.header("etag").unwrap().to_string();
    let modified = page.header("last-modified").unwrap().to_string();
    let earlier = date_of(unix_of(&modified) - 1);
    let later = date_of(unix_of(&modified) + 1);
    let weak = format!("W/{etag}");
    let listed = format!("\"other\", {etag}");

    let cases: Vec<(Vec<(&str, &str)>, u16)> = vec![
        // If-Match: strong comparison; `*` matches an existing file.
        (vec![("If-Match", &etag)], 200),
        (vec![("If-Match", "*")], 200),
        (vec![("If-Match", &listed)], 200),
        (vec![("If-Match", "\"other\"")], 412),
        (vec![("If-Match", &weak)], 412),
        // If-Unmodified-Since: the file must not be newer than the date.
        (vec![("If-Unmodified-Since", &modified)], 200),
        (vec![("If-Unmodified-Since", &later)], 200),
        (vec![("If-Unmodified-Since", &earlier)], 412),
        (vec![("If-Unmodified-Since", "not a date")], 200),
        // If-Match decides; If-Unmodified-Since is then ignored (§13.1.4).
        (
            vec![("If-Match", &etag), ("If-Unmodified-Since", &earlier)],
            200,
        ),
        (
            vec![("If-Match", "\"other\""), ("If-Unmodified-Since", &later)],
            412,
        ),
        // Step 1–2 before step 3–4: a failed precondition beats a 304.
        (
            vec![("If-Match", "\"other\""), ("If-None-Match", &etag)],
            412,
        ),
        (
            vec![
                ("If-Unmodified-Since", &earlier),
                ("If-Modified-Since", &later),
            ],
            412,
        ),
        // Passing If-Match, then If-None-Match matching: 304.
        (vec![("If-Match", &etag), ("If-None-Match", &etag)], 304),
        (
            vec![
                ("If-Unmodified-Since", &later),
                ("If-Modified-Since", &later),
            ],
            304,
        ),
        // If-None-Match present: If-Modified-Since is ignored (§13.1.3).
        (
            vec![
                ("If-None-Match", "\"other\""),
                ("If-Modified-Since", &later),
            ],
            200,
        ),
        (
            vec![("If-None-Match", &weak), ("If-Modified-Since", &earlier)],
            304,
        ),
        // A Range with a failed precondition is 412, not 206.
        (vec![("If-Match", "\"other\""), ("Range", "bytes=0-3")], 412),
        (vec![("If-Match", &etag), ("Range", "bytes=0-3")], 206),
    ];
    for (headers, status) in &cases {
        let r = get_with(server, "/about", headers);
        assert_eq!(r.status, *status, "{headers:?}: {}", r.text());
        match status {
            412 => {
                assert_eq!(error_code(&r), "precondition_failed", "{headers:?}");
                assert!(r.json()["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()));
            }
            200 => assert_eq!(r.text(), "<h1>about</h1>", "{headers:?}"),
            _ => {}
        }
    }
    // HEAD gets the same status.
    let mut s = server.connect();
    s.write_all(
        b"HEAD /about HTTP/1.1\r\nHost: blog.localhost\r\nIf-Match: \"other\"\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response_with(&mut s, true).unwrap().status, 412);
    // A missing page is a 404 whatever its preconditions (RFC 9110 §13.2.1).
    let r = get_with(server, "/missing", &[("If-Match", "*")]);
    assert_eq!(r.status, 404);
    let r = get_with(server, "/missing", &[("If-Match", "\"other\"")]);
    assert_eq!(r.status, 404);
}

// ---------------------------------------------------------------------------------------
// Generated 404 pages
// ---------------------------------------------------------------------------------------

fn assert_no_validators(r: &HttpResponse, what: &str) {
    assert_eq!(r.status, 404, "{what}");
    assert!(
        r.header("etag").is_none(),
        "{what}: ETag {:?}",
        r.header("etag")
    );
    assert!(r.header("last-modified").is_none(), "{what}");
    assert!(!r.body.is_empty(), "{what}: the page itself is sent");
}

#[test]
fn not_found_pages_carry_no_etag_or_last_modified() {
    let server = &Server::start();
    let data = server.data.path();
    let plain = TempDir::new("serving-plain");
    write_file(plain.path(), "index.html", b"<h1>plain</h1>");
    write_file(plain.path(), "404.html", b"<h1>plain 404</h1>");
    import("plain", plain.path(), data);
    wait_for(server, "plain.localhost", "/", |r| r.status == 200);

    // The site's own 404.html.
    let r = server.get("plain.localhost", "/missing");
    assert_eq!(r.text(), "<h1>plain 404</h1>");
    assert_no_validators(&r, "site 404.html");
    // The site's 404.html asked for by name is a page like any other.
    let r = server.get("plain.localhost", "/404.html");
    assert_eq!(r.status, 200);
    assert!(r.header("etag").is_some() && r.header("last-modified").is_some());
    // The 404 site's page, for an unknown host.
    let r = server.get("nosuchsite.localhost", "/");
    assert_no_validators(&r, "the 404 site's page");
    // The built-in page: a 404 site with neither 404.html nor index.html.
    let bare = TempDir::new("serving-bare404");
    write_file(bare.path(), "other.txt", b"nothing to see");
    import("404", bare.path(), data);
    let r = wait_for(server, "nosuchsite.localhost", "/", |r| r.body == NOT_FOUND);
    assert_eq!(r.body, NOT_FOUND);
    assert_no_validators(&r, "the built-in page");
    let head = {
        let mut s = server.connect();
        s.write_all(b"HEAD /x HTTP/1.1\r\nHost: nosuchsite.localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        read_response_with(&mut s, true).unwrap()
    };
    assert_eq!(head.status, 404);
    assert!(head.header("etag").is_none());
}
