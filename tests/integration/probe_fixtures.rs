//! The probe against recorded /proc and /sys trees (tests/fixtures/probe/<name>), one per
//! kind of host: cgroup v2 with and without limits, cgroup v1 (Docker), a nested systemd
//! service, systemd's hybrid hierarchy, a v1 container with its own cgroup namespace, and a
//! host with no cgroup file at all.

use std::path::{Path, PathBuf};

use fazt::platform::probe::{self, Limits, Readings, Report, LIMIT_NAMES};

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;

/// A fixed open-file limit so `max_connections` is exact (memory-bound: 100000 - 128 is above
/// every fixture's memory / 32 KiB).
const NOFILE: u64 = 100_000;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/probe")
        .join(name)
}

/// No operator overrides: every limit derived.
fn no_env() -> probe::Overrides {
    probe::Overrides::default()
}

/// Reads a fixture, checks the real nofile reading, and pins it to [`NOFILE`].
fn read(name: &str) -> (PathBuf, Readings) {
    let root = fixture(name);
    assert!(
        root.join("proc/self/status").is_file(),
        "missing fixture {}",
        root.display()
    );
    let mut readings = probe::read(&root);
    assert!(readings.nofile.0 > 0);
    assert_eq!(readings.nofile.1, "getrlimit(RLIMIT_NOFILE)");
    readings.nofile = (NOFILE, "test".to_string());
    (root, readings)
}

fn derive(readings: &Readings) -> Limits {
    probe::derive(readings, Path::new("/srv/fazt"), &no_env()).unwrap()
}

fn source_of(root: &Path, relative: &str) -> String {
    root.join(relative).display().to_string()
}

/// Expected limits that depend on the fixture (the rest are the same everywhere).
struct Expect {
    memory: u64,
    threads: usize,
    cache: u64,
    events: usize,
    sqlite_cache: u64,
    sqlite_mmap: u64,
}

fn check_limits(l: &Limits, e: &Expect) {
    assert_eq!(l.memory_limit, e.memory, "memory_limit");
    assert_eq!(l.core_threads, e.threads, "core_threads");
    assert_eq!(l.cache_bytes, e.cache, "cache_bytes");
    assert_eq!(l.max_cached_file, e.cache / 16, "max_cached_file");
    assert_eq!(
        l.max_connections as u64,
        e.memory / (32 * KIB),
        "max_connections"
    );
    assert_eq!(l.upload_ram, MIB, "upload_ram");
    assert_eq!(l.temp_dir, PathBuf::from("/srv/fazt/tmp"), "temp_dir");
    assert_eq!(l.event_channel_capacity, e.events, "event_channel_capacity");
    assert_eq!(l.sqlite_cache_bytes, e.sqlite_cache, "sqlite_cache_bytes");
    assert_eq!(l.sqlite_mmap_bytes, e.sqlite_mmap, "sqlite_mmap_bytes");
    for name in LIMIT_NAMES {
        assert!(!l.source(name).is_empty(), "no source for {name}");
    }
}

#[test]
fn v2_without_limits_uses_meminfo_and_affinity() {
    let (root, r) = read("v2-max");
    assert!(r.cgroup_memory.is_none(), "{:?}", r.cgroup_memory);
    assert!(r.cgroup_cpu.is_none(), "{:?}", r.cgroup_cpu);
    assert_eq!(
        r.meminfo_total,
        Some((2 * GIB, source_of(&root, "proc/meminfo")))
    );
    assert_eq!(r.affinity_cpus.0, 4);
    assert!(r
        .affinity_cpus
        .1
        .contains(&source_of(&root, "proc/self/status")));
    let cgroup_dir = source_of(&root, "sys/fs/cgroup");
    let membership = source_of(&root, "proc/self/cgroup");
    assert_eq!(r.cgroup, format!("v2 {cgroup_dir} (from {membership})"));

    let l = derive(&r);
    check_limits(
        &l,
        &Expect {
            memory: 2 * GIB,
            threads: 4,
            cache: 256 * MIB,
            events: 167_772,
            sqlite_cache: 16 * MIB,
            sqlite_mmap: 0,
        },
    );
    assert!(l
        .source("memory_limit_bytes")
        .contains(&source_of(&root, "proc/meminfo")));
    assert_eq!(l.source("core_threads"), "allowed CPUs (no CPU quota)");
}

#[test]
fn v2_with_limits() {
    let (root, r) = read("v2-numbers");
    assert_eq!(
        r.cgroup_memory,
        Some((512 * MIB, source_of(&root, "sys/fs/cgroup/fazt/memory.max")))
    );
    assert_eq!(
        r.cgroup_cpu,
        Some((1.5, source_of(&root, "sys/fs/cgroup/fazt/cpu.max")))
    );
    assert_eq!(r.meminfo_total.as_ref().map(|m| m.0), Some(4 * GIB));
    assert_eq!(r.affinity_cpus.0, 8);

    let l = derive(&r);
    check_limits(
        &l,
        &Expect {
            memory: 512 * MIB,
            threads: 2,
            cache: 64 * MIB,
            events: 41_943,
            sqlite_cache: 8 * MIB,
            sqlite_mmap: 0,
        },
    );
    assert!(l
        .source("memory_limit_bytes")
        .contains(&source_of(&root, "sys/fs/cgroup/fazt/memory.max")));
    assert!(l
        .source("core_threads")
        .contains(&source_of(&root, "sys/fs/cgroup/fazt/cpu.max")));
}

