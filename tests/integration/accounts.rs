//! Dashboard accounts through the real binary (issue #13): the first-run setup link, login
//! and its cookie, the login rate limit, CSRF, logout, sessions (list, revoke, idle
//! expiry), password changes, scoped accounts made with `fazt user set-password`, the audit
//! log and the hasher's bounded queue.

use crate::common::zips;
use crate::common::*;
use serde_json::{json, Value};
use std::time::Duration;

const PASSWORD: &str = "correct horse battery";

/// A request to the admin host with the given headers and a JSON body.
fn admin(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    send(
        server,
        method,
        "admin.localhost",
        path,
        &all,
        body.as_bytes(),
    )
}

/// A GET on the admin host with a session cookie.
fn get_with(server: &Server, path: &str, cookie: &str) -> HttpResponse {
    admin(server, "GET", path, &[("Cookie", cookie)], &Value::Null)
}

/// The session token a response's `Set-Cookie` carries.
fn cookie_of(response: &HttpResponse) -> String {
    let set = response.header("set-cookie").expect("a Set-Cookie header");
    let value = set
        .strip_prefix("fazt_session=")
        .expect("the session cookie");
    value.split(';').next().unwrap().to_string()
}

fn with_cookie(token: &str) -> String {
    format!("fazt_session={token}")
}

/// Signs in; returns the response.
fn login(server: &Server, username: &str, password: &str, remember: bool) -> HttpResponse {
    let body = json!({ "username": username, "password": password, "remember": remember });
    admin(server, "POST", "/api/login", &[], &body)
}

#[test]
fn the_setup_link_creates_the_owner_once_and_signs_in() {
    let server = Server::start();
    let link = server
        .setup_link
        .clone()
        .expect("a setup link while no account exists");
    assert!(
        link.starts_with(&format!("http://localhost:{}/setup#", server.addr.port())),
        "{link}"
    );
    let token = link.rsplit('#').next().unwrap();
    let page = server.get("localhost", "/setup");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("setup.js"), "the setup page is served");

    let weak = json!({ "token": token, "username": "owner", "password": "short" });
    let refused = admin(&server, "POST", "/api/setup", &[], &weak);
    assert_eq!(refused.status, 400, "{}", refused.text());
    assert!(refused.text().contains("at least 8"));

    let body = json!({ "token": token, "username": "owner", "password": PASSWORD });
    let made = admin(&server, "POST", "/api/setup", &[], &body);
    assert_eq!(made.status, 201, "{}", made.text());
    assert_eq!(made.json()["username"], "owner");
    assert_eq!(made.json()["owner"], true);
    let cookie = cookie_of(&made);
    let me = admin(
        &server,
        "GET",
        "/api/session",
        &[("Cookie", &with_cookie(&cookie))],
        &Value::Null,
    );
    assert_eq!(me.status, 200, "{}", me.text());
    assert_eq!(me.json()["via"], "session");

    let again = json!({ "token": token, "username": "mallory", "password": PASSWORD });
    let reused = admin(&server, "POST", "/api/setup", &[], &again);
    assert_eq!(
        reused.status,
        403,
        "a setup link works once: {}",
        reused.text()
    );
    assert!(login(&server, "mallory", PASSWORD, false).status == 401);
}

#[test]
fn login_sets_a_strict_host_only_cookie_and_wrong_passwords_are_401() {
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    let wrong = login(&server, "owner", "not the password", false);
    assert_eq!(wrong.status, 401);
    let unknown = login(&server, "nobody", PASSWORD, false);
    assert_eq!(unknown.status, 401);
    assert_eq!(
        wrong.json()["error"]["message"],
        unknown.json()["error"]["message"],
        "usernames can't be probed"
    );

    let ok = login(&server, "Owner", PASSWORD, false);
    assert_eq!(ok.status, 200, "usernames are case-blind: {}", ok.text());
    let set = ok.header("set-cookie").unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    for absent in ["Domain=", "Secure", "Max-Age"] {
        assert!(!set.contains(absent), "{set}");
    }
    let remembered = login(&server, "owner", PASSWORD, true);
    let set = remembered.header("set-cookie").unwrap();
    assert!(set.contains(&format!("Max-Age={}", 30 * 86_400)), "{set}");

    // The session opens the API like an owner key would.
    let cookie = with_cookie(&cookie_of(&ok));
    let health = get_with(&server, "/api/system/health", &cookie);
    assert_eq!(health.status, 200);
    let bogus = admin(
        &server,
        "GET",
        "/api/system/health",
        &[("Cookie", "fazt_session=fzs_00")],
        &Value::Null,
    );
    assert_eq!(bogus.status, 401);
    assert!(
        bogus.header("set-cookie").unwrap().contains("Max-Age=0"),
        "a dead cookie is cleared"
    );
}

