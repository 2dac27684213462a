//! `multipart/form-data` (RFC 7578 over RFC 2046) read in place from a seekable body: the
//! upload may sit in memory or in a temp file, and a file part is never copied, only
//! located, then read through a [`BodyWindow`].
//!
//! Invariants:
//! - memory is bounded whatever the body: the boundary is searched through one fixed
//!   buffer (a boundary split across two reads is found: the buffer keeps the last
//!   `delimiter - 1` bytes of each read), part headers are read up to
//!   [`MAX_PART_HEADER_BYTES`], text fields up to [`FormLimits::text_field_bytes`], and at
//!   most [`FormLimits::parts`] parts are accepted (a deploy: [`FormLimits::DEPLOY`]);
//! - nothing past `len` is read, and nothing is repaired: lines end with CRLF, the closing
//!   boundary must be there, a field name appears once.
//!
//! The earlier Go fazt client sends a text field `site_name` and a file field `file`
//! (filename `site.zip`, `Content-Type: application/octet-stream`).

use std::io::{self, Read, Seek, SeekFrom};

/// Longest text field value: a site name is at most 63 bytes, so this is generous.
pub const MAX_TEXT_FIELD_BYTES: u64 = 1024;
/// Longest header block of one part (Content-Disposition with a long file name fits).
pub const MAX_PART_HEADER_BYTES: usize = 8 * 1024;
/// Most parts in one form; a deploy has two.
pub const MAX_PARTS: usize = 16;
/// Bytes read at a time when searching for a boundary.
const SCAN_BUFFER_BYTES: usize = 64 * 1024;
/// Most transport padding (spaces and tabs) allowed after a boundary (RFC 2046 allows any
/// amount; real senders use none).
const MAX_PADDING_BYTES: usize = 256;

/// What one form may hold: a deploy's form is two small fields, a script's can be larger.
#[derive(Clone, Copy, Debug)]
pub struct FormLimits {
    /// Longest text field value.
    pub text_field_bytes: u64,
    /// Most parts.
    pub parts: usize,
    /// Refuse a field name that appears twice (a deploy); else every part is kept.
    pub unique_names: bool,
}

impl FormLimits {
    pub const DEPLOY: FormLimits = FormLimits {
        text_field_bytes: MAX_TEXT_FIELD_BYTES,
        parts: MAX_PARTS,
        unique_names: true,
    };
}

/// A part with a file name (or a non-text Content-Type): located, not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilePart {
    /// The form field name (`file`).
    pub name: String,
    /// The `filename` parameter, if sent.
    pub filename: Option<String>,
    /// The part's `Content-Type`, if sent.
    pub content_type: Option<String>,
    /// Where the part's content starts in the body.
    pub offset: u64,
    /// How many bytes it has.
    pub len: u64,
}

impl FilePart {
    /// A reader over this part's content in `body`.
    pub fn window<R: Read + Seek>(&self, body: R) -> BodyWindow<R> {
        BodyWindow::new(body, self.offset, self.len)
    }
}

/// A parsed form: text fields with their values, file fields by location.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Form {
    /// `(name, value)` in body order.
    pub text: Vec<(String, String)>,
    /// File parts in body order.
    pub files: Vec<FilePart>,
}

impl Form {
    /// The value of text field `name`.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.text
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }

    /// File field `name`.
    pub fn file(&self, name: &str) -> Option<&FilePart> {
        self.files.iter().find(|part| part.name == name)
    }

    fn has(&self, name: &str) -> bool {
        self.text(name).is_some() || self.file(name).is_some()
    }
}

