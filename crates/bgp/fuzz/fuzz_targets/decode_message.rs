//! Decode arbitrary bytes; anything that decodes must re-encode and decode
//! back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yagura_bgp::packet::{decode, Context, Decoded};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the session context; the rest is the stream.
    let Some((first, bytes)) = data.split_first() else { return };
    let ctx = Context { four_octet_as: first & 1 == 1 };
    if let Ok(Decoded::Message { message, consumed, .. }) = decode(bytes, &ctx) {
        assert!(consumed <= bytes.len());
        let encoded = message.to_bytes(&ctx).expect("decoded message must re-encode");
        match decode(&encoded, &ctx) {
            Ok(Decoded::Message { message: again, consumed, .. }) => {
                assert_eq!(consumed, encoded.len());
                assert_eq!(again, message);
            }
            other => panic!("re-decode failed: {other:?}"),
        }
    }
});
