//! Resource probe: reads the memory and CPU the process was given (cgroup v2, cgroup v1,
//! /proc/meminfo, the affinity mask) and derives every runtime limit from it (DESIGN §2).
//!
//! Reading and deriving are separate so both can be tested without the host: [`read`] takes
//! a root directory (`/` in production, a fixture tree in tests) and [`derive`] takes the
//! operator's [`Overrides`], already parsed by the settings table (which alone knows flags
//! and environment variables).

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::platform::units::format_bytes;

/// Where a reading or a limit came from, printed by `fazt probe`.
pub type Source = String;

/// Raw readings, each with the file (or mechanism) it came from.
#[derive(Clone, Debug)]
pub struct Readings {
    /// Memory limit in bytes (`None` = unlimited / unknown at that layer).
    pub cgroup_memory: Option<(u64, Source)>,
    /// CPU quota in cores (e.g. 0.5, 1.5).
    pub cgroup_cpu: Option<(f64, Source)>,
    pub meminfo_total: Option<(u64, Source)>,
    pub affinity_cpus: (usize, Source),
    pub nofile: (u64, Source),
    /// Which cgroup the process is in and how it was found, so `fazt probe` can say where it
    /// looked even when no limit was set there.
    pub cgroup: Source,
}

/// A derived limit with the reason it has its value.
#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_limit: u64,
    pub core_threads: usize,
    pub cache_bytes: u64,
    pub max_cached_file: u64,
    pub max_connections: usize,
    /// Connections one client address may hold on the public listener.
    pub conns_per_client: usize,
    pub upload_ram: u64,
    pub temp_dir: PathBuf,
    pub event_channel_capacity: usize,
    pub sqlite_cache_bytes: u64,
    pub sqlite_mmap_bytes: u64,
    /// Why each limit has its value, keyed by the names used in `fazt probe --json`
    /// (see [`LIMIT_NAMES`]), in that order.
    pub sources: Vec<(&'static str, Source)>,
}

/// The limit names of the JSON report and of [`Limits::sources`], in display order.
pub const LIMIT_NAMES: [&str; 11] = [
    "memory_limit_bytes",
    "core_threads",
    "cache_bytes",
    "max_cached_file_bytes",
    "max_connections",
    "conns_per_client",
    "upload_ram_bytes",
    "temp_dir",
    "event_channel_capacity",
    "sqlite_cache_bytes",
    "sqlite_mmap_bytes",
];

impl Limits {
    /// The source of one limit, by its JSON name; empty if the name is unknown.
    pub fn source(&self, name: &str) -> &str {
        self.sources
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s.as_str())
            .unwrap_or("")
    }
}

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// cgroup v1 reports "no limit" as a huge page-aligned number (PAGE_COUNTER_MAX, e.g.
/// 9223372036854771712 on x86-64, slightly different elsewhere); anything at or above 2^62
/// is no real machine's memory, so treat it as unlimited.
const UNLIMITED_MEMORY_THRESHOLD: u64 = 1 << 62;

/// Used when neither a cgroup limit nor /proc/meminfo is readable: small enough that a
/// 1 GiB VPS (the smallest host we target) is not overcommitted, big enough to run.
const ASSUMED_MEMORY: u64 = GIB;

/// Upper bound for the core-thread override: far more core threads than any host we
/// target has; a higher value is a typo, not a tuning choice.
pub const MAX_THREADS: usize = 1024;

/// The cache gets an eighth of memory: the rest is left for connections, SQLite, uploads and
/// the kernel page cache (which also serves our DB file).
const CACHE_DIVISOR: u64 = 8;
/// Below 8 MiB the cache holds too few typical pages/assets to be worth having.
const CACHE_MIN: u64 = 8 * MIB;
/// Above 1 GiB a personal site gains nothing; the page cache covers the rest.
const CACHE_MAX: u64 = GIB;

/// A single file may take at most 1/16 of the cache, so one large asset cannot evict
/// everything else; larger files stream from SQLite in chunks.
const CACHED_FILE_DIVISOR: u64 = 16;

/// Descriptors kept back from the open-file limit for the DB, its WAL/SHM, listeners,
/// eventfds, log files and temporary upload files.
const RESERVED_FDS: u64 = 128;
/// Rough memory budget per connection: our read buffer and connection state (a few KiB) plus
/// the kernel socket buffers of a mostly idle keep-alive connection (tcp_rmem/tcp_wmem grow
/// on demand; idle ones hold little). 32 KiB is a conservative average, so a full house of
/// connections stays within the memory limit instead of getting the process OOM-killed.
const CONNECTION_BUDGET: u64 = 32 * KIB;
/// Even on a tiny host, refusing the 17th visitor would be worse than the memory risk.
const MIN_CONNECTIONS: u64 = 16;
/// One client address may hold 1/16 of the connections: a single address can't take every
/// slot (a slow-body flood from one host), while a NAT of many browsers (six connections
/// each) still gets plenty.
const CONNS_PER_CLIENT_DIVISOR: usize = 16;
/// A share never goes below this, unless the cap itself is smaller.
const CONNS_PER_CLIENT_MIN: usize = 32;

/// Uploads are buffered in RAM up to 1 MiB, then spill to `temp_dir`: most uploads (small
/// files, form posts) never touch disk, large ones never hold much memory.
const UPLOAD_RAM: u64 = MIB;

/// A full event channel (analytics hits waiting for the writer) should hold under ~2% of
/// memory; ~256 bytes per buffered event (path, referrer, user agent summary, timestamps).
const EVENT_CHANNEL_MEMORY_PERCENT: u64 = 2;
const EVENT_BYTES: u64 = 256;
/// At least 1024 events so a short burst on a tiny host is not dropped.
const EVENT_CHANNEL_MIN: u64 = 1024;
/// At most a million: beyond that the writer is not keeping up and buffering more only
/// delays the inevitable drop.
const EVENT_CHANNEL_MAX: u64 = 1_000_000;

