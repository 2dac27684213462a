//! A raw WebSocket client for the tests (RFC 6455), written here rather than taken from a
//! crate so a test can send what no well-behaved client would: unmasked frames, reserved
//! bits, any opcode, control frames between fragments, invalid UTF-8.

use super::{read_response, HttpResponse};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

pub const CONTINUATION: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xA;

/// The GUID of RFC 6455 §1.3 the accept key is derived with.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A stream whose reads can be bounded in time: plain TCP and the tests' TLS client.
pub trait Transport: Read + Write {
    fn set_timeout(&self, limit: Option<Duration>) -> std::io::Result<()>;
}

impl Transport for TcpStream {
    fn set_timeout(&self, limit: Option<Duration>) -> std::io::Result<()> {
        self.set_read_timeout(limit)
    }
}

impl Transport for super::tls_client::Tls {
    fn set_timeout(&self, limit: Option<Duration>) -> std::io::Result<()> {
        self.sock.set_read_timeout(limit)
    }
}

/// One frame as sent: every bit a test may want wrong is a field.
#[derive(Clone, Debug)]
pub struct Out {
    pub fin: bool,
    /// RSV1..3 as the low three bits (0 for a valid frame).
    pub rsv: u8,
    pub opcode: u8,
    /// `None` sends the frame unmasked (a protocol error from a client).
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Out {
    /// A final, masked frame.
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Out {
        Out {
            fin: true,
            rsv: 0,
            opcode,
            mask: Some([0x37, 0xfa, 0x21, 0x3d]),
            payload: payload.into(),
        }
    }

    /// The same frame without FIN (a fragment that more follow).
    pub fn more(mut self) -> Out {
        self.fin = false;
        self
    }

    /// The wire bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![(self.fin as u8) << 7 | (self.rsv & 7) << 4 | (self.opcode & 0xf)];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= 0xffff {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match self.mask {
            Some(mask) => {
                out.extend_from_slice(&mask);
                out.extend(
                    self.payload
                        .iter()
                        .enumerate()
                        .map(|(i, b)| b ^ mask[i % 4]),
                );
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// One frame as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub payload: Vec<u8>,
}

impl Frame {
    /// The status code of a close frame (1005 when it carries none).
    pub fn close_code(&self) -> u16 {
        match self.payload.get(..2) {
            Some(b) => u16::from_be_bytes([b[0], b[1]]),
            None => 1005,
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}

/// How a connection ended, as a reader sees it.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// A close frame with this code arrived.
    Close(u16),
    /// EOF or a reset before any close frame.
    Dropped,
    /// Nothing ended within the time given.
    Open,
}

/// A WebSocket client connection after its `101`.
pub struct Ws<S: Transport = TcpStream> {
    pub stream: S,
    /// Bytes read but not yet parsed into a frame.
    buf: Vec<u8>,
}

/// A fresh `Sec-WebSocket-Key` (base64 of 16 bytes), distinct per call.
pub fn new_key() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_le_bytes());
    bytes[8..].copy_from_slice(&(std::process::id() as u64).to_le_bytes());
    STANDARD.encode(bytes)
}

/// The `Sec-WebSocket-Accept` the server must answer `key` with.
pub fn accept_of(key: &str) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    context.update(key.as_bytes());
    context.update(GUID.as_bytes());
    STANDARD.encode(context.finish().as_ref())
}

