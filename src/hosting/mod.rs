//! Hosting: sites, immutable deployments and content-addressed blobs in SQLite (`store`),
//! URL path rules (`path`, `rules`), the shared file cache (`cache`), serving (`sites`,
//! `files`) and precompressed variants (`compress` at deploy time, `encoding` to choose one
//! per request).

pub mod cache;
pub(crate) mod compress;
pub(crate) mod encoding;
pub(crate) mod files;
pub(crate) mod path;
pub mod rules;
pub(crate) mod sites;
pub mod store;
pub(crate) mod urls;
