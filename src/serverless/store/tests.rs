use super::*;
use rusqlite::Connection;
use serde_json::{json, Value};

fn test_db() -> Connection {
    let mut conn = Connection::open_in_memory().unwrap();
    crate::db::migrate::run(&mut conn).unwrap();
    conn
}

const Q: Quotas = Quotas {
    kv_keys: 10_000,
    docs: 10_000,
    bytes: 32 * 1024 * 1024,
    value_bytes: 1024 * 1024,
};

/// What the site's rows hold, counted from the rows themselves.
fn recount(conn: &Connection, site: &str) -> Usage {
    conn.query_row(
        "SELECT (SELECT count(*) FROM app_kv WHERE site = ?1),
                (SELECT count(*) FROM app_docs WHERE site = ?1),
                (SELECT coalesce(sum(octet_length(key) + octet_length(value)), 0)
                   FROM app_kv WHERE site = ?1)
              + (SELECT coalesce(sum(octet_length(id) + octet_length(doc)), 0)
                   FROM app_docs WHERE site = ?1)",
        [site],
        |r| {
            Ok(Usage {
                kv_keys: r.get::<_, i64>(0)? as u64,
                docs: r.get::<_, i64>(1)? as u64,
                bytes: r.get::<_, i64>(2)? as u64,
            })
        },
    )
    .unwrap()
}

fn assert_usage_right(conn: &Connection, site: &str) {
    assert_eq!(usage(conn, site).unwrap(), recount(conn, site), "{site}");
}

fn quota_message(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Quota(m)) => m,
        other => panic!("expected a quota error, got {other:?}"),
    }
}

