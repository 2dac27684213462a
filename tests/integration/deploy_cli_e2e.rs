//! `fazt deploy|login|sites|rollback` against the real server, end to end: what a user
//! types, what the site then serves, and the messages and exit codes of the failures.
use crate::common::*;

/// `--server` for the test server: its admin host is bare `localhost` on its port.
fn server_url(server: &Server) -> String {
    format!("http://localhost:{}", server.addr.port())
}

fn site_dir(version: &str) -> TempDir {
    let dir = TempDir::new("site");
    write_file(
        dir.path(),
        "index.html",
        format!("<h1>{version}</h1>").as_bytes(),
    );
    write_file(dir.path(), "css/site.css", b"body { color: black }");
    write_file(dir.path(), ".env", b"SECRET=1");
    dir
}

#[test]
fn deploy_list_roll_back_and_remove_a_site_with_the_cli() {
    let server = Server::start();
    let home = TempDir::new("home");
    let url = server_url(&server);
    let v1 = site_dir("v1");

    let deploy = |dir: &TempDir| {
        run_client(
            &[
                "deploy",
                s(dir.path()),
                "--site",
                "blog",
                "--server",
                &url,
                "--token",
                &server.token,
            ],
            home.path(),
            &[],
        )
    };
    let (code, out, err) = deploy(&v1);
    assert_eq!(code, 0, "stdout: {out}\nstderr: {err}");
    let blog_url = format!("http://blog.localhost:{}/", server.addr.port());
    assert!(out.contains(&blog_url), "{out}");
    assert!(out.contains("2 files"), "{out}");
    assert_eq!(server.get("blog.localhost", "/").text(), "<h1>v1</h1>");
    assert_eq!(
        server.get("blog.localhost", "/.env").status,
        404,
        "dot-paths are not published"
    );

    let v2 = site_dir("v2");
    let (code, out, err) = deploy(&v2);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.get("blog.localhost", "/").text(), "<h1>v2</h1>");

    let (code, out, _) = run_client(
        &["sites", "--server", &url, "--token", &server.token],
        home.path(),
        &[],
    );
    assert_eq!(code, 0);
    let blog_line = out.lines().find(|l| l.starts_with("blog ")).expect(&out);
    assert!(blog_line.contains(&blog_url), "{blog_line}");

    let (code, out, err) = run_client(
        &[
            "rollback",
            "blog",
            "--server",
            &url,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.get("blog.localhost", "/").text(), "<h1>v1</h1>");

    let (code, out, err) = run_client(
        &[
            "sites",
            "rm",
            "blog",
            "--yes",
            "--server",
            &url,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.get("blog.localhost", "/").status, 404);
}

#[test]
fn login_saves_the_server_and_token_for_later_commands() {
    let server = Server::start();
    let home = TempDir::new("home");
    let url = server_url(&server);
    let (code, out, err) = run_client(
        &["login", "--server", &url, "--token", &server.token],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let site = site_dir("saved");
    let (code, out, err) = run_client(
        &["deploy", s(site.path()), "--site", "saved"],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(server.get("saved.localhost", "/").text(), "<h1>saved</h1>");
}

#[test]
fn failures_exit_non_zero_with_a_message_that_says_what_to_do() {
    let server = Server::start();
    let home = TempDir::new("home");
    let url = server_url(&server);
    let site = site_dir("x");
    let dir = s(site.path());

    let (code, _, err) = run_client(
        &[
            "deploy",
            dir,
            "--site",
            "blog",
            "--server",
            &url,
            "--token",
            "fzt_nope_x",
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("refused the token"), "{err}");

    let created = run_client(
        &[
            "key",
            "create",
            "ci",
            "--scope",
            "deploy:blog",
            "--data",
            s(server.data.path()),
        ],
        home.path(),
        &[],
    );
    assert_eq!(created.0, 0, "{created:?}");
    let narrow = created
        .1
        .split_whitespace()
        .find(|w| w.starts_with("fzt_"))
        .expect(&created.1)
        .to_string();
    let (code, _, err) = run_client(
        &[
            "deploy", dir, "--site", "shop", "--server", &url, "--token", &narrow,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("403") && err.contains("shop"), "{err}");
    let (code, out, err) = run_client(
        &[
            "deploy", dir, "--site", "blog", "--server", &url, "--token", &narrow,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 0, "a deploy:blog key deploys blog: {out}{err}");

    // The server named by IP address reaches a site, not the admin API.
    let by_ip = format!("http://{}", server.addr);
    let (code, _, err) = run_client(
        &[
            "deploy",
            dir,
            "--site",
            "blog",
            "--server",
            &by_ip,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("use the admin host"), "{err}");

    let (code, _, err) = run_client(
        &[
            "deploy",
            dir,
            "--site",
            "admin",
            "--server",
            &url,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 2, "a reserved name is refused before uploading");
    assert!(err.contains("reserved"), "{err}");

    let (code, _, err) = run_client(
        &[
            "rollback",
            "nosuch",
            "--server",
            &url,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");

    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let closed = format!("http://localhost:{}", free.port());
    let (code, _, err) = run_client(
        &["sites", "--server", &closed, "--token", &server.token],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("cannot connect"), "{err}");

    let (code, _, err) = run_client(&["deploy", dir, "--site", "blog"], home.path(), &[]);
    assert_eq!(code, 2, "no server or token configured");
    assert!(err.contains("login") || err.contains("--server"), "{err}");
}

#[test]
fn an_upload_over_the_servers_limit_is_refused_with_413_before_it_is_sent() {
    let server = Server::builder().env("FAZT_MAX_UPLOAD", "64K").start();
    let home = TempDir::new("home");
    let url = server_url(&server);
    let site = TempDir::new("big-site");
    write_file(site.path(), "blob.bin", &Rng(7).bytes(512 * 1024));
    let (code, _, err) = run_client(
        &[
            "deploy",
            s(site.path()),
            "--site",
            "big",
            "--server",
            &url,
            "--token",
            &server.token,
        ],
        home.path(),
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("413"), "{err}");
    assert_eq!(server.get("localhost", "/health").status, 200);
}
