//! The WebSocket phase of a connection (issue #15). After its `101 Switching Protocols`
//! the connection stays in its core thread: frames are read from `inbuf` by the codec
//! (`http::ws`), a client's message goes to its hub through [`Member::publish`], and the
//! hub's messages come back as shared frames through [`Conn::ws_send`]. Every limit is
//! the connection's own: message size, outgoing queue, message rate, idle time.

use super::{Conn, ConnCtx, Phase};
use crate::http::ws::{self, Opcode, Reader, Received, WsError};
use crate::http::Body;
use crate::platform::metrics::{Collector, Counter, Desc, Kind, Source};
use crate::platform::sys;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// After our close frame, how long the client has to answer with its own.
const CLOSE_WAIT: Duration = Duration::from_secs(5);
/// A frame header is at most this long (2 + 8 + 4 mask bytes).
const FRAME_HEAD_MAX: usize = 14;

/// A connection's place in its site's hub, from the server. Dropping it leaves the hub.
pub(crate) trait Member: Send {
    /// The hub (the event loop finds a hub's connections by it).
    fn hub(&self) -> u64;
    /// Sends a client's message to every client of the hub, the sender included.
    fn publish(&self, opcode: Opcode, payload: &[u8]);
}

/// The limits of one WebSocket connection (the WebSockets settings of `fazt server start`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct WsLimits {
    /// Largest message a client may send (all its fragments): past it, close 1009.
    pub message_max: usize,
    /// Bytes of frames queued for a client: past it, the client is too slow (close 1008).
    pub queue_max: usize,
    /// Messages (and pings) per second a client may send, with a second's worth of burst:
    /// past it, close 1008.
    pub rate: u32,
    /// No frame from the client this long: a ping; no frame in as long again: closed.
    pub ping_every: Duration,
}

/// What a `101` response carries into the connection's WebSocket phase.
pub(crate) struct Upgrade {
    pub member: Box<dyn Member>,
    pub limits: WsLimits,
}

impl std::fmt::Debug for Upgrade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upgrade")
            .field("hub", &self.member.hub())
            .field("limits", &self.limits)
            .finish()
    }
}

/// The state of a connection in its WebSocket phase.
pub(super) struct Session {
    member: Box<dyn Member>,
    limits: WsLimits,
    reader: Reader,
    last_input: Instant,
    ping_sent: bool,
    /// Messages the client may still send now (a token bucket refilled at `limits.rate`).
    allowance: f64,
    refilled: Instant,
    /// When our close frame was queued: the client's own close, or `CLOSE_WAIT`, ends it.
    closing_since: Option<Instant>,
}

impl Session {
    pub(super) fn new(upgrade: Upgrade, now: Instant) -> Session {
        WS_STATS.opened.inc();
        Session {
            reader: Reader::new(upgrade.limits.message_max),
            allowance: f64::from(upgrade.limits.rate),
            member: upgrade.member,
            limits: upgrade.limits,
            last_input: now,
            ping_sent: false,
            refilled: now,
            closing_since: None,
        }
    }

    /// False when the client sent more messages than its rate allows.
    fn take_allowance(&mut self, now: Instant) -> bool {
        let rate = f64::from(self.limits.rate);
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.allowance = (self.allowance + elapsed * rate).min(rate);
        self.refilled = now;
        if self.allowance < 1.0 {
            return false;
        }
        self.allowance -= 1.0;
        true
    }

    /// When the phase needs the loop next: the end of the close wait, the pong's
    /// deadline, or the next ping.
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.closing_since {
            Some(since) => since.checked_add(CLOSE_WAIT),
            None => self
                .last_input
                .checked_add(self.limits.ping_every * if self.ping_sent { 2 } else { 1 }),
        }
    }

    /// Input beyond this is a frame the codec would have refused already.
    pub(super) fn input_max(&self) -> usize {
        self.limits.message_max + FRAME_HEAD_MAX
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        WS_STATS.closed_all.inc();
    }
}

/// Why fazt closed a WebSocket connection, as `fazt_ws_closed_total` labels it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WsClose {
    /// Its outgoing queue passed `FAZT_WS_QUEUE_MAX`.
    Slow,
    /// A message over `FAZT_WS_MESSAGE_MAX`.
    Oversized,
    /// More messages than `FAZT_WS_RATE` allows.
    Rate,
    /// No answer to a ping.
    Idle,
    /// A framing error, or a text message that is not UTF-8.
    Protocol,
}

