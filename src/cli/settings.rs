//! The settings table. Every setting is declared once, below, as a clap argument: its flag,
//! its `FAZT_*` variable, its default (or how the probe derives it), its unit (the value
//! name), its parser and its help line. That one declaration drives parsing (a flag beats
//! its variable, a variable beats the default, an empty variable counts as unset), each
//! command's `--help`, the settings section of `fazt --help`, the sources `fazt probe`
//! prints, and what `/api/system/health` reports under "limits".
//!
//! Below this module nothing knows about flags or variables: the probe takes
//! [`probe::Overrides`], the domain modules take plain structs and value parsers.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command};

use crate::analytics::ingest::TrackDomains;
use crate::db::events::BatchPolicy;
use crate::deploy::limits::DeployLimits;
use crate::hosting::urls::UrlBase;
use crate::http::conn::ConnLimits;
use crate::http::proxies::TrustedProxies;
use crate::platform::probe::{self, Given, Overrides, Report};
use crate::platform::units::{parse_bytes, parse_duration};
use crate::server::config::{self, Config};
use crate::serverless::store::{Quotas, DEFAULT_QUOTAS};

// ---------------------------------------------------------------------------------------
// Value types and parsers: one per unit, each saying what is wrong without the value (the
// one error format, [`invalid`], names the value and the setting).
// ---------------------------------------------------------------------------------------

/// A size in bytes (`1048576`, `64K`, `8MiB`, `1G`), shown in its largest whole binary
/// unit so a default reads well in `--help` and parses back to itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bytes(pub u64);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = [
            (1u64 << 40, "TiB"),
            (1 << 30, "GiB"),
            (1 << 20, "MiB"),
            (1 << 10, "KiB"),
        ];
        match units
            .iter()
            .find(|(size, _)| self.0 > 0 && self.0.is_multiple_of(*size))
        {
            Some((size, unit)) => write!(f, "{}{unit}", self.0 / size),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A duration (`250ms`, `10s`, `5m`, `2h`, `30d`), shown in its largest whole unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dur(pub Duration);

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        let units = [
            (86_400_000u128, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ];
        match units
            .iter()
            .find(|(size, _)| ms > 0 && ms.is_multiple_of(*size))
        {
            Some((size, unit)) => write!(f, "{}{unit}", ms / size),
            None => write!(f, "{ms}ms"),
        }
    }
}

fn size(text: &str) -> Result<Bytes, String> {
    parse_bytes(text).map(Bytes)
}

fn positive_size(text: &str) -> Result<Bytes, String> {
    match parse_bytes(text)? {
        0 => Err("must be greater than zero".into()),
        n => Ok(Bytes(n)),
    }
}

fn positive_duration(text: &str) -> Result<Dur, String> {
    match parse_duration(text)? {
        d if d.is_zero() => Err("must be greater than zero".into()),
        d => Ok(Dur(d)),
    }
}

/// A whole number from `MIN` to `MAX`.
fn count<const MIN: usize, const MAX: usize>(text: &str) -> Result<usize, String> {
    let n: usize = text
        .trim()
        .parse()
        .map_err(|_| "is not a whole number".to_string())?;
    match (MIN..=MAX).contains(&n) {
        true => Ok(n),
        false if MAX == usize::MAX => Err(format!("must be at least {MIN}")),
        false => Err(format!("must be between {MIN} and {MAX}")),
    }
}

fn switch(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err("is not on or off (use 1/0, true/false, on/off)".into()),
    }
}

/// `HOST:PORT`, or `:PORT` for every IPv4 interface (`0.0.0.0:PORT`), as the Go fazt took it.
fn listen_addr(text: &str) -> Result<SocketAddr, String> {
    let text = match text.strip_prefix(':') {
        Some(port) => format!("0.0.0.0:{port}"),
        None => text.to_string(),
    };
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            "is not a listen address (expected HOST:PORT, e.g. 127.0.0.1:4698, or :PORT for \
             every interface)"
                .into()
        })
}

fn domain(text: &str) -> Result<String, String> {
    let domain = text.to_ascii_lowercase();
    match crate::http::parse::parse_host(domain.as_bytes()) {
        Some(parsed) if parsed == domain && !domain.starts_with('[') => Ok(domain),
        _ => Err("is not a domain name (e.g. example.com)".into()),
    }
}

/// `FAZT_PUBLIC_URL`: the scheme and port visitors use, and its host (checked against the
/// domain by [`ServerArgs::check`]).
#[derive(Clone, Debug)]
pub(crate) struct PublicUrl {
    base: UrlBase,
    host: String,
}

fn public_url(text: &str) -> Result<PublicUrl, String> {
    let (base, host) = UrlBase::parse(text)?;
    Ok(PublicUrl { base, host })
}

fn non_empty_path(text: &str) -> Result<PathBuf, String> {
    match text.trim().is_empty() {
        true => Err("is empty".into()),
        false => Ok(PathBuf::from(text)),
    }
}

fn derived(what: &str, limit: &str) -> String {
    format!(
        "{what} [default: derived from {}]",
        probe::derivation(limit)
    )
}

fn fixed(what: &str, limit: &str) -> String {
    format!("{what} [default: {}]", probe::derivation(limit))
}

// ---------------------------------------------------------------------------------------
// The table
// ---------------------------------------------------------------------------------------

/// Where the database lives; every command that opens it takes this.
#[derive(Args, Clone, Debug)]
pub(crate) struct DataArgs {
    /// Data directory (the database, and uploads in progress unless --temp-dir is given)
    #[arg(long, env = "FAZT_DATA", value_name = "DIR", default_value = config::DEFAULT_DATA,
          value_parser = non_empty_path)]
    pub data: PathBuf,
    /// Leave WAL checkpoints to a replicator such as Litestream: fazt then never
    /// checkpoints, truncates or deletes the WAL itself
    #[arg(long, env = "FAZT_EXTERNAL_CHECKPOINTS", value_name = "ON|OFF", value_parser = switch,
          action = clap::ArgAction::Set, default_value = "off")]
    pub external_checkpoints: bool,
}

