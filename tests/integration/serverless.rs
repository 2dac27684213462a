//! Serverless apps (issue #14) through the real binary: both programming styles deployed
//! with `fazt deploy`, storage, the hard limits (time, memory, stack), the queue's 503,
//! atomic code switches, isolation between sites, logs, env and the drain on SIGTERM.
use crate::common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Deploys `files` to `site` with the owner key (an API upload); panics unless it worked.
fn deploy(server: &Server, site: &str, files: &[(&str, &str)]) {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_bytes())).collect();
    let r = deploy_files(server, site, &files, zip::CompressionMethod::Deflated);
    assert_eq!(r.status, 200, "deploy {site}: {}", r.text());
}

/// Deploys a site holding only `api/main.js` with `code`.
fn deploy_api(server: &Server, site: &str, code: &str) {
    deploy(server, site, &[("api/main.js", code)]);
}

fn host(site: &str) -> String {
    format!("{site}.localhost")
}

fn get(server: &Server, site: &str, path: &str) -> HttpResponse {
    server.get(&host(site), path)
}

fn post_json(server: &Server, site: &str, path: &str, body: &str) -> HttpResponse {
    let headers = [("Content-Type", "application/json")];
    send(server, "POST", &host(site), path, &headers, body.as_bytes())
}

/// `fazt deploy DIR --site SITE` against `server`, as a user types it.
fn fazt_deploy(server: &Server, dir: &TempDir, site: &str) {
    let home = TempDir::new("home");
    let url = format!("http://localhost:{}", server.addr.port());
    let args = [
        "deploy",
        s(dir.path()),
        "--site",
        site,
        "--server",
        &url,
        "--token",
        &server.token,
    ];
    let (code, out, err) = run_client(&args, home.path(), &[]);
    assert_eq!(code, 0, "fazt deploy: {out}{err}");
}

