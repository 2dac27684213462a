//! The request line beyond what httparse decides (RFC 9112 §2.3, §3): the request-target
//! forms (origin, absolute, asterisk), methods fazt implements nowhere (501), and HTTP
//! versions other than 1.0 and 1.1, which httparse refuses outright: a later 1.x is
//! served as 1.1 (RFC 9110 §2.5), any other major version is 505.

use super::parse::parse_host;
use super::request::Method;
use super::HttpError;
use std::ops::Range;

/// Refuses a method fazt implements on no route with 501 (RFC 9110 §9.1); a known method
/// a route does not allow is that route's 405.
pub(super) fn check_method(method: &str) -> Result<Method, HttpError> {
    match Method::parse(method) {
        Method::Other => Err(HttpError::NotImplemented(shorten(method).to_string())),
        known => Ok(known),
    }
}

/// Where the path of a request target is, once its form is known.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum TargetForm {
    /// origin-form (`/path?query`) or asterisk-form (`*`, OPTIONS only): as sent.
    AsSent,
    /// absolute-form (`http://host/path?query`, RFC 9112 §3.2.2): the authority's host,
    /// lower-cased and without its port, which replaces the Host header; the path and
    /// query start at byte `path_from` of the target, and `add_slash` is set when the
    /// path is empty (`http://host` or `http://host?q`), which means `/`.
    Absolute {
        host: String,
        path_from: usize,
        add_slash: bool,
    },
}

/// Classifies `target`; anything but the three forms a server accepts is 400 (the
/// authority-form is CONNECT's, refused as a method before this). Inlined for the usual
/// origin-form; the rest is out of line.
#[inline]
pub(super) fn target_form(method: Method, target: &str) -> Result<TargetForm, HttpError> {
    if target.starts_with('/') {
        return Ok(TargetForm::AsSent);
    }
    other_target_form(method, target)
}

fn other_target_form(method: Method, target: &str) -> Result<TargetForm, HttpError> {
    if target == "*" && method == Method::Options {
        return Ok(TargetForm::AsSent);
    }
    let absolute = target.split_once("://").filter(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")
    });
    let Some((scheme, rest)) = absolute else {
        return Err(HttpError::BadRequest(format!(
            "request target must be an absolute path or an http:// URL, got '{}'",
            shorten(target)
        )));
    };
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    // RFC 9110 §4.2.4: userinfo in an http URI is an error, never a credential.
    if authority.contains('@') {
        return Err(HttpError::BadRequest(format!(
            "request target '{}' has user information, which http URLs may not carry",
            shorten(target)
        )));
    }
    let host = parse_host(authority.as_bytes()).ok_or_else(|| {
        HttpError::BadRequest(format!(
            "request target '{}' has no valid host",
            shorten(target)
        ))
    })?;
    let path_from = scheme.len() + "://".len() + authority_len;
    Ok(TargetForm::Absolute {
        host,
        path_from,
        add_slash: !target[path_from..].starts_with('/'),
    })
}

/// A request line read by hand because httparse refused its version.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct LaterVersion {
    pub method: Range<usize>,
    pub target: Range<usize>,
    /// Where the header lines start (just past the request line's end).
    pub headers_from: usize,
}

/// Reads the request line at the front of `buf` after httparse refused its version,
/// which it does only once it has read the method and the target, each followed by one
/// space: `Ok(None)` while the version or the line end is still arriving.
pub(super) fn later_version(buf: &[u8]) -> Result<Option<LaterVersion>, HttpError> {
    // httparse skips empty lines before a request line, and so must the ranges here.
    let start = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    let space_after = |from: usize| {
        buf.get(from..)
            .and_then(|rest| rest.iter().position(|&b| b == b' '))
            .map(|i| from + i)
    };
    let malformed = || HttpError::BadRequest("malformed request line".into());
    let method_end = space_after(start).ok_or_else(malformed)?;
    let target_end = space_after(method_end + 1).ok_or_else(malformed)?;
    let version_from = target_end + 1;
    let version = &buf[version_from..];
    let Some((major, minor)) = version_digits(version)? else {
        return Ok(None);
    };
    if major != b'1' {
        return Err(HttpError::VersionNotSupported(format!(
            "HTTP/{}.{}",
            char::from(major),
            char::from(minor)
        )));
    }
    let line_end = match &version[8..] {
        [] | [b'\r'] => return Ok(None),
        [b'\r', b'\n', ..] => 10,
        [b'\n', ..] => 9,
        _ => return Err(malformed()),
    };
    Ok(Some(LaterVersion {
        method: start..method_end,
        target: method_end + 1..target_end,
        headers_from: version_from + line_end,
    }))
}

