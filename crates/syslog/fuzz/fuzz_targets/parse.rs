#![no_main]
//! Fuzz the syslog parser: any bytes must yield a message that keeps the raw input.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let m = yagura_syslog::parse(data, 1_700_000_000);
    assert_eq!(m.raw, data);
});
