//! WebSockets in a real browser: `tests/browser/ws.js` drives headless Chromium (Debian's,
//! through playwright-core) against sites whose page opens `ws://<host>/ws` with the
//! browser's own `WebSocket`. Two pages of one site in two browser contexts see a text of
//! one (echo and broadcast) and a binary `ArrayBuffer` of the other, byte for byte; a page of
//! another site sees neither. The two pages go to `target/screenshots/ws-two-pages.png`.
//!
//! `scripts/test.sh` installs Chromium, Node and playwright-core when it can (as root); this
//! test skips, saying why, only where they can't be installed.
use crate::common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest the browser run may take; it takes a few seconds.
const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// The page of each site: its socket's state in `#state[data-state]`, each message received
/// as an `li` (class `text` or `binary`), and `sendText` / `sendBinary` for the driver.
const CHAT_PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>chat</title></head>
<body style="font:15px sans-serif">
<h1>chat on <span id="host"></span></h1>
<p>socket: <b id="state" data-state="connecting">connecting</b></p>
<ol id="log"></ol>
<script>
  const state = document.getElementById('state');
  const setState = (s) => { state.dataset.state = s; state.textContent = s; };
  document.getElementById('host').textContent = location.host;
  const ws = new WebSocket("ws://" + location.host + "/ws");
  ws.binaryType = "arraybuffer";
  ws.onopen = () => setState('open');
  ws.onclose = (e) => setState('closed ' + e.code);
  ws.onmessage = (e) => {
    const li = document.createElement('li');
    if (typeof e.data === 'string') {
      li.className = 'text';
      li.textContent = e.data;
    } else {
      li.className = 'binary';
      li.textContent = 'binary ' + Array.from(new Uint8Array(e.data)).join(',');
    }
    document.getElementById('log').appendChild(li);
  };
  window.sendText = (text) => ws.send(text);
  window.sendBinary = (bytes) => ws.send(new Uint8Array(bytes).buffer);
</script>
</body></html>
"#;

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// What the browser run needs and is missing, if anything.
fn missing() -> Option<&'static str> {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
    };
    if !Path::new("/usr/bin/chromium").is_file() {
        return Some("chromium (/usr/bin/chromium)");
    }
    if !on_path("node") {
        return Some("node");
    }
    if !browser_dir().join("node_modules/playwright-core").is_dir() {
        return Some("playwright-core (npm ci in tests/browser)");
    }
    None
}

/// Whether this process could have installed them (root with apt-get), in which case
/// their absence is a failure of the setup, not a reason to skip.
fn could_install() -> bool {
    use std::os::unix::fs::MetadataExt;
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root && Path::new("/usr/bin/apt-get").exists()
}

/// Runs the driver to its end (bounded by [`BROWSER_LIMIT`]); its exit status and lines.
fn run_driver(config: &serde_json::Value, stderr_path: &Path) -> (bool, Vec<String>) {
    let mut node = Command::new("node")
        .arg("ws.js")
        .current_dir(browser_dir())
        .env("FAZT_WS_BROWSER", config.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_path).unwrap())
        .spawn()
        .expect("start node");
    let (tx, rx) = mpsc::channel();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + BROWSER_LIMIT;
    let mut lines = Vec::new();
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                println!("{line}");
                lines.push(line);
            }
            Err(_) => {
                if let Some(status) = node.try_wait().unwrap() {
                    break status;
                }
            }
        }
        if Instant::now() >= deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the browser run took over {BROWSER_LIMIT:?}; steps: {lines:#?}");
        }
    };
    lines.extend(rx.try_iter().inspect(|line| println!("{line}")));
    (status.success(), lines)
}

#[test]
fn two_browser_pages_talk_through_the_hub_of_their_site() {
    if let Some(what) = missing() {
        assert!(
            !could_install(),
            "{what} is missing: scripts/test.sh installs it"
        );
        println!("skipped: {what} is not installed and this user can't install it (not root)");
        return;
    }
    let server = Server::start();
    let sites = TempDir::new("ws-browser-sites");
    for name in ["chat", "other"] {
        write_file(
            sites.path(),
            &format!("{name}/index.html"),
            CHAT_PAGE.as_bytes(),
        );
        import(name, &sites.path().join(name), server.data.path());
        let host = format!("{name}.localhost");
        let page = wait_for(&server, &host, "/", |r| r.status == 200);
        assert_eq!(page.text(), CHAT_PAGE, "{name} serves its page");
    }

    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("ws-two-pages.png");
    let _ = std::fs::remove_file(&shot);
    let config = json!({"port": server.addr.port(), "shots": shots});
    let stderr_path = sites.path().join("node.stderr");
    let (success, lines) = run_driver(&config, &stderr_path);
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        success && lines.last().map(String::as_str) == Some("DONE"),
        "the browser run failed after: {lines:#?}\n{stderr}"
    );
    // A PNG: its signature, and more than an empty picture's bytes.
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
}
