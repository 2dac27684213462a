//! Resource probe: reads the memory and CPU the process was given (cgroup v2, cgroup v1,
//! /proc/meminfo, the affinity mask) and derives every runtime limit from it (DESIGN §2).
//! INTERFACE PINNED — implementation in progress.

use std::path::{Path, PathBuf};

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
}

/// A derived limit with the reason it has its value.
#[derive(Clone, Debug)]
pub struct Limits {
    pub memory_limit: u64,
    pub core_threads: usize,
    pub cache_bytes: u64,
    pub max_cached_file: u64,
    pub max_connections: usize,
    pub upload_ram: u64,
    pub temp_dir: PathBuf,
    pub event_channel_capacity: usize,
    pub sqlite_cache_bytes: u64,
    pub sqlite_mmap_bytes: u64,
}

pub fn read(_root: &Path) -> Readings {
    unimplemented!()
}
