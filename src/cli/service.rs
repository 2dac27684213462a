//! `fazt service install|uninstall`: fazt as a systemd service. Install puts the binary in
//! place, creates the system user and the data dir (owned by it, mode 0700), writes the
//! unit, and starts it when systemd runs; uninstall stops and removes the unit and keeps
//! the data, the user and the binary. Every step is printed; `--dry-run` prints them (and
//! the unit) without doing any.

use crate::http::proxies::TrustedProxies;
use clap::Subcommand;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The unit's file name; `systemctl … fazt` names it.
const UNIT_NAME: &str = "fazt.service";

/// Present when systemd is the running init (what `sd_booted()` checks).
const SYSTEMD_RUNNING: &str = "/run/systemd/system";

#[derive(Subcommand, Debug)]
pub(crate) enum ServiceCmd {
    /// Install fazt as a systemd service: copy this binary to /usr/local/bin/fazt (or
    /// --bin), create the system user and the data dir (mode 0700), write the unit, then
    /// `systemctl daemon-reload` and `enable --now fazt` when systemd runs. Run as root
    Install(InstallArgs),
    /// Stop and disable the service (when systemd runs) and remove its unit; the data dir,
    /// the user and the binary are kept. Run as root
    Uninstall(UninstallArgs),
}

/// Values written into the unit, not settings of this process: no `FAZT_*` variable feeds
/// them (the unit's own `Environment=` lines are where they end up).
#[derive(clap::Args, Debug)]
pub(crate) struct InstallArgs {
    /// The system user the service runs as (created when missing)
    #[arg(long, value_name = "NAME", default_value = "fazt")]
    user: String,
    /// The service's data directory (created when missing; owned by --user, mode 0700)
    #[arg(long, value_name = "DIR", default_value = "/var/lib/fazt")]
    data: PathBuf,
    /// FAZT_LISTEN of the service, e.g. 0.0.0.0:80 [default: fazt's]
    #[arg(long, value_name = "ADDR", value_parser = listen)]
    listen: Option<String>,
    /// FAZT_DOMAIN of the service, e.g. example.com [default: fazt's]
    #[arg(long, value_name = "DOMAIN", value_parser = domain)]
    domain: Option<String>,
    /// The unit's MemoryMax=, e.g. 512M (fazt sizes its cache, connection cap and threads
    /// from it) [default: none]
    #[arg(long, value_name = "BYTES", value_parser = memory_max)]
    memory_max: Option<String>,
    /// The unit's CPUQuota=, e.g. 100% (one CPU) [default: none]
    #[arg(long, value_name = "PERCENT", value_parser = cpu_quota)]
    cpu_quota: Option<String>,
    /// FAZT_TRUSTED_PROXIES of the service: the proxy in front, addresses or CIDR blocks,
    /// comma-separated [default: none]
    #[arg(long, value_name = "LIST", value_parser = trusted_proxies)]
    trusted_proxies: Option<String>,
    /// Where the binary is installed and the unit runs it from [default: /usr/local/bin/fazt]
    #[arg(long, value_name = "PATH", value_parser = absolute_path)]
    bin: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

#[derive(clap::Args, Debug)]
pub(crate) struct UninstallArgs {
    #[command(flatten)]
    target: Target,
}

/// Where the files go, and whether to touch anything at all.
#[derive(clap::Args, Debug)]
struct Target {
    /// Directory of the unit file
    #[arg(long, value_name = "DIR", default_value = "/etc/systemd/system")]
    unit_dir: PathBuf,
    /// Install into DIR as if it were / (an image being built, a test): every path written
    /// is under it, the user must exist, and systemctl is not run
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Print what would be done and the unit; change nothing (needs no root)
    #[arg(long)]
    dry_run: bool,
}

impl Target {
    /// `path` as written on this machine: under `--root` when given.
    fn host_path(&self, path: &Path) -> PathBuf {
        match &self.root {
            Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
            None => path.to_path_buf(),
        }
    }

    fn unit_path(&self) -> PathBuf {
        self.host_path(&self.unit_dir.join(UNIT_NAME))
    }

