//! `fazt export site`: one deployment of a site back as a zip whose entries are the
//! deployed files, byte for byte (the originals only; the brotli and gzip variants made
//! at deploy time are the server's, not the site's).
//!
//! Invariants: the whole export reads one snapshot (a read transaction on a read-only
//! connection), so a deploy, rollback or garbage collection running meanwhile never mixes
//! into it or removes a blob under it, and the writer is never blocked (WAL). Every file's
//! bytes are checked against their sha-256 and size as they are copied: a damaged blob
//! fails the export instead of producing a wrong archive.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::{self, Write};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// The deployment of a site to export: one that exists and belongs to the site.
#[derive(Clone, Debug)]
pub(crate) struct Export {
    pub(crate) site: String,
    pub(crate) deployment: i64,
    pub(crate) files: Vec<ExportFile>,
}

/// One file of the deployment, as the `files` table has it.
#[derive(Clone, Debug)]
pub(crate) struct ExportFile {
    pub(crate) path: String,
    pub(crate) sha256: [u8; 32],
    pub(crate) size: u64,
    /// The store made compressed variants of it: its content compresses, so deflate it in
    /// the zip too; without, it is stored (already compressed, or too small to gain).
    pub(crate) compressible: bool,
}

impl Export {
    pub(crate) fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Why an export did not happen.
#[derive(Debug)]
pub(crate) enum ExportError {
    UnknownSite(String),
    /// The site exists but serves nothing (every deployment was deleted).
    NoCurrentDeployment(String),
    UnknownDeployment {
        site: String,
        id: i64,
    },
    Db(rusqlite::Error),
    /// A stored file whose bytes do not match its size or hash.
    Corrupt(String),
    Write(io::Error),
}

impl fmt::Display for ExportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExportError::UnknownSite(site) => {
                write!(f, "no site named '{site}' ('fazt sites' lists them)")
            }
            ExportError::NoCurrentDeployment(site) => write!(
                f,
                "site '{site}' has no current deployment; name one with --deployment ID"
            ),
            ExportError::UnknownDeployment { site, id } => write!(
                f,
                "site '{site}' has no deployment {id} ('fazt deployments {site}' lists them)"
            ),
            ExportError::Db(e) => write!(f, "reading the database: {e}"),
            ExportError::Corrupt(why) => write!(f, "{why}; run 'fazt db check'"),
            ExportError::Write(e) => write!(f, "writing the archive: {e}"),
        }
    }
}

impl From<rusqlite::Error> for ExportError {
    fn from(e: rusqlite::Error) -> Self {
        ExportError::Db(e)
    }
}

impl From<zip::result::ZipError> for ExportError {
    fn from(e: zip::result::ZipError) -> Self {
        match e {
            zip::result::ZipError::Io(e) => ExportError::Write(e),
            other => ExportError::Write(io::Error::other(other)),
        }
    }
}

/// Opens the read transaction the export runs in. A deferred `BEGIN` on a read-only
/// connection takes its snapshot at the first read and never takes a write lock.
pub(crate) fn snapshot(conn: &mut Connection) -> Result<Transaction<'_>, ExportError> {
    Ok(conn.transaction_with_behavior(rusqlite::TransactionBehavior::Deferred)?)
}

/// Finds the deployment to export (`deployment`, or the site's current one) and its files,
/// sorted by path. Nothing is written: an unknown site or deployment is an error here.
pub(crate) fn resolve(
    conn: &Connection,
    site: &str,
    deployment: Option<i64>,
) -> Result<Export, ExportError> {
    let current: Option<Option<i64>> = conn
        .prepare_cached("SELECT current_deployment FROM sites WHERE name = ?1")?
        .query_row(params![site], |r| r.get(0))
        .optional()?;
    let Some(current) = current else {
        return Err(ExportError::UnknownSite(site.to_string()));
    };
    let id = match deployment.or(current) {
        Some(id) => id,
        None => return Err(ExportError::NoCurrentDeployment(site.to_string())),
    };
    let belongs = conn
        .prepare_cached("SELECT 1 FROM deployments WHERE id = ?1 AND site = ?2")?
        .exists(params![id, site])?;
    if !belongs {
        return Err(ExportError::UnknownDeployment {
            site: site.to_string(),
            id,
        });
    }
    Ok(Export {
        site: site.to_string(),
        deployment: id,
        files: files_of(conn, id)?,
    })
}

