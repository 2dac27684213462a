//! Calls to the admin API and the messages for what the server answers.

use super::config::{SavedSettings, Settings};
use super::http::{self, Body, Request, Response, Timeouts};
use super::url::ServerUrl;
use super::ClientError;
use serde_json::Value;

/// Sends a request with an optional JSON body and returns the JSON of a 2xx answer.
/// `action` says what was attempted ("list sites", "roll back blog") for messages.
pub fn call(
    settings: &Settings,
    method: &str,
    path: &str,
    body: Option<&Value>,
    action: &str,
) -> Result<Value, ClientError> {
    call_within(settings, method, path, body, action, Timeouts::API)
}

/// [`call`] with other timeouts: for a route that answers when slow work is done.
pub fn call_within(
    settings: &Settings,
    method: &str,
    path: &str,
    body: Option<&Value>,
    action: &str,
    timeouts: Timeouts,
) -> Result<Value, ClientError> {
    let request = Request {
        method,
        path,
        token: &settings.token,
        body: match body {
            Some(value) => Body::Json(value.to_string().into_bytes()),
            None => Body::None,
        },
    };
    let response = http::send(&settings.server, request, timeouts).map_err(ClientError::Failed)?;
    json_of_success(&response, action)
}

/// What `fazt login` checks before saving: the server answers, and the token opens an
/// authenticated route (`GET /api/sites`, which every key may call). With no token yet,
/// the server's `/health` must answer.
pub fn check_login(saved: &SavedSettings) -> Result<(), ClientError> {
    let Some(server) = &saved.server else {
        return Err(ClientError::Usage(
            "no server is saved, so the token cannot be checked: pass --server URL too".into(),
        ));
    };
    let server = ServerUrl::parse(server).map_err(ClientError::Usage)?;
    let checked = match &saved.token {
        Some(token) => {
            let settings = Settings {
                server,
                token: token.clone(),
            };
            call(&settings, "GET", "/api/sites", None, "check the token").map(drop)
        }
        None => health(&server),
    };
    checked.map_err(|e| match e {
        ClientError::Failed(message) => {
            ClientError::Failed(format!("{message}; nothing was saved"))
        }
        usage => usage,
    })
}

fn health(server: &ServerUrl) -> Result<(), ClientError> {
    let request = Request {
        method: "GET",
        path: "/health",
        token: "",
        body: Body::None,
    };
    let response = http::send(server, request, Timeouts::API).map_err(ClientError::Failed)?;
    match response.status {
        200 => Ok(()),
        _ => Err(ClientError::Failed(explain(&response, "reach the server"))),
    }
}

/// The JSON of a 2xx answer, or the error that explains any other.
pub fn json_of_success(response: &Response, action: &str) -> Result<Value, ClientError> {
    if !(200..300).contains(&response.status) {
        return Err(ClientError::Failed(explain(response, action)));
    }
    response.json().ok_or_else(|| {
        ClientError::Failed(format!(
            "cannot {action}: the server answered {} without the expected JSON ({}); is this a fazt server?",
            response.status,
            response.error_text()
        ))
    })
}

/// One message per failure status: what it means for the user and what to do about it.
pub fn explain(response: &Response, action: &str) -> String {
    let status = response.status;
    let text = response.error_text();
    let retry = match response.header("retry-after") {
        Some(secs) if secs.bytes().all(|b| b.is_ascii_digit()) && !secs.is_empty() => {
            format!("retry in {secs} s")
        }
        _ => "retry in a moment".to_string(),
    };
    match status {
        401 => format!(
            "cannot {action}: the server refused the token (401: {text}); check --token, \
             FAZT_TOKEN or 'fazt login', or create a key with 'fazt key create NAME' on the server"
        ),
        403 => format!(
            "cannot {action}: the token is not allowed to (403: {text}); it needs the owner \
             scope or a deploy scope that covers the site"
        ),
        // fazt answers a host that is not its admin host as a site: the `404` site's page,
        // or 405 to anything but GET. The URL most likely names the server by IP or by a
        // site's host.
        404 | 405 if reached_a_site(response) => format!(
            "cannot {action}: the server answered {status} as a site, not the admin API; use the \
             admin host (http://localhost:PORT, https://admin.<domain>) or the --admin-listen \
             address as --server"
        ),
        404 => format!("cannot {action}: not found (404: {text})"),
        409 => format!("cannot {action}: {text} (409)"),
        413 => format!(
            "cannot {action}: the upload is larger than the server accepts (413: {text}); \
             deploy fewer or smaller files, or raise the server's limit"
        ),
        429 => format!("cannot {action}: too many requests (429: {text}); {retry}"),
        503 => format!(
            "cannot {action}: the server is busy (503: {text}); nothing was changed, {retry}"
        ),
        507 => format!(
            "cannot {action}: the server's disk is too full (507: {text}); nothing was changed"
        ),
        _ => format!("cannot {action}: the server answered {status}: {text}"),
    }
}

