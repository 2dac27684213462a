//! Site management on the admin API (issue #5): list sites, list a site's deployments,
//! roll a site back, delete a site. Every route checks that the key's scopes cover the
//! site; the system sites `root` and `404` are covered by owner keys only and can never be
//! deleted.
//!
//! Invariants:
//! - every change is one writer job, each step one transaction (`store::rollback`,
//!   `store::delete_site`, `store::prune_and_gc`), so a failure leaves the site as it was;
//!   the admin thread never waits for it: the answer goes back through the mailbox of the
//!   thread that owns the connection;
//! - after a change the shared site table is reloaded (in the same writer job, from the
//!   write connection) before the response is sent, so the next request to the site (on
//!   any thread) sees the new deployment, or, for a deleted site, no site at all (the 404
//!   chain); cache entries of deployments no longer current are dropped at the same moment;
//! - deleting never checks the disk breaker: it is how an operator frees space.

use crate::admin::{write_then, AdminContext, Reply};
use crate::db::DbError;
use crate::hosting::sites::SiteServer;
use crate::hosting::store::{self, GcReport, RollbackOutcome, SiteRemoval};
use crate::http::error::Concealed;
use crate::http::{error_response, Method, Request, Response};
use crate::keys::ApiKey;
use rusqlite::Connection;
use serde_json::json;
use std::sync::Arc;

/// Whether `path` is one of this module's routes (`/api/sites`, `/api/sites/...`).
pub fn is_sites_path(path: &str) -> bool {
    path == "/api/sites" || path.starts_with("/api/sites/")
}

/// Answers a request whose path [`is_sites_path`], for an authenticated `key`: `Some`
/// now, or `None` when a change was handed to the writer and `reply` will answer.
pub fn handle(
    ctx: &AdminContext,
    key: &ApiKey,
    request: &Request,
    reply: Reply,
) -> Option<Response> {
    let path = request.path();
    let rest = path["/api/sites".len()..].trim_end_matches('/');
    let reading = matches!(request.method, Method::Get | Method::Head);
    if rest.is_empty() {
        return Some(match reading {
            true => list_sites(ctx, request, key),
            false => method_not_allowed(path, "GET, HEAD"),
        });
    }
    let rest = &rest[1..];
    let (site, action) = rest.split_once('/').unwrap_or((rest, ""));
    if let Some(refused) = check_site(key, site) {
        return Some(refused);
    }
    let response = match (action, &request.method) {
        ("", Method::Delete) => return delete_site(ctx, site, reply),
        ("", _) => method_not_allowed(path, "DELETE"),
        ("deployments", _) if reading => list_deployments(ctx, request, site),
        ("deployments", _) => method_not_allowed(path, "GET, HEAD"),
        ("rollback", Method::Post) => return rollback(ctx, request, site, reply),
        ("rollback", _) => method_not_allowed(path, "POST"),
        _ => Response::error(
            404,
            &format!("no admin route {} {path}", request.method_text()),
        ),
    };
    Some(response)
}

/// A refusal when `site` is not a site name or the key's scopes do not cover it. Scope is
/// checked before existence, so a narrow key learns nothing about other sites.
pub(crate) fn check_site(key: &ApiKey, site: &str) -> Option<Response> {
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

fn list_sites(ctx: &AdminContext, request: &Request, key: &ApiKey) -> Response {
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
                "url": ctx.site_url(request, &site.name),
            })
        })
        .collect();
    Response::json(200, &json!({ "sites": sites }))
}

