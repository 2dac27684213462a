//! Server URLs as the client accepts them: `http[s]://host[:port][/prefix]`.

use crate::http::blocking;
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
        }
    }
}

/// A parsed server base URL. API paths are appended to `prefix`, so a fazt behind a
/// reverse proxy at `https://example.com/fazt` works as well as one at the root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerUrl {
    pub scheme: Scheme,
    /// Host name or IP literal, without brackets for IPv6.
    pub host: String,
    pub port: u16,
    /// Path prefix without a trailing slash (empty for the root).
    pub prefix: String,
    /// CA certificates (PEM) trusted for https besides Mozilla's (`--ca-file`): for a
    /// fazt with a self-signed or private-CA certificate.
    pub ca_file: Option<std::path::PathBuf>,
}

impl ServerUrl {
    pub fn parse(text: &str) -> Result<ServerUrl, String> {
        let bad = |why: &str| format!("invalid server URL '{text}': {why}");
        let (scheme, rest) = if let Some(rest) = text.strip_prefix("http://") {
            (Scheme::Http, rest)
        } else if let Some(rest) = text.strip_prefix("https://") {
            (Scheme::Https, rest)
        } else {
            return Err(bad("it must start with http:// or https://"));
        };
        if rest.contains(['?', '#']) {
            return Err(bad("a query or fragment has no meaning here"));
        }
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("it contains spaces or control characters"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(bad("credentials belong in --token, not in the URL"));
        }
        let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed '[' in an IPv6 address"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(bad("unexpected text after the IPv6 address")),
                },
            }
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let port = match port_text {
            None => scheme.default_port(),
            Some(p) => match p.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(bad("the port must be a number from 1 to 65535")),
            },
        };
        Ok(ServerUrl {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
            prefix: path.trim_end_matches('/').to_string(),
            ca_file: None,
        })
    }

    /// The `Host` header value: the host, bracketed if IPv6, with any non-default port.
    pub fn host_header(&self) -> String {
        blocking::host_header(&self.host, self.port, self.scheme.default_port())
    }

    /// The request target for an API path such as `/api/sites`.
    pub fn target(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://{}{}", self.host_header(), self.prefix)
    }
}

/// Percent-encodes one path segment (site names are validated, but a deployment id or a
/// future name rule should never be able to change the request path).
pub fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_scheme_host_port_and_prefix() {
        let url = ServerUrl::parse("http://127.0.0.1:4698").unwrap();
        assert_eq!(url.scheme, Scheme::Http);
        assert_eq!((url.host.as_str(), url.port), ("127.0.0.1", 4698));
        assert_eq!(url.target("/api/deploy"), "/api/deploy");
        assert_eq!(url.host_header(), "127.0.0.1:4698");
        assert_eq!(url.to_string(), "http://127.0.0.1:4698");

        let url = ServerUrl::parse("https://Admin.Example.com/fazt/").unwrap();
        assert_eq!(url.scheme, Scheme::Https);
        assert_eq!((url.host.as_str(), url.port), ("admin.example.com", 443));
        assert_eq!(url.target("/api/sites"), "/fazt/api/sites");
        assert_eq!(url.host_header(), "admin.example.com");

        let url = ServerUrl::parse("http://[::1]:8080/").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 8080));
        assert_eq!(url.host_header(), "[::1]:8080");
        assert_eq!(ServerUrl::parse("http://[::1]").unwrap().port, 80);
        assert_eq!(ServerUrl::parse("http://example.com").unwrap().port, 80);
    }

    #[test]
    fn rejects_what_is_not_a_server_url() {
        for (text, why) in [
            ("localhost:4698", "http:// or https://"),
            ("ftp://example.com", "http:// or https://"),
            ("http://", "no host"),
            ("http://:80", "no host"),
            ("http://example.com:0", "port"),
            ("http://example.com:99999", "port"),
            ("http://example.com:x", "port"),
            ("http://user:pw@example.com", "credentials"),
            ("http://example.com/?a=1", "query"),
            ("http://[::1", "unclosed"),
            ("http://[::1]x", "after the IPv6"),
            ("http://exa mple.com", "spaces"),
        ] {
            let err = ServerUrl::parse(text).expect_err(text);
            assert!(err.contains(why), "{text}: {err}");
        }
    }

    #[test]
    fn encodes_path_segments() {
        assert_eq!(encode_segment("blog-1"), "blog-1");
        assert_eq!(encode_segment("a/b c"), "a%2Fb%20c");
    }
}
