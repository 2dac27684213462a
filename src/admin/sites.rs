//! Site management on the admin API (issue #5): list sites, list a site's deployments,
//! roll a site back, delete a site. Every route checks that the key's scopes cover the
//! site; the system sites `root` and `404` are covered by owner keys only and can never be
//! deleted.
//!
//! Invariants:
//! - every change is one writer job, each step one transaction (`store::rollback`,
//!   `store::delete_site`, `store::prune_and_gc`), so a failure leaves the site as it was;
//! - after a change the shared site table is reloaded before the response is sent, so the
//!   next request to the site (on any thread) sees the new deployment, or, for a deleted
//!   site, no site at all (the 404 chain); cache entries of deployments no longer current
//!   are dropped at the same moment;
//! - deleting never checks the disk breaker: it is how an operator frees space.

use crate::hosting::store::{self, RollbackOutcome};
use crate::http::error::Concealed;
use crate::http::{error_response, Method, Request, Response};
use crate::keys::ApiKey;
use crate::server::config::Config;
use crate::server::App;
use serde_json::json;

/// The public URL of a site: `http://<name>.<domain>/`, `http://<domain>/` for `root`,
/// with the public listener's port unless it is 80. Bare `localhost` is the admin host
/// (the router's rule), so with the domain `localhost` root is `http://root.localhost/`.
pub fn site_url(config: &Config, name: &str) -> String {
    let port = match config.listen.port() {
        80 => String::new(),
        port => format!(":{port}"),
    };
    let domain = &config.domain;
    if name == "root" && domain != "localhost" {
        format!("http://{domain}{port}/")
    } else {
        format!("http://{name}.{domain}{port}/")
    }
}

/// Whether `path` is one of this module's routes (`/api/sites`, `/api/sites/...`).
pub fn is_sites_path(path: &str) -> bool {
    path == "/api/sites" || path.starts_with("/api/sites/")
}

/// Answers a request whose path [`is_sites_path`], for an authenticated `key`.
pub fn handle(app: &App, key: &ApiKey, request: &Request) -> Response {
    let path = request.path();
    let rest = path["/api/sites".len()..].trim_end_matches('/');
    let reading = matches!(request.method, Method::Get | Method::Head);
    if rest.is_empty() {
        return match reading {
            true => list_sites(app, key),
            false => method_not_allowed(path, "GET, HEAD"),
        };
    }
    let rest = &rest[1..];
    let (site, action) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(refused) = check_site(key, site) {
        return refused;
    }
    match (action, &request.method) {
        ("", Method::Delete) => delete_site(app, site),
        ("", _) => method_not_allowed(path, "DELETE"),
        ("deployments", _) if reading => list_deployments(app, site),
        ("deployments", _) => method_not_allowed(path, "GET, HEAD"),
        ("rollback", Method::Post) => rollback(app, site, &request.body),
        ("rollback", _) => method_not_allowed(path, "POST"),
        _ => Response::error(
            404,
            &format!("no admin route {} {path}", request.method_text()),
        ),
    }
}

/// A refusal when `site` is not a site name or the key's scopes do not cover it. Scope is
/// checked before existence, so a narrow key learns nothing about other sites.
fn check_site(key: &ApiKey, site: &str) -> Option<Response> {
    if let Err(e) = store::validate_site_name(site) {
        return Some(Response::error(404, &e));
    }
    if !key.can_deploy(site) {
        let needed = if store::is_system_site(site) {
            "owner".to_string()
        } else {
            format!("deploy:{site}, deploy:* or owner")
        };
        return Some(Response::error(
            403,
            &format!("this API key's scope does not cover site '{site}' (needs {needed})"),
        ));
    }
    None
}

fn list_sites(app: &App, key: &ApiKey) -> Response {
    let sites = match crate::db::reader::with_reader(store::list_sites) {
        Ok(sites) => sites,
        Err(e) => return error_response(&Concealed::new("listing sites", e)),
    };
    let sites: Vec<_> = sites
        .into_iter()
        .filter(|site| key.can_deploy(&site.name))
        .map(|site| {
            json!({
                "name": site.name,
                "deployment": site.deployment,
                "files": site.file_count,
                "bytes": site.total_bytes,
                "updated_at": site.updated_at,
                "url": site_url(&app.config, &site.name),
            })
        })
        .collect();
    Response::json(200, &json!({ "sites": sites }))
}

fn list_deployments(app: &App, site: &str) -> Response {
    let listed = match crate::db::reader::with_reader(|conn| store::list_deployments(conn, site)) {
        Ok(Some(listed)) => listed,
        Ok(None) => return unknown_site(site),
        Err(e) => return error_response(&Concealed::new("listing deployments", e)),
    };
    let (current, deployments) = listed;
    let deployments: Vec<_> = deployments
        .into_iter()
        .map(|d| {
            json!({
                "id": d.id,
                "created_at": d.created_at,
                "files": d.file_count,
                "bytes": d.total_bytes,
                "new_bytes": d.new_bytes,
                "source": d.source,
                "current": Some(d.id) == current,
            })
        })
        .collect();
    Response::json(
        200,
        &json!({
            "site": site,
            "current": current,
            "deployments": deployments,
            "url": site_url(&app.config, site),
        }),
    )
}

/// The deployment a rollback body asks for: an empty body or `{}` means "the previous
/// one", `{"deployment": ID}` a given one.
fn rollback_target(body: &[u8]) -> Result<Option<i64>, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let parsed: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("body is not valid JSON: {e}"))?;
    let Some(object) = parsed.as_object() else {
        return Err("body must be a JSON object like {\"deployment\": 12}".to_string());
    };
    match object.get("deployment") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(id) => id
            .as_i64()
            .map(Some)
            .ok_or_else(|| format!("field 'deployment' must be a deployment id, not {id}")),
    }
}

