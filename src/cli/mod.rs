//! Command-line entry: parses arguments, runs a command, maps the outcome to an exit code.
//! The commands are declared here; their settings (flags with `FAZT_*` variables) are the
//! table in [`settings`].

mod service;
pub(crate) mod settings;

use crate::client::{self, ClientError};
use crate::hosting::store;
use crate::keys::{self, validate_name, Scopes};
use crate::platform::probe::Report;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser, Subcommand};
use settings::{ClientArgs, DataArgs, DiskArgs, LimitArgs, Parsed, ReserveArgs, ServerArgs};
use std::path::{Path, PathBuf};

/// fazt — a single-binary personal cloud: static sites from SQLite, privacy-first
/// analytics, deploys and an admin API
#[derive(Parser, Debug)]
// A repeated flag takes its last value, as before clap: scripts append overrides.
#[command(
    name = "fazt",
    version,
    max_term_width = 100,
    args_override_self = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the server
    #[command(subcommand)]
    Server(ServerCmd),
    /// Print the memory and CPU this process was given and every limit derived from them
    Probe(ProbeArgs),
    /// Manage admin API keys (works whether or not the server is running)
    #[command(subcommand)]
    Key(KeyCmd),
    /// Manage dashboard accounts (works whether or not the server is running)
    #[command(subcommand)]
    User(UserCmd),
    /// Publish sites from a directory (works whether or not the server is running)
    #[command(subcommand)]
    Site(SiteCmd),
    /// Database maintenance
    #[command(subcommand)]
    Db(DbCmd),
    /// Write a deployment back out as a zip, byte-exact (works whether or not the server is
    /// running)
    #[command(subcommand)]
    Export(ExportCmd),
    /// Install fazt as a systemd service (unit, user, data dir), or remove the unit
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Zip DIR (dot-paths like .git/ skipped, .well-known/ kept) and upload it as site NAME, with a progress bar
    Deploy(DeployCmd),
    /// Check the server URL and API token (an authenticated request), then save them to the
    /// client's config file (mode 0600)
    Login(LoginCmd),
    /// List sites: name, current deployment, files, size, last update, URL
    Sites(SitesCmd),
    /// List the deployments of site NAME, newest first (* marks the current one)
    Deployments(DeploymentsCmd),
    /// Make the previous deployment of NAME current again, or deployment ID (--to)
    Rollback(RollbackCmd),
    /// List the certificates served: name, source, issuer, expiry, last renewal, next try
    /// and last error (`certs renew NAME` renews one now)
    Certs(CertsCmd),
    /// Manage the environment variables of a site's serverless app (`fazt.env` in its
    /// scripts); values are sent, never shown back
    #[command(subcommand)]
    Env(EnvCmd),
    /// Print the newest log lines of a site's serverless app (console.log, info, warn,
    /// error): time (UTC), level, message; --follow keeps printing new ones
    Logs(LogsCmd),
}

#[derive(Subcommand, Debug)]
enum ServerCmd {
    /// Serve sites, analytics and the admin API until SIGTERM/SIGINT
    Start(Box<ServerArgs>),
}

#[derive(clap::Args, Debug)]
struct ProbeArgs {
    /// Machine-readable output
    #[arg(long)]
    json: bool,
    /// Read cgroup and /proc files under DIR instead of /
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

/// What every command that opens the database takes.
#[derive(clap::Args, Debug)]
struct DbArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    limits: LimitArgs,
}

