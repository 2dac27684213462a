//! Content-coding negotiation (RFC 9110 §12.5.3) between the stored representations of a
//! file: the identity bytes and, for compressible files, brotli and gzip variants made at
//! deploy time (DESIGN D8). Pure functions of the request's headers.
//!
//! Rules: the highest q-value wins; ties go to br, then gzip, then identity; `q=0` refuses
//! a coding; `*` gives its q-value to every coding not listed; identity is acceptable unless
//! refused, and when nothing acceptable is stored the identity bytes are sent anyway (a 406
//! would break more clients than it helps). A `Range` request gets the identity bytes: a
//! byte range of a compressed variant is useless to a client that wants part of the file.

use crate::http::Request;

/// A stored representation of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Encoding {
    Identity,
    Br,
    Gzip,
}

impl Encoding {
    /// The compressed encodings, in the server's order of preference.
    pub const COMPRESSED: [Encoding; 2] = [Encoding::Br, Encoding::Gzip];

    /// The content-coding token (`Content-Encoding`, and the name stored in the database).
    pub fn token(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        }
    }

    /// The encoding named by a stored token.
    pub fn from_token(token: &str) -> Option<Encoding> {
        [Encoding::Identity, Encoding::Br, Encoding::Gzip]
            .into_iter()
            .find(|e| e.token() == token)
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The representations a file has: identity always, plus its stored variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodingSet(u8);

impl EncodingSet {
    pub const IDENTITY: EncodingSet = EncodingSet(1);

    pub fn with(self, encoding: Encoding) -> EncodingSet {
        EncodingSet(self.0 | encoding.bit())
    }

    pub fn contains(self, encoding: Encoding) -> bool {
        self.0 & encoding.bit() != 0
    }

    /// Whether a compressed variant exists (then responses carry `Vary: Accept-Encoding`).
    pub fn has_variants(self) -> bool {
        self.0 & !Encoding::Identity.bit() != 0
    }
}

impl Default for EncodingSet {
    fn default() -> EncodingSet {
        EncodingSet::IDENTITY
    }
}

/// What a request accepts: the encodings to try, best first, identity always last resort.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    order: [Encoding; 3],
    len: u8,
}

impl Accepted {
    pub const IDENTITY: Accepted = Accepted {
        order: [Encoding::Identity; 3],
        len: 1,
    };

    /// What `request` accepts (`Range` requests: identity only).
    pub fn of(request: &Request) -> Accepted {
        if request.header_str("range").is_some() {
            return Accepted::IDENTITY;
        }
        Accepted::parse(request.header_str("accept-encoding"))
    }

    /// Parses an `Accept-Encoding` value; no header (or an empty one) accepts identity only.
    pub fn parse(header: Option<&str>) -> Accepted {
        let Some(header) = header else {
            return Accepted::IDENTITY;
        };
        // Explicit q-values in thousandths, per encoding (index = `Encoding as usize`).
        let mut listed: [Option<u16>; 3] = [None; 3];
        let mut star: Option<u16> = None;
        for item in header.split(',').take(64) {
            let Some((name, q)) = parse_item(item) else {
                continue;
            };
            let slot = if name == "*" {
                &mut star
            } else if let Some(encoding) = coding(name) {
                &mut listed[encoding as usize]
            } else {
                continue;
            };
            // The first mention of a coding counts.
            slot.get_or_insert(q);
        }
        let mut ranked: Vec<(Encoding, u16)> = Vec::with_capacity(3);
        for encoding in Encoding::COMPRESSED {
            let q = listed[encoding as usize].or(star).unwrap_or(0);
            if q > 0 {
                ranked.push((encoding, q));
            }
        }
        // A stable sort keeps br before gzip on equal q-values.
        ranked.sort_by_key(|(_, q)| std::cmp::Reverse(*q));
        let mut accepted = Accepted::IDENTITY;
        accepted.len = 0;
        let identity_q = listed[Encoding::Identity as usize].or(star);
        for (encoding, q) in ranked {
            // Identity listed (or given by `*`) with a higher q-value goes before the variants.
            if identity_q.is_some_and(|iq| iq > q) && !accepted.contains(Encoding::Identity) {
                accepted.push(Encoding::Identity);
            }
            accepted.push(encoding);
        }
        if !accepted.contains(Encoding::Identity) {
            accepted.push(Encoding::Identity);
        }
        accepted
    }

    fn push(&mut self, encoding: Encoding) {
        self.order[self.len as usize] = encoding;
        self.len += 1;
    }

    fn contains(&self, encoding: Encoding) -> bool {
        self.order().contains(&encoding)
    }

    /// The encodings to try, best first; identity is always the last.
    pub fn order(&self) -> &[Encoding] {
        &self.order[..self.len as usize]
    }

    /// The best representation among `available` (identity when no better one is stored).
    pub fn choose(&self, available: EncodingSet) -> Encoding {
        self.order()
            .iter()
            .copied()
            .find(|e| available.contains(*e))
            .unwrap_or(Encoding::Identity)
    }
}