#[test]
fn five_failures_lock_out_the_address_and_the_username_for_a_while() {
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    for _ in 0..5 {
        assert_eq!(login(&server, "owner", "guess", false).status, 401);
    }
    let locked = login(&server, "owner", PASSWORD, false);
    assert_eq!(
        locked.status,
        429,
        "even the right password waits: {}",
        locked.text()
    );
    let wait: u64 = locked.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=180).contains(&wait),
        "one failure's worth of 15 minutes: {wait}"
    );
    let metrics = server.admin_get("/metrics", Some(&server.token)).text();
    assert!(metrics.contains("fazt_login_failures_total 5"), "{metrics}");
    assert!(
        metrics.contains("fazt_login_throttled_total 1"),
        "{metrics}"
    );
    let audit = get_json(&server, "/api/audit");
    let failed = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login" && e["outcome"] == "wrong username or password")
        .count();
    assert_eq!(failed, 5, "{audit}");
}

#[test]
fn a_cookie_post_from_another_origin_is_refused_and_bearer_keys_are_not_affected() {
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    let cookie = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let body = json!({ "name": "from-a-form" });
    let foreign = [
        ("Cookie", cookie.as_str()),
        ("Origin", "https://evil.example"),
    ];
    let refused = admin(&server, "POST", "/api/keys", &foreign, &body);
    assert_eq!(refused.status, 403, "{}", refused.text());
    assert!(refused.text().contains("cross-origin"));
    let cross_site = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Site", "cross-site"),
    ];
    assert_eq!(
        admin(&server, "POST", "/api/keys", &cross_site, &body).status,
        403
    );
    let own = [
        ("Cookie", cookie.as_str()),
        ("Origin", "http://admin.localhost"),
    ];
    assert_eq!(admin(&server, "POST", "/api/keys", &own, &body).status, 201);
    // Reads are not state changes.
    let read = [
        ("Cookie", cookie.as_str()),
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(
        admin(&server, "GET", "/api/keys", &read, &Value::Null).status,
        200
    );
    // A Bearer key is not sent by browsers on their own: no Origin rule.
    let auth = format!("Bearer {}", server.token);
    let keyed = [
        ("Authorization", auth.as_str()),
        ("Origin", "https://evil.example"),
    ];
    assert_eq!(
        admin(&server, "POST", "/api/keys", &keyed, &json!({"name": "k"})).status,
        201
    );
    // A login form posted from elsewhere is refused too (login CSRF).
    let creds = json!({ "username": "owner", "password": PASSWORD });
    let posted = admin(
        &server,
        "POST",
        "/api/login",
        &[("Origin", "https://evil.example")],
        &creds,
    );
    assert_eq!(posted.status, 403);
}

#[test]
fn logout_and_revocation_end_sessions_on_the_server() {
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    let first = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let second = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let listed = get_with(&server, "/api/sessions", &first).json();
    let sessions = listed["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 2, "{listed}");
    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let path = format!("/api/sessions/{}", other["id"].as_str().unwrap());
    let own = [
        ("Cookie", first.as_str()),
        ("Origin", "http://admin.localhost"),
    ];
    assert_eq!(
        admin(&server, "DELETE", &path, &own, &Value::Null).status,
        200
    );
    assert_eq!(get_with(&server, "/api/session", &second).status, 401);
    assert_eq!(
        admin(&server, "DELETE", &path, &own, &Value::Null).status,
        404
    );

    let out = admin(&server, "POST", "/api/logout", &own, &Value::Null);
    assert_eq!(out.status, 200);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    // The browser may keep the token; the server no longer takes it.
    assert_eq!(get_with(&server, "/api/session", &first).status, 401);
    let audit = get_json(&server, "/api/audit").to_string();
    assert!(
        audit.contains("\"logout\"") && audit.contains("session.revoke"),
        "{audit}"
    );
}

#[test]
fn an_idle_session_expires_and_use_keeps_it_alive() {
    let server = Server::builder()
        .env("FAZT_SESSION_IDLE", "2s")
        .env("FAZT_SESSION_REMEMBER", "1h")
        .start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    let short = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let long = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, true)));
    let me = |cookie: &str| get_with(&server, "/api/session", cookie).status;
    assert_eq!(me(&short), 200);
    std::thread::sleep(Duration::from_millis(3100));
    assert_eq!(me(&short), 401, "two seconds unused: ended");
    assert_eq!(me(&long), 200, "remember me: an hour");
}