#[test]
fn v1_docker() {
    let (root, r) = read("v1");
    // The mount root says "unlimited" (PAGE_COUNTER_MAX, quota -1), /docker allows 1 GiB and
    // 2 cores: the container's own, tighter limits win.
    assert_eq!(
        r.cgroup_memory,
        Some((
            256 * MIB,
            source_of(
                &root,
                "sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes"
            )
        ))
    );
    assert_eq!(
        r.cgroup_cpu,
        Some((
            0.5,
            source_of(
                &root,
                "sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us"
            )
        ))
    );
    assert_eq!(r.meminfo_total.as_ref().map(|m| m.0), Some(8 * GIB));
    assert_eq!(r.affinity_cpus.0, 4);

    check_limits(
        &derive(&r),
        &Expect {
            memory: 256 * MIB,
            threads: 1,
            cache: 32 * MIB,
            events: 20_971,
            sqlite_cache: 4 * MIB,
            sqlite_mmap: 0,
        },
    );
}

#[test]
fn v1_namespaced_container_walks_up_to_the_mount_root() {
    // /proc/self/cgroup names /docker/<id>, but with a cgroup namespace the mount's root *is*
    // the container's cgroup: the named directory does not exist.
    let (root, r) = read("v1-namespaced");
    assert_eq!(
        r.cgroup_memory,
        Some((
            128 * MIB,
            source_of(&root, "sys/fs/cgroup/memory/memory.limit_in_bytes")
        ))
    );
    assert_eq!(
        r.cgroup_cpu,
        Some((
            1.0,
            source_of(&root, "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us")
        ))
    );
    let l = derive(&r);
    assert_eq!(
        (l.memory_limit, l.core_threads, l.cache_bytes),
        (128 * MIB, 1, 16 * MIB)
    );
}

#[test]
fn systemd_memory_max_on_parent_slice_is_seen() {
    let (root, r) = read("systemd-nested");
    // MemoryMax=768M on system.slice while the service itself says "max".
    assert_eq!(
        r.cgroup_memory,
        Some((
            768 * MIB,
            source_of(&root, "sys/fs/cgroup/system.slice/memory.max")
        ))
    );
    // CPUQuota=250% on the service, 300% on the slice: the tighter one wins.
    assert_eq!(
        r.cgroup_cpu,
        Some((
            2.5,
            source_of(&root, "sys/fs/cgroup/system.slice/fazt.service/cpu.max")
        ))
    );
    let service = source_of(&root, "sys/fs/cgroup/system.slice/fazt.service");
    assert!(
        r.cgroup.starts_with(&format!("v2 {service} (from ")),
        "{}",
        r.cgroup
    );
    assert_eq!(r.meminfo_total.as_ref().map(|m| m.0), Some(1992 * MIB));
    assert_eq!(r.affinity_cpus.0, 4);

    let l = derive(&r);
    check_limits(
        &l,
        &Expect {
            memory: 768 * MIB,
            threads: 3,
            cache: 96 * MIB,
            events: 62_914,
            sqlite_cache: 12 * MIB,
            sqlite_mmap: 0,
        },
    );
    assert!(l
        .source("memory_limit_bytes")
        .contains(&source_of(&root, "sys/fs/cgroup/system.slice/memory.max")));
}

#[test]
fn hybrid_hierarchy_falls_back_to_v1_controllers() {
    let (root, r) = read("hybrid");
    assert_eq!(
        r.cgroup_memory,
        Some((
            384 * MIB,
            source_of(&root, "sys/fs/cgroup/memory/fazt/memory.limit_in_bytes")
        ))
    );
    assert_eq!(
        r.cgroup_cpu,
        Some((
            2.0,
            source_of(&root, "sys/fs/cgroup/cpu/fazt/cpu.cfs_quota_us")
        ))
    );
    assert_eq!(r.affinity_cpus.0, 6);
    // The unified hierarchy is mounted at .../unified and has no controllers for us.
    let unified = source_of(&root, "sys/fs/cgroup");
    assert!(
        r.cgroup
            .starts_with(&format!("v2 {unified} (not present), v1 memory ")),
        "{}",
        r.cgroup
    );
    check_limits(
        &derive(&r),
        &Expect {
            memory: 384 * MIB,
            threads: 2,
            cache: 48 * MIB,
            events: 31_457,
            sqlite_cache: 6 * MIB,
            sqlite_mmap: 0,
        },
    );
}

