//! `fazt.app.ds`: a site's documents (JSON objects) in named collections, found by equality
//! on top-level fields.
//!
//! A document is stored as SQLite's JSONB (its field order kept; a query reads a field
//! without parsing text: a 10,000-document scan 2.2x faster than over text), without `id`,
//! `_createdAt` and `_updatedAt`, which come from the columns. Queries compare JSON
//! types too: `{"n": 1}` never matches `"n": "1"` nor `"n": true`. `null` matches a field
//! that is null or missing: an update that sets a field to null removes it (RFC 7396), so
//! the two must read the same.

use super::usage::{self, Delta};
use super::{Quotas, StoreError};
use rusqlite::types::Value as SqlValue;
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};
use serde_json::Value;

/// Longest collection name.
const COLL_MAX: usize = 64;
/// Longest document id, in bytes.
const ID_MAX_BYTES: usize = 256;

/// The documents of `coll` matching `query_json`, oldest first, at most `limit`; each is
/// JSON text with `id`, `_createdAt` and `_updatedAt` (unix ms) first.
pub fn ds_find(
    conn: &Connection,
    site: &str,
    coll: &str,
    query_json: &str,
    limit: Option<usize>,
) -> Result<Vec<String>, StoreError> {
    check_coll(coll)?;
    let query = Query::parse(query_json)?;
    let (filter, mut args) = query.sql(site, coll);
    args.push(SqlValue::Integer(limit.map_or(-1, |l| l as i64)));
    let sql = format!(
        "SELECT id, json(doc), created_at, updated_at FROM app_docs WHERE {filter}
         ORDER BY seq LIMIT ?{}",
        args.len()
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map(params_from_iter(args), |r| {
        Ok(with_meta(
            &r.get::<_, String>(0)?,
            &r.get::<_, String>(1)?,
            r.get(2)?,
            r.get(3)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Inserts `doc_json` (a JSON object) into `coll`; returns its id: the doc's `id` (a
/// string) if it has one, else a new random one.
pub fn ds_insert(
    conn: &mut Connection,
    site: &str,
    coll: &str,
    doc_json: &str,
    now_ms: i64,
    q: &Quotas,
) -> Result<String, StoreError> {
    check_coll(coll)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (given, stored) = parse_doc(&tx, doc_json)?;
    usage::check_value(site, "a document", stored.len(), q)?;
    let id = match given {
        Some(id) => id,
        None => random_id(),
    };
    let taken: Option<i64> = tx
        .prepare_cached("SELECT 1 FROM app_docs WHERE site = ?1 AND coll = ?2 AND id = ?3")?
        .query_row(params![site, coll, id], |r| r.get(0))
        .optional()?;
    if taken.is_some() {
        return Err(StoreError::Invalid(format!(
            "a document with id '{id}' already exists in collection '{coll}'"
        )));
    }
    let delta = Delta {
        kv_keys: 0,
        docs: 1,
        bytes: (id.len() + stored.len()) as i64,
    };
    usage::check(site, usage::usage(&tx, site)?, delta, q)?;
    tx.prepare_cached(
        "INSERT INTO app_docs (site, coll, id, doc, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![site, coll, id, stored, now_ms])?;
    usage::apply(&tx, site, delta)?;
    tx.commit()?;
    Ok(id)
}

/// Merges `changes_json` (RFC 7396: a null removes the field) into every document of
/// `coll` matching `query_json`; returns how many.
pub fn ds_update(
    conn: &mut Connection,
    site: &str,
    coll: &str,
    query_json: &str,
    changes_json: &str,
    now_ms: i64,
    q: &Quotas,
) -> Result<u64, StoreError> {
    check_coll(coll)?;
    let query = Query::parse(query_json)?;
    let changes = parse_object(changes_json, "the changes")?;
    if changes.contains_key("id") {
        return Err(StoreError::Invalid(
            "the id of a document cannot be changed (leave 'id' out of the changes)".into(),
        ));
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let changes: String = tx
        .prepare_cached("SELECT json_remove(?1, '$._createdAt', '$._updatedAt')")?
        .query_row([changes_json], |r| r.get(0))?;
    let (filter, args) = query.sql(site, coll);
    let matched: Vec<(i64, i64)> = tx
        .prepare(&format!(
            "SELECT seq, octet_length(doc) FROM app_docs WHERE {filter} ORDER BY seq"
        ))?
        .query_map(params_from_iter(args), |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut grown = 0i64;
    let mut patch = tx.prepare_cached(
        "UPDATE app_docs SET doc = jsonb_patch(doc, ?1), updated_at = ?2 WHERE seq = ?3
         RETURNING octet_length(doc)",
    )?;
    for (seq, old_len) in &matched {
        let new_len: i64 = patch.query_row(params![changes, now_ms, seq], |r| r.get(0))?;
        usage::check_value(site, "a document", new_len.max(0) as usize, q)?;
        grown += new_len - old_len;
    }
    drop(patch);
    let delta = Delta {
        kv_keys: 0,
        docs: 0,
        bytes: grown,
    };
    usage::check(site, usage::usage(&tx, site)?, delta, q)?;
    usage::apply(&tx, site, delta)?;
    tx.commit()?;
    Ok(matched.len() as u64)
}

/// Deletes the documents of `coll` matching `query_json`; returns how many.
pub fn ds_delete(
    conn: &mut Connection,
    site: &str,
    coll: &str,
    query_json: &str,
) -> Result<u64, StoreError> {
    check_coll(coll)?;
    let query = Query::parse(query_json)?;
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let (filter, args) = query.sql(site, coll);
    let sizes: Vec<i64> = tx
        .prepare(&format!(
            "DELETE FROM app_docs WHERE {filter} RETURNING octet_length(id) + octet_length(doc)"
        ))?
        .query_map(params_from_iter(args), |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let count = sizes.len() as i64;
    let delta = Delta {
        kv_keys: 0,
        docs: -count,
        bytes: -sizes.iter().sum::<i64>(),
    };
    usage::apply(&tx, site, delta)?;
    tx.commit()?;
    Ok(count as u64)
}

/// An equality query: each top-level field of the JSON object is one condition.
struct Query {
    conditions: Vec<(String, Value)>,
}

impl Query {
    fn parse(query_json: &str) -> Result<Query, StoreError> {
        let object = parse_object(query_json, "a query")?;
        let mut conditions = Vec::with_capacity(object.len());
        for (field, value) in object {
            match (&value, field.as_str()) {
                (Value::Object(_) | Value::Array(_), _) => {
                    return Err(StoreError::Invalid(format!(
                        "query field '{field}' is {}: a query compares a field with a string, \
                         number, boolean or null",
                        if value.is_array() {
                            "an array"
                        } else {
                            "an object"
                        }
                    )))
                }
                (Value::String(_), "id") => {}
                (_, "id") => {
                    return Err(StoreError::Invalid(format!(
                        "query field 'id' must be a string, not {value}"
                    )))
                }
                (Value::Number(_), "_createdAt" | "_updatedAt") => {}
                (_, "_createdAt" | "_updatedAt") => {
                    return Err(StoreError::Invalid(format!(
                        "query field '{field}' must be a number (unix milliseconds), not {value}"
                    )))
                }
                _ => {}
            }
            conditions.push((field, value));
        }
        Ok(Query { conditions })
    }

    /// The WHERE clause and its arguments, `?1` and `?2` being the site and collection.
    fn sql(&self, site: &str, coll: &str) -> (String, Vec<SqlValue>) {
        let mut args = vec![
            SqlValue::from(site.to_string()),
            SqlValue::from(coll.to_string()),
        ];
        let mut sql = String::from("site = ?1 AND coll = ?2");
        for (field, value) in &self.conditions {
            let mut arg = |v: SqlValue| {
                args.push(v);
                format!("?{}", args.len())
            };
            let clause = match (field.as_str(), value) {
                ("id", value) => format!("id = {}", arg(scalar(value))),
                ("_createdAt", value) => format!("created_at = {}", arg(scalar(value))),
                ("_updatedAt", value) => format!("updated_at = {}", arg(scalar(value))),
                // A JSON path names any field but one with a `"` (SQLite's quoted path labels
                // have no escape); those go through json_each, ten times slower.
                (field, value) if !field.contains('"') => {
                    let path = arg(SqlValue::from(format!("$.\"{field}\"")));
                    let kind = format!("json_type(doc, {path})");
                    match value {
                        Value::Null => format!("coalesce({kind}, 'null') = 'null'"),
                        value => {
                            let atom = format!("json_extract(doc, {path})");
                            typed(&kind, &atom, value, &mut arg)
                        }
                    }
                }
                (field, Value::Null) => format!(
                    "NOT EXISTS (SELECT 1 FROM json_each(doc) WHERE key = {} AND type <> 'null')",
                    arg(SqlValue::from(field.to_string()))
                ),
                (field, value) => {
                    let key = arg(SqlValue::from(field.to_string()));
                    let test = typed("type", "atom", value, &mut arg);
                    format!("EXISTS (SELECT 1 FROM json_each(doc) WHERE key = {key} AND {test})")
                }
            };
            sql.push_str(" AND ");
            sql.push_str(&clause);
        }
        (sql, args)
    }
}

/// The test that a JSON value of type `kind` (`json_type`'s name) and SQL value `atom` equals
/// `value` (not null), in type and value: 1 and 1.0 are equal, 1 and "1" or true are not.
fn typed(
    kind: &str,
    atom: &str,
    value: &Value,
    arg: &mut impl FnMut(SqlValue) -> String,
) -> String {
    match value {
        Value::Bool(true) => format!("{kind} = 'true'"),
        Value::Bool(false) => format!("{kind} = 'false'"),
        Value::Number(_) => format!(
            "{kind} IN ('integer', 'real') AND {atom} = {}",
            arg(scalar(value))
        ),
        _ => format!("{kind} = 'text' AND {atom} = {}", arg(scalar(value))),
    }
}

/// A string or number as SQLite compares it with what `json_extract` or `json_each` gives.
fn scalar(value: &Value) -> SqlValue {
    match value {
        Value::String(s) => SqlValue::Text(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Bool(b) => SqlValue::Integer(i64::from(*b)),
        _ => SqlValue::Null,
    }
}

fn parse_object(text: &str, what: &str) -> Result<serde_json::Map<String, Value>, StoreError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(other) => Err(StoreError::Invalid(format!(
            "{what} must be a JSON object, not {}",
            kind(&other)
        ))),
        Err(e) => Err(StoreError::Invalid(format!("{what} is not JSON: {e}"))),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The document's own id (if it gives one) and what is stored: its JSONB without the
/// fields the columns hold.
fn parse_doc(conn: &Connection, doc_json: &str) -> Result<(Option<String>, Vec<u8>), StoreError> {
    let doc = parse_object(doc_json, "a document")?;
    let id = match doc.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if !id.is_empty() && id.len() <= ID_MAX_BYTES => Some(id.clone()),
        Some(other) => {
            return Err(StoreError::Invalid(format!(
                "a document's 'id' must be a string of 1 to {ID_MAX_BYTES} bytes, not {}",
                truncated(&other.to_string())
            )))
        }
    };
    let stored: Vec<u8> = conn
        .prepare_cached("SELECT jsonb_remove(?1, '$.id', '$._createdAt', '$._updatedAt')")?
        .query_row([doc_json], |r| r.get(0))?;
    Ok((id, stored))
}

/// The document as scripts see it: `id`, `_createdAt`, `_updatedAt`, then its fields.
fn with_meta(id: &str, doc: &str, created_at: i64, updated_at: i64) -> String {
    let id = serde_json::to_string(id).unwrap_or_else(|_| "\"\"".into());
    // `doc` is SQLite's `json()` of an object: minified, `{}` or `{"a":1,...}`.
    let fields = doc
        .strip_prefix('{')
        .and_then(|d| d.strip_suffix('}'))
        .unwrap_or("");
    let comma = if fields.is_empty() { "" } else { "," };
    format!(
        "{{\"id\":{id},\"_createdAt\":{created_at},\"_updatedAt\":{updated_at}{comma}{fields}}}"
    )
}

/// 16 hex digits from the system's random source.
fn random_id() -> String {
    use ring::rand::{SecureRandom, SystemRandom};
    let mut bytes = [0u8; 8];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        // Never seen on Linux (getrandom); a clock-based id still differs per call.
        bytes = crate::platform::clock::unix_now_ms().to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn truncated(text: &str) -> &str {
    match text.char_indices().nth(40) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

fn check_coll(coll: &str) -> Result<(), StoreError> {
    let valid = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if coll.is_empty() || coll.len() > COLL_MAX || !coll.chars().all(valid) {
        return Err(StoreError::Invalid(format!(
            "'{}' is not a collection name: 1 to {COLL_MAX} of A-Z a-z 0-9 _ -",
            truncated(coll)
        )));
    }
    Ok(())
}
