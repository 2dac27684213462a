//! Operating a site's serverless app (issue #14) through the real binary: its environment
//! variables and logs on the admin API (`/api/sites/<name>/env[/<KEY>]`,
//! `/api/sites/<name>/logs`) and the CLI (`fazt env set|list|unset`, `fazt logs
//! [--follow]`). Env values are never echoed: every answer, the CLI's output, the audit log
//! and the server's log are searched for them. Log lines are written into the server's
//! database directly (the runtime that writes them is not part of these tests).
use crate::common::*;
use rusqlite::{params, Connection};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A value that appears nowhere else, so finding it anywhere is an echo.
const SECRET: &str = "s3cr3t-Vq7Zx-value";
const SECRET2: &str = "an0ther-K9wP-value";

fn publish(server: &Server, site: &str) {
    let dir = TempDir::new("apps-site");
    write_file(dir.path(), "index.html", b"hi");
    import(site, dir.path(), server.data.path());
}

fn put_env(server: &Server, token: &str, site: &str, key: &str, body: &str) -> HttpResponse {
    admin_raw_as(
        server,
        token,
        "PUT",
        &format!("/api/sites/{site}/env/{key}"),
        body,
    )
}

fn value_body(value: &str) -> String {
    json!({ "value": value }).to_string()
}

fn error_of(r: &HttpResponse) -> String {
    r.json()["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Appends log lines for `site` (ts in ms) to the server's database; returns their ids.
fn write_logs(server: &Server, site: &str, lines: &[(i64, &str, &str)]) -> Vec<i64> {
    let conn = Connection::open(fazt::db::db_path(server.data.path())).expect("open fazt.db");
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    lines
        .iter()
        .map(|(ts, level, message)| {
            conn.query_row(
                "INSERT INTO app_logs (site, ts, level, message) VALUES (?1, ?2, ?3, ?4)
                 RETURNING id",
                params![site, ts, level, message],
                |r| r.get(0),
            )
            .expect("insert a log line")
        })
        .collect()
}

fn logs(server: &Server, site: &str, query: &str) -> HttpResponse {
    server.admin_get(
        &format!("/api/sites/{site}/logs{query}"),
        Some(&server.token),
    )
}

fn messages(answer: &Value) -> Vec<String> {
    answer["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn env_variables_are_set_listed_and_unset_and_never_echoed() {
    let server = Server::start();
    publish(&server, "blog");
    let token = server.token.clone();
    let mut seen = String::new();
    let mut keep = |r: &HttpResponse| seen.push_str(&format!("{} {}\n", r.status, r.text()));

    let set = put_env(&server, &token, "blog", "TOKEN", &value_body(SECRET));
    keep(&set);
    assert_eq!(set.status, 200, "{}", set.text());
    assert_eq!(set.json(), json!({"key": "TOKEN", "length": SECRET.len()}));
    let replaced = put_env(&server, &token, "blog", "TOKEN", &value_body(SECRET2));
    keep(&replaced);
    assert_eq!(replaced.status, 200);
    let other = put_env(&server, &token, "blog", "_OTHER1", &value_body(""));
    keep(&other);
    assert_eq!(other.json(), json!({"key": "_OTHER1", "length": 0}));

    let listed = server.admin_get("/api/sites/blog/env", Some(&token));
    keep(&listed);
    assert_eq!(listed.status, 200);
    let body = listed.json();
    assert_eq!(body["site"], "blog");
    let env = body["env"].as_array().unwrap();
    assert_eq!(env.len(), 2, "{body}");
    assert_eq!(env[0]["key"], "TOKEN");
    assert_eq!(env[0]["length"], SECRET2.len());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let updated = env[0]["updated_at"].as_i64().unwrap();
    assert!(
        (now - 60..=now + 1).contains(&updated),
        "{updated} vs {now}"
    );
    assert_eq!(env[1]["key"], "_OTHER1");

    // Refusals name the problem and never quote the value.
    let too_long = put_env(
        &server,
        &token,
        "blog",
        "BIG",
        &value_body(&"v".repeat(4097)),
    );
    keep(&too_long);
    assert_eq!(too_long.status, 400);
    assert!(error_of(&too_long).contains("4096"), "{}", too_long.text());
    for (key, body, needle) in [
        (
            "1BAD",
            value_body(SECRET),
            "'1BAD' is not an environment variable name",
        ),
        (
            "A-B",
            value_body(SECRET),
            "'A-B' is not an environment variable name",
        ),
        ("GOOD", SECRET.to_string(), "not JSON"),
        (
            "GOOD",
            json!({ "value": 5 }).to_string(),
            "'value' must be a string",
        ),
        (
            "GOOD",
            json!({ "valeu": SECRET }).to_string(),
            "'value' is missing",
        ),
    ] {
        let r = put_env(&server, &token, "blog", key, &body);
        keep(&r);
        assert_eq!(r.status, 400, "{key} {body}: {}", r.text());
        assert!(error_of(&r).contains(needle), "{key}: {}", r.text());
    }
    let r = admin_raw(
        &server,
        "POST",
        "/api/sites/blog/env/TOKEN",
        &value_body(SECRET),
    );
    assert_eq!((r.status, r.header("allow")), (405, Some("PUT, DELETE")));
    let r = admin_raw(&server, "DELETE", "/api/sites/blog/env", "");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));

    // Unknown sites are 404 naming them, for every route.
    for r in [
        server.admin_get("/api/sites/nosuch/env", Some(&token)),
        put_env(&server, &token, "nosuch", "TOKEN", &value_body(SECRET)),
        admin_delete(&server, "/api/sites/nosuch/env/TOKEN"),
        logs(&server, "nosuch", ""),
    ] {
        keep(&r);
        assert_eq!(r.status, 404, "{}", r.text());
        assert_eq!(error_of(&r), "no site 'nosuch'");
    }

    let unset = admin_delete(&server, "/api/sites/blog/env/TOKEN");
    keep(&unset);
    assert_eq!(
        (unset.status, unset.json()),
        (200, json!({"deleted": "TOKEN"}))
    );
    let again = admin_delete(&server, "/api/sites/blog/env/TOKEN");
    keep(&again);
    assert_eq!(again.status, 404);
    assert!(
        error_of(&again).contains("has no env variable TOKEN"),
        "{}",
        again.text()
    );
    let listed = server.admin_get("/api/sites/blog/env", Some(&token)).json();
    assert_eq!(listed["env"].as_array().unwrap().len(), 1);

    // The changes are audited, with the key but not the value.
    let mut audit = Value::Null;
    for _ in 0..50 {
        audit = get_json(&server, "/api/audit");
        if audit.to_string().contains("site.env.delete") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let entries = audit["entries"].as_array().unwrap();
    let found = |action: &str, target: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["action"] == action
                && e["target"] == target
                && e["outcome"].as_str().unwrap().contains(outcome)
        })
    };
    assert!(found("site.env.update", "blog/TOKEN", "ok"), "{audit:#}");
    assert!(found("site.env.update", "blog/BIG", "4096"), "{audit:#}");
    assert!(found("site.env.delete", "blog/TOKEN", "ok"), "{audit:#}");
    assert!(
        found("site.env.delete", "blog/TOKEN", "has no env variable"),
        "{audit:#}"
    );
    seen.push_str(&audit.to_string());
    seen.push_str(&server.stderr());
    for value in [SECRET, SECRET2] {
        assert!(!seen.contains(value), "{value} echoed in:\n{seen}");
    }
    // The value is stored all the same (for the runtime).
    let conn = open_read_only(server.data.path());
    let stored: String = conn
        .query_row(
            "SELECT value FROM app_env WHERE site = 'blog' AND key = '_OTHER1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(stored, "");
}