fn list_deployments(ctx: &AdminContext, request: &Request, site: &str) -> Response {
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
            "url": ctx.site_url(request, site),
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

fn rollback(ctx: &AdminContext, request: &Request, site: &str, reply: Reply) -> Option<Response> {
    let body = &request.body[..];
    let to = match rollback_target(body) {
        Ok(to) => to,
        Err(e) => return Some(Response::error(400, &e)),
    };
    let owned = site.to_string();
    let sites = Arc::clone(&ctx.sites);
    let job = move |conn: &mut Connection| {
        let outcome = store::rollback(conn, &owned, to)?;
        if matches!(outcome, RollbackOutcome::Done { .. }) {
            reload_sites(&sites, conn, &[]);
        }
        Ok(outcome)
    };
    let (site, url) = (site.to_string(), ctx.site_url(request, site));
    let answer = move |outcome: Result<RollbackOutcome, DbError>| rolled_back(&site, &url, outcome);
    write_then(&ctx.writer, reply, job, answer)
}

fn rolled_back(site: &str, url: &str, outcome: Result<RollbackOutcome, DbError>) -> Response {
    match outcome {
        Ok(RollbackOutcome::Done {
            deployment,
            previous,
        }) => {
            log::info!("site {site} rolled back to deployment {deployment} (was {previous:?})");
            Response::json(
                200,
                &json!({
                    "site": site,
                    "deployment": deployment,
                    "previous": previous,
                    "url": url,
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

fn delete_site(ctx: &AdminContext, site: &str, reply: Reply) -> Option<Response> {
    if store::is_system_site(site) {
        return Some(Response::error(
            403,
            &format!("'{site}' is a system site and can't be deleted; deploy over it instead"),
        ));
    }
    let owned = site.to_string();
    let keep = ctx.keep_deployments;
    let sites = Arc::clone(&ctx.sites);
    let reserve = ctx.disk.reserve().cloned();
    // Deleting frees space, so it must work on a full disk: SQLite needs WAL room even to
    // delete, which releasing the disk reserve gives; then the freed pages go back to the
    // filesystem. The breaker (bulk writes) is never asked.
    let job = move |conn: &mut Connection| {
        let reserve = reserve.as_deref();
        let Some(removal) =
            crate::db::with_room(conn, reserve, |conn| Ok(store::delete_site(conn, &owned)?))?
        else {
            return Ok(None);
        };
        reload_sites(&sites, conn, &removal.deployments);
        // Old deployments of other sites may be waiting for a collection too.
        let pruned = crate::db::with_room(conn, reserve, |conn| {
            Ok(store::prune_and_gc(conn, keep, &[])?)
        })?;
        if let Err(e) = crate::db::reclaim_space(conn, reserve) {
            log::warn!("site {owned} deleted; returning its space to the disk failed: {e}");
        }
        Ok(Some((removal, pruned)))
    };
    let site = site.to_string();
    let answer =
        move |outcome: Result<Option<(SiteRemoval, GcReport)>, DbError>| deleted(&site, outcome);
    write_then(&ctx.writer, reply, job, answer)
}

fn deleted(site: &str, outcome: Result<Option<(SiteRemoval, GcReport)>, DbError>) -> Response {
    match outcome {
        Ok(Some((removal, pruned))) => {
            let gc = removal.gc;
            let deployments = gc.deployments_removed + pruned.deployments_removed;
            let blobs = gc.blobs_removed + pruned.blobs_removed;
            let bytes = gc.bytes_freed + pruned.bytes_freed;
            log::info!(
                "site {site} deleted: {deployments} deployment(s), {blobs} blob(s), {bytes} bytes freed"
            );
            Response::json(
                200,
                &json!({
                    "deleted": site,
                    "deployments_removed": deployments,
                    "blobs_removed": blobs,
                    "bytes_freed": bytes,
                }),
            )
        }
        Ok(None) => unknown_site(site),
        Err(e) => error_response(&e),
    }
}

/// Makes a committed change visible before its answer is sent: reloads the site table
/// from the write connection (dropping the cache entries of deployments it no longer
/// points at) and drops `also_dropped` from the cache (every deployment of a deleted
/// site, not only its last current one).
fn reload_sites(sites: &SiteServer, conn: &Connection, also_dropped: &[i64]) {
    if let Err(e) = sites.reload(conn) {
        // The admin thread's next tick retries (the database's data_version moved).
        log::error!("reloading sites after a change: {e}");
    }
    for deployment in also_dropped {
        sites.cache.invalidate_deployment(*deployment);
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