#[test]
fn an_api_main_js_site_deployed_with_fazt_deploy_answers_under_api_and_serves_the_rest() {
    let server = Server::start();
    let dir = TempDir::new("site");
    write_file(dir.path(), "index.html", b"<h1>static</h1>");
    let code = r#"
        const who = request.query.name || "world";
        if (request.path === "/api/hello") {
            respond({hello: who, method: request.method, ua: request.headers["user-agent"]});
        } else if (request.path === "/api/echo") {
            respond(201, {got: request.body}, {"X-Echo": "yes"});
        } else {
            respond(404, {error: "no route " + request.path});
        }
    "#;
    write_file(dir.path(), "api/main.js", code.as_bytes());
    fazt_deploy(&server, &dir, "app");

    let r = send(
        &server,
        "GET",
        "app.localhost",
        "/api/hello?name=fazt",
        &[("User-Agent", "tester/1")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let v = r.json();
    assert_eq!(v["hello"], "fazt");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["ua"], "tester/1");

    let r = post_json(&server, "app", "/api/echo", r#"{"a":[1,2]}"#);
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.header("x-echo"), Some("yes"));
    assert_eq!(r.json()["got"]["a"][1], 2);

    assert_eq!(get(&server, "app", "/api/nope").status, 404);
    // Everything outside /api is the static site.
    assert_eq!(get(&server, "app", "/").text(), "<h1>static</h1>");
    assert_eq!(get(&server, "app", "/apiary").status, 404);
}

#[test]
fn a_v071_main_js_app_handles_every_path_with_req_res_and_db() {
    let server = Server::start();
    let dir = TempDir::new("site");
    let code = r#"
        var n = (db.get("count") || 0) + 1;
        db.set("count", n);
        if (req.path === "/json") {
            res.json({count: n, query: req.query, method: req.method});
        } else {
            res.status(202);
            res.header("X-Count", String(n));
            res.send("<p>" + req.path + " " + n + "</p>");
        }
    "#;
    write_file(dir.path(), "main.js", code.as_bytes());
    fazt_deploy(&server, &dir, "legacy");

    let r = get(&server, "legacy", "/any/page");
    assert_eq!(r.status, 202, "{}", r.text());
    assert_eq!(r.text(), "<p>/any/page 1</p>");
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(r.header("x-count"), Some("1"));
    let v = get(&server, "legacy", "/json?x=1").json();
    assert_eq!(v["count"], 2, "db kept the count: {v}");
    assert_eq!(v["query"], "x=1", "v0.7.1 gives the raw query string");

    // A static site's own browser script named main.js stays a file.
    let site = TempDir::new("static");
    write_file(site.path(), "index.html", b"<script src=main.js></script>");
    write_file(site.path(), "main.js", b"console.log('browser')");
    fazt_deploy(&server, &site, "plain");
    assert_eq!(
        get(&server, "plain", "/main.js").text(),
        "console.log('browser')"
    );
}

#[test]
fn kv_and_ds_keep_data_with_ttl_read_your_writes_and_quotas() {
    let server = Server::builder().env("FAZT_APP_KEYS", "3").start();
    let code = r#"
        const kv = fazt.app.kv, ds = fazt.app.ds, q = request.query;
        if (request.path === "/api/kv/set") {
            kv.set(q.key, {v: q.value}, q.ttl ? Number(q.ttl) : undefined);
            respond({read: kv.get(q.key)});
        } else if (request.path === "/api/kv/get") {
            respond({value: kv.get(q.key) ?? null});
        } else if (request.path === "/api/kv/list") {
            respond(kv.list(q.prefix || "").map(e => e.key));
        } else if (request.path === "/api/kv/delete") {
            respond({deleted: kv.delete(q.key)});
        } else if (request.path === "/api/ds") {
            const id = ds.insert("todos", {title: "a", done: false});
            ds.insert("todos", {title: "b", done: true});
            const open = ds.find("todos", {done: false}).map(d => d.title);
            const changed = ds.update("todos", {id}, {done: true});
            const one = ds.findOne("todos", id);
            const removed = ds.delete("todos", {done: true});
            respond({open, changed, one, removed, left: ds.find("todos", {}).length});
        }
    "#;
    deploy_api(&server, "store", code);

    let r = get(&server, "store", "/api/kv/set?key=a&value=1");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["read"]["v"], "1", "read its own write");
    assert_eq!(
        get(&server, "store", "/api/kv/get?key=a").json()["value"]["v"],
        "1"
    );

    let r = get(&server, "store", "/api/kv/set?key=short&value=x&ttl=300");
    assert_eq!(r.json()["read"]["v"], "x");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        get(&server, "store", "/api/kv/get?key=short").json()["value"],
        serde_json::Value::Null,
        "expired"
    );

    get(&server, "store", "/api/kv/set?key=b&value=2");
    let keys = get(&server, "store", "/api/kv/list?prefix=").json();
    assert!(keys.as_array().unwrap().contains(&"b".into()), "{keys}");
    // The quota is 3 keys: the expired one may still count until swept, so fill up.
    let mut refused = None;
    for i in 0..4 {
        let r = get(&server, "store", &format!("/api/kv/set?key=k{i}&value=1"));
        if r.status != 200 {
            refused = Some(r);
            break;
        }
    }
    let refused = refused.expect("the key quota refuses at some point");
    assert_eq!(refused.status, 500);
    let message = error_of(&refused);
    assert!(message.contains("FAZT_APP_KEYS"), "{message}");
    assert_eq!(
        get(&server, "store", "/api/kv/delete?key=a").json()["deleted"],
        true
    );

    let v = get(&server, "store", "/api/ds").json();
    assert_eq!(v["open"], serde_json::json!(["a"]), "{v}");
    assert_eq!(v["changed"], 1);
    assert_eq!(v["one"]["done"], true);
    assert_eq!(v["removed"], 2);
    assert_eq!(v["left"], 0);
}

