//! The client side of HTTP/1.1 over a blocking stream, shared by fazt's two clients (the
//! deploy client, `client::http`, and the ACME transport, `acme::transport`): opening the
//! TCP connection and reading one response (head, then a Content-Length, chunked or
//! close-delimited body) into memory, within bounds. Writing the request stays with each
//! caller: they differ in what they send (Bearer tokens, `Expect: 100-continue` uploads).
//!
//! Errors are `io::Error`s whose kind says what happened, so callers can tell them apart
//! without reading messages: `InvalidData` for a peer that does not speak HTTP at all,
//! `UnexpectedEof` for a connection closed before a response head, the stream's own
//! `WouldBlock`/`TimedOut` for a read timeout (the bytes read so far stay buffered, so the
//! next call goes on where the timed-out one stopped), `Other` for a response that breaks
//! the framing rules or the bounds.

use super::parse::{content_length_value, ChunkedDecoder};
use super::HttpError;
use std::io::{self, Read};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

/// A response head larger than this is not an answer to a request of ours.
const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 16 * 1024;

/// Connects to `host:port`, trying each resolved address in turn; the last failure is the
/// one reported.
pub(crate) fn connect(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name has no addresses");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(socket) => return Ok(socket),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The value of a `Host` header: IPv6 literals in brackets, the port only when it is not
/// the scheme's default.
pub(crate) fn host_header(host: &str, port: u16, default_port: u16) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    if port == default_port {
        host
    } else {
        format!("{host}:{port}")
    }
}

/// A status line and headers, values without their surrounding whitespace.
#[derive(Debug)]
pub(crate) struct Head {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// Interim responses (`100 Continue`, `103 Early Hints`) come before the final one.
    pub fn is_interim(&self) -> bool {
        (100..200).contains(&self.status)
    }
}

/// A complete response. (The deploy client adds the reading of fazt's JSON errors in
/// `client::http`.)
#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header of that name (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The error inside the `io::Error` of a body over the reader's bound, so a caller can tell
/// it from other failures without reading the message (`BodyTooLarge::is`).
#[derive(Debug)]
pub(crate) struct BodyTooLarge {
    pub limit: usize,
    /// The Content-Length, when the body was refused before it was read.
    pub declared: Option<u64>,
}

impl BodyTooLarge {
    /// Whether `e` is a body over the bound.
    pub fn is(e: &io::Error) -> bool {
        e.get_ref().is_some_and(|inner| inner.is::<BodyTooLarge>())
    }
}

impl std::fmt::Display for BodyTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.declared {
            Some(n) => write!(
                f,
                "response body of {n} bytes is too large (the limit is {})",
                self.limit
            ),
            None => write!(
                f,
                "response body too large (the limit is {} bytes)",
                self.limit
            ),
        }
    }
}

impl std::error::Error for BodyTooLarge {}

/// Reads responses from one connection. It keeps the bytes read past what a call
/// returned (or before a call timed out) for the next call.
pub(crate) struct ResponseReader {
    buf: Vec<u8>,
    max_body: usize,
}

impl ResponseReader {
    /// A reader that refuses bodies larger than `max_body` bytes.
    pub fn new(max_body: usize) -> ResponseReader {
        ResponseReader {
            buf: Vec::new(),
            max_body,
        }
    }

    /// The final response to a request made with `method`, after any interim ones.
    pub fn read_response(
        &mut self,
        stream: &mut (impl Read + ?Sized),
        method: &str,
    ) -> io::Result<Response> {
        loop {
            let head = self.read_head(stream)?;
            if !head.is_interim() {
                return self.read_body(stream, head, method);
            }
        }
    }

