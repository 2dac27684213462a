//! One HTTP/1.1 connection as a state machine over a non-blocking socket.
//!
//! Invariants:
//! - at most one request is being handled at a time; pipelined requests wait in `inbuf`,
//!   and we stop reading while responses are queued, so buffering is bounded by
//!   `MAX_HEAD_TOTAL` plus one read plus the queued responses;
//! - a body is never allocated from a declared length: it grows only with bytes received
//!   and is refused with 413 once it passes the route's limit;
//! - every phase that waits on the client has a deadline ([`Conn::deadline`]), which the
//!   event loop keeps in its timers.

use super::parse::{parse_head, ChunkedDecoder, Framing, HeadScanner, HeadStatus, MAX_HEAD_TOTAL};
use super::response::DateCache;
use super::spool::{self, SpoolPolicy};
use super::{Body, HttpError, Method, Request, Response};
use crate::platform::metrics::{Handshake, RatePhase, METRICS};
use crate::platform::sys;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod socket;
pub(crate) use socket::{Member, Upgrade, WsLimits, WS_STATS};

/// Timeouts that bound how long a client may hold a connection in each phase.
#[derive(Clone, Copy, Debug)]
pub struct ConnLimits {
    /// From the first byte of a request head to its end, however slowly it drips.
    pub header_timeout: Duration,
    /// Between requests on a keep-alive connection.
    pub idle_timeout: Duration,
    /// Longest gap without progress while receiving a body.
    pub body_timeout: Duration,
    /// Longest gap without progress while the client is not reading our response.
    pub write_timeout: Duration,
    /// Slowest average rate (bytes/s) of a request body after `rate_grace`; 0 is no floor.
    /// A gap check alone lets a drip of a byte now and then hold a slot forever.
    pub min_body_rate: u64,
    /// Slowest average rate (bytes/s) at which queued responses may be taken by the
    /// client after `rate_grace`; 0 is no floor. Counted on what the client's side
    /// acknowledged, so only its receive window gives it a head start.
    pub min_response_rate: u64,
    /// Time a body or a response gets before its floor applies: each byte then buys
    /// `1 / rate` seconds more (Apache mod_reqtimeout's `MinRate` rule).
    pub rate_grace: Duration,
    /// From accepting a TLS connection to the end of its handshake.
    pub handshake_timeout: Duration,
}

/// What the connection needs from the application. A request is planned once, from its
/// head; the plan then decides the body limit, the spool policy and an early refusal, and
/// goes with the request to [`Service::call`], so nothing is decided twice.
pub trait Service {
    /// What the service decided from a request's head (say, its route).
    type Plan;
    /// Decides, from the head alone, how the request will be handled.
    fn plan(&mut self, request: &Request) -> Self::Plan;
    /// Largest request body the plan accepts, in bytes.
    fn body_limit(&self, plan: &Self::Plan, request: &Request) -> u64;
    /// For routes taking large uploads: where the body goes once it outgrows memory.
    fn spool_policy(&self, _plan: &Self::Plan) -> Option<SpoolPolicy> {
        None
    }
    /// A refusal decided from the head alone (say, a bad API key on an upload), sent
    /// before any of the body is read; the connection then closes.
    fn refuse_early(&mut self, _plan: &Self::Plan, _request: &Request) -> Option<Response> {
        None
    }
    /// Handles a complete request: `Some` answers now; `None` means the request was handed
    /// to another thread and the answer will arrive through [`Conn::deliver`]. `received`
    /// is the loop's clock when the request was complete (where its duration starts; the
    /// loop has read the clock already, so the hot path needn't again).
    fn call(
        &mut self,
        plan: Self::Plan,
        request: Request,
        token: u64,
        received: Instant,
    ) -> Option<Response>;
}

/// Queued responses are flushed before more pipelined requests are read past this.
const OUT_HIGH_WATER: usize = 64 * 1024;
/// After a closing response, input is read and discarded for at most this long (or
/// `LINGER_BYTES`) before the socket closes: closing with unread input makes the kernel
/// send a reset, and a client still sending (say, an upload refused with 413) then
/// fails on write and never reads the response. The byte budget absorbs what is in
/// flight without reading the rest of a large upload.
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 256 * 1024;
/// Bodies at most this large are copied next to their head so both go in one write.
const COALESCE_BODY: u64 = 16 * 1024;
/// Largest sent buffer kept for the next response (see [`ConnCtx::spare_out`]): a head with
/// a coalesced body fits.
const SPARE_OUT_MAX: usize = 2 * COALESCE_BODY as usize;
/// Stream chunks pulled per flush, so one fast reader of a large file can't hold the
/// event loop: after this many the loop serves others and comes back (still writable).
const STREAM_CHUNKS_PER_FLUSH: usize = 8;

/// Where a connection is in its life. Each state carries what only it needs, so a
/// deadline, a pending body or the way an answer is framed exists only where it applies.
enum Phase<P> {
    /// Between requests, nothing of the next head received; `since` is when the
    /// connection opened or the last response was queued.
    Idle {
        since: Instant,
    },
    /// Part of a request head has arrived; the head deadline runs from `started`.
    Head {
        started: Instant,
    },
    Body(Box<PendingBody<P>>),
    /// Being answered (inline, or by another thread through [`Conn::deliver`]).
    Dispatched(Answering),
    /// Upgraded to a WebSocket (issue #15): frames both ways until a close.
    Socket(Box<socket::Session>),
    /// A response that closes the connection is queued: write it, then linger.
    Closing,
    /// The closing response is out and our side is shut down: input is discarded until
    /// the client closes, `discarded` passes `LINGER_BYTES` or `until` passes.
    Lingering {
        until: Instant,
        discarded: usize,
    },
    /// Finished (error, hang-up, timeout or end of input): the loop closes the socket.
    Closed,
}

/// How the answer to the request being handled is framed.
#[derive(Clone, Copy, Debug)]
struct Answering {
    /// A HEAD request: the body is left out.
    head: bool,
    /// The client asked to keep the connection open.
    keep_alive: bool,
}

/// A request whose body is still arriving (boxed: it is much larger than the other phases).
struct PendingBody<P> {
    plan: P,
    request: Request,
    framing: BodyFraming,
    limit: u64,
    spool: Option<SpoolPolicy>,
    read_at: Instant,
    /// When the head was complete: the body's minimum rate counts from here.
    started: Instant,
    /// Body bytes (with chunk framing) received so far.
    received: u64,
}

