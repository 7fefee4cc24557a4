//! Varbinds → a typed [`Sample`] of one device (pure, no I/O): system scalars plus one [`Interface`] per
//! ifIndex, preferring 64-bit (HC) counters and falling back to 32-bit ones where a device has no HC counters.

use crate::oid::{self, if_col, ifx_col};
use std::collections::BTreeMap;

/// An owned SNMP value (only the types IF-MIB and SNMPv2-MIB use are kept apart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    /// INTEGER.
    Int(i64),
    /// OCTET STRING.
    Bytes(Vec<u8>),
    /// Counter32.
    C32(u32),
    /// Counter64.
    C64(u64),
    /// Gauge32 / Unsigned32.
    Gauge(u32),
    /// TimeTicks.
    Ticks(u32),
    /// noSuchObject, noSuchInstance, endOfMibView.
    Missing,
    /// Any other type.
    Other,
}

/// A counter reading, with its width: deltas are taken modulo 2^32 or 2^64.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    /// Counter32.
    C32(u32),
    /// Counter64.
    C64(u64),
}

/// The counters of one interface; `None` where the device does not report one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Octets received.
    pub in_octets: Option<Counter>,
    /// Octets sent.
    pub out_octets: Option<Counter>,
    /// Unicast packets received.
    pub in_ucast: Option<Counter>,
    /// Unicast packets sent.
    pub out_ucast: Option<Counter>,
    /// Multicast packets received.
    pub in_mcast: Option<Counter>,
    /// Multicast packets sent.
    pub out_mcast: Option<Counter>,
    /// Broadcast packets received.
    pub in_bcast: Option<Counter>,
    /// Broadcast packets sent.
    pub out_bcast: Option<Counter>,
    /// Inbound errors.
    pub in_errors: Option<Counter>,
    /// Outbound errors.
    pub out_errors: Option<Counter>,
    /// Inbound discards.
    pub in_discards: Option<Counter>,
    /// Outbound discards.
    pub out_discards: Option<Counter>,
}

/// One interface row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interface {
    /// ifIndex.
    pub index: u32,
    /// ifName, else ifDescr, else `if<index>`.
    pub name: String,
    /// ifAlias (the operator's description), possibly empty.
    pub alias: String,
    /// ifAdminStatus (1 up, 2 down, 3 testing).
    pub admin_status: Option<i64>,
    /// ifOperStatus (1 up, 2 down, 3 testing, 4 unknown, 5 dormant, 6 notPresent, 7 lowerLayerDown).
    pub oper_status: Option<i64>,
    /// Speed in bit/s (ifHighSpeed × 10^6, else ifSpeed).
    pub speed_bps: Option<u64>,
    /// ifCounterDiscontinuityTime.
    pub discontinuity: Option<u32>,
    /// Counters.
    pub counters: Counters,
}

impl Interface {
    /// Administratively up but operationally down (down, notPresent or lowerLayerDown): a link alert.
    pub fn link_down(&self) -> bool {
        self.admin_status == Some(1) && matches!(self.oper_status, Some(2 | 6 | 7))
    }
}

/// One poll of one device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sample {
    /// sysUpTime.0, hundredths of a second.
    pub sys_uptime: u32,
    /// sysName.0.
    pub sys_name: String,
    /// Interfaces by ifIndex.
    pub interfaces: BTreeMap<u32, Interface>,
    /// Some interface had no 64-bit octet counter or no ifName: the fallback columns (32-bit counters,
    /// ifDescr, ifSpeed) are needed for this device.
    pub needs_fallback: bool,
}

fn text(v: &Val) -> Option<String> {
    match v {
        Val::Bytes(b) => Some(
            String::from_utf8_lossy(b)
                .trim_end_matches('\0')
                .chars()
                .filter(|c| !c.is_control())
                .collect(),
        ),
        _ => None,
    }
}

