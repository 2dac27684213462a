//! Every integration test, compiled as one test binary (ripgrep's layout): one module per
//! feature, all sharing `common` (the harness that starts the real `fazt` binary on free
//! loopback ports with its own temporary data directory). One binary links once instead of
//! once per file, and `cargo test --test integration NAME` still selects by module path
//! (`deploy::`, `storage::…`).
//!
//! Tests run on parallel threads of this one process, so none may change process-wide state
//! (environment variables, the current directory, signal dispositions, rlimits of this
//! process): a setting goes to the spawned server's `Command` instead. Global counters read
//! from the library only ever grow, so a test compares them with `>`/`>=` to its own
//! before-value, never with `==`.
//!
//! A new feature file `tests/integration/NAME.rs` joins with one `mod NAME;` line below
//! (`layout::every_feature_file_is_a_module` fails until it does) and reaches the harness
//! with `use crate::common::*;`.

mod accounts;
mod acme;
mod acme_server;
mod admin_api;
mod analytics_api;
mod analytics_counting;
mod analytics_ingest;
mod analytics_store;
mod apps_ops;
mod backup_schedule;
mod browser;
mod cli;
mod cli_fixes;
mod common;
mod compression;
mod crash_loop;
mod dashboard;
mod dashboard_api;
mod db_backup;
mod db_check;
mod db_layer;
mod deploy;
mod deploy_adversarial;
mod deploy_archive;
mod deploy_cli;
mod deploy_cli_e2e;
mod disk_full;
mod error_shape;
mod export;
mod fair_shares;
mod first_run;
mod go_clients;
mod http_framing;
mod http_limits;
mod http_protocol;
mod http_rfc9110;
mod junk;
mod metrics_format;
mod probe_fixtures;
mod rate_limits;
mod routing;
mod serverless;
mod service;
mod shutdown;
mod site_serving;
mod sites_api;
mod small_fixes;
mod storage;
mod tls;
mod upgrade;
mod vfs_serving;
mod websocket;
mod writer_events;
mod ws_browser;

mod layout;
mod litestream;