/// Overrides of the limits the probe derives from the memory and CPU this process was
/// given (`fazt probe` prints the values in effect and why).
#[derive(Args, Clone, Debug, Default)]
#[command(next_help_heading = "Limits (see `fazt probe` for the values in effect)")]
pub(crate) struct LimitArgs {
    #[arg(long, env = "FAZT_MEMORY_LIMIT", value_name = "BYTES", value_parser = positive_size,
          help = derived("Memory the limits below are sized from", "memory_limit_bytes"))]
    pub memory_limit: Option<Bytes>,
    #[arg(long, env = "FAZT_THREADS", value_name = "N", value_parser = count::<1, { probe::MAX_THREADS }>,
          help = derived("Core threads serving the public listener", "core_threads"))]
    pub threads: Option<usize>,
    #[arg(long, env = "FAZT_CACHE_BYTES", value_name = "BYTES", value_parser = size,
          help = derived("File cache shared by the core threads", "cache_bytes"))]
    pub cache_bytes: Option<Bytes>,
    #[arg(long, env = "FAZT_MAX_CACHED_FILE", value_name = "BYTES", value_parser = size,
          help = derived("Largest file kept in the cache; larger ones stream from SQLite", "max_cached_file_bytes"))]
    pub max_cached_file: Option<Bytes>,
    #[arg(long, env = "FAZT_MAX_CONNECTIONS", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          help = derived("Open public connections", "max_connections"))]
    pub max_connections: Option<usize>,
    #[arg(long, env = "FAZT_CONNS_PER_CLIENT", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          help = derived("Public connections one client address may hold (503 beyond; trusted proxies are exempt)", "conns_per_client"))]
    pub conns_per_client: Option<usize>,
    #[arg(long, env = "FAZT_UPLOAD_RAM", value_name = "BYTES", value_parser = size,
          help = fixed("Upload bytes held in memory before spilling to the temp dir", "upload_ram_bytes"))]
    pub upload_ram: Option<Bytes>,
    #[arg(long, env = "FAZT_TEMP_DIR", value_name = "DIR", value_parser = non_empty_path,
          help = fixed("Where large uploads spill (same filesystem as the database, not a tmpfs)", "temp_dir"))]
    pub temp_dir: Option<PathBuf>,
    #[arg(long, env = "FAZT_EVENT_CHANNEL", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          help = derived("Analytics events waiting for the writer before new ones are dropped", "event_channel_capacity"))]
    pub event_channel: Option<usize>,
    #[arg(long, env = "FAZT_SQLITE_CACHE_BYTES", value_name = "BYTES", value_parser = size,
          help = derived("SQLite page cache per connection", "sqlite_cache_bytes"))]
    pub sqlite_cache_bytes: Option<Bytes>,
    #[arg(long, env = "FAZT_SQLITE_MMAP_BYTES", value_name = "BYTES", value_parser = size,
          help = fixed("SQLite memory-mapped I/O per connection", "sqlite_mmap_bytes"))]
    pub sqlite_mmap_bytes: Option<Bytes>,
}

/// HTTPS (issue #12): the TLS listener and where its certificates come from.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "HTTPS")]
pub(crate) struct TlsArgs {
    /// TLS listener, HOST:PORT or :PORT (e.g. :443); needs --tls-cert/--tls-key or
    /// --tls-self-signed [default: none]
    #[arg(long, env = "FAZT_TLS_LISTEN", value_name = "ADDR", value_parser = listen_addr)]
    pub tls_listen: Option<SocketAddr>,
    /// PEM certificate chain(s), comma-separated, each paired with the --tls-key at the same
    /// place; served for the DNS names they hold (a wildcard too), the first for any other
    /// name. Reloaded on SIGHUP and when the files change
    #[arg(long, env = "FAZT_TLS_CERT", value_name = "FILE", value_parser = non_empty_path,
          value_delimiter = ',')]
    pub tls_cert: Vec<PathBuf>,
    /// PEM private key(s) of the --tls-cert certificates, in the same order
    #[arg(long, env = "FAZT_TLS_KEY", value_name = "FILE", value_parser = non_empty_path,
          value_delimiter = ',')]
    pub tls_key: Vec<PathBuf>,
    /// Serve a self-signed development certificate for localhost, *.localhost, the domain
    /// and *.DOMAIN, made at each start (its certificate is written to
    /// DATA/tls-self-signed.pem for clients to trust)
    #[arg(long, env = "FAZT_TLS_SELF_SIGNED", value_name = "on|off", value_parser = switch,
          default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    pub tls_self_signed: bool,
    /// Longest TLS handshake, from accepting the connection
    #[arg(long, env = "FAZT_TLS_HANDSHAKE_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_TLS_HANDSHAKE_TIMEOUT))]
    pub tls_handshake_timeout: Dur,
    /// TLS handshakes in progress per core thread; past it new TLS connections are closed
    /// at once (counted as fazt_tls_handshakes_total{result="over_cap"})
    #[arg(long, env = "FAZT_TLS_MAX_HANDSHAKES", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          default_value_t = config::DEFAULT_TLS_MAX_HANDSHAKES)]
    pub tls_max_handshakes: usize,
    /// Strict-Transport-Security max-age sent on responses over TLS (never preload); 0
    /// turns the header off
    #[arg(long, env = "FAZT_HSTS", value_name = "DURATION", value_parser = parse_duration_value,
          default_value_t = Dur(config::DEFAULT_HSTS))]
    pub hsts: Dur,
    /// The plain listener answers every request with a redirect to https (301, or 308 for
    /// methods with a body), except /health and /.well-known/acme-challenge/
    #[arg(long, env = "FAZT_REDIRECT_HTTP", value_name = "on|off", value_parser = switch,
          default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    pub redirect_http: bool,
    /// The --admin-listen listener speaks TLS too, with the same certificates (needs
    /// --tls-listen and --admin-listen)
    #[arg(long, env = "FAZT_ADMIN_TLS", value_name = "on|off", value_parser = switch,
          default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    pub admin_tls: bool,
    /// Get certificates automatically over ACME for the domain, admin., root. and every
    /// site (each when it is deployed), renewed before expiry; the account's contact
    /// address (needs --tls-listen) [default: off]
    #[arg(long, env = "FAZT_ACME_EMAIL", value_name = "EMAIL", value_parser = email)]
    pub acme_email: Option<String>,
    /// The ACME directory (CA) certificates come from
    #[arg(long, env = "FAZT_ACME_DIRECTORY", value_name = "URL", value_parser = https_url,
          default_value = crate::acme::client::LETS_ENCRYPT)]
    pub acme_directory: String,
    /// Use Let's Encrypt's staging directory (untrusted certificates, generous rate
    /// limits): for trying a set-up before production
    #[arg(long, env = "FAZT_ACME_STAGING", value_name = "on|off", value_parser = switch,
          default_value = "off", num_args = 0..=1, default_missing_value = "on")]
    pub acme_staging: bool,
    /// How names are proven to the CA: tls-alpn-01 on the TLS listener (port 443 alone
    /// works), http-01 on the plain listener (port 80), or auto (tls-alpn-01, then the
    /// other after a failure)
    #[arg(long, env = "FAZT_ACME_CHALLENGE", value_name = "auto|http-01|tls-alpn-01",
          value_parser = crate::acme::ChallengePolicy::parse, default_value = "auto")]
    pub acme_challenge: crate::acme::ChallengePolicy,
    /// CA certificate(s), PEM, trusted for the ACME directory's own https besides the
    /// public roots (a private ACME server)
    #[arg(long, env = "FAZT_ACME_CA_FILE", value_name = "FILE", value_parser = non_empty_path)]
    pub acme_ca_file: Option<PathBuf>,
}

/// An e-mail address, as far as fazt can tell: something@host, no spaces.
fn email(text: &str) -> Result<String, String> {
    let (local, host) = text
        .split_once('@')
        .ok_or("is not an e-mail address (no @)")?;
    let printable = |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_graphic());
    if !printable(local) || !printable(host) || host.contains('@') || !host.contains('.') {
        return Err("is not an e-mail address (use name@example.com)".into());
    }
    Ok(text.to_string())
}

