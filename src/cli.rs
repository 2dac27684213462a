//! Command-line entry: parses arguments, runs a command, maps the outcome to an exit code.

use crate::client::{self, ClientError};
use crate::hosting::store;
use crate::keys::{self, validate_name, Scopes};
use crate::platform::probe::Report;
use crate::server::config::{self, process_env, Config, Flags};
use std::path::{Path, PathBuf};

const HELP: &str = "\
fazt — a single-binary personal cloud

USAGE:
    fazt server start [--listen ADDR] [--admin-listen ADDR] [--domain D] [--data DIR]
    fazt probe [--json] [--data DIR] [--root DIR]
    fazt key create NAME [--scope SCOPE[,SCOPE...]] [--data DIR]
    fazt key list [--json] [--data DIR]
    fazt key revoke ID [--data DIR]
    fazt site import NAME DIR [--data DIR]
    fazt db prune --older-than AGE [--rollups] [--data DIR]
    fazt deploy DIR --site NAME [--server URL] [--token T]
    fazt login --server URL --token T
    fazt sites [--json] [--server URL] [--token T]
    fazt sites rm NAME [--server URL] [--token T]
    fazt rollback NAME [--to ID] [--server URL] [--token T]
    fazt --help | --version

COMMANDS:
    server start   Serve sites, analytics and the admin API until SIGTERM/SIGINT.
    probe          Print the memory and CPU this process was given and every limit derived from them.
    key            Manage admin API keys (works whether or not the server is running).
                   Scopes: owner (everything; the default), deploy:* (deploy and manage any
                   site but root and 404), deploy:SITE (that site only).
    db prune       Delete analytics events older than AGE (e.g. 30d, 12h, 2w) in small batches,
                   keeping the roll-ups unless --rollups, then return the space to the disk.
    site import    Publish a directory as site NAME: a new deployment, made current at once
                   (works whether or not the server is running; a running server picks it up).

CLIENT COMMANDS (talk to a running server's admin API; http:// or https://):
    deploy         Zip DIR (dot-paths like .git/ skipped) into a temp file and upload it as site
                   NAME with a progress bar; prints the site URL, files, size and bytes new.
    login          Save the server URL and API token to $XDG_CONFIG_HOME/fazt/config
                   (~/.config/fazt/config), created with mode 0600.
    sites          List sites: name, current deployment, files, size, last update, URL.
    sites rm       Delete site NAME and its deployments.
    rollback       Make the previous deployment of NAME current again, or deployment ID (--to).
    The server and token come from --server/--token, else FAZT_SERVER/FAZT_TOKEN, else the
    config file. Exit codes: 0 done, 1 network or server error, 2 usage or configuration error.

OPTIONS:
    --listen ADDR        Public listener [env FAZT_LISTEN, default 127.0.0.1:4698]
    --admin-listen ADDR  Separate admin listener, reachable even when the public port is flooded
                         [env FAZT_ADMIN_LISTEN, default: none; admin is also served on the admin host]
    --domain D           Base domain: sites are <name>.D, the admin host is admin.D
                         [env FAZT_DOMAIN, default localhost]
    --data DIR           Data directory [env FAZT_DATA, default ./data]
    --root DIR           (probe) read cgroup and /proc files under DIR instead of /
    --json               Machine-readable output

ENVIRONMENT (limits; see `fazt probe` for the values in effect):
    FAZT_THREADS, FAZT_MEMORY_LIMIT, FAZT_CACHE_BYTES, FAZT_MAX_CACHED_FILE, FAZT_MAX_CONNECTIONS,
    FAZT_UPLOAD_RAM, FAZT_TEMP_DIR, FAZT_EVENT_CHANNEL, FAZT_SQLITE_CACHE_BYTES, FAZT_SQLITE_MMAP_BYTES,
    FAZT_HEADER_TIMEOUT, FAZT_IDLE_TIMEOUT, FAZT_BODY_TIMEOUT, FAZT_WRITE_TIMEOUT,
    FAZT_SHUTDOWN_TIMEOUT, FAZT_ADMIN_MAX_CONNECTIONS, FAZT_DISK_THRESHOLD,
    FAZT_TRUSTED_PROXIES, FAZT_EVENT_CHANNEL, FAZT_EVENT_BATCH, FAZT_EVENT_FLUSH, FAZT_RETENTION, FAZT_AUTO_PAGEVIEWS,
    FAZT_KEEP_DEPLOYMENTS, RUST_LOG
";

/// Parsed `--flag value` options and positional arguments of one command.
struct Args {
    values: Vec<(String, String)>,
    switches: Vec<String>,
    positional: Vec<String>,
}

impl Args {
    /// Parses `args` accepting only the named value flags and switches.
    fn parse(args: &[String], value_flags: &[&str], switch_flags: &[&str]) -> Result<Args, String> {
        let mut parsed = Args {
            values: Vec::new(),
            switches: Vec::new(),
            positional: Vec::new(),
        };
        let mut iter = args.iter();
        while let Some(arg) = iter.next() {
            let Some(flag) = arg.strip_prefix("--") else {
                parsed.positional.push(arg.clone());
                continue;
            };
            let (name, inline) = match flag.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (flag, None),
            };
            if value_flags.contains(&name) {
                let value = match inline {
                    Some(v) => v,
                    None => iter
                        .next()
                        .cloned()
                        .ok_or(format!("--{name} needs a value"))?,
                };
                if value.is_empty() {
                    return Err(format!("--{name} needs a non-empty value"));
                }
                parsed.values.push((name.to_string(), value));
            } else if switch_flags.contains(&name) && inline.is_none() {
                parsed.switches.push(name.to_string());
            } else {
                return Err(format!("unknown option '{arg}'"));
            }
        }
        Ok(parsed)
    }

    fn value(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    }

    fn switch(&self, name: &str) -> bool {
        self.switches.iter().any(|s| s == name)
    }

    fn expect_positional(&self, count: usize, usage: &str) -> Result<(), String> {
        match self.positional.len().cmp(&count) {
            std::cmp::Ordering::Equal => Ok(()),
            std::cmp::Ordering::Less => Err(format!("missing argument; usage: {usage}")),
            std::cmp::Ordering::Greater => Err(format!(
                "unexpected argument '{}'; usage: {usage}",
                self.positional[count]
            )),
        }
    }

    fn data_dir(&self) -> PathBuf {
        config::data_dir(self.value("data").as_deref(), &process_env)
    }
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("fazt: {message}");
            2
        }
    }
}

