//! `GET /ws` of a site (issue #15): the checks before a WebSocket upgrade, and the `101`.
//! Everything after it is the connection's own (`http::conn`, WebSocket phase) and its
//! hub's (`hubs`).

use super::App;
use crate::http::ws::{self, Handshake};
use crate::http::{Request, Response};

/// The WebSocket endpoint of every site.
pub(crate) const PATH: &str = "/ws";

/// The answer to a request for `site`'s `/ws` when it asks for an upgrade; `None` for an
/// ordinary request (served like any other path).
pub(crate) fn upgrade(app: &App, request: &Request, site: &str, thread: usize) -> Option<Response> {
    if !app.sites.table.websocket(site) {
        return None;
    }
    let accept = match ws::handshake(request) {
        Handshake::NotUpgrade => return None,
        Handshake::Refuse(response) => return Some(response),
        Handshake::Accept(accept) => accept,
    };
    if !origin_allowed(request, site, &app.config.ws.origins) {
        let message = format!(
            "this origin may not open {site}'s WebSocket: only the site's own, or one listed \
             for it in FAZT_WS_ORIGINS"
        );
        return Some(Response::error(403, &message));
    }
    let upgrade = match app.hubs.join(site, thread) {
        Ok(upgrade) => upgrade,
        Err(full) => {
            let message = match full {
                super::hubs::Full::Total(n) => {
                    format!("the server holds its limit of {n} WebSocket clients (FAZT_WS_MAX)")
                }
                super::hubs::Full::Site(n) => {
                    format!("{site} holds its limit of {n} WebSocket clients (FAZT_WS_PER_SITE)")
                }
            };
            crate::platform::metrics::METRICS.shed_requests.inc();
            return Some(Response::error(503, &message).header("Retry-After", "5"));
        }
    };
    let mut response = Response::new(101)
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Accept", accept);
    response.upgrade = Some(Box::new(upgrade));
    Some(response)
}

/// A browser's `Origin` must be the site itself (the request's own host) or one listed for
/// the site; a client that sends none is not a browser, which no other site can script.
fn origin_allowed(request: &Request, site: &str, listed: &[(String, String)]) -> bool {
    let Some(origin) = request.header("origin") else {
        return true;
    };
    let Ok(origin) = std::str::from_utf8(origin) else {
        return false;
    };
    let origin = origin.trim().to_ascii_lowercase();
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"));
    // The Host header as sent (with its port, as the browser's origin has it).
    let own = request
        .header("host")
        .and_then(|h| std::str::from_utf8(h).ok());
    if host
        .is_some_and(|h| !h.is_empty() && own.is_some_and(|own| h.eq_ignore_ascii_case(own.trim())))
    {
        return true;
    }
    listed.iter().any(|(s, o)| s == site && *o == origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, origin: Option<&str>) -> Request {
        let mut head = format!("GET /ws HTTP/1.1\r\nHost: {host}\r\n");
        if let Some(origin) = origin {
            head.push_str(&format!("Origin: {origin}\r\n"));
        }
        head.push_str("\r\n");
        let mut scanner = crate::http::parse::HeadScanner::default();
        let peer = "127.0.0.1:1".parse().unwrap();
        match crate::http::parse::parse_head(head.as_bytes(), &mut scanner, peer, false) {
            Ok(crate::http::parse::HeadStatus::Complete { request, .. }) => request,
            _ => panic!("not a complete head: {head}"),
        }
    }

    #[test]
    fn a_browser_may_connect_from_the_site_itself_or_a_listed_origin_only() {
        let listed = vec![("chat".to_string(), "https://example.org".to_string())];
        let host = "chat.localhost:8080";
        for (origin, allowed) in [
            (None, true),
            (Some("http://chat.localhost:8080"), true),
            (Some("https://CHAT.localhost:8080"), true),
            (Some("https://example.org"), true),
            (Some("https://example.org:444"), false),
            (Some("http://chat.localhost"), false),
            (Some("http://evil.localhost:8080"), false),
            (Some("null"), false),
            (Some(""), false),
        ] {
            let r = request(host, origin);
            assert_eq!(origin_allowed(&r, "chat", &listed), allowed, "{origin:?}");
        }
        let other = request("blog.localhost:8080", Some("https://example.org"));
        assert!(!origin_allowed(&other, "blog", &listed));
    }
}
