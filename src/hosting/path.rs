//! Request path normalisation: from the path part of a request target to the
//! site-relative path looked up in a deployment, and the lookup order for serving.
//!
//! Invariants of a path returned by [`normalize`]:
//! - it has no leading slash; a trailing slash is kept as the marker for "directory"
//!   (`/` → `""`, `/a/` → `"a/"`, `/a/b.html` → `"a/b.html"`);
//! - it is percent-decoded exactly once and is valid UTF-8;
//! - every segment is non-empty and is neither `.` nor `..`;
//! - it contains no backslash and no control character (bytes below 0x20 and 0x7f);
//! - a `/` in it only ever separates segments (an encoded `%2F` is rejected, never decoded).
//!
//! Anything else is refused with a [`PathError`] (a 400), never repaired: a client that
//! sends `//`, `/./` or `..` is either broken or probing, and guessing what it meant is
//! how traversal bugs start. In particular empty segments from `//` are rejected rather
//! than collapsed.
//!
//! Decoding happens once. `%252e%252e` decodes to the literal name `%2e%2e`, which is an
//! odd but harmless file name, not a traversal: the store is looked up by the decoded
//! string and nothing decodes it a second time. A `+` is a literal plus in a path (only
//! form bodies and query strings use it for a space).

use std::borrow::Cow;
use std::fmt;

/// Longest raw path accepted, in bytes (before decoding).
pub const MAX_PATH_BYTES: usize = 2048;
/// Most segments a path may have; the trailing-slash marker is not a segment.
pub const MAX_SEGMENTS: usize = 64;

/// Why a request path was refused. Every variant is answered with 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// The path does not start with `/`.
    NotAbsolute,
    /// The raw path is longer than [`MAX_PATH_BYTES`].
    TooLong,
    /// The path has more than [`MAX_SEGMENTS`] segments.
    TooManySegments,
    /// Two slashes in a row (`//`).
    EmptySegment,
    /// A `.` segment, raw or encoded.
    DotSegment,
    /// A `..` segment, raw, encoded or partly encoded.
    DotDotSegment,
    /// `%2F`: a slash hidden inside a segment.
    EncodedSlash,
    /// A backslash, raw or encoded (`%5C`).
    Backslash,
    /// A control character (below 0x20, or 0x7f) after decoding, NUL included.
    ControlCharacter,
    /// A `%` not followed by two hex digits.
    MalformedEscape,
    /// The decoded bytes are not UTF-8.
    InvalidUtf8,
}

impl PathError {
    /// A short sentence for the JSON body of the 400 answer.
    pub fn message(&self) -> &'static str {
        match self {
            PathError::NotAbsolute => "path must start with '/'",
            PathError::TooLong => "path is longer than 2048 bytes",
            PathError::TooManySegments => "path has more than 64 segments",
            PathError::EmptySegment => "path contains an empty segment ('//')",
            PathError::DotSegment => "path contains a '.' segment",
            PathError::DotDotSegment => "path contains a '..' segment",
            PathError::EncodedSlash => "path contains an encoded '/' (%2F)",
            PathError::Backslash => "path contains a backslash",
            PathError::ControlCharacter => "path contains a control character",
            PathError::MalformedEscape => "path contains a malformed percent-escape",
            PathError::InvalidUtf8 => "path is not valid UTF-8 after percent-decoding",
        }
    }
}

/// Every refused path is a 400 with code `bad_path`.
impl crate::http::ResponseError for PathError {
    fn status(&self) -> u16 {
        400
    }

    fn code(&self) -> &'static str {
        "bad_path"
    }
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for PathError {}