fn files_of(conn: &Connection, deployment: i64) -> Result<Vec<ExportFile>, ExportError> {
    let mut stmt = conn.prepare_cached(
        "SELECT f.path, f.sha256, f.size,
                EXISTS (SELECT 1 FROM blob_variants v WHERE v.sha256 = f.sha256)
         FROM files f WHERE f.deployment = ?1 ORDER BY f.path",
    )?;
    let files = stmt
        .query_map(params![deployment], |row| {
            Ok(ExportFile {
                path: row.get(0)?,
                sha256: row.get(1)?,
                size: row.get::<_, i64>(2)? as u64,
                compressible: row.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(files)
}

/// Writes the zip of `export` to `out` (no seeking needed: a pipe will do), each file
/// copied chunk by chunk from `blob_chunks`, never whole in memory.
pub(crate) fn write_zip(
    conn: &Connection,
    export: &Export,
    out: impl Write,
) -> Result<(), ExportError> {
    let mut zip = zip::ZipWriter::new_stream(out);
    for file in &export.files {
        let method = if file.compressible {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let options = SimpleFileOptions::default()
            .compression_method(method)
            // A fixed date (1980-01-01, the zip epoch), not the time of the export: the
            // same deployment always gives the same bytes.
            .last_modified_time(zip::DateTime::default())
            .unix_permissions(0o644)
            // Zip64 headers are needed for entries of 4 GiB and more; the size is known.
            .large_file(file.size >= u64::from(u32::MAX));
        zip.start_file(file.path.as_str(), options)?;
        copy_blob(conn, file, &mut zip)?;
    }
    let mut out = zip.finish()?.into_inner();
    out.flush().map_err(ExportError::Write)
}

/// Copies one file's blob into `sink`, checking its length and sha-256 on the way.
fn copy_blob(
    conn: &Connection,
    file: &ExportFile,
    sink: &mut impl Write,
) -> Result<(), ExportError> {
    let mut stmt =
        conn.prepare_cached("SELECT data FROM blob_chunks WHERE sha256 = ?1 ORDER BY seq")?;
    let mut rows = stmt.query(params![&file.sha256[..]])?;
    let mut hasher = Sha256::new();
    let mut copied = 0u64;
    while let Some(row) = rows.next()? {
        let chunk = row.get_ref(0)?.as_blob().map_err(rusqlite::Error::from)?;
        hasher.update(chunk);
        sink.write_all(chunk).map_err(ExportError::Write)?;
        copied += chunk.len() as u64;
    }
    let digest: [u8; 32] = hasher.finalize().into();
    if copied != file.size || digest != file.sha256 {
        return Err(ExportError::Corrupt(format!(
            "the stored bytes of {} (blob {}) do not match it: {copied} bytes, expected {}",
            file.path,
            crate::platform::units::hex(&file.sha256),
            file.size
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosting::store::{apply_deployment, StagedFile};
    use std::io::Read;

    fn test_db() -> Connection {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "foreign_keys", "ON").unwrap();
        crate::db::migrate::run(&mut conn).unwrap();
        conn
    }

    fn deploy(conn: &mut Connection, site: &str, files: &[(&str, &'static [u8])]) -> i64 {
        let staged: Vec<StagedFile> = files
            .iter()
            .map(|(path, bytes)| StagedFile::embedded(path, bytes))
            .collect();
        apply_deployment(conn, site, &staged, "test")
            .unwrap()
            .deployment
    }

    fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).unwrap();
        (0..archive.len())
            .map(|i| {
                let mut entry = archive.by_index(i).unwrap();
                let mut content = Vec::new();
                entry.read_to_end(&mut content).unwrap();
                (entry.name().unwrap().to_string(), content)
            })
            .collect()
    }

    fn export(conn: &Connection, site: &str, id: Option<i64>) -> Vec<(String, Vec<u8>)> {
        let found = resolve(conn, site, id).unwrap();
        let mut out = Vec::new();
        write_zip(conn, &found, &mut out).unwrap();
        unzip(&out)
    }

    #[test]
    fn exports_the_current_or_a_named_deployment_byte_exact() {
        let mut conn = test_db();
        let empty: &'static [u8] = b"";
        let binary: &'static [u8] = &[0, 255, 1, 254, 0, 0, 7];
        let first = deploy(
            &mut conn,
            "blog",
            &[
                ("index.html", b"one"),
                ("a/b/c.bin", binary),
                ("empty", empty),
            ],
        );
        deploy(&mut conn, "blog", &[("index.html", b"two")]);
        let current = export(&conn, "blog", None);
        // Entries carry a fixed date: the same deployment always gives the same archive.
        let mut out = Vec::new();
        write_zip(
            &conn,
            &resolve(&conn, "blog", Some(first)).unwrap(),
            &mut out,
        )
        .unwrap();
        let mut archive = zip::ZipArchive::new(io::Cursor::new(out)).unwrap();
        for i in 0..archive.len() {
            let entry = archive.by_index(i).unwrap();
            assert_eq!(entry.last_modified(), Some(zip::DateTime::default()));
        }
        assert_eq!(current, vec![("index.html".into(), b"two".to_vec())]);
        let old = export(&conn, "blog", Some(first));
        assert_eq!(
            old,
            vec![
                ("a/b/c.bin".into(), binary.to_vec()),
                ("empty".into(), Vec::new()),
                ("index.html".into(), b"one".to_vec()),
            ]
        );
    }

    #[test]
    fn unknown_site_or_foreign_deployment_is_refused() {
        let mut conn = test_db();
        let other = deploy(&mut conn, "other", &[("x", b"x")]);
        deploy(&mut conn, "blog", &[("x", b"y")]);
        assert!(matches!(
            resolve(&conn, "nope", None),
            Err(ExportError::UnknownSite(_))
        ));
        let err = resolve(&conn, "blog", Some(other)).unwrap_err();
        assert!(matches!(err, ExportError::UnknownDeployment { id, .. } if id == other));
        assert!(err.to_string().contains("no deployment"), "{err}");
    }

    #[test]
    fn a_damaged_blob_fails_the_export() {
        let mut conn = test_db();
        deploy(&mut conn, "blog", &[("index.html", b"hello")]);
        conn.execute("UPDATE blob_chunks SET data = X'68656C6C70'", [])
            .unwrap();
        let found = resolve(&conn, "blog", None).unwrap();
        let err = write_zip(&conn, &found, Vec::new()).unwrap_err();
        assert!(matches!(err, ExportError::Corrupt(_)), "{err}");
    }
}
