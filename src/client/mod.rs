//! The deploy client: `fazt deploy|login|sites|rollback` talking to a fazt server's admin API.

pub mod api;
pub mod config;
pub mod deploy;
pub mod http;
pub mod multipart;
pub mod progress;
pub mod sites;
pub mod tls;
pub mod transport;
pub mod url;
pub mod zipbuild;

/// A client failure and how the process should exit for it.
#[derive(Debug)]
pub enum ClientError {
    /// The command cannot run as given: arguments, configuration, the directory (exit 2).
    Usage(String),
    /// It ran and failed: network, server answer, local I/O (exit 1).
    Failed(String),
}

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
