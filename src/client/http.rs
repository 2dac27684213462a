//! A small blocking HTTP/1.1 client: one request per connection (`Connection: close`),
//! a streamed request body of known length, and a bounded response read into memory.
//! Large bodies are announced with `Expect: 100-continue`, so a server that refuses the
//! upload (bad token, too large, busy) answers before a byte of the archive is sent.

use super::transport::{self, Stream};
use super::url::ServerUrl;
use crate::http::blocking::ResponseReader;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub(crate) use crate::http::blocking::Response;

/// Responses are JSON documents; anything larger is not one of ours.
const MAX_RESPONSE_BODY: usize = 8 * 1024 * 1024;
/// Bodies above this size wait for `100 Continue` (or a refusal) before being sent.
const EXPECT_CONTINUE_ABOVE: u64 = 64 * 1024;
/// How long to wait for `100 Continue` before sending the body anyway (RFC 9110 §10.1.1):
/// a server or proxy that ignores `Expect` must not stall the upload for long.
const EXPECT_WAIT: Duration = Duration::from_secs(2);
/// After a failed body write, how long to look for the response that explains it.
const LATE_RESPONSE_WAIT: Duration = Duration::from_secs(5);
const WRITE_CHUNK: usize = 128 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    pub connect: Duration,
    /// Longest a single socket write may stall.
    pub write: Duration,
    /// Longest wait for the response once the request is sent (a deploy is validated and
    /// applied before the server answers, so this is long for deploys).
    pub response: Duration,
}

impl Timeouts {
    pub const API: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        write: Duration::from_secs(60),
        response: Duration::from_secs(60),
    };
    pub const DEPLOY: Timeouts = Timeouts {
        connect: Duration::from_secs(10),
        write: Duration::from_secs(60),
        response: Duration::from_secs(600),
    };
}

pub enum Body<'a> {
    None,
    Json(Vec<u8>),
    /// `len` bytes read from `reader`; `progress` hears the running total after each write.
    Stream {
        content_type: &'a str,
        reader: &'a mut dyn Read,
        len: u64,
        progress: &'a mut dyn FnMut(u64),
    },
}

pub struct Request<'a> {
    pub method: &'a str,
    /// API path, e.g. `/api/sites` (the server URL's prefix is added).
    pub path: &'a str,
    pub token: &'a str,
    pub body: Body<'a>,
}

/// What the deploy client reads from fazt's answers (the type is the shared blocking reader's).
impl Response {
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The server's explanation: the message of a JSON error body, else the start of the
    /// text.
    pub fn error_text(&self) -> String {
        if let Some((_, message)) = self.json_error() {
            return message;
        }
        let text = String::from_utf8_lossy(&self.body);
        let text = text.trim();
        if text.is_empty() {
            return "no message".into();
        }
        let mut short: String = text.chars().take(300).collect();
        if short.len() < text.len() {
            short.push_str(" ...");
        }
        short
    }

    /// `(code, message)` of a JSON error body: `{"error":{"code","message"}}`, or the
    /// `{"error":"message"}` of servers older than the error codes (code empty then).
    pub fn json_error(&self) -> Option<(String, String)> {
        let error = self.json()?.get("error")?.clone();
        match error {
            serde_json::Value::String(message) => Some((String::new(), message)),
            serde_json::Value::Object(fields) => {
                let text = |name: &str| fields.get(name)?.as_str().map(str::to_string);
                Some((text("code").unwrap_or_default(), text("message")?))
            }
            _ => None,
        }
    }
}

/// Sends one request and reads its response. Errors carry the server URL and what failed.
pub fn send(server: &ServerUrl, request: Request, timeouts: Timeouts) -> Result<Response, String> {
    let (stream, socket) = transport::connect(server, timeouts.connect)
        .map_err(|e| format!("cannot connect to {server}: {e}"))?;
    let mut conn = Connection {
        stream,
        socket,
        reader: ResponseReader::new(MAX_RESPONSE_BODY),
    };
    conn.exchange(server, request, timeouts)
}

