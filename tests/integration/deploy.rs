//! `POST /api/deploy` against the real binary (issue #5): multipart and raw uploads, every
//! archive rejection rule over HTTP (the live site byte-identical afterwards, no temp files
//! left), refusals before the body is read (401, 403, 413, 429, 503, 507), uploads spooled
//! to disk, dedup, atomicity under concurrent reads, and SIGKILL in the middle of a deploy.
use crate::common::zips::*;
use crate::common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use zip::CompressionMethod;

/// One version of a site: (path, content), in the order they go into the archive.
type Files = Vec<(String, Vec<u8>)>;

/// How long a deploy response may take: large archives in a debug build on a shared
/// two-core machine take seconds, not minutes.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn files(list: &[(&str, &[u8])]) -> Files {
    list.iter()
        .map(|(p, c)| (p.to_string(), c.to_vec()))
        .collect()
}

fn zip_files(files: &Files, method: CompressionMethod) -> Vec<u8> {
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, c)| (p.as_str(), c.as_slice()))
        .collect();
    zip_of(&refs, method)
}

/// The head of a deploy request; `token` None sends no Authorization header.
fn deploy_head(
    token: Option<&str>,
    path: &str,
    content_type: &str,
    framing: &str,
    extra: &str,
) -> String {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    format!(
        "POST {path} HTTP/1.1\r\nHost: admin.localhost\r\n{auth}Content-Type: {content_type}\r\n\
         {framing}\r\n{extra}Connection: close\r\n\r\n"
    )
}

