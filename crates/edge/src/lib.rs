//! `yagura edge`: a BGP speaker with BFD that announces VIPs to the routers of a cluster so every healthy edge
//! carries them at once (ECMP), and a dead edge is dropped within BFD's detection time.
//!
//! Layout (after holo): [`fsm`] is the pure session state machine, [`rib`] computes UPDATEs, [`network`] and
//! [`sockopt`] are sockets (MD5, GTSM), [`bfd`] is BFD on UDP 3784, [`peer`] is the task per session,
//! [`instance`] owns everything (reload, drain, the announce hook), [`vip`] puts addresses on `lo`, [`control`]
//! is the local HTTP API and its client, [`metrics`] the Prometheus metrics, [`config`] the TOML config.
//! Codecs live in `yagura-bgp` and `yagura-bfd`.

pub mod bfd;
pub mod cli;
pub mod config;
pub mod control;
pub mod fsm;
pub mod instance;
pub mod lb;
pub mod metrics;
pub mod network;
pub mod peer;
pub mod rib;
pub mod sockopt;
pub mod vip;

pub use config::EdgeConfig;
pub use instance::{run, AnnounceHook, EdgeError, HookError};
