mod common;
use common::*;
use std::io::Write;
use std::time::{Duration, Instant};
#[test]
fn stall() {
    let server = Server::builder().env("FAZT_IDLE_TIMEOUT", "3s").start();
    let mut s = server.connect();
    s.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    let raw = "GET / HTTP/1.1\r\nHost: root.localhost\r\n\r\n".repeat(200);
    s.write_all(raw.as_bytes()).unwrap();
    let start = Instant::now();
    for i in 0..200 {
        match read_response(&mut s) {
            Ok(r) => assert_eq!(r.status, 200),
            Err(e) => panic!("response {i} after {:?}: {e}", start.elapsed()),
        }
    }
    eprintln!("all in {:?}", start.elapsed());
}
