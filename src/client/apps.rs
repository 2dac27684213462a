//! `fazt env set|list|unset` and `fazt logs [--follow]`: a site's serverless app through the
//! admin API. An env value is sent, never printed.

use super::api;
use super::config::Settings;
use super::http::Timeouts;
use super::sites::{align, utc_minute};
use super::url::encode_segment;
use super::ClientError;
use serde_json::{json, Value};
use std::time::Duration;

/// How often `fazt logs --follow` asks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// A poll of `--follow` gives up on a server that stops answering well before
/// [`Timeouts::API`]: the user is watching.
const FOLLOW_TIMEOUTS: Timeouts = Timeouts {
    connect: Duration::from_secs(5),
    write: Duration::from_secs(10),
    response: Duration::from_secs(10),
};

/// The most lines one poll asks for (the server's bound).
const PAGE_MAX: usize = 1_000;

fn env_path(site: &str) -> String {
    format!("/api/sites/{}/env", encode_segment(site))
}

/// Sets `key` of `site` to `value`.
pub fn env_set(settings: &Settings, site: &str, key: &str, value: &str) -> Result<(), ClientError> {
    let path = format!("{}/{}", env_path(site), encode_segment(key));
    let body = json!({ "value": value });
    let action = format!("set {key} on {site}");
    let answer = api::call(settings, "PUT", &path, Some(&body), &action)?;
    let length = answer
        .get("length")
        .and_then(Value::as_u64)
        .unwrap_or(value.len() as u64);
    println!("set {key} on {site} ({length} bytes; the value is never shown back)");
    Ok(())
}

/// Deletes `key` of `site`.
pub fn env_unset(settings: &Settings, site: &str, key: &str) -> Result<(), ClientError> {
    let path = format!("{}/{}", env_path(site), encode_segment(key));
    api::call(
        settings,
        "DELETE",
        &path,
        None,
        &format!("unset {key} on {site}"),
    )?;
    println!("unset {key} on {site}");
    Ok(())
}

/// Prints the env variables of `site` (or the server's JSON with `json`).
pub fn env_list(settings: &Settings, site: &str, json: bool) -> Result<(), ClientError> {
    let action = format!("list the env variables of {site}");
    let answer = api::call(settings, "GET", &env_path(site), None, &action)?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let vars = answer
        .get("env")
        .and_then(Value::as_array)
        .ok_or_else(|| ClientError::Failed("the server's answer has no 'env' array".into()))?;
    if vars.is_empty() {
        println!("no env variables on {site} (set one with 'fazt env set {site} KEY')");
        return Ok(());
    }
    print!("{}", env_table(vars));
    Ok(())
}

/// Columns: key, length (bytes), updated (UTC).
pub fn env_table(vars: &[Value]) -> String {
    let mut rows = vec![["KEY", "LENGTH", "UPDATED (UTC)"].map(String::from)];
    for var in vars {
        rows.push([
            var.get("key")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
            var.get("length").map_or("-".into(), Value::to_string),
            var.get("updated_at")
                .and_then(Value::as_i64)
                .map_or("-".into(), utc_minute),
        ]);
    }
    align(&rows)
}

/// How `fazt logs` prints.
pub struct LogsOptions {
    /// The newest lines shown first.
    pub limit: usize,
    pub follow: bool,
    pub json: bool,
}

