//! Parsing of human-written sizes and durations, shared by flags and environment variables. Errors say
//! what is wrong without repeating the value: the caller's message names it once.

use std::time::Duration;

/// Parses `1048576`, `64K`, `64KiB`, `8M`, `8MB`, `1G` (binary multiples; case-insensitive).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let (number, suffix) = split_number(text)
        .ok_or_else(|| "is not a size (expected e.g. 1048576, 64K, 8MiB, 1G)".to_string())?;
    let multiplier: u64 = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        other => return Err(format!("has an unknown size unit '{other}'")),
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| "is too large".to_string())
}

/// Parses `250ms`, `10s`, `5m`, `2h`, `30d`, `1w`; a bare number means seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (n, unit) = split_number(text)
        .ok_or_else(|| "is not a duration (expected e.g. 250ms, 10s, 5m, 30d)".to_string())?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "" | "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        "w" => 7 * 86_400_000,
        other => return Err(format!("has an unknown time unit '{other}'")),
    };
    n.checked_mul(ms_per_unit)
        .map(Duration::from_millis)
        .ok_or_else(|| "is too large".to_string())
}

/// Splits `123unit` into the number and the (trimmed) unit; `None` without leading digits
/// or when the number overflows u64.
fn split_number(text: &str) -> Option<(u64, &str)> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    Some((digits.parse().ok()?, unit.trim()))
}

/// Formats bytes for people: `512 B`, `8.0 MiB`, `1.5 GiB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Lower-case hex of `bytes` (content hashes, key ids, signatures).
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1048576"), Ok(1_048_576));
        assert_eq!(parse_bytes("64K"), Ok(65_536));
        assert_eq!(parse_bytes("8MiB"), Ok(8 << 20));
        assert_eq!(parse_bytes("1g"), Ok(1 << 30));
        assert_eq!(parse_bytes(" 8 MiB "), Ok(8 << 20));
        assert!(parse_bytes("").is_err());
        assert!(parse_bytes("12Q").is_err());
        assert!(parse_bytes("-5").is_err());
        assert!(parse_bytes("99999999999999999999").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("5y").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(8 << 20), "8.0 MiB");
    }
}
