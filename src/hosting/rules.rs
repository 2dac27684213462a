//! Serving rules for stored files: the MIME type from the extension, `Cache-Control` by
//! file kind, and single-range `Range` requests (RFC 9110 §14).
//!
//! All pure functions of their arguments; `files::respond` turns them into headers.

use super::path::extension;

/// MIME type for unknown or missing extensions.
pub const DEFAULT_MIME: &str = "application/octet-stream";

/// Extension (lower case) → MIME type. Every `text/*` type carries `; charset=utf-8`;
/// `application/*` and `image/svg+xml` do not (their encoding is defined by the format).
const MIME_TYPES: &[(&str, &str)] = &[
    ("html", "text/html; charset=utf-8"),
    ("htm", "text/html; charset=utf-8"),
    ("css", "text/css; charset=utf-8"),
    ("js", "text/javascript; charset=utf-8"),
    ("mjs", "text/javascript; charset=utf-8"),
    ("txt", "text/plain; charset=utf-8"),
    ("md", "text/markdown; charset=utf-8"),
    ("csv", "text/csv; charset=utf-8"),
    ("json", "application/json"),
    ("map", "application/json"),
    ("webmanifest", "application/manifest+json"),
    ("xml", "application/xml"),
    ("svg", "image/svg+xml"),
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("gif", "image/gif"),
    ("webp", "image/webp"),
    ("avif", "image/avif"),
    ("ico", "image/x-icon"),
    ("woff", "font/woff"),
    ("woff2", "font/woff2"),
    ("ttf", "font/ttf"),
    ("otf", "font/otf"),
    ("eot", "application/vnd.ms-fontobject"),
    ("mp4", "video/mp4"),
    ("webm", "video/webm"),
    ("mp3", "audio/mpeg"),
    ("ogg", "audio/ogg"),
    ("wav", "audio/wav"),
    ("pdf", "application/pdf"),
    ("zip", "application/zip"),
    ("wasm", "application/wasm"),
];

/// MIME type from the extension of the last segment of `path`, case-insensitively;
/// [`DEFAULT_MIME`] when there is none or it is unknown.
pub fn mime_for(path: &str) -> &'static str {
    let Some(ext) = extension(path) else {
        return DEFAULT_MIME;
    };
    MIME_TYPES
        .iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(ext))
        .map_or(DEFAULT_MIME, |(_, mime)| mime)
}

/// For HTML: always revalidate; the strong ETag makes that a cheap 304.
pub const CACHE_HTML: &str = "no-cache";
/// For fingerprinted assets: the name changes when the content does.
pub const CACHE_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For everything else: short enough that a redeploy shows up within minutes.
pub const CACHE_DEFAULT: &str = "public, max-age=300";

/// `Cache-Control` for a stored file at site-relative `path` with MIME type `mime`:
/// HTML → [`CACHE_HTML`]; otherwise a fingerprinted asset (see [`is_fingerprinted`]) →
/// [`CACHE_IMMUTABLE`]; otherwise [`CACHE_DEFAULT`].
pub fn cache_control(path: &str, mime: &str) -> &'static str {
    // A byte scan, not `split(';')`: the MIME type is short and this runs per response.
    let end = mime.bytes().position(|b| b == b';').unwrap_or(mime.len());
    let essence = mime[..end].trim();
    if essence.eq_ignore_ascii_case("text/html") {
        CACHE_HTML
    } else if is_fingerprinted(path) {
        CACHE_IMMUTABLE
    } else {
        CACHE_DEFAULT
    }
}

