//! WebSockets (issue #15) through the real binary: the upgrade and its refusals, the hub
//! (echo, broadcast, isolation between sites), the limits (message size, slow clients,
//! rate, client counts), ping/pong and idle clients, protocol errors, broadcasts from
//! serverless code, closes on delete/redeploy/SIGTERM, a real client library and wss.
use crate::common::ws::{self, End, Out, Ws, BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT};
use crate::common::*;
use std::time::{Duration, Instant};

/// The bound of every single wait for a frame.
const T: Duration = Duration::from_secs(5);

fn host(site: &str) -> String {
    format!("{site}.localhost")
}

/// Deploys `files` to `site` with the owner key; panics unless it worked.
fn deploy(server: &Server, site: &str, files: &[(&str, &str)]) {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_bytes())).collect();
    let r = deploy_files(server, site, &files, zip::CompressionMethod::Deflated);
    assert_eq!(r.status, 200, "deploy {site}: {}", r.text());
}

/// A server with `env`, and a static site for each of `sites`.
fn server_with(env: &[(&str, &str)], sites: &[&str]) -> Server {
    let mut builder = Server::builder();
    for (k, v) in env {
        builder = builder.env(k, v);
    }
    let server = builder.start();
    for site in sites {
        let page = format!("<h1>{site}</h1>");
        let missing = format!("<h1>{site}: no such page</h1>");
        deploy(
            &server,
            site,
            &[("index.html", &page), ("404.html", &missing)],
        );
    }
    server
}

fn open(server: &Server, site: &str) -> Ws {
    ws::open(server.addr, &host(site))
}

/// The upgrade's answer when it is refused; panics on a `101`.
fn refused(server: &Server, site: &str, extra: &[(&str, &str)]) -> HttpResponse {
    match ws::try_open(server.addr, &host(site), extra) {
        Ok(_) => panic!("{site} upgraded with {extra:?}"),
        Err(r) => r,
    }
}

/// A series of `/metrics`, 0 while it is not listed.
fn metric(server: &Server, series: &str) -> u64 {
    metric_value(server, series).unwrap_or(0)
}

fn closed_total(server: &Server, reason: &str) -> u64 {
    metric(
        server,
        &format!("fazt_ws_closed_total{{reason=\"{reason}\"}}"),
    )
}

