//! Entry points for the `cargo fuzz` targets in `fuzz/` (issue #16). The parsers they reach
//! are `pub(crate)`; each function here feeds one of them arbitrary bytes and panics when an
//! invariant breaks, so libFuzzer reports it as a crash. Nothing else calls this module.
//!
//! Most targets take the first input byte as the seed of the chunk sizes in which the rest
//! arrives: a parser fed in pieces must reach the result it reaches fed the whole at once.

use std::io::{Cursor, Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::analytics::event::{Event, EventQueue, SaltBook};
use crate::analytics::ingest::{Endpoint, Ingest, TrackDomains};
use crate::deploy::archive::{self, ArchiveLimits};
use crate::hosting::path;
use crate::http::multipart::{self, FormLimits};
use crate::http::parse::{parse_head, ChunkedDecoder, Framing, HeadScanner, HeadStatus};
use crate::http::proxies::TrustedProxies;
use crate::http::ws::{Reader, Received, WsError};
use crate::http::{HttpError, Request};

/// Splits the first byte off as the chunking seed; `None` for an empty input.
fn seed_and_rest(data: &[u8]) -> Option<(u8, &[u8])> {
    data.split_first().map(|(&seed, rest)| (seed, rest))
}

/// Ends of the chunks `len` bytes arrive in: increasing, the last is `len`. Small chunks are
/// common (1 to 16 bytes) so every boundary gets split; a few are larger.
fn chunk_ends(seed: u8, len: usize) -> Vec<usize> {
    let mut state = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut ends = Vec::new();
    let mut at = 0;
    while at < len {
        // xorshift64: a fixed sequence per seed, so a crash reproduces from its input.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let step = if state % 8 == 0 {
            (state >> 8) as usize % 512
        } else {
            (state >> 8) as usize % 16
        };
        at = (at + step + 1).min(len);
        ends.push(at);
    }
    ends
}

fn peer() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40000))
}

/// What a request head parsed to, comparable between two ways of feeding it.
#[derive(Debug, PartialEq, Eq)]
enum HeadOutcome {
    Partial,
    Complete {
        request: String,
        framing: Framing,
        head_len: usize,
        expect_continue: bool,
    },
    Error(u16),
}

/// The head parsed as the connection does it: the buffer grows to each of `ends` in turn,
/// one scanner sees every attempt, and the first complete head or error ends it.
fn feed_head(input: &[u8], ends: &[usize]) -> HeadOutcome {
    let mut scanner = HeadScanner::default();
    for &end in ends {
        match parse_head(&input[..end], &mut scanner, peer(), false) {
            Ok(HeadStatus::Partial) => {}
            Ok(HeadStatus::Complete {
                request,
                framing,
                head_len,
                expect_continue,
            }) => {
                assert!(head_len <= end, "head_len {head_len} past the buffer {end}");
                return HeadOutcome::Complete {
                    request: describe(&request),
                    framing,
                    head_len,
                    expect_continue,
                };
            }
            Err(e) => return HeadOutcome::Error(e.status()),
        }
    }
    HeadOutcome::Partial
}

/// Every parsed field of a request, as text.
fn describe(request: &Request) -> String {
    let headers: Vec<_> = request
        .headers()
        .map(|(n, v)| (String::from_utf8_lossy(n), String::from_utf8_lossy(v)))
        .collect();
    format!(
        "{:?} {:?} {} {:?} {:?} {:?} keep_alive={} {:?}",
        request.method,
        request.method_text(),
        request.minor_version,
        request.target(),
        request.path(),
        request.host,
        request.keep_alive,
        headers
    )
}

/// `http_head`: the request head parser fed in random pieces agrees with the parser fed the
/// whole input, and never panics.
pub fn http_head(data: &[u8]) {
    let Some((seed, input)) = seed_and_rest(data) else {
        return;
    };
    let whole = feed_head(input, &[input.len()]);
    let split = feed_head(input, &chunk_ends(seed, input.len()));
    if whole == split {
        return;
    }
    // A line over its limit is refused (414/431) as soon as the scanner sees it grow, which
    // fed in pieces can come before the malformed byte a whole parse reports as 400: both
    // refuse the head, only the reason differs.
    let limit_first = matches!(split, HeadOutcome::Error(414 | 431));
    assert!(
        limit_first && matches!(whole, HeadOutcome::Error(400)),
        "fed whole: {whole:?}\nfed in pieces: {split:?}"
    );
}

