//! Serving hosted sites from the virtual filesystem (DESIGN §4): resolve the site's current
//! deployment, normalise the path, try the candidates (`index.html`, clean URLs), redirect
//! a directory reached without its trailing slash, answer from the shared cache or the
//! thread's read connection, and fall back to the site's `404.html`, then the `404` site,
//! then the built-in page — always with status 404.

use crate::hosting::cache::{CachedFile, SiteCache};
use crate::hosting::encoding::{Accepted, Encoding, EncodingSet};
use crate::hosting::files::{respond, FileMeta, Modified};
use crate::hosting::path::{candidates, is_index_without_slash, normalize};
use crate::hosting::rules::{cache_control, CACHE_DEFAULT};
use crate::hosting::store::{self, BlobStream, FileRow, Live, SiteTable};
use crate::hosting::urls::UrlBase;
use crate::http::error::Concealed;
use crate::http::{error_response, Body, Method, Request, Response};
use std::borrow::Cow;
use std::sync::Arc;

/// The page of last resort, when neither the site nor the `404` site has one.
const BUILTIN_404: &[u8] = include_bytes!("../../assets/404.html");

/// The seed content of the system sites, written at first start (deploys replace it).
pub const SYSTEM_SITES: [(&str, &str, &[u8]); 2] = [
    (
        "root",
        "index.html",
        include_bytes!("../../assets/landing.html"),
    ),
    ("404", "index.html", include_bytes!("../../assets/404.html")),
];

/// `(name, bytes)` of each file of `assets/admin/`, named once.
macro_rules! admin_assets {
    ($($name:literal),* $(,)?) => {
        [$(($name, include_bytes!(concat!("../../assets/admin/", $name)) as &[u8])),*]
    };
}

/// The admin dashboard's assets: pinned in the cache at start, served on the admin host;
/// plain ES modules that `index.html` and `admin.js` load (no build step).
pub const ADMIN_ASSETS: [(&str, &[u8]); 19] = admin_assets![
    "index.html",
    "admin.css",
    "admin.js",
    "api.js",
    "ui.js",
    "stats.js",
    "zip.js",
    "overview.js",
    "analytics.js",
    "sites.js",
    "apps.js",
    "redirects.js",
    "webhooks.js",
    "keys.js",
    "system.js",
    "settings.js",
    "setup.html",
    "setup.js",
    "favicon.svg",
];

/// The public URL of a site: `http://<name>.<domain>/`, `http://<domain>/` for `root`,
/// with the scheme and port of `base` (see [`UrlBase`]). Bare `localhost` is the admin host
/// (the router's rule), so with the domain `localhost` root is `http://root.localhost/`.
pub fn site_url(domain: &str, base: &UrlBase, name: &str) -> String {
    if name == "root" && domain != "localhost" {
        base.url(domain)
    } else {
        base.url(&format!("{name}.{domain}"))
    }
}

/// What a site request was answered with, as analytics counts it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Served {
    /// A view of an HTML page (a 200, or a 304 revalidation: HTML is served `no-cache`, so
    /// a returning visitor's view is usually a 304) to a GET, with the page's canonical
    /// path: every URL that serves one file is one page (`/blog/`, `/blog/index.html`;
    /// `/about`, `/about.html`).
    Page(String),
    /// A GET that found nothing: the 404 chain answered (a broken link).
    NotFound,
    /// Anything else: assets, HEAD, refusals, errors.
    Other,
}

/// The canonical URL path of a stored HTML file: `index.html` → `/`, `blog/index.html` →
/// `/blog/`, `about.html` → `/about`.
pub fn page_path(file_path: &str) -> String {
    let page = if file_path == "index.html" {
        ""
    } else if let Some(dir) = file_path.strip_suffix("/index.html") {
        return format!("/{dir}/");
    } else {
        file_path.strip_suffix(".html").unwrap_or(file_path)
    };
    format!("/{page}")
}

