//! Precompressed variants of blobs (DESIGN D8, migration 004): brotli and gzip bytes of an
//! identity blob, stored as blobs themselves and named in `blob_variants`.
//!
//! Invariants: a variant row is written in the transaction that stores (or finds) its
//! identity blob and never changed; a variant blob is deleted only with the last identity
//! blob (or file) that references it, in the same GC transaction (`gc::gc_blobs`).

use super::staging::StagedBlob;
use crate::hosting::encoding::{Encoding, EncodingSet};
use rusqlite::{params, Connection};

/// A stored blob: its hash and size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub sha256: [u8; 32],
    pub size: u64,
}

/// The stored variants of a file, by encoding.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Variants {
    pub br: Option<BlobRef>,
    pub gzip: Option<BlobRef>,
}

impl Variants {
    pub fn get(&self, encoding: Encoding) -> Option<BlobRef> {
        match encoding {
            Encoding::Identity => None,
            Encoding::Br => self.br,
            Encoding::Gzip => self.gzip,
        }
    }

    fn slot(&mut self, encoding: Encoding) -> Option<&mut Option<BlobRef>> {
        match encoding {
            Encoding::Identity => None,
            Encoding::Br => Some(&mut self.br),
            Encoding::Gzip => Some(&mut self.gzip),
        }
    }

    /// Identity plus the encodings stored.
    pub fn available(&self) -> EncodingSet {
        Encoding::COMPRESSED
            .into_iter()
            .filter(|e| self.get(*e).is_some())
            .fold(EncodingSet::IDENTITY, EncodingSet::with)
    }
}

/// Variants made for a staged file in this deploy: `None` for a coding that did not save
/// enough (recorded as tried, so it is not compressed again).
#[derive(Clone, Debug, Default)]
pub struct StagedVariants {
    pub br: Option<StagedBlob>,
    pub gzip: Option<StagedBlob>,
}

/// The variants stored for the identity blob `sha256`.
pub fn find_variants(conn: &Connection, sha256: &[u8; 32]) -> rusqlite::Result<Variants> {
    let mut stmt = conn.prepare_cached(
        "SELECT v.encoding, v.variant, b.size FROM blob_variants v
         JOIN blobs b ON b.sha256 = v.variant WHERE v.sha256 = ?1",
    )?;
    let mut rows = stmt.query(params![&sha256[..]])?;
    let mut variants = Variants::default();
    while let Some(row) = rows.next()? {
        let token: String = row.get(0)?;
        let blob = BlobRef {
            sha256: row.get(1)?,
            size: row.get::<_, i64>(2)? as u64,
        };
        if let Some(slot) = Encoding::from_token(&token).and_then(|e| variants.slot(e)) {
            *slot = Some(blob);
        }
    }
    Ok(variants)
}

/// Whether the identity blob `sha256` was compressed before (its variants, or the record
/// that they did not pay, exist): a re-deploy of the same bytes compresses nothing.
pub fn variants_known(conn: &Connection, sha256: &[u8; 32]) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM blob_variants WHERE sha256 = ?1")?
        .exists(params![&sha256[..]])
}

/// Writes the variant blobs and rows of the identity blob `sha256` (already stored in this
/// transaction). Rows already there (a concurrent import compressed the same bytes) stay.
/// Returns the variant bytes newly stored.
pub(super) fn store_variants(
    tx: &rusqlite::Transaction,
    sha256: &[u8; 32],
    path: &str,
    variants: &StagedVariants,
    now: i64,
) -> rusqlite::Result<u64> {
    let mut new_bytes = 0;
    for (encoding, staged) in [
        (Encoding::Br, &variants.br),
        (Encoding::Gzip, &variants.gzip),
    ] {
        if let Some(blob) = staged {
            let label = format!("{path} ({})", encoding.token());
            if super::apply::store_blob(tx, &blob.sha256, blob.size, &blob.source, &label, now)? {
                new_bytes += blob.size;
            }
        }
        tx.prepare_cached(
            "INSERT OR IGNORE INTO blob_variants (sha256, encoding, variant) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![
            &sha256[..],
            encoding.token(),
            staged.as_ref().map(|b| b.sha256.to_vec())
        ])?;
    }
    Ok(new_bytes)
}

/// The variant blobs of the identity blob `sha256` (GC candidates when it goes).
pub(super) fn variant_blobs(
    conn: &Connection,
    sha256: &[u8; 32],
) -> rusqlite::Result<Vec<[u8; 32]>> {
    conn.prepare_cached(
        "SELECT variant FROM blob_variants WHERE sha256 = ?1 AND variant IS NOT NULL",
    )?
    .query_map(params![&sha256[..]], |r| r.get(0))?
    .collect()
}