#[test]
fn a_password_change_ends_other_sessions_and_the_old_password() {
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    let other = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let mine = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let own = [
        ("Cookie", mine.as_str()),
        ("Origin", "http://admin.localhost"),
    ];
    let wrong = json!({ "current": "not it", "new": "a new passphrase" });
    assert_eq!(
        admin(&server, "POST", "/api/password", &own, &wrong).status,
        401
    );
    let change = json!({ "current": PASSWORD, "new": "a new passphrase" });
    let changed = admin(&server, "POST", "/api/password", &own, &change);
    assert_eq!(changed.status, 200, "{}", changed.text());
    let fresh = with_cookie(&cookie_of(&changed));
    let me = |cookie: &str| get_with(&server, "/api/session", cookie).status;
    assert_eq!(me(&other), 401);
    assert_eq!(me(&mine), 401);
    assert_eq!(me(&fresh), 200, "this browser stays signed in");
    assert_eq!(login(&server, "owner", PASSWORD, false).status, 401);
    assert_eq!(
        login(&server, "owner", "a new passphrase", false).status,
        200
    );
    // A key can't change a password (it has none to confirm).
    let keyed = admin_post(&server, "/api/password", &change);
    assert_eq!(keyed.status, 403);
}

#[test]
fn a_scoped_account_sees_only_its_sites() {
    let server = Server::start();
    let (code, out, err) = set_password(&server, "alice", PASSWORD, &["--scope", "deploy:blog"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("account created: alice (scope deploy:blog)"),
        "{out}"
    );
    for site in ["blog", "shop"] {
        let dir = TempDir::new(site);
        write_file(dir.path(), "index.html", site.as_bytes());
        import(site, dir.path(), server.data.path());
    }
    let cookie = with_cookie(&cookie_of(&login(&server, "alice", PASSWORD, false)));
    let sites = get_with(&server, "/api/sites", &cookie);
    let names: Vec<_> = sites.json()["sites"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["blog"], "{}", sites.text());
    let keys = get_with(&server, "/api/keys", &cookie);
    assert_eq!(keys.status, 403);
    let audit = get_with(&server, "/api/audit", &cookie);
    assert_eq!(audit.status, 403);
    let me = get_with(&server, "/api/session", &cookie).json();
    assert_eq!(
        (me["scope"].as_str(), me["owner"].as_bool()),
        (Some("deploy:blog"), Some(false))
    );

    let data = server.data.path();
    let (code, listed, _) = run_cli(&["user", "list", "--data", s(data)], &[]);
    assert_eq!(code, 0);
    let row: Vec<&str> = listed.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..2], ["alice", "deploy:blog"], "{listed}");
    let (code, out, _) = run_cli(&["user", "delete", "alice", "--data", s(data)], &[]);
    assert_eq!(code, 0, "{out}");
    let me = get_with(&server, "/api/session", &cookie);
    assert_eq!(me.status, 401, "a deleted account's sessions end");
    let (code, _, err) = run_cli(&["user", "delete", "alice", "--data", s(data)], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no dashboard account named 'alice'"), "{err}");

    // Bad input to the command: a clear message, exit 2, nothing written.
    let (code, _, err) = set_password(&server, "bad name!", PASSWORD, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("invalid username"), "{err}");
    let (code, _, err) = set_password(&server, "bob", "short", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("at least 8"), "{err}");
    assert_eq!(login(&server, "bob", "short", false).status, 401);
}