/// One request of a pipelined stream: its head and its decoded body.
#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    head: HeadOutcome,
    body: Vec<u8>,
}

/// Largest body the stream parser takes, as a route's body limit would.
const STREAM_BODY_LIMIT: u64 = 64 * 1024;
/// Requests per input: each costs a head parse; more adds nothing.
const STREAM_MAX_REQUESTS: usize = 32;

/// A connection's read side without the socket: heads and bodies (by length or chunked)
/// of pipelined requests, the input arriving up to each of `ends` in turn.
struct Stream {
    exchanges: Vec<Exchange>,
    buf: Vec<u8>,
    scanner: HeadScanner,
    body: Option<(BodyLeft, Vec<u8>)>,
    pending: Option<HeadOutcome>,
    failed: Option<u16>,
}

enum BodyLeft {
    Length(u64),
    Chunked(ChunkedDecoder),
}

impl Stream {
    fn run(input: &[u8], ends: &[usize]) -> (Vec<Exchange>, Option<u16>) {
        let mut stream = Stream {
            exchanges: Vec::new(),
            buf: Vec::new(),
            scanner: HeadScanner::default(),
            body: None,
            pending: None,
            failed: None,
        };
        let mut from = 0;
        for &end in ends {
            stream.buf.extend_from_slice(&input[from..end]);
            from = end;
            stream.advance();
            if stream.failed.is_some() || stream.exchanges.len() >= STREAM_MAX_REQUESTS {
                break;
            }
        }
        (stream.exchanges, stream.failed)
    }

    /// Takes as many heads and bodies as the buffer holds.
    fn advance(&mut self) {
        while self.failed.is_none() && self.exchanges.len() < STREAM_MAX_REQUESTS {
            let progressed = if self.body.is_some() {
                self.step_body()
            } else {
                self.step_head()
            };
            if !progressed {
                return;
            }
        }
    }

    fn step_head(&mut self) -> bool {
        if self.buf.is_empty() {
            return false;
        }
        match parse_head(&self.buf, &mut self.scanner, peer(), false) {
            Ok(HeadStatus::Partial) => false,
            Err(e) => {
                self.failed = Some(e.status());
                false
            }
            Ok(HeadStatus::Complete {
                request,
                framing,
                head_len,
                expect_continue,
            }) => {
                self.buf.drain(..head_len);
                self.scanner.reset();
                let left = match framing {
                    Framing::None => BodyLeft::Length(0),
                    Framing::Length(n) if n > STREAM_BODY_LIMIT => {
                        self.failed = Some(413);
                        return false;
                    }
                    Framing::Length(n) => BodyLeft::Length(n),
                    Framing::Chunked => BodyLeft::Chunked(ChunkedDecoder::default()),
                };
                self.pending = Some(HeadOutcome::Complete {
                    request: describe(&request),
                    framing,
                    head_len,
                    expect_continue,
                });
                self.body = Some((left, Vec::new()));
                true
            }
        }
    }

    fn step_body(&mut self) -> bool {
        let Some((left, body)) = &mut self.body else {
            return false;
        };
        let done = match left {
            BodyLeft::Length(n) => {
                let take = (*n).min(self.buf.len() as u64) as usize;
                body.extend(self.buf.drain(..take));
                *n -= take as u64;
                *n == 0
            }
            BodyLeft::Chunked(decoder) => {
                let mut sink = |piece: &[u8]| -> Result<(), HttpError> {
                    body.extend_from_slice(piece);
                    if body.len() as u64 > STREAM_BODY_LIMIT {
                        return Err(HttpError::PayloadTooLarge {
                            limit: STREAM_BODY_LIMIT,
                        });
                    }
                    Ok(())
                };
                match decoder.decode(&self.buf, &mut sink) {
                    Ok(used) => {
                        assert!(used <= self.buf.len(), "decoder consumed past its input");
                        self.buf.drain(..used);
                        decoder.is_done()
                    }
                    Err(e) => {
                        self.failed = Some(e.status());
                        return false;
                    }
                }
            }
        };
        if !done {
            return false;
        }
        let (_, body) = self
            .body
            .take()
            .unwrap_or((BodyLeft::Length(0), Vec::new()));
        let head = self.pending.take().unwrap_or(HeadOutcome::Partial);
        self.exchanges.push(Exchange { head, body });
        true
    }
}

