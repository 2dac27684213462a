//! `GET /api/certs` (what `fazt certs` prints) and `POST /api/certs/<name>/renew`.

use super::{AdminContext, Reply};
use crate::acme::store::{self, CertRecord};
use crate::http::tls::{CertSource, ServedName};
use crate::http::{error_response, x509, Response};
use crate::platform::clock::unix_now;
use serde_json::{json, Value};

/// A served certificate this close to its expiry makes readiness `degraded`.
pub(crate) const EXPIRY_WARNING_SECS: i64 = 7 * 86_400;

/// Every name with a certificate served or kept over ACME: its source, issuer, validity
/// and, for ACME names, the last attempt, its error and the next attempt.
pub(crate) fn list(ctx: &AdminContext) -> Response {
    let records = match &ctx.acme {
        Some(_) => match crate::db::reader::read_db(store::list_certs) {
            Ok(records) => records,
            Err(e) => return error_response(&e),
        },
        None => Vec::new(),
    };
    let served = ctx.certs.served();
    let mut certificates: Vec<(String, Value)> = records
        .iter()
        .map(|r| (r.name.clone(), acme_entry(r)))
        .collect();
    let files = served
        .iter()
        .filter(|s| s.source != CertSource::Issued)
        .filter(|s| !records.iter().any(|r| r.name == s.name));
    certificates.extend(files.map(|s| (s.name.clone(), file_entry(s))));
    certificates.sort_by(|a, b| a.0.cmp(&b.0));
    let acme = ctx
        .acme
        .as_ref()
        .map(|a| json!({ "directory": a.directory, "email": a.email, "challenge": a.challenge }));
    let list: Vec<Value> = certificates.into_iter().map(|(_, v)| v).collect();
    Response::json(200, &json!({ "acme": acme, "certificates": list }))
}

fn acme_entry(record: &CertRecord) -> Value {
    let issuer = record
        .chain_pem
        .as_deref()
        .and_then(|pem| x509::chain_der(pem).ok())
        .and_then(|chain| x509::issuer_name(&chain[0]));
    json!({
        "name": record.name,
        "source": CertSource::Issued.as_str(),
        "issuer": issuer,
        "not_before": record.not_before,
        "not_after": record.not_after,
        "issued_at": record.issued_at,
        "last_attempt": record.last_attempt,
        "last_error": record.last_error,
        "failures": record.failures,
        "next_attempt": record.next_attempt,
    })
}

fn file_entry(served: &ServedName) -> Value {
    json!({
        "name": served.name,
        "source": served.source.as_str(),
        "issuer": served.info.issuer,
        "not_before": served.info.not_before,
        "not_after": served.info.not_after,
        "issued_at": null,
        "last_attempt": null,
        "last_error": null,
        "failures": 0,
        "next_attempt": null,
    })
}

/// Renews `name` now: the certificate thread attempts it next and the answer comes when
/// the attempt has ended (200 and the certificate, or the CA's error; the certificate
/// served so far is kept then). The admin thread does not wait: the answer is mailed.
pub(crate) fn renew(ctx: &AdminContext, name: &str, reply: Reply) -> Option<Response> {
    let Some(acme) = &ctx.acme else {
        return Some(Response::error(
            409,
            "automatic certificates are off: start fazt with --acme-email and --tls-listen",
        ));
    };
    let name = name.to_ascii_lowercase();
    match crate::db::reader::read_db(|conn| store::load_cert(conn, &name)) {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Some(Response::error(
                404,
                &format!(
                    "no certificate is kept for '{name}': fazt keeps them for the domain, admin., root. and each site"
                ),
            ))
        }
        Err(e) => return Some(error_response(&e)),
    }
    acme.manager.renew(
        &name,
        Box::new(move |outcome| {
            reply(match outcome {
                Ok(record) => Response::json(200, &acme_entry(&record)),
                Err(e) => error_response(&e),
            })
        }),
    );
    None
}

/// Readiness reasons: every served certificate that expires within a week.
pub(crate) fn expiry_reasons(ctx: &AdminContext) -> Vec<String> {
    let now = unix_now();
    ctx.certs
        .served()
        .into_iter()
        .filter(|s| s.info.not_after - now < EXPIRY_WARNING_SECS)
        .map(|s| match s.info.not_after - now {
            left if left <= 0 => format!("certificate for {} has expired", s.name),
            left => format!("certificate for {} expires in {}", s.name, roughly(left)),
        })
        .collect()
}

/// `3 days`, `5 hours`, `12 minutes`: how long is left, to a person.
fn roughly(secs: i64) -> String {
    let (count, unit) = match secs {
        s if s >= 86_400 => (s / 86_400, "day"),
        s if s >= 3600 => (s / 3600, "hour"),
        s => ((s / 60).max(1), "minute"),
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}

#[cfg(test)]
mod tests {
    use super::roughly;

    #[test]
    fn time_left_reads_in_its_largest_unit() {
        assert_eq!(roughly(3 * 86_400 + 5), "3 days");
        assert_eq!(roughly(86_400), "1 day");
        assert_eq!(roughly(7200), "2 hours");
        assert_eq!(roughly(59), "1 minute");
    }
}
