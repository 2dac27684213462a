//! One event loop: an epoll instance, an optional listener, the connections it accepted,
//! and a mailbox (channel + eventfd) through which other threads hand it work or answers.
//! Core threads and the admin thread both run this loop with different services.
//!
//! The loop sleeps until a socket or the mailbox is ready or the earliest connection
//! deadline is due (kept in [`Timers`], so idle connections cost nothing in between),
//! or the service's periodic tick.

use super::timers::Timers;
use crate::http::cap::{ConnCap, Place, Refused};
use crate::http::conn::{Conn, ConnCtx, ConnLimits, Service, Want};
use crate::http::response::DateCache;
use crate::http::{Request, Response};
use crate::platform::metrics::{Handshake, METRICS};
use crate::platform::sys::{self, Epoll, ErrnoClass, Event, EventFd, Interest};
use crossbeam_channel::{Receiver, Sender};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LISTENER: u64 = u64::MAX;
const WAKER: u64 = u64::MAX - 1;
const TLS_LISTENER: u64 = u64::MAX - 2;
/// How often a service's periodic work runs unless it says otherwise.
const TICK_EVERY: Duration = Duration::from_millis(200);
/// While draining, idle connections are looked for this often: a connection becomes idle
/// (or lingers after its last response) without any event of its own telling the loop.
const DRAIN_SWEEP_EVERY: Duration = Duration::from_millis(200);
/// Connection deadlines handled per wake-up; any left are handled on the next one (the
/// loop then does not sleep), so a burst of expiries can't hold the loop.
const EXPIRIES_PER_WAKE: usize = 4096;
/// After an accept() failure such as EMFILE, the listener rests this long so the loop
/// doesn't spin on a socket that stays readable.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Accepts per readiness event. One: the listener is shared with EPOLLEXCLUSIVE, so while
/// this loop serves the connection it just took, the kernel wakes another idle loop for
/// the next one. Accepting in batches let one thread take a whole burst (measured: wrk's
/// 64 connections all landing on one core thread, the other idle).
const ACCEPT_BATCH: usize = 1;
const SCRATCH_BYTES: usize = 64 * 1024;

/// Messages between threads.
pub enum Mail {
    /// A request for the admin thread, with where to send the answer.
    AdminJob(AdminJob),
    /// The answer to a request this loop handed off.
    Reply { token: u64, response: Response },
    /// A frame for every WebSocket client of a hub on this loop (issue #15).
    Broadcast { hub: u64, frame: Arc<[u8]> },
    /// Close every WebSocket client of a hub on this loop with this code.
    CloseHub {
        hub: u64,
        code: u16,
        reason: &'static str,
    },
}

pub struct AdminJob {
    pub request: Request,
    /// The core thread's plan found it a deploy (the admin thread does not route again).
    pub deploy: bool,
    pub token: u64,
    pub reply_to: Mailbox,
    /// When the request was complete, for the admin latency histogram.
    pub received: Instant,
}

/// Where to send mail for one loop: a channel plus the eventfd that wakes the loop.
#[derive(Clone)]
pub struct Mailbox {
    tx: Sender<Mail>,
    waker: Arc<EventFd>,
}

impl Mailbox {
    pub fn new() -> io::Result<(Mailbox, Receiver<Mail>)> {
        // Unbounded: each connection has at most one request in flight, so the connection
        // cap bounds the queue, and admin work must never be refused for lack of room.
        let (tx, rx) = crossbeam_channel::unbounded();
        Ok((
            Mailbox {
                tx,
                waker: Arc::new(EventFd::new()?),
            },
            rx,
        ))
    }

    /// Delivers mail; false if the receiving loop has exited.
    pub fn send(&self, mail: Mail) -> bool {
        let sent = self.tx.send(mail).is_ok();
        self.waker.notify();
        sent
    }

    pub fn wake(&self) {
        self.waker.notify();
    }
}

/// A service that also handles mail addressed to its loop.
pub trait LoopService: Service {
    /// Handles one message; returns an answer to deliver to one of this loop's connections.
    fn on_mail(&mut self, mail: Mail) -> Option<(u64, Response)>;

    /// Periodic work, run about every [`LoopService::tick_interval`].
    fn on_tick(&mut self) {}

