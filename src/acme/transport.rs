//! A small blocking HTTPS client for the ACME exchange: one request per connection
//! (`Connection: close`), bounded reads, rustls with the trust roots the caller gives (the
//! public CAs for Let's Encrypt, a test CA for Pebble). ACME requires https (RFC 8555 §6.1).
//!
//! Not the deploy client's `client::http`: that one is built for fazt's admin API (Bearer
//! token in every request, Mozilla's roots only, `Expect: 100-continue` uploads, messages
//! that name a fazt server), and `client` sits beside the server, not under the domain
//! layer. What the two share, connecting and reading the response, is `http::blocking`.

use super::AcmeError;
use crate::http::blocking::{self, ResponseReader};
use rustls::pki_types::ServerName;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

pub(crate) use crate::http::blocking::Response;

/// ACME documents and certificate chains are small; anything larger is not an ACME answer.
const MAX_BODY: usize = 1024 * 1024;

/// An `https://host[:port]/path` URL.
struct Url<'a> {
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Result<Url<'_>, AcmeError> {
    let bad = |why: &str| AcmeError::Protocol(format!("URL {url:?}: {why}"));
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| bad("not https"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("spaces or control characters"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad("bad port"))?,
        None => 443,
    };
    if host.is_empty() || host.contains('@') {
        return Err(bad("no host"));
    }
    Ok(Url { host, port, path })
}

/// Timeouts of one exchange.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub connect: Duration,
    /// Longest a single read or write may stall.
    pub io: Duration,
}

/// Sends one request and reads the whole response.
pub(crate) fn send(
    tls: &Arc<rustls::ClientConfig>,
    timeouts: Timeouts,
    method: &str,
    url: &str,
    body: Option<(&str, &[u8])>,
) -> Result<Response, AcmeError> {
    let parsed = parse_url(url)?;
    let unreachable = |e: io::Error| AcmeError::Unreachable(format!("{url}: {e}"));
    let socket =
        blocking::connect(parsed.host, parsed.port, timeouts.connect).map_err(unreachable)?;
    socket
        .set_read_timeout(Some(timeouts.io))
        .map_err(unreachable)?;
    socket
        .set_write_timeout(Some(timeouts.io))
        .map_err(unreachable)?;
    let name = ServerName::try_from(parsed.host.to_string())
        .map_err(|e| AcmeError::Protocol(format!("{url}: {e}")))?;
    let session = rustls::ClientConnection::new(Arc::clone(tls), name)
        .map_err(|e| AcmeError::Unreachable(format!("{url}: TLS: {e}")))?;
    let mut stream = rustls::StreamOwned::new(session, socket);

    let host = blocking::host_header(parsed.host, parsed.port, 443);
    let mut head = format!(
        "{method} {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: fazt/{}\r\nAccept: */*\r\n\
         Connection: close\r\n",
        parsed.path,
        env!("CARGO_PKG_VERSION"),
    );
    let mut message = match body {
        Some((content_type, bytes)) => {
            head.push_str(&format!(
                "Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            ));
            let mut m = head.into_bytes();
            m.extend_from_slice(bytes);
            m
        }
        None => (head + "\r\n").into_bytes(),
    };
    stream
        .write_all(&message)
        .and_then(|_| stream.flush())
        .map_err(unreachable)?;
    message.clear();
    ResponseReader::new(MAX_BODY)
        .read_response(&mut stream, method)
        .map_err(unreachable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_with_a_host() {
        let u = parse_url("https://acme.example:14000/dir").unwrap();
        assert_eq!((u.host, u.port, u.path), ("acme.example", 14000, "/dir"));
        let u = parse_url("https://[::1]/x").unwrap();
        assert_eq!((u.host, u.port, u.path), ("::1", 443, "/x"));
        assert_eq!(parse_url("https://ca.example").unwrap().path, "/");
        for bad in [
            "http://ca/dir",
            "https:///dir",
            "https://ca:x/",
            "https://ca/a b",
            "ftp://x",
        ] {
            assert!(
                matches!(parse_url(bad), Err(AcmeError::Protocol(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn reads_length_chunked_and_close_delimited_bodies() {
        let read = |raw: &[u8]| {
            ResponseReader::new(MAX_BODY)
                .read_response(&mut &raw[..], "POST")
                .unwrap()
        };
        let r = read(b"HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nContent-Length: 2\r\n\r\n{}xx");
        assert_eq!(
            (r.status, r.header("replay-nonce"), &r.body[..]),
            (201, Some("abc"), &b"{}"[..])
        );
        let r = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(r.body, b"abc");
        let r = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nto the end");
        assert_eq!(r.body, b"to the end");
        let err = |raw: &[u8]| {
            ResponseReader::new(MAX_BODY)
                .read_response(&mut &raw[..], "GET")
                .is_err()
        };
        assert!(err(b"garbage\r\n\r\n"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"));
    }
}
