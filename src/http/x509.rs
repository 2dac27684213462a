//! What fazt reads of an X.509 certificate, straight from its DER (RFC 5280 §4.1): the
//! validity period and the issuer's name, for the TLS certificate store (expiry metrics,
//! readiness, `fazt certs`) and the ACME client. Only the TLVs in front of `validity` are
//! walked, every length is checked.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
/// 2.5.4.3 and 2.5.4.10, as encoded.
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
const OID_ORGANIZATION: &[u8] = &[0x55, 0x04, 0x0a];
const INTEGER: u8 = 0x02;
const EXPLICIT_0: u8 = 0xa0;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// `(not_before, not_after)` in unix seconds.
pub fn validity(cert: &[u8]) -> Result<(i64, i64), String> {
    let (_, after_issuer) = issuer_and_rest(cert)?;
    let (validity, _) = tlv(after_issuer, SEQUENCE)?;
    let (not_before, rest) = time(validity)?;
    let (not_after, _) = time(rest)?;
    Ok((not_before, not_after))
}

/// The issuer's common name, else its organization (what `fazt certs` shows); `None` when
/// it has neither or cannot be read.
pub fn issuer_name(cert: &[u8]) -> Option<String> {
    let (mut issuer, _) = issuer_and_rest(cert).ok()?;
    let (mut common_name, mut organization) = (None, None);
    // Name ::= SEQUENCE OF SET OF SEQUENCE { type OID, value ANY }
    while !issuer.is_empty() {
        let (set, rest) = tlv(issuer, SET).ok()?;
        issuer = rest;
        let (attribute, _) = tlv(set, SEQUENCE).ok()?;
        let (oid, value) = tlv(attribute, OID).ok()?;
        let tag = *value.first()?;
        let text = String::from_utf8(tlv(value, tag).ok()?.0.to_vec()).ok();
        match oid {
            OID_COMMON_NAME => common_name = common_name.or(text),
            OID_ORGANIZATION => organization = organization.or(text),
            _ => {}
        }
    }
    common_name.or(organization)
}

/// The issuer's `Name` (its contents) and what follows it in the TBSCertificate.
fn issuer_and_rest(cert: &[u8]) -> Result<(&[u8], &[u8]), String> {
    let (body, _) = tlv(cert, SEQUENCE)?; // Certificate
    let (mut tbs, _) = tlv(body, SEQUENCE)?; // TBSCertificate
    if tbs.first() == Some(&EXPLICIT_0) {
        tbs = tlv(tbs, EXPLICIT_0)?.1; // version
    }
    tbs = tlv(tbs, INTEGER)?.1; // serialNumber
    tbs = tlv(tbs, SEQUENCE)?.1; // signature
    tlv(tbs, SEQUENCE) // issuer
}

/// The validity of the first certificate of a PEM chain (the leaf).
pub fn leaf_validity(chain_pem: &str) -> Result<(i64, i64), String> {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or("no certificate in the chain")?
        .map_err(|e| format!("bad PEM: {e:?}"))?;
    validity(leaf.as_ref())
}

/// The DER certificates of a PEM chain, in order.
pub fn chain_der(chain_pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("bad PEM: {e:?}"))?;
    if certs.is_empty() {
        return Err("no certificate in the chain".into());
    }
    Ok(certs)
}

/// Splits one TLV with the expected tag off `input`: `(its value, what follows)`.
fn tlv(input: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (&found, rest) = input.split_first().ok_or("truncated certificate")?;
    if found != tag {
        return Err(format!("expected tag {tag:#04x}, found {found:#04x}"));
    }
    let (&first, mut rest) = rest.split_first().ok_or("truncated length")?;
    let len = if first < 0x80 {
        first as usize
    } else {
        let count = (first & 0x7f) as usize;
        if count == 0 || count > 4 || rest.len() < count {
            return Err("bad length".into());
        }
        let len = rest[..count]
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | b as usize);
        rest = &rest[count..];
        len
    };
    if rest.len() < len {
        return Err("truncated value".into());
    }
    Ok(rest.split_at(len))
}

