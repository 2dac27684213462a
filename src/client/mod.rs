//! The deploy client: `fazt deploy|login|sites|rollback|certs|env|logs` talking to a fazt server's admin API.

pub(crate) mod api;
pub(crate) mod apps;
pub(crate) mod certs;
pub(crate) mod config;
pub(crate) mod deploy;
pub(crate) mod http;
pub(crate) mod multipart;
pub(crate) mod progress;
pub(crate) mod sites;
pub(crate) mod tls;
pub(crate) mod transport;
pub(crate) mod url;
pub(crate) mod zipbuild;

/// A client failure and how the process should exit for it.
#[derive(Debug)]
pub enum ClientError {
    /// The command cannot run as given: arguments, configuration, the directory (exit 2).
    Usage(String),
    /// It ran and failed: network, server answer, local I/O (exit 1).
    Failed(String),
}

// The tests read failures through these; the CLI matches on the variants.
#[cfg(test)]
impl ClientError {
    pub fn message(&self) -> &str {
        match self {
            ClientError::Usage(m) | ClientError::Failed(m) => m,
        }
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Usage(_) => 2,
            ClientError::Failed(_) => 1,
        }
    }
}