/// An https URL: the ACME client speaks only https.
fn https_url(text: &str) -> Result<String, String> {
    match text.strip_prefix("https://") {
        Some(rest) if !rest.is_empty() && !rest.contains(char::is_whitespace) => {
            Ok(text.to_string())
        }
        _ => Err("is not an https:// URL".into()),
    }
}

fn parse_duration_value(text: &str) -> Result<Dur, String> {
    parse_duration(text).map(Dur)
}

impl TlsArgs {
    /// Settings that contradict each other, in the one error format.
    fn check(&self, p: &Parsed) -> Result<(), String> {
        let has_files = !self.tls_cert.is_empty() || !self.tls_key.is_empty();
        if self.tls_listen.is_none() {
            if has_files {
                return Err(p.invalid("tls_cert", "needs --tls-listen (FAZT_TLS_LISTEN)"));
            }
            if self.tls_self_signed {
                return Err(p.invalid("tls_self_signed", "needs --tls-listen (FAZT_TLS_LISTEN)"));
            }
            if self.redirect_http {
                return Err(p.invalid("redirect_http", "needs --tls-listen (FAZT_TLS_LISTEN)"));
            }
            if self.admin_tls {
                return Err(p.invalid("admin_tls", "needs --tls-listen (FAZT_TLS_LISTEN)"));
            }
            if self.acme_email.is_some() {
                return Err(p.invalid(
                    "acme_email",
                    "needs --tls-listen (FAZT_TLS_LISTEN), where the certificates are served",
                ));
            }
        }
        self.check_acme(p)?;
        if self.tls_listen.is_none() {
            return Ok(());
        }
        if self.tls_cert.len() != self.tls_key.len() {
            return Err(p.invalid(
                "tls_key",
                &format!(
                    "{} key file(s) for {} certificate file(s) in --tls-cert; give one key per certificate, in the same order",
                    self.tls_key.len(),
                    self.tls_cert.len()
                ),
            ));
        }
        if has_files && self.tls_self_signed {
            return Err(p.invalid(
                "tls_self_signed",
                "--tls-cert/--tls-key are given too; use one certificate source",
            ));
        }
        if !has_files && !self.tls_self_signed && self.acme_email.is_none() {
            return Err(p.invalid(
                "tls_listen",
                "no certificate: give --acme-email (FAZT_ACME_EMAIL) for automatic certificates, --tls-cert and --tls-key (FAZT_TLS_CERT, FAZT_TLS_KEY), or --tls-self-signed (FAZT_TLS_SELF_SIGNED) to try https locally",
            ));
        }
        Ok(())
    }

    /// The other `--acme-*` settings mean nothing without `--acme-email`, and staging is
    /// a directory of its own.
    fn check_acme(&self, p: &Parsed) -> Result<(), String> {
        let directory_given = p.source("acme_directory") != "default";
        if self.acme_email.is_none() {
            let given = [
                ("acme_directory", directory_given),
                ("acme_staging", self.acme_staging),
                ("acme_challenge", p.source("acme_challenge") != "default"),
                ("acme_ca_file", self.acme_ca_file.is_some()),
            ];
            if let Some((id, _)) = given.iter().find(|(_, given)| *given) {
                return Err(p.invalid(
                    id,
                    "needs --acme-email (FAZT_ACME_EMAIL), which turns automatic certificates on",
                ));
            }
        }
        if self.acme_staging && directory_given {
            return Err(p.invalid(
                "acme_staging",
                "--acme-directory is given too; use one of them",
            ));
        }
        Ok(())
    }

    fn acme(&self) -> Option<config::AcmeSettings> {
        let directory = match self.acme_staging {
            true => crate::acme::client::LETS_ENCRYPT_STAGING,
            false => &self.acme_directory,
        };
        Some(config::AcmeSettings {
            email: self.acme_email.clone()?,
            directory: directory.to_string(),
            challenge: self.acme_challenge,
            ca_file: self.acme_ca_file.clone(),
        })
    }

    fn config(&self) -> Option<config::TlsConfig> {
        let listen = self.tls_listen?;
        let files = self
            .tls_cert
            .iter()
            .zip(&self.tls_key)
            .map(|(cert, key)| crate::http::tls::CertFiles {
                cert: cert.clone(),
                key: key.clone(),
            })
            .collect();
        Some(config::TlsConfig {
            listen,
            files,
            self_signed: self.tls_self_signed,
            max_handshakes: self.tls_max_handshakes,
            hsts: (!self.hsts.0.is_zero()).then_some(self.hsts.0),
            redirect_http: self.redirect_http,
            admin: self.admin_tls,
            acme: self.acme(),
        })
    }
}

/// The disk breaker, for every command that writes bulk data.
#[derive(Args, Clone, Debug)]
pub(crate) struct DiskArgs {
    /// Disk use at which deploys and other bulk writes are refused with 507
    #[arg(long, env = "FAZT_DISK_THRESHOLD", value_name = "PERCENT",
          default_value_t = crate::platform::disk::DEFAULT_THRESHOLD,
          value_parser = crate::platform::disk::parse_threshold)]
    pub disk_threshold: u8,
}

/// The disk reserve (`data/fazt.reserve`), for the server and the commands that free space.
#[derive(Args, Clone, Debug)]
pub(crate) struct ReserveArgs {
    /// Space held in data/fazt.reserve and released when the disk is full, so acknowledged
    /// events, site deletion, db prune and vacuum still work (0: no reserve)
    #[arg(long, env = "FAZT_DISK_RESERVE", value_name = "BYTES", value_parser = size,
          default_value_t = Bytes(crate::platform::reserve::DEFAULT_SIZE))]
    pub disk_reserve: Bytes,
}

/// Deploy limits of the server.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Deploys")]
pub(crate) struct DeployArgs {
    /// Largest deploy upload accepted (413 beyond)
    #[arg(long, env = "FAZT_MAX_UPLOAD", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(crate::deploy::limits::DEFAULT_MAX_UPLOAD))]
    pub max_upload: Bytes,
    /// Deploys one API key may start per minute (429 beyond)
    #[arg(long, env = "FAZT_DEPLOY_RATE", value_name = "N", value_parser = count::<1, { u32::MAX as usize }>,
          default_value_t = crate::deploy::limits::DEFAULT_RATE_PER_MINUTE as usize)]
    pub deploy_rate: usize,
    /// Files in one deploy archive
    #[arg(long, env = "FAZT_DEPLOY_MAX_FILES", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          default_value_t = crate::deploy::archive::DEFAULT_MAX_FILES)]
    pub deploy_max_files: usize,
    /// Uncompressed bytes of one deploy archive
    #[arg(long, env = "FAZT_DEPLOY_MAX_BYTES", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(crate::deploy::archive::DEFAULT_MAX_TOTAL_BYTES))]
    pub deploy_max_bytes: Bytes,
    /// Deployments kept per site for rollback
    #[arg(long, env = "FAZT_KEEP_DEPLOYMENTS", value_name = "N", value_parser = count::<1, 10_000>,
          default_value_t = config::DEFAULT_KEEP_DEPLOYMENTS)]
    pub keep_deployments: usize,
}

