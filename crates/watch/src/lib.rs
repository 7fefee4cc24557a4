//! `yagura watch`: one small daemon that collects sFlow v5, NetFlow v5/v9/IPFIX and syslog (RFC 3164/5424 over
//! UDP and TCP) into an embedded store that cannot fill its disk, answers queries over HTTP, and exports
//! Prometheus metrics.
//!
//! Modules: [`config`] (the TOML config), [`listen`] (sockets), [`collect`] (bytes → rows, no I/O),
//! [`pipeline`] (decoder threads and bounded queues), [`store`] (SQLite: writer, retention, queries),
//! [`api`] (HTTP JSON API), [`metrics`], [`daemon`] (start, reload, drain), [`cli`] (`yagura watch …`).
//! The protocol decoders are the `yagura-flow` and `yagura-syslog` crates. The "3 am guard" (heartbeats,
//! Prometheus probe, disk guard, SNMP, alert delivery) will be sibling modules started from [`daemon`].

pub mod api;
pub mod cli;
pub mod collect;
pub mod config;
pub mod daemon;
pub mod guard;
pub mod listen;
pub mod logstore;
pub mod metrics;
pub mod pipeline;
pub mod snmp;
pub mod store;

pub use config::WatchConfig;
pub use daemon::{Daemon, ListenerKind, WatchError};