fn assert_json_error(r: &HttpResponse, status: u16) {
    assert_eq!(r.status, status, "{}", r.text());
    let v = r.json();
    assert!(v["error"]["code"].is_string(), "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
}

#[test]
fn refused_upgrades_answer_with_their_status_and_a_plain_get_is_a_page() {
    let env = [("FAZT_WS_ORIGINS", "chat=https://x.org")];
    let server = server_with(&env, &["chat", "blog"]);

    let evil = refused(&server, "chat", &[("Origin", "http://evil.localhost")]);
    assert_json_error(&evil, 403);
    // The site's own origin and the listed one are taken; no Origin at all too.
    ws::try_open(
        server.addr,
        &host("chat"),
        &[("Origin", "http://chat.localhost")],
    )
    .unwrap_or_else(|r| panic!("own origin: {} {}", r.status, r.text()));
    ws::try_open(server.addr, &host("chat"), &[("Origin", "https://x.org")])
        .unwrap_or_else(|r| panic!("listed origin: {} {}", r.status, r.text()));
    // Listed for chat only.
    assert_json_error(
        &refused(&server, "blog", &[("Origin", "https://x.org")]),
        403,
    );

    let old = refused(&server, "chat", &[("Sec-WebSocket-Version", "8")]);
    assert_json_error(&old, 426);
    assert_eq!(old.header("sec-websocket-version"), Some("13"));
    let bad_key = refused(&server, "chat", &[("Sec-WebSocket-Key", "c2hvcnQ=")]);
    assert_json_error(&bad_key, 400);
    let no_key = refused(&server, "chat", &[("Sec-WebSocket-Key", "")]);
    assert_json_error(&no_key, 400);
    let keep_alive = refused(&server, "chat", &[("Connection", "keep-alive")]);
    assert_json_error(&keep_alive, 400);
    // RFC 6455 §11.3: the key and the version appear once.
    for name in ["Sec-WebSocket-Key", "Sec-WebSocket-Version"] {
        let twice = ws::upgrade_request("GET", &host("chat"), &ws::new_key(), &[]);
        let value = if name.ends_with("Key") {
            ws::new_key()
        } else {
            "13".to_string()
        };
        let twice = format!("{}\r\n{name}: {value}\r\n\r\n", twice.trim_end());
        assert_json_error(&raw_request(server.addr, twice), 400);
    }

    let post = ws::upgrade_request("POST", &host("chat"), &ws::new_key(), &[]);
    let post = raw_request(
        server.addr,
        format!("{}\r\nContent-Length: 0\r\n\r\n", post.trim_end()),
    );
    assert_json_error(&post, 405);

    // Without Upgrade, /ws is a path like any other: this site has no such page.
    let plain = server.get(&host("chat"), "/ws");
    assert_eq!(plain.status, 404);
    assert_eq!(plain.text(), "<h1>chat: no such page</h1>");
}

#[test]
fn a_message_goes_to_every_client_of_its_site_and_no_other() {
    let server = server_with(&[], &["chat", "blog"]);
    let mut a = open(&server, "chat");
    let mut b = open(&server, "chat");
    let mut other = open(&server, "blog");

    a.send_text("hello from a");
    assert_eq!(
        a.next_text(T),
        "hello from a",
        "the sender gets its own message"
    );
    assert_eq!(b.next_text(T), "hello from a");
    let bytes = [0u8, 1, 2, 0xff, 0xfe, b'\n'];
    b.send_binary(&bytes);
    for client in [&mut a, &mut b] {
        let frame = client.next_message(T);
        assert_eq!((frame.opcode, &frame.payload[..]), (BINARY, &bytes[..]));
    }
    // 64 KiB (the default limit) needs the 64-bit length form in both directions.
    let long = "x".repeat(65_536);
    a.send_text(&long);
    assert_eq!(b.next_text(T), long);
    assert_eq!(a.next_text(T), long);

    assert!(
        other.quiet_for(Duration::from_millis(300)),
        "blog heard chat"
    );
    other.send_text("blog only");
    assert_eq!(other.next_text(T), "blog only");
    assert!(a.quiet_for(Duration::from_millis(300)), "chat heard blog");
    assert!(b.quiet_for(Duration::from_millis(100)));
}

#[test]
fn a_message_over_the_size_limit_is_closed_with_1009_whole_or_in_fragments() {
    let server = server_with(&[("FAZT_WS_MESSAGE_MAX", "1024")], &["chat"]);
    let mut ok = open(&server, "chat");
    let at_limit = "y".repeat(1024);
    ok.send_text(&at_limit);
    assert_eq!(ok.next_text(T), at_limit, "exactly the limit passes");

    let mut whole = open(&server, "chat");
    whole.send_binary(&[7u8; 1025]);
    assert_eq!(whole.close_code(T), 1009);

    let mut split = open(&server, "chat");
    split.send(&Out::new(TEXT, "z".repeat(600)).more()).unwrap();
    split
        .send(&Out::new(CONTINUATION, "z".repeat(600)))
        .unwrap();
    assert_eq!(split.close_code(T), 1009);
    assert!(eventually(T, || closed_total(&server, "oversized") >= 2));
    // Nothing of either reached the other client.
    assert!(ok.quiet_for(Duration::from_millis(200)));
}

/// A message of the slow-client test: its number, then filler up to `len`.
fn numbered(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = format!("{i:08}").into_bytes();
    bytes.resize(len, b'.');
    bytes
}

#[test]
fn a_client_that_never_reads_is_closed_while_the_others_get_every_message() {
    let env = [("FAZT_WS_QUEUE_MAX", "65536"), ("FAZT_WS_RATE", "100000")];
    let server = server_with(&env, &["chat"]);
    let slow = open(&server, "chat");
    // A small receive buffer so the kernel cannot hold the whole stream for the slow one.
    socket2::SockRef::from(&slow.stream)
        .set_recv_buffer_size(4096)
        .unwrap();
    let mut slow = slow;
    let mut fast = open(&server, "chat");
    let mut sender = open(&server, "chat");
    let (count, len) = (400, 32 * 1024);

    let fast_reader = std::thread::spawn(move || {
        (0..count)
            .map(|_| fast.next_message(Duration::from_secs(30)).payload)
            .collect::<Vec<_>>()
    });
    // The sender gets its own messages back, so it reads on one thread, writes on another.
    let mut writer = sender.stream.try_clone().unwrap();
    let send = std::thread::spawn(move || {
        use std::io::Write;
        for i in 0..count {
            writer
                .write_all(&Out::new(BINARY, numbered(i, len)).encode())
                .unwrap();
        }
    });
    for i in 0..count {
        assert_eq!(
            sender.next_message(Duration::from_secs(30)).payload,
            numbered(i, len)
        );
    }
    send.join().unwrap();
    let got = fast_reader.join().unwrap();
    for (i, payload) in got.iter().enumerate() {
        assert!(
            payload == &numbered(i, len),
            "message {i} out of order or changed"
        );
    }
    assert!(
        eventually(T, || closed_total(&server, "slow") >= 1),
        "no slow close counted"
    );
    // Reading now, the slow client finds the end of its stream: a 1008 or a reset.
    match slow.end(Duration::from_secs(20)) {
        End::Close(code) => assert_eq!(code, 1008),
        End::Dropped => {}
        End::Open => panic!("the slow client is still open"),
    }
}

#[test]
fn pings_are_answered_and_quiet_clients_are_pinged_then_dropped_unless_they_pong() {
    let server = server_with(&[("FAZT_WS_PING_EVERY", "1s")], &["chat"]);
    let mut a = open(&server, "chat");
    a.send(&Out::new(PING, "are you there")).unwrap();
    let pong = a.read_frame(T).unwrap();
    assert_eq!((pong.opcode, pong.text()), (PONG, "are you there".into()));

    let mut silent = open(&server, "chat");
    let started = Instant::now();
    // The answering client: pongs every ping, and is still open past 3 s.
    let answering = std::thread::spawn(move || {
        let mut pings = 0;
        let deadline = Instant::now() + Duration::from_millis(3500);
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            match a.read_frame(left) {
                Ok(f) if f.opcode == PING => {
                    pings += 1;
                    a.send(&Out::new(PONG, f.payload)).unwrap();
                }
                Ok(f) => panic!("unexpected {f:?}"),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(e) => panic!("the answering client was dropped: {e}"),
            }
        }
        a.send_text("still here");
        assert_eq!(a.next_text(T), "still here");
        pings
    });
    let ping = silent.read_frame(T).unwrap();
    assert_eq!(ping.opcode, PING, "{ping:?}");
    let pinged_after = started.elapsed();
    assert!(
        pinged_after >= Duration::from_millis(800),
        "{pinged_after:?}"
    );
    assert!(
        pinged_after < Duration::from_millis(2000),
        "{pinged_after:?}"
    );
    assert_eq!(silent.end(Duration::from_secs(4)), End::Dropped);
    let dropped_after = started.elapsed();
    assert!(
        dropped_after >= Duration::from_millis(1800),
        "{dropped_after:?}"
    );
    assert!(
        dropped_after < Duration::from_millis(3500),
        "{dropped_after:?}"
    );
    assert!(
        answering.join().unwrap() >= 2,
        "the quiet answering client was pinged"
    );
    assert!(closed_total(&server, "idle") >= 1);
}