fn rollback(app: &App, site: &str, body: &[u8]) -> Response {
    let to = match rollback_target(body) {
        Ok(to) => to,
        Err(e) => return Response::error(400, &e),
    };
    let owned = site.to_string();
    let outcome = app
        .writer
        .call(move |conn| Ok(store::rollback(conn, &owned, to)?));
    match outcome {
        Ok(RollbackOutcome::Done {
            deployment,
            previous,
        }) => {
            reload_sites(app, &[]);
            log::info!("site {site} rolled back to deployment {deployment} (was {previous:?})");
            Response::json(
                200,
                &json!({
                    "site": site,
                    "deployment": deployment,
                    "previous": previous,
                    "url": site_url(&app.config, site),
                }),
            )
        }
        Ok(RollbackOutcome::UnknownSite) => unknown_site(site),
        Ok(RollbackOutcome::UnknownDeployment(id)) => Response::error(
            404,
            &format!(
                "site '{site}' has no deployment {id} (see GET /api/sites/{site}/deployments)"
            ),
        ),
        Ok(RollbackOutcome::NothingEarlier) => Response::error(
            409,
            &format!("site '{site}' has no deployment older than the current one to roll back to"),
        ),
        Ok(RollbackOutcome::AlreadyCurrent(id)) => Response::error(
            409,
            &format!("deployment {id} is already the current one of site '{site}'"),
        ),
        Err(e) => error_response(&e),
    }
}

fn delete_site(app: &App, site: &str) -> Response {
    if store::is_system_site(site) {
        return Response::error(
            403,
            &format!("'{site}' is a system site and can't be deleted; deploy over it instead"),
        );
    }
    let owned = site.to_string();
    let keep = app.config.keep_deployments;
    let outcome = app.writer.call(move |conn| {
        let Some(removal) = store::delete_site(conn, &owned)? else {
            return Ok(None);
        };
        // Old deployments of other sites may be waiting for a collection too.
        let pruned = store::prune_and_gc(conn, keep, &[])?;
        Ok(Some((removal, pruned)))
    });
    match outcome {
        Ok(Some((removal, pruned))) => {
            reload_sites(app, &removal.deployments);
            let gc = removal.gc;
            log::info!(
                "site {site} deleted: {} deployment(s), {} blob(s), {} bytes freed",
                gc.deployments_removed + pruned.deployments_removed,
                gc.blobs_removed + pruned.blobs_removed,
                gc.bytes_freed + pruned.bytes_freed
            );
            Response::json(
                200,
                &json!({
                    "deleted": site,
                    "deployments_removed": gc.deployments_removed + pruned.deployments_removed,
                    "blobs_removed": gc.blobs_removed + pruned.blobs_removed,
                    "bytes_freed": gc.bytes_freed + pruned.bytes_freed,
                }),
            )
        }
        Ok(None) => unknown_site(site),
        Err(e) => error_response(&e),
    }
}

/// Makes a committed change visible at once: reloads the site table (dropping the cache
/// entries of deployments it no longer points at) and drops `also_dropped` from the
/// cache (every deployment of a deleted site, not only its last current one).
fn reload_sites(app: &App, also_dropped: &[i64]) {
    if let Err(e) = crate::db::reader::with_reader(|conn| app.sites.reload(conn)) {
        // The admin thread's next tick retries (the database's data_version moved).
        log::error!("reloading sites after a change: {e}");
    }
    for deployment in also_dropped {
        app.sites.cache.invalidate_deployment(*deployment);
    }
}

fn unknown_site(site: &str) -> Response {
    Response::error(404, &format!("no site '{site}'"))
}

fn method_not_allowed(path: &str, allow: &'static str) -> Response {
    Response::error(405, &format!("method not allowed on {path}")).header("Allow", allow)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(listen: &str, domain: &str) -> Config {
        let flags = crate::server::config::Flags {
            listen: Some(listen.into()),
            domain: Some(domain.into()),
            ..Default::default()
        };
        let root = std::path::Path::new("/nonexistent");
        let probe =
            crate::platform::probe::Report::collect(root, std::path::Path::new("/tmp/d"), &|_| {
                None
            })
            .unwrap();
        Config::build(&flags, &|_| None, probe).unwrap()
    }

    #[test]
    fn site_urls() {
        let local = config("127.0.0.1:4698", "localhost");
        assert_eq!(site_url(&local, "blog"), "http://blog.localhost:4698/");
        // Bare `localhost` routes to the admin API, not to the root site.
        assert_eq!(site_url(&local, "root"), "http://root.localhost:4698/");
        assert_eq!(site_url(&local, "404"), "http://404.localhost:4698/");
        let public = config("0.0.0.0:80", "example.com");
        assert_eq!(site_url(&public, "blog"), "http://blog.example.com/");
        assert_eq!(site_url(&public, "root"), "http://example.com/");
    }

    #[test]
    fn rollback_bodies() {
        assert_eq!(rollback_target(b""), Ok(None));
        assert_eq!(rollback_target(b" \n"), Ok(None));
        assert_eq!(rollback_target(b"{}"), Ok(None));
        assert_eq!(rollback_target(br#"{"deployment": 12}"#), Ok(Some(12)));
        assert!(rollback_target(br#"{"deployment": "12"}"#).is_err());
        assert!(rollback_target(b"[12]").is_err());
        assert!(rollback_target(b"twelve").is_err());
    }
}
