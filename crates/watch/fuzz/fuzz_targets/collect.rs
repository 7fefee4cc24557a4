#![no_main]
//! Fuzz what the watch daemon does with received bytes before storing them: the flow decoder state (template
//! cache shared across datagrams, interface-rate tracking) over a sequence of sFlow and NetFlow/IPFIX
//! datagrams, and syslog parsing into store rows. Datagrams are split at 0xFE; the first byte of each picks
//! the listener and the receive time moves forward.

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr};
use yagura_watch::collect::{log_row, FlowDecoder, FlowInput};

fuzz_target!(|data: &[u8]| {
    let mut dec = FlowDecoder::new(60, 8, 8);
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    for (i, d) in data.split(|&b| b == 0xFE).enumerate() {
        let now = 1_800_000_000_000 + i as i64 * 700;
        let Some((&sel, rest)) = d.split_first() else {
            continue;
        };
        match sel % 3 {
            0 => {
                let _ = dec.decode(FlowInput::Sflow, peer, now, rest);
            }
            1 => {
                let _ = dec.decode(FlowInput::Netflow, peer, now, rest);
            }
            _ => {
                let r = log_row(rest, peer, "udp", now, i16::from(sel as i8) * 10);
                assert_eq!(r.raw, rest);
            }
        }
        if i % 8 == 7 {
            dec.expire((now / 1000) as u64);
        }
    }
});