const CLOSES: [(WsClose, &str); 5] = [
    (WsClose::Slow, "slow"),
    (WsClose::Oversized, "oversized"),
    (WsClose::Rate, "rate"),
    (WsClose::Idle, "idle"),
    (WsClose::Protocol, "protocol"),
];

/// The WebSocket metrics, declared once.
pub(crate) struct WsStats {
    opened: Counter,
    closed_all: Counter,
    messages_in: Counter,
    messages_out: Counter,
    bytes_in: Counter,
    bytes_out: Counter,
    closed: [Counter; CLOSES.len()],
}

pub(crate) static WS_STATS: WsStats = WsStats {
    opened: Counter::new(),
    closed_all: Counter::new(),
    messages_in: Counter::new(),
    messages_out: Counter::new(),
    bytes_in: Counter::new(),
    bytes_out: Counter::new(),
    closed: [const { Counter::new() }; CLOSES.len()],
};

impl WsStats {
    fn count_close(&self, why: WsClose) {
        if let Some(i) = CLOSES.iter().position(|(w, _)| *w == why) {
            self.closed[i].inc();
        }
    }
}

static OPEN: Desc = Desc::new(
    Kind::Gauge,
    "fazt_ws_connections",
    "ws.connections",
    "WebSocket connections open",
);
static MESSAGES: Desc = Desc::new(
    Kind::Counter,
    "fazt_ws_messages_total",
    "ws.messages",
    "WebSocket messages received from clients (in) and queued to clients (out)",
)
.labelled("direction");
static BYTES: Desc = Desc::new(
    Kind::Counter,
    "fazt_ws_bytes_total",
    "ws.bytes",
    "WebSocket payload bytes received from clients (in) and queued to clients (out, frames)",
)
.labelled("direction");
static CLOSED: Desc = Desc::new(
    Kind::Counter,
    "fazt_ws_closed_total",
    "ws.closed",
    "WebSocket clients closed by fazt: slow (queue full), oversized, rate, idle (no pong), protocol",
)
.labelled("reason");

impl Source for WsStats {
    fn collect(&self, out: &mut Collector) {
        let open = self.opened.get().saturating_sub(self.closed_all.get());
        out.int(&OPEN, open as i64);
        out.int_with(&MESSAGES, "in", self.messages_in.get());
        out.int_with(&MESSAGES, "out", self.messages_out.get());
        out.int_with(&BYTES, "in", self.bytes_in.get());
        out.int_with(&BYTES, "out", self.bytes_out.get());
        for (i, (_, label)) in CLOSES.iter().enumerate() {
            out.int_with(&CLOSED, label, self.closed[i].get());
        }
    }
}

impl<P> Conn<P> {
    /// The hub of a connection in its WebSocket phase.
    pub(crate) fn ws_hub(&self) -> Option<u64> {
        match &self.phase {
            Phase::Socket(s) => Some(s.member.hub()),
            _ => None,
        }
    }

    /// Queues a hub's frame for this client; a client whose queue would pass its limit is
    /// too slow and is closed (1008), which costs the other clients nothing.
    pub(crate) fn ws_send(&mut self, frame: &Arc<[u8]>, ctx: &mut ConnCtx) {
        let Phase::Socket(session) = &self.phase else {
            return;
        };
        if session.closing_since.is_some() {
            return;
        }
        // A frame always goes onto an empty queue (a message may be larger than the queue
        // limit): the limit is on what waits behind frames the client has not taken.
        let backlog = self.out.bytes + frame.len() as u64;
        if !self.out.is_empty() && backlog > session.limits.queue_max as u64 {
            self.drop_unsent_frames();
            self.ws_fail(WsClose::Slow, 1008, "client too slow", ctx);
            self.flush(ctx.now, ctx.spare_out);
            if !self.out.is_empty() {
                // It can't take even the close frame: nothing it holds goes on after close.
                let _ = sys::reset_on_close(&self.stream);
                self.phase = Phase::Closed;
            }
            return;
        }
        WS_STATS.messages_out.inc();
        WS_STATS.bytes_out.add(frame.len() as u64);
        self.out.push(
            Body::SharedRange(Arc::clone(frame), 0..frame.len()),
            ctx.now,
        );
        self.flush(ctx.now, ctx.spare_out);
    }

