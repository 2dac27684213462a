//! fazt: a single-binary personal cloud for small hosts. The layers, bottom to top, are
//! described in ARCHITECTURE.md.

#![deny(unsafe_code)]

pub mod acme;
pub(crate) mod admin;
pub mod analytics;
pub(crate) mod auth;
pub mod cli;
pub(crate) mod client;
pub mod db;
pub mod deploy;
#[doc(hidden)]
pub mod fuzzing;
pub mod hosting;
pub mod http;
pub(crate) mod keys;
pub(crate) mod maintenance;
pub mod platform;
pub(crate) mod server;
pub mod serverless;
