//! One HTTP/1.1 connection to an upstream, driven by the request that uses it: the request head is written from
//! the client's (edited) header map in one write, the response head read and parsed on the same task, and the
//! body handed on as it arrives. No connection task, no channel between tasks.

use super::codec::{self, Chunked, CodecError, Framing, Head, RequestBody, Target};
use crate::upstream::{Body, BoxError};
use bytes::{Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::io;
use std::pin::Pin;
use std::sync::Weak;
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Room kept free in the read buffer before a read.
const READ_SPARE: usize = 8 * 1024;

/// Why an exchange on a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum H1Error {
    /// Writing the request head failed: the upstream had closed or reset the connection before it, so it never
    /// saw the request, which may go again on another connection.
    #[error("connection lost before the request was written: {0}")]
    Unwritten(io::Error),
    /// The connection closed or failed after the request was written and before any byte of the response came
    /// back (an idle connection the upstream closed just then, or a request it dropped): only a request that may
    /// be repeated (idempotent, no body) goes again.
    #[error("connection lost before the response: {0}")]
    Stale(io::Error),
    /// Passing the request body on failed (and no early answer from the upstream was there to read).
    #[error("writing the request body: {0}")]
    Write(io::Error),
    /// Reading the response failed, or the upstream closed the connection in the middle of it.
    #[error("reading the response: {0}")]
    Read(io::Error),
    /// The upstream's bytes are not HTTP/1.1.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The client's request body failed while it was passed on.
    #[error("request body: {0}")]
    Body(BoxError),
}

/// The byte stream: TCP, or TLS over TCP.
pub enum Io {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS.
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An HTTP/1.1 connection with its buffers.
pub struct Conn {
    io: Io,
    rbuf: BytesMut,
    wbuf: Vec<u8>,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("h1::Conn")
    }
}

/// What a request sends: method, target, `Host` and the other header fields (no `Host`, no hop-by-hop ones).
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The method.
    pub method: &'a Method,
    /// Where on the upstream.
    pub target: Target<'a>,
    /// The `Host` header's value.
    pub host: &'a HeaderValue,
    /// The client's header fields, edited.
    pub headers: &'a HeaderMap,
    /// Fields the gate adds (forwarding, identity), written after `headers`.
    pub added: &'a [(HeaderName, HeaderValue)],
}

impl Conn {
    /// A connection over `io`.
    pub fn new(io: Io) -> Self {
        Self {
            io,
            rbuf: BytesMut::with_capacity(16 * 1024),
            wbuf: Vec::with_capacity(1024),
        }
    }

