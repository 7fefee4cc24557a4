//! HTTP/1.1 towards upstreams as bytes only: the request head written from a header map, the response head
//! parsed (by `httparse`, as hyper does) into a header map with its body framing (RFC 9112 §6.3), and the
//! chunked transfer coding decoded. No I/O here, so it is fuzzed and property-tested alone.

use bytes::{Buf, Bytes, BytesMut};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};
use std::mem::MaybeUninit;

/// Most header fields accepted in a response head (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Largest response head accepted, and largest chunk-size or trailer line.
pub const MAX_HEAD: usize = 64 * 1024;

/// Why bytes from an upstream could not be read as HTTP/1.1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The head did not end within [`MAX_HEAD`] bytes.
    #[error("response head larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// `httparse` refused the head.
    #[error("malformed response head: {0}")]
    Head(httparse::Error),
    /// A header name or value `http` refuses.
    #[error("invalid header field in the response")]
    Field,
    /// `Content-Length` missing a number or given twice with different values.
    #[error("invalid or conflicting Content-Length in the response")]
    ContentLength,
    /// `101 Switching Protocols` to a request that did not ask for it.
    #[error("unexpected 101 Switching Protocols")]
    Unexpected101,
    /// A chunk size, a chunk's end or a trailer that is not HTTP/1.1.
    #[error("malformed chunked body")]
    Chunk,
    /// The request target has bytes a request line cannot carry.
    #[error("the request target is not a valid path")]
    Target,
}

/// Where a request goes on the upstream: the upstream's base path, the request's path, its query.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    /// The upstream URL's path without its trailing `/` (often empty).
    pub base: &'a str,
    /// The request's path (starts with `/`).
    pub path: &'a str,
    /// The query, without `?`.
    pub query: Option<&'a str>,
}

impl Target<'_> {
    /// True when every byte may appear in a request line's origin-form target (visible ASCII, no `#`).
    pub fn is_valid(&self) -> bool {
        let ok = |s: &str| s.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'#');
        ok(self.base) && ok(self.path) && self.query.is_none_or(ok)
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.base.as_bytes());
        out.extend_from_slice(self.path.as_bytes());
        if let Some(q) = self.query {
            out.push(b'?');
            out.extend_from_slice(q.as_bytes());
        }
    }

    /// The origin-form target as a string (for HTTP/2 and upgrades, which go through hyper).
    pub fn to_path_and_query(&self) -> String {
        let mut v = Vec::with_capacity(self.base.len() + self.path.len() + 64);
        self.write(&mut v);
        String::from_utf8_lossy(&v).into_owned()
    }
}

/// How the request body goes on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestBody {
    /// None (and no framing header added).
    Empty,
    /// As is: the headers carry its `Content-Length`.
    Length,
    /// Chunked: `Transfer-Encoding: chunked` is added.
    Chunked,
}

/// Appends the request head: request line, `Host`, `fields` as given (which must hold no `Host` and no
/// hop-by-hop field), the framing header for `body`, the empty line.
pub fn encode_request<'a>(
    out: &mut Vec<u8>,
    method: &Method,
    target: &Target<'_>,
    host: &HeaderValue,
    fields: impl Iterator<Item = (&'a HeaderName, &'a HeaderValue)>,
    body: RequestBody,
) -> Result<(), CodecError> {
    if !target.is_valid() {
        return Err(CodecError::Target);
    }
    out.reserve(512 + target.path.len());
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    target.write(out);
    out.extend_from_slice(b" HTTP/1.1\r\nhost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in fields {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if body == RequestBody::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Appends one chunk of a chunked request body (nothing for an empty `data`: that would end the body).
pub fn encode_chunk_head(out: &mut Vec<u8>, len: usize) {
    if len > 0 {
        out.extend_from_slice(format!("{len:x}\r\n").as_bytes());
    }
}

/// The end of a chunked body: the last chunk and an empty trailer section.
pub const CHUNKED_END: &[u8] = b"0\r\n\r\n";

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304).
    None,
    /// `Content-Length` bytes.
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the upstream closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug)]
pub struct Head {
    /// Status code.
    pub status: StatusCode,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// The header fields, as sent (hop-by-hop ones included).
    pub headers: HeaderMap,
    /// How the body is delimited.
    pub framing: Framing,
    /// Whether the connection may carry another request once this body is read.
    pub keep_alive: bool,
}

