//! The URLs a script may fetch: `http` or `https`, a host, an optional port, no user info.
//! What a script writes is made safe to send rather than refused where a browser would do
//! the same (spaces and non-ASCII in the path are percent-encoded); what a browser would
//! refuse, or what could smuggle a second request, is refused.

use std::fmt;
use std::net::IpAddr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed absolute URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Url {
    pub scheme: Scheme,
    /// Lower-case; an IPv6 literal without its brackets.
    pub host: String,
    pub port: u16,
    /// Path and query, as sent in the request line (starts with `/`, no fragment).
    pub target: String,
}

impl Url {
    pub fn parse(text: &str) -> Result<Url, String> {
        let bad = |why: &str| format!("fetch: bad URL {text:?}: {why}");
        let (scheme, rest) = split_scheme(text).ok_or_else(|| bad("only http and https"))?;
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("user info (user:password@) is not allowed"));
        }
        let (host, port) = split_port(authority).map_err(bad)?;
        let host = parse_host(host).map_err(|why| bad(&why))?;
        let port = match port {
            None => scheme.default_port(),
            // Empty (`host:`) is the default, as in browsers; `+80` is not a port.
            Some("") => scheme.default_port(),
            Some(p) if !p.bytes().all(|b| b.is_ascii_digit()) => return Err(bad("bad port")),
            Some(p) => match p.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("bad port")),
            },
        };
        Ok(Url {
            scheme,
            host,
            port,
            target: target(after),
        })
    }

    /// The host as an IP address, when the URL names one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }

    /// The value of the `Host` header.
    pub fn host_header(&self) -> String {
        crate::http::blocking::host_header(&self.host, self.port, self.scheme.default_port())
    }

    /// Scheme, host and port: whether a redirect stays with the same server.
    pub fn same_origin(&self, other: &Url) -> bool {
        (self.scheme, &self.host, self.port) == (other.scheme, &other.host, other.port)
    }

    /// Where a `Location` header leads from this URL: absolute, scheme-relative
    /// (`//host/p`), absolute-path (`/p`), query-only (`?q`) or relative to this path.
    pub fn join(&self, location: &str) -> Result<Url, String> {
        let location = location.trim();
        if split_scheme(location).is_some() {
            return Url::parse(location);
        }
        if has_scheme(location) {
            return Err(format!(
                "fetch: redirect to {location:?}: only http and https"
            ));
        }
        let origin = format!("{}://{}", self.scheme.as_str(), self.host_header());
        let path = self.target.split('?').next().unwrap_or("/");
        let absolute = if let Some(rest) = location.strip_prefix("//") {
            format!("{}://{rest}", self.scheme.as_str())
        } else if location.starts_with('/') {
            format!("{origin}{location}")
        } else if location.starts_with('?') {
            format!("{origin}{path}{location}")
        } else if location.is_empty() || location.starts_with('#') {
            format!("{origin}{}", self.target)
        } else {
            let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
            format!("{origin}{dir}{location}")
        };
        Url::parse(&absolute)
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.host_header(),
            self.target
        )
    }
}

fn split_scheme(text: &str) -> Option<(Scheme, &str)> {
    let (scheme, rest) = text.split_once("://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some((Scheme::Http, rest)),
        "https" => Some((Scheme::Https, rest)),
        _ => None,
    }
}

/// Whether `text` starts with a scheme (`letter *(letter / digit / "+" / "-" / ".") ":"`).
fn has_scheme(text: &str) -> bool {
    text.split_once(':').is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
    })
}

/// `host[:port]` or `[v6][:port]`.
fn split_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or("unclosed '['")?;
        return match after {
            "" => Ok((authority_v6(host)?, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((authority_v6(host)?, Some(port))),
                None => Err("characters after ']'"),
            },
        };
    }
    Ok(match authority.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    })
}

fn authority_v6(host: &str) -> Result<&str, &'static str> {
    match host.parse::<std::net::Ipv6Addr>() {
        Ok(_) => Ok(host),
        // Zone ids (`fe80::1%25eth0`) name an interface of this host: never a public address.
        Err(_) => Err("not an IPv6 address in '[...]'"),
    }
}