#[test]
fn control_frames_between_fragments_are_answered_and_the_message_goes_out_once() {
    let server = server_with(&[], &["chat"]);
    let mut a = open(&server, "chat");
    let mut b = open(&server, "chat");
    a.send(&Out::new(TEXT, "frag").more()).unwrap();
    a.send(&Out::new(PING, "mid")).unwrap();
    a.send(&Out::new(PONG, "unasked")).unwrap();
    a.send(&Out::new(CONTINUATION, "men").more()).unwrap();
    a.send(&Out::new(CONTINUATION, "ted")).unwrap();
    let pong = a.read_frame(T).unwrap();
    assert_eq!((pong.opcode, pong.text()), (PONG, "mid".into()));
    assert_eq!(a.next_text(T), "fragmented");
    assert_eq!(b.next_text(T), "fragmented");
    assert!(a.quiet_for(Duration::from_millis(200)), "sent once");
    assert!(b.quiet_for(Duration::from_millis(100)), "sent once");
}

#[test]
fn invalid_utf8_in_text_is_closed_with_1007_whole_or_across_fragments() {
    let server = server_with(&[], &["chat"]);
    // A character split between fragments is fine.
    let mut ok = open(&server, "chat");
    let euro = "€".as_bytes();
    ok.send(&Out::new(TEXT, &euro[..2]).more()).unwrap();
    ok.send(&Out::new(CONTINUATION, &euro[2..])).unwrap();
    assert_eq!(ok.next_text(T), "€");

    let mut whole = open(&server, "chat");
    whole.send(&Out::new(TEXT, vec![b'a', 0xff, 0xfe])).unwrap();
    assert_eq!(whole.close_code(T), 1007);
    let mut split = open(&server, "chat");
    split.send(&Out::new(TEXT, &euro[..2]).more()).unwrap();
    split.send(&Out::new(CONTINUATION, "(")).unwrap();
    assert_eq!(split.close_code(T), 1007);
    // Binary is any bytes.
    ok.send_binary(&[0xff, 0xfe]);
    assert_eq!(ok.next_message(T).payload, [0xff, 0xfe]);
}

