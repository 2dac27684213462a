//! Deploy archives: validating a zip and extracting its files into temp files, one entry
//! at a time, trusting nothing its headers claim.
//!
//! The whole archive is refused (a 400 naming the entry) when any entry has an absolute
//! path, a `..` component, a backslash, a control character (NUL included), is a symlink or
//! another non-regular file, duplicates another entry's path after normalisation, or when
//! the archive has too many entries, expands past a size limit or expands like a zip bomb.
//!
//! Invariants:
//! - memory does not grow with the archive: the central directory is walked one entry at a
//!   time ([`ZipIterable`]) and each entry is streamed through one fixed buffer into one
//!   temp file, `entries.pack`, while it is hashed; each staged file is a byte range of it
//!   (one file per deploy: creating and deleting a file per entry cost more than writing
//!   the bytes);
//! - limits are enforced on the bytes actually decompressed, each entry read through a
//!   `take(limit + 1)`, so an entry that lies about its size is stopped one byte past the
//!   limit; an entry whose bytes differ in length from its header is refused as well;
//! - no entry name is ever used as a file name, so no name can reach outside `out_dir`
//!   whatever the validation below lets through;
//! - on any error the pack file is removed.
//!
//! Entry names are taken literally (`100%.txt` is the file `100%.txt`): empty and `.`
//! components are dropped (`./a//b` is `a/b`), everything else that could not be a site
//! path is refused, never repaired.

use crate::hosting::store::{FileSource, StagedFile};
use crate::http::error::io_status;
use crate::http::ResponseError;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::collections::HashMap;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use zip::read::ZipReadOptions;
use zip::result::ZipError;
use zip::unstable::read::ZipIterable;
use zip::CompressionMethod;

/// A personal site with more entries than this is almost certainly a build directory zipped
/// by mistake (`node_modules`, a cache); the bound also caps the work done before any limit
/// on bytes can trip (each entry costs a central-directory parse and a temp file).
pub const DEFAULT_MAX_FILES: usize = 10_000;
/// The largest single file a static site plausibly serves (a video, a dataset); bigger files
/// belong outside the site, and this bounds one blob's temp file and database write.
pub const DEFAULT_MAX_ENTRY_BYTES: u64 = 100 * 1024 * 1024;
/// Bounds the temp-dir disk used by one deploy and the size of its one database
/// transaction; ten times the 100 MB deploy the benchmarks use.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 1024 * 1024 * 1024;
/// Deflate compresses web content (HTML, CSS, JS, JSON, SVG) 3–20×, very repetitive text
/// up to ~50×; zip bombs expand ~1000× per entry, the most deflate can do.
pub const DEFAULT_MAX_RATIO: u64 = 100;
/// Below this size an entry is never a bomb, whatever its ratio: 2 KiB of spaces deflate to
/// ~20 bytes (100×), and small files can't exhaust anything.
pub const DEFAULT_RATIO_FLOOR_BYTES: u64 = 1024 * 1024;

/// Bytes copied per read from an entry into its temp file.
const COPY_BUFFER_BYTES: usize = 64 * 1024;
/// The one temp file in `out_dir` that holds every extracted entry.
const PACK_FILE: &str = "entries.pack";
/// Longest entry name shown in an error message; names may be up to 64 KiB.
const MAX_SHOWN_NAME_CHARS: usize = 200;

/// What an archive may contain. Every limit is checked against what the headers declare
/// (to refuse early) and against the bytes actually read (to refuse headers that lie).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most entries of any kind (files, directories and hidden files included), checked
    /// before any entry is read.
    pub max_files: usize,
    /// Most uncompressed bytes in one file.
    pub max_entry_bytes: u64,
    /// Most uncompressed bytes in all published files together.
    pub max_total_bytes: u64,
    /// Most uncompressed bytes per compressed byte of one entry, once the entry is larger
    /// than `ratio_floor_bytes`.
    pub max_ratio: u64,
    /// Entries up to this size are exempt from `max_ratio`.
    pub ratio_floor_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> ArchiveLimits {
        ArchiveLimits {
            max_files: DEFAULT_MAX_FILES,
            max_entry_bytes: DEFAULT_MAX_ENTRY_BYTES,
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_ratio: DEFAULT_MAX_RATIO,
            ratio_floor_bytes: DEFAULT_RATIO_FLOOR_BYTES,
        }
    }
}