fn run(args: &[String]) -> Result<i32, String> {
    let words: Vec<&str> = args.iter().take(2).map(String::as_str).collect();
    match words.as_slice() {
        [] | ["--help" | "-h" | "help", ..] => {
            print!("{HELP}");
            Ok(0)
        }
        ["--version" | "-V", ..] => {
            println!("fazt {}", env!("CARGO_PKG_VERSION"));
            Ok(0)
        }
        ["server", "start"] => server_start(&args[2..]),
        ["server", ..] => Err("usage: fazt server start [--listen ADDR] [--admin-listen ADDR] [--domain D] [--data DIR]".into()),
        ["probe", ..] => probe(&args[1..]),
        ["key", "create"] => key_create(&args[2..]),
        ["key", "list"] => key_list(&args[2..]),
        ["key", "revoke"] => key_revoke(&args[2..]),
        ["key", ..] => Err("usage: fazt key create NAME [--scope SCOPE] | fazt key list | fazt key revoke ID".into()),
        ["site", "import"] => site_import(&args[2..]),
        ["site", ..] => Err("usage: fazt site import NAME DIR [--data DIR]".into()),
        ["db", "prune"] => db_prune(&args[2..]),
        ["db", ..] => Err("usage: fazt db prune --older-than AGE [--rollups] [--data DIR]".into()),
        ["deploy", ..] => client_deploy(&args[1..]),
        ["login", ..] => client_login(&args[1..]),
        ["sites", "rm"] => client_sites_rm(&args[2..]),
        ["sites", ..] => client_sites(&args[1..]),
        ["rollback", ..] => client_rollback(&args[1..]),
        [other, ..] => Err(format!("unknown command '{other}'; run 'fazt --help'")),
    }
}

fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}

fn server_start(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["listen", "admin-listen", "domain", "data"], &[])?;
    args.expect_positional(
        0,
        "fazt server start [--listen ADDR] [--admin-listen ADDR] [--domain D] [--data DIR]",
    )?;
    init_logging();
    // Raise the descriptor limit before probing so the connection cap is sized from it.
    if let Err(e) = crate::platform::sys::raise_nofile_limit() {
        log::warn!("could not raise the open-file limit: {e}");
    }
    let flags = Flags {
        listen: args.value("listen"),
        admin_listen: args.value("admin-listen"),
        domain: args.value("domain"),
        data_dir: args.value("data"),
    };
    let data_dir = args.data_dir();
    let report = Report::collect(Path::new("/"), &data_dir, &process_env)?;
    let config = Config::build(&flags, &process_env, report)?;
    crate::server::run(config)
}

