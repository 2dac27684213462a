//! Which addresses a script's `fetch` may not reach: everything that is not a public unicast
//! address on the Internet. A script runs on the operator's machine, inside their network;
//! without this rule it could read the cloud's metadata service (credentials), the admin
//! port, a database on localhost or any host on the LAN (server-side request forgery).
//!
//! IPv4 is a deny list of the special-purpose ranges (RFC 6890 and the IANA registry). IPv6
//! is an allow list, global unicast `2000::/3` minus its special blocks, because outside it
//! everything is special; the forms that carry an IPv4 address (mapped, compatible, NAT64,
//! 6to4) are judged by the IPv4 address inside, since that is where they lead.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why `ip` may not be fetched, or `None` when it may. `allow_loopback` (tests only) lets
/// 127/8 and `::1` (and their IPv6 forms) through; private ranges stay refused.
pub(crate) fn forbidden(ip: IpAddr, allow_loopback: bool) -> Option<&'static str> {
    let why = match ip {
        IpAddr::V4(v4) => v4_class(v4),
        IpAddr::V6(v6) => v6_class(v6),
    };
    match why {
        Some(LOOPBACK) if allow_loopback => None,
        other => other,
    }
}

const LOOPBACK: &str = "a loopback address";
const METADATA: &str = "a cloud metadata address";

/// (network, prefix length, why), most specific first where they overlap.
const V4_RANGES: &[([u8; 4], u8, &str)] = &[
    ([169, 254, 169, 254], 32, METADATA), // AWS, GCP, Azure, OpenStack, …
    ([100, 100, 100, 200], 32, METADATA), // Alibaba Cloud
    ([0, 0, 0, 0], 32, "an unspecified address"), // reaches this host on Linux
    ([0, 0, 0, 0], 8, "a this-network address"),
    ([127, 0, 0, 0], 8, LOOPBACK),
    ([10, 0, 0, 0], 8, "a private address"),
    ([172, 16, 0, 0], 12, "a private address"),
    ([192, 168, 0, 0], 16, "a private address"),
    ([100, 64, 0, 0], 10, "a shared (carrier-grade NAT) address"),
    ([169, 254, 0, 0], 16, "a link-local address"),
    ([192, 0, 0, 0], 24, "a reserved (IETF protocol) address"),
    ([192, 0, 2, 0], 24, "a documentation address"),
    ([198, 51, 100, 0], 24, "a documentation address"),
    ([203, 0, 113, 0], 24, "a documentation address"),
    ([198, 18, 0, 0], 15, "a benchmarking address"),
    ([224, 0, 0, 0], 4, "a multicast address"),
    ([255, 255, 255, 255], 32, "a broadcast address"),
    ([240, 0, 0, 0], 4, "a reserved address"),
];

fn v4_class(ip: Ipv4Addr) -> Option<&'static str> {
    let bits = u32::from(ip);
    V4_RANGES.iter().find_map(|&(net, len, why)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        (bits & mask == u32::from_be_bytes(net)).then_some(why)
    })
}

fn v6_class(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = embedded_v4(ip) {
        return v4_class(v4);
    }
    let bits = u128::from(ip);
    let within = |net: u128, len: u32| bits >> (128 - len) == net >> (128 - len);
    Some(match () {
        _ if ip.is_unspecified() => "an unspecified address",
        _ if ip.is_loopback() => LOOPBACK,
        // AWS's IPv6 metadata service sits inside unique-local space: name it.
        _ if ip == Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254) => METADATA,
        _ if within(0xfc00 << 112, 7) => "a unique-local address",
        _ if within(0xfe80 << 112, 10) => "a link-local address",
        _ if within(0xfec0 << 112, 10) => "a site-local address",
        _ if within(0xff00 << 112, 8) => "a multicast address",
        _ if within(0x2001_0db8 << 96, 32) || within(0x3fff << 112, 20) => {
            "a documentation address"
        }
        // Teredo, ORCHID and the other protocol assignments; none is a plain host.
        _ if within(0x2001 << 112, 23) => "a reserved (IETF protocol) address",
        _ if !within(0x2000 << 112, 3) => "a reserved address",
        _ => return None,
    })
}

