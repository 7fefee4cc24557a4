//! The ingress half: TLS with SNI over several certificates and reload when the files change, HTTP→HTTPS
//! redirect, HTTP/1.1 and HTTP/2, routing by host and path prefix, websockets, retries, health checks, timeouts,
//! SIGHUP-style reloads (a bad file keeps the old config), https upstreams (HTTP/2 or HTTP/1.1 by ALPN), upstream
//! keep-alive and config diagnostics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::{Request, StatusCode};
use http_body_util::Full;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

fn public_routes(a: &Upstream, b: &Upstream) -> String {
    format!(
        r#"
[[routes]]
name = "site"
host = "site.gate.test"
upstream = "http://{a}"
access = "public"

[[routes]]
name = "api"
host = "site.gate.test"
path = "/api/"
upstreams = ["http://{b}/base"]
access = "public"
"#,
        a = a.addr,
        b = b.addr
    )
}

async fn peer_cert_names(g: &Gate, sni: &str) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(g.https).await.unwrap();
    let conn = tokio_rustls::TlsConnector::from(Arc::new(g.pki.client_config(&[b"http/1.1"])));
    let s = conn
        .connect(
            rustls_pki_types::ServerName::try_from(sni.to_string()).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0]
        .as_ref()
        .to_vec()
}

