//! Deploys: uploaded archives and forms turned into staged files (issue #5).

pub mod archive;
pub mod multipart;