/// SQLite page cache per connection: an eighth of the file cache, so one knob
/// (`FAZT_CACHE_BYTES`, itself memory / 8) sizes both, and with a reader per core thread,
/// the admin reader and the writer the page caches stay well under the file cache. File
/// bodies live in the file cache; the page cache only keeps B-tree pages hot. Measured
/// (bench/bench_vfs.sh, 8 MiB file cache, 5,000-file miss workload): 16 MiB page caches
/// took RSS to 58 MiB, past the cache + 32 MB bound.
const SQLITE_CACHE_DIVISOR: u64 = 8;
/// 1 MiB floor: enough for the interior pages of the tables we look files up in.
const SQLITE_CACHE_MIN: u64 = MIB;
/// 16 MiB per connection: file bodies are served from our own byte-bounded cache, so the
/// page cache only needs the B-tree interior and metadata pages hot.
const SQLITE_CACHE_MAX: u64 = 16 * MIB;

/// Memory-mapped I/O is off by default. Mapped pages count in the process's RSS and
/// against its memory cgroup, once per connection that touched them, and file bodies are
/// copied into our cache or streamed anyway. Measured with bench/bench_vfs.sh (8 MiB
/// cache): with a 256 MiB mmap, peak RSS while churning an 80 MB corpus was 184 MiB and
/// 20 clients streaming a 50 MB file added 102 MiB; with it off, 18 MiB and 1 MiB, at
/// similar throughput.
const SQLITE_MMAP_DEFAULT: u64 = 0;

// ---------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------

/// Reads the resources available to this process. `root` is prefixed to every path (`/` in
/// production). Never fails: anything unreadable is reported as missing.
pub fn read(root: &Path) -> Readings {
    let membership = root.join("proc/self/cgroup");
    let lines = fs::read_to_string(&membership)
        .ok()
        .map(|t| parse_cgroup_file(&t));
    let (cgroup_memory, cgroup_cpu, cgroup) = match lines {
        Some(lines) => read_cgroups(root, &lines, &membership),
        None => (
            None,
            None,
            format!("none ({} not readable)", membership.display()),
        ),
    };
    Readings {
        cgroup_memory,
        cgroup_cpu,
        meminfo_total: read_meminfo(root),
        affinity_cpus: read_affinity(root),
        nofile: read_nofile(),
        cgroup,
    }
}

/// The entries of /proc/self/cgroup we care about.
#[derive(Debug, Default)]
struct CgroupLines {
    /// Path of the unified (v2) hierarchy, from the `0::/path` line.
    v2: Option<String>,
    /// v1 hierarchies: (controllers field as written, e.g. "cpu,cpuacct"; path).
    v1: Vec<(String, String)>,
}

impl CgroupLines {
    fn v1_for(&self, controller: &str) -> Option<&(String, String)> {
        self.v1
            .iter()
            .find(|(controllers, _)| controllers.split(',').any(|c| c == controller))
    }
}

fn parse_cgroup_file(text: &str) -> CgroupLines {
    let mut lines = CgroupLines::default();
    for line in text.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if id == "0" && controllers.is_empty() {
            lines.v2 = Some(path.to_string());
        } else if !controllers.is_empty() && !controllers.starts_with("name=") {
            lines.v1.push((controllers.to_string(), path.to_string()));
        }
    }
    lines
}

type MemoryReading = Option<(u64, Source)>;
type CpuReading = Option<(f64, Source)>;

/// Reads memory and CPU limits: v2 first; for whatever v2 does not limit, v1 if the process
/// is also in v1 hierarchies (hybrid setups put the controllers there, leaving the unified
/// hierarchy without memory.max/cpu.max).
fn read_cgroups(
    root: &Path,
    lines: &CgroupLines,
    membership: &Path,
) -> (MemoryReading, CpuReading, Source) {
    let base = root.join("sys/fs/cgroup");
    let mut memory = None;
    let mut cpu = None;
    let mut found = Vec::new();
    if let Some(path) = &lines.v2 {
        let levels = levels(&base, path);
        memory = min_memory(&levels, "memory.max");
        cpu = min_cpu(&levels, read_cpu_v2);
        // Every v2 cgroup directory has cgroup.controllers; without it the entry is the
        // empty unified hierarchy of a hybrid setup (mounted elsewhere) or not visible here.
        let present = levels[0].join("cgroup.controllers").is_file();
        let note = if present { "" } else { " (not present)" };
        found.push(format!("v2 {}{note}", levels[0].display()));
    }
    if memory.is_none() {
        if let Some((controllers, path)) = lines.v1_for("memory") {
            if let Some(levels) = v1_levels(&base, &[controllers, "memory"], path) {
                memory = min_memory(&levels, "memory.limit_in_bytes");
                found.push(format!("v1 memory {}", levels[0].display()));
            }
        }
    }
    if cpu.is_none() {
        if let Some((controllers, path)) = lines.v1_for("cpu") {
            if let Some(levels) = v1_levels(&base, &[controllers, "cpu,cpuacct", "cpu"], path) {
                cpu = min_cpu(&levels, read_cpu_v1);
                found.push(format!("v1 cpu {}", levels[0].display()));
            }
        }
    }
    let summary = if found.is_empty() {
        format!("none (no usable entry in {})", membership.display())
    } else {
        format!("{} (from {})", found.join(", "), membership.display())
    };
    (memory, cpu, summary)
}

/// The cgroup directory of `path` under `base` and each parent up to `base` itself, innermost
/// first. Limits of a parent apply to its children (systemd's `MemoryMax=` on a slice), so
/// every level has to be looked at.
fn levels(base: &Path, path: &str) -> Vec<PathBuf> {
    // The kernel writes absolute, normalised paths; dropping "." and ".." anyway keeps a
    // malformed file from pointing us outside the cgroup tree.
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != "." && *p != "..")
        .collect();
    (0..=parts.len())
        .rev()
        .map(|n| parts[..n].iter().fold(base.to_path_buf(), |d, p| d.join(p)))
        .collect()
}