fn probe(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["data", "root"], &["json"])?;
    args.expect_positional(0, "fazt probe [--json] [--data DIR] [--root DIR]")?;
    let root = PathBuf::from(args.value("root").unwrap_or_else(|| "/".into()));
    if !root.is_dir() {
        return Err(format!("--root: '{}' is not a directory", root.display()));
    }
    let report = Report::collect(&root, &args.data_dir(), &process_env)?;
    if args.switch("json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&report.to_json()).unwrap_or_default()
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(0)
}

/// Opens (creating and migrating if needed) the database for a CLI command, with the
/// limits probed for this data dir. SQLite's locking lets this run beside a server that
/// has the same database open.
fn open_db(args: &Args) -> Result<(rusqlite::Connection, Report), String> {
    let data_dir = args.data_dir();
    let report = Report::collect(Path::new("/"), &data_dir, &process_env)?;
    let conn = crate::db::open_and_migrate(&crate::db::db_path(&data_dir), &report.limits)
        .map_err(|e| e.to_string())?;
    Ok((conn, report))
}

fn key_create(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["data", "scope"], &[])?;
    args.expect_positional(
        1,
        "fazt key create NAME [--scope SCOPE[,SCOPE...]] [--data DIR]",
    )?;
    let name = &args.positional[0];
    validate_name(name)?;
    let scopes = match args.value("scope") {
        Some(text) => Scopes::parse(&text).map_err(|e| format!("--scope: {e}"))?,
        None => Scopes::owner(),
    };
    let (conn, _) = open_db(&args)?;
    let (key, token) =
        keys::create(&conn, name, &scopes).map_err(|e| format!("creating key: {e}"))?;
    println!(
        "created API key {} ({}, scope {}); the token is shown only now:",
        key.id, key.name, key.scope
    );
    println!("{token}");
    Ok(0)
}

fn key_list(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["data"], &["json"])?;
    args.expect_positional(0, "fazt key list [--json] [--data DIR]")?;
    let keys = keys::list(&open_db(&args)?.0).map_err(|e| format!("listing keys: {e}"))?;
    if args.switch("json") {
        let list: Vec<_> = keys.iter().map(|k| k.to_json()).collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(0);
    }
    if keys.is_empty() {
        println!("no API keys (create one with 'fazt key create NAME')");
    }
    for k in keys {
        let created = crate::http::response::http_date(k.created_at.max(0) as u64);
        println!("{}\t{}\t{}\tcreated {created}", k.id, k.scope, k.name);
    }
    Ok(0)
}

fn key_revoke(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["data"], &[])?;
    args.expect_positional(1, "fazt key revoke ID [--data DIR]")?;
    let id = &args.positional[0];
    if keys::revoke(&open_db(&args)?.0, id).map_err(|e| format!("revoking key: {e}"))? {
        println!("revoked API key {id}");
        Ok(0)
    } else {
        Err(format!("no API key with id '{id}' (see 'fazt key list')"))
    }
}

fn site_import(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["data"], &[])?;
    args.expect_positional(2, "fazt site import NAME DIR [--data DIR]")?;
    let (name, dir) = (&args.positional[0], Path::new(&args.positional[1]));
    store::validate_site_name(name)?;
    let files = store::stage_directory(dir)?;
    let (mut conn, report) = open_db(&args)?;
    let threshold = crate::platform::disk::threshold_from_env(&process_env)?;
    let watched = vec![args.data_dir(), report.limits.temp_dir];
    crate::platform::disk::DiskGuard::new(watched, threshold)
        .check()
        .map_err(|e| e.to_string())?;
    let result = store::apply_deployment(&mut conn, name, &files, "import")
        .map_err(|e| format!("importing {}: {e}; the site is unchanged", dir.display()))?;
    println!(
        "site {} is now deployment {}: {} files, {} ({} new)",
        result.site,
        result.deployment,
        result.file_count,
        crate::platform::units::format_bytes(result.total_bytes),
        crate::platform::units::format_bytes(result.new_bytes)
    );
    Ok(0)
}

