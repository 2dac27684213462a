//! One HTTP/1.1 connection as a state machine over a non-blocking socket.
//!
//! Invariants:
//! - at most one request is being handled at a time; pipelined requests wait in `inbuf`,
//!   and we stop reading while responses are queued, so buffering is bounded by
//!   `MAX_HEAD_TOTAL` plus one read plus the queued responses;
//! - a body is never allocated from a declared length: it grows only with bytes received
//!   and is refused with 413 once it passes the route's limit;
//! - every phase has a deadline, checked by the event loop's periodic sweep.

use super::parse::{parse_head, ChunkedDecoder, Framing, HeadScanner, HeadStatus, MAX_HEAD_TOTAL};
use super::response::DateCache;
use super::spool::{self, SpoolPolicy};
use super::{Body, HttpError, Method, Request, Response};
use crate::platform::metrics::METRICS;
use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

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
}

/// What the connection needs from the application: a body limit per route, and handling.
pub trait Service {
    /// Largest request body the route of this request accepts, in bytes.
    fn body_limit(&self, request: &Request) -> u64;
    /// For routes taking large uploads: where the body goes once it outgrows memory.
    fn spool_policy(&self, _request: &Request) -> Option<SpoolPolicy> {
        None
    }
    /// A refusal decided from the head alone (say, a bad API key on an upload), sent
    /// before any of the body is read; the connection then closes.
    fn refuse_early(&mut self, _request: &Request) -> Option<Response> {
        None
    }
    /// Handles a complete request: `Some` answers now; `None` means the request was handed
    /// to another thread and the answer will arrive through [`Conn::deliver`].
    fn call(&mut self, request: Request, token: u64) -> Option<Response>;
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

enum Phase {
    Head,
    Body(Box<PendingBody>),
    /// Handed to another thread; waiting for [`Conn::deliver`].
    Dispatched,
}

/// A request whose body is still arriving (boxed: it is much larger than the other phases).
struct PendingBody {
    request: Request,
    framing: BodyFraming,
    limit: u64,
    spool: Option<SpoolPolicy>,
    read_at: Instant,
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
    Nothing,
    Close,
}

pub struct Conn {
    pub stream: TcpStream,
    peer: SocketAddr,
    inbuf: Vec<u8>,
    scanner: HeadScanner,
    phase: Phase,
    out: VecDeque<Body>,
    out_offset: usize,
    /// Bytes queued, streams counted at their remaining length.
    out_bytes: u64,
    /// Method and keep-alive wish of the request being answered.
    answering_head: bool,
    answering_keep_alive: bool,
    close_after_flush: bool,
    /// Set once a closing response is fully written: our side is shut down and input
    /// is being discarded until the client closes or this deadline passes.
    linger_until: Option<Instant>,
    lingered_bytes: usize,
    peer_done: bool,
    broken: bool,
    head_started: Option<Instant>,
    last_activity: Instant,
    write_blocked_at: Option<Instant>,
    served: u64,
}

impl Conn {
    pub fn new(stream: TcpStream, peer: SocketAddr, now: Instant) -> Conn {
        Conn {
            stream,
            peer,
            inbuf: Vec::new(),
            scanner: HeadScanner::default(),
            phase: Phase::Head,
            out: VecDeque::new(),
            out_offset: 0,
            out_bytes: 0,
            answering_head: false,
            answering_keep_alive: true,
            close_after_flush: false,
            linger_until: None,
            lingered_bytes: 0,
            peer_done: false,
            broken: false,
            head_started: None,
            last_activity: now,
            write_blocked_at: None,
            served: 0,
        }
    }

    /// Reads what the socket has (bounded), then runs the state machine.
    pub fn on_readable(
        &mut self,
        svc: &mut dyn Service,
        token: u64,
        scratch: &mut [u8],
        ctx: &mut ConnCtx,
    ) {
        if self.linger_until.is_some() {
            self.discard_input(scratch);
            return;
        }
        let mut reads = 0;
        while self.wants_input() && reads < 4 {
            reads += 1;
            match self.stream.read(scratch) {
                Ok(0) => {
                    self.peer_done = true;
                    break;
                }
                Ok(n) => {
                    self.inbuf.extend_from_slice(&scratch[..n]);
                    self.last_activity = ctx.now;
                    self.advance(svc, token, ctx);
                    if n < scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.broken = true;
                    return;
                }
            }
        }
        self.pump(svc, token, ctx);
    }

