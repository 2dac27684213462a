//! The account key (ECDSA P-256) and the JWS envelope of every ACME POST (RFC 8555 §6.2,
//! RFC 7515 flattened JSON serialization, ES256).

use super::AcmeError;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// base64url without padding, the encoding of every JWS part and of the CSR.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An account key: signs requests, and its thumbprint is part of every key authorization.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    /// PKCS#8 PEM, what the database keeps.
    pem: String,
    rng: SystemRandom,
}

impl AccountKey {
    /// A new random P-256 key.
    pub fn generate() -> Result<AccountKey, AcmeError> {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
            .map_err(|e| AcmeError::Crypto(format!("generating the account key: {e}")))?;
        AccountKey::from_pem(&key.serialize_pem())
    }

    /// The key stored as PKCS#8 PEM.
    pub fn from_pem(pem: &str) -> Result<AccountKey, AcmeError> {
        let bad = |e: String| AcmeError::Crypto(format!("the stored account key: {e}"));
        let der = rcgen::KeyPair::from_pem(pem)
            .map_err(|e| bad(e.to_string()))?
            .serialize_der();
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|e| bad(format!("not a P-256 key ({e})")))?;
        Ok(AccountKey {
            pair,
            pem: pem.to_string(),
            rng,
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The public key as a JWK, members in the lexicographic order RFC 7638 hashes.
    pub fn jwk(&self) -> Value {
        // An uncompressed point: 0x04 ‖ x (32 bytes) ‖ y (32 bytes).
        let point = self.pair.public_key().as_ref();
        json!({
            "crv": "P-256",
            "kty": "EC",
            "x": b64(&point[1..33]),
            "y": b64(&point[33..65]),
        })
    }

    /// RFC 7638 thumbprint: base64url(SHA-256(the JWK's required members, no spaces)).
    pub fn thumbprint(&self) -> String {
        // serde_json keeps object members sorted (no `preserve_order`), as RFC 7638 wants.
        let canonical = self.jwk().to_string();
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// `token.thumbprint`, what a challenge proves control with (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// The JWS body for a POST to `url`. `kid` is the account URL, or `None` for
    /// newAccount (which carries the JWK instead). `payload` `None` is a POST-as-GET.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<Vec<u8>, AcmeError> {
        let mut protected = json!({ "alg": "ES256", "nonce": nonce, "url": url });
        match kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => protected["jwk"] = self.jwk(),
        }
        let protected = b64(protected.to_string().as_bytes());
        let payload = payload.map_or(String::new(), |p| b64(p.to_string().as_bytes()));
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| AcmeError::Crypto("signing a request failed".into()))?;
        let body = json!({
            "protected": protected,
            "payload": payload,
            "signature": b64(signature.as_ref()),
        });
        Ok(body.to_string().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    fn decode(part: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(part).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_with_the_jwk_and_names_url_and_nonce() {
        let key = AccountKey::generate().unwrap();
        let body = key
            .sign("https://ca/new-acct", "n0nce", None, Some(&json!({"a": 1})))
            .unwrap();
        let jws: Value = serde_json::from_slice(&body).unwrap();
        let protected: Value =
            serde_json::from_slice(&decode(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["url"], "https://ca/new-acct");
        assert_eq!(protected["nonce"], "n0nce");
        assert_eq!(protected["jwk"], key.jwk());
        assert!(protected.get("kid").is_none());
        let payload: Value =
            serde_json::from_slice(&decode(jws["payload"].as_str().unwrap())).unwrap();
        assert_eq!(payload, json!({"a": 1}));

        let input = format!(
            "{}.{}",
            jws["protected"].as_str().unwrap(),
            jws["payload"].as_str().unwrap()
        );
        let signature = decode(jws["signature"].as_str().unwrap());
        assert_eq!(signature.len(), 64, "ES256 is r ‖ s, not DER");
        let public = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.pair.public_key());
        public.verify(input.as_bytes(), &signature).unwrap();
    }

    #[test]
    fn post_as_get_has_an_empty_payload_and_a_kid() {
        let key = AccountKey::generate().unwrap();
        let body = key
            .sign("https://ca/o/1", "n", Some("https://ca/a/7"), None)
            .unwrap();
        let jws: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(jws["payload"], "");
        let protected: Value =
            serde_json::from_slice(&decode(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["kid"], "https://ca/a/7");
        assert!(protected.get("jwk").is_none());
    }

    #[test]
    fn the_key_survives_its_pem_and_the_thumbprint_is_stable() {
        let key = AccountKey::generate().unwrap();
        let again = AccountKey::from_pem(key.pem()).unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        assert_eq!(key.thumbprint().len(), 43, "base64url of 32 bytes");
        assert!(key
            .jwk()
            .to_string()
            .starts_with(r#"{"crv":"P-256","kty":"EC","x":"#));
        assert_eq!(
            key.key_authorization("tok"),
            format!("tok.{}", key.thumbprint())
        );
        assert!(AccountKey::from_pem("not a key").is_err());
    }

    // RFC 7638 §3.1's example is RSA; this checks the hashing on a fixed EC key instead:
    // the thumbprint is SHA-256 over exactly `{"crv":…,"kty":…,"x":…,"y":…}`.
    #[test]
    fn the_thumbprint_hashes_the_canonical_jwk() {
        let key = AccountKey::generate().unwrap();
        let jwk = key.jwk();
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            jwk["x"].as_str().unwrap(),
            jwk["y"].as_str().unwrap()
        );
        let want = b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        assert_eq!(key.thumbprint(), want);
    }
}