    /// Whether to run systemctl: systemd runs here and the files are not for another root.
    fn systemd(&self) -> bool {
        self.root.is_none() && Path::new(SYSTEMD_RUNNING).is_dir()
    }
}

/// Runs a service command; returns the exit code (errors are printed here).
pub(crate) fn run(cmd: &ServiceCmd) -> i32 {
    let outcome = match cmd {
        ServiceCmd::Install(args) => install(args),
        ServiceCmd::Uninstall(args) => uninstall(&args.target),
    };
    match outcome {
        Ok(()) => 0,
        Err(message) => {
            eprintln!("fazt: {message}");
            1
        }
    }
}

/// What the unit says: the values of one install.
#[derive(Debug)]
struct UnitValues<'a> {
    user: &'a str,
    bin: &'a Path,
    data: &'a Path,
    listen: Option<&'a str>,
    domain: Option<&'a str>,
    trusted_proxies: Option<&'a str>,
    memory_max: Option<&'a str>,
    cpu_quota: Option<&'a str>,
}

/// The unit, after `scripts/fazt.service` (which this must keep agreeing with: the
/// `service` integration test compares their directives).
fn unit(v: &UnitValues) -> String {
    let (bin, data) = (v.bin.display(), v.data.display());
    let mut env = String::new();
    for (name, value) in [
        ("FAZT_LISTEN", v.listen),
        ("FAZT_DOMAIN", v.domain),
        ("FAZT_TRUSTED_PROXIES", v.trusted_proxies),
    ] {
        if let Some(value) = value {
            env.push_str(&format!("Environment={name}={value}\n"));
        }
    }
    let mut limits = String::new();
    if let Some(max) = v.memory_max {
        limits.push_str(&format!("MemoryMax={max}\n"));
    }
    if let Some(quota) = v.cpu_quota {
        limits.push_str(&format!("CPUQuota={quota}\n"));
    }
    format!(
        "# Written by `fazt service install`; `fazt service uninstall` removes it (and keeps\n\
         # {data}). MemoryMax= and CPUQuota= are read back by fazt's resource probe.\n\
         [Unit]\n\
         Description=fazt personal cloud\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=simple\n\
         User={user}\n\
         WorkingDirectory={data}\n\
         ExecStart={bin} server start --data {data}\n\
         {env}\
         AmbientCapabilities=CAP_NET_BIND_SERVICE\n\
         CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n\
         {limits}\
         LimitNOFILE=65536\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         # SIGTERM starts a graceful drain (FAZT_SHUTDOWN_TIMEOUT, default 10 s); give it room.\n\
         KillSignal=SIGTERM\n\
         TimeoutStopSec=30\n\
         NoNewPrivileges=true\n\
         ProtectSystem=strict\n\
         ReadWritePaths={data}\n\
         PrivateTmp=true\n\
         \n\
         [Install]\n\
         WantedBy=multi-user.target\n",
        user = v.user,
    )
}

fn install(args: &InstallArgs) -> Result<(), String> {
    let target = &args.target;
    if !target.dry_run {
        require_root("install")?;
    }
    check_user_name(&args.user)?;
    let data = absolute_path(&args.data.to_string_lossy())?;
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| PathBuf::from("/usr/local/bin/fazt"));
    let values = UnitValues {
        user: &args.user,
        bin: &bin,
        data: &data,
        listen: args.listen.as_deref(),
        domain: args.domain.as_deref(),
        trusted_proxies: args.trusted_proxies.as_deref(),
        memory_max: args.memory_max.as_deref(),
        cpu_quota: args.cpu_quota.as_deref(),
    };
    let text = unit(&values);
    let steps = Steps {
        dry_run: target.dry_run,
    };
    install_binary(&steps, &target.host_path(&bin))?;
    let owner = ensure_user(&steps, target, &args.user, &data)?;
    make_data_dir(&steps, &target.host_path(&data), &args.user, owner)?;
    let unit_path = target.unit_path();
    steps.say(&format!("write the unit {}", unit_path.display()));
    if !target.dry_run {
        write_file(&unit_path, text.as_bytes(), 0o644)?;
    }
    systemctl(
        &steps,
        target,
        &[&["daemon-reload"], &["enable", "--now", "fazt"]],
    )?;
    if target.dry_run {
        println!("\nthe unit ({}):\n{text}", unit_path.display());
    }
    print_owner_setup(&args.user, &bin, &data, target.systemd());
    Ok(())
}