enum BodyFraming {
    Length(u64),
    Chunked(ChunkedDecoder),
}

/// What the socket should be polled for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Want {
    Read,
    Write,
    /// A WebSocket with frames queued: the client's frames are read meanwhile.
    ReadWrite,
    Nothing,
    Close,
}

/// Responses queued for the socket. Independent of the phase: pipelined answers can be
/// queued while the next request is read or handled.
struct Output {
    queue: VecDeque<Body>,
    /// Bytes of the front buffer already written.
    offset: usize,
    /// Bytes queued, streams counted at their remaining length.
    bytes: u64,
    /// Bytes of the stream chunk at the front not yet written. A chunk is pulled only when
    /// its stream reaches the front (offset 0), so the next bytes written are its bytes.
    chunk_left: usize,
    /// Since when the socket has refused our writes (the write deadline runs from here).
    blocked_at: Option<Instant>,
    /// When the queue last went from empty to not empty, and the bytes written since: the
    /// response's minimum rate counts from there while anything is queued.
    since: Instant,
    sent: u64,
    /// Of `sent`, what the client's side had acknowledged when last asked (when the socket
    /// filled up, and when the floor's deadline came). Bytes only written count for
    /// nothing: a client that doesn't read would otherwise earn credit for everything the
    /// kernel buffers (megabytes on a fast link) at the floor's rate.
    taken: u64,
}

impl Output {
    fn new(now: Instant) -> Output {
        Output {
            queue: VecDeque::new(),
            offset: 0,
            bytes: 0,
            chunk_left: 0,
            blocked_at: None,
            since: now,
            sent: 0,
            taken: 0,
        }
    }

    #[inline]
    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    #[inline]
    fn push(&mut self, body: Body, now: Instant) {
        if self.queue.is_empty() {
            self.since = now;
            self.sent = 0;
            self.taken = 0;
        }
        self.bytes += body.len();
        self.queue.push_back(body);
    }

    /// Drops `n` written bytes from the front; a sent buffer small enough goes to `spare`.
    #[inline]
    fn consume(&mut self, n: usize, spare: &mut Vec<u8>) {
        self.bytes -= n as u64;
        self.sent += n as u64;
        // Streamed bytes count when written, not when the response is built: a client
        // that leaves mid-file is credited only with what it was sent.
        let streamed = n.min(self.chunk_left);
        if streamed > 0 {
            self.chunk_left -= streamed;
            METRICS.streamed_bytes.add(streamed as u64);
        }
        let mut n = n;
        while n > 0 {
            let Some(front) = self.queue.front() else {
                break;
            };
            let left = front.as_bytes().len() - self.offset;
            if n >= left {
                n -= left;
                if let Some(Body::Owned(sent)) = self.queue.pop_front() {
                    keep_spare(spare, sent);
                }
                self.offset = 0;
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }
}

/// The TLS session of a connection accepted on a TLS listener (boxed: a plain connection
/// pays one pointer for it).
struct TlsSession {
    session: rustls::ServerConnection,
    /// How the handshake ends if the connection closes before it completes.
    failure: Handshake,
}

/// One connection; `P` is the plan type of the [`Service`] that handles its requests.
pub struct Conn<P> {
    pub stream: TcpStream,
    /// The byte stream is TLS over `stream` when set: records are read and written here,
    /// in the owning thread, and the state machine sees only plaintext.
    tls: Option<Box<TlsSession>>,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    scanner: HeadScanner,
    phase: Phase<P>,
    out: Output,
    /// Responses queued so far: the first request gets the head deadline to start, later
    /// ones the idle timeout.
    served: u64,
}

impl<P> Conn<P> {
    pub fn new(stream: TcpStream, peer: SocketAddr, now: Instant) -> Conn<P> {
        Conn {
            stream,
            tls: None,
            peer,
            inbuf: Vec::new(),
            scanner: HeadScanner::default(),
            phase: Phase::Idle { since: now },
            out: Output::new(now),
            served: 0,
        }
    }

    /// A connection whose byte stream is TLS with `config` (a TLS listener's).
    pub fn new_tls(
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        config: &Arc<rustls::ServerConfig>,
    ) -> Result<Conn<P>, rustls::Error> {
        let mut session = rustls::ServerConnection::new(Arc::clone(config))?;
        session.set_buffer_limit(Some(super::tls::SEND_BUFFER_LIMIT));
        let mut conn = Conn::new(stream, peer, now);
        conn.tls = Some(Box::new(TlsSession {
            session,
            failure: Handshake::Closed,
        }));
        Ok(conn)
    }

    /// True while a TLS handshake is in progress (the event loop caps these per thread).
    #[inline]
    pub fn is_handshaking(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| t.session.is_handshaking())
    }

    /// How the handshake ended, for a connection closed while [`Conn::is_handshaking`].
    pub fn handshake_failure(&self) -> Handshake {
        self.tls.as_ref().map_or(Handshake::Closed, |t| t.failure)
    }

    /// TLS records written by rustls but not yet taken by the socket.
    #[inline]
    fn tls_pending(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.session.wants_write())
    }

    /// Reads what the socket has (bounded), then runs the state machine.
    pub fn on_readable<S: Service<Plan = P>>(
        &mut self,
        svc: &mut S,
        token: u64,
        scratch: &mut [u8],
        ctx: &mut ConnCtx,
    ) {
        if matches!(self.phase, Phase::Lingering { .. }) {
            self.discard_input(scratch);
            return;
        }
        if self.tls.is_some() {
            self.read_tls_records(svc, token, ctx);
            return;
        }
        let mut reads = 0;
        while self.wants_input() && reads < 4 {
            reads += 1;
            match self.stream.read(scratch) {
                Ok(0) => {
                    // Input is read only with no output queued and no request out, and
                    // everything read before was parsed: what is buffered is an
                    // incomplete request that can never complete.
                    self.phase = Phase::Closed;
                    return;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    self.advance(svc, token, ctx);
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.phase = Phase::Closed;
                    return;
                }
            }
        }
        self.pump(svc, token, ctx);
    }

