//! Address arithmetic shared by validation and planning: inclusive spans over IPv4 and IPv6 as integers.

use crate::model::AddrRange;
use ipnet::{IpNet, Ipv4Net};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address as an integer (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The inverse of [`to_u128`] for a family.
pub fn from_u128(v: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    } else {
        IpAddr::V6(Ipv6Addr::from(v))
    }
}

/// The `n`th address of an IPv4 network (0 is the network address), if it lies inside it.
pub fn nth(net: Ipv4Net, n: u32) -> Option<Ipv4Addr> {
    let base = u32::from(net.network());
    let a = base.checked_add(n)?;
    (a <= u32::from(net.broadcast())).then(|| Ipv4Addr::from(a))
}

/// An inclusive span of addresses of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span {
    /// First address.
    pub start: u128,
    /// Last address.
    pub end: u128,
    /// IPv4 or IPv6.
    pub v4: bool,
}

impl Span {
    /// Every address of a network, network and broadcast included.
    pub fn net(n: IpNet) -> Self {
        Self {
            start: to_u128(n.network()),
            end: to_u128(n.broadcast()),
            v4: n.network().is_ipv4(),
        }
    }

    /// An explicit range.
    pub fn range(r: AddrRange) -> Self {
        Self {
            start: to_u128(r.start),
            end: to_u128(r.end),
            v4: r.start.is_ipv4(),
        }
    }

    /// One address.
    pub fn addr(a: IpAddr) -> Self {
        Self {
            start: to_u128(a),
            end: to_u128(a),
            v4: a.is_ipv4(),
        }
    }

    /// True when the two share an address.
    pub fn overlaps(&self, o: &Span) -> bool {
        self.v4 == o.v4 && self.start <= o.end && o.start <= self.end
    }

    /// True when `o` lies wholly inside.
    pub fn contains(&self, o: &Span) -> bool {
        self.v4 == o.v4 && self.start <= o.start && o.end <= self.end
    }

    /// Number of addresses (saturating).
    pub fn len(&self) -> u128 {
        (self.end - self.start).saturating_add(1)
    }

    /// Never empty; present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// First address.
    pub fn first(&self) -> IpAddr {
        from_u128(self.start, self.v4)
    }

    /// Last address.
    pub fn last(&self) -> IpAddr {
        from_u128(self.end, self.v4)
    }

    /// Addresses in the span, less those ending in .0 or .255 (IPv4) when `avoid_buggy` is set.
    pub fn usable(&self, avoid_buggy: bool) -> u128 {
        if !avoid_buggy || !self.v4 {
            return self.len();
        }
        // count x in [start, end] with x % 256 == 0 or 255
        let count_mod = |r: u128| -> u128 {
            // numbers in [0, r] congruent to 0 or 255 mod 256
            let full = (r + 1) / 256;
            let rem = (r + 1) % 256;
            full * 2 + u128::from(rem > 0) + u128::from(rem > 255)
        };
        let bad = count_mod(self.end)
            - if self.start == 0 {
                0
            } else {
                count_mod(self.start - 1)
            };
        self.len() - bad
    }

    /// The first and last addresses that are not .0 / .255 when `avoid_buggy` is set.
    pub fn usable_bounds(&self, avoid_buggy: bool) -> Option<(IpAddr, IpAddr)> {
        let buggy = |v: u128| avoid_buggy && self.v4 && (v.is_multiple_of(256) || v % 256 == 255);
        let mut s = self.start;
        while buggy(s) && s < self.end {
            s += 1;
        }
        let mut e = self.end;
        while buggy(e) && e > s {
            e -= 1;
        }
        if buggy(s) || buggy(e) {
            return None;
        }
        Some((from_u128(s, self.v4), from_u128(e, self.v4)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buggy_counting() {
        let n: IpNet = "10.0.0.0/23".parse().unwrap();
        let s = Span::net(n);
        assert_eq!(s.len(), 512);
        assert_eq!(s.usable(true), 508);
        assert_eq!(s.usable(false), 512);
        let r = Span::range("10.0.0.250-10.0.1.5".parse().unwrap());
        assert_eq!(r.usable(true), 12 - 2);
        assert_eq!(
            r.usable_bounds(true).unwrap(),
            ("10.0.0.250".parse().unwrap(), "10.0.1.5".parse().unwrap())
        );
        let z = Span::range("10.0.0.0-10.0.0.0".parse().unwrap());
        assert_eq!(z.usable(true), 0);
        assert!(z.usable_bounds(true).is_none());
    }

    #[test]
    fn overlap() {
        let a = Span::net("10.0.0.0/24".parse().unwrap());
        let b = Span::net("10.0.0.128/25".parse().unwrap());
        let c = Span::net("10.0.1.0/24".parse().unwrap());
        assert!(a.overlaps(&b) && a.contains(&b) && !a.overlaps(&c));
        let v6 = Span::net("2001:db8::/64".parse().unwrap());
        assert!(!a.overlaps(&v6));
    }
}
