//! TLS for `https://` servers: rustls (ring) with Mozilla's root certificates.

use super::transport::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io;
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn client_config(ca_file: Option<&Path>) -> io::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = ca_file {
        add_ca_file(&mut roots, path)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Trusts the certificates of a PEM file too; an unreadable file or one without a
/// certificate is an error naming it.
fn add_ca_file(roots: &mut rustls::RootCertStore, path: &Path) -> io::Result<()> {
    let bad = |why: String| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("--ca-file {}: {why}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no CERTIFICATE block in the file".into()));
    }
    for cert in certs {
        roots.add(cert).map_err(|e| bad(e.to_string()))?;
    }
    Ok(())
}

/// Starts a TLS session over `socket` and completes the handshake, verifying the
/// certificate for `host`, so an untrusted certificate or a plain-HTTP port is reported as
/// a connection failure rather than as a failed request. `timeout` bounds each handshake
/// read and write.
pub fn wrap(
    host: &str,
    ca_file: Option<&Path>,
    mut socket: TcpStream,
    timeout: Duration,
) -> io::Result<Box<dyn Stream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let mut session = rustls::ClientConnection::new(Arc::new(client_config(ca_file)?), name)
        .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    while session.is_handshaking() {
        session
            .complete_io(&mut socket)
            .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
    }
    Ok(Box::new(rustls::StreamOwned::new(session, socket)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    #[test]
    fn a_plain_http_port_fails_the_handshake_with_a_clear_error() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut hello = [0u8; 5];
            s.read_exact(&mut hello).unwrap();
            s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            hello
        });
        let socket = TcpStream::connect(addr).unwrap();
        let err = wrap("localhost", None, socket, Duration::from_secs(5))
            .err()
            .unwrap();
        assert!(err.to_string().starts_with("TLS handshake: "), "{err}");
        // The client did speak TLS: a handshake record (type 22).
        assert_eq!(server.join().unwrap()[0], 22);
    }

    #[test]
    fn names_that_are_no_host_are_refused_before_connecting() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let err = wrap("bad host!", None, socket, Duration::from_secs(1))
            .err()
            .unwrap();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
    }
}