fn invalid_message(result: Result<impl std::fmt::Debug, StoreError>) -> String {
    match result {
        Err(StoreError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

// --- kv ---------------------------------------------------------------------------------

#[test]
fn kv_sets_gets_overwrites_and_deletes_per_site() {
    let mut conn = test_db();
    kv_set(&mut conn, "blog", "a", r#"{"n":1}"#, None, 0, &Q).unwrap();
    kv_set(&mut conn, "shop", "a", "2", None, 0, &Q).unwrap();
    assert_eq!(
        kv_get(&conn, "blog", "a", 0).unwrap().as_deref(),
        Some(r#"{"n":1}"#)
    );
    assert_eq!(kv_get(&conn, "shop", "a", 0).unwrap().as_deref(), Some("2"));
    kv_set(&mut conn, "blog", "a", r#""longer text""#, None, 0, &Q).unwrap();
    assert_eq!(
        kv_get(&conn, "blog", "a", 0).unwrap().as_deref(),
        Some(r#""longer text""#)
    );
    assert_eq!(usage(&conn, "blog").unwrap().kv_keys, 1);
    assert_usage_right(&conn, "blog");
    assert!(kv_delete(&mut conn, "blog", "a").unwrap());
    assert!(!kv_delete(&mut conn, "blog", "a").unwrap());
    assert_eq!(kv_get(&conn, "blog", "a", 0).unwrap(), None);
    assert_eq!(kv_get(&conn, "shop", "a", 0).unwrap().as_deref(), Some("2"));
    assert_eq!(usage(&conn, "blog").unwrap(), Usage::default());
    assert_usage_right(&conn, "shop");
}

#[test]
fn kv_keys_and_values_are_checked() {
    let mut conn = test_db();
    assert!(invalid_message(kv_set(&mut conn, "blog", "", "1", None, 0, &Q)).contains("1 to 256"));
    let long = "k".repeat(257);
    assert!(invalid_message(kv_set(&mut conn, "blog", &long, "1", None, 0, &Q)).contains("257"));
    kv_set(&mut conn, "blog", &"k".repeat(256), "1", None, 0, &Q).unwrap();
    let message = invalid_message(kv_set(&mut conn, "blog", "x", "{not json", None, 0, &Q));
    assert!(message.contains("not JSON"), "{message}");
    assert_eq!(kv_get(&conn, "blog", "x", 0).unwrap(), None);
}

#[test]
fn an_expired_key_is_invisible_at_once_and_swept() {
    let mut conn = test_db();
    kv_set(&mut conn, "blog", "short", "1", Some(1_000), 0, &Q).unwrap();
    kv_set(&mut conn, "blog", "long", "2", Some(5_000), 0, &Q).unwrap();
    kv_set(&mut conn, "blog", "never", "3", None, 0, &Q).unwrap();
    assert_eq!(
        kv_get(&conn, "blog", "short", 999).unwrap().as_deref(),
        Some("1")
    );
    assert_eq!(kv_get(&conn, "blog", "short", 1_000).unwrap(), None);
    let listed: Vec<_> = kv_list(&conn, "blog", "", 1_000).unwrap();
    let keys: Vec<_> = listed.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(keys, ["long", "never"]);
    assert_eq!(listed[0].expires_at_ms, Some(5_000));
    assert_eq!(listed[1].expires_at_ms, None);
    // Still held until swept.
    assert_eq!(usage(&conn, "blog").unwrap().kv_keys, 3);
    assert_eq!(sweep(&mut conn, 1_000).unwrap(), (1, 0));
    assert_eq!(usage(&conn, "blog").unwrap().kv_keys, 2);
    assert_usage_right(&conn, "blog");
    assert_eq!(sweep(&mut conn, 1_000).unwrap(), (0, 0));
    assert_eq!(sweep(&mut conn, 10_000).unwrap(), (1, 0));
    assert_eq!(
        kv_get(&conn, "blog", "never", 10_000).unwrap().as_deref(),
        Some("3")
    );
    assert_usage_right(&conn, "blog");
}

#[test]
fn overwriting_an_expired_key_replaces_it_and_deleting_one_says_it_was_not_there() {
    let mut conn = test_db();
    kv_set(&mut conn, "blog", "k", "1", Some(1), 0, &Q).unwrap();
    assert!(
        !kv_delete(&mut conn, "blog", "k").unwrap(),
        "expired long ago"
    );
    kv_set(&mut conn, "blog", "k", "1", Some(1), 0, &Q).unwrap();
    kv_set(&mut conn, "blog", "k", "22", None, 5, &Q).unwrap();
    assert_eq!(
        kv_get(&conn, "blog", "k", 5).unwrap().as_deref(),
        Some("22")
    );
    assert_eq!(usage(&conn, "blog").unwrap().kv_keys, 1);
    assert_usage_right(&conn, "blog");
}

#[test]
fn kv_list_matches_its_prefix_literally_and_in_key_order() {
    let mut conn = test_db();
    for key in ["a%b", "a%c", "axb", "a_1", "ab1", "A%b", "a%", "a", "b"] {
        kv_set(&mut conn, "blog", key, "0", None, 0, &Q).unwrap();
    }
    kv_set(&mut conn, "shop", "a%z", "0", None, 0, &Q).unwrap();
    let keys = |prefix: &str| -> Vec<String> {
        kv_list(&conn, "blog", prefix, 0)
            .unwrap()
            .into_iter()
            .map(|e| e.key)
            .collect()
    };
    assert_eq!(keys("a%"), ["a%", "a%b", "a%c"]);
    assert_eq!(keys("a_"), ["a_1"]);
    assert_eq!(keys("a"), ["a", "a%", "a%b", "a%c", "a_1", "ab1", "axb"]);
    assert_eq!(keys("").len(), 9);
    assert!(keys("c").is_empty());
}

#[test]
fn kv_list_returns_at_most_its_bound() {
    let mut conn = test_db();
    for i in 0..KV_LIST_MAX + 5 {
        kv_set(&mut conn, "blog", &format!("k{i:05}"), "0", None, 0, &Q).unwrap();
    }
    let listed = kv_list(&conn, "blog", "k", 0).unwrap();
    assert_eq!(listed.len(), KV_LIST_MAX);
    assert_eq!(listed[0].key, "k00000");
}

#[test]
fn kv_quotas_refuse_with_the_site_the_limit_and_the_setting() {
    let mut conn = test_db();
    let q = Quotas {
        kv_keys: 2,
        bytes: 40,
        value_bytes: 10,
        ..Q
    };
    kv_set(&mut conn, "blog", "a", "1", None, 0, &q).unwrap();
    kv_set(&mut conn, "blog", "b", "1", None, 0, &q).unwrap();
    let message = quota_message(kv_set(&mut conn, "blog", "c", "1", None, 0, &q));
    assert_eq!(
        message,
        "site blog holds 2 keys, its limit (FAZT_APP_KEYS); delete some or raise the limit"
    );
    // Overwriting an existing key adds no key.
    kv_set(&mut conn, "blog", "a", "2", None, 0, &q).unwrap();
    let message = quota_message(kv_set(
        &mut conn,
        "blog",
        "a",
        "\"12345678910\"",
        None,
        0,
        &q,
    ));
    assert!(
        message.contains("site blog") && message.contains("FAZT_APP_VALUE_BYTES"),
        "{message}"
    );
    // Held: "a" + "2", "b" + "1": 4 bytes; the new value adds 7.
    let q = Quotas { bytes: 10, ..q };
    let message = quota_message(kv_set(&mut conn, "blog", "a", "\"123456\"", None, 0, &q));
    assert_eq!(
        message,
        "site blog would hold 11 bytes of kv and documents, over its limit of 10 \
         (FAZT_APP_BYTES); delete some or raise the limit"
    );
    // Refusals changed nothing.
    assert_eq!(kv_get(&conn, "blog", "a", 0).unwrap().as_deref(), Some("2"));
    assert_usage_right(&conn, "blog");
    // Shrinking is allowed even over a lowered limit.
    let tiny = Quotas { bytes: 1, ..q };
    kv_set(&mut conn, "blog", "a", "3", None, 0, &tiny).unwrap();
    assert!(kv_delete(&mut conn, "blog", "b").unwrap());
}

#[test]
fn expired_keys_make_room_for_a_new_one() {
    let mut conn = test_db();
    let q = Quotas { kv_keys: 1, ..Q };
    kv_set(&mut conn, "blog", "old", "1", Some(10), 0, &q).unwrap();
    quota_message(kv_set(&mut conn, "blog", "new", "1", None, 5, &q));
    kv_set(&mut conn, "blog", "new", "1", None, 10, &q).unwrap();
    assert_eq!(usage(&conn, "blog").unwrap().kv_keys, 1);
    assert_usage_right(&conn, "blog");
}

// --- ds ---------------------------------------------------------------------------------

fn docs(conn: &Connection, query: &str) -> Vec<Value> {
    ds_find(conn, "blog", "posts", query, None)
        .unwrap()
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect()
}

fn ids(found: &[Value]) -> Vec<&str> {
    found.iter().map(|d| d["id"].as_str().unwrap()).collect()
}

fn insert(conn: &mut Connection, doc: Value) -> String {
    ds_insert(conn, "blog", "posts", &doc.to_string(), 1_000, &Q).unwrap()
}

#[test]
fn ds_equality_compares_json_types() {
    let mut conn = test_db();
    insert(&mut conn, json!({"id": "num", "n": 1, "flag": true}));
    insert(&mut conn, json!({"id": "text", "n": "1", "flag": "true"}));
    insert(&mut conn, json!({"id": "real", "n": 1.0, "flag": false}));
    insert(&mut conn, json!({"id": "nul", "n": null}));
    insert(&mut conn, json!({"id": "none"}));
    insert(
        &mut conn,
        json!({"id": "deep", "n": {"x": 1}, "tags": ["a"]}),
    );
    assert_eq!(ids(&docs(&conn, r#"{"n": 1}"#)), ["num", "real"]);
    assert_eq!(ids(&docs(&conn, r#"{"n": "1"}"#)), ["text"]);
    assert_eq!(ids(&docs(&conn, r#"{"flag": true}"#)), ["num"]);
    assert_eq!(ids(&docs(&conn, r#"{"flag": false}"#)), ["real"]);
    assert_eq!(ids(&docs(&conn, r#"{"flag": "true"}"#)), ["text"]);
    assert_eq!(ids(&docs(&conn, r#"{"n": null}"#)), ["nul", "none"]);
    assert_eq!(ids(&docs(&conn, r#"{"n": 1, "flag": true}"#)), ["num"]);
    assert_eq!(ids(&docs(&conn, r#"{"id": "text"}"#)), ["text"]);
    assert_eq!(
        ids(&docs(&conn, r#"{"id": "text", "n": 1}"#)),
        Vec::<&str>::new()
    );
    assert_eq!(
        docs(&conn, "{}").len(),
        6,
        "{{}} matches all, in insertion order"
    );
    assert_eq!(ids(&docs(&conn, "{}"))[0], "num");
    for bad in [
        r#"{"n": {"x": 1}}"#,
        r#"{"tags": ["a"]}"#,
        "[1]",
        "1",
        "nope",
        r#"{"id": 5}"#,
    ] {
        invalid_message(ds_find(&conn, "blog", "posts", bad, None));
    }
    // Other collections and sites are apart.
    assert!(ds_find(&conn, "blog", "other", "{}", None)
        .unwrap()
        .is_empty());
    assert!(ds_find(&conn, "shop", "posts", "{}", None)
        .unwrap()
        .is_empty());
}

#[test]
fn ds_queries_name_any_field() {
    let mut conn = test_db();
    insert(
        &mut conn,
        json!({"id": "odd", "a.b": 1, "q\"uote": "x", "": true, "sp ace": null}),
    );
    insert(&mut conn, json!({"id": "plain", "a": {"b": 1}, "q": "x"}));
    assert_eq!(
        ids(&docs(&conn, r#"{"a.b": 1}"#)),
        ["odd"],
        "a dot is part of the name"
    );
    assert_eq!(ids(&docs(&conn, r#"{"q\"uote": "x"}"#)), ["odd"]);
    assert_eq!(ids(&docs(&conn, r#"{"q\"uote": null}"#)), ["plain"]);
    assert_eq!(ids(&docs(&conn, r#"{"q\"uote": "y"}"#)), Vec::<&str>::new());
    assert_eq!(ids(&docs(&conn, r#"{"": true}"#)), ["odd"]);
    assert_eq!(
        ids(&docs(&conn, r#"{"sp ace": null, "q": "x"}"#)),
        ["plain"]
    );
    assert_eq!(ids(&docs(&conn, r#"{"sp ace": null}"#)), ["odd", "plain"]);
}

#[test]
fn ds_documents_carry_their_id_and_times_and_keep_their_field_order() {
    let mut conn = test_db();
    let id = ds_insert(
        &mut conn,
        "blog",
        "posts",
        r#"{"z":1,"a":"x","_createdAt":5}"#,
        1_000,
        &Q,
    )
    .unwrap();
    assert_eq!(id.len(), 16);
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let found = ds_find(&conn, "blog", "posts", "{}", Some(1)).unwrap();
    assert_eq!(
        found,
        [format!(
            r#"{{"id":"{id}","_createdAt":1000,"_updatedAt":1000,"z":1,"a":"x"}}"#
        )]
    );
    let empty = ds_insert(&mut conn, "blog", "posts", r#"{"id":"e"}"#, 2_000, &Q).unwrap();
    assert_eq!(empty, "e");
    let found = ds_find(&conn, "blog", "posts", r#"{"id":"e"}"#, None).unwrap();
    assert_eq!(found, [r#"{"id":"e","_createdAt":2000,"_updatedAt":2000}"#]);
    let by_time = docs(&conn, r#"{"_createdAt": 2000}"#);
    assert_eq!(ids(&by_time), ["e"]);
}

#[test]
fn ds_refuses_a_clashing_id_and_bad_documents_and_collections() {
    let mut conn = test_db();
    insert(&mut conn, json!({"id": "a", "v": 1}));
    let message = invalid_message(ds_insert(
        &mut conn,
        "blog",
        "posts",
        r#"{"id":"a"}"#,
        0,
        &Q,
    ));
    assert_eq!(
        message,
        "a document with id 'a' already exists in collection 'posts'"
    );
    // The same id in another collection is another document.
    ds_insert(&mut conn, "blog", "drafts", r#"{"id":"a"}"#, 0, &Q).unwrap();
    for bad in ["[1]", "\"a\"", "{", r#"{"id": 7}"#, r#"{"id": ""}"#] {
        invalid_message(ds_insert(&mut conn, "blog", "posts", bad, 0, &Q));
    }
    for coll in ["", "a b", "a.b", "é", &"c".repeat(65)] {
        invalid_message(ds_insert(&mut conn, "blog", coll, "{}", 0, &Q));
        invalid_message(ds_find(&conn, "blog", coll, "{}", None));
    }
    ds_insert(&mut conn, "blog", &"c".repeat(64), "{}", 0, &Q).unwrap();
    ds_insert(&mut conn, "blog", "A-z_09", "{}", 0, &Q).unwrap();
    assert_eq!(docs(&conn, "{}").len(), 1);
    assert_usage_right(&conn, "blog");
}

#[test]
fn ds_update_merges_removes_nulls_and_counts() {
    let mut conn = test_db();
    insert(
        &mut conn,
        json!({"id": "a", "tag": "x", "n": 1, "keep": true, "o": {"p": 1, "q": 2}}),
    );
    insert(&mut conn, json!({"id": "b", "tag": "x", "n": 2}));
    insert(&mut conn, json!({"id": "c", "tag": "y"}));
    let changes = r#"{"n": 10, "keep": null, "new": "v", "o": {"q": null}}"#;
    let n = ds_update(
        &mut conn,
        "blog",
        "posts",
        r#"{"tag":"x"}"#,
        changes,
        5_000,
        &Q,
    )
    .unwrap();
    assert_eq!(n, 2);
    let a = &docs(&conn, r#"{"id":"a"}"#)[0];
    assert_eq!(a["n"], 10);
    assert_eq!(a["new"], "v");
    assert!(a.get("keep").is_none(), "{a}");
    assert_eq!(a["o"], json!({"p": 1}));
    assert_eq!(a["tag"], "x");
    assert_eq!(
        (a["_createdAt"].as_i64(), a["_updatedAt"].as_i64()),
        (Some(1_000), Some(5_000))
    );
    let c = &docs(&conn, r#"{"id":"c"}"#)[0];
    assert_eq!(c["_updatedAt"], 1_000, "not matched, not touched");
    assert_eq!(
        ds_update(&mut conn, "blog", "posts", r#"{"tag":"z"}"#, "{}", 0, &Q).unwrap(),
        0
    );
    let message = invalid_message(ds_update(
        &mut conn,
        "blog",
        "posts",
        "{}",
        r#"{"id":"x"}"#,
        0,
        &Q,
    ));
    assert!(message.contains("cannot be changed"), "{message}");
    invalid_message(ds_update(&mut conn, "blog", "posts", "{}", "[1]", 0, &Q));
    assert_eq!(ids(&docs(&conn, r#"{"n": 10}"#)), ["a", "b"]);
    assert_usage_right(&conn, "blog");
}

#[test]
fn ds_delete_counts_and_gives_usage_back() {
    let mut conn = test_db();
    for i in 0..5 {
        insert(&mut conn, json!({"i": i, "even": i % 2 == 0}));
    }
    assert_eq!(
        ds_delete(&mut conn, "blog", "posts", r#"{"even": true}"#).unwrap(),
        3
    );
    assert_eq!(
        ds_delete(&mut conn, "blog", "posts", r#"{"even": true}"#).unwrap(),
        0
    );
    assert_eq!(usage(&conn, "blog").unwrap().docs, 2);
    assert_usage_right(&conn, "blog");
    assert_eq!(ds_delete(&mut conn, "blog", "posts", "{}").unwrap(), 2);
    assert_eq!(usage(&conn, "blog").unwrap(), Usage::default());
}

#[test]
fn ds_quotas_refuse_with_the_site_the_limit_and_the_setting() {
    let mut conn = test_db();
    let q = Quotas {
        docs: 2,
        value_bytes: 30,
        ..Q
    };
    ds_insert(&mut conn, "blog", "posts", r#"{"t":"a"}"#, 0, &q).unwrap();
    ds_insert(&mut conn, "blog", "other", r#"{"t":"b"}"#, 0, &q).unwrap();
    let message = quota_message(ds_insert(&mut conn, "blog", "posts", "{}", 0, &q));
    assert_eq!(
        message,
        "site blog holds 2 documents, its limit (FAZT_APP_DOCS); delete some or raise the limit"
    );
    let big = json!({"t": "x".repeat(40)}).to_string();
    let message = quota_message(ds_update(&mut conn, "blog", "posts", "{}", &big, 0, &q));
    assert!(message.contains("FAZT_APP_VALUE_BYTES"), "{message}");
    // The refused update changed nothing.
    assert_eq!(docs(&conn, "{}")[0]["t"], "a");
    let q = Quotas { bytes: 40, ..q };
    let grow = json!({"t": "x".repeat(20)}).to_string();
    let message = quota_message(ds_update(&mut conn, "blog", "posts", "{}", &grow, 0, &q));
    assert!(message.contains("FAZT_APP_BYTES"), "{message}");
    assert_usage_right(&conn, "blog");
}

#[test]
fn usage_stays_right_through_a_mix_of_writes() {
    let mut conn = test_db();
    for i in 0..50i64 {
        let key = format!("k{}", i % 7);
        let value = json!("v".repeat((i % 13) as usize)).to_string();
        let expires = (i % 3 == 0).then_some(i * 10);
        kv_set(&mut conn, "blog", &key, &value, expires, i * 10, &Q).unwrap();
        if i % 5 == 0 {
            kv_delete(&mut conn, "blog", &format!("k{}", i % 4)).unwrap();
        }
        let doc = json!({"g": i % 4, "s": "x".repeat((i % 9) as usize)}).to_string();
        ds_insert(&mut conn, "blog", "c", &doc, i, &Q).unwrap();
        let changes = json!({"s": "y".repeat((i % 5) as usize), "g": null}).to_string();
        ds_update(
            &mut conn,
            "blog",
            "c",
            &json!({"g": i % 4}).to_string(),
            &changes,
            i,
            &Q,
        )
        .unwrap();
        if i % 6 == 0 {
            ds_delete(&mut conn, "blog", "c", r#"{"g": null}"#).unwrap();
        }
        if i % 10 == 0 {
            sweep(&mut conn, i * 10).unwrap();
        }
        assert_usage_right(&conn, "blog");
    }
}

// --- env --------------------------------------------------------------------------------

#[test]
fn env_keys_are_checked_and_values_never_listed() {
    let mut conn = test_db();
    env_set(&mut conn, "blog", "TOKEN", "s3cr3t-value", 100).unwrap();
    env_set(&mut conn, "blog", "_a1", "", 100).unwrap();
    env_set(&mut conn, "shop", "TOKEN", "other", 100).unwrap();
    assert_eq!(
        env_list(&conn, "blog").unwrap(),
        [
            EnvVar {
                key: "TOKEN".into(),
                length: 12,
                updated_at: 100
            },
            EnvVar {
                key: "_a1".into(),
                length: 0,
                updated_at: 100
            }
        ]
    );
    env_set(&mut conn, "blog", "TOKEN", "é", 200).unwrap();
    assert_eq!(
        env_list(&conn, "blog").unwrap()[0].length,
        2,
        "bytes, not characters"
    );
    assert_eq!(
        env_values(&conn, "blog").unwrap(),
        [
            ("TOKEN".to_string(), "é".to_string()),
            ("_a1".into(), "".into())
        ]
    );
    for bad in [
        "",
        "1A",
        "A-B",
        "A B",
        "É",
        &format!("A{}", "b".repeat(128)),
    ] {
        let message = invalid_message(env_set(&mut conn, "blog", bad, "v", 0));
        assert!(
            message.contains("not an environment variable name"),
            "{message}"
        );
    }
    env_set(&mut conn, "blog", &format!("A{}", "b".repeat(127)), "v", 0).unwrap();
    let message = invalid_message(env_set(&mut conn, "blog", "BIG", &"v".repeat(4097), 0));
    assert!(!message.contains("vvvv"), "never the value: {message}");
    env_set(&mut conn, "blog", "BIG", &"v".repeat(4096), 0).unwrap();
    assert!(env_delete(&mut conn, "blog", "BIG").unwrap());
    assert!(!env_delete(&mut conn, "blog", "BIG").unwrap());
    assert_eq!(env_values(&conn, "shop").unwrap().len(), 1);
}

#[test]
fn a_site_has_at_most_its_number_of_env_variables() {
    let mut conn = test_db();
    for i in 0..ENV_MAX_KEYS {
        env_set(&mut conn, "blog", &format!("K{i}"), "v", 0).unwrap();
    }
    let message = quota_message(env_set(&mut conn, "blog", "ONE_MORE", "v", 0));
    assert!(
        message.contains("site blog has 100 environment variables"),
        "{message}"
    );
    // Replacing one is not adding one.
    env_set(&mut conn, "blog", "K7", "new", 0).unwrap();
    env_set(&mut conn, "shop", "ONE_MORE", "v", 0).unwrap();
}

// --- logs -------------------------------------------------------------------------------

fn line(site: &str, ts_ms: i64, message: &str) -> NewLog {
    NewLog {
        site: site.into(),
        ts_ms,
        level: LogLevel::Warn,
        message: message.into(),
    }
}

#[test]
fn logs_page_after_an_id_and_keep_the_newest_rows_per_site() {
    let mut conn = test_db();
    let batch: Vec<NewLog> = (0..LOG_ROWS_PER_SITE + 20)
        .map(|i| line("blog", i as i64, &format!("line {i}")))
        .collect();
    append_logs(&mut conn, &batch[..10]).unwrap();
    append_logs(&mut conn, &[line("shop", 0, "shop's")]).unwrap();
    append_logs(&mut conn, &batch[10..]).unwrap();
    let count = |site: &str| -> i64 {
        conn.query_row(
            "SELECT count(*) FROM app_logs WHERE site = ?1",
            [site],
            |r| r.get(0),
        )
        .unwrap()
    };
    assert_eq!(count("blog"), LOG_ROWS_PER_SITE as i64);
    assert_eq!(count("shop"), 1, "another site's lines are not trimmed");
    let first = logs_page(&conn, "blog", 0, 5).unwrap();
    assert_eq!(first.len(), 5);
    assert_eq!(first[0].message, "line 20", "the oldest 20 went");
    assert_eq!(first[0].level, LogLevel::Warn);
    let next = logs_page(&conn, "blog", first[4].id, 2).unwrap();
    assert_eq!(next[0].message, "line 25");
    assert!(next[0].id > first[4].id);
    let tail = logs_tail(&conn, "blog", 3).unwrap();
    let messages: Vec<_> = tail.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(messages, ["line 1017", "line 1018", "line 1019"]);
    assert_eq!(logs_tail(&conn, "shop", 100).unwrap().len(), 1);
    assert!(logs_page(&conn, "blog", tail[2].id, 100)
        .unwrap()
        .is_empty());
}

#[test]
fn old_logs_are_swept_and_ids_never_go_back() {
    let mut conn = test_db();
    let day = 24 * 3600 * 1000;
    let now = 30 * day;
    append_logs(
        &mut conn,
        &[
            line("blog", now - 8 * day, "old"),
            line("blog", now - day, "new"),
        ],
    )
    .unwrap();
    let last = logs_tail(&conn, "blog", 10).unwrap()[1].id;
    assert_eq!(sweep(&mut conn, now).unwrap(), (0, 1));
    let left: Vec<_> = logs_page(&conn, "blog", 0, 10).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].message, "new");
    assert_eq!(sweep(&mut conn, now + 7 * day).unwrap(), (0, 1));
    append_logs(&mut conn, &[line("blog", now, "after")]).unwrap();
    let after = logs_page(&conn, "blog", last, 10).unwrap();
    assert_eq!(
        after.len(),
        1,
        "a follower at the last id sees the next line"
    );
}

#[test]
fn a_long_message_is_cut_at_a_character_and_marked() {
    let mut conn = test_db();
    let long = "é".repeat(LOG_MESSAGE_MAX_BYTES);
    let exact = "x".repeat(LOG_MESSAGE_MAX_BYTES);
    append_logs(
        &mut conn,
        &[line("blog", 0, &long), line("blog", 0, &exact)],
    )
    .unwrap();
    let stored = logs_page(&conn, "blog", 0, 10).unwrap();
    assert!(
        stored[0].message.len() <= LOG_MESSAGE_MAX_BYTES,
        "{}",
        stored[0].message.len()
    );
    assert!(stored[0].message.ends_with("é… (cut)"));
    assert_eq!(stored[1].message, exact, "at the bound: kept whole");
}

#[test]
fn levels_round_trip() {
    for level in [
        LogLevel::Log,
        LogLevel::Info,
        LogLevel::Warn,
        LogLevel::Error,
    ] {
        assert_eq!(LogLevel::parse(level.as_str()), Some(level));
    }
    assert_eq!(LogLevel::parse("debug"), None);
}

#[test]
fn errors_map_to_statuses() {
    use crate::http::error::ResponseError;
    assert_eq!(StoreError::Invalid("x".into()).status(), 400);
    assert_eq!(StoreError::Quota("x".into()).status(), 409);
    let db = StoreError::Db(rusqlite::Error::QueryReturnedNoRows);
    assert_eq!(db.status(), 500);
    assert!(!db.to_string().contains("QueryReturnedNoRows"), "{db}");
}