    /// Closes the connection from our side (`code`: 1001 when fazt stops or the site goes):
    /// our close frame, then the client's answer is awaited for `CLOSE_WAIT`.
    pub(crate) fn ws_close(&mut self, code: u16, reason: &str, ctx: &mut ConnCtx) {
        let Phase::Socket(session) = &mut self.phase else {
            return;
        };
        if session.closing_since.is_some() {
            return;
        }
        session.closing_since = Some(ctx.now);
        self.out
            .push(Body::Owned(ws::close_frame(code, reason)), ctx.now);
        self.flush(ctx.now, ctx.spare_out);
    }

    /// Reads every whole frame in `inbuf` and acts on it.
    pub(super) fn step_socket(&mut self, ctx: &mut ConnCtx) {
        let mut offset = 0;
        while matches!(self.phase, Phase::Socket(_)) {
            let Phase::Socket(session) = &mut self.phase else {
                return;
            };
            let read = session.reader.read(&self.inbuf[offset..]);
            match read {
                Ok((0, _)) => break,
                Ok((consumed, received)) => {
                    offset += consumed;
                    session.last_input = ctx.now;
                    session.ping_sent = false;
                    if let Some(received) = received {
                        self.on_received(received, ctx);
                    }
                }
                Err(e) => {
                    let why = match e {
                        WsError::TooBig { .. } => WsClose::Oversized,
                        _ => WsClose::Protocol,
                    };
                    self.ws_fail(why, e.close_code(), e.reason(), ctx);
                    break;
                }
            }
        }
        if matches!(self.phase, Phase::Socket(_)) {
            self.inbuf.drain(..offset);
            if self.inbuf.is_empty() && self.inbuf.capacity() > 4096 {
                // Idle clients hold no read buffer (thousands of them may be connected).
                self.inbuf = Vec::new();
            }
        } else {
            // Closing: what follows the frame that ended it is not read.
            self.inbuf.clear();
        }
    }

    fn on_received(&mut self, received: Received, ctx: &mut ConnCtx) {
        let Phase::Socket(session) = &mut self.phase else {
            return;
        };
        let (opcode, payload) = match received {
            Received::Text(p) => (Opcode::Text, p),
            Received::Binary(p) => (Opcode::Binary, p),
            Received::Ping(p) => {
                if !session.take_allowance(ctx.now) {
                    return self.ws_fail(WsClose::Rate, 1008, "message rate exceeded", ctx);
                }
                if session.closing_since.is_none() {
                    self.out
                        .push(Body::Owned(ws::frame(Opcode::Pong, &p)), ctx.now);
                }
                return;
            }
            Received::Pong(_) => return,
            Received::Close(close) => return self.on_client_close(close, ctx),
        };
        if session.closing_since.is_some() {
            // Data after our close frame is read and dropped (RFC 6455 §5.5.1).
            return;
        }
        if !session.take_allowance(ctx.now) {
            return self.ws_fail(WsClose::Rate, 1008, "message rate exceeded", ctx);
        }
        WS_STATS.messages_in.inc();
        WS_STATS.bytes_in.add(payload.len() as u64);
        session.member.publish(opcode, &payload);
    }

    /// The client's close frame: answered with the same code (unless ours went first),
    /// then our side of the socket closes once the answer is out.
    fn on_client_close(&mut self, close: Option<(u16, String)>, ctx: &mut ConnCtx) {
        let Phase::Socket(session) = &self.phase else {
            return;
        };
        if session.closing_since.is_none() {
            let code = close.map_or(1000, |(code, _)| code);
            self.out
                .push(Body::Owned(ws::close_frame(code, "")), ctx.now);
        }
        self.phase = Phase::Closing;
    }

    /// Fails the connection: a close frame with `code`, and no more input is read.
    fn ws_fail(&mut self, why: WsClose, code: u16, reason: &str, ctx: &mut ConnCtx) {
        WS_STATS.count_close(why);
        let already_closing = match &self.phase {
            Phase::Socket(session) => session.closing_since.is_some(),
            _ => return,
        };
        if !already_closing {
            self.out
                .push(Body::Owned(ws::close_frame(code, reason)), ctx.now);
        }
        self.phase = Phase::Closing;
    }

