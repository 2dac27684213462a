//! Compression at deploy time (DESIGN D8): brotli and gzip variants of each compressible
//! file, made once on the deploy thread (or by `fazt site import`) before the writer's
//! transaction, never on a request path.
//!
//! A file gets variants when its MIME type compresses (text, JS, CSS, JSON, SVG, XML, wasm,
//! uncompressed fonts and icons), it is over [`MIN_SIZE`], and its bytes were never
//! compressed before (variants are keyed by the identity hash, so an unchanged file costs
//! one lookup on a re-deploy). A variant is kept when it saves at least 10 %.
//!
//! Variants are streamed into one anonymous pack file in the temp dir (unlinked at once, so
//! a crash leaves nothing behind), hashed as they are written: memory stays at the
//! encoders' windows whatever the file sizes.

use crate::hosting::encoding::Encoding;
use crate::hosting::store::{self, FileSource, StagedBlob, StagedFile, StagedVariants};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Files of this size or smaller are sent as they are: their headers outweigh the saving.
pub const MIN_SIZE: u64 = 1024;

/// Brotli quality and window, measured on the Rust Book (655 files, 17.2 MiB compressible,
/// `fazt site import`; README, "Compression"): br bytes / CPU time / peak RSS were
/// q9: 3.58 MB / 1.5 s / 62 MB, q10: 3.22 MB / 8.6 s / 76 MB, q11: 3.16 MB / 21 s / 92 MB,
/// and q10 with a 1 MiB window 3.34 MB / 9.1 s / 40 MB. Quality 10 gets within 2 % of the
/// best at 40 % of its time; the 1 MiB window halves the memory a large file needs for
/// 3.6 % more bytes.
const BROTLI_QUALITY: i32 = 10;
/// The window: the smallest that holds the file, at most 2^20 bytes.
const BROTLI_MAX_LGWIN: i32 = 20;
const GZIP_LEVEL: u32 = 9;

/// Whether files of this MIME type are worth compressing.
pub fn compressible(mime: &str) -> bool {
    let essence = mime.split(';').next().unwrap_or(mime).trim();
    let essence = essence.to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "application/vnd.ms-fontobject"
                | "font/ttf"
                | "font/otf"
                | "image/x-icon"
                | "image/bmp"
        )
}

/// Whether a variant of `size` bytes of a `original`-byte file saves at least 10 %.
fn pays(size: u64, original: u64) -> bool {
    size.saturating_mul(10) <= original.saturating_mul(9)
}

/// What [`precompress`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CompressReport {
    /// Files compressed now.
    pub compressed: u64,
    /// Compressible files whose bytes were compressed by an earlier deploy.
    pub reused: u64,
    /// Identity bytes of the files compressed now.
    pub input_bytes: u64,
    /// Variant bytes kept.
    pub variant_bytes: u64,
    pub micros: u64,
}

impl std::fmt::Display for CompressReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::platform::units::format_bytes;
        write!(
            f,
            "compressed {} files ({} into {} of br and gzip variants) in {} ms, reused the \
             variants of {} unchanged files",
            self.compressed,
            format_bytes(self.input_bytes),
            format_bytes(self.variant_bytes),
            self.micros / 1000,
            self.reused
        )
    }
}

/// Makes the variants of the compressible files among `files` whose bytes have none yet
/// (`known` answers that from the database), writing them into a pack file in `temp_dir`.
pub fn precompress(
    files: &mut [StagedFile],
    temp_dir: &Path,
    known: impl Fn(&[u8; 32]) -> rusqlite::Result<bool>,
) -> io::Result<CompressReport> {
    let started = Instant::now();
    let mut report = CompressReport::default();
    let mut pack: Option<Pack> = None;
    let mut seen = std::collections::HashSet::new();
    for file in files.iter_mut() {
        if file.size <= MIN_SIZE || !compressible(file.mime) {
            continue;
        }
        // The same bytes twice in one deploy: one set of rows is enough.
        if !seen.insert(file.sha256) {
            continue;
        }
        if known(&file.sha256).map_err(io::Error::other)? {
            report.reused += 1;
            continue;
        }
        let pack = match &mut pack {
            Some(pack) => pack,
            None => pack.insert(Pack::create(temp_dir)?),
        };
        let variants = compress_file(pack, file)?;
        report.compressed += 1;
        report.input_bytes += file.size;
        for blob in [&variants.br, &variants.gzip].into_iter().flatten() {
            report.variant_bytes += blob.size;
        }
        file.variants = Some(variants);
    }
    report.micros = started.elapsed().as_micros() as u64;
    Ok(report)
}

