//! Serverless apps (issue #14, DESIGN D7): JavaScript handlers for a site's API on a bounded
//! pool of worker threads.
//! - [`sandbox`]: QuickJS with hard limits on time, memory and stack;
//! - [`runtime`]: a site's script on a sandbox: the request and response types, the script
//!   API of both styles (`api/main.js`, v0.7.1's `main.js`), the host calls with their caps,
//!   and the shared bytecode cache;
//! - [`pool`]: the worker threads, one bounded queue (full: the caller answers 503), and
//!   each worker's LRU of sites' sandboxes, made anew when a site's code changes;
//! - `metrics`: the `fazt_js_*` metrics.

pub(crate) mod fetch;
pub(crate) mod metrics;
pub(crate) mod pool;
pub mod runtime;
pub mod sandbox;
pub mod store;