#[test]
fn protocol_errors_are_closed_with_1002() {
    let server = server_with(&[], &["chat"]);
    let mut unmasked = Out::new(TEXT, "plain");
    unmasked.mask = None;
    let mut reserved = Out::new(TEXT, "rsv");
    reserved.rsv = 4;
    let cases = [
        ("unmasked", vec![unmasked]),
        ("reserved bit", vec![reserved]),
        ("continuation first", vec![Out::new(CONTINUATION, "x")]),
        ("opcode 3", vec![Out::new(3, "x")]),
        ("fragmented ping", vec![Out::new(PING, "x").more()]),
        ("126-byte ping", vec![Out::new(PING, vec![b'p'; 126])]),
        (
            "text inside a message",
            vec![Out::new(TEXT, "a").more(), Out::new(TEXT, "b")],
        ),
        (
            "close code 999",
            vec![Out::new(CLOSE, ws::close_payload(999, ""))],
        ),
    ];
    for (what, frames) in cases {
        let mut client = open(&server, "chat");
        for frame in &frames {
            client.send(frame).unwrap();
        }
        assert_eq!(client.end(T), End::Close(1002), "{what}");
        assert!(client.tcp_closed_within(T), "{what}: TCP stays open");
    }
    assert!(closed_total(&server, "protocol") >= 8);
}

#[test]
fn a_client_past_its_message_rate_is_closed_with_1008() {
    let server = server_with(&[("FAZT_WS_RATE", "5")], &["chat"]);
    let mut calm = open(&server, "chat");
    let mut flood = open(&server, "chat");
    let burst: Vec<u8> = (0..20)
        .flat_map(|i| Out::new(TEXT, format!("m{i}")).encode())
        .collect();
    use std::io::Write;
    flood.stream.write_all(&burst).unwrap();
    assert_eq!(flood.close_code(T), 1008);
    assert!(eventually(T, || closed_total(&server, "rate") >= 1));
    // The calm client got the first few only, and is still served.
    let mut heard = 0;
    while let Ok(frame) = calm.read_frame(Duration::from_millis(300)) {
        assert_eq!(frame.opcode, TEXT);
        heard += 1;
    }
    assert!((1..20).contains(&heard), "{heard} messages went out");
    calm.send_text("calm");
    assert_eq!(calm.next_text(T), "calm");
}

#[test]
fn past_the_client_limits_an_upgrade_gets_503_with_retry_after() {
    let env = [("FAZT_WS_PER_SITE", "2"), ("FAZT_WS_MAX", "3")];
    let server = server_with(&env, &["chat", "blog"]);
    let a = open(&server, "chat");
    let _b = open(&server, "chat");
    let third = refused(&server, "chat", &[]);
    assert_json_error(&third, 503);
    assert!(third.header("retry-after").is_some());
    assert!(
        third.text().contains("FAZT_WS_PER_SITE"),
        "{}",
        third.text()
    );
    // blog has room of its own, until the server's total is reached.
    let _c = open(&server, "blog");
    let total = refused(&server, "blog", &[]);
    assert_json_error(&total, 503);
    assert!(total.header("retry-after").is_some());
    assert!(total.text().contains("FAZT_WS_MAX"), "{}", total.text());
    // A client that leaves makes room again.
    drop(a);
    assert!(
        eventually(T, || ws::try_open(server.addr, &host("blog"), &[]).is_ok()),
        "no room after a client left"
    );
    assert!(metric(&server, "fazt_ws_connections") >= 1);
}

#[test]
fn serverless_code_broadcasts_to_the_sites_clients() {
    let server = Server::start();
    let api = r#"
        const sent = fazt.socket.broadcast({hi: 1});
        respond({sent: sent, clients: fazt.socket.clients()});
    "#;
    deploy(
        &server,
        "app",
        &[("index.html", "<h1>app</h1>"), ("api/main.js", api)],
    );
    let mut a = open(&server, "app");
    let mut b = open(&server, "app");
    let r = server.get(&host("app"), "/api/send");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"sent": 2, "clients": 2}));
    for client in [&mut a, &mut b] {
        let text = client.next_text(T);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).unwrap()["hi"],
            1
        );
    }

    let legacy = r#"
        var sent = socket.broadcast("x");
        res.json({sent: sent, clients: socket.clients()});
    "#;
    deploy(&server, "old", &[("main.js", legacy)]);
    let mut c = open(&server, "old");
    let r = server.get(&host("old"), "/anything");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({"sent": 1, "clients": 1}));
    assert_eq!(c.next_text(T), "x");
    assert!(
        a.quiet_for(Duration::from_millis(200)),
        "app heard old's broadcast"
    );
}