/// The major and minor digits of `HTTP/d.d` (RFC 9112 §2.3: one digit each) at the
/// front of `version`; `None` while it is a true prefix of one.
fn version_digits(version: &[u8]) -> Result<Option<(u8, u8)>, HttpError> {
    const SHAPE: &[u8; 8] = b"HTTP/d.d";
    let fits = version.iter().zip(SHAPE).all(|(&b, &want)| {
        if want == b'd' {
            b.is_ascii_digit()
        } else {
            b == want
        }
    });
    if !fits {
        let shown = &version[..version.len().min(16)];
        return Err(HttpError::BadRequest(format!(
            "malformed HTTP version '{}'",
            String::from_utf8_lossy(shown)
        )));
    }
    Ok((version.len() >= SHAPE.len()).then(|| (version[5], version[7])))
}

/// At most 100 characters of client text quoted in an error message.
fn shorten(text: &str) -> &str {
    match text.char_indices().nth(100) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn absolute(host: &str, path_from: usize, add_slash: bool) -> TargetForm {
        TargetForm::Absolute {
            host: host.into(),
            path_from,
            add_slash,
        }
    }

    #[test]
    fn methods() {
        for known in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert!(check_method(known).is_ok(), "{known}");
        }
        for unknown in ["BREW", "TRACE", "CONNECT", "PROPFIND", "get"] {
            let error = check_method(unknown).unwrap_err();
            assert_eq!(error.status(), 501, "{unknown}");
            assert!(error.to_string().contains(unknown), "{error}");
        }
    }

    #[test]
    fn target_forms() {
        let form = |target| target_form(Method::Get, target);
        assert_eq!(form("/a?b").unwrap(), TargetForm::AsSent);
        assert_eq!(
            target_form(Method::Options, "*").unwrap(),
            TargetForm::AsSent
        );
        assert!(form("*").is_err());
        assert_eq!(
            form("http://Blog.localhost:4698/a?b").unwrap(),
            absolute("blog.localhost", 26, false)
        );
        assert_eq!(
            form("HTTPS://blog.localhost").unwrap(),
            absolute("blog.localhost", 22, true)
        );
        assert_eq!(
            form("http://blog.localhost?x=1").unwrap(),
            absolute("blog.localhost", 21, true)
        );
        assert_eq!(
            form("http://[::1]:80/").unwrap(),
            absolute("[::1]", 15, false)
        );
        for bad in [
            "index.html",
            "ftp://blog.localhost/",
            "http://",
            "http:///a",
            "http://user@blog.localhost/",
            "http://bad host/",
            "http://a:port/",
            "http:/blog.localhost/",
            "blog.localhost:443",
        ] {
            let error = form(bad).unwrap_err();
            assert_eq!(error.status(), 400, "{bad}");
        }
    }

    #[test]
    fn later_minor_versions_read_as_one_one() {
        let line = later_version(b"GET /a HTTP/1.2\r\nHost: a\r\n\r\n").unwrap();
        assert_eq!(
            line,
            Some(LaterVersion {
                method: 0..3,
                target: 4..6,
                headers_from: 17,
            })
        );
        let line = later_version(b"\r\nGET / HTTP/1.9\nHost: a\n\n").unwrap();
        assert_eq!(
            line,
            Some(LaterVersion {
                method: 2..5,
                target: 6..7,
                headers_from: 17,
            })
        );
        // Still arriving.
        for partial in [
            "GET / HTTP/1",
            "GET / HTTP/1.",
            "GET / HTTP/1.2",
            "GET / HTTP/1.2\r",
        ] {
            assert_eq!(
                later_version(partial.as_bytes()).unwrap(),
                None,
                "{partial}"
            );
        }
    }

    #[test]
    fn other_major_versions_are_505_and_bad_ones_400() {
        for (line, version) in [
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "HTTP/2.0"),
            ("GET / HTTP/2.0\r\n", "HTTP/2.0"),
            ("GET / HTTP/3.0", "HTTP/3.0"),
            ("GET / HTTP/0.9\r\n", "HTTP/0.9"),
            ("GET / HTTP/9.9\r\n", "HTTP/9.9"),
        ] {
            let error = later_version(line.as_bytes()).unwrap_err();
            assert_eq!(error.status(), 505, "{line}");
            assert!(error.to_string().starts_with(version), "{error}");
        }
        for line in [
            "GET / HTTP/1.x\r\n",
            "GET / HTTP/12.0\r\n",
            "GET / HTTP/1.2x\r\n",
            "GET / HTTPS/1.1\r\n",
            "GET / http/1.1\r\n",
            "GET\r\n",
        ] {
            let error = later_version(line.as_bytes()).unwrap_err();
            assert_eq!(error.status(), 400, "{line}");
        }
    }
}
