//! Serverless apps (issue #14, DESIGN D7): JavaScript handlers for a site's API on a bounded
//! pool of worker threads. Not wired into the server yet. So far:
//! - [`sandbox`]: QuickJS with hard limits on time, memory and stack;
//! - [`pool`]: the worker threads, one bounded queue (full: the caller answers 503), and
//!   each worker's LRU of sites' sandboxes, made anew when a site's code changes.

pub mod pool;
pub mod sandbox;
pub mod store;
