//! Automatic certificates in the server: the ACME client's configuration from the
//! settings, the names the certificate thread keeps certificates for, and its start.

use super::config::AcmeSettings;
use crate::acme::manager::{self, CertManager, ManagerSetup, Names};
use crate::acme::{AcmeConfig, Challenges};
use crate::db::writer::WriterHandle;
use crate::hosting::sites::SiteServer;
use crate::hosting::store::is_system_site;
use crate::http::tls::CertStore;
use rusqlite::Connection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::sync::Arc;

/// Starts the certificate thread, after serving the certificates already stored.
pub fn start(
    settings: &AcmeSettings,
    domain: &str,
    sites: Arc<SiteServer>,
    writer: WriterHandle,
    reader: Connection,
    challenges: Arc<Challenges>,
    certs: Arc<CertStore>,
) -> Result<CertManager, String> {
    check_domain(domain)?;
    let setup = ManagerSetup {
        config: acme_config(settings)?,
        policy: settings.challenge,
        writer,
        reader,
        challenges,
        certs,
        names: names(sites, domain.to_string()),
    };
    log::info!(
        "certificates over ACME from {} ({} challenges), contact {}",
        settings.directory,
        settings.challenge.as_str(),
        settings.email
    );
    manager::spawn(setup).map_err(|e| format!("starting the certificate thread: {e}"))
}

/// A CA can only validate a public DNS name: `localhost` or an address would fail every
/// order, so it is a start-up error instead.
fn check_domain(domain: &str) -> Result<(), String> {
    let local = domain == "localhost" || domain.ends_with(".localhost");
    if local || domain.parse::<std::net::IpAddr>().is_ok() || !domain.contains('.') {
        return Err(format!(
            "--acme-email: certificates need the public DNS name fazt serves, and the domain is '{domain}'; set --domain (FAZT_DOMAIN)"
        ));
    }
    Ok(())
}

/// The client's configuration: the public web roots, plus `--acme-ca-file`'s.
fn acme_config(settings: &AcmeSettings) -> Result<AcmeConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = &settings.ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("--acme-ca-file {shown}: {e}"))?;
        if certs.is_empty() {
            return Err(format!("--acme-ca-file {shown}: no CERTIFICATE block"));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| format!("--acme-ca-file {shown}: {e}"))?;
        }
    }
    let mut config =
        AcmeConfig::with_roots(&settings.directory, roots).map_err(|e| e.to_string())?;
    config.email = Some(settings.email.clone());
    Ok(config)
}

/// The names fazt answers for: the domain, `admin.`, `root.` and every deployed site but
/// the `404` pages. Read from the site table each time, so a deploy (or a `site import`
/// by another process, once the admin thread reloads the table) adds its name.
fn names(sites: Arc<SiteServer>, domain: String) -> Names {
    Box::new(move || {
        let mut names = vec![
            domain.clone(),
            format!("admin.{domain}"),
            format!("root.{domain}"),
        ];
        let served = sites.table.names().into_iter();
        names.extend(
            served
                .filter(|site| !is_system_site(site))
                .map(|site| format!("{site}.{domain}")),
        );
        names
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_names_can_have_certificates() {
        for bad in ["localhost", "a.localhost", "127.0.0.1", "::1", "intranet"] {
            assert!(check_domain(bad).is_err(), "{bad}");
        }
        assert!(check_domain("example.com").is_ok());
    }
}
