//! Browser sign-in for the admin API (issue #13): first-run setup, login, logout, the
//! session cookie, CSRF, password changes, the sessions list and the audit log.
//!
//! Passwords are checked on the hasher thread and sessions written by the writer: a login
//! is answered later, through `reply`, and the admin thread never waits for either.

use super::{write_then, AdminContext, Reply};
use crate::auth::audit::{self, Entry};
use crate::auth::caller::{self, clear_cookie, session_cookie, Caller};
use crate::auth::guard::LoginGuard;
use crate::auth::password::{self, Hasher};
use crate::auth::sessions::{self, Session, SessionPolicy};
use crate::auth::setup;
use crate::auth::users::{self, validate_username, User};
use crate::db::writer::WriterHandle;
use crate::db::DbError;
use crate::http::{error_response, Method, Request, Response};
use crate::keys::Scopes;
use crate::platform::clock::unix_now;
use rusqlite::Connection;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::sync::Arc;

/// What the admin API needs for accounts.
#[derive(Clone)]
pub struct Accounts {
    pub hasher: Hasher,
    pub guard: Arc<LoginGuard>,
    pub policy: SessionPolicy,
    /// Audit entries older than this are deleted.
    pub audit_retention: std::time::Duration,
}

/// The routes that need no key or session: they are how one gets a session.
pub(crate) fn is_public(path: &str) -> bool {
    matches!(path, "/api/setup" | "/api/login" | "/api/logout")
}

/// Answers a public route.
pub(crate) fn public(ctx: &AdminContext, request: &Request, reply: Reply) -> Option<Response> {
    let path = request.path();
    if request.method != Method::Post {
        return Some(
            Response::error(405, &format!("method not allowed on {path}")).header("Allow", "POST"),
        );
    }
    // A login form posted from another site would sign the browser in to the attacker's
    // account (login CSRF): browsers send Origin with every POST.
    if !caller::same_origin(request) {
        return Some(caller::cross_origin());
    }
    match path {
        "/api/setup" => setup_owner(ctx, request, reply),
        "/api/login" => login(ctx, request, reply),
        _ => logout(ctx, request, reply),
    }
}

/// The JSON object body of a request, or the 400.
fn body_object(request: &Request) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(&request.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(Response::error(400, "the body must be a JSON object")),
        Err(e) => Err(Response::error(
            400,
            &format!("body is not valid JSON: {e}"),
        )),
    }
}

fn text_field(body: &serde_json::Map<String, Value>, name: &str) -> Result<String, Response> {
    body.get(name)
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| Response::error(400, &format!("field '{name}' (a string) is required")))
}

/// The 503 when the hasher's queue is full.
fn hasher_busy() -> Response {
    Response::error(503, "too many sign-ins at once; retry in a moment").header("Retry-After", "1")
}

/// [`write_then`] for work already off the admin thread: a full writer queue's refusal
/// goes through `reply` too.
fn write_then_reply<T: Send + 'static>(
    writer: &WriterHandle,
    reply: Reply,
    job: impl FnOnce(&mut Connection) -> Result<T, DbError> + Send + 'static,
    answer: impl FnOnce(Result<T, DbError>) -> Response + Send + 'static,
) {
    let slot = Arc::new(parking_lot::Mutex::new(Some(reply)));
    let later = Arc::clone(&slot);
    let on_done: Reply = Box::new(move |response| {
        if let Some(reply) = later.lock().take() {
            reply(response);
        }
    });
    if let Some(refused) = write_then(writer, on_done, job, answer) {
        if let Some(reply) = slot.lock().take() {
            reply(refused);
        }
    }
}

/// What a sign-in carries to the hasher thread and on to the writer.
struct SignIn {
    writer: WriterHandle,
    policy: SessionPolicy,
    guard: Arc<LoginGuard>,
    client: IpAddr,
    tls: bool,
    device: String,
    remember: bool,
}

impl SignIn {
    fn of(ctx: &AdminContext, request: &Request, remember: bool) -> SignIn {
        SignIn {
            writer: ctx.writer.clone(),
            policy: ctx.accounts.policy,
            guard: Arc::clone(&ctx.accounts.guard),
            client: ctx.proxies.client_ip(request),
            tls: request.tls,
            device: request
                .header_str("user-agent")
                .unwrap_or("unknown")
                .to_string(),
            remember,
        }
    }