#[test]
fn deleting_the_site_or_deploying_a_ws_page_closes_its_clients_with_1001() {
    let server = server_with(&[], &["chat", "gone"]);
    let mut doomed = open(&server, "gone");
    let r = admin_delete(&server, "/api/sites/gone");
    assert!(r.status < 300, "{} {}", r.status, r.text());
    assert_eq!(doomed.close_code(T), 1001);
    assert!(doomed.tcp_closed_within(T));
    assert!(
        ws::try_open(server.addr, &host("gone"), &[]).is_err(),
        "a deleted site upgrades"
    );
    // The name deployed again has its endpoint again.
    deploy(&server, "gone", &[("index.html", "<h1>back</h1>")]);
    let mut back = open(&server, "gone");
    back.send_text("back");
    assert_eq!(back.next_text(T), "back");

    let mut a = open(&server, "chat");
    let mut b = open(&server, "chat");
    deploy(
        &server,
        "chat",
        &[
            ("index.html", "<h1>v2</h1>"),
            ("ws/index.html", "<h1>ws page</h1>"),
        ],
    );
    assert_eq!(a.close_code(T), 1001);
    assert_eq!(b.close_code(T), 1001);
    let page = wait_for(&server, &host("chat"), "/ws/", |r| r.status == 200);
    assert_eq!(page.text(), "<h1>ws page</h1>");
    // An upgrade request now gets the directory's redirect like any GET: no endpoint.
    let key = ws::new_key();
    let r = raw_request(
        server.addr,
        ws::upgrade_request("GET", &host("chat"), &key, &[]),
    );
    assert_eq!((r.status, r.header("location")), (301, Some("/ws/")));
}

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_once_they_answer() {
    let mut server = server_with(&[], &["chat", "blog"]);
    let mut a = open(&server, "chat");
    let mut b = open(&server, "blog");
    signal(&server.child, libc::SIGTERM);
    for client in [&mut a, &mut b] {
        assert_eq!(client.close_code(T), 1001);
        client
            .send(&Out::new(CLOSE, ws::close_payload(1001, "")))
            .unwrap();
    }
    let status = server.wait(Duration::from_secs(4)).expect("fazt exits");
    assert!(status.success(), "{status:?}: {}", server.stderr());
    assert!(a.tcp_closed_within(T) && b.tcp_closed_within(T));
}

#[test]
fn a_client_close_is_answered_with_the_same_code_then_tcp_closes() {
    let server = server_with(&[], &["chat"]);
    let mut other = open(&server, "chat");
    let mut client = open(&server, "chat");
    client
        .send(&Out::new(CLOSE, ws::close_payload(1000, "bye")))
        .unwrap();
    let answer = client.read_frame(T).unwrap();
    assert_eq!((answer.opcode, answer.close_code()), (CLOSE, 1000));
    assert!(
        client.tcp_closed_within(T),
        "TCP stays open after the close"
    );
    // A close without a code is answered without one or with 1000 (1005 itself never goes
    // on the wire, RFC 6455 §7.4.1).
    let mut bare = open(&server, "chat");
    bare.send(&Out::new(CLOSE, Vec::new())).unwrap();
    let code = bare.close_code(T);
    assert!(code == 1005 || code == 1000, "{code}");
    // The one left is still served.
    other.send_text("alone");
    assert_eq!(other.next_text(T), "alone");
}