/// Analytics settings of the server.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Analytics")]
pub(crate) struct AnalyticsArgs {
    /// Proxies whose X-Forwarded-For is believed: addresses or CIDR blocks, comma-separated
    #[arg(long, env = "FAZT_TRUSTED_PROXIES", value_name = "LIST", value_parser = TrustedProxies::parse)]
    pub trusted_proxies: Option<TrustedProxies>,
    /// Events per analytics commit
    #[arg(long, env = "FAZT_EVENT_BATCH", value_name = "N", value_parser = count::<1, 100_000>,
          default_value_t = BatchPolicy::default().max_events)]
    pub event_batch: usize,
    /// Longest wait from an event's arrival to its commit
    #[arg(long, env = "FAZT_EVENT_FLUSH", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(BatchPolicy::default().max_delay))]
    pub event_flush: Dur,
    /// Delete raw events older than this, daily (roll-ups are kept) [default: off]
    #[arg(long, env = "FAZT_RETENTION", value_name = "DURATION", value_parser = positive_duration)]
    pub retention: Option<Dur>,
    /// Hosts outside fazt whose pages may send /track and /pixel.gif events (fazt's own
    /// sites always may): comma-separated, *.example.com for every subdomain [default: none]
    #[arg(long, env = "FAZT_TRACK_DOMAINS", value_name = "LIST", value_parser = TrackDomains::parse)]
    pub track_domains: Option<TrackDomains>,
    /// Count a pageview for every HTML page served (off for sites with their own beacon)
    #[arg(long, env = "FAZT_AUTO_PAGEVIEWS", value_name = "ON|OFF", value_parser = switch,
          action = clap::ArgAction::Set,
          default_value = "on")]
    pub auto_pageviews: bool,
    /// Distinct paths, referrer hosts, event types, tags and campaign values stored per
    /// site, day and kind; new ones past it are stored and counted as "(other)"
    #[arg(long, env = "FAZT_MAX_DAILY_VALUES", value_name = "N", value_parser = count::<1, 1_000_000>,
          default_value_t = crate::analytics::caps::DEFAULT_MAX_DAILY_VALUES)]
    pub max_daily_values: usize,
}

/// Per-client rate limits of the server (issue #11): ingestion events and failed API keys,
/// per client address (a trusted proxy's client; an IPv6 /64).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Rate limits")]
pub(crate) struct RateLimitArgs {
    /// Events one client address may send a second to /track, /pixel.gif, /r/ and
    /// /webhook/ together, on average (429 beyond; 0 turns the limit off)
    #[arg(long, env = "FAZT_INGEST_RATE", value_name = "N", value_parser = count::<0, 1_000_000>,
          default_value_t = crate::analytics::rate_limit::DEFAULT_INGEST_RATE as usize)]
    pub ingest_rate: usize,
    /// Events one client address may send at once before the rate applies
    #[arg(long, env = "FAZT_INGEST_BURST", value_name = "N", value_parser = count::<1, 1_000_000>,
          default_value_t = crate::analytics::rate_limit::DEFAULT_INGEST_BURST as usize)]
    pub ingest_burst: usize,
    /// Failed API keys one client address may send a minute; beyond, 429 before any key
    /// it sends is checked, and one more attempt every 60 s / N
    #[arg(long, env = "FAZT_AUTH_FAILURES", value_name = "N", value_parser = count::<1, 1_000_000>,
          default_value_t = crate::keys::DEFAULT_AUTH_FAILURES_PER_MINUTE as usize)]
    pub auth_failures: usize,
}

impl RateLimitArgs {
    fn config(&self) -> config::RateLimits {
        let n = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        config::RateLimits {
            ingest_per_second: n(self.ingest_rate),
            ingest_burst: n(self.ingest_burst),
            auth_failures_per_minute: n(self.auth_failures),
        }
    }
}

/// Dashboard sign-in (issue #13): how long a browser's session lives unused.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Dashboard")]
pub(crate) struct SessionArgs {
    /// A signed-in browser's session ends after this long unused (each use moves it on)
    #[arg(long, env = "FAZT_SESSION_IDLE", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_SESSION_IDLE))]
    pub session_idle: Dur,
    /// The same with "remember me" at sign-in (the cookie then outlives the browser)
    #[arg(long, env = "FAZT_SESSION_REMEMBER", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_SESSION_REMEMBER))]
    pub session_remember: Dur,
    /// Audit log entries (sign-ins, changes) older than this are deleted
    #[arg(long, env = "FAZT_AUDIT_RETENTION", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_AUDIT_RETENTION))]
    pub audit_retention: Dur,
}

impl SessionArgs {
    fn config(&self) -> crate::auth::sessions::SessionPolicy {
        let secs = |d: &Dur| i64::try_from(d.0.as_secs()).unwrap_or(i64::MAX).max(1);
        crate::auth::sessions::SessionPolicy {
            idle: secs(&self.session_idle),
            remember: secs(&self.session_remember),
        }
    }
}

/// Serverless apps (issue #14): the JS worker pool and the limits of each invocation.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Serverless apps")]
pub(crate) struct JsArgs {
    /// JS worker threads, the only ones that run sites' scripts [default: one per core thread]
    #[arg(long, env = "FAZT_JS_WORKERS", value_name = "N", value_parser = count::<1, 256>)]
    pub js_workers: Option<usize>,
    /// Invocations waiting for a worker; past it, 503 at once
    #[arg(long, env = "FAZT_JS_QUEUE", value_name = "N", value_parser = count::<1, 100_000>,
          default_value_t = config::DEFAULT_JS_QUEUE)]
    pub js_queue: usize,
    /// Sites whose runtimes each worker keeps warm
    #[arg(long, env = "FAZT_JS_RUNTIMES", value_name = "N", value_parser = count::<1, 10_000>,
          default_value_t = config::DEFAULT_JS_RUNTIMES)]
    pub js_runtimes: usize,
    /// A handler's wall time; past it, 504
    #[arg(long, env = "FAZT_JS_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_JS_TIMEOUT))]
    pub js_timeout: Dur,
    /// Memory one site's runtime may allocate; past it, 500
    #[arg(long, env = "FAZT_JS_MEMORY", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(config::DEFAULT_JS_MEMORY))]
    pub js_memory: Bytes,
    /// Native stack a script may use (runaway recursion past it is an error)
    #[arg(long, env = "FAZT_JS_STACK", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(config::DEFAULT_JS_STACK))]
    pub js_stack: Bytes,
    /// Largest request body a handler gets; larger is 413
    #[arg(long, env = "FAZT_JS_BODY_MAX", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(config::DEFAULT_JS_BODY_MAX))]
    pub js_body_max: Bytes,
    /// Largest response an outbound fetch() may read
    #[arg(long, env = "FAZT_JS_FETCH_MAX", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(config::DEFAULT_JS_FETCH_MAX))]
    pub js_fetch_max: Bytes,
    /// Longest outbound fetch() (the handler's own time limit may end it sooner)
    #[arg(long, env = "FAZT_JS_FETCH_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_JS_FETCH_TIMEOUT))]
    pub js_fetch_timeout: Dur,
    /// For tests only: let fetch() reach loopback addresses (private ones stay refused)
    #[arg(long, env = "FAZT_JS_FETCH_ALLOW_LOOPBACK", value_name = "ON|OFF", value_parser = switch,
          action = clap::ArgAction::Set, default_value = "off")]
    pub js_fetch_allow_loopback: bool,
}