    pub fn on_writable(&mut self, svc: &mut dyn Service, token: u64, ctx: &mut ConnCtx) {
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
    fn pump(&mut self, svc: &mut dyn Service, token: u64, ctx: &mut ConnCtx) {
        loop {
            let before = (self.inbuf.len(), self.served);
            let queue_was_empty = self.out.is_empty();
            self.advance(svc, token, ctx);
            self.flush(ctx.now, ctx.spare_out);
            // With an empty queue and no progress, what is buffered needs more input.
            let stuck = queue_was_empty && (self.inbuf.len(), self.served) == before;
            if !self.out.is_empty() || self.inbuf.is_empty() || stuck || self.broken {
                return;
            }
        }
    }

    /// Receives the answer to a request that was handed to another thread.
    pub fn deliver(
        &mut self,
        response: Response,
        svc: &mut dyn Service,
        token: u64,
        ctx: &mut ConnCtx,
    ) {
        if matches!(self.phase, Phase::Dispatched) {
            self.phase = Phase::Head;
            self.queue_response(response, ctx);
            self.pump(svc, token, ctx);
        }
    }

    /// Socket interest for the current state; `Close` when the connection is finished.
    pub fn want(&self) -> Want {
        if self.broken {
            return Want::Close;
        }
        if !self.out.is_empty() {
            return Want::Write;
        }
        if self.close_after_flush {
            return if self.linger_until.is_some() {
                Want::Read
            } else {
                Want::Close
            };
        }
        match self.phase {
            Phase::Dispatched => Want::Nothing,
            // The client has sent all it will; nothing more can complete.
            _ if self.peer_done => Want::Close,
            _ => Want::Read,
        }
    }

    /// True when no request is in progress and nothing is queued: safe to close at shutdown.
    pub fn is_idle(&self) -> bool {
        matches!(self.phase, Phase::Head) && self.inbuf.is_empty() && self.out.is_empty()
    }

    /// Applies the phase deadlines; called periodically by the event loop.
    pub fn check_deadlines(&mut self, limits: &ConnLimits, ctx: &mut ConnCtx) {
        let now = ctx.now;
        if let Some(until) = self.linger_until {
            // The response is out; only the linger deadline applies now.
            self.broken = now >= until;
            return;
        }
        if let Some(blocked) = self.write_blocked_at {
            if now.duration_since(blocked) > limits.write_timeout {
                METRICS.write_timeouts.inc();
                self.broken = true;
            }
            return;
        }
        match &self.phase {
            Phase::Dispatched => {}
            Phase::Body(pending) => {
                if now.duration_since(pending.read_at) > limits.body_timeout {
                    self.fail(HttpError::BodyTimeout, ctx);
                }
            }
            Phase::Head => match self.head_started {
                Some(start) if now.duration_since(start) > limits.header_timeout => {
                    self.fail(HttpError::HeadTimeout, ctx);
                }
                Some(_) => {}
                None => {
                    // A fresh connection gets the head deadline to send its first byte;
                    // a kept-alive one the idle timeout. Either way it just closes.
                    let allowed = if self.served == 0 {
                        limits.header_timeout
                    } else {
                        limits.idle_timeout
                    };
                    if now.duration_since(self.last_activity) > allowed {
                        self.broken = true;
                    }
                }
            },
        }
        self.flush(now, ctx.spare_out);
    }

    /// The socket reported an error or a full hang-up: nothing more can be read or
    /// written, so the connection is finished whatever state it was in.
    pub fn hang_up(&mut self) {
        self.broken = true;
    }

    /// Graceful shutdown: an idle connection closes now; a busy one closes after its
    /// response, since `ConnCtx::draining` turns off keep-alive.
    pub fn start_draining(&mut self) {
        if self.is_idle() {
            self.broken = true;
        }
    }

    fn wants_input(&self) -> bool {
        !self.peer_done
            && !self.broken
            && !self.close_after_flush
            && self.out.is_empty()
            && !matches!(self.phase, Phase::Dispatched)
            && self.inbuf.len() <= MAX_HEAD_TOTAL
    }

    /// Runs parsing and dispatch over buffered bytes until it needs more input or output
    /// space, or a request is handed off.
    fn advance(&mut self, svc: &mut dyn Service, token: u64, ctx: &mut ConnCtx) {
        loop {
            if self.close_after_flush || self.broken || self.out_bytes > OUT_HIGH_WATER as u64 {
                break;
            }
            match &mut self.phase {
                Phase::Dispatched => break,
                Phase::Head => {
                    if self.inbuf.is_empty() {
                        break;
                    }
                    if !self.step_head(svc, token, ctx) {
                        break;
                    }
                }
                Phase::Body(_) => {
                    if !self.step_body(svc, token, ctx) {
                        break;
                    }
                }
            }
        }
        if self.inbuf.is_empty() && self.inbuf.capacity() > 4096 {
            // Idle keep-alive connections should not pin large buffers.
            self.inbuf = Vec::new();
        }
        if self.peer_done && self.is_idle() {
            self.broken = true;
        }
    }

    /// Returns true if progress was made and the loop should continue.
    fn step_head(&mut self, svc: &mut dyn Service, token: u64, ctx: &mut ConnCtx) -> bool {
        self.head_started.get_or_insert(ctx.now);
        let status = match parse_head(&self.inbuf, &mut self.scanner, self.peer) {
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
        self.head_started = None;
        let framing = match framing {
            Framing::None => {
                self.dispatch(request, svc, token, ctx);
                return true;
            }
            Framing::Length(n) => BodyFraming::Length(n),
            Framing::Chunked => BodyFraming::Chunked(ChunkedDecoder::default()),
        };
        // Before the size check, so a client without a valid key learns nothing, not even
        // the upload limit.
        if let Some(refusal) = svc.refuse_early(&request) {
            self.refuse(refusal, ctx);
            return false;
        }
        let limit = svc.body_limit(&request);
        if let BodyFraming::Length(n) = framing {
            if n > limit {
                self.fail(HttpError::PayloadTooLarge { limit }, ctx);
                return false;
            }
        }
        if expect_continue && self.inbuf.is_empty() {
            self.push_out(Body::Static(b"HTTP/1.1 100 Continue\r\n\r\n"));
        }
        let pending = PendingBody {
            spool: svc.spool_policy(&request),
            request,
            framing,
            limit,
            read_at: ctx.now,
        };
        self.phase = Phase::Body(Box::new(pending));
        true
    }

    fn step_body(&mut self, svc: &mut dyn Service, token: u64, ctx: &mut ConnCtx) -> bool {
        let Phase::Body(pending) = &mut self.phase else {
            return false;
        };
        let PendingBody {
            request,
            framing,
            limit,
            spool,
            read_at,
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
        }
        self.inbuf.drain(..consumed);
        if !done {
            return false;
        }
        let Phase::Body(pending) = std::mem::replace(&mut self.phase, Phase::Head) else {
            return false;
        };
        self.dispatch(pending.request, svc, token, ctx);
        true
    }

    fn dispatch(
        &mut self,
        mut request: Request,
        svc: &mut dyn Service,
        token: u64,
        ctx: &mut ConnCtx,
    ) {
        if ctx.draining {
            request.keep_alive = false;
        }
        self.answering_head = request.method == Method::Head;
        self.answering_keep_alive = request.keep_alive;
        match svc.call(request, token) {
            Some(response) => self.queue_response(response, ctx),
            None => self.phase = Phase::Dispatched,
        }
    }

    fn queue_response(&mut self, response: Response, ctx: &mut ConnCtx) {
        METRICS.count_status(response.status);
        let keep_alive = self.answering_keep_alive && !response.close && !ctx.draining;
        let body_len = response.body.len();
        let date = ctx.date.get();
        let capacity = response.head_len_bound(date) + body_len.min(COALESCE_BODY) as usize;
        let mut head = std::mem::take(ctx.spare_out);
        head.clear();
        head.reserve(capacity);
        response.write_head(&mut head, date, keep_alive);
        let send_body = !self.answering_head && body_len > 0;
        let in_memory = !matches!(response.body, Body::Stream(_));
        if send_body && in_memory && body_len <= COALESCE_BODY {
            head.extend_from_slice(response.body.as_bytes());
            self.push_out(Body::Owned(head));
        } else {
            self.push_out(Body::Owned(head));
            if send_body {
                self.push_out(response.body);
            }
        }
        self.served += 1;
        self.last_activity = ctx.now;
        if !keep_alive {
            self.close_after_flush = true;
        }
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
        self.head_started = None;
        self.phase = Phase::Head;
        self.answering_head = false;
        self.answering_keep_alive = false;
        self.queue_response(response.closing(), ctx);
    }

    fn push_out(&mut self, body: Body) {
        self.out_bytes += body.len();
        self.out.push_back(body);
    }

    /// Writes queued output until done or the socket is full; a sent buffer small enough
    /// goes back to `spare`.
    fn flush(&mut self, now: Instant, spare: &mut Vec<u8>) {
        let mut chunks_pulled = 0;
        while !self.out.is_empty() && !self.broken {
            if let Some(Body::Stream(_)) = self.out.front() {
                if chunks_pulled == STREAM_CHUNKS_PER_FLUSH {
                    // Stay registered for writing; the loop comes back after the others.
                    self.write_blocked_at = None;
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
                .iter()
                .take_while(|b| !matches!(b, Body::Stream(_)));
            for (i, body) in in_memory.take(8).enumerate() {
                let bytes = body.as_bytes();
                slices[i] = IoSlice::new(if i == 0 {
                    &bytes[self.out_offset..]
                } else {
                    bytes
                });
                count += 1;
            }
            // A lone buffer (the usual coalesced head + small body) takes the cheaper
            // send path; writev costs an iovec import per call.
            let written = if count == 1 {
                self.stream.write(&slices[0])
            } else {
                self.stream.write_vectored(&slices[..count])
            };
            match written {
                Ok(0) => self.broken = true,
                Ok(n) => {
                    self.consume_out(n, spare);
                    self.write_blocked_at = None;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.write_blocked_at.get_or_insert(now);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.broken = true,
            }
        }
        self.write_blocked_at = None;
        if self.close_after_flush && self.out.is_empty() && self.linger_until.is_none() {
            self.start_lingering(now);
        }
    }

    /// Sends our FIN after a closing response and starts discarding input.
    fn start_lingering(&mut self, now: Instant) {
        if self.peer_done || self.broken || self.stream.shutdown(Shutdown::Write).is_err() {
            self.broken = true;
            return;
        }
        self.linger_until = Some(now + LINGER_TIME);
    }

    fn discard_input(&mut self, scratch: &mut [u8]) {
        loop {
            match self.stream.read(scratch) {
                Ok(0) => break,
                Ok(n) => {
                    self.lingered_bytes += n;
                    if self.lingered_bytes > LINGER_BYTES {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        self.broken = true;
    }

    /// Replaces the stream at the front of the queue by its next chunk followed by the
    /// rest of the stream. A failure mid-body can't be reported to the client (the
    /// status is sent), so it ends the connection, which the client sees as truncation.
    fn pull_stream_chunk(&mut self) {
        let Some(Body::Stream(mut stream)) = self.out.pop_front() else {
            return;
        };
        match stream.next_chunk() {
            Ok(Some(chunk)) if !chunk.is_empty() => {
                if stream.remaining() > 0 {
                    self.out.push_front(Body::Stream(stream));
                }
                self.out.push_front(Body::Owned(chunk));
            }
            Ok(None) if stream.remaining() == 0 => {}
            Ok(_) => {
                log::error!("a streamed body ended early or returned an empty chunk; closing the connection");
                self.broken = true;
            }
            Err(e) => {
                log::error!("reading a streamed body failed: {e}; closing the connection");
                self.broken = true;
            }
        }
    }

    fn consume_out(&mut self, n: usize, spare: &mut Vec<u8>) {
        self.out_bytes -= n as u64;
        let mut n = n;
        while n > 0 {
            let Some(front) = self.out.front() else { break };
            let left = front.as_bytes().len() - self.out_offset;
            if n >= left {
                n -= left;
                if let Some(Body::Owned(sent)) = self.out.pop_front() {
                    keep_spare(spare, sent);
                }
                self.out_offset = 0;
            } else {
                self.out_offset += n;
                n = 0;
            }
        }
    }
}

/// Keeps `sent` as the spare output buffer if it is bounded and larger than the current one.
fn keep_spare(spare: &mut Vec<u8>, mut sent: Vec<u8>) {
    if sent.capacity() <= SPARE_OUT_MAX && sent.capacity() > spare.capacity() {
        sent.clear();
        *spare = sent;
    }
}

/// Per-event context from the event loop.
pub struct ConnCtx<'a> {
    pub now: Instant,
    pub date: &'a mut DateCache,
    pub draining: bool,
    /// An output buffer of the event loop, reused for the next response: a keep-alive
    /// request then allocates (and frees) no output buffer. One per loop, not per
    /// connection, so idle connections hold none (at most `SPARE_OUT_MAX` bytes).
    pub spare_out: &'a mut Vec<u8>,
}