/// Runs `/usr/bin/python3 ARGS` (at most 60 s); (exit code, stdout, stderr).
fn python(args: &[&str]) -> (i32, String, String) {
    use std::process::{Command, Stdio};
    let mut child = Command::new("/usr/bin/python3")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 runs");
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn pythons_websockets_library_talks_to_fazt() {
    let (code, _, err) = python(&["-c", "import websockets"]);
    assert_eq!(
        code, 0,
        "Python's websockets is missing for /usr/bin/python3 \
         (apt-get install python3-websockets; scripts/test.sh does): {err}"
    );
    let server = server_with(&[("FAZT_WS_MESSAGE_MAX", "4096")], &["chat"]);
    let port = server.addr.port().to_string();
    let (code, out, err) = python(&["tests/ws/client.py", &port, "chat", "4096"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out,
        "echo ok\nbroadcast ok\nbinary ok\nping ok\noversized closed 1009\nclose 1000\n"
    );
}

#[test]
fn wss_echoes_over_tls_with_the_self_signed_certificate() {
    let server = Server::builder()
        .arg("--tls-listen")
        .arg("127.0.0.1:0")
        .arg("--tls-self-signed")
        .start();
    deploy(&server, "chat", &[("index.html", "<h1>chat</h1>")]);
    let pem = std::fs::read(server.data.path().join("tls-self-signed.pem")).unwrap();
    let roots = rustls::pki_types::pem::PemObject::pem_slice_iter(&pem).map(|c| c.unwrap());
    let config = tls_client::trusting(roots);
    // The certificate names `localhost` (and `*.localhost`, which rustls does not take
    // under a single label): verified as localhost, the Host header names the site.
    let addr = server.tls_addr.unwrap();
    let tls = tls_client::handshake(addr, "localhost", config).expect("a TLS handshake");
    let site = format!("chat.localhost:{}", addr.port());
    let origin = format!("https://{site}");
    let mut client = ws::upgrade_over(tls, &site, &[("Origin", &origin)])
        .unwrap_or_else(|r| panic!("no 101 over TLS: {} {}", r.status, r.text()));
    client.send_text("over tls");
    assert_eq!(client.next_text(T), "over tls");
    client.send(&Out::new(PING, "p")).unwrap();
    assert_eq!(client.read_frame(T).unwrap().opcode, PONG);
    client
        .send(&Out::new(CLOSE, ws::close_payload(1000, "")))
        .unwrap();
    assert_eq!(client.close_code(T), 1000);
}

#[test]
fn frames_sent_with_the_upgrade_request_and_upgrades_after_a_request_are_served() {
    use std::io::Write;
    let server = server_with(&[], &["chat"]);
    let mut listener = open(&server, "chat");
    // A client that does not wait for the 101: its first frame is in the same packet.
    let mut stream = server.connect();
    let key = ws::new_key();
    let mut bytes = ws::upgrade_request("GET", &host("chat"), &key, &[]).into_bytes();
    bytes.extend_from_slice(&Out::new(TEXT, "eager").encode());
    stream.write_all(&bytes).unwrap();
    let mut eager = ws::answer_over(stream, &key)
        .unwrap_or_else(|r| panic!("no 101: {} {}", r.status, r.text()));
    assert_eq!(eager.next_text(T), "eager");
    assert_eq!(listener.next_text(T), "eager");

    // An upgrade on a keep-alive connection after an ordinary request, with a browser's
    // `Connection: keep-alive, Upgrade` and `Upgrade: WebSocket` spelling.
    let mut stream = server.connect();
    let get = format!("GET / HTTP/1.1\r\nHost: {}\r\n\r\n", host("chat"));
    stream.write_all(get.as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream).unwrap().text(), "<h1>chat</h1>");
    let browser = [
        ("Connection", "keep-alive, Upgrade"),
        ("Upgrade", "WebSocket"),
    ];
    let mut later = ws::upgrade_over(stream, &host("chat"), &browser)
        .unwrap_or_else(|r| panic!("no 101: {} {}", r.status, r.text()));
    later.send_text("later");
    assert_eq!(later.next_text(T), "later");
    assert_eq!(listener.next_text(T), "later");
    assert_eq!(eager.next_text(T), "later");
}

/// One way a client's connection ends, done to it.
type Ending = fn(&mut Ws);

#[test]
fn every_way_a_client_ends_frees_its_place() {
    let env = [("FAZT_WS_PER_SITE", "1"), ("FAZT_WS_MESSAGE_MAX", "1024")];
    let server = server_with(&env, &["chat"]);
    let ends: [(&str, Ending); 5] = [
        ("a close", |c| {
            c.send(&Out::new(CLOSE, ws::close_payload(1000, "")))
                .unwrap();
            assert_eq!(c.close_code(T), 1000);
        }),
        ("a protocol error", |c| {
            c.send(&Out::new(CONTINUATION, "x")).unwrap();
            assert_eq!(c.close_code(T), 1002);
        }),
        ("an oversized message", |c| {
            c.send_binary(&[0; 2000]);
            assert_eq!(c.close_code(T), 1009);
        }),
        ("invalid UTF-8", |c| {
            c.send(&Out::new(TEXT, vec![0xc0])).unwrap();
            assert_eq!(c.close_code(T), 1007);
        }),
        ("a dropped TCP connection", |c| {
            c.stream.shutdown(std::net::Shutdown::Both).unwrap();
        }),
    ];
    // Each client that gets in after an ending is the next one to end (a client dropped at
    // once would itself hold the place for a moment).
    let mut client = open(&server, "chat");
    for (what, end) in ends {
        assert_json_error(&refused(&server, "chat", &[]), 503);
        end(&mut client);
        drop(client);
        let mut next = None;
        let joined = eventually(T, || {
            next = ws::try_open(server.addr, &host("chat"), &[]).ok();
            next.is_some()
        });
        assert!(joined, "after {what} the site stays full");
        client = next.unwrap();
    }
    drop(client);
    let zero = |series: &str| eventually(T, || metric(&server, series) == 0);
    assert!(zero("fazt_ws_connections"), "connections left counted");
    assert!(zero("fazt_ws_site_connections{site=\"chat\"}"));
}

#[test]
fn close_frames_are_checked_and_application_codes_echoed() {
    let server = server_with(&[], &["chat"]);
    let cases: [(&str, Vec<u8>, u16); 5] = [
        ("an application code", ws::close_payload(3000, "app"), 3000),
        ("a private code", ws::close_payload(4999, ""), 4999),
        ("one byte", vec![3], 1002),
        ("1005 on the wire", ws::close_payload(1005, ""), 1002),
        (
            "a reason not UTF-8",
            [&[0x03, 0xe8][..], &[0xff]].concat(),
            1007,
        ),
    ];
    for (what, payload, want) in cases {
        let mut client = open(&server, "chat");
        client.send(&Out::new(CLOSE, payload)).unwrap();
        assert_eq!(client.end(T), End::Close(want), "{what}");
        assert!(client.tcp_closed_within(T), "{what}: TCP stays open");
    }
}

#[test]
fn a_plain_redeploy_keeps_clients_and_counts_messages_both_ways() {
    let server = server_with(&[], &["chat"]);
    let mut a = open(&server, "chat");
    let mut b = open(&server, "chat");
    let before_in = metric(&server, "fazt_ws_messages_total{direction=\"in\"}");
    let before_out = metric(&server, "fazt_ws_messages_total{direction=\"out\"}");
    deploy(&server, "chat", &[("index.html", "<h1>v2</h1>")]);
    assert!(
        a.quiet_for(Duration::from_millis(800)),
        "a redeploy closed a client"
    );
    assert_eq!(server.get(&host("chat"), "/").text(), "<h1>v2</h1>");
    a.send_text("");
    assert_eq!(a.next_text(T), "", "an empty message is a message");
    assert_eq!(b.next_text(T), "");
    assert_eq!(
        metric(&server, "fazt_ws_messages_total{direction=\"in\"}"),
        before_in + 1
    );
    assert!(eventually(T, || metric(
        &server,
        "fazt_ws_messages_total{direction=\"out\"}"
    ) == before_out + 2));
    assert_eq!(
        metric(&server, "fazt_ws_site_connections{site=\"chat\"}"),
        2
    );
}

#[test]
fn sigterm_exits_after_five_seconds_when_a_client_never_answers_the_close() {
    let mut server = server_with(&[], &["chat"]);
    let mut mute = open(&server, "chat");
    let mut polite = open(&server, "chat");
    let started = Instant::now();
    signal(&server.child, libc::SIGTERM);
    assert_eq!(polite.close_code(T), 1001);
    polite
        .send(&Out::new(CLOSE, ws::close_payload(1001, "")))
        .unwrap();
    assert_eq!(mute.close_code(T), 1001);
    // The mute client does not answer: fazt gives up on it after its 5 s.
    let status = server.wait(Duration::from_secs(9)).expect("fazt exits");
    assert!(status.success(), "{status:?}: {}", server.stderr());
    let took = started.elapsed();
    assert!(took < Duration::from_secs(8), "{took:?}");
    assert!(polite.tcp_closed_within(T) && mute.tcp_closed_within(T));
}

#[test]
fn serverless_broadcasts_stop_at_100_per_invocation_and_refuse_what_cannot_be_sent() {
    let server = Server::start();
    let api = r#"
        let sent = 0, error = "";
        try {
            for (let i = 0; i < 101; i++) { fazt.socket.broadcast("m" + i); sent++; }
        } catch (e) { error = String(e); }
        let bad = "";
        try { fazt.socket.broadcast(function () {}); } catch (e) { bad = e.name; }
        respond({sent: sent, error: error, bad: bad});
    "#;
    deploy(&server, "app", &[("api/main.js", api)]);
    let mut a = open(&server, "app");
    let r = server.get(&host("app"), "/api/go");
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["sent"], 100, "{v}");
    assert!(!v["error"].as_str().unwrap().is_empty(), "{v}");
    assert_eq!(v["bad"], "TypeError", "{v}");
    for i in 0..100 {
        assert_eq!(a.next_text(T), format!("m{i}"));
    }
    assert!(
        a.quiet_for(Duration::from_millis(300)),
        "more than 100 went out"
    );
}

