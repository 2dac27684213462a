//! Certificates over ACME (RFC 8555), for the certificate thread the server will run
//! (issue #12). Synchronous: each step is a blocking HTTPS request, and polling sleeps on the
//! calling thread, which is never a core or admin thread.
//!
//! Why our own client and not `instant-acme`: with its default features off (ring only),
//! `cargo tree` shows it still pulls tokio (its `time` feature: polling sleeps on tokio's
//! timer, which panics outside a tokio runtime), `http`, `http-body`, `bytes`,
//! `async-trait` and a second `syn` — 64 crates against the 0 new ones here beyond `base64`
//! (already built for `pem`) and direct use of `ring` (already built for rustls). The
//! protocol subset fazt needs — one account, one name per order, HTTP-01 and TLS-ALPN-01 —
//! is a few hundred lines on rustls, ring (ES256 JWS) and rcgen (CSR, challenge certificate).
//!
//! - [`client`]: directory, nonces, account, orders, authorizations, challenges, finalize.
//! - [`challenge`]: the [`Challenges`] store the listeners answer from.
//! - [`jws`]: the P-256 account key and the JWS envelope.
//! - [`schedule`]: when to renew and how to back off, as pure functions.
//! - [`store`]: the account and the certificates in SQLite, written through the writer.
//! - [`obtain`]: one attempt for one name, its outcome stored either way.
//! - [`der`]: the validity of a certificate, read from its DER.
//!
//! One name per order: each site gets its own certificate, so adding or deleting a site
//! never touches the certificates of the others, and one failing name (its DNS points
//! elsewhere) never holds up the rest. Wildcards would need DNS-01, which fazt cannot answer.

pub mod challenge;
pub mod client;
pub mod der;
mod error;
pub mod jws;
mod renew;
pub mod schedule;
pub mod store;
mod transport;

pub use challenge::{ChallengeKind, Challenges};
pub use client::{AcmeClient, AcmeConfig, Issued, PollPolicy};
pub use error::AcmeError;
pub use renew::{obtain, Attempt};