    /// In one writer job: `user_of` (the user signing in, after setting a password or
    /// using the setup token), a new session and the audit entry for `action`; answers
    /// `status` with the session cookie.
    fn start_session(
        self,
        user_of: impl FnOnce(&mut Connection) -> Result<User, DbError> + Send + 'static,
        action: &'static str,
        status: u16,
        reply: Reply,
    ) {
        let SignIn {
            writer,
            policy,
            client,
            tls,
            device,
            remember,
            ..
        } = self;
        let ip = client.to_string();
        let job = move |conn: &mut Connection| {
            let user = user_of(conn)?;
            let now = unix_now();
            let (session, token) =
                sessions::create(conn, &user, remember, &device, &ip, now, policy)?;
            let actor = format!("user {}", user.username);
            audit::record(conn, &Entry::now(&actor, &ip, action, None, "ok"))?;
            Ok((session, token))
        };
        let answer = move |result: Result<(Session, String), DbError>| match result {
            Ok((session, token)) => {
                let max_age = session.remember.then_some(policy.remember);
                Response::json(
                    status,
                    &whoami(&session.user.username, &session.user.scope, Some(&session)),
                )
                .header("Set-Cookie", session_cookie(tls, &token, max_age))
            }
            Err(e) => error_response(&e),
        };
        write_then_reply(&writer, reply, job, answer);
    }

    /// A wrong username or password: counted against the address and the username,
    /// audited, answered 401 (the same for both, so usernames can't be probed).
    fn refuse(self, username: &str, reply: Reply) {
        self.guard.failed(self.client, username);
        let ip = self.client.to_string();
        audit::later(
            &self.writer,
            Entry::now(username, &ip, "login", None, "wrong username or password"),
        );
        reply(Response::error(401, "wrong username or password"));
    }
}

/// Who is signed in: the JSON of `GET /api/session` and of a successful sign-in.
fn whoami(username: &str, scope: &str, session: Option<&Session>) -> Value {
    json!({
        "username": username,
        "scope": scope,
        "owner": Scopes::from_stored(scope).is_owner(),
        "via": if session.is_some() { "session" } else { "key" },
        "session": session.map(|s| s.to_json(Some(&s.id))),
    })
}

/// `POST /api/login` `{username, password, remember}`.
fn login(ctx: &AdminContext, request: &Request, reply: Reply) -> Option<Response> {
    let body = match body_object(request) {
        Ok(body) => body,
        Err(refused) => return Some(refused),
    };
    let (username, password) = match (text_field(&body, "username"), text_field(&body, "password"))
    {
        (Ok(u), Ok(p)) => (u.trim().to_string(), p),
        (Err(refused), _) | (_, Err(refused)) => return Some(refused),
    };
    let remember = body
        .get("remember")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if let Some(refused) = ctx
        .accounts
        .guard
        .refuse(ctx.proxies.client_ip(request), &username)
    {
        return Some(refused);
    }
    let found = match crate::db::reader::read_db(|conn| users::find(conn, &username)) {
        Ok(found) => found,
        Err(e) => return Some(error_response(&e)),
    };
    let sign_in = SignIn::of(ctx, request, remember);
    let job = move || match found {
        Some((user, stored)) if password::verify(&stored, &password) => {
            sign_in.start_session(move |_| Ok(user), "login", 200, reply)
        }
        Some(_) => sign_in.refuse(&username, reply),
        None => {
            password::verify_nobody(&password);
            sign_in.refuse(&username, reply)
        }
    };
    (!ctx.accounts.hasher.try_run(job)).then(hasher_busy)
}

