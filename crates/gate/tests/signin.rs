//! GitHub sign-in against the stand-in (tests/common/github.rs, which follows GitHub's documented status codes
//! and pagination), sessions, policy, identity headers with the ES256 assertion, forward-auth, and every security
//! behaviour of issue 7 item 6, each in its own test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::github::{StandIn, User};
use common::*;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// A gate in front of one upstream with four routes: public, signed-in, team `ictsc:ictsc_infra`, user `root`.
async fn setup(recheck: &str) -> (StandIn, Gate, Upstream) {
    let gh = StandIn::start().await;
    gh.add(
        User::new("alice", 1)
            .org("ictsc", "active")
            .team("ictsc", "ictsc_infra"),
    );
    gh.add(
        User::new("bob", 2)
            .org("ictsc", "active")
            .team("ictsc", "ictsc_dev"),
    );
    gh.add(
        User::new("carol", 3)
            .org("ictsc", "pending")
            .team("ictsc", "ictsc_infra"),
    );
    gh.add(User::new("mallory", 4));
    let up = upstream("app").await;
    let cfg = format!(
        r#"membership_recheck = "{recheck}"
{gh_cfg}
[[routes]]
name = "public"
host = "public.gate.test"
upstream = "http://{u}"
access = "public"

[[routes]]
name = "wiki"
host = "wiki.gate.test"
upstream = "http://{u}"
access = "signed_in"

[[routes]]
name = "grafana"
host = "grafana.gate.test"
upstream = "http://{u}"
allow_teams = ["ictsc:ictsc_infra"]

[[routes]]
name = "admin"
host = "admin.gate.test"
upstream = "http://{u}"
allow_users = ["root"]
"#,
        gh_cfg = gh.config(None),
        u = up.addr
    );
    let g = Gate::start(Arc::new(Pki::new()), &cfg).await;
    (gh, g, up)
}

