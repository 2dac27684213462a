//! Several clients from one machine: every address in 127.0.0.0/8 is local on Linux, so a
//! socket bound to 127.0.0.2 or 127.0.0.3 before connecting reaches the server as a
//! different client address.

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

use super::{read_response, HttpResponse};

/// Connects to `addr` from the loopback address `from` (any port).
pub fn connect_from(from: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::new(from, 0).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
}

/// Sends raw request bytes from `from` on a fresh connection and reads one response.
pub fn raw_request_from(from: IpAddr, addr: SocketAddr, raw: impl AsRef<[u8]>) -> HttpResponse {
    let mut stream = connect_from(from, addr);
    stream.write_all(raw.as_ref()).unwrap();
    read_response(&mut stream).expect("a response")
}

/// `127.0.0.n`.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, n])
}