/// The bytes of an upgrade request for `host`'s `/ws`, with `extra` headers after the
/// standard ones (a header in `extra` named like a standard one replaces it).
pub fn upgrade_request(method: &str, host: &str, key: &str, extra: &[(&str, &str)]) -> String {
    let standard = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ];
    let mut head = format!("{method} /ws HTTP/1.1\r\nHost: {host}\r\n");
    for (name, value) in standard {
        if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    for (name, value) in extra {
        if !value.is_empty() {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    head
}

/// Sends the upgrade over `stream`; the connection on a `101` with the right accept key,
/// else the response. An `extra` header with an empty value removes a standard one.
pub fn upgrade_over<S: Transport>(
    mut stream: S,
    host: &str,
    extra: &[(&str, &str)],
) -> Result<Ws<S>, HttpResponse> {
    let key = new_key();
    stream
        .write_all(upgrade_request("GET", host, &key, extra).as_bytes())
        .unwrap();
    answer_over(stream, &key)
}

/// Reads the answer to an upgrade already sent with `key`: the connection on a `101` with
/// the right accept key, else the response.
pub fn answer_over<S: Transport>(mut stream: S, key: &str) -> Result<Ws<S>, HttpResponse> {
    // read_response reads the head byte by byte and stops at a 1xx: no frame is consumed.
    let response = read_response(&mut stream).expect("an answer to the upgrade");
    if response.status != 101 {
        return Err(response);
    }
    assert_eq!(
        response.header("sec-websocket-accept"),
        Some(&*accept_of(key))
    );
    assert!(response
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket")));
    Ok(Ws {
        stream,
        buf: Vec::new(),
    })
}

/// Connects to `addr` and upgrades `host`'s `/ws` (with `extra` headers).
pub fn try_open(addr: SocketAddr, host: &str, extra: &[(&str, &str)]) -> Result<Ws, HttpResponse> {
    upgrade_over(super::connect(addr), host, extra)
}

/// A WebSocket client of `host` on `addr`; panics unless the upgrade succeeds.
pub fn open(addr: SocketAddr, host: &str) -> Ws {
    try_open(addr, host, &[]).unwrap_or_else(|r| panic!("no 101: {} {}", r.status, r.text()))
}

impl<S: Transport> Ws<S> {
    /// A connection already past its `101`.
    pub fn from_stream(stream: S) -> Ws<S> {
        Ws {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, frame: &Out) -> std::io::Result<()> {
        self.stream.write_all(&frame.encode())
    }

    pub fn send_text(&mut self, text: &str) {
        self.send(&Out::new(TEXT, text)).expect("send text");
    }

    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.send(&Out::new(BINARY, bytes)).expect("send binary");
    }

    /// The next frame, waiting at most `limit`. `TimedOut` when none is complete by then,
    /// `UnexpectedEof`/`ConnectionReset` when the server dropped the connection.
    pub fn read_frame(&mut self, limit: Duration) -> std::io::Result<Frame> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(frame) = self.parse() {
                return Ok(frame);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ErrorKind::TimedOut.into());
            }
            self.stream.set_timeout(Some(left))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(ErrorKind::TimedOut.into())
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A complete frame from the front of the buffer, if there is one.
    fn parse(&mut self) -> Option<Frame> {
        let b = &self.buf;
        if b.len() < 2 {
            return None;
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7f {
            126 => (
                u16::from_be_bytes(b.get(2..4)?.try_into().unwrap()) as usize,
                4,
            ),
            127 => (
                u64::from_be_bytes(b.get(2..10)?.try_into().unwrap()) as usize,
                10,
            ),
            n => (n as usize, 2),
        };
        let mask: Option<[u8; 4]> = match masked {
            true => {
                let m = b.get(at..at + 4)?.try_into().unwrap();
                at += 4;
                Some(m)
            }
            false => None,
        };
        let mut payload = b.get(at..at + len)?.to_vec();
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x ^= m[i % 4]);
        }
        let frame = Frame {
            fin: b[0] & 0x80 != 0,
            rsv: (b[0] >> 4) & 7,
            opcode: b[0] & 0xf,
            masked,
            payload,
        };
        self.buf.drain(..at + len);
        Some(frame)
    }

    /// The next data frame (text or binary, unfragmented as the server sends them),
    /// skipping pings and pongs; panics on anything else or nothing within `limit`.
    pub fn next_message(&mut self, limit: Duration) -> Frame {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let frame = self.read_frame(left).expect("a message");
            match frame.opcode {
                PING | PONG => continue,
                TEXT | BINARY => {
                    assert!(frame.fin, "the server fragments nothing: {frame:?}");
                    assert!(!frame.masked, "server frames are unmasked: {frame:?}");
                    return frame;
                }
                _ => panic!("expected a message, got {frame:?}"),
            }
        }
    }

    /// The next text message.
    pub fn next_text(&mut self, limit: Duration) -> String {
        let frame = self.next_message(limit);
        assert_eq!(frame.opcode, TEXT, "{frame:?}");
        frame.text()
    }

    /// Reads (skipping data and control frames) until the connection ends or `limit`.
    pub fn end(&mut self, limit: Duration) -> End {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(frame) if frame.opcode == CLOSE => return End::Close(frame.close_code()),
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::TimedOut => return End::Open,
                Err(_) => return End::Dropped,
            }
        }
    }

    /// The code of the close frame the server sends within `limit`; panics otherwise.
    pub fn close_code(&mut self, limit: Duration) -> u16 {
        match self.end(limit) {
            End::Close(code) => code,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    /// True when nothing (no data, no close) arrives within `limit`, pings excepted.
    pub fn quiet_for(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(frame) if matches!(frame.opcode, PING | PONG) => continue,
                Ok(frame) => panic!("unexpected frame {frame:?}"),
                Err(e) if e.kind() == ErrorKind::TimedOut => return true,
                Err(e) => panic!("connection ended: {e}"),
            }
        }
    }

    /// True when the server closed TCP (EOF or reset) within `limit`, once the frames
    /// before it are read.
    pub fn tcp_closed_within(&mut self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                Ok(_) => continue,
                Err(e) => return e.kind() != ErrorKind::TimedOut,
            }
        }
    }
}

/// A close payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason.as_bytes());
    payload
}