/// `http_conn`: a stream of pipelined requests (heads, `Content-Length` and chunked bodies)
/// read as the connection reads it gives the same requests, bodies and error whether the
/// bytes arrive in random pieces or at once.
pub fn http_conn(data: &[u8]) {
    let Some((seed, input)) = seed_and_rest(data) else {
        return;
    };
    let whole = Stream::run(input, &[input.len()]);
    let split = Stream::run(input, &chunk_ends(seed, input.len()));
    if whole == split {
        return;
    }
    // As in `http_head`: a limit seen while a head grows may be reported before a malformed
    // byte further on; the requests before it must agree all the same.
    let limit_first = matches!(split.1, Some(414 | 431)) && whole.1 == Some(400);
    assert!(
        limit_first && whole.0 == split.0,
        "fed whole: {whole:?}\nfed in pieces: {split:?}"
    );
}

/// `path`: normalisation never yields a `..` or `.` segment, an empty segment (a leading
/// `/` or `//` included), a backslash or a control character, and is idempotent: the
/// result, written back as a request path (with `%` escaped), normalises to itself.
pub fn path(data: &[u8]) {
    let raw = String::from_utf8_lossy(data);
    let Ok(normal) = path::normalize(&raw) else {
        return;
    };
    assert!(!normal.starts_with('/'), "leading slash in {normal:?}");
    let body = normal.strip_suffix('/').unwrap_or(&normal);
    if !normal.is_empty() {
        for segment in body.split('/') {
            assert!(
                !matches!(segment, "" | "." | ".."),
                "segment {segment:?} in {normal:?} from {raw:?}"
            );
        }
    }
    assert!(
        !normal.bytes().any(|b| b == b'\\' || b < 0x20 || b == 0x7f),
        "backslash or control character in {normal:?}"
    );
    let again = format!("/{}", normal.replace('%', "%25"));
    if again.len() <= path::MAX_PATH_BYTES {
        assert_eq!(
            path::normalize(&again).as_deref(),
            Ok(normal.as_str()),
            "not idempotent: {raw:?} -> {normal:?}"
        );
    }
    for candidate in path::candidates(&normal) {
        assert!(
            !candidate.starts_with('/') && !candidate.split('/').any(|s| s == ".."),
            "candidate {candidate:?} of {normal:?}"
        );
    }
}

/// A reader that hands out at most a few bytes per `read`, as a socket or a spool file may.
struct ShortReads<'a> {
    inner: Cursor<&'a [u8]>,
    ends: std::iter::Cycle<std::vec::IntoIter<usize>>,
}

impl Read for ShortReads<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let most = self.ends.next().unwrap_or(1).max(1);
        let len = most.min(buf.len());
        self.inner.read(&mut buf[..len])
    }
}

impl Seek for ShortReads<'_> {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The parser scans for boundaries through a buffer of this size (`multipart::find`).
const MULTIPART_SCAN_BYTES: usize = 64 * 1024;

/// `body`, after a preamble (for half of the seeds) that puts the first delimiter across
/// the end of the parser's first scan buffer, where a match spans two reads: inputs that
/// large are rare for the fuzzer to reach on its own.
fn with_preamble(seed: u8, body: &[u8]) -> Vec<u8> {
    if seed & 0x80 == 0 {
        return body.to_vec();
    }
    let mut padded = vec![b'x'; MULTIPART_SCAN_BYTES - usize::from(seed & 0x7f)];
    padded.extend_from_slice(b"\r\n");
    padded.extend_from_slice(body);
    padded
}

