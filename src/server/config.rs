//! The one configuration struct, built from CLI flags over `FAZT_*` environment variables
//! over defaults. Resource-derived limits come from the probe (`probe::derive`).

use crate::http::conn::ConnLimits;
use crate::platform::probe::Report;
use crate::platform::units::parse_duration;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4698";
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_DATA: &str = "./data";
/// Enough history to roll back a bad week of deploys; each kept deployment costs only its
/// file rows plus the bytes that changed.
pub const DEFAULT_KEEP_DEPLOYMENTS: usize = 10;

#[derive(Clone, Debug)]
pub struct Config {
    /// Public listener (`--listen`, `FAZT_LISTEN`).
    pub listen: SocketAddr,
    /// Optional dedicated admin listener (`--admin-listen`, `FAZT_ADMIN_LISTEN`).
    pub admin_listen: Option<SocketAddr>,
    /// Base domain for host routing (`--domain`, `FAZT_DOMAIN`).
    pub domain: String,
    /// Data directory (`--data`, `FAZT_DATA`).
    pub data_dir: PathBuf,
    /// Per-connection deadlines (`FAZT_HEADER_TIMEOUT`, `FAZT_IDLE_TIMEOUT`,
    /// `FAZT_BODY_TIMEOUT`, `FAZT_WRITE_TIMEOUT`).
    pub conn: ConnLimits,
    /// How long in-flight requests get after SIGTERM (`FAZT_SHUTDOWN_TIMEOUT`).
    pub shutdown_timeout: Duration,
    /// Connections the dedicated admin listener accepts (`FAZT_ADMIN_MAX_CONNECTIONS`).
    pub admin_max_connections: usize,
    /// Disk use (percent) at which bulk writes are refused with 507 (`FAZT_DISK_THRESHOLD`).
    pub disk_threshold: u8,
    /// Proxies whose `X-Forwarded-For` is believed (`FAZT_TRUSTED_PROXIES`).
    pub trusted_proxies: crate::analytics::proxies::TrustedProxies,
    /// When an analytics batch is committed (`FAZT_EVENT_BATCH` events or
    /// `FAZT_EVENT_FLUSH` after its first event, whichever comes first).
    pub event_batch: crate::db::writer::BatchPolicy,
    /// Raw events older than this are pruned automatically (`FAZT_RETENTION`, off by default).
    pub retention: Option<Duration>,
    /// Record a pageview for every HTML page a hosted site serves (`FAZT_AUTO_PAGEVIEWS`,
    /// default on). Off for sites that send their own `/track` beacons, which would
    /// otherwise count each view twice.
    pub auto_pageviews: bool,
    /// Deployments kept per site for rollback (`FAZT_KEEP_DEPLOYMENTS`, default 10); older
    /// ones, except a site's current one and the one a deploy just replaced (requests may
    /// still be reading it; it goes at the next deploy), are deleted after a deploy, and
    /// then the blobs nothing references any more.
    pub keep_deployments: usize,
    /// Upload size, rate and archive limits of deploys (`FAZT_MAX_UPLOAD`,
    /// `FAZT_DEPLOY_RATE`, `FAZT_DEPLOY_MAX_FILES`, `FAZT_DEPLOY_MAX_BYTES`).
    pub deploy: crate::deploy::limits::DeployLimits,
    /// The probe's readings and the resource-derived limits.
    pub probe: Report,
}

/// Settings given on the command line; `None` falls back to the environment, then defaults.
#[derive(Default, Debug)]
pub struct Flags {
    pub listen: Option<String>,
    pub admin_listen: Option<String>,
    pub domain: Option<String>,
    pub data_dir: Option<String>,
}

/// Environment lookup, injectable for tests.
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The data directory from a flag, `FAZT_DATA`, or `./data`.
pub fn data_dir(flag: Option<&str>, env: Env) -> PathBuf {
    PathBuf::from(
        flag.map(str::to_string)
            .or_else(|| env("FAZT_DATA"))
            .unwrap_or(DEFAULT_DATA.into()),
    )
}