#[test]
fn no_cgroup_file() {
    let (root, r) = read("none");
    assert!(r.cgroup_memory.is_none());
    assert!(r.cgroup_cpu.is_none());
    assert!(r.cgroup.starts_with("none"), "{}", r.cgroup);
    assert!(
        r.cgroup.contains(&source_of(&root, "proc/self/cgroup")),
        "{}",
        r.cgroup
    );
    assert_eq!(
        r.meminfo_total,
        Some((992 * MIB, source_of(&root, "proc/meminfo")))
    );
    assert_eq!(r.affinity_cpus.0, 3); // "0,2-3"

    check_limits(
        &derive(&r),
        &Expect {
            memory: 992 * MIB,
            threads: 3,
            cache: 124 * MIB,
            events: 81_264,
            sqlite_cache: 992 * MIB / 64,
            sqlite_mmap: 0,
        },
    );
}

#[test]
fn empty_root_still_gives_usable_limits() {
    let root = fixture("does-not-exist");
    let r = probe::read(&root);
    assert!(r.cgroup_memory.is_none() && r.cgroup_cpu.is_none() && r.meminfo_total.is_none());
    // Not the real root: no fallback to this host's CPUs.
    assert_eq!(r.affinity_cpus.0, 1);
    assert!(
        r.affinity_cpus.1.starts_with("assumed 1"),
        "{}",
        r.affinity_cpus.1
    );
    let l = probe::derive(&r, Path::new("/srv/fazt"), &no_env()).unwrap();
    assert_eq!(l.memory_limit, GIB);
    assert!(l.source("memory_limit_bytes").starts_with("assumed"));
    assert_eq!(l.core_threads, 1);
}

#[test]
fn overrides_apply_to_fixture_readings() {
    let (_, r) = read("v2-numbers");
    let overrides = probe::Overrides {
        memory_limit: Some(probe::Given {
            value: GIB,
            source: "env FAZT_MEMORY_LIMIT".to_string(),
        }),
        temp_dir: Some(probe::Given {
            value: PathBuf::from("/var/tmp/fazt"),
            source: "flag --temp-dir".to_string(),
        }),
        ..probe::Overrides::default()
    };
    let l = probe::derive(&r, Path::new("/srv/fazt"), &overrides).unwrap();
    assert_eq!(l.memory_limit, GIB);
    assert_eq!(l.source("memory_limit_bytes"), "env FAZT_MEMORY_LIMIT");
    assert_eq!(l.cache_bytes, 128 * MIB);
    assert_eq!(l.temp_dir, PathBuf::from("/var/tmp/fazt"));
    assert_eq!(l.source("temp_dir"), "flag --temp-dir");

    let too_big = probe::Overrides {
        max_cached_file: Some(probe::Given {
            value: GIB,
            source: "env FAZT_MAX_CACHED_FILE".to_string(),
        }),
        ..probe::Overrides::default()
    };
    let err = probe::derive(&r, Path::new("/srv/fazt"), &too_big).unwrap_err();
    assert_eq!(err.limit, "max_cached_file_bytes");
    assert!(err.why.contains("larger than the cache"), "{err:?}");
}

#[test]
fn report_for_a_fixture() {
    let (root, readings) = read("systemd-nested");
    let limits = derive(&readings);
    let report = Report { readings, limits };

    let json = report.to_json();
    assert_eq!(json["limits"]["memory_limit_bytes"], 768 * MIB);
    assert_eq!(json["limits"]["core_threads"], 3);
    assert_eq!(json["limits"]["max_connections"], 24_576);
    assert_eq!(json["limits"]["temp_dir"], "/srv/fazt/tmp");
    assert_eq!(json["readings"]["cgroup_cpu"]["cores"], 2.5);
    assert_eq!(
        json["readings"]["cgroup_memory"]["source"],
        source_of(&root, "sys/fs/cgroup/system.slice/memory.max")
    );
    assert!(json["sources"]["memory_limit_bytes"]
        .as_str()
        .is_some_and(|s| s.contains("system.slice/memory.max")));

    let text = report.to_text();
    assert!(text.contains("768.0 MiB"), "{text}");
    assert!(text.contains("2.5 cores"), "{text}");
    assert!(
        text.contains(&source_of(
            &root,
            "sys/fs/cgroup/system.slice/fazt.service/cpu.max"
        )),
        "{text}"
    );
    assert!(text.contains("/srv/fazt/tmp"), "{text}");
}

#[test]
fn real_host_probe_is_usable() {
    let report = Report::collect(Path::new("/"), Path::new("/srv/fazt"), &no_env()).unwrap();
    // Shown with `--nocapture`: a quick look at what `fazt probe` prints on this machine.
    println!("{}\n{:#}", report.to_text(), report.to_json());
    assert!(report.readings.affinity_cpus.0 >= 1);
    assert!(report.readings.nofile.0 > 0);
    assert!(report.limits.core_threads >= 1);
    assert!(report.limits.memory_limit > 0);
    assert!(report.limits.max_connections >= 16);
}