/// `multipart`: the first line is the Content-Type, the rest the body. A form parses the
/// same through short reads as through whole ones, within the limits, and every file part
/// lies inside the body without the delimiter in it.
pub fn multipart(data: &[u8]) {
    let Some((seed, input)) = seed_and_rest(data) else {
        return;
    };
    let split_at = memchr::memchr(b'\n', input).unwrap_or(input.len());
    let content_type = String::from_utf8_lossy(&input[..split_at]);
    let Ok(boundary) = multipart::boundary_from_content_type(&content_type) else {
        return;
    };
    let body = with_preamble(seed, input.get(split_at + 1..).unwrap_or_default());
    let body = body.as_slice();
    let limits = FormLimits::DEPLOY;
    let len = body.len() as u64;
    let whole = multipart::parse_form_with(&mut Cursor::new(body), len, &boundary, &limits);
    let sizes: Vec<usize> = chunk_ends(seed, 64)
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    let mut short = ShortReads {
        inner: Cursor::new(body),
        ends: sizes.into_iter().cycle(),
    };
    let split = multipart::parse_form_with(&mut short, len, &boundary, &limits);
    assert_eq!(
        format!("{whole:?}"),
        format!("{split:?}"),
        "short reads changed the form"
    );
    let Ok(form) = whole else {
        return;
    };
    assert!(form.text.len() + form.files.len() <= limits.parts);
    let delimiter = format!("\r\n--{boundary}");
    for (name, value) in &form.text {
        assert!(
            value.len() as u64 <= limits.text_field_bytes,
            "field {name}"
        );
    }
    for file in &form.files {
        let end = file
            .offset
            .checked_add(file.len)
            .expect("part end overflows");
        assert!(end <= len, "part {} ends at {end}, past {len}", file.name);
        let content = &body[file.offset as usize..end as usize];
        assert!(
            memchr::memmem::find(content, delimiter.as_bytes()).is_none(),
            "part {} holds the delimiter",
            file.name
        );
    }
}

/// Small limits, so the fuzzer reaches each of them with small inputs.
const ZIP_LIMITS: ArchiveLimits = ArchiveLimits {
    max_files: 64,
    max_entry_bytes: 256 * 1024,
    max_total_bytes: 1024 * 1024,
    max_ratio: 100,
    ratio_floor_bytes: 4 * 1024,
};

/// The directory this process extracts into, under a base that holds nothing else.
fn zip_dirs() -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("fazt-fuzz-zip-{}", std::process::id()));
    let out = base.join("out");
    (base, out)
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// `zip`: extracting an arbitrary archive never panics, stays within the limits, writes
/// nothing but its pack file inside `out_dir` (and nothing outside), leaves nothing behind
/// when it refuses, and every extracted file's path is normal and its bytes match its hash.
pub fn zip(data: &[u8]) {
    let (base, out) = zip_dirs();
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("creating the extraction directory");
    let result = archive::extract(Cursor::new(data), &ZIP_LIMITS, &out);
    assert_eq!(
        names_in(&base),
        ["out"],
        "something was written beside out_dir"
    );
    match result {
        Err(_) => assert!(names_in(&out).is_empty(), "a refused archive left files"),
        Ok(extracted) => {
            assert!(
                names_in(&out).len() <= 1,
                "more than the pack file: {:?}",
                names_in(&out)
            );
            check_extracted(&extracted);
        }
    }
    let _ = std::fs::remove_dir_all(&out);
}

fn check_extracted(extracted: &archive::Extracted) {
    let mut total = 0u64;
    for file in &extracted.files {
        assert_eq!(
            path::normalize(&format!("/{}", file.path.replace('%', "%25"))).as_deref(),
            Ok(file.path.as_str()),
            "extracted path is not normal"
        );
        assert!(path::is_published(&file.path), "hidden {}", file.path);
        assert!(file.size <= ZIP_LIMITS.max_entry_bytes);
        let mut bytes = Vec::new();
        file.source
            .reader(file.size)
            .and_then(|mut r| r.read_to_end(&mut bytes))
            .expect("reading an extracted file");
        assert_eq!(bytes.len() as u64, file.size, "{}", file.path);
        assert_eq!(<[u8; 32]>::from(Sha256::digest(&bytes)), file.sha256);
        total += file.size;
    }
    assert_eq!(total, extracted.total_bytes);
    assert!(total <= ZIP_LIMITS.max_total_bytes);
    let paths: Vec<&str> = extracted.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        paths.windows(2).all(|w| w[0] < w[1]),
        "paths unsorted or repeated"
    );
}

/// The ingest side of `/track` with an in-memory queue, made once per process.
fn track_ingest() -> &'static (Ingest, crossbeam_channel::Receiver<Event>) {
    static INGEST: std::sync::OnceLock<(Ingest, crossbeam_channel::Receiver<Event>)> =
        std::sync::OnceLock::new();
    INGEST.get_or_init(new_track_ingest)
}