/// `POST /api/setup` `{token, username, password}`: the first-run link chooses the owner's
/// username and password, and signs in.
fn setup_owner(ctx: &AdminContext, request: &Request, reply: Reply) -> Option<Response> {
    let body = match body_object(request) {
        Ok(body) => body,
        Err(refused) => return Some(refused),
    };
    let fields = (
        text_field(&body, "token"),
        text_field(&body, "username"),
        text_field(&body, "password"),
    );
    let (token, username, password) = match fields {
        (Ok(t), Ok(u), Ok(p)) => (t, u.trim().to_string(), p),
        (Err(refused), _, _) | (_, Err(refused), _) | (_, _, Err(refused)) => return Some(refused),
    };
    if let Err(why) = validate_username(&username).and_then(|()| password::check_new(&password)) {
        return Some(Response::error(400, &why));
    }
    let valid = crate::db::reader::read_db(|conn| setup::is_valid(conn, &token, unix_now()));
    match valid {
        Ok(true) => {}
        Ok(false) => {
            return Some(Response::error(
                403,
                "this setup link is not valid (used, expired, or mistyped): run 'fazt user set-password NAME' on the server instead",
            ))
        }
        Err(e) => return Some(error_response(&e)),
    }
    let sign_in = SignIn::of(ctx, request, false);
    let job = move || {
        let stored = match password::hash(&password) {
            Ok(stored) => stored,
            Err(e) => return reply(Response::error(500, &e)),
        };
        let user_of = move |conn: &mut Connection| {
            // The token is checked again in the job: two set-ups racing, one wins.
            if !setup::consume(conn, &token, unix_now())? {
                // Rare (two set-ups at once): the other one won.
                return Err(DbError::Internal(
                    "this setup link was used a moment ago".into(),
                ));
            }
            users::set_password(conn, &username, &stored, &Scopes::owner(), unix_now())
        };
        sign_in.start_session(user_of, "setup", 201, reply)
    };
    (!ctx.accounts.hasher.try_run(job)).then(hasher_busy)
}

/// `POST /api/logout`: ends the cookie's session (if any) and clears the cookie.
fn logout(ctx: &AdminContext, request: &Request, reply: Reply) -> Option<Response> {
    let tls = request.tls;
    let cleared = move || {
        Response::json(200, &json!({ "signed_out": true })).header("Set-Cookie", clear_cookie(tls))
    };
    let session = match caller::session_of(request) {
        Ok(Some(session)) => session,
        // No cookie, or one that opens nothing: signed out already.
        Ok(None) | Err(_) => return Some(cleared()),
    };
    let ip = ctx.proxies.client_ip(request).to_string();
    let job = move |conn: &mut Connection| {
        sessions::revoke(conn, &session.id)?;
        let actor = format!("user {}", session.user.username);
        audit::record(conn, &Entry::now(&actor, &ip, "logout", None, "ok"))
    };
    let answer = move |result: Result<(), DbError>| match result {
        Ok(()) => cleared(),
        Err(e) => error_response(&e),
    };
    write_then(&ctx.writer, reply, job, answer)
}

/// The account routes behind authentication: `Some` when `path` is one of them.
pub(crate) fn route(
    ctx: &AdminContext,
    request: &Request,
    caller: &Caller,
    reply: Reply,
) -> Result<Option<Response>, Reply> {
    let (key, session) = (&caller.key, caller.session.as_ref());
    let path = request.path();
    let answer = match (request.method, path) {
        (Method::Get | Method::Head, "/api/session") => {
            Some(Response::json(200, &whoami(&key.name, &key.scope, session)))
        }
        (Method::Post, "/api/password") => {
            return Ok(change_password(ctx, request, session, reply))
        }
        (_, "/api/session" | "/api/password") => Some(not_allowed(path)),
        _ if !key.is_owner()
            && (path == "/api/sessions"
                || path.starts_with("/api/sessions/")
                || path == "/api/audit") =>
        {
            Some(Response::error(
                403,
                &format!("{path} needs the owner scope"),
            ))
        }
        (Method::Get | Method::Head, "/api/sessions") => Some(list_sessions(session)),
        (Method::Delete, _) if path.starts_with("/api/sessions/") => {
            return Ok(revoke_session(
                ctx,
                request,
                caller,
                &path["/api/sessions/".len()..],
                reply,
            ))
        }
        (Method::Get | Method::Head, "/api/audit") => Some(audit_page(request)),
        (_, "/api/sessions" | "/api/audit") => Some(not_allowed(path)),
        _ if path.starts_with("/api/sessions/") => Some(not_allowed(path)),
        _ => return Err(reply),
    };
    Ok(answer)
}

fn not_allowed(path: &str) -> Response {
    let allow = match path {
        "/api/password" => "POST",
        p if p.starts_with("/api/sessions/") => "DELETE",
        _ => "GET, HEAD",
    };
    Response::error(405, &format!("method not allowed on {path}")).header("Allow", allow)
}

fn list_sessions(current: Option<&Session>) -> Response {
    let now = unix_now();
    match crate::db::reader::read_db(|conn| sessions::list(conn, now)) {
        Ok(list) => {
            let current = current.map(|s| s.id.as_str());
            let list: Vec<Value> = list.iter().map(|s| s.to_json(current)).collect();
            Response::json(200, &json!({ "sessions": list }))
        }
        Err(e) => error_response(&e),
    }
}