    /// [`Conn::on_readable`] for TLS: reads records (bounded), moves all the plaintext
    /// they carry into `inbuf` (so none waits inside rustls where no socket event would
    /// bring it back), then runs the state machine, which also writes handshake replies.
    #[inline(never)] // Off the plain path: keeps its code as small as before TLS.
    fn read_tls_records<S: Service<Plan = P>>(
        &mut self,
        svc: &mut S,
        token: u64,
        ctx: &mut ConnCtx,
    ) {
        let mut reads = 0;
        while self.wants_input() && reads < 4 {
            reads += 1;
            match self.read_tls_once(ctx.now) {
                Ok(0) => {
                    self.phase = Phase::Closed;
                    return;
                }
                Ok(_) => self.advance(svc, token, ctx),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.phase = Phase::Closed;
                    return;
                }
            }
        }
        self.pump(svc, token, ctx);
    }

    /// One `read_tls` and the records it completed; returns the socket bytes read (0 at
    /// the end of input). A TLS error sends rustls' alert (best effort) and fails.
    fn read_tls_once(&mut self, now: Instant) -> io::Result<usize> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        let read = tls.session.read_tls(&mut self.stream)?;
        let handshaking = tls.session.is_handshaking();
        let state = match tls.session.process_new_packets() {
            Ok(state) => state,
            Err(e) => {
                if handshaking {
                    tls.failure = Handshake::ProtocolError;
                }
                let _ = tls.session.write_tls(&mut self.stream);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        };
        let plain = state.plaintext_bytes_to_read();
        if plain > 0 {
            let start = self.inbuf.len();
            self.inbuf.resize(start + plain, 0);
            tls.session.reader().read_exact(&mut self.inbuf[start..])?;
        }
        if handshaking && !tls.session.is_handshaking() {
            METRICS.count_handshake(Handshake::Ok);
            if tls.session.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                METRICS.tls_resumed.inc();
            }
            if tls.session.alpn_protocol() == Some(super::tls::ACME_TLS_ALPN) {
                // A TLS-ALPN-01 validation: the handshake was all of it (RFC 8737 §3).
                self.phase = Phase::Closing;
            } else if let Phase::Idle { since } = &mut self.phase {
                // The first request head gets its whole deadline after the handshake.
                *since = now;
            }
        }
        Ok(read)
    }

    pub fn on_writable<S: Service<Plan = P>>(
        &mut self,
        svc: &mut S,
        token: u64,
        ctx: &mut ConnCtx,
    ) {
        self.flush(ctx.now, ctx.spare_out);
        if self.out.is_empty() {
            // Pipelined requests that waited for the queue to drain.
            self.pump(svc, token, ctx);
        }
    }

    /// Alternates handling buffered requests and writing their answers until the socket
    /// is full or nothing buffered can make progress. Needed because `advance` pauses at
    /// the output high-water mark: if the flush then empties the queue, no socket event
    /// will come for requests already sitting in `inbuf`.
    fn pump<S: Service<Plan = P>>(&mut self, svc: &mut S, token: u64, ctx: &mut ConnCtx) {
        loop {
            let before = (self.inbuf.len(), self.served);
            let queue_was_empty = self.out.is_empty();
            self.advance(svc, token, ctx);
            self.flush(ctx.now, ctx.spare_out);
            // With an empty queue and no progress, what is buffered needs more input.
            let stuck = queue_was_empty && (self.inbuf.len(), self.served) == before;
            let closed = matches!(self.phase, Phase::Closed);
            if !self.out.is_empty() || self.inbuf.is_empty() || stuck || closed {
                return;
            }
        }
    }

    /// Receives the answer to a request that was handed to another thread.
    pub fn deliver<S: Service<Plan = P>>(
        &mut self,
        response: Response,
        svc: &mut S,
        token: u64,
        ctx: &mut ConnCtx,
    ) {
        if let Phase::Dispatched(answering) = self.phase {
            self.queue_response(response, answering, ctx);
            self.pump(svc, token, ctx);
        }
    }

    /// Socket interest for the current state; `Close` when the connection is finished.
    pub fn want(&self) -> Want {
        match self.phase {
            Phase::Closed => Want::Close,
            Phase::Socket(_) if !self.out.is_empty() || self.tls_pending() => Want::ReadWrite,
            Phase::Socket(_) => Want::Read,
            _ if !self.out.is_empty() || self.tls_pending() => Want::Write,
            // Only while the queue still holds the closing response.
            Phase::Closing => Want::Close,
            Phase::Lingering { .. } => Want::Read,
            Phase::Dispatched(_) => Want::Nothing,
            Phase::Idle { .. } | Phase::Head { .. } | Phase::Body(_) => Want::Read,
        }
    }

    /// True when no request is in progress and nothing is queued: safe to close at shutdown.
    fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Idle { .. }) && self.inbuf.is_empty() && self.out.is_empty()
    }

    /// When the current phase times out, if it can: the event loop keeps this in its
    /// timers and calls [`Conn::on_deadline`] then. Recomputed after every event, so an
    /// extended deadline (new bytes, a new request) needs no bookkeeping here.
    pub fn deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        let due = self.phase_deadline(limits);
        match self.rate_deadline(limits) {
            Some((rate_due, _)) => Some(due.map_or(rate_due, |d| d.min(rate_due))),
            None => due,
        }
    }

    /// The deadline of the phase, or of a write the client stopped taking.
    fn phase_deadline(&self, limits: &ConnLimits) -> Option<Instant> {
        let (from, allowed) = match &self.phase {
            Phase::Closed => return None,
            // The response is out; only the linger deadline applies now.
            Phase::Lingering { until, .. } => return Some(*until),
            Phase::Socket(session) => {
                let blocked = self.out.blocked_at.map(|at| at + limits.write_timeout);
                return earliest(session.deadline(), blocked);
            }
            _ if self.out.blocked_at.is_some() => (self.out.blocked_at?, limits.write_timeout),
            // A TLS connection gets the handshake deadline first; a fresh connection the
            // head deadline to send its first byte; a kept-alive one the idle timeout.
            Phase::Idle { since } if self.is_handshaking() => (*since, limits.handshake_timeout),
            Phase::Idle { since } if self.served == 0 => (*since, limits.header_timeout),
            Phase::Idle { since } => (*since, limits.idle_timeout),
            Phase::Head { started } => (*started, limits.header_timeout),
            Phase::Body(pending) => (pending.read_at, limits.body_timeout),
            Phase::Dispatched(_) | Phase::Closing => return None,
        };
        // A timeout too long to represent never fires.
        from.checked_add(allowed)
    }

    /// When the body being received or the responses being sent fall below their minimum
    /// average rate, whichever comes first, and which it is. Computed from counts kept
    /// anyway, so the floor costs nothing between events.
    fn rate_deadline(&self, limits: &ConnLimits) -> Option<(Instant, RatePhase)> {
        let body = match &self.phase {
            Phase::Body(p) => rate_due(p.started, p.received, limits.min_body_rate, limits),
            Phase::Closed | Phase::Lingering { .. } => return None,
            _ => None,
        };
        let response = match self.out.is_empty() {
            true => None,
            false => rate_due(
                self.out.since,
                self.out.taken,
                limits.min_response_rate,
                limits,
            ),
        };
        match (body, response) {
            (Some(b), Some(r)) if r < b => Some((r, RatePhase::Response)),
            (Some(b), _) => Some((b, RatePhase::Body)),
            (None, Some(r)) => Some((r, RatePhase::Response)),
            (None, None) => None,
        }
    }

    /// Applies the current phase's timeout if its deadline has passed.
    pub fn on_deadline(&mut self, limits: &ConnLimits, ctx: &mut ConnCtx) {
        let now = ctx.now;
        if self.deadline(limits).is_none_or(|due| now < due) {
            return;
        }
        // The floor is judged on what the client took by now, not when last asked.
        self.update_taken();
        if let Some((due, phase)) = self.rate_deadline(limits) {
            if due <= now {
                self.cut_too_slow(phase, limits, ctx);
                return;
            }
        }
        // Only the floor was due, and the client took enough since it was last asked.
        if self.phase_deadline(limits).is_none_or(|due| now < due) {
            return;
        }
        let write_due = self.out.blocked_at.map(|at| at + limits.write_timeout);
        if matches!(self.phase, Phase::Socket(_)) && write_due.is_none_or(|due| now < due) {
            self.socket_deadline(ctx);
            return;
        }
        if self.out.blocked_at.is_some() && !matches!(self.phase, Phase::Lingering { .. }) {
            METRICS.write_timeouts.inc();
            self.phase = Phase::Closed;
            return;
        }
        if let Some(tls) = self.tls.as_deref_mut() {
            if tls.session.is_handshaking() {
                tls.failure = Handshake::Timeout;
            }
        }
        match self.phase {
            Phase::Head { .. } => self.fail(HttpError::HeadTimeout, ctx),
            Phase::Body(_) => self.fail(HttpError::BodyTimeout, ctx),
            // An idle connection or a finished linger just closes.
            _ => self.phase = Phase::Closed,
        }
        self.flush(now, ctx.spare_out);
    }

    /// Asks the socket how much of what was written the client's side has acknowledged.
    /// Only when the socket is full or a deadline came: one `ioctl`, never per request.
    fn update_taken(&mut self) {
        if self.out.is_empty() {
            return;
        }
        // Over TLS, `sent` counts plaintext given to rustls and the socket holds records
        // (a few percent larger): the client is credited slightly less than it took, and
        // plaintext still inside rustls (at most `tls::SEND_BUFFER_LIMIT`) slightly more.
        // Unknown (not a TCP socket?): count everything written, as before the question.
        let unacked = sys::unacked_bytes(&self.stream).unwrap_or(0);
        self.out.taken = self.out.sent.saturating_sub(unacked);
    }

    /// Ends a connection whose body or reader moved slower than its floor: a body drip
    /// gets a 408 when nothing else is queued (the response side is free), a slow reader
    /// is closed (it would not take an answer either).
    fn cut_too_slow(&mut self, phase: RatePhase, limits: &ConnLimits, ctx: &mut ConnCtx) {
        METRICS.count_rate_cut(phase);
        if phase == RatePhase::Body && self.out.is_empty() {
            let min_rate = limits.min_body_rate;
            self.fail(HttpError::BodyTooSlow { min_rate }, ctx);
            self.flush(ctx.now, ctx.spare_out);
        } else {
            // What the kernel still holds would otherwise go on to the client after close.
            let _ = sys::reset_on_close(&self.stream);
            self.phase = Phase::Closed;
        }
    }

    /// The socket reported an error or a full hang-up: nothing more can be read or
    /// written, so the connection is finished whatever state it was in.
    pub fn hang_up(&mut self) {
        self.phase = Phase::Closed;
    }

    /// Graceful shutdown: an idle connection closes now, and so does one lingering after
    /// its closing response; a busy one closes after its response, since
    /// `ConnCtx::draining` turns off keep-alive.
    pub fn start_draining(&mut self, ctx: &mut ConnCtx) {
        if self.is_idle() || matches!(self.phase, Phase::Lingering { .. }) {
            self.phase = Phase::Closed;
        }
        self.ws_close(1001, "server shutting down", ctx);
    }

    fn wants_input(&self) -> bool {
        if let Phase::Socket(session) = &self.phase {
            // Frames are read whatever is queued: a pong or a close must get through.
            return self.inbuf.len() <= session.input_max();
        }
        matches!(
            self.phase,
            Phase::Idle { .. } | Phase::Head { .. } | Phase::Body(_)
        ) && self.out.is_empty()
            && self.inbuf.len() <= MAX_HEAD_TOTAL
    }

    /// Runs parsing and dispatch over buffered bytes until it needs more input or output
    /// space, or a request is handed off.
    fn advance<S: Service<Plan = P>>(&mut self, svc: &mut S, token: u64, ctx: &mut ConnCtx) {
        if let Phase::Socket(_) = self.phase {
            self.step_socket(ctx);
            return;
        }
        while self.out.bytes <= OUT_HIGH_WATER as u64 {
            let progressed = match self.phase {
                Phase::Idle { .. } | Phase::Head { .. } => {
                    !self.inbuf.is_empty() && self.step_head(svc, token, ctx)
                }
                Phase::Body(_) => self.step_body(svc, token, ctx),
                Phase::Dispatched(_)
                | Phase::Socket(_)
                | Phase::Closing
                | Phase::Lingering { .. }
                | Phase::Closed => false,
            };
            if !progressed {
                break;
            }
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > 4096 {
            // Idle keep-alive connections should not pin large buffers.
            self.inbuf = Vec::new();
        }
    }

    /// Returns true if progress was made and the loop should continue.
    fn step_head<S: Service<Plan = P>>(
        &mut self,
        svc: &mut S,
        token: u64,
        ctx: &mut ConnCtx,
    ) -> bool {
        if let Phase::Idle { .. } = self.phase {
            self.phase = Phase::Head { started: ctx.now };
        }
        let tls = self.tls.is_some();
        let status = match parse_head(&self.inbuf, &mut self.scanner, self.peer, tls) {
            Ok(status) => status,
            Err(e) => {
                self.fail(e, ctx);
                return false;
            }
        };
        let HeadStatus::Complete {
            request,
            framing,
            head_len,
            expect_continue,
        } = status
        else {
            return false;
        };
        self.inbuf.drain(..head_len);
        self.scanner.reset();
        let plan = svc.plan(&request);
        let framing = match framing {
            Framing::None => {
                self.dispatch(plan, request, svc, token, ctx);
                return true;
            }
            Framing::Length(n) => BodyFraming::Length(n),
            Framing::Chunked => BodyFraming::Chunked(ChunkedDecoder::default()),
        };
        // Before the size check, so a client without a valid key learns nothing, not even
        // the upload limit.
        if let Some(refusal) = svc.refuse_early(&plan, &request) {
            self.refuse(refusal, ctx);
            return false;
        }
        let limit = svc.body_limit(&plan, &request);
        if let BodyFraming::Length(n) = framing {
            if n > limit {
                self.fail(HttpError::PayloadTooLarge { limit }, ctx);
                return false;
            }
        }
        if expect_continue && self.inbuf.is_empty() {
            self.out
                .push(Body::Static(b"HTTP/1.1 100 Continue\r\n\r\n"), ctx.now);
        }
        let pending = PendingBody {
            spool: svc.spool_policy(&plan),
            plan,
            request,
            framing,
            limit,
            read_at: ctx.now,
            started: ctx.now,
            received: 0,
        };
        self.phase = Phase::Body(Box::new(pending));
        true
    }

    fn step_body<S: Service<Plan = P>>(
        &mut self,
        svc: &mut S,
        token: u64,
        ctx: &mut ConnCtx,
    ) -> bool {
        let Phase::Body(pending) = &mut self.phase else {
            return false;
        };
        let PendingBody {
            request,
            framing,
            limit,
            spool,
            read_at,
            received,
            ..
        } = &mut **pending;
        let limit = *limit;
        let (consumed, done) = match framing {
            BodyFraming::Length(remaining) => {
                let take = (*remaining).min(self.inbuf.len() as u64) as usize;
                let data = &self.inbuf[..take];
                let stored = spool::append(
                    &mut request.body,
                    &mut request.spooled,
                    spool.as_ref(),
                    data,
                );
                if let Err(e) = stored {
                    self.fail(e, ctx);
                    return false;
                }
                *remaining -= take as u64;
                (take, *remaining == 0)
            }
            BodyFraming::Chunked(decoder) => {
                let (body, spooled) = (&mut request.body, &mut request.spooled);
                let mut sink = |data: &[u8]| {
                    let len = spooled.as_ref().map_or(body.len() as u64, |f| f.len());
                    if len + data.len() as u64 > limit {
                        return Err(HttpError::PayloadTooLarge { limit });
                    }
                    spool::append(body, spooled, spool.as_ref(), data)
                };
                match decoder.decode(&self.inbuf, &mut sink) {
                    Ok(n) => (n, decoder.is_done()),
                    Err(e) => {
                        self.fail(e, ctx);
                        return false;
                    }
                }
            }
        };
        if consumed > 0 {
            *read_at = ctx.now;
            *received += consumed as u64;
        }
        self.inbuf.drain(..consumed);
        if !done {
            return false;
        }
        // `dispatch` sets the next phase at once.
        let Phase::Body(pending) = std::mem::replace(&mut self.phase, Phase::Closed) else {
            return false;
        };
        let PendingBody { plan, request, .. } = *pending;
        self.dispatch(plan, request, svc, token, ctx);
        true
    }

    fn dispatch<S: Service<Plan = P>>(
        &mut self,
        plan: P,
        mut request: Request,
        svc: &mut S,
        token: u64,
        ctx: &mut ConnCtx,
    ) {
        if ctx.draining {
            request.keep_alive = false;
        }
        let answering = Answering {
            head: request.method == Method::Head,
            keep_alive: request.keep_alive,
        };
        self.phase = Phase::Dispatched(answering);
        if let Some(response) = svc.call(plan, request, token, ctx.now) {
            self.queue_response(response, answering, ctx);
        }
    }

    /// Queues the answer to the request being handled; the connection then waits for the
    /// next request or, if this answer closes it, finishes writing and lingers.
    fn queue_response(&mut self, mut response: Response, answering: Answering, ctx: &mut ConnCtx) {
        METRICS.count_status(response.status);
        let keep_alive = answering.keep_alive && !response.close && !ctx.draining;
        let body_len = response.body.len();
        let date = ctx.date.get();
        let capacity = response.head_len_bound(date) + body_len.min(COALESCE_BODY) as usize;
        let mut head = std::mem::take(ctx.spare_out);
        head.clear();
        head.reserve(capacity);
        response.write_head(&mut head, date, keep_alive);
        if let (Some(hsts), Some(_)) = (ctx.hsts, &self.tls) {
            insert_header(&mut head, b"Strict-Transport-Security", hsts.as_bytes());
        }
        let send_body = !answering.head && body_len > 0;
        let in_memory = !matches!(response.body, Body::Stream(_));
        if send_body && in_memory && body_len <= COALESCE_BODY {
            head.extend_from_slice(response.body.as_bytes());
            self.out.push(Body::Owned(head), ctx.now);
        } else {
            self.out.push(Body::Owned(head), ctx.now);
            if send_body {
                self.out.push(response.body, ctx.now);
            }
        }
        self.served += 1;
        if let Some(upgrade) = response.upgrade.take() {
            self.phase = Phase::Socket(Box::new(socket::Session::new(*upgrade, ctx.now)));
            return;
        }
        self.phase = if keep_alive {
            Phase::Idle { since: ctx.now }
        } else {
            Phase::Closing
        };
    }

    /// Answers a protocol error and closes: the rest of the input can't be trusted.
    fn fail(&mut self, error: HttpError, ctx: &mut ConnCtx) {
        METRICS.count_limit(error.status());
        self.refuse(error.to_response(), ctx);
    }

    /// Answers and closes without reading further input (which the lingering close then
    /// discards): the request, and any body it has, is dropped here.
    fn refuse(&mut self, response: Response, ctx: &mut ConnCtx) {
        self.inbuf.clear();
        let answering = Answering {
            head: false,
            keep_alive: false,
        };
        self.queue_response(response.closing(), answering, ctx);
    }

    /// Writes queued output until done or the socket is full; a sent buffer small enough
    /// goes back to `spare`.
    fn flush(&mut self, now: Instant, spare: &mut Vec<u8>) {
        let mut chunks_pulled = 0;
        while !self.out.is_empty() && !matches!(self.phase, Phase::Closed) {
            if let Some(Body::Stream(_)) = self.out.queue.front() {
                if chunks_pulled == STREAM_CHUNKS_PER_FLUSH {
                    // Stay registered for writing; the loop comes back after the others.
                    self.out.blocked_at = None;
                    return;
                }
                chunks_pulled += 1;
                self.pull_stream_chunk();
                continue;
            }
            let mut slices: [IoSlice<'_>; 8] = std::array::from_fn(|_| IoSlice::new(&[]));
            let mut count = 0;
            // In-memory bodies up to the first stream; the stream is pulled when it
            // reaches the front.
            let in_memory = self
                .out
                .queue
                .iter()
                .take_while(|b| !matches!(b, Body::Stream(_)));
            for (i, body) in in_memory.take(8).enumerate() {
                let bytes = body.as_bytes();
                slices[i] = IoSlice::new(if i == 0 {
                    &bytes[self.out.offset..]
                } else {
                    bytes
                });
                count += 1;
            }
            // A lone buffer (the usual coalesced head + small body) takes the cheaper
            // send path; writev costs an iovec import per call.
            let written = match self.tls.as_deref_mut() {
                None if count == 1 => self.stream.write(&slices[0]),
                None => self.stream.write_vectored(&slices[..count]),
                Some(tls) => {
                    write_through_tls(&mut tls.session, &mut self.stream, &slices[..count])
                }
            };
            match written {
                Ok(0) => self.phase = Phase::Closed,
                Ok(n) => {
                    self.out.consume(n, spare);
                    self.out.blocked_at = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.out.blocked_at.get_or_insert(now);
                    self.update_taken();
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.phase = Phase::Closed,
            }
        }
        if self.tls.is_some() && !self.flush_tls(now) {
            return;
        }
        self.out.blocked_at = None;
        if matches!(self.phase, Phase::Closing) && self.out.is_empty() {
            self.start_lingering(now);
        }
    }

    /// Writes the TLS records rustls holds (handshake messages, the tail of a response, the
    /// closing `close_notify`); false while some wait for the socket (or it failed).
    #[inline(never)] // Off the plain path: keeps its code as small as before TLS.
    fn flush_tls(&mut self, now: Instant) -> bool {
        let closing = matches!(self.phase, Phase::Closing) && self.out.is_empty();
        let Some(tls) = self.tls.as_deref_mut() else {
            return true;
        };
        if closing {
            tls.session.send_close_notify();
        }
        match write_records(&mut tls.session, &mut self.stream) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.out.blocked_at.get_or_insert(now);
                self.update_taken();
                false
            }
            Err(_) => {
                self.phase = Phase::Closed;
                false
            }
        }
    }

    /// Sends our FIN after a closing response and starts discarding input.
    fn start_lingering(&mut self, now: Instant) {
        self.phase = match self.stream.shutdown(Shutdown::Write) {
            Ok(()) => Phase::Lingering {
                until: now + LINGER_TIME,
                discarded: 0,
            },
            Err(_) => Phase::Closed,
        };
    }

    fn discard_input(&mut self, scratch: &mut [u8]) {
        let Phase::Lingering { discarded, .. } = &mut self.phase else {
            return;
        };
        loop {
            match self.stream.read(scratch) {
                Ok(0) => break,
                Ok(n) => {
                    *discarded += n;
                    if *discarded > LINGER_BYTES {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.phase = Phase::Closed;
    }

    /// Replaces the stream at the front of the queue by its next chunk followed by the
    /// rest of the stream. A failure mid-body can't be reported to the client (the
    /// status is sent), so it ends the connection, which the client sees as truncation.
    fn pull_stream_chunk(&mut self) {
        let Some(Body::Stream(mut stream)) = self.out.queue.pop_front() else {
            return;
        };
        match stream.next_chunk() {
            Ok(Some(chunk)) if !chunk.is_empty() => {
                if stream.remaining() > 0 {
                    self.out.queue.push_front(Body::Stream(stream));
                }
                self.out.chunk_left = chunk.len();
                self.out.queue.push_front(Body::Owned(chunk));
            }
            Ok(None) if stream.remaining() == 0 => {}
            Ok(_) => {
                log::error!("a streamed body ended early or returned an empty chunk; closing the connection");
                self.phase = Phase::Closed;
            }
            Err(e) => {
                log::error!("reading a streamed body failed: {e}; closing the connection");
                self.phase = Phase::Closed;
            }
        }
    }
}

/// When `bytes` moved since `from` stop meeting `rate` bytes/s after `grace`: each byte
/// buys `1 / rate` seconds. `None` when there is no floor (or it is too far to represent).
fn rate_due(from: Instant, bytes: u64, rate: u64, limits: &ConnLimits) -> Option<Instant> {
    if rate == 0 {
        return None;
    }
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(rate);
    let earned = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
    from.checked_add(limits.rate_grace)?.checked_add(earned)
}

/// Writes the records rustls holds until none are left; `WouldBlock` when the socket is full.
fn write_records(session: &mut rustls::ServerConnection, stream: &mut TcpStream) -> io::Result<()> {
    // Each round writes at least a byte or fails; what rustls holds is bounded.
    while session.wants_write() {
        if session.write_tls(stream)? == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
    }
    Ok(())
}

/// The TLS counterpart of a socket write: once the records held before are out, rustls
/// takes plaintext (up to its buffer limit) and encrypts it; as many records as the socket
/// takes now are written, the rest wait for the next flush (see [`Conn::flush_tls`]).
#[inline(never)]
fn write_through_tls(
    session: &mut rustls::ServerConnection,
    stream: &mut TcpStream,
    slices: &[IoSlice<'_>],
) -> io::Result<usize> {
    write_records(session, stream)?;
    let taken = session.writer().write_vectored(slices)?;
    match write_records(session, stream) {
        Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
        _ => Ok(taken),
    }
}

/// Adds a header line to a response head just written by [`Response::write_head`], before
/// the blank line that ends it.
#[inline(never)]
fn insert_header(head: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    if !head.ends_with(b"\r\n\r\n") {
        return;
    }
    head.truncate(head.len() - 2);
    head.extend_from_slice(name);
    head.extend_from_slice(b": ");
    head.extend_from_slice(value);
    head.extend_from_slice(b"\r\n\r\n");
}

/// Keeps `sent` as the spare output buffer if it is bounded and larger than the current one.
fn keep_spare(spare: &mut Vec<u8>, mut sent: Vec<u8>) {
    if sent.capacity() <= SPARE_OUT_MAX && sent.capacity() > spare.capacity() {
        sent.clear();
        *spare = sent;
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Per-event context from the event loop.
pub struct ConnCtx<'a> {
    pub now: Instant,
    pub date: &'a mut DateCache,
    pub draining: bool,
    /// The `Strict-Transport-Security` value added to responses over TLS, if any.
    pub hsts: Option<&'a str>,
    /// An output buffer of the event loop, reused for the next response: a keep-alive
    /// request then allocates (and frees) no output buffer. One per loop, not per
    /// connection, so idle connections hold none (at most `SPARE_OUT_MAX` bytes).
    pub spare_out: &'a mut Vec<u8>,
}

#[cfg(test)]
mod tests {
    //! Phase transitions over a loopback socket pair, with the clock given by the test.
    use super::*;
    use std::net::TcpListener;

    /// Also the WebSocket phase's tests' (`socket::tests`).
    pub(super) const LIMITS: ConnLimits = ConnLimits {
        header_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(30),
        min_body_rate: 0,
        min_response_rate: 0,
        rate_grace: Duration::from_secs(10),
        handshake_timeout: Duration::from_secs(10),
    };

    /// Answers 204 inline, or hands the request off when `hand_off` is set.
    struct Echo {
        hand_off: bool,
        plans: usize,
        /// Answer 200 with this many bytes instead of 204.
        reply_bytes: usize,
    }

    impl Service for Echo {
        type Plan = usize;
        fn plan(&mut self, _request: &Request) -> usize {
            self.plans += 1;
            self.plans
        }
        fn body_limit(&self, _plan: &usize, _request: &Request) -> u64 {
            100
        }
        fn call(
            &mut self,
            plan: usize,
            _request: Request,
            _token: u64,
            _received: Instant,
        ) -> Option<Response> {
            assert_eq!(
                plan, self.plans,
                "the call gets the plan made from its head"
            );
            let reply = match self.reply_bytes {
                0 => Response::new(204),
                n => {
                    Response::new(200).body("application/octet-stream", Body::Owned(vec![b'x'; n]))
                }
            };
            (!self.hand_off).then_some(reply)
        }
    }

    /// A loopback connection: the server's side (non-blocking) with its peer, and the
    /// client's (reads time out after 5 s). Also the WebSocket phase's tests'.
    pub(super) fn socket_pair() -> (TcpStream, SocketAddr, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        (server, peer, client)
    }

    struct Harness {
        conn: Conn<usize>,
        client: TcpStream,
        svc: Echo,
        date: DateCache,
        spare: Vec<u8>,
        scratch: Vec<u8>,
        t0: Instant,
    }

    impl Harness {
        fn new(hand_off: bool) -> Harness {
            let (server, peer, client) = socket_pair();
            let t0 = Instant::now();
            Harness {
                conn: Conn::new(server, peer, t0),
                client,
                svc: Echo {
                    hand_off,
                    plans: 0,
                    reply_bytes: 0,
                },
                date: DateCache::default(),
                spare: Vec::new(),
                scratch: vec![0; 4096],
                t0,
            }
        }

        /// The client sends `bytes`; the connection reads them at `after`.
        fn send(&mut self, bytes: &[u8], after: Duration) {
            self.client.write_all(bytes).unwrap();
            // Loopback delivers at once, but don't rely on it for a read that must see it.
            std::thread::sleep(Duration::from_millis(5));
            let mut ctx = ctx_at(&mut self.date, &mut self.spare, self.t0 + after);
            self.conn
                .on_readable(&mut self.svc, 1, &mut self.scratch, &mut ctx);
        }

        fn expire(&mut self, after: Duration) {
            self.expire_with(&LIMITS, after);
        }

        fn expire_with(&mut self, limits: &ConnLimits, after: Duration) {
            let mut ctx = ctx_at(&mut self.date, &mut self.spare, self.t0 + after);
            self.conn.on_deadline(limits, &mut ctx);
        }

        /// What the client has received, up to `len` bytes or the server's close.
        fn received(&mut self, len: usize) -> String {
            let mut got = vec![0; len];
            let mut filled = 0;
            while filled < len {
                match self.client.read(&mut got[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) => panic!("client read failed: {e}"),
                }
            }
            String::from_utf8_lossy(&got[..filled]).into_owned()
        }
    }

    fn ctx_at<'a>(date: &'a mut DateCache, spare: &'a mut Vec<u8>, now: Instant) -> ConnCtx<'a> {
        ConnCtx {
            now,
            date,
            draining: false,
            hsts: None,
            spare_out: spare,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    #[test]
    fn first_byte_deadline_then_idle_timeout_between_requests() {
        let mut h = Harness::new(false);
        assert_eq!(h.conn.want(), Want::Read);
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(10)));
        h.send(GET, secs(3));
        assert!(h.received(12).starts_with("HTTP/1.1 204"));
        assert!(matches!(h.conn.phase, Phase::Idle { .. }));
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(3 + 60)));
        // Early: nothing happens.
        h.expire(secs(62));
        assert_eq!(h.conn.want(), Want::Read);
        h.expire(secs(63));
        assert_eq!(h.conn.want(), Want::Close);
    }

    #[test]
    fn a_partial_head_times_out_with_408_then_lingers() {
        let mut h = Harness::new(false);
        h.send(b"GET / HT", secs(1));
        assert!(matches!(h.conn.phase, Phase::Head { .. }));
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(1 + 10)));
        // More bytes of the same head don't move the head deadline.
        h.send(b"TP/1.1\r\n", secs(5));
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(11)));
        h.expire(secs(11));
        let lingering = matches!(h.conn.phase, Phase::Lingering { .. });
        assert!(lingering, "a 408 is written, then input is discarded");
        assert_eq!(h.conn.want(), Want::Read);
        assert_eq!(
            h.conn.deadline(&LIMITS),
            Some(h.t0 + secs(11) + LINGER_TIME)
        );
        let answer = h.received(4096);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("Connection: close"), "{answer}");
        h.expire(secs(11) + LINGER_TIME);
        assert_eq!(h.conn.want(), Want::Close);
    }

    #[test]
    fn a_body_deadline_runs_from_the_last_bytes_received() {
        let mut h = Harness::new(false);
        h.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n\r\nab",
            secs(1),
        );
        assert!(matches!(h.conn.phase, Phase::Body(_)));
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(1 + 30)));
        h.send(b"cd", secs(20));
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(20 + 30)));
        h.expire(secs(49));
        assert!(matches!(h.conn.phase, Phase::Body(_)));
        h.send(b"ef", secs(49));
        assert!(h.received(12).starts_with("HTTP/1.1 204"));
        assert_eq!(h.svc.plans, 1, "one plan per request");
    }

    #[test]
    fn a_body_over_the_limit_is_refused_from_the_head() {
        let mut h = Harness::new(false);
        h.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n",
            secs(1),
        );
        assert!(h.received(12).starts_with("HTTP/1.1 413"));
        assert!(matches!(h.conn.phase, Phase::Lingering { .. }));
    }

    #[test]
    fn a_dispatched_request_has_no_deadline_until_answered() {
        let mut h = Harness::new(true);
        h.send(GET, secs(1));
        assert_eq!(h.conn.want(), Want::Nothing);
        assert_eq!(h.conn.deadline(&LIMITS), None);
        // Draining leaves a request in progress alone.
        let mut ctx = ctx_at(&mut h.date, &mut h.spare, h.t0 + secs(2));
        h.conn.start_draining(&mut ctx);
        assert_eq!(h.conn.want(), Want::Nothing);
        let mut svc = Echo {
            hand_off: true,
            plans: 1,
            reply_bytes: 0,
        };
        let mut ctx = ctx_at(&mut h.date, &mut h.spare, h.t0 + secs(4));
        h.conn.deliver(Response::new(200), &mut svc, 1, &mut ctx);
        assert!(h.received(12).starts_with("HTTP/1.1 200"));
        assert!(matches!(h.conn.phase, Phase::Idle { .. }));
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(4 + 60)));
        let mut ctx = ctx_at(&mut h.date, &mut h.spare, h.t0 + secs(5));
        h.conn.start_draining(&mut ctx);
        assert_eq!(h.conn.want(), Want::Close, "idle: closed by the drain");
    }

    #[test]
    fn end_of_input_closes_the_connection() {
        let mut h = Harness::new(false);
        h.send(b"GET / HTTP/1.1\r\n", secs(1));
        h.client.shutdown(Shutdown::Write).unwrap();
        h.send(b"", secs(2));
        assert_eq!(h.conn.want(), Want::Close);
        assert_eq!(h.conn.deadline(&LIMITS), None);
    }

    /// Bodies at 100 bytes/s after a 10 s grace (a byte buys 10 ms).
    const FLOORS: ConnLimits = ConnLimits {
        min_body_rate: 100,
        ..LIMITS
    };

    fn millis(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_body_below_its_minimum_rate_is_cut_with_408() {
        let mut h = Harness::new(false);
        h.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\nab",
            secs(1),
        );
        // From the end of the head: 10 s of grace plus 10 ms for each byte at 100 B/s.
        assert_eq!(h.conn.deadline(&FLOORS), Some(h.t0 + millis(11_020)));
        // Progress every few seconds keeps the gap timeout away, not the floor.
        h.send(b"cd", secs(8));
        assert_eq!(h.conn.deadline(&FLOORS), Some(h.t0 + millis(11_040)));
        h.expire_with(&FLOORS, millis(11_039));
        assert!(matches!(h.conn.phase, Phase::Body(_)));
        h.expire_with(&FLOORS, millis(11_040));
        let answer = h.received(4096);
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("slower than 100 bytes/s"), "{answer}");
        assert!(matches!(h.conn.phase, Phase::Lingering { .. }));
    }

    #[test]
    fn a_body_above_its_minimum_rate_completes() {
        let mut h = Harness::new(false);
        h.send(
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n",
            secs(1),
        );
        h.send(&[b'x'; 60], secs(11));
        // 60 bytes bought 600 ms past the grace.
        assert_eq!(h.conn.deadline(&FLOORS), Some(h.t0 + millis(11_600)));
        h.expire_with(&FLOORS, millis(11_599));
        h.send(&[b'x'; 40], millis(11_599));
        assert!(h.received(12).starts_with("HTTP/1.1 204"));
        assert_eq!(
            h.conn.deadline(&FLOORS),
            Some(h.t0 + millis(11_599) + secs(60))
        );
    }

    #[test]
    fn a_reader_below_the_minimum_rate_is_closed() {
        // 1 MB/s: a byte the client's side acknowledged buys a microsecond.
        const READ_FLOOR: ConnLimits = ConnLimits {
            min_response_rate: 1_000_000,
            ..LIMITS
        };
        let mut h = Harness::new(false);
        // Far more than the socket buffers take, so most of it stays queued.
        h.svc.reply_bytes = 32 << 20;
        h.send(GET, secs(1));
        assert_eq!(h.conn.want(), Want::Write);
        let (sent, taken) = (h.conn.out.sent, h.conn.out.taken);
        assert!(sent > 0 && sent < 32 << 20, "{sent}");
        // Written is not taken: the client has read nothing, its side holds one window.
        assert!(taken < sent && taken < 8 << 20, "{taken} of {sent}");
        let due = h.t0 + secs(1 + 10) + Duration::from_micros(taken);
        assert_eq!(h.conn.deadline(&READ_FLOOR), Some(due));
        // Without a floor only the write timeout applies.
        assert_eq!(h.conn.deadline(&LIMITS), Some(h.t0 + secs(1 + 30)));
        h.expire_with(&READ_FLOOR, due - millis(1) - h.t0);
        assert_eq!(h.conn.want(), Want::Write);

        // The client reads 1 MiB: at the old deadline the socket is asked again, the floor
        // moves on, and nothing else (the write timeout) is taken for due.
        assert_eq!(h.received(1 << 20).len(), 1 << 20);
        std::thread::sleep(millis(50));
        h.expire_with(&READ_FLOOR, due - h.t0);
        assert_eq!(h.conn.want(), Want::Write, "not cut: the client took more");
        assert!(
            h.conn.out.taken > taken + (512 << 10),
            "{}",
            h.conn.out.taken
        );
        assert!(h.conn.deadline(&READ_FLOOR) > Some(due));

        // Then it stops reading: cut at the floor, before the write timeout (31 s).
        h.expire_with(&READ_FLOOR, secs(30));
        assert_eq!(h.conn.want(), Want::Close);
    }
}