/// Parses the response head at the start of `buf` for a request made with `method`, skipping interim (1xx)
/// responses. `Ok(None)`: more bytes are needed. The head's bytes are taken off `buf`; the body's stay.
pub fn parse_response(buf: &mut BytesMut, method: &Method) -> Result<Option<Head>, CodecError> {
    loop {
        if buf.is_empty() {
            return Ok(None);
        }
        // Uninitialised slots: nothing is written for the headers a response does not have.
        let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut res = httparse::Response::new(&mut []);
        let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
            &mut res,
            buf,
            &mut fields,
        ) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > MAX_HEAD {
                    Err(CodecError::HeadTooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(CodecError::Head(e)),
        };
        let code = res.code.unwrap_or(0);
        let status =
            StatusCode::from_u16(code).map_err(|_| CodecError::Head(httparse::Error::Status))?;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            return Err(CodecError::Unexpected101);
        }
        if status.is_informational() {
            buf.advance(len);
            continue;
        }
        let version = if res.version == Some(0) {
            Version::HTTP_10
        } else {
            Version::HTTP_11
        };
        // Where each name and value sits in the head (it is under MAX_HEAD, so u32 holds it), so the values can
        // share the head's buffer once it is split off.
        let base = buf.as_ptr() as usize;
        let mut spans = [(0u32, 0u32, 0u32, 0u32); MAX_HEADERS];
        let n = res.headers.len();
        for (s, h) in spans.iter_mut().zip(res.headers.iter()) {
            let at = |p: *const u8| (p as usize - base) as u32;
            *s = (
                at(h.name.as_ptr()),
                h.name.len() as u32,
                at(h.value.as_ptr()),
                h.value.len() as u32,
            );
        }
        let head = buf.split_to(len).freeze();
        let mut headers = HeaderMap::with_capacity(n);
        for &(name, name_len, value, value_len) in &spans[..n] {
            let (name, value) = (name as usize, value as usize);
            let k = HeaderName::from_bytes(&head[name..name + name_len as usize])
                .map_err(|_| CodecError::Field)?;
            let v = HeaderValue::from_maybe_shared(head.slice(value..value + value_len as usize))
                .map_err(|_| CodecError::Field)?;
            headers.append(k, v);
        }
        let (framing, keep_alive) = framing(method, status, version, &mut headers)?;
        return Ok(Some(Head {
            status,
            version,
            headers,
            framing,
            keep_alive,
        }));
    }
}

/// RFC 9112 §6.3: how the body is delimited, and whether the connection stays open after it.
fn framing(
    method: &Method,
    status: StatusCode,
    version: Version,
    headers: &mut HeaderMap,
) -> Result<(Framing, bool), CodecError> {
    let mut keep_alive = version == Version::HTTP_11;
    for v in headers.get_all(header::CONNECTION) {
        for t in v.to_str().unwrap_or("").split(',') {
            let t = t.trim();
            if t.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if t.eq_ignore_ascii_case("keep-alive") && version == Version::HTTP_10 {
                keep_alive = true;
            }
        }
    }
    if *method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok((Framing::None, keep_alive));
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        // Transfer-Encoding wins over Content-Length, and such a message must not be followed by another.
        let chunked_last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .next_back()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"));
        if headers.remove(header::CONTENT_LENGTH).is_some() {
            keep_alive = false;
        }
        return Ok(if chunked_last && version == Version::HTTP_11 {
            (Framing::Chunked, keep_alive)
        } else {
            (Framing::UntilClose, false)
        });
    }
    let mut length: Option<u64> = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        for t in v
            .to_str()
            .map_err(|_| CodecError::ContentLength)?
            .split(',')
        {
            let t = t.trim();
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(CodecError::ContentLength);
            }
            let n: u64 = t.parse().map_err(|_| CodecError::ContentLength)?;
            if length.is_some_and(|l| l != n) {
                return Err(CodecError::ContentLength);
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(n) => (Framing::Length(n), keep_alive),
        None => (Framing::UntilClose, false),
    })
}