#[test]
fn a_scoped_key_manages_the_env_and_logs_of_its_sites_only() {
    let server = Server::start();
    publish(&server, "blog");
    publish(&server, "shop");
    let made = admin_post(
        &server,
        "/api/keys",
        &json!({ "name": "ci", "scope": "deploy:blog" }),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let scoped = made.json()["token"].as_str().unwrap().to_string();

    assert_eq!(
        put_env(&server, &scoped, "blog", "A", &value_body("1")).status,
        200
    );
    assert_eq!(
        server
            .admin_get("/api/sites/blog/env", Some(&scoped))
            .status,
        200
    );
    assert_eq!(
        server
            .admin_get("/api/sites/blog/logs", Some(&scoped))
            .status,
        200
    );
    for r in [
        put_env(&server, &scoped, "shop", "A", &value_body("1")),
        server.admin_get("/api/sites/shop/env", Some(&scoped)),
        server.admin_get("/api/sites/shop/logs", Some(&scoped)),
        admin_raw_as(&server, &scoped, "DELETE", "/api/sites/shop/env/A", ""),
        // A site that does not exist is refused the same way: a narrow key learns nothing.
        server.admin_get("/api/sites/nosuch/env", Some(&scoped)),
        // The system sites are the owner's.
        server.admin_get("/api/sites/root/env", Some(&scoped)),
    ] {
        assert_eq!(r.status, 403, "{}", r.text());
        assert!(error_of(&r).contains("does not cover site"), "{}", r.text());
    }
    assert_eq!(
        server
            .admin_get("/api/sites/root/env", Some(&server.token))
            .status,
        200
    );
    assert_eq!(server.admin_get("/api/sites/blog/env", None).status, 401);
}

#[test]
fn logs_are_paged_after_an_id_and_the_newest_come_first() {
    let server = Server::start();
    publish(&server, "blog");
    publish(&server, "shop");
    let empty = logs(&server, "blog", "");
    assert_eq!(empty.status, 200);
    assert_eq!(empty.json(), json!({"site": "blog", "logs": [], "next": 0}));

    let lines: Vec<(i64, &str, &str)> = vec![
        (1_800_000_000_000, "log", "one"),
        (1_800_000_001_000, "info", "two"),
        (1_800_000_002_000, "warn", "three"),
        (1_800_000_003_000, "error", "four"),
        (1_800_000_004_000, "log", "five"),
    ];
    write_logs(&server, "shop", &[(1_800_000_000_500, "log", "the shop's")]);
    let ids = write_logs(&server, "blog", &lines);

    let all = logs(&server, "blog", "").json();
    assert_eq!(messages(&all), ["one", "two", "three", "four", "five"]);
    assert_eq!(all["next"], ids[4]);
    assert_eq!(
        all["logs"][2],
        json!({"id": ids[2], "ts": 1_800_000_002_000i64, "level": "warn", "message": "three"})
    );
    let newest = logs(&server, "blog", "?limit=2").json();
    assert_eq!(messages(&newest), ["four", "five"]);
    let after = logs(&server, "blog", &format!("?after={}&limit=2", ids[1])).json();
    assert_eq!(messages(&after), ["three", "four"]);
    assert_eq!(after["next"], ids[3]);
    let none = logs(&server, "blog", &format!("?after={}", ids[4])).json();
    assert_eq!(messages(&none), Vec::<String>::new());
    assert_eq!(
        none["next"], ids[4],
        "an empty page keeps the follower's place"
    );
    assert_eq!(messages(&logs(&server, "shop", "").json()), ["the shop's"]);

    for query in [
        "?limit=0",
        "?limit=1001",
        "?limit=x",
        "?after=-1",
        "?after=x",
    ] {
        let r = logs(&server, "blog", query);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        let message = error_of(&r);
        assert!(
            message.contains("'limit'") || message.contains("'after'"),
            "{message}"
        );
    }
    assert_eq!(logs(&server, "blog", "?limit=1000").status, 200);
    let r = admin_raw(&server, "POST", "/api/sites/blog/logs", "{}");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

/// `--server` for the test server: its admin host is bare `localhost` on its port.
fn server_url(server: &Server) -> String {
    format!("http://localhost:{}", server.addr.port())
}

/// A client command against `server` with its owner token, `input` on stdin.
fn cli(
    server: &Server,
    home: &TempDir,
    args: &[&str],
    input: Option<&str>,
) -> (i32, String, String) {
    let url = server_url(server);
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--server", &url, "--token", &server.token]);
    match input {
        Some(input) => run_client_input(&all, home.path(), input),
        None => run_client(&all, home.path(), &[]),
    }
}

#[test]
fn the_cli_sets_lists_and_unsets_env_variables_and_prints_logs() {
    let server = Server::start();
    publish(&server, "blog");
    let home = TempDir::new("apps-home");
    let mut printed = String::new();

    let (code, out, err) = cli(
        &server,
        &home,
        &["env", "set", "blog", "TOKEN", SECRET],
        None,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        format!(
            "set TOKEN on blog ({} bytes; the value is never shown back)",
            SECRET.len()
        )
    );
    printed.push_str(&(out + &err));
    // No value: one line of stdin.
    let input = format!("{SECRET2}\n");
    let (code, out, err) = cli(
        &server,
        &home,
        &["env", "set", "Blog", "API_KEY"],
        Some(&input),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("set API_KEY on blog ({} bytes", SECRET2.len())),
        "{out}"
    );
    printed.push_str(&(out + &err));
    let (code, out, err) = cli(&server, &home, &["env", "set", "blog", "EMPTY"], Some(""));
    assert_eq!(code, 2, "no line on stdin: {out}{err}");
    assert!(err.contains("no value for EMPTY"), "{err}");

    let (code, out, err) = cli(&server, &home, &["env", "list", "blog"], None);
    assert_eq!(code, 0, "{out}{err}");
    let rows: Vec<&str> = out.lines().collect();
    assert!(
        rows[0].starts_with("KEY      LENGTH  UPDATED (UTC)"),
        "{out}"
    );
    assert!(
        rows[1].starts_with(&format!("API_KEY  {}  ", SECRET2.len())),
        "{out}"
    );
    assert!(
        rows[2].starts_with(&format!("TOKEN    {}  ", SECRET.len())),
        "{out}"
    );
    printed.push_str(&(out + &err));
    let (code, out, _) = cli(&server, &home, &["env", "list", "blog", "--json"], None);
    assert_eq!(code, 0);
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed["env"].as_array().unwrap().len(), 2);
    printed.push_str(&out);

    let (code, out, err) = cli(&server, &home, &["env", "unset", "blog", "TOKEN"], None);
    assert_eq!((code, out.trim()), (0, "unset TOKEN on blog"), "{err}");
    let (code, _, err) = cli(&server, &home, &["env", "unset", "blog", "TOKEN"], None);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("cannot unset TOKEN on blog: not found (404"),
        "{err}"
    );
    let (code, _, err) = cli(&server, &home, &["env", "set", "blog", "1BAD", "x"], None);
    assert_eq!(code, 2, "a bad key is a usage error: {err}");
    assert!(
        err.contains("'1BAD' is not an environment variable name"),
        "{err}"
    );
    let (code, _, err) = cli(&server, &home, &["env", "list", "nosuch"], None);
    assert_eq!(code, 1);
    assert!(err.contains("no site 'nosuch'"), "{err}");
    let (code, out, _) = cli(&server, &home, &["env", "list", "blog"], None);
    assert_eq!(code, 0);
    assert!(out.contains("API_KEY") && !out.contains("TOKEN"), "{out}");

    let (code, out, _) = cli(&server, &home, &["logs", "blog"], None);
    assert_eq!((code, out.as_str()), (0, ""), "no lines yet");
    write_logs(
        &server,
        "blog",
        &[
            (1_800_000_002_345, "warn", "careful"),
            (1_800_000_003_000, "error", "it broke\non two lines"),
            (1_800_000_004_000, "log", "newest"),
        ],
    );
    let (code, out, err) = cli(&server, &home, &["logs", "blog"], None);
    assert_eq!(code, 0, "{err}");
    let pad = " ".repeat(32);
    assert_eq!(
        out,
        format!(
            "2027-01-15 08:00:02.345  warn   careful\n\
             2027-01-15 08:00:03.000  error  it broke\n{pad}on two lines\n\
             2027-01-15 08:00:04.000  log    newest\n"
        )
    );
    let (code, out, _) = cli(
        &server,
        &home,
        &["logs", "blog", "--limit", "1", "--json"],
        None,
    );
    assert_eq!(code, 0);
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(messages(&answer), ["newest"]);

    printed.push_str(&server.stderr());
    for value in [SECRET, SECRET2] {
        assert!(!printed.contains(value), "{value} echoed in:\n{printed}");
    }
}

