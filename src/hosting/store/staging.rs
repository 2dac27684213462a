//! Files staged for a deployment: path, hash, size, MIME type and where the bytes are
//! (a directory, the binary, or a deploy's pack file).

use super::variants::StagedVariants;
use super::CHUNK_SIZE;
use crate::hosting::path::is_published;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a staged file's bytes come from.
#[derive(Clone, Debug)]
pub enum FileSource {
    Disk(PathBuf),
    Embedded(&'static [u8]),
    /// `size` bytes at `offset` of a shared file: a deploy's extracted entries are packed
    /// into one temp file, so a deploy creates one file, not one per entry (creating and
    /// deleting thousands of files cost more than writing their bytes).
    Packed {
        file: Arc<File>,
        offset: u64,
    },
}

/// Reads a byte range of a shared file by position, leaving the file's offset alone.
struct PackedReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for PackedReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the packed file ended early",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

impl FileSource {
    /// The `size` bytes of this source, from wherever they are.
    pub fn reader(&self, size: u64) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            FileSource::Disk(path) => Box::new(File::open(path)?),
            FileSource::Embedded(bytes) => Box::new(*bytes),
            FileSource::Packed { file, offset } => Box::new(PackedReader {
                file,
                pos: *offset,
                end: offset + size,
            }),
        })
    }
}

/// A file ready to be written into a deployment: path normalised, bytes hashed.
#[derive(Clone, Debug)]
pub struct StagedFile {
    pub path: String,
    pub source: FileSource,
    pub size: u64,
    pub sha256: [u8; 32],
    pub mime: &'static str,
    /// Compressed variants made for this deploy (`hosting::compress`); `None` when the file
    /// is not compressible or its bytes were compressed by an earlier deploy.
    pub variants: Option<StagedVariants>,
}

/// Bytes to store as a blob (a compressed variant), already hashed.
#[derive(Clone, Debug)]
pub struct StagedBlob {
    pub sha256: [u8; 32],
    pub size: u64,
    pub source: FileSource,
}

impl StagedFile {
    /// The file's bytes, from wherever they are.
    pub fn reader(&self) -> io::Result<Box<dyn Read + '_>> {
        self.source.reader(self.size)
    }

    pub fn embedded(path: &str, bytes: &'static [u8]) -> StagedFile {
        StagedFile {
            path: path.to_string(),
            source: FileSource::Embedded(bytes),
            size: bytes.len() as u64,
            sha256: Sha256::digest(bytes).into(),
            mime: crate::hosting::rules::mime_for(path),
            variants: None,
        }
    }
}

/// Walks a directory into staged files: regular files only, dot-paths (`.git/`, `.env`)
/// skipped except `.well-known/` ([`is_published`]), symlinks refused, each file hashed
/// by streaming it.
pub fn stage_directory(dir: &Path) -> Result<Vec<StagedFile>, String> {
    let mut files = Vec::new();
    let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a directory", dir.display()));
    }
    walk(dir, "", &mut files)?;
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

fn walk(dir: &Path, prefix: &str, files: &mut Vec<StagedFile>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", dir.display()))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            return Err(format!(
                "{}: file name is not UTF-8",
                entry.path().display()
            ));
        };
        // Names are taken literally (a file `100%.txt` is served at `/100%25.txt`); only
        // what no URL path can name is refused.
        if name.contains('\\') || name.chars().any(char::is_control) {
            let path = entry.path();
            return Err(format!(
                "{}: backslashes and control characters can't be served",
                path.display()
            ));
        }
        let rel = format!("{prefix}{name}");
        // Checked before descending, so a `.git/` directory is never walked.
        if !is_published(&rel) {
            continue;
        }
        let kind = entry
            .file_type()
            .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        if kind.is_dir() {
            walk(&entry.path(), &format!("{rel}/"), files)?;
        } else if kind.is_file() {
            let (sha256, size) =
                hash_file(&entry.path()).map_err(|e| format!("{}: {e}", entry.path().display()))?;
            files.push(StagedFile {
                mime: crate::hosting::rules::mime_for(&rel),
                path: rel,
                source: FileSource::Disk(entry.path()),
                size,
                sha256,
                variants: None,
            });
        } else {
            return Err(format!(
                "{}: not a regular file (links and devices are not published)",
                entry.path().display()
            ));
        }
    }
    Ok(())
}

fn hash_file(path: &Path) -> io::Result<([u8; 32], u64)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK_SIZE];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok((hasher.finalize().into(), size));
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
}
