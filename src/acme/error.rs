//! The ACME area's error: what failed, with the CA's problem document when it sent one.

use crate::db::DbError;
use crate::http::ResponseError;
use std::fmt;

/// RFC 8555 §6.7: the CA refused this nonce; a retry with the fresh one succeeds.
pub(crate) const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
/// The CA no longer knows the stored account (a staging reset, a test CA restarted).
pub(crate) const ACCOUNT_DOES_NOT_EXIST: &str = "urn:ietf:params:acme:error:accountDoesNotExist";

#[derive(Debug)]
pub enum AcmeError {
    /// The CA could not be reached or the connection failed (down, refused, TLS, timeout).
    Unreachable(String),
    /// The CA answered with a problem document (RFC 8555 §6.7, RFC 7807).
    Problem {
        status: u16,
        /// e.g. `urn:ietf:params:acme:error:unauthorized`.
        kind: String,
        detail: String,
    },
    /// An answer that does not follow the protocol (missing header or field, bad JSON).
    Protocol(String),
    /// An order or authorization stopped being pending without succeeding (`invalid`),
    /// with the CA's reason when it gave one.
    Failed(String),
    /// Polling gave up after its bounded number of attempts.
    Timeout(String),
    /// A key or certificate could not be made or read.
    Crypto(String),
    /// The database refused to store or read.
    Db(DbError),
}

impl AcmeError {
    /// The problem type, for a problem document.
    pub fn problem_kind(&self) -> Option<&str> {
        match self {
            AcmeError::Problem { kind, .. } => Some(kind),
            _ => None,
        }
    }

    pub(crate) fn is_bad_nonce(&self) -> bool {
        self.problem_kind() == Some(BAD_NONCE)
    }

    pub(crate) fn is_unknown_account(&self) -> bool {
        self.problem_kind() == Some(ACCOUNT_DOES_NOT_EXIST)
    }
}

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AcmeError::Unreachable(m) => write!(f, "ACME server unreachable: {m}"),
            AcmeError::Problem {
                status,
                kind,
                detail,
            } => write!(f, "ACME server refused ({status} {kind}): {detail}"),
            AcmeError::Protocol(m) => write!(f, "unexpected ACME answer: {m}"),
            AcmeError::Failed(m) => write!(f, "ACME validation failed: {m}"),
            AcmeError::Timeout(m) => write!(f, "ACME server still busy: {m}"),
            AcmeError::Crypto(m) => write!(f, "ACME key or certificate: {m}"),
            AcmeError::Db(e) => write!(f, "ACME storage: {e}"),
        }
    }
}

impl std::error::Error for AcmeError {}

impl From<DbError> for AcmeError {
    fn from(e: DbError) -> Self {
        AcmeError::Db(e)
    }
}

// For `POST /api/certs/<name>/renew` (`fazt certs renew`): the CA's failures are a bad
// gateway, not fazt's own fault.
impl ResponseError for AcmeError {
    fn status(&self) -> u16 {
        match self {
            AcmeError::Unreachable(_)
            | AcmeError::Problem { .. }
            | AcmeError::Protocol(_)
            | AcmeError::Failed(_) => 502,
            AcmeError::Timeout(_) => 504,
            AcmeError::Crypto(_) => 500,
            AcmeError::Db(e) => e.status(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AcmeError::Unreachable(_) => "acme_unreachable",
            AcmeError::Problem { .. } => "acme_refused",
            AcmeError::Protocol(_) => "acme_protocol",
            AcmeError::Failed(_) => "acme_validation_failed",
            AcmeError::Timeout(_) => "acme_timeout",
            AcmeError::Crypto(_) => "internal_error",
            AcmeError::Db(e) => e.code(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_document_keeps_its_type_and_detail() {
        let e = AcmeError::Problem {
            status: 400,
            kind: BAD_NONCE.into(),
            detail: "JWS has an invalid anti-replay nonce".into(),
        };
        assert!(e.is_bad_nonce());
        assert_eq!(e.status(), 502);
        assert_eq!(e.code(), "acme_refused");
        let text = e.to_string();
        assert!(
            text.contains("badNonce") && text.contains("anti-replay"),
            "{text}"
        );
        assert!(!AcmeError::Unreachable("x".into()).is_bad_nonce());
    }
}
