//! Decode arbitrary bytes as a BFD Control packet; anything that decodes
//! must re-encode and decode back to the same packet.
#![no_main]

use libfuzzer_sys::fuzz_target;
use yagura_bfd::packet::ControlPacket;

fuzz_target!(|data: &[u8]| {
    if let Ok(packet) = ControlPacket::decode(data) {
        let encoded = packet.to_bytes().expect("decoded packet must re-encode");
        assert_eq!(ControlPacket::decode(&encoded), Ok(packet));
    }
});