fn deploy_connection(server: &Server) -> TcpStream {
    let stream = server.connect();
    stream.set_read_timeout(Some(DEPLOY_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(DEPLOY_TIMEOUT)).unwrap();
    stream
}

/// A complete deploy request with a Content-Length body; returns the response.
fn post_deploy(
    server: &Server,
    token: Option<&str>,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> HttpResponse {
    let head = deploy_head(
        token,
        path,
        content_type,
        &format!("Content-Length: {}", body.len()),
        "",
    );
    let mut stream = deploy_connection(server);
    stream.write_all(head.as_bytes()).unwrap();
    // A refusal may come (and the socket close) before the whole body is written.
    let _ = stream.write_all(body);
    read_response(&mut stream).expect("a deploy response")
}

/// A raw `application/zip` deploy of `zip` to `?site=`.
fn deploy_zip_as(server: &Server, token: &str, site: &str, zip: &[u8]) -> HttpResponse {
    post_deploy(
        server,
        Some(token),
        &format!("/api/deploy?site={site}"),
        "application/zip",
        zip,
    )
}

fn deploy_zip(server: &Server, site: &str, zip: &[u8]) -> HttpResponse {
    deploy_zip_as(server, &server.token, site, zip)
}

/// A multipart deploy (fields `site_name` and `file`), as the Go client sends it.
fn deploy_form_as(server: &Server, token: &str, site: &str, zip: &[u8]) -> HttpResponse {
    let (content_type, body) = multipart_form(&[("site_name", site)], "file", zip);
    post_deploy(server, Some(token), "/api/deploy", &content_type, &body)
}

/// Deploys `files` to `site` (raw zip), asserting a 200; returns the JSON answer.
fn deploy_ok(server: &Server, site: &str, files: &Files) -> Value {
    let r = deploy_zip(server, site, &zip_files(files, CompressionMethod::Deflated));
    assert_eq!(r.status, 200, "deploying {site}: {}", r.text());
    r.json()
}

/// `GET url` (an `http://host:port/path` this server answers), by its Host.
fn get_url(server: &Server, url: &str) -> HttpResponse {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.split(':').next().unwrap();
    server.get(host, if path.is_empty() { "/" } else { path })
}

fn error_of(r: &HttpResponse) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn site_host(site: &str) -> String {
    format!("{site}.localhost")
}

/// Every file of `files` is served by `site`, byte-exact.
fn assert_serves(server: &Server, site: &str, files: &Files) {
    for (path, content) in files {
        let r = server.get(&site_host(site), &format!("/{}", path.replace(' ', "%20")));
        assert_eq!(r.status, 200, "{site}/{path}: {}", r.text());
        assert!(r.body == *content, "{site}/{path}: served content differs");
    }
}

/// No deploy temp files in `dir`, allowing a refused connection a moment to be dropped.
fn assert_no_leftovers(dir: &Path) {
    let left = leftovers_after(dir, Duration::from_secs(3));
    assert!(
        left.is_empty(),
        "temp files left in {}: {left:?}",
        dir.display()
    );
}

/// How many bytes the running deploy has extracted into the pack file of its
/// `fazt-deploy-*` dir in `temp`, if one exists.
fn extracted_bytes(temp: &Path) -> Option<u64> {
    let dir = std::fs::read_dir(temp)
        .ok()?
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with("fazt-deploy-"))?;
    Some(
        std::fs::metadata(dir.path().join("entries.pack"))
            .ok()?
            .len(),
    )
}

/// Creates an API key with `scope` through the API; returns its token.
fn create_key(server: &Server, name: &str, scope: &str) -> String {
    let r = admin_post(
        server,
        "/api/keys",
        &json!({ "name": name, "scope": scope }),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

fn current_deployment(server: &Server, site: &str) -> Value {
    get_json(server, &format!("/api/sites/{site}/deployments"))["current"].clone()
}

/// `count` files of `size` incompressible bytes each, under `dir/`.
fn random_files(seed: u64, dir: &str, count: usize, size: usize) -> Files {
    let mut rng = Rng(seed);
    (0..count)
        .map(|i| (format!("{dir}/f{i:04}.bin"), rng.bytes(size)))
        .collect()
}

/// Peak resident memory of a process, from `/proc/<pid>/status`.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/<pid>/status")
}

// ---------------------------------------------------------------------------------------
// Successful deploys
// ---------------------------------------------------------------------------------------

fn blog_v1() -> Files {
    let mut rng = Rng(7);
    files(&[
        ("index.html", b"<!doctype html><h1>Blog v1</h1>\n"),
        ("css/site.css", b"body { color: #333 }\n"),
        ("js/app.js", b"console.log('v1');\n"),
        ("img/logo.png", &rng.bytes(5_000)),
        ("data.json", br#"{"version": 1}"#),
        ("big.bin", &rng.bytes(300_000)),
        ("posts/hello world.html", b"<p>spaces in names</p>"),
    ])
}

#[test]
fn multipart_and_raw_deploys_publish_byte_exact_files() {
    let server = Server::start();
    let port = server.addr.port();
    let v1 = blog_v1();
    let mut archive = v1.clone();
    archive.extend(files(&[
        (".env", b"SECRET=1"),
        (".git/config", b"[core]"),
        ("posts/.draft.html", b"draft"),
    ]));
    let zip = zip_files(&archive, CompressionMethod::Deflated);

    // Multipart, as the Go client sends it.
    let r = deploy_form_as(&server, &server.token, "blog", &zip);
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let first = r.json();
    let bytes: usize = v1.iter().map(|(_, c)| c.len()).sum();
    assert_eq!(first["site"], "blog");
    assert!(first["deployment"].as_i64().unwrap() > 0);
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(first["files"], v1.len(), "hidden files are not published");
    assert_eq!(first["bytes"], bytes);
    assert_eq!(first["new_bytes"], bytes);
    assert_eq!(first["url"], format!("http://blog.localhost:{port}/"));
    assert_eq!(
        get_url(&server, first["url"].as_str().unwrap()).body,
        v1[0].1
    );

    assert_serves(&server, "blog", &v1);
    for (path, mime) in [
        ("index.html", "text/html; charset=utf-8"),
        ("css/site.css", "text/css; charset=utf-8"),
        ("js/app.js", "text/javascript; charset=utf-8"),
        ("img/logo.png", "image/png"),
        ("data.json", "application/json"),
    ] {
        let r = server.get("blog.localhost", &format!("/{path}"));
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
    }
    assert_eq!(server.get("blog.localhost", "/").body, v1[0].1);
    let spaced = server.get("blog.localhost", "/posts/hello%20world.html");
    assert_eq!(spaced.text(), "<p>spaces in names</p>");
    for hidden in ["/.env", "/.git/config", "/posts/.draft.html"] {
        let r = server.get("blog.localhost", hidden);
        assert_eq!(
            r.status,
            404,
            "{hidden} must not be published: {}",
            r.text()
        );
    }

    // A raw zip with ?site=: the next deployment, `previous` the first one; a file left
    // out of the new version is gone.
    let mut v2 = v1.clone();
    v2[0].1 = b"<!doctype html><h1>Blog v2</h1>\n".to_vec();
    v2.retain(|(p, _)| p != "data.json");
    let r = deploy_zip(
        &server,
        "blog",
        &zip_files(&v2, CompressionMethod::Deflated),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let second = r.json();
    assert_eq!(second["previous"], first["deployment"]);
    assert!(second["deployment"].as_i64() > first["deployment"].as_i64());
    assert_eq!(second["files"], v2.len());
    assert_eq!(second["new_bytes"], v2[0].1.len(), "only index.html is new");
    assert_serves(&server, "blog", &v2);
    assert_eq!(server.get("blog.localhost", "/data.json").status, 404);
    assert_eq!(current_deployment(&server, "blog"), second["deployment"]);

    // Stored (uncompressed) entries and the root site work the same way.
    let root = files(&[("index.html", b"<h1>root</h1>")]);
    let r = deploy_zip(
        &server,
        "root",
        &zip_files(&root, CompressionMethod::Stored),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // Bare `localhost` is the admin host, so root's URL names it.
    let url = r.json()["url"].as_str().unwrap().to_string();
    assert_eq!(url, format!("http://root.localhost:{port}/"));
    assert_eq!(get_url(&server, &url).text(), "<h1>root</h1>");
    assert_no_leftovers(&temp_dir_of(server.data.path()));
}

#[test]
fn the_site_name_is_lower_cased_and_bad_or_reserved_names_are_refused() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let zip = zip_files(
        &files(&[("index.html", b"named")]),
        CompressionMethod::Deflated,
    );
    let r = deploy_zip(&server, "Blog", &zip);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["site"], "blog");
    assert_eq!(server.get("blog.localhost", "/").text(), "named");

    for name in [
        "admin",
        "api",
        "www",
        "Bad_Name",
        "-edge",
        "a.b",
        &"x".repeat(64),
    ] {
        let r = deploy_zip(&server, name, &zip);
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(
            error_of(&r).contains(&name.to_ascii_lowercase()),
            "{name}: {}",
            r.text()
        );
        let r = deploy_form_as(&server, &server.token, name, &zip);
        assert_eq!(r.status, 400, "multipart {name}: {}", r.text());
        assert!(error_of(&r).contains(&name.to_ascii_lowercase()));
    }

    // A raw zip without ?site=, and a form without its fields.
    let r = post_deploy(
        &server,
        Some(&server.token),
        "/api/deploy",
        "application/zip",
        &zip,
    );
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("?site="), "{}", r.text());
    let (content_type, body) = multipart_form(&[], "file", &zip);
    let r = post_deploy(
        &server,
        Some(&server.token),
        "/api/deploy",
        &content_type,
        &body,
    );
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("site_name"), "{}", r.text());
    let (content_type, body) = multipart_form(&[("site_name", "blog")], "upload", &zip);
    let r = post_deploy(
        &server,
        Some(&server.token),
        "/api/deploy",
        &content_type,
        &body,
    );
    assert_eq!(r.status, 400);
    assert!(error_of(&r).contains("'file'"), "{}", r.text());
    assert_eq!(server.get("blog.localhost", "/").text(), "named");
}

#[test]
fn a_large_upload_is_spooled_to_disk_and_cleaned_up() {
    let server = Server::builder()
        .env("FAZT_UPLOAD_RAM", "64K")
        .env("FAZT_DEPLOY_RATE", "1000")
        .start();
    let temp = temp_dir_of(server.data.path());
    let site = random_files(11, "media", 24, 256 * 1024);
    let zip = zip_files(&site, CompressionMethod::Stored);
    let (content_type, body) = multipart_form(&[("site_name", "media")], "file", &zip);
    assert!(body.len() > 6 << 20);

    // Half the body: the server has moved it to a file by now.
    let head = deploy_head(
        Some(&server.token),
        "/api/deploy",
        &content_type,
        &format!("Content-Length: {}", body.len()),
        "",
    );
    let mut stream = deploy_connection(&server);
    stream.write_all(head.as_bytes()).unwrap();
    let half = body.len() / 2;
    stream.write_all(&body[..half]).unwrap();
    let never = AtomicBool::new(false);
    assert!(
        wait_for_temp(&temp, "fazt-upload-", Duration::from_secs(10), &never),
        "no fazt-upload-* file in {} while a 6 MB body arrives with FAZT_UPLOAD_RAM=64K",
        temp.display()
    );
    stream.write_all(&body[half..]).unwrap();
    let r = read_response(&mut stream).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["files"], site.len());
    assert_eq!(answer["bytes"], 24 * 256 * 1024);
    assert_serves(&server, "media", &site);
    assert_no_leftovers(&temp);

    // A raw zip body spooled the same way.
    let mut v2 = site.clone();
    v2[0].1 = Rng(12).bytes(256 * 1024);
    let r = deploy_zip(&server, "media", &zip_files(&v2, CompressionMethod::Stored));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["new_bytes"], 256 * 1024);
    assert_serves(&server, "media", &v2);
    assert_no_leftovers(&temp);
}