impl JsArgs {
    fn config(&self, core_threads: usize, quotas: Quotas) -> config::JsConfig {
        config::JsConfig {
            workers: self.js_workers.unwrap_or(core_threads).max(1),
            queue: self.js_queue,
            runtimes_per_worker: self.js_runtimes,
            timeout: self.js_timeout.0,
            memory: self.js_memory.0,
            stack: self.js_stack.0,
            body_max: self.js_body_max.0,
            fetch_max: self.js_fetch_max.0,
            fetch_timeout: self.js_fetch_timeout.0,
            fetch_allow_loopback: self.js_fetch_allow_loopback,
            quotas,
        }
    }
}

/// Scheduled backups (issue #16).
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Backups")]
pub(crate) struct BackupArgs {
    /// Take a backup of the database into DIR every --backup-every, as fazt-<UTC time>.db
    /// [default: none, no scheduled backups]
    #[arg(long, env = "FAZT_BACKUP_DIR", value_name = "DIR", value_parser = non_empty_path)]
    pub backup_dir: Option<PathBuf>,
    /// Time between scheduled backups (from the newest one in the directory)
    #[arg(long, env = "FAZT_BACKUP_EVERY", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_BACKUP_EVERY))]
    pub backup_every: Dur,
    /// Scheduled backups kept; older ones are deleted
    #[arg(long, env = "FAZT_BACKUP_KEEP", value_name = "N", value_parser = count::<1, 100_000>,
          default_value_t = config::DEFAULT_BACKUP_KEEP)]
    pub backup_keep: usize,
}

impl BackupArgs {
    fn config(&self) -> Option<crate::maintenance::schedule::BackupPolicy> {
        let dir = self.backup_dir.as_ref()?;
        // The backups are published by rename beside an absolute path.
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
        Some(crate::maintenance::schedule::BackupPolicy {
            dir,
            every: self.backup_every.0,
            keep: self.backup_keep,
        })
    }
}

/// WebSockets (issue #15): `/ws` of every site.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "WebSockets")]
pub(crate) struct WsArgs {
    /// Largest message a WebSocket client may send (all its fragments); past it, close 1009
    #[arg(long, env = "FAZT_WS_MESSAGE_MAX", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(config::DEFAULT_WS_MESSAGE_MAX))]
    pub ws_message_max: Bytes,
    /// Bytes queued for one client; a client that falls further behind is closed (1008)
    #[arg(long, env = "FAZT_WS_QUEUE_MAX", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(config::DEFAULT_WS_QUEUE_MAX))]
    pub ws_queue_max: Bytes,
    /// Messages (and pings) one client may send per second; past it, close 1008
    #[arg(long, env = "FAZT_WS_RATE", value_name = "N", value_parser = count::<1, 1_000_000>,
          default_value_t = config::DEFAULT_WS_RATE)]
    pub ws_rate: usize,
    /// A client silent this long is pinged, and closed if it stays silent as long again
    #[arg(long, env = "FAZT_WS_PING_EVERY", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_WS_PING_EVERY))]
    pub ws_ping_every: Dur,
    /// WebSocket clients in all, within the connection limit; past it, 503
    /// [default: half of the open public connections]
    #[arg(long, env = "FAZT_WS_MAX", value_name = "N", value_parser = count::<1, { usize::MAX }>)]
    pub ws_max: Option<usize>,
    /// WebSocket clients of one site; past it, 503 [default: the same as --ws-max]
    #[arg(long, env = "FAZT_WS_PER_SITE", value_name = "N", value_parser = count::<1, { usize::MAX }>)]
    pub ws_per_site: Option<usize>,
    /// Origins a site's /ws accepts besides the site's own, as SITE=ORIGIN pairs, comma
    /// separated (chat=https://example.com); a client that sends no Origin is not a browser
    /// and is accepted
    #[arg(long, env = "FAZT_WS_ORIGINS", value_name = "LIST", value_parser = ws_origins)]
    pub ws_origins: Option<WsOrigins>,
}

/// `FAZT_WS_ORIGINS`: (site, origin) pairs.
#[derive(Clone, Debug)]
pub(crate) struct WsOrigins(Vec<(String, String)>);

fn ws_origins(text: &str) -> Result<WsOrigins, String> {
    let pairs = text.split(',').map(str::trim).filter(|p| !p.is_empty());
    let parsed = pairs.map(|pair| {
        let (site, origin) = pair
            .split_once('=')
            .ok_or_else(|| format!("'{pair}' is not SITE=ORIGIN"))?;
        let origin = origin.trim().trim_end_matches('/').to_ascii_lowercase();
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"));
        match host {
            Some(host) if !host.is_empty() && !host.contains('/') => {
                Ok((site.trim().to_ascii_lowercase(), origin))
            }
            _ => Err(format!(
                "'{origin}' is not an origin (scheme://host[:port], http or https)"
            )),
        }
    });
    parsed.collect::<Result<_, _>>().map(WsOrigins)
}

impl WsArgs {
    fn config(&self, max_connections: usize) -> config::WsConfig {
        let total = self.ws_max.unwrap_or((max_connections / 2).max(1));
        config::WsConfig {
            connection: crate::http::conn::WsLimits {
                message_max: usize::try_from(self.ws_message_max.0).unwrap_or(usize::MAX),
                queue_max: usize::try_from(self.ws_queue_max.0).unwrap_or(usize::MAX),
                rate: u32::try_from(self.ws_rate).unwrap_or(u32::MAX),
                ping_every: self.ws_ping_every.0,
            },
            hubs: crate::server::hubs::HubLimits {
                total,
                per_site: self.ws_per_site.unwrap_or(total),
            },
            origins: self.ws_origins.clone().map(|o| o.0).unwrap_or_default(),
        }
    }
}

/// What each site's serverless app may store (issue #14); the quota errors its scripts
/// get name these settings.
#[derive(Args, Clone, Debug)]
#[command(next_help_heading = "Serverless apps")]
pub(crate) struct AppArgs {
    /// Keys one site's app may hold in fazt.app.kv
    #[arg(long, env = "FAZT_APP_KEYS", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          default_value_t = DEFAULT_QUOTAS.kv_keys as usize)]
    pub app_keys: usize,
    /// Documents one site's app may hold in fazt.app.ds, all collections together
    #[arg(long, env = "FAZT_APP_DOCS", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          default_value_t = DEFAULT_QUOTAS.docs as usize)]
    pub app_docs: usize,
    /// Bytes one site's app may hold: kv keys and values, document ids and documents (as stored)
    #[arg(long, env = "FAZT_APP_BYTES", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(DEFAULT_QUOTAS.bytes))]
    pub app_bytes: Bytes,
    /// Largest kv value or document a site's app may store
    #[arg(long, env = "FAZT_APP_VALUE_BYTES", value_name = "BYTES", value_parser = positive_size,
          default_value_t = Bytes(DEFAULT_QUOTAS.value_bytes))]
    pub app_value_bytes: Bytes,
}

