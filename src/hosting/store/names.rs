//! Site names: which are valid, reserved, or fazt's own.

/// The sites fazt itself serves from: `root` (the bare domain) and `404` (the not-found
/// pages of every site). Only owner keys manage them, and they are never deleted.
pub const SYSTEM_SITE_NAMES: [&str; 2] = ["root", "404"];

pub fn is_system_site(name: &str) -> bool {
    SYSTEM_SITE_NAMES.contains(&name)
}

/// Names whose host is taken by fazt itself, so a site there could never be reached.
/// `admin` is the admin host; `api` and `www` are names people expect to mean the service
/// itself or the root site, so a site there would only confuse.
const RESERVED_SITE_NAMES: [&str; 3] = ["admin", "api", "www"];

/// Site names: DNS labels (`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`), not reserved.
pub fn validate_site_name(name: &str) -> Result<(), String> {
    if RESERVED_SITE_NAMES.contains(&name) {
        return Err(format!(
            "site name '{name}' is reserved (admin, api and www are fazt's own)"
        ));
    }
    let bytes = name.as_bytes();
    let valid = !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-';
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid site name '{name}': use 1 to 63 lower-case letters, digits and inner hyphens"
        ))
    }
}