#[test]
fn curl_style_chunked_keep_alive_and_admin_listener_deploys_work() {
    let server = Server::builder()
        .env("FAZT_DEPLOY_RATE", "1000")
        .admin_listener()
        .start();
    let site = files(&[("index.html", b"<h1>transfers</h1>"), ("a.txt", b"a")]);
    let zip = zip_files(&site, CompressionMethod::Deflated);

    // `Expect: 100-continue` (curl sends it for large bodies): a refusal needs no body,
    // an accepted upload is told to go on.
    let head = deploy_head(
        Some("fzt_wrong"),
        "/api/deploy?site=blog",
        "application/zip",
        &format!("Content-Length: {}", zip.len()),
        "Expect: 100-continue\r\n",
    );
    let mut stream = deploy_connection(&server);
    stream.write_all(head.as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().status, 401);
    let head = deploy_head(
        Some(&server.token),
        "/api/deploy?site=blog",
        "application/zip",
        &format!("Content-Length: {}", zip.len()),
        "Expect: 100-continue\r\n",
    );
    let mut stream = deploy_connection(&server);
    stream.write_all(head.as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().status, 100);
    stream.write_all(&zip).unwrap();
    let r = read_response(&mut stream).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_serves(&server, "blog", &site);

    // A chunked body of unknown length, on a kept-alive connection that then carries
    // another request.
    let mut v2 = site.clone();
    v2[1].1 = b"chunked".to_vec();
    let zip2 = zip_files(&v2, CompressionMethod::Deflated);
    let auth = format!("Authorization: Bearer {}\r\n", server.token);
    let mut raw = format!(
        "POST /api/deploy?site=blog HTTP/1.1\r\nHost: admin.localhost\r\n{auth}\
         Content-Type: application/zip\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for piece in zip2.chunks(100) {
        raw.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        raw.extend_from_slice(piece);
        raw.extend_from_slice(b"\r\n");
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    let mut stream = deploy_connection(&server);
    stream.write_all(&raw).unwrap();
    let r = read_response(&mut stream).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["new_bytes"], b"chunked".len());
    let next = format!(
        "GET /api/sites/blog/deployments HTTP/1.1\r\nHost: admin.localhost\r\n{auth}\
         Connection: close\r\n\r\n"
    );
    stream.write_all(next.as_bytes()).unwrap();
    let r = read_response(&mut stream).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["deployments"].as_array().unwrap().len(), 2);
    assert_serves(&server, "blog", &v2);

    // The admin listener takes deploys too (any Host).
    let admin = server.admin_addr.unwrap();
    let mut v3 = v2.clone();
    v3[0].1 = b"<h1>via the admin port</h1>".to_vec();
    let zip3 = zip_files(&v3, CompressionMethod::Deflated);
    let (content_type, body) = multipart_form(&[("site_name", "blog")], "file", &zip3);
    let mut raw = format!(
        "POST /api/deploy HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Content-Type: {content_type}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    let r = raw_request(admin, raw);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_serves(&server, "blog", &v3);
    assert_no_leftovers(&temp_dir_of(server.data.path()));
}

