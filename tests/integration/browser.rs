//! A real browser against the real binary: headless Chromium loads `/blog` (a directory
//! reached without its trailing slash) and the page reports where its relative link
//! resolves. Before the redirect, `/blog` was served in place and the link pointed at
//! `/2026/first-post.html`.
//!
//! `scripts/test.sh` installs Debian's `chromium` when it is missing and it runs as root;
//! this test skips, saying why, only where it can't be installed (not root, or no apt).
use crate::common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The longest one Chromium run may take; it usually takes about a second.
const CHROMIUM_LIMIT: Duration = Duration::from_secs(60);

const BLOG_INDEX: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>blog</title></head>
<body>
<h1>Blog</h1>
<p><a id="post" href="2026/first-post.html">First post</a></p>
<p id="resolved"></p>
<script>
  document.getElementById('resolved').textContent =
    'link=' + document.getElementById('post').href + ' location=' + location.href + ' end';
</script>
</body></html>
"#;

/// The Chromium binary on PATH, if any.
fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// `chromium --headless ... --dump-dom url`, bounded by [`CHROMIUM_LIMIT`]; the DOM
/// after the page's scripts ran.
fn dump_dom(chromium: &Path, url: &str) -> String {
    let profile = TempDir::new("chromium-profile");
    let dom_path = profile.path().join("dom.html");
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-proxy-server",
            "--disable-dev-shm-usage",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.path().join("data").display()
        ))
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&dom_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + CHROMIUM_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "chromium exited with {status}");
    std::fs::read_to_string(&dom_path).unwrap()
}

#[test]
fn relative_links_resolve_under_the_directory_after_the_slash_redirect() {
    let Some(chromium) = chromium() else {
        assert!(
            !browser::could_install(),
            "chromium is missing: scripts/test.sh installs it (apt-get install -y chromium)"
        );
        println!("skipped: chromium is not installed and this user can't install it (not root)");
        return;
    };
    let server = Server::start();
    let site = TempDir::new("browser-site");
    write_file(site.path(), "blog/index.html", BLOG_INDEX.as_bytes());
    write_file(
        site.path(),
        "blog/2026/first-post.html",
        b"<h1>First post</h1>",
    );
    import("blog", site.path(), server.data.path());
    wait_for(&server, "blog.localhost", "/blog/", |r| r.status == 200);

    // Chromium resolves every *.localhost name to loopback by itself.
    let origin = format!("http://blog.localhost:{}", server.addr.port());
    let dom = dump_dom(&chromium, &format!("{origin}/blog"));
    let expected = format!("link={origin}/blog/2026/first-post.html location={origin}/blog/ end");
    assert!(dom.contains(&expected), "expected {expected:?} in:\n{dom}");
    // And the link leads to the post.
    let post = server.get("blog.localhost", "/blog/2026/first-post.html");
    assert_eq!(
        (post.status, post.text().as_str()),
        (200, "<h1>First post</h1>")
    );
}