#[test]
fn fetch_is_refused_for_loopback_private_and_metadata_addresses() {
    let server = Server::start();
    let code = r#"
        try {
            const r = fetch(request.query.url);
            respond({status: r.status});
        } catch (e) {
            respond(502, {error: String(e.message || e)});
        }
    "#;
    deploy_api(&server, "out", code);
    let port = server.addr.port();
    for url in [
        format!("http://127.0.0.1:{port}/health"),
        format!("http://localhost:{port}/health"),
        "http://10.0.0.1/".to_string(),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[::1]/".to_string(),
        "http://[::ffff:127.0.0.1]/".to_string(),
    ] {
        let r = get(&server, "out", &format!("/api/f?url={}", url_encode(&url)));
        assert_eq!(r.status, 502, "{url}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(error.contains("refused"), "{url}: {error}");
    }
}

#[test]
fn fetch_is_refused_for_a_dns_name_that_resolves_to_a_private_or_metadata_address() {
    let entries = [
        ("evil.test", "10.1.2.3"),
        ("meta.test", "169.254.169.254"),
        ("mixed.test", "93.184.215.14"),
        ("mixed.test", "192.168.1.1"),
    ];
    let Some(namespace) = hosts_namespace::HostsNamespace::new(&entries) else {
        return;
    };
    let server = Server::builder().hosts(namespace).start();
    let code = r#"
        try { fetch(request.query.url); respond({fetched: true}); }
        catch (e) { respond(502, {error: String(e.message || e)}); }
    "#;
    deploy_api(&server, "out", code);
    for (name, address) in [
        ("evil.test", "10.1.2.3"),
        ("meta.test", "169.254.169.254"),
        ("mixed.test", "192.168.1.1"),
    ] {
        let url = url_encode(&format!("http://{name}/"));
        let r = get(&server, "out", &format!("/api/f?url={url}"));
        assert_eq!(r.status, 502, "{name}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap().to_string();
        assert!(
            error.contains("refused") && error.contains(address),
            "{name}: {error}"
        );
    }
}

#[test]
fn with_loopback_allowed_for_tests_fetch_reaches_a_local_server() {
    let server = Server::builder()
        .env("FAZT_JS_FETCH_ALLOW_LOOPBACK", "1")
        .start();
    let code = r#"
        const r = fetch(request.query.url, {method: "GET", headers: {"X-From": "script"}});
        respond({status: r.status, ok: r.ok, body: r.text()});
    "#;
    deploy_api(&server, "out", code);
    let url = format!("http://127.0.0.1:{}/health", server.addr.port());
    let r = get(&server, "out", &format!("/api/f?url={}", url_encode(&url)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"], 200);
    // Loopback only: private ranges stay refused.
    let r = get(&server, "out", "/api/f?url=http%3A%2F%2F10.0.0.1%2F");
    assert_eq!(r.status, 500, "{}", r.text());
}

/// The message of an error answer (`{"error": {"code", "message"}}`).
fn error_of(r: &HttpResponse) -> String {
    let v = r.json();
    v["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no message: {v}"))
        .to_string()
}

/// Percent-encodes a query value.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const SPIN: &str = "for (;;) {}";
const HELLO: &str = "respond({hello: 'world'})";

#[test]
fn an_endless_loop_ends_with_504_while_the_other_worker_and_static_files_serve() {
    let server = Server::builder()
        .env("FAZT_JS_WORKERS", "2")
        .env("FAZT_JS_TIMEOUT", "2s")
        .start();
    deploy_api(&server, "spin", SPIN);
    deploy_api(&server, "hello", HELLO);
    deploy(&server, "files", &[("index.html", "static")]);
    let addr = server.addr;
    let started = Instant::now();
    let looping = std::thread::spawn(move || {
        let r = raw_request(
            addr,
            request_bytes("GET", "spin.localhost", "/api/x", &[], b""),
        );
        (r, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(get(&server, "hello", "/api/x").json()["hello"], "world");
    assert_eq!(get(&server, "files", "/").text(), "static");
    assert!(!looping.is_finished(), "served while the loop still ran");
    let (r, took) = looping.join().unwrap();
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(error_of(&r).contains("time limit"));
    assert!(took >= Duration::from_secs(2), "{took:?}");
    // The site works again once its code stops looping (a fresh runtime).
    deploy_api(&server, "spin", HELLO);
    assert_eq!(get(&server, "spin", "/api/x").status, 200);
}

#[test]
fn a_memory_bomb_and_runaway_recursion_are_500_and_the_worker_lives_on() {
    let server = Server::builder()
        .env("FAZT_JS_WORKERS", "1")
        .env("FAZT_JS_MEMORY", "16MiB")
        .start();
    deploy_api(
        &server,
        "bomb",
        "let a = []; for (;;) a.push(new Array(100000).fill(1));",
    );
    deploy_api(
        &server,
        "deep",
        "function f(n) { return f(n + 1) + 1 } f(0)",
    );
    deploy_api(&server, "hello", HELLO);
    let r = get(&server, "bomb", "/api/");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(error_of(&r).contains("memory"), "{}", r.text());
    assert_eq!(
        get(&server, "hello", "/api/").status,
        200,
        "the worker lives"
    );
    let r = get(&server, "deep", "/api/");
    assert_eq!(r.status, 500, "{}", r.text());
    assert!(error_of(&r).contains("recursed"), "{}", r.text());
    assert_eq!(get(&server, "hello", "/api/").status, 200, "and again");
}

#[test]
fn a_full_queue_answers_503_with_retry_after_at_once_and_counts_it() {
    let server = Server::builder()
        .env("FAZT_JS_WORKERS", "1")
        .env("FAZT_JS_QUEUE", "1")
        .env("FAZT_JS_TIMEOUT", "3s")
        .start();
    deploy_api(&server, "spin", SPIN);
    let addr = server.addr;
    let spin = move || {
        std::thread::spawn(move || {
            raw_request(
                addr,
                request_bytes("GET", "spin.localhost", "/api/", &[], b""),
            )
        })
    };
    // One runs (its sandbox is alive), then one waits (the queue depth says so).
    let until_metric = |line: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let metrics = server.admin_get("/metrics", Some(&server.token)).text();
            if metrics.lines().any(|l| l == line) {
                return;
            }
            assert!(Instant::now() < deadline, "never {line}:\n{metrics}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let running = spin();
    until_metric("fazt_js_runtimes 1");
    let waiting = spin();
    until_metric("fazt_js_queue_depth 1");
    let asked = Instant::now();
    let r = get(&server, "spin", "/api/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(asked.elapsed() < Duration::from_secs(2), "answered at once");
    assert_eq!(r.header("retry-after"), Some("1"));
    let running = running.join().unwrap();
    assert_eq!(running.status, 504, "{}", running.text());
    // The second waited just under a time limit (it came in after the first started): it
    // runs to its own deadline, unless a slow machine made that wait a whole time limit,
    // when it is shed (see the next test).
    let waiting = waiting.join().unwrap();
    let shed = match waiting.status {
        504 => 1,
        503 => 2,
        other => panic!("{other}: {}", waiting.text()),
    };
    let metrics = server.admin_get("/metrics", Some(&server.token)).text();
    let counted = format!(r#"fazt_js_invocations_total{{outcome="shed"}} {shed}"#);
    assert!(metrics.contains(&counted), "{metrics}");
}

#[test]
fn an_invocation_that_waited_a_whole_time_limit_is_shed_instead_of_run() {
    let server = Server::builder()
        .env("FAZT_JS_WORKERS", "1")
        .env("FAZT_JS_TIMEOUT", "1s")
        .start();
    deploy_api(&server, "spin", SPIN);
    let addr = server.addr;
    let started = Instant::now();
    let calls: Vec<_> = (0..4)
        .map(|_| {
            std::thread::sleep(Duration::from_millis(30));
            std::thread::spawn(move || {
                raw_request(
                    addr,
                    request_bytes("GET", "spin.localhost", "/api/", &[], b""),
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = calls.into_iter().map(|c| c.join().unwrap()).collect();
    // The first runs to its deadline; each later one runs if it waited less than a time
    // limit when the worker got to it, else is answered 503 without running. Four loops
    // run one after another would take four seconds.
    assert_eq!(statuses[0], 504, "{statuses:?}");
    assert!(
        statuses.iter().all(|s| [503, 504].contains(s)),
        "{statuses:?}"
    );
    assert!(statuses.contains(&503), "{statuses:?}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_deploy_switches_the_code_atomically_under_load() {
    let server = Server::builder().env("FAZT_JS_WORKERS", "2").start();
    let version = |v: u32| format!("const a = {v}; const b = {v}; respond({{a, b}})");
    deploy_api(&server, "flip", &version(1));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = server.addr;
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    let raw = request_bytes("GET", "flip.localhost", "/api/v", &[], b"");
                    let v = raw_request(addr, raw).json();
                    assert_eq!(v["a"], v["b"], "one deployment's code: {v}");
                    seen.push(v["a"].as_u64().unwrap());
                }
                seen
            })
        })
        .collect();
    for v in 2..=4 {
        std::thread::sleep(Duration::from_millis(150));
        deploy_api(&server, "flip", &version(v));
    }
    std::thread::sleep(Duration::from_millis(150));
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let seen = client.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "never back: {seen:?}"
        );
        assert_eq!(seen.last(), Some(&4), "the last deploy serves");
    }
}

#[test]
fn two_sites_share_no_globals_and_no_storage() {
    let server = Server::builder().env("FAZT_JS_WORKERS", "1").start();
    deploy_api(
        &server,
        "one",
        "globalThis.secret = 'one'; fazt.app.kv.set('k', 'one'); respond({ok: true})",
    );
    deploy_api(
        &server,
        "two",
        "respond({secret: typeof secret, k: fazt.app.kv.get('k') ?? null})",
    );
    assert_eq!(get(&server, "one", "/api/").status, 200);
    let v = get(&server, "two", "/api/").json();
    assert_eq!(v["secret"], "undefined");
    assert_eq!(v["k"], serde_json::Value::Null);
}

#[test]
fn console_lines_reach_the_sites_logs_bounded_per_invocation() {
    let server = Server::start();
    let code = r#"
        for (let i = 0; i < 500; i++) console.log("line", i, {i});
        console.error("done");
        respond({ok: true});
    "#;
    deploy_api(&server, "noisy", code);
    assert_eq!(get(&server, "noisy", "/api/").status, 200);
    let deadline = Instant::now() + Duration::from_secs(5);
    let logs = loop {
        let v = get_json(&server, "/api/sites/noisy/logs?limit=1000");
        let logs = v["logs"].as_array().unwrap().clone();
        if logs
            .iter()
            .any(|l| l["message"].as_str().unwrap().contains("dropped"))
        {
            break logs;
        }
        assert!(Instant::now() < deadline, "no logs: {v}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        logs.len() <= 101,
        "at most 100 lines and the note: {}",
        logs.len()
    );
    assert_eq!(logs[0]["message"], r#"line 0 {"i":0}"#);
    assert_eq!(logs[0]["level"], "log");
}

#[test]
fn env_values_reach_the_script_and_are_never_shown_back() {
    let server = Server::start();
    deploy_api(
        &server,
        "envy",
        "respond({len: (fazt.env.API_TOKEN || '').length, other: fazt.env.NOPE ?? null})",
    );
    let secret = "s3cr3t-value-9f8e7d";
    let url = format!("http://localhost:{}", server.addr.port());
    let home = TempDir::new("home");
    let args = [
        "env",
        "set",
        "envy",
        "API_TOKEN",
        secret,
        "--server",
        &url,
        "--token",
        &server.token,
    ];
    let (code, out, err) = run_client(&args, home.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(secret) && !err.contains(secret));
    let v = get(&server, "envy", "/api/").json();
    assert_eq!(v["len"], secret.len());
    assert_eq!(v["other"], serde_json::Value::Null);
    let listed = get_json(&server, "/api/sites/envy/env").to_string();
    assert!(
        listed.contains("API_TOKEN") && !listed.contains(secret),
        "{listed}"
    );
}

#[test]
fn sigterm_lets_invocations_in_flight_finish_and_commits_their_writes() {
    let mut server = Server::builder()
        .env("FAZT_JS_WORKERS", "2")
        .env("FAZT_JS_TIMEOUT", "5s")
        .start();
    let code = r#"
        fazt.app.kv.set("done-" + request.query.n, true);
        const until = Date.now() + 800;
        while (Date.now() < until) {}
        respond({n: request.query.n});
    "#;
    deploy_api(&server, "slow", code);
    let addr = server.addr;
    let calls: Vec<_> = (0..3)
        .map(|n| {
            std::thread::spawn(move || {
                let path = format!("/api/?n={n}");
                raw_request(
                    addr,
                    request_bytes("GET", "slow.localhost", &path, &[], b""),
                )
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    signal(&server.child, libc::SIGTERM);
    for call in calls {
        let r = call.join().unwrap();
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let status = server.wait(Duration::from_secs(20)).expect("fazt exits");
    assert!(status.success(), "exit {status:?}: {}", server.stderr());

    // Every write a script was told of is there after a restart.
    let mut again = start_on(server.data.path(), &[]);
    again.token = server.token.clone();
    deploy_api(
        &again,
        "slow",
        "respond(['0','1','2'].map(n => fazt.app.kv.get('done-' + n)))",
    );
    assert_eq!(
        get(&again, "slow", "/api/").json(),
        serde_json::json!([true, true, true])
    );
}