/// Whether a file's name changes whenever its content does, so it can be cached forever.
///
/// True when either:
/// 1. the file is inside a directory named exactly `assets` at any depth (`assets/x.js`,
///    `blog/assets/x.png`), where bundlers such as Vite put their hashed output; or
/// 2. its name is `name-<hash>.ext` or `name.<hash>.ext`: the name without its extension,
///    split at every `-` and `.`, has a part other than the first that is a hash (so
///    `main.8f2c1d9e.chunk.js` and `lib.3f2a9c1b.min.js` count too). A hash is at least
///    8 characters and is either
///    - hex (`[0-9a-fA-F]`) with at least one digit and at least one letter, or
///    - `[A-Za-z0-9_]` with at least one digit and at least one upper-case letter
///      (base64url and base32 hashes, e.g. esbuild's `app-5HZGQT3R.js`).
///
/// A wrong "yes" pins stale content in browsers for a year while a wrong "no" only costs a
/// revalidation after five minutes, so the hash test is stricter than "8 hash-like
/// characters": it must look random, not like a date (`backup-20240101.pdf`), a word
/// (`deadbeef`), a size (`bg-1920x1080.jpg`) or a numbered name (`notes-chapter12.md`).
/// Hashes that contain a `-` themselves (Rollup/Vite base64url) cannot be told apart from
/// a word separator; rule 1 covers Vite's default output.
pub fn is_fingerprinted(path: &str) -> bool {
    let mut segments = path.split('/');
    let file_name = segments.next_back().unwrap_or(path);
    if segments.any(|dir| dir == "assets") {
        return true;
    }
    let Some(ext) = extension(file_name) else {
        return false;
    };
    let stem = &file_name[..file_name.len() - ext.len() - 1];
    let mut parts = stem.split(['-', '.']);
    match parts.next() {
        Some(name) if !name.is_empty() => parts.any(looks_like_hash),
        _ => false,
    }
}

fn looks_like_hash(candidate: &str) -> bool {
    if candidate.len() < 8 {
        return false;
    }
    let has_digit = candidate.bytes().any(|b| b.is_ascii_digit());
    if !has_digit {
        return false;
    }
    let hex = candidate.bytes().all(|b| b.is_ascii_hexdigit())
        && candidate.bytes().any(|b| b.is_ascii_alphabetic());
    let token = candidate
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && candidate.bytes().any(|b| b.is_ascii_uppercase());
    hex || token
}

/// What to send for a `Range` request header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// No usable range: send the whole file with 200.
    Full,
    /// Send these bytes with 206 and [`content_range`].
    Partial { start: u64, end_inclusive: u64 },
    /// Answer 416 with [`unsatisfied_range`].
    Unsatisfiable,
}

/// Interprets a `Range` header for a file of `size` bytes (RFC 9110 §14.1.2):
/// - `bytes=0-99` → those bytes, the end clamped to the last byte; `bytes=100-` → to the
///   end; `bytes=-500` → the last 500 bytes, or the whole file if it is shorter;
/// - a start at or past the end, a suffix of `-0`, or any range of an empty file →
///   [`RangeOutcome::Unsatisfiable`];
/// - no header, another unit, a malformed or invalid (`last < first`) range →
///   [`RangeOutcome::Full`], since a server may ignore a Range it cannot use;
/// - more than one range (`bytes=0-1,5-6`) → [`RangeOutcome::Full`]: multipart/byteranges
///   is not implemented, and ignoring the header is allowed.
///
/// The unit is case-insensitive, whitespace around `=`, `,`, `-` and the whole value is
/// ignored, and empty list elements (`bytes=0-1,`) are skipped as RFC 9110 §5.6.1 asks.
/// Numbers too large for a u64 are treated as u64::MAX (an end is then clamped, a start is
/// past the end, a suffix covers the file). `If-Range` is not handled here.
pub fn parse_range(header: Option<&str>, size: u64) -> RangeOutcome {
    let Some(spec) = header.and_then(single_range_spec) else {
        return RangeOutcome::Full;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeOutcome::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // Suffix range: the last `length` bytes.
        let Some(length) = parse_position(last) else {
            return RangeOutcome::Full;
        };
        if length == 0 || size == 0 {
            return RangeOutcome::Unsatisfiable;
        }
        return RangeOutcome::Partial {
            start: size.saturating_sub(length),
            end_inclusive: size - 1,
        };
    }
    let Some(start) = parse_position(first) else {
        return RangeOutcome::Full;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match parse_position(last) {
            Some(end) if end >= start => end,
            _ => return RangeOutcome::Full,
        }
    };
    if start >= size {
        return RangeOutcome::Unsatisfiable;
    }
    RangeOutcome::Partial {
        start,
        end_inclusive: end.min(size - 1),
    }
}