#[test]
fn a_login_flood_waits_in_a_short_queue_then_gets_503() {
    use std::io::Write;
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    // 40 logins from 40 addresses (the per-address limit is not what this tests), all but
    // their last byte sent first, then the last bytes together: they reach the admin
    // thread within a few milliseconds, far less than 9 hashes take.
    let mut streams: Vec<_> = (2..42u8)
        .map(|n| {
            let body = json!({ "username": format!("user{n}"), "password": "wrong" }).to_string();
            let raw = request_bytes(
                "POST",
                "admin.localhost",
                "/api/login",
                &[("Content-Type", "application/json")],
                body.as_bytes(),
            );
            let from = crate::common::source::loopback(n);
            let mut stream = crate::common::source::connect_from(from, server.addr);
            stream.write_all(&raw[..raw.len() - 1]).unwrap();
            (stream, raw[raw.len() - 1])
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for (stream, last) in &mut streams {
        stream.write_all(&[*last]).unwrap();
    }
    let statuses: Vec<u16> = streams
        .iter_mut()
        .map(|(stream, _)| read_response(stream).unwrap().status)
        .collect();
    let busy = statuses.iter().filter(|&&s| s == 503).count();
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    assert_eq!(busy + refused, 40, "{statuses:?}");
    assert!(
        busy > 0,
        "one hash at a time and 8 waiting: the rest are 503 ({statuses:?})"
    );
    // 8 wait, and one more once the hasher has taken the first off the queue (on a busy
    // machine it may not have yet when the others arrive).
    assert!(refused >= 8, "{statuses:?}");
}

#[test]
fn changes_are_audited_with_who_from_where_and_how_they_went() {
    let server = Server::start();
    assert_eq!(set_password(&server, "owner", PASSWORD, &[]).0, 0);
    let made = admin_post(&server, "/api/keys", &json!({ "name": "ci" }));
    assert_eq!(made.status, 201);
    let id = made.json()["id"].as_str().unwrap().to_string();
    assert_eq!(
        admin_delete(&server, &format!("/api/keys/{id}")).status,
        200
    );
    assert_eq!(admin_delete(&server, "/api/keys/nosuchkey").status, 404);
    assert_eq!(
        admin_post(&server, "/api/system/vacuum", &json!({})).status,
        200
    );

    // A deploy from the dashboard: the cookie, from the admin origin.
    let cookie = with_cookie(&cookie_of(&login(&server, "owner", PASSWORD, false)));
    let zip = zips::zip_of(&[("index.html", b"hi")], zip::CompressionMethod::Stored);
    let headers = [
        ("Cookie", cookie.as_str()),
        ("Origin", "http://admin.localhost"),
        ("Content-Type", "application/zip"),
    ];
    let deployed = send(
        &server,
        "POST",
        "admin.localhost",
        "/api/deploy?site=blog",
        &headers,
        &zip,
    );
    assert_eq!(deployed.status, 200, "{}", deployed.text());
    let foreign = [
        ("Cookie", cookie.as_str()),
        ("Origin", "https://evil.example"),
        ("Content-Type", "application/zip"),
    ];
    let refused = send(
        &server,
        "POST",
        "admin.localhost",
        "/api/deploy?site=blog",
        &foreign,
        &zip,
    );
    assert_eq!(
        refused.status,
        403,
        "a cross-origin deploy with the cookie: {}",
        refused.text()
    );

    let mut entries = Vec::new();
    for _ in 0..50 {
        entries = get_json(&server, "/api/audit")["entries"]
            .as_array()
            .unwrap()
            .clone();
        if entries.iter().any(|e| e["action"] == "deploy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let find = |action: &str, outcome: &str| {
        entries
            .iter()
            .find(|e| e["action"] == action && e["outcome"].as_str().unwrap().contains(outcome))
            .unwrap_or_else(|| panic!("no {action} {outcome} in {entries:#?}"))
            .clone()
    };
    let created = find("key.create", "ok");
    assert_eq!(
        (created["actor"].as_str(), created["target"].as_str()),
        (Some("key owner"), Some("ci"))
    );
    assert_eq!(created["ip"], "127.0.0.1");
    assert_eq!(
        find("key.delete", "ok")["target"].as_str(),
        Some(id.as_str())
    );
    find("key.delete", "no API key with id 'nosuchkey'");
    find("vacuum", "ok");
    let deploy = find("deploy", "ok");
    assert_eq!(deploy["actor"], "user owner");
    assert!(
        deploy["target"].as_str().unwrap().starts_with("blog #"),
        "{deploy}"
    );
}
