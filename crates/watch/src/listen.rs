//! Sockets: UDP receive loops for sFlow, NetFlow/IPFIX and syslog, and the syslog TCP acceptor with RFC 6587
//! framing. Each loop only copies bytes into a bounded queue; when the queue is full the item is dropped and
//! counted (UDP), or the connection is paused so TCP flow control pushes back on the sender.

use crate::collect::FlowInput;
use crate::metrics::Metrics;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Semaphore};
use tokio_util::sync::CancellationToken;

/// One received flow datagram.
#[derive(Debug)]
pub struct FlowDatagram {
    /// Which listener.
    pub input: FlowInput,
    /// Source address.
    pub peer: IpAddr,
    /// Receive time, Unix ms.
    pub received_ms: i64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// Received syslog messages from one sender: a UDP datagram, or the frames of one TCP read (up to
/// [`MAX_BATCH_FRAMES`] / [`MAX_BATCH_BYTES`]), so the queues carry many messages per hop.
#[derive(Debug)]
pub struct SyslogItem {
    /// Source address.
    pub peer: IpAddr,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// Receive time, Unix ms.
    pub received_ms: i64,
    /// The messages' bytes, one after another.
    pub bytes: Vec<u8>,
    /// Where each message ends in `bytes`.
    pub ends: Vec<usize>,
}

/// Most TCP frames per [`SyslogItem`].
pub const MAX_BATCH_FRAMES: usize = 64;
/// A [`SyslogItem`] is closed once it holds this many bytes (a single longer frame is an item of its own).
pub const MAX_BATCH_BYTES: usize = 16 * 1024;

impl SyslogItem {
    /// One message.
    pub fn one(peer: IpAddr, transport: &'static str, received_ms: i64, bytes: Vec<u8>) -> Self {
        let ends = vec![bytes.len()];
        Self {
            peer,
            transport,
            received_ms,
            bytes,
            ends,
        }
    }

    /// Number of messages.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when it holds no message.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The messages, in order.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        let mut start = 0;
        self.ends.iter().map(move |&end| {
            let m = self.bytes.get(start..end).unwrap_or_default();
            start = end;
            m
        })
    }

    fn push(&mut self, frame: &[u8]) {
        self.bytes.extend_from_slice(frame);
        self.ends.push(self.bytes.len());
    }

    fn full(&self) -> bool {
        self.ends.len() >= MAX_BATCH_FRAMES || self.bytes.len() >= MAX_BATCH_BYTES
    }
}

/// Binds a UDP socket with a larger receive buffer (best effort) and address reuse off.
pub fn bind_udp(addr: SocketAddr, recv_buffer: usize) -> std::io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // `[::]` takes IPv4 too.
        let _ = s.set_only_v6(false);
    }
    if recv_buffer > 0 {
        if let Err(e) = s.set_recv_buffer_size(recv_buffer) {
            tracing::debug!(%addr, error = %e, "could not set the receive buffer size");
        }
    }
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    UdpSocket::from_std(s.into())
}

/// Binds the syslog TCP listener.
pub fn bind_tcp(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        let _ = s.set_only_v6(false);
    }
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    TcpListener::from_std(s.into())
}

/// The next datagram into `buf`, or `None` once `stop` is cancelled; receive errors are logged and skipped.
async fn next_datagram(
    sock: &UdpSocket,
    buf: &mut [u8],
    stop: &CancellationToken,
) -> Option<(usize, std::net::SocketAddr)> {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return None,
            r = sock.recv_from(buf) => match r {
                Ok(x) => return Some(x),
                Err(e) => tracing::debug!(error = %e, "UDP receive error"),
            },
        }
    }
}

/// Receives flow datagrams until `stop` is cancelled.
pub async fn flow_udp_loop(
    sock: UdpSocket,
    input: FlowInput,
    tx: mpsc::Sender<FlowDatagram>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    while let Some((n, from)) = next_datagram(&sock, &mut buf, &stop).await {
        let item = FlowDatagram {
            input,
            peer: from.ip(),
            received_ms: crate::store::now_ms(),
            bytes: buf[..n].to_vec(),
        };
        if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(item) {
            let label = metrics.exporters.label(item.peer);
            metrics.drop_n(&label, "flow", "queue_full", 1);
        }
    }
}