impl AppArgs {
    /// For the server's configuration: the runtime's storage calls check these.
    pub(crate) fn quotas(&self) -> Quotas {
        Quotas {
            kv_keys: self.app_keys as u64,
            docs: self.app_docs as u64,
            bytes: self.app_bytes.0,
            value_bytes: self.app_value_bytes.0,
        }
    }
}

/// Everything `fazt server start` runs with.
#[derive(Args, Clone, Debug)]
pub(crate) struct ServerArgs {
    /// Public listener, HOST:PORT; :PORT listens on every interface (0.0.0.0:PORT)
    #[arg(long, env = "FAZT_LISTEN", value_name = "ADDR", value_parser = listen_addr,
          default_value = config::DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// Separate admin listener (HOST:PORT or :PORT), reachable even when the public port is
    /// flooded (admin is also served on the admin host admin.DOMAIN) [default: none]
    #[arg(long, env = "FAZT_ADMIN_LISTEN", value_name = "ADDR", value_parser = listen_addr)]
    pub admin_listen: Option<SocketAddr>,
    /// Base domain: sites are NAME.DOMAIN, the admin host is admin.DOMAIN
    #[arg(long, env = "FAZT_DOMAIN", value_name = "DOMAIN", value_parser = domain,
          default_value = config::DEFAULT_DOMAIN)]
    pub domain: String,
    /// The URL visitors use, e.g. https://example.com behind a TLS proxy: its scheme and
    /// port go into every URL fazt prints or returns; its host must be the domain
    /// [default: http:// and the --listen port]
    #[arg(long, env = "FAZT_PUBLIC_URL", value_name = "URL", value_parser = public_url)]
    pub public_url: Option<PublicUrl>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Longest time to receive a request head
    #[arg(long, env = "FAZT_HEADER_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_HEADER_TIMEOUT), help_heading = "Connections")]
    pub header_timeout: Dur,
    /// Idle time allowed between requests on a keep-alive connection
    #[arg(long, env = "FAZT_IDLE_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_IDLE_TIMEOUT), help_heading = "Connections")]
    pub idle_timeout: Dur,
    /// Longest stall while a request body arrives
    #[arg(long, env = "FAZT_BODY_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_BODY_TIMEOUT), help_heading = "Connections")]
    pub body_timeout: Dur,
    /// Longest stall while the client does not read its response
    #[arg(long, env = "FAZT_WRITE_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_WRITE_TIMEOUT), help_heading = "Connections")]
    pub write_timeout: Dur,
    /// Slowest average rate a request body may arrive at once the grace has passed (408
    /// and close below it); 0 turns the floor off
    #[arg(long, env = "FAZT_MIN_BODY_RATE", value_name = "BYTES/S", value_parser = size,
          default_value_t = Bytes(config::DEFAULT_MIN_BODY_RATE), help_heading = "Connections")]
    pub min_body_rate: Bytes,
    /// Slowest average rate a client may read a response at once the grace has passed (the
    /// connection is closed below it); 0 turns the floor off
    #[arg(long, env = "FAZT_MIN_RESPONSE_RATE", value_name = "BYTES/S", value_parser = size,
          default_value_t = Bytes(config::DEFAULT_MIN_RESPONSE_RATE), help_heading = "Connections")]
    pub min_response_rate: Bytes,
    /// Time a body or a response gets before its minimum rate applies
    #[arg(long, env = "FAZT_RATE_GRACE", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_RATE_GRACE), help_heading = "Connections")]
    pub rate_grace: Dur,
    /// Time in-flight requests get after SIGTERM/SIGINT
    #[arg(long, env = "FAZT_SHUTDOWN_TIMEOUT", value_name = "DURATION", value_parser = positive_duration,
          default_value_t = Dur(config::DEFAULT_SHUTDOWN_TIMEOUT), help_heading = "Connections")]
    pub shutdown_timeout: Dur,
    /// Connections the separate admin listener accepts
    #[arg(long, env = "FAZT_ADMIN_MAX_CONNECTIONS", value_name = "N", value_parser = count::<1, { usize::MAX }>,
          default_value_t = config::DEFAULT_ADMIN_MAX_CONNECTIONS, help_heading = "Connections")]
    pub admin_max_connections: usize,
    #[command(flatten)]
    pub disk: DiskArgs,
    #[command(flatten)]
    pub reserve: ReserveArgs,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub deploy: DeployArgs,
    #[command(flatten)]
    pub analytics: AnalyticsArgs,
    #[command(flatten)]
    pub rate_limits: RateLimitArgs,
    #[command(flatten)]
    pub sessions: SessionArgs,
    #[command(flatten)]
    pub js: JsArgs,
    #[command(flatten)]
    pub apps: AppArgs,
    #[command(flatten)]
    pub ws: WsArgs,
    #[command(flatten)]
    pub backups: BackupArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Where a client command sends its requests.
#[derive(Args, Clone, Debug)]
pub(crate) struct ClientArgs {
    /// Server to talk to (http:// or https://) [default: from `fazt login`]
    #[arg(long, env = "FAZT_SERVER", value_name = "URL")]
    pub server: Option<String>,
    /// API token (create one with `fazt key create`) [default: from `fazt login`]
    #[arg(long, env = "FAZT_TOKEN", value_name = "T")]
    pub token: Option<String>,
    /// CA certificate(s), PEM, trusted for an https server besides the usual public CAs:
    /// a fazt with a self-signed (its DATA/tls-self-signed.pem) or private-CA certificate
    #[arg(long, env = "FAZT_CA_FILE", value_name = "FILE", value_parser = non_empty_path)]
    pub ca_file: Option<PathBuf>,
}

// ---------------------------------------------------------------------------------------
// From parsed values to what the layers below take
// ---------------------------------------------------------------------------------------

/// A parsed command line: the matches of the command that runs and its declaration, so a
/// value can say where it came from and an error can name the flag and the variable.
pub(crate) struct Parsed<'a> {
    pub matches: &'a ArgMatches,
    pub command: &'a Command,
}

