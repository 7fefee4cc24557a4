//! What we announce: the routes for the VIPs in force, and per session the Adj-RIB-Out (what was sent), from
//! which the UPDATEs that bring the peer to the wanted set are computed — grouped by attributes and packed into
//! as few messages as fit in 4096 octets. Pure: no I/O.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use yagura_bgp::packet::{
    AfiSafi, AsPath, Community, Context, Ipv6NextHop, LargeCommunity, Message, MpReach, MpUnreach,
    Origin, PathAttributes, Update, MAX_MESSAGE_LEN,
};

/// The attributes a VIP is announced with (besides the per-session AS_PATH and next hop).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct RouteAttrs {
    /// Standard communities.
    pub communities: Vec<Community>,
    /// Large communities.
    pub large_communities: Vec<LargeCommunity>,
    /// MULTI_EXIT_DISC.
    pub med: Option<u32>,
}

/// The routes to announce: prefix → attributes.
pub type RouteSet = BTreeMap<IpNet, RouteAttrs>;

/// What a session needs to build UPDATEs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origination {
    /// Our AS.
    pub local_as: u32,
    /// The peer's AS (iBGP when equal: empty AS_PATH, LOCAL_PREF 100).
    pub peer_as: u32,
    /// Codec context.
    pub context: Context,
    /// Families the session negotiated.
    pub families: Vec<AfiSafi>,
    /// IPv4 next hop (IPv4 routes are not sent without one).
    pub next_hop_ipv4: Option<Ipv4Addr>,
    /// IPv6 next hop (IPv6 routes are not sent without one).
    pub next_hop_ipv6: Option<Ipv6Addr>,
}

impl Origination {
    fn sends(&self, prefix: &IpNet) -> bool {
        match prefix {
            IpNet::V4(_) => {
                self.families.contains(&AfiSafi::IPV4_UNICAST) && self.next_hop_ipv4.is_some()
            }
            IpNet::V6(_) => {
                self.families.contains(&AfiSafi::IPV6_UNICAST) && self.next_hop_ipv6.is_some()
            }
        }
    }

    fn base_attributes(&self, attrs: &RouteAttrs) -> PathAttributes {
        let ebgp = self.local_as != self.peer_as;
        let as_path = if ebgp {
            AsPath::from_sequence([self.local_as])
        } else {
            AsPath::default()
        };
        let as4_path = (!self.context.four_octet_as && self.local_as > u32::from(u16::MAX) && ebgp)
            .then(|| as_path.clone());
        PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(as_path),
            as4_path,
            med: attrs.med,
            local_pref: (!ebgp).then_some(100),
            communities: attrs.communities.clone(),
            large_communities: attrs.large_communities.clone(),
            ..PathAttributes::default()
        }
    }
}

/// Per-session Adj-RIB-Out.
#[derive(Debug, Clone, Default)]
pub struct AdjRibOut {
    sent: RouteSet,
}

impl AdjRibOut {
    /// Nothing sent yet (a new session).
    pub fn new() -> Self {
        Self::default()
    }

    /// The routes the peer has from us.
    pub fn sent(&self) -> &RouteSet {
        &self.sent
    }

    /// Forget everything (the session went down).
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    /// The UPDATEs that take the peer from what it has to `wanted`, and records them as sent. Withdrawals come
    /// first (a drain is a pure withdrawal).
    pub fn sync(&mut self, wanted: &RouteSet, o: &Origination) -> Vec<Update> {
        let wanted: RouteSet = wanted
            .iter()
            .filter(|(p, _)| o.sends(p))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        let mut withdraw4 = Vec::new();
        let mut withdraw6 = Vec::new();
        for p in self.sent.keys() {
            if !wanted.contains_key(p) {
                match p {
                    IpNet::V4(n) => withdraw4.push(*n),
                    IpNet::V6(n) => withdraw6.push(*n),
                }
            }
        }
        let mut groups: BTreeMap<&RouteAttrs, (Vec<Ipv4Net>, Vec<Ipv6Net>)> = BTreeMap::new();
        for (p, a) in &wanted {
            if self.sent.get(p) == Some(a) {
                continue;
            }
            let g = groups.entry(a).or_default();
            match p {
                IpNet::V4(n) => g.0.push(*n),
                IpNet::V6(n) => g.1.push(*n),
            }
        }
        let mut out = Vec::new();
        // IPv4 withdrawals: about 5 octets each, after 23 octets of header and lengths.
        for chunk in withdraw4.chunks(chunk_len(23, 5)) {
            out.push(Update {
                withdrawn: chunk.to_vec(),
                ..Update::default()
            });
        }
        for chunk in withdraw6.chunks(chunk_len(23 + 8, 17)) {
            let mut u = Update::default();
            u.attributes.mp_unreach = Some(MpUnreach::Ipv6Unicast(chunk.to_vec()));
            out.push(u);
        }
        for (attrs, (v4, v6)) in groups {
            let base = o.base_attributes(attrs);
            let base_len = attrs_len(&base, o);
            if let Some(nh) = o.next_hop_ipv4 {
                for chunk in v4.chunks(chunk_len(23 + base_len + 7, 5)) {
                    let mut attributes = base.clone();
                    attributes.next_hop = Some(nh);
                    out.push(Update {
                        attributes,
                        nlri: chunk.to_vec(),
                        ..Update::default()
                    });
                }
            }
            if let Some(nh) = o.next_hop_ipv6 {
                for chunk in v6.chunks(chunk_len(23 + base_len + 4 + 5 + 16, 17)) {
                    let mut attributes = base.clone();
                    attributes.mp_reach = Some(MpReach::Ipv6Unicast {
                        next_hop: Ipv6NextHop {
                            global: nh,
                            link_local: None,
                        },
                        nlri: chunk.to_vec(),
                    });
                    out.push(Update {
                        attributes,
                        ..Update::default()
                    });
                }
            }
        }
        self.sent = wanted;
        out
    }
}