/// The files of an archive, extracted and ready for `apply_deployment`.
#[derive(Debug)]
pub struct Extracted {
    /// Published files sorted by path; each source is a temp file inside `out_dir`.
    pub files: Vec<StagedFile>,
    /// Sum of the files' sizes.
    pub total_bytes: u64,
    /// Hidden entries (a path component starting with `.`, outside `.well-known/`) left
    /// out: see `hosting::path::is_published`.
    pub skipped_hidden: usize,
}

/// Why an archive was not extracted.
#[derive(Debug)]
pub enum ArchiveError {
    /// The archive is refused (answer 400); the message names the offending entry.
    Invalid(String),
    /// An entry is compressed with a method we do not decode (answer 415); the message
    /// names the entry and the method. The client's archive is fine, just not readable here.
    UnsupportedMethod(String),
    /// Reading the upload or writing a temp file failed: the server's fault (500, or 507
    /// when the disk is full), not the archive's.
    Io { context: String, source: io::Error },
}

impl ResponseError for ArchiveError {
    fn status(&self) -> u16 {
        match self {
            ArchiveError::Invalid(_) => 400,
            ArchiveError::UnsupportedMethod(_) => 415,
            ArchiveError::Io { source, .. } => io_status(source).0,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ArchiveError::Invalid(_) => "invalid_archive",
            ArchiveError::UnsupportedMethod(_) => "unsupported_compression",
            ArchiveError::Io { source, .. } => io_status(source).1,
        }
    }
}

impl fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArchiveError::Invalid(message) | ArchiveError::UnsupportedMethod(message) => {
                f.write_str(message)
            }
            ArchiveError::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for ArchiveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ArchiveError::Invalid(_) | ArchiveError::UnsupportedMethod(_) => None,
            ArchiveError::Io { source, .. } => Some(source),
        }
    }
}

/// Validates the zip `zip` and extracts its published files into temp files in `out_dir`
/// (which must exist). See the module documentation for what is refused. On error, the
/// temp files created so far are removed; `out_dir` itself is the caller's.
pub fn extract<R: Read + Seek>(
    zip: R,
    limits: &ArchiveLimits,
    out_dir: &Path,
) -> Result<Extracted, ArchiveError> {
    let mut created = Vec::new();
    let result = extract_into(zip, limits, out_dir, &mut created);
    if result.is_err() {
        for path in &created {
            // Best effort: the caller removes out_dir too, and a startup sweep catches the rest.
            let _ = std::fs::remove_file(path);
        }
    }
    result
}