#[test]
fn identical_content_is_stored_once_across_sites_and_redeploys() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let site = random_files(21, "assets", 4, 50_000);
    let total = 4 * 50_000;
    let first = deploy_ok(&server, "blog", &site);
    assert_eq!(first["new_bytes"], total);

    let other = deploy_ok(&server, "shop", &site);
    assert_eq!(other["bytes"], total);
    assert_eq!(other["new_bytes"], 0, "same content on a second site");
    assert_eq!(other["previous"], Value::Null);

    let again = deploy_ok(&server, "blog", &site);
    assert_eq!(again["new_bytes"], 0, "unchanged re-deploy");
    assert_eq!(again["previous"], first["deployment"]);
    assert_eq!(again["files"], 4);

    let mut changed = site.clone();
    changed[2].1[0] ^= 1;
    let third = deploy_ok(&server, "blog", &changed);
    assert_eq!(third["new_bytes"], 50_000, "one changed file");
    assert_serves(&server, "blog", &changed);
    assert_serves(&server, "shop", &site);
}

// ---------------------------------------------------------------------------------------
// Archive rejection rules
// ---------------------------------------------------------------------------------------

/// A good entry first, so a refusal also shows its temp file was removed.
fn with_good(bad: Raw) -> Vec<u8> {
    build(
        &[Raw::deflated("index.html", b"<h1>bad deploy</h1>"), bad],
        0,
    )
}

/// Deploys `zip` to a site serving `live`: a 400 whose message has every needle, the
/// site unchanged byte for byte (same deployment), no temp files left.
fn assert_refused_and_site_intact(
    server: &Server,
    site: &str,
    live: &Files,
    zip: &[u8],
    needles: &[&str],
) {
    let before = current_deployment(server, site);
    for (how, r) in [
        ("raw", deploy_zip(server, site, zip)),
        (
            "multipart",
            deploy_form_as(server, &server.token, site, zip),
        ),
    ] {
        assert_eq!(r.status, 400, "{how} {needles:?}: {}", r.text());
        let message = error_of(&r);
        for needle in needles {
            assert!(
                message.contains(needle),
                "{how}: {message:?} lacks {needle:?}"
            );
        }
        assert_eq!(r.json()["error"]["code"], "invalid_archive", "{how}");
    }
    assert_eq!(current_deployment(server, site), before, "{needles:?}");
    assert_serves(server, site, live);
    assert_no_leftovers(&temp_dir_of(server.data.path()));
}