/// The boundary of a `multipart/form-data` Content-Type, quoted or not, e.g.
/// `multipart/form-data; boundary="abc"` → `abc`. Anything else is refused with a message
/// for a 400 answer.
pub fn boundary_from_content_type(ct: &str) -> Result<String, String> {
    let (media_type, params) = ct.split_once(';').unwrap_or((ct, ""));
    if !media_type
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return Err(format!(
            "Content-Type must be multipart/form-data, not '{}'",
            media_type.trim()
        ));
    }
    let boundary = parse_params(params)?
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)
        .ok_or("multipart/form-data Content-Type has no boundary parameter")?;
    // RFC 2046 §5.1.1: 1–70 characters from `bchars`, not ending with a space.
    let valid = !boundary.is_empty()
        && boundary.len() <= 70
        && !boundary.ends_with(' ')
        && boundary
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"'()+_,-./:=? ".contains(&b));
    if !valid {
        return Err(format!("multipart boundary '{boundary}' is not valid (RFC 2046: 1-70 letters, digits or '()+_,-./:=? characters)"));
    }
    Ok(boundary)
}

/// Parses the first `len` bytes of `body` as `multipart/form-data` with `boundary`. Text
/// parts are read (at most [`MAX_TEXT_FIELD_BYTES`] each); file parts are located. Errors
/// are messages for a 400 answer (a failing read of the body included).
pub fn parse_form<R: Read + Seek>(body: &mut R, len: u64, boundary: &str) -> Result<Form, String> {
    parse_form_with(body, len, boundary, &FormLimits::DEPLOY)
}

/// [`parse_form`] within other `limits`.
pub fn parse_form_with<R: Read + Seek>(
    body: &mut R,
    len: u64,
    boundary: &str,
    limits: &FormLimits,
) -> Result<Form, String> {
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let dash_boundary = &delimiter[2..];
    let body_error = |e: io::Error| format!("reading the request body: {e}");

    // The first boundary may open the body, or follow a preamble and a CRLF.
    let opening = read_at(body, 0, len, dash_boundary.len()).map_err(body_error)?;
    let mut pos = if opening == dash_boundary {
        dash_boundary.len() as u64
    } else {
        let found = find(body, 0, len, &delimiter).map_err(body_error)?;
        found.ok_or("the body has no multipart boundary")? + delimiter.len() as u64
    };

    let mut form = Form::default();
    loop {
        // `pos` is just past a boundary: `--` closes the form, else padding and CRLF.
        let after = read_at(body, pos, len, MAX_PADDING_BYTES + 2).map_err(body_error)?;
        if after.starts_with(b"--") {
            return Ok(form);
        }
        let padding = after
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if !after[padding..].starts_with(b"\r\n") {
            return Err(if after.len() < 2 {
                "the body ends before the closing multipart boundary".to_string()
            } else {
                "a multipart boundary line is not followed by CRLF".to_string()
            });
        }
        if form.text.len() + form.files.len() == limits.parts {
            return Err(format!("the form has more than {} parts", limits.parts));
        }
        let part_start = pos + padding as u64 + 2;

        let head = read_at(body, part_start, len, MAX_PART_HEADER_BYTES + 4).map_err(body_error)?;
        let (headers, content_start) = if head.starts_with(b"\r\n") {
            (&head[..0], part_start + 2)
        } else {
            let end = memchr::memmem::find(&head, b"\r\n\r\n").ok_or_else(|| {
                format!("a part's headers are unterminated or longer than {MAX_PART_HEADER_BYTES} bytes")
            })?;
            (&head[..end], part_start + end as u64 + 4)
        };
        let headers = PartHeaders::parse(headers)?;

        let content_end = find(body, content_start, len, &delimiter)
            .map_err(body_error)?
            .ok_or("the body ends before the closing multipart boundary")?;
        pos = content_end + delimiter.len() as u64;

        let name = headers.name;
        if limits.unique_names && form.has(&name) {
            return Err(format!("form field '{name}' appears more than once"));
        }
        let content_len = content_end - content_start;
        if headers.is_file {
            form.files.push(FilePart {
                name,
                filename: headers.filename,
                content_type: headers.content_type,
                offset: content_start,
                len: content_len,
            });
        } else {
            if content_len > limits.text_field_bytes {
                return Err(format!(
                    "form field '{name}' is longer than {} bytes",
                    limits.text_field_bytes
                ));
            }
            let bytes =
                read_at(body, content_start, len, content_len as usize).map_err(body_error)?;
            let value = String::from_utf8(bytes)
                .map_err(|_| format!("form field '{name}' is not UTF-8"))?;
            form.text.push((name, value));
        }
    }
}