/// What the upstream sees of the client's headers: hop-by-hop ones (and those named in `Connection`) and
/// forwarding headers are gone, the gate's own cookies are cut out of `Cookie`, other headers pass as they are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_forwarding_headers_and_own_cookies_are_not_forwarded() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let g = Gate::start(Arc::new(Pki::new()), &public_routes(&a, &b)).await;
    let sent = [
        ("Connection", "X-Drop-Me, keep-alive"),
        ("X-Drop-Me", "1"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Forwarded", "for=198.18.9.9"),
        ("X-Forwarded-Port", "1"),
        ("X-Forwarded-Host", "evil.gate.test"),
        ("X-Real-IP", "198.18.9.9"),
        ("X-Keep", "yes"),
        ("Cookie", "a=1; _yagura_flow_x=2;b=3"),
    ];
    let j = g.get("site.gate.test", "/", None, &sent).await.json();
    let h = j["headers"].as_object().unwrap();
    for n in [
        "x-drop-me",
        "keep-alive",
        "te",
        "forwarded",
        "x-forwarded-port",
    ] {
        assert!(!h.contains_key(n), "{n} reached the upstream: {j}");
    }
    assert_eq!(h["x-keep"], serde_json::json!(["yes"]));
    assert_eq!(h["cookie"], serde_json::json!(["a=1; b=3"]));
    assert_eq!(h["x-real-ip"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-for"], serde_json::json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-host"], serde_json::json!(["site.gate.test"]));
    assert_eq!(h["host"], serde_json::json!([a.addr.to_string()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_prefix_over_h1_and_h2() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let g = Gate::start(Arc::new(Pki::new()), &public_routes(&a, &b)).await;

    let r = g.get("site.gate.test", "/x?q=1", None, &[]).await;
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(j["upstream"], "a");
    assert_eq!(j["path"], "/x");
    assert_eq!(j["query"], "q=1");
    assert_eq!(j["headers"]["x-forwarded-proto"][0], "https");
    assert_eq!(j["headers"]["x-forwarded-host"][0], "site.gate.test");
    assert_eq!(j["headers"]["x-forwarded-for"][0], "127.0.0.1");

    // Longest prefix on whole segments, with the upstream's base path; `/apix` is not under `/api`.
    let j = g.get("site.gate.test", "/api/v1", None, &[]).await.json();
    assert_eq!(
        (j["upstream"].as_str(), j["path"].as_str()),
        (Some("b"), Some("/base/api/v1"))
    );
    assert_eq!(
        g.get("site.gate.test", "/apix", None, &[]).await.json()["upstream"],
        "a"
    );
    // Percent-encoded and dot-segment spellings of the prefix are the prefix.
    assert_eq!(
        g.get("site.gate.test", "/%61pi/x", None, &[]).await.json()["upstream"],
        "b"
    );
    assert_eq!(
        g.get("site.gate.test", "/x/../api/y", None, &[])
            .await
            .json()["path"],
        "/base/api/y"
    );

    // Unknown host: a product 404 page.
    let r = g.get("nothing.gate.test", "/", None, &[]).await;
    assert_eq!(r.status, 404);
    assert!(r.text().contains("No service is published"));

    // HTTP/2 over ALPN.
    let req = Request::get(g.url("site.gate.test", "/h2"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = send(g.https, Some((&g.tls, "site.gate.test")), req).await;
    assert_eq!(r.version, http::Version::HTTP_2);
    assert_eq!(r.json()["path"], "/h2");

    // Metrics per route.
    let m = g.metrics_text().await;
    assert!(
        metric(
            &m,
            "yagura_gate_requests_total{route=\"site\",class=\"2xx\"}"
        )
        .unwrap()
            >= 3.0,
        "{m}"
    );
    assert!(
        m.contains("yagura_gate_request_duration_seconds_bucket{le=\"0.005\",route=\"api\"}")
            || m.contains("yagura_gate_request_duration_seconds_bucket{route=\"api\""),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_redirects_to_https() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let g = Gate::start(Arc::new(Pki::new()), &public_routes(&a, &b)).await;
    let r = send(
        g.http.unwrap(),
        None,
        Request::get("/p?x=1")
            .header("host", "site.gate.test")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.location(), g.url("site.gate.test", "/p?x=1"));
    // Not a redirector for hosts it does not serve.
    let r = send(
        g.http.unwrap(),
        None,
        Request::get("/")
            .header("host", "evil.example")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_picks_certificates_and_reloads_changed_files() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let pki = Arc::new(Pki::new());
    let g = Gate::start(pki.clone(), &public_routes(&a, &b)).await;
    let gate_cert = peer_cert_names(&g, "site.gate.test").await;
    let other = peer_cert_names(&g, "other.example").await;
    assert_ne!(
        gate_cert, other,
        "SNI must choose the certificate for the name"
    );

    // cert-manager rewrites the files: the next handshake sees the new certificate.
    let (c, k) = pki.leaf(&["other.example", "www.other.example"]);
    write(g.dir.path(), "other.key", &k);
    write(g.dir.path(), "other.crt", &c);
    let g2 = &g;
    eventually(
        "new certificate served",
        Duration::from_secs(10),
        || async { peer_cert_names(g2, "other.example").await != other },
    )
    .await;
    // A broken rewrite keeps the certificate in force.
    let now = peer_cert_names(&g, "www.other.example").await;
    write(
        g.dir.path(),
        "other.crt",
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    );
    eventually("failed reload counted", Duration::from_secs(10), || async {
        metric(
            &g2.metrics_text().await,
            "yagura_gate_certificate_reloads_total{outcome=\"failed\"}",
        )
        .is_some()
    })
    .await;
    assert_eq!(peer_cert_names(&g, "www.other.example").await, now);
    assert_eq!(g.get("site.gate.test", "/", None, &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_through_a_public_route() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let g = Gate::start(Arc::new(Pki::new()), &public_routes(&a, &b)).await;
    let tcp = tokio::net::TcpStream::connect(g.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(g.tls_h1.clone()))
        .connect(
            rustls_pki_types::ServerName::try_from("site.gate.test").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async(
        g.url("site.gate.test", "/chat/ws").replace("https", "wss"),
        tls,
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 101);
    for i in 0..3 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_idempotent_requests_and_health_checks_take_dead_upstreams_out() {
    let live = upstream("live").await;
    // A port nothing listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = format!(
        r#"
[[routes]]
name = "pool"
host = "pool.gate.test"
upstreams = ["http://{dead}", "http://{live}"]
access = "public"
retries = 1
connect_timeout = "500ms"
timeout = "1s"
health_check = {{ path = "/health", interval = "200ms", timeout = "500ms", rise = 1, fall = 1 }}
"#,
        live = live.addr
    );
    let g = Gate::start(Arc::new(Pki::new()), &cfg).await;
    // Every GET succeeds, whichever upstream round robin starts with.
    for _ in 0..6 {
        assert_eq!(g.get("pool.gate.test", "/", None, &[]).await.status, 200);
    }
    let g2 = &g;
    eventually(
        "dead upstream marked down",
        Duration::from_secs(10),
        || async {
            g2.metrics_text().await.contains(&format!(
                "yagura_gate_upstream_healthy{{route=\"pool\",upstream=\"http://{dead}\"}} 0"
            ))
        },
    )
    .await;
    // Once it is out, requests go straight to the live one: no more retries.
    let before = metric(
        &g.metrics_text().await,
        "yagura_gate_upstream_retries_total{route=\"pool\"}",
    )
    .unwrap_or(0.0);
    for _ in 0..4 {
        assert_eq!(g.get("pool.gate.test", "/", None, &[]).await.status, 200);
    }
    let after = metric(
        &g.metrics_text().await,
        "yagura_gate_upstream_retries_total{route=\"pool\"}",
    )
    .unwrap_or(0.0);
    assert_eq!(before, after);
    assert!(live.hits.load(Ordering::Relaxed) >= 10);
    // Readiness after the first round of checks.
    let r = send(
        g.metrics.unwrap(),
        None,
        Request::get("/readyz")
            .header("host", "m")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gets_504_and_non_idempotent_requests_are_not_retried() {
    let live = upstream("live").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = format!(
        r#"
[[routes]]
name = "slow"
host = "slow.gate.test"
upstream = "http://{live}"
access = "public"
timeout = "300ms"
retries = 0

[[routes]]
name = "down"
host = "down.gate.test"
upstream = "http://{dead}"
access = "public"
retries = 3
"#,
        live = live.addr
    );
    let g = Gate::start(Arc::new(Pki::new()), &cfg).await;
    let r = g.get("slow.gate.test", "/slow", None, &[]).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(r.text().contains("did not answer in time"));
    let req = Request::post("/")
        .header("host", "down.gate.test")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let r = send(g.https, Some((&g.tls_h1, "down.gate.test")), req).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    let m = g.metrics_text().await;
    assert!(
        metric(&m, "yagura_gate_upstream_retries_total{route=\"down\"}").is_none(),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_a_good_file_and_keeps_the_old_config_on_a_bad_one() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let g = Gate::start(Arc::new(Pki::new()), &public_routes(&a, &b)).await;
    let path = g.dir.path().join("gate.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Good: a new route appears.
    std::fs::write(
        &path,
        format!(
            "{text}\n[[routes]]\nname = \"new\"\nhost = \"new.gate.test\"\nupstream = \"http://{}\"\naccess = \"public\"\n",
            b.addr
        ),
    )
    .unwrap();
    g.reload.send(()).await.unwrap();
    let g2 = &g;
    eventually("new route served", Duration::from_secs(10), || async {
        g2.get("new.gate.test", "/", None, &[]).await.status == 200
    })
    .await;
    // Bad: a typo; the running config stays and the refusal is counted.
    std::fs::write(&path, format!("{text}\nauth_hots = \"x\"\n")).unwrap();
    g.reload.send(()).await.unwrap();
    eventually(
        "invalid reload counted",
        Duration::from_secs(10),
        || async {
            metric(
                &g2.metrics_text().await,
                "yagura_config_reloads_total{result=\"invalid\"}",
            ) == Some(1.0)
        },
    )
    .await;
    assert_eq!(g.get("new.gate.test", "/", None, &[]).await.status, 200);
}

#[test]
fn config_errors_point_at_file_line_col() {
    let text = r#"auth_host = "Auth.Example"
cookie_secret_file = "/k"
client_secret = "hunter2"

[listen]
https = "127.0.0.1:8443"

[[routes]]
name = "grafana"
host = "grafana.example.net"
upstream = "ftp://x"
access = "allow"
allow_teams = ["ictsc"]
timout = "3s"
"#;
    let e = yagura_daemon::config::parse::<yagura_gate::GateConfig>("gate.toml", text).unwrap_err();
    let s = e.to_string();
    for want in [
        "gate.toml:1:",   // auth host not lower case
        "gate.toml:3:1",  // a literal secret
        "gate.toml:11:",  // bad upstream URL
        "gate.toml:13:",  // team not org:team
        "gate.toml:14:1", // typo
        "did you mean `timeout`",
        "no-certificate",
        "no-provider",
    ] {
        assert!(s.contains(want), "missing {want:?} in:\n{s}");
    }
    assert!(!s.contains("hunter2"));
}

#[test]
fn bundled_example_config_is_valid() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/gate.toml");
    let l =
        yagura_daemon::config::load::<yagura_gate::GateConfig>(std::path::Path::new(path)).unwrap();
    assert_eq!(l.config.routes.len(), 6);
    assert!(l.warnings.is_empty(), "{}", l.warnings);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_requests_then_stops() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let mut g = Gate::start(Arc::new(Pki::new()), &public_routes(&a, &b)).await;
    let (addr, tls) = (g.https, g.tls_h1.clone());
    let inflight = tokio::spawn(async move {
        let req = Request::get("/wait500")
            .header("host", "site.gate.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        send(addr, Some((&tls, "site.gate.test")), req).await.status
    });
    let a2 = &a;
    eventually(
        "request reached the upstream",
        Duration::from_secs(5),
        || async { a2.hits.load(Ordering::Relaxed) >= 1 },
    )
    .await;
    g.stop.cancel();
    assert_eq!(
        inflight.await.unwrap(),
        StatusCode::OK,
        "the in-flight request finished during the drain"
    );
    tokio::time::timeout(Duration::from_secs(5), g.running.take().unwrap().wait())
        .await
        .expect("the gate stopped after draining");
    assert!(
        tokio::net::TcpStream::connect(g.https).await.is_err(),
        "listener closed"
    );
}

/// A TLS upstream (certificate for 127.0.0.1 from the test CA) offering `alpn`; answers with the HTTP version
/// it saw. Counts the connections it accepted.
async fn tls_upstream(
    pki: &Pki,
    alpn: &[&[u8]],
) -> (std::net::SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use rustls_pki_types::pem::PemObject;
    let (cert, key) = pki.leaf(&["127.0.0.1"]);
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let n = conns.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            n.fetch_add(1, Ordering::Relaxed);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let body = format!("{:?} {}", req.version(), req.uri().path());
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(body),
                        )))
                    });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_upstreams_by_alpn_and_connections_are_kept_alive() {
    let pki = Arc::new(Pki::new());
    let (h2, h2_conns) = tls_upstream(&pki, &[b"h2", b"http/1.1"]).await;
    let (h1, h1_conns) = tls_upstream(&pki, &[b"http/1.1"]).await;
    let plain = upstream("plain").await;
    let cfg = format!(
        r#"
[[routes]]
name = "h2"
host = "h2.gate.test"
upstream = "https://{h2}"
ca_file = "{{dir}}/ca.pem"
access = "public"

[[routes]]
name = "h1"
host = "h1.gate.test"
upstream = "https://{h1}/base"
ca_file = "{{dir}}/ca.pem"
access = "public"

[[routes]]
name = "plain"
host = "plain.gate.test"
upstream = "http://{p}"
access = "public"
"#,
        p = plain.addr
    );
    // The CA file must exist before the gate reads its config.
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "ca.pem", &pki.ca_pem);
    let g = Gate::start(
        pki.clone(),
        &cfg.replace("{dir}", &dir.path().display().to_string()),
    )
    .await;
    for i in 0..6 {
        let r = g.get("h2.gate.test", &format!("/x{i}"), None, &[]).await;
        assert_eq!(
            (r.status, r.text()),
            (StatusCode::OK, format!("HTTP/2.0 /x{i}"))
        );
        let r = g.get("h1.gate.test", "/y", None, &[]).await;
        assert_eq!(
            (r.status, r.text()),
            (StatusCode::OK, "HTTP/1.1 /base/y".to_string())
        );
        assert_eq!(g.get("plain.gate.test", "/z", None, &[]).await.status, 200);
    }
    // Sequential requests reuse connections: at most one per serving thread.
    let threads = yagura_gate::worker::default_count();
    assert!(
        h2_conns.load(Ordering::Relaxed) <= threads,
        "h2 connections: {h2_conns:?}"
    );
    assert!(
        h1_conns.load(Ordering::Relaxed) <= threads,
        "h1 connections: {h1_conns:?}"
    );
}