impl Parsed<'_> {
    fn arg(&self, id: &str) -> Option<&Arg> {
        self.command.get_arguments().find(|a| a.get_id() == id)
    }

    /// `flag --idle-timeout`, `env FAZT_IDLE_TIMEOUT` or `default`.
    fn source(&self, id: &str) -> String {
        let arg = self.arg(id);
        match (self.matches.value_source(id), arg) {
            (Some(ValueSource::CommandLine), Some(arg)) => format!("flag {}", flag_name(arg)),
            (Some(ValueSource::EnvVariable), Some(arg)) => format!("env {}", env_name(arg)),
            _ => "default".to_string(),
        }
    }

    fn given<T>(&self, id: &str, value: Option<T>) -> Option<Given<T>> {
        value.map(|value| Given {
            value,
            source: self.source(id),
        })
    }

    /// The value as written (or the default), for listings and error messages.
    fn raw(&self, id: &str) -> Option<String> {
        let values = self.matches.try_get_raw(id).ok().flatten()?;
        let values: Vec<_> = values.map(|v| v.to_string_lossy().into_owned()).collect();
        Some(values.join(","))
    }

    /// The one error format for a value the parsers accepted but that contradicts another.
    fn invalid(&self, id: &str, why: &str) -> String {
        let value = self.raw(id).unwrap_or_default();
        match self.arg(id) {
            Some(arg) => invalid(&value, arg, why),
            None => format!("invalid value '{value}': {why}"),
        }
    }
}

/// The one error format for a bad value: `invalid value 'x' for FAZT_CACHE_BYTES (--cache-bytes): why`.
pub(crate) fn invalid(value: &str, arg: &Arg, why: &str) -> String {
    let name = match arg.get_env() {
        Some(env) => format!("{} ({})", env.to_string_lossy(), flag_name(arg)),
        None => flag_name(arg),
    };
    format!("invalid value '{value}' for {name}: {why}")
}

fn flag_name(arg: &Arg) -> String {
    match arg.get_long() {
        Some(long) => format!("--{long}"),
        None => format!("<{}>", arg.get_id().as_str().to_ascii_uppercase()),
    }
}

fn env_name(arg: &Arg) -> String {
    arg.get_env()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default()
}

impl LimitArgs {
    /// The probe's overrides, each with where it was given.
    pub(crate) fn overrides(&self, p: &Parsed) -> Overrides {
        let bytes = |b: Option<Bytes>| b.map(|b| b.0);
        Overrides {
            memory_limit: p.given("memory_limit", bytes(self.memory_limit)),
            threads: p.given("threads", self.threads),
            cache_bytes: p.given("cache_bytes", bytes(self.cache_bytes)),
            max_cached_file: p.given("max_cached_file", bytes(self.max_cached_file)),
            max_connections: p.given("max_connections", self.max_connections),
            conns_per_client: p.given("conns_per_client", self.conns_per_client),
            upload_ram: p.given("upload_ram", bytes(self.upload_ram)),
            temp_dir: p.given("temp_dir", self.temp_dir.clone()),
            event_channel: p.given("event_channel", self.event_channel),
            sqlite_cache_bytes: p.given("sqlite_cache_bytes", bytes(self.sqlite_cache_bytes)),
            sqlite_mmap_bytes: p.given("sqlite_mmap_bytes", bytes(self.sqlite_mmap_bytes)),
        }
    }

    /// Probes the host under `root` for `data_dir` with these overrides; an override that
    /// contradicts a derived limit is reported in the one error format.
    pub(crate) fn probe(
        &self,
        p: &Parsed,
        root: &std::path::Path,
        data_dir: &std::path::Path,
    ) -> Result<Report, String> {
        Report::collect(root, data_dir, &self.overrides(p)).map_err(|e| {
            let id = limit_setting(e.limit);
            p.invalid(id, &e.why)
        })
    }
}

/// The setting that overrides a limit of the probe's report, by the limit's JSON name.
fn limit_setting(limit: &str) -> &'static str {
    match limit {
        "memory_limit_bytes" => "memory_limit",
        "core_threads" => "threads",
        "cache_bytes" => "cache_bytes",
        "max_cached_file_bytes" => "max_cached_file",
        "max_connections" => "max_connections",
        "conns_per_client" => "conns_per_client",
        "upload_ram_bytes" => "upload_ram",
        "temp_dir" => "temp_dir",
        "event_channel_capacity" => "event_channel",
        "sqlite_cache_bytes" => "sqlite_cache_bytes",
        _ => "sqlite_mmap_bytes",
    }
}

