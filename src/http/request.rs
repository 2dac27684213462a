//! A parsed request: the head bytes are kept in one buffer and headers are ranges into it,
//! so a request costs two allocations however many headers it has.

use std::net::SocketAddr;
use std::ops::Range;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
    Other,
}

impl Method {
    pub fn parse(text: &str) -> Method {
        match text {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }
}

#[derive(Debug)]
pub struct Request {
    pub method: Method,
    /// HTTP/1.x minor version: 0 or 1.
    pub minor_version: u8,
    pub peer: SocketAddr,
    /// Host without port, lower-cased; empty when the request had none.
    pub host: String,
    /// The body, or its first bytes when the rest went to `spooled`.
    pub body: Vec<u8>,
    /// The whole body, when the route spools large bodies to a temp file and this one
    /// outgrew memory (see `http::spool`); `body` is then empty.
    pub spooled: Option<Box<super::spool::SpooledBody>>,
    /// Whether the client allows the connection to stay open after this request.
    pub keep_alive: bool,
    /// The request came over TLS (its URLs are https, cookies may be Secure).
    pub tls: bool,
    head: Vec<u8>,
    method_text: Range<usize>,
    target: Range<usize>,
    headers: Vec<(Range<usize>, Range<usize>)>,
}

impl Request {
    /// `method` is the one `method_text` names (the parser has already matched it).
    pub(crate) fn new(
        head: Vec<u8>,
        method: Method,
        method_text: Range<usize>,
        target: Range<usize>,
        minor_version: u8,
        headers: Vec<(Range<usize>, Range<usize>)>,
        peer: SocketAddr,
    ) -> Request {
        let mut request = Request {
            method,
            minor_version,
            peer,
            host: String::new(),
            body: Vec::new(),
            spooled: None,
            keep_alive: false,
            tls: false,
            head,
            method_text,
            target,
            headers,
        };
        request.keep_alive = request.wants_keep_alive();
        request
    }

    /// Length of the body, wherever it is kept.
    pub fn body_len(&self) -> u64 {
        match &self.spooled {
            Some(file) => file.len(),
            None => self.body.len() as u64,
        }
    }

    pub fn method_text(&self) -> &str {
        std::str::from_utf8(&self.head[self.method_text.clone()]).unwrap_or("")
    }

    /// The request target in origin form (`/path?query`): as sent, or the path and query
    /// of an absolute-form target (`http://host/path?query`). Visible ASCII only (httparse).
    pub fn target(&self) -> &str {
        std::str::from_utf8(&self.head[self.target.clone()]).unwrap_or("")
    }

    pub fn path(&self) -> &str {
        let target = self.target();
        &target[..query_start(target).map_or(target.len(), |q| q - 1)]
    }

    pub fn query(&self) -> &str {
        let target = self.target();
        query_start(target).map_or("", |q| &target[q..])
    }

    /// First header with this name (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| self.head[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &self.head[v.clone()])
    }

    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name)
            .and_then(|v| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    pub fn headers(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (&self.head[n.clone()], &self.head[v.clone()]))
    }

    fn wants_keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or(b"");
        let has = |token: &str| {
            connection
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        };
        if self.minor_version == 0 {
            has("keep-alive")
        } else {
            !has("close")
        }
    }
}

/// Where the query of a request target starts (after its `?`). A byte scan: targets are
/// short, and the path is looked at several times per request.
fn query_start(target: &str) -> Option<usize> {
    target.bytes().position(|b| b == b'?').map(|q| q + 1)
}
