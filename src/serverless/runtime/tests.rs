//! The script API of both styles, on one site's [`App`] with the in-memory host.

use super::bytecode::BytecodeCache;
use super::fake::{FakeServices, Memory};
use super::*;
use crate::serverless::pool::Services;
use serde_json::{json, Value as Json};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMITS: Limits = Limits {
    timeout: Duration::from_millis(500),
    memory: 16 << 20,
    stack: 256 << 10,
};

/// One site's app with its host state.
struct Site {
    memory: Arc<Memory>,
    services: FakeServices,
    app: App,
}

impl Site {
    fn new(style: Style, source: &str) -> Site {
        Site::try_new(style, source).unwrap()
    }

    fn try_new(style: Style, source: &str) -> Result<Site, RunError> {
        let memory = Arc::new(Memory::default());
        let services = FakeServices(Arc::clone(&memory));
        let code = memory.code(style, source);
        let cache = BytecodeCache::new(1 << 20);
        let app = App::load(LIMITS, &code, &cache, || services.load_code(&code))?;
        Ok(Site {
            memory,
            services,
            app,
        })
    }

    fn run(&self, request: JsRequest) -> Result<JsResponse, RunError> {
        self.app.invoke(request, self.services.host("blog"), LIMITS)
    }

    fn get(&self, path: &str) -> Result<JsResponse, RunError> {
        self.run(get(path))
    }

    /// The JSON body of a GET that must succeed.
    fn json(&self, path: &str) -> Json {
        json_of(&self.get(path).unwrap())
    }

    fn logs(&self) -> Vec<String> {
        self.memory.logs_of("blog")
    }
}

fn get(target: &str) -> JsRequest {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    JsRequest {
        method: "GET".into(),
        path: path.into(),
        query: query.into(),
        headers: vec![("Host".into(), "blog.example".into())],
        body: Vec::new(),
        client_ip: "203.0.113.7".into(),
    }
}

fn post(content_type: &str, body: &[u8]) -> JsRequest {
    JsRequest {
        method: "POST".into(),
        headers: vec![("Content-Type".into(), content_type.into())],
        body: body.to_vec(),
        ..get("/api/x")
    }
}

fn json_of(response: &JsResponse) -> Json {
    serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&response.body)))
}

fn header<'r>(response: &'r JsResponse, name: &str) -> Option<&'r str> {
    response
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn thrown(outcome: Result<JsResponse, RunError>) -> String {
    match outcome {
        Err(RunError::Thrown(message)) => message,
        other => panic!("not thrown: {other:?}"),
    }
}

#[test]
fn the_api_style_request_has_every_field() {
    // `request` has a `body`: returned alone it would be the {status, body} form.
    let site = Site::new(Style::Api, "return {body: request};");
    let mut request = get("/api/items/3?a=1&b=x+y&a=2&empty");
    request.headers = vec![
        ("Accept".into(), "text/html".into()),
        ("X-Tag".into(), "one".into()),
        ("x-tag".into(), "two".into()),
    ];
    let seen = json_of(&site.run(request).unwrap());
    assert_eq!(
        seen,
        json!({
            "method": "GET",
            "path": "/api/items/3",
            "query": {"a": "2", "b": "x y", "empty": ""},
            "headers": {"accept": "text/html", "x-tag": "one, two"},
            "body": null,
            "files": [],
            "ip": "203.0.113.7",
        })
    );
}