fn extract_into<R: Read + Seek>(
    zip: R,
    limits: &ArchiveLimits,
    out_dir: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<Extracted, ArchiveError> {
    // Bytes read from the archive, so an entry's ratio uses the compressed bytes actually
    // consumed, not the compressed size its header claims.
    let consumed = Rc::new(Cell::new(0u64));
    let reader = CountingReader {
        inner: zip,
        count: Rc::clone(&consumed),
    };
    let mut archive = ZipIterable::try_new(reader, zip::read::Config::default())
        .map_err(|e| zip_error(e, "reading the archive", || "not a readable zip archive"))?
        // A local header that disagrees with the central directory is a header that lies.
        .enforce_header_consistency(true);
    if archive.len() > limits.max_files {
        return Err(ArchiveError::Invalid(format!(
            "archive has {} entries (files, directories and hidden files), more than the limit of {}",
            archive.len(),
            limits.max_files
        )));
    }
    let entries = archive
        .files()
        .map_err(|e| zip_error(e, "reading the archive", || "not a readable zip archive"))?;

    let mut files = Vec::new();
    // Normalised path → the entry name that claimed it, for the duplicate message.
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut total_bytes = 0u64;
    let mut skipped_hidden = 0usize;
    let mut buf = vec![0u8; COPY_BUFFER_BYTES];
    let mut index = 0usize;
    let pack_path = out_dir.join(PACK_FILE);
    let pack = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&pack_path)
        .map_err(|e| io_error(format!("creating {}", pack_path.display()), e))?;
    created.push(pack_path.clone());
    let pack = Arc::new(pack);
    let mut packed_bytes = 0u64;

    while let Some(entry) = entries.next() {
        index += 1;
        let entry = entry.map_err(|e| {
            zip_error(e, "reading the archive", || {
                format!("central directory entry #{index} is corrupt")
            })
        })?;
        let name = entry
            .name()
            .map_err(|e| {
                ArchiveError::Invalid(format!("entry #{index}: name is not readable ({e})"))
            })?
            .into_owned();
        let shown = shown_name(&name);
        let refuse = |reason: String| ArchiveError::Invalid(format!("entry '{shown}': {reason}"));

        let path = match entry_path(&name).map_err(|reason| refuse(reason.to_string()))? {
            EntryPath::Directory => continue,
            EntryPath::File(path) => path,
        };
        if !crate::hosting::path::is_published(&path) {
            skipped_hidden += 1;
            continue;
        }
        if let Some(mode) = entry.unix_mode() {
            check_regular(mode).map_err(refuse)?;
        }
        if entry.encrypted() {
            return Err(refuse("is encrypted (not supported)".into()));
        }
        // Checked before reading: the zip crate decompresses lazily, so an unknown method
        // would surface as an I/O error in the middle of the copy.
        check_method(entry.compression()).map_err(|reason| {
            ArchiveError::UnsupportedMethod(format!("entry '{shown}': {reason}"))
        })?;
        if let Some(first) = seen.get(&path) {
            return Err(refuse(format!(
                "is the same path as entry '{first}' ('{}')",
                shown_name(&path)
            )));
        }
        seen.insert(path.clone(), shown.clone());

        // Refuse early on what the header declares; the same limits are enforced again on
        // the bytes read below.
        let declared = entry.size();
        check_declared(declared, entry.compressed_size(), total_bytes, limits).map_err(refuse)?;

        let mut content = entry
            .with_reader(entries.reader_mut(), ZipReadOptions::new())
            .map_err(|e| {
                zip_error(e, "reading the archive", || {
                    format!("entry '{shown}' can't be read")
                })
            })?;
        let consumed_before = consumed.get();
        // The most this entry may hold; one byte more means a limit (or the header) was broken.
        let allowed = declared
            .min(limits.max_entry_bytes)
            .min(limits.max_total_bytes - total_bytes);
        let mut limited = (&mut content).take(allowed.saturating_add(1));
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        loop {
            let n = match limited.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(read_error(e, || {
                        format!("entry '{shown}': is corrupt or its header lies")
                    }))
                }
            };
            size += n as u64;
            let packed = consumed.get() - consumed_before;
            check_read(size, packed, declared, total_bytes, limits).map_err(refuse)?;
            hasher.update(&buf[..n]);
            (&*pack)
                .write_all(&buf[..n])
                .map_err(|e| io_error(format!("writing {}", pack_path.display()), e))?;
        }
        if size != declared {
            return Err(refuse(format!(
                "holds {size} bytes but its header declares {declared}"
            )));
        }
        total_bytes += size;
        files.push(StagedFile {
            mime: crate::hosting::rules::mime_for(&path),
            path,
            source: FileSource::Packed {
                file: Arc::clone(&pack),
                offset: packed_bytes,
            },
            size,
            sha256: hasher.finalize().into(),
            variants: None,
        });
        packed_bytes += size;
    }

    if files.is_empty() {
        return Err(ArchiveError::Invalid(format!(
            "archive has no files to publish ({skipped_hidden} hidden files skipped)"
        )));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Extracted {
        files,
        total_bytes,
        skipped_hidden,
    })
}

/// What a valid entry name stands for.
#[derive(Debug, PartialEq, Eq)]
enum EntryPath {
    /// A directory entry (name ends with `/`): nothing to publish.
    Directory,
    /// A file at this site-relative path (no leading slash, no empty or `.` components).
    File(String),
}

