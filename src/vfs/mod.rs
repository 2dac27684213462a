//! The content-addressed virtual filesystem (DESIGN §3, D3): request paths, serving rules,
//! the byte-bounded file cache, and the store of sites, deployments and blobs.

pub mod cache;
pub mod path;
pub mod rules;
pub mod store;
