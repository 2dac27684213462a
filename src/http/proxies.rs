//! Which client address a request is attributed to (analytics, rate limits, the per-client
//! connection share): the socket peer, unless the peer is a configured trusted proxy, in
//! which case the nearest untrusted hop of `X-Forwarded-For`. Never the header on its own
//! word (the Go fazt trusted it from anyone, so any client could pick its own "address").

use super::Request;
use std::net::IpAddr;

/// An address or a CIDR block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Block {
    base: IpAddr,
    prefix: u8,
}

impl Block {
    fn parse(text: &str) -> Result<Block, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let base: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or CIDR block"))?;
        let max = if base.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or(format!("'{text}' has a bad prefix length"))?,
        };
        Ok(Block { base, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let (base, ip, width) = match (self.base, ip) {
            (IpAddr::V4(b), IpAddr::V4(i)) => (u32::from(b) as u128, u32::from(i) as u128, 32),
            (IpAddr::V6(b), IpAddr::V6(i)) => (u128::from(b), u128::from(i), 128),
            _ => return false,
        };
        let shift = width - u32::from(self.prefix);
        shift >= 128 || (base >> shift) == (ip >> shift)
    }
}

/// The trusted-proxy list: comma-separated addresses or CIDR blocks.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies {
    blocks: Vec<Block>,
}

impl TrustedProxies {
    pub fn parse(text: &str) -> Result<TrustedProxies, String> {
        let blocks = text
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(Block::parse)
            .collect::<Result<_, _>>()?;
        Ok(TrustedProxies { blocks })
    }

    /// Whether `ip` is one of the proxies. A dual-stack listener (`[::]:80`) sees an IPv4
    /// proxy as an IPv4-mapped IPv6 address, which an IPv4 block must still match.
    pub(crate) fn trusts(&self, ip: IpAddr) -> bool {
        let canonical = ip.to_canonical();
        self.blocks
            .iter()
            .any(|b| b.contains(ip) || b.contains(canonical))
    }

    pub fn client_ip(&self, request: &Request) -> IpAddr {
        let peer = request.peer.ip();
        if !self.trusts(peer) {
            return peer;
        }
        let Some(forwarded) = request.header_str("x-forwarded-for") else {
            return peer;
        };
        // Walk from the nearest hop outwards; the first address we don't trust is the
        // client (anything further left was written by the client itself).
        let mut client = peer;
        for hop in forwarded.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) if self.trusts(ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
        client
    }
}

/// The key per-client limits count under: an IPv4 address as it is (an IPv4-mapped IPv6
/// address as its IPv4 form), an IPv6 address by its /64, because one host or home usually
/// holds a whole /64 and could otherwise take a new share per address.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !(u64::MAX as u128)).into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_keys_group_v6_by_64() {
        let key = |s: &str| client_key(s.parse().unwrap()).to_string();
        assert_eq!(key("203.0.113.9"), "203.0.113.9");
        assert_eq!(key("::ffff:203.0.113.9"), "203.0.113.9");
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2:ffff::9"), key("2001:db8:1:2::1"));
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
    }

    #[test]
    fn blocks() {
        let b = Block::parse("10.0.0.0/8").unwrap();
        assert!(b.contains("10.9.8.7".parse().unwrap()));
        assert!(!b.contains("11.0.0.1".parse().unwrap()));
        assert!(!b.contains("::1".parse().unwrap()));
        assert!(Block::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Block::parse("::1")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(Block::parse("fd00::/8")
            .unwrap()
            .contains("fd12::1".parse().unwrap()));
        assert!(Block::parse("10.0.0.0/33").is_err());
        assert!(Block::parse("nope").is_err());
        assert!(TrustedProxies::parse("127.0.0.1, 10.0.0.0/8").is_ok());
        assert!(TrustedProxies::parse("127.0.0.1,bad").is_err());
    }

    #[test]
    fn an_ipv4_proxy_seen_through_a_dual_stack_listener_is_trusted() {
        let proxies = TrustedProxies::parse("173.245.48.0/20, 2400:cb00::/32").unwrap();
        let trusts = |ip: &str| proxies.trusts(ip.parse().unwrap());
        assert!(trusts("173.245.48.7"));
        assert!(trusts("::ffff:173.245.48.7"));
        assert!(trusts("2400:cb00::1"));
        assert!(!trusts("::ffff:173.245.64.1"));
        assert!(!trusts("203.0.113.9"));
        // Only an IPv4-mapped address is an IPv4 one: the IPv4-compatible form is not.
        assert!(!trusts("::173.245.48.7"));
    }
}
