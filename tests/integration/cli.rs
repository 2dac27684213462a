//! The command line: help, version, bad flags and values, probe against fixture trees.
use crate::common::*;

fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/probe/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn help_and_version() {
    let (code, out, _) = run_cli(&["--help"], &[]);
    assert_eq!(code, 0);
    for needle in [
        "server start",
        "--listen",
        "--admin-listen",
        "--domain",
        "--data",
        "probe",
        "key create",
    ] {
        assert!(out.contains(needle), "help mentions {needle}");
    }
    let (code, out, _) = run_cli(&["--version"], &[]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("fazt {}", env!("CARGO_PKG_VERSION")));
}

/// Arguments, environment, and what the error message must mention.
type BadCase<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);

#[test]
fn bad_flags_and_values_exit_non_zero_naming_them() {
    let data = TempDir::new("cli");
    let d = data.path().to_str().unwrap();
    let cases: &[BadCase] = &[
        (&["server", "start", "--data", d, "--bogus"], &[], "--bogus"),
        (
            &["server", "start", "--data", d, "--listen"],
            &[],
            "--listen needs a value",
        ),
        (
            &["server", "start", "--data", d, "--listen", "nowhere"],
            &[],
            "--listen",
        ),
        (
            &["server", "start", "--data", d, "--domain", "bad domain"],
            &[],
            "--domain",
        ),
        (&["server", "start", "--data", d, "extra"], &[], "extra"),
        (
            &["server", "start", "--data", d],
            &[("FAZT_IDLE_TIMEOUT", "soon")],
            "FAZT_IDLE_TIMEOUT",
        ),
        (
            &["server", "start", "--data", d],
            &[("FAZT_CACHE_BYTES", "12Q")],
            "FAZT_CACHE_BYTES",
        ),
        (
            &["server", "start", "--data", d],
            &[("FAZT_THREADS", "0")],
            "FAZT_THREADS",
        ),
        (&["server", "stop"], &[], "usage"),
        (&["frobnicate"], &[], "frobnicate"),
        (&["probe", "--root", "/nonexistent-dir"], &[], "--root"),
        (&["key", "create"], &[], "missing argument"),
        (
            &["key", "create", "a\tb", "--data", d],
            &[],
            "invalid key name",
        ),
    ];
    for (args, env, needle) in cases {
        let (code, _, err) = run_cli(args, env);
        assert_ne!(code, 0, "{args:?} should fail");
        assert!(
            err.contains(needle),
            "{args:?}: stderr {err:?} should mention {needle:?}"
        );
    }
}

#[test]
fn listen_address_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = TempDir::new("inuse");
    let (code, _, err) = run_cli(
        &[
            "server",
            "start",
            "--listen",
            &addr,
            "--data",
            data.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("cannot listen on"), "{err}");
}

#[test]
fn probe_reads_fixture_trees() {
    let (code, out, err) = run_cli(
        &[
            "probe",
            "--json",
            "--root",
            &fixture("v2-numbers"),
            "--data",
            "/srv/fazt",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["limits"]["memory_limit_bytes"], 536_870_912);
    assert_eq!(report["limits"]["core_threads"], 2);
    assert_eq!(report["limits"]["cache_bytes"], 64 << 20);
    assert_eq!(report["limits"]["temp_dir"], "/srv/fazt/tmp");

    let (code, out, _) = run_cli(&["probe", "--json", "--root", &fixture("v1")], &[]);
    assert_eq!(code, 0);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["limits"]["memory_limit_bytes"], 268_435_456);
    assert_eq!(report["limits"]["core_threads"], 1);

    let (code, out, _) = run_cli(
        &["probe", "--root", &fixture("systemd-nested")],
        &[("FAZT_CACHE_BYTES", "16M")],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("system.slice"),
        "text names where the limit came from:\n{out}"
    );
    assert!(
        out.contains("FAZT_CACHE_BYTES"),
        "text names the override:\n{out}"
    );
}
