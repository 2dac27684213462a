//! STUB for the runtime branch only: the types of the contract that the runtime uses.
//! Helper STORE's `src/serverless/store/mod.rs` replaces this file at merge.

/// The level of a site's log line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Log,
    Info,
    Warn,
    Error,
}

impl LogLevel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogLevel::Log => "log",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        }
    }
}

/// One kv entry as `kv_list` gives it.
#[derive(Clone, Debug)]
pub(crate) struct KvEntry {
    pub key: String,
    /// JSON text.
    pub value: String,
    pub expires_at_ms: Option<i64>,
}
