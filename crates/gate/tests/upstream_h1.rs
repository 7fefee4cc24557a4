//! The gate's own HTTP/1.1 client against an upstream that writes scripted bytes: every way a response body can
//! be delimited (length, chunked with extensions and trailers, until close, none), large bodies streamed,
//! request bodies passed on with their length or chunked, interim `100 Continue`, an early answer to an upload,
//! keep-alive reuse, an upstream that closes idle connections or drops a request, and bytes that are not HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// An upstream that answers by path with fixed bytes; counts the connections it accepted.
struct Raw {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    stop: CancellationToken,
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn raw_upstream() -> Raw {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let stop = CancellationToken::new();
    let (c, s) = (Arc::clone(&conns), stop.clone());
    tokio::spawn(async move {
        loop {
            let sock = tokio::select! {
                r = l.accept() => match r { Ok((sock, _)) => sock, Err(_) => return },
                () = s.cancelled() => return,
            };
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(serve(sock));
        }
    });
    Raw { addr, conns, stop }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads until `buf` holds `n` bytes; false at end of stream.
async fn fill(s: &mut TcpStream, buf: &mut Vec<u8>, n: usize) -> bool {
    while buf.len() < n {
        let mut tmp = [0u8; 16 * 1024];
        match s.read(&mut tmp).await {
            Ok(0) | Err(_) => return false,
            Ok(k) => buf.extend_from_slice(&tmp[..k]),
        }
    }
    true
}

/// Reads a line (without CRLF) off the front of `buf`.
async fn line(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(i) = find(buf, b"\r\n") {
            let l = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            return Some(l);
        }
        let want = buf.len() + 1;
        if !fill(s, buf, want).await {
            return None;
        }
    }
}

async fn serve(mut s: TcpStream) {
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        // The request head.
        let end = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let want = buf.len() + 1;
            if !fill(&mut s, &mut buf, want).await {
                return;
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let mut first = lines.next().unwrap_or("").split(' ');
        let (method, path) = (
            first.next().unwrap_or("").to_string(),
            first.next().unwrap_or("").to_string(),
        );
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let get = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        if path == "/drop-next" && served > 0 {
            return; // reads the request, then closes without an answer
        }
        if path == "/reject-upload" {
            // Refuses the body before reading it and closes (the unread body makes the kernel reset).
            let _ = s
                .write_all(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 9\r\nconnection: close\r\n\r\ntoo large")
                .await;
            return;
        }
        if get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
            s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        }
        // The request body.
        let (body, framing) = if let Some(n) = get("content-length") {
            let n: usize = n.parse().unwrap();
            if !fill(&mut s, &mut buf, n).await {
                return;
            }
            (buf.drain(..n).collect::<Vec<u8>>(), "length")
        } else if get("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let Some(size) = line(&mut s, &mut buf).await else {
                    return;
                };
                let n = usize::from_str_radix(size.split(';').next().unwrap().trim(), 16).unwrap();
                if n == 0 {
                    while line(&mut s, &mut buf).await.is_some_and(|l| !l.is_empty()) {}
                    break;
                }
                if !fill(&mut s, &mut buf, n + 2).await {
                    return;
                }
                body.extend(buf.drain(..n));
                buf.drain(..2);
            }
            (body, "chunked")
        } else {
            (Vec::new(), "none")
        };
        served += 1;
        let mut out: Vec<u8> = Vec::new();
        let mut close = false;
        match path.as_str() {
            "/chunked" => out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/plain\r\n\r\n\
                  5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
            ),
            "/until-close" => {
                out.extend_from_slice(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nuntil the end");
                close = true;
            }
            "/big" | "/big-chunked" => {
                let data: Vec<u8> = (0..1_048_576u32).map(|i| (i % 251) as u8).collect();
                if path == "/big" {
                    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 1048576\r\n\r\n");
                    out.extend_from_slice(&data);
                } else {
                    out.extend_from_slice(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n");
                    for c in data.chunks(7000) {
                        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
                        out.extend_from_slice(c);
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"0\r\n\r\n");
                }
            }
            "/no-content" => out.extend_from_slice(b"HTTP/1.1 204 No Content\r\n\r\n"),
            "/garbage" => {
                out.extend_from_slice(b"SPDY/9 what is this\r\n\r\n");
                close = true;
            }
            "/close-after" | "/drop-next" => {
                // Answers, then closes without saying so (an idle timeout on the upstream's side).
                out.extend_from_slice(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
                close = path == "/close-after";
            }
            _ => {
                // Echo: what came, how it was framed.
                let h = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nx-method: {method}\r\nx-framing: {framing}\r\n\r\n",
                    if method == "HEAD" { 5 } else { body.len() }
                );
                out.extend_from_slice(h.as_bytes());
                if method != "HEAD" {
                    out.extend_from_slice(&body);
                }
            }
        }
        if s.write_all(&out).await.is_err() || close {
            return;
        }
    }
}