    /// Drops queued frames no byte of which is written yet (a slow client's backlog).
    fn drop_unsent_frames(&mut self) {
        let keep = usize::from(self.out.offset > 0);
        while self.out.queue.len() > keep {
            if let Some(body) = self.out.queue.pop_back() {
                self.out.bytes -= body.len();
            }
        }
    }

    /// The phase's deadline came: the close wait ended, or the client left a ping
    /// unanswered (closed), or it has been quiet (pinged).
    pub(super) fn socket_deadline(&mut self, ctx: &mut ConnCtx) {
        let Phase::Socket(session) = &mut self.phase else {
            return;
        };
        if session.closing_since.is_some() {
            self.phase = Phase::Closed;
            return;
        }
        if session.ping_sent {
            WS_STATS.count_close(WsClose::Idle);
            self.phase = Phase::Closed;
            return;
        }
        session.ping_sent = true;
        self.out
            .push(Body::Owned(ws::frame(Opcode::Ping, b"")), ctx.now);
        self.flush(ctx.now, ctx.spare_out);
    }
}

#[cfg(test)]
mod tests {
    //! The WebSocket phase over a loopback socket pair, with the clock given by the test.
    use super::*;
    use crate::http::conn::tests::{socket_pair, LIMITS};
    use crate::http::conn::Want;
    use crate::http::response::DateCache;
    use parking_lot::Mutex;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    const PING: Duration = Duration::from_secs(30);

    /// What the connection published, in order.
    type Published = Arc<Mutex<Vec<(Opcode, Vec<u8>)>>>;

    /// Records what the connection publishes.
    struct Recorder(Published);

    impl Member for Recorder {
        fn hub(&self) -> u64 {
            7
        }
        fn publish(&self, opcode: Opcode, payload: &[u8]) {
            self.0.lock().push((opcode, payload.to_vec()));
        }
    }

    struct Harness {
        conn: Conn<()>,
        client: TcpStream,
        published: Published,
        date: DateCache,
        spare: Vec<u8>,
        t0: Instant,
    }

    impl Harness {
        fn new(queue_max: usize, rate: u32) -> Harness {
            let (server, peer, client) = socket_pair();
            let t0 = Instant::now();
            let published = Arc::new(Mutex::new(Vec::new()));
            let upgrade = Upgrade {
                member: Box::new(Recorder(Arc::clone(&published))),
                limits: WsLimits {
                    message_max: 1024,
                    queue_max,
                    rate,
                    ping_every: PING,
                },
            };
            let mut conn = Conn::new(server, peer, t0);
            conn.phase = Phase::Socket(Box::new(Session::new(upgrade, t0)));
            Harness {
                conn,
                client,
                published,
                date: DateCache::default(),
                spare: Vec::new(),
                t0,
            }
        }

        /// Runs `f` on the connection at `after`.
        fn at(&mut self, after: Duration, f: impl FnOnce(&mut Conn<()>, &mut ConnCtx)) {
            let mut ctx = ConnCtx {
                now: self.t0 + after,
                date: &mut self.date,
                draining: false,
                hsts: None,
                spare_out: &mut self.spare,
            };
            f(&mut self.conn, &mut ctx);
        }

        /// The client sends a masked frame; the connection reads it at `after`.
        fn send(&mut self, opcode: u8, payload: &[u8], after: Duration) {
            let mask = [1u8, 2, 3, 4];
            let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
            frame.extend_from_slice(&mask);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            self.client.write_all(&frame).unwrap();
            std::thread::sleep(Duration::from_millis(5));
            let mut scratch = vec![0; 4096];
            self.at(after, |c, ctx| {
                c.on_readable(&mut NoService, 1, &mut scratch, ctx)
            });
        }

        fn expire(&mut self, after: Duration) {
            self.at(after, |c, ctx| c.on_deadline(&LIMITS, ctx));
        }

        fn received(&mut self, len: usize) -> Vec<u8> {
            let mut got = vec![0; len];
            self.client.read_exact(&mut got).unwrap();
            got
        }
    }