/// Serves every host but those starting with `x` (so the foreign-host refusal is reached).
fn new_track_ingest() -> (Ingest, crossbeam_channel::Receiver<Event>) {
    crate::analytics::filter::prepare();
    let (queue, events) = EventQueue::detached(16);
    let ingest = Ingest {
        queue,
        salts: std::sync::Arc::new(SaltBook::default()),
        proxies: TrustedProxies::parse("").expect("no proxies"),
        track_domains: TrackDomains::default(),
        serves_host: Box::new(|host| !host.starts_with('x')),
    };
    (ingest, events)
}

/// A browser's POST of `body` to `/track`.
fn track_request(body: &[u8]) -> Request {
    let head = b"POST /track HTTP/1.1\r\nHost: a.example\r\nUser-Agent: Mozilla/5.0 \
        (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
        Accept-Language: en\r\nReferer: https://a.example/p\r\n\r\n";
    let Ok(HeadStatus::Complete { mut request, .. }) =
        parse_head(head, &mut HeadScanner::default(), peer(), false)
    else {
        panic!("the fixed /track head does not parse")
    };
    request.body = body.to_vec();
    request
}

/// `track_json`: any `/track` body is answered 204 or 400 (503 never: the queue is
/// drained), and a recorded event has a clean domain, a path without query or fragment,
/// clipped fields, at most 20 tags and a JSON object as its query.
pub fn track_json(data: &[u8]) {
    let (ingest, events) = track_ingest();
    let response = ingest.handle(Endpoint::Track, &track_request(data));
    assert!(
        matches!(response.status, 204 | 400),
        "status {}",
        response.status
    );
    for event in events.try_iter() {
        assert_eq!(response.status, 204, "an event recorded with a refusal");
        let domain = &event.domain;
        assert!(
            !domain.is_empty() && !domain.contains(':') && domain.chars().count() <= 500,
            "domain {domain:?}"
        );
        assert_eq!(domain, &domain.to_ascii_lowercase());
        if let Some(p) = &event.path {
            assert!(!p.is_empty() && !p.contains(['?', '#']), "path {p:?}");
            assert!(p.chars().count() <= 500);
        }
        assert!(event.kind.chars().count() <= 500);
        assert!(event.tags.len() <= 20, "{} tags", event.tags.len());
        assert!(event
            .tags
            .iter()
            .all(|t| !t.is_empty() && t.chars().count() <= 100));
        if let Some(q) = &event.query {
            let value: serde_json::Value = serde_json::from_str(q).expect("query is JSON");
            assert!(value.is_object(), "query {q}");
        }
    }
}

/// Message limit of the WebSocket target: small, so inputs reach it.
const WS_LIMIT: usize = 1024;

/// The messages and the error (if any) a reader gives for `input` arriving up to each of
/// `ends` in turn, with the bytes it holds bounded all along.
fn ws_feed(input: &[u8], ends: &[usize]) -> (Vec<Received>, Option<WsError>) {
    let mut reader = Reader::new(WS_LIMIT);
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut from = 0;
    for &end in ends {
        buf.extend_from_slice(&input[from..end]);
        from = end;
        loop {
            match reader.read(&buf) {
                Ok((0, received)) => {
                    assert!(received.is_none(), "a message from no bytes");
                    break;
                }
                Ok((used, received)) => {
                    if let Some(message) = &received {
                        assert!(message_len(message) <= WS_LIMIT, "message over the limit");
                    }
                    out.extend(received);
                    buf.drain(..used);
                }
                Err(e) => return (out, Some(e)),
            }
        }
        // A frame still arriving is at most a header (14 bytes) and the limit: the reader
        // refuses a longer one from its header, so the connection never buffers past it.
        assert!(buf.len() <= WS_LIMIT + 14, "{} bytes held", buf.len());
    }
    (out, None)
}

fn message_len(message: &Received) -> usize {
    match message {
        Received::Text(b) | Received::Binary(b) | Received::Ping(b) | Received::Pong(b) => b.len(),
        Received::Close(reason) => reason.as_ref().map_or(0, |(_, r)| r.len() + 2),
    }
}