struct Connection {
    stream: Box<dyn Stream>,
    /// The same socket as `stream` (a clone of the descriptor), to change read timeouts.
    socket: TcpStream,
    reader: ResponseReader,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Connection {
    fn exchange(
        &mut self,
        server: &ServerUrl,
        request: Request,
        timeouts: Timeouts,
    ) -> Result<Response, String> {
        let io_error = |what: &str, e: io::Error| format!("{what} {server}: {e}");
        let _ = self.socket.set_write_timeout(Some(timeouts.write));
        let _ = self.socket.set_read_timeout(Some(timeouts.response));
        let mut head = format!(
            "{} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: fazt/{}\r\nAccept: application/json\r\n\
             Authorization: Bearer {}\r\nConnection: close\r\n",
            request.method,
            server.target(request.path),
            server.host_header(),
            env!("CARGO_PKG_VERSION"),
            request.token,
        );
        let method = request.method;
        match request.body {
            Body::None => {
                if method != "GET" && method != "HEAD" {
                    head.push_str("Content-Length: 0\r\n\r\n");
                } else {
                    head.push_str("\r\n");
                }
                self.write_all(head.as_bytes())
                    .map_err(|e| io_error("sending the request to", e))?;
            }
            Body::Json(bytes) => {
                head.push_str(&format!(
                    "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    bytes.len()
                ));
                let mut message = head.into_bytes();
                message.extend_from_slice(&bytes);
                self.write_all(&message)
                    .map_err(|e| io_error("sending the request to", e))?;
            }
            Body::Stream {
                content_type,
                reader,
                len,
                progress,
            } => {
                let expect = len > EXPECT_CONTINUE_ABOVE;
                head.push_str(&format!(
                    "Content-Type: {content_type}\r\nContent-Length: {len}\r\n"
                ));
                if expect {
                    head.push_str("Expect: 100-continue\r\n");
                }
                head.push_str("\r\n");
                self.write_all(head.as_bytes())
                    .map_err(|e| io_error("sending the request to", e))?;
                if expect {
                    if let Some(early) = self.await_continue(method, timeouts)? {
                        return Ok(early);
                    }
                }
                if let Err(e) = self.write_body(reader, len, progress) {
                    // The server may have answered and closed early (413, 507, ...): its
                    // answer explains the broken pipe better than the pipe does.
                    let _ = self.socket.set_read_timeout(Some(LATE_RESPONSE_WAIT));
                    return match self.read_response(method) {
                        Ok(response) => Ok(response),
                        Err(_) => Err(io_error("sending the upload to", e)),
                    };
                }
            }
        }
        self.read_response(method)
            .map_err(|e| format!("reading the answer from {server}: {}", describe(&e)))
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Waits briefly for `100 Continue`. Returns the final response if the server refused
    /// the body, `None` to go on sending it (after `100`, or when no answer came in time).
    fn await_continue(
        &mut self,
        method: &str,
        timeouts: Timeouts,
    ) -> Result<Option<Response>, String> {
        let _ = self.socket.set_read_timeout(Some(EXPECT_WAIT));
        let outcome = match self.reader.read_head(&mut self.stream) {
            Ok(head) if head.is_interim() => Ok(None),
            Ok(head) => self
                .reader
                .read_body(&mut self.stream, head, method)
                .map(Some)
                .map_err(|e| format!("reading the answer to the upload: {}", describe(&e))),
            Err(e) if is_timeout(&e) => Ok(None),
            Err(e) => Err(format!(
                "waiting for the server to accept the upload: {}",
                describe(&e)
            )),
        };
        let _ = self.socket.set_read_timeout(Some(timeouts.response));
        outcome
    }

    fn write_body(
        &mut self,
        reader: &mut dyn Read,
        len: u64,
        progress: &mut dyn FnMut(u64),
    ) -> io::Result<()> {
        let mut buf = vec![0u8; WRITE_CHUNK];
        let mut sent = 0u64;
        while sent < len {
            let want = (len - sent).min(WRITE_CHUNK as u64) as usize;
            let n = match reader.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("the upload ended after {sent} of {len} bytes"),
                    ))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.stream.write_all(&buf[..n])?;
            sent += n as u64;
            progress(sent);
        }
        self.stream.flush()
    }

    fn read_response(&mut self, method: &str) -> io::Result<Response> {
        self.reader.read_response(&mut self.stream, method)
    }
}

