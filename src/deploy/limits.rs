//! Deploy limits and their defaults; the settings table (cli) fills them from flags and
//! the environment.

/// Largest upload accepted. Bigger than any static site we expect a small host to serve,
/// small enough that a spooled upload plus its extracted files fit next to the database on
/// a droplet's disk.
pub const DEFAULT_MAX_UPLOAD: u64 = 256 * 1024 * 1024;
/// Deploys a key may start per minute: a CI loop gone wrong is stopped long before it fills
/// the disk with deployments.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 30;

#[derive(Clone, Debug)]
pub struct DeployLimits {
    pub max_upload: u64,
    pub rate_per_minute: u32,
    /// Files in one archive; `None` keeps the archive default.
    pub max_files: Option<usize>,
    /// Uncompressed bytes of one archive; `None`: the default.
    pub max_total_bytes: Option<u64>,
}

impl Default for DeployLimits {
    fn default() -> DeployLimits {
        DeployLimits {
            max_upload: DEFAULT_MAX_UPLOAD,
            rate_per_minute: DEFAULT_RATE_PER_MINUTE,
            max_files: None,
            max_total_bytes: None,
        }
    }
}
