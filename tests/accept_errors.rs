//! Running out of file descriptors makes accept() fail; fazt must log, count and survive it.
mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};

/// Reads one metric over an admin connection opened before descriptors ran out (a new
/// one could not be accepted while they are exhausted).
fn metric(admin: &mut std::net::TcpStream, token: &str, name: &str) -> u64 {
    write!(
        admin,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    )
    .unwrap();
    let text = read_response(admin).unwrap().text();
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} in metrics"))
        .parse()
        .unwrap()
}

#[test]
fn out_of_descriptors_is_survived() {
    // 64 descriptors in all, and a connection cap above that, so accept() hits EMFILE.
    let server = Server::builder()
        .nofile(64)
        .env("FAZT_MAX_CONNECTIONS", "1000")
        .admin_listener()
        .start();
    let mut admin = connect(server.admin_addr.unwrap());
    assert_eq!(
        metric(&mut admin, &server.token, "fazt_accept_errors_total"),
        0
    );
    let mut flood = Vec::new();
    for _ in 0..120 {
        match std::net::TcpStream::connect(server.addr) {
            Ok(s) => flood.push(s),
            Err(_) => break,
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let errors = metric(&mut admin, &server.token, "fazt_accept_errors_total");
    assert!(errors >= 1, "accept errors were counted");
    assert!(
        server.stderr().contains("accept failed"),
        "and logged: {}",
        server.stderr()
    );

    // Descriptors come back once the flood goes away, and serving resumes.
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = server.connect();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        if let Ok(r) = read_response(&mut s) {
            assert_eq!(r.status, 200);
            break;
        }
        assert!(Instant::now() < deadline, "server never recovered");
        std::thread::sleep(Duration::from_millis(100));
    }
}
