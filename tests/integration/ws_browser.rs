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
use std::time::Duration;

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

#[test]
fn two_browser_pages_talk_through_the_hub_of_their_site() {
    if browser::must_skip() {
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

    let shots = browser::screenshots_dir();
    let shot = shots.join("ws-two-pages.png");
    let _ = std::fs::remove_file(&shot);
    let config = json!({"port": server.addr.port(), "shots": shots});
    let stderr_path = sites.path().join("node.stderr");
    let (status, lines) = browser::run_driver(
        "ws.js",
        "FAZT_WS_BROWSER",
        &config,
        &stderr_path,
        BROWSER_LIMIT,
        |_| None,
    );
    let success = status.success();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    assert!(
        success && lines.last().map(String::as_str) == Some("DONE"),
        "the browser run failed after: {lines:#?}\n{stderr}"
    );
    // A PNG: its signature, and more than an empty picture's bytes.
    let png = std::fs::read(&shot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
}