/// Decodes the chunked transfer coding incrementally; trailer fields are read and dropped.
#[derive(Debug, Default)]
pub struct Chunked {
    state: ChunkState,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// Inside the trailer section.
    Trailers,
    /// The body has ended.
    Done,
}

impl Chunked {
    /// True once the last chunk and the trailer section were read.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// The next piece of body data in `buf` (taken off it), `Ok(None)` when `buf` holds no more (more bytes are
    /// needed, or the body ended: see [`Chunked::is_done`]).
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, CodecError> {
        loop {
            match self.state {
                ChunkState::Done => return Ok(None),
                ChunkState::Size => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((n, size))) => {
                        buf.advance(n);
                        self.state = if size == 0 {
                            ChunkState::Trailers
                        } else {
                            ChunkState::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) => {
                        return if buf.len() > MAX_HEAD {
                            Err(CodecError::Chunk)
                        } else {
                            Ok(None)
                        };
                    }
                    Err(_) => return Err(CodecError::Chunk),
                },
                ChunkState::Data(left) => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
                    let left = left - take as u64;
                    self.state = if left == 0 {
                        ChunkState::DataEnd
                    } else {
                        ChunkState::Data(left)
                    };
                    return Ok(Some(buf.split_to(take).freeze()));
                }
                ChunkState::DataEnd => {
                    if buf.len() < 2 {
                        return if buf.first().is_some_and(|&b| b != b'\r') {
                            Err(CodecError::Chunk)
                        } else {
                            Ok(None)
                        };
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(CodecError::Chunk);
                    }
                    buf.advance(2);
                    self.state = ChunkState::Size;
                }
                ChunkState::Trailers => {
                    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
                        return if buf.len() > MAX_HEAD {
                            Err(CodecError::Chunk)
                        } else {
                            Ok(None)
                        };
                    };
                    buf.advance(end + 2);
                    if end == 0 {
                        self.state = ChunkState::Done;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn head(bytes: &[u8], method: &Method) -> Result<Option<Head>, CodecError> {
        parse_response(&mut BytesMut::from(bytes), method)
    }

    #[test]
    fn request_head() {
        let mut h = HeaderMap::new();
        h.insert("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        let mut out = Vec::new();
        let t = Target {
            base: "/base",
            path: "/p",
            query: Some("q=1"),
        };
        encode_request(
            &mut out,
            &Method::POST,
            &t,
            &HeaderValue::from_static("up:80"),
            h.iter(),
            RequestBody::Chunked,
        )
        .unwrap();
        assert_eq!(
            out,
            b"POST /base/p?q=1 HTTP/1.1\r\nhost: up:80\r\nx-a: 1\r\nx-a: 2\r\ntransfer-encoding: chunked\r\n\r\n"
        );
        let bad = Target {
            base: "",
            path: "/a b",
            query: None,
        };
        assert_eq!(
            encode_request(
                &mut out,
                &Method::GET,
                &bad,
                &HeaderValue::from_static("h"),
                h.iter(),
                RequestBody::Empty
            ),
            Err(CodecError::Target)
        );
    }

    #[test]
    fn framings() {
        let get = Method::GET;
        let r = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello", &get)
            .unwrap()
            .unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::Length(5), true));
        let r = head(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\ncontent-length: 5\r\n\r\n",
            &get,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::Chunked, false));
        assert!(!r.headers.contains_key(header::CONTENT_LENGTH));
        let r = head(b"HTTP/1.1 200 OK\r\n\r\n", &get).unwrap().unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::UntilClose, false));
        let r = head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            &Method::HEAD,
        )
        .unwrap()
        .unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::None, true));
        let r = head(
            b"HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            &get,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing, Framing::None);
        let r = head(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", &get)
            .unwrap()
            .unwrap();
        assert_eq!((r.framing, r.keep_alive), (Framing::Length(1), false));
        let r = head(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\ncontent-length: 1\r\n\r\n",
            &get,
        )
        .unwrap()
        .unwrap();
        assert!(r.keep_alive);
        let r = head(
            b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 1\r\n\r\n",
            &get,
        )
        .unwrap()
        .unwrap();
        assert!(!r.keep_alive);
        let r = head(
            b"HTTP/1.1 200 OK\r\ncontent-length: 7, 7\r\ncontent-length: 7\r\n\r\n",
            &get,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing, Framing::Length(7));
        for bad in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 7\r\ncontent-length: 8\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: +1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999999999999999\r\n\r\n",
        ] {
            assert_eq!(head(bad, &get).unwrap_err(), CodecError::ContentLength);
        }
    }

    #[test]
    fn interim_responses_are_skipped_and_partial_heads_wait() {
        let mut b = BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 0\r\nx: y\r\n\r\nrest"[..]);
        let h = parse_response(&mut b, &Method::POST).unwrap().unwrap();
        assert_eq!(h.status, StatusCode::CREATED);
        assert_eq!(h.headers["x"], "y");
        assert_eq!(&b[..], b"rest");
        assert!(head(b"HTTP/1.1 200 OK\r\ncontent-le", &Method::GET)
            .unwrap()
            .is_none());
        assert_eq!(
            head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", &Method::GET).unwrap_err(),
            CodecError::Unexpected101
        );
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.extend(std::iter::repeat_n(b'a', MAX_HEAD + 1));
        assert_eq!(
            head(&big, &Method::GET).unwrap_err(),
            CodecError::HeadTooLarge
        );
        assert!(matches!(
            head(b"HTTX/1.1 200 OK\r\n\r\n", &Method::GET),
            Err(CodecError::Head(_))
        ));
    }

    fn decode_all(input: &[u8], cuts: &[usize]) -> Result<(Vec<u8>, bool), CodecError> {
        let mut d = Chunked::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.clamp(at, input.len());
            buf.extend_from_slice(&input[at..c]);
            at = c;
            while let Some(b) = d.decode(&mut buf)? {
                out.extend_from_slice(&b);
            }
        }
        Ok((out, d.is_done()))
    }

    #[test]
    fn chunked_with_extensions_and_trailers() {
        let body = b"5;ext=1\r\nhello\r\n1\r\n \r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        let (out, done) = decode_all(body, &[1, 3, 9, 10, 20]).unwrap();
        assert_eq!(out, b"hello ");
        assert!(done);
        assert_eq!(
            decode_all(b"5\r\nhelloXX", &[]).unwrap_err(),
            CodecError::Chunk
        );
        assert_eq!(decode_all(b"zz\r\n", &[]).unwrap_err(), CodecError::Chunk);
        assert!(!decode_all(b"5\r\nhel", &[]).unwrap().1);
    }

    proptest! {
        #[test]
        fn chunked_round_trip(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..8),
                              cuts in proptest::collection::vec(0usize..3000, 0..10)) {
            let mut wire = Vec::new();
            for c in &chunks {
                encode_chunk_head(&mut wire, c.len());
                wire.extend_from_slice(c);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(CHUNKED_END);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let (out, done) = decode_all(&wire, &cuts).unwrap();
            prop_assert_eq!(out, chunks.concat());
            prop_assert!(done);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in 0usize..600) {
            let _ = decode_all(&bytes, &[cut]);
            let _ = head(&bytes, &Method::GET);
            let mut framed = b"HTTP/1.1 200 OK\r\n".to_vec();
            framed.extend_from_slice(&bytes);
            let _ = head(&framed, &Method::GET);
        }
    }
}
