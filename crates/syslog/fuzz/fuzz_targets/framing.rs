#![no_main]
//! Fuzz the RFC 6587 frame decoder; the first byte picks the chunk size and
//! frames must never exceed the maximum length.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 32) + 1;
    let max = 64;
    let mut d = yagura_syslog::FrameDecoder::new(max);
    for c in rest.chunks(chunk) {
        d.push(c);
        while let Some(f) = d.next_frame() {
            if let Ok(f) = f {
                assert!(f.len() <= max);
            }
        }
    }
    let _ = d.finish();
});
