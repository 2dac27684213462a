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
