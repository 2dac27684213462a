//! `fazt deploy DIR --site NAME`: walk, zip into a temp file, stream it as multipart.

use super::api;
use super::config::Settings;
use super::http::{self, Body, Request, Timeouts};
use super::multipart::{new_boundary, DeployForm};
use super::progress::Progress;
use super::zipbuild;
use super::ClientError;
use crate::hosting::store;
use crate::platform::units::format_bytes;
use serde_json::Value;
use std::path::Path;

/// Checks what can be checked before touching the network: the site name (returned
/// lower-cased, as the server stores it) and that `dir` is a directory.
pub fn check_arguments(dir: &Path, site: &str) -> Result<String, ClientError> {
    let site = site.to_ascii_lowercase();
    store::validate_site_name(&site).map_err(ClientError::Usage)?;
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(site),
        Ok(_) => Err(ClientError::Usage(format!(
            "{} is not a directory",
            dir.display()
        ))),
        Err(e) => Err(ClientError::Usage(format!("{}: {e}", dir.display()))),
    }
}

/// Deploys `dir` as `site` (already checked) and prints the outcome.
pub fn run(dir: &Path, site: &str, settings: &Settings) -> Result<(), ClientError> {
    // The same walk as `fazt site import`: dot-paths skipped, links refused.
    let staged = store::stage_directory(dir).map_err(ClientError::Usage)?;
    if staged.is_empty() {
        return Err(ClientError::Usage(format!(
            "{} has no files to deploy (dot-paths such as .git/ are skipped; .well-known/ is kept)",
            dir.display()
        )));
    }
    let content: u64 = staged.iter().map(|f| f.size).sum();
    eprintln!(
        "packing {} ({}) from {}",
        files(staged.len()),
        format_bytes(content),
        dir.display()
    );
    let temp_dir = std::env::temp_dir();
    let archive = zipbuild::build(&staged, &temp_dir).map_err(ClientError::Failed)?;
    drop(staged);

    let form = DeployForm::new(site, &new_boundary());
    let length = form.content_length(archive.size);
    eprintln!(
        "uploading {} (a {} zip of {}) to {}",
        format_bytes(length),
        format_bytes(archive.size),
        files(archive.files),
        settings.server
    );
    let mut progress = Progress::stderr(length);
    let mut sent = 0u64;
    let mut on_progress = |n: u64| {
        sent = n;
        progress.update(n);
    };
    let mut body = form.body(&archive.file);
    let request = Request {
        method: "POST",
        path: "/api/deploy",
        token: &settings.token,
        body: Body::Stream {
            content_type: &form.content_type,
            reader: &mut body,
            len: length,
            progress: &mut on_progress,
        },
    };
    let outcome = http::send(&settings.server, request, Timeouts::DEPLOY);
    progress.finish_partial(sent);
    let response = outcome.map_err(ClientError::Failed)?;
    let result = api::json_of_success(&response, &format!("deploy {site}"))?;
    println!("{}", summary(&result, site));
    if let Some(warning) = result.get("warning").and_then(Value::as_str) {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

fn files(count: usize) -> String {
    match count {
        1 => "1 file".into(),
        n => format!("{n} files"),
    }
}

/// `site blog is now deployment 12 (previous 11): 1000 files, 100.0 MiB (1.2 KiB new)`
/// and the URL on its own line.
fn summary(result: &Value, site: &str) -> String {
    let number = |key: &str| result.get(key).and_then(Value::as_u64);
    let mut text = format!(
        "site {} is now deployment {}",
        result.get("site").and_then(Value::as_str).unwrap_or(site),
        result
            .get("deployment")
            .map(Value::to_string)
            .unwrap_or_else(|| "?".into())
    );
    if let Some(previous) = number("previous") {
        text.push_str(&format!(" (previous {previous})"));
    }
    text.push_str(&format!(
        ": {}, {} ({} new)",
        files(number("files").unwrap_or(0) as usize),
        format_bytes(number("bytes").unwrap_or(0)),
        format_bytes(number("new_bytes").unwrap_or(0))
    ));
    if let Some(url) = result.get("url").and_then(Value::as_str) {
        text.push('\n');
        text.push_str(url);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_reads_the_contract_json() {
        let result = serde_json::json!({"site":"blog","deployment":12,"previous":11,"files":1000,
            "bytes":104857600,"new_bytes":1234,"url":"http://blog.example.com/"});
        assert_eq!(
            summary(&result, "blog"),
            "site blog is now deployment 12 (previous 11): 1000 files, 100.0 MiB (1.2 KiB new)\n\
             http://blog.example.com/"
        );
        let first = serde_json::json!({"site":"blog","deployment":1,"previous":null,"files":1,
            "bytes":5,"new_bytes":5,"url":"http://blog.localhost:4698/"});
        assert!(summary(&first, "blog").starts_with("site blog is now deployment 1: 1 file, 5 B"));
    }

    #[test]
    fn arguments_are_checked_locally() {
        let dir = std::env::temp_dir();
        assert_eq!(check_arguments(&dir, "Blog").unwrap(), "blog");
        for bad in ["-x", "a_b", "admin", ""] {
            let err = check_arguments(&dir, bad).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{bad}");
        }
        let err = check_arguments(Path::new("/nonexistent-fazt"), "blog").unwrap_err();
        assert!(err.message().contains("/nonexistent-fazt"));
        let file = std::env::current_exe().unwrap();
        let err = check_arguments(&file, "blog").unwrap_err();
        assert!(err.message().contains("not a directory"));
    }
}
