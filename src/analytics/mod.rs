//! Privacy-first analytics (DESIGN §3, §4, D4): ingestion handlers build compact events
//! and hand them to the writer through a bounded channel; the writer commits them in
//! batches together with their roll-ups.

pub mod api;
pub mod event;
pub mod ingest;
pub mod links;
pub mod manage;
pub mod proxies;
pub mod retention;
pub mod stats;
pub mod store;
