//! Issue #11, fair shares per client: one client address can't hold every public
//! connection (`FAZT_CONNS_PER_CLIENT`), a body dripped or a response read slower than the
//! floor is cut after the grace (`FAZT_MIN_BODY_RATE`, `FAZT_MIN_RESPONSE_RATE`,
//! `FAZT_RATE_GRACE`), trusted proxies and the admin listener are held to their own caps
//! only. Clients are played from 127.0.0.2, .3, … (every 127/8 address is local on Linux).
use crate::common::source::{connect_from, loopback};
use crate::common::*;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The `/metrics` text through the admin listener, so reading it takes no public slot and
/// counts against no client's share.
fn metric(server: &Server, series: &str) -> i64 {
    let admin = server
        .admin_addr
        .expect("these tests start an admin listener");
    let raw = format!(
        "GET /metrics HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {}\r\n\
         Connection: close\r\n\r\n",
        server.token
    );
    let r = raw_request(admin, raw);
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .unwrap_or_else(|| panic!("no series {series} in\n{text}"))
}

const OVER_SHARE: &str = "fazt_connections_over_share_total";
const BODY_CUTS: &str = "fazt_rate_cuts_total{phase=\"body\"}";
const RESPONSE_CUTS: &str = "fazt_rate_cuts_total{phase=\"response\"}";

fn health_get(keep_alive: bool) -> String {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    format!("GET /health HTTP/1.1\r\nHost: root.localhost\r\nConnection: {connection}\r\n\r\n")
}