/// The single range-spec of a `bytes=` header value, or None for another unit, a
/// malformed value, or more than one range.
fn single_range_spec(value: &str) -> Option<&str> {
    let (unit, set) = value.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let spec = specs.next()?;
    match specs.next() {
        Some(_) => None,
        None => Some(spec),
    }
}

/// A run of ASCII digits as a u64, saturating at u64::MAX; None if empty or not digits.
fn parse_position(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(digits.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// `Content-Range` value for a 206: `bytes 0-99/1234`.
pub fn content_range(start: u64, end_inclusive: u64, size: u64) -> String {
    format!("bytes {start}-{end_inclusive}/{size}")
}

/// `Content-Range` value for a 416: `bytes */1234`.
pub fn unsatisfied_range(size: u64) -> String {
    format!("bytes */{size}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeOutcome::{Full, Partial, Unsatisfiable};

    #[test]
    fn mime_types_by_extension() {
        let expected = [
            ("index.html", "text/html; charset=utf-8"),
            ("old.htm", "text/html; charset=utf-8"),
            ("a/site.css", "text/css; charset=utf-8"),
            ("app.js", "text/javascript; charset=utf-8"),
            ("mod.mjs", "text/javascript; charset=utf-8"),
            ("data.json", "application/json"),
            ("app.js.map", "application/json"),
            ("robots.txt", "text/plain; charset=utf-8"),
            ("README.md", "text/markdown; charset=utf-8"),
            ("feed.xml", "application/xml"),
            ("logo.svg", "image/svg+xml"),
            ("a.png", "image/png"),
            ("a.jpg", "image/jpeg"),
            ("a.jpeg", "image/jpeg"),
            ("a.gif", "image/gif"),
            ("a.webp", "image/webp"),
            ("a.avif", "image/avif"),
            ("favicon.ico", "image/x-icon"),
            ("f.woff", "font/woff"),
            ("f.woff2", "font/woff2"),
            ("f.ttf", "font/ttf"),
            ("f.otf", "font/otf"),
            ("f.eot", "application/vnd.ms-fontobject"),
            ("v.mp4", "video/mp4"),
            ("v.webm", "video/webm"),
            ("s.mp3", "audio/mpeg"),
            ("s.ogg", "audio/ogg"),
            ("s.wav", "audio/wav"),
            ("doc.pdf", "application/pdf"),
            ("bundle.zip", "application/zip"),
            ("m.wasm", "application/wasm"),
            ("t.csv", "text/csv; charset=utf-8"),
            ("site.webmanifest", "application/manifest+json"),
        ];
        for (path, mime) in expected {
            assert_eq!(mime_for(path), mime, "{path}");
        }
    }

    #[test]
    fn mime_is_case_insensitive() {
        assert_eq!(mime_for("INDEX.HTML"), "text/html; charset=utf-8");
        assert_eq!(mime_for("Photo.JPG"), "image/jpeg");
        assert_eq!(mime_for("a/B.WoFf2"), "font/woff2");
        assert_eq!(mime_for("x.WASM"), "application/wasm");
    }

    #[test]
    fn mime_unknown_or_missing_extension() {
        for path in [
            "",
            "LICENSE",
            "a.unknown",
            "archive.tar.gz",
            ".htaccess",
            "name.",
            "dir/",
            "v1.2/file",
        ] {
            assert_eq!(mime_for(path), DEFAULT_MIME, "{path}");
        }
        // Only the last segment counts.
        assert_eq!(mime_for("a.html/b"), DEFAULT_MIME);
        assert_eq!(mime_for("a.b/c.css"), "text/css; charset=utf-8");
    }

    #[test]
    fn every_text_type_has_a_charset_and_nothing_else_does() {
        for (ext, mime) in MIME_TYPES {
            assert_eq!(
                mime.starts_with("text/"),
                mime.ends_with("; charset=utf-8"),
                "{ext}"
            );
            assert_eq!(*ext, ext.to_ascii_lowercase());
        }
    }

    #[test]
    fn html_is_always_revalidated() {
        for path in [
            "index.html",
            "chapter-12.html",
            "assets/page.html",
            "app-3f2a9c1b.html",
        ] {
            assert_eq!(cache_control(path, mime_for(path)), CACHE_HTML, "{path}");
        }
        assert_eq!(cache_control("x", "TEXT/HTML"), CACHE_HTML);
        assert_eq!(cache_control("x", "text/html;charset=utf-8"), CACHE_HTML);
        assert_eq!(cache_control("x", "text/htmlx"), CACHE_DEFAULT);
    }

    #[test]
    fn fingerprinted_assets_are_immutable() {
        for path in [
            "app-3f2a9c1b.js",
            "main.a1b2c3d4.css",
            "static/js/main.8f2c1d9e.chunk.js",
            "static/js/787.1c2d3e4f.chunk.js",
            "lib.3f2a9c1b.min.js",
            "js/vendor.0123456789abcdef.js",
            "MAIN.A1B2C3D4.CSS",
            "app-5HZGQT3R.js",
            "chunk-Ab3dE_f9.mjs",
            "img/logo.9a8b7c6d.png",
            "font-Inter.2F4E6A8C.woff2",
            "assets/logo.png",
            "assets/index-BpQ3_x-Z.js",
            "blog/assets/photo.jpg",
            "a/b/assets/c/d.svg",
        ] {
            assert!(is_fingerprinted(path), "{path}");
            assert_eq!(
                cache_control(path, mime_for(path)),
                CACHE_IMMUTABLE,
                "{path}"
            );
        }
    }

    #[test]
    fn ordinary_files_get_the_short_cache() {
        for path in [
            "my-favourite.css",
            "style.css",
            "app.js",
            "jquery-3.7.1.min.js",
            "bootstrap.bundle.min.js",
            "report-2024-final.pdf",
            "bg-1920x1080-dark.jpg",
            "app-3f2a9c1.js",      // 7 hex chars: too short
            "backup-20240101.pdf", // a date, not a hash
            "bg-1920x1080.jpg",    // a size
            "notes-chapter12.md",  // a numbered word
            "x-deadbeefcafe.js",   // hex letters without a digit
            "my-stylesheet.css",   // a word without a digit
            "app-3f2a9c1b",        // no extension
            "-3f2a9c1b.js",        // no name before the hash
            ".3f2a9c1b.js",        // dotfile, no name
            "app_3f2a9c1b.js",     // `_` is not a separator
            "app-3f2a9c1b!.js",    // not hash characters
            "myassets/app.js",     // not a directory named `assets`
            "assets-dir/app.js",   // likewise
            "Assets/app.js",       // names are case-sensitive
            "static/assets",       // a file named `assets`
            "favicon.ico",
            "robots.txt",
        ] {
            assert!(!is_fingerprinted(path), "{path}");
            assert_eq!(cache_control(path, mime_for(path)), CACHE_DEFAULT, "{path}");
        }
    }

    #[test]
    fn range_forms() {
        assert_eq!(
            parse_range(Some("bytes=0-99"), 1234),
            Partial {
                start: 0,
                end_inclusive: 99
            }
        );
        assert_eq!(
            parse_range(Some("bytes=100-"), 1234),
            Partial {
                start: 100,
                end_inclusive: 1233
            }
        );
        assert_eq!(
            parse_range(Some("bytes=-500"), 1234),
            Partial {
                start: 734,
                end_inclusive: 1233
            }
        );
        assert_eq!(
            parse_range(Some("bytes=0-0"), 1),
            Partial {
                start: 0,
                end_inclusive: 0
            }
        );
        assert_eq!(
            parse_range(Some("bytes=0-"), 10),
            Partial {
                start: 0,
                end_inclusive: 9
            }
        );
        assert_eq!(
            parse_range(Some("bytes=9-9"), 10),
            Partial {
                start: 9,
                end_inclusive: 9
            }
        );
        assert_eq!(
            parse_range(Some("bytes=-1"), 10),
            Partial {
                start: 9,
                end_inclusive: 9
            }
        );
    }

    #[test]
    fn range_clamping() {
        // Suffix longer than the file: the whole file.
        assert_eq!(
            parse_range(Some("bytes=-500"), 100),
            Partial {
                start: 0,
                end_inclusive: 99
            }
        );
        assert_eq!(
            parse_range(Some("bytes=-100"), 100),
            Partial {
                start: 0,
                end_inclusive: 99
            }
        );
        // End past the file: clamped to the last byte.
        assert_eq!(
            parse_range(Some("bytes=50-1000"), 100),
            Partial {
                start: 50,
                end_inclusive: 99
            }
        );
        assert_eq!(
            parse_range(Some("bytes=0-99999999999999999999999"), 100),
            Partial {
                start: 0,
                end_inclusive: 99
            }
        );
        assert_eq!(
            parse_range(Some("bytes=-99999999999999999999999"), 100),
            Partial {
                start: 0,
                end_inclusive: 99
            }
        );
    }

    #[test]
    fn range_unsatisfiable() {
        assert_eq!(parse_range(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5000-6000"), 100), Unsatisfiable);
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
        assert_eq!(parse_range(Some("bytes=-0"), 100), Unsatisfiable);
        for header in [
            "bytes=0-0",
            "bytes=0-",
            "bytes=-1",
            "bytes=-500",
            "bytes=5-10",
        ] {
            assert_eq!(parse_range(Some(header), 0), Unsatisfiable, "{header}");
        }
    }

    #[test]
    fn range_ignored_means_full() {
        for header in [
            "",
            "bytes",
            "bytes=",
            "bytes=-",
            "bytes=abc",
            "bytes=1-a",
            "bytes=a-1",
            "bytes=+1-2",
            "bytes=1--2",
            "bytes=1-2-3",
            "bytes=0x10-20",
            "bytes=--5",
            "bytes=10-5", // last < first: invalid
            "bytes=1.5-2",
            "items=0-5",
            "bits=0-5",
            "0-5",
            "bytes 0-5",
            "bytes=,",
            "bytes=0-1,5-6", // multiple ranges: not implemented
            "bytes=0-1, -5",
            "bytes=0-1,5-6,9-",
        ] {
            assert_eq!(parse_range(Some(header), 100), Full, "{header:?}");
        }
        assert_eq!(parse_range(None, 100), Full);
        assert_eq!(parse_range(None, 0), Full);
        // Malformed is ignored even for an empty file.
        assert_eq!(parse_range(Some("bytes=x"), 0), Full);
    }

    #[test]
    fn range_whitespace_and_case() {
        let first_hundred = Partial {
            start: 0,
            end_inclusive: 99,
        };
        for header in [
            " bytes=0-99 ",
            "bytes = 0-99",
            "bytes= 0 - 99",
            "\tbytes=0-99\t",
            "Bytes=0-99",
            "BYTES=0-99",
            "bytes=0-99,", // empty list elements are skipped
            "bytes=, 0-99 ,",
        ] {
            assert_eq!(parse_range(Some(header), 1234), first_hundred, "{header:?}");
        }
        assert_eq!(
            parse_range(Some("bytes= -5"), 10),
            Partial {
                start: 5,
                end_inclusive: 9
            }
        );
        assert_eq!(
            parse_range(Some("bytes=5 - "), 10),
            Partial {
                start: 5,
                end_inclusive: 9
            }
        );
    }

    #[test]
    fn content_range_values() {
        assert_eq!(content_range(0, 99, 1234), "bytes 0-99/1234");
        assert_eq!(content_range(0, 0, 1), "bytes 0-0/1");
        assert_eq!(unsatisfied_range(1234), "bytes */1234");
        assert_eq!(unsatisfied_range(0), "bytes */0");
    }
}
