//! Driving headless Chromium from a test: what it needs (Debian's chromium, node, and
//! playwright-core under tests/browser), and running a driver script there to its end.
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Where the driver scripts and their node_modules live.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// `target/screenshots`, created: CI keeps what the browser tests save there.
pub fn screenshots_dir() -> PathBuf {
    let shots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    shots
}

/// What a browser run needs and is missing, if anything.
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

/// Whether this process could have installed what is missing (root with apt-get), in which
/// case its absence is a failure of the setup, not a reason to skip.
pub fn could_install() -> bool {
    use std::os::unix::fs::MetadataExt;
    // /proc/self belongs to the process's effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    root && Path::new("/usr/bin/apt-get").exists()
}

/// True when the browser test must skip (saying why): something is missing and this user
/// could not have installed it. Missing where it could have been installed is a failure.
pub fn must_skip() -> bool {
    let Some(what) = missing() else {
        return false;
    };
    assert!(
        !could_install(),
        "{what} is missing: scripts/test.sh installs it"
    );
    println!("skipped: {what} is not installed and this user can't install it (not root)");
    true
}

/// Runs `node SCRIPT` in [`browser_dir`] with `config` as JSON in the variable `env`, its
/// stderr to `stderr_path`, for at most `limit`. Each stdout line goes to `answer` first: a
/// request it answers (`Some(reply)`, written to the driver's stdin) is not kept; the rest
/// are the run's steps. Returns the exit status and the steps.
pub fn run_driver(
    script: &str,
    env: &str,
    config: &serde_json::Value,
    stderr_path: &Path,
    limit: Duration,
    mut answer: impl FnMut(&str) -> Option<String>,
) -> (ExitStatus, Vec<String>) {
    let mut node = Command::new("node")
        .arg(script)
        .current_dir(browser_dir())
        .env(env, config.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(stderr_path).unwrap())
        .spawn()
        .expect("start node");
    let mut to_node = node.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + limit;
    let mut steps = Vec::new();
    let status = loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => match answer(&line) {
                Some(reply) => writeln!(to_node, "{reply}").unwrap(),
                None => {
                    println!("{line}");
                    steps.push(line);
                }
            },
            Err(_) => {
                if let Some(status) = node.try_wait().unwrap() {
                    break status;
                }
            }
        }
        if Instant::now() >= deadline {
            let _ = node.kill();
            let _ = node.wait();
            panic!("the browser run took over {limit:?}; steps: {steps:#?}");
        }
    };
    // Lines still in the channel after the exit.
    steps.extend(rx.try_iter().inspect(|line| println!("{line}")));
    (status, steps)
}