/// A 404 page (not the API's JSON error), or the 405 sites give to POST and DELETE.
fn reached_a_site(response: &Response) -> bool {
    match response.status {
        404 => !is_json_error(response),
        _ => response.error_text().contains("allowed on sites"),
    }
}

fn is_json_error(response: &Response) -> bool {
    response.json_error().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, retry_after: Option<&str>) -> Response {
        Response {
            status,
            headers: retry_after
                .map(|v| vec![("Retry-After".to_string(), v.to_string())])
                .unwrap_or_default(),
            body: format!(r#"{{"error":{{"code":"c{status}","message":"why {status}"}}}}"#)
                .into_bytes(),
        }
    }

    #[test]
    fn every_failure_status_names_the_action_the_reason_and_a_remedy() {
        for (status, needle) in [
            (400, "answered 400: why 400"),
            (401, "refused the token (401: why 401)"),
            (403, "not allowed to (403: why 403)"),
            (404, "not found (404: why 404)"),
            (409, "why 409 (409)"),
            (413, "larger than the server accepts (413: why 413)"),
            (429, "too many requests (429: why 429); retry in 7 s"),
            (500, "answered 500: why 500"),
            (
                503,
                "busy (503: why 503); nothing was changed, retry in 7 s",
            ),
            (507, "disk is too full (507: why 507)"),
        ] {
            let message = explain(&response(status, Some("7")), "deploy blog");
            assert!(message.starts_with("cannot deploy blog: "), "{message}");
            assert!(message.contains(needle), "{status}: {message}");
        }
        let page = Response {
            status: 404,
            headers: vec![],
            body: b"<html>no such site</html>".to_vec(),
        };
        let message = explain(&page, "list sites");
        assert!(
            message.contains("not the admin API; use the admin host"),
            "{message}"
        );
        let site_refusal = Response {
            status: 405,
            headers: vec![],
            body: br#"{"error":{"code":"method_not_allowed","message":"only GET and HEAD are allowed on sites"}}"#.to_vec(),
        };
        let message = explain(&site_refusal, "deploy blog");
        assert!(
            message.contains("405 as a site, not the admin API; use the admin host"),
            "{message}"
        );
        let message = explain(&response(503, None), "deploy blog");
        assert!(message.contains("retry in a moment"), "{message}");
    }

    #[test]
    fn an_older_servers_string_error_is_still_the_apis() {
        let older = Response {
            status: 404,
            headers: vec![],
            body: br#"{"error":"no site 'blog'","status":404}"#.to_vec(),
        };
        let message = explain(&older, "list deployments");
        assert!(
            message.contains("not found (404: no site 'blog')"),
            "{message}"
        );
    }

    #[test]
    fn success_needs_json() {
        let ok = Response {
            status: 200,
            headers: vec![],
            body: br#"{"sites":[]}"#.to_vec(),
        };
        assert_eq!(
            json_of_success(&ok, "list sites").unwrap()["sites"],
            serde_json::json!([])
        );
        let html = Response {
            status: 200,
            headers: vec![],
            body: b"<html>".to_vec(),
        };
        let err = json_of_success(&html, "list sites").unwrap_err();
        assert!(
            err.message().contains("is this a fazt server?"),
            "{}",
            err.message()
        );
        assert_eq!(err.exit_code(), 1);
    }
}
