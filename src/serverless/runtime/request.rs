//! The request as a script sees it, built on the worker from the core thread's copies.
//!
//! Api style, `request`: `method`, `path`, `query` (an object, a repeated key keeps its last
//! value), `headers` (lower-case names, repeated ones joined with ", "), `body` (parsed JSON
//! for `application/json` and `*/*+json`, an object of fields for a urlencoded form, the text fields of a
//! multipart form, else the text; `null` when empty), `files` (multipart file parts:
//! `{name, filename, contentType, size, text?}`, `text` when the content is UTF-8), `ip`.
//!
//! Root style (v0.7.1), `req`: `method`, `path`, `query` (the raw string), `headers`
//! (canonical case: `Content-Type`), `body` (the text).

use super::Style;
use crate::http::multipart::{self, FormLimits};
use rquickjs::{Array, Ctx, Object, Value};

/// Parts a script's multipart form may have.
const FORM_PARTS: usize = 256;

pub(crate) fn build<'js>(
    ctx: &Ctx<'js>,
    request: &super::JsRequest,
    style: Style,
) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    object.set("method", request.method.as_str())?;
    object.set("path", request.path.as_str())?;
    match style {
        Style::Api => {
            object.set("query", pairs_object(ctx, &form_pairs(&request.query))?)?;
            let headers = merged_headers(&request.headers, |name| name.to_ascii_lowercase());
            object.set("headers", pairs_object(ctx, &headers)?)?;
            let (body, files) = body(ctx, request)?;
            object.set("body", body)?;
            object.set("files", files)?;
            object.set("ip", request.client_ip.as_str())?;
        }
        Style::Root => {
            object.set("query", request.query.as_str())?;
            let headers = merged_headers(&request.headers, canonical);
            object.set("headers", pairs_object(ctx, &headers)?)?;
            object.set("body", String::from_utf8_lossy(&request.body).as_ref())?;
        }
    }
    Ok(object)
}

/// The body by its Content-Type, and the multipart file parts.
fn body<'js>(
    ctx: &Ctx<'js>,
    request: &super::JsRequest,
) -> rquickjs::Result<(Value<'js>, Array<'js>)> {
    let files = Array::new(ctx.clone())?;
    if request.body.is_empty() {
        return Ok((Value::new_null(ctx.clone()), files));
    }
    let content_type = request
        .headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-type"))
        .map(|(_, value)| value.as_str())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text = String::from_utf8_lossy(&request.body);
    let json = essence == "application/json" || essence.ends_with("+json");
    let value = match essence.as_str() {
        _ if json => match ctx.json_parse(text.as_ref()) {
            Ok(value) => value,
            Err(_) => {
                // Not JSON after all: the script gets the text, and no exception stays
                // pending in the context.
                let _ = ctx.catch();
                rquickjs::String::from_str(ctx.clone(), &text)?.into_value()
            }
        },
        "application/x-www-form-urlencoded" => pairs_object(ctx, &form_pairs(&text))?.into_value(),
        "multipart/form-data" => match multipart_form(ctx, content_type, &request.body, &files)? {
            Some(fields) => fields.into_value(),
            None => rquickjs::String::from_str(ctx.clone(), &text)?.into_value(),
        },
        _ => rquickjs::String::from_str(ctx.clone(), &text)?.into_value(),
    };
    Ok((value, files))
}

/// The text fields of a multipart body, its file parts pushed to `files`; `None` when the
/// body is not a well-formed form.
fn multipart_form<'js>(
    ctx: &Ctx<'js>,
    content_type: &str,
    body: &[u8],
    files: &Array<'js>,
) -> rquickjs::Result<Option<Object<'js>>> {
    let Ok(boundary) = multipart::boundary_from_content_type(content_type) else {
        return Ok(None);
    };
    let limits = FormLimits {
        text_field_bytes: body.len() as u64,
        parts: FORM_PARTS,
        unique_names: false,
    };
    let mut cursor = std::io::Cursor::new(body);
    let Ok(form) = multipart::parse_form_with(&mut cursor, body.len() as u64, &boundary, &limits)
    else {
        return Ok(None);
    };
    let fields = pairs_object(ctx, &form.text)?;
    for (i, part) in form.files.iter().enumerate() {
        let file = Object::new(ctx.clone())?;
        file.set("name", part.name.as_str())?;
        file.set("filename", part.filename.as_deref())?;
        file.set("contentType", part.content_type.as_deref())?;
        file.set("size", part.len as f64)?;
        let start = part.offset as usize;
        let content = &body[start..start + part.len as usize];
        if let Ok(text) = std::str::from_utf8(content) {
            file.set("text", text)?;
        }
        files.set(i, file)?;
    }
    Ok(Some(fields))
}

/// An object of `pairs`; a repeated name keeps its last value.
fn pairs_object<'js>(ctx: &Ctx<'js>, pairs: &[(String, String)]) -> rquickjs::Result<Object<'js>> {
    let object = Object::new(ctx.clone())?;
    for (name, value) in pairs {
        object.set(name.as_str(), value.as_str())?;
    }
    Ok(object)
}

/// Headers with names as `name` maps them, a repeated one joined with ", " at its first place.
fn merged_headers(
    headers: &[(String, String)],
    name: impl Fn(&str) -> String,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (raw, value) in headers {
        let key = name(raw);
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            None => out.push((key, value.clone())),
        }
    }
    out
}

/// `content-type` → `Content-Type`, as Go's `http.CanonicalHeaderKey` writes names.
fn canonical(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = true;
    for c in name.chars() {
        out.push(if upper {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        upper = c == '-';
    }
    out
}

/// `a=1&b=x+y&c` as pairs, `+` and percent-escapes decoded (invalid UTF-8 replaced).
pub(crate) fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            (decode(name), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let digit = |at: usize| bytes.get(at).and_then(|&d| hex(d));
                match (digit(i + 1), digit(i + 2)) {
                    (Some(hi), Some(lo)) => {
                        out.push(hi << 4 | lo);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_plus_and_escapes_and_keep_bad_ones() {
        let pairs = form_pairs("a=1&b=x+y%21&&c&d=%zz&e=%4");
        let expected = [
            ("a", "1"),
            ("b", "x y!"),
            ("c", ""),
            ("d", "%zz"),
            ("e", "%4"),
        ];
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs, expected);
        assert_eq!(decode("%C3%A9t%C3%A9"), "été");
    }

    #[test]
    fn header_names_are_canonical_in_the_root_style() {
        assert_eq!(canonical("content-type"), "Content-Type");
        assert_eq!(canonical("X-FORWARDED-FOR"), "X-Forwarded-For");
        let merged = merged_headers(
            &[
                ("Accept".into(), "a".into()),
                ("X-A".into(), "1".into()),
                ("accept".into(), "b".into()),
            ],
            |n| n.to_ascii_lowercase(),
        );
        assert_eq!(
            merged,
            vec![
                ("accept".to_string(), "a, b".to_string()),
                ("x-a".to_string(), "1".to_string())
            ]
        );
    }
}