/// Normalises the path part of a request target (query already split off), e.g.
/// `/blog/My%20Post/` → `"blog/My Post/"`. See the module documentation for the rules.
pub fn normalize(raw_path: &str) -> Result<String, PathError> {
    let rest = raw_path.strip_prefix('/').ok_or(PathError::NotAbsolute)?;
    if raw_path.len() > MAX_PATH_BYTES {
        return Err(PathError::TooLong);
    }
    if rest.is_empty() {
        return Ok(String::new());
    }
    let (body, is_dir) = match rest.strip_suffix('/') {
        Some(body) => (body, true),
        None => (rest, false),
    };
    let mut out = String::with_capacity(rest.len());
    // Splitting the raw text is safe because an encoded slash is refused, so decoding can
    // never create a separator.
    for (index, raw_segment) in body.split('/').enumerate() {
        if index >= MAX_SEGMENTS {
            return Err(PathError::TooManySegments);
        }
        if raw_segment.is_empty() {
            return Err(PathError::EmptySegment);
        }
        if index > 0 {
            out.push('/');
        }
        out.push_str(&decode_segment(raw_segment)?);
    }
    if is_dir {
        out.push('/');
    }
    Ok(out)
}

/// Percent-decodes one segment and checks what the decoded segment may contain.
fn decode_segment(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let high = bytes.get(i + 1).copied().and_then(hex_value);
            let low = bytes.get(i + 2).copied().and_then(hex_value);
            match (high, low) {
                (Some(high), Some(low)) => decoded.push(high << 4 | low),
                _ => return Err(PathError::MalformedEscape),
            }
            i += 3;
        } else {
            decoded.push(byte);
            i += 1;
        }
    }
    // Byte-wise checks are exact before UTF-8 validation: every byte of a multi-byte
    // UTF-8 sequence is >= 0x80, so none of these can be part of one.
    for &byte in &decoded {
        match byte {
            b'/' => return Err(PathError::EncodedSlash),
            b'\\' => return Err(PathError::Backslash),
            0x00..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
            _ => {}
        }
    }
    let segment = String::from_utf8(decoded).map_err(|_| PathError::InvalidUtf8)?;
    match segment.as_str() {
        "." => Err(PathError::DotSegment),
        ".." => Err(PathError::DotDotSegment),
        _ => Ok(segment),
    }
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// The extension of the last segment of `path`, without the dot: the text after its last
/// `.`, provided that dot is neither the first character (`.htaccess` has none) nor the
/// last (`name.` has none). Case is kept.
pub fn extension(path: &str) -> Option<&str> {
    let name = path.rsplit('/').next().unwrap_or(path);
    match name.rfind('.') {
        Some(dot) if dot > 0 && dot + 1 < name.len() => Some(&name[dot + 1..]),
        _ => None,
    }
}

/// The one top-level directory whose dot-name is published (RFC 8615 well-known URIs:
/// `security.txt`, WebFinger, Matrix delegation, ACME challenges of other tools).
pub const WELL_KNOWN: &str = ".well-known";

/// Whether a site-relative path (a file, or a directory without its trailing slash) is
/// published. Paths with a segment starting with `.` (`.git/config`, `.env`,
/// `a/.DS_Store`) are not: they are version control, secrets and editor litter, not
/// pages. The exception is `.well-known` at the top and everything under it. The deploy
/// archive, `fazt site import` and the deploy client's zip all decide with this one rule.
pub fn is_published(path: &str) -> bool {
    let well_known = path
        .strip_prefix(WELL_KNOWN)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'));
    well_known || !path.split('/').any(|segment| segment.starts_with('.'))
}

/// Whether `found`, a candidate of `normalized`, is the directory index reached without
/// its trailing slash (`blog` → `blog/index.html`). Such a request is redirected to
/// `blog/` rather than served: served at `/blog`, the page's relative links would resolve
/// against `/`.
pub fn is_index_without_slash(normalized: &str, found: &str) -> bool {
    !normalized.is_empty()
        && !normalized.ends_with('/')
        && found
            .strip_prefix(normalized)
            .is_some_and(|rest| rest == "/index.html")
}

