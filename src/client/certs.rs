//! `fazt certs` and `fazt certs renew NAME`.

use super::api;
use super::config::Settings;
use super::http::Timeouts;
use super::sites::{align, utc_minute};
use super::url::encode_segment;
use super::ClientError;
use serde_json::Value;
use std::time::Duration;

/// `fazt certs renew` waits for the server's answer, which comes when the order is done: in
/// seconds usually, and the server's polling of the CA gives up within ten minutes.
const RENEW_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(10),
    write: Duration::from_secs(60),
    response: Duration::from_secs(11 * 60),
};

/// Prints the certificates table (or the server's JSON with `json`).
pub fn list(settings: &Settings, json: bool) -> Result<(), ClientError> {
    let answer = fetch(settings)?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let certificates = certificates(&answer)?;
    match answer.get("acme") {
        Some(Value::Object(acme)) => println!(
            "ACME: {} ({} challenges)",
            acme.get("directory").and_then(Value::as_str).unwrap_or("?"),
            acme.get("challenge").and_then(Value::as_str).unwrap_or("?")
        ),
        _ => println!(
            "ACME: off (start the server with --acme-email to get certificates automatically)"
        ),
    }
    if certificates.is_empty() {
        println!("no certificates (the server has no TLS listener, or none is obtained yet)");
        return Ok(());
    }
    print!("{}", table(certificates));
    Ok(())
}

/// Columns: name, source, issuer, expiry, last renewal, next try (UTC), last error.
pub fn table(certificates: &[Value]) -> String {
    let mut rows = vec![[
        "NAME",
        "SOURCE",
        "ISSUER",
        "EXPIRES (UTC)",
        "RENEWED (UTC)",
        "NEXT TRY (UTC)",
        "ERROR",
    ]
    .map(String::from)];
    for cert in certificates {
        let text = |key: &str| {
            cert.get(key)
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string()
        };
        let time = |key: &str| {
            cert.get(key)
                .and_then(Value::as_i64)
                .map_or("-".into(), utc_minute)
        };
        rows.push([
            text("name"),
            text("source"),
            text("issuer"),
            time("not_after"),
            time("issued_at"),
            time("next_attempt"),
            text("last_error"),
        ]);
    }
    align(&rows)
}

/// Renews `name` now and prints the outcome: the server answers when its attempt is done.
pub fn renew(settings: &Settings, name: &str) -> Result<(), ClientError> {
    let path = format!("/api/certs/{}/renew", encode_segment(name));
    let action = format!("renew the certificate of {name}");
    eprintln!("renewing {name}: waiting for the CA...");
    match api::call_within(settings, "POST", &path, None, &action, RENEW_TIMEOUTS) {
        Ok(entry) => {
            println!("{}", renewed(name, &entry));
            Ok(())
        }
        Err(ClientError::Failed(message)) => {
            // The server kept the certificate it had; say when it tries by itself.
            let next = fetch(settings)
                .ok()
                .and_then(|listing| next_try(&listing, name))
                .map(|at| format!("; the certificate served so far is kept, next try {at} UTC"))
                .unwrap_or_default();
            Err(ClientError::Failed(format!("{message}{next}")))
        }
        Err(usage) => Err(usage),
    }
}

fn renewed(name: &str, entry: &Value) -> String {
    let expires = entry.get("not_after").and_then(Value::as_i64);
    let issuer = entry
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    format!(
        "renewed {name}: expires {} UTC (issuer {issuer})",
        expires.map_or("-".into(), utc_minute)
    )
}

fn next_try(listing: &Value, name: &str) -> Option<String> {
    let entry = certificates(listing)
        .ok()?
        .iter()
        .find(|c| c.get("name").and_then(Value::as_str) == Some(name))?;
    entry
        .get("next_attempt")
        .and_then(Value::as_i64)
        .map(utc_minute)
}

fn fetch(settings: &Settings) -> Result<Value, ClientError> {
    api::call(settings, "GET", "/api/certs", None, "list certificates")
}

fn certificates(answer: &Value) -> Result<&Vec<Value>, ClientError> {
    answer
        .get("certificates")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ClientError::Failed("the server's answer has no 'certificates' array".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_table_shows_each_name_with_its_state() {
        let rows = [
            json!({"name": "example.com", "source": "acme", "issuer": "R11",
                   "not_after": 1_800_000_000, "issued_at": 1_790_000_000,
                   "next_attempt": 1_797_000_000, "last_error": null}),
            json!({"name": "blog.example.com", "source": "acme", "issuer": null,
                   "not_after": null, "issued_at": null, "next_attempt": 1_790_000_060,
                   "last_error": "ACME server unreachable: connection refused"}),
        ];
        let text = table(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{text}");
        assert!(
            lines[1].contains("example.com") && lines[1].contains("2027-01-15 08:00"),
            "{text}"
        );
        assert!(
            lines[2].contains("connection refused") && lines[2].contains(" - "),
            "{text}"
        );
    }

    #[test]
    fn a_renewal_reads_its_expiry_and_the_next_try_from_the_listing() {
        let entry = json!({"name": "a.example", "not_after": 1_800_000_000, "issuer": "R11"});
        assert_eq!(
            renewed("a.example", &entry),
            "renewed a.example: expires 2027-01-15 08:00 UTC (issuer R11)"
        );
        let listing = json!({"certificates": [
            {"name": "b.example", "next_attempt": 1},
            {"name": "a.example", "next_attempt": 1_800_000_060}]});
        assert_eq!(
            next_try(&listing, "a.example").as_deref(),
            Some("2027-01-15 08:01")
        );
        assert_eq!(next_try(&listing, "c.example"), None);
    }
}
