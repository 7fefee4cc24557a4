//! The data path: PROXY protocol headers (v1 text, v2 binary) and the bidirectional copy between client and
//! backend, an idle timeout and byte counters.
//!
//! The copy reads into one scratch buffer per worker thread and writes it out at once; only bytes the other
//! side cannot take yet are kept, in a buffer of the connection that is freed as soon as it drains. An idle
//! connection therefore holds no buffer at all (haproxy's trick), and a busy one at most `buf_size` per
//! direction, which is also the back-pressure bound: nothing more is read while bytes wait.
//!
//! With listener `splice = "auto"` (once a read fills the whole buffer, that direction splices from then on)
//! or `"always"`, bytes go socket → pipe → socket with `splice(2)`: page references rather than two copies
//! through user space (off by default: less CPU, but longer latency as measured, see [`Splice`]). The pipe comes from the worker's pool ([`super::pipe`]) and is held only
//! while bytes wait in it — at most `max(buf_size, 64 KiB)` per direction; nothing more is read meanwhile.
//! Partial writes and `EAGAIN` on either side go through tokio's readiness (`try_io`), like the copy.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, Interest, ReadBuf};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::config::{ProxyProtocol, Splice};
use super::pipe::Pipe;

fn canon(a: SocketAddr) -> SocketAddr {
    SocketAddr::new(a.ip().to_canonical(), a.port())
}

/// The PROXY protocol header (v1 or v2) for a connection from `src` to `dst`; empty for `None`. Mixed
/// families (an IPv4 client on an IPv6 socket) are sent as IPv4 when both are IPv4-mapped, else as IPv6.
pub fn proxy_header(kind: ProxyProtocol, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (src, dst) = match (canon(src), canon(dst)) {
        (s @ SocketAddr::V4(_), d @ SocketAddr::V4(_)) => (s, d),
        _ => (
            SocketAddr::new(IpAddr::V6(v6(src.ip())), src.port()),
            SocketAddr::new(IpAddr::V6(v6(dst.ip())), dst.port()),
        ),
    };
    match kind {
        ProxyProtocol::None => Vec::new(),
        ProxyProtocol::V1 => {
            let fam = if src.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                src.ip(),
                dst.ip(),
                src.port(),
                dst.port()
            )
            .into_bytes()
        }
        ProxyProtocol::V2 => {
            let mut h = Vec::with_capacity(52);
            h.extend_from_slice(b"\r\n\r\n\0\r\nQUIT\n");
            h.push(0x21); // version 2, PROXY
            match (src, dst) {
                (SocketAddr::V4(s), SocketAddr::V4(d)) => {
                    h.push(0x11);
                    h.extend_from_slice(&12u16.to_be_bytes());
                    h.extend_from_slice(&s.ip().octets());
                    h.extend_from_slice(&d.ip().octets());
                }
                _ => {
                    h.push(0x21);
                    h.extend_from_slice(&36u16.to_be_bytes());
                    h.extend_from_slice(&v6(src.ip()).octets());
                    h.extend_from_slice(&v6(dst.ip()).octets());
                }
            }
            h.extend_from_slice(&src.port().to_be_bytes());
            h.extend_from_slice(&dst.port().to_be_bytes());
            h
        }
    }
}

fn v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

/// Counters a connection updates as bytes flow.
#[derive(Debug, Clone)]
pub struct ByteCounters {
    /// Client → backend.
    pub to_backend: Counter,
    /// Backend → client.
    pub to_client: Counter,
}

/// The largest buffer a listener may configure (`buffer_size`), and so the scratch buffer's size.
const SCRATCH: usize = 1 << 20;