/// What a deploy needs from a part's headers.
struct PartHeaders {
    name: String,
    filename: Option<String>,
    content_type: Option<String>,
    /// A file part: it has a file name, or a Content-Type other than text/plain.
    is_file: bool,
}

impl PartHeaders {
    fn parse(block: &[u8]) -> Result<PartHeaders, String> {
        let block = std::str::from_utf8(block).map_err(|_| "a part's headers are not UTF-8")?;
        let mut disposition = None;
        let mut content_type = None;
        for line in block.split("\r\n") {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("malformed part header line '{line}'"))?;
            let value = value.trim().to_string();
            if name.eq_ignore_ascii_case("content-disposition") {
                disposition = Some(value);
            } else if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value);
            }
        }
        let disposition = disposition.ok_or("a part has no Content-Disposition header")?;
        let (kind, params) = disposition
            .split_once(';')
            .unwrap_or((disposition.as_str(), ""));
        if !kind.trim().eq_ignore_ascii_case("form-data") {
            return Err(format!(
                "a part's Content-Disposition is '{}', not form-data",
                kind.trim()
            ));
        }
        let params = parse_params(params)?;
        let param = |wanted: &str| {
            params
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(wanted))
                .map(|(_, value)| value.clone())
        };
        let name = param("name")
            .filter(|name| !name.is_empty())
            .ok_or("a part's Content-Disposition has no field name")?;
        let filename = param("filename").or_else(|| param("filename*"));
        let textual = content_type.as_deref().is_none_or(|ct| {
            let essence = ct.split(';').next().unwrap_or(ct).trim();
            essence.eq_ignore_ascii_case("text/plain")
        });
        Ok(PartHeaders {
            is_file: filename.is_some() || !textual,
            name,
            filename,
            content_type,
        })
    }
}

/// Parses `; name=value; name="quoted \" value"` header parameters.
fn parse_params(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut params = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|&c| c == ';' || c == ' ' || c == '\t')
        {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(params);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ';' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let name = name.trim().to_string();
        if chars.next() != Some('=') {
            return Err(format!("header parameter '{name}' has no value"));
        }
        while chars.peek().is_some_and(|&c| c == ' ' || c == '\t') {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("header parameter '{name}' is unterminated")),
                    },
                    Some(c) => value.push(c),
                    None => return Err(format!("header parameter '{name}' is unterminated")),
                }
            }
            while chars.peek().is_some_and(|&c| c == ' ' || c == '\t') {
                chars.next();
            }
            if chars.peek().is_some_and(|&c| c != ';') {
                return Err(format!(
                    "header parameter '{name}' has text after its closing quote"
                ));
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ';' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_string();
        }
        params.push((name, value));
    }
}

/// Up to `max` bytes of `body` from `offset`, never past `end`; fewer only at `end`.
fn read_at<R: Read + Seek>(body: &mut R, offset: u64, end: u64, max: usize) -> io::Result<Vec<u8>> {
    let want = end.saturating_sub(offset).min(max as u64) as usize;
    let mut out = vec![0u8; want];
    body.seek(SeekFrom::Start(offset))?;
    body.read_exact(&mut out)?;
    Ok(out)
}

/// The offset of the first `pattern` in `body[from..end]`, read through one bounded buffer.
fn find<R: Read + Seek>(
    body: &mut R,
    from: u64,
    end: u64,
    pattern: &[u8],
) -> io::Result<Option<u64>> {
    let finder = memchr::memmem::Finder::new(pattern);
    let mut buf = vec![0u8; SCAN_BUFFER_BYTES.max(2 * pattern.len())];
    // Body offset of buf[0], and how much of buf holds body bytes.
    let mut buf_start = from;
    let mut filled = 0usize;
    body.seek(SeekFrom::Start(from))?;
    loop {
        let unread = end.saturating_sub(buf_start + filled as u64);
        let want = (buf.len() - filled).min(unread as usize);
        body.read_exact(&mut buf[filled..filled + want])?;
        filled += want;
        if let Some(at) = finder.find(&buf[..filled]) {
            return Ok(Some(buf_start + at as u64));
        }
        if want as u64 == unread {
            return Ok(None);
        }
        // A match can start in the last pattern-1 bytes and end in the next read.
        let keep = filled.min(pattern.len() - 1);
        buf.copy_within(filled - keep..filled, 0);
        buf_start += (filled - keep) as u64;
        filled = keep;
    }
}

