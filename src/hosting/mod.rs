//! Hosting: sites, immutable deployments and content-addressed blobs in SQLite (`store`),
//! URL path rules (`path`, `rules`), the shared file cache (`cache`) and serving
//! (`sites`, `files`).

pub mod cache;
pub(crate) mod files;
pub(crate) mod path;
pub mod rules;
pub(crate) mod sites;
pub mod store;
pub(crate) mod urls;
