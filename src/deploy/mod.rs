//! Deploys (issue #5): uploads, archive extraction, site management and garbage collection.

pub mod sites_api;
