//! How the public reaches fazt: the scheme and port of every URL fazt prints or returns
//! (startup lines, deploy answers, `GET /api/sites`). By default the public listener's,
//! `http` and its port; behind a TLS proxy `FAZT_PUBLIC_URL` (e.g. `https://example.com`)
//! says what visitors use, and a trusted proxy's `X-Forwarded-Proto` says it per request.

use crate::http::Request;

/// A scheme and port; `port: None` is the scheme's default (80 or 443), left out of URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlBase {
    pub https: bool,
    pub port: Option<u16>,
}

impl UrlBase {
    /// The public listener's own base: `http` and its port.
    pub fn listener(port: u16) -> UrlBase {
        UrlBase {
            https: false,
            port: (port != 80).then_some(port),
        }
    }

    /// Parses a public URL, `http[s]://HOST[:PORT][/]`, into its base and its host.
    pub fn parse(text: &str) -> Result<(UrlBase, String), String> {
        let lower = text.trim().to_ascii_lowercase();
        let (https, rest) = match lower.split_once("://") {
            Some(("https", rest)) => (true, rest),
            Some(("http", rest)) => (false, rest),
            _ => return Err("must start with http:// or https://".into()),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err("must be only a scheme, a host and a port (no path or query)".into());
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse::<u16>()
                    .ok()
                    .filter(|&p| p > 0)
                    .ok_or("has a bad port")?;
                (host, Some(port))
            }
            None => (authority, None),
        };
        if host.is_empty() || host.starts_with('[') {
            return Err("must name a host (e.g. https://example.com)".into());
        }
        let default = if https { 443 } else { 80 };
        let port = port.filter(|&p| p != default);
        Ok((UrlBase { https, port }, host.to_string()))
    }

    /// The base for the URLs of one answer: a trusted proxy's `X-Forwarded-Proto` wins
    /// (a different scheme comes with its default port, where such a proxy listens).
    pub fn for_request(&self, request: &Request, trusted_proxy: bool) -> UrlBase {
        let proto = trusted_proxy
            .then(|| request.header_str("x-forwarded-proto"))
            .flatten()
            .and_then(|v| v.split(',').next())
            .map(|v| v.trim().to_ascii_lowercase());
        match proto.as_deref() {
            Some("https") if !self.https => UrlBase {
                https: true,
                port: None,
            },
            Some("http") if self.https => UrlBase {
                https: false,
                port: None,
            },
            _ => self.clone(),
        }
    }

    /// `scheme://host[:port]/`.
    pub fn url(&self, host: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        match self.port {
            Some(port) => format!("{scheme}://{host}:{port}/"),
            None => format!("{scheme}://{host}/"),
        }
    }
}

/// The dashboard: the admin host, which is bare `localhost` with the domain `localhost`
/// (the router's rule) and `admin.DOMAIN` otherwise.
pub fn dashboard_url(domain: &str, base: &UrlBase) -> String {
    match domain {
        "localhost" => base.url("localhost"),
        _ => base.url(&format!("admin.{domain}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_public_urls() {
        let (base, host) = UrlBase::parse("https://Example.com/").unwrap();
        assert_eq!(
            (base.clone(), host.as_str()),
            (
                UrlBase {
                    https: true,
                    port: None
                },
                "example.com"
            )
        );
        assert_eq!(base.url("blog.example.com"), "https://blog.example.com/");
        let (base, _) = UrlBase::parse("http://example.com:8080").unwrap();
        assert_eq!(base.port, Some(8080));
        let (base, _) = UrlBase::parse("https://example.com:443").unwrap();
        assert_eq!(base.port, None);
        for bad in [
            "example.com",
            "ftp://example.com",
            "https://example.com/blog",
            "https://example.com:0",
            "https://example.com:x",
            "https://",
            "https://u@example.com",
        ] {
            assert!(UrlBase::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_listener_port_is_left_out_when_it_is_80() {
        assert_eq!(UrlBase::listener(80).url("a"), "http://a/");
        assert_eq!(UrlBase::listener(4698).url("a"), "http://a:4698/");
        assert_eq!(
            dashboard_url("localhost", &UrlBase::listener(4698)),
            "http://localhost:4698/"
        );
        assert_eq!(
            dashboard_url("example.com", &UrlBase::listener(80)),
            "http://admin.example.com/"
        );
    }
}
