//! The store: sites, immutable deployments, files and content-addressed blobs in SQLite.
//!
//! Invariants:
//! - a deployment and its files are written once and never changed; a site's current
//!   deployment is a pointer flipped in the same transaction that wrote the deployment,
//!   so a reader resolving one deployment id sees one whole deployment;
//! - blobs are keyed by the sha-256 of their bytes and shared by every file that has
//!   them; their bytes live in `CHUNK_SIZE` chunks, read one statement per chunk;
//! - reads go through the calling thread's own read-only connection (`install_reader`);
//!   all writes are made by whoever holds the one write connection (the writer thread in
//!   the server, or a CLI command on its own connection).

mod apply;
mod blobs;
mod catalog;
mod gc;
mod names;
mod staging;
mod table;
mod variants;

pub use apply::*;
pub use blobs::*;
pub use catalog::*;
pub use gc::*;
pub use names::*;
pub use staging::*;
pub use table::*;
pub use variants::*;

#[cfg(test)]
mod tests {
    use super::apply::{with_small_cache, BLOB_WORK_CACHE_KIB};
    use super::*;
    use crate::http::response::BodyStream;
    use rusqlite::{params, Connection, OptionalExtension};

    #[test]
    fn site_names() {
        for good in ["blog", "a", "my-site-2", &"x".repeat(63)] {
            assert!(validate_site_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "Blog",
            "-x",
            "x-",
            "a.b",
            "a_b",
            "café",
            &"x".repeat(64),
            "admin",
        ] {
            assert!(validate_site_name(bad).is_err(), "{bad}");
        }
    }

    fn test_db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::db::migrate::run(&mut conn).unwrap();
        conn
    }

    /// Deploys `files` (path, content) to `site`; returns the deployment id.
    fn deploy(conn: &mut Connection, site: &str, files: &[(&str, &str)]) -> i64 {
        let staged: Vec<StagedFile> = files
            .iter()
            .map(|(path, text)| {
                let bytes: &'static [u8] = Box::leak(text.as_bytes().to_vec().into_boxed_slice());
                StagedFile::embedded(path, bytes)
            })
            .collect();
        apply_deployment(conn, site, &staged, "test")
            .unwrap()
            .deployment
    }

    #[test]
    fn deploys_and_gc_put_back_the_cache_size_they_lowered() {
        let cache_size = |conn: &Connection| -> i64 {
            conn.pragma_query_value(None, "cache_size", |r| r.get(0))
                .unwrap()
        };
        let mut conn = test_db();
        conn.pragma_update(None, "cache_size", -16384).unwrap();
        let seen_inside = with_small_cache(&mut conn, |conn| Ok(cache_size(conn))).unwrap();
        assert_eq!(seen_inside, -BLOB_WORK_CACHE_KIB);
        deploy(&mut conn, "blog", &[("index.html", "one")]);
        prune_and_gc(&mut conn, 1, &[]).unwrap();
        assert_eq!(cache_size(&conn), -16384);
        // Already small (in pages here): left alone.
        conn.pragma_update(None, "cache_size", 100).unwrap();
        let seen_inside = with_small_cache(&mut conn, |conn| Ok(cache_size(conn))).unwrap();
        assert_eq!(seen_inside, 100);
        // A failed deploy restores it too.
        conn.pragma_update(None, "cache_size", -8192).unwrap();
        let failed: rusqlite::Result<()> =
            with_small_cache(&mut conn, |_| Err(rusqlite::Error::InvalidQuery));
        assert!(failed.is_err());
        assert_eq!(cache_size(&conn), -8192);
    }