/// A UTCTime or GeneralizedTime in `Z` form, as RFC 5280 §4.1.2.5 requires.
fn time(input: &[u8]) -> Result<(i64, &[u8]), String> {
    let tag = *input.first().ok_or("truncated validity")?;
    let (value, rest) = tlv(input, tag)?;
    let text = std::str::from_utf8(value).map_err(|_| "time is not ASCII")?;
    let full = match (tag, text.len()) {
        (UTC_TIME, 13) => {
            // Two-digit years: 50-99 are 19xx, 00-49 are 20xx (RFC 5280 §4.1.2.5.1).
            let yy: u32 = text[..2].parse().map_err(|_| "bad year")?;
            format!("{}{text}", if yy >= 50 { "19" } else { "20" })
        }
        (GENERALIZED_TIME, 15) => text.to_string(),
        _ => return Err(format!("unsupported time {text:?}")),
    };
    if !full.ends_with('Z') || !full[..14].bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("unsupported time {text:?}"));
    }
    let num = |range: std::ops::Range<usize>| full[range].parse::<i64>().unwrap_or(0);
    let (year, month, day) = (num(0..4), num(4..6), num(6..8));
    let (hour, minute, second) = (num(8..10), num(10..12), num(12..14));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return Err(format!("bad time {text:?}"));
    }
    let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    Ok((secs, rest))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(from: (i32, u8, u8), to: (i32, u8, u8)) -> rcgen::Certificate {
        let mut params = rcgen::CertificateParams::new(vec!["a.example".to_string()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from.0, from.1, from.2);
        params.not_after = rcgen::date_time_ymd(to.0, to.1, to.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap()
    }

    #[test]
    fn reads_utc_and_generalized_times() {
        // rcgen writes UTCTime up to 2049 and GeneralizedTime from 2050 on.
        let c = cert((2026, 12, 2), (2051, 3, 1));
        let (from, to) = validity(c.der()).unwrap();
        assert_eq!(from, 1_796_169_600); // 2026-12-02T00:00:00Z
        assert_eq!(to, 2_561_241_600); // 2051-03-01T00:00:00Z
        assert_eq!(leaf_validity(&c.pem()).unwrap(), (from, to));
        assert_eq!(chain_der(&(c.pem() + &c.pem())).unwrap().len(), 2);
    }

    #[test]
    fn the_issuer_is_its_common_name_else_its_organization() {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example Org");
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "Example Issuing CA");
        let issuer = rcgen::Issuer::new(ca.clone(), ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        assert_eq!(
            issuer_name(leaf.der()).as_deref(),
            Some("Example Issuing CA")
        );
        ca.distinguished_name = rcgen::DistinguishedName::new();
        ca.distinguished_name
            .push(rcgen::DnType::OrganizationName, "Only An Org");
        let issuer = rcgen::Issuer::new(ca, rcgen::KeyPair::generate().unwrap());
        let leaf = rcgen::CertificateParams::new(vec!["a.example".to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        assert_eq!(issuer_name(leaf.der()).as_deref(), Some("Only An Org"));
        assert_eq!(issuer_name(b"\x30\x03\x02\x01"), None);
    }

    #[test]
    fn civil_days_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn truncated_or_foreign_input_is_an_error_not_a_panic() {
        let c = cert((2026, 1, 1), (2027, 1, 1));
        let der = c.der().as_ref();
        for cut in 0..der.len().min(200) {
            assert!(validity(&der[..cut]).is_err(), "cut at {cut}");
        }
        assert!(validity(b"\x30\x84\xff\xff\xff\xff").is_err());
        assert!(leaf_validity("no pem here").is_err());
        assert!(chain_der("").is_err());
    }
}