/// Receives syslog datagrams until `stop` is cancelled.
pub async fn syslog_udp_loop(
    sock: UdpSocket,
    tx: mpsc::Sender<SyslogItem>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut buf = vec![0u8; 65_536];
    while let Some((n, from)) = next_datagram(&sock, &mut buf, &stop).await {
        let item = SyslogItem::one(from.ip(), "udp", crate::store::now_ms(), buf[..n].to_vec());
        if let Err(mpsc::error::TrySendError::Full(item)) = tx.try_send(item) {
            let label = metrics.exporters.label(item.peer);
            metrics.drop_n(&label, "syslog", "queue_full", 1);
        }
    }
}

/// Accepts syslog TCP connections (at most `max_connections` at once) until `stop` is cancelled.
pub async fn syslog_tcp_loop(
    listener: TcpListener,
    tx: mpsc::Sender<SyslogItem>,
    metrics: Arc<Metrics>,
    max_connections: usize,
    max_frame: usize,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let (stream, from) = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "syslog TCP accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.tcp_refused.inc();
            drop(stream);
            continue;
        };
        let (tx, metrics, stop) = (tx.clone(), metrics.clone(), stop.clone());
        tokio::spawn(async move {
            metrics.tcp_connections.inc();
            syslog_tcp_conn(stream, from.ip(), tx, &metrics, max_frame, stop).await;
            metrics.tcp_connections.dec();
            drop(permit);
        });
    }
}

async fn syslog_tcp_conn(
    mut stream: TcpStream,
    peer: IpAddr,
    tx: mpsc::Sender<SyslogItem>,
    metrics: &Metrics,
    max_frame: usize,
    stop: CancellationToken,
) {
    let mut dec = yagura_syslog::FrameDecoder::new(max_frame);
    let mut buf = vec![0u8; 16 * 1024];
    let new_item = || SyslogItem {
        peer,
        transport: "tcp",
        received_ms: crate::store::now_ms(),
        bytes: Vec::with_capacity(MAX_BATCH_BYTES + 1024),
        ends: Vec::with_capacity(MAX_BATCH_FRAMES),
    };
    loop {
        let n = tokio::select! {
            _ = stop.cancelled() => 0,
            r = stream.read(&mut buf) => r.unwrap_or(0),
        };
        // The frames this read completed go on together, in items of bounded size.
        let mut item = new_item();
        if n == 0 {
            if let Some(f) = dec.finish() {
                take(f, &mut item, peer, metrics);
            }
            let _ = deliver(item, &tx).await;
            return;
        }
        dec.push(&buf[..n]);
        while let Some(f) = dec.next_frame() {
            take(f, &mut item, peer, metrics);
            if item.full() && !deliver(std::mem::replace(&mut item, new_item()), &tx).await {
                return;
            }
        }
        if !deliver(item, &tx).await {
            return;
        }
    }
}

/// Adds one decoded frame to `item`, or counts a framing error.
fn take(
    frame: Result<Vec<u8>, yagura_syslog::FramingError>,
    item: &mut SyslogItem,
    peer: IpAddr,
    metrics: &Metrics,
) {
    match frame {
        Ok(bytes) if bytes.is_empty() => {}
        Ok(bytes) => item.push(&bytes),
        Err(e) => {
            metrics.framing_errors.inc();
            if matches!(e, yagura_syslog::FramingError::FrameTooLong { .. }) {
                metrics.drop_n(&metrics.exporters.label(peer), "syslog", "too_long", 1);
            }
            tracing::debug!(%peer, error = %e, "syslog framing error");
        }
    }
}

/// Sends an item on (if it holds anything); waits for room (TCP backpressure). Returns false when the daemon is
/// stopping.
async fn deliver(item: SyslogItem, tx: &mpsc::Sender<SyslogItem>) -> bool {
    item.is_empty() || tx.send(item).await.is_ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn an_item_carries_its_frames_in_order_and_closes_when_full() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        let mut item = SyslogItem::one(peer, "tcp", 5, b"<13>first".to_vec());
        item.push(b"");
        item.push(b"<14>third");
        let got: Vec<&[u8]> = item.messages().collect();
        assert_eq!(got, vec![&b"<13>first"[..], &b""[..], &b"<14>third"[..]]);
        assert_eq!(item.len(), 3);
        assert!(!item.full());
        for _ in 3..MAX_BATCH_FRAMES {
            item.push(b"x");
        }
        assert!(item.full());
        let mut big = SyslogItem::one(peer, "tcp", 5, vec![b'a'; MAX_BATCH_BYTES]);
        assert!(big.full());
        big.ends.clear();
        assert!(big.is_empty());
    }
}