/// The stored paths to try, in order, for a path returned by [`normalize`]:
/// - `""` → `index.html`;
/// - `"dir/"` → `dir/index.html`;
/// - a name with an extension (`"a/b.css"`) → itself only;
/// - a name without one (`"about"`) → `about`, `about.html`, `about/index.html`
///   (clean URLs; a file stored under the bare name wins).
///
/// The last one is found only to redirect `/about` to `/about/` (see
/// [`is_index_without_slash`]).
///
/// Produced lazily and borrowed where possible: the first candidate usually exists, so the
/// others are never built, and `""` or `"a/b.css"` cost no allocation.
pub fn candidates(normalized: &str) -> impl Iterator<Item = Cow<'_, str>> {
    let (first, clean_url) = if normalized.is_empty() {
        (Cow::Borrowed("index.html"), false)
    } else if normalized.ends_with('/') {
        (Cow::Owned([normalized, "index.html"].concat()), false)
    } else {
        (Cow::Borrowed(normalized), extension(normalized).is_none())
    };
    let clean_urls = clean_url
        .then_some([".html", "/index.html"])
        .into_iter()
        .flatten()
        .map(move |suffix| Cow::Owned([normalized, suffix].concat()));
    std::iter::once(first).chain(clean_urls)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_candidates(normalized: &str) -> Vec<String> {
        candidates(normalized).map(Cow::into_owned).collect()
    }

    fn ok(raw: &str) -> String {
        match normalize(raw) {
            Ok(path) => path,
            Err(e) => panic!("{raw:?} was refused: {e}"),
        }
    }

    fn err(raw: &str) -> PathError {
        match normalize(raw) {
            Ok(path) => panic!("{raw:?} was accepted as {path:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn plain_paths_lose_the_leading_slash_and_keep_the_trailing_one() {
        assert_eq!(ok("/"), "");
        assert_eq!(ok("/a"), "a");
        assert_eq!(ok("/a/"), "a/");
        assert_eq!(ok("/a/b.html"), "a/b.html");
        assert_eq!(ok("/a/b/c/"), "a/b/c/");
        assert_eq!(ok("/.well-known/security.txt"), ".well-known/security.txt");
        assert_eq!(ok("/..."), "...");
        assert_eq!(ok("/a..b/..c/c../.d"), "a..b/..c/c../.d");
        assert_eq!(ok("/a+b"), "a+b");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(ok("/blog/My%20Post/"), "blog/My Post/");
        assert_eq!(ok("/%41%62%63"), "Abc");
        assert_eq!(ok("/%3f%23%25"), "?#%");
        assert_eq!(ok("/a%2Eb"), "a.b");
    }

    #[test]
    fn unicode_names() {
        assert_eq!(ok("/caf%C3%A9/"), "café/");
        assert_eq!(ok("/caf%c3%a9"), "café");
        assert_eq!(ok("/café/menü.html"), "café/menü.html");
        assert_eq!(ok("/%E6%97%A5%E6%9C%AC.html"), "日本.html");
        assert_eq!(ok("/%F0%9F%A6%80.png"), "🦀.png");
        assert_eq!(ok("/日本/%F0%9F%A6%80"), "日本/🦀");
    }

    #[test]
    fn dot_dot_segments_in_every_spelling() {
        for raw in [
            "/..",
            "/../",
            "/../etc/passwd",
            "/a/..",
            "/a/../",
            "/a/../b",
            "/a/b/../../..",
            "/%2e%2e",
            "/%2E%2E/",
            "/%2e%2E/etc",
            "/%2E%2e/etc",
            "/a/%2e%2e/b",
            "/a/.%2e/b",
            "/a/%2e./b",
            "/a/.%2E",
            "/a/%2E.",
        ] {
            assert_eq!(err(raw), PathError::DotDotSegment, "{raw}");
        }
    }

    #[test]
    fn dot_segments() {
        for raw in [
            "/.", "/./", "/./a", "/a/.", "/a/./b", "/%2e/a", "/a/%2E/", "/a/%2e",
        ] {
            assert_eq!(err(raw), PathError::DotSegment, "{raw}");
        }
    }

    #[test]
    fn double_encoding_decodes_once_to_a_literal_name() {
        assert_eq!(ok("/%252e%252e/x"), "%2e%2e/x");
        assert_eq!(ok("/a/%252E%252E/"), "a/%2E%2E/");
        assert_eq!(ok("/a%252Fb"), "a%2Fb");
        assert_eq!(ok("/a%255cb"), "a%5cb");
        assert_eq!(ok("/%2500"), "%00");
    }

    #[test]
    fn encoded_slash() {
        for raw in [
            "/a%2fb",
            "/a%2Fb",
            "/%2f",
            "/%2F/",
            "/..%2f..%2fetc",
            "/%2e%2e%2fetc",
        ] {
            assert_eq!(err(raw), PathError::EncodedSlash, "{raw}");
        }
    }

    #[test]
    fn backslash_raw_or_encoded() {
        for raw in [
            "/a\\b",
            "/\\",
            "/..\\..\\etc",
            "/a%5cb",
            "/a%5Cb",
            "/%5c..%5c",
            "/%2e%2e%5c",
        ] {
            assert_eq!(err(raw), PathError::Backslash, "{raw}");
        }
    }

    #[test]
    fn control_characters() {
        for raw in [
            "/%00",
            "/a%00.html",
            "/index.html%00.png",
            "/a%0a",
            "/a%0D%0Ab",
            "/a%09",
            "/a%1f",
            "/a%1F",
            "/a%7f",
            "/a%7F",
            "/a\u{1}b",
            "/a\tb",
            "/a\u{7f}",
        ] {
            assert_eq!(err(raw), PathError::ControlCharacter, "{raw:?}");
        }
        // Space is not a control character.
        assert_eq!(ok("/%20"), " ");
    }

    #[test]
    fn empty_segments_are_refused_not_collapsed() {
        for raw in ["//", "//a", "/a//b", "/a//", "///", "/a/b//c/"] {
            assert_eq!(err(raw), PathError::EmptySegment, "{raw}");
        }
    }

    #[test]
    fn path_must_be_absolute() {
        for raw in [
            "",
            "a",
            "a/b",
            "*",
            "http://example.com/a",
            "%2fa",
            "\\a",
            "./a",
            "../a",
        ] {
            assert_eq!(err(raw), PathError::NotAbsolute, "{raw}");
        }
    }

    #[test]
    fn malformed_escapes() {
        for raw in [
            "/%zz", "/%", "/a%", "/%4", "/a%4/", "/%g0", "/%0g", "/%%41", "/%-1", "/% 1",
        ] {
            assert_eq!(err(raw), PathError::MalformedEscape, "{raw}");
        }
    }

    #[test]
    fn invalid_utf8_after_decoding() {
        for raw in [
            "/%ff",
            "/%FF%FE",
            "/%c3%28",
            "/%e2%82",
            "/%C3",
            "/%80",
            "/%c0%ae%c0%ae", // overlong '.' (old IIS traversal)
            "/%ED%A0%80",    // surrogate
        ] {
            assert_eq!(err(raw), PathError::InvalidUtf8, "{raw}");
        }
    }

    #[test]
    fn length_limit_is_on_the_raw_bytes() {
        let at_limit = format!("/{}", "a".repeat(MAX_PATH_BYTES - 1));
        assert_eq!(ok(&at_limit).len(), MAX_PATH_BYTES - 1);
        let over = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert_eq!(err(&over), PathError::TooLong);
        // Encoded bytes count as sent: 683 × "%41" is 2049 bytes even though it decodes to 683.
        let encoded = format!("/{}", "%41".repeat(683));
        assert_eq!(err(&encoded), PathError::TooLong);
    }

    #[test]
    fn segment_limit() {
        let at_limit = "/a".repeat(MAX_SEGMENTS);
        assert_eq!(ok(&at_limit).split('/').count(), MAX_SEGMENTS);
        // The trailing slash is a marker, not a 65th segment.
        assert!(normalize(&format!("{at_limit}/")).is_ok());
        let over = "/a".repeat(MAX_SEGMENTS + 1);
        assert_eq!(err(&over), PathError::TooManySegments);
        assert_eq!(err(&format!("{over}/")), PathError::TooManySegments);
    }

    #[test]
    fn messages_name_the_reason() {
        assert_eq!(
            PathError::DotDotSegment.message(),
            "path contains a '..' segment"
        );
        assert_eq!(
            PathError::DotDotSegment.to_string(),
            PathError::DotDotSegment.message()
        );
        use crate::http::ResponseError;
        assert_eq!(PathError::EncodedSlash.status(), 400);
        assert_eq!(PathError::EncodedSlash.code(), "bad_path");
        assert!(PathError::TooLong.message().contains("2048"));
    }

    #[test]
    fn extension_of_the_last_segment() {
        assert_eq!(extension("a/b.css"), Some("css"));
        assert_eq!(extension("a.tar.GZ"), Some("GZ"));
        assert_eq!(extension("v1.2/about"), None);
        assert_eq!(extension(".htaccess"), None);
        assert_eq!(extension("a/.env"), None);
        assert_eq!(extension("name."), None);
        assert_eq!(extension(""), None);
        assert_eq!(extension("dir/"), None);
    }

    #[test]
    fn candidate_lookup_order() {
        assert_eq!(all_candidates(""), ["index.html"]);
        assert_eq!(all_candidates("dir/"), ["dir/index.html"]);
        assert_eq!(all_candidates("a/b/"), ["a/b/index.html"]);
        assert_eq!(
            all_candidates("about"),
            ["about", "about.html", "about/index.html"]
        );
        assert_eq!(
            all_candidates("blog/My Post"),
            [
                "blog/My Post",
                "blog/My Post.html",
                "blog/My Post/index.html"
            ]
        );
        assert_eq!(all_candidates("a/b.css"), ["a/b.css"]);
        assert_eq!(all_candidates("about.html"), ["about.html"]);
        assert_eq!(
            all_candidates("v1.2/notes"),
            ["v1.2/notes", "v1.2/notes.html", "v1.2/notes/index.html"]
        );
        assert_eq!(
            all_candidates(".well-known/.hidden"),
            [
                ".well-known/.hidden",
                ".well-known/.hidden.html",
                ".well-known/.hidden/index.html"
            ]
        );
        assert_eq!(
            all_candidates("日本/🦀"),
            ["日本/🦀", "日本/🦀.html", "日本/🦀/index.html"]
        );
    }

    #[test]
    fn dot_paths_are_unpublished_except_well_known() {
        for published in [
            "index.html",
            "a/b.css",
            "a..b/c",
            ".well-known",
            ".well-known/security.txt",
            ".well-known/acme-challenge/token",
            ".well-known/.hidden",
        ] {
            assert!(is_published(published), "{published}");
        }
        for hidden in [
            ".git",
            ".git/config",
            ".env",
            "a/.DS_Store",
            "docs/.secret",
            ".hidden/x.txt",
            ".well-knownx/a",
            ".well-known-not/a",
            "blog/.well-known/security.txt",
        ] {
            assert!(!is_published(hidden), "{hidden}");
        }
    }

    #[test]
    fn directory_index_without_its_slash() {
        assert!(is_index_without_slash("blog", "blog/index.html"));
        assert!(is_index_without_slash("a/b", "a/b/index.html"));
        assert!(!is_index_without_slash("blog/", "blog/index.html"));
        assert!(!is_index_without_slash("", "index.html"));
        assert!(!is_index_without_slash("about", "about.html"));
        assert!(!is_index_without_slash("about", "about"));
        assert!(!is_index_without_slash(
            "blog/index.html",
            "blog/index.html"
        ));
        for candidate in candidates("about") {
            let redirect = candidate == "about/index.html";
            assert_eq!(is_index_without_slash("about", &candidate), redirect);
        }
    }

    #[test]
    fn normalized_output_feeds_candidates() {
        assert_eq!(all_candidates(&ok("/")), ["index.html"]);
        assert_eq!(all_candidates(&ok("/docs/")), ["docs/index.html"]);
        assert_eq!(all_candidates(&ok("/My%20Page")).len(), 3);
    }
}