fn int(v: &Val) -> Option<i64> {
    match v {
        Val::Int(n) => Some(*n),
        Val::Gauge(n) | Val::Ticks(n) | Val::C32(n) => Some(i64::from(*n)),
        _ => None,
    }
}

fn counter(v: &Val) -> Option<Counter> {
    match v {
        Val::C64(n) => Some(Counter::C64(*n)),
        Val::C32(n) => Some(Counter::C32(*n)),
        _ => None,
    }
}

/// Builds a sample from the system scalars and the walked table varbinds. Unknown OIDs and values of the
/// wrong type are ignored; a row index that does not fit a u32 is ignored.
pub fn build(sys_uptime: Option<&Val>, sys_name: Option<&Val>, rows: &[(Vec<u64>, Val)]) -> Sample {
    let mut s = Sample {
        sys_uptime: match sys_uptime {
            Some(Val::Ticks(t)) => *t,
            Some(v) => int(v).and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
            None => 0,
        },
        sys_name: sys_name.and_then(text).unwrap_or_default(),
        interfaces: BTreeMap::new(),
        needs_fallback: false,
    };
    let mut descr: BTreeMap<u32, String> = BTreeMap::new();
    let mut speed32: BTreeMap<u32, u64> = BTreeMap::new();
    for (o, v) in rows {
        if matches!(v, Val::Missing) {
            continue;
        }
        let (is_x, rest) = if let Some(r) = o.strip_prefix(oid::IFX_ENTRY) {
            (true, r)
        } else if let Some(r) = o.strip_prefix(oid::IF_ENTRY) {
            (false, r)
        } else {
            continue;
        };
        let [col, idx] = rest else { continue };
        let Ok(idx) = u32::try_from(*idx) else {
            continue;
        };
        let i = s.interfaces.entry(idx).or_insert_with(|| Interface {
            index: idx,
            ..Interface::default()
        });
        let c = &mut i.counters;
        // A 64-bit reading always wins over a 32-bit one for the same counter.
        let set = |slot: &mut Option<Counter>, v: &Val| {
            if let Some(n) = counter(v) {
                if !matches!((*slot, n), (Some(Counter::C64(_)), Counter::C32(_))) {
                    *slot = Some(n);
                }
            }
        };
        if is_x {
            match *col {
                ifx_col::NAME => i.name = text(v).unwrap_or_default(),
                ifx_col::ALIAS => i.alias = text(v).unwrap_or_default(),
                ifx_col::HIGH_SPEED => {
                    if let Some(n) = int(v).filter(|n| *n > 0) {
                        i.speed_bps = Some(n as u64 * 1_000_000);
                    }
                }
                ifx_col::DISCONTINUITY_TIME => {
                    i.discontinuity = int(v).and_then(|n| u32::try_from(n).ok())
                }
                ifx_col::HC_IN_OCTETS => set(&mut c.in_octets, v),
                ifx_col::HC_OUT_OCTETS => set(&mut c.out_octets, v),
                ifx_col::HC_IN_UCAST => set(&mut c.in_ucast, v),
                ifx_col::HC_OUT_UCAST => set(&mut c.out_ucast, v),
                ifx_col::HC_IN_MCAST | ifx_col::IN_MCAST => set(&mut c.in_mcast, v),
                ifx_col::HC_OUT_MCAST | ifx_col::OUT_MCAST => set(&mut c.out_mcast, v),
                ifx_col::HC_IN_BCAST | ifx_col::IN_BCAST => set(&mut c.in_bcast, v),
                ifx_col::HC_OUT_BCAST | ifx_col::OUT_BCAST => set(&mut c.out_bcast, v),
                _ => {}
            }
        } else {
            match *col {
                if_col::DESCR => {
                    descr.insert(idx, text(v).unwrap_or_default());
                }
                if_col::SPEED => {
                    if let Some(n) = int(v) {
                        speed32.insert(idx, n.max(0) as u64);
                    }
                }
                if_col::ADMIN_STATUS => i.admin_status = int(v),
                if_col::OPER_STATUS => i.oper_status = int(v),
                if_col::IN_OCTETS => set(&mut c.in_octets, v),
                if_col::OUT_OCTETS => set(&mut c.out_octets, v),
                if_col::IN_UCAST => set(&mut c.in_ucast, v),
                if_col::OUT_UCAST => set(&mut c.out_ucast, v),
                if_col::IN_ERRORS => set(&mut c.in_errors, v),
                if_col::OUT_ERRORS => set(&mut c.out_errors, v),
                if_col::IN_DISCARDS => set(&mut c.in_discards, v),
                if_col::OUT_DISCARDS => set(&mut c.out_discards, v),
                _ => {}
            }
        }
    }
    s.needs_fallback = s
        .interfaces
        .values()
        .any(|i| !matches!(i.counters.in_octets, Some(Counter::C64(_))) || i.name.is_empty());
    for (idx, i) in s.interfaces.iter_mut() {
        if i.name.is_empty() {
            i.name = descr
                .get(idx)
                .filter(|d| !d.is_empty())
                .cloned()
                .unwrap_or_else(|| format!("if{idx}"));
        }
        if i.speed_bps.is_none() {
            // ifSpeed saturates at 2^32-1 for faster links; ifHighSpeed is the truth there.
            i.speed_bps = speed32
                .get(idx)
                .copied()
                .filter(|s| *s > 0 && *s < u64::from(u32::MAX));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn o(entry: &[u64], col: u64, idx: u64) -> Vec<u64> {
        let mut v = entry.to_vec();
        v.extend([col, idx]);
        v
    }

    #[test]
    fn hc_counters_win_and_names_fall_back() {
        let rows = vec![
            (o(oid::IFX_ENTRY, 1, 1), Val::Bytes(b"eth0".to_vec())),
            (o(oid::IFX_ENTRY, 18, 1), Val::Bytes(b"uplink\0".to_vec())),
            (o(oid::IFX_ENTRY, 6, 1), Val::C64(1 << 40)),
            (o(oid::IF_ENTRY, 10, 1), Val::C32(7)),
            (o(oid::IFX_ENTRY, 15, 1), Val::Gauge(10_000)),
            (o(oid::IF_ENTRY, 7, 1), Val::Int(1)),
            (o(oid::IF_ENTRY, 8, 1), Val::Int(2)),
            (o(oid::IF_ENTRY, 2, 2), Val::Bytes(b"Gi0/2".to_vec())),
            (o(oid::IF_ENTRY, 5, 2), Val::Gauge(100_000_000)),
            (o(oid::IF_ENTRY, 10, 2), Val::C32(5)),
            (o(oid::IF_ENTRY, 8, 3), Val::Missing),
            (vec![1, 3, 6, 1, 2, 1, 2, 2, 1, 10], Val::C32(1)),
        ];
        let s = build(
            Some(&Val::Ticks(500)),
            Some(&Val::Bytes(b"sw1".to_vec())),
            &rows,
        );
        assert_eq!(s.sys_uptime, 500);
        assert_eq!(s.sys_name, "sw1");
        let a = &s.interfaces[&1];
        assert_eq!(a.name, "eth0");
        assert_eq!(a.alias, "uplink");
        assert_eq!(a.counters.in_octets, Some(Counter::C64(1 << 40)));
        assert_eq!(a.speed_bps, Some(10_000_000_000));
        assert!(a.link_down());
        let b = &s.interfaces[&2];
        assert_eq!(b.name, "Gi0/2");
        assert_eq!(b.counters.in_octets, Some(Counter::C32(5)));
        assert_eq!(b.speed_bps, Some(100_000_000));
        assert!(!b.link_down());
        assert!(s.needs_fallback);
        assert!(!s.interfaces.contains_key(&3));
    }
}
