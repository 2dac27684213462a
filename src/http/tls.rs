//! TLS termination (DESIGN D6): the rustls server configuration, the certificate store
//! that picks a certificate per SNI name, and the loading of certificates (PEM files or a
//! self-signed development certificate). The byte stream itself is driven by
//! [`super::conn::Conn`] over the same non-blocking socket, in the owning core thread.

use crate::platform::metrics::{Collector, Desc, Kind, Source};
use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Sessions kept for resumption by ID (TLS 1.2 clients without tickets) per process: about
/// 200 bytes each, so the cache stays under a few MB.
const SESSION_CACHE_ENTRIES: usize = 8192;
/// Plaintext a connection may queue inside rustls before `writer()` takes no more: our
/// own output queue holds the rest, with its deadlines and rate floors.
pub(crate) const SEND_BUFFER_LIMIT: usize = 64 * 1024;

/// One certificate with the names it is served for (its DNS subject alternative names).
#[derive(Clone)]
pub(crate) struct NamedCert {
    pub names: Vec<String>,
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// What is shown of a served certificate (`fazt certs`, the expiry metric, readiness).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// The issuer's common name or organization.
    pub issuer: Option<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl CertInfo {
    /// Read from the leaf of a chain.
    pub(crate) fn of(leaf: &CertificateDer) -> Result<CertInfo, String> {
        let (not_before, not_after) = super::x509::validity(leaf)?;
        Ok(CertInfo {
            issuer: super::x509::issuer_name(leaf),
            not_before,
            not_after,
        })
    }
}

/// Where a served certificate came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CertSource {
    /// `--tls-cert`/`--tls-key`.
    File,
    /// `--tls-self-signed`.
    SelfSigned,
    /// Issued at run time (ACME), through [`CertStore::insert`].
    Issued,
}

impl CertSource {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CertSource::File => "file",
            CertSource::SelfSigned => "self-signed",
            CertSource::Issued => "acme",
        }
    }
}

/// A name as served now: where its certificate came from and what it is.
#[derive(Clone, Debug)]
pub(crate) struct ServedName {
    pub name: String,
    pub source: CertSource,
    pub info: CertInfo,
}

/// The certificates served, by SNI name. Certificates from files (replaced as a whole on a
/// reload) and certificates inserted per name at run time (issued over ACME) live in two
/// tables, so a reload of the files never drops an issued certificate. A name is looked
/// up exactly, then as `*.parent`; an unknown name or a client without SNI gets the
/// default certificate (the first file's; with none, the handshake fails with an alert).
#[derive(Default)]
pub(crate) struct CertStore {
    table: RwLock<Table>,
}

#[derive(Clone)]
struct Entry {
    key: Arc<CertifiedKey>,
    info: CertInfo,
}

#[derive(Default)]
struct Table {
    inserted: HashMap<String, Entry>,
    files: HashMap<String, Entry>,
    files_source: Option<CertSource>,
    default: Option<Arc<CertifiedKey>>,
}

impl Table {
    fn exact(&self, name: &str) -> Option<&Entry> {
        self.inserted.get(name).or_else(|| self.files.get(name))
    }

    fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let found = name.and_then(|name| {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            self.exact(&name).or_else(|| {
                let (_, parent) = name.split_once('.')?;
                self.exact(&format!("*.{parent}"))
            })
        });
        found
            .map(|entry| &entry.key)
            .or(self.default.as_ref())
            .cloned()
    }
}

impl CertStore {
    pub(crate) fn new() -> Arc<CertStore> {
        Arc::new(CertStore::default())
    }

    /// Serves `key` for `name` (exact, or `*.parent` for a wildcard), replacing the
    /// certificate it had; handshakes already running keep the one they picked.
    pub(crate) fn insert(&self, name: &str, key: Arc<CertifiedKey>, info: CertInfo) {
        self.table
            .write()
            .inserted
            .insert(name.to_ascii_lowercase(), Entry { key, info });
    }

    /// Stops serving the certificate inserted for `name` (its site was deleted).
    pub(crate) fn remove(&self, name: &str) {
        self.table
            .write()
            .inserted
            .remove(&name.to_ascii_lowercase());
    }

