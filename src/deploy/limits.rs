//! Deploy settings, from `FAZT_*` variables over defaults.

use crate::platform::units::parse_bytes;

/// Largest upload accepted (`FAZT_MAX_UPLOAD`). Bigger than any static site we expect a
/// small host to serve, small enough that a spooled upload plus its extracted files fit
/// next to the database on a droplet's disk.
pub const DEFAULT_MAX_UPLOAD: u64 = 256 * 1024 * 1024;
/// Deploys a key may start per minute (`FAZT_DEPLOY_RATE`): a CI loop gone wrong is
/// stopped long before it fills the disk with deployments.
pub const DEFAULT_RATE_PER_MINUTE: u32 = 30;

#[derive(Clone, Debug)]
pub struct DeployLimits {
    pub max_upload: u64,
    pub rate_per_minute: u32,
    /// Files in one archive (`FAZT_DEPLOY_MAX_FILES`); `None` keeps the archive default.
    pub max_files: Option<usize>,
    /// Uncompressed bytes of one archive (`FAZT_DEPLOY_MAX_BYTES`); `None`: the default.
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

impl DeployLimits {
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Result<DeployLimits, String> {
        let defaults = DeployLimits::default();
        let size = |var: &str| -> Result<Option<u64>, String> {
            env(var)
                .map(|text| match parse_bytes(&text) {
                    Ok(0) => Err(format!("{var}: must be greater than zero")),
                    Ok(n) => Ok(n),
                    Err(e) => Err(format!("{var}: {e}")),
                })
                .transpose()
        };
        let count = |var: &str| -> Result<Option<u64>, String> {
            env(var)
                .map(|text| {
                    text.trim()
                        .parse::<u64>()
                        .ok()
                        .filter(|&n| n >= 1)
                        .ok_or(format!("{var}: '{text}' is not a positive whole number"))
                })
                .transpose()
        };
        Ok(DeployLimits {
            max_upload: size("FAZT_MAX_UPLOAD")?.unwrap_or(defaults.max_upload),
            rate_per_minute: count("FAZT_DEPLOY_RATE")?
                .map_or(defaults.rate_per_minute, |n| n.min(u32::MAX as u64) as u32),
            max_files: count("FAZT_DEPLOY_MAX_FILES")?.map(|n| n as usize),
            max_total_bytes: size("FAZT_DEPLOY_MAX_BYTES")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_bad_values_name_their_variable() {
        let env = |k: &str| match k {
            "FAZT_MAX_UPLOAD" => Some("10M".to_string()),
            "FAZT_DEPLOY_RATE" => Some("2".to_string()),
            _ => None,
        };
        let limits = DeployLimits::from_env(&env).unwrap();
        assert_eq!(limits.max_upload, 10 * 1024 * 1024);
        assert_eq!(limits.rate_per_minute, 2);
        assert_eq!(limits.max_files, None);
        let bad = |k: &str| (k == "FAZT_DEPLOY_MAX_FILES").then(|| "0".to_string());
        let err = DeployLimits::from_env(&bad).unwrap_err();
        assert!(err.starts_with("FAZT_DEPLOY_MAX_FILES"), "{err}");
        let bad = |k: &str| (k == "FAZT_MAX_UPLOAD").then(|| "lots".to_string());
        assert!(DeployLimits::from_env(&bad)
            .unwrap_err()
            .starts_with("FAZT_MAX_UPLOAD"));
    }
}