/// `fazt logs SITE --follow` against `server`, its stdout lines arriving on the channel.
fn follow(server: &Server, home: &TempDir) -> (std::process::Child, mpsc::Receiver<String>) {
    let url = server_url(server);
    let mut child = Command::new(BIN)
        .args([
            "logs",
            "blog",
            "--follow",
            "--server",
            &url,
            "--token",
            &server.token,
        ])
        .env_remove("FAZT_SERVER")
        .env_remove("FAZT_TOKEN")
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fazt logs --follow");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_exit(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn logs_follow_prints_new_lines_until_interrupted() {
    use std::os::unix::process::ExitStatusExt;
    let server = Server::start();
    publish(&server, "blog");
    write_logs(&server, "blog", &[(1_800_000_000_000, "log", "before")]);
    let home = TempDir::new("apps-home");
    let (mut child, lines) = follow(&server, &home);
    let first = lines
        .recv_timeout(Duration::from_secs(10))
        .expect("the first line");
    assert!(first.ends_with("log    before"), "{first}");

    write_logs(
        &server,
        "blog",
        &[(1_800_000_001_000, "info", "after it started")],
    );
    let next = lines
        .recv_timeout(Duration::from_secs(5))
        .expect("the new line within 5 s");
    assert!(next.ends_with("info   after it started"), "{next}");
    assert!(lines.try_recv().is_err(), "each line once");

    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(5)).expect("exits on SIGINT");
    assert_eq!(status.signal(), Some(libc::SIGINT), "{status:?}");
}

#[test]
fn logs_follow_ends_with_an_error_when_the_server_goes_away() {
    let mut server = Server::start();
    publish(&server, "blog");
    let home = TempDir::new("apps-home");
    let (mut child, _lines) = follow(&server, &home);
    // Let it poll at least once, then stop the server.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(child.try_wait().unwrap().is_none(), "still following");
    assert!(server.terminate().success());
    let status = wait_exit(&mut child, Duration::from_secs(20)).expect("no hang");
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.starts_with("fazt: cannot connect to"), "{err}");
    assert!(
        err.trim_end()
            .ends_with("; stopped following the logs of blog"),
        "{err}"
    );
}
