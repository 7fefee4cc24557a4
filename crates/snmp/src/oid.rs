//! The object identifiers polled: SNMPv2-MIB system scalars and IF-MIB ifTable / ifXTable columns.

/// `sysUpTime.0` (TimeTicks, hundredths of a second since the agent (re)started).
pub const SYS_UPTIME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 3, 0];
/// `sysName.0`.
pub const SYS_NAME: &[u64] = &[1, 3, 6, 1, 2, 1, 1, 5, 0];
/// `ifEntry`: ifTable columns are `IF_ENTRY.<column>.<ifIndex>`.
pub const IF_ENTRY: &[u64] = &[1, 3, 6, 1, 2, 1, 2, 2, 1];
/// `ifXEntry`: ifXTable columns are `IFX_ENTRY.<column>.<ifIndex>`.
pub const IFX_ENTRY: &[u64] = &[1, 3, 6, 1, 2, 1, 31, 1, 1, 1];

/// ifTable column numbers.
pub mod if_col {
    /// ifDescr.
    pub const DESCR: u64 = 2;
    /// ifSpeed (Gauge32, bit/s).
    pub const SPEED: u64 = 5;
    /// ifAdminStatus.
    pub const ADMIN_STATUS: u64 = 7;
    /// ifOperStatus.
    pub const OPER_STATUS: u64 = 8;
    /// ifInOctets (Counter32).
    pub const IN_OCTETS: u64 = 10;
    /// ifInUcastPkts (Counter32).
    pub const IN_UCAST: u64 = 11;
    /// ifInDiscards.
    pub const IN_DISCARDS: u64 = 13;
    /// ifInErrors.
    pub const IN_ERRORS: u64 = 14;
    /// ifOutOctets (Counter32).
    pub const OUT_OCTETS: u64 = 16;
    /// ifOutUcastPkts (Counter32).
    pub const OUT_UCAST: u64 = 17;
    /// ifOutDiscards.
    pub const OUT_DISCARDS: u64 = 19;
    /// ifOutErrors.
    pub const OUT_ERRORS: u64 = 20;
}

/// ifXTable column numbers.
pub mod ifx_col {
    /// ifName.
    pub const NAME: u64 = 1;
    /// ifInMulticastPkts (Counter32).
    pub const IN_MCAST: u64 = 2;
    /// ifInBroadcastPkts (Counter32).
    pub const IN_BCAST: u64 = 3;
    /// ifOutMulticastPkts (Counter32).
    pub const OUT_MCAST: u64 = 4;
    /// ifOutBroadcastPkts (Counter32).
    pub const OUT_BCAST: u64 = 5;
    /// ifHCInOctets.
    pub const HC_IN_OCTETS: u64 = 6;
    /// ifHCInUcastPkts.
    pub const HC_IN_UCAST: u64 = 7;
    /// ifHCInMulticastPkts.
    pub const HC_IN_MCAST: u64 = 8;
    /// ifHCInBroadcastPkts.
    pub const HC_IN_BCAST: u64 = 9;
    /// ifHCOutOctets.
    pub const HC_OUT_OCTETS: u64 = 10;
    /// ifHCOutUcastPkts.
    pub const HC_OUT_UCAST: u64 = 11;
    /// ifHCOutMulticastPkts.
    pub const HC_OUT_MCAST: u64 = 12;
    /// ifHCOutBroadcastPkts.
    pub const HC_OUT_BCAST: u64 = 13;
    /// ifHighSpeed (Gauge32, Mbit/s).
    pub const HIGH_SPEED: u64 = 15;
    /// ifAlias.
    pub const ALIAS: u64 = 18;
    /// ifCounterDiscontinuityTime (TimeStamp: sysUpTime at the last discontinuity).
    pub const DISCONTINUITY_TIME: u64 = 19;
}

/// A column OID: `entry.column`.
pub fn column(entry: &[u64], col: u64) -> Vec<u64> {
    let mut v = entry.to_vec();
    v.push(col);
    v
}

/// The columns walked on every poll: status, errors, discards from ifTable; names, HC counters, speed, alias
/// and discontinuity time from ifXTable.
pub fn primary_columns() -> Vec<Vec<u64>> {
    use {if_col as i, ifx_col as x};
    let mut v: Vec<Vec<u64>> = [
        i::ADMIN_STATUS,
        i::OPER_STATUS,
        i::IN_DISCARDS,
        i::IN_ERRORS,
        i::OUT_DISCARDS,
        i::OUT_ERRORS,
    ]
    .iter()
    .map(|c| column(IF_ENTRY, *c))
    .collect();
    v.extend(
        [
            x::NAME,
            x::HC_IN_OCTETS,
            x::HC_IN_UCAST,
            x::HC_IN_MCAST,
            x::HC_IN_BCAST,
            x::HC_OUT_OCTETS,
            x::HC_OUT_UCAST,
            x::HC_OUT_MCAST,
            x::HC_OUT_BCAST,
            x::HIGH_SPEED,
            x::ALIAS,
            x::DISCONTINUITY_TIME,
        ]
        .iter()
        .map(|c| column(IFX_ENTRY, *c)),
    );
    v
}

/// The columns walked too when a device lacks HC counters or ifName: 32-bit counters, ifDescr and ifSpeed.
pub fn fallback_columns() -> Vec<Vec<u64>> {
    use {if_col as i, ifx_col as x};
    let mut v: Vec<Vec<u64>> = [
        i::DESCR,
        i::SPEED,
        i::IN_OCTETS,
        i::IN_UCAST,
        i::OUT_OCTETS,
        i::OUT_UCAST,
    ]
    .iter()
    .map(|c| column(IF_ENTRY, *c))
    .collect();
    v.extend(
        [x::IN_MCAST, x::IN_BCAST, x::OUT_MCAST, x::OUT_BCAST]
            .iter()
            .map(|c| column(IFX_ENTRY, *c)),
    );
    v
}
