//! Serverless apps (issue #14, DESIGN D7): JavaScript handlers for a site's API on a bounded
//! pool of worker threads. Not wired into the server yet; this first step is the sandbox a
//! worker runs scripts in ([`sandbox`]): QuickJS with hard limits on time, memory and stack.

pub mod sandbox;
