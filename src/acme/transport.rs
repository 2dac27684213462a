//! A small blocking HTTPS client for the ACME exchange: one request per connection
//! (`Connection: close`), bounded reads, rustls with the trust roots the caller gives (the
//! public CAs for Let's Encrypt, a test CA for Pebble). ACME requires https (RFC 8555 §6.1).
//!
//! Not the deploy client's `client::http`: that one is built for fazt's admin API (Bearer
//! token in every request, Mozilla's roots only, `Expect: 100-continue` uploads, messages
//! that name a fazt server), and `client` sits beside the server, not under the domain
//! layer. What the two share is the response reader (head, then a length, chunked or
//! close-delimited body, bounded); both use `http::parse` for the framing rules.

use super::AcmeError;
use crate::http::parse::ChunkedDecoder;
use rustls::pki_types::ServerName;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// ACME documents and certificate chains are small; anything larger is not an ACME answer.
const MAX_BODY: usize = 1024 * 1024;
const MAX_HEAD: usize = 64 * 1024;

pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

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
    let socket = connect(parsed.host, parsed.port, timeouts.connect).map_err(unreachable)?;
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

    let host = host_header(parsed.host, parsed.port);
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
    read_response(&mut stream, method).map_err(unreachable)
}

/// `Host`: the port only when not 443, an IPv6 literal in brackets.
fn host_header(host: &str, port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    }
}

fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no addresses");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn read_response(stream: &mut impl Read, method: &str) -> io::Result<Response> {
    let mut buf = Vec::new();
    loop {
        let (status, headers, head_len) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 64];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed
                .parse(&buf)
                .map_err(|e| io::Error::other(format!("not HTTP: {e}")))?
            {
                httparse::Status::Complete(len) => {
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| {
                            let value = String::from_utf8_lossy(h.value);
                            (
                                h.name.to_string(),
                                value.trim_matches([' ', '\t']).to_string(),
                            )
                        })
                        .collect::<Vec<_>>();
                    break (parsed.code.unwrap_or(0), headers, len);
                }
                httparse::Status::Partial if buf.len() > MAX_HEAD => {
                    return Err(io::Error::other("response head too large"))
                }
                httparse::Status::Partial => {
                    if fill(stream, &mut buf)? == 0 {
                        return Err(io::Error::other("closed before a response"));
                    }
                }
            }
        };
        buf.drain(..head_len);
        if (100..200).contains(&status) {
            continue;
        }
        let response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        return read_body(stream, buf, response, method);
    }
}

fn read_body(
    stream: &mut impl Read,
    mut buf: Vec<u8>,
    mut response: Response,
    method: &str,
) -> io::Result<Response> {
    if method == "HEAD" || response.status == 204 || response.status == 304 {
        return Ok(response);
    }
    let chunked = response
        .header("transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let length = response
        .header("content-length")
        .map(|v| crate::http::parse::content_length_value(v.as_bytes()));
    response.body = if chunked {
        read_chunked(stream, buf)?
    } else {
        match length {
            Some(Ok(n)) if n > MAX_BODY as u64 => return Err(io::Error::other("body too large")),
            Some(Ok(n)) => {
                while buf.len() < n as usize {
                    if fill(stream, &mut buf)? == 0 {
                        return Err(io::Error::other("the body ended early"));
                    }
                }
                buf.truncate(n as usize);
                buf
            }
            Some(Err(_)) => return Err(io::Error::other("invalid Content-Length")),
            None => {
                while fill(stream, &mut buf)? > 0 {
                    if buf.len() > MAX_BODY {
                        return Err(io::Error::other("body too large"));
                    }
                }
                buf
            }
        }
    };
    Ok(response)
}

fn read_chunked(stream: &mut impl Read, mut buf: Vec<u8>) -> io::Result<Vec<u8>> {
    let mut decoder = ChunkedDecoder::default();
    let mut body = Vec::new();
    loop {
        let mut sink = |data: &[u8]| {
            if body.len() + data.len() > MAX_BODY {
                return Err(crate::http::HttpError::BadRequest("body too large".into()));
            }
            body.extend_from_slice(data);
            Ok(())
        };
        let used = decoder
            .decode(&buf, &mut sink)
            .map_err(|e| io::Error::other(format!("bad chunked body: {e}")))?;
        buf.drain(..used);
        if decoder.is_done() {
            return Ok(body);
        }
        if fill(stream, &mut buf)? == 0 {
            return Err(io::Error::other("the chunked body ended early"));
        }
    }
}

fn fill(stream: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return Ok(n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            // A server that closes without close_notify still sent a complete body when
            // the length was known; for close-delimited bodies this is the end.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
    }
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
    fn host_headers_bracket_ipv6_and_omit_the_default_port() {
        assert_eq!(host_header("ca.example", 443), "ca.example");
        assert_eq!(host_header("ca.example", 14000), "ca.example:14000");
        assert_eq!(host_header("::1", 14000), "[::1]:14000");
        assert_eq!(host_header("::1", 443), "[::1]");
    }

    #[test]
    fn reads_length_chunked_and_close_delimited_bodies() {
        let read = |raw: &[u8]| read_response(&mut &raw[..], "POST").unwrap();
        let r = read(b"HTTP/1.1 201 Created\r\nReplay-Nonce: abc\r\nContent-Length: 2\r\n\r\n{}xx");
        assert_eq!(
            (r.status, r.header("replay-nonce"), &r.body[..]),
            (201, Some("abc"), &b"{}"[..])
        );
        let r = read(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n");
        assert_eq!(r.body, b"abc");
        let r = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nto the end");
        assert_eq!(r.body, b"to the end");
        let err = |raw: &[u8]| read_response(&mut &raw[..], "GET").is_err();
        assert!(err(b"garbage\r\n\r\n"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\nx"));
        assert!(err(b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"));
    }
}