/// `name;q=0.5;other=x` → (trimmed name, q in thousandths); `None` for an empty name or a
/// malformed q-value (the item is then ignored).
fn parse_item(item: &str) -> Option<(&str, u16)> {
    let mut parts = item.split(';');
    let name = parts.next()?.trim();
    if name.is_empty() {
        return None;
    }
    let mut q = 1000;
    for param in parts {
        let param = param.trim();
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        if key.trim().eq_ignore_ascii_case("q") {
            q = parse_qvalue(value.trim())?;
        }
    }
    Some((name, q))
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn parse_qvalue(value: &str) -> Option<u16> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths: u16 = 0;
    for (i, digit) in fraction.bytes().enumerate() {
        thousandths += u16::from(digit - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// The encoding a coding name means (`x-gzip` is gzip, RFC 9110 §8.4.1.3).
fn coding(name: &str) -> Option<Encoding> {
    if name.eq_ignore_ascii_case("br") {
        Some(Encoding::Br)
    } else if name.eq_ignore_ascii_case("gzip") || name.eq_ignore_ascii_case("x-gzip") {
        Some(Encoding::Gzip)
    } else if name.eq_ignore_ascii_case("identity") {
        Some(Encoding::Identity)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::Encoding::{Br, Gzip, Identity};
    use super::*;

    fn order(header: Option<&str>) -> Vec<Encoding> {
        Accepted::parse(header).order().to_vec()
    }

    #[test]
    fn browsers_get_br_then_gzip() {
        assert_eq!(order(Some("gzip, deflate, br, zstd")), [Br, Gzip, Identity]);
        assert_eq!(order(Some("gzip, deflate")), [Gzip, Identity]);
        assert_eq!(order(Some("BR")), [Br, Identity]);
        assert_eq!(order(Some("x-gzip")), [Gzip, Identity]);
    }

    #[test]
    fn no_header_or_empty_means_identity() {
        assert_eq!(order(None), [Identity]);
        assert_eq!(order(Some("")), [Identity]);
        assert_eq!(order(Some(" , ")), [Identity]);
        assert_eq!(order(Some("deflate, compress")), [Identity]);
    }

    #[test]
    fn q_values_order_and_refuse() {
        assert_eq!(order(Some("br;q=0, gzip")), [Gzip, Identity]);
        assert_eq!(order(Some("br;q=0.5, gzip")), [Gzip, Br, Identity]);
        assert_eq!(order(Some("br;q=0.8, gzip;q=0.8")), [Br, Gzip, Identity]);
        assert_eq!(order(Some("br ; q=0.001")), [Br, Identity]);
        assert_eq!(order(Some("gzip;Q=1.000")), [Gzip, Identity]);
        // Identity preferred over the variants by its q-value.
        assert_eq!(order(Some("identity, br;q=0.5")), [Identity, Br]);
        // Identity refused: still the last resort.
        assert_eq!(order(Some("br, identity;q=0")), [Br, Identity]);
        assert_eq!(order(Some("identity;q=0")), [Identity]);
    }

    #[test]
    fn star_covers_unlisted_codings() {
        assert_eq!(order(Some("*")), [Br, Gzip, Identity]);
        assert_eq!(order(Some("gzip;q=0, *")), [Br, Identity]);
        assert_eq!(order(Some("*;q=0")), [Identity]);
        // `*` gives identity 0.5 too: above br's 0.3.
        assert_eq!(order(Some("br;q=0.3, *;q=0.5")), [Gzip, Identity, Br]);
        assert_eq!(
            order(Some("br;q=0.3, *;q=0.5, identity")),
            [Identity, Gzip, Br]
        );
    }

    #[test]
    fn malformed_items_are_ignored() {
        assert_eq!(order(Some("br;q=2, gzip")), [Gzip, Identity]);
        assert_eq!(order(Some("br;q=0.1234, gzip;q=x")), [Identity]);
        assert_eq!(order(Some("br;q=, gzip;q=1.5")), [Identity]);
        assert_eq!(order(Some("br;level=5")), [Br, Identity]);
        // The first mention counts.
        assert_eq!(order(Some("br;q=0, br")), [Identity]);
    }

    #[test]
    fn choose_among_what_is_stored() {
        let all = EncodingSet::IDENTITY.with(Br).with(Gzip);
        let gzip_only = EncodingSet::IDENTITY.with(Gzip);
        let accepted = Accepted::parse(Some("gzip, br"));
        assert_eq!(accepted.choose(all), Br);
        assert_eq!(accepted.choose(gzip_only), Gzip);
        assert_eq!(accepted.choose(EncodingSet::IDENTITY), Identity);
        assert_eq!(Accepted::parse(Some("br")).choose(gzip_only), Identity);
        assert!(all.has_variants() && !EncodingSet::IDENTITY.has_variants());
    }

    #[test]
    fn tokens_round_trip() {
        for e in [Identity, Br, Gzip] {
            assert_eq!(Encoding::from_token(e.token()), Some(e));
        }
        assert_eq!(Encoding::from_token("deflate"), None);
    }
}