/// A host name of letters, digits, `-`, `_` and dots (lower-cased), or an IP literal.
fn parse_host(host: &str) -> Result<String, String> {
    if host.is_empty() {
        return Err("no host".into());
    }
    if host.parse::<IpAddr>().is_ok() {
        return Ok(host.to_ascii_lowercase());
    }
    if !host.is_ascii() {
        return Err("an international host name must be given in its xn-- form".into());
    }
    if host.len() > 253
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(format!("bad host {host:?}"));
    }
    Ok(host.to_ascii_lowercase())
}

/// The request target: the path and query without the fragment, `/` when empty, with
/// control characters, spaces and non-ASCII bytes percent-encoded (so no CR or LF reaches
/// the request line).
fn target(after_authority: &str) -> String {
    let without_fragment = after_authority.split('#').next().unwrap_or("");
    let mut out = String::with_capacity(without_fragment.len() + 1);
    if !without_fragment.starts_with('/') {
        out.push('/');
    }
    for &b in without_fragment.as_bytes() {
        if b <= b' ' || b >= 0x7f {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_scheme_host_port_and_target() {
        let u = url("https://API.Example.com/v1/items?q=a#frag");
        assert_eq!(
            (u.scheme, u.host.as_str(), u.port, u.target.as_str()),
            (Scheme::Https, "api.example.com", 443, "/v1/items?q=a")
        );
        let u = url("HTTP://example.com:8080");
        assert_eq!(
            (u.scheme, u.port, u.target.as_str()),
            (Scheme::Http, 8080, "/")
        );
        assert_eq!(url("http://example.com?x=1").target, "/?x=1");
        let u = url("http://[2001:db8::1]:81/a");
        assert_eq!((u.host.as_str(), u.port), ("2001:db8::1", 81));
        assert_eq!(u.ip(), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(u.to_string(), "http://[2001:db8::1]:81/a");
        assert_eq!(
            url("http://10.0.0.1/").ip(),
            Some("10.0.0.1".parse().unwrap())
        );
        assert_eq!(url("http://example.com/").ip(), None);
        assert_eq!(
            url("https://example.com:443/x").to_string(),
            "https://example.com/x"
        );
    }

    #[test]
    fn unsafe_bytes_in_the_target_are_encoded() {
        assert_eq!(url("http://h/a b?c=é").target, "/a%20b?c=%C3%A9");
        assert_eq!(
            url("http://h/x\r\nHost: evil\r\n").target,
            "/x%0D%0AHost:%20evil%0D%0A"
        );
    }

    #[test]
    fn refuses_other_schemes_user_info_and_bad_hosts_or_ports() {
        for bad in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "example.com/x",
            "//example.com/",
            "http://user:pw@example.com/",
            "http://@example.com/",
            "http:///x",
            "http://:80/",
            "http://example.com:0/",
            "http://example.com:65536/",
            "http://example.com:+80/",
            "http://example.com:x/",
            "http://[::1/",
            "http://[fe80::1%25eth0]/",
            "http://[::1]x/",
            "http://exa mple.com/",
            "http://bücher.de/",
            "http://a\r\nb/",
        ] {
            let err = Url::parse(bad).unwrap_err();
            assert!(err.starts_with("fetch: bad URL"), "{bad}: {err}");
        }
    }

    #[test]
    fn locations_resolve_against_the_current_url() {
        let base = url("https://a.example:8443/dir/page?x=1");
        let join = |l: &str| base.join(l).unwrap().to_string();
        assert_eq!(join("http://b.example/p"), "http://b.example/p");
        assert_eq!(join("//c.example/q"), "https://c.example/q");
        assert_eq!(join("/root"), "https://a.example:8443/root");
        assert_eq!(join("other?y=2"), "https://a.example:8443/dir/other?y=2");
        assert_eq!(join("?z=3"), "https://a.example:8443/dir/page?z=3");
        assert_eq!(join(""), "https://a.example:8443/dir/page?x=1");
        assert!(base.join("javascript:alert(1)").is_err());
        assert!(base.join("ftp://x/").is_err());
        assert!(base.join("mailto:a@b").is_err());
        assert_eq!(join("p?t=1:2"), "https://a.example:8443/dir/p?t=1:2");
        assert_eq!(url("http://h:/").port, 80);
        assert!(base.same_origin(&url("https://a.example:8443/elsewhere")));
        assert!(!base.same_origin(&url("http://a.example:8443/")));
        assert!(!base.same_origin(&url("https://b.example:8443/")));
    }
}
