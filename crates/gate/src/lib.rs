//! `yagura gate`: the L7 tier — TLS ingress and identity-aware proxy in one daemon.
//!
//! HTTPS with SNI over several certificates (reloaded when their files change), HTTP→HTTPS redirects, HTTP/1.1
//! and HTTP/2, websockets; routes by host and path prefix to upstreams with timeouts, retries and health checks;
//! per-route policy (public, any signed-in user, or GitHub users / orgs / `org:team` / OIDC groups); GitHub and
//! OIDC sign-in with `state` + PKCE; sealed session cookies any replica accepts, with membership re-read every few
//! minutes; identity headers stripped (every spelling) and re-added with an ES256 assertion and its JWKS;
//! forward-auth at `/auth`; Prometheus metrics. See `docs/gate.md`.
//!
//! Pure parts ([`policy`], [`session`], [`assertion`], [`pages`], [`config`]) are separate from I/O ([`server`],
//! [`proxy`], [`auth`], [`upstream`], [`conns`], [`h1`], [`github`], [`oidc`], [`httpc`], [`tls`]).

pub mod assertion;
pub mod auth;
pub mod balance;
pub mod cli;
pub mod config;
pub mod conns;
pub mod github;
pub mod h1;
pub mod httpc;
pub mod metrics;
pub mod oidc;
pub mod pages;
pub mod policy;
pub mod proxy;
pub mod server;
pub mod session;
pub mod state;
pub mod tls;
pub mod upstream;
pub mod worker;

pub use config::GateConfig;
pub use server::{run_blocking, start, GateError, Running};
