//! The admin API, served only on the reserved admin thread. Every route except liveness
//! requires an API key (`Authorization: Bearer`).

use crate::http::{Method, Request, Response};
use crate::keys::{validate_name, KeyStore};
use crate::metrics::METRICS;
use crate::server::App;
use serde_json::json;
use std::sync::Arc;

/// Largest body an admin route accepts: JSON documents only, until deploys arrive.
pub const ADMIN_BODY_LIMIT: u64 = 64 * 1024;

pub struct AdminApi {
    app: Arc<App>,
    keys: KeyStore,
}

impl AdminApi {
    pub fn new(app: Arc<App>, keys: KeyStore) -> AdminApi {
        AdminApi { app, keys }
    }

    pub fn handle(&mut self, request: &Request) -> Response {
        METRICS.admin_requests.inc();
        if request.path() == "/health" {
            return crate::server::liveness();
        }
        let token = request
            .header_str("authorization")
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let Some(token) = token else {
            return Response::error(401, "missing API key: send 'Authorization: Bearer <key>'")
                .header("WWW-Authenticate", "Bearer");
        };
        if self.keys.authenticate(token).is_none() {
            return Response::error(401, "invalid or revoked API key")
                .header("WWW-Authenticate", "Bearer");
        }
        self.route(request)
    }

    fn route(&mut self, request: &Request) -> Response {
        let path = request.path();
        match (request.method, path) {
            (Method::Get | Method::Head, "/api/system/health") => self.health(),
            (Method::Get | Method::Head, "/metrics") => Response::new(200).body(
                "text/plain; version=0.0.4; charset=utf-8",
                crate::http::Body::Owned(METRICS.render_prometheus().into_bytes()),
            ),
            (Method::Get | Method::Head, "/api/keys") => self.list_keys(),
            (Method::Post, "/api/keys") => self.create_key(request),
            (Method::Delete, _) if path.starts_with("/api/keys/") => {
                self.revoke_key(&path["/api/keys/".len()..])
            }
            (_, "/api/system/health" | "/metrics" | "/api/keys") => method_not_allowed(path),
            _ if path.starts_with("/api/keys/") => method_not_allowed(path),
            _ => Response::error(
                404,
                &format!("no admin route {} {}", request.method_text(), path),
            ),
        }
    }

    fn health(&self) -> Response {
        let draining = self.app.is_draining();
        let open = self.app.public_cap.open();
        let degraded = open * 10 >= self.app.public_cap.max() * 9;
        let status = if draining {
            "draining"
        } else if degraded {
            "degraded"
        } else {
            "ok"
        };
        let body = json!({
            "status": status,
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_seconds": self.app.started.elapsed().as_secs(),
            "limits": self.app.config.probe.to_json()["limits"],
            "counters": METRICS.to_json(),
        });
        Response::json(if draining { 503 } else { 200 }, &body)
    }

    fn list_keys(&mut self) -> Response {
        match self.keys.list() {
            Ok(keys) => Response::json(
                200,
                &json!({ "keys": keys.iter().map(|k| k.to_json()).collect::<Vec<_>>() }),
            ),
            Err(e) => storage_error(e),
        }
    }

    fn create_key(&mut self, request: &Request) -> Response {
        let parsed: Result<serde_json::Value, _> = serde_json::from_slice(&request.body);
        let name = match &parsed {
            Ok(v) => v.get("name").and_then(|n| n.as_str()),
            Err(e) => return Response::error(400, &format!("body is not valid JSON: {e}")),
        };
        let Some(name) = name else {
            return Response::error(400, "field 'name' (a string) is required");
        };
        if let Err(e) = validate_name(name) {
            return Response::error(400, &e);
        }
        match self.keys.create(name, "owner") {
            Ok((key, token)) => {
                let mut body = key.to_json();
                body["token"] = json!(token);
                Response::json(201, &body)
            }
            Err(e) => storage_error(e),
        }
    }

    fn revoke_key(&mut self, id: &str) -> Response {
        match self.keys.revoke(id) {
            Ok(true) => Response::json(200, &json!({ "revoked": id })),
            Ok(false) => Response::error(404, &format!("no API key with id '{id}'")),
            Err(e) => storage_error(e),
        }
    }
}

fn method_not_allowed(path: &str) -> Response {
    let allow = match path {
        "/api/keys" => "GET, HEAD, POST",
        p if p.starts_with("/api/keys/") => "DELETE",
        _ => "GET, HEAD",
    };
    Response::error(405, &format!("method not allowed on {path}")).header("Allow", allow)
}

fn storage_error(e: std::io::Error) -> Response {
    log::error!("API key storage: {e}");
    Response::error(500, &format!("API key storage failed: {e}"))
}