async fn signed_in(gh: &StandIn, g: &Gate, login: &str) -> Jar {
    let mut jar = Jar::default();
    let rd = g.url("grafana.gate.test", "/d/1?x=y");
    let r = g.sign_in_github(gh, login, &mut jar, &rd).await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    assert_eq!(r.location(), rd);
    assert!(jar.0.contains_key("_yagura_session"));
    jar
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_signs_in_and_reaches_allowed_routes_only() {
    let (gh, g, _up) = setup("5m").await;
    // Not signed in: a browser is sent to the sign-in page with the way back.
    let r = g
        .browse("grafana.gate.test", "/d/1?x=y", &Jar::default())
        .await;
    assert_eq!(r.status, StatusCode::FOUND);
    let loc = r.location();
    assert!(loc.starts_with(&g.url(AUTH, "/sign_in?rd=")), "{loc}");
    let page = g
        .browse(AUTH, &loc[loc.find("/sign_in").unwrap()..], &Jar::default())
        .await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("Continue with GitHub"));
    assert!(page.text().contains("grafana.gate.test"));
    assert!(page.header("content-security-policy").is_some());

    let jar = signed_in(&gh, &g, "alice").await;
    let cookie = jar.0["_yagura_session"].clone();
    let r = g.browse("grafana.gate.test", "/d/1", &jar).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    assert_eq!(j["headers"]["x-yagura-user"][0], "alice");
    assert_eq!(j["headers"]["x-yagura-email"][0], "alice@example.org");
    assert_eq!(
        j["headers"]["x-yagura-groups"][0],
        "ictsc,ictsc:ictsc_infra"
    );
    // The session cookie never reaches the upstream.
    assert!(!j["headers"]["cookie"].to_string().contains(&cookie));
    assert_eq!(g.browse("wiki.gate.test", "/", &jar).await.status, 200);
    // Signed in but not allowed: 403 with a page naming the user (no redirect loop).
    let r = g.browse("admin.gate.test", "/", &jar).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.location().is_empty());
    assert!(
        r.text().contains("You don&#39;t have access")
            || r.text().contains("You don't have access")
    );
    assert!(r.text().contains("alice"));

    // bob is in the org but not the team.
    let jar_b = signed_in(&gh, &g, "bob").await;
    assert_eq!(g.browse("grafana.gate.test", "/", &jar_b).await.status, 403);
    assert_eq!(g.browse("wiki.gate.test", "/", &jar_b).await.status, 200);

    let m = g.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            "yagura_gate_sign_ins_total{provider=\"github\",outcome=\"ok\"}"
        ),
        Some(2.0),
        "{m}"
    );
    assert!(metric(
        &m,
        "yagura_gate_policy_decisions_total{route=\"admin\",class=\"forbidden\"}"
    )
    .is_some());

    // Sign-out clears the cookie for the whole domain.
    let r = g.browse(AUTH, "/sign_out", &jar).await;
    let sc = r.header("set-cookie").unwrap();
    assert!(
        sc.contains("Max-Age=0") && sc.contains("Domain=gate.test"),
        "{sc}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_membership_is_not_membership() {
    let (gh, g, _up) = setup("5m").await;
    let jar = signed_in(&gh, &g, "carol").await;
    // carol's invitation to ictsc is pending: the team does not count either.
    assert_eq!(g.browse("grafana.gate.test", "/", &jar).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_are_read_across_pages() {
    let (gh, g, _up) = setup("5m").await;
    let mut u = User::new("dave", 5).org("ictsc", "active");
    for i in 0..230 {
        u = u.team("other", &format!("t{i}"));
    }
    gh.add(u.team("ictsc", "ictsc_infra"));
    let jar = signed_in(&gh, &g, "dave").await;
    assert_eq!(g.browse("grafana.gate.test", "/", &jar).await.status, 200);
    assert_eq!(gh.count("/user/teams?page="), 3, "{:?}", gh.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn org_restricting_oauth_apps_gets_a_clear_page_not_a_loop() {
    let gh = StandIn::start().await;
    gh.add(User::new("alice", 1).org("ictsc", "active"));
    gh.restrict("ictsc");
    let up = upstream("app").await;
    let cfg = format!(
        "{}\n[[routes]]\nname = \"wiki\"\nhost = \"wiki.gate.test\"\nupstream = \"http://{}\"\naccess = \"signed_in\"\n",
        gh.config(Some("ictsc")),
        up.addr
    );
    let g = Gate::start(Arc::new(Pki::new()), &cfg).await;
    let mut jar = Jar::default();
    let r = g
        .sign_in_github(&gh, "alice", &mut jar, &g.url("wiki.gate.test", "/"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.location().is_empty(), "no redirect back into sign-in");
    assert!(
        r.text()
            .contains("restricts third-party OAuth applications"),
        "{}",
        r.text()
    );
    assert!(!jar.0.contains_key("_yagura_session"));
    let m = g.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            "yagura_gate_sign_ins_total{provider=\"github\",outcome=\"org_restricted\"}"
        ),
        Some(1.0)
    );
    // A non-member of the required org is refused at sign-in too.
    gh.add(User::new("eve", 9));
    let r = g
        .sign_in_github(&gh, "eve", &mut jar, &g.url("wiki.gate.test", "/"))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_member_loses_access_at_the_next_recheck() {
    let (gh, g, _up) = setup("1s").await;
    let mut jar = signed_in(&gh, &g, "alice").await;
    assert_eq!(g.browse("grafana.gate.test", "/", &jar).await.status, 200);
    gh.edit("alice", |u| u.teams.clear());
    let g2 = &g;
    let mut last = StatusCode::OK;
    eventually("access removed", Duration::from_secs(10), || {
        let j = jar.clone();
        async move {
            let r = g2.browse("grafana.gate.test", "/", &j).await;
            r.status == StatusCode::FORBIDDEN
        }
    })
    .await;
    // The refreshed cookie carries the new membership; the session itself continues.
    let r = g.browse("wiki.gate.test", "/", &jar).await;
    jar.take(&r);
    last = if r.status == 200 { r.status } else { last };
    assert_eq!(last, StatusCode::OK);
    // A revoked token ends the session at the next re-check: API clients get 401.
    gh.revoke_all();
    let j = jar.clone();
    eventually("session ended", Duration::from_secs(10), || {
        let j = j.clone();
        async move {
            g2.get("wiki.gate.test", "/", Some(&j), &[]).await.status == StatusCode::UNAUTHORIZED
        }
    })
    .await;
    let m = g.metrics_text().await;
    assert!(metric(&m, "yagura_gate_membership_rechecks_total{outcome=\"ok\"}").unwrap() >= 1.0);
    assert!(
        metric(
            &m,
            "yagura_gate_membership_rechecks_total{outcome=\"revoked\"}"
        )
        .unwrap()
            >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_replica_accepts_any_session() {
    let (gh, g1, up) = setup("5m").await;
    let jar = signed_in(&gh, &g1, "alice").await;
    // A second gate with the same key file (written by the helper) and config.
    let cfg = std::fs::read_to_string(g1.dir.path().join("gate.toml")).unwrap();
    let routes = &cfg[cfg.find("membership_recheck").unwrap()..cfg.find("[listen]").unwrap()];
    let g2 = Gate::start(g1.pki.clone(), routes).await;
    let r = g2.browse("grafana.gate.test", "/", &jar).await;
    assert_eq!(r.status, 200, "{}", r.text());
    drop(up);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assertion_verifies_against_the_published_jwks() {
    let (gh, g, _up) = setup("5m").await;
    let jar = signed_in(&gh, &g, "alice").await;
    let j = g.browse("grafana.gate.test", "/", &jar).await.json();
    let jwt = j["headers"]["x-yagura-assertion"][0]
        .as_str()
        .unwrap()
        .to_string();
    let jwks: jsonwebtoken::jwk::JwkSet = g
        .get(AUTH, "/.well-known/jwks.json", None, &[])
        .await
        .json()
        .to_string()
        .parse::<serde_json::Value>()
        .map(|v| serde_json::from_value(v).unwrap())
        .unwrap();
    let h = jsonwebtoken::decode_header(&jwt).unwrap();
    assert_eq!(h.alg, jsonwebtoken::Algorithm::ES256);
    let key =
        jsonwebtoken::DecodingKey::from_jwk(jwks.find(h.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    v.set_audience(&["grafana.gate.test"]);
    v.set_issuer(&[g.url(AUTH, "").trim_end_matches('/')]);
    let c = jsonwebtoken::decode::<serde_json::Value>(&jwt, &key, &v)
        .unwrap()
        .claims;
    assert_eq!(c["user"], "alice");
    assert_eq!(c["sub"], "github:1");
    let ttl = c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap();
    assert!(ttl <= 60, "short expiry, got {ttl}s");
    // Another route gets an assertion for its own audience.
    let j = g.browse("wiki.gate.test", "/", &jar).await.json();
    let other = j["headers"]["x-yagura-assertion"][0].as_str().unwrap();
    assert!(jsonwebtoken::decode::<serde_json::Value>(other, &key, &v).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_auth_answers_202_401_403() {
    let (gh, g, _up) = setup("5m").await;
    let jar = signed_in(&gh, &g, "alice").await;
    // Traefik style.
    let r = g
        .get(
            AUTH,
            "/auth",
            Some(&jar),
            &[
                ("x-forwarded-host", "grafana.gate.test"),
                ("x-forwarded-uri", "/d/1?admin=1"),
            ],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("x-yagura-user").as_deref(), Some("alice"));
    assert!(r.header("x-yagura-assertion").is_some());
    // nginx auth_request style.
    let r = g
        .get(
            AUTH,
            "/auth",
            Some(&jar),
            &[("x-original-url", "https://admin.gate.test/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // By route name, without a session.
    let r = g
        .get(
            AUTH,
            "/auth?route=grafana",
            None,
            &[("accept", "text/html")],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.location().is_empty());
    // Unknown target: refused, never allowed by default.
    let r = g
        .get(
            AUTH,
            "/auth",
            Some(&jar),
            &[("x-original-url", "https://nowhere.gate.test/")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let m = g.metrics_text().await;
    for o in ["202", "401", "403", "no_route"] {
        assert_eq!(
            metric(
                &m,
                &format!("yagura_gate_forward_auth_total{{outcome=\"{o}\"}}")
            ),
            Some(1.0),
            "{o}: {m}"
        );
    }
}

// ---- issue 7, item 6: one test per security behaviour ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_redirect_return_urls_are_refused() {
    let (gh, g, _up) = setup("5m").await;
    for rd in [
        "https://evil.example/",
        "//evil.example/",
        "https://grafana.gate.test.evil.example/",
        "https://grafana.gate.test@evil.example/",
        "http://grafana.gate.test/",
        "javascript:alert(1)",
    ] {
        for path in ["/sign_in", "/start"] {
            let r = g
                .browse(
                    AUTH,
                    &format!("{path}?provider=github&rd={}", urlencode(rd)),
                    &Jar::default(),
                )
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path} {rd}");
            assert!(r.location().is_empty());
        }
    }
    // Even a signed-in user asking for sign-in is not bounced to a foreign URL.
    let jar = signed_in(&gh, &g, "alice").await;
    let r = g
        .browse(
            AUTH,
            &format!("/sign_in?rd={}", urlencode("https://evil.example/")),
            &jar,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_mismatch_is_refused() {
    let (gh, g, _up) = setup("5m").await;
    gh.next_user("alice");
    let mut jar = Jar::default();
    let start = g
        .browse(
            AUTH,
            &format!(
                "/start?provider=github&rd={}",
                urlencode(&g.url("wiki.gate.test", "/"))
            ),
            &jar,
        )
        .await;
    jar.take(&start);
    let cb = gh.authorize(&start.location()).await;
    // The callback with a state that is not the flow's (an attacker's link) fails, without a session.
    let forged = cb.replace("state=", "state=AAAAAAAAAAAAAAAAAAAA");
    let r = g.follow_callback(&forged, &mut jar.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r
        .header("set-cookie")
        .is_none_or(|c| !c.starts_with("_yagura_session")));
    // The right callback without the flow cookie (another browser) fails too.
    let r = g.follow_callback(&cb, &mut Jar::default()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("started in another browser"));
    // Parallel sign-ins in two tabs each complete (one flow cookie per state).
    let mut jar2 = Jar::default();
    let s1 = g.browse(AUTH, "/start?provider=github", &jar2).await;
    jar2.take(&s1);
    let s2 = g.browse(AUTH, "/start?provider=github", &jar2).await;
    jar2.take(&s2);
    let (c1, c2) = (
        gh.authorize(&s1.location()).await,
        gh.authorize(&s2.location()).await,
    );
    assert_eq!(
        g.follow_callback(&c2, &mut jar2).await.status,
        StatusCode::FOUND
    );
    assert_eq!(
        g.follow_callback(&c1, &mut jar2).await.status,
        StatusCode::FOUND
    );
    let m = g.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            "yagura_gate_sign_ins_total{provider=\"unknown\",outcome=\"state_mismatch\"}"
        ),
        Some(2.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pkce_mismatch_is_refused() {
    // Code injection: an attacker's code (issued for the attacker's PKCE challenge) pasted into the victim's
    // callback with the victim's own state. The gate exchanges it with the victim's verifier; GitHub refuses.
    let (gh, g, _up) = setup("5m").await;
    let mut attacker = Jar::default();
    let a = g.browse(AUTH, "/start?provider=github", &attacker).await;
    attacker.take(&a);
    gh.next_user("mallory");
    let attacker_cb = gh.authorize(&a.location()).await;
    let attacker_code = url::Url::parse(&attacker_cb)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .to_string();

    let mut victim = Jar::default();
    let v = g.browse(AUTH, "/start?provider=github", &victim).await;
    victim.take(&v);
    let victim_state = url::Url::parse(&v.location())
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let injected = format!(
        "{}?code={attacker_code}&state={}",
        g.url(AUTH, "/oauth2/callback"),
        urlencode(&victim_state)
    );
    let r = g.follow_callback(&injected, &mut victim).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text());
    assert!(!victim.0.contains_key("_yagura_session"));
    let m = g.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            "yagura_gate_sign_ins_total{provider=\"github\",outcome=\"exchange_failed\"}"
        ),
        Some(1.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_expired_cookies_are_refused() {
    let (gh, g, _up) = setup("5m").await;
    let jar = signed_in(&gh, &g, "alice").await;
    let v = jar.0["_yagura_session"].clone();
    // One character changed.
    let mut b = v.clone().into_bytes();
    let i = b.len() / 2;
    b[i] = if b[i] == b'A' { b'B' } else { b'A' };
    let mut bad = Jar::default();
    bad.0
        .insert("_yagura_session".into(), String::from_utf8(b).unwrap());
    let r = g.get("grafana.gate.test", "/", Some(&bad), &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.header("set-cookie").unwrap().contains("Max-Age=0"),
        "a bad cookie is cleared"
    );
    // A session sealed with the same key but already expired (what an old cookie replayed looks like).
    let sealer = yagura_gate::session::Sealer::from_file(&g.dir.path().join("cookie.key")).unwrap();
    let mut s: yagura_gate::session::Session = sealer.open("_yagura_session", &v).unwrap();
    s.exp = s.iat.saturating_sub(1);
    let mut old = Jar::default();
    old.0.insert(
        "_yagura_session".into(),
        sealer.seal("_yagura_session", &s).unwrap(),
    );
    assert_eq!(
        g.get("grafana.gate.test", "/", Some(&old), &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // A cookie sealed with another key.
    let other = yagura_gate::session::Sealer::new(&[vec![7; 32]]).unwrap();
    s.exp = s.iat + 3600;
    let mut forged = Jar::default();
    forged.0.insert(
        "_yagura_session".into(),
        other.seal("_yagura_session", &s).unwrap(),
    );
    assert_eq!(
        g.get("grafana.gate.test", "/", Some(&forged), &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // The attributes of the real one.
    let mut j2 = Jar::default();
    let r = g
        .sign_in_github(&gh, "alice", &mut j2, &g.url("wiki.gate.test", "/"))
        .await;
    let sc: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let sess = sc
        .iter()
        .find(|c| c.starts_with("_yagura_session="))
        .unwrap();
    for attr in [
        "HttpOnly",
        "Secure",
        "SameSite=Lax",
        "Domain=gate.test",
        "Path=/",
    ] {
        assert!(sess.contains(attr), "{sess} lacks {attr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let (gh, g, _up) = setup("5m").await;
    let spoof = [
        ("X-Yagura-User", "root"),
        ("x_yagura_user", "root"),
        ("X_Yagura_Groups", "ictsc:ictsc_infra"),
        ("X-Yagura-Assertion", "forged"),
        ("X-Forwarded-User", "root"),
        ("x_forwarded_email", "root@example.org"),
        ("X-Auth-Request-User", "root"),
        ("Remote-User", "root"),
        ("X-Forwarded-For", "10.9.9.9"),
    ];
    // On a public route, without a session: nothing identity-like arrives.
    let j = g.get("public.gate.test", "/", None, &spoof).await.json();
    let h = j["headers"].as_object().unwrap();
    for (k, _) in spoof {
        let n = k.to_ascii_lowercase();
        if n == "x-forwarded-for" {
            assert_eq!(h[&n][0], "127.0.0.1");
        } else {
            assert!(!h.contains_key(&n), "{k} reached the upstream: {j}");
        }
    }
    // Signed in as bob: the spoofed values do not grant access, and the upstream sees bob.
    let jar = signed_in(&gh, &g, "bob").await;
    assert_eq!(
        g.get("grafana.gate.test", "/", Some(&jar), &spoof)
            .await
            .status,
        403
    );
    let j = g
        .get("wiki.gate.test", "/", Some(&jar), &spoof)
        .await
        .json();
    assert_eq!(j["headers"]["x-yagura-user"], serde_json::json!(["bob"]));
    assert!(j["headers"].get("x_yagura_user").is_none());
    let m = g.metrics_text().await;
    assert!(metric(&m, "yagura_gate_identity_headers_stripped_total").unwrap() >= 8.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_signed_in_browsers_redirect_but_api_and_xhr_get_401() {
    let (_gh, g, _up) = setup("5m").await;
    let nav = g.browse("wiki.gate.test", "/", &Jar::default()).await;
    assert_eq!(nav.status, StatusCode::FOUND);
    for headers in [
        vec![("accept", "application/json")],
        vec![
            ("accept", "text/html"),
            ("x-requested-with", "XMLHttpRequest"),
        ],
        vec![("accept", "*/*"), ("sec-fetch-mode", "cors")],
        vec![],
    ] {
        let r = g.get("wiki.gate.test", "/api", None, &headers).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
        assert!(r.location().is_empty());
        assert_eq!(r.json()["error"], "sign_in_required");
    }
    // A POST from a browser is not redirected either (it would lose its body).
    let req = http::Request::post("/form")
        .header("host", "wiki.gate.test")
        .header("accept", "text/html")
        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"a=1")))
        .unwrap();
    let r = send(g.https, Some((&g.tls_h1, "wiki.gate.test")), req).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_in_but_not_allowed_gets_403() {
    let (gh, g, _up) = setup("5m").await;
    let jar = signed_in(&gh, &g, "mallory").await;
    let r = g.browse("grafana.gate.test", "/", &jar).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.location().is_empty());
    let r = g
        .get(
            "grafana.gate.test",
            "/",
            Some(&jar),
            &[("accept", "application/json")],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.json()["error"], "forbidden");
}

async fn ws_connect(
    g: &Gate,
    host: &str,
    jar: Option<&Jar>,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>,
    u16,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let tcp = tokio::net::TcpStream::connect(g.https).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(g.tls_h1.clone()))
        .connect(
            rustls_pki_types::ServerName::try_from(host.to_string()).unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let mut req = g
        .url(host, "/ws")
        .replace("https", "wss")
        .into_client_request()
        .unwrap();
    if let Some(j) = jar {
        req.headers_mut()
            .insert("cookie", j.header().parse().unwrap());
    }
    match tokio_tungstenite::client_async(req, tls).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_are_held_to_the_same_policy() {
    let (gh, g, _up) = setup("1s").await;
    assert_eq!(
        ws_connect(&g, "grafana.gate.test", None).await.err(),
        Some(401)
    );
    let bob = signed_in(&gh, &g, "bob").await;
    assert_eq!(
        ws_connect(&g, "grafana.gate.test", Some(&bob)).await.err(),
        Some(403)
    );
    let alice = signed_in(&gh, &g, "alice").await;
    let mut ws = ws_connect(&g, "grafana.gate.test", Some(&alice))
        .await
        .unwrap();
    ws.send(Message::text("hi")).await.unwrap();
    assert_eq!(
        ws.next()
            .await
            .unwrap()
            .unwrap()
            .into_text()
            .unwrap()
            .as_str(),
        "hi"
    );
    // Not only at connect: when alice leaves the team, the open tunnel is closed at the next re-check.
    gh.edit("alice", |u| u.teams.clear());
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) => return,
                Some(Ok(m)) if m.is_close() => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "tunnel still open after access was removed");
    let m = g.metrics_text().await;
    assert_eq!(
        metric(
            &m,
            "yagura_gate_websockets_closed_by_policy_total{route=\"grafana\"}"
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_one_membership_recheck() {
    // 3 s, not 1 s: check times are whole seconds, so with 1 s the ten requests straddling a second boundary on
    // a loaded machine made a second re-check, as they should by the policy.
    let (gh, g, _up) = setup("3s").await;
    let jar = signed_in(&gh, &g, "alice").await;
    // `/user` itself, not `/user/emails` or `/user/teams…`.
    let user_calls = |gh: &StandIn| gh.calls().iter().filter(|c| *c == "/user").count();
    let before = user_calls(&gh);
    // Let the session's check time pass (this is the condition under test, not a wait for another task).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let reqs = (0..10).map(|_| g.get("grafana.gate.test", "/", Some(&jar), &[]));
    let statuses: Vec<u16> = futures_util::future::join_all(reqs)
        .await
        .iter()
        .map(|r| r.status.as_u16())
        .collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(user_calls(&gh) - before, 1, "{:?}", gh.calls());
}
