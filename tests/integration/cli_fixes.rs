//! CLI behaviour a first user runs into, against the real binary: empty imports refused,
//! names treated alike by `site import` and `deploy`, `login` checking before saving,
//! `sites rm` confirming, `deployments`, `key list`'s table, `--listen :PORT`, and the
//! warning for a site zipped inside its folder.
use crate::common::*;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The text of `/` on `host` once a CLI import has reached the running server.
fn page(server: &Server, host: &str, expected: &str) -> String {
    wait_for(server, host, "/", |r| r.text() == expected).text()
}

fn url(server: &Server) -> String {
    format!("http://localhost:{}", server.addr.port())
}

#[test]
fn an_empty_import_is_refused_and_the_live_site_stays() {
    let server = Server::start();
    let site = TempDir::new("import-full");
    write_file(site.path(), "index.html", b"live");
    import("blog", site.path(), server.data.path());
    assert_eq!(page(&server, "blog.localhost", "live"), "live");

    // A failed build: only dot-files, or nothing at all.
    let empty = TempDir::new("import-empty");
    std::fs::create_dir_all(empty.path()).unwrap();
    write_file(empty.path(), ".gitkeep", b"");
    let (code, out, err) = try_import("blog", empty.path(), server.data.path(), &[]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(err.contains("has no files to import"), "{err}");
    assert!(err.contains("the site is unchanged"), "{err}");
    // The server rereads the sites within a tick (200 ms) of a change: give it three.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(server.get("blog.localhost", "/").text(), "live");
}

#[test]
fn import_and_deploy_lower_case_a_site_name_alike() {
    let server = Server::start();
    let site = TempDir::new("import-case");
    write_file(site.path(), "index.html", b"imported");
    let out = import("Blog", site.path(), server.data.path());
    assert!(out.starts_with("site blog is now deployment"), "{out}");
    let home = TempDir::new("deploy-case");
    write_file(site.path(), "index.html", b"deployed");
    let (code, out, err) = run_client(
        &[
            "deploy",
            s(site.path()),
            "--site",
            "BLOG",
            "--server",
            &url(&server),
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("site blog is now deployment"), "{out}");
    assert_eq!(server.get("blog.localhost", "/").text(), "deployed");
    // Both refuse what is still not a name after lower-casing.
    let (code, _, err) = try_import("Bad_Name", site.path(), server.data.path(), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("invalid site name 'bad_name'"), "{err}");
}

#[test]
fn a_site_zipped_in_its_folder_is_published_with_a_warning() {
    let server = Server::start();
    let site = TempDir::new("nested");
    write_file(site.path(), "dist/index.html", b"hi");
    write_file(site.path(), "dist/app.js", b"1");
    let home = TempDir::new("nested-home");
    let (code, out, err) = run_client(
        &[
            "deploy",
            s(site.path()),
            "--site",
            "blog",
            "--server",
            &url(&server),
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: every file is inside the folder 'dist/'"),
        "{err}"
    );
    let (code, out, err) = try_import("blog", site.path(), server.data.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        err.contains("warning: every file is inside the folder 'dist/'"),
        "{err}"
    );
    // The folder's contents deploy without one.
    let (code, _, err) = try_import("blog", &site.path().join("dist"), server.data.path(), &[]);
    assert_eq!(code, 0);
    assert!(!err.contains("warning"), "{err}");
}

#[test]
fn login_checks_the_server_and_token_before_saving() {
    let server = Server::start();
    let home = TempDir::new("login-check");
    let config = home.path().join("config/fazt/config");
    let (code, _, err) = run_client(
        &[
            "login",
            "--server",
            &url(&server),
            "--token",
            "fzt_00000000_bad",
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("refused the token"), "{err}");
    assert!(err.contains("nothing was saved"), "{err}");
    assert!(!config.exists());

    // Nothing listens on this port: refused before saving too.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let (code, _, err) = run_client(
        &["login", "--server", &dead, "--token", &server.token],
        home.path(),
        &[],
    );
    assert_eq!(code, 1, "{err}");
    assert!(!config.exists());

    // A token without any server cannot be checked.
    let (code, _, err) = run_client(&["login", "--token", &server.token], home.path(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pass --server URL too"), "{err}");

    let (code, out, err) = run_client(
        &["login", "--server", &url(&server), "--token", &server.token],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::read_to_string(&config)
        .unwrap()
        .contains(&server.token));
    let (code, out, err) = run_client(&["sites"], home.path(), &[]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Runs `fazt ARGS` on a pseudo-terminal (util-linux `script`), typing `typed`.
fn on_terminal(args: &[&str], home: &std::path::Path, typed: &str) -> (i32, String) {
    let command = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env_remove("FAZT_SERVER")
        .env_remove("FAZT_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux script runs a command on a terminal");
    // The prompt is up once fazt waits; typing earlier is kept by the terminal anyway.
    std::thread::sleep(Duration::from_millis(300));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn sites_rm_asks_on_a_terminal_and_needs_yes_elsewhere() {
    let server = Server::start();
    let site = TempDir::new("rm-site");
    write_file(site.path(), "index.html", b"keep me");
    import("blog", site.path(), server.data.path());
    assert_eq!(page(&server, "blog.localhost", "keep me"), "keep me");
    let home = TempDir::new("rm-home");
    let u = url(&server);
    let auth = ["--server", u.as_str(), "--token", server.token.as_str()];
    let rm = [&["sites", "rm", "blog"][..], &auth].concat();

    let (code, _, err) = run_client(&rm, home.path(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("pass --yes"), "{err}");
    assert_eq!(server.get("blog.localhost", "/").text(), "keep me");

    let (code, out) = on_terminal(&rm, home.path(), "n\n");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("delete site blog and all its deployments"),
        "{out}"
    );
    assert!(out.contains("nothing deleted"), "{out}");
    assert_eq!(server.get("blog.localhost", "/").text(), "keep me");

    let (code, out) = on_terminal(&rm, home.path(), "y\n");
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("deleted site blog"), "{out}");
    assert_eq!(server.get("blog.localhost", "/").status, 404);
}

#[test]
fn deployments_lists_a_sites_history() {
    let server = Server::start();
    let site = TempDir::new("history");
    write_file(site.path(), "index.html", b"v1");
    import("blog", site.path(), server.data.path());
    write_file(site.path(), "index.html", b"v2 is longer");
    import("blog", site.path(), server.data.path());
    let home = TempDir::new("history-home");
    let u = url(&server);
    let auth = ["--server", u.as_str(), "--token", server.token.as_str()];
    let (code, out, err) = run_client(
        &[&["deployments", "Blog"][..], &auth].concat(),
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert!(
        lines[0].starts_with("ID ") && lines[0].contains(" CREATED (UTC) "),
        "{out}"
    );
    assert!(
        lines[1].contains(" * ") && lines[1].contains("12 B"),
        "{out}"
    );
    assert!(lines[1].ends_with("import"), "{out}");
    assert!(
        !lines[2].contains(" * ") && lines[2].contains("2 B"),
        "{out}"
    );
    assert!(lines[3].starts_with("http://blog.localhost:"), "{out}");

    let (code, out, _) = run_client(
        &[&["deployments", "blog", "--json"][..], &auth].concat(),
        home.path(),
        &[],
    );
    assert_eq!(code, 0);
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["deployments"].as_array().unwrap().len(), 2);

    let (code, _, err) = run_client(
        &[&["deployments", "nope"][..], &auth].concat(),
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("nope"), "{err}");
}

#[test]
fn key_list_has_headers_and_last_use() {
    let server = Server::start();
    let data = server.data.path();
    let (code, out, err) = run_cli(&["key", "create", "ci", "--data", s(data)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    // The harness's owner key is used; the new one is not.
    assert_eq!(
        server.admin_get("/api/sites", Some(&server.token)).status,
        200
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    let listing = loop {
        let (code, out, err) = run_cli(&["key", "list", "--data", s(data)], &[]);
        assert_eq!(code, 0, "{out}{err}");
        let owner = named(&out, "owner").unwrap_or_default().to_string();
        if !owner.ends_with("never") || Instant::now() > deadline {
            break out;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 3, "{listing}");
    for column in ["ID", "SCOPE", "NAME", "CREATED (UTC)", "LAST USED (UTC)"] {
        assert!(lines[0].contains(column), "{listing}");
    }
    let owner = named(&listing, "owner").expect("the owner key's row");
    assert!(!owner.ends_with("never"), "{listing}");
    let ci = named(&listing, "ci").expect("the ci key's row");
    assert!(ci.ends_with("never"), "{listing}");
}

/// The `key list` row of the key called `name` (the third column: both keys here have the
/// owner scope, so the name must be matched as a column, not as a word anywhere).
fn named<'a>(listing: &'a str, name: &str) -> Option<&'a str> {
    listing
        .lines()
        .find(|line| line.split_whitespace().nth(2) == Some(name))
}

#[test]
fn listen_takes_a_bare_port_for_every_interface() {
    // The harness's own --listen comes first; the last one wins.
    let server = Server::builder().arg("--listen").arg(":0").start();
    assert!(server.addr.ip().is_unspecified(), "{}", server.addr);
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], server.addr.port()));
    let r = raw_request(
        local,
        "GET / HTTP/1.1\r\nHost: root.localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let (code, _, err) = run_cli(&["server", "start", "--listen", ":x"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains(":PORT for every interface"), "{err}");
}
