//! Opening a connection to the server: TCP with a connect timeout, TLS for `https://`.

use super::url::{Scheme, ServerUrl};
use crate::http::blocking;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// A byte stream to the server: a plain socket or TLS over one.
pub trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// Connects to `server`, trying each resolved address in turn. Returns the stream and a
/// clone of its socket (for changing timeouts while the stream is in use).
pub fn connect(server: &ServerUrl, timeout: Duration) -> io::Result<(Box<dyn Stream>, TcpStream)> {
    let socket = blocking::connect(&server.host, server.port, timeout)?;
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