/// v1 mounts each hierarchy under a directory named after its controllers ("memory",
/// "cpu,cpuacct", sometimes also a "cpu" symlink); the first one that exists is used.
fn v1_levels(base: &Path, mounts: &[&str], path: &str) -> Option<Vec<PathBuf>> {
    mounts
        .iter()
        .map(|m| base.join(m))
        .find(|dir| dir.is_dir())
        .map(|dir| levels(&dir, path))
}

/// The tightest memory limit among `levels`, with the file that set it.
fn min_memory(levels: &[PathBuf], file: &str) -> MemoryReading {
    let mut best: MemoryReading = None;
    for dir in levels {
        let path = dir.join(file);
        let Ok(text) = fs::read_to_string(&path) else {
            continue;
        };
        // "max" (v2) or an unparsable value means no limit at this level.
        let Ok(bytes) = text.trim().parse::<u64>() else {
            continue;
        };
        if bytes >= UNLIMITED_MEMORY_THRESHOLD {
            continue;
        }
        if best.as_ref().is_none_or(|(b, _)| bytes < *b) {
            best = Some((bytes, path.display().to_string()));
        }
    }
    best
}

/// The tightest CPU quota among `levels`, with the file that set it.
fn min_cpu(levels: &[PathBuf], read_level: fn(&Path) -> CpuReading) -> CpuReading {
    let mut best: CpuReading = None;
    for dir in levels {
        if let Some((cores, source)) = read_level(dir) {
            if best.as_ref().is_none_or(|(b, _)| cores < *b) {
                best = Some((cores, source));
            }
        }
    }
    best
}

/// v2 `cpu.max`: "QUOTA PERIOD" in microseconds, or "max PERIOD" for no quota.
fn read_cpu_v2(dir: &Path) -> CpuReading {
    let path = dir.join("cpu.max");
    let text = fs::read_to_string(&path).ok()?;
    let mut fields = text.split_whitespace();
    let quota: u64 = fields.next()?.parse().ok()?;
    // The kernel always writes the period; 100 ms is its default should it ever be absent.
    let period: u64 = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    cores(quota, period).map(|c| (c, path.display().to_string()))
}

/// v1 `cpu.cfs_quota_us` (-1 = no quota) over `cpu.cfs_period_us`.
fn read_cpu_v1(dir: &Path) -> CpuReading {
    let quota_path = dir.join("cpu.cfs_quota_us");
    let quota: i64 = fs::read_to_string(&quota_path).ok()?.trim().parse().ok()?;
    let quota = u64::try_from(quota).ok()?;
    let period: u64 = fs::read_to_string(dir.join("cpu.cfs_period_us"))
        .ok()?
        .trim()
        .parse()
        .ok()?;
    cores(quota, period).map(|c| (c, quota_path.display().to_string()))
}

fn cores(quota: u64, period: u64) -> Option<f64> {
    if quota == 0 || period == 0 {
        return None;
    }
    Some(quota as f64 / period as f64)
}

/// `MemTotal` of /proc/meminfo, which the kernel writes in kB (meaning KiB).
fn read_meminfo(root: &Path) -> Option<(u64, Source)> {
    let path = root.join("proc/meminfo");
    let text = fs::read_to_string(&path).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().next()?.parse().ok()?;
    Some((kib.checked_mul(KIB)?, path.display().to_string()))
}

/// CPUs in the affinity mask, from `Cpus_allowed_list` (what sched_getaffinity returns,
/// readable without a syscall so fixtures can provide it).
fn read_affinity(root: &Path) -> (usize, Source) {
    let path = root.join("proc/self/status");
    let parsed = fs::read_to_string(&path).ok().and_then(|text| {
        let list = text
            .lines()
            .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))?;
        count_cpu_list(list.trim())
    });
    if let Some(n) = parsed {
        return (n, format!("{} Cpus_allowed_list", path.display()));
    }
    // Only the real root describes this process; for a fixture root the host's CPUs would
    // be a wrong answer that looks right.
    if root == Path::new("/") {
        if let Ok(n) = std::thread::available_parallelism() {
            return (
                n.get(),
                format!(
                    "std::thread::available_parallelism() (no Cpus_allowed_list in {})",
                    path.display()
                ),
            );
        }
    }
    (
        1,
        format!("assumed 1 (no Cpus_allowed_list in {})", path.display()),
    )
}

/// Counts a kernel CPU list such as `0-3,5,7-8` (7 CPUs). `None` if malformed or empty.
fn count_cpu_list(list: &str) -> Option<usize> {
    let mut count = 0usize;
    for part in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        count += match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
                hi.checked_sub(lo)? + 1
            }
            None => {
                part.parse::<usize>().ok()?;
                1
            }
        };
    }
    (count > 0).then_some(count)
}

/// The soft open-file limit of this process (always the real process, whatever the root).
fn read_nofile() -> (u64, Source) {
    match crate::platform::sys::nofile_limit() {
        Ok((soft, _hard)) => (soft, "getrlimit(RLIMIT_NOFILE)".to_string()),
        // 1024 is the usual default soft limit; getrlimit failing is near impossible anyway.
        Err(e) => (
            1024,
            format!("assumed 1024 (getrlimit(RLIMIT_NOFILE) failed: {e})"),
        ),
    }
}

// ---------------------------------------------------------------------------------------
// Deriving
// ---------------------------------------------------------------------------------------

/// A value the operator gave for one limit, with where it was given (a flag or a
/// variable name), which `fazt probe` prints as the limit's source.
#[derive(Clone, Debug)]
pub struct Given<T> {
    pub value: T,
    pub source: Source,
}