fn uninstall(target: &Target) -> Result<(), String> {
    if !target.dry_run {
        require_root("uninstall")?;
    }
    let steps = Steps {
        dry_run: target.dry_run,
    };
    let unit_path = target.unit_path();
    // What to say was kept, from the unit itself (before it goes).
    let unit_text = std::fs::read_to_string(&unit_path).unwrap_or_default();
    if unit_path.exists() {
        systemctl(&steps, target, &[&["disable", "--now", "fazt"]])?;
        steps.say(&format!("remove the unit {}", unit_path.display()));
        if !target.dry_run {
            std::fs::remove_file(&unit_path)
                .map_err(|e| format!("cannot remove {}: {e}", unit_path.display()))?;
        }
    } else {
        println!("no unit at {}: nothing to remove", unit_path.display());
    }
    systemctl(&steps, target, &[&["daemon-reload"]])?;
    let data = directive(&unit_text, "ReadWritePaths").unwrap_or("the data directory");
    let user = directive(&unit_text, "User").unwrap_or("the service user");
    println!(
        "kept the data in {data}, the user {user} and the binary; to delete them too \
         (every site, event and key goes): userdel {user}; rm -r {data}"
    );
    Ok(())
}

/// The value of the first `Name=` line of a unit.
fn directive<'a>(unit: &'a str, name: &str) -> Option<&'a str> {
    unit.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix('='))
        .map(str::trim)
}

/// Prints each step as it is taken (or, in a dry run, instead of taking it).
struct Steps {
    dry_run: bool,
}

impl Steps {
    fn say(&self, step: &str) {
        if self.dry_run {
            println!("would {step}");
        } else {
            println!("{step}");
        }
    }
}

fn require_root(what: &str) -> Result<(), String> {
    if effective_uid()? == 0 {
        return Ok(());
    }
    Err(format!(
        "'fazt service {what}' must run as root (it writes the unit, creates the user and \
         the data dir): sudo fazt service {what} …; --dry-run shows what it would do"
    ))
}

/// The effective uid, from `/proc/self/status` (no libc call: `unsafe` lives in sys only).
fn effective_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        .ok_or_else(|| "no effective uid in /proc/self/status".to_string())
}

/// Copies the running binary to `bin` unless it is already there; through a temp file
/// and a rename, so a running copy of the old one is never overwritten in place.
fn install_binary(steps: &Steps, bin: &Path) -> Result<(), String> {
    let me = std::env::current_exe().map_err(|e| format!("finding this binary: {e}"))?;
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(&me, bin) {
        println!("the binary is already {}", bin.display());
        return Ok(());
    }
    steps.say(&format!(
        "copy {} to {} (mode 0755)",
        me.display(),
        bin.display()
    ));
    if steps.dry_run {
        return Ok(());
    }
    if let Some(dir) = bin.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let bytes = std::fs::read(&me).map_err(|e| format!("reading {}: {e}", me.display()))?;
    write_file(bin, &bytes, 0o755)
}

/// The uid and gid of `user`, creating it as a system user when missing (not under
/// `--root`: another root's user database is not this machine's `useradd`'s to edit).
fn ensure_user(
    steps: &Steps,
    target: &Target,
    user: &str,
    data: &Path,
) -> Result<Option<(u32, u32)>, String> {
    if let Some(ids) = lookup_user(user)? {
        println!("user {user} exists (uid {}, gid {})", ids.0, ids.1);
        return Ok(Some(ids));
    }
    if target.root.is_some() {
        return Err(format!(
            "user {user} does not exist; with --root it must (create it, or pass --user)"
        ));
    }
    let data = data.to_string_lossy();
    let command = [
        "useradd",
        "--system",
        "--no-create-home",
        "--home-dir",
        &data,
        "--shell",
        "/usr/sbin/nologin",
        user,
    ];
    steps.say(&format!("create the system user: {}", command.join(" ")));
    if steps.dry_run {
        return Ok(None);
    }
    run_command(&command)?;
    lookup_user(user)?
        .map(Some)
        .ok_or_else(|| format!("useradd succeeded but user {user} is not found"))
}

