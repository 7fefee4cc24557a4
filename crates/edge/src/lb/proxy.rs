//! The data path: PROXY protocol headers (v1 text, v2 binary) and the bidirectional copy between client and
//! backend, an idle timeout and byte counters.
//!
//! The copy reads into one scratch buffer per worker thread and writes it out at once; only bytes the other
//! side cannot take yet are kept, in a buffer of the connection that is freed as soon as it drains. An idle
//! connection therefore holds no buffer at all (haproxy's trick), and a busy one at most `buf_size` per
//! direction, which is also the back-pressure bound: nothing more is read while bytes wait.

use std::cell::RefCell;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;

use super::config::ProxyProtocol;

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

/// What one read-and-forward step did.
enum Step {
    /// Forwarded `n` bytes (some may wait in the spill buffer).
    Moved(usize),
    /// The reader reached end of stream.
    Eof,
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

async fn pump(
    mut r: ReadHalf<'_>,
    mut w: WriteHalf<'_>,
    buf_size: usize,
    count: &Counter,
    last: &AtomicU64,
    epoch: Instant,
) -> io::Result<()> {
    let mut spill: Vec<u8> = Vec::new();
    loop {
        // Bytes waiting for the writer go first; nothing more is read meanwhile (back-pressure).
        if !spill.is_empty() {
            w.write_all(&spill).await?;
            spill = Vec::new();
        }
        match std::future::poll_fn(|cx| poll_step(cx, &mut r, &mut w, buf_size, &mut spill)).await?
        {
            Step::Moved(n) => {
                count.inc_by(n as u64);
                last.store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
            }
            Step::Eof => {
                // Half-close: pass the FIN on, keep the other direction open.
                let _ = w.shutdown().await;
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

/// Copies both ways until both sides closed, an error, or `idle` without bytes.
pub async fn splice_streams(
    mut client: TcpStream,
    mut backend: TcpStream,
    buf_size: usize,
    idle: Duration,
    counters: &ByteCounters,
) -> End {
    let epoch = Instant::now();
    let last = AtomicU64::new(0);
    let (cr, cw) = client.split();
    let (br, bw) = backend.split();
    let both = async {
        tokio::try_join!(
            pump(cr, bw, buf_size, &counters.to_backend, &last, epoch),
            pump(br, cw, buf_size, &counters.to_client, &last, epoch),
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
mod tests {
    use super::*;

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
