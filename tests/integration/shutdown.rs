//! Graceful shutdown: stop accepting, let in-flight requests finish, exit 0; exit non-zero
//! when the deadline passes; a second signal skips the drain and exits within about a
//! second (still committing acknowledged events: disk_full.rs), unless it comes within a
//! second of the first (GNU `timeout` signals fazt and its process group: one stop, two
//! signals).
use crate::common::*;
use std::io::Write;
use std::time::{Duration, Instant};

#[test]
fn in_flight_request_completes_and_exit_is_zero() {
    let mut server = Server::start();
    let mut idle = server.connect();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut idle).unwrap().status, 200);

    // A request whose head is half sent when the signal arrives.
    let mut in_flight = server.connect();
    in_flight
        .write_all(b"GET / HTTP/1.1\r\nHost: root.localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));

    // The idle keep-alive connection is closed; new connections are refused.
    assert!(closed_within(&mut idle, Duration::from_secs(2)));
    assert!(
        std::net::TcpStream::connect(server.addr).is_err(),
        "no longer accepting"
    );

    in_flight.write_all(b"\r\n").unwrap();
    let r = read_response(&mut in_flight).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("fazt is running"));
    assert_eq!(r.header("connection"), Some("close"));

    let status = server
        .wait(Duration::from_secs(10))
        .expect("exits after draining");
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr());
    assert!(server.stderr().contains("stopped cleanly"));
}

#[test]
fn deadline_hit_exits_non_zero() {
    let mut server = Server::builder().env("FAZT_SHUTDOWN_TIMEOUT", "1s").start();
    let mut stuck = server.connect();
    // A body that never finishes keeps the request in flight past the deadline.
    stuck
        .write_all(
            b"POST /api/keys HTTP/1.1\r\nHost: admin.localhost\r\nContent-Length: 100\r\n\r\n{",
        )
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    signal(&server.child, libc::SIGTERM);
    let status = server
        .wait(Duration::from_secs(10))
        .expect("exits at the deadline");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "waited for the deadline"
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        server.stderr().contains("shutdown deadline"),
        "{}",
        server.stderr()
    );
}

#[test]
fn second_signal_exits_at_once() {
    let mut server = Server::builder()
        .env("FAZT_SHUTDOWN_TIMEOUT", "30s")
        .start();
    let mut stuck = server.connect();
    stuck
        .write_all(b"GET / HTTP/1.1\r\nHost: root.localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&server.child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "still draining after one signal"
    );
    let started = Instant::now();
    signal(&server.child, libc::SIGINT);
    let status = server
        .wait(Duration::from_secs(5))
        .expect("second signal exits");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_ne!(status.code(), Some(0));
}

#[test]
fn readiness_reports_draining() {
    let mut server = Server::builder()
        .admin_listener()
        .env("FAZT_SHUTDOWN_TIMEOUT", "3s")
        .start();
    let mut admin = connect(server.admin_addr.unwrap());
    let mut stuck = server.connect();
    stuck
        .write_all(b"GET / HTTP/1.1\r\nHost: root.localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    write!(
        admin,
        "GET /api/system/health HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n",
        server.token
    )
    .unwrap();
    let r = read_response(&mut admin).unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["status"], "draining");
    stuck.write_all(b"\r\n").unwrap();
    assert_eq!(read_response(&mut stuck).unwrap().status, 200);
    assert_eq!(
        server.wait(Duration::from_secs(10)).unwrap().code(),
        Some(0)
    );
}

#[test]
fn two_signals_within_a_second_still_drain() {
    let mut server = Server::builder()
        .env("FAZT_SHUTDOWN_TIMEOUT", "30s")
        .start();
    let mut in_flight = server.connect();
    in_flight
        .write_all(b"GET / HTTP/1.1\r\nHost: root.localhost\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // What `timeout` does: one SIGTERM to fazt, one to its process group.
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(50));
    signal(&server.child, libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        server.child.try_wait().unwrap().is_none(),
        "the echoed signal did not end the drain; stderr: {}",
        server.stderr()
    );
    in_flight.write_all(b"\r\n").unwrap();
    let r = read_response(&mut in_flight).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("fazt is running"));
    let status = server.wait(Duration::from_secs(10)).expect("drains");
    assert_eq!(status.code(), Some(0), "stderr: {}", server.stderr());
    assert!(!server.stderr().contains("exiting now"));
}
