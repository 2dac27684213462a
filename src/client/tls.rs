//! TLS for `https://` servers: rustls (ring) with Mozilla's root certificates.

use super::transport::Stream;
use rustls::pki_types::ServerName;
use std::io;
use std::net::TcpStream;
use std::sync::Arc;

fn client_config() -> io::Result<rustls::ClientConfig> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| io::Error::other(format!("TLS setup: {e}")))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// Starts a TLS session over `socket`, verifying the certificate for `host`. The handshake
/// happens on the first write, so its errors (an untrusted certificate, a plain-HTTP port)
/// surface as I/O errors there, with the server URL attached by the caller.
pub fn wrap(host: &str, socket: TcpStream) -> io::Result<Box<dyn Stream>> {
    let name = ServerName::try_from(host.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let session = rustls::ClientConnection::new(Arc::new(client_config()?), name)
        .map_err(|e| io::Error::other(format!("TLS: {e}")))?;
    Ok(Box::new(rustls::StreamOwned::new(session, socket)))
}
