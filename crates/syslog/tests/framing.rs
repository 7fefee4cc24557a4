#![allow(clippy::unwrap_used, clippy::expect_used)]
//! RFC 6587 framing tests.

use yagura_syslog::{FrameDecoder, FramingError, FramingMode};

fn drain(d: &mut FrameDecoder) -> Vec<Result<Vec<u8>, FramingError>> {
    let mut out = Vec::new();
    while let Some(f) = d.next_frame() {
        out.push(f);
    }
    out
}

fn frames(input: &[u8], chunk: usize, max: usize) -> Vec<Result<Vec<u8>, FramingError>> {
    let mut d = FrameDecoder::new(max);
    let mut out = Vec::new();
    for c in input.chunks(chunk.max(1)) {
        d.push(c);
        out.extend(drain(&mut d));
    }
    out.extend(d.finish());
    out
}

#[test]
fn octet_counting_any_chunking() {
    let input = b"11 <13>1 - - x12 <13>hello\nyo";
    for chunk in 1..input.len() + 1 {
        let f = frames(input, chunk, 1024);
        assert_eq!(
            f,
            vec![Ok(b"<13>1 - - x".to_vec()), Ok(b"<13>hello\nyo".to_vec())],
            "chunk {chunk}"
        );
    }
}

#[test]
fn lf_framing_any_chunking() {
    let input = b"<13>one\n<13>two\r\n\n<13>three";
    for chunk in 1..input.len() + 1 {
        let f = frames(input, chunk, 1024);
        assert_eq!(
            f,
            vec![
                Ok(b"<13>one".to_vec()),
                Ok(b"<13>two".to_vec()),
                Ok(b"<13>three".to_vec())
            ],
            "chunk {chunk}"
        );
    }
}

#[test]
fn detection() {
    let mut d = FrameDecoder::new(100);
    assert_eq!(d.mode(), None);
    d.push(b"5 hello");
    assert_eq!(d.next_frame(), Some(Ok(b"hello".to_vec())));
    assert_eq!(d.mode(), Some(FramingMode::OctetCounting));
    let mut d = FrameDecoder::new(100);
    d.push(b"<1>x\n");
    assert_eq!(d.next_frame(), Some(Ok(b"<1>x".to_vec())));
    assert_eq!(d.mode(), Some(FramingMode::NonTransparent));
}

#[test]
fn octet_counting_oversized_is_skipped() {
    let f = frames(b"20 aaaaaaaaaaaaaaaaaaaa3 abc", 4, 10);
    assert_eq!(
        f,
        vec![
            Err(FramingError::FrameTooLong { len: 20, max: 10 }),
            Ok(b"abc".to_vec())
        ]
    );
}

#[test]
fn octet_counting_invalid_header_resyncs_at_lf() {
    let f = frames(b"3 abcXX garbage\n4 wxyz", 3, 100);
    assert_eq!(
        f,
        vec![
            Ok(b"abc".to_vec()),
            Err(FramingError::InvalidOctetCount),
            Ok(b"wxyz".to_vec())
        ]
    );
}

#[test]
fn octet_counting_truncated_at_eof() {
    let f = frames(b"10 abc", 100, 100);
    assert_eq!(f, vec![Err(FramingError::TruncatedAtEof { buffered: 6 })]);
}

#[test]
fn lf_oversized_discarded_until_newline() {
    let f = frames(b"<1>aaaaaaaaaaaaaaaaaaaaaaaaaa\n<1>ok\n", 5, 10);
    assert!(matches!(
        f[0],
        Err(FramingError::FrameTooLong { max: 10, .. })
    ));

    assert_eq!(f.last(), Some(&Ok(b"<1>ok".to_vec())));
    assert_eq!(f.len(), 2);
}

#[test]
fn fixed_mode() {
    let mut d = FrameDecoder::with_mode(FramingMode::NonTransparent, 100);
    d.push(b"12 not counted\n");
    assert_eq!(d.next_frame(), Some(Ok(b"12 not counted".to_vec())));
    assert_eq!(d.buffered(), 0);
}