/// `getent passwd USER`: uid and gid, or `None` when there is no such user.
fn lookup_user(user: &str) -> Result<Option<(u32, u32)>, String> {
    let out = Command::new("getent")
        .args(["passwd", user])
        .output()
        .map_err(|e| format!("running getent: {e}"))?;
    // getent exits 2 for a name it does not know.
    if !out.status.success() {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = line.trim().split(':').collect();
    match (fields.get(2), fields.get(3)) {
        (Some(uid), Some(gid)) => match (uid.parse(), gid.parse()) {
            (Ok(uid), Ok(gid)) => Ok(Some((uid, gid))),
            _ => Err(format!("getent passwd {user}: unexpected line '{line}'")),
        },
        _ => Err(format!("getent passwd {user}: unexpected line '{line}'")),
    }
}

/// The data dir, owned by the service user and private to it (the database holds every
/// key and password hash). An existing one is kept, its owner and mode set.
fn make_data_dir(
    steps: &Steps,
    dir: &Path,
    user: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), String> {
    steps.say(&format!(
        "create the data dir {} (owned by the service user, mode 0700)",
        dir.display()
    ));
    if steps.dry_run {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(dir, Some(uid), Some(gid))
            .map_err(|e| format!("cannot chown {}: {e}", dir.display()))?;
        warn_foreign_files(dir, uid, user);
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot chmod {}: {e}", dir.display()))
}

/// Files already in the data dir that the service user does not own (a `fazt key create`
/// run as root before) would stop the service from writing its database. They are named,
/// not changed: `--data` pointing at the wrong directory must not chown someone's files.
fn warn_foreign_files(dir: &Path, uid: u32, user: &str) {
    use std::os::unix::fs::MetadataExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let foreign: Vec<String> = entries
        .flatten()
        .filter(|e| e.metadata().is_ok_and(|m| m.uid() != uid))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if !foreign.is_empty() {
        eprintln!(
            "warning: {dir} holds files the service user does not own ({}); the service \
             cannot write them. If they are fazt's: chown -R {user}: {dir}",
            foreign.join(", "),
            dir = dir.display()
        );
    }
}

/// Writes `path` whole through a temp file beside it (fsynced, then renamed), mode `mode`.
fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or(Path::new("/"));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temp)?;
        file.write_all(bytes)?;
        // The umask may have narrowed the mode given at creation.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&temp);
        format!("writing {}: {e}", path.display())
    })
}

/// Runs each `systemctl` command when systemd runs here; otherwise says what to run later.
fn systemctl(steps: &Steps, target: &Target, commands: &[&[&str]]) -> Result<(), String> {
    let shown: Vec<String> = commands
        .iter()
        .map(|c| format!("systemctl {}", c.join(" ")))
        .collect();
    if !target.systemd() {
        let why = if target.root.is_some() {
            "the files are for --root".to_string()
        } else {
            format!("systemd is not running here (no {SYSTEMD_RUNNING})")
        };
        println!("skipped {}: {why}", shown.join(", "));
        return Ok(());
    }
    for (command, text) in commands.iter().zip(&shown) {
        steps.say(&format!("run {text}"));
        if !steps.dry_run {
            let mut argv = vec!["systemctl"];
            argv.extend_from_slice(command);
            run_command(&argv)?;
        }
    }
    Ok(())
}

fn run_command(argv: &[&str]) -> Result<(), String> {
    let status = Command::new(argv[0])
        .args(&argv[1..])
        .status()
        .map_err(|e| format!("running {}: {e}", argv[0]))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("'{}' failed ({status})", argv.join(" ")))
    }
}

/// How the owner gets in once the service runs: what its first start prints.
fn print_owner_setup(user: &str, bin: &Path, data: &Path, started: bool) {
    let (bin, data) = (bin.display(), data.display());
    let start = if started {
        String::new()
    } else {
        "Start it (systemctl daemon-reload && systemctl enable --now fazt, once systemd \
         runs), then:\n"
            .to_string()
    };
    println!(
        "\nowner setup\n{start}\
         - its first start prints the owner API key (once) and a one-time link to set the \
         dashboard's owner password (valid 24 h):\n    \
         journalctl -u fazt | grep -E 'owner API key|set up the dashboard'\n\
         - or, on this machine, as the service user (so the files stay its own):\n    \
         sudo -u {user} {bin} user set-password owner --data {data}\n    \
         sudo -u {user} {bin} key create laptop --data {data}\n\
         - then on your laptop: fazt login --server https://admin.DOMAIN --token fzt_...\n\
         - for a public domain with HTTPS, see the README's \"Put it on a real domain\""
    );
}

/// Characters that would change a unit line's meaning: systemd's specifiers (`%`),
/// quoting, escapes, variables, and anything that ends or splits the line.
fn plain(text: &str, what: &str) -> Result<(), String> {
    let bad = |c: char| c.is_whitespace() || c.is_control() || "%\"'\\$;`".contains(c);
    if text.is_empty() || text.contains(bad) {
        return Err(format!(
            "{what} '{text}' must be non-empty, without spaces, quotes, %, $, ; or \\"
        ));
    }
    Ok(())
}

