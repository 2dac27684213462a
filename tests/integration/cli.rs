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
            "a value is required for '--listen",
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
        (&["server", "stop"], &[], "'stop'"),
        (&["frobnicate"], &[], "frobnicate"),
        (&["probe", "--root", "/nonexistent-dir"], &[], "--root"),
        (&["key", "create"], &[], "<NAME>"),
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

/// Every `FAZT_*` name in `src/`, read from the source: the variables the code knows.
fn variables_in_source() -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let mut dirs = vec![std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                names.extend(fazt_names(&text));
            }
        }
    }
    names
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'
}

/// Each whole `FAZT_[A-Z0-9_]+` token of `text`, in order, repeats included.
fn fazt_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("FAZT_") {
        if text[..at].chars().next_back().is_some_and(is_name_char) {
            continue;
        }
        let len = text[at..]
            .find(|c| !is_name_char(c))
            .unwrap_or(text.len() - at);
        let name = text[at..at + len].trim_end_matches('_');
        if name.len() > "FAZT_".len() {
            names.push(name.to_string());
        }
    }
    names
}

#[test]
fn every_variable_in_the_source_appears_once_in_help() {
    let known = variables_in_source();
    for name in [
        "FAZT_MAX_UPLOAD",
        "FAZT_DEPLOY_RATE",
        "FAZT_EVENT_CHANNEL",
        "FAZT_TOKEN",
    ] {
        assert!(known.contains(name), "{name} not found in src/: {known:?}");
    }
    for help in [&["--help"][..], &["-h"], &["help"]] {
        let (code, out, err) = run_cli(help, &[]);
        assert_eq!(code, 0, "{help:?}: {err}");
        let shown = fazt_names(&out);
        for name in &known {
            let times = shown.iter().filter(|n| *n == name).count();
            assert_eq!(times, 1, "{help:?} shows {name} {times} times:\n{out}");
        }
    }
}

#[test]
fn every_command_answers_help_with_its_flags() {
    let commands: &[(&[&str], &[&str])] = &[
        (
            &["server", "start"],
            &[
                "--listen",
                "--admin-listen",
                "--domain",
                "--data",
                "--cache-bytes",
                "--max-upload",
                "--trusted-proxies",
                "--idle-timeout",
                "FAZT_IDLE_TIMEOUT",
            ],
        ),
        (&["server"], &["start"]),
        (
            &["probe"],
            &["--json", "--root", "--data", "--threads", "FAZT_THREADS"],
        ),
        (&["key"], &["create", "list", "revoke"]),
        (&["key", "create"], &["<NAME>", "--scope", "--data"]),
        (&["key", "list"], &["--json", "--data"]),
        (&["key", "revoke"], &["<ID>", "--data"]),
        (
            &["site", "import"],
            &["<NAME>", "<DIR>", "--data", "--disk-threshold"],
        ),
        (&["db", "prune"], &["--older-than", "--rollups", "--data"]),
        (
            &["db"],
            &["backup", "restore", "check", "vacuum", "stats", "prune"],
        ),
        (
            &["db", "backup"],
            &["<FILE>", "--force", "--json", "--data"],
        ),
        (&["db", "restore"], &["<FILE>", "--data"]),
        (&["db", "check"], &["--json", "--data"]),
        (&["db", "vacuum"], &["--full", "--json", "--data"]),
        (&["db", "stats"], &["--json", "--data"]),
        (
            &["export", "site"],
            &["<NAME>", "--deployment", "--output", "--data"],
        ),
        (&["service"], &["install", "uninstall"]),
        (
            &["service", "install"],
            &[
                "--user",
                "--data",
                "--memory-max",
                "--cpu-quota",
                "--dry-run",
            ],
        ),
        (
            &["server", "start"],
            &[
                "--backup-dir",
                "FAZT_BACKUP_EVERY",
                "--external-checkpoints",
                "--ws-max",
            ],
        ),
        (
            &["deploy"],
            &["<DIR>", "--site", "--server", "--token", "FAZT_SERVER"],
        ),
        (&["login"], &["--server", "--token"]),
        (&["sites"], &["--json", "--server", "--token", "rm"]),
        (&["sites", "rm"], &["<NAME>", "--server", "--token"]),
        (&["rollback"], &["<NAME>", "--to", "--server", "--token"]),
    ];
    for (command, flags) in commands {
        for help in ["--help", "-h"] {
            let args: Vec<&str> = command.iter().copied().chain([help]).collect();
            let (code, out, err) = run_cli(&args, &[]);
            assert_eq!(code, 0, "{args:?}: {err}");
            for flag in *flags {
                assert!(out.contains(flag), "{args:?} names {flag}:\n{out}");
            }
        }
        let args: Vec<&str> = ["help"]
            .into_iter()
            .chain(command.iter().copied())
            .collect();
        let (code, out, _) = run_cli(&args, &[]);
        assert_eq!(code, 0, "{args:?}");
        assert!(out.contains(flags[0]), "{args:?}:\n{out}");
    }
    // No setting's value shows in help, set or not: a token or a proxy list must never land
    // in a pasted help text, and an unset variable is not `FAZT_X=`.
    let env = [
        ("FAZT_TOKEN", "sekrit-token"),
        ("FAZT_SERVER", "http://sekrit.example"),
    ];
    let (_, out, _) = run_cli(&["deploy", "--help"], &env);
    assert!(!out.contains("sekrit"), "{out}");
    assert!(out.contains("[env: FAZT_SERVER]"), "{out}");
    let (_, out, _) = run_cli(&["server", "start", "--help"], &[]);
    assert!(
        out.contains("[env: FAZT_LISTEN]") && !out.contains("=]"),
        "{out}"
    );
}