    /// How often `on_tick` runs; `None` when the service has no periodic work, so the
    /// loop sleeps until something happens.
    fn tick_interval(&self) -> Option<Duration> {
        Some(TICK_EVERY)
    }
}

struct Slot<P> {
    generation: u32,
    conn: Option<Conn<P>>,
    registered: Want,
    /// The hub of a WebSocket connection, once indexed in [`EventLoop::hubs`].
    hub: Option<u64>,
    /// Counted in [`EventLoop::handshakes`] (a TLS handshake in progress).
    handshaking: bool,
    /// The connection's place in the cap, given back when it closes.
    place: Place,
}

/// A listener whose connections speak TLS (issue #12), shared by the core threads like the
/// plain one.
pub struct TlsListener {
    pub listener: TcpListener,
    pub config: Arc<rustls::ServerConfig>,
    /// Handshakes in progress this loop allows; past it new connections close at once.
    pub max_handshakes: usize,
    /// The `Strict-Transport-Security` value of responses over TLS, if sent.
    pub hsts: Option<String>,
}

/// An event loop whose connections carry requests planned as `P` (the plan type of the
/// service that runs it).
pub struct EventLoop<P> {
    epoll: Epoll,
    listener: Option<TcpListener>,
    tls: Option<TlsListener>,
    /// TLS handshakes in progress on this loop's connections.
    handshakes: usize,
    listener_paused_until: Option<Instant>,
    last_accept_warning: Option<Instant>,
    cap: Arc<ConnCap>,
    mailbox: Mailbox,
    inbox: Receiver<Mail>,
    stop: Arc<AtomicBool>,
    limits: ConnLimits,
    slots: Vec<Slot<P>>,
    free: Vec<u32>,
    /// Connection deadlines, keyed by slot index.
    timers: Timers,
    live: usize,
    date: DateCache,
    /// See [`ConnCtx::spare_out`].
    spare_out: Vec<u8>,
    draining: bool,
    /// The slots of this loop's WebSocket connections, by hub.
    hubs: foldhash::HashMap<u64, Vec<u32>>,
    /// A hub's slots, copied for one fan-out (a connection may close during it).
    fan_out: Vec<u32>,
}

impl<P> EventLoop<P> {
    pub fn new(
        listener: Option<TcpListener>,
        cap: Arc<ConnCap>,
        mailbox: Mailbox,
        inbox: Receiver<Mail>,
        stop: Arc<AtomicBool>,
        limits: ConnLimits,
    ) -> io::Result<EventLoop<P>> {
        let epoll = Epoll::new(256)?;
        epoll.add(mailbox.waker.raw(), Interest::READ, WAKER)?;
        if let Some(l) = &listener {
            epoll.add_exclusive(l.as_raw_fd(), LISTENER)?;
        }
        Ok(EventLoop {
            epoll,
            listener,
            tls: None,
            handshakes: 0,
            listener_paused_until: None,
            last_accept_warning: None,
            cap,
            mailbox,
            inbox,
            stop,
            limits,
            slots: Vec::new(),
            free: Vec::new(),
            timers: Timers::default(),
            live: 0,
            date: DateCache::default(),
            spare_out: Vec::new(),
            draining: false,
            hubs: Default::default(),
            fan_out: Vec::new(),
        })
    }

    /// Also accepts TLS connections on `tls`.
    pub fn with_tls(mut self, tls: TlsListener) -> io::Result<EventLoop<P>> {
        self.epoll
            .add_exclusive(tls.listener.as_raw_fd(), TLS_LISTENER)?;
        self.tls = Some(tls);
        Ok(self)
    }

    /// Runs until asked to stop and every connection has finished.
    pub fn run<S: LoopService<Plan = P>>(&mut self, service: &mut S) -> io::Result<()> {
        let mut events = Vec::with_capacity(256);
        let mut scratch = vec![0u8; SCRATCH_BYTES];
        let mut clock = LoopClock::new(service.tick_interval(), Instant::now());
        loop {
            let wake = earliest(
                earliest(self.timers.next_due(), self.listener_paused_until),
                clock.next_wake(),
            );
            let timeout =
                wake.map(|at| ceil_to_millis(at.saturating_duration_since(Instant::now())));
            self.epoll.wait(timeout, &mut events)?;
            let now = Instant::now();
            for event in &events {
                match event.token {
                    LISTENER => self.accept(now, false),
                    TLS_LISTENER => self.accept(now, true),
                    WAKER => self.read_mail(service, now),
                    token => self.on_conn_event(*event, token, service, &mut scratch, now),
                }
            }
            self.timed_work(service, &mut clock, now);
            if self.draining && self.live == 0 {
                return Ok(());
            }
        }
    }

