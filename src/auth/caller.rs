//! Who sent a request to the admin API or a deploy: an API key (`Authorization: Bearer`),
//! or a signed-in browser (the `fazt_session` cookie), whose state-changing requests must
//! come from the dashboard's own origin (CSRF).

use super::sessions::{self, Session, COOKIE};
use crate::http::{error_response, Method, Request, Response};
use crate::keys::{ApiKey, AuthGuard};
use crate::platform::clock::unix_now;

/// An authenticated caller: the key (for a session, its user as a key-shaped identity, so
/// one set of scope checks serves both) and the session, if it came by cookie.
pub struct Caller {
    pub key: ApiKey,
    pub session: Option<Session>,
}

impl Caller {
    /// How the audit log names who acted.
    pub fn actor(&self) -> String {
        match &self.session {
            Some(_) => format!("user {}", self.key.name),
            None => format!("key {}", self.key.name),
        }
    }
}

/// The caller of `request`, or the answer refusing it (401, 403, 429). A request with an
/// `Authorization` header is a key's, whatever cookies it carries.
pub fn authenticate(request: &Request, keys: &AuthGuard) -> Result<Caller, Response> {
    if request.header("authorization").is_none() {
        if let Some(session) = session_of(request)? {
            if let Some(refused) = csrf_refusal(request) {
                return Err(refused);
            }
            let key = as_key(&session);
            return Ok(Caller {
                key,
                session: Some(session),
            });
        }
    }
    keys.authenticate(request)
        .map(|key| Caller { key, session: None })
}

/// The session the request's cookie opens, if it has one: `Ok(None)` without a cookie,
/// `Err` with the 401 for a cookie that opens nothing (expired, signed out).
pub fn session_of(request: &Request) -> Result<Option<Session>, Response> {
    let Some(token) = cookie(request, COOKIE) else {
        return Ok(None);
    };
    let now = unix_now();
    match crate::db::reader::read_db(|conn| sessions::lookup(conn, token, now)) {
        Ok(Some(session)) => Ok(Some(session)),
        Ok(None) => Err(Response::error(
            401,
            "the session has ended (signed out or unused for too long): sign in again",
        )
        .header("Set-Cookie", clear_cookie(request.tls))),
        Err(e) => Err(error_response(&e)),
    }
}

/// The key-shaped identity the API's scope checks take, for a session's user.
fn as_key(session: &Session) -> ApiKey {
    ApiKey {
        id: format!("session {}", session.id),
        name: session.user.username.clone(),
        scope: session.user.scope.clone(),
        created_at: session.created_at,
        last_used_at: Some(session.last_seen),
    }
}

/// A cookie request that changes state must come from the admin origin itself (`Origin`
/// naming this host, or `Sec-Fetch-Site: same-origin`).
fn csrf_refusal(request: &Request) -> Option<Response> {
    let reads = matches!(request.method, Method::Get | Method::Head);
    (!reads && !same_origin(request)).then(cross_origin)
}

/// The 403 of a cross-origin request made with the cookie.
pub fn cross_origin() -> Response {
    Response::error(
        403,
        "cross-origin request refused: a signed-in browser may change things only from the dashboard's own origin",
    )
}

/// Whether `request` comes from the origin it is addressed to. Without `Origin` and
/// `Sec-Fetch-Site` it is not a browser's cross-site request (browsers send `Origin` with
/// every POST, PUT and DELETE).
pub fn same_origin(request: &Request) -> bool {
    if request.header_str("sec-fetch-site") == Some("same-origin") {
        return true;
    }
    let (Some(origin), Some(host)) = (request.header_str("origin"), request.header_str("host"))
    else {
        return request.header("origin").is_none() && request.header("sec-fetch-site").is_none();
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn cookie<'r>(request: &'r Request, name: &str) -> Option<&'r str> {
    request
        .headers()
        .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
        .filter_map(|(_, v)| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// `Set-Cookie` for a session: host-only, HttpOnly, SameSite=Strict, Secure over TLS; kept
/// across browser restarts only with a `max_age` ("remember me").
pub fn session_cookie(tls: bool, token: &str, max_age: Option<i64>) -> String {
    let mut cookie = format!("{COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if tls {
        cookie.push_str("; Secure");
    }
    cookie
}

/// `Set-Cookie` that removes the session cookie.
pub fn clear_cookie(tls: bool) -> String {
    session_cookie(tls, "", Some(0))
}