/// `ws_frames`: client frames read in random pieces give the messages and the error they
/// give read at once; no message is over the limit.
pub fn ws_frames(data: &[u8]) {
    let Some((seed, input)) = seed_and_rest(data) else {
        return;
    };
    let whole = ws_feed(input, &[input.len()]);
    let split = ws_feed(input, &chunk_ends(seed, input.len()));
    assert_eq!(whole, split, "fed whole vs in pieces");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_ends_cover_the_input_in_order() {
        for seed in [0u8, 1, 77, 255] {
            let ends = chunk_ends(seed, 1000);
            assert_eq!(ends.last(), Some(&1000));
            assert!(ends.windows(2).all(|w| w[0] < w[1]));
            assert!(ends.len() > 10, "seed {seed}: pieces are mostly small");
        }
        assert!(chunk_ends(3, 0).is_empty());
    }

    /// A fuzz target: its name under fuzz/ and its entry point.
    type Target = (&'static str, fn(&[u8]));

    #[test]
    fn every_seed_and_regression_input_passes_its_target() {
        // The checked-in inputs of fuzz/ run here too, so `cargo test` catches a regression
        // without nightly; a missing directory would make this test vacuous, so it fails.
        let targets: [Target; 7] = [
            ("http_head", http_head),
            ("http_conn", http_conn),
            ("path", path),
            ("multipart", multipart),
            ("zip", zip),
            ("track_json", track_json),
            ("ws_frames", ws_frames),
        ];
        let fuzz_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        for (target, run) in targets {
            let seeds = fuzz_dir.join("corpus").join(target);
            let mut inputs = names_in(&seeds)
                .into_iter()
                .map(|name| seeds.join(name))
                .collect::<Vec<_>>();
            assert!(inputs.len() >= 4, "{target}: too few seeds in {seeds:?}");
            let regressions = fuzz_dir.join("regressions").join(target);
            inputs.extend(
                names_in(&regressions)
                    .into_iter()
                    .map(|n| regressions.join(n)),
            );
            for input in inputs {
                let data = std::fs::read(&input).expect("reading a fuzz input");
                run(&data);
            }
        }
        // The zip target's base directory (fuzz.sh runs it inside a temp dir of its own).
        let _ = std::fs::remove_dir_all(zip_dirs().0);
    }

    #[test]
    fn the_track_request_is_a_visit_so_events_are_checked() {
        let (ingest, events) = new_track_ingest();
        let response = ingest.handle(Endpoint::Track, &track_request(br#"{"p":"/x?y"}"#));
        assert_eq!(response.status, 204);
        let recorded: Vec<Event> = events.try_iter().collect();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].path.as_deref(), Some("/x"));
        let refused = ingest.handle(Endpoint::Track, &track_request(br#"{"d":"xa.example"}"#));
        assert_eq!(refused.status, 400);
        assert_eq!(events.try_iter().count(), 0);
    }

    #[test]
    fn the_site_seed_extracts_so_extracted_files_are_checked() {
        let seed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/zip/site");
        let data = std::fs::read(seed).expect("the zip seed");
        let out = std::env::temp_dir().join(format!("fazt-fuzz-test-{}", std::process::id()));
        std::fs::create_dir_all(&out).expect("temp dir");
        let extracted = archive::extract(Cursor::new(data), &ZIP_LIMITS, &out);
        let _ = std::fs::remove_dir_all(&out);
        let extracted = extracted.expect("the site seed extracts");
        let paths: Vec<&str> = extracted.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["css/site.css", "index.html"]);
        check_extracted(&extracted);
    }

    #[test]
    fn a_delimiter_across_the_scan_buffer_edge_is_found() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--XX--\r\n";
        for seed in [0x80, 0x81, 0x83, 0x86, 0xff] {
            let padded = with_preamble(seed, body);
            let len = padded.len() as u64;
            let form = multipart::parse_form(&mut Cursor::new(&padded), len, "XX").unwrap();
            assert_eq!(form.text("a"), Some("v"), "seed {seed:#x}");
        }
        assert_eq!(with_preamble(0x7f, body), body);
    }

    #[test]
    fn a_stream_reads_each_request_and_its_body() {
        let input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhiGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        let (exchanges, failed) = Stream::run(input, &chunk_ends(5, input.len()));
        assert_eq!(failed, None);
        assert_eq!(exchanges.len(), 2);
        assert_eq!(exchanges[0].body, b"hi");
    }
}
