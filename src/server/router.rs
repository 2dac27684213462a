//! Host routing (DESIGN §4): which part of fazt answers a request.

use crate::analytics::ingest::Endpoint;

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Target<'a> {
    /// Liveness, answered on every host by the thread that read the request.
    Health,
    /// An analytics ingestion endpoint, answered on every host.
    Ingest(Endpoint<'a>),
    /// The admin API, handed to the reserved admin thread.
    Admin,
    /// A hosted site by name (`root`, `404`, or a user site).
    Site(&'a str),
    /// A host that names no site of this domain: the `404` site's page, with status 404.
    UnknownHost,
}

/// Routes by Host (already lower-cased and stripped of its port) and path.
pub fn route<'a>(host: &'a str, path: &'a str, domain: &str) -> Target<'a> {
    if path == "/health" {
        return Target::Health;
    }
    if let Some(endpoint) = Endpoint::of(path) {
        return Target::Ingest(endpoint);
    }
    // Bare `localhost` is the admin host, as in the earlier Go fazt.
    if host == "localhost" {
        return Target::Admin;
    }
    if host == domain {
        return Target::Site("root");
    }
    let label = host
        .strip_suffix(domain)
        .and_then(|rest| rest.strip_suffix('.'))
        .or_else(|| host.strip_suffix(".localhost"));
    match label {
        Some("admin") => Target::Admin,
        Some(name) if !name.is_empty() && !name.contains('.') => Target::Site(name),
        _ => Target::UnknownHost,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_by_host() {
        let d = "example.com";
        assert_eq!(route("example.com", "/", d), Target::Site("root"));
        assert_eq!(route("root.example.com", "/", d), Target::Site("root"));
        assert_eq!(route("blog.example.com", "/x", d), Target::Site("blog"));
        assert_eq!(route("blog.localhost", "/x", d), Target::Site("blog"));
        assert_eq!(route("admin.example.com", "/", d), Target::Admin);
        assert_eq!(route("localhost", "/", d), Target::Admin);
        assert_eq!(route("404.example.com", "/", d), Target::Site("404"));
        assert_eq!(route("a.b.example.com", "/", d), Target::UnknownHost);
        assert_eq!(route("other.org", "/", d), Target::UnknownHost);
        assert_eq!(route("badexample.com", "/", d), Target::UnknownHost);
        assert_eq!(route("anything", "/health", d), Target::Health);
        assert_eq!(
            route("admin.example.com", "/track", d),
            Target::Ingest(Endpoint::Track)
        );
        assert_eq!(
            route("x.org", "/r/promo", d),
            Target::Ingest(Endpoint::Redirect("promo"))
        );
    }

    #[test]
    fn default_domain_localhost() {
        let d = "localhost";
        assert_eq!(route("localhost", "/", d), Target::Admin);
        assert_eq!(route("root.localhost", "/", d), Target::Site("root"));
        assert_eq!(route("admin.localhost", "/", d), Target::Admin);
        assert_eq!(route("127.0.0.1", "/", d), Target::UnknownHost);
    }
}
