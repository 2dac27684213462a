//! Builds the deploy archive in an anonymous temp file: walked files in, a zip out,
//! never more than one copy buffer of it in memory.

use crate::hosting::store::{FileSource, StagedFile};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use zip::write::SimpleFileOptions;
use zip::CompressionMethod;

/// A finished archive, positioned at its start, ready to be streamed.
pub struct Archive {
    pub file: File,
    /// Size of the zip itself.
    pub size: u64,
    /// Entries written.
    pub files: usize,
}

/// Extensions whose content is already compressed: deflating them again costs CPU and
/// saves nothing, so they are stored as they are.
const STORED_EXTENSIONS: &[&str] = &[
    "png", "jpg", "jpeg", "gif", "webp", "avif", "heic", "jxl", "ico", "gz", "tgz", "zip", "br",
    "zst", "xz", "bz2", "7z", "rar", "woff", "woff2", "mp3", "mp4", "m4a", "m4v", "mov", "webm",
    "ogg", "oga", "ogv", "opus", "flac", "aac",
];

/// The compression for one archive entry, chosen from its extension.
pub fn method_for(path: &str) -> CompressionMethod {
    let name = path.rsplit('/').next().unwrap_or(path);
    let stored = name.rsplit_once('.').is_some_and(|(_, ext)| {
        STORED_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(ext))
    });
    if stored {
        CompressionMethod::Stored
    } else {
        CompressionMethod::Deflated
    }
}

/// Creates a temp file in `dir` and unlinks it at once: only the open handle keeps it,
/// so an interrupted deploy (Ctrl-C, a crash) leaves nothing behind on disk.
fn anonymous_temp_file(dir: &Path) -> io::Result<File> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("fazt-deploy-{}-{n}.zip", std::process::id()));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// Writes `files` (as `stage_directory` lists them) into a zip in a temp file in `temp_dir`.
pub fn build(files: &[StagedFile], temp_dir: &Path) -> Result<Archive, String> {
    let file = anonymous_temp_file(temp_dir)
        .map_err(|e| format!("creating a temp file in {}: {e}", temp_dir.display()))?;
    let mut zip = zip::ZipWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let mut buf = vec![0u8; 128 * 1024];
    for staged in files {
        let options = SimpleFileOptions::default()
            .compression_method(method_for(&staged.path))
            .unix_permissions(0o644)
            // Zip64 headers are needed for entries of 4 GiB and more; the size is known.
            .large_file(staged.size >= u64::from(u32::MAX));
        zip.start_file(staged.path.as_str(), options)
            .map_err(|e| format!("adding {} to the archive: {e}", staged.path))?;
        let copied = staged
            .reader()
            .and_then(|mut source| copy(&mut source, &mut zip, &mut buf))
            .map_err(|e| match &staged.source {
                FileSource::Disk(path) => format!("{}: {e}", path.display()),
                _ => format!("adding {} to the archive: {e}", staged.path),
            })?;
        // Sizes were read when the directory was staged: a file that changed since would
        // be uploaded with bytes its listing does not describe.
        if copied != staged.size {
            return Err(format!(
                "{} changed while it was being packed ({} bytes, then {copied}); try again",
                staged.path, staged.size
            ));
        }
    }
    let writer = zip
        .finish()
        .map_err(|e| format!("finishing the archive: {e}"))?;
    let mut file = writer
        .into_inner()
        .map_err(|e| format!("writing the archive: {}", e.error()))?;
    let size = file
        .seek(SeekFrom::End(0))
        .and_then(|size| file.seek(SeekFrom::Start(0)).map(|_| size))
        .map_err(|e| format!("reading back the archive: {e}"))?;
    Ok(Archive {
        file,
        size,
        files: files.len(),
    })
}

fn copy(source: &mut impl Read, sink: &mut impl Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        let n = match source.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        sink.write_all(&buf[..n])?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosting::store::stage_directory;
    use std::path::PathBuf;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("fazt-zipbuild-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    #[test]
    fn archive_round_trips_the_directory_without_dot_paths_but_with_well_known() {
        let root = temp_dir("roundtrip");
        let site = root.join("site");
        let text: Vec<u8> = b"hello fazt ".repeat(5000);
        let noise: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        write(&site, "index.html", &text);
        write(&site, "css/site.css", b"body{}");
        write(&site, "img/logo.png", &noise);
        write(&site, "empty.txt", b"");
        write(&site, "deep/a/b/c.txt", b"c");
        write(&site, ".env", b"SECRET=1");
        write(&site, ".git/config", b"[core]");
        write(&site, "css/.hidden", b"x");
        write(
            &site,
            ".well-known/security.txt",
            b"Contact: mailto:a@example.com",
        );
        let staged = stage_directory(&site).unwrap();
        let archive = build(&staged, &root).unwrap();
        assert_eq!(archive.files, 6);
        assert_eq!(archive.file.metadata().unwrap().len(), archive.size);
        // The temp file is already unlinked: only the site directory is left in root.
        let names: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("site")]);

        let mut zip = zip::ZipArchive::new(archive.file).unwrap();
        let mut entries = Vec::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).unwrap();
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).unwrap();
            let name = entry.name().unwrap().to_string();
            entries.push((name, entry.compression(), bytes));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let names: Vec<&str> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            [
                ".well-known/security.txt",
                "css/site.css",
                "deep/a/b/c.txt",
                "empty.txt",
                "img/logo.png",
                "index.html"
            ]
        );
        for (name, method, bytes) in &entries {
            assert_eq!(bytes, &std::fs::read(site.join(name)).unwrap(), "{name}");
            let expected = if name.ends_with(".png") {
                CompressionMethod::Stored
            } else {
                CompressionMethod::Deflated
            };
            assert_eq!(*method, expected, "{name}");
        }
        // Deflate did its job on the repetitive page.
        assert!(
            archive.size < (noise.len() + text.len() / 10) as u64,
            "zip is {} bytes",
            archive.size
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn compressed_formats_are_stored() {
        for path in ["a.PNG", "x/y.jpg", "f.woff2", "b.tar.gz", "c.zip", "v.mp4"] {
            assert_eq!(method_for(path), CompressionMethod::Stored, "{path}");
        }
        for path in [
            "index.html",
            "app.js",
            "noext",
            "png",
            "dir.png/file.txt",
            "a.svg",
        ] {
            assert_eq!(method_for(path), CompressionMethod::Deflated, "{path}");
        }
    }

    #[test]
    fn an_unwritable_temp_dir_is_reported() {
        let err = build(&[], Path::new("/nonexistent-fazt-dir"))
            .err()
            .unwrap();
        assert!(err.contains("/nonexistent-fazt-dir"), "{err}");
    }
}