async fn gate_for(up: &Raw) -> Gate {
    let cfg = format!(
        r#"
[[routes]]
name = "raw"
host = "raw.gate.test"
upstream = "http://{}"
access = "public"
retries = 0
"#,
        up.addr
    );
    Gate::start(Arc::new(Pki::new()), &cfg).await
}

/// A new HTTP/1.1 connection over TLS to the gate (SNI `raw.gate.test`), open as long as the sender lives.
async fn connect_h1<B>(g: &Gate) -> hyper::client::conn::http1::SendRequest<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(g.https).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(g.tls_h1.clone()));
    let name = rustls_pki_types::ServerName::try_from("raw.gate.test").unwrap();
    let s = conn.connect(name, tcp).await.unwrap();
    let (tx, c) = hyper::client::conn::http1::handshake(TokioIo::new(s))
        .await
        .unwrap();
    tokio::spawn(c);
    tx
}

/// A request over one HTTP/1.1 TLS connection to the gate, with a body of unknown length (sent chunked).
async fn send_streamed(g: &Gate, path: &str, parts: Vec<&'static [u8]>) -> Resp {
    let mut tx = connect_h1(g).await;
    let frames = futures_util::stream::iter(parts.into_iter().map(|p| {
        Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(Bytes::from_static(p)))
    }));
    let req = Request::post(path)
        .header("host", "raw.gate.test")
        .body(StreamBody::new(frames))
        .unwrap();
    let res = tx.send_request(req).await.unwrap();
    let (parts, body) = res.into_parts();
    Resp {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
        version: parts.version,
    }
}

