//! The TLS listener's certificates at run time: loaded at start (files or a self-signed
//! development certificate; certificates issued over ACME are added by the certificate
//! thread), handed to the core threads' loops as one rustls configuration whose resolver
//! reads the shared [`CertStore`], and answers TLS-ALPN-01 validations.

use super::config::TlsConfig;
use super::event_loop::TlsListener;
use crate::acme::Challenges;
use crate::http::tls::{self, CertFiles, CertSource, CertStore, ACME_TLS_ALPN};
use parking_lot::Mutex;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the certificate files' modification times are looked at.
const WATCH_EVERY: Duration = Duration::from_secs(2);

pub struct TlsState {
    /// The certificates served, by name; shared with every handshake.
    pub store: Arc<CertStore>,
    config: Arc<rustls::ServerConfig>,
    /// The files the certificates came from (empty for the self-signed one).
    files: Vec<CertFiles>,
    max_handshakes: usize,
    hsts: Option<String>,
    /// The files' modification times when last loaded (or tried), and the next look.
    watch: Mutex<Watch>,
}

struct Watch {
    mtimes: Vec<Option<SystemTime>>,
    next: Instant,
}

impl TlsState {
    /// Loads the certificates `tls` names; an unreadable file is a start-up error that
    /// names it. With `challenges` (ACME on), handshakes offering ALPN `acme-tls/1` are
    /// answered from it.
    pub fn start(
        tls: &TlsConfig,
        domain: &str,
        data_dir: &Path,
        challenges: Option<Arc<Challenges>>,
    ) -> Result<TlsState, String> {
        let store = CertStore::new();
        if tls.self_signed {
            let (cert, pem) = tls::self_signed(domain)?;
            let path = tls::self_signed_path(data_dir);
            std::fs::write(&path, pem).map_err(|e| format!("writing {}: {e}", path.display()))?;
            log::info!(
                "TLS: self-signed certificate for {} (made now, key in memory only); trust it with curl --cacert {}",
                cert.names.join(", "),
                path.display()
            );
            store.replace_files(&[cert], CertSource::SelfSigned);
        } else {
            let certs = load_all(&tls.files).map_err(|e| format!("--tls-cert: {e}"))?;
            store.replace_files(&certs, CertSource::File);
        }
        if !tls.files.is_empty() {
            crate::platform::sys::catch_hangup()
                .map_err(|e| format!("installing the SIGHUP handler: {e}"))?;
        }
        Ok(TlsState {
            watch: Mutex::new(Watch {
                mtimes: mtimes(&tls.files),
                next: Instant::now() + WATCH_EVERY,
            }),
            config: tls::server_config(
                Arc::new(Resolver {
                    store: Arc::clone(&store),
                    challenges,
                }),
                tls.acme.is_some(),
            )?,
            store,
            files: tls.files.clone(),
            max_handshakes: tls.max_handshakes,
            hsts: tls.hsts.map(|age| format!("max-age={}", age.as_secs())),
        })
    }

    /// The TLS side of a core thread's loop, on its clone of the listener.
    pub fn listener(&self, listener: TcpListener) -> TlsListener {
        TlsListener {
            listener,
            config: Arc::clone(&self.config),
            max_handshakes: self.max_handshakes,
            hsts: self.hsts.clone(),
        }
    }
}

impl TlsState {
    /// Periodic work of the admin thread: reloads the certificate files after a SIGHUP or
    /// when one of them changed. A file that fails to load keeps the certificates served
    /// now and logs why (once per change).
    pub fn on_tick(&self) {
        if self.files.is_empty() {
            return;
        }
        let hangup = crate::platform::sys::take_hangup();
        let mut watch = self.watch.lock();
        let now = Instant::now();
        if !hangup && now < watch.next {
            return;
        }
        watch.next = now + WATCH_EVERY;
        let current = mtimes(&self.files);
        if !hangup && current == watch.mtimes {
            return;
        }
        watch.mtimes = current;
        let why = if hangup {
            "SIGHUP"
        } else {
            "the files changed"
        };
        match load_all(&self.files) {
            Ok(certs) => {
                self.store.replace_files(&certs, CertSource::File);
                log::info!("TLS: certificates reloaded ({why})");
            }
            Err(e) => log::error!(
                "TLS: reload ({why}) failed, still serving the previous certificates: {e}"
            ),
        }
    }
}

/// Picks the certificate of a handshake: a pending TLS-ALPN-01 validation's for a client
/// offering only `acme-tls/1` (the CA), else the store's by SNI.
struct Resolver {
    store: Arc<CertStore>,
    challenges: Option<Arc<Challenges>>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        if let Some(challenges) = &self.challenges {
            if hello
                .alpn()
                .is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN))
            {
                // None when nothing is pending for the name: the handshake ends with an
                // alert.
                return challenges.tls_alpn_cert(hello.server_name()?);
            }
        }
        self.store.lookup(hello.server_name())
    }
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("store", &self.store)
            .field("acme", &self.challenges.is_some())
            .finish()
    }
}

/// Modification times of every certificate and key file (`None`: unreadable now).
fn mtimes(files: &[CertFiles]) -> Vec<Option<SystemTime>> {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    files
        .iter()
        .flat_map(|f| [mtime(&f.cert), mtime(&f.key)])
        .collect()
}

/// Loads every pair, logging the names each certificate is served for.
fn load_all(files: &[CertFiles]) -> Result<Vec<tls::NamedCert>, String> {
    let mut certs = Vec::with_capacity(files.len());
    for (i, pair) in files.iter().enumerate() {
        let cert = tls::load_files(pair)?;
        let role = if i == 0 { ", and any other name" } else { "" };
        log::info!(
            "TLS: {} serves {}{role}",
            pair.cert.display(),
            cert.names.join(", ")
        );
        certs.push(cert);
    }
    Ok(certs)
}