impl ServerArgs {
    /// Settings that contradict each other, in the one error format.
    pub(crate) fn check(&self, p: &Parsed) -> Result<(), String> {
        self.tls.check(p)?;
        if self.tls.admin_tls && self.admin_listen.is_none() {
            return Err(p.invalid("admin_tls", "needs --admin-listen (FAZT_ADMIN_LISTEN)"));
        }
        match &self.public_url {
            Some(url) if url.host != self.domain => Err(p.invalid(
                "public_url",
                &format!(
                    "its host must be the domain, '{}' (set FAZT_DOMAIN={} or --domain {})",
                    self.domain, url.host, url.host
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The server's configuration: these settings plus the probe of this host.
    pub(crate) fn config(&self, probe: Report) -> Config {
        let d = &self.deploy;
        let a = &self.analytics;
        Config {
            listen: self.listen,
            admin_listen: self.admin_listen,
            domain: self.domain.clone(),
            public_url: self.public_url.as_ref().map(|u| u.base.clone()),
            data_dir: self.data.data.clone(),
            external_checkpoints: self.data.external_checkpoints,
            conn: ConnLimits {
                header_timeout: self.header_timeout.0,
                idle_timeout: self.idle_timeout.0,
                body_timeout: self.body_timeout.0,
                write_timeout: self.write_timeout.0,
                min_body_rate: self.min_body_rate.0,
                min_response_rate: self.min_response_rate.0,
                rate_grace: self.rate_grace.0,
                handshake_timeout: self.tls.tls_handshake_timeout.0,
            },
            tls: self.tls.config(),
            shutdown_timeout: self.shutdown_timeout.0,
            admin_max_connections: self.admin_max_connections,
            disk_threshold: self.disk.disk_threshold,
            disk_reserve: self.reserve.disk_reserve.0,
            trusted_proxies: a.trusted_proxies.clone().unwrap_or_default(),
            event_batch: BatchPolicy {
                max_events: a.event_batch,
                max_delay: a.event_flush.0,
            },
            retention: a.retention.map(|d| d.0),
            auto_pageviews: a.auto_pageviews,
            max_daily_values: a.max_daily_values,
            track_domains: a.track_domains.clone().unwrap_or_default(),
            keep_deployments: d.keep_deployments,
            deploy: DeployLimits {
                max_upload: d.max_upload.0,
                rate_per_minute: u32::try_from(d.deploy_rate).unwrap_or(u32::MAX),
                max_files: Some(d.deploy_max_files),
                max_total_bytes: Some(d.deploy_max_bytes.0),
            },
            rate_limits: self.rate_limits.config(),
            sessions: self.sessions.config(),
            audit_retention: self.sessions.audit_retention.0,
            js: self
                .js
                .config(probe.limits.core_threads, self.apps.quotas()),
            ws: self.ws.config(probe.limits.max_connections),
            backups: self.backups.config(),
            probe,
        }
    }
}

impl ClientArgs {
    /// The server and token given on the command line (a flag, else its variable), and how
    /// each could have been given, for the error when one is missing everywhere.
    pub(crate) fn given(
        &self,
        command: &Command,
    ) -> (
        crate::client::config::SavedSettings,
        crate::client::config::Hints,
    ) {
        let hint = |id: &str, value: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id() == id)
                .map(|a| format!("pass {} {value} or set {}", flag_name(a), env_name(a)))
                .unwrap_or_default()
        };
        (
            crate::client::config::SavedSettings {
                server: self.server.clone(),
                token: self.token.clone(),
            },
            crate::client::config::Hints {
                server: hint("server", "URL"),
                token: hint("token", "T"),
            },
        )
    }
}

// ---------------------------------------------------------------------------------------
// `fazt --help`: every variable once
// ---------------------------------------------------------------------------------------

/// The settings section of `fazt --help`: each variable of every command once, with its
/// flag, help line, default and the commands that take it.
pub(crate) fn environment_help(root: &Command) -> String {
    let mut rows: Vec<(String, String, String, Vec<String>)> = Vec::new();
    collect_env(root, "", &mut rows);
    let mut out = String::from(
        "Settings: each variable is also the flag beside it; a flag beats its variable, a \
         variable beats the default, an empty variable counts as unset.\n",
    );
    // Grouped by the commands that take them, in declaration order.
    let mut groups: Vec<&Vec<String>> = Vec::new();
    for row in &rows {
        if !groups.contains(&&row.3) {
            groups.push(&row.3);
        }
    }
    for commands in groups {
        out.push_str(&format!("\n {}:\n", commands.join(", ")));
        for (env, flag, help, _) in rows.iter().filter(|r| &r.3 == commands) {
            out.push_str(&format!("  {env:<26} {flag:<26} {help}\n"));
        }
    }
    out.push_str(
        "\n  RUST_LOG                   log filter, e.g. debug or fazt=trace [default: info]\n\
         The client's config file is $XDG_CONFIG_HOME/fazt/config (~/.config/fazt/config).\n\
         Exit codes: 0 done, 1 network or server error, 2 usage or configuration error.",
    );
    out
}

fn collect_env(cmd: &Command, path: &str, rows: &mut Vec<(String, String, String, Vec<String>)>) {
    for arg in cmd.get_arguments() {
        let Some(env) = arg.get_env() else { continue };
        let env = env.to_string_lossy().into_owned();
        if let Some(row) = rows.iter_mut().find(|r| r.0 == env) {
            if !row.3.iter().any(|c| c == path) {
                row.3.push(path.to_string());
            }
            continue;
        }
        let mut help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|v| v.to_string_lossy())
            .collect();
        if !defaults.is_empty() {
            help.push_str(&format!(" [default: {}]", defaults.join(",")));
        }
        let flag = format!("{} {}", flag_name(arg), value_name(arg));
        rows.push((env, flag, help, vec![path.to_string()]));
    }
    for sub in cmd.get_subcommands() {
        let name = match path {
            "" => sub.get_name().to_string(),
            _ => format!("{path} {}", sub.get_name()),
        };
        collect_env(sub, &name, rows);
    }
}

fn value_name(arg: &Arg) -> String {
    arg.get_value_names()
        .and_then(|names| names.first())
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// The configuration `fazt server start FLAGS` would run with, probed against an empty
/// root (no cgroup or /proc files), for unit tests of the layers that take a [`Config`].
#[cfg(test)]
pub(crate) fn config_for_tests(flags: &[&str]) -> Config {
    use clap::FromArgMatches;
    let cmd = ServerArgs::augment_args(Command::new("fazt"));
    let argv = std::iter::once("fazt").chain(flags.iter().copied());
    let matches = cmd.clone().try_get_matches_from(argv).expect("valid flags");
    let args = ServerArgs::from_arg_matches(&matches).expect("server settings");
    let p = Parsed {
        matches: &matches,
        command: &cmd,
    };
    let root = std::path::Path::new("/nonexistent-fazt-probe-root");
    let report = args.limits.probe(&p, root, &args.data.data).expect("probe");
    args.config(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_display_as_they_parse() {
        for bytes in [1u64, 1023, 1024, 3 << 20, 256 << 20, 1 << 30, 5 << 40] {
            assert_eq!(size(&Bytes(bytes).to_string()), Ok(Bytes(bytes)));
        }
        assert_eq!(Bytes(256 << 20).to_string(), "256MiB");
        for ms in [1u64, 250, 1000, 90_000, 3_600_000, 86_400_000 * 30] {
            let d = Dur(Duration::from_millis(ms));
            assert_eq!(positive_duration(&d.to_string()), Ok(d));
        }
        assert_eq!(Dur(Duration::from_millis(250)).to_string(), "250ms");
        assert_eq!(Dur(Duration::from_secs(60)).to_string(), "1m");
    }

    #[test]
    fn settings_reach_the_config_with_their_sources() {
        let config = config_for_tests(&["--listen", "127.0.0.1:9100", "--cache-bytes", "16M"]);
        assert_eq!(config.listen.port(), 9100);
        assert_eq!(config.conn.header_timeout, config::DEFAULT_HEADER_TIMEOUT);
        assert_eq!(config.keep_deployments, config::DEFAULT_KEEP_DEPLOYMENTS);
        let max_files = Some(crate::deploy::archive::DEFAULT_MAX_FILES);
        assert_eq!(config.deploy.max_files, max_files);
        // What health reports: the probe's limits with where each came from.
        let limits = config.probe.limits_json();
        assert_eq!(limits["cache_bytes"], 16u64 << 20);
        assert_eq!(limits["sources"]["cache_bytes"], "flag --cache-bytes");
        assert_eq!(
            limits["sources"]["max_cached_file_bytes"],
            "derived: cache bytes / 16"
        );
    }

    #[test]
    fn a_switch_takes_a_value() {
        let off = config_for_tests(&["--auto-pageviews", "off"]);
        assert!(!off.auto_pageviews);
        assert!(config_for_tests(&[]).auto_pageviews);
    }

    #[test]
    fn parsers_say_what_is_wrong() {
        assert_eq!(count::<1, 10>("11"), Err("must be between 1 and 10".into()));
        assert_eq!(
            count::<1, { usize::MAX }>("0"),
            Err("must be at least 1".into())
        );
        assert_eq!(count::<1, 10>("two"), Err("is not a whole number".into()));
        assert_eq!(count::<1, 10>(" 7 "), Ok(7));
        assert_eq!(positive_size("0"), Err("must be greater than zero".into()));
        assert_eq!(
            positive_duration("0s"),
            Err("must be greater than zero".into())
        );
        assert_eq!(switch("Off"), Ok(false));
        assert!(switch("maybe").is_err());
        assert_eq!(domain("Example.COM"), Ok("example.com".into()));
        assert!(domain("bad domain").is_err());
        assert!(listen_addr("nowhere").is_err());
        assert_eq!(listen_addr(":4698"), Ok("0.0.0.0:4698".parse().unwrap()));
        assert!(listen_addr(":").is_err());
        assert_eq!(non_empty_path(" "), Err("is empty".into()));
    }
}
