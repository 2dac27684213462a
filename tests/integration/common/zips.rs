//! Zip archives built byte by byte, every header field written as given, true or not:
//! the zip crate's writer refuses or repairs the malicious entries deploy tests need
//! (absolute paths, `..`, symlinks, lying sizes, bombs).

pub const UNIX: u16 = 3 << 8 | 20; // version made by: Unix, spec 2.0
pub const FLAG_DESCRIPTOR: u16 = 1 << 3;
pub const FLAG_ENCRYPTED: u16 = 1;

/// One entry of a hand-built zip; every field is written as given, true or not.
#[derive(Clone)]
pub struct Raw {
    pub name: Vec<u8>,
    /// The name in the local header, when it differs from the central directory's.
    pub local_name: Option<Vec<u8>>,
    pub method: u16,
    /// Bytes as stored in the archive (already compressed for method 8).
    pub data: Vec<u8>,
    pub crc: u32,
    pub compressed: u32,
    pub uncompressed: u32,
    pub made_by: u16,
    pub external: u32,
    pub flags: u16,
}

impl Raw {
    /// A stored regular file with honest headers.
    pub fn stored(name: &str, content: &[u8]) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            local_name: None,
            method: 0,
            data: content.to_vec(),
            crc: crc32(content),
            compressed: content.len() as u32,
            uncompressed: content.len() as u32,
            made_by: UNIX,
            external: 0o100_644 << 16,
            flags: 0,
        }
    }

    /// A deflated regular file (deflate "stored" blocks, valid for any reader).
    pub fn deflated(name: &str, content: &[u8]) -> Raw {
        let data = deflate_stored_blocks(content);
        Raw {
            method: 8,
            compressed: data.len() as u32,
            data,
            ..Raw::stored(name, content)
        }
    }

    pub fn mode(mut self, mode: u32) -> Raw {
        self.external = mode << 16;
        self
    }
}

/// A zip of `entries`, with `gap` filler bytes after the entries' data (before the
/// central directory).
pub fn build(entries: &[Raw], gap: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offsets = Vec::new();
    for e in entries {
        offsets.push(out.len() as u32);
        let descriptor = e.flags & FLAG_DESCRIPTOR != 0;
        let local_name = e.local_name.as_ref().unwrap_or(&e.name);
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&e.method.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date (1980-01-01)
        let (crc, compressed, uncompressed) = if descriptor {
            (0, 0, 0)
        } else {
            (e.crc, e.compressed, e.uncompressed)
        };
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&compressed.to_le_bytes());
        out.extend_from_slice(&uncompressed.to_le_bytes());
        out.extend_from_slice(&(local_name.len() as u16).to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(local_name);
        out.extend_from_slice(&e.data);
        if descriptor {
            out.extend_from_slice(&0x0807_4b50u32.to_le_bytes());
            out.extend_from_slice(&e.crc.to_le_bytes());
            out.extend_from_slice(&e.compressed.to_le_bytes());
            out.extend_from_slice(&e.uncompressed.to_le_bytes());
        }
    }
    out.extend(std::iter::repeat_n(0xA5u8, gap));
    let cd_start = out.len() as u32;
    for (e, offset) in entries.iter().zip(&offsets) {
        out.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        out.extend_from_slice(&e.made_by.to_le_bytes());
        out.extend_from_slice(&20u16.to_le_bytes());
        out.extend_from_slice(&e.flags.to_le_bytes());
        out.extend_from_slice(&e.method.to_le_bytes());
        out.extend_from_slice(&[0, 0, 0x21, 0]);
        out.extend_from_slice(&e.crc.to_le_bytes());
        out.extend_from_slice(&e.compressed.to_le_bytes());
        out.extend_from_slice(&e.uncompressed.to_le_bytes());
        out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
        out.extend_from_slice(&[0; 8]); // extra len, comment len, disk, internal attrs
        out.extend_from_slice(&e.external.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&e.name);
    }
    let cd_len = out.len() as u32 - cd_start;
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]); // disk numbers
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&cd_len.to_le_bytes());
    out.extend_from_slice(&cd_start.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A deflate stream of uncompressed blocks.
pub fn deflate_stored_blocks(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunks = content.chunks(65_535).peekable();
    if chunks.peek().is_none() {
        out.extend_from_slice(&[1, 0, 0, 0xff, 0xff]);
    }
    while let Some(chunk) = chunks.next() {
        out.push(u8::from(chunks.peek().is_none()));
        out.extend_from_slice(&(chunk.len() as u16).to_le_bytes());
        out.extend_from_slice(&(!(chunk.len() as u16)).to_le_bytes());
        out.extend_from_slice(chunk);
    }
    out
}

/// A deflate stream of `size` zero bytes: one fixed-Huffman block of "0, then copy 258
/// from distance 1" repeated, 13 bits per 258 bytes (about 158x).
pub fn deflate_zeros(size: u64) -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        acc: u64,
        n: u32,
    }
    impl Bits {
        fn put(&mut self, value: u64, len: u32) {
            self.acc |= value << self.n;
            self.n += len;
            while self.n >= 8 {
                self.out.push(self.acc as u8);
                self.acc >>= 8;
                self.n -= 8;
            }
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u64, len: u32) {
            let reversed = (0..len).fold(0, |r, i| r << 1 | (code >> i) & 1);
            self.put(reversed, len);
        }
    }
    let mut bits = Bits {
        out: Vec::with_capacity((size / 158) as usize + 16),
        acc: 0,
        n: 0,
    };
    bits.put(1, 1); // final block
    bits.put(1, 2); // fixed Huffman
    let literal_zero = |b: &mut Bits| b.code(0x30, 8);
    literal_zero(&mut bits);
    let runs = (size - 1) / 258;
    for _ in 0..runs {
        bits.code(0xC5, 8); // length 258 (symbol 285)
        bits.code(0, 5); // distance 1
    }
    for _ in 0..(size - 1 - runs * 258) {
        literal_zero(&mut bits);
    }
    bits.code(0, 7); // end of block
    bits.put(0, 7); // flush
    bits.out
}

/// A well-formed zip of `files` (path, content), written by the zip crate with `method`
/// (`Stored` for incompressible content: deflating it only costs time).
pub fn zip_of(files: &[(&str, &[u8])], method: zip::CompressionMethod) -> Vec<u8> {
    use std::io::Write;
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(method)
        .large_file(false);
    for (path, content) in files {
        writer
            .start_file(*path, options)
            .expect("start a zip entry");
        writer.write_all(content).expect("write a zip entry");
    }
    writer.finish().expect("finish the zip").into_inner()
}

/// The boundary `multipart_form` uses.
pub const FORM_BOUNDARY: &str = "----fazt-test-7c3e5d2a0b9f4e1d";

/// A `multipart/form-data` body as the Go client sends a deploy: text fields, then one
/// file field `file_field` named `site.zip`; returns (Content-Type, body).
pub fn multipart_form(
    text_fields: &[(&str, &str)],
    file_field: &str,
    file: &[u8],
) -> (String, Vec<u8>) {
    let mut body = Vec::with_capacity(file.len() + 512);
    for (name, value) in text_fields {
        body.extend_from_slice(
            format!(
                "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n\
                 {value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{FORM_BOUNDARY}\r\nContent-Disposition: form-data; name=\"{file_field}\"; \
             filename=\"site.zip\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{FORM_BOUNDARY}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={FORM_BOUNDARY}"),
        body,
    )
}