fn db_prune(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &["data", "older-than"], &["rollups"])?;
    args.expect_positional(0, "fazt db prune --older-than AGE [--rollups] [--data DIR]")?;
    let age = args
        .value("older-than")
        .ok_or("--older-than is required (e.g. --older-than 30d)")?;
    let age =
        crate::platform::units::parse_duration(&age).map_err(|e| format!("--older-than: {e}"))?;
    let cutoff = crate::platform::clock::unix_now() - age.as_secs() as i64;
    let (mut conn, _) = open_db(&args)?;
    let totals = crate::analytics::retention::prune_now(&mut conn, cutoff, args.switch("rollups"))
        .map_err(|e| format!("pruning: {e}"))?;
    println!(
        "deleted {} events{} older than {}; reclaimed {}",
        totals.events_deleted,
        if args.switch("rollups") {
            format!(" and {} roll-up rows", totals.rollup_rows_deleted)
        } else {
            String::new()
        },
        crate::http::response::http_date(cutoff.max(0) as u64),
        crate::platform::units::format_bytes(totals.bytes_reclaimed)
    );
    Ok(0)
}

/// Client commands fail in two ways: usage (returned as `Err`, exit 2) and network or
/// server errors (printed here, exit 1).
fn client_exit(outcome: Result<(), ClientError>) -> Result<i32, String> {
    match outcome {
        Ok(()) => Ok(0),
        Err(ClientError::Usage(message)) => Err(message),
        Err(ClientError::Failed(message)) => {
            eprintln!("fazt: {message}");
            Ok(1)
        }
    }
}

const CLIENT_FLAGS: [&str; 2] = ["server", "token"];

fn client_settings(args: &Args) -> Result<client::config::Settings, ClientError> {
    client::config::resolve(
        args.value("server"),
        args.value("token"),
        &process_env,
        &|| client::config::load(&client::config::config_path(&process_env)?),
    )
}

fn client_deploy(args: &[String]) -> Result<i32, String> {
    const USAGE: &str = "fazt deploy DIR --site NAME [--server URL] [--token T]";
    let args = Args::parse(args, &["site", "server", "token"], &[])?;
    args.expect_positional(1, USAGE)?;
    let site = args
        .value("site")
        .ok_or(format!("--site NAME is required; usage: {USAGE}"))?;
    let dir = Path::new(&args.positional[0]);
    client_exit((|| {
        let site = client::deploy::check_arguments(dir, &site)?;
        let settings = client_settings(&args)?;
        client::deploy::run(dir, &site, &settings)
    })())
}

fn client_login(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &CLIENT_FLAGS, &[])?;
    args.expect_positional(0, "fazt login --server URL --token T")?;
    client_exit((|| {
        let (path, saved) =
            client::config::login(args.value("server"), args.value("token"), &process_env)?;
        println!(
            "saved to {} (mode 0600): server {}, token {}",
            path.display(),
            saved.server.as_deref().unwrap_or("(none)"),
            if saved.token.is_some() {
                "set"
            } else {
                "(none)"
            }
        );
        Ok(())
    })())
}

fn client_sites(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &CLIENT_FLAGS, &["json"])?;
    args.expect_positional(
        0,
        "fazt sites [--json] [--server URL] [--token T] | fazt sites rm NAME",
    )?;
    client_exit(client_settings(&args).and_then(|s| client::sites::list(&s, args.switch("json"))))
}

fn client_sites_rm(args: &[String]) -> Result<i32, String> {
    let args = Args::parse(args, &CLIENT_FLAGS, &[])?;
    args.expect_positional(1, "fazt sites rm NAME [--server URL] [--token T]")?;
    let site = args.positional[0].to_ascii_lowercase();
    store::validate_site_name(&site)?;
    client_exit(client_settings(&args).and_then(|s| client::sites::remove(&s, &site)))
}

fn client_rollback(args: &[String]) -> Result<i32, String> {
    const USAGE: &str = "fazt rollback NAME [--to ID] [--server URL] [--token T]";
    let args = Args::parse(args, &["to", "server", "token"], &[])?;
    args.expect_positional(1, USAGE)?;
    let site = args.positional[0].to_ascii_lowercase();
    store::validate_site_name(&site)?;
    let to = match args.value("to") {
        Some(text) => match text.parse::<i64>() {
            Ok(id) if id > 0 => Some(id),
            _ => {
                return Err(format!(
                    "--to: '{text}' is not a deployment id (a positive number)"
                ))
            }
        },
        None => None,
    };
    client_exit(client_settings(&args).and_then(|s| client::sites::rollback(&s, &site, to)))
}
