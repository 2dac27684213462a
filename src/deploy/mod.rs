//! Deploys (issue #5): uploads, archive extraction, site management and garbage collection.

pub mod archive;
pub mod limits;
pub mod multipart;
pub mod service;
