//! fazt: a single-binary personal cloud for small hosts. See DESIGN.md beside the checkout.

pub mod admin;
pub mod analytics;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod deploy;
pub mod disk;
pub mod files;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod probe;
pub mod server;
pub mod sites;
pub mod sys;
pub mod units;
pub mod vfs;