impl Config {
    pub fn build(flags: &Flags, env: Env, probe: Report) -> Result<Config, String> {
        let listen = resolve_addr(
            "--listen / FAZT_LISTEN",
            &pick(&flags.listen, env, "FAZT_LISTEN", DEFAULT_LISTEN),
        )?;
        let admin_listen = match flags
            .admin_listen
            .clone()
            .or_else(|| env("FAZT_ADMIN_LISTEN"))
        {
            Some(text) => Some(resolve_addr("--admin-listen / FAZT_ADMIN_LISTEN", &text)?),
            None => None,
        };
        let domain = pick(&flags.domain, env, "FAZT_DOMAIN", DEFAULT_DOMAIN).to_ascii_lowercase();
        validate_domain(&domain)?;
        let conn = ConnLimits {
            header_timeout: duration(env, "FAZT_HEADER_TIMEOUT", Duration::from_secs(10))?,
            idle_timeout: duration(env, "FAZT_IDLE_TIMEOUT", Duration::from_secs(60))?,
            body_timeout: duration(env, "FAZT_BODY_TIMEOUT", Duration::from_secs(30))?,
            write_timeout: duration(env, "FAZT_WRITE_TIMEOUT", Duration::from_secs(30))?,
        };
        let admin_max_connections = match env("FAZT_ADMIN_MAX_CONNECTIONS") {
            None => 256,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|&n| n >= 1)
                .ok_or(format!(
                    "FAZT_ADMIN_MAX_CONNECTIONS: '{text}' is not a positive whole number"
                ))?,
        };
        let keep_deployments = match env("FAZT_KEEP_DEPLOYMENTS") {
            None => DEFAULT_KEEP_DEPLOYMENTS,
            Some(text) => text
                .trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=10_000).contains(n))
                .ok_or(format!(
                    "FAZT_KEEP_DEPLOYMENTS: '{text}' is not a whole number from 1 to 10000"
                ))?,
        };
        Ok(Config {
            listen,
            keep_deployments,
            admin_listen,
            domain,
            data_dir: data_dir(flags.data_dir.as_deref(), env),
            conn,
            shutdown_timeout: duration(env, "FAZT_SHUTDOWN_TIMEOUT", Duration::from_secs(10))?,
            admin_max_connections,
            disk_threshold: crate::platform::disk::threshold_from_env(env)?,
            trusted_proxies: crate::analytics::proxies::TrustedProxies::from_env(env)?,
            event_batch: event_batch(env)?,
            auto_pageviews: switch(env, "FAZT_AUTO_PAGEVIEWS", true)?,
            deploy: crate::deploy::limits::DeployLimits::from_env(env)?,
            retention: match env("FAZT_RETENTION") {
                None => None,
                Some(_) => Some(duration(env, "FAZT_RETENTION", Duration::ZERO)?),
            },
            probe,
        })
    }
}

fn switch(env: Env, var: &str, default: bool) -> Result<bool, String> {
    match env(var).map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(default),
        Some(v) if matches!(v.as_str(), "1" | "true" | "on" | "yes") => Ok(true),
        Some(v) if matches!(v.as_str(), "0" | "false" | "off" | "no") => Ok(false),
        Some(v) => Err(format!(
            "{var}: '{v}' is not on or off (use 1/0, true/false, on/off)"
        )),
    }
}

fn event_batch(env: Env) -> Result<crate::db::writer::BatchPolicy, String> {
    let default = crate::db::writer::BatchPolicy::default();
    let max_events = match env("FAZT_EVENT_BATCH") {
        None => default.max_events,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|&n| (1..=100_000).contains(&n))
            .ok_or(format!(
                "FAZT_EVENT_BATCH: '{text}' is not a whole number from 1 to 100000"
            ))?,
    };
    let max_delay = duration(env, "FAZT_EVENT_FLUSH", default.max_delay)?;
    Ok(crate::db::writer::BatchPolicy {
        max_events,
        max_delay,
    })
}