/// Opens `n` connections from `from`, each starting a request body and sending nothing
/// more (the slow body a slot-filling client holds). Returns the ones the server kept
/// and the answers of the ones it refused. A refusal is answered at accept; one wait for
/// all of them, long enough for a loaded machine, tells the two apart.
fn slow_bodies_from(
    from: IpAddr,
    addr: SocketAddr,
    n: usize,
) -> (Vec<TcpStream>, Vec<HttpResponse>) {
    let streams: Vec<_> = (0..n)
        .map(|_| {
            let mut s = connect_from(from, addr);
            s.write_all(
                b"POST /nowhere HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: 4000\r\n\r\nab",
            )
            .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let (mut held, mut refused) = (Vec::new(), Vec::new());
    for mut s in streams {
        s.set_nonblocking(true).unwrap();
        let answered =
            !matches!(s.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        s.set_nonblocking(false).unwrap();
        if answered {
            refused.push(read_response(&mut s).expect("a refusal's answer"));
        } else {
            held.push(s);
        }
    }
    (held, refused)
}

#[test]
fn one_address_over_its_share_is_refused_while_others_are_served() {
    let server = Server::builder()
        .env("FAZT_MAX_CONNECTIONS", "40")
        .env("FAZT_CONNS_PER_CLIENT", "8")
        .admin_listener()
        .start();
    let attacker = loopback(2);
    // More slow bodies than the whole cap, from one address.
    let (mut held, refused) = slow_bodies_from(attacker, server.addr, 50);
    assert_eq!(held.len(), 8, "the share is 8");
    assert_eq!(refused.len(), 42);
    for r in &refused {
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.header("connection"), Some("close"));
        assert!(r.header("retry-after").is_some());
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(message.contains("your address"), "{message}");
    }
    assert_eq!(metric(&server, OVER_SHARE), 42);
    assert_eq!(metric(&server, "fazt_connections_rejected_total"), 0);

    // Everyone else: every probe served, from other addresses.
    for n in 0..40 {
        let from = loopback(3 + (n % 4) as u8);
        let mut s = connect_from(from, server.addr);
        s.write_all(health_get(false).as_bytes()).unwrap();
        let r = read_response(&mut s).expect("a probe's answer");
        assert_eq!(r.status, 200, "probe {n} from {from}: {}", r.text());
    }

    // A closed connection gives its place back to its client.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (again, refused) = slow_bodies_from(attacker, server.addr, 1);
        if again.len() == 1 {
            break;
        }
        assert_eq!(refused[0].status, 503);
        assert!(Instant::now() < deadline, "the place was never given back");
    }
}

#[test]
fn a_trusted_proxy_is_held_to_the_total_only() {
    let proxy = loopback(4);
    let server = Server::builder()
        .env("FAZT_MAX_CONNECTIONS", "12")
        .env("FAZT_CONNS_PER_CLIENT", "2")
        .env("FAZT_TRUSTED_PROXIES", "127.0.0.4")
        .admin_listener()
        .start();
    let (held, refused) = slow_bodies_from(proxy, server.addr, 10);
    assert_eq!(
        (held.len(), refused.len()),
        (10, 0),
        "the proxy is held to the total"
    );
    // Anyone else still has a share of what is left.
    let (others, refused) = slow_bodies_from(loopback(5), server.addr, 2);
    assert_eq!((others.len(), refused.len()), (2, 0));
    // The total still holds for the proxy.
    let (_, full) = slow_bodies_from(proxy, server.addr, 1);
    assert_eq!(full.len(), 1, "the cap is reached");
    assert_eq!(full[0].status, 503);
    assert_eq!(metric(&server, "fazt_connections_rejected_total"), 1);
    assert_eq!(metric(&server, OVER_SHARE), 0);
    drop((held, others));
}

#[test]
fn admin_listener_connections_are_not_in_the_public_share() {
    let server = Server::builder()
        .env("FAZT_CONNS_PER_CLIENT", "2")
        .admin_listener()
        .start();
    let admin = server.admin_addr.unwrap();
    let me = loopback(1);
    // Five kept-alive admin connections from the same address first.
    let mut admin_conns: Vec<_> = (0..5)
        .map(|_| {
            let mut s = connect_from(me, admin);
            s.write_all(health_get(true).as_bytes()).unwrap();
            assert_eq!(read_response(&mut s).unwrap().status, 200);
            s
        })
        .collect();
    // The public share is still whole: two connections, then 503.
    let mut public = Vec::new();
    for _ in 0..2 {
        let mut s = connect_from(me, server.addr);
        s.write_all(health_get(true).as_bytes()).unwrap();
        assert_eq!(read_response(&mut s).unwrap().status, 200);
        public.push(s);
    }
    let mut third = connect_from(me, server.addr);
    third.write_all(health_get(false).as_bytes()).unwrap();
    assert_eq!(read_response(&mut third).unwrap().status, 503);
    // And a client over its public share still reaches the admin listener.
    for s in admin_conns.iter_mut() {
        s.write_all(health_get(true).as_bytes()).unwrap();
        assert_eq!(read_response(s).unwrap().status, 200);
    }
    assert_eq!(metric(&server, OVER_SHARE), 1);
}

/// Sends `total` body bytes in `step`-byte writes every `every`; returns the answer and
/// when it came.
fn drip_body(
    server: &Server,
    from: IpAddr,
    total: usize,
    step: usize,
    every: Duration,
) -> (HttpResponse, Duration) {
    let mut s = connect_from(from, server.addr);
    let head = format!(
        "POST /nowhere HTTP/1.1\r\nHost: root.localhost\r\nContent-Length: {total}\r\n\
         Connection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).unwrap();
    let started = Instant::now();
    let mut writer = s.try_clone().unwrap();
    let drip = std::thread::spawn(move || {
        let mut sent = 0;
        while sent < total {
            let n = step.min(total - sent);
            if writer.write_all(&vec![b'x'; n]).is_err() {
                return;
            }
            sent += n;
            std::thread::sleep(every);
        }
    });
    let r = read_response(&mut s).expect("an answer to the dripped body");
    let elapsed = started.elapsed();
    drop(s);
    drip.join().unwrap();
    (r, elapsed)
}

#[test]
fn a_body_below_the_minimum_rate_is_cut_and_one_above_is_not() {
    let server = Server::builder()
        .env("FAZT_MIN_BODY_RATE", "200")
        .env("FAZT_RATE_GRACE", "1s")
        .admin_listener()
        .start();
    // 10 bytes every 100 ms is 100 B/s: progress every 100 ms, so only the floor can cut it.
    let (r, elapsed) = drip_body(&server, loopback(2), 4000, 10, Duration::from_millis(100));
    assert_eq!(r.status, 408, "{}", r.text());
    assert!(r.text().contains("slower than 200 bytes/s"), "{}", r.text());
    // Due at 1 s + (bytes so far) / 200 B/s: about 2 s. Bounded well before the body
    // timeout (30 s) or the end of the drip (40 s).
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(5),
        "cut after {elapsed:?}"
    );
    assert_eq!(metric(&server, BODY_CUTS), 1);

    // 60 bytes every 100 ms (600 B/s) for 2.5 s, well past the grace: served.
    let (r, elapsed) = drip_body(&server, loopback(3), 1500, 60, Duration::from_millis(100));
    assert_ne!(r.status, 408, "{}", r.text());
    assert!(elapsed > Duration::from_secs(2), "{elapsed:?}");
    assert_eq!(metric(&server, BODY_CUTS), 1);
}

#[test]
fn a_client_reading_a_response_below_the_minimum_rate_is_cut() {
    let server = Server::builder()
        .env("FAZT_MIN_RESPONSE_RATE", "64K")
        .env("FAZT_RATE_GRACE", "1s")
        .admin_listener()
        .start();
    let big = Rng(11).bytes(8 << 20);
    let deployed = deploy_files(
        &server,
        "big",
        &[("index.html", b"<p>big</p>"), ("big.bin", &big)],
        zip::CompressionMethod::Stored,
    );
    assert_eq!(deployed.status, 200, "{}", deployed.text());
    let get = b"GET /big.bin HTTP/1.1\r\nHost: big.localhost\r\nConnection: close\r\n\r\n";

    // A reader at full speed gets the whole file.
    let mut fast = connect_from(loopback(2), server.addr);
    fast.write_all(get).unwrap();
    let r = read_response(&mut fast).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == big, "the file differs");
    assert_eq!(metric(&server, RESPONSE_CUTS), 0);

    // A reader taking 4 KiB every 200 ms (20 KiB/s) with a small receive window (a slow
    // read attack) is cut once the floor (64 KiB/s after 1 s) passes what it took.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    socket
        .bind(&SocketAddr::new(loopback(3), 0).into())
        .unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut slow: TcpStream = socket.into();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    slow.write_all(get).unwrap();
    let started = Instant::now();
    let mut got = 0usize;
    let mut buf = [0u8; 4096];
    let cut_after = loop {
        match slow.read(&mut buf) {
            Ok(0) | Err(_) => break started.elapsed(),
            Ok(n) => got += n,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "not cut after {got} bytes"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("slow reader cut after {cut_after:?} having read {got} bytes");
    assert!(got < big.len(), "the slow reader got the whole file");
    assert!(cut_after >= Duration::from_secs(1), "{cut_after:?}");
    assert_eq!(metric(&server, RESPONSE_CUTS), 1);
}
