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

/// Routes by Host (already lower-cased and stripped of its port) and path: a [`Route`]
/// and its target at once, as the tests state the routing rules.
#[cfg(test)]
pub fn route<'a>(host: &'a str, path: &'a str, domain: &str) -> Target<'a> {
    Route::of(host, path, domain).target(host, || path)
}

/// A routing decision that borrows nothing: the names it picked out are kept as positions
/// in the request's host and path. It is made once from a request's head and travels
/// with the request (while its body arrives) to the handler, which gets its [`Target`]
/// back by slicing, without routing again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Health,
    Ingest(IngestAt),
    Admin,
    /// The bare domain: the `root` site.
    Root,
    /// A site named by the host's first `len` bytes.
    Site {
        len: usize,
    },
    UnknownHost,
}

/// An ingestion endpoint; a slug or webhook name is the path from byte `from`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum IngestAt {
    Track,
    Pixel,
    Script,
    Redirect { from: usize },
    Webhook { from: usize },
}

impl Route {
    pub(crate) fn of(host: &str, path: &str, domain: &str) -> Route {
        if path == "/health" {
            return Route::Health;
        }
        if let Some(endpoint) = Endpoint::of(path) {
            // A slug or name is a suffix of the path.
            let from = |arg: &str| path.len() - arg.len();
            return Route::Ingest(match endpoint {
                Endpoint::Track => IngestAt::Track,
                Endpoint::Pixel => IngestAt::Pixel,
                Endpoint::Script => IngestAt::Script,
                Endpoint::Redirect(slug) => IngestAt::Redirect { from: from(slug) },
                Endpoint::Webhook(name) => IngestAt::Webhook { from: from(name) },
            });
        }
        // Bare `localhost` is the admin host, as in the earlier Go fazt.
        if host == "localhost" {
            return Route::Admin;
        }
        if host == domain {
            return Route::Root;
        }
        let label = host
            .strip_suffix(domain)
            .and_then(|rest| rest.strip_suffix('.'))
            .or_else(|| host.strip_suffix(".localhost"));
        match label {
            Some("admin") => Route::Admin,
            // The label is a prefix of the host.
            Some(name) if !name.is_empty() && !name.contains('.') => {
                Route::Site { len: name.len() }
            }
            _ => Route::UnknownHost,
        }
    }

    /// The target this route names, given the host and path it was made from. The path
    /// is asked for only by ingestion routes (a request's path is checked as UTF-8 each
    /// time it is read, a cost on every static request otherwise).
    pub(crate) fn target<'a>(self, host: &'a str, path: impl FnOnce() -> &'a str) -> Target<'a> {
        // Positions come from these same strings, so slicing can't fail; a mismatched
        // pair still gets no panic, only an empty name.
        let rest = |from: usize| path().get(from..).unwrap_or_default();
        match self {
            Route::Health => Target::Health,
            Route::Ingest(at) => Target::Ingest(match at {
                IngestAt::Track => Endpoint::Track,
                IngestAt::Pixel => Endpoint::Pixel,
                IngestAt::Script => Endpoint::Script,
                IngestAt::Redirect { from } => Endpoint::Redirect(rest(from)),
                IngestAt::Webhook { from } => Endpoint::Webhook(rest(from)),
            }),
            Route::Admin => Target::Admin,
            Route::Root => Target::Site("root"),
            Route::Site { len } => Target::Site(host.get(..len).unwrap_or_default()),
            Route::UnknownHost => Target::UnknownHost,
        }
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
    fn a_route_gives_its_target_back_from_the_same_strings() {
        let d = "example.com";
        let cases = [
            ("blog.example.com", "/a/b"),
            ("example.com", "/"),
            ("x.org", "/r/promo"),
            ("x.org", "/webhook/gh"),
            ("x.org", "/pixel.gif"),
            ("x.org", "/"),
            ("admin.example.com", "/api/sites"),
        ];
        for (host, path) in cases {
            let route = Route::of(host, path, d);
            let owned = (host.to_string(), path.to_string());
            let again = route.target(&owned.0, || &owned.1);
            assert_eq!(again, route.target(host, || path));
        }
        assert_eq!(
            Route::of("blog.example.com", "/", d),
            Route::Site { len: 4 }
        );
        assert_eq!(
            Route::of("x.org", "/r/promo", d),
            Route::Ingest(IngestAt::Redirect { from: 3 })
        );
        // Given other strings than its own, a route does not panic.
        assert_eq!(
            Route::Site { len: 40 }.target("a.b", || "/"),
            Target::Site("")
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
