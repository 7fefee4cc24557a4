#![no_main]
//! Fuzz the upstream HTTP/1.1 decoder: arbitrary bytes as a response (head, then body by its framing, chunked
//! bodies fed in two pieces) must be parsed or refused, never panic, and never yield more body than was given.

use bytes::BytesMut;
use http::Method;
use libfuzzer_sys::fuzz_target;
use yagura_gate::h1::codec::{parse_response, Chunked, Framing};

fuzz_target!(|data: &[u8]| {
    let (method, data) = match data.split_first() {
        Some((m, rest)) if m % 4 == 0 => (Method::HEAD, rest),
        Some((_, rest)) => (Method::GET, rest),
        None => (Method::GET, data),
    };
    let mut buf = BytesMut::from(data);
    if let Ok(Some(head)) = parse_response(&mut buf, &method) {
        assert!(buf.len() <= data.len());
        if head.framing == Framing::Chunked {
            let mut d = Chunked::default();
            let cut = buf.len() / 2;
            let mut rest = buf.split_off(cut);
            let mut out = 0;
            while let Ok(Some(b)) = d.decode(&mut buf) {
                out += b.len();
            }
            buf.unsplit(rest.split());
            while let Ok(Some(b)) = d.decode(&mut buf) {
                out += b.len();
            }
            assert!(out <= data.len());
        }
    }
    // The decoder alone on the raw bytes.
    let mut d = Chunked::default();
    let mut raw = BytesMut::from(data);
    while let Ok(Some(_)) = d.decode(&mut raw) {}
});
