#![no_main]
//! Fuzz the log store's segment/block decoder: arbitrary bytes as a segment (frames, summaries, LZ4 payloads,
//! records) must be rejected or decoded, never panic; and a valid segment built from decoded rows must scan to
//! its full length.

use libfuzzer_sys::fuzz_target;
use yagura_watch::logstore::codec::{self, BlockBuilder, FrameHeader, Summary, FRAME_HEADER};

fuzz_target!(|data: &[u8]| {
    let (frames, valid) = codec::scan(data);
    assert!(valid <= data.len());
    let rows = codec::decode_segment(data);
    let _ = Summary::decode(data);
    if let Ok(h) = FrameHeader::decode(data) {
        let _ = codec::check_frame(&h, &data[FRAME_HEADER.min(data.len())..]);
    }
    // Payload decoding without the CRC in the way (both compressed and plain).
    for lz4 in [false, true] {
        let s = Summary {
            lz4,
            count: data.first().copied().unwrap_or(0).into(),
            raw_len: (data.len() * 4) as u32,
            ..Summary::default()
        };
        let _ = codec::decode_payload(&s, data);
    }
    // What decodes re-encodes into a segment that scans whole.
    if let Ok(rows) = rows {
        if !rows.is_empty() {
            let mut b = BlockBuilder::default();
            for r in &rows {
                b.push(r);
            }
            let mut out = Vec::new();
            b.finish_into(&mut out, true);
            let (f2, v2) = codec::scan(&out);
            assert_eq!((f2.len(), v2), (1, out.len()));
            assert_eq!(codec::decode_segment(&out).unwrap(), rows);
        }
    }
    let _ = frames;
});
