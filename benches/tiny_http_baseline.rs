//! tiny_http baseline for `bench/bench.sh` (DESIGN D1): serves one fixed body on every request so the
//! benchmark can compare fazt's landing page against the simplest thread-pool Rust server.
//!
//! Usage: `tiny_http_baseline PORT BODY_FILE [THREADS]`
//!   PORT 0 picks a free port. Once ready it prints `listening on http://127.0.0.1:PORT` and answers
//!   every request with `200`, `Content-Type: text/html; charset=utf-8` and the bytes of BODY_FILE.
//!   THREADS (default 4) threads each loop on `Server::recv()` — tiny_http's idiomatic worker pattern.
//!
//! Run with no arguments (as `cargo test --all-targets` / `cargo bench` do with `harness = false`) it
//! prints the usage and exits 0 at once.
//!
//! TCP_NODELAY: tiny_http 0.12.0 never calls `set_nodelay` (no match in its sources) and gives no hook
//! on accepted connections. Its response writer is a `BufWriter` of 1024 bytes, so any response above
//! 1 KiB goes out in several `write`s, which with Nagle on meets delayed ACKs and stalls keep-alive
//! clients (~40 ms). On Linux an accepted socket inherits TCP_NODELAY from its listening socket (the
//! kernel clones the listener's `tcp_sock`), so we set it on the listener before handing the listener to
//! `Server::from_listener`. `main` verifies the inheritance at start-up on a throw-away listener and
//! prints the result, so a kernel where it does not hold is visible in the benchmark log.

use std::io::Cursor;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread;

const USAGE: &str = "usage: tiny_http_baseline PORT BODY_FILE [THREADS]";
const DEFAULT_THREADS: usize = 4;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // No arguments, or only libtest-style flags (`--bench`, `--nocapture`...): we are being run by
    // cargo as a bench/test target, not by bench/bench.sh.
    if args.is_empty() || args[0].starts_with('-') {
        println!("{USAGE}");
        return;
    }
    if let Err(e) = run(&args) {
        eprintln!("tiny_http_baseline: {e}");
        eprintln!("{USAGE}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let port: u16 = args[0]
        .parse()
        .map_err(|_| format!("bad PORT {:?}", args[0]))?;
    let body_path = args.get(1).ok_or("missing BODY_FILE")?;
    let threads: usize = match args.get(2) {
        Some(t) => t.parse().map_err(|_| format!("bad THREADS {t:?}"))?,
        None => DEFAULT_THREADS,
    }
    .max(1);

    let body = std::fs::read(body_path).map_err(|e| format!("reading {body_path}: {e}"))?;
    // Leaked once so every response is a zero-copy `Cursor` over the same bytes.
    let body: &'static [u8] = Box::leak(body.into_boxed_slice());

    report_nodelay_inheritance();

    let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| format!("bind: {e}"))?;
    set_listener_nodelay(&listener).map_err(|e| format!("TCP_NODELAY on listener: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    let server =
        tiny_http::Server::from_listener(listener, None).map_err(|e| format!("tiny_http: {e}"))?;
    let server = Arc::new(server);

    let content_type =
        tiny_http::Header::from_bytes(&b"Content-Type"[..], &b"text/html; charset=utf-8"[..])
            .map_err(|_| "bad header")?;

    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let server = Arc::clone(&server);
            let content_type = content_type.clone();
            thread::spawn(move || loop {
                let request = match server.recv() {
                    Ok(rq) => rq,
                    Err(e) => {
                        eprintln!("tiny_http_baseline: recv: {e}");
                        continue;
                    }
                };
                let response = tiny_http::Response::new(
                    tiny_http::StatusCode(200),
                    vec![content_type.clone()],
                    Cursor::new(body),
                    Some(body.len()),
                    None,
                );
                // A client that went away is not our problem in a benchmark.
                let _ = request.respond(response);
            })
        })
        .collect();

    println!(
        "listening on http://{addr} (tiny_http 0.12, {threads} recv threads, body {} bytes)",
        body.len()
    );
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

fn set_listener_nodelay(listener: &TcpListener) -> std::io::Result<()> {
    let one: libc::c_int = 1;
    // SAFETY: valid fd owned by `listener`; option value points to a live c_int of the given size.
    let rc = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Checks on a throw-away loopback listener that an accepted socket carries TCP_NODELAY when the
/// listener has it, and says so on stderr (stdout is kept for the `listening on` line).
fn report_nodelay_inheritance() {
    let check = || -> std::io::Result<bool> {
        let probe = TcpListener::bind("127.0.0.1:0")?;
        set_listener_nodelay(&probe)?;
        let _client = TcpStream::connect(probe.local_addr()?)?;
        let (accepted, _) = probe.accept()?;
        accepted.nodelay()
    };
    match check() {
        Ok(true) => eprintln!("tiny_http_baseline: TCP_NODELAY inherited by accepted sockets: yes"),
        Ok(false) => eprintln!(
            "tiny_http_baseline: WARNING TCP_NODELAY NOT inherited by accepted sockets; \
             responses over 1 KiB may stall on Nagle/delayed ACK"
        ),
        Err(e) => eprintln!("tiny_http_baseline: could not check TCP_NODELAY inheritance: {e}"),
    }
}