/// `Read + Seek` over bytes `start..start + len` of `inner`, as if they were the whole
/// stream: the zip reader reads the `file` part in place through one.
#[derive(Debug)]
pub struct BodyWindow<R> {
    inner: R,
    start: u64,
    len: u64,
    /// Position within the window.
    pos: u64,
    /// Whether `inner` is known to be at `start + pos` (saves a seek per read).
    in_place: bool,
}

impl<R> BodyWindow<R> {
    pub fn new(inner: R, start: u64, len: u64) -> BodyWindow<R> {
        BodyWindow {
            inner,
            start,
            len,
            pos: 0,
            in_place: false,
        }
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read + Seek> Read for BodyWindow<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.len || buf.is_empty() {
            return Ok(0);
        }
        if !self.in_place {
            self.inner.seek(SeekFrom::Start(self.start + self.pos))?;
            self.in_place = true;
        }
        let max = (self.len - self.pos).min(buf.len() as u64) as usize;
        let n = self.inner.read(&mut buf[..max])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for BodyWindow<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        let target = match pos {
            SeekFrom::Start(n) => i128::from(n),
            SeekFrom::End(delta) => i128::from(self.len) + i128::from(delta),
            SeekFrom::Current(delta) => i128::from(self.pos) + i128::from(delta),
        };
        let target = u64::try_from(target).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the window",
            )
        })?;
        if target != self.pos {
            self.pos = target;
            self.in_place = false;
        }
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    const B: &str = "XyZ-boundary-123";

    fn form_body(parts: &[(&str, &str, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, extra_headers, content) in parts {
            body.extend_from_slice(format!("--{B}\r\n").as_bytes());
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"{extra_headers}\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        body
    }

    fn parse(body: &[u8]) -> Result<Form, String> {
        parse_form(&mut Cursor::new(body), body.len() as u64, B)
    }

    fn content<'a>(body: &'a [u8], part: &FilePart) -> &'a [u8] {
        &body[part.offset as usize..(part.offset + part.len) as usize]
    }

    #[test]
    fn boundary_quoted_unquoted_and_refused() {
        let ok = |ct: &str| boundary_from_content_type(ct).unwrap();
        assert_eq!(ok("multipart/form-data; boundary=abc"), "abc");
        assert_eq!(ok("Multipart/Form-Data;boundary=\"a b:c\""), "a b:c");
        assert_eq!(
            ok("multipart/form-data; charset=utf-8; BOUNDARY=----WebKitFormBoundary7MA4YWxk"),
            "----WebKitFormBoundary7MA4YWxk"
        );
        assert_eq!(ok("multipart/form-data; boundary=\"q\\=x\" ; x=y"), "q=x");
        let long = "a".repeat(70);
        assert_eq!(ok(&format!("multipart/form-data; boundary={long}")), long);
        for bad in [
            "application/zip",
            "multipart/mixed; boundary=abc",
            "multipart/form-data",
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
            "multipart/form-data; boundary=\"abc",
            "multipart/form-data; boundary=a{b}",
            "multipart/form-data; boundary=\"ends with space \"",
            "multipart/form-data; boundary",
            "multipart/form-data; boundary=\"q\\\"x\"",
        ] {
            assert!(boundary_from_content_type(bad).is_err(), "{bad}");
        }
        let too_long = format!("multipart/form-data; boundary={}", "a".repeat(71));
        assert!(boundary_from_content_type(&too_long).is_err());
    }

    #[test]
    fn go_client_form() {
        let zip = b"PK\x03\x04 not really a zip \r\n-- but has CRLF and dashes";
        let body = form_body(&[
            ("site_name", "", b"blog"),
            (
                "file",
                "; filename=\"site.zip\"\r\nContent-Type: application/octet-stream",
                zip,
            ),
        ]);
        let form = parse(&body).unwrap();
        assert_eq!(form.text("site_name"), Some("blog"));
        let file = form.file("file").unwrap();
        assert_eq!(file.filename.as_deref(), Some("site.zip"));
        assert_eq!(
            file.content_type.as_deref(),
            Some("application/octet-stream")
        );
        assert_eq!(content(&body, file), zip);
        let mut window = file.window(Cursor::new(&body));
        let mut read = Vec::new();
        window.read_to_end(&mut read).unwrap();
        assert_eq!(read, zip);
    }

    #[test]
    fn preamble_epilogue_padding_and_empty_parts() {
        let mut body = b"This is a preamble.\r\n".to_vec();
        body.extend_from_slice(format!("--{B}  \t\r\n").as_bytes());
        body.extend_from_slice(b"content-disposition: form-data; name=empty\r\n\r\n\r\n");
        body.extend_from_slice(format!("--{B}\r\n").as_bytes());
        body.extend_from_slice(
            b"Content-Disposition: form-data; name=\"file\"; filename=\"a.zip\"\r\n\r\n\r\n",
        );
        body.extend_from_slice(format!("--{B}--\r\nepilogue --{B}\r\n garbage").as_bytes());
        let form = parse(&body).unwrap();
        assert_eq!(form.text("empty"), Some(""));
        assert_eq!(form.file("file").unwrap().len, 0);
    }

    #[test]
    fn content_type_without_filename_is_a_file_part() {
        let body = form_body(&[(
            "file",
            "\r\nContent-Type: application/zip",
            &[0u8; 5000][..],
        )]);
        let form = parse(&body).unwrap();
        assert_eq!(form.file("file").unwrap().len, 5000);
        assert!(form.text.is_empty());
    }

    #[test]
    fn boundary_split_across_reads_is_found() {
        // Place the delimiter across the 64 KiB scan buffer edge at every offset near it.
        for shift in 0..(B.len() + 6) {
            let size = SCAN_BUFFER_BYTES - 120 + shift;
            let data = vec![b'x'; size];
            let body = form_body(&[("file", "; filename=\"f\"", &data)]);
            let form = parse(&body).unwrap();
            let part = form.file("file").unwrap();
            assert_eq!(part.len as usize, size, "shift {shift}");
            assert_eq!(content(&body, part), &data[..]);
        }
    }

    #[test]
    fn large_file_part_spanning_many_buffers() {
        let data: Vec<u8> = (0..1_000_003u32).map(|i| (i % 251) as u8).collect();
        let body = form_body(&[
            ("file", "; filename=\"big.zip\"", &data),
            ("site_name", "", b"shop"),
        ]);
        let form = parse(&body).unwrap();
        assert_eq!(content(&body, form.file("file").unwrap()), &data[..]);
        assert_eq!(form.text("site_name"), Some("shop"));
    }

    #[test]
    fn refused_forms() {
        let err = |body: &[u8]| parse(body).unwrap_err();
        // Missing final boundary, truncated anywhere.
        let good = form_body(&[
            ("site_name", "", b"blog"),
            ("file", "; filename=\"f\"", b"abc"),
        ]);
        for cut in [good.len() - 4, good.len() - 10, good.len() / 2, 20] {
            let e = err(&good[..cut]);
            assert!(
                e.contains("before the closing multipart boundary") || e.contains("headers"),
                "cut {cut}: {e}"
            );
        }
        assert!(err(b"").contains("no multipart boundary"));
        assert!(err(b"just text").contains("no multipart boundary"));
        // Duplicate fields, text or file.
        let dup = form_body(&[("site_name", "", b"a"), ("site_name", "", b"b")]);
        assert!(err(&dup).contains("'site_name' appears more than once"));
        let dup = form_body(&[
            ("file", "; filename=\"a\"", b"a"),
            ("file", "; filename=\"b\"", b"b"),
        ]);
        assert!(err(&dup).contains("'file' appears more than once"));
        // Text field too long or not UTF-8.
        let long = vec![b'a'; MAX_TEXT_FIELD_BYTES as usize + 1];
        assert!(err(&form_body(&[("site_name", "", &long)])).contains("longer than 1024"));
        assert!(err(&form_body(&[("site_name", "", b"\xff")])).contains("not UTF-8"));
        // Headers.
        let mut no_cd =
            format!("--{B}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{B}--").into_bytes();
        assert!(err(&no_cd).contains("no Content-Disposition"));
        no_cd = format!("--{B}\r\nContent-Disposition: form-data\r\n\r\nx\r\n--{B}--").into_bytes();
        assert!(err(&no_cd).contains("no field name"));
        let attachment =
            format!("--{B}\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--{B}--");
        assert!(err(attachment.as_bytes()).contains("not form-data"));
        let endless = format!("--{B}\r\nX: {}", "a".repeat(MAX_PART_HEADER_BYTES + 10));
        assert!(err(endless.as_bytes()).contains("headers"));
        let bad_line = format!("--{B}\r\nnot a header\r\n\r\nx\r\n--{B}--");
        assert!(err(bad_line.as_bytes()).contains("malformed part header"));
        // A boundary line followed by something other than padding and CRLF.
        let glued = format!("--{B}x\r\n");
        assert!(err(glued.as_bytes()).contains("not followed by CRLF"));
        // Too many parts.
        let names: Vec<String> = (0..=MAX_PARTS).map(|i| format!("f{i}")).collect();
        let parts: Vec<(&str, &str, &[u8])> =
            names.iter().map(|n| (n.as_str(), "", &b"v"[..])).collect();
        assert!(err(&form_body(&parts)).contains("more than 16 parts"));
    }

    #[test]
    fn nothing_past_len_is_read() {
        let mut body = form_body(&[("site_name", "", b"blog")]);
        let len = body.len() as u64;
        body.extend_from_slice(b"trailing bytes of the next request");
        let form = parse_form(&mut Cursor::new(&body), len, B).unwrap();
        assert_eq!(form.text("site_name"), Some("blog"));
        // Without the closing boundary inside `len`, it is an error even if it follows.
        let short = len - 6;
        assert!(parse_form(&mut Cursor::new(&body), short, B).is_err());
    }

    #[test]
    fn body_window_reads_and_seeks_within_its_range() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut window = BodyWindow::new(Cursor::new(&data), 10, 20);
        let mut all = Vec::new();
        window.read_to_end(&mut all).unwrap();
        assert_eq!(all, (10..30u8).collect::<Vec<_>>());
        assert_eq!(window.seek(SeekFrom::End(0)).unwrap(), 20);
        assert_eq!(window.seek(SeekFrom::End(-5)).unwrap(), 15);
        let mut five = [0u8; 10];
        assert_eq!(window.read(&mut five).unwrap(), 5);
        assert_eq!(&five[..5], &[25, 26, 27, 28, 29]);
        assert_eq!(window.seek(SeekFrom::Start(2)).unwrap(), 2);
        assert_eq!(window.seek(SeekFrom::Current(3)).unwrap(), 5);
        let mut one = [0u8; 1];
        window.read_exact(&mut one).unwrap();
        assert_eq!(one[0], 15);
        assert!(window.seek(SeekFrom::Current(-100)).is_err());
        assert_eq!(window.seek(SeekFrom::Start(50)).unwrap(), 50);
        assert_eq!(window.read(&mut one).unwrap(), 0);
        // Moving the inner reader behind the window's back is repaired by any seek.
        let mut inner = window.into_inner();
        inner.set_position(0);
        let mut window = BodyWindow::new(inner, 90, 10);
        let mut rest = Vec::new();
        window.read_to_end(&mut rest).unwrap();
        assert_eq!(rest, (90..100u8).collect::<Vec<_>>());
    }
}