/// A valid zip of `index.html` and `a.txt` written by Python's zipfile with `method`
/// (`ZIP_BZIP2`, `ZIP_LZMA`): real compressed data, as another zip tool would write it.
fn python_zip(method: &str) -> Vec<u8> {
    let script = format!(
        "import io, sys, zipfile\n\
         b = io.BytesIO()\n\
         with zipfile.ZipFile(b, 'w', zipfile.{method}) as z:\n\
         \x20   z.writestr('index.html', '<h1>compressed</h1>' * 40)\n\
         \x20   z.writestr('a.txt', 'a' * 500)\n\
         sys.stdout.buffer.write(b.getvalue())\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .expect("python3 writes the test zip");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn zips_compressed_with_bzip2_lzma_or_zstd_get_415_naming_the_method_and_no_error_line() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let live = files(&[("index.html", b"<h1>live</h1>")]);
    deploy_ok(&server, "blog", &live);
    let mut zstd = Raw::stored("b.txt", b"not really zstd");
    zstd.method = 93;
    let cases = [
        ("Bzip2 (zip method 12)", python_zip("ZIP_BZIP2")),
        ("Lzma (zip method 14)", python_zip("ZIP_LZMA")),
        ("Zstd (zip method 93)", with_good(zstd)),
    ];
    let before = current_deployment(&server, "blog");
    for (needle, zip) in &cases {
        for (how, r) in [
            ("raw", deploy_zip(&server, "blog", zip)),
            (
                "multipart",
                deploy_form_as(&server, &server.token, "blog", zip),
            ),
        ] {
            assert_eq!(r.status, 415, "{needle} {how}: {}", r.text());
            assert_eq!(r.json()["error"]["code"], "unsupported_compression");
            let message = error_of(&r);
            assert!(message.contains(needle), "{how}: {message:?}");
            assert!(message.contains("deflate"), "says what works: {message:?}");
        }
    }
    assert_eq!(current_deployment(&server, "blog"), before);
    assert_serves(&server, "blog", &live);
    assert_no_leftovers(&temp_dir_of(server.data.path()));
    let stderr = server.stderr();
    assert!(
        !stderr.contains("ERROR"),
        "a client's archive is not a server fault: {stderr}"
    );
    // The same archives deflated are accepted: the refusal is about the method alone.
    let deflated = files(&[("index.html", b"<h1>deflated</h1>")]);
    deploy_ok(&server, "blog", &deflated);
    assert_serves(&server, "blog", &deflated);
}

#[test]
fn every_archive_rule_is_refused_and_the_live_site_stays_byte_identical() {
    let server = Server::builder()
        .env("FAZT_DEPLOY_MAX_FILES", "8")
        .env("FAZT_DEPLOY_MAX_BYTES", "64K")
        .env("FAZT_DEPLOY_RATE", "1000")
        .env("FAZT_UPLOAD_RAM", "1K")
        .start();
    let live = files(&[
        ("index.html", b"<h1>live v1</h1>"),
        ("style.css", b"h1 { color: red }"),
        ("docs/a.txt", b"a"),
    ]);
    deploy_ok(&server, "blog", &live);
    let refuse = |zip: &[u8], needles: &[&str]| {
        assert_refused_and_site_intact(&server, "blog", &live, zip, needles)
    };

    refuse(
        &with_good(Raw::stored("/etc/passwd", b"x")),
        &["entry '/etc/passwd'", "absolute"],
    );
    for name in ["../escape.html", "docs/../../escape.html", "a/.."] {
        refuse(
            &with_good(Raw::stored(name, b"x")),
            &[&format!("entry '{name}'"), "'..'"],
        );
    }
    refuse(
        &with_good(Raw::stored("..\\evil.dll", b"x")),
        &["entry '..\\evil.dll'", "backslash"],
    );
    refuse(
        &with_good(Raw::stored("index.html\0.png", b"x")),
        &["entry 'index.html\\u{0}.png'", "control character"],
    );
    refuse(
        &with_good(Raw::stored("bell\x07.txt", b"x")),
        &["entry 'bell\\u{7}.txt'", "control character"],
    );
    refuse(
        &with_good(Raw::stored("link.html", b"/etc/passwd").mode(0o120_777)),
        &["entry 'link.html'", "symbolic link"],
    );
    refuse(
        &with_good(Raw::stored("fifo", b"").mode(0o010_644)),
        &["entry 'fifo'", "not a regular file"],
    );
    refuse(
        &build(
            &[Raw::stored("a/b.txt", b"1"), Raw::stored("a//b.txt", b"2")],
            0,
        ),
        &["entry 'a//b.txt'", "entry 'a/b.txt'"],
    );
    refuse(
        &build(
            &[Raw::stored("x.html", b"1"), Raw::stored("./x.html", b"2")],
            0,
        ),
        &["entry './x.html'", "entry 'x.html'"],
    );
    let nine: Vec<Raw> = (0..9)
        .map(|i| Raw::stored(&format!("f{i}.txt"), b"x"))
        .collect();
    refuse(&build(&nine, 0), &["9 entries", "limit of 8"]);
    refuse(
        &with_good(Raw::deflated("big.bin", &[7u8; 65_537])),
        &["entry 'big.bin'", "limit of 65536"],
    );
    let parts: Vec<Raw> = (0..3)
        .map(|i| Raw::deflated(&format!("part{i}.bin"), &[i as u8; 30_000]))
        .collect();
    refuse(&build(&parts, 0), &["entry 'part2.bin'", "limit of 65536"]);
    // Limits hold on the bytes read, not on what the headers claim.
    let mut liar = Raw::deflated("liar.bin", &[1u8; 100_000]);
    liar.uncompressed = 10;
    refuse(&with_good(liar), &["entry 'liar.bin'", "header lies"]);
    let mut encrypted = Raw::stored("secret.txt", b"xx");
    encrypted.flags |= FLAG_ENCRYPTED;
    refuse(&with_good(encrypted), &["entry 'secret.txt'", "encrypted"]);
    refuse(b"<html>not a zip</html>", &["not a readable zip archive"]);
    refuse(
        &build(&[Raw::stored(".env", b"SECRET=1")], 0),
        &["no files to publish"],
    );

    // The limits are not off by one: exactly 8 files of 8 KiB (64 KiB) deploy.
    let at_limit: Files = (0..8)
        .map(|i| (format!("f{i}.bin"), vec![i as u8; 8 * 1024]))
        .collect();
    deploy_ok(&server, "blog", &at_limit);
    assert_serves(&server, "blog", &at_limit);
}

#[test]
fn a_zip_bomb_is_refused_without_inflating_it() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let live = files(&[("index.html", b"<h1>before the bomb</h1>")]);
    deploy_ok(&server, "blog", &live);
    let peak_before = peak_rss_kib(server.child.id());

    // 96 MiB of zeros in ~620 KB: under the default entry and total limits, so only the
    // compression ratio (about 158x) can stop it.
    let size: u64 = 96 << 20;
    let data = deflate_zeros(size);
    let bomb = Raw {
        method: 8,
        compressed: data.len() as u32,
        uncompressed: size as u32,
        crc: 0,
        data,
        ..Raw::stored("bomb.bin", b"")
    };
    let started = Instant::now();
    assert_refused_and_site_intact(
        &server,
        "blog",
        &live,
        &with_good(bomb.clone()),
        &["entry 'bomb.bin'", "zip bomb"],
    );
    // Headers that understate the size: stopped at the declared size.
    let mut small_claim = bomb;
    small_claim.uncompressed = 4096;
    assert_refused_and_site_intact(
        &server,
        "blog",
        &live,
        &with_good(small_claim),
        &["entry 'bomb.bin'", "header lies"],
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let growth_mib = (peak_rss_kib(server.child.id()) - peak_before) / 1024;
    assert!(growth_mib < 64, "peak RSS grew {growth_mib} MiB on a bomb");
}

// ---------------------------------------------------------------------------------------
// Refusals before the body is read
// ---------------------------------------------------------------------------------------

/// Sends only the head of a deploy declaring a `declared`-byte body (and none of it),
/// and reads the answer: a refusal that needs no body arrives anyway.
fn head_only(server: &Server, token: Option<&str>, path: &str, declared: u64) -> HttpResponse {
    let head = deploy_head(
        token,
        path,
        "application/zip",
        &format!("Content-Length: {declared}"),
        "",
    );
    let mut stream = server.connect();
    stream.write_all(head.as_bytes()).unwrap();
    read_response(&mut stream).expect("an answer before the body")
}

#[test]
fn oversize_uploads_get_413_without_the_body_being_read() {
    let server = Server::builder()
        .env("FAZT_MAX_UPLOAD", "1M")
        .env("FAZT_UPLOAD_RAM", "64K")
        .start();
    let temp = temp_dir_of(server.data.path());

    // Declared: refused on the head.
    let r = head_only(
        &server,
        Some(&server.token),
        "/api/deploy?site=blog",
        (1 << 20) + 1,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "payload_too_large");
    let r = head_only(
        &server,
        Some(&server.token),
        "/api/deploy?site=blog",
        1 << 40,
    );
    assert_eq!(r.status, 413);
    // Without a valid key the answer is 401: the limit is not told to strangers.
    let r = head_only(&server, None, "/api/deploy?site=blog", 1 << 40);
    assert_eq!(r.status, 401, "{}", r.text());

    // Chunked: refused once the bytes read pass the limit; the body never ends.
    let head = deploy_head(
        Some(&server.token),
        "/api/deploy?site=blog",
        "application/zip",
        "Transfer-Encoding: chunked",
        "",
    );
    let mut stream = server.connect();
    stream.write_all(head.as_bytes()).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        let chunk = vec![0x5au8; 64 * 1024];
        for _ in 0..20 {
            let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
            framed.extend_from_slice(&chunk);
            framed.extend_from_slice(b"\r\n");
            if writer.write_all(&framed).is_err() {
                break;
            }
        }
    });
    let r = read_response(&mut stream).expect("413 before the chunked body ends");
    assert_eq!(r.status, 413, "{}", r.text());
    sender.join().unwrap();

    // Healthy afterwards: a deploy under the limit works, and nothing is left behind.
    assert_eq!(server.get("localhost", "/health").status, 200);
    let small = files(&[("index.html", b"small enough")]);
    deploy_ok(&server, "blog", &small);
    assert_serves(&server, "blog", &small);
    assert_no_leftovers(&temp);
}