    /// The next response head, interim or final.
    pub fn read_head(&mut self, stream: &mut (impl Read + ?Sized)) -> io::Result<Head> {
        loop {
            let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let head = Head {
                        status: parsed.code.unwrap_or(0),
                        headers: parsed.headers.iter().map(header_pair).collect(),
                    };
                    self.buf.drain(..len);
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) if self.buf.len() > MAX_HEAD => {
                    return Err(io::Error::other("response head too large"))
                }
                Ok(httparse::Status::Partial) => {}
                Err(httparse::Error::TooManyHeaders) => {
                    return Err(io::Error::other(format!(
                        "response head has more than {MAX_HEADERS} headers"
                    )))
                }
                Err(e) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("not an HTTP response ({e})"),
                    ))
                }
            }
            if self.fill(stream)? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the server closed the connection without answering",
                ));
            }
        }
    }

    /// The body that follows `head` (none for `HEAD`, 204 and 304).
    pub fn read_body(
        &mut self,
        stream: &mut (impl Read + ?Sized),
        head: Head,
        method: &str,
    ) -> io::Result<Response> {
        let body = if method == "HEAD" || head.status == 204 || head.status == 304 {
            Vec::new()
        } else if find_header(&head.headers, "transfer-encoding")
            .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"))
        {
            self.read_chunked(stream)?
        } else {
            // The server's own rule (digits only): `+38` or `38\u{a0}` is not a length.
            match find_header(&head.headers, "content-length")
                .map(|v| content_length_value(v.as_bytes()))
            {
                Some(Ok(n)) if n > self.max_body as u64 => {
                    return Err(io::Error::other(BodyTooLarge {
                        limit: self.max_body,
                        declared: Some(n),
                    }))
                }
                Some(Ok(n)) => self.read_exact(stream, n as usize)?,
                Some(Err(_)) => {
                    return Err(io::Error::other("invalid Content-Length in the response"))
                }
                None => self.read_to_close(stream)?,
            }
        };
        Ok(Response {
            status: head.status,
            headers: head.headers,
            body,
        })
    }

    fn read_exact(&mut self, stream: &mut (impl Read + ?Sized), len: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < len {
            if self.fill(stream)? == 0 {
                return Err(io::Error::other(format!(
                    "the response ended after {} of {len} bytes",
                    self.buf.len()
                )));
            }
        }
        Ok(self.buf.drain(..len).collect())
    }

    fn read_to_close(&mut self, stream: &mut (impl Read + ?Sized)) -> io::Result<Vec<u8>> {
        loop {
            if self.buf.len() > self.max_body {
                return Err(self.too_large());
            }
            if self.fill(stream)? == 0 {
                return Ok(std::mem::take(&mut self.buf));
            }
        }
    }

    fn read_chunked(&mut self, stream: &mut (impl Read + ?Sized)) -> io::Result<Vec<u8>> {
        let max = self.max_body;
        let mut decoder = ChunkedDecoder::default();
        let mut body = Vec::new();
        loop {
            let mut sink = |data: &[u8]| {
                if body.len() + data.len() > max {
                    return Err(HttpError::PayloadTooLarge { limit: max as u64 });
                }
                body.extend_from_slice(data);
                Ok(())
            };
            let used = match decoder.decode(&self.buf, &mut sink) {
                Ok(used) => used,
                Err(HttpError::PayloadTooLarge { .. }) => return Err(self.too_large()),
                Err(e) => return Err(io::Error::other(format!("bad chunked response: {e}"))),
            };
            self.buf.drain(..used);
            if decoder.is_done() {
                return Ok(body);
            }
            if self.fill(stream)? == 0 {
                return Err(io::Error::other("the chunked response ended early"));
            }
        }
    }

    fn too_large(&self) -> io::Error {
        io::Error::other(BodyTooLarge {
            limit: self.max_body,
            declared: None,
        })
    }

    /// Appends what one read gives; 0 at the end of the stream.
    fn fill(&mut self, stream: &mut (impl Read + ?Sized)) -> io::Result<usize> {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match stream.read(&mut chunk) {
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // rustls reports a peer that closed without close_notify so. A body with a
                // length or chunks is checked complete by its framing anyway; a
                // close-delimited one has no other end.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
        }
    }
}

