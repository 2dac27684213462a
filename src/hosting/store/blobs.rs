//! Reading files and content-addressed blobs: whole (to cache) or chunk by chunk
//! (to stream), each chunk its own statement on the thread's read connection.

use super::variants::{find_variants, BlobRef, Variants};
use crate::hosting::encoding::Encoding;
use crate::http::response::BodyStream;
use rusqlite::{params, Connection, OptionalExtension};
use std::io;

/// Bytes per stored chunk: a streamed response holds one chunk at a time.
pub const CHUNK_SIZE: usize = 128 * 1024;

/// A file of a deployment, as stored, with the variants of its bytes.
#[derive(Clone, Debug)]
pub struct FileRow {
    pub sha256: [u8; 32],
    pub size: u64,
    pub mime: String,
    pub variants: Variants,
}

impl FileRow {
    /// The blob holding the file's bytes in `encoding` (identity when no such variant).
    pub fn blob(&self, encoding: Encoding) -> BlobRef {
        self.variants.get(encoding).unwrap_or(BlobRef {
            sha256: self.sha256,
            size: self.size,
        })
    }
}

pub fn find_file(
    conn: &Connection,
    deployment: i64,
    path: &str,
) -> rusqlite::Result<Option<FileRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT sha256, size, mime FROM files WHERE deployment = ?1 AND path = ?2",
    )?;
    let row = stmt
        .query_row(params![deployment, path], |row| {
            Ok(FileRow {
                sha256: row.get(0)?,
                size: row.get::<_, i64>(1)? as u64,
                mime: row.get(2)?,
                variants: Variants::default(),
            })
        })
        .optional()?;
    let Some(mut row) = row else { return Ok(None) };
    row.variants = find_variants(conn, &row.sha256)?;
    Ok(Some(row))
}

/// Reads a whole blob (for files small enough to cache).
pub fn read_blob(conn: &Connection, sha256: &[u8; 32], size: u64) -> rusqlite::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(size as usize);
    let mut stmt =
        conn.prepare_cached("SELECT data FROM blob_chunks WHERE sha256 = ?1 ORDER BY seq")?;
    let mut rows = stmt.query(params![&sha256[..]])?;
    while let Some(row) = rows.next()? {
        out.extend_from_slice(row.get_ref(0)?.as_blob()?);
    }
    if out.len() as u64 != size {
        return Err(corrupt(format!(
            "blob {} has {} bytes, expected {size}",
            crate::platform::units::hex(sha256),
            out.len()
        )));
    }
    Ok(out)
}

pub(super) fn corrupt(message: String) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
        Some(message),
    )
}

/// Streams part of a blob chunk by chunk through the thread's read connection. Each
/// chunk is its own statement, so no read transaction spans the response.
#[derive(Debug)]
pub struct BlobStream {
    sha256: [u8; 32],
    next_seq: i64,
    /// Bytes to skip at the start of the next chunk (a range starting mid-chunk).
    skip: usize,
    remaining: u64,
}

impl BlobStream {
    pub fn new(sha256: [u8; 32], start: u64, len: u64) -> BlobStream {
        BlobStream {
            sha256,
            next_seq: (start / CHUNK_SIZE as u64) as i64,
            skip: (start % CHUNK_SIZE as u64) as usize,
            remaining: len,
        }
    }
}

impl BodyStream for BlobStream {
    fn remaining(&self) -> u64 {
        self.remaining
    }

    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let chunk: Option<Vec<u8>> = crate::db::reader::with_reader(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM blob_chunks WHERE sha256 = ?1 AND seq = ?2")?;
            stmt.query_row(params![&self.sha256[..], self.next_seq], |row| row.get(0))
                .optional()
        })
        .map_err(io::Error::other)?;
        let Some(mut chunk) = chunk else {
            return Err(io::Error::other(format!(
                "chunk {} of blob {} is missing",
                self.next_seq,
                crate::platform::units::hex(&self.sha256)
            )));
        };
        if self.skip > 0 {
            chunk.drain(..self.skip.min(chunk.len()));
            self.skip = 0;
        }
        chunk.truncate(self.remaining.min(chunk.len() as u64) as usize);
        if chunk.is_empty() {
            return Err(io::Error::other("blob ended before the expected length"));
        }
        self.remaining -= chunk.len() as u64;
        self.next_seq += 1;
        Ok(Some(chunk))
    }
}