#[derive(Subcommand, Debug)]
enum KeyCmd {
    /// Create an API key and print its token (shown only once)
    Create {
        /// A name to recognise the key by (shown by `fazt key list`)
        // `-x` is a bad name, reported as one, not an unknown flag.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// owner (everything), deploy:* (any site but root and 404) or deploy:SITE, comma-separated
        #[arg(long, value_name = "SCOPE[,SCOPE...]", value_parser = Scopes::parse, default_value = "owner")]
        scope: Scopes,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List API keys: id, scope, name, creation and last use
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke an API key by id
    Revoke {
        /// The key's id, from `fazt key list`
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
enum UserCmd {
    /// Set the dashboard password of NAME, creating the account if it is new; asks on the
    /// terminal (twice), or reads one line from stdin when it is not a terminal. Every
    /// session of the account ends
    SetPassword {
        /// The username, e.g. owner or you@example.com
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// For a new account: owner (everything), deploy:* or deploy:SITE, comma-separated
        /// (an existing account keeps its scope unless this is given)
        #[arg(long, value_name = "SCOPE[,SCOPE...]", value_parser = Scopes::parse)]
        scope: Option<Scopes>,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List dashboard accounts: username, scope, creation and last password change
    List {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Delete account NAME; its sessions end at once
    Delete {
        #[arg(allow_hyphen_values = true)]
        name: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
enum SiteCmd {
    /// Publish DIR as site NAME: a new deployment, made current at once (a running server
    /// picks it up)
    Import {
        /// Site name: NAME.DOMAIN serves it (root serves the bare domain, 404 the not-found page)
        // `-x` is a bad name, reported as one, not an unknown flag.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Directory to publish
        dir: PathBuf,
        #[command(flatten)]
        disk: DiskArgs,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
enum DbCmd {
    /// Delete analytics events older than AGE in small batches, then return the space to
    /// the disk
    Prune {
        /// e.g. 30d, 12h, 2w
        #[arg(long, value_name = "AGE", value_parser = crate::platform::units::parse_duration)]
        older_than: std::time::Duration,
        /// Also delete the daily roll-ups older than AGE
        #[arg(long)]
        rollups: bool,
        #[command(flatten)]
        reserve: ReserveArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Check the database's integrity, blobs, files and roll-ups (exit 1 when a check fails)
    ///
    /// SQLite's integrity and foreign-key checks, every blob's sha-256 against its key, files
    /// whose blob is missing, and roll-ups against the raw events still kept. Read-only,
    /// also while the server runs. Exit 0: all passed, 1: a check failed, 2: no database
    /// or it could not be opened
    Check {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Return the database's free pages to the disk (incremental, also while the server
    /// runs) and report the bytes returned
    Vacuum {
        /// Rewrite the whole file (VACUUM): also defragments, but needs the server stopped
        /// and free room for a copy of the database
        #[arg(long)]
        full: bool,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        reserve: ReserveArgs,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Print the size of each table and index, counts of sites, blobs and events, free pages
    ///
    /// Sizes by table and index; counts of sites, deployments, files, blobs and events;
    /// free pages, page size, file and WAL size. Read-only, also while the server runs
    Stats {
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArgs,
    },
    /// Copy the database to FILE, consistent and verified (integrity_check), whether or not
    /// the server runs (a running server keeps serving: the copy reads beside it)
    Backup {
        /// Where to write the copy (written to a temp name beside it, then renamed)
        file: PathBuf,
        /// Replace FILE if it exists
        #[arg(long)]
        force: bool,
        /// Machine-readable output
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Replace the database with the backup FILE (the server must be stopped); the current
    /// one is kept as fazt.db.before-restore-<UTC time>
    Restore {
        /// A backup made by `fazt db backup` (an older schema is migrated; FILE is only read)
        file: PathBuf,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand, Debug)]
enum ExportCmd {
    /// Write deployment ID of site NAME (default: the current one) as a zip of its files,
    /// to stdout or --output: `fazt export site blog > blog.zip`
    Site {
        /// Site name
        // `-x` is a bad name, reported as one, not an unknown flag.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// The deployment to export, from `fazt deployments NAME` [default: the current one]
        #[arg(long, value_name = "ID", value_parser = deployment_id)]
        deployment: Option<i64>,
        /// Write the zip to FILE (written whole, then renamed into place) [default: stdout]
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(clap::Args, Debug)]
struct DeployCmd {
    /// Directory to deploy
    dir: PathBuf,
    /// Site name
    #[arg(long, value_name = "NAME")]
    site: String,
    #[command(flatten)]
    client: ClientArgs,
}

/// What `fazt login` saves: values to write, not settings, so no variables feed them.
#[derive(clap::Args, Debug)]
struct LoginCmd {
    /// Server URL to save (http:// or https://) [default: keep the saved one]
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// API token to save [default: keep the saved one]
    #[arg(long, value_name = "T")]
    token: Option<String>,
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct SitesCmd {
    #[command(subcommand)]
    command: Option<SitesSub>,
    /// Machine-readable output
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand, Debug)]
enum SitesSub {
    /// Delete site NAME and its deployments (asks first on a terminal)
    Rm {
        /// Site name
        // `-x` is a bad name, reported as one, not an unknown flag.
        #[arg(allow_hyphen_values = true)]
        name: String,
        /// Delete without asking (required when stdin is not a terminal)
        #[arg(long, short = 'y')]
        yes: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
struct CertsCmd {
    #[command(subcommand)]
    command: Option<CertsSub>,
    /// Machine-readable output (the server's JSON)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Subcommand, Debug)]
enum CertsSub {
    /// Renew the certificate of NAME now over ACME and wait for the outcome
    Renew {
        /// The DNS name, e.g. blog.example.com
        #[arg(allow_hyphen_values = true)]
        name: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(Subcommand, Debug)]
enum EnvCmd {
    /// Set KEY of site SITE to VALUE; without VALUE, asks for it (hidden) on a terminal, or
    /// reads one line from stdin (a value given on the command line lands in shell history)
    Set {
        /// Site name
        #[arg(allow_hyphen_values = true)]
        site: String,
        /// A letter or _, then letters, digits or _ (e.g. API_TOKEN)
        #[arg(allow_hyphen_values = true)]
        key: String,
        /// At most 4 KiB [default: read from stdin or the terminal]
        #[arg(allow_hyphen_values = true)]
        value: Option<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List the env variables of SITE: key, length of the value, last update
    List {
        /// Site name
        #[arg(allow_hyphen_values = true)]
        site: String,
        /// Machine-readable output (the server's JSON)
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Delete KEY of site SITE
    Unset {
        /// Site name
        #[arg(allow_hyphen_values = true)]
        site: String,
        #[arg(allow_hyphen_values = true)]
        key: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(clap::Args, Debug)]
struct LogsCmd {
    /// Site name
    // `-x` is a bad name, reported as one, not an unknown flag.
    #[arg(allow_hyphen_values = true)]
    site: String,
    /// Keep printing new lines as they come (polls once a second) until interrupted
    #[arg(long, short = 'f')]
    follow: bool,
    /// Machine-readable output: the server's JSON; with --follow, one JSON object per line
    #[arg(long)]
    json: bool,
    /// How many of the newest lines to print first (1 to 1000)
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: u16,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DeploymentsCmd {
    /// Site name
    // `-x` is a bad name, reported as one, not an unknown flag.
    #[arg(allow_hyphen_values = true)]
    name: String,
    /// Machine-readable output (the server's JSON)
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct RollbackCmd {
    /// Site name
    // `-x` is a bad name, reported as one, not an unknown flag.
    #[arg(allow_hyphen_values = true)]
    name: String,
    /// Deployment to make current [default: the one before the current one]
    #[arg(long, value_name = "ID", value_parser = deployment_id)]
    to: Option<i64>,
    #[command(flatten)]
    client: ClientArgs,
}

fn deployment_id(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err("is not a deployment id (a positive number)".into()),
    }
}

/// The command tree with the settings section in `fazt --help`.
fn command() -> Command {
    let cmd = hide_env_values(Cli::command());
    let section = settings::environment_help(&cmd);
    cmd.after_help(section)
}

/// Help names each setting's variable but never shows its value: `[env: FAZT_LISTEN]`, not
/// `[env: FAZT_LISTEN=]` when unset, and a proxy list or token never lands in a pasted help.
fn hide_env_values(cmd: Command) -> Command {
    cmd.mut_args(|arg| arg.hide_env_values(true))
        .mut_subcommands(hide_env_values)
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    match run(std::env::args_os()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("fazt: {message}");
            2
        }
    }
}

fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> Result<i32, String> {
    forget_empty_variables();
    let root = command();
    let matches = match root.clone().try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => return Ok(clap_exit(e, &root)),
    };
    let cli = Cli::from_arg_matches(&matches).map_err(|e| e.to_string())?;
    let (leaf, leaf_matches) = leaf(&root, &matches);
    let p = Parsed {
        matches: leaf_matches,
        command: leaf,
    };
    let Some(cmd) = cli.command else {
        print!("{}", root.clone().render_help());
        return Ok(0);
    };
    match cmd {
        Cmd::Server(ServerCmd::Start(args)) => server_start(&args, &p),
        Cmd::Probe(args) => probe(&args, &p),
        Cmd::Key(KeyCmd::Create { name, scope, db }) => key_create(&name, &scope, &db, &p),
        Cmd::Key(KeyCmd::List { json, db }) => key_list(json, &db, &p),
        Cmd::Key(KeyCmd::Revoke { id, db }) => key_revoke(&id, &db, &p),
        Cmd::User(UserCmd::SetPassword { name, scope, db }) => {
            user_set_password(&name, scope, &db, &p)
        }
        Cmd::User(UserCmd::List { json, db }) => user_list(json, &db, &p),
        Cmd::User(UserCmd::Delete { name, db }) => user_delete(&name, &db, &p),
        Cmd::Site(SiteCmd::Import {
            name,
            dir,
            disk,
            db,
        }) => site_import(&name, &dir, &disk, &db, &p),
        Cmd::Db(DbCmd::Prune {
            older_than,
            rollups,
            reserve,
            db,
        }) => db_prune(older_than, rollups, &reserve, &db, &p),
        Cmd::Export(ExportCmd::Site {
            name,
            deployment,
            output,
            db,
        }) => export_site(&name, deployment, output.as_deref(), &db, &p),
        Cmd::Service(cmd) => Ok(service::run(&cmd)),
        Cmd::Db(DbCmd::Check { json, db }) => db_check(json, &db, &p),
        Cmd::Db(DbCmd::Vacuum {
            full,
            json,
            reserve,
            db,
        }) => db_vacuum(full, json, &reserve, &db, &p),
        Cmd::Db(DbCmd::Stats { json, db }) => db_stats(json, &db, &p),
        Cmd::Db(DbCmd::Backup {
            file,
            force,
            json,
            data,
        }) => db_backup(&file, force, json, &data),
        Cmd::Db(DbCmd::Restore { file, db }) => db_restore(&file, &db, &p),
        Cmd::Deploy(args) => client_deploy(&args, &p),
        Cmd::Login(args) => client_login(&args),
        Cmd::Sites(SitesCmd {
            command: Some(SitesSub::Rm { name, yes, client }),
            ..
        }) => client_sites_rm(&name, yes, &client, &p),
        Cmd::Sites(args) => client_sites(&args, &p),
        Cmd::Certs(CertsCmd {
            command: Some(CertsSub::Renew { name, client }),
            ..
        }) => client_certs_renew(&name, &client, &p),
        Cmd::Certs(args) => client_exit(
            client_settings(&args.client, &p).and_then(|s| client::certs::list(&s, args.json)),
        ),
        Cmd::Env(EnvCmd::Set {
            site,
            key,
            value,
            client,
        }) => client_env_set(&site, &key, value, &client, &p),
        Cmd::Env(EnvCmd::List { site, json, client }) => {
            let site = site_arg(&site)?;
            client_exit(
                client_settings(&client, &p).and_then(|s| client::apps::env_list(&s, &site, json)),
            )
        }
        Cmd::Env(EnvCmd::Unset { site, key, client }) => {
            let site = site_arg(&site)?;
            env_key_arg(&key)?;
            client_exit(
                client_settings(&client, &p).and_then(|s| client::apps::env_unset(&s, &site, &key)),
            )
        }
        Cmd::Logs(args) => client_logs(&args, &p),
        Cmd::Deployments(args) => client_deployments(&args, &p),
        Cmd::Rollback(args) => client_rollback(&args, &p),
    }
}

/// An empty `FAZT_*` variable counts as unset (`FAZT_DATA= fazt ...` is a common way to
/// clear one); clap would pass the empty string to the parser. Runs before any thread.
fn forget_empty_variables() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| k.to_string_lossy().starts_with("FAZT_") && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for name in empty {
        std::env::remove_var(name);
    }
}

/// The subcommand that runs and its matches.
fn leaf<'a>(cmd: &'a Command, matches: &'a ArgMatches) -> (&'a Command, &'a ArgMatches) {
    match matches.subcommand() {
        Some((name, sub)) => match cmd.find_subcommand(name) {
            Some(sub_cmd) => leaf(sub_cmd, sub),
            None => (cmd, matches),
        },
        None => (cmd, matches),
    }
}

/// Help and version go to stdout with exit 0; a bad value is reported in the one error
/// format, other usage errors as clap words them; both exit 2.
fn clap_exit(e: clap::Error, root: &Command) -> i32 {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            print!("{}", e.render());
            return 0;
        }
        // (InvalidValue is clap's "a value is required": its own words are clearer.)
        ErrorKind::ValueValidation => {
            if let Some(message) = bad_value(&e, root) {
                eprintln!("fazt: {message}");
                return 2;
            }
        }
        _ => {}
    }
    let text = e.render().to_string();
    eprint!("fazt: {}", text.strip_prefix("error: ").unwrap_or(&text));
    2
}

/// `invalid value 'x' for FAZT_CACHE_BYTES (--cache-bytes): why`, from clap's error context.
fn bad_value(e: &clap::Error, root: &Command) -> Option<String> {
    let text = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    let shown = text(ContextKind::InvalidArg)?;
    let value = text(ContextKind::InvalidValue).unwrap_or_default();
    let why = std::error::Error::source(e)
        .map(|s| s.to_string())
        .unwrap_or_else(|| "is not valid".into());
    let long = shown
        .strip_prefix("--")
        .map(|s| s.split([' ', '=']).next().unwrap_or(s));
    match long.and_then(|l| find_long(root, l)) {
        Some(arg) => Some(settings::invalid(&value, &arg, &why)),
        None => Some(format!("invalid value '{value}' for {shown}: {why}")),
    }
}

fn find_long(cmd: &Command, long: &str) -> Option<clap::Arg> {
    cmd.get_arguments()
        .find(|a| a.get_long() == Some(long))
        .cloned()
        .or_else(|| cmd.get_subcommands().find_map(|s| find_long(s, long)))
}

fn init_logging() {
    // rustls warns once per handshake about things clients do (an IP address as SNI): any
    // client could flood the journal. Its errors still show; `RUST_LOG=rustls=warn` brings
    // the rest back.
    env_logger::Builder::new()
        .filter_level(log::LevelFilter::Info)
        .filter_module("rustls", log::LevelFilter::Error)
        .parse_env(env_logger::Env::default())
        .init();
}

fn server_start(args: &ServerArgs, p: &Parsed) -> Result<i32, String> {
    args.check(p)?;
    init_logging();
    // Raise the descriptor limit before probing so the connection cap is sized from it.
    if let Err(e) = crate::platform::sys::raise_nofile_limit() {
        log::warn!("could not raise the open-file limit: {e}");
    }
    let report = args.limits.probe(p, Path::new("/"), &args.data.data)?;
    crate::server::run(args.config(report))
}

fn probe(args: &ProbeArgs, p: &Parsed) -> Result<i32, String> {
    if !args.root.is_dir() {
        return Err(format!(
            "--root: '{}' is not a directory",
            args.root.display()
        ));
    }
    let report = args.limits.probe(p, &args.root, &args.data.data)?;
    if args.json {
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
fn open_db(args: &DbArgs, p: &Parsed) -> Result<(rusqlite::Connection, Report), String> {
    let data_dir = &args.data.data;
    let report = args.limits.probe(p, Path::new("/"), data_dir)?;
    let conn = crate::db::open_and_migrate(&crate::db::db_path(data_dir), &report.limits)
        .map_err(|e| e.to_string())?;
    if args.data.external_checkpoints {
        crate::db::leave_checkpoints_to_replicator(&conn).map_err(|e| e.to_string())?;
    }
    Ok((conn, report))
}

fn key_create(name: &str, scopes: &Scopes, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    validate_name(name)?;
    let (conn, _) = open_db(db, p)?;
    let (key, token) =
        keys::create(&conn, name, scopes).map_err(|e| format!("creating key: {e}"))?;
    println!(
        "created API key {} ({}, scope {}); the token is shown only now:",
        key.id, key.name, key.scope
    );
    println!("{token}");
    Ok(0)
}

fn user_set_password(
    name: &str,
    scope: Option<Scopes>,
    db: &DbArgs,
    p: &Parsed,
) -> Result<i32, String> {
    use crate::auth::{password, users};
    users::validate_username(name)?;
    let chosen = read_new_password()?;
    password::check_new(&chosen)?;
    let (mut conn, _) = open_db(db, p)?;
    let existing = users::find(&conn, name).map_err(|e| e.to_string())?;
    let scopes = match (scope, &existing) {
        (Some(scopes), _) => scopes,
        (None, Some((user, _))) => user.scopes(),
        (None, None) => Scopes::owner(),
    };
    let hash = password::hash(&chosen)?;
    let now = crate::platform::clock::unix_now();
    let user =
        users::set_password(&mut conn, name, &hash, &scopes, now).map_err(|e| e.to_string())?;
    let done = if existing.is_some() {
        "password changed"
    } else {
        "account created"
    };
    println!(
        "{done}: {} (scope {}); its sessions have ended, sign in again",
        user.username, user.scope
    );
    Ok(0)
}

fn user_list(json: bool, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    let users = crate::auth::users::list(&open_db(db, p)?.0).map_err(|e| e.to_string())?;
    if json {
        let list: Vec<_> = users
            .iter()
            .map(|u| {
                serde_json::json!({"username": u.username, "scope": u.scope,
                    "created_at": u.created_at, "password_changed_at": u.password_changed_at})
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(0);
    }
    if users.is_empty() {
        println!("no dashboard accounts (make one with 'fazt user set-password NAME')");
        return Ok(0);
    }
    let mut rows =
        vec![["USERNAME", "SCOPE", "CREATED (UTC)", "PASSWORD SET (UTC)"].map(String::from)];
    for u in &users {
        let minute = crate::client::sites::utc_minute;
        rows.push([
            u.username.clone(),
            u.scope.clone(),
            minute(u.created_at),
            minute(u.password_changed_at),
        ]);
    }
    print!("{}", crate::client::sites::align(&rows));
    Ok(0)
}

fn user_delete(name: &str, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    let (conn, _) = open_db(db, p)?;
    if !crate::auth::users::delete(&conn, name).map_err(|e| e.to_string())? {
        return Err(format!(
            "no dashboard account named '{name}' ('fazt user list' shows them)"
        ));
    }
    println!("deleted account {name}; its sessions have ended");
    Ok(0)
}

/// A new password: asked twice on a terminal, else one line of stdin.
fn read_new_password() -> Result<String, String> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from stdin: {e}"))?;
        return Ok(line.trim_end_matches(['\n', '\r']).to_string());
    }
    let ask = |prompt: &str| -> Result<String, String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        crate::platform::sys::read_hidden_line().map_err(|e| format!("reading the password: {e}"))
    };
    let first = ask("new password: ")?;
    if ask("again: ")? != first {
        return Err("the two passwords differ; nothing was changed".into());
    }
    Ok(first)
}

fn key_list(json: bool, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    let keys = keys::list(&open_db(db, p)?.0).map_err(|e| format!("listing keys: {e}"))?;
    if json {
        let list: Vec<_> = keys.iter().map(|k| k.to_json()).collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(0);
    }
    if keys.is_empty() {
        println!("no API keys (create one with 'fazt key create NAME')");
        return Ok(0);
    }
    let mut rows =
        vec![["ID", "SCOPE", "NAME", "CREATED (UTC)", "LAST USED (UTC)"].map(String::from)];
    for k in keys {
        rows.push([
            k.id,
            k.scope.to_string(),
            k.name,
            client::sites::utc_minute(k.created_at),
            k.last_used_at
                .map(client::sites::utc_minute)
                .unwrap_or_else(|| "never".into()),
        ]);
    }
    print!("{}", client::sites::align(&rows));
    Ok(0)
}

fn key_revoke(id: &str, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    if keys::revoke(&open_db(db, p)?.0, id).map_err(|e| format!("revoking key: {e}"))? {
        println!("revoked API key {id}");
        Ok(0)
    } else {
        Err(format!("no API key with id '{id}' (see 'fazt key list')"))
    }
}

fn site_import(
    name: &str,
    dir: &Path,
    disk: &DiskArgs,
    db: &DbArgs,
    p: &Parsed,
) -> Result<i32, String> {
    // Lower-cased as `fazt deploy --site` and the deploy API do: host names ignore case.
    let name = &name.to_ascii_lowercase();
    store::validate_site_name(name)?;
    let mut files = store::stage_directory(dir)?;
    // A failed build's empty output must not replace a live site with nothing.
    if files.is_empty() {
        return Err(format!(
            "{} has no files to import (dot-paths such as .git/ are skipped); the site is \
             unchanged",
            dir.display()
        ));
    }
    let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    let warning = crate::deploy::service::nested_site_warning(&paths);
    let (mut conn, report) = open_db(db, p)?;
    let temp_dir = report.limits.temp_dir;
    // The variants are written there (the server creates it at start; an import may come first).
    std::fs::create_dir_all(&temp_dir)
        .map_err(|e| format!("cannot create directory {}: {e}", temp_dir.display()))?;
    let guard = crate::platform::disk::DiskGuard::new(
        vec![db.data.data.clone(), temp_dir.clone()],
        disk.disk_threshold,
    );
    guard.check().map_err(|e| e.to_string())?;
    // Compressed before the write transaction, as a deploy does (DESIGN D8).
    let compressed = crate::hosting::compress::precompress(&mut files, &temp_dir, |sha256| {
        store::variants_known(&conn, sha256)
    })
    .map_err(|e| format!("importing {}: {e}; the site is unchanged", dir.display()))?;
    if compressed.compressed + compressed.reused > 0 {
        println!("{compressed}");
    }
    guard.check().map_err(|e| e.to_string())?;
    let result = store::apply_deployment(&mut conn, name, &files, "import")
        .map_err(|e| format!("importing {}: {e}; the site is unchanged", dir.display()))?;
    println!(
        "site {} is now deployment {}: {} file{}, {} ({} new)",
        result.site,
        result.deployment,
        result.file_count,
        if result.file_count == 1 { "" } else { "s" },
        crate::platform::units::format_bytes(result.total_bytes),
        crate::platform::units::format_bytes(result.new_bytes)
    );
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    Ok(0)
}

fn db_prune(
    age: std::time::Duration,
    rollups: bool,
    reserve: &ReserveArgs,
    db: &DbArgs,
    p: &Parsed,
) -> Result<i32, String> {
    let cutoff = crate::platform::clock::unix_now() - age.as_secs() as i64;
    // The server's reserve (same data dir): on a full disk, deleting it gives the prune
    // the room it needs (even opening may need room for the WAL index); it is re-created
    // afterwards when there is room.
    let reserve = crate::platform::reserve::Reserve::new(&db.data.data, reserve.disk_reserve.0);
    let (mut conn, _) = match open_db(db, p) {
        Err(e) if reserve.release() => {
            eprintln!("fazt: {e}; retrying after releasing the disk reserve");
            open_db(db, p)?
        }
        opened => opened?,
    };
    let totals = crate::analytics::retention::prune_now(&mut conn, cutoff, rollups, Some(&reserve))
        .map_err(|e| format!("pruning: {e}"))?;
    println!(
        "deleted {} events{} older than {}; reclaimed {}",
        totals.events_deleted,
        if rollups {
            format!(" and {} roll-up rows", totals.rollup_rows_deleted)
        } else {
            String::new()
        },
        crate::http::response::http_date(cutoff.max(0) as u64),
        crate::platform::units::format_bytes(totals.bytes_reclaimed)
    );
    Ok(0)
}

/// `fazt export site`: checks everything before writing a byte, so an unknown site or
/// deployment leaves nothing behind; a file output appears whole or not at all.
fn export_site(
    name: &str,
    deployment: Option<i64>,
    output: Option<&Path>,
    db: &DbArgs,
    p: &Parsed,
) -> Result<i32, String> {
    use crate::maintenance::export;
    use std::io::IsTerminal;
    let site = site_arg(name)?;
    if output.is_none() && std::io::stdout().is_terminal() {
        return Err(format!(
            "the zip is binary and stdout is a terminal; redirect it (fazt export site {site} \
             > {site}.zip) or pass --output FILE"
        ));
    }
    let mut conn = open_db_read(db, p)?;
    let tx = export::snapshot(&mut conn).map_err(|e| e.to_string())?;
    let found = export::resolve(&tx, &site, deployment).map_err(|e| e.to_string())?;
    let summary = format!(
        "exported site {} deployment {}: {} file{}, {}",
        found.site,
        found.deployment,
        found.files.len(),
        if found.files.len() == 1 { "" } else { "s" },
        crate::platform::units::format_bytes(found.total_bytes())
    );
    match output {
        None => {
            let stdout = std::io::BufWriter::with_capacity(256 * 1024, std::io::stdout().lock());
            export::write_zip(&tx, &found, stdout).map_err(|e| e.to_string())?;
            // stdout is the zip: the summary goes to stderr.
            eprintln!("{summary}");
        }
        Some(path) => {
            write_whole(path, |file| {
                export::write_zip(&tx, &found, file).map_err(|e| e.to_string())
            })?;
            println!("{summary} to {}", path.display());
        }
    }
    Ok(0)
}

/// Writes `path` through a temp file beside it, fsynced and renamed into place: readers
/// never see half a file, and a failure leaves no file at all.
fn write_whole(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> Result<(), String>,
) -> Result<(), String> {
    let name = path
        .file_name()
        .ok_or_else(|| format!("{}: not a file name", path.display()))?;
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".tmp-{}", std::process::id()));
    let temp = path.with_file_name(temp_name);
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temp)
        .map_err(|e| format!("cannot create {}: {e}", temp.display()))?;
    let written = (|| {
        let mut buffered = std::io::BufWriter::with_capacity(256 * 1024, &file);
        write(&mut buffered)?;
        drop(buffered);
        file.sync_all()
            .map_err(|e| format!("writing {}: {e}", temp.display()))?;
        std::fs::rename(&temp, path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                temp.display(),
                path.display()
            )
        })
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// A read-only connection for a CLI command that only reads: it never creates, migrates or
/// writes the database, so it runs beside a server (WAL) without taking the writer.
fn open_db_read(args: &DbArgs, p: &Parsed) -> Result<rusqlite::Connection, String> {
    let data_dir = &args.data.data;
    let path = crate::db::db_path(data_dir);
    if !path.is_file() {
        return Err(format!(
            "no database at {} (is --data {} right?)",
            path.display(),
            data_dir.display()
        ));
    }
    let report = args.limits.probe(p, Path::new("/"), data_dir)?;
    crate::db::open_read(&path, &report.limits).map_err(|e| e.to_string())
}

/// A read-only connection to an existing database (`db check`, `db stats` never create
/// one), and its path.
fn open_existing_read(db: &DbArgs, p: &Parsed) -> Result<(rusqlite::Connection, PathBuf), String> {
    let path = existing_db_path(db)?;
    let report = db.limits.probe(p, Path::new("/"), &db.data.data)?;
    let conn = crate::db::open_read(&path, &report.limits).map_err(|e| e.to_string())?;
    Ok((conn, path))
}

fn existing_db_path(db: &DbArgs) -> Result<PathBuf, String> {
    let path = crate::db::db_path(&db.data.data);
    if !path.is_file() {
        return Err(format!(
            "no database at {} (is --data / FAZT_DATA the server's data directory?)",
            path.display()
        ));
    }
    Ok(path)
}

/// A command's answer on stdout: its JSON with `--json`, else its text.
fn print_answer(
    json: bool,
    as_json: impl FnOnce() -> serde_json::Value,
    as_text: impl FnOnce() -> String,
) {
    if json {
        println!("{}", as_json());
    } else {
        print!("{}", as_text());
    }
}

fn db_check(json: bool, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    let (conn, path) = open_existing_read(db, p)?;
    let report = match crate::maintenance::check::run(&conn) {
        Ok(report) => report,
        // A query that fails on the way is itself a finding about this file.
        Err(e) => {
            eprintln!("fazt: checking {} failed: {e}", path.display());
            return Ok(1);
        }
    };
    print_answer(json, || report.to_json(), || report.to_text());
    Ok(if report.passed() { 0 } else { 1 })
}

fn db_vacuum(
    full: bool,
    json: bool,
    reserve: &ReserveArgs,
    db: &DbArgs,
    p: &Parsed,
) -> Result<i32, String> {
    use crate::maintenance::vacuum;
    let path = existing_db_path(db)?;
    // Held until the rewrite ends, so no server starts on a file being rewritten.
    let _lock = if full {
        match crate::platform::lock::DataDirLock::acquire(&db.data.data) {
            Ok(lock) => Some(lock),
            Err(e) => {
                eprintln!("fazt: {}", full_vacuum_refusal(&e, &db.data.data));
                return Ok(1);
            }
        }
    } else {
        None
    };
    let reserve = crate::platform::reserve::Reserve::new(&db.data.data, reserve.disk_reserve.0);
    let (mut conn, _) = match open_db(db, p) {
        Err(e) if reserve.release() => {
            eprintln!("fazt: {e}; retrying after releasing the disk reserve");
            open_db(db, p)?
        }
        opened => opened?,
    };
    let outcome = if full {
        vacuum::full(&conn, &path)
    } else {
        vacuum::incremental(&mut conn, &path, Some(&reserve))
    };
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("fazt: vacuuming {}: {e}", path.display());
            return Ok(1);
        }
    };
    print_answer(json, || outcome.to_json(), || outcome.to_text());
    Ok(0)
}

/// Why `db vacuum --full` will not run, and what to do instead.
fn full_vacuum_refusal(lock_error: &str, data_dir: &Path) -> String {
    if !lock_error.contains("already running") {
        return format!("a full vacuum needs the data directory's lock: {lock_error}");
    }
    format!(
        "a fazt server is running on {} (it holds the data directory's lock); a full vacuum \
         rewrites the file and needs the server stopped. Stop it and run this again, or \
         return free pages now without stopping: 'fazt db vacuum' (incremental) or \
         POST /api/system/vacuum",
        data_dir.display()
    )
}

fn db_stats(json: bool, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    let (conn, path) = open_existing_read(db, p)?;
    let stats = crate::maintenance::stats::collect(&conn, &path)
        .map_err(|e| format!("reading the statistics of {}: {e}", path.display()))?;
    print_answer(json, || stats.to_json(), || stats.to_text());
    Ok(0)
}

fn db_backup(file: &Path, force: bool, json: bool, data: &DataArgs) -> Result<i32, String> {
    use crate::maintenance::backup::{backup, run_in_background, BackupError};
    let dest = absolute(file)?;
    // Beside a running server, this process competes for its CPU.
    run_in_background();
    let report = match backup(&crate::db::db_path(&data.data), &dest, force) {
        Ok(report) => report,
        // A usage problem (the path, an existing file) is 2, as other usage errors.
        Err(e @ (BackupError::Invalid(_) | BackupError::Exists(_))) => return Err(e.to_string()),
        Err(e) => {
            eprintln!("fazt: {e}; {} was not written", dest.display());
            return Ok(1);
        }
    };
    if json {
        println!("{}", report.to_json());
        return Ok(0);
    }
    println!(
        "backed up to {}: {} ({} pages, schema {}) in {} ms; integrity_check ok",
        report.path.display(),
        crate::platform::units::format_bytes(report.bytes),
        report.pages,
        report.schema_version,
        report.duration.as_millis()
    );
    Ok(0)
}

/// `path` made absolute against the current directory (the copy's temp name goes beside it).
fn absolute(path: &Path) -> Result<PathBuf, String> {
    std::path::absolute(path).map_err(|e| format!("'{}': {e}", path.display()))
}

fn db_restore(file: &Path, db: &DbArgs, p: &Parsed) -> Result<i32, String> {
    let data_dir = &db.data.data;
    let report = db.limits.probe(p, Path::new("/"), data_dir)?;
    let done = match crate::maintenance::restore::restore(file, data_dir, &report.limits) {
        Ok(done) => done,
        Err(message) => {
            eprintln!("fazt: {message}");
            return Ok(1);
        }
    };
    let migrated = if done.schema_from == done.schema_to {
        format!("schema {}", done.schema_to)
    } else {
        format!("schema {} migrated to {}", done.schema_from, done.schema_to)
    };
    println!(
        "restored {} into {} ({}, {})",
        file.display(),
        crate::db::db_path(data_dir).display(),
        crate::platform::units::format_bytes(done.bytes),
        migrated
    );
    match done.kept {
        Some(kept) => println!("the previous database is kept as {}", kept.display()),
        None => println!("there was no previous database"),
    }
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

/// Where `fazt login` keeps the server and token; `XDG_CONFIG_HOME` and `HOME` are the
/// desktop conventions, not fazt settings.
fn config_path() -> Result<PathBuf, ClientError> {
    client::config::config_path(&|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
}

fn client_settings(args: &ClientArgs, p: &Parsed) -> Result<client::config::Settings, ClientError> {
    let (given, hints) = args.given(p.command);
    let mut settings =
        client::config::resolve(given, &|| client::config::load(&config_path()?), &hints)?;
    settings.server.ca_file = args.ca_file.clone();
    Ok(settings)
}

fn client_deploy(args: &DeployCmd, p: &Parsed) -> Result<i32, String> {
    let dir = args.dir.as_path();
    client_exit((|| {
        let site = client::deploy::check_arguments(dir, &args.site)?;
        let settings = client_settings(&args.client, p)?;
        client::deploy::run(dir, &site, &settings)
    })())
}

fn client_login(args: &LoginCmd) -> Result<i32, String> {
    client_exit((|| {
        let path = config_path()?;
        let saved = client::config::login(
            args.server.clone(),
            args.token.clone(),
            &path,
            &client::api::check_login,
        )?;
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

fn client_sites(args: &SitesCmd, p: &Parsed) -> Result<i32, String> {
    client_exit(client_settings(&args.client, p).and_then(|s| client::sites::list(&s, args.json)))
}

fn client_certs_renew(name: &str, client: &ClientArgs, p: &Parsed) -> Result<i32, String> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    if name.is_empty() || !name.chars().all(valid) {
        return Err(format!(
            "'{name}' is not a DNS name (e.g. blog.example.com)"
        ));
    }
    client_exit(client_settings(client, p).and_then(|s| client::certs::renew(&s, &name)))
}

fn client_sites_rm(name: &str, yes: bool, client: &ClientArgs, p: &Parsed) -> Result<i32, String> {
    let site = name.to_ascii_lowercase();
    store::validate_site_name(&site)?;
    let settings = match client_settings(client, p) {
        Ok(settings) => settings,
        Err(e) => return client_exit(Err(e)),
    };
    if !yes && !confirm_delete(&site, &settings.server.to_string())? {
        eprintln!("fazt: nothing deleted");
        return Ok(1);
    }
    client_exit(client::sites::remove(&settings, &site))
}

/// Asks on the terminal before a site and its history go; without a terminal to ask on,
/// `--yes` must say it (a script must not delete by accident).
fn confirm_delete(site: &str, server: &str) -> Result<bool, String> {
    use std::io::{BufRead, IsTerminal, Write};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(format!(
            "'fazt sites rm {site}' deletes the site and all its deployments; stdin is not a \
             terminal to confirm on, so pass --yes"
        ));
    }
    eprint!(
        "delete site {site} and all its deployments on {server}? This cannot be undone. [y/N] "
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    stdin
        .lock()
        .read_line(&mut answer)
        .map_err(|e| format!("reading the answer: {e}"))?;
    Ok(matches!(
        answer.trim().to_ascii_lowercase().as_str(),
        "y" | "yes"
    ))
}

fn client_deployments(args: &DeploymentsCmd, p: &Parsed) -> Result<i32, String> {
    let site = args.name.to_ascii_lowercase();
    store::validate_site_name(&site)?;
    client_exit(
        client_settings(&args.client, p)
            .and_then(|s| client::sites::deployments(&s, &site, args.json)),
    )
}

fn client_rollback(args: &RollbackCmd, p: &Parsed) -> Result<i32, String> {
    let site = args.name.to_ascii_lowercase();
    store::validate_site_name(&site)?;
    client_exit(
        client_settings(&args.client, p).and_then(|s| client::sites::rollback(&s, &site, args.to)),
    )
}

/// A site name as the server knows it (host names ignore case), or the usage error.
fn site_arg(name: &str) -> Result<String, String> {
    let site = name.to_ascii_lowercase();
    store::validate_site_name(&site)?;
    Ok(site)
}

fn env_key_arg(key: &str) -> Result<(), String> {
    crate::serverless::store::check_env_key(key).map_err(|e| e.to_string())
}

fn client_env_set(
    site: &str,
    key: &str,
    value: Option<String>,
    client: &ClientArgs,
    p: &Parsed,
) -> Result<i32, String> {
    let site = site_arg(site)?;
    env_key_arg(key)?;
    let settings = match client_settings(client, p) {
        Ok(settings) => settings,
        Err(e) => return client_exit(Err(e)),
    };
    let value = match value {
        Some(value) => value,
        None => read_env_value(key)?,
    };
    client_exit(client::apps::env_set(&settings, &site, key, &value))
}

/// The value of KEY: asked (hidden) on a terminal, else one line of stdin.
fn read_env_value(key: &str) -> Result<String, String> {
    use std::io::{BufRead, IsTerminal, Write};
    if std::io::stdin().is_terminal() {
        eprint!("value of {key} (not shown): ");
        let _ = std::io::stderr().flush();
        return crate::platform::sys::read_hidden_line()
            .map_err(|e| format!("reading the value of {key}: {e}"));
    }
    let mut line = String::new();
    let read = std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("reading the value of {key} from stdin: {e}"))?;
    if read == 0 {
        return Err(format!(
            "no value for {key}: give it as the third argument, or one line on stdin"
        ));
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

fn client_logs(args: &LogsCmd, p: &Parsed) -> Result<i32, String> {
    let site = site_arg(&args.site)?;
    let options = client::apps::LogsOptions {
        limit: usize::from(args.limit),
        follow: args.follow,
        json: args.json,
    };
    client_exit(
        client_settings(&args.client, p).and_then(|s| client::apps::logs(&s, &site, &options)),
    )
}