/// A file found for a request, in the representation chosen for it: from the cache, or too
/// large to cache and streamed.
enum Found {
    Cached(Arc<CachedFile>),
    Large(FileRow, Encoding),
}

/// A file of a site's current deployment, found at `path` (one of the candidates).
struct Hit<'p> {
    found: Found,
    path: Cow<'p, str>,
    live: Live,
}

impl Found {
    fn mime(&self) -> &str {
        match self {
            Found::Cached(f) => &f.mime,
            Found::Large(row, _) => &row.mime,
        }
    }
}

pub struct SiteServer {
    pub table: SiteTable,
    pub cache: SiteCache,
    builtin_404: Arc<CachedFile>,
}

impl SiteServer {
    pub fn new(cache: SiteCache) -> SiteServer {
        for (path, bytes) in ADMIN_ASSETS {
            pin_with_variants(&cache, path, bytes);
        }
        // The encoders' buffers are free now: give them back rather than hold them all along.
        crate::platform::sys::release_free_memory();
        let builtin_404 = Arc::new(CachedFile::from_bytes(
            Arc::from(BUILTIN_404),
            "text/html; charset=utf-8",
        ));
        SiteServer {
            table: SiteTable::default(),
            cache,
            builtin_404,
        }
    }

    /// Reloads the site table from the database and drops the cache entries of the
    /// deployments it no longer points at (a site deployed, rolled back or deleted).
    pub fn reload(&self, conn: &rusqlite::Connection) -> rusqlite::Result<()> {
        for deployment in self.table.reload(conn)? {
            self.cache.invalidate_deployment(deployment);
        }
        Ok(())
    }

    /// Answers a request for a site, and says what it served, for analytics. A page's
    /// canonical path is worked out only when the caller `counts_pages` (it costs an
    /// allocation on every HTML request otherwise thrown away).
    pub fn serve(&self, site: &str, request: &Request, counts_pages: bool) -> (Response, Served) {
        if !matches!(request.method, Method::Get | Method::Head) {
            let refused = Response::error(405, "only GET and HEAD are allowed on sites");
            return (refused.header("Allow", "GET, HEAD"), Served::Other);
        }
        let path = match normalize(request.path()) {
            Ok(path) => path,
            Err(e) => return (error_response(&e), Served::Other),
        };
        match self.resolve(site, &path, Accepted::of(request)) {
            Ok(Some(hit)) if is_index_without_slash(&path, &hit.path) => {
                (slash_redirect(request), Served::Other)
            }
            Ok(Some(Hit {
                found,
                path: file_path,
                live,
            })) => {
                let html = found.mime().starts_with("text/html");
                // Every file of a deployment was last modified when the deployment went live.
                let modified = Modified {
                    unix: live.since,
                    http_date: live.last_modified,
                };
                let response = self.send(request, found, &file_path, 200, Some(modified));
                let viewed = html && matches!(response.status, 200 | 304);
                let served = if counts_pages && viewed && request.method == Method::Get {
                    Served::Page(page_path(&file_path))
                } else {
                    Served::Other
                };
                (response, served)
            }
            // A host naming no site is no one's broken link.
            Ok(None) if request.method == Method::Get && self.table.current(site).is_some() => {
                (self.not_found(site, request), Served::NotFound)
            }
            Ok(None) => (self.not_found(site, request), Served::Other),
            Err(e) => (unreadable_files(e), Served::Other),
        }
    }

    /// A host that names no site: the 404 chain, whatever the path.
    pub fn serve_unknown_host(&self, request: &Request) -> Response {
        if !matches!(request.method, Method::Get | Method::Head) {
            return Response::error(405, "only GET and HEAD are allowed on sites")
                .header("Allow", "GET, HEAD");
        }
        self.not_found("404", request)
    }

