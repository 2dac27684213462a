//! The Go fazt's deploy clients against this server, decoding its answers the way they
//! do: v0.29 reads `{"data":{...}}` on success and `{"error":{"code","message"}}` on
//! failure (and exits 1 when `data` is missing); v0.7 reads `success`, `message`,
//! `file_count` and `size_bytes` at the top level. Both upload a multipart form with the
//! fields `site_name` and `file`.
use crate::common::zips::{multipart_form, zip_of};
use crate::common::*;
use serde::Deserialize;
use std::io::Write;

/// v0.29's `DeployResponse`: `data` is required (the client treats a missing one as a
/// failed deploy).
#[derive(Deserialize)]
struct V29Success {
    data: V29Data,
}

#[derive(Deserialize)]
struct V29Data {
    site: String,
    file_count: u64,
    size_bytes: u64,
    message: String,
}

#[derive(Deserialize)]
struct V29Failure {
    error: V29Error,
}

#[derive(Deserialize)]
struct V29Error {
    code: String,
    message: String,
}

/// v0.7's answer struct, all at the top level.
#[derive(Deserialize)]
struct V7Answer {
    success: bool,
    message: String,
    file_count: u64,
    size_bytes: u64,
}

fn go_deploy(server: &Server, token: &str, site: &str, zip: &[u8]) -> HttpResponse {
    let (content_type, body) = multipart_form(&[("site_name", site)], "file", zip);
    let head = format!(
        "POST /api/deploy HTTP/1.1\r\nHost: admin.localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let mut stream = server.connect();
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(&body);
    read_response(&mut stream).expect("a deploy response")
}

fn site_zip() -> Vec<u8> {
    zip_of(
        &[
            ("index.html", b"<h1>hi</h1>".as_slice()),
            ("app.js", b"console.log(1)".as_slice()),
        ],
        zip::CompressionMethod::Deflated,
    )
}

#[test]
fn both_go_clients_decode_a_successful_deploy() {
    let server = Server::start();
    let r = go_deploy(&server, &server.token, "blog", &site_zip());
    assert_eq!(r.status, 200, "{}", r.text());

    let v29: V29Success = serde_json::from_slice(&r.body).expect("v0.29 decodes data");
    assert_eq!(v29.data.site, "blog");
    assert_eq!(v29.data.file_count, 2);
    assert_eq!(v29.data.size_bytes, 11 + 14);
    assert!(v29.data.message.contains("blog"), "{}", v29.data.message);

    let v7: V7Answer = serde_json::from_slice(&r.body).expect("v0.7 decodes");
    assert!(v7.success);
    assert_eq!((v7.file_count, v7.size_bytes), (2, 25));
    assert_eq!(v7.message, v29.data.message);

    // Today's fields stay for fazt's own client and scripts.
    let json = r.json();
    assert_eq!(json["site"], "blog");
    assert_eq!(json["files"], 2);
    assert_eq!(json["bytes"], 25);
    assert!(json["deployment"].as_i64().unwrap() > 0);
    assert!(json["url"]
        .as_str()
        .unwrap()
        .starts_with("http://blog.localhost:"));
}

#[test]
fn the_go_clients_read_the_one_error_shape() {
    let server = Server::start();
    let r = go_deploy(&server, "fazt_not_a_real_token", "blog", &site_zip());
    assert_eq!(r.status, 401, "{}", r.text());
    let failure: V29Failure = serde_json::from_slice(&r.body).expect("v0.29 decodes error");
    assert!(!failure.error.code.is_empty());
    assert!(!failure.error.message.is_empty());
    // v0.29 fails on a missing `data`, so it never mistakes a refusal for a deploy.
    assert!(serde_json::from_slice::<V29Success>(&r.body).is_err());

    let r = go_deploy(&server, &server.token, "blog", b"not a zip");
    assert_eq!(r.status, 400, "{}", r.text());
    let failure: V29Failure = serde_json::from_slice(&r.body).expect("v0.29 decodes error");
    assert!(!failure.error.message.is_empty());
    // v0.7 sees no `success: true`.
    assert_ne!(r.json()["success"], true);
}