/// An error reading the answer, with a hint when the other end does not speak HTTP.
fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::InvalidData {
        format!("{e}; is this a fazt server?")
    } else {
        e.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    /// Serves one connection: reads the request head (and `body_len` more bytes), then
    /// writes `answer`; returns what it read.
    fn one_shot(
        answer: &'static [u8],
        body_len: usize,
    ) -> (ServerUrl, thread::JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = ServerUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let handle = thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            let head_len = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            while got.len() < head_len + body_len {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buf[..n]);
            }
            s.write_all(answer).unwrap();
            got
        });
        (url, handle)
    }

    fn get(url: &ServerUrl) -> Result<Response, String> {
        let request = Request {
            method: "GET",
            path: "/api/sites",
            token: "tok",
            body: Body::None,
        };
        send(url, request, Timeouts::API)
    }

    #[test]
    fn reads_content_length_chunked_and_close_delimited_bodies() {
        let (url, server) = one_shot(
            b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-A: b\r\n\r\n{\"a\":true}\nEXTRA",
            0,
        );
        let response = get(&url).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-a"), Some("b"));
        assert_eq!(response.body, b"{\"a\":true}\n");
        let request = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(
            request.starts_with("GET /api/sites HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request.contains("\r\nAuthorization: Bearer tok\r\n"),
            "{request}"
        );
        assert!(request.contains(&format!("\r\nHost: {}\r\n", url.host_header())));

        let (url, _server) = one_shot(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n6;x=y\r\n:true}\r\n0\r\n\r\n",
            0,
        );
        assert_eq!(get(&url).unwrap().body, b"{\"a\":true}");

        let (url, _server) = one_shot(b"HTTP/1.1 404 Not Found\r\n\r\nnot here", 0);
        let response = get(&url).unwrap();
        assert_eq!(
            (response.status, response.error_text().as_str()),
            (404, "not here")
        );
    }

    #[test]
    fn error_text_prefers_the_json_error_message() {
        let response = Response {
            status: 401,
            headers: vec![],
            body: br#"{"error":{"code":"unauthorized","message":"invalid token"}}"#.to_vec(),
        };
        assert_eq!(response.error_text(), "invalid token");
        assert_eq!(
            response.json_error(),
            Some(("unauthorized".to_string(), "invalid token".to_string()))
        );
        let older = Response {
            status: 401,
            headers: vec![],
            body: br#"{"error":"invalid token","status":401}"#.to_vec(),
        };
        assert_eq!(older.error_text(), "invalid token");
        assert_eq!(
            older.json_error(),
            Some((String::new(), "invalid token".to_string()))
        );
        for not_an_error in [&br#"{"error":{"code":"x"}}"#[..], br#"{"error":3}"#, b"{}"] {
            let response = Response {
                status: 500,
                headers: vec![],
                body: not_an_error.to_vec(),
            };
            assert_eq!(response.json_error(), None);
            assert_eq!(response.error_text(), String::from_utf8_lossy(not_an_error));
        }
        let empty = Response {
            status: 500,
            headers: vec![],
            body: vec![],
        };
        assert_eq!(empty.error_text(), "no message");
    }

    #[test]
    fn a_refusal_before_100_continue_skips_the_body() {
        let (url, server) = one_shot(
            b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 40\r\n\r\n{\"error\":\"invalid token\",\"status\":401}\r\n",
            0,
        );
        let data = vec![7u8; 1024 * 1024];
        let mut reader = data.as_slice();
        let mut sent = 0;
        let mut progress = |n| sent = n;
        let request = Request {
            method: "POST",
            path: "/api/deploy",
            token: "bad",
            body: Body::Stream {
                content_type: "application/zip",
                reader: &mut reader,
                len: data.len() as u64,
                progress: &mut progress,
            },
        };
        let response = send(&url, request, Timeouts::API).unwrap();
        assert_eq!(response.status, 401);
        assert_eq!(response.error_text(), "invalid token");
        assert_eq!(sent, 0, "no body byte was sent");
        let head = String::from_utf8(server.join().unwrap()).unwrap();
        assert!(head.contains("\r\nExpect: 100-continue\r\n"), "{head}");
        assert!(head.contains("\r\nContent-Length: 1048576\r\n"), "{head}");
    }

    #[test]
    fn a_closed_port_is_a_connect_error_naming_the_url() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = ServerUrl::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let err = get(&url).unwrap_err();
        assert!(
            err.starts_with(&format!("cannot connect to {url}: ")),
            "{err}"
        );
    }

    #[test]
    fn garbage_is_not_an_http_response() {
        let (url, _server) = one_shot(b"SSH-2.0-OpenSSH\r\n\r\n", 0);
        let err = get(&url).unwrap_err();
        assert!(err.contains("not an HTTP response"), "{err}");
    }

    #[test]
    fn a_signed_or_padded_content_length_is_refused() {
        for answer in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok"[..],
            &b"HTTP/1.1 200 OK\r\nContent-Length: 2\xc2\xa0\r\n\r\nok"[..],
        ] {
            let (url, _server) = one_shot(answer, 0);
            let err = get(&url).unwrap_err();
            assert!(err.contains("invalid Content-Length"), "{err}");
        }
    }
}