/// The IPv4 address an IPv6 address leads to: IPv4-mapped `::ffff:a.b.c.d`, the deprecated
/// IPv4-compatible `::a.b.c.d` (not `::` and `::1`), NAT64 `64:ff9b::a.b.c.d` and its
/// local-use `64:ff9b:1::/48` (RFC 8215: judged by the last 32 bits, where a /96 puts the
/// address), and 6to4 `2002:AABB:CCDD::/48`.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low = Ipv4Addr::from(bits as u32);
    let seg = ip.segments();
    match seg {
        [0, 0, 0, 0, 0, 0xffff, _, _] => Some(low),
        [0, 0, 0, 0, 0, 0, _, _] if bits > 1 => Some(low),
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(low),
        [0x64, 0xff9b, 1, ..] => Some(low),
        [0x2002, hi, lo, ..] => Some(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each class of forbidden address, with what `forbidden` says of it.
    const FORBIDDEN: &[(&str, &str)] = &[
        ("127.0.0.1", LOOPBACK),
        ("127.255.255.254", LOOPBACK),
        ("::1", LOOPBACK),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("0.1.2.3", "a this-network address"),
        ("10.0.0.1", "a private address"),
        ("10.255.255.255", "a private address"),
        ("172.16.0.1", "a private address"),
        ("172.31.255.255", "a private address"),
        ("192.168.1.1", "a private address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("100.127.255.255", "a shared (carrier-grade NAT) address"),
        ("169.254.0.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("febf::1", "a link-local address"),
        ("fec0::1", "a site-local address"),
        ("fc00::1", "a unique-local address"),
        ("fd12:3456::1", "a unique-local address"),
        ("224.0.0.1", "a multicast address"),
        ("239.255.255.250", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("255.255.255.255", "a broadcast address"),
        ("240.0.0.1", "a reserved address"),
        ("192.0.0.8", "a reserved (IETF protocol) address"),
        ("192.0.2.1", "a documentation address"),
        ("198.51.100.7", "a documentation address"),
        ("203.0.113.9", "a documentation address"),
        ("2001:db8::1", "a documentation address"),
        ("3fff::1", "a documentation address"),
        ("198.18.0.1", "a benchmarking address"),
        ("198.19.255.255", "a benchmarking address"),
        ("169.254.169.254", METADATA),
        ("fd00:ec2::254", METADATA),
        ("100.100.100.200", METADATA),
        // The IPv6 forms of IPv4 addresses are judged by the address inside.
        ("::ffff:127.0.0.1", LOOPBACK),
        ("::ffff:10.0.0.1", "a private address"),
        ("::ffff:169.254.169.254", METADATA),
        ("::ffff:0.0.0.0", "an unspecified address"),
        ("::127.0.0.1", LOOPBACK),
        ("::10.1.2.3", "a private address"),
        ("64:ff9b::10.0.0.1", "a private address"),
        ("64:ff9b::169.254.169.254", METADATA),
        ("64:ff9b:1::192.168.0.1", "a private address"),
        ("2002:7f00:1::", LOOPBACK),
        ("2002:a00:1::1", "a private address"),
        ("2002:a9fe:a9fe::", METADATA),
        ("2001::1", "a reserved (IETF protocol) address"),
        ("2001:1ff::1", "a reserved (IETF protocol) address"),
        ("100::1", "a reserved address"),
        ("4000::1", "a reserved address"),
    ];

    /// Public addresses, of every form that carries one.
    const ALLOWED: &[&str] = &[
        "93.184.215.14",
        "1.1.1.1",
        "8.8.8.8",
        "172.15.255.255",
        "172.32.0.0",
        "100.63.255.255",
        "100.128.0.0",
        "169.253.255.255",
        "192.169.0.1",
        "198.17.255.255",
        "198.20.0.0",
        "223.255.255.255",
        "9.255.255.255",
        "11.0.0.0",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "2001:4860:4860::8888",
        "2001:200::1",
        "::ffff:93.184.215.14",
        "64:ff9b::1.1.1.1",
        "2002:5db8:d70e::1",
        "3ffe::1",
    ];

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("{text} is not an address"))
    }

    #[test]
    fn every_special_range_is_refused_with_its_reason() {
        for &(addr, why) in FORBIDDEN {
            assert_eq!(forbidden(ip(addr), false), Some(why), "{addr}");
            if why != LOOPBACK {
                assert_eq!(
                    forbidden(ip(addr), true),
                    Some(why),
                    "{addr}, loopback allowed"
                );
            }
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for &addr in ALLOWED {
            assert_eq!(forbidden(ip(addr), false), None, "{addr}");
        }
    }

    #[test]
    fn allowing_loopback_lets_only_loopback_through() {
        for addr in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(forbidden(ip(addr), true), None, "{addr}");
        }
        for addr in ["10.0.0.1", "0.0.0.0", "::", "169.254.169.254", "fd00::1"] {
            assert!(forbidden(ip(addr), true).is_some(), "{addr}");
        }
    }
}