    /// What is due at `now` besides socket events: the start of draining, the service's
    /// tick, expired connection deadlines, a paused listener, the drain's look for idle
    /// connections.
    fn timed_work<S: LoopService<Plan = P>>(
        &mut self,
        service: &mut S,
        clock: &mut LoopClock,
        now: Instant,
    ) {
        if !self.draining && self.stop.load(Ordering::Relaxed) {
            self.begin_draining();
            clock.next_drain_sweep = Some(now + DRAIN_SWEEP_EVERY);
        }
        if clock.tick_due(now) {
            service.on_tick();
        }
        if self.timers.next_due().is_some_and(|due| due <= now) {
            self.expire(now);
        }
        if self.listener_paused_until.is_some() {
            self.resume_listener(now);
        }
        if clock.next_drain_sweep.is_some_and(|at| now >= at) {
            self.drain_idle();
            clock.next_drain_sweep = Some(now + DRAIN_SWEEP_EVERY);
        }
    }

    /// Runs `f` on the connection in slot `index`, in place (a connection is a few
    /// hundred bytes, moved twice per event otherwise), then updates its registration.
    fn with_conn(
        &mut self,
        index: usize,
        now: Instant,
        f: impl FnOnce(&mut Conn<P>, &mut ConnCtx),
    ) {
        let Some(conn) = self.slots[index].conn.as_mut() else {
            return;
        };
        let mut ctx = ConnCtx {
            now,
            date: &mut self.date,
            draining: self.draining,
            hsts: self.tls.as_ref().and_then(|t| t.hsts.as_deref()),
            spare_out: &mut self.spare_out,
        };
        f(conn, &mut ctx);
        self.update(index);
    }

    fn accept(&mut self, now: Instant, tls: bool) {
        if self.draining {
            return;
        }
        for _ in 0..ACCEPT_BATCH {
            let listener = match tls {
                false => self.listener.as_ref(),
                true => self.tls.as_ref().map(|t| &t.listener),
            };
            let Some(listener) = listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    METRICS.connections_accepted.inc();
                    if tls && self.over_handshake_cap() {
                        // A handshake costs far more than this close: under a flood the
                        // handshakes already running finish instead of all timing out.
                        METRICS.count_handshake(Handshake::OverCap);
                        let _ = sys::reset_on_close(&stream);
                        continue;
                    }
                    let place = match self.cap.try_acquire(peer.ip()) {
                        Ok(place) => place,
                        // A TLS client could not read a plain 503: it is only closed.
                        Err(why) if tls => {
                            count_refusal(why);
                            let _ = sys::reset_on_close(&stream);
                            continue;
                        }
                        Err(why) => {
                            refuse(stream, why);
                            continue;
                        }
                    };
                    if let Err(e) = self.register(stream, peer, place, now, tls) {
                        self.cap.release(place);
                        log::warn!("could not register a connection from {peer}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    METRICS.accept_errors.inc();
                    if ErrnoClass::of(&e).is_resource_exhaustion() {
                        // Once a second at most: the condition can last as long as a flood.
                        if self
                            .last_accept_warning
                            .is_none_or(|t| now - t >= Duration::from_secs(1))
                        {
                            self.last_accept_warning = Some(now);
                            log::warn!(
                                "accept failed: {e}; pausing this listener for {ACCEPT_BACKOFF:?} \
                                 (counted in fazt_accept_errors_total)"
                            );
                        }
                        self.pause_listener(now);
                        return;
                    }
                    // ECONNABORTED and similar concern one client only.
                    log::debug!("accept failed: {e}");
                }
            }
        }
    }

    fn over_handshake_cap(&self) -> bool {
        self.tls
            .as_ref()
            .is_some_and(|t| self.handshakes >= t.max_handshakes)
    }

