//! The one configuration struct the server runs with. It is plain data: the settings table
//! (`cli::settings`) parses flags over `FAZT_*` variables over the defaults declared here
//! and builds it; resource-derived limits come from the probe (`probe::derive`).

use crate::http::conn::ConnLimits;
use crate::platform::probe::Report;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4698";
pub const DEFAULT_DOMAIN: &str = "localhost";
pub const DEFAULT_DATA: &str = "./data";
/// Enough history to roll back a bad week of deploys; each kept deployment costs only its
/// file rows plus the bytes that changed.
pub const DEFAULT_KEEP_DEPLOYMENTS: usize = 10;
/// A request head that takes longer than this is a slowloris, not a slow network.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Long enough for a browser's next click, short enough that idle sockets do not pile up.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest stall while a body (an upload) arrives or a response is read by the client.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Minimum average rates after the grace (Apache's mod_reqtimeout defaults to 500 B/s for
/// bodies). A 2G phone uploads at 2–3 KB/s (GPRS, two slots), well above 512 B/s, so a
/// deploy from one still finishes; a drip that holds a slot with a byte now and then
/// does not.
pub const DEFAULT_MIN_BODY_RATE: u64 = 512;
pub const DEFAULT_MIN_RESPONSE_RATE: u64 = 512;
/// A slow start (TCP slow start, a phone waking its radio) is not a slow client.
pub const DEFAULT_RATE_GRACE: Duration = Duration::from_secs(10);
/// What in-flight requests get after SIGTERM; systemd's own stop timeout is 90 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// Plenty for one operator's dashboards and scripts, few enough that the admin listener
/// cannot be used to exhaust descriptors.
pub const DEFAULT_ADMIN_MAX_CONNECTIONS: usize = 256;

/// A handshake is a few round trips; a client that needs longer is stalling.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress per core thread. An ECDSA handshake costs the server well under
/// a millisecond of CPU, so honest clients never get near this; stalled ones (held until
/// the handshake deadline) fill it instead of taking every descriptor.
pub const DEFAULT_TLS_MAX_HANDSHAKES: usize = 256;
/// HSTS max-age: a day upgrades a visitor's next visits, and an owner who turns TLS off (or
/// loses the certificate) locks browsers out for at most a day. Never `preload`, never
/// `includeSubDomains` (names under the domain may be served by other hosts).
pub const DEFAULT_HSTS: Duration = Duration::from_secs(86_400);

/// A browser's dashboard session lives this long unused (the idle expiry slides).
pub const DEFAULT_SESSION_IDLE: Duration = Duration::from_secs(24 * 3600);
/// With "remember me".
pub const DEFAULT_SESSION_REMEMBER: Duration = Duration::from_secs(30 * 86_400);
/// A quarter of a year of who signed in and changed what.
pub const DEFAULT_AUDIT_RETENTION: Duration = Duration::from_secs(90 * 86_400);