/// Validates and normalises an entry name, or says why it is refused.
fn entry_path(name: &str) -> Result<EntryPath, &'static str> {
    if name.is_empty() {
        return Err("has an empty name");
    }
    if name.contains('\\') {
        return Err("contains a backslash");
    }
    // The same rule as `stage_directory`: what no URL path could name is refused.
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if name.starts_with('/') {
        return Err("is an absolute path");
    }
    let mut segments = Vec::new();
    for segment in name.split('/') {
        match segment {
            "" | "." => {}
            ".." => return Err("contains a '..' component"),
            _ => segments.push(segment),
        }
    }
    if name.ends_with('/') {
        return Ok(EntryPath::Directory);
    }
    if segments.is_empty() {
        return Err("names no file");
    }
    if segments.len() > crate::hosting::path::MAX_SEGMENTS {
        return Err("has more than 64 path components (no request could reach it)");
    }
    let path = segments.join("/");
    // A request path is `/` + this, at most MAX_PATH_BYTES long before any percent-encoding.
    if path.len() >= crate::hosting::path::MAX_PATH_BYTES {
        return Err("is longer than 2047 bytes (no request could reach it)");
    }
    Ok(EntryPath::File(path))
}

const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;

/// Only regular files are published; a mode without a file type (some writers leave it 0)
/// counts as regular.
fn check_regular(mode: u32) -> Result<(), String> {
    match mode & S_IFMT {
        0 | S_IFREG => Ok(()),
        S_IFLNK => Err("is a symbolic link (links are not published)".into()),
        S_IFDIR => Err("is a directory without a trailing '/'".into()),
        kind => Err(format!(
            "is not a regular file (unix file type {kind:#o}); only regular files are published"
        )),
    }
}

/// Only stored and deflate entries are decoded: every zip tool writes these by default, and
/// each further decoder (bzip2, LZMA, zstd, …) is code an untrusted upload can reach.
fn check_method(method: CompressionMethod) -> Result<(), String> {
    if method == CompressionMethod::Stored || method == CompressionMethod::Deflated {
        return Ok(());
    }
    // The zip crate names the methods it knows of and calls the rest "Unknown"; the number
    // is the one from the entry's header (APPNOTE 4.4.5).
    #[allow(deprecated)]
    let number = match method {
        CompressionMethod::Unsupported(number) => number.to_string(),
        _ => "?".to_string(),
    };
    Err(format!(
        "is compressed with {method} (zip method {number}); only stored and deflate entries \
         are supported: re-create the zip with deflate (the default of zip tools)"
    ))
}

/// The limits against an entry's header, before any of it is read.
fn check_declared(
    declared: u64,
    compressed: u64,
    total_so_far: u64,
    limits: &ArchiveLimits,
) -> Result<(), String> {
    if declared > limits.max_entry_bytes {
        return Err(format!(
            "declares {declared} bytes, more than the limit of {} bytes per file",
            limits.max_entry_bytes
        ));
    }
    if total_so_far.saturating_add(declared) > limits.max_total_bytes {
        return Err(format!(
            "brings the archive past the limit of {} uncompressed bytes",
            limits.max_total_bytes
        ));
    }
    if is_bomb(declared, compressed, limits) {
        return Err(format!(
            "declares {declared} bytes from {compressed} compressed bytes, more than {}x: \
             refused as a zip bomb",
            limits.max_ratio
        ));
    }
    Ok(())
}

/// The limits against the bytes read so far of an entry (`size` of them, decompressed from
/// `packed` bytes of the archive).
fn check_read(
    size: u64,
    packed: u64,
    declared: u64,
    total_so_far: u64,
    limits: &ArchiveLimits,
) -> Result<(), String> {
    if size > limits.max_entry_bytes {
        return Err(format!(
            "expands past the limit of {} bytes per file",
            limits.max_entry_bytes
        ));
    }
    if total_so_far + size > limits.max_total_bytes {
        return Err(format!(
            "expands the archive past the limit of {} uncompressed bytes",
            limits.max_total_bytes
        ));
    }
    if is_bomb(size, packed, limits) {
        return Err(format!(
            "expanded {packed} compressed bytes to {size} bytes, more than {}x: \
             refused as a zip bomb",
            limits.max_ratio
        ));
    }
    if size > declared {
        return Err(format!(
            "holds more bytes than the {declared} its header declares"
        ));
    }
    Ok(())
}