    fn register(
        &mut self,
        stream: TcpStream,
        peer: std::net::SocketAddr,
        place: Place,
        now: Instant,
        tls: bool,
    ) -> io::Result<()> {
        stream.set_nonblocking(true)?;
        stream.set_nodelay(true)?;
        let conn = match self.tls.as_ref().filter(|_| tls) {
            None => Conn::new(stream, peer, now),
            Some(t) => Conn::new_tls(stream, peer, now, &t.config).map_err(io::Error::other)?,
        };
        let index = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot {
                    generation: 0,
                    conn: None,
                    registered: Want::Nothing,
                    hub: None,
                    handshaking: false,
                    place,
                });
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[index];
        slot.generation = slot.generation.wrapping_add(1);
        let token = ((slot.generation as u64) << 32) | index as u64;
        if let Err(e) = self
            .epoll
            .add(conn.stream.as_raw_fd(), Interest::READ, token)
        {
            self.free.push(index as u32);
            return Err(e);
        }
        self.timers.set(index as u32, conn.deadline(&self.limits));
        slot.handshaking = conn.is_handshaking();
        self.handshakes += usize::from(slot.handshaking);
        slot.conn = Some(conn);
        slot.registered = Want::Read;
        slot.place = place;
        self.live += 1;
        METRICS.connections_open.inc();
        Ok(())
    }

    /// The listeners and their tokens.
    fn listeners(&self) -> impl Iterator<Item = (&TcpListener, u64)> {
        let plain = self.listener.iter().map(|l| (l, LISTENER));
        plain.chain(self.tls.iter().map(|t| (&t.listener, TLS_LISTENER)))
    }

    fn pause_listener(&mut self, now: Instant) {
        for (l, _) in self.listeners() {
            let _ = self.epoll.delete(l.as_raw_fd());
        }
        self.listener_paused_until = Some(now + ACCEPT_BACKOFF);
    }

    fn resume_listener(&mut self, now: Instant) {
        if self.listener_paused_until.is_some_and(|t| now >= t) {
            self.listener_paused_until = None;
            if self.draining {
                return;
            }
            for (l, token) in self.listeners() {
                if let Err(e) = self.epoll.add_exclusive(l.as_raw_fd(), token) {
                    log::error!("could not resume accepting: {e}");
                }
            }
        }
    }

    fn slot_of(&mut self, token: u64) -> Option<usize> {
        let index = (token & 0xffff_ffff) as usize;
        let slot = self.slots.get(index)?;
        (slot.generation as u64 == token >> 32 && slot.conn.is_some()).then_some(index)
    }

    fn on_conn_event<S: LoopService<Plan = P>>(
        &mut self,
        event: Event,
        token: u64,
        service: &mut S,
        scratch: &mut [u8],
        now: Instant,
    ) {
        let Some(index) = self.slot_of(token) else {
            return;
        };
        self.with_conn(index, now, |c, ctx| {
            if event.writable {
                c.on_writable(service, token, ctx);
            }
            if event.readable {
                c.on_readable(service, token, scratch, ctx);
            }
            if event.closed {
                c.hang_up();
            }
        });
    }

    fn read_mail<S: LoopService<Plan = P>>(&mut self, service: &mut S, now: Instant) {
        self.mailbox.waker.drain();
        while let Ok(mail) = self.inbox.try_recv() {
            let mail = match mail {
                Mail::Broadcast { hub, frame } => {
                    self.each_in_hub(hub, now, |c, ctx| c.ws_send(&frame, ctx));
                    continue;
                }
                Mail::CloseHub { hub, code, reason } => {
                    self.each_in_hub(hub, now, |c, ctx| c.ws_close(code, reason, ctx));
                    continue;
                }
                mail => mail,
            };
            let Some((token, response)) = service.on_mail(mail) else {
                continue;
            };
            // The connection may have gone away while its request was being handled.
            let Some(index) = self.slot_of(token) else {
                continue;
            };
            self.with_conn(index, now, |c, ctx| {
                c.deliver(response, service, token, ctx)
            });
        }
    }

    /// Runs `f` on each of this loop's WebSocket connections in `hub`.
    fn each_in_hub(&mut self, hub: u64, now: Instant, f: impl Fn(&mut Conn<P>, &mut ConnCtx)) {
        let Some(slots) = self.hubs.get(&hub) else {
            return;
        };
        let mut fan_out = std::mem::take(&mut self.fan_out);
        fan_out.clear();
        fan_out.extend_from_slice(slots);
        for &index in &fan_out {
            self.with_conn(index as usize, now, &f);
        }
        self.fan_out = fan_out;
    }

    /// Re-registers interest if it changed and re-arms the deadline, or closes the
    /// connection when it is done.
    fn update(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        let Some(conn) = &slot.conn else { return };
        if slot.handshaking && !conn.is_handshaking() {
            slot.handshaking = false;
            self.handshakes -= 1;
        }
        if slot.hub.is_none() {
            if let Some(hub) = conn.ws_hub() {
                slot.hub = Some(hub);
                self.hubs.entry(hub).or_default().push(index as u32);
            }
        }
        let want = conn.want();
        if want != Want::Close {
            // Usually a later deadline, which costs the timers a comparison.
            self.timers.set(index as u32, conn.deadline(&self.limits));
        }
        if want == slot.registered {
            return;
        }
        let fd = conn.stream.as_raw_fd();
        let token = ((slot.generation as u64) << 32) | index as u64;
        let result = match want {
            Want::Close => {
                self.close(index);
                return;
            }
            Want::Read => self.epoll.modify(fd, Interest::READ, token),
            Want::Write => self.epoll.modify(fd, Interest::WRITE, token),
            Want::ReadWrite => self.epoll.modify(
                fd,
                Interest {
                    read: true,
                    write: true,
                },
                token,
            ),
            Want::Nothing => self.epoll.modify(
                fd,
                Interest {
                    read: false,
                    write: false,
                },
                token,
            ),
        };
        match result {
            Ok(()) => self.slots[index].registered = want,
            Err(e) => {
                log::warn!("epoll_ctl failed, closing the connection: {e}");
                self.close(index);
            }
        }
    }

    fn close(&mut self, index: usize) {
        let slot = &mut self.slots[index];
        if let (true, Some(conn)) = (slot.handshaking, &slot.conn) {
            METRICS.count_handshake(conn.handshake_failure());
            slot.handshaking = false;
            self.handshakes -= 1;
        }
        if let Some(hub) = self.slots[index].hub.take() {
            self.leave_hub(hub, index as u32);
        }
        if self.slots[index].conn.take().is_some() {
            // Dropping the stream closes the fd, which also removes it from the epoll set.
            self.timers.set(index as u32, None);
            self.free.push(index as u32);
            self.live -= 1;
            self.cap.release(self.slots[index].place);
            METRICS.connections_open.dec();
        }
    }

    /// Applies the deadlines that are due: only the connections whose deadline passed
    /// are touched.
    fn expire(&mut self, now: Instant) {
        let limits = self.limits;
        for _ in 0..EXPIRIES_PER_WAKE {
            let Some(key) = self.timers.pop_expired(now) else {
                return;
            };
            let index = key as usize;
            self.with_conn(index, now, |c, ctx| c.on_deadline(&limits, ctx));
        }
    }

    fn leave_hub(&mut self, hub: u64, index: u32) {
        if let Some(slots) = self.hubs.get_mut(&hub) {
            if let Some(at) = slots.iter().position(|&i| i == index) {
                slots.swap_remove(at);
            }
            if slots.is_empty() {
                self.hubs.remove(&hub);
            }
        }
    }

    /// Stops accepting and lets in-flight requests finish; idle connections close now.
    fn begin_draining(&mut self) {
        self.draining = true;
        if let Some(l) = self.listener.take() {
            let _ = self.epoll.delete(l.as_raw_fd());
        }
        // The TLS listener stays (its HSTS value serves the last responses), unwatched:
        // `accept` and `resume_listener` check `draining`.
        if let Some(t) = &self.tls {
            let _ = self.epoll.delete(t.listener.as_raw_fd());
        }
        self.drain_idle();
    }

    /// Closes the connections with nothing in progress (see [`Conn::start_draining`]).
    /// Only while draining, when few connections are left.
    fn drain_idle(&mut self) {
        let now = Instant::now();
        for index in 0..self.slots.len() {
            self.with_conn(index, now, |c, ctx| c.start_draining(ctx));
        }
    }
}

