//! `fazt service install|uninstall` (issue #16): the systemd unit (after
//! `scripts/fazt.service`, with MemoryMax=/CPUQuota= and FAZT_TRUSTED_PROXIES when given),
//! the binary, the user and the data dir (mode 0700); systemctl only where systemd runs;
//! uninstall keeps the data. Only ever into temporary directories: these tests never touch
//! /etc, /usr/local or the machine's systemd.
use crate::common::*;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|uid| uid == "0"))
        .unwrap_or(false)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

/// The unit a dry run prints, after its "the unit (PATH):" line.
fn printed_unit(stdout: &str) -> &str {
    let start = stdout
        .find("the unit (")
        .expect("a dry run prints the unit");
    let body = &stdout[start..];
    let body = &body[body.find('\n').unwrap() + 1..];
    &body[..body.find("\nowner setup").unwrap_or(body.len())]
}

/// The directive names of a unit (`Name=` lines, comments and sections left out), sorted.
fn directives(unit: &str) -> Vec<String> {
    let mut names: Vec<String> = unit
        .lines()
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('=').map(|(name, _)| name.to_string()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn dry_run_prints_the_unit_with_limits_and_proxies_and_changes_nothing() {
    let tmp = TempDir::new("service-dry");
    let (units, data, bin) = (
        tmp.path().join("units"),
        tmp.path().join("data"),
        tmp.path().join("bin/fazt"),
    );
    let (code, out, err) = run_cli(
        &[
            "service",
            "install",
            "--dry-run",
            "--user",
            "fazt-test-nobody",
            "--data",
            s(&data),
            "--bin",
            s(&bin),
            "--unit-dir",
            s(&units),
            "--listen",
            "0.0.0.0:80",
            "--domain",
            "example.com",
            "--memory-max",
            "256M",
            "--cpu-quota",
            "50%",
            "--trusted-proxies",
            "10.0.0.0/8,192.0.2.1",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let unit = printed_unit(&out);
    for line in [
        "User=fazt-test-nobody",
        &format!("ExecStart={} server start --data {}", s(&bin), s(&data)),
        &format!("ReadWritePaths={}", s(&data)),
        "Environment=FAZT_LISTEN=0.0.0.0:80",
        "Environment=FAZT_DOMAIN=example.com",
        "Environment=FAZT_TRUSTED_PROXIES=10.0.0.0/8,192.0.2.1",
        "MemoryMax=256M",
        "CPUQuota=50%",
        "WantedBy=multi-user.target",
    ] {
        assert!(unit.lines().any(|l| l == line), "no '{line}' in:\n{unit}");
    }
    // What it would do, and nothing done.
    assert!(out.contains("would create the system user: useradd --system --no-create-home"));
    assert!(out.contains(&format!(
        "would write the unit {}",
        s(&units.join("fazt.service"))
    )));
    assert!(
        out.contains("owner API key"),
        "owner setup instructions: {out}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    // Without a proxy or limits, none of those lines.
    let (code, out, _) = run_cli(&["service", "install", "--dry-run"], &[]);
    assert_eq!(code, 0);
    let unit = printed_unit(&out);
    assert!(!unit.contains("FAZT_TRUSTED_PROXIES"), "{unit}");
    let limit = |l: &str| l.starts_with("MemoryMax=") || l.starts_with("CPUQuota=");
    assert!(!unit.lines().any(limit), "{unit}");
    assert!(unit.contains("ExecStart=/usr/local/bin/fazt server start --data /var/lib/fazt"));

    // A value that would add a line to the unit is refused.
    let (code, _, err) = run_cli(
        &[
            "service",
            "install",
            "--dry-run",
            "--domain",
            "a.com\nExecStartPre=/bin/sh",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
}

/// The checked-in unit and the one the command writes have the same directives.
#[test]
fn the_unit_agrees_with_scripts_fazt_service() {
    let script =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/fazt.service"))
            .unwrap();
    let (code, out, err) = run_cli(
        &[
            "service",
            "install",
            "--dry-run",
            "--bin",
            "/opt/fazt/fazt",
            "--data",
            "/opt/fazt/data",
            "--listen",
            "0.0.0.0:80",
            "--domain",
            "example.com",
            "--memory-max",
            "512M",
            "--cpu-quota",
            "100%",
        ],
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let unit = printed_unit(&out);
    assert_eq!(directives(unit), directives(&script));
    for line in [
        "ExecStart=/opt/fazt/fazt server start --data /opt/fazt/data",
        "ReadWritePaths=/opt/fazt/data",
        "MemoryMax=512M",
        "CPUQuota=100%",
    ] {
        assert!(script.lines().any(|l| l == line), "script: {line}");
        assert!(unit.lines().any(|l| l == line), "unit: {line}");
    }
}

#[test]
fn install_then_uninstall_keeps_the_data() {
    if !is_root() {
        eprintln!("skipped: installing needs root (it chowns the data dir)");
        return;
    }
    if Path::new("/run/systemd/system").exists() {
        // Here install would run `systemctl enable --now fazt` on the machine's systemd.
        eprintln!("skipped: systemd runs on this machine (the --root test covers the files)");
        return;
    }
    let tmp = TempDir::new("service-real");
    let (units, data, bin) = (
        tmp.path().join("units"),
        tmp.path().join("var/lib/fazt"),
        tmp.path().join("bin/fazt"),
    );
    let unit_path = units.join("fazt.service");
    let install = |bin_to_run: &str| {
        let out = Command::new(bin_to_run)
            .args(["service", "install", "--user", "nobody", "--data"])
            .args([s(&data), "--bin", s(&bin), "--unit-dir", s(&units)])
            .args(["--trusted-proxies", "127.0.0.1", "--memory-max", "1G"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{text}{err}");
        (text, err.into_owned())
    };
    let (out, err) = install(BIN);
    assert!(!err.contains("warning"), "{err}");
    assert!(out.contains("user nobody exists"), "{out}");
    assert!(
        out.contains(
            "skipped systemctl daemon-reload, systemctl enable --now fazt: systemd is not running"
        ),
        "{out}"
    );
    assert!(out.contains("owner setup"), "{out}");
    // The binary, a copy of this one, executable.
    assert_eq!(mode(&bin), 0o755);
    assert_eq!(
        std::fs::metadata(&bin).unwrap().len(),
        std::fs::metadata(BIN).unwrap().len()
    );
    // The data dir: the service user's, private.
    let meta = std::fs::metadata(&data).unwrap();
    assert_eq!(mode(&data), 0o700);
    assert_eq!(meta.uid(), 65534, "owned by nobody");
    // The unit.
    assert_eq!(mode(&unit_path), 0o644);
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    for line in [
        "User=nobody".to_string(),
        format!("ExecStart={} server start --data {}", s(&bin), s(&data)),
        format!("ReadWritePaths={}", s(&data)),
        "Environment=FAZT_TRUSTED_PROXIES=127.0.0.1".into(),
        "MemoryMax=1G".into(),
    ] {
        assert!(unit.lines().any(|l| l == line), "no '{line}' in:\n{unit}");
    }
    // Installed again by the installed binary: it is not copied onto itself.
    // A file root left in the data dir is named (the service could not write it), not chowned.
    std::fs::write(data.join("fazt.db"), b"the sites").unwrap();
    let (again, err) = install(s(&bin));
    assert!(
        again.contains(&format!("the binary is already {}", s(&bin))),
        "{again}"
    );
    assert!(err.contains("does not own (fazt.db)"), "{err}");
    assert_eq!(std::fs::metadata(data.join("fazt.db")).unwrap().uid(), 0);

    let (code, out, err) = run_cli(&["service", "uninstall", "--unit-dir", s(&units)], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!unit_path.exists());
    assert!(
        out.contains("skipped systemctl disable --now fazt"),
        "{out}"
    );
    assert!(
        out.contains(&format!("kept the data in {}", s(&data))),
        "{out}"
    );
    assert!(out.contains("the user nobody"), "{out}");
    assert_eq!(std::fs::read(data.join("fazt.db")).unwrap(), b"the sites");
    assert_eq!(mode(&data), 0o700);
    // Nothing left to remove is not an error.
    let (code, out, _) = run_cli(&["service", "uninstall", "--unit-dir", s(&units)], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("nothing to remove"), "{out}");
}

/// The form: everything under a temporary root, systemctl never run.
#[test]
fn install_into_a_temporary_root() {
    if !is_root() {
        eprintln!("skipped: installing needs root (it chowns the data dir)");
        return;
    }
    let root = TempDir::new("service-root");
    let (code, out, err) = run_cli(
        &[
            "service",
            "install",
            "--root",
            s(root.path()),
            "--user",
            "nobody",
            "--cpu-quota",
            "200%",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let unit_path = root.path().join("etc/systemd/system/fazt.service");
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    // The unit names the paths as the installed system sees them.
    assert!(unit.contains("\nExecStart=/usr/local/bin/fazt server start --data /var/lib/fazt\n"));
    assert!(unit.contains("\nCPUQuota=200%\n"), "{unit}");
    assert_eq!(mode(&root.path().join("usr/local/bin/fazt")), 0o755);
    assert_eq!(mode(&root.path().join("var/lib/fazt")), 0o700);
    assert!(out.contains("skipped systemctl daemon-reload, systemctl enable --now fazt: the files are for --root"), "{out}");
    // A user that does not exist is not created in another root.
    let (code, _, err) = run_cli(
        &[
            "service",
            "install",
            "--root",
            s(root.path()),
            "--user",
            "fazt-no-such-user",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    let (code, out, err) = run_cli(&["service", "uninstall", "--root", s(root.path())], &[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(!unit_path.exists());
    assert!(root.path().join("var/lib/fazt").is_dir());
}

#[test]
fn refused_unless_root_but_a_dry_run_is_not() {
    if !is_root() {
        // This process is the unprivileged user: the refusal is what it gets.
        let (code, _, err) = run_cli(&["service", "install"], &[]);
        assert_eq!(code, 1);
        assert!(err.contains("must run as root"), "{err}");
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("skipped: no setpriv to run the command as nobody");
        return;
    }
    let tmp = TempDir::new("service-nonroot");
    let as_nobody = |args: &[&str]| {
        let out = Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", BIN])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let units = tmp.path().join("units");
    for command in ["install", "uninstall"] {
        let (code, _, err) = as_nobody(&["service", command, "--unit-dir", s(&units)]);
        assert_eq!(code, Some(1), "{err}");
        assert!(err.contains("must run as root"), "{err}");
    }
    assert!(!units.exists());
    let (code, out, err) = as_nobody(&["service", "install", "--dry-run", "--unit-dir", s(&units)]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("[Service]"), "{out}");
}