fn is_bomb(size: u64, compressed: u64, limits: &ArchiveLimits) -> bool {
    size > limits.ratio_floor_bytes && size > compressed.saturating_mul(limits.max_ratio)
}

/// An entry name fit for an error message: control characters escaped, long names cut.
fn shown_name(name: &str) -> String {
    let mut out = String::new();
    for (count, c) in name.chars().enumerate() {
        if count == MAX_SHOWN_NAME_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn io_error(context: String, source: io::Error) -> ArchiveError {
    ArchiveError::Io { context, source }
}

/// An error from reading an entry's bytes: bad data is the archive's fault (400); anything
/// else is the upload's storage failing (500).
fn read_error(e: io::Error, invalid: impl FnOnce() -> String) -> ArchiveError {
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
            ArchiveError::Invalid(format!("{} ({e})", invalid()))
        }
        _ => io_error("reading the uploaded archive".into(), e),
    }
}

/// An error from the zip reader, classified like [`read_error`].
fn zip_error<S: Into<String>>(
    e: ZipError,
    io_context: &str,
    invalid: impl FnOnce() -> S,
) -> ArchiveError {
    match e {
        ZipError::Io(e) => match e.kind() {
            io::ErrorKind::InvalidData
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::InvalidInput => {
                ArchiveError::Invalid(format!("{} ({e})", invalid().into()))
            }
            _ => io_error(format!("{io_context} (uploaded)"), e),
        },
        other => ArchiveError::Invalid(format!("{} ({other})", invalid().into())),
    }
}