fn absolute_path(text: &str) -> Result<PathBuf, String> {
    plain(text, "the path")?;
    if !text.starts_with('/') {
        return Err(format!("'{text}' is not an absolute path"));
    }
    Ok(PathBuf::from(text))
}

fn check_user_name(name: &str) -> Result<(), String> {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-';
    let first_ok = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_');
    if !first_ok || !name.chars().all(ok) || name.len() > 32 {
        return Err(format!(
            "--user '{name}' is not a user name (lower-case letters, digits, _ and -)"
        ));
    }
    Ok(())
}

/// `HOST:PORT` or `:PORT`, as `fazt server start --listen` takes it.
fn listen(text: &str) -> Result<String, String> {
    plain(text, "the address")?;
    let full = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    full.parse::<std::net::SocketAddr>()
        .map(|_| text.to_string())
        .map_err(|_| "is not HOST:PORT or :PORT (e.g. 0.0.0.0:80)".to_string())
}

fn domain(text: &str) -> Result<String, String> {
    let name = text.trim_end_matches('.').to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err("is not a domain name (e.g. example.com)".into());
    }
    Ok(name)
}

/// A byte size as systemd reads it (`512M`, `2G`, `1073741824`), a percentage of the
/// machine's memory, or `infinity`.
fn memory_max(text: &str) -> Result<String, String> {
    let digits = text.trim_end_matches(['K', 'M', 'G', 'T', '%']);
    let one_suffix = text.len() - digits.len() <= 1;
    if text == "infinity"
        || (one_suffix && !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
    {
        return Ok(text.to_string());
    }
    Err("is not a size systemd takes (e.g. 512M, 2G, 50%, infinity)".into())
}

/// A percentage of one CPU (`100%` is one CPU, `200%` two).
fn cpu_quota(text: &str) -> Result<String, String> {
    match text.strip_suffix('%') {
        Some(n) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) && n != "0" => {
            Ok(text.to_string())
        }
        _ => Err("is not a percentage of one CPU (e.g. 100%, 250%)".into()),
    }
}

fn trusted_proxies(text: &str) -> Result<String, String> {
    plain(text, "the proxy list")?;
    TrustedProxies::parse(text).map(|_| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_that_would_break_the_unit_are_refused() {
        assert!(listen(":80").is_ok());
        assert!(listen("127.0.0.1:4698").is_ok());
        assert!(listen("0.0.0.0:80\nExecStartPre=/bin/sh").is_err());
        assert!(listen("localhost").is_err());
        assert!(memory_max("512M").is_ok());
        assert!(memory_max("512MM").is_err());
        assert!(memory_max("lots").is_err());
        assert!(cpu_quota("150%").is_ok());
        assert!(cpu_quota("150").is_err());
        assert!(cpu_quota("0%").is_err());
        assert!(absolute_path("/var/lib/fazt").is_ok());
        assert!(absolute_path("var/lib").is_err());
        assert!(absolute_path("/var/%h").is_err());
        assert!(domain("Example.COM.").as_deref() == Ok("example.com"));
        assert!(domain("exa mple.com").is_err());
        assert!(check_user_name("fazt").is_ok());
        assert!(check_user_name("Root").is_err());
        assert!(check_user_name("-x").is_err());
    }

    #[test]
    fn the_unit_names_each_value_given_and_only_those() {
        let mut v = UnitValues {
            user: "fazt",
            bin: Path::new("/usr/local/bin/fazt"),
            data: Path::new("/var/lib/fazt"),
            listen: Some("0.0.0.0:80"),
            domain: None,
            trusted_proxies: Some("10.0.0.0/8"),
            memory_max: Some("256M"),
            cpu_quota: None,
        };
        let text = unit(&v);
        assert!(text.contains("ExecStart=/usr/local/bin/fazt server start --data /var/lib/fazt\n"));
        assert!(text.contains("Environment=FAZT_LISTEN=0.0.0.0:80\n"));
        assert!(text.contains("Environment=FAZT_TRUSTED_PROXIES=10.0.0.0/8\n"));
        assert!(text.contains("MemoryMax=256M\n"));
        assert_eq!(directive(&text, "CPUQuota"), None);
        assert!(!text.contains("FAZT_DOMAIN"));
        assert_eq!(directive(&text, "User"), Some("fazt"));
        assert_eq!(directive(&text, "ReadWritePaths"), Some("/var/lib/fazt"));
        v.trusted_proxies = None;
        assert!(!unit(&v).contains("FAZT_TRUSTED_PROXIES"));
    }
}
