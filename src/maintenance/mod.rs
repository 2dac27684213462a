//! Keeping the one SQLite file safe (issue #16): backups and restores, checks, vacuum,
//! statistics, and exports of deployments. Used by `fazt db …`, `fazt export` and the admin
//! API; runs on the caller's thread (never a core thread).

pub(crate) mod backup;
pub(crate) mod check;
pub(crate) mod export;
pub(crate) mod restore;
pub(crate) mod schedule;
pub(crate) mod stats;
pub(crate) mod vacuum;

#[cfg(test)]
pub(crate) mod tests {
    use std::path::PathBuf;

    /// A temp directory of one test, removed on drop.
    pub(crate) struct Dir(pub(crate) PathBuf);

    impl Dir {
        pub(crate) fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir().join(format!(
                "fazt-maintenance-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