async fn request(
    g: &Gate,
    method: &str,
    path: &str,
    body: &'static [u8],
    headers: &[(&str, &str)],
) -> Resp {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "raw.gate.test");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(
        g.https,
        Some((&g.tls_h1, "raw.gate.test")),
        b.body(Full::new(Bytes::from_static(body))).unwrap(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_by_every_framing() {
    let up = raw_upstream().await;
    let g = gate_for(&up).await;

    let r = g.get("raw.gate.test", "/chunked", None, &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "hello world")
    );
    assert!(r.header("transfer-encoding").is_none() || r.header("content-length").is_none());

    let r = g.get("raw.gate.test", "/until-close", None, &[]).await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "until the end")
    );

    for path in ["/big", "/big-chunked"] {
        let r = g.get("raw.gate.test", path, None, &[]).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert_eq!(r.body.len(), 1_048_576, "{path}");
        assert!(
            r.body
                .iter()
                .enumerate()
                .all(|(i, &b)| b == (i % 251) as u8),
            "{path}: body changed on the way"
        );
    }

    let r = g.get("raw.gate.test", "/no-content", None, &[]).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::NO_CONTENT, 0));

    let r = request(&g, "HEAD", "/echo", b"", &[]).await;
    assert_eq!((r.status, r.body.len()), (StatusCode::OK, 0));
    assert_eq!(r.header("content-length").as_deref(), Some("5"));
    assert_eq!(r.header("x-method").as_deref(), Some("HEAD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_pass_with_their_length_or_chunked_and_100_continue_is_skipped() {
    let up = raw_upstream().await;
    let g = gate_for(&up).await;

    let big: &'static [u8] = Box::leak(vec![7u8; 300 * 1024].into_boxed_slice());
    let r = request(&g, "POST", "/echo", big, &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-framing").as_deref(), Some("length"));
    assert_eq!(r.body.len(), big.len());

    let r = send_streamed(&g, "/echo", vec![b"one ", b"two ", b"three"]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("x-framing").as_deref(), Some("chunked"));
    assert_eq!(r.text(), "one two three");

    let r = request(
        &g,
        "PUT",
        "/echo",
        b"after continue",
        &[("expect", "100-continue")],
    )
    .await;
    assert_eq!(
        (r.status, r.text().as_str()),
        (StatusCode::OK, "after continue")
    );
}

/// An upstream that answers before it has read the body, and closes: the client gets that answer, not a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_answer_to_an_upload_is_passed_on() {
    let up = raw_upstream().await;
    let g = gate_for(&up).await;
    // A raw client that keeps writing its 8 MiB body while it reads (as browsers do), so the gate closing the
    // connection after the answer does not hide the answer.
    let tcp = TcpStream::connect(g.https).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(g.tls_h1.clone()));
    let name = rustls_pki_types::ServerName::try_from("raw.gate.test").unwrap();
    let tls = conn.connect(name, tcp).await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let size = 8 * 1024 * 1024;
    tokio::spawn(async move {
        let head = format!(
            "POST /reject-upload HTTP/1.1\r\nhost: raw.gate.test\r\ncontent-length: {size}\r\n\r\n"
        );
        let _ = wr.write_all(head.as_bytes()).await;
        let chunk = vec![1u8; 64 * 1024];
        for _ in 0..size / chunk.len() {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut got = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        let mut b = [0u8; 4096];
        while find(&got, b"too large").is_none() {
            match rd.read(&mut b).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&b[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 20 s");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.ends_with("too large"), "{text}");
    let r = g.get("raw.gate.test", "/chunked", None, &[]).await;
    assert_eq!(r.text(), "hello world");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_lost_ones_replaced() {
    let up = raw_upstream().await;
    let g = gate_for(&up).await;

    // Keep-alive: sequential requests share the (per-thread) connections.
    for _ in 0..20 {
        let r = g.get("raw.gate.test", "/chunked", None, &[]).await;
        assert_eq!(r.text(), "hello world");
    }
    let n = up.conns.load(Ordering::SeqCst);
    assert!(
        n <= 4,
        "{n} upstream connections for 20 sequential requests"
    );

    // The upstream closes each connection after its answer: every request still gets one.
    for i in 0..20 {
        let r = g.get("raw.gate.test", "/close-after", None, &[]).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (StatusCode::OK, "ok"),
            "request {i}"
        );
    }

    // The upstream reads a request on a reused connection and closes it unanswered: a GET goes again on a new
    // connection; a POST is not repeated (the upstream may have acted on it).
    for i in 0..6 {
        let r = g.get("raw.gate.test", "/drop-next", None, &[]).await;
        assert_eq!(
            (r.status, r.text().as_str()),
            (StatusCode::OK, "ok"),
            "GET {i}"
        );
    }
    let mut refused = 0;
    for _ in 0..6 {
        let r = request(&g, "POST", "/drop-next", b"", &[]).await;
        match r.status {
            StatusCode::OK => {}
            StatusCode::BAD_GATEWAY => refused += 1,
            s => panic!("POST answered {s}"),
        }
    }
    assert!(refused > 0, "a POST dropped by the upstream was sent again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_that_are_not_http_give_a_502_and_the_gate_goes_on() {
    let up = raw_upstream().await;
    let g = gate_for(&up).await;
    let r = g.get("raw.gate.test", "/garbage", None, &[]).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert!(r.text().contains("not answering"), "{}", r.text());
    let r = g.get("raw.gate.test", "/chunked", None, &[]).await;
    assert_eq!(r.text(), "hello world");
}

/// Keep-alive connections end up spread evenly over the serving threads, whatever `SO_REUSEPORT`'s hash picked:
/// a thread that accepts a connection while it serves more than another hands it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_connections_are_spread_evenly_over_serving_threads() {
    let up = raw_upstream().await;
    let g = gate_for(&up).await;
    let mut kept = Vec::new();
    for _ in 0..24 {
        let mut tx = connect_h1(&g).await;
        let req = Request::get("/chunked")
            .header("host", "raw.gate.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = tx.send_request(req).await.unwrap();
        assert_eq!(
            res.into_body().collect().await.unwrap().to_bytes(),
            "hello world"
        );
        kept.push(tx);
    }
    let text = g.metrics_text().await;
    let open: Vec<f64> = (0..64)
        .filter_map(|w| {
            metric(
                &text,
                &format!("yagura_gate_worker_connections{{worker=\"{w}\"}}"),
            )
        })
        .collect();
    assert_eq!(open.iter().sum::<f64>(), 24.0, "{text}");
    let (min, max) = open
        .iter()
        .fold((f64::MAX, 0f64), |(lo, hi), &n| (lo.min(n), hi.max(n)));
    assert!(max - min <= 1.0, "connections per serving thread: {open:?}");
    if open.len() < 2 {
        eprintln!("one serving thread on this machine: nothing to spread");
    }
    drop(kept);
}
