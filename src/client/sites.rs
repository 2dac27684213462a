//! `fazt sites`, `fazt sites rm NAME`, `fazt deployments NAME`, `fazt rollback NAME [--to ID]`.

use super::api;
use super::config::Settings;
use super::url::encode_segment;
use super::ClientError;
use crate::platform::units::format_bytes;
use serde_json::{json, Value};

/// Prints the sites table (or the server's JSON with `json`).
pub fn list(settings: &Settings, json: bool) -> Result<(), ClientError> {
    let answer = api::call(settings, "GET", "/api/sites", None, "list sites")?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let sites = answer
        .get("sites")
        .and_then(Value::as_array)
        .ok_or_else(|| ClientError::Failed("the server's site list has no 'sites' array".into()))?;
    if sites.is_empty() {
        println!("no sites yet (publish one with 'fazt deploy DIR --site NAME')");
        return Ok(());
    }
    print!("{}", table(sites));
    Ok(())
}

/// Columns: name, deployment, files, size, updated (UTC), URL; widths fit the content.
pub fn table(sites: &[Value]) -> String {
    let mut rows = vec![[
        "NAME",
        "DEPLOYMENT",
        "FILES",
        "SIZE",
        "UPDATED (UTC)",
        "URL",
    ]
    .map(String::from)];
    for site in sites {
        let text = |key: &str| match site.get(key) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => "-".into(),
            Some(other) => other.to_string(),
        };
        let number = |key: &str| site.get(key).and_then(Value::as_i64);
        rows.push([
            text("name"),
            text("deployment"),
            text("files"),
            number("bytes")
                .map(|b| format_bytes(b.max(0) as u64))
                .unwrap_or_else(|| "-".into()),
            number("updated_at")
                .map(utc_minute)
                .unwrap_or_else(|| "-".into()),
            text("url"),
        ]);
    }
    align(&rows)
}

/// Rows as left-aligned columns two spaces apart, each as wide as its widest cell.
pub fn align<R: AsRef<[String]>>(rows: &[R]) -> String {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .as_ref()
            .iter()
            .zip(&widths)
            .map(|(cell, &width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// Prints the deployments of `site`, newest first (or the server's JSON with `json`).
pub fn deployments(settings: &Settings, site: &str, json: bool) -> Result<(), ClientError> {
    let path = format!("/api/sites/{}/deployments", encode_segment(site));
    let answer = api::call(
        settings,
        "GET",
        &path,
        None,
        &format!("list the deployments of {site}"),
    )?;
    if json {
        println!("{answer}");
        return Ok(());
    }
    let list = answer
        .get("deployments")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            ClientError::Failed("the server's answer has no 'deployments' array".into())
        })?;
    if list.is_empty() {
        println!("site {site} has no deployments");
        return Ok(());
    }
    print!("{}", deployments_table(list));
    if let Some(url) = answer.get("url").and_then(Value::as_str) {
        println!("{url}");
    }
    Ok(())
}

/// Columns: id (`*` marks the current one), created (UTC), files, size, new bytes, source.
pub fn deployments_table(list: &[Value]) -> String {
    let mut rows =
        vec![["ID", "CREATED (UTC)", "FILES", "SIZE", "NEW", "SOURCE"].map(String::from)];
    for d in list {
        let number = |key: &str| d.get(key).and_then(Value::as_i64);
        let size = |key: &str| {
            number(key)
                .map(|b| format_bytes(b.max(0) as u64))
                .unwrap_or_else(|| "-".into())
        };
        let current = d.get("current").and_then(Value::as_bool) == Some(true);
        rows.push([
            format!(
                "{}{}",
                number("id")
                    .map(|i| i.to_string())
                    .unwrap_or_else(|| "?".into()),
                if current { " *" } else { "" }
            ),
            number("created_at")
                .map(utc_minute)
                .unwrap_or_else(|| "-".into()),
            number("files")
                .map(|n| n.to_string())
                .unwrap_or_else(|| "-".into()),
            size("bytes"),
            size("new_bytes"),
            d.get("source")
                .and_then(Value::as_str)
                .unwrap_or("-")
                .to_string(),
        ]);
    }
    align(&rows)
}

/// `2026-09-15 10:00` from Unix seconds.
pub fn utc_minute(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let secs = unix.rem_euclid(86_400);
    let (year, month, day) = crate::http::response::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60
    )
}

/// Deletes a site with all its deployments.
pub fn remove(settings: &Settings, site: &str) -> Result<(), ClientError> {
    let path = format!("/api/sites/{}", encode_segment(site));
    let answer = api::call(
        settings,
        "DELETE",
        &path,
        None,
        &format!("delete site {site}"),
    )?;
    let deleted = answer
        .get("deleted")
        .and_then(Value::as_str)
        .unwrap_or(site);
    println!("deleted site {deleted}");
    Ok(())
}

/// Points a site back at its previous deployment, or at deployment `to`.
pub fn rollback(settings: &Settings, site: &str, to: Option<i64>) -> Result<(), ClientError> {
    let path = format!("/api/sites/{}/rollback", encode_segment(site));
    let body = to.map(|id| json!({ "deployment": id }));
    let answer = api::call(
        settings,
        "POST",
        &path,
        body.as_ref(),
        &format!("roll back {site}"),
    )?;
    let field = |key: &str| {
        answer
            .get(key)
            .filter(|v| !v.is_null())
            .map(|v| v.to_string())
    };
    let mut text = format!(
        "site {} is now deployment {}",
        answer.get("site").and_then(Value::as_str).unwrap_or(site),
        field("deployment").unwrap_or_else(|| "?".into())
    );
    if let Some(previous) = field("previous") {
        text.push_str(&format!(" (was {previous})"));
    }
    if let Some(url) = answer.get("url").and_then(Value::as_str) {
        text.push('\n');
        text.push_str(url);
    }
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_formats_sizes_and_dates() {
        let sites = vec![
            json!({"name":"blog","deployment":12,"files":1000,"bytes":104857600,
                   "updated_at":1790000000,"url":"http://blog.example.com/"}),
            json!({"name":"a","deployment":null,"files":0,"bytes":0,"updated_at":0,"url":"http://a.example.com/"}),
        ];
        let text = table(&sites);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].starts_with("NAME  DEPLOYMENT  FILES  SIZE       UPDATED (UTC)     URL"),
            "{text}"
        );
        assert_eq!(
            lines[1],
            "blog  12          1000   100.0 MiB  2026-09-21 14:13  http://blog.example.com/"
        );
        assert_eq!(
            lines[2],
            "a     -           0      0 B        1970-01-01 00:00  http://a.example.com/"
        );
    }
}
