//! The generic OIDC provider against a stand-in with Dex's shape: discovery, code flow with PKCE and nonce,
//! ES256 ID tokens verified against the JWKS, groups from the `groups` claim, re-checks through the refresh
//! token, and an ID token signed with a key the JWKS does not list being refused.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::oidc::Oidc;
use common::*;
use http::StatusCode;
use std::sync::Arc;
use std::time::Duration;

async fn setup() -> (Oidc, Gate, Upstream) {
    let idp = Oidc::start().await;
    idp.user("ops", &["infra", "staff"]);
    idp.user("guest", &["staff"]);
    let up = upstream("app").await;
    let cfg = format!(
        "membership_recheck = \"1s\"\n{}\n[[routes]]\nname = \"kibana\"\nhost = \"kibana.gate.test\"\nupstream = \"http://{}\"\nallow_groups = [\"infra\"]\n",
        idp.config(),
        up.addr
    );
    let g = Gate::start(Arc::new(Pki::new()), &cfg).await;
    (idp, g, up)
}

async fn sign_in(idp: &Oidc, g: &Gate, user: &str) -> (Resp, Jar) {
    idp.next_user(user);
    let mut jar = Jar::default();
    let start = g
        .browse(
            AUTH,
            &format!(
                "/start?provider=oidc&rd={}",
                urlencode(&g.url("kibana.gate.test", "/app"))
            ),
            &jar,
        )
        .await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
    jar.take(&start);
    let loc = start.location();
    assert!(
        loc.contains("code_challenge_method=S256") && loc.contains("nonce="),
        "{loc}"
    );
    let cb = idp.authorize(&loc).await;
    let r = g.follow_callback(&cb, &mut jar).await;
    (r, jar)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_groups_decide_and_are_rechecked() {
    let (idp, g, _up) = setup().await;
    let page = g.browse(AUTH, "/sign_in", &Jar::default()).await;
    assert!(page.text().contains("Continue with Dex"));

    let (r, jar) = sign_in(&idp, &g, "ops").await;
    assert_eq!(r.status, StatusCode::FOUND, "{}", r.text());
    let j = g.browse("kibana.gate.test", "/app", &jar).await.json();
    assert_eq!(j["headers"]["x-yagura-user"][0], "ops");
    assert_eq!(j["headers"]["x-yagura-groups"][0], "infra,staff");

    let (_, guest) = sign_in(&idp, &g, "guest").await;
    assert_eq!(
        g.browse("kibana.gate.test", "/app", &guest).await.status,
        StatusCode::FORBIDDEN
    );

    // Removed from the group at the provider: the refresh-token re-check takes access away.
    idp.user("ops", &["staff"]);
    let g2 = &g;
    eventually("oidc access removed", Duration::from_secs(10), || {
        let j = jar.clone();
        async move { g2.browse("kibana.gate.test", "/app", &j).await.status == StatusCode::FORBIDDEN }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_token_signed_by_an_unknown_key_is_refused() {
    let (idp, g, _up) = setup().await;
    idp.forge(true);
    let (r, jar) = sign_in(&idp, &g, "ops").await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY, "{}", r.text());
    assert!(!jar.0.contains_key("_yagura_session"));
}