    fn current(conn: &Connection, site: &str) -> Option<i64> {
        conn.query_row(
            "SELECT current_deployment FROM sites WHERE name = ?1",
            params![site],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
        .flatten()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn rollback_to_previous_or_given_deployment() {
        let mut conn = test_db();
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::UnknownSite
        );
        let d1 = deploy(&mut conn, "blog", &[("index.html", "one")]);
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::NothingEarlier
        );
        let d2 = deploy(&mut conn, "blog", &[("index.html", "two")]);
        let d3 = deploy(&mut conn, "blog", &[("index.html", "three")]);
        let other = deploy(&mut conn, "shop", &[("index.html", "shop")]);
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::Done {
                deployment: d2,
                previous: Some(d3)
            }
        );
        // "Previous" is older than the current one, not the one served before.
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::Done {
                deployment: d1,
                previous: Some(d2)
            }
        );
        assert_eq!(
            rollback(&mut conn, "blog", None).unwrap(),
            RollbackOutcome::NothingEarlier
        );
        assert_eq!(
            rollback(&mut conn, "blog", Some(d3)).unwrap(),
            RollbackOutcome::Done {
                deployment: d3,
                previous: Some(d1)
            }
        );
        assert_eq!(
            rollback(&mut conn, "blog", Some(d3)).unwrap(),
            RollbackOutcome::AlreadyCurrent(d3)
        );
        assert_eq!(
            rollback(&mut conn, "blog", Some(other)).unwrap(),
            RollbackOutcome::UnknownDeployment(other)
        );
        assert_eq!(current(&conn, "blog"), Some(d3));
        assert_eq!(current(&conn, "shop"), Some(other));
    }

    #[test]
    fn prune_keeps_the_newest_and_the_current_and_gc_keeps_shared_blobs() {
        let mut conn = test_db();
        let shared = ("shared.css", "body{}");
        let mut blog = Vec::new();
        for n in 0..5 {
            let text = format!("blog {n}");
            blog.push(deploy(&mut conn, "blog", &[("index.html", &text), shared]));
        }
        // Roll back to the oldest: it is current, so it survives pruning.
        rollback(&mut conn, "blog", Some(blog[0])).unwrap();
        let shop = deploy(&mut conn, "shop", &[("index.html", "blog 1"), shared]);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 6);

        let report = prune_and_gc(&mut conn, 2, &[]).unwrap();
        let ids: Vec<i64> = conn
            .prepare("SELECT id FROM deployments WHERE site = 'blog' ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(ids, vec![blog[0], blog[3], blog[4]]);
        assert_eq!(current(&conn, "shop"), Some(shop));
        // blog 1 is shop's too; blog 2 is nobody's any more.
        assert_eq!(
            report,
            GcReport {
                deployments_removed: 2,
                blobs_removed: 1,
                bytes_freed: 6,
            }
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 5);
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM files WHERE deployment NOT IN (SELECT id FROM deployments)"
            ),
            0
        );
        // Nothing more to do the second time.
        assert_eq!(
            prune_and_gc(&mut conn, 2, &[]).unwrap(),
            GcReport::default()
        );
    }

    #[test]
    fn a_spared_deployment_and_its_blobs_survive_one_collection() {
        let mut conn = test_db();
        let old = deploy(&mut conn, "blog", &[("index.html", "old")]);
        let new = deploy(&mut conn, "blog", &[("index.html", "new")]);
        assert_eq!(
            prune_and_gc(&mut conn, 1, &[old]).unwrap(),
            GcReport::default()
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 2);
        let report = prune_and_gc(&mut conn, 1, &[]).unwrap();
        assert_eq!(report.deployments_removed, 1);
        assert_eq!(report.blobs_removed, 1);
        assert_eq!(current(&conn, "blog"), Some(new));
    }

    #[test]
    fn delete_site_removes_its_rows_and_unshared_blobs() {
        let mut conn = test_db();
        let big: String = "x".repeat(CHUNK_SIZE * 2 + 1);
        let d1 = deploy(
            &mut conn,
            "blog",
            &[("index.html", "mine"), ("big.bin", &big)],
        );
        let d2 = deploy(
            &mut conn,
            "blog",
            &[("index.html", "mine too"), ("common.txt", "c")],
        );
        deploy(&mut conn, "shop", &[("common.txt", "c")]);
        assert!(delete_site(&mut conn, "nope").unwrap().is_none());

        let removal = delete_site(&mut conn, "blog").unwrap().unwrap();
        assert_eq!(removal.deployments, vec![d1, d2]);
        assert_eq!(removal.gc.deployments_removed, 2);
        assert_eq!(removal.gc.blobs_removed, 3);
        assert_eq!(removal.gc.bytes_freed, (4 + 8 + big.len()) as u64);
        assert!(!site_exists(&conn, "blog").unwrap());
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM deployments WHERE site = 'blog'"
            ),
            0
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM files WHERE deployment IN (1, 2)"
            ),
            0
        );
        // The shared blob stays; the big blob's chunks went with it.
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 1);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blob_chunks"), 1);
        assert!(site_exists(&conn, "shop").unwrap());
    }

    #[test]
    fn delete_site_removes_its_apps_rows_and_no_other_sites() {
        use crate::serverless::store as apps;
        let mut conn = test_db();
        deploy(&mut conn, "blog", &[("index.html", "b")]);
        deploy(&mut conn, "shop", &[("index.html", "s")]);
        let q = apps::Quotas::default();
        for site in ["blog", "shop"] {
            apps::kv_set(&mut conn, site, "k", "1", None, 0, &q).unwrap();
            apps::ds_insert(&mut conn, site, "posts", r#"{"t":1}"#, 0, &q).unwrap();
            apps::env_set(&mut conn, site, "TOKEN", "secret", 0).unwrap();
            let log = apps::NewLog {
                site: site.into(),
                ts_ms: 0,
                level: apps::LogLevel::Log,
                message: "hi".into(),
            };
            apps::append_logs(&mut conn, &[log]).unwrap();
        }
        delete_site(&mut conn, "blog").unwrap().unwrap();
        for table in ["app_kv", "app_docs", "app_env", "app_logs", "app_usage"] {
            let sql = |site: &str| format!("SELECT COUNT(*) FROM {table} WHERE site = '{site}'");
            assert_eq!(count(&conn, &sql("blog")), 0, "{table}");
            assert_eq!(count(&conn, &sql("shop")), 1, "{table}");
        }
        // A site made again under the name starts empty.
        deploy(&mut conn, "blog", &[("index.html", "again")]);
        assert_eq!(apps::kv_get(&conn, "blog", "k", 0).unwrap(), None);
        assert_eq!(apps::usage(&conn, "blog").unwrap(), apps::Usage::default());
    }

    #[test]
    fn listings() {
        let mut conn = test_db();
        let d1 = deploy(&mut conn, "blog", &[("index.html", "one")]);
        let d2 = deploy(&mut conn, "blog", &[("index.html", "one"), ("a.css", "a")]);
        deploy(&mut conn, "a-site", &[]);
        let sites = list_sites(&conn).unwrap();
        let names: Vec<_> = sites.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["a-site", "blog"]);
        assert_eq!(sites[1].deployment, Some(d2));
        assert_eq!((sites[1].file_count, sites[1].total_bytes), (2, 4));
        let (current, deployments) = list_deployments(&conn, "blog").unwrap().unwrap();
        assert_eq!(current, Some(d2));
        let ids: Vec<_> = deployments.iter().map(|d| d.id).collect();
        assert_eq!(ids, [d2, d1]);
        assert_eq!(deployments[0].new_bytes, 1);
        assert!(list_deployments(&conn, "nope").unwrap().is_none());
    }

    #[test]
    fn deployment_ids_are_never_reused_after_the_newest_site_is_deleted() {
        let mut conn = test_db();
        let file = StagedFile::embedded("index.html", b"x");
        let files = std::slice::from_ref(&file);
        apply_deployment(&mut conn, "a", files, "test").unwrap();
        let newest = apply_deployment(&mut conn, "b", files, "test")
            .unwrap()
            .deployment;
        delete_site(&mut conn, "b").unwrap().unwrap();
        let next = apply_deployment(&mut conn, "c", files, "test")
            .unwrap()
            .deployment;
        assert!(next > newest, "{next} reuses an id up to {newest}");
    }

    #[test]
    fn variants_are_stored_found_reused_and_collected_with_their_blob() {
        let mut conn = test_db();
        let page: &'static [u8] = Box::leak(
            "<p>a paragraph</p>\n"
                .repeat(200)
                .into_bytes()
                .into_boxed_slice(),
        );
        let stage = |conn: &Connection| {
            let mut files = vec![StagedFile::embedded("index.html", page)];
            crate::hosting::compress::precompress(&mut files, &std::env::temp_dir(), |sha| {
                variants_known(conn, sha)
            })
            .unwrap();
            files
        };
        let files = stage(&conn);
        let identity = files[0].sha256;
        apply_deployment(&mut conn, "blog", &files, "test").unwrap();
        let found = find_variants(&conn, &identity).unwrap();
        let (br, gzip) = (found.br.unwrap(), found.gzip.unwrap());
        assert!(br.size < page.len() as u64 && gzip.size < page.len() as u64);
        assert_eq!(
            read_blob(&conn, &br.sha256, br.size).unwrap().len() as u64,
            br.size
        );
        // The same bytes again: nothing to compress, the rows stay as they are.
        assert!(stage(&conn)[0].variants.is_none());
        deploy(&mut conn, "blog", &[("index.html", "new")]);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 4);
        let report = prune_and_gc(&mut conn, 1, &[]).unwrap();
        assert_eq!(
            report.blobs_removed, 3,
            "the identity blob and its two variants"
        );
        assert_eq!(report.bytes_freed, page.len() as u64 + br.size + gzip.size);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blob_variants"), 0);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM blobs"), 1);
    }

    #[test]
    fn blob_stream_reads_a_range_across_chunks() {
        let mut conn = test_db();
        let bytes: &'static [u8] = Box::leak((0..CHUNK_SIZE * 2 + 10).map(|i| i as u8).collect());
        let file = StagedFile::embedded("big.bin", bytes);
        apply_deployment(&mut conn, "s", std::slice::from_ref(&file), "test").unwrap();
        crate::db::reader::install_reader(conn);
        let start = CHUNK_SIZE as u64 - 3;
        let mut stream = BlobStream::new(file.sha256, start, CHUNK_SIZE as u64 + 6);
        let mut out = Vec::new();
        while let Some(chunk) = stream.next_chunk().unwrap() {
            out.extend(chunk);
        }
        assert_eq!(out, &bytes[start as usize..start as usize + CHUNK_SIZE + 6]);
        crate::db::reader::drop_reader();
    }
}