#[test]
fn a_missing_or_bad_token_gets_401_before_the_body() {
    let server = Server::start();
    let declared = 10 << 20;
    let r = head_only(&server, None, "/api/deploy?site=blog", declared);
    assert_eq!(r.status, 401, "{}", r.text());
    let r = head_only(
        &server,
        Some("fzt_not-a-real-token"),
        "/api/deploy?site=blog",
        declared,
    );
    assert_eq!(r.status, 401, "{}", r.text());
    let r = head_only(&server, Some("garbage"), "/api/deploy", declared);
    assert_eq!(r.status, 401, "{}", r.text());
    // A complete multipart upload with a bad token is refused as well.
    let zip = zip_files(&files(&[("index.html", b"x")]), CompressionMethod::Deflated);
    let r = deploy_form_as(&server, "fzt_nope", "blog", &zip);
    assert_eq!(r.status, 401);
    assert_eq!(server.get("blog.localhost", "/").status, 404);
}

#[test]
fn a_site_scoped_key_deploys_only_its_site() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "1000").start();
    let blog_key = create_key(&server, "ci-blog", "deploy:blog");
    let zip = zip_files(
        &files(&[("index.html", b"scoped")]),
        CompressionMethod::Deflated,
    );

    // Refused on the head for ?site=, after the form is read for multipart.
    for site in ["shop", "root", "404", "SHOP"] {
        let r = head_only(
            &server,
            Some(&blog_key),
            &format!("/api/deploy?site={site}"),
            10 << 20,
        );
        assert_eq!(r.status, 403, "{site}: {}", r.text());
        assert!(error_of(&r).contains(&site.to_ascii_lowercase()));
        let r = deploy_form_as(&server, &blog_key, site, &zip);
        assert_eq!(r.status, 403, "multipart {site}: {}", r.text());
        assert!(error_of(&r).contains(&site.to_ascii_lowercase()));
    }
    assert_eq!(server.get("shop.localhost", "/").status, 404);
    assert_ne!(server.get("localhost", "/").text(), "scoped");

    let r = deploy_zip_as(&server, &blog_key, "blog", &zip);
    assert_eq!(r.status, 200, "{}", r.text());
    let r = deploy_form_as(&server, &blog_key, "blog", &zip);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.get("blog.localhost", "/").text(), "scoped");

    // deploy:* covers every site but the system ones.
    let any_key = create_key(&server, "ci-any", "deploy:*");
    assert_eq!(deploy_zip_as(&server, &any_key, "shop", &zip).status, 200);
    assert_eq!(deploy_zip_as(&server, &any_key, "root", &zip).status, 403);
}