fn attrs_len(a: &PathAttributes, o: &Origination) -> usize {
    let probe = Message::Update(Update {
        attributes: a.clone(),
        ..Update::default()
    });
    // Encoding a bounded attribute set cannot fail; assume the worst case if it ever does.
    match probe.to_bytes(&o.context) {
        Ok(b) => b.len().saturating_sub(23),
        Err(_) => MAX_MESSAGE_LEN / 2,
    }
}

fn chunk_len(overhead: usize, per_prefix: usize) -> usize {
    (MAX_MESSAGE_LEN.saturating_sub(overhead) / per_prefix).max(1)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use yagura_bgp::packet::{decode, Decoded};

    fn origination() -> Origination {
        Origination {
            local_as: 65001,
            peer_as: 65000,
            context: Context {
                four_octet_as: true,
            },
            families: vec![AfiSafi::IPV4_UNICAST, AfiSafi::IPV6_UNICAST],
            next_hop_ipv4: Some(Ipv4Addr::new(198, 18, 0, 11)),
            next_hop_ipv6: Some("2001:db8::11".parse().unwrap()),
        }
    }

    #[test]
    fn announce_then_withdraw() {
        let o = origination();
        let mut rib = AdjRibOut::new();
        let mut want = RouteSet::new();
        want.insert("198.19.0.10/32".parse().unwrap(), RouteAttrs::default());
        want.insert("2001:db8:1::10/128".parse().unwrap(), RouteAttrs::default());
        let ups = rib.sync(&want, &o);
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0].nlri.len(), 1);
        assert_eq!(ups[0].attributes.next_hop, o.next_hop_ipv4);
        assert_eq!(
            ups[0].attributes.as_path,
            Some(AsPath::from_sequence([65001]))
        );
        assert!(rib.sync(&want, &o).is_empty(), "nothing changed");
        let ups = rib.sync(&RouteSet::new(), &o);
        assert_eq!(ups.len(), 2);
        assert_eq!(ups[0].withdrawn.len(), 1);
        assert!(matches!(
            ups[1].attributes.mp_unreach,
            Some(MpUnreach::Ipv6Unicast(ref v)) if v.len() == 1
        ));
    }

    #[test]
    fn families_not_negotiated_are_not_sent() {
        let o = Origination {
            families: vec![AfiSafi::IPV4_UNICAST],
            ..origination()
        };
        let mut want = RouteSet::new();
        want.insert("2001:db8:1::10/128".parse().unwrap(), RouteAttrs::default());
        assert!(AdjRibOut::new().sync(&want, &o).is_empty());
    }

    #[test]
    fn ten_thousand_prefixes_pack_into_full_messages_that_encode() {
        let o = origination();
        let attrs = RouteAttrs {
            communities: vec![Community::new(65000, 1)],
            large_communities: vec![LargeCommunity {
                global_admin: 65000,
                local_data1: 1,
                local_data2: 2,
            }],
            med: Some(10),
        };
        let mut want = RouteSet::new();
        for i in 0..10_000u32 {
            let a = Ipv4Addr::from(0xc612_0000 + i);
            want.insert(IpNet::V4(Ipv4Net::new(a, 32).unwrap()), attrs.clone());
            let b = Ipv6Addr::from(0x2001_0db8_0001_0000_0000_0000_0000_0000u128 + u128::from(i));
            want.insert(IpNet::V6(Ipv6Net::new(b, 128).unwrap()), attrs.clone());
        }
        let mut rib = AdjRibOut::new();
        let ups = rib.sync(&want, &o);
        assert!(ups.len() < 80, "{} messages", ups.len());
        let mut n = 0;
        for u in ups {
            let bytes = Message::Update(u).to_bytes(&o.context).unwrap();
            let Decoded::Message {
                message: Message::Update(u),
                ..
            } = decode(&bytes, &o.context).unwrap()
            else {
                panic!()
            };
            n += u.announced_ipv4().count();
            if let Some(MpReach::Ipv6Unicast { nlri, .. }) = &u.attributes.mp_reach {
                n += nlri.len();
            }
        }
        assert_eq!(n, 20_000);
        let ups = rib.sync(&RouteSet::new(), &o);
        for u in ups {
            Message::Update(u).to_bytes(&o.context).unwrap();
        }
    }
}