/// A header as a pair of strings, the value without optional whitespace (only space and
/// tab: `str::trim` would also strip U+00A0).
fn header_pair(h: &httparse::Header) -> (String, String) {
    let value = String::from_utf8_lossy(h.value);
    (
        h.name.to_string(),
        value.trim_matches([' ', '\t']).to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream that hands out its bytes `step` at a time, then ends with `end` (a clean
    /// end when `None`).
    struct Trickle {
        data: Vec<u8>,
        step: usize,
        end: Option<io::ErrorKind>,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            if self.data.is_empty() {
                return match self.end {
                    Some(kind) => Err(io::Error::from(kind)),
                    None => Ok(0),
                };
            }
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data.drain(..n);
            Ok(n)
        }
    }

    fn trickle(data: &[u8], step: usize) -> Trickle {
        Trickle {
            data: data.to_vec(),
            step,
            end: None,
        }
    }

    fn read(raw: &[u8], method: &str, max_body: usize) -> io::Result<Response> {
        ResponseReader::new(max_body).read_response(&mut &raw[..], method)
    }

    fn message(result: io::Result<Response>) -> String {
        result.unwrap_err().to_string()
    }

    #[test]
    fn a_content_length_body_stops_at_its_length() {
        let raw =
            b"HTTP/1.1 201 Created\r\nLocation:  /a \t\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let r = read(raw, "POST", 5).unwrap();
        assert_eq!((r.status, &r.body[..]), (201, &b"hello"[..]));
        assert_eq!(
            r.header("LOCATION"),
            Some("/a"),
            "case-insensitive, OWS trimmed"
        );
        assert_eq!(r.header("content-type"), None);
        // One byte a read: heads and bodies split anywhere.
        let r = ResponseReader::new(5)
            .read_response(&mut trickle(raw, 1), "POST")
            .unwrap();
        assert_eq!(r.body, b"hello");
        // The bytes after the body stay for the next response on the connection.
        let mut reader = ResponseReader::new(64);
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 202 OK\r\nContent-Length: 1\r\n\r\nb";
        let mut stream = &two[..];
        assert_eq!(reader.read_response(&mut stream, "GET").unwrap().body, b"a");
        let second = reader.read_response(&mut stream, "GET").unwrap();
        assert_eq!((second.status, &second.body[..]), (202, &b"b"[..]));
    }

    #[test]
    fn a_chunked_body_is_decoded_with_extensions_and_trailers() {
        let raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n\
                    4\r\n{\"a\"\r\n6;x=y\r\n:true}\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT";
        assert_eq!(read(raw, "GET", 10).unwrap().body, b"{\"a\":true}");
        let r = ResponseReader::new(10).read_response(&mut trickle(raw, 3), "GET");
        assert_eq!(r.unwrap().body, b"{\"a\":true}");
        assert!(message(read(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            "GET",
            10
        ))
        .starts_with("bad chunked response"));
        assert_eq!(
            message(read(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nab",
                "GET",
                10
            )),
            "the chunked response ended early"
        );
    }

    #[test]
    fn without_a_length_the_body_runs_to_the_close() {
        let r = read(b"HTTP/1.1 404 Not Found\r\n\r\nnot here", "GET", 8).unwrap();
        assert_eq!((r.status, &r.body[..]), (404, &b"not here"[..]));
        // rustls' "closed without close_notify" is the end of such a body too.
        let mut stream = trickle(b"HTTP/1.1 200 OK\r\n\r\nall", 2);
        stream.end = Some(io::ErrorKind::UnexpectedEof);
        let r = ResponseReader::new(8).read_response(&mut stream, "GET");
        assert_eq!(r.unwrap().body, b"all");
    }

    #[test]
    fn bodies_over_the_bound_are_refused_however_they_are_framed() {
        let too_large = "response body too large (the limit is 4 bytes)";
        // Exactly the bound is fine, one byte more is not.
        assert_eq!(
            read(b"HTTP/1.1 200 OK\r\n\r\n1234", "GET", 4).unwrap().body,
            b"1234"
        );
        assert_eq!(
            message(read(b"HTTP/1.1 200 OK\r\n\r\n12345", "GET", 4)),
            too_large
        );
        let chunked = |body: &str| {
            format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{body}0\r\n\r\n")
        };
        assert_eq!(
            read(chunked("2\r\n12\r\n2\r\n34\r\n").as_bytes(), "GET", 4)
                .unwrap()
                .body,
            b"1234"
        );
        assert_eq!(
            message(read(
                chunked("2\r\n12\r\n3\r\n345\r\n").as_bytes(),
                "GET",
                4
            )),
            too_large
        );
        // A declared length is refused before any of the body is read.
        assert_eq!(
            read(
                b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n1234",
                "GET",
                4
            )
            .unwrap()
            .body,
            b"1234"
        );
        assert_eq!(
            message(read(
                b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n",
                "GET",
                4
            )),
            "response body of 99999999 bytes is too large (the limit is 4)"
        );
        // Callers tell the bound from other failures by the error inside.
        assert!(BodyTooLarge::is(
            &read(b"HTTP/1.1 200 OK\r\n\r\n12345", "GET", 4).unwrap_err()
        ));
        assert!(BodyTooLarge::is(
            &read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", 4).unwrap_err()
        ));
        assert!(!BodyTooLarge::is(
            &read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n1", "GET", 8).unwrap_err()
        ));
        let mut head = b"HTTP/1.1 200 OK\r\nX-Filler: ".to_vec();
        head.resize(MAX_HEAD + 2, b'a');
        assert_eq!(message(read(&head, "GET", 4)), "response head too large");
        let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
        for _ in 0..=MAX_HEADERS {
            head.extend_from_slice(b"X-A: b\r\n");
        }
        head.extend_from_slice(b"\r\n");
        let err = read(&head, "GET", 4).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Other);
        assert_eq!(err.to_string(), "response head has more than 64 headers");
    }

    #[test]
    fn interim_responses_head_204_and_304_have_no_body() {
        let r = read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", "POST", 8).unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
        let r = read(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", 8).unwrap();
        assert_eq!((r.header("content-length"), r.body.len()), (Some("5"), 0));
        for status in ["204 No Content", "304 Not Modified"] {
            let raw = format!("HTTP/1.1 {status}\r\nContent-Length: 5\r\n\r\n");
            assert!(
                read(raw.as_bytes(), "GET", 8).unwrap().body.is_empty(),
                "{status}"
            );
        }
        // read_head alone sees the interim head (the client's 100-continue wait).
        let mut reader = ResponseReader::new(8);
        let mut stream = &b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"[..];
        assert!(reader.read_head(&mut stream).unwrap().is_interim());
        assert!(!reader.read_head(&mut stream).unwrap().is_interim());
    }

    #[test]
    fn failures_have_kinds_callers_can_tell_apart() {
        let kind = |raw: &[u8]| read(raw, "GET", 8).unwrap_err().kind();
        assert_eq!(kind(b"SSH-2.0-OpenSSH\r\n\r\n"), io::ErrorKind::InvalidData);
        assert_eq!(kind(b""), io::ErrorKind::UnexpectedEof);
        assert_eq!(
            kind(b"HTTP/1.1 200 OK\r\nContent-Le"),
            io::ErrorKind::UnexpectedEof
        );
        assert_eq!(
            message(read(
                b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
                "GET",
                64
            )),
            "the response ended after 5 of 10 bytes"
        );
        for length in ["+2", "2\u{a0}", "1, 2", ""] {
            let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {length}\r\n\r\nok");
            assert_eq!(
                message(read(raw.as_bytes(), "GET", 64)),
                "invalid Content-Length in the response",
                "{length:?}"
            );
        }
    }

    #[test]
    fn a_timed_out_read_keeps_what_came_and_the_next_call_goes_on() {
        let mut stream = trickle(b"HTTP/1.1 200 OK\r\nContent-", 64);
        stream.end = Some(io::ErrorKind::WouldBlock);
        let mut reader = ResponseReader::new(8);
        let err = reader.read_head(&mut stream).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        let mut rest = &b"Length: 2\r\n\r\nok"[..];
        let r = reader.read_response(&mut rest, "GET").unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"ok"[..]));
    }

    #[test]
    fn host_headers_bracket_ipv6_and_omit_the_default_port() {
        assert_eq!(host_header("ca.example", 443, 443), "ca.example");
        assert_eq!(host_header("ca.example", 14000, 443), "ca.example:14000");
        assert_eq!(host_header("::1", 14000, 443), "[::1]:14000");
        assert_eq!(host_header("::1", 80, 80), "[::1]");
        assert_eq!(host_header("h", 443, 80), "h:443");
    }

    #[test]
    fn connect_reports_the_failure_of_the_last_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(connect("127.0.0.1", port, Duration::from_secs(5)).is_ok());
        drop(listener);
        let err = connect("127.0.0.1", port, Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    }
}