#[test]
fn unknown_content_types_get_415_and_wrong_methods_or_empty_bodies_are_refused() {
    let server = Server::start();
    let zip = zip_files(&files(&[("index.html", b"x")]), CompressionMethod::Deflated);
    let r = post_deploy(
        &server,
        Some(&server.token),
        "/api/deploy?site=blog",
        "text/plain",
        &zip,
    );
    assert_eq!(r.status, 415, "{}", r.text());
    assert!(error_of(&r).contains("text/plain"), "{}", r.text());

    let r = server.admin_get("/api/deploy", Some(&server.token));
    assert_eq!(r.status, 405, "{}", r.text());

    let r = post_deploy(
        &server,
        Some(&server.token),
        "/api/deploy?site=blog",
        "application/zip",
        b"",
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(error_of(&r).contains("empty body"), "{}", r.text());
    assert_eq!(server.get("blog.localhost", "/").status, 404);
}

#[test]
fn deploys_past_the_rate_limit_get_429_with_retry_after() {
    let server = Server::builder().env("FAZT_DEPLOY_RATE", "2").start();
    let site = files(&[("index.html", b"rated")]);
    deploy_ok(&server, "blog", &site);
    deploy_ok(&server, "blog", &site);
    let zip = zip_files(&site, CompressionMethod::Deflated);
    let r = deploy_zip(&server, "blog", &zip);
    assert_eq!(r.status, 429, "{}", r.text());
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After on 429")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    // Refused on the head: no body needed.
    let r = head_only(
        &server,
        Some(&server.token),
        "/api/deploy?site=blog",
        10 << 20,
    );
    assert_eq!(r.status, 429);
    // The limit is per key.
    let other = create_key(&server, "other", "deploy:blog");
    assert_eq!(deploy_zip_as(&server, &other, "blog", &zip).status, 200);
}

#[test]
fn a_full_disk_gets_507_and_the_site_keeps_serving() {
    let server = Server::builder().env("FAZT_DISK_THRESHOLD", "1").start();
    let before = server.get("localhost", "/");
    let zip = zip_files(
        &files(&[("index.html", b"no room")]),
        CompressionMethod::Deflated,
    );
    let r = deploy_zip(&server, "root", &zip);
    assert_eq!(r.status, 507, "{}", r.text());
    assert_eq!(r.json()["error"]["code"], "disk_full");
    let r = head_only(
        &server,
        Some(&server.token),
        "/api/deploy?site=blog",
        10 << 20,
    );
    assert_eq!(r.status, 507, "refused on the head: {}", r.text());
    let after = server.get("localhost", "/");
    assert_eq!((after.status, after.body), (before.status, before.body));
    assert_no_leftovers(&temp_dir_of(server.data.path()));
}

// ---------------------------------------------------------------------------------------
// Concurrency: readers during deploys, the busy slot, SIGKILL
// ---------------------------------------------------------------------------------------

/// Version `v` of a site whose every file carries the version: the same paths in every
/// version, `big.bin` over two 128 KiB chunks so it is streamed.
fn marked_version(v: usize) -> Files {
    let fill = |path: &str, len: usize| -> Vec<u8> {
        format!("v{v}:{path}|")
            .into_bytes()
            .into_iter()
            .cycle()
            .take(len)
            .collect()
    };
    ["index.html", "app.js", "style.css", "data.json", "big.bin"]
        .iter()
        .map(|p| {
            let len = if *p == "big.bin" { 300_000 } else { 2_000 };
            (p.to_string(), fill(p, len))
        })
        .collect()
}

#[test]
fn readers_during_deploys_see_one_whole_version_never_a_mix() {
    // Keeping one deployment prunes (and garbage-collects) as early as fazt allows, and
    // files over 128K stream from the database instead of the cache.
    let server = Arc::new(
        Server::builder()
            .env("FAZT_DEPLOY_RATE", "1000")
            .env("FAZT_KEEP_DEPLOYMENTS", "1")
            .env("FAZT_MAX_CACHED_FILE", "128K")
            .start(),
    );
    // v1 and v2 alternate, then fresh versions whose predecessors' blobs are collected.
    let order = [1, 2, 1, 2, 1, 3, 4, 5, 6];
    let versions: Arc<Vec<Files>> = Arc::new((0..=6).map(marked_version).collect());
    assert_eq!(
        deploy_zip(
            &server,
            "live",
            &zip_files(&versions[order[0]], CompressionMethod::Deflated)
        )
        .status,
        200
    );
    assert_serves(&server, "live", &versions[order[0]]);

    let done = Arc::new(AtomicBool::new(false));
    let seen: Arc<Vec<AtomicUsize>> =
        Arc::new((0..versions.len()).map(|_| AtomicUsize::new(0)).collect());
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (server, versions, done, seen) =
                (server.clone(), versions.clone(), done.clone(), seen.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(30);
                let paths: Vec<String> = versions[1].iter().map(|(p, _)| p.clone()).collect();
                let mut i = t;
                while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
                    let path = &paths[i % paths.len()];
                    i += 1;
                    let r = server.get("live.localhost", &format!("/{path}"));
                    assert_eq!(r.status, 200, "{path} during a deploy: {}", r.text());
                    let which = versions
                        .iter()
                        .position(|files| files.iter().any(|(p, c)| p == path && *c == r.body));
                    let Some(which) = which else {
                        panic!("{path}: {} bytes of no single version", r.body.len())
                    };
                    seen[which].fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();

    for &v in &order[1..] {
        let r = deploy_zip(
            &server,
            "live",
            &zip_files(&versions[v], CompressionMethod::Deflated),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        // Once the deploy has answered, every fresh request sees it.
        assert_serves(&server, "live", &versions[v]);
    }
    done.store(true, Ordering::SeqCst);
    for reader in readers {
        reader
            .join()
            .expect("a reader saw a mixed, cut or missing file");
    }
    let versions_seen = seen
        .iter()
        .filter(|n| n.load(Ordering::Relaxed) > 0)
        .count();
    assert!(versions_seen >= 2, "readers saw {versions_seen} version(s)");
}

/// `files` big and incompressible enough that applying them takes a while.
fn heavy_site(seed: u64, count: usize, size: usize) -> (Files, Vec<u8>) {
    let site = random_files(seed, "heavy", count, size);
    let zip = zip_files(&site, CompressionMethod::Stored);
    (site, zip)
}

#[test]
fn while_one_deploy_runs_one_more_may_wait_and_the_rest_get_503() {
    let server = Arc::new(Server::builder().env("FAZT_DEPLOY_RATE", "1000").start());
    let temp = temp_dir_of(server.data.path());
    let (heavy, heavy_zip) = heavy_site(31, 300, 100_000);
    let small = |text: &str| {
        zip_files(
            &files(&[("index.html", text.as_bytes())]),
            CompressionMethod::Deflated,
        )
    };

    let first_done = Arc::new(AtomicBool::new(false));
    let first = {
        let (server, done) = (server.clone(), first_done.clone());
        std::thread::spawn(move || {
            let r = deploy_zip(&server, "heavy", &heavy_zip);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    let running = wait_for_temp(&temp, "fazt-deploy-", Duration::from_secs(30), &first_done);
    // The second upload waits in the queue while the first is applied.
    let second = {
        let (server, zip) = (server.clone(), small("second"));
        std::thread::spawn(move || deploy_zip(&server, "second", &zip))
    };
    std::thread::sleep(Duration::from_millis(500));
    let third = deploy_zip(&server, "third", &small("third"));
    let fourth = head_only(
        &server,
        Some(&server.token),
        "/api/deploy?site=fourth",
        10 << 20,
    );
    let first_still_running = running && !first_done.load(Ordering::SeqCst);

    for (name, r) in [("third", &third), ("fourth", &fourth)] {
        if first_still_running {
            assert_eq!(
                r.status,
                503,
                "{name} while one runs and one waits: {}",
                r.text()
            );
        } else {
            assert!(matches!(r.status, 200 | 503), "{name}: {}", r.text());
        }
        if r.status == 503 {
            assert!(
                r.header("retry-after")
                    .is_some_and(|s| s.parse::<u64>().is_ok()),
                "{name}: 503 without Retry-After"
            );
        }
    }
    let first = first.join().unwrap();
    assert_eq!(first.status, 200, "{}", first.text());
    let second = second.join().unwrap();
    assert_eq!(
        second.status,
        200,
        "the waiting deploy runs: {}",
        second.text()
    );
    assert_serves(&server, "heavy", &heavy[..20].to_vec());
    assert_eq!(server.get("second.localhost", "/").text(), "second");
    if third.status == 503 {
        assert_eq!(server.get("third.localhost", "/").status, 404);
    }
    assert_no_leftovers(&temp);
}

/// Every path of `a` (and `b`, the same paths) as served by `site`: `Some(0)` when all
/// are `a`'s bytes, `Some(1)` when all are `b`'s, `None` for anything else.
fn served_version(server: &Server, site: &str, a: &Files, b: &Files) -> Option<usize> {
    let mut which = None;
    for ((path, in_a), (_, in_b)) in a.iter().zip(b) {
        let body = server.get(&site_host(site), &format!("/{path}")).body;
        let this = if body == *in_a {
            0
        } else if body == *in_b {
            1
        } else {
            return None;
        };
        if *which.get_or_insert(this) != this {
            return None;
        }
    }
    which
}

#[test]
fn sigkill_during_a_deploy_leaves_a_whole_deployment_and_no_temp_files() {
    let data = TempDir::new("deploy-kill");
    let temp = temp_dir_of(data.path());
    let env = [("FAZT_DEPLOY_RATE", "1000")];
    let mut server = start_on(data.path(), &env);
    let token = server.token.clone();
    // The same 600 paths in both versions: v1 small, v2 60 MB of incompressible bytes.
    let (v2, v2_zip) = heavy_site(41, 600, 100_000);
    let v1: Files = v2
        .iter()
        .map(|(p, _)| (p.clone(), format!("v1 {p}").into_bytes()))
        .collect();
    let r = deploy_zip(&server, "big", &zip_files(&v1, CompressionMethod::Deflated));
    assert_eq!(r.status, 200, "{}", r.text());
    let v1_deployment = r.json()["deployment"].as_i64().unwrap();

    let answered = Arc::new(AtomicBool::new(false));
    let client = {
        let (addr, token, answered) = (server.addr, token.clone(), answered.clone());
        std::thread::spawn(move || {
            let head = deploy_head(
                Some(&token),
                "/api/deploy?site=big",
                "application/zip",
                &format!("Content-Length: {}", v2_zip.len()),
                "",
            );
            let mut stream = connect(addr);
            stream.set_read_timeout(Some(DEPLOY_TIMEOUT)).unwrap();
            let sent = stream
                .write_all(head.as_bytes())
                .and_then(|()| stream.write_all(&v2_zip));
            let response = sent.and_then(|()| read_response(&mut stream)).ok();
            answered.store(true, Ordering::SeqCst);
            response
        })
    };
    // Kill once every file is extracted, about a second into applying them (the apply
    // takes seconds in a debug build). Wherever the kill lands, before, during or after
    // the commit, the outcome must be one whole deployment.
    let v2_bytes: u64 = v2.iter().map(|(_, content)| content.len() as u64).sum();
    let deadline = Instant::now() + DEPLOY_TIMEOUT;
    let mut applying = false;
    while Instant::now() < deadline && !answered.load(Ordering::SeqCst) {
        if extracted_bytes(&temp) == Some(v2_bytes) {
            applying = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if applying {
        std::thread::sleep(Duration::from_millis(1000));
    }
    signal(&server.child, libc::SIGKILL);
    server.wait(Duration::from_secs(10)).expect("killed");
    let response = client.join().unwrap();
    let committed_before_kill = response.as_ref().is_some_and(|r| r.status == 200);
    if let Some(r) = &response {
        assert!(matches!(r.status, 200), "{}", r.text());
    }
    drop(server);
    let orphans = leftovers(&temp);

    let mut server = start_on(data.path(), &env);
    server.token = token;
    assert_eq!(
        leftovers(&temp),
        Vec::<String>::new(),
        "a restart removes what the killed deploy left in {}",
        temp.display()
    );
    if !orphans.is_empty() {
        assert!(
            server.stderr().contains("leftover temp file"),
            "the restart says it removed {orphans:?}"
        );
    }
    let current = current_deployment(&server, "big").as_i64().unwrap();
    let served = served_version(&server, "big", &v1, &v2);
    match served {
        Some(0) => {
            assert!(!committed_before_kill, "a deploy answered 200 was lost");
            assert_eq!(current, v1_deployment);
        }
        Some(1) => assert!(current > v1_deployment),
        _ => panic!("after SIGKILL the site serves a mix of v1 and v2"),
    }
    let deployments = get_json(&server, "/api/sites/big/deployments");
    let count = deployments["deployments"].as_array().unwrap().len();
    assert_eq!(count, 1 + served.unwrap(), "{deployments}");
    let conn = open_read_only(data.path());
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);

    // And the server works: another deploy succeeds and leaves nothing behind.
    let small = files(&[("index.html", b"after the kill")]);
    deploy_ok(&server, "small", &small);
    assert_serves(&server, "small", &small);
    assert_no_leftovers(&temp);
}