/// `precompress` with the calling thread's read connection (the deploy thread's).
pub fn precompress_with_reader(
    files: &mut [StagedFile],
    temp_dir: &Path,
) -> io::Result<CompressReport> {
    precompress(files, temp_dir, |sha256| {
        crate::db::reader::with_reader(|conn| store::variants_known(conn, sha256))
    })
}

fn compress_file(pack: &mut Pack, file: &StagedFile) -> io::Result<StagedVariants> {
    let context =
        |e: io::Error| io::Error::new(e.kind(), format!("compressing {}: {e}", file.path));
    let mut variants = StagedVariants::default();
    for encoding in Encoding::COMPRESSED {
        let source = file.reader().map_err(context)?;
        let blob = pack
            .append(|out| encode(encoding, source, file.size, out))
            .map_err(context)?;
        if pays(blob.size, file.size) {
            match encoding {
                Encoding::Br => variants.br = Some(blob),
                _ => variants.gzip = Some(blob),
            }
        } else {
            // Not kept: reuse the space for the next variant.
            pack.truncate_to(blob.source)?;
        }
    }
    Ok(variants)
}

/// Compresses `source` (`size` bytes) into `out`.
fn encode(
    encoding: Encoding,
    mut source: impl Read,
    size: u64,
    out: &mut dyn Write,
) -> io::Result<()> {
    match encoding {
        Encoding::Br => {
            let params = brotli_params(size);
            brotli::BrotliCompress(&mut source, &mut &mut *out, &params)?;
        }
        _ => {
            let mut encoder =
                flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            io::copy(&mut source, &mut encoder)?;
            encoder.finish()?;
        }
    }
    Ok(())
}

fn brotli_params(size: u64) -> brotli::enc::BrotliEncoderParams {
    // The smallest window that holds the whole file (brotli's minimum is 10).
    let bits = 64 - size.max(1).leading_zeros() as i32;
    brotli::enc::BrotliEncoderParams {
        quality: BROTLI_QUALITY,
        lgwin: bits.clamp(10, BROTLI_MAX_LGWIN),
        size_hint: usize::try_from(size).unwrap_or(usize::MAX),
        ..Default::default()
    }
}

/// Compresses bytes held in memory (the embedded dashboard assets, at start): the variants
/// that pay, by encoding.
pub fn compress_bytes(mime: &str, bytes: &[u8]) -> Vec<(Encoding, Vec<u8>)> {
    let size = bytes.len() as u64;
    if size <= MIN_SIZE || !compressible(mime) {
        return Vec::new();
    }
    let mut out = Vec::new();
    for encoding in Encoding::COMPRESSED {
        let mut compressed = Vec::new();
        match encode(encoding, bytes, size, &mut compressed) {
            Ok(()) if pays(compressed.len() as u64, size) => out.push((encoding, compressed)),
            Ok(()) => {}
            // Writing into a Vec fails only if the encoder does; the identity bytes still serve.
            Err(e) => log::warn!(
                "compressing an embedded asset with {}: {e}",
                encoding.token()
            ),
        }
    }
    out
}

/// The anonymous file the variants of one deploy are written into.
struct Pack {
    file: Arc<File>,
    len: u64,
}

static PACK_SEQ: AtomicU64 = AtomicU64::new(0);