/// Counts the bytes read from the archive (see `consumed` in `extract_into`).
struct CountingReader<R> {
    inner: R,
    count: Rc<Cell<u64>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

impl<R: Seek> Seek for CountingReader<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str) -> String {
        match entry_path(name) {
            Ok(EntryPath::File(path)) => path,
            other => panic!("{name:?} gave {other:?}"),
        }
    }

    fn refused(name: &str) -> &'static str {
        match entry_path(name) {
            Err(reason) => reason,
            Ok(other) => panic!("{name:?} was accepted as {other:?}"),
        }
    }

    #[test]
    fn names_normalise_empty_and_dot_components() {
        assert_eq!(file("index.html"), "index.html");
        assert_eq!(file("a/b.css"), "a/b.css");
        assert_eq!(file("a//b.css"), "a/b.css");
        assert_eq!(file("./a"), "a");
        assert_eq!(file("a/./b"), "a/b");
        assert_eq!(file("100%.txt"), "100%.txt");
        assert_eq!(file("café/日本.html"), "café/日本.html");
        assert_eq!(file("a..b/...c"), "a..b/...c");
        assert_eq!(entry_path("a/"), Ok(EntryPath::Directory));
        assert_eq!(entry_path("./"), Ok(EntryPath::Directory));
    }

    #[test]
    fn names_that_are_refused() {
        assert_eq!(refused("/etc/passwd"), "is an absolute path");
        assert_eq!(refused("//x"), "is an absolute path");
        assert_eq!(refused("../x"), "contains a '..' component");
        assert_eq!(refused("a/../../x"), "contains a '..' component");
        assert_eq!(refused("a/.."), "contains a '..' component");
        assert_eq!(refused("../"), "contains a '..' component");
        assert_eq!(refused("a\\b"), "contains a backslash");
        assert_eq!(refused("..\\x"), "contains a backslash");
        assert_eq!(refused("a\0b"), "contains a control character");
        assert_eq!(refused("a\nb"), "contains a control character");
        assert_eq!(refused("a\u{7f}"), "contains a control character");
        assert_eq!(refused("a\u{85}"), "contains a control character");
        assert_eq!(refused(""), "has an empty name");
        assert_eq!(refused("."), "names no file");
        assert_eq!(refused("./."), "names no file");
        assert!(refused("a/".repeat(65).trim_end_matches('/')).contains("64"));
        assert!(refused(&"a".repeat(2048)).contains("2047"));
        assert_eq!(file(&"a".repeat(2047)).len(), 2047);
    }

    #[test]
    fn only_regular_files() {
        assert!(check_regular(0o100_644).is_ok());
        assert!(check_regular(0o644).is_ok());
        assert!(check_regular(0o120_777)
            .unwrap_err()
            .contains("symbolic link"));
        assert!(check_regular(0o040_755).unwrap_err().contains("directory"));
        for kind in [0o010_000, 0o020_000, 0o060_000, 0o140_000] {
            assert!(check_regular(kind | 0o644)
                .unwrap_err()
                .contains("not a regular file"));
        }
    }

    #[test]
    fn ratio_has_a_floor() {
        let limits = ArchiveLimits::default();
        assert!(!is_bomb(1024 * 1024, 1, &limits));
        assert!(is_bomb(1024 * 1024 + 1, 10, &limits));
        assert!(!is_bomb(100 * 1024 * 1024, 1024 * 1024, &limits));
        assert!(is_bomb(100 * 1024 * 1024 + 1, 1024 * 1024, &limits));
    }

    #[test]
    fn shown_names_escape_control_characters_and_are_cut() {
        assert_eq!(shown_name("a\0b\n"), "a\\u{0}b\\n");
        assert_eq!(shown_name(&"x".repeat(500)).chars().count(), 201);
    }

    #[test]
    fn only_stored_and_deflate_are_decoded() {
        assert!(check_method(CompressionMethod::Stored).is_ok());
        assert!(check_method(CompressionMethod::Deflated).is_ok());
        let bzip2 = check_method(CompressionMethod::BZIP2).unwrap_err();
        assert!(bzip2.contains("Bzip2 (zip method 12)"), "{bzip2}");
        let lzma = check_method(CompressionMethod::LZMA).unwrap_err();
        assert!(lzma.contains("Lzma (zip method 14)"), "{lzma}");
        let zstd = check_method(CompressionMethod::ZSTD).unwrap_err();
        assert!(zstd.contains("Zstd (zip method 93)"), "{zstd}");
        #[allow(deprecated)]
        let odd = check_method(CompressionMethod::Unsupported(77)).unwrap_err();
        assert!(odd.contains("Unknown (zip method 77)"), "{odd}");
        let refused = ArchiveError::UnsupportedMethod("x".into());
        assert_eq!(
            (refused.status(), refused.code()),
            (415, "unsupported_compression")
        );
        assert!(!refused.is_server_fault());
    }

    #[test]
    fn error_statuses() {
        let invalid = ArchiveError::Invalid("x".into());
        assert_eq!((invalid.status(), invalid.code()), (400, "invalid_archive"));
        let full = io_error("w".into(), io::Error::from(io::ErrorKind::StorageFull));
        assert_eq!((full.status(), full.code()), (507, "disk_full"));
        let nospc = io_error("w".into(), io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(nospc.status(), 507);
        let quota = io_error("w".into(), io::Error::from_raw_os_error(libc::EDQUOT));
        assert_eq!(quota.status(), 507);
        let other = io_error("w".into(), io::Error::other("boom"));
        assert_eq!((other.status(), other.code()), (500, "io_error"));
        assert!(other.is_server_fault());
        assert_eq!(other.to_string(), "w: boom");
    }

    #[test]
    fn not_a_zip() {
        let dir = std::env::temp_dir().join(format!("fazt-archive-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for body in [&b""[..], b"hello, not a zip", &[0u8; 5000][..]] {
            let err = extract(io::Cursor::new(body), &ArchiveLimits::default(), &dir).unwrap_err();
            assert_eq!(err.status(), 400, "{err}");
            assert!(
                err.to_string().contains("not a readable zip archive"),
                "{err}"
            );
        }
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