#[test]
fn bodies_are_parsed_by_their_content_type() {
    let site = Site::new(
        Style::Api,
        "return {body: {body: request.body, files: request.files}};",
    );
    let body = |request| json_of(&site.run(request).unwrap());
    assert_eq!(
        body(post("application/json; charset=utf-8", br#"{"n": [1, 2]}"#)),
        json!({"body": {"n": [1, 2]}, "files": []})
    );
    assert_eq!(
        body(post("application/problem+json", b"[1]")),
        json!({"body": [1], "files": []})
    );
    assert_eq!(
        body(post("application/json", b"{not json")),
        json!({"body": "{not json", "files": []}),
        "not JSON after all: the text"
    );
    assert_eq!(
        body(post(
            "application/x-www-form-urlencoded",
            b"name=Ann+Lee&n=%31&n=2"
        )),
        json!({"body": {"name": "Ann Lee", "n": "2"}, "files": []})
    );
    assert_eq!(
        body(post("text/plain", b"just text")),
        json!({"body": "just text", "files": []})
    );
    let multipart = b"--XY\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nHello\r\n\
--XY\r\nContent-Disposition: form-data; name=\"notes\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nline one\r\n\
--XY\r\nContent-Disposition: form-data; name=\"pic\"; filename=\"p.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n\xff\xfe\x00\r\n--XY--\r\n";
    assert_eq!(
        body(post("multipart/form-data; boundary=XY", multipart)),
        json!({"body": {"title": "Hello"}, "files": [
            {"name": "notes", "filename": "a.txt", "contentType": "text/plain", "size": 8, "text": "line one"},
            {"name": "pic", "filename": "p.bin", "contentType": "application/octet-stream", "size": 3},
        ]})
    );
}

#[test]
fn every_form_of_respond() {
    let site = Site::new(
        Style::Api,
        r#"
        const q = request.query.form;
        if (q === "object") respond({ok: true});
        if (q === "status") respond(201, [1, 2]);
        if (q === "bare") respond(404);
        if (q === "html") respond("  <p>hi</p>");
        if (q === "text") respond("hi");
        if (q === "headers") respond(200, "x", {"X-A": 1, "Set-Cookie": ["a=1", "b=2"], "Content-Length": "99"});
        if (q === "typed") respond(200, "{}", {"content-type": "application/vnd.x+json"});
        if (q === "body-headers") respond({a: 1}, {"X-B": "b"});
        if (q === "twice") { const first = respond(202, "first"); respond(500, "second"); return first.body; }
        return "not reached";
        "#,
    );
    let run = |form: &str| site.get(&format!("/api?form={form}")).unwrap();
    let object = run("object");
    assert_eq!(
        (object.status, json_of(&object)),
        (200, json!({"ok": true}))
    );
    assert_eq!(header(&object, "content-type"), Some("application/json"));
    let status = run("status");
    assert_eq!((status.status, json_of(&status)), (201, json!([1, 2])));
    let bare = run("bare");
    assert_eq!(
        (bare.status, bare.body.len(), bare.headers.len()),
        (404, 0, 0)
    );
    assert_eq!(
        header(&run("html"), "content-type"),
        Some("text/html; charset=utf-8")
    );
    let text = run("text");
    assert_eq!(
        header(&text, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(text.body, b"hi");
    let headers = run("headers");
    let expected: Vec<(String, String)> = [
        ("X-A", "1"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
        ("Content-Type", "text/plain; charset=utf-8"),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    assert_eq!(headers.headers, expected, "Content-Length is the server's");
    let typed = run("typed");
    assert_eq!(typed.headers.len(), 1);
    assert_eq!(
        header(&typed, "content-type"),
        Some("application/vnd.x+json")
    );
    let body_headers = run("body-headers");
    assert_eq!(header(&body_headers, "x-b"), Some("b"));
    assert_eq!(json_of(&body_headers), json!({"a": 1}));
    let twice = run("twice");
    assert_eq!((twice.status, twice.body.as_slice()), (202, &b"first"[..]));
    assert!(
        site.logs()
            .contains(&"warn: respond() was called again; the first response stands".into()),
        "{:?}",
        site.logs()
    );
}

#[test]
fn without_respond_the_return_value_answers() {
    let site = Site::new(
        Style::Api,
        r#"
        switch (request.query.r) {
          case "full": return {status: 418, body: {tea: true}, headers: {"X-T": "1"}};
          case "body": return {body: "only"};
          case "value": return {tea: true};
          case "array": return [1];
          case "async": return Promise.resolve().then(() => ({status: 203, body: "later"}));
          case "rejected": return Promise.reject(new Error("async no"));
        }
        "#,
    );
    let full = site.get("/api?r=full").unwrap();
    assert_eq!((full.status, json_of(&full)), (418, json!({"tea": true})));
    assert_eq!(header(&full, "x-t"), Some("1"));
    let body = site.get("/api?r=body").unwrap();
    assert_eq!((body.status, body.body.as_slice()), (200, &b"only"[..]));
    assert_eq!(site.json("/api?r=value"), json!({"tea": true}));
    assert_eq!(site.json("/api?r=array"), json!([1]));
    let none = site.get("/api").unwrap();
    assert_eq!((none.status, none.body.len()), (204, 0), "undefined: 204");
    let later = site.get("/api?r=async").unwrap();
    assert_eq!((later.status, later.body.as_slice()), (203, &b"later"[..]));
    assert_eq!(
        thrown(site.get("/api?r=rejected")),
        "Error: async no at line 8"
    );
}

#[test]
fn a_bad_status_or_header_is_the_scripts_error() {
    let site = Site::new(
        Style::Api,
        r#"
        if (request.query.s) respond(99, "x");
        respond(200, "x", {"Bad Name": "v"});
        "#,
    );
    assert!(thrown(site.get("/api?s=1")).contains("status 99 is not an HTTP status"));
    assert!(thrown(site.get("/api")).contains("'Bad Name' is not a valid header name"));
    let split = Site::new(
        Style::Api,
        r#"respond(200, "x", {"X-A": "a\r\nInjected: 1"});"#,
    );
    assert!(thrown(split.get("/api")).contains("line break"));
}

#[test]
fn the_root_style_has_req_res_db_and_process_env() {
    let site = Site::new(
        Style::Root,
        r#"
        if (req.query === "plain") return;
        db.set("hits", (db.get("hits") || 0) + 1);
        if (req.query === "gone") { db.delete("hits"); res.send(String(db.get("hits"))); return; }
        res.status(201).header("X-Who", process.env.WHO);
        if (req.method === "POST") return res.json({got: req.body, type: req.headers["Content-Type"]});
        res.send("<b>" + req.path + "?" + req.query + " " + db.get("hits") + "</b>");
        "#,
    );
    site.memory
        .env
        .lock()
        .insert("blog".into(), vec![("WHO".into(), "ann".into())]);
    let page = site.get("/a/b?x=1").unwrap();
    assert_eq!(page.status, 201);
    assert_eq!(header(&page, "x-who"), Some("ann"));
    assert_eq!(
        header(&page, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(page.body, b"<b>/a/b?x=1 1</b>");
    let posted = site
        .run(JsRequest {
            method: "POST".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"a":1}"#.to_vec(),
            ..get("/form")
        })
        .unwrap();
    assert_eq!(
        json_of(&posted),
        json!({"got": "{\"a\":1}", "type": "application/json"}),
        "the body stays a string"
    );
    assert_eq!(header(&posted, "content-type"), Some("application/json"));
    assert_eq!(site.get("/?gone").unwrap().body, b"undefined");
    let plain = site.get("/?plain").unwrap();
    assert_eq!((plain.status, plain.body.len()), (200, 0), "no res call");
}

#[test]
fn console_lines_are_capped_per_invocation() {
    let site = Site::new(
        Style::Api,
        r#"
        const n = Number(request.query.n), size = Number(request.query.size);
        for (let i = 0; i < n; i++) console.info(i, "x".repeat(size));
        console.error({a: [1]}, new TypeError("t"), null);
        "#,
    );
    site.get("/api?n=1&size=1").unwrap();
    assert_eq!(
        site.logs(),
        ["info: 0 x", r#"error: {"a":[1]} TypeError: t null"#]
    );
    site.memory.logs.lock().clear();
    site.get("/api?n=150&size=1").unwrap();
    let logs = site.logs();
    assert_eq!(logs.len(), 101);
    assert_eq!(logs[99], "info: 99 x");
    assert_eq!(
        logs[100],
        "warn: … 51 log lines dropped (limit per invocation)"
    );
    site.memory.logs.lock().clear();
    site.get("/api?n=3&size=5000").unwrap();
    let logs = site.logs();
    assert_eq!(
        logs[0].len(),
        "info: ".len() + 2048,
        "a line is cut to 2 KiB"
    );
    assert!(logs[0].ends_with('…'));
    site.memory.logs.lock().clear();
    site.get("/api?n=20&size=1500").unwrap();
    let logs = site.logs();
    let kept: usize = logs[..logs.len() - 1].iter().map(|l| l.len() - 6).sum();
    assert!(kept <= 16 << 10, "{kept}");
    assert_eq!(
        logs.len(),
        11,
        "10 lines of ~1.5 KiB fit in 16 KiB, none after"
    );
    assert_eq!(
        logs[10],
        "warn: … 11 log lines dropped (limit per invocation)"
    );
}

#[test]
fn env_is_read_once_per_invocation_and_frozen() {
    let site = Site::new(
        Style::Api,
        r#"
        const a = fazt.env.KEY, b = fazt.env.KEY;
        try { fazt.env.KEY = "changed"; } catch (e) { return {body: [a, b, e.name]}; }
        "#,
    );
    site.memory
        .env
        .lock()
        .insert("blog".into(), vec![("KEY".into(), "v".into())]);
    assert_eq!(site.json("/api"), json!(["v", "v", "TypeError"]));
    assert_eq!(site.memory.env_calls.load(Ordering::Relaxed), 1);
    site.get("/api").unwrap();
    assert_eq!(
        site.memory.env_calls.load(Ordering::Relaxed),
        2,
        "once each"
    );
    let unused = Site::new(Style::Api, "return 1;");
    unused.get("/api").unwrap();
    assert_eq!(unused.memory.env_calls.load(Ordering::Relaxed), 0);
}

#[test]
fn kv_and_ds_reach_the_host_and_its_errors_throw() {
    let site = Site::new(
        Style::Api,
        r#"
        const kv = fazt.app.kv, ds = fazt.app.ds;
        if (request.query.fail) {
          try { kv.get("a"); } catch (e) { return {body: e.message}; }
        }
        kv.set("user:1", {name: "ann"});
        kv.set("user:2", 2, 60000);
        kv.set("other", true);
        const id = ds.insert("posts", {title: "a", tag: "x"});
        ds.insert("posts", {id: "p2", title: "b", tag: "x"});
        const updated = ds.update("posts", {id: "p2"}, {title: "B"});
        return {body: {
          got: kv.get("user:1"), missing: kv.get("nope"), deleted: kv.delete("other"),
          list: kv.list("user:").map((e) => [e.key, e.value, typeof e.expiresAt]),
          id, updated, found: ds.find("posts", {tag: "x"}).map((d) => d.title),
          one: ds.findOne("posts", "p2").title, none: ds.findOne("posts", {tag: "y"}),
          removed: ds.delete("posts", {title: "a"}), left: ds.find("posts").length,
        }};
        "#,
    );
    assert_eq!(
        site.json("/api"),
        json!({
            "got": {"name": "ann"}, "missing": null, "deleted": true,
            "list": [["user:1", {"name": "ann"}, "undefined"], ["user:2", 2, "number"]],
            "id": "0000000000000001", "updated": 1, "found": ["a", "B"],
            "one": "B", "none": null, "removed": 1, "left": 1,
        })
    );
    *site.memory.failure.lock() = Some("site blog holds 10000 keys, its limit".into());
    assert_eq!(
        site.get("/api?fail=1").unwrap().body,
        b"site blog holds 10000 keys, its limit"
    );
    let uncaught = thrown(site.get("/api"));
    assert_eq!(
        uncaught,
        "Error: site blog holds 10000 keys, its limit at line 6"
    );
}

#[test]
fn a_query_is_required_to_update_or_delete_and_ttl_must_be_positive() {
    let site = Site::new(
        Style::Api,
        r#"
        const t = request.query.t;
        if (t === "delete") fazt.app.ds.delete("posts");
        if (t === "ttl") fazt.app.kv.set("k", 1, -5);
        if (t === "fn") fazt.app.kv.set("k", () => 1);
        "#,
    );
    assert!(thrown(site.get("/api?t=delete")).contains("ds.delete: a query is required"));
    assert!(thrown(site.get("/api?t=ttl")).contains("ttlMs must be a positive number"));
    assert!(thrown(site.get("/api?t=fn")).contains("cannot be stored"));
}

#[test]
fn fetch_answers_synchronously_and_is_capped() {
    let site = Site::new(
        Style::Api,
        r#"
        const r = fetch("https://example.com/x", {method: "post", headers: {"X-K": "v"}, body: {a: 1}});
        if (request.query.many) { for (let i = 0; i < 10; i++) fetch("https://example.com/" + i); }
        return {body: {status: r.status, ok: r.ok, url: r.url, seen: r.headers["x-seen"], json: r.json(), text: r.text()}};
        "#,
    );
    let started = Instant::now();
    assert_eq!(
        site.json("/api"),
        json!({"status": 200, "ok": true, "url": "https://example.com/x", "seen": "1, 2",
               "json": {"url": "https://example.com/x"}, "text": "{\"url\":\"https://example.com/x\"}"})
    );
    let (finished, deadline) = (Instant::now(), site.memory.fetch_deadlines.lock()[0]);
    assert!(
        deadline >= started + LIMITS.timeout && deadline <= finished + LIMITS.timeout,
        "the invocation's own deadline"
    );
    {
        let fetched = site.memory.fetched.lock();
        let sent = &fetched[0];
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.body, br#"{"a":1}"#);
        let headers: Vec<(&str, &str)> = sent
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            headers,
            [("X-K", "v"), ("content-type", "application/json")]
        );
    }
    assert_eq!(
        thrown(site.get("/api?many=1")),
        "Error: fetch: at most 10 calls per invocation at line 3"
    );
    assert_eq!(
        site.memory.fetched.lock().len(),
        1 + 10,
        "the 11th never left"
    );
}

#[test]
fn a_function_kept_from_an_earlier_request_throws() {
    let site = Site::new(
        Style::Api,
        r#"
        if (request.query.keep) {
          globalThis.kept = {kv: fazt.app.kv, log: console.log};
          Promise.resolve().then(() => fazt.app.kv.set("job", 1));
          return 1;
        }
        const out = [];
        for (const f of [() => kept.kv.get("job"), () => kept.log("late")]) {
          try { f(); out.push("reached"); } catch (e) { out.push(e.message); }
        }
        return out;
        "#,
    );
    site.get("/api?keep=1").unwrap();
    assert_eq!(
        site.memory.kv.lock().len(),
        1,
        "a promise job runs within its own invocation"
    );
    let message = "this function belongs to a request that has already been answered";
    assert_eq!(site.json("/api"), json!([message, message]));
    assert!(!site.logs().iter().any(|l| l.contains("late")));
}

#[test]
fn errors_carry_the_line_of_the_users_file() {
    let site = Site::new(
        Style::Api,
        "const a = 1;\n\nfunction f() {\n  throw new RangeError('too far');\n}\nif (request.query.s) throw 'a string';\nf();\n",
    );
    assert_eq!(thrown(site.get("/api")), "RangeError: too far at line 4");
    assert_eq!(thrown(site.get("/api?s=1")), "Uncaught a string");
    assert!(site.logs()[0].starts_with("error: GET /api: RangeError: too far at line 4"));

    let broken = Site::try_new(Style::Api, "const a = 1;\nconst b = ;\n");
    assert_eq!(
        broken.err(),
        Some(RunError::Thrown(
            "SyntaxError: unexpected token in expression: ';' at line 2".into()
        ))
    );
    let root = Site::new(Style::Root, "\nnull.x;");
    assert_eq!(
        thrown(root.get("/")),
        "TypeError: cannot read property 'x' of null at line 2"
    );
}

#[test]
fn scripts_are_strict() {
    let site = Site::new(Style::Api, "undeclared = 1;");
    assert_eq!(
        thrown(site.get("/api")),
        "ReferenceError: undeclared is not defined at line 1"
    );
    let this = Site::new(Style::Api, "return [typeof this];");
    assert_eq!(this.json("/api"), json!(["undefined"]));
}

#[test]
fn the_bytecode_is_compiled_once_and_a_syntax_error_is_kept() {
    let memory = Arc::new(Memory::default());
    let services = FakeServices(Arc::clone(&memory));
    let cache = BytecodeCache::new(1 << 20);
    let code = memory.code(Style::Api, "return 7;");
    let load = || services.load_code(&code);
    let (a, b) = (
        App::load(LIMITS, &code, &cache, load).unwrap(),
        App::load(LIMITS, &code, &cache, load).unwrap(),
    );
    assert_eq!(
        (cache.compiles(), memory.loads.load(Ordering::Relaxed)),
        (1, 1)
    );
    for app in [&a, &b] {
        let answer = app.invoke(get("/api"), services.host("s"), LIMITS).unwrap();
        assert_eq!(answer.body, b"7");
    }
    let broken = memory.code(Style::Api, "return (;");
    for _ in 0..2 {
        let outcome = App::load(LIMITS, &broken, &cache, || services.load_code(&broken));
        assert!(matches!(outcome, Err(RunError::Thrown(m)) if m.starts_with("SyntaxError")));
    }
    assert_eq!(cache.compiles(), 2, "the error was kept");
    let as_root = Code {
        style: Style::Root,
        ..code.clone()
    };
    App::load(LIMITS, &as_root, &cache, || services.load_code(&as_root)).unwrap();
    assert_eq!(cache.compiles(), 3, "another style is another module");
}

#[test]
fn a_warm_sandbox_does_not_keep_the_last_request() {
    let site = Site::new(Style::Api, "return request.body.length;");
    site.run(post("text/plain", b"small")).unwrap();
    let baseline = site.app.memory_used();
    let big = vec![b'x'; 1 << 20];
    assert_eq!(site.run(post("text/plain", &big)).unwrap().body, b"1048576");
    let after = site.app.memory_used();
    assert!(after - baseline < 256 << 10, "{baseline} -> {after}");
}

#[test]
fn nothing_else_of_the_host_is_reachable() {
    let site = Site::new(
        Style::Api,
        r#"
        const seen = [typeof std, typeof os, typeof require, typeof process, typeof setTimeout];
        return import("os").then(() => "imported", (e) => [...seen, e.name]);
        "#,
    );
    let names = site.json("/api");
    assert_eq!(
        names,
        json!([
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "undefined",
            "ReferenceError"
        ]),
        "no module can be imported"
    );
}

#[test]
fn fazt_socket_broadcasts_strings_as_is_and_the_rest_as_json() {
    let site = Site::new(
        Style::Api,
        r#"
        const n = fazt.socket.clients();
        const a = fazt.socket.broadcast("hi <b>");
        const b = fazt.socket.broadcast({t: "x", n: [1, 2]});
        const c = fazt.socket.broadcast(7);
        let bad;
        try { fazt.socket.broadcast(undefined); } catch (e) { bad = e.name + ": " + e.message; }
        return {n, a, b, c, bad, global: typeof socket};
        "#,
    );
    site.memory.socket_clients.store(3, Ordering::Relaxed);
    assert_eq!(
        site.json("/api"),
        json!({"n": 3, "a": 3, "b": 3, "c": 3, "global": "undefined",
               "bad": "TypeError: socket.broadcast: a undefined cannot be sent (a string or a JSON value)"})
    );
    let sent = site.memory.broadcasts.lock().clone();
    let sent: Vec<(&str, &str)> = sent.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
    assert_eq!(
        sent,
        [
            ("blog", "hi <b>"),
            ("blog", r#"{"t":"x","n":[1,2]}"#),
            ("blog", "7")
        ]
    );
}

#[test]
fn the_root_style_has_the_socket_global_and_fazt_socket() {
    let site = Site::new(
        Style::Root,
        r#"
        const sent = socket.broadcast({from: req.path});
        fazt.socket.broadcast("plain");
        res.json({sent, clients: socket.clients(), same: socket === fazt.socket});
        "#,
    );
    assert_eq!(
        site.json("/chat"),
        json!({"sent": 0, "clients": 0, "same": true})
    );
    site.memory.socket_clients.store(2, Ordering::Relaxed);
    assert_eq!(
        site.json("/chat"),
        json!({"sent": 2, "clients": 2, "same": true})
    );
    let texts: Vec<String> = site
        .memory
        .broadcasts
        .lock()
        .iter()
        .map(|(_, t)| t.clone())
        .collect();
    assert_eq!(
        texts,
        [
            r#"{"from":"/chat"}"#,
            "plain",
            r#"{"from":"/chat"}"#,
            "plain"
        ]
    );
}

#[test]
fn broadcasts_are_capped_per_invocation() {
    let site = Site::new(
        Style::Api,
        r#"
        const n = Number(request.query.n);
        for (let i = 0; i < n; i++) fazt.socket.broadcast("m" + i);
        return n;
        "#,
    );
    let cap = super::bindings::BROADCASTS as usize;
    assert_eq!(site.json(&format!("/api?n={cap}")), json!(cap));
    assert_eq!(
        site.memory.broadcasts.lock().len(),
        cap,
        "a new invocation, a new count"
    );
    assert_eq!(
        thrown(site.get(&format!("/api?n={}", cap + 1))),
        "Error: socket.broadcast: at most 100 calls per invocation at line 3"
    );
    let sent = site.memory.broadcasts.lock();
    assert_eq!(sent.len(), 2 * cap, "the 101st was not queued");
    assert_eq!(sent.last().unwrap().1, format!("m{}", cap - 1));
}

#[test]
fn a_broadcast_over_the_hubs_message_limit_throws() {
    let site = Site::new(
        Style::Api,
        r#"
        const text = "é".repeat(Number(request.query.chars));
        try { return {sent: fazt.socket.broadcast(text)}; } catch (e) { return {error: e.message}; }
        "#,
    );
    let max = super::fake::MESSAGE_MAX;
    let fits = format!("/api?chars={}", max / 2);
    assert_eq!(
        site.json(&fits),
        json!({"sent": 0}),
        "the limit is in bytes"
    );
    let over = format!("/api?chars={}", max / 2 + 1);
    let message = format!(
        "socket.broadcast: the message is {} bytes, over the limit of {max}",
        max + 2
    );
    assert_eq!(site.json(&over), json!({ "error": message }));
    assert_eq!(site.memory.broadcasts.lock().len(), 1);
}
