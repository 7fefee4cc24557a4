//! The "3 am guard": background tasks of `yagura watch` that watch the monitoring itself and report alert state
//! to the daemon's [`yagura_alert::SharedSink`] (heartbeats, the Prometheus ingestion probe, the disk guard).

pub mod alerting;
pub mod dirsize;
pub mod disk;
pub mod forecast;
pub mod heartbeat;
pub mod peers;
pub mod prometheus;
mod quota_sys;
pub mod sizing;
pub mod storage;