/// A handler's wall time: enough for a few storage calls and an outbound fetch, short
/// enough that an endless loop holds a worker for a second only.
pub const DEFAULT_JS_TIMEOUT: Duration = Duration::from_secs(1);
/// Memory one site's runtime may allocate (QuickJS' own count).
pub const DEFAULT_JS_MEMORY: u64 = 32 << 20;
/// Native stack the interpreter may use: deep enough for real recursion, well inside the
/// worker thread's own stack (see `serverless::pool`).
pub const DEFAULT_JS_STACK: u64 = 512 << 10;
/// Invocations waiting for a worker before more are answered 503 at once. Each holds its
/// request body (at most `FAZT_JS_BODY_MAX`) while it waits.
pub const DEFAULT_JS_QUEUE: usize = 256;
/// Sites whose runtimes each worker keeps warm (least recently used goes).
pub const DEFAULT_JS_RUNTIMES: usize = 64;
/// A request body a handler gets, in memory.
pub const DEFAULT_JS_BODY_MAX: u64 = 1 << 20;
/// Outbound fetch: a response larger than this is an error to the script.
pub const DEFAULT_JS_FETCH_MAX: u64 = 1 << 20;
pub const DEFAULT_JS_FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Scheduled backups (issue #16): one a day, a week of them kept.
pub const DEFAULT_BACKUP_EVERY: Duration = Duration::from_secs(24 * 3600);
pub const DEFAULT_BACKUP_KEEP: usize = 7;

/// WebSockets (issue #15): the largest message a client may send (all its fragments).
pub const DEFAULT_WS_MESSAGE_MAX: u64 = 64 << 10;
/// Frames queued for one client before it counts as too slow and is closed.
pub const DEFAULT_WS_QUEUE_MAX: u64 = 256 << 10;
/// Messages a client may send per second (a second's worth may come at once).
pub const DEFAULT_WS_RATE: usize = 100;
/// A quiet client is pinged after this, and closed if it stays quiet as long again.
pub const DEFAULT_WS_PING_EVERY: Duration = Duration::from_secs(30);

/// WebSockets (issue #15): each connection's limits, the client counts, and the origins
/// each site accepts besides its own.
#[derive(Clone, Debug)]
pub struct WsConfig {
    pub connection: crate::http::conn::WsLimits,
    pub hubs: super::hubs::HubLimits,
    /// (site, origin) pairs from `FAZT_WS_ORIGINS`; origins as `scheme://host[:port]`,
    /// lower case.
    pub origins: Vec<(String, String)>,
}

/// Serverless apps (issue #14): the JS worker pool, its limits and the apps' storage quotas.
#[derive(Clone, Debug)]
pub struct JsConfig {
    /// JS worker threads; by default one per core thread.
    pub workers: usize,
    pub queue: usize,
    pub runtimes_per_worker: usize,
    pub timeout: Duration,
    pub memory: u64,
    pub stack: u64,
    pub body_max: u64,
    pub fetch_max: u64,
    pub fetch_timeout: Duration,
    /// Tests only: scripts may fetch from loopback addresses (private ranges stay refused).
    pub fetch_allow_loopback: bool,
    /// What each site's app may store.
    pub quotas: crate::serverless::store::Quotas,
}

/// The TLS listener and its certificates (`--tls-*`).
#[derive(Clone, Debug)]
pub struct TlsConfig {
    pub listen: SocketAddr,
    /// Certificate and key files, the first the default certificate.
    pub files: Vec<crate::http::tls::CertFiles>,
    /// A self-signed development certificate instead of files.
    pub self_signed: bool,
    /// Handshakes in progress per core thread.
    pub max_handshakes: usize,
    /// HSTS max-age; `None` sends no header.
    pub hsts: Option<Duration>,
    /// The plain listener redirects to https (`--redirect-http`).
    pub redirect_http: bool,
    /// The admin listener speaks TLS too (`--admin-tls`).
    pub admin: bool,
    /// Certificates obtained automatically (`--acme-*`), if on.
    pub acme: Option<AcmeSettings>,
}

/// Automatic certificates over ACME (`--acme-email` turns them on).
#[derive(Clone, Debug)]
pub struct AcmeSettings {
    /// The account's contact address.
    pub email: String,
    pub directory: String,
    pub challenge: crate::acme::ChallengePolicy,
    /// Roots trusted for the directory's own https besides the public ones (a private CA).
    pub ca_file: Option<PathBuf>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// Public listener.
    pub listen: SocketAddr,
    /// The TLS listener, if any.
    pub tls: Option<TlsConfig>,
    /// Optional dedicated admin listener.
    pub admin_listen: Option<SocketAddr>,
    /// Base domain for host routing.
    pub domain: String,
    /// The scheme and port visitors use (`FAZT_PUBLIC_URL`), if not the listener's.
    pub public_url: Option<crate::hosting::urls::UrlBase>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// WAL checkpoints are a replicator's (`FAZT_EXTERNAL_CHECKPOINTS`), never fazt's.
    pub external_checkpoints: bool,
    /// Per-connection deadlines.
    pub conn: ConnLimits,
    /// How long in-flight requests get after SIGTERM.
    pub shutdown_timeout: Duration,
    /// Connections the dedicated admin listener accepts.
    pub admin_max_connections: usize,
    /// Disk use (percent) at which bulk writes are refused with 507.
    pub disk_threshold: u8,
    /// Bytes held in `data/fazt.reserve` for writes on a full disk (0: none).
    pub disk_reserve: u64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::http::proxies::TrustedProxies,
    /// When an analytics batch is committed (this many events or this long after its first
    /// event, whichever comes first).
    pub event_batch: crate::db::events::BatchPolicy,
    /// Raw events older than this are pruned automatically (off by default).
    pub retention: Option<Duration>,
    /// Hosts outside fazt whose pages may send `/track` and `/pixel.gif` events.
    pub track_domains: crate::analytics::ingest::TrackDomains,
    /// Record a pageview for every HTML page a hosted site serves (default on). Off for
    /// sites that send their own `/track` beacons, which would otherwise count each view
    /// twice.
    pub auto_pageviews: bool,
    /// Distinct values per site, day and analytics dimension before new ones count as
    /// `(other)` (`FAZT_MAX_DAILY_VALUES`).
    pub max_daily_values: usize,
    /// Deployments kept per site for rollback; older ones, except a site's current one and
    /// the one a deploy just replaced (requests may still be reading it; it goes at the
    /// next deploy), are deleted after a deploy, and then the blobs nothing references any
    /// more.
    pub keep_deployments: usize,
    /// Upload size, rate and archive limits of deploys.
    pub deploy: crate::deploy::limits::DeployLimits,
    /// Per-client rate limits: ingestion events and failed API keys.
    pub rate_limits: RateLimits,
    /// How long dashboard sessions live unused.
    pub sessions: crate::auth::sessions::SessionPolicy,
    /// How long audit log entries are kept.
    pub audit_retention: Duration,
    /// Serverless apps.
    pub js: JsConfig,
    /// WebSockets.
    pub ws: WsConfig,
    /// Scheduled backups, when `FAZT_BACKUP_DIR` is set.
    pub backups: Option<crate::maintenance::schedule::BackupPolicy>,
    /// The probe's readings and the resource-derived limits.
    pub probe: Report,
}

/// Per-client rate limits (`FAZT_INGEST_RATE`, `FAZT_INGEST_BURST`, `FAZT_AUTH_FAILURES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimits {
    /// Ingestion events a second per client address; 0 is unlimited.
    pub ingest_per_second: u32,
    pub ingest_burst: u32,
    /// Failed API keys a minute per client address before 429.
    pub auth_failures_per_minute: u32,
}

impl Config {
    /// The scheme and port of the URLs fazt prints and returns: the public URL's, else
    /// `http` and the public listener's (bound) port.
    /// True when the admin listener speaks TLS (`--admin-tls`).
    pub fn admin_tls(&self) -> bool {
        self.admin_listen.is_some() && self.tls.as_ref().is_some_and(|t| t.admin)
    }

    /// With a TLS listener (and no public URL) that is `https` and the TLS port: visitors
    /// are sent to https.
    pub fn url_base(&self) -> crate::hosting::urls::UrlBase {
        use crate::hosting::urls::UrlBase;
        match (&self.public_url, &self.tls) {
            (Some(url), _) => url.clone(),
            (None, Some(tls)) => UrlBase {
                https: true,
                port: (tls.listen.port() != 443).then_some(tls.listen.port()),
            },
            (None, None) => UrlBase::listener(self.listen.port()),
        }
    }
}
