//! Address family identifiers (AFI, SAFI) used by capabilities, MP_REACH /
//! MP_UNREACH and ROUTE-REFRESH.

use std::fmt;

/// IANA AFI for IPv4.
pub const AFI_IPV4: u16 = 1;
/// IANA AFI for IPv6.
pub const AFI_IPV6: u16 = 2;
/// IANA SAFI for unicast forwarding.
pub const SAFI_UNICAST: u8 = 1;

/// An (AFI, SAFI) pair. Kept as raw numbers so families this crate does not
/// model still round-trip; compare against [`AfiSafi::IPV4_UNICAST`] and
/// [`AfiSafi::IPV6_UNICAST`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi {
    /// Address Family Identifier.
    pub afi: u16,
    /// Subsequent Address Family Identifier.
    pub safi: u8,
}

impl AfiSafi {
    /// IPv4 unicast (1/1).
    pub const IPV4_UNICAST: Self = Self {
        afi: AFI_IPV4,
        safi: SAFI_UNICAST,
    };
    /// IPv6 unicast (2/1).
    pub const IPV6_UNICAST: Self = Self {
        afi: AFI_IPV6,
        safi: SAFI_UNICAST,
    };

    /// A family from raw numbers.
    pub const fn new(afi: u16, safi: u8) -> Self {
        Self { afi, safi }
    }
}

impl fmt::Display for AfiSafi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::IPV4_UNICAST => f.write_str("ipv4-unicast"),
            Self::IPV6_UNICAST => f.write_str("ipv6-unicast"),
            Self { afi, safi } => write!(f, "afi {afi}/safi {safi}"),
        }
    }
}