    /// Whether an idle connection can carry a request: nothing arrived on it since its last response (no end of
    /// stream, no stray bytes). Costs no system call when the runtime saw nothing arrive.
    pub fn idle_ok(&mut self) -> bool {
        if !self.rbuf.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(Waker::noop());
        let mut probe = [0u8; 1];
        let mut b = ReadBuf::new(&mut probe);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut b),
            Poll::Pending
        )
    }

    /// Sends the request (with `body`, if any, streamed) and reads the response head; the body stays in the
    /// connection for [`Conn::into_body`].
    pub async fn exchange(
        &mut self,
        out: &Outgoing<'_>,
        body: Option<Body>,
    ) -> Result<Head, H1Error> {
        let framing = match &body {
            None => RequestBody::Empty,
            Some(_) if out.headers.contains_key(http::header::CONTENT_LENGTH) => {
                RequestBody::Length
            }
            Some(_) => RequestBody::Chunked,
        };
        self.wbuf.clear();
        codec::encode_request(
            &mut self.wbuf,
            out.method,
            &out.target,
            out.host,
            out.headers
                .iter()
                .chain(out.added.iter().map(|(k, v)| (k, v))),
            framing,
        )?;
        self.io
            .write_all(&self.wbuf)
            .await
            .map_err(H1Error::Unwritten)?;
        if let Some(mut b) = body {
            let sent = match self.send_body(&mut b, framing).await {
                Ok(()) => self.io.flush().await.map_err(H1Error::Write),
                Err(e) => Err(e),
            };
            if let Err(e) = sent {
                // An upstream may answer early (413, 401) and close without reading the whole body; its answer
                // is still readable after the failed write, and is what the client should get.
                if let H1Error::Write(_) = e {
                    if let Ok(mut head) = self.read_head(out.method).await {
                        head.keep_alive = false;
                        return Ok(head);
                    }
                }
                return Err(e);
            }
        } else {
            self.io.flush().await.map_err(H1Error::Stale)?;
        }
        self.read_head(out.method).await
    }

    /// Reads and parses the response head (interim 1xx answers skipped).
    async fn read_head(&mut self, method: &Method) -> Result<Head, H1Error> {
        loop {
            if let Some(head) = codec::parse_response(&mut self.rbuf, method)? {
                return Ok(head);
            }
            let empty = self.rbuf.is_empty();
            match self.fill().await {
                Ok(0) if empty => {
                    return Err(H1Error::Stale(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed by the upstream",
                    )))
                }
                Ok(0) => {
                    return Err(H1Error::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed in the middle of the response head",
                    )))
                }
                Ok(_) => {}
                Err(e) if empty => return Err(H1Error::Stale(e)),
                Err(e) => return Err(H1Error::Read(e)),
            }
        }
    }

    async fn send_body(&mut self, b: &mut Body, framing: RequestBody) -> Result<(), H1Error> {
        while let Some(f) = b.frame().await {
            let Ok(data) = f.map_err(H1Error::Body)?.into_data() else {
                continue; // trailers are not passed on
            };
            if data.is_empty() {
                continue;
            }
            if framing == RequestBody::Chunked {
                self.wbuf.clear();
                codec::encode_chunk_head(&mut self.wbuf, data.len());
                self.io
                    .write_all(&self.wbuf)
                    .await
                    .map_err(H1Error::Write)?;
                self.io.write_all(&data).await.map_err(H1Error::Write)?;
                self.io.write_all(b"\r\n").await.map_err(H1Error::Write)?;
            } else {
                self.io.write_all(&data).await.map_err(H1Error::Write)?;
            }
        }
        if framing == RequestBody::Chunked {
            self.io
                .write_all(codec::CHUNKED_END)
                .await
                .map_err(H1Error::Write)?;
        }
        Ok(())
    }

    async fn fill(&mut self) -> io::Result<usize> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.rbuf.capacity() - self.rbuf.len() < READ_SPARE {
            self.rbuf.reserve(2 * READ_SPARE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.io), cx, &mut self.rbuf)
    }

    /// Reads a body of `n` bytes whole (a small one, sent on in one piece); the connection is then ready for
    /// another request if `keep_alive` and nothing else came.
    pub async fn read_exact(&mut self, n: usize) -> Result<Bytes, H1Error> {
        while self.rbuf.len() < n {
            match self.fill().await {
                Ok(0) => {
                    return Err(H1Error::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "closed in the middle of the response body",
                    )))
                }
                Ok(_) => {}
                Err(e) => return Err(H1Error::Read(e)),
            }
        }
        Ok(self.rbuf.split_to(n).freeze())
    }

    /// True when nothing beyond the response was received (so the connection can be reused).
    pub fn clean(&self) -> bool {
        self.rbuf.is_empty()
    }

    /// The response body, read from this connection as it is polled; at its end the connection goes to `home`
    /// (when `keep_alive`), else it is closed.
    pub fn into_body(
        self,
        framing: Framing,
        keep_alive: bool,
        home: Weak<dyn Home>,
    ) -> ResponseBody {
        let state = match framing {
            Framing::None | Framing::Length(0) => State::Length(0),
            Framing::Length(n) => State::Length(n),
            Framing::Chunked => State::Chunked(Chunked::default()),
            Framing::UntilClose => State::UntilClose,
        };
        let mut b = ResponseBody {
            conn: Some(self),
            state,
            keep_alive: keep_alive && framing != Framing::UntilClose,
            home,
        };
        if matches!(b.state, State::Length(0)) {
            b.finish();
        }
        b
    }
}

/// Where a connection goes back once its response is read.
pub trait Home: Send + Sync {
    /// Takes back a connection ready for another request.
    fn put(&self, c: Conn);
}

enum State {
    Length(u64),
    Chunked(Chunked),
    UntilClose,
}

/// A response body read from its connection as it is polled.
pub struct ResponseBody {
    conn: Option<Conn>,
    state: State,
    keep_alive: bool,
    home: Weak<dyn Home>,
}

impl ResponseBody {
    fn finish(&mut self) {
        if let Some(c) = self.conn.take() {
            if self.keep_alive && c.clean() {
                if let Some(h) = self.home.upgrade() {
                    h.put(c);
                }
            }
        }
    }
}

fn eof(what: &str) -> BoxError {
    Box::new(io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("upstream closed the connection {what}"),
    ))
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // What the bytes already read give.
            match &mut this.state {
                State::Length(0) => {
                    this.finish();
                    return Poll::Ready(None);
                }
                State::Length(left) if !conn.rbuf.is_empty() => {
                    let n = usize::try_from(*left)
                        .unwrap_or(usize::MAX)
                        .min(conn.rbuf.len());
                    *left -= n as u64;
                    let data = conn.rbuf.split_to(n).freeze();
                    if *left == 0 {
                        this.finish();
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Length(_) => {}
                State::Chunked(d) => match d.decode(&mut conn.rbuf) {
                    Ok(Some(data)) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                    Ok(None) if d.is_done() => {
                        this.finish();
                        return Poll::Ready(None);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        this.conn = None;
                        return Poll::Ready(Some(Err(Box::new(e))));
                    }
                },
                State::UntilClose if !conn.rbuf.is_empty() => {
                    let data = conn.rbuf.split().freeze();
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::UntilClose => {}
            }
            // More bytes are needed.
            match std::task::ready!(conn.poll_fill(cx)) {
                Ok(0) => {
                    this.conn = None;
                    return Poll::Ready(match this.state {
                        State::UntilClose => None,
                        _ => Some(Err(eof("in the middle of the body"))),
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    this.conn = None;
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.conn.is_none() || matches!(self.state, State::Length(0))
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            _ => SizeHint::default(),
        }
    }
}
