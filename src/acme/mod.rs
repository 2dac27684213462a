//! Certificates over ACME (RFC 8555), kept by the certificate thread ([`manager`]). Synchronous: each step is a blocking HTTPS request, and polling sleeps on the
//! calling thread, which is never a core or admin thread.
//!
//! Why our own client and not `instant-acme` (0.8.5): with its default features off (ring
//! only), `cargo tree` shows 10 crates fazt does not build yet — tokio, http, http-body,
//! http-body-util, bytes, futures-core, pin-project-lite, async-trait, a second base64 and
//! itself — and its order polling sleeps with `tokio::time::sleep`, which needs a tokio
//! runtime: the "minimal executor" would have to be tokio after all. The subset fazt needs
//! (one account, one name per order, HTTP-01 and TLS-ALPN-01) is a few hundred lines on what
//! is already built: rustls (transport), ring (ES256 JWS, SHA-256), rcgen (CSR, challenge
//! certificate), serde_json, and base64 (`pem`'s version).
//!
//! - [`client`]: directory, nonces, account, orders, authorizations, challenges, finalize.
//! - [`challenge`]: the [`Challenges`] store the listeners answer from.
//! - [`jws`]: the P-256 account key and the JWS envelope.
//! - [`schedule`]: when to renew and how to back off, as pure functions.
//! - [`store`]: the account and the certificates in SQLite, written through the writer.
//! - [`obtain`]: one attempt for one name, its outcome stored either way; [`renew_due`]:
//!   an attempt for each name whose time has come.
//! - [`manager`]: the certificate thread: which names, when, and serving the result.
//! - [`der`]: `http::x509`, the validity of a certificate read from its DER.
//!
//! One name per order: each site gets its own certificate, so adding or deleting a site
//! never touches the certificates of the others, and one failing name (its DNS points
//! elsewhere) never holds up the rest. Wildcards would need DNS-01, which fazt cannot answer.

pub mod challenge;
pub mod client;

mod error;
pub mod jws;
pub(crate) mod manager;
mod renew;
pub mod schedule;
pub mod store;
mod transport;

pub use crate::http::x509 as der;
pub use challenge::{ChallengeKind, ChallengePolicy, Challenges};
pub use client::{AcmeClient, AcmeConfig, Issued, PollPolicy};
pub use error::AcmeError;
pub use renew::{obtain, renew_due, Attempt};