    /// The service of a connection that is past its requests.
    struct NoService;

    impl crate::http::conn::Service for NoService {
        type Plan = ();
        fn plan(&mut self, _request: &crate::http::Request) {}
        fn body_limit(&self, _plan: &(), _request: &crate::http::Request) -> u64 {
            0
        }
        fn call(
            &mut self,
            _plan: (),
            _request: crate::http::Request,
            _token: u64,
            _received: Instant,
        ) -> Option<crate::http::Response> {
            None
        }
    }

    #[test]
    fn a_quiet_client_is_pinged_then_closed_and_any_frame_counts_as_life() {
        let mut h = Harness::new(1 << 16, 100);
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + PING));
        h.expire(PING);
        assert_eq!(h.received(2), [0x89, 0x00], "a ping");
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + 2 * PING));
        // The pong (any frame) moves the deadline on from when it came.
        h.send(0xA, b"", PING + Duration::from_secs(1));
        assert_eq!(
            h.conn.deadline(&LIMITS),
            Some(h.t0 + 2 * PING + Duration::from_secs(1))
        );
        h.expire(2 * PING + Duration::from_secs(1));
        assert_eq!(h.received(2), [0x89, 0x00], "pinged again");
        h.expire(3 * PING + Duration::from_secs(1));
        assert_eq!(h.conn.want(), Want::Close, "no answer: closed");
    }

    #[test]
    fn messages_are_published_pings_answered_and_a_close_answered_in_kind() {
        let mut h = Harness::new(1 << 16, 100);
        h.send(0x1, b"hello", Duration::ZERO);
        h.send(0x2, &[0, 1, 2], Duration::ZERO);
        h.send(0x9, b"p", Duration::ZERO);
        assert_eq!(
            h.received(3),
            [0x8A, 0x01, b'p'],
            "the pong carries the ping's payload"
        );
        let published = h.published.lock().clone();
        assert_eq!(
            published,
            [
                (Opcode::Text, b"hello".to_vec()),
                (Opcode::Binary, vec![0, 1, 2])
            ]
        );
        h.send(0x8, &[0x03, 0xE8], Duration::ZERO);
        assert_eq!(h.received(4), [0x88, 0x02, 0x03, 0xE8], "close 1000 back");
        assert!(
            matches!(h.conn.phase, Phase::Lingering { .. }),
            "our side shut"
        );
    }

    #[test]
    fn a_client_over_its_message_rate_is_closed_with_1008() {
        let mut h = Harness::new(1 << 16, 3);
        for _ in 0..4 {
            h.send(0x1, b"x", Duration::ZERO);
        }
        assert_eq!(h.published.lock().len(), 3);
        let close = h.received(4);
        assert_eq!(&close[..4], [0x88, 23, 0x03, 0xF0], "close 1008");
        // A second later the allowance has come back, but the connection is closing.
        assert!(!matches!(h.conn.phase, Phase::Socket(_)));
    }

    #[test]
    fn a_client_that_does_not_read_is_closed_when_its_queue_would_pass_the_limit() {
        let mut h = Harness::new(64 << 10, 100);
        let frame: Arc<[u8]> = ws::frame(Opcode::Binary, &vec![7; 32 << 10]).into();
        let mut sent = 0;
        while matches!(h.conn.phase, Phase::Socket(_)) && sent < 10_000 {
            h.at(Duration::ZERO, |c, ctx| c.ws_send(&frame, ctx));
            sent += 1;
        }
        assert!(sent < 10_000, "never closed");
        assert!(
            h.conn.out.bytes <= 64 << 10,
            "{} bytes queued",
            h.conn.out.bytes
        );
    }

    #[test]
    fn our_close_waits_for_the_clients_answer_a_bounded_time() {
        let mut h = Harness::new(1 << 16, 100);
        h.at(Duration::ZERO, |c, ctx| c.ws_close(1001, "bye", ctx));
        let close = h.received(7);
        assert_eq!(close, [0x88, 5, 0x03, 0xE9, b'b', b'y', b'e']);
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + CLOSE_WAIT));
        h.expire(CLOSE_WAIT);
        assert_eq!(h.conn.want(), Want::Close);
    }
}
