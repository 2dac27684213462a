//! Deploys (issue #5): uploads, archive extraction, site management and garbage collection.

pub mod archive;
pub(crate) mod limits;
pub(crate) mod service;