    /// Replaces the certificates loaded from files; the first is the default.
    pub(crate) fn replace_files(&self, certs: &[NamedCert], source: CertSource) {
        let mut files = HashMap::new();
        for cert in certs.iter().rev() {
            for name in &cert.names {
                let entry = Entry {
                    key: Arc::clone(&cert.key),
                    info: cert.info.clone(),
                };
                files.insert(name.to_ascii_lowercase(), entry);
            }
        }
        let mut table = self.table.write();
        table.files = files;
        table.files_source = Some(source);
        table.default = certs.first().map(|c| Arc::clone(&c.key));
    }

    /// The certificate a handshake naming `name` gets.
    pub(crate) fn lookup(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.table.read().lookup(name)
    }

    /// Every name served, by name; a name both issued and in a file is served (and
    /// listed) with the issued certificate.
    pub(crate) fn served(&self) -> Vec<ServedName> {
        let table = self.table.read();
        let files_source = table.files_source.unwrap_or(CertSource::File);
        let issued = table.inserted.iter().map(|(name, entry)| ServedName {
            name: name.clone(),
            source: CertSource::Issued,
            info: entry.info.clone(),
        });
        let files = table
            .files
            .iter()
            .filter(|(name, _)| !table.inserted.contains_key(*name))
            .map(|(name, entry)| ServedName {
                name: name.clone(),
                source: files_source,
                info: entry.info.clone(),
            });
        let mut served: Vec<ServedName> = issued.chain(files).collect();
        served.sort_by(|a, b| a.name.cmp(&b.name));
        served
    }
}

static CERT_EXPIRY: Desc = Desc::new(
    Kind::Gauge,
    "fazt_tls_cert_expiry_seconds",
    "tls.cert_expiry_seconds",
    "Seconds until each served certificate expires (negative: expired), by name",
)
.labelled("name");

impl Source for CertStore {
    fn collect(&self, out: &mut Collector) {
        let served = self.served();
        if served.is_empty() {
            out.empty(&CERT_EXPIRY);
        }
        let now = crate::platform::clock::unix_now();
        for name in served {
            out.int_with(&CERT_EXPIRY, &name.name, name.info.not_after - now);
        }
    }
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let table = self.table.read();
        f.debug_struct("CertStore")
            .field("inserted", &table.inserted.len())
            .field("files", &table.files.len())
            .field("default", &table.default.is_some())
            .finish()
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.lookup(hello.server_name())
    }
}

/// The ALPN protocol of TLS-ALPN-01 validation (RFC 8737): a connection that negotiates
/// it is closed once its handshake is done.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// The rustls configuration of a TLS listener: TLS 1.2 and 1.3 only, ALPN `http/1.1` (and
/// `acme-tls/1` when certificates are validated over TLS-ALPN-01), certificates from
/// `resolver`, resumption by rotating tickets and a bounded session cache.
pub(crate) fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    acme_alpn: bool,
) -> Result<Arc<ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if acme_alpn {
        config.alpn_protocols.push(ACME_TLS_ALPN.to_vec());
    }
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    // Ticket keys rotate every 6 hours; a ticket stays valid for one rotation more.
    config.ticketer =
        rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

/// A certificate and key file pair, as given by `--tls-cert`/`--tls-key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Reads a PEM certificate chain and its private key; the names come from the
/// certificate's DNS subject alternative names. Errors name the file and what is wrong.
pub(crate) fn load_files(files: &CertFiles) -> Result<NamedCert, String> {
    let cert_path = files.cert.display();
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| format!("{cert_path}: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{cert_path}: no CERTIFICATE block in the file"));
    }
    let key_path = files.key.display();
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| {
        format!("{key_path}: {e} (expected a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block)")
    })?;
    certified(certs, &key).map_err(|e| format!("{cert_path} with {key_path}: {e}"))
}

fn certified(
    certs: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer,
) -> Result<NamedCert, String> {
    let names = dns_names(&certs[0])?;
    let info = CertInfo::of(&certs[0])?;
    Ok(NamedCert {
        names,
        key: Arc::new(certified_key(certs, key)?),
        info,
    })
}

/// A chain and its private key as rustls serves them, refusing a key that is not the
/// leaf's. Certificate files and certificates issued over ACME both come through here.
pub(crate) fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: &PrivateKeyDer,
) -> Result<CertifiedKey, String> {
    let signer = rustls::crypto::ring::sign::any_supported_type(key).map_err(|e| e.to_string())?;
    let key = CertifiedKey::new(certs, signer);
    key.keys_match()
        .map_err(|e| format!("the key does not belong to the certificate ({e})"))?;
    Ok(key)
}

