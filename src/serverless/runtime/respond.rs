//! What the script answered (`{status, headers, body, type?}` from the prelude's `finish`) as
//! a [`JsResponse`]. The body: a string is sent as it is (`text/html` when it starts with `<`
//! after white space, else `text/plain`), `undefined`/`null` as nothing, anything else as
//! JSON. Header names must be tokens and values single lines; `Content-Length`,
//! `Transfer-Encoding` and `Connection` are the server's to set and are left out.

use super::JsResponse;
use rquickjs::convert::Coerced;
use rquickjs::{Ctx, Exception, Object, Value};

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";

/// Headers the server frames the response with.
const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "connection"];

pub(crate) fn response<'js>(ctx: &Ctx<'js>, answer: &Object<'js>) -> rquickjs::Result<JsResponse> {
    let status = status(ctx, answer.get("status")?)?;
    let mut headers = headers(ctx, answer.get("headers")?)?;
    let (body, guessed) = body(ctx, answer.get("body")?)?;
    let given: Option<String> = answer.get("type")?;
    let typed = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    if let Some(content_type) = given.as_deref().or(guessed).filter(|_| !typed) {
        headers.push(("Content-Type".into(), content_type.into()));
    }
    Ok(JsResponse {
        status,
        headers,
        body,
    })
}

fn status<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<u16> {
    if value.is_undefined() {
        return Ok(200);
    }
    match value.as_number() {
        Some(n) if n.fract() == 0.0 && (200.0..=599.0).contains(&n) => Ok(n as u16),
        _ => {
            let shown = describe(ctx, value);
            Err(Exception::throw_range(
                ctx,
                &format!("respond: status {shown} is not an HTTP status (200-599)"),
            ))
        }
    }
}

fn headers<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> rquickjs::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let Some(object) = value.as_object().filter(|_| !value.is_null()) else {
        return Ok(out);
    };
    for entry in object.props::<String, Value>() {
        let (name, value) = entry?;
        if !is_token(&name) {
            let message = format!("respond: '{name}' is not a valid header name");
            return Err(Exception::throw_type(ctx, &message));
        }
        if FRAMING.iter().any(|f| name.eq_ignore_ascii_case(f)) {
            continue;
        }
        // An array is one header line per element (Set-Cookie).
        let values: Vec<Value> = match value.as_array() {
            Some(array) => array.iter::<Value>().collect::<rquickjs::Result<_>>()?,
            None => vec![value],
        };
        for value in values {
            let Coerced(text) = value.get::<Coerced<String>>()?;
            if text.contains(['\r', '\n', '\0']) {
                let message = format!("respond: the value of header '{name}' has a line break");
                return Err(Exception::throw_type(ctx, &message));
            }
            out.push((name.clone(), text));
        }
    }
    Ok(out)
}

fn body<'js>(
    ctx: &Ctx<'js>,
    value: Value<'js>,
) -> rquickjs::Result<(Vec<u8>, Option<&'static str>)> {
    if value.is_undefined() || value.is_null() {
        return Ok((Vec::new(), None));
    }
    if let Some(text) = value.as_string() {
        let text = text.to_string()?;
        let kind = if text.trim_start().starts_with('<') {
            HTML
        } else {
            TEXT
        };
        return Ok((text.into_bytes(), Some(kind)));
    }
    match ctx.json_stringify(value)? {
        Some(json) => Ok((json.to_string()?.into_bytes(), Some(JSON))),
        None => Err(Exception::throw_type(
            ctx,
            "respond: the body is neither a string nor a JSON value",
        )),
    }
}

/// RFC 9110 `token`.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn describe<'js>(ctx: &Ctx<'js>, value: Value<'js>) -> String {
    ctx.json_stringify(value)
        .ok()
        .flatten()
        .and_then(|s| s.to_string().ok())
        .unwrap_or_else(|| "(not a number)".into())
}