#[test]
fn only_a_deployed_sites_host_upgrades() {
    let server = server_with(&[], &["chat"]);
    for other in ["nosuch.localhost", "admin.localhost"] {
        if let Ok(_ws) = ws::try_open(server.addr, other, &[]) {
            panic!("{other} upgraded");
        }
    }
}

#[test]
fn pings_count_against_the_rate_and_lengths_are_checked_before_the_payload() {
    use std::io::Write;
    let server = server_with(&[("FAZT_WS_RATE", "5")], &["chat"]);
    let mut pinger = open(&server, "chat");
    let pings: Vec<u8> = (0..20).flat_map(|_| Out::new(PING, "p").encode()).collect();
    pinger.stream.write_all(&pings).unwrap();
    assert_eq!(pinger.end(T), End::Close(1008));

    // A header announcing a terabyte is refused at once; no payload follows.
    let mut huge = open(&server, "chat");
    let mut head = vec![0x82, 0xff];
    head.extend_from_slice(&(1u64 << 40).to_be_bytes());
    head.extend_from_slice(&[1, 2, 3, 4]);
    huge.stream.write_all(&head).unwrap();
    assert_eq!(huge.end(T), End::Close(1009));
}

#[test]
fn many_clients_across_threads_each_get_every_message_in_each_senders_order() {
    let server = server_with(&[("FAZT_WS_RATE", "100000")], &["chat"]);
    let (clients, each) = (12, 50);
    let mut all: Vec<Ws> = (0..clients).map(|_| open(&server, "chat")).collect();
    for round in 0..each {
        for (c, client) in all.iter_mut().enumerate() {
            client.send_text(&format!("{c}:{round}"));
        }
    }
    let readers: Vec<_> = all
        .into_iter()
        .map(|mut client| {
            std::thread::spawn(move || {
                let mut next = vec![0; clients];
                for _ in 0..clients * each {
                    let text = client.next_text(T);
                    let (c, round) = text.split_once(':').unwrap();
                    let (c, round): (usize, usize) = (c.parse().unwrap(), round.parse().unwrap());
                    assert_eq!(round, next[c], "client {c}'s messages out of order");
                    next[c] += 1;
                }
                assert!(client.quiet_for(Duration::from_millis(200)));
            })
        })
        .collect();
    for reader in readers {
        reader.join().unwrap();
    }
}