fn dns_names(cert: &CertificateDer) -> Result<Vec<String>, String> {
    let parsed = webpki::EndEntityCert::try_from(cert)
        .map_err(|e| format!("the certificate cannot be read: {e}"))?;
    Ok(parsed
        .valid_dns_names()
        .map(|n| n.to_ascii_lowercase())
        .collect())
}

/// A self-signed development certificate (ECDSA P-256) for `localhost`, `*.localhost`,
/// the domain and `*.domain`, made at start and kept in memory; its certificate (not the
/// key) is also returned as PEM so it can be written where a client can trust it. The
/// `admin.` and `root.` names are listed too: rustls, OpenSSL and so curl refuse a wildcard
/// directly under a single label (`*.localhost`), so these two verify with any client.
pub(crate) fn self_signed(domain: &str) -> Result<(NamedCert, String), String> {
    let mut names = Vec::new();
    for apex in ["localhost", domain] {
        for name in [
            apex.to_string(),
            format!("*.{apex}"),
            format!("admin.{apex}"),
            format!("root.{apex}"),
        ] {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    let made = rcgen::generate_simple_self_signed(names)
        .map_err(|e| format!("making the self-signed certificate: {e}"))?;
    let pem = made.cert.pem();
    let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
    let cert = certified(vec![made.cert.der().clone()], &key)?;
    Ok((cert, pem))
}

/// Where the self-signed certificate is written for clients to trust (`curl --cacert`,
/// `fazt deploy --ca-file`): public data, not a secret.
pub(crate) fn self_signed_path(data_dir: &Path) -> PathBuf {
    data_dir.join("tls-self-signed.pem")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert_for(names: &[&str]) -> NamedCert {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let made = rcgen::generate_simple_self_signed(names).unwrap();
        let key = PrivateKeyDer::Pkcs8(made.signing_key.serialize_der().into());
        certified(vec![made.cert.der().clone()], &key).unwrap()
    }

    #[test]
    fn names_pick_exact_then_wildcard_then_the_default() {
        let store = CertStore::new();
        let apex = cert_for(&["example.com", "*.example.com"]);
        let other = cert_for(&["other.test"]);
        assert_eq!(apex.names, ["example.com", "*.example.com"]);
        store.replace_files(&[apex.clone(), other.clone()], CertSource::File);
        let is = |name: Option<&str>, want: &NamedCert| {
            Arc::ptr_eq(&store.lookup(name).unwrap(), &want.key)
        };
        assert!(is(Some("example.com"), &apex));
        assert!(is(Some("Blog.Example.com."), &apex));
        assert!(is(Some("other.test"), &other));
        assert!(is(Some("unknown.test"), &apex), "unknown: the default");
        assert!(is(None, &apex), "no SNI: the default");
        // An inserted (issued) certificate wins over the files and survives their reload.
        let issued = cert_for(&["blog.example.com"]);
        store.insert(
            "blog.example.com",
            Arc::clone(&issued.key),
            issued.info.clone(),
        );
        store.replace_files(std::slice::from_ref(&other), CertSource::File);
        assert!(is(Some("blog.example.com"), &issued));
        assert!(is(Some("example.com"), &other), "the new default");
        let served: Vec<_> = store
            .served()
            .into_iter()
            .map(|s| (s.name, s.source))
            .collect();
        assert_eq!(
            served,
            [
                ("blog.example.com".to_string(), CertSource::Issued),
                ("other.test".to_string(), CertSource::File)
            ]
        );
        // A removed issued name falls back to the files (here: the default).
        store.remove("Blog.Example.com");
        assert!(is(Some("blog.example.com"), &other));
        assert_eq!(store.served().len(), 1);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let a = rcgen::generate_simple_self_signed(vec!["a.test".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b.test".into()]).unwrap();
        let key = PrivateKeyDer::Pkcs8(b.signing_key.serialize_der().into());
        let err = certified(vec![a.cert.der().clone()], &key).err().unwrap();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn files_that_are_no_pem_are_named_in_the_error() {
        let dir = std::env::temp_dir().join(format!("fazt-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cert = dir.join("cert.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        let files = CertFiles {
            cert: cert.clone(),
            key: dir.join("missing.pem"),
        };
        let err = load_files(&files).err().unwrap();
        assert!(err.contains("cert.pem: no CERTIFICATE"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