/// Prints the newest lines of `site`'s logs; with `follow`, then every new line as it
/// comes, polling once a second, until interrupted or the server stops answering.
pub fn logs(settings: &Settings, site: &str, options: &LogsOptions) -> Result<(), ClientError> {
    let action = format!("read the logs of {site}");
    let path = format!(
        "/api/sites/{}/logs?limit={}",
        encode_segment(site),
        options.limit
    );
    let answer = api::call(settings, "GET", &path, None, &action)?;
    if options.json && !options.follow {
        println!("{answer}");
        return Ok(());
    }
    let mut next = print_page(&answer, options.json)?;
    if !options.follow {
        return Ok(());
    }
    let action = format!("follow the logs of {site}");
    loop {
        std::thread::sleep(FOLLOW_EVERY);
        let path = format!(
            "/api/sites/{}/logs?after={next}&limit={PAGE_MAX}",
            encode_segment(site)
        );
        let answer = api::call_within(settings, "GET", &path, None, &action, FOLLOW_TIMEOUTS)
            .map_err(|e| match e {
                ClientError::Failed(m) => {
                    ClientError::Failed(format!("{m}; stopped following the logs of {site}"))
                }
                usage => usage,
            })?;
        next = print_page(&answer, options.json)?;
    }
}

/// Prints the lines of one answer (as text, or each line's JSON object); returns its `next`.
fn print_page(answer: &Value, json: bool) -> Result<i64, ClientError> {
    let lines = answer
        .get("logs")
        .and_then(Value::as_array)
        .ok_or_else(|| ClientError::Failed("the server's answer has no 'logs' array".into()))?;
    let mut out = String::new();
    for line in lines {
        if json {
            out.push_str(&line.to_string());
            out.push('\n');
        } else {
            out.push_str(&log_line(line));
        }
    }
    print!("{out}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
    answer
        .get("next")
        .and_then(Value::as_i64)
        .ok_or_else(|| ClientError::Failed("the server's answer has no 'next' id".into()))
}

/// Where a log line's message starts: after the time, the level and their gaps.
const MESSAGE_COLUMN: usize = 23 + 2 + 5 + 2;

/// `2026-12-03 10:15:02.123  warn   message`; a multi-line message goes on indented lines,
/// and control characters a script wrote (a terminal's escape sequences) are shown escaped.
pub fn log_line(line: &Value) -> String {
    let time = line
        .get("ts")
        .and_then(Value::as_i64)
        .map_or("-".into(), utc_millis);
    let level = line.get("level").and_then(Value::as_str).unwrap_or("?");
    let message = line.get("message").and_then(Value::as_str).unwrap_or("");
    let mut shown = String::with_capacity(message.len());
    for c in message.chars() {
        match c {
            '\n' => {
                shown.push('\n');
                shown.push_str(&" ".repeat(MESSAGE_COLUMN));
            }
            '\t' => shown.push(c),
            c if c.is_control() => shown.extend(c.escape_default()),
            c => shown.push(c),
        }
    }
    format!("{time}  {level:<5}  {shown}\n")
}

/// `2026-12-03 10:15:02.123` from Unix milliseconds.
fn utc_millis(ms: i64) -> String {
    let minute = utc_minute(ms.div_euclid(1000));
    let secs = ms.div_euclid(1000).rem_euclid(60);
    format!("{minute}:{secs:02}.{:03}", ms.rem_euclid(1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_env_table_shows_keys_lengths_and_times() {
        let vars = [
            json!({"key": "TOKEN", "length": 12, "updated_at": 1_800_000_000}),
            json!({"key": "A_LONGER_NAME", "length": 0, "updated_at": 0}),
        ];
        let text = env_table(&vars);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "KEY            LENGTH  UPDATED (UTC)");
        assert_eq!(lines[1], "TOKEN          12      2027-01-15 08:00");
        assert_eq!(lines[2], "A_LONGER_NAME  0       1970-01-01 00:00");
    }

    #[test]
    fn log_lines_show_time_level_and_a_safe_message() {
        let line = json!({"id": 1, "ts": 1_800_000_002_345i64, "level": "warn",
                          "message": "two\nlines \u{1b}[31mred"});
        assert_eq!(
            log_line(&line),
            format!(
                "2027-01-15 08:00:02.345  warn   two\n{}lines \\u{{1b}}[31mred\n",
                " ".repeat(32)
            )
        );
        let line = json!({"ts": 0, "level": "error", "message": "x"});
        assert_eq!(log_line(&line), "1970-01-01 00:00:00.000  error  x\n");
    }
}