    /// Serves a pinned admin asset (`""` is the dashboard page).
    pub fn serve_admin_asset(&self, request: &Request) -> Option<Response> {
        let path = normalize(request.path()).ok()?;
        // Pages are named without `.html` in links (`/setup`).
        let path = match path.as_str() {
            "" => "index.html".to_string(),
            p if !p.contains('.') => format!("{p}.html"),
            _ => path,
        };
        let identity = self.cache.get_pinned(&path)?;
        let encoding = Accepted::of(request).choose(identity.available);
        let file = self
            .cache
            .get_pinned_encoded(&path, encoding)
            .unwrap_or(identity);
        Some(self.send(request, Found::Cached(file), &path, 200, None))
    }

    /// The first candidate path of `path` that exists in the site's current deployment.
    fn resolve<'p>(
        &self,
        site: &str,
        path: &'p str,
        accepted: Accepted,
    ) -> rusqlite::Result<Option<Hit<'p>>> {
        let Some(live) = self.table.current(site) else {
            return Ok(None);
        };
        for candidate in candidates(path) {
            if let Some(found) = self.lookup(live.deployment, &candidate, accepted)? {
                return Ok(Some(Hit {
                    found,
                    path: candidate,
                    live,
                }));
            }
        }
        Ok(None)
    }

    /// The file at `path` in the best representation `accepted` allows (DESIGN D8): the
    /// cached one if it is the best the file has, else read from the store (and cached).
    fn lookup(
        &self,
        deployment: i64,
        path: &str,
        accepted: Accepted,
    ) -> rusqlite::Result<Option<Found>> {
        if let Some(file) = self.cache.get_preferred(deployment, path, accepted.order()) {
            if accepted.choose(file.available) == file.encoding {
                return Ok(Some(Found::Cached(file)));
            }
        }
        let Some(row) =
            crate::db::reader::with_reader(|conn| store::find_file(conn, deployment, path))?
        else {
            return Ok(None);
        };
        let available = row.variants.available();
        let encoding = accepted.choose(available);
        let blob = row.blob(encoding);
        if !self.cache.admits(blob.size) {
            return Ok(Some(Found::Large(row, encoding)));
        }
        let bytes =
            crate::db::reader::with_reader(|conn| store::read_blob(conn, &blob.sha256, blob.size))?;
        let file = Arc::new(CachedFile::encoded(
            Arc::from(bytes),
            row.sha256,
            row.mime.as_str(),
            encoding,
            available,
        ));
        self.cache.insert(
            crate::hosting::cache::CacheKey::encoded(deployment, path, encoding),
            file.clone(),
        );
        Ok(Some(Found::Cached(file)))
    }

    /// The site's `404.html`, else the `404` site's page, else the built-in page.
    fn not_found(&self, site: &str, request: &Request) -> Response {
        let fallbacks = [(site, "404.html"), ("404", "404.html"), ("404", "")];
        let accepted = Accepted::of(request);
        for (site, path) in fallbacks {
            match self.resolve(site, path, accepted) {
                Ok(Some(hit)) => return self.send(request, hit.found, &hit.path, 404, None),
                Ok(None) => {}
                Err(e) => return unreadable_files(e),
            }
        }
        self.send(
            request,
            Found::Cached(self.builtin_404.clone()),
            "404.html",
            404,
            None,
        )
    }

    fn send(
        &self,
        request: &Request,
        found: Found,
        path: &str,
        status: u16,
        modified: Option<Modified>,
    ) -> Response {
        let (meta, sha256) = match &found {
            Found::Cached(f) => (
                FileMeta {
                    etag: f.etag.clone(),
                    cache_control: cache_control(path, &f.mime),
                    mime: f.mime.clone(),
                    size: f.body.len() as u64,
                    encoding: f.encoding,
                    vary: f.available.has_variants(),
                    modified,
                },
                f.sha256,
            ),
            Found::Large(row, encoding) => {
                let blob = row.blob(*encoding);
                let meta = FileMeta {
                    etag: Arc::from(crate::hosting::files::etag_for(&row.sha256, *encoding)),
                    cache_control: cache_control(path, &row.mime),
                    mime: Arc::from(row.mime.as_str()),
                    size: blob.size,
                    encoding: *encoding,
                    vary: row.variants.available().has_variants(),
                    modified,
                };
                (meta, blob.sha256)
            }
        };
        respond(request, &meta, status, |start, len| match found {
            Found::Cached(f) => {
                Body::SharedRange(f.body.clone(), start as usize..(start + len) as usize)
            }
            // Counted as `cache.streamed_bytes` by the connection, as the socket takes it.
            Found::Large(..) => Body::Stream(Box::new(BlobStream::new(sha256, start, len))),
        })
    }
}

