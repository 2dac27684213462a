//! The answers to pending challenges, shared with the listeners: the plain listener serves
//! HTTP-01 key authorizations at `/.well-known/acme-challenge/<token>`, the TLS listener
//! answers a ClientHello offering ALPN `acme-tls/1` for a name with its TLS-ALPN-01
//! certificate (RFC 8737). Entries live only while an order runs: the client publishes one
//! before telling the CA to validate and withdraws it when the authorization is settled.

use super::AcmeError;
use parking_lot::RwLock;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::Arc;

pub use crate::http::tls::ACME_TLS_ALPN;
/// Where HTTP-01 tokens are fetched (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// The challenge types fazt answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengeKind {
    /// Answered by the plain listener on port 80.
    Http01,
    /// Answered by the TLS listener on port 443, for hosts with only that port open.
    TlsAlpn01,
}

impl ChallengeKind {
    /// The challenge's `type` in ACME documents.
    pub fn wire_name(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "http-01",
            ChallengeKind::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// Which challenge type an attempt uses (`--acme-challenge`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChallengePolicy {
    /// TLS-ALPN-01 first (a host with only port 443 open works); after a failure the next
    /// attempt uses HTTP-01, and so on alternating, so a host where one port is closed or
    /// proxied still gets its certificate.
    Auto,
    Only(ChallengeKind),
}

impl ChallengePolicy {
    /// The type of the attempt after `failures` consecutive failures.
    pub fn kind(self, failures: u32) -> ChallengeKind {
        match self {
            ChallengePolicy::Only(kind) => kind,
            ChallengePolicy::Auto if failures.is_multiple_of(2) => ChallengeKind::TlsAlpn01,
            ChallengePolicy::Auto => ChallengeKind::Http01,
        }
    }

    pub fn parse(text: &str) -> Result<ChallengePolicy, String> {
        match text {
            "auto" => Ok(ChallengePolicy::Auto),
            "http-01" => Ok(ChallengePolicy::Only(ChallengeKind::Http01)),
            "tls-alpn-01" => Ok(ChallengePolicy::Only(ChallengeKind::TlsAlpn01)),
            _ => Err("use auto, http-01 or tls-alpn-01".into()),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ChallengePolicy::Auto => "auto",
            ChallengePolicy::Only(kind) => kind.wire_name(),
        }
    }
}

impl From<ChallengeKind> for ChallengePolicy {
    fn from(kind: ChallengeKind) -> Self {
        ChallengePolicy::Only(kind)
    }
}

/// Pending challenge answers, read by the listeners (any thread), written by the
/// certificate thread. Small: one entry per name being validated right now.
#[derive(Default)]
pub struct Challenges {
    /// token → key authorization.
    http: RwLock<HashMap<String, String>>,
    /// lower-case DNS name → the validation certificate.
    tls_alpn: RwLock<HashMap<String, Arc<CertifiedKey>>>,
}

impl Challenges {
    pub fn new() -> Arc<Challenges> {
        Arc::new(Challenges::default())
    }

    /// The body to answer `GET /.well-known/acme-challenge/<token>` with, if that token is
    /// pending. The listener sends it as `text/plain` (RFC 8555 §8.3 accepts any type).
    pub fn http_answer(&self, token: &str) -> Option<String> {
        self.http.read().get(token).cloned()
    }

    /// [`Challenges::http_answer`] for a request path, `None` for any other path.
    pub fn http_answer_for_path(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        self.http_answer(token)
    }

