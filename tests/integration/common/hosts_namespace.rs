//! Running a program with an `/etc/hosts` of the test's own, so a DNS name resolves to an
//! address the test chooses through the real system resolver (`getaddrinfo` reads the file
//! first, as `nsswitch.conf` says): a new mount namespace (`unshare -m`, or `unshare -r -m`
//! in a user namespace when not root) where the file is bind-mounted over `/etc/hosts`.
//! Nothing outside the namespace sees the change, and the program keeps its pid (`unshare`
//! and `sh` exec it), so signals sent to the child reach it.
//!
//! ```ignore
//! let Some(ns) = HostsNamespace::new(&[("evil.test", "10.1.2.3")]) else { return };
//! let mut cmd = ns.wrap(&Command::new(BIN).args(["server", "start"]));
//! ```

use super::TempDir;
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// A hosts file and how to enter a namespace that uses it.
pub struct HostsNamespace {
    _dir: TempDir,
    hosts: PathBuf,
    unshare: &'static [&'static str],
}

impl HostsNamespace {
    /// A namespace whose `/etc/hosts` holds `localhost` and `entries` (name, address).
    /// `None`, with a note on stderr, where this machine lets the test make no mount
    /// namespace (neither root nor user namespaces).
    pub fn new(entries: &[(&str, &str)]) -> Option<HostsNamespace> {
        let Some(unshare) = unshare_args() else {
            eprintln!("hosts_namespace: `unshare -m` is not permitted here; skipped");
            return None;
        };
        let dir = TempDir::new("hosts");
        let hosts = dir.path().join("hosts");
        let mut text = String::from("127.0.0.1 localhost\n::1 localhost\n");
        for (name, addr) in entries {
            text.push_str(&format!("{addr} {name}\n"));
        }
        std::fs::write(&hosts, text).unwrap();
        Some(HostsNamespace {
            _dir: dir,
            hosts,
            unshare,
        })
    }

    /// `program args…`, run inside the namespace.
    pub fn command<I, S>(&self, program: impl AsRef<OsStr>, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new("unshare");
        cmd.args(self.unshare)
            .args([
                "sh",
                "-c",
                r#"mount --bind "$1" /etc/hosts && shift && exec "$@""#,
            ])
            .arg("sh")
            .arg(&self.hosts)
            .arg(program)
            .args(args);
        cmd
    }

    /// `cmd` (its program, arguments, environment and directory) run inside the namespace.
    /// Call it before setting stdin, stdout and stderr: a `Command` does not show them.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut wrapped = self.command(cmd.get_program(), cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => wrapped.env(key, value),
                None => wrapped.env_remove(key),
            };
        }
        if let Some(dir) = cmd.get_current_dir() {
            wrapped.current_dir(dir);
        }
        wrapped
    }
}

/// The `unshare` flags that work here, found once: `-m` as root, else `-r -m`.
fn unshare_args() -> Option<&'static [&'static str]> {
    static FOUND: OnceLock<Option<&'static [&'static str]>> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let works = |args: &[&str]| {
            Command::new("unshare")
                .args(args)
                .args(["sh", "-c", "mount --bind /dev/null /dev/null"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        const ROOT: &[&str] = &["-m"];
        const USER: &[&str] = &["-r", "-m"];
        [ROOT, USER].into_iter().find(|args| works(args))
    })
}

#[test]
fn names_resolve_to_the_namespaces_addresses_and_only_inside() {
    let entries = [("evil.test", "10.1.2.3"), ("meta.test", "169.254.169.254")];
    let Some(ns) = HostsNamespace::new(&entries) else {
        return;
    };
    let out = ns
        .command("getent", ["hosts", "evil.test", "meta.test"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Vec<&str>> = stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines,
        [
            vec!["10.1.2.3", "evil.test"],
            vec!["169.254.169.254", "meta.test"]
        ]
    );
    // The machine's own file is untouched.
    let outside = Command::new("getent")
        .args(["hosts", "evil.test"])
        .output()
        .unwrap();
    assert!(!outside.status.success(), "{:?}", outside);

    // `wrap` keeps the program, its arguments and environment, and the pid.
    let mut plain = Command::new("sh");
    plain
        .args(["-c", r#"echo "$$ $GREETING $(getent hosts evil.test)""#])
        .env("GREETING", "hi");
    let child = ns.wrap(&plain).stdout(Stdio::piped()).spawn().unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let words: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(
        words,
        [
            pid.to_string(),
            "hi".into(),
            "10.1.2.3".into(),
            "evil.test".into()
        ]
    );
}