#[test]
fn a_message_larger_than_the_queue_limit_reaches_clients_that_read() {
    // Either the settings refuse a queue smaller than a message, or a client with nothing
    // queued takes one message whatever its size; a reading client is never cut.
    let env = [
        ("FAZT_WS_QUEUE_MAX", "1024"),
        ("FAZT_WS_MESSAGE_MAX", "8192"),
    ];
    let server = server_with(&env, &["chat"]);
    let mut sender = open(&server, "chat");
    let mut reader = open(&server, "chat");
    sender.send_binary(&[1; 4000]);
    assert_eq!(reader.next_message(T).payload.len(), 4000);
    assert_eq!(sender.next_message(T).payload.len(), 4000);
}

/// The answer to raw upgrade bytes; with a `101`, what a text frame sent next brings back.
fn upgrade_raw(server: &Server, raw: &str, head: bool) -> (u16, String) {
    use std::io::Write;
    let mut stream = server.connect();
    stream.write_all(raw.as_bytes()).unwrap();
    let r = read_response_with(&mut stream, head).expect("an answer");
    if r.status != 101 {
        return (r.status, r.text());
    }
    let mut client = Ws::from_stream(stream);
    client.send_text("after");
    (101, client.next_text(T))
}

#[test]
fn odd_upgrade_requests_are_refused_or_served_cleanly() {
    let server = server_with(&[], &["chat"]);
    let key = ws::new_key();
    let request = ws::upgrade_request("GET", &host("chat"), &key, &[]);
    let base = request.trim_end();
    let end = "\r\n\r\n";
    let not_found = "<h1>chat: no such page</h1>".to_string();
    let absolute = format!("http://{}/ws", host("chat"));
    let cases = [
        ("HTTP/1.0", base.replace("HTTP/1.1", "HTTP/1.0") + end, 400),
        ("HEAD", base.replacen("GET", "HEAD", 1) + end, 405),
        ("a query", base.replacen("/ws", "/ws?room=1", 1) + end, 101),
        (
            "absolute form",
            base.replacen("/ws", &absolute, 1) + end,
            101,
        ),
        ("/ws/", base.replacen("/ws", "/ws/", 1) + end, 404),
        ("/WS", base.replacen("/ws", "/WS", 1) + end, 404),
        // A request body is no part of the WebSocket stream.
        (
            "a body",
            format!("{base}\r\nContent-Length: 5{end}hello"),
            101,
        ),
        (
            "a chunked body",
            format!("{base}\r\nTransfer-Encoding: chunked{end}5\r\nhello\r\n0{end}"),
            101,
        ),
    ];
    for (what, raw, want) in cases {
        let (status, text) = upgrade_raw(&server, &raw, what == "HEAD");
        assert_eq!(status, want, "{what}: {text}");
        match status {
            101 => assert_eq!(text, "after", "{what}"),
            404 => assert_eq!(text, not_found, "{what}"),
            400 => assert!(text.contains("HTTP/1.1"), "{what}: {text}"),
            _ => {}
        }
    }
}

#[test]
fn a_client_that_sends_data_is_never_pinged() {
    let server = server_with(&[("FAZT_WS_PING_EVERY", "1s")], &["chat"]);
    let mut talker = open(&server, "chat");
    let until = Instant::now() + Duration::from_millis(2600);
    while Instant::now() < until {
        talker.send_text("tick");
        let frame = talker.read_frame(T).unwrap();
        assert_eq!(
            (frame.opcode, frame.text()),
            (TEXT, "tick".into()),
            "{frame:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        talker.quiet_for(Duration::from_millis(500)),
        "pinged though it talked"
    );
}