thread_local! {
    static SCRATCH_BUF: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The least a spliced read asks for (one default pipe): bytes waiting in the pipe stay below
/// `max(buf_size, SPLICE_MIN)`.
const SPLICE_MIN: usize = 64 * 1024;

/// What one read-and-forward step did.
enum Step {
    /// Forwarded `n` bytes (some may wait in the spill buffer or the pipe).
    Moved(usize),
    /// The reader reached end of stream.
    Eof,
    /// No pipe to be had (out of descriptors): copy this step instead.
    NoPipe,
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

/// Splices what `r` has (up to `len`) into a pipe and as much of it as `w` takes at once on to `w`; what `w`
/// does not take stays in the pipe, kept in `slot` with its byte count in `pending`. While waiting for `r`
/// no pipe is held.
fn poll_splice_step(
    cx: &mut Context<'_>,
    r: &TcpStream,
    w: &TcpStream,
    len: usize,
    slot: &mut Option<Pipe>,
    pending: &mut usize,
) -> Poll<io::Result<Step>> {
    loop {
        match r.poll_read_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let Some(pipe) = slot.take().or_else(Pipe::take) else {
            return Poll::Ready(Ok(Step::NoPipe));
        };
        match r.try_io(Interest::READABLE, || pipe.fill_from(r, len)) {
            Ok(0) => {
                pipe.give();
                return Poll::Ready(Ok(Step::Eof));
            }
            Ok(n) => {
                *pending = n;
                match w.try_io(Interest::WRITABLE, || pipe.drain_to(w, n)) {
                    Ok(m) => *pending -= m.min(n),
                    Err(e) if would_block(&e) => {}
                    Err(e) => return Poll::Ready(Err(e)),
                }
                if *pending == 0 {
                    pipe.give();
                } else {
                    *slot = Some(pipe);
                }
                return Poll::Ready(Ok(Step::Moved(n)));
            }
            // Readiness is cleared: the next poll_read_ready waits for the socket.
            Err(e) if would_block(&e) => pipe.give(),
            Err(e) => {
                pipe.give(); // nothing was moved into it
                return Poll::Ready(Err(e));
            }
        }
    }
}

/// Writes the `pending` bytes of the pipe in `slot` to `w`, then gives the pipe back to the pool.
fn poll_drain(
    cx: &mut Context<'_>,
    w: &TcpStream,
    slot: &mut Option<Pipe>,
    pending: &mut usize,
) -> Poll<io::Result<()>> {
    while *pending > 0 {
        let Some(pipe) = slot.as_ref() else {
            *pending = 0;
            break;
        };
        match w.poll_write_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        match w.try_io(Interest::WRITABLE, || pipe.drain_to(w, *pending)) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(m) => *pending -= m.min(*pending),
            Err(e) if would_block(&e) => {}
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    if let Some(p) = slot.take() {
        p.give();
    }
    Poll::Ready(Ok(()))
}

/// Polls one read from `r` into this thread's scratch buffer and, when bytes came, one write of them to `w`;
/// what `w` does not take at once is appended to `spill`. Reading through tokio's `poll_read` (rather than
/// `try_read`) keeps its "short read clears readiness" shortcut: no extra `EAGAIN` read per message.
fn poll_step(
    cx: &mut Context<'_>,
    r: &mut ReadHalf<'_>,
    w: &mut WriteHalf<'_>,
    cap: usize,
    spill: &mut Vec<u8>,
) -> Poll<io::Result<Step>> {
    SCRATCH_BUF.with(|b| {
        let mut b = b.borrow_mut();
        let cap = cap.clamp(1, SCRATCH);
        if b.len() < cap {
            b.resize(cap, 0);
        }
        let mut rb = ReadBuf::new(&mut b[..cap]);
        match Pin::new(&mut *r).poll_read(cx, &mut rb) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let n = rb.filled().len();
        if n == 0 {
            return Poll::Ready(Ok(Step::Eof));
        }
        let written = match Pin::new(&mut *w).poll_write(cx, &b[..n]) {
            Poll::Ready(Ok(m)) => m,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => 0,
        };
        if written < n {
            spill.extend_from_slice(&b[written..n]);
        }
        Poll::Ready(Ok(Step::Moved(n)))
    })
}

/// One direction of a connection, until end of stream (passed on as a half-close) or an error.
/// `finished` is shared by both directions: the second to end skips `shutdown(2)`, the sockets' close right
/// after sends the FIN.
struct Direction<'a> {
    buf_size: usize,
    splice: Splice,
    count: &'a Counter,
    last: &'a AtomicU64,
    epoch: Instant,
    finished: &'a AtomicBool,
}

async fn pump(mut r: ReadHalf<'_>, mut w: WriteHalf<'_>, d: Direction<'_>) -> io::Result<()> {
    let buf_size = d.buf_size;
    let mut spill: Vec<u8> = Vec::new();
    let mut splicing = d.splice == Splice::Always;
    let splice_len = buf_size.max(SPLICE_MIN);
    let mut pipe: Option<Pipe> = None;
    let mut pending = 0usize;
    loop {
        // Bytes waiting for the writer go first; nothing more is read meanwhile (back-pressure).
        if !spill.is_empty() {
            w.write_all(&spill).await?;
            spill = Vec::new();
        }
        if pending > 0 {
            let w = w.as_ref();
            std::future::poll_fn(|cx| poll_drain(cx, w, &mut pipe, &mut pending)).await?;
        }
        let mut step = if splicing {
            let (rs, ws) = (r.as_ref(), w.as_ref());
            std::future::poll_fn(|cx| {
                poll_splice_step(cx, rs, ws, splice_len, &mut pipe, &mut pending)
            })
            .await?
        } else {
            Step::NoPipe
        };
        if matches!(step, Step::NoPipe) {
            step = std::future::poll_fn(|cx| poll_step(cx, &mut r, &mut w, buf_size, &mut spill))
                .await?;
        }
        match step {
            Step::Moved(n) => {
                // A full buffer: a bulk transfer, splice it from now on.
                if n >= buf_size && d.splice == Splice::Auto {
                    splicing = true;
                }
                d.count.inc_by(n as u64);
                d.last
                    .store(d.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            Step::Eof | Step::NoPipe => {
                // Half-close: pass the FIN on, keep the other direction open.
                if !d.finished.swap(true, Ordering::AcqRel) {
                    let _ = w.shutdown().await;
                }
                return Ok(());
            }
        }
    }
}

/// How a proxied connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// Both sides closed.
    Closed,
    /// No bytes either way for the idle timeout.
    Idle,
    /// A socket error (reset, …).
    Error,
}

/// Copies (or splices, see [`Splice`]) both ways until both sides closed, an error, or `idle` without bytes.
pub async fn splice_streams(
    mut client: TcpStream,
    mut backend: TcpStream,
    buf_size: usize,
    splice: Splice,
    idle: Duration,
    counters: &ByteCounters,
) -> End {
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let finished = AtomicBool::new(false);
    let (cr, cw) = client.split();
    let (br, bw) = backend.split();
    let dir = |count| Direction {
        buf_size,
        splice,
        count,
        last: &last,
        epoch,
        finished: &finished,
    };
    let both = async {
        tokio::try_join!(
            pump(cr, bw, dir(&counters.to_backend)),
            pump(br, cw, dir(&counters.to_client)),
        )
    };
    let watchdog = async {
        loop {
            let since = Duration::from_millis(last.load(Ordering::Relaxed));
            let deadline = since + idle;
            let now = epoch.elapsed();
            if now >= deadline {
                return;
            }
            tokio::time::sleep(deadline - now).await;
        }
    };
    tokio::select! {
        r = both => if r.is_ok() { End::Closed } else { End::Error },
        () = watchdog => End::Idle,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Client → proxy → echoing backend → proxy → client with 4 MiB each way, so both proxy writes see
    /// partial writes and `EAGAIN`; the client half-closes and the proxy passes the FIN on both ways.
    async fn echo_through(splice: Splice) {
        let front = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let back = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (fa, ba) = (front.local_addr().unwrap(), back.local_addr().unwrap());
        let backend = tokio::spawn(async move {
            let (mut s, _) = back.accept().await.unwrap();
            let (mut r, mut w) = s.split();
            tokio::io::copy(&mut r, &mut w).await.unwrap();
            w.shutdown().await.unwrap();
        });
        let counters = ByteCounters {
            to_backend: Counter::default(),
            to_client: Counter::default(),
        };
        let c2 = counters.clone();
        let proxy = tokio::spawn(async move {
            let (client, _) = front.accept().await.unwrap();
            let backend = TcpStream::connect(ba).await.unwrap();
            splice_streams(client, backend, 1024, splice, Duration::from_secs(30), &c2).await
        });
        let data: Vec<u8> = (0..4u32 << 20).map(|i| (i % 251) as u8).collect();
        let mut c = TcpStream::connect(fa).await.unwrap();
        let (mut r, mut w) = c.split();
        let send = async {
            w.write_all(&data).await.unwrap();
            w.shutdown().await.unwrap();
        };
        let mut got = Vec::new();
        let recv = r.read_to_end(&mut got);
        let ((), n) = tokio::join!(send, recv);
        assert_eq!(n.unwrap(), data.len());
        assert!(got == data, "echoed bytes differ ({splice:?})");
        assert_eq!(proxy.await.unwrap(), End::Closed);
        backend.await.unwrap();
        assert_eq!(counters.to_backend.get(), data.len() as u64);
        assert_eq!(counters.to_client.get(), data.len() as u64);
    }

    #[tokio::test]
    async fn copy_echoes_with_half_close() {
        echo_through(Splice::Never).await;
    }

    #[tokio::test]
    async fn splice_echoes_with_half_close() {
        echo_through(Splice::Always).await;
    }

    #[tokio::test]
    async fn auto_switches_to_splice_mid_stream() {
        echo_through(Splice::Auto).await;
    }

    #[test]
    fn v1_header() {
        let h = proxy_header(
            ProxyProtocol::V1,
            "198.18.0.1:5000"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            "198.18.0.2:6443"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
        );
        assert_eq!(h, b"PROXY TCP4 198.18.0.1 198.18.0.2 5000 6443\r\n");
    }

    #[test]
    fn v2_header_mapped_v4() {
        let h = proxy_header(
            ProxyProtocol::V2,
            "[::ffff:198.18.0.1]:5000"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            "[::ffff:198.18.0.2]:6443"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
        );
        assert_eq!(h.len(), 16 + 12);
        assert_eq!(h[12], 0x21);
        assert_eq!(h[13], 0x11);
        assert_eq!(&h[16..20], &[198, 18, 0, 1]);
        assert_eq!(&h[26..28], &6443u16.to_be_bytes());
    }

    #[test]
    fn v2_header_v6() {
        let h = proxy_header(
            ProxyProtocol::V2,
            "[2001:db8::1]:1"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
            "[2001:db8::2]:2"
                .parse()
                .unwrap_or(SocketAddr::from(([0; 4], 0))),
        );
        assert_eq!(h.len(), 16 + 36);
        assert_eq!(h[13], 0x21);
    }
}