fn revoke_session(
    ctx: &AdminContext,
    request: &Request,
    caller: &Caller,
    id: &str,
    reply: Reply,
) -> Option<Response> {
    let (id, shown) = (id.to_string(), id.to_string());
    let ip = ctx.proxies.client_ip(request).to_string();
    let actor = caller.actor();
    let job = move |conn: &mut Connection| {
        let ended = sessions::revoke(conn, &id)?;
        if ended {
            audit::record(
                conn,
                &Entry::now(&actor, &ip, "session.revoke", Some(&id), "ok"),
            )?;
        }
        Ok(ended)
    };
    let answer = move |result: Result<bool, DbError>| match result {
        Ok(true) => Response::json(200, &json!({ "revoked": shown })),
        Ok(false) => Response::error(404, &format!("no session with id '{shown}'")),
        Err(e) => error_response(&e),
    };
    write_then(&ctx.writer, reply, job, answer)
}

/// `GET /api/audit?before=ID&limit=N`: newest first; `next` is the `before` of the next page.
fn audit_page(request: &Request) -> Response {
    let query = crate::analytics::ingest::QueryParams::parse(request.query());
    let number = |name: &str| query.get(name).and_then(|v| v.parse::<i64>().ok());
    let limit = number("limit").unwrap_or(100).clamp(1, 1000) as u32;
    match crate::db::reader::read_db(|conn| audit::page(conn, number("before"), limit)) {
        Ok((entries, next)) => Response::json(200, &json!({ "entries": entries, "next": next })),
        Err(e) => error_response(&e),
    }
}

/// `POST /api/password` `{current, new}` from a signed-in browser: checks the current
/// password, sets the new one, ends every session of the user and starts a new one here.
fn change_password(
    ctx: &AdminContext,
    request: &Request,
    session: Option<&Session>,
    reply: Reply,
) -> Option<Response> {
    let Some(session) = session else {
        return Some(Response::error(
            403,
            "a password is changed from a signed-in browser; with an API key use 'fazt user set-password NAME' on the server",
        ));
    };
    let body = match body_object(request) {
        Ok(body) => body,
        Err(refused) => return Some(refused),
    };
    let (current, new) = match (text_field(&body, "current"), text_field(&body, "new")) {
        (Ok(c), Ok(n)) => (c, n),
        (Err(refused), _) | (_, Err(refused)) => return Some(refused),
    };
    if let Err(why) = password::check_new(&new) {
        return Some(Response::error(400, &why));
    }
    let username = session.user.username.clone();
    let found = match crate::db::reader::read_db(|conn| users::find(conn, &username)) {
        Ok(Some(found)) => found,
        Ok(None) => return Some(Response::error(401, "this account no longer exists")),
        Err(e) => return Some(error_response(&e)),
    };
    let sign_in = SignIn::of(ctx, request, session.remember);
    let job = move || {
        let (user, stored) = found;
        if !password::verify(&stored, &current) {
            return sign_in.refuse(&username, reply);
        }
        let new_hash = match password::hash(&new) {
            Ok(hash) => hash,
            Err(e) => return reply(Response::error(500, &e)),
        };
        let scopes = user.scopes();
        let user_of = move |conn: &mut Connection| {
            users::set_password(conn, &user.username, &new_hash, &scopes, unix_now())
        };
        sign_in.start_session(user_of, "password", 200, reply)
    };
    (!ctx.accounts.hasher.try_run(job)).then(hasher_busy)
}

/// Deletes expired sessions and audit entries past their retention: a writer job whose
/// outcome is only logged.
pub(crate) fn prune(ctx: &AdminContext) {
    let now = unix_now();
    let cutoff = now.saturating_sub(ctx.accounts.audit_retention.as_secs() as i64);
    let job = move |conn: &mut Connection| {
        let ended = sessions::prune(conn, now)?;
        let old = audit::prune(conn, cutoff)?;
        if ended + old > 0 {
            log::info!("pruned {ended} expired session(s) and {old} old audit entries");
        }
        Ok(())
    };
    if let Err(e) = ctx.writer.try_submit(job) {
        log::warn!("pruning sessions and the audit log: {e}; next hour");
    }
}