/// The loop's own periodic wake-ups: the service's tick and, while draining, the look for
/// idle connections.
struct LoopClock {
    tick_every: Option<Duration>,
    next_tick: Option<Instant>,
    next_drain_sweep: Option<Instant>,
}

impl LoopClock {
    fn new(tick_every: Option<Duration>, now: Instant) -> LoopClock {
        LoopClock {
            tick_every,
            next_tick: tick_every.map(|every| now + every),
            next_drain_sweep: None,
        }
    }

    fn next_wake(&self) -> Option<Instant> {
        earliest(self.next_tick, self.next_drain_sweep)
    }

    /// True when the tick is due; the next one is then scheduled from `now`.
    fn tick_due(&mut self, now: Instant) -> bool {
        if self.next_tick.is_none_or(|at| now < at) {
            return false;
        }
        self.next_tick = self.tick_every.map(|every| now + every);
        true
    }
}

/// Rounds up to whole milliseconds (epoll's unit), so the loop never wakes just before a
/// deadline and spins until it passes.
fn ceil_to_millis(d: Duration) -> Duration {
    let millis = d.subsec_nanos().div_ceil(1_000_000);
    Duration::from_secs(d.as_secs()).saturating_add(Duration::from_millis(millis.into()))
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// Counts a connection refused at the cap or past its client's share.
fn count_refusal(why: Refused) {
    METRICS.shed_requests.inc();
    match why {
        Refused::Full => METRICS.connections_rejected.inc(),
        Refused::OverShare => METRICS.connections_over_share.inc(),
    }
}

/// Answers a connection past the cap, or past its client's share, with 503 and closes
/// it, without registering it. A short answer rather than a bare close: it costs one
/// non-blocking read and write, and a browser behind a busy NAT learns why.
fn refuse(mut stream: TcpStream, why: Refused) {
    METRICS.count_status(503);
    const FULL: &str =
        "{\"error\":{\"code\":\"unavailable\",\"message\":\"server is at its connection limit, retry shortly\"}}\n";
    const OVER_SHARE: &str =
        "{\"error\":{\"code\":\"unavailable\",\"message\":\"too many connections from your address, retry when one closes\"}}\n";
    count_refusal(why);
    let body = match why {
        Refused::Full => FULL,
        Refused::OverShare => OVER_SHARE,
    };
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.set_nonblocking(true);
    // Read what already arrived so closing doesn't turn into a reset that could make the
    // client lose the 503 before reading it.
    let mut sink = [0u8; 4096];
    let _ = stream.read(&mut sink);
    let _ = stream.write(response.as_bytes());
    let _ = stream.shutdown(Shutdown::Write);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_round_up_to_whole_milliseconds() {
        let ms = Duration::from_millis;
        assert_eq!(ceil_to_millis(Duration::ZERO), Duration::ZERO);
        assert_eq!(ceil_to_millis(Duration::from_nanos(1)), ms(1));
        assert_eq!(ceil_to_millis(Duration::from_micros(2_500)), ms(3));
        assert_eq!(ceil_to_millis(ms(1_999)), ms(1_999));
        assert_eq!(ceil_to_millis(Duration::MAX), Duration::MAX);
    }

    #[test]
    fn the_tick_is_due_once_per_interval_and_none_without_one() {
        let t0 = Instant::now();
        let every = Duration::from_millis(200);
        let mut clock = LoopClock::new(Some(every), t0);
        assert_eq!(clock.next_wake(), Some(t0 + every));
        assert!(!clock.tick_due(t0 + Duration::from_millis(199)));
        assert!(clock.tick_due(t0 + Duration::from_millis(250)));
        assert!(!clock.tick_due(t0 + Duration::from_millis(300)));
        assert_eq!(clock.next_wake(), Some(t0 + Duration::from_millis(450)));
        let mut idle = LoopClock::new(None, t0);
        assert_eq!(idle.next_wake(), None, "a loop without a tick sleeps");
        assert!(!idle.tick_due(t0 + Duration::from_secs(3600)));
    }

    #[test]
    fn the_earliest_of_optional_instants() {
        let t = Instant::now();
        let later = t + Duration::from_secs(1);
        assert_eq!(earliest(Some(later), Some(t)), Some(t));
        assert_eq!(earliest(None, Some(t)), Some(t));
        assert_eq!(earliest(Some(t), None), Some(t));
        assert_eq!(earliest(None, None), None);
    }
}