/// Operator overrides of the derived limits; `None` derives the limit. Values are already
/// parsed and range-checked by the settings table (cli), which knows flags and variables;
/// the probe does not.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub memory_limit: Option<Given<u64>>,
    pub threads: Option<Given<usize>>,
    pub cache_bytes: Option<Given<u64>>,
    pub max_cached_file: Option<Given<u64>>,
    pub max_connections: Option<Given<usize>>,
    pub conns_per_client: Option<Given<usize>>,
    pub upload_ram: Option<Given<u64>>,
    pub temp_dir: Option<Given<PathBuf>>,
    pub event_channel: Option<Given<usize>>,
    pub sqlite_cache_bytes: Option<Given<u64>>,
    pub sqlite_mmap_bytes: Option<Given<u64>>,
}

/// An override that contradicts another limit: `limit` is its name in [`LIMIT_NAMES`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitError {
    pub limit: &'static str,
    pub why: String,
}

impl std::fmt::Display for LimitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.limit, self.why)
    }
}

/// How each limit is derived when not overridden, for `--help` (the same words `fazt
/// probe` prints as the source, without this host's readings).
pub fn derivation(limit: &str) -> String {
    match limit {
        "memory_limit_bytes" => {
            "the cgroup memory limit or MemTotal, whichever is smaller".to_string()
        }
        "core_threads" => "ceil(CPU quota), at most the allowed CPUs".to_string(),
        "cache_bytes" => cache_rule(),
        "max_cached_file_bytes" => cached_file_rule(),
        "max_connections" => format!(
            "min(open-file limit − {RESERVED_FDS} reserved, memory limit / {}), at least {MIN_CONNECTIONS}",
            format_bytes(CONNECTION_BUDGET)
        ),
        "conns_per_client" => conns_per_client_rule(),
        "upload_ram_bytes" => format_bytes(UPLOAD_RAM),
        "temp_dir" => TEMP_DIR_RULE.to_string(),
        "event_channel_capacity" => event_channel_rule(),
        "sqlite_cache_bytes" => sqlite_cache_rule(),
        "sqlite_mmap_bytes" => SQLITE_MMAP_RULE.to_string(),
        _ => String::new(),
    }
}

const TEMP_DIR_RULE: &str = "<data dir>/tmp";
const SQLITE_MMAP_RULE: &str = "off (mapped pages would count in RSS, once per connection)";

fn cache_rule() -> String {
    format!(
        "memory limit / {CACHE_DIVISOR}, clamped {}–{}",
        format_bytes(CACHE_MIN),
        format_bytes(CACHE_MAX)
    )
}

fn conns_per_client_rule() -> String {
    format!(
        "max({CONNS_PER_CLIENT_MIN}, max connections / {CONNS_PER_CLIENT_DIVISOR}), at most max connections"
    )
}

fn cached_file_rule() -> String {
    format!("cache bytes / {CACHED_FILE_DIVISOR}")
}

fn event_channel_rule() -> String {
    format!(
        "{EVENT_CHANNEL_MEMORY_PERCENT}% of memory limit / {EVENT_BYTES} B per event, \
         clamped {EVENT_CHANNEL_MIN}–{EVENT_CHANNEL_MAX}"
    )
}

fn sqlite_cache_rule() -> String {
    format!(
        "file cache / {SQLITE_CACHE_DIVISOR} per connection, clamped {}–{}",
        format_bytes(SQLITE_CACHE_MIN),
        format_bytes(SQLITE_CACHE_MAX)
    )
}

/// The operator's value with its source, or the derived one.
fn given_or<T: Clone>(
    given: &Option<Given<T>>,
    derive: impl FnOnce() -> (T, Source),
) -> (T, Source) {
    match given {
        Some(g) => (g.value.clone(), g.source.clone()),
        None => derive(),
    }
}