fn pick(flag: &Option<String>, env: Env, var: &str, default: &str) -> String {
    flag.clone()
        .or_else(|| env(var))
        .unwrap_or_else(|| default.to_string())
}

fn duration(env: Env, var: &str, default: Duration) -> Result<Duration, String> {
    match env(var) {
        None => Ok(default),
        Some(text) => match parse_duration(&text) {
            Ok(d) if !d.is_zero() => Ok(d),
            Ok(_) => Err(format!("{var}: must be greater than zero")),
            Err(e) => Err(format!("{var}: {e}")),
        },
    }
}

fn resolve_addr(what: &str, text: &str) -> Result<SocketAddr, String> {
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| format!("{what}: '{text}' is not a listen address (expected HOST:PORT, e.g. 127.0.0.1:4698)"))
}

fn validate_domain(domain: &str) -> Result<(), String> {
    match crate::http::parse::parse_host(domain.as_bytes()) {
        Some(parsed) if parsed == domain && !domain.starts_with('[') => Ok(()),
        _ => Err(format!(
            "--domain / FAZT_DOMAIN: '{domain}' is not a domain name (e.g. example.com)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Report {
        let root = std::path::Path::new("/nonexistent");
        Report::collect(root, std::path::Path::new("/tmp/d"), &|_| None).unwrap()
    }

    #[test]
    fn flags_override_env_and_defaults() {
        let env = |k: &str| match k {
            "FAZT_LISTEN" => Some("127.0.0.1:9000".to_string()),
            "FAZT_DOMAIN" => Some("Example.COM".to_string()),
            "FAZT_IDLE_TIMEOUT" => Some("5s".to_string()),
            _ => None,
        };
        let flags = Flags {
            listen: Some("127.0.0.1:9001".into()),
            ..Flags::default()
        };
        let config = Config::build(&flags, &env, limits()).unwrap();
        assert_eq!(config.listen.port(), 9001);
        assert_eq!(config.domain, "example.com");
        assert_eq!(config.conn.idle_timeout, Duration::from_secs(5));
        assert_eq!(config.conn.header_timeout, Duration::from_secs(10));
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.keep_deployments, DEFAULT_KEEP_DEPLOYMENTS);
        let keep = |k: &str| (k == "FAZT_KEEP_DEPLOYMENTS").then(|| "2".to_string());
        let config = Config::build(&Flags::default(), &keep, limits()).unwrap();
        assert_eq!(config.keep_deployments, 2);
    }

    #[test]
    fn bad_values_name_their_setting() {
        for bad in ["0", "ten", "-1"] {
            let env = |k: &str| (k == "FAZT_KEEP_DEPLOYMENTS").then(|| bad.to_string());
            let err = Config::build(&Flags::default(), &env, limits()).unwrap_err();
            assert!(err.starts_with("FAZT_KEEP_DEPLOYMENTS"), "{err}");
        }
        let bad_switch = |k: &str| (k == "FAZT_AUTO_PAGEVIEWS").then(|| "maybe".to_string());
        let err = Config::build(&Flags::default(), &bad_switch, limits()).unwrap_err();
        assert!(err.starts_with("FAZT_AUTO_PAGEVIEWS"), "{err}");
        let env = |k: &str| (k == "FAZT_WRITE_TIMEOUT").then(|| "soon".to_string());
        let err = Config::build(&Flags::default(), &env, limits()).unwrap_err();
        assert!(err.starts_with("FAZT_WRITE_TIMEOUT"), "{err}");
        let flags = Flags {
            listen: Some("nowhere".into()),
            ..Flags::default()
        };
        let err = Config::build(&flags, &|_| None, limits()).unwrap_err();
        assert!(err.contains("--listen"), "{err}");
        let flags = Flags {
            domain: Some("bad domain".into()),
            ..Flags::default()
        };
        assert!(Config::build(&flags, &|_| None, limits())
            .unwrap_err()
            .contains("--domain"));
    }
}
