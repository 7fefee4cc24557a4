#![no_main]
//! Fuzz the NetFlow v5/v9/IPFIX decoders; consecutive packets share one
//! template cache so template-then-data paths are reached.

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use yagura_flow::netflow::{decode, TemplateCache};

fuzz_target!(|data: &[u8]| {
    let exporter = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut cache = TemplateCache::default();
    // Split the input into packets at 0xFE bytes.
    for (i, pkt) in data.split(|&b| b == 0xFE).enumerate() {
        let _ = decode(pkt, exporter, i as u64 * 100, &mut cache);
    }
});
