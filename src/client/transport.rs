//! Opening a connection to the server: TCP with a connect timeout, TLS for `https://`.

use super::url::{Scheme, ServerUrl};
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A byte stream to the server: a plain socket or TLS over one.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Connects to `server`, trying each resolved address in turn. Returns the stream and a
/// clone of its socket (for changing timeouts while the stream is in use).
pub fn connect(server: &ServerUrl, timeout: Duration) -> io::Result<(Box<dyn Stream>, TcpStream)> {
    let socket = connect_tcp(&server.host, server.port, timeout)?;
    let _ = socket.set_nodelay(true);
    let handle = socket.try_clone()?;
    match server.scheme {
        Scheme::Http => Ok((Box::new(socket), handle)),
        Scheme::Https => {
            let ca_file = server.ca_file.as_deref();
            Ok((
                super::tls::wrap(&server.host, ca_file, socket, timeout)?,
                handle,
            ))
        }
    }
}

fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let addrs: Vec<_> = (host, port).to_socket_addrs()?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no addresses");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(last)
}