/// Derives every runtime limit from `readings`, applying the operator's `overrides`. The
/// one override checked here is the one that depends on another limit's value: a largest
/// cached file bigger than the cache.
pub fn derive(
    readings: &Readings,
    data_dir: &Path,
    overrides: &Overrides,
) -> Result<Limits, LimitError> {
    let o = overrides;
    let mut sources: Vec<(&'static str, Source)> = Vec::with_capacity(LIMIT_NAMES.len());

    let memory = given_or(&o.memory_limit, || default_memory(readings));
    let memory_limit = push(&mut sources, "memory_limit_bytes", memory);

    let threads = given_or(&o.threads, || default_threads(readings));
    let core_threads = push(&mut sources, "core_threads", threads);

    let cache = given_or(&o.cache_bytes, || {
        let bytes = (memory_limit / CACHE_DIVISOR).clamp(CACHE_MIN, CACHE_MAX);
        (bytes, cache_rule())
    });
    let cache_bytes = push(&mut sources, "cache_bytes", cache);

    // A file larger than the whole cache could never be cached: that is a mistake.
    if o.max_cached_file
        .as_ref()
        .is_some_and(|g| g.value > cache_bytes)
    {
        return Err(LimitError {
            limit: "max_cached_file_bytes",
            why: format!("is larger than the cache ({})", format_bytes(cache_bytes)),
        });
    }
    let cached_file = given_or(&o.max_cached_file, || {
        (cache_bytes / CACHED_FILE_DIVISOR, cached_file_rule())
    });
    let max_cached_file = push(&mut sources, "max_cached_file_bytes", cached_file);

    let connections = given_or(&o.max_connections, || {
        default_connections(readings.nofile.0, memory_limit)
    });
    let max_connections = push(&mut sources, "max_connections", connections);

    let per_client = given_or(&o.conns_per_client, || {
        let n = (max_connections / CONNS_PER_CLIENT_DIVISOR)
            .max(CONNS_PER_CLIENT_MIN)
            .min(max_connections);
        (n, conns_per_client_rule())
    });
    let conns_per_client = push(&mut sources, "conns_per_client", per_client);

    let upload = given_or(&o.upload_ram, || (UPLOAD_RAM, "default".to_string()));
    let upload_ram = push(&mut sources, "upload_ram_bytes", upload);

    // Same filesystem as the DB by default: spilled uploads are renamed into place, and a
    // tmpfs would put them back in RAM, which is what spilling is meant to avoid.
    let temp = given_or(&o.temp_dir, || {
        (data_dir.join("tmp"), TEMP_DIR_RULE.to_string())
    });
    let temp_dir = push(&mut sources, "temp_dir", temp);

    let events = given_or(&o.event_channel, || {
        let n = (memory_limit / (100 / EVENT_CHANNEL_MEMORY_PERCENT) / EVENT_BYTES)
            .clamp(EVENT_CHANNEL_MIN, EVENT_CHANNEL_MAX);
        (to_usize(n), event_channel_rule())
    });
    let event_channel_capacity = push(&mut sources, "event_channel_capacity", events);

    let sqlite_cache = given_or(&o.sqlite_cache_bytes, || {
        let bytes = (cache_bytes / SQLITE_CACHE_DIVISOR).clamp(SQLITE_CACHE_MIN, SQLITE_CACHE_MAX);
        (bytes, sqlite_cache_rule())
    });
    let sqlite_cache_bytes = push(&mut sources, "sqlite_cache_bytes", sqlite_cache);

    let sqlite_mmap = given_or(&o.sqlite_mmap_bytes, || {
        (SQLITE_MMAP_DEFAULT, format!("default: {SQLITE_MMAP_RULE}"))
    });
    let sqlite_mmap_bytes = push(&mut sources, "sqlite_mmap_bytes", sqlite_mmap);

    Ok(Limits {
        memory_limit,
        core_threads,
        cache_bytes,
        max_cached_file,
        max_connections,
        conns_per_client,
        upload_ram,
        temp_dir,
        event_channel_capacity,
        sqlite_cache_bytes,
        sqlite_mmap_bytes,
        sources,
    })
}

/// Records the source of a limit and returns its value.
fn push<T>(
    sources: &mut Vec<(&'static str, Source)>,
    name: &'static str,
    (value, source): (T, Source),
) -> T {
    sources.push((name, source));
    value
}

/// The cgroup limit or the machine's memory, whichever is smaller.
fn default_memory(r: &Readings) -> (u64, Source) {
    match (&r.cgroup_memory, &r.meminfo_total) {
        (Some((cg, cg_src)), Some((total, _))) if cg <= total => {
            (*cg, format!("cgroup limit ({cg_src})"))
        }
        (_, Some((total, src))) => (*total, format!("MemTotal ({src})")),
        (Some((cg, src)), None) => (*cg, format!("cgroup limit ({src})")),
        (None, None) => (
            ASSUMED_MEMORY,
            format!(
                "assumed {} (no cgroup limit, no MemTotal)",
                format_bytes(ASSUMED_MEMORY)
            ),
        ),
    }
}

/// One event-loop thread per core the quota pays for (a partly paid core still gets a
/// thread), never more than the CPUs we may run on.
fn default_threads(r: &Readings) -> (usize, Source) {
    let cpus = r.affinity_cpus.0.max(1);
    match &r.cgroup_cpu {
        Some((quota, src)) => {
            let wanted = quota.ceil();
            // Float to int: the quota is finite and positive; `as` saturates anyway.
            let wanted = if wanted.is_finite() && wanted >= 1.0 {
                wanted as usize
            } else {
                1
            };
            let n = wanted.min(cpus).max(1);
            (
                n,
                format!("ceil(CPU quota {quota} cores from {src}), at most {cpus} allowed CPUs"),
            )
        }
        None => (cpus, "allowed CPUs (no CPU quota)".to_string()),
    }
}

/// Connections are bounded both by descriptors and by memory (see [`CONNECTION_BUDGET`]).
fn default_connections(nofile: u64, memory_limit: u64) -> (usize, Source) {
    let by_fds = nofile.saturating_sub(RESERVED_FDS);
    let by_memory = memory_limit / CONNECTION_BUDGET;
    let n = by_fds.min(by_memory).max(MIN_CONNECTIONS);
    let why = format!(
        "min(open-file limit {nofile} − {RESERVED_FDS} reserved, memory limit / {}), at least {MIN_CONNECTIONS}",
        format_bytes(CONNECTION_BUDGET)
    );
    (to_usize(n), why)
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

// ---------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------

/// What `fazt probe` prints: the readings and the limits derived from them.
#[derive(Clone, Debug)]
pub struct Report {
    pub readings: Readings,
    pub limits: Limits,
}

impl Report {
    /// Probes this host (`/`) without overrides.
    pub fn system(data_dir: &Path) -> Result<Report, LimitError> {
        Report::collect(Path::new("/"), data_dir, &Overrides::default())
    }

    /// Reads under `root` and derives with `overrides`.
    pub fn collect(
        root: &Path,
        data_dir: &Path,
        overrides: &Overrides,
    ) -> Result<Report, LimitError> {
        let readings = read(root);
        let limits = derive(&readings, data_dir, overrides)?;
        Ok(Report { readings, limits })
    }

    /// `fazt probe --json`: readings, limits (numbers as JSON numbers) and their sources.
    pub fn to_json(&self) -> Value {
        let r = &self.readings;
        let l = &self.limits;
        let sized = |v: &Option<(u64, Source)>| match v {
            Some((bytes, src)) => json!({ "bytes": bytes, "source": src }),
            None => Value::Null,
        };
        let cpu = match &r.cgroup_cpu {
            Some((cores, src)) => json!({ "cores": cores, "source": src }),
            None => Value::Null,
        };
        let sources: serde_json::Map<String, Value> = l
            .sources
            .iter()
            .map(|(name, src)| (name.to_string(), Value::from(shown_source(src))))
            .collect();
        json!({
            "readings": {
                "cgroup": r.cgroup,
                "cgroup_memory": sized(&r.cgroup_memory),
                "cgroup_cpu": cpu,
                "meminfo_total": sized(&r.meminfo_total),
                "affinity_cpus": { "cpus": r.affinity_cpus.0, "source": r.affinity_cpus.1 },
                "nofile": { "soft": r.nofile.0, "source": r.nofile.1 },
            },
            "limits": {
                "memory_limit_bytes": l.memory_limit,
                "core_threads": l.core_threads,
                "cache_bytes": l.cache_bytes,
                "max_cached_file_bytes": l.max_cached_file,
                "max_connections": l.max_connections,
                "conns_per_client": l.conns_per_client,
                "upload_ram_bytes": l.upload_ram,
                "temp_dir": l.temp_dir.display().to_string(),
                "event_channel_capacity": l.event_channel_capacity,
                "sqlite_cache_bytes": l.sqlite_cache_bytes,
                "sqlite_mmap_bytes": l.sqlite_mmap_bytes,
            },
            "sources": sources,
        })
    }

    /// The limits with, under "sources", where each came from: what `/api/system/health`
    /// reports under "limits".
    pub fn limits_json(&self) -> Value {
        let mut report = self.to_json();
        let mut limits = report["limits"].take();
        limits["sources"] = report["sources"].take();
        limits
    }

    /// `fazt probe`: one line per reading and per limit, each with where it came from.
    pub fn to_text(&self) -> String {
        let r = &self.readings;
        let l = &self.limits;
        let sized = |v: &Option<(u64, Source)>, none: &str| match v {
            Some((bytes, src)) => (format_bytes(*bytes), src.clone()),
            None => (none.to_string(), String::new()),
        };
        let cpu = match &r.cgroup_cpu {
            Some((cores, src)) => (format!("{cores} cores"), src.clone()),
            None => ("no quota".to_string(), String::new()),
        };
        let readings = [
            ("cgroup", (String::new(), r.cgroup.clone())),
            ("cgroup memory", sized(&r.cgroup_memory, "no limit")),
            ("cgroup CPU", cpu),
            ("MemTotal", sized(&r.meminfo_total, "unknown")),
            (
                "allowed CPUs",
                (r.affinity_cpus.0.to_string(), r.affinity_cpus.1.clone()),
            ),
            (
                "open-file limit",
                (r.nofile.0.to_string(), r.nofile.1.clone()),
            ),
        ];
        let limits = [
            ("memory limit", format_bytes(l.memory_limit)),
            ("core threads", l.core_threads.to_string()),
            ("cache", format_bytes(l.cache_bytes)),
            ("largest cached file", format_bytes(l.max_cached_file)),
            ("max connections", l.max_connections.to_string()),
            ("connections per client", l.conns_per_client.to_string()),
            ("upload RAM", format_bytes(l.upload_ram)),
            ("temp dir", l.temp_dir.display().to_string()),
            (
                "event channel",
                format!("{} events", l.event_channel_capacity),
            ),
            (
                "SQLite cache",
                format!("{} per connection", format_bytes(l.sqlite_cache_bytes)),
            ),
            ("SQLite mmap", format_bytes(l.sqlite_mmap_bytes)),
        ];
        let mut out = String::from("Readings\n");
        for (label, (value, src)) in &readings {
            out.push_str(&line(label, value, src));
        }
        out.push_str("\nLimits\n");
        for ((label, value), name) in limits.iter().zip(LIMIT_NAMES) {
            out.push_str(&line(label, value, &shown_source(l.source(name))));
        }
        out
    }
}

/// A limit's source as printed: what the operator gave (`flag --…`, `env FAZT_…`), the
/// fixed `default`, or `derived: ` and how.
fn shown_source(source: &str) -> String {
    let given = ["flag ", "env ", "default"];
    match given.iter().any(|p| source.starts_with(p)) {
        true => source.to_string(),
        false => format!("derived: {source}"),
    }
}

fn line(label: &str, value: &str, source: &str) -> String {
    let line = match (value.is_empty(), source.is_empty()) {
        (_, true) => format!("  {label:<20} {value}"),
        (true, false) => format!("  {label:<20} {source}"),
        (false, false) => format!("  {label:<20} {value:<24} ({source})"),
    };
    format!("{}\n", line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(
        cgroup_memory: Option<u64>,
        cpu: Option<f64>,
        meminfo: Option<u64>,
        cpus: usize,
        nofile: u64,
    ) -> Readings {
        Readings {
            cgroup_memory: cgroup_memory.map(|b| (b, "/sys/fs/cgroup/memory.max".into())),
            cgroup_cpu: cpu.map(|c| (c, "/sys/fs/cgroup/cpu.max".into())),
            meminfo_total: meminfo.map(|b| (b, "/proc/meminfo".into())),
            affinity_cpus: (cpus, "/proc/self/status Cpus_allowed_list".into()),
            nofile: (nofile, "getrlimit(RLIMIT_NOFILE)".into()),
            cgroup: "test".into(),
        }
    }

    const NONE: &Overrides = &Overrides {
        memory_limit: None,
        threads: None,
        cache_bytes: None,
        max_cached_file: None,
        max_connections: None,
        conns_per_client: None,
        upload_ram: None,
        temp_dir: None,
        event_channel: None,
        sqlite_cache_bytes: None,
        sqlite_mmap_bytes: None,
    };

    fn given<T>(value: T, source: &str) -> Option<Given<T>> {
        Some(Given {
            value,
            source: source.to_string(),
        })
    }

    fn derive_with(r: &Readings, overrides: Overrides) -> Result<Limits, LimitError> {
        derive(r, Path::new("/var/lib/fazt"), &overrides)
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("0-63"), Some(64));
        assert_eq!(count_cpu_list(""), None);
        assert_eq!(count_cpu_list("3-1"), None);
        assert_eq!(count_cpu_list("a-b"), None);
    }

    #[test]
    fn cgroup_file_parsing() {
        let lines = parse_cgroup_file(
            "12:name=systemd:/x\n4:memory:/docker/abc\n3:cpu,cpuacct:/docker/abc\n0::/\n",
        );
        assert_eq!(lines.v2.as_deref(), Some("/"));
        assert_eq!(
            lines
                .v1_for("memory")
                .map(|(c, p)| (c.as_str(), p.as_str())),
            Some(("memory", "/docker/abc"))
        );
        assert_eq!(
            lines.v1_for("cpu").map(|(c, _)| c.as_str()),
            Some("cpu,cpuacct")
        );
        assert!(lines.v1_for("systemd").is_none());
    }

    #[test]
    fn levels_walk_up_to_base_and_ignore_dot_dot() {
        let got = levels(Path::new("/r"), "/a/../b");
        let want: Vec<PathBuf> = ["/r/a/b", "/r/a", "/r"].iter().map(PathBuf::from).collect();
        assert_eq!(got, want);
        assert_eq!(levels(Path::new("/r"), "/"), vec![PathBuf::from("/r")]);
    }

    #[test]
    fn small_container_defaults() {
        // 512 MiB cgroup on a 4 GiB host, 1.5 cores of 8 CPUs.
        let r = readings(Some(512 * MIB), Some(1.5), Some(4 * GIB), 8, 65_536);
        let l = derive(&r, Path::new("/data"), NONE).unwrap();
        assert_eq!(l.memory_limit, 512 * MIB);
        assert!(l
            .source("memory_limit_bytes")
            .contains("/sys/fs/cgroup/memory.max"));
        assert_eq!(l.core_threads, 2);
        assert_eq!(l.cache_bytes, 64 * MIB);
        assert_eq!(
            l.source("cache_bytes"),
            "memory limit / 8, clamped 8.0 MiB–1.0 GiB"
        );
        assert_eq!(l.max_cached_file, 4 * MIB);
        assert_eq!(l.max_connections, 16_384); // 512 MiB / 32 KiB, below 65536 - 128
        assert_eq!(l.conns_per_client, 1024); // 16384 / 16
        assert_eq!(l.upload_ram, MIB);
        assert_eq!(l.temp_dir, PathBuf::from("/data/tmp"));
        assert_eq!(l.event_channel_capacity, 41_943); // 512 MiB * 2% / 256
        assert_eq!(l.sqlite_cache_bytes, 8 * MIB);
        assert_eq!(l.sqlite_mmap_bytes, 0);
        assert_eq!(
            l.sources.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            LIMIT_NAMES
        );
    }

    #[test]
    fn memory_is_the_smaller_of_cgroup_and_meminfo() {
        let r = readings(Some(8 * GIB), None, Some(2 * GIB), 2, 1024);
        let l = derive(&r, Path::new("/d"), NONE).unwrap();
        assert_eq!(l.memory_limit, 2 * GIB);
        assert!(l.source("memory_limit_bytes").starts_with("MemTotal"));
        let r = readings(Some(300 * MIB), None, None, 2, 1024);
        assert_eq!(
            derive(&r, Path::new("/d"), NONE).unwrap().memory_limit,
            300 * MIB
        );
    }

    #[test]
    fn nothing_readable_assumes_one_gib() {
        let r = readings(None, None, None, 1, 1024);
        let l = derive(&r, Path::new("/d"), NONE).unwrap();
        assert_eq!(l.memory_limit, GIB);
        assert!(l.source("memory_limit_bytes").starts_with("assumed"));
        assert_eq!(l.core_threads, 1);
        // fds bind first: 1024 - 128.
        assert_eq!(l.max_connections, 896);
    }

    #[test]
    fn clamps_on_tiny_and_huge_hosts() {
        let tiny = derive(
            &readings(Some(8 * MIB), None, Some(GIB), 1, 1 << 20),
            Path::new("/d"),
            NONE,
        )
        .unwrap();
        assert_eq!(tiny.cache_bytes, CACHE_MIN);
        assert_eq!(tiny.max_cached_file, 512 * KIB);
        assert_eq!(tiny.event_channel_capacity, 1024);
        assert_eq!(tiny.sqlite_cache_bytes, MIB);
        assert_eq!(tiny.sqlite_mmap_bytes, 0);
        assert_eq!(tiny.max_connections, 256); // 8 MiB / 32 KiB
        assert_eq!(tiny.conns_per_client, 32, "at least 32");

        let huge = derive(
            &readings(None, None, Some(1 << 40), 64, u64::MAX),
            Path::new("/d"),
            NONE,
        )
        .unwrap();
        assert_eq!(huge.cache_bytes, GIB);
        assert_eq!(huge.max_cached_file, 64 * MIB);
        assert_eq!(huge.event_channel_capacity, 1_000_000);
        assert_eq!(huge.sqlite_cache_bytes, 16 * MIB);
        assert_eq!(huge.sqlite_mmap_bytes, 0);
        assert_eq!(huge.max_connections, (1u64 << 40) as usize / (32 * 1024));
        assert_eq!(huge.core_threads, 64);

        // Tiny fd limit: the floor of 16 wins.
        let fds = derive(
            &readings(None, None, Some(GIB), 1, 100),
            Path::new("/d"),
            NONE,
        )
        .unwrap();
        assert_eq!(fds.max_connections, 16);
        assert_eq!(fds.conns_per_client, 16, "never more than the cap");
    }

    #[test]
    fn threads_follow_quota_within_affinity() {
        let t = |cpu, cpus| {
            derive(
                &readings(None, cpu, Some(GIB), cpus, 1024),
                Path::new("/d"),
                NONE,
            )
            .unwrap()
            .core_threads
        };
        assert_eq!(t(Some(0.5), 4), 1);
        assert_eq!(t(Some(1.0), 4), 1);
        assert_eq!(t(Some(2.5), 4), 3);
        assert_eq!(t(Some(16.0), 4), 4);
        assert_eq!(t(None, 6), 6);
        assert_eq!(t(Some(0.01), 0), 1);
    }

    #[test]
    fn overrides_win_and_are_named_as_source() {
        let r = readings(Some(512 * MIB), Some(1.5), Some(4 * GIB), 8, 65_536);
        let l = derive_with(
            &r,
            Overrides {
                memory_limit: given(2 * GIB, "env FAZT_MEMORY_LIMIT"),
                threads: given(3, "flag --threads"),
                max_connections: given(100, "env FAZT_MAX_CONNECTIONS"),
                conns_per_client: given(7, "env FAZT_CONNS_PER_CLIENT"),
                upload_ram: given(256 * KIB, "env FAZT_UPLOAD_RAM"),
                temp_dir: given(PathBuf::from("/scratch"), "env FAZT_TEMP_DIR"),
                event_channel: given(5000, "env FAZT_EVENT_CHANNEL"),
                sqlite_cache_bytes: given(4 * MIB, "env FAZT_SQLITE_CACHE_BYTES"),
                sqlite_mmap_bytes: given(64 * MIB, "env FAZT_SQLITE_MMAP_BYTES"),
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(l.memory_limit, 2 * GIB);
        assert_eq!(l.source("memory_limit_bytes"), "env FAZT_MEMORY_LIMIT");
        // Limits without an override derive from the overridden memory limit.
        assert_eq!(l.cache_bytes, 256 * MIB);
        assert_eq!(l.max_cached_file, 16 * MIB);
        assert_eq!(l.core_threads, 3);
        assert_eq!(l.source("core_threads"), "flag --threads");
        assert_eq!(l.max_connections, 100);
        assert_eq!(l.conns_per_client, 7);
        assert_eq!(l.source("conns_per_client"), "env FAZT_CONNS_PER_CLIENT");
        assert_eq!(l.upload_ram, 256 * KIB);
        assert_eq!(l.temp_dir, PathBuf::from("/scratch"));
        assert_eq!(l.source("temp_dir"), "env FAZT_TEMP_DIR");
        assert_eq!(l.event_channel_capacity, 5000);
        assert_eq!(l.sqlite_cache_bytes, 4 * MIB);
        assert_eq!(l.sqlite_mmap_bytes, 64 * MIB);

        let cache = |file: Option<u64>| Overrides {
            cache_bytes: given(16 * MIB, "c"),
            max_cached_file: file.and_then(|f| given(f, "f")),
            ..Overrides::default()
        };
        let l = derive_with(&r, cache(Some(2 * MIB))).unwrap();
        assert_eq!((l.cache_bytes, l.max_cached_file), (16 * MIB, 2 * MIB));
        assert_eq!(l.source("max_cached_file_bytes"), "f");
        let l = derive_with(&r, cache(None)).unwrap();
        assert_eq!(l.max_cached_file, MIB);
        assert_eq!(
            l.sqlite_cache_bytes,
            2 * MIB,
            "the page caches follow the file cache"
        );
    }

    #[test]
    fn a_cached_file_larger_than_the_cache_is_refused() {
        let r = readings(Some(512 * MIB), None, Some(GIB), 2, 4096);
        let too_big = Overrides {
            max_cached_file: given(GIB, "env FAZT_MAX_CACHED_FILE"),
            ..Overrides::default()
        };
        let err = derive_with(&r, too_big).unwrap_err();
        assert_eq!(
            err,
            LimitError {
                limit: "max_cached_file_bytes",
                why: "is larger than the cache (64.0 MiB)".to_string()
            }
        );
    }

    #[test]
    fn help_describes_each_derivation() {
        for name in LIMIT_NAMES {
            assert!(!derivation(name).is_empty(), "{name}");
        }
        let r = readings(Some(512 * MIB), None, Some(GIB), 2, 4096);
        let l = derive(&r, Path::new("/d"), NONE).unwrap();
        // Where a rule does not depend on this host's readings, help and probe agree.
        for name in [
            "cache_bytes",
            "max_cached_file_bytes",
            "temp_dir",
            "sqlite_cache_bytes",
        ] {
            assert_eq!(l.source(name), derivation(name), "{name}");
        }
    }

    #[test]
    fn report_json_and_text() {
        let r = readings(Some(512 * MIB), Some(1.5), Some(4 * GIB), 8, 4096);
        let limits = derive(&r, Path::new("/data"), NONE).unwrap();
        let report = Report {
            readings: r,
            limits,
        };
        let j = report.to_json();
        assert_eq!(j["limits"]["memory_limit_bytes"], 512 * MIB);
        assert_eq!(j["limits"]["core_threads"], 2);
        assert_eq!(j["limits"]["max_connections"], 3968);
        assert_eq!(j["limits"]["temp_dir"], "/data/tmp");
        assert_eq!(j["readings"]["cgroup_cpu"]["cores"], 1.5);
        assert_eq!(j["readings"]["nofile"]["soft"], 4096);
        assert_eq!(
            j["sources"]["cache_bytes"],
            "derived: memory limit / 8, clamped 8.0 MiB–1.0 GiB"
        );
        for name in LIMIT_NAMES {
            assert!(j["limits"].get(name).is_some(), "{name}");
            assert!(
                j["sources"][name].as_str().is_some_and(|s| !s.is_empty()),
                "{name}"
            );
        }
        let text = report.to_text();
        assert!(text.contains("512.0 MiB"), "{text}");
        assert!(text.contains("/sys/fs/cgroup/memory.max"), "{text}");
        assert!(text.contains("1.5 cores"), "{text}");
        assert!(
            text.contains("(derived: memory limit / 8, clamped 8.0 MiB–1.0 GiB)"),
            "{text}"
        );
        assert!(text.contains("/data/tmp"), "{text}");
        assert_eq!(
            text.lines().filter(|l| l.starts_with("  ")).count(),
            6 + LIMIT_NAMES.len()
        );
    }
}