/// Pins an embedded file with its compressed variants, made once here at start (DESIGN D8).
fn pin_with_variants(cache: &SiteCache, path: &str, bytes: &'static [u8]) {
    let mime = crate::hosting::rules::mime_for(path);
    let identity = CachedFile::from_bytes(Arc::from(bytes), mime);
    let variants = crate::hosting::compress::compress_bytes(mime, bytes);
    let available = variants
        .iter()
        .fold(EncodingSet::IDENTITY, |set, (e, _)| set.with(*e));
    for (encoding, compressed) in variants {
        let file = CachedFile::encoded(
            Arc::from(compressed),
            identity.sha256,
            mime,
            encoding,
            available,
        );
        cache.pin(path, Arc::new(file));
    }
    let identity = CachedFile {
        available,
        ..identity
    };
    cache.pin(path, Arc::new(identity));
}

/// `301` from `/blog` to `/blog/`, the query kept, as nginx, Netlify and GitHub Pages do.
/// The Location is the request's own path (percent-encoding as sent) plus the slash: a
/// relative reference, so it holds behind any proxy, scheme or port. Cached like other
/// non-HTML files ([`CACHE_DEFAULT`]), so a later deploy that adds `blog.html` shows up
/// within minutes rather than never (browsers keep a 301 without `Cache-Control`).
fn slash_redirect(request: &Request) -> Response {
    let query = request.query();
    let location = if query.is_empty() {
        format!("{}/", request.path())
    } else {
        format!("{}/?{query}", request.path())
    };
    Response::new(301)
        .header("Location", location)
        .header("Cache-Control", CACHE_DEFAULT)
}

fn unreadable_files(e: rusqlite::Error) -> Response {
    error_response(&Concealed::new("reading the site's files", e))
}

#[cfg(test)]
mod tests {
    use super::{page_path, site_url};
    use crate::hosting::urls::UrlBase;

    #[test]
    fn page_paths() {
        assert_eq!(page_path("index.html"), "/");
        assert_eq!(page_path("blog/index.html"), "/blog/");
        assert_eq!(page_path("about.html"), "/about");
        assert_eq!(page_path("about"), "/about");
        assert_eq!(page_path("a/b/c.html"), "/a/b/c");
        assert_eq!(page_path("page.htm"), "/page.htm");
    }

    #[test]
    fn site_urls() {
        let local = UrlBase::listener(4698);
        assert_eq!(
            site_url("localhost", &local, "blog"),
            "http://blog.localhost:4698/"
        );
        // Bare `localhost` routes to the admin API, not to the root site.
        assert_eq!(
            site_url("localhost", &local, "root"),
            "http://root.localhost:4698/"
        );
        assert_eq!(
            site_url("localhost", &local, "404"),
            "http://404.localhost:4698/"
        );
        let public = UrlBase::listener(80);
        assert_eq!(
            site_url("example.com", &public, "blog"),
            "http://blog.example.com/"
        );
        assert_eq!(
            site_url("example.com", &public, "root"),
            "http://example.com/"
        );
        let (tls, _) = UrlBase::parse("https://example.com").unwrap();
        assert_eq!(
            site_url("example.com", &tls, "blog"),
            "https://blog.example.com/"
        );
    }
}
