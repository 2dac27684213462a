//! Privacy-first analytics (DESIGN §3, §4, D4): ingestion handlers build compact events
//! and hand them to the writer through a bounded channel; the writer commits them in
//! batches together with their roll-ups.

pub(crate) mod activity;
pub(crate) mod api;
pub(crate) mod caps;
pub mod event;
pub mod filter;
pub mod ingest;
pub(crate) mod links;
pub(crate) mod manage;
pub(crate) mod rate_limit;
pub(crate) mod retention;
pub mod stats;
pub mod store;
