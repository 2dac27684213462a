//! The ACME protocol (RFC 8555) over blocking HTTPS: directory, nonces, account, one order
//! per name, its authorizations and challenges, finalize with a CSR, and the chain.

use super::challenge::{ChallengeKind, Challenges};
use super::jws::{b64, AccountKey};
use super::transport::{self, Response, Timeouts};
use super::AcmeError;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Let's Encrypt's production directory, the server's default (`--acme-directory`).
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (untrusted certificates, generous rate limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// How orders and authorizations are polled: at most `attempts` times, waiting what the
/// CA's `Retry-After` asks (or `default_wait`), never more than `max_wait` at a time.
#[derive(Clone, Copy, Debug)]
pub struct PollPolicy {
    pub attempts: u32,
    pub default_wait: Duration,
    pub max_wait: Duration,
}

impl Default for PollPolicy {
    /// At most ten minutes per order: Let's Encrypt validates in seconds.
    fn default() -> Self {
        PollPolicy {
            attempts: 60,
            default_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(10),
        }
    }
}

/// Where the CA is and how to reach it.
#[derive(Clone)]
pub struct AcmeConfig {
    pub directory_url: String,
    /// Trust for the CA's own https endpoint.
    pub tls: Arc<rustls::ClientConfig>,
    /// An e-mail address for the account's `contact` (the CA's expiry notices).
    pub email: Option<String>,
    pub poll: PollPolicy,
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

impl AcmeConfig {
    /// A CA reached through the public web PKI (Mozilla's roots), like Let's Encrypt.
    pub fn new(directory_url: &str) -> Result<AcmeConfig, AcmeError> {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        AcmeConfig::with_roots(directory_url, roots)
    }

    /// A CA whose https endpoint is trusted through `roots` (a test CA like Pebble's).
    pub fn with_roots(
        directory_url: &str,
        roots: rustls::RootCertStore,
    ) -> Result<AcmeConfig, AcmeError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| AcmeError::Crypto(format!("TLS setup: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(AcmeConfig {
            directory_url: directory_url.to_string(),
            tls: Arc::new(tls),
            email: None,
            poll: PollPolicy::default(),
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(30),
        })
    }
}

/// A certificate in hand: the PEM chain (leaf first), its new private key and its validity.
pub struct Issued {
    pub name: String,
    pub chain_pem: String,
    pub key_pem: String,
    pub not_before: i64,
    pub not_after: i64,
}

// The key stays out of logs and test failure output.
impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("name", &self.name)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

struct Directory {
    new_nonce: String,
    new_account: String,
    new_order: String,
}

/// A session with one CA under one account key.
pub struct AcmeClient {
    config: AcmeConfig,
    key: AccountKey,
    directory: Directory,
    nonce: Option<String>,
    account_url: Option<String>,
}

impl AcmeClient {
    /// Fetches the CA's directory. Fails with [`AcmeError::Unreachable`] when the CA is down.
    pub fn connect(config: AcmeConfig, key: AccountKey) -> Result<AcmeClient, AcmeError> {
        let timeouts = Timeouts {
            connect: config.connect_timeout,
            io: config.io_timeout,
        };
        let response = transport::send(&config.tls, timeouts, "GET", &config.directory_url, None)?;
        let doc = checked_json(&response)?;
        let url = |field: &str| {
            doc[field]
                .as_str()
                .map(str::to_string)
                .ok_or_else(|| AcmeError::Protocol(format!("the directory has no {field:?} URL")))
        };
        let directory = Directory {
            new_nonce: url("newNonce")?,
            new_account: url("newAccount")?,
            new_order: url("newOrder")?,
        };
        Ok(AcmeClient {
            config,
            key,
            directory,
            nonce: None,
            account_url: None,
        })
    }

    pub fn key(&self) -> &AccountKey {
        &self.key
    }

    /// Uses an account URL found earlier (stored), skipping newAccount; `None` forgets it,
    /// so the next request asks newAccount again.
    pub fn set_account_url(&mut self, url: Option<String>) {
        self.account_url = url;
    }

    /// The account URL for this key: created on first use, found again by its key after
    /// (RFC 8555 §7.3: newAccount with a known key answers 200 and its URL).
    pub fn account(&mut self) -> Result<String, AcmeError> {
        if let Some(url) = &self.account_url {
            return Ok(url.clone());
        }
        let mut payload = json!({ "termsOfServiceAgreed": true });
        if let Some(email) = &self.config.email {
            payload["contact"] = json!([format!("mailto:{email}")]);
        }
        let url = self.directory.new_account.clone();
        let response = self.post(&url, None, Some(&payload))?;
        let account = location(&response)?;
        self.account_url = Some(account.clone());
        Ok(account)
    }

    /// Orders a certificate for `name` alone, proving control with a `kind` challenge whose
    /// answer is published in `challenges` while the CA validates, and returns the chain
    /// with a new P-256 key.
    pub fn issue(
        &mut self,
        name: &str,
        kind: ChallengeKind,
        challenges: &Arc<Challenges>,
    ) -> Result<Issued, AcmeError> {
        let name = name.to_ascii_lowercase();
        let payload = json!({ "identifiers": [{ "type": "dns", "value": name }] });
        let new_order = self.directory.new_order.clone();
        let response = self.signed_post(&new_order, Some(&payload))?;
        let order_url = location(&response)?;
        let order = checked_json(&response)?;
        for authz in string_list(&order, "authorizations")? {
            self.authorize(&authz, kind, challenges)?;
        }
        let order = self.poll(&order_url, "the order", |o| o["status"] != "pending")?;
        expect_status(&order, "ready", "the order")?;
        let finalize = field(&order, "finalize")?;

        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AcmeError::Crypto(format!("the certificate key: {e}")))?;
        let csr = csr(&name, &key)?;
        let response = self.signed_post(&finalize, Some(&json!({ "csr": b64(&csr) })))?;
        let mut order = checked_json(&response)?;
        if order["status"] != "valid" {
            // `processing` while the CA signs; `ready` can linger a moment before it.
            let settled = |o: &Value| o["status"] == "valid" || o["status"] == "invalid";
            order = self.poll(&order_url, "the order", settled)?;
        }
        expect_status(&order, "valid", "the order")?;
        let certificate = field(&order, "certificate")?;
        let response = self.signed_post(&certificate, None)?;
        let chain_pem = String::from_utf8(response.body)
            .map_err(|_| AcmeError::Protocol("the certificate chain is not text".into()))?;
        let (not_before, not_after) = super::der::leaf_validity(&chain_pem)
            .map_err(|e| AcmeError::Protocol(format!("the certificate chain: {e}")))?;
        Ok(Issued {
            name,
            chain_pem,
            key_pem: key.serialize_pem(),
            not_before,
            not_after,
        })
    }

    /// Settles one authorization: nothing to do if already valid (a recent order for the
    /// same name), else answer its `kind` challenge and wait for the CA's verdict.
    fn authorize(
        &mut self,
        url: &str,
        kind: ChallengeKind,
        challenges: &Arc<Challenges>,
    ) -> Result<(), AcmeError> {
        let authz = checked_json(&self.signed_post(url, None)?)?;
        match authz["status"].as_str() {
            Some("valid") => return Ok(()),
            Some("pending") => {}
            _ => return Err(AcmeError::Failed(describe(&authz, "the authorization"))),
        }
        let name = authz["identifier"]["value"]
            .as_str()
            .ok_or_else(|| AcmeError::Protocol("an authorization without a name".into()))?;
        let challenge = authz["challenges"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["type"] == kind.wire_name()))
            .ok_or_else(|| {
                AcmeError::Failed(format!(
                    "the CA offers no {} challenge for {name}",
                    kind.wire_name()
                ))
            })?;
        let token = field(challenge, "token")?;
        if token.is_empty()
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(AcmeError::Protocol(format!(
                "a challenge token {token:?} that is not base64url"
            )));
        }
        let challenge_url = field(challenge, "url")?;
        let key_authorization = self.key.key_authorization(&token);
        // Withdrawn when this function returns, whatever the outcome.
        let _published = challenges.publish(kind, name, &token, &key_authorization)?;
        self.signed_post(&challenge_url, Some(&json!({})))?;
        let authz = self.poll(url, "the authorization", |a| a["status"] != "pending")?;
        if authz["status"] != "valid" {
            return Err(AcmeError::Failed(describe(
                &authz,
                &format!("{} for {name}", kind.wire_name()),
            )));
        }
        Ok(())
    }

    /// POST-as-GET `url` until `done` holds, within the poll policy.
    fn poll(
        &mut self,
        url: &str,
        what: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Result<Value, AcmeError> {
        let policy = self.config.poll;
        for _ in 0..policy.attempts {
            let response = self.signed_post(url, None)?;
            let doc = checked_json(&response)?;
            if done(&doc) {
                return Ok(doc);
            }
            let asked = response
                .header("retry-after")
                .and_then(|v| retry_after(v, SystemTime::now()));
            std::thread::sleep(asked.unwrap_or(policy.default_wait).min(policy.max_wait));
        }
        Err(AcmeError::Timeout(format!(
            "{what} was still not settled after {} polls",
            policy.attempts
        )))
    }

    /// A POST signed with the account's `kid` (making the account first if needed).
    fn signed_post(&mut self, url: &str, payload: Option<&Value>) -> Result<Response, AcmeError> {
        let kid = self.account()?;
        self.post(url, Some(&kid), payload)
    }

    /// A signed POST; a `badNonce` refusal is retried once with the nonce it carried.
    fn post(
        &mut self,
        url: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Response, AcmeError> {
        match self.post_once(url, kid, payload) {
            Err(e) if e.is_bad_nonce() => self.post_once(url, kid, payload),
            other => other,
        }
    }

    fn post_once(
        &mut self,
        url: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Response, AcmeError> {
        let nonce = match self.nonce.take() {
            Some(nonce) => nonce,
            None => self.fresh_nonce()?,
        };
        let body = self.key.sign(url, &nonce, kid, payload)?;
        let response = transport::send(
            &self.config.tls,
            self.timeouts(),
            "POST",
            url,
            Some(("application/jose+json", &body)),
        )?;
        self.nonce = response.header("replay-nonce").map(str::to_string);
        if response.status >= 400 {
            return Err(problem(&response));
        }
        Ok(response)
    }

    fn fresh_nonce(&mut self) -> Result<String, AcmeError> {
        let url = self.directory.new_nonce.clone();
        let response = transport::send(&self.config.tls, self.timeouts(), "HEAD", &url, None)?;
        if response.status >= 400 {
            return Err(problem(&response));
        }
        response
            .header("replay-nonce")
            .map(str::to_string)
            .ok_or_else(|| AcmeError::Protocol("newNonce answered without a Replay-Nonce".into()))
    }

    fn timeouts(&self) -> Timeouts {
        Timeouts {
            connect: self.config.connect_timeout,
            io: self.config.io_timeout,
        }
    }
}

/// A CSR for `name` alone (RFC 8555 §7.4: the CA takes the names from it).
fn csr(name: &str, key: &rcgen::KeyPair) -> Result<Vec<u8>, AcmeError> {
    let crypto = |e: rcgen::Error| AcmeError::Crypto(format!("the CSR for {name}: {e}"));
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(crypto)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    Ok(params
        .serialize_request(key)
        .map_err(crypto)?
        .der()
        .to_vec())
}

/// The answer's JSON, or its problem document as an error.
fn checked_json(response: &Response) -> Result<Value, AcmeError> {
    if response.status >= 400 {
        return Err(problem(response));
    }
    serde_json::from_slice(&response.body).map_err(|e| {
        AcmeError::Protocol(format!(
            "status {} with a body that is not JSON: {e}",
            response.status
        ))
    })
}

/// The problem document of a refusal (RFC 7807), or what can be said without one.
fn problem(response: &Response) -> AcmeError {
    let doc: Value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    let text = |name: &str| doc[name].as_str().map(str::to_string);
    AcmeError::Problem {
        status: response.status,
        kind: text("type").unwrap_or_else(|| "about:blank".into()),
        detail: text("detail").unwrap_or_else(|| {
            let body = String::from_utf8_lossy(&response.body);
            body.chars().take(200).collect()
        }),
    }
}

fn location(response: &Response) -> Result<String, AcmeError> {
    response
        .header("location")
        .map(str::to_string)
        .ok_or_else(|| {
            AcmeError::Protocol(format!("status {} without a Location", response.status))
        })
}

fn field(doc: &Value, name: &str) -> Result<String, AcmeError> {
    doc[name]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| AcmeError::Protocol(format!("no {name:?} in {doc}")))
}

fn string_list(doc: &Value, name: &str) -> Result<Vec<String>, AcmeError> {
    let list = doc[name]
        .as_array()
        .ok_or_else(|| AcmeError::Protocol(format!("no {name:?} list")))?;
    list.iter()
        .map(|v| v.as_str().map(str::to_string))
        .collect::<Option<_>>()
        .ok_or_else(|| AcmeError::Protocol(format!("{name:?} holds something that is not a URL")))
}

fn expect_status(doc: &Value, want: &str, what: &str) -> Result<(), AcmeError> {
    if doc["status"] == want {
        return Ok(());
    }
    Err(AcmeError::Failed(describe(doc, what)))
}

/// What went wrong with an order or authorization: its status and the first problem the
/// CA attached (the order's `error`, or a challenge's).
fn describe(doc: &Value, what: &str) -> String {
    let status = doc["status"].as_str().unwrap_or("?");
    let challenge_error = doc["challenges"]
        .as_array()
        .and_then(|list| list.iter().find_map(|c| c.get("error")));
    match doc.get("error").or(challenge_error) {
        Some(error) => format!(
            "{what} is {status}: {} ({})",
            error["detail"].as_str().unwrap_or("no detail"),
            error["type"].as_str().unwrap_or("no type")
        ),
        None => format!("{what} is {status}"),
    }
}

/// `Retry-After` (RFC 9110 §10.2.3): seconds, or an HTTP date (a past date means now).
pub fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    if let Ok(secs) = value.trim().parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value.trim()).ok()?;
    Some(when.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("3", now), Some(Duration::from_secs(3)));
        // 784111777 is Sun, 06 Nov 1994 08:49:37 GMT.
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:47 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon", now), None);
        assert_eq!(retry_after("-1", now), None);
    }

    #[test]
    fn refusals_carry_the_problem_document() {
        let response = Response {
            status: 403,
            headers: vec![],
            body: br#"{"type":"urn:ietf:params:acme:error:unauthorized","detail":"no"}"#.to_vec(),
        };
        match problem(&response) {
            AcmeError::Problem {
                status,
                kind,
                detail,
            } => {
                assert_eq!(
                    (status, kind.as_str(), detail.as_str()),
                    (403, "urn:ietf:params:acme:error:unauthorized", "no")
                );
            }
            other => panic!("{other:?}"),
        }
        let html = Response {
            status: 502,
            headers: vec![],
            body: b"<html>bad gateway</html>".to_vec(),
        };
        assert!(
            matches!(problem(&html), AcmeError::Problem { status: 502, ref kind, ref detail }
            if kind == "about:blank" && detail.contains("bad gateway"))
        );
        assert!(!problem(&html).is_bad_nonce());
    }

    #[test]
    fn answers_that_are_not_json_are_protocol_errors() {
        let html = Response {
            status: 200,
            headers: vec![],
            body: b"<html>captive portal</html>".to_vec(),
        };
        assert!(matches!(checked_json(&html), Err(AcmeError::Protocol(_))));
        let doc = json!({"authorizations": ["https://ca/a/1", 7]});
        assert!(matches!(
            string_list(&doc, "authorizations"),
            Err(AcmeError::Protocol(_))
        ));
        assert!(matches!(
            field(&doc, "finalize"),
            Err(AcmeError::Protocol(_))
        ));
        let no_location = Response {
            status: 201,
            headers: vec![],
            body: vec![],
        };
        assert!(matches!(
            location(&no_location),
            Err(AcmeError::Protocol(_))
        ));
    }

    #[test]
    fn failures_name_the_challenge_error() {
        let authz = json!({
            "status": "invalid",
            "challenges": [{"type": "http-01", "error": {
                "type": "urn:ietf:params:acme:error:connection", "detail": "refused"}}]
        });
        let text = describe(&authz, "http-01 for a.example");
        assert_eq!(
            text,
            "http-01 for a.example is invalid: refused (urn:ietf:params:acme:error:connection)"
        );
        assert_eq!(
            describe(&json!({"status": "pending"}), "the order"),
            "the order is pending"
        );
    }

    #[test]
    fn the_csr_names_only_the_domain() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let der = csr("site.example", &key).unwrap();
        let text = String::from_utf8_lossy(&der);
        assert!(text.contains("site.example"));
        assert!(!text.contains("rcgen"), "no default distinguished name");
    }
}
