#![no_main]
//! Fuzz the sFlow v5 decoder with arbitrary datagrams.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(d) = yagura_flow::sflow::decode(data) {
        let _ = d.flow_records();
    }
});