    /// The certificate to complete a TLS handshake with when the client offers ALPN
    /// `acme-tls/1` and this SNI name; `None` means no validation is pending for it.
    pub fn tls_alpn_cert(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.tls_alpn
            .read()
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Whether anything is pending (for tests and the listeners' fast path).
    pub fn is_empty(&self) -> bool {
        self.http.read().is_empty() && self.tls_alpn.read().is_empty()
    }

    /// Publishes the answer for one challenge; the returned guard withdraws it when dropped,
    /// so an order that fails or panics midway leaves nothing behind.
    pub(crate) fn publish(
        self: &Arc<Self>,
        kind: ChallengeKind,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<Published, AcmeError> {
        let name = name.to_ascii_lowercase();
        match kind {
            ChallengeKind::Http01 => {
                self.http
                    .write()
                    .insert(token.to_string(), key_authorization.to_string());
            }
            ChallengeKind::TlsAlpn01 => {
                let cert = Arc::new(tls_alpn_certificate(&name, key_authorization)?);
                self.tls_alpn.write().insert(name.clone(), cert);
            }
        }
        Ok(Published {
            store: Arc::clone(self),
            kind,
            name,
            token: token.to_string(),
        })
    }
}

/// A published challenge answer; withdrawn on drop.
pub(crate) struct Published {
    store: Arc<Challenges>,
    kind: ChallengeKind,
    name: String,
    token: String,
}

impl Drop for Published {
    fn drop(&mut self) {
        match self.kind {
            ChallengeKind::Http01 => {
                self.store.http.write().remove(&self.token);
            }
            ChallengeKind::TlsAlpn01 => {
                self.store.tls_alpn.write().remove(&self.name);
            }
        }
    }
}

/// RFC 8737 §3: a self-signed certificate for `name` whose critical acmeIdentifier
/// extension holds SHA-256 of the key authorization. Its key is new and thrown away after.
pub fn tls_alpn_certificate(
    name: &str,
    key_authorization: &str,
) -> Result<CertifiedKey, AcmeError> {
    let crypto = |e: String| AcmeError::Crypto(format!("the TLS-ALPN-01 certificate: {e}"));
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params =
        rcgen::CertificateParams::new(vec![name.to_string()]).map_err(|e| crypto(e.to_string()))?;
    params
        .custom_extensions
        .push(rcgen::CustomExtension::new_acme_identifier(digest.as_ref()));
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| crypto(e.to_string()))?;
    let cert = params
        .self_signed(&key)
        .map_err(|e| crypto(e.to_string()))?;
    let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signer =
        rustls::crypto::ring::sign::any_ecdsa_type(&der).map_err(|e| crypto(e.to_string()))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_starts_with_tls_alpn_and_alternates_after_failures() {
        let auto = ChallengePolicy::parse("auto").unwrap();
        let kinds: Vec<_> = (0..4).map(|f| auto.kind(f)).collect();
        use ChallengeKind::*;
        assert_eq!(kinds, [TlsAlpn01, Http01, TlsAlpn01, Http01]);
        let only = ChallengePolicy::parse("http-01").unwrap();
        assert_eq!(only.kind(1), Http01);
        assert_eq!(only.as_str(), "http-01");
        assert!(ChallengePolicy::parse("dns-01").is_err());
    }

    #[test]
    fn http_answers_exist_only_while_published() {
        let store = Challenges::new();
        let guard = store
            .publish(ChallengeKind::Http01, "a.example", "tok_1", "tok_1.thumb")
            .unwrap();
        assert_eq!(store.http_answer("tok_1").as_deref(), Some("tok_1.thumb"));
        assert_eq!(
            store
                .http_answer_for_path("/.well-known/acme-challenge/tok_1")
                .as_deref(),
            Some("tok_1.thumb")
        );
        assert_eq!(store.http_answer_for_path("/tok_1"), None);
        assert_eq!(store.http_answer("other"), None);
        drop(guard);
        assert_eq!(store.http_answer("tok_1"), None);
        assert!(store.is_empty());
    }

    #[test]
    fn tls_alpn_certificates_carry_the_digest_and_go_away() {
        let store = Challenges::new();
        let guard = store
            .publish(ChallengeKind::TlsAlpn01, "B.Example", "tok", "tok.thumb")
            .unwrap();
        let cert = store.tls_alpn_cert("b.example").expect("published");
        assert!(
            store.tls_alpn_cert("B.EXAMPLE").is_some(),
            "names are case-blind"
        );
        let der = cert.cert[0].as_ref();
        // The extension's OID 1.3.6.1.5.5.7.1.31 and the digest both sit in the DER.
        let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f];
        assert!(der.windows(oid.len()).any(|w| w == oid));
        let digest = ring::digest::digest(&ring::digest::SHA256, b"tok.thumb");
        assert!(der.windows(32).any(|w| w == digest.as_ref()));
        drop(guard);
        assert!(store.tls_alpn_cert("b.example").is_none());
    }
}
