//! `fazt certs` and `fazt certs renew NAME`.

use super::api;
use super::config::Settings;
use super::sites::{align, utc_minute};
use super::url::encode_segment;
use super::ClientError;
use serde_json::Value;
use std::time::{Duration, Instant};

/// How long `fazt certs renew` waits for the attempt it asked for: an order is validated
/// in seconds, and polling gives up on its own after a few minutes.
const RENEW_WAIT: Duration = Duration::from_secs(120);
const POLL_EVERY: Duration = Duration::from_millis(500);

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

/// Asks for a renewal of `name` and waits for that attempt's outcome.
pub fn renew(settings: &Settings, name: &str) -> Result<(), ClientError> {
    let path = format!("/api/certs/{}/renew", encode_segment(name));
    let action = format!("renew the certificate of {name}");
    let answer = api::call(settings, "POST", &path, None, &action)?;
    let requested = answer
        .get("requested_at")
        .and_then(Value::as_i64)
        .ok_or_else(|| ClientError::Failed("the server's answer has no 'requested_at'".into()))?;
    println!("renewal of {name} requested; waiting for the CA...");
    let deadline = Instant::now() + RENEW_WAIT;
    loop {
        std::thread::sleep(POLL_EVERY);
        let listing = fetch(settings)?;
        let entry = certificates(&listing)?
            .iter()
            .find(|c| c.get("name").and_then(Value::as_str) == Some(name))
            .cloned()
            .ok_or_else(|| {
                ClientError::Failed(format!("{name} is no longer in the server's certificates"))
            })?;
        let attempted = entry.get("last_attempt").and_then(Value::as_i64);
        if attempted.is_some_and(|at| at >= requested) {
            return outcome(name, &entry);
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Failed(format!(
                "no attempt for {name} finished within {}s; see 'fazt certs' later",
                RENEW_WAIT.as_secs()
            )));
        }
    }
}

fn outcome(name: &str, entry: &Value) -> Result<(), ClientError> {
    if let Some(error) = entry.get("last_error").and_then(Value::as_str) {
        let next = entry.get("next_attempt").and_then(Value::as_i64);
        return Err(ClientError::Failed(format!(
            "renewing {name} failed: {error}; the certificate served so far is kept, next try {} UTC",
            next.map_or("-".into(), utc_minute)
        )));
    }
    let expires = entry.get("not_after").and_then(Value::as_i64);
    let issuer = entry
        .get("issuer")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    println!(
        "renewed {name}: expires {} UTC (issuer {issuer})",
        expires.map_or("-".into(), utc_minute)
    );
    Ok(())
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
    fn a_failed_attempt_is_an_error_naming_the_next_try() {
        let entry = json!({"name": "a.example", "last_error": "the CA said no",
                           "next_attempt": 1_790_000_060, "last_attempt": 1_790_000_000});
        let err = outcome("a.example", &entry).unwrap_err();
        assert!(err.message().contains("the CA said no"), "{err:?}");
        assert!(err.message().contains("next try"), "{err:?}");
        assert!(outcome("a.example", &json!({"name": "a.example", "not_after": 1})).is_ok());
    }
}