impl Pack {
    fn create(temp_dir: &Path) -> io::Result<Pack> {
        let name = format!(
            "fazt-variants-{}-{}",
            std::process::id(),
            PACK_SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let path = temp_dir.join(name);
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        // Unlinked at once: the open file lives as long as the staged variants need it.
        std::fs::remove_file(&path)?;
        Ok(Pack {
            file: Arc::new(file),
            len: 0,
        })
    }

    /// Runs `write` on the end of the pack, hashing what it writes.
    fn append(
        &mut self,
        write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> io::Result<StagedBlob> {
        let offset = self.len;
        let mut out = HashingWriter {
            inner: BufWriter::with_capacity(
                store::CHUNK_SIZE,
                PackWriter {
                    file: &self.file,
                    pos: offset,
                },
            ),
            hasher: Sha256::new(),
            written: 0,
        };
        write(&mut out)?;
        out.inner.flush()?;
        self.len = offset + out.written;
        Ok(StagedBlob {
            sha256: out.hasher.finalize().into(),
            size: out.written,
            source: FileSource::Packed {
                file: Arc::clone(&self.file),
                offset,
            },
        })
    }

    /// Forgets everything from `source`'s offset on.
    fn truncate_to(&mut self, source: FileSource) -> io::Result<()> {
        if let FileSource::Packed { offset, .. } = source {
            self.file.set_len(offset)?;
            self.len = offset;
        }
        Ok(())
    }
}

/// Writes at a position of the shared pack file.
struct PackWriter<'a> {
    file: &'a File,
    pos: u64,
}

impl Write for PackWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.write_at(buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(encoding: Encoding, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match encoding {
            Encoding::Br => {
                brotli::Decompressor::new(bytes, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            _ => {
                flate2::read::GzDecoder::new(bytes)
                    .read_to_end(&mut out)
                    .unwrap();
            }
        }
        out
    }

    fn text(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("<p class=\"row-{}\">line {i}</p>\n", i % 7))
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn which_types_compress() {
        for yes in [
            "text/html; charset=utf-8",
            "text/javascript; charset=utf-8",
            "application/json",
            "application/manifest+json",
            "image/svg+xml",
            "application/xml",
            "application/wasm",
            "font/ttf",
        ] {
            assert!(compressible(yes), "{yes}");
        }
        for no in [
            "image/png",
            "image/jpeg",
            "font/woff2",
            "application/zip",
            "video/mp4",
            "application/octet-stream",
        ] {
            assert!(!compressible(no), "{no}");
        }
    }

    #[test]
    fn variants_decode_to_the_original_and_are_skipped_when_known() {
        let dir = std::env::temp_dir();
        let page: &'static [u8] = Box::leak(text(400).into_boxed_slice());
        // Hash output: incompressible.
        let noise: &'static [u8] = Box::leak(
            (0..160u32)
                .flat_map(|i| Sha256::digest(i.to_le_bytes()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let mut files = vec![
            StagedFile::embedded("index.html", page),
            StagedFile::embedded("copy.html", page),
            StagedFile::embedded("small.css", b"body{margin:0}"),
            StagedFile::embedded("logo.png", page),
            StagedFile::embedded("noise.txt", noise),
        ];
        let report = precompress(&mut files, &dir, |_| Ok(false)).unwrap();
        assert_eq!(report.compressed, 2, "{report:?}");
        let variants = files[0].variants.as_ref().unwrap();
        for (encoding, blob) in [
            (Encoding::Br, &variants.br),
            (Encoding::Gzip, &variants.gzip),
        ] {
            let blob = blob.as_ref().unwrap();
            let mut bytes = Vec::new();
            blob.source
                .reader(blob.size)
                .unwrap()
                .read_to_end(&mut bytes)
                .unwrap();
            assert_eq!(Sha256::digest(&bytes)[..], blob.sha256[..]);
            assert!(pays(blob.size, page.len() as u64));
            assert_eq!(decode(encoding, &bytes), page);
        }
        // The duplicate, the small file and the PNG get none.
        assert!(files[1..4].iter().all(|f| f.variants.is_none()));
        // Random bytes: tried, nothing kept (recorded so it is not tried again).
        let noise = files[4].variants.as_ref().unwrap();
        assert!(noise.br.is_none() && noise.gzip.is_none());

        let mut again = vec![StagedFile::embedded("index.html", page)];
        let report = precompress(&mut again, &dir, |_| Ok(true)).unwrap();
        assert_eq!((report.compressed, report.reused), (0, 1));
        assert!(again[0].variants.is_none());
    }

    #[test]
    fn embedded_bytes() {
        let page = text(100);
        let variants = compress_bytes("text/html", &page);
        assert_eq!(variants.len(), 2);
        for (encoding, bytes) in variants {
            assert_eq!(decode(encoding, &bytes), page);
        }
        assert!(compress_bytes("text/html", &page[..1000]).is_empty());
        assert!(compress_bytes("image/png", &page).is_empty());
    }
}