#[test]
fn bad_values_share_one_format_and_exit_2() {
    let data = TempDir::new("badvalues");
    let d = data.path().to_str().unwrap();
    let site = TempDir::new("badvalues-site");
    let cases: &[BadCase] = &[
        (&["probe"], &[("FAZT_CACHE_BYTES", "12Q")],
         "invalid value '12Q' for FAZT_CACHE_BYTES (--cache-bytes): has an unknown size unit 'q'"),
        (&["probe", "--cache-bytes", "12Q"], &[],
         "invalid value '12Q' for FAZT_CACHE_BYTES (--cache-bytes): has an unknown size unit 'q'"),
        (&["probe", "--threads", "0"], &[],
         "invalid value '0' for FAZT_THREADS (--threads): must be between 1 and 1024"),
        (&["probe"], &[("FAZT_CACHE_BYTES", "16M"), ("FAZT_MAX_CACHED_FILE", "1G")],
         "invalid value '1G' for FAZT_MAX_CACHED_FILE (--max-cached-file): is larger than the cache (16.0 MiB)"),
        (&["server", "start", "--data", d, "--keep-deployments", "0"], &[],
         "invalid value '0' for FAZT_KEEP_DEPLOYMENTS (--keep-deployments): must be between 1 and 10000"),
        (&["server", "start", "--data", d], &[("FAZT_AUTO_PAGEVIEWS", "maybe")],
         "invalid value 'maybe' for FAZT_AUTO_PAGEVIEWS (--auto-pageviews): is not on or off (use 1/0, true/false, on/off)"),
        (&["server", "start", "--data", d], &[("FAZT_DEPLOY_MAX_FILES", "0")],
         "invalid value '0' for FAZT_DEPLOY_MAX_FILES (--deploy-max-files): must be at least 1"),
        (&["server", "start", "--data", d], &[("FAZT_TRUSTED_PROXIES", "10.0.0.0/8,nope")],
         "invalid value '10.0.0.0/8,nope' for FAZT_TRUSTED_PROXIES (--trusted-proxies): 'nope' is not an IP address or CIDR block"),
        (&["server", "start", "--data", d, "--idle-timeout", "soon"], &[],
         "invalid value 'soon' for FAZT_IDLE_TIMEOUT (--idle-timeout): is not a duration (expected e.g. 250ms, 10s, 5m, 30d)"),
        (&["site", "import", "blog", site.path().to_str().unwrap(), "--data", d], &[("FAZT_DISK_THRESHOLD", "101")],
         "invalid value '101' for FAZT_DISK_THRESHOLD (--disk-threshold): must be a whole percentage between 1 and 100"),
        (&["db", "prune", "--older-than", "soon", "--data", d], &[],
         "invalid value 'soon' for --older-than: is not a duration (expected e.g. 250ms, 10s, 5m, 30d)"),
    ];
    for (args, env, want) in cases {
        let (code, out, err) = run_cli(args, env);
        assert_eq!(code, 2, "{args:?} {env:?}: {out}{err}");
        assert_eq!(err.trim_end(), format!("fazt: {want}"), "{args:?} {env:?}");
    }
}

#[test]
fn flags_beat_variables_beat_defaults_and_empty_is_unset() {
    let cache = |args: &[&str], env: &[(&str, &str)]| {
        let root = fixture("v2-numbers");
        let argv: Vec<&str> = ["probe", "--json", "--root", &root]
            .iter()
            .copied()
            .chain(args.iter().copied())
            .collect();
        let (code, out, err) = run_cli(&argv, env);
        assert_eq!(code, 0, "{err}");
        let report: serde_json::Value = serde_json::from_str(&out).unwrap();
        (
            report["limits"]["cache_bytes"].as_u64().unwrap(),
            report["sources"]["cache_bytes"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let env = [("FAZT_CACHE_BYTES", "16M")];
    assert_eq!(
        cache(&["--cache-bytes", "32M"], &env),
        (32 << 20, "flag --cache-bytes".into())
    );
    assert_eq!(cache(&[], &env), (16 << 20, "env FAZT_CACHE_BYTES".into()));
    let twice = ["--cache-bytes", "8M", "--cache-bytes", "32M"];
    assert_eq!(cache(&twice, &env).0, 32 << 20, "the last flag wins");
    let (bytes, source) = cache(&[], &[("FAZT_CACHE_BYTES", "")]);
    assert_eq!(bytes, 64 << 20, "512 MiB fixture / 8");
    assert!(source.starts_with("derived: memory limit / 8"), "{source}");
}
