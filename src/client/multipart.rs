//! The multipart/form-data envelope of a deploy: `site_name`, then the zip as `file`
//! (the field names and order the earlier Go client used, DESIGN D4). The zip itself is
//! streamed between `prefix` and `suffix`, so only the envelope is built in memory.

use std::io::Read;

pub struct DeployForm {
    pub content_type: String,
    pub prefix: Vec<u8>,
    pub suffix: Vec<u8>,
}

impl DeployForm {
    pub fn new(site: &str, boundary: &str) -> DeployForm {
        let prefix = format!(
            "--{boundary}\r\n\
             Content-Disposition: form-data; name=\"site_name\"\r\n\
             \r\n\
             {site}\r\n\
             --{boundary}\r\n\
             Content-Disposition: form-data; name=\"file\"; filename=\"site.zip\"\r\n\
             Content-Type: application/zip\r\n\
             \r\n"
        );
        DeployForm {
            content_type: format!("multipart/form-data; boundary={boundary}"),
            prefix: prefix.into_bytes(),
            suffix: format!("\r\n--{boundary}--\r\n").into_bytes(),
        }
    }

    /// The whole body's length, known before the first byte is sent.
    pub fn content_length(&self, zip_size: u64) -> u64 {
        self.prefix.len() as u64 + zip_size + self.suffix.len() as u64
    }

    /// The body as one reader: envelope, zip, closing boundary.
    pub fn body<'a>(&'a self, zip: impl Read + 'a) -> impl Read + 'a {
        self.prefix
            .as_slice()
            .chain(zip)
            .chain(self.suffix.as_slice())
    }
}

/// A boundary from 16 random bytes: a collision with the zip's content is not a concern
/// at 2^-128, so the archive is never scanned for it.
pub fn new_boundary() -> String {
    let mut bytes = [0u8; 16];
    let random = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes));
    if random.is_err() {
        // No /dev/urandom (a minimal chroot): time and pid still make a unique boundary.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seed = format!("{nanos}-{}", std::process::id());
        use sha2::Digest;
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes())[..16]);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("fazt-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_the_fields_in_order_with_an_exact_length() {
        let form = DeployForm::new("blog", "XyZ");
        let zip = b"PK\x03\x04zipbytes".to_vec();
        let mut body = Vec::new();
        form.body(zip.as_slice()).read_to_end(&mut body).unwrap();
        let expected = "--XyZ\r\n\
            Content-Disposition: form-data; name=\"site_name\"\r\n\r\nblog\r\n\
            --XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"site.zip\"\r\n\
            Content-Type: application/zip\r\n\r\n\
            PK\x03\x04zipbytes\r\n--XyZ--\r\n";
        assert_eq!(String::from_utf8_lossy(&body), expected);
        assert_eq!(form.content_length(zip.len() as u64), body.len() as u64);
        assert_eq!(form.content_type, "multipart/form-data; boundary=XyZ");
    }

    #[test]
    fn boundaries_are_unique_and_header_safe() {
        let (a, b) = (new_boundary(), new_boundary());
        assert_ne!(a, b);
        assert_eq!(a.len(), 5 + 32);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'));
    }
}
