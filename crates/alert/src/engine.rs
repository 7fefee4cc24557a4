//! The alert engine: an [`AlertSink`] whose `update` only hands the alert to a task. That task runs the
//! [`Dispatcher`] on the tokio clock and fans notifications out to one worker per notifier; each worker writes
//! the notification to its [`Spool`] first, then delivers it over HTTP with exponential backoff and jitter, and
//! deletes it after a 2xx. A restart picks up whatever the spool still holds.

use crate::config::{AlertsConfig, NotifierConfig, NotifierKind};
use crate::metrics::{AlertMetrics, NotifierLabel};
use crate::payload;
use crate::policy::{coalesce, AlertState, Dispatcher, Notification, Tick};
use crate::spool::{Entry, Spool, SpoolError};
use crate::{Alert, AlertSink, Status};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Capacity of the queue between guards and the engine task.
const QUEUE: usize = 65_536;

/// The dispatcher's clock reads this at start, so times before the start (restored from a snapshot) are
/// representable.
const TICK_BASE: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Why the engine could not start or reload.
#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A notifier's URL is not available (its environment variable is unset). Never contains the URL.
    #[error("{0}")]
    Url(String),
    /// A notifier's kind is unknown (the config was not validated).
    #[error("notifier `{0}`: unknown kind")]
    Kind(String),
    /// The spool directory could not be created or read.
    #[error(transparent)]
    Spool(#[from] SpoolError),
    /// The HTTP client could not be built.
    #[error("HTTP client: {0}")]
    Client(String),
    /// The engine task has stopped.
    #[error("the alert engine has stopped")]
    Stopped,
}

/// A notifier ready to run: config, kind and resolved URL.
#[derive(Clone)]
struct Target {
    cfg: NotifierConfig,
    kind: NotifierKind,
    url: String,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it may be a secret.
        f.debug_struct("Target")
            .field("name", &self.cfg.name)
            .field("kind", &self.kind)
            .finish()
    }
}

fn resolve(cfg: &AlertsConfig) -> Result<Vec<Target>, AlertError> {
    cfg.notifiers
        .iter()
        .map(|n| {
            let kind = n.kind().ok_or_else(|| AlertError::Kind(n.name.clone()))?;
            let url = n.resolve_url().map_err(AlertError::Url)?;
            Ok(Target {
                cfg: n.clone(),
                kind,
                url,
            })
        })
        .collect()
}

/// Delivery settings shared by every worker.
#[derive(Debug, Clone)]
struct Delivery {
    retry_min: Duration,
    retry_max: Duration,
    external_url: String,
}

impl Delivery {
    fn of(cfg: &AlertsConfig) -> Self {
        Self {
            retry_min: cfg.retry_min,
            retry_max: cfg.retry_max,
            external_url: cfg.external_url.clone().unwrap_or_default(),
        }
    }

    /// The wait after `failures` consecutive failures: `retry_min · 2^(failures-1)` capped at `retry_max`, then
    /// a random point in its upper half (jitter spreads retries of many daemons).
    fn backoff(&self, failures: u32) -> Duration {
        let exp = self
            .retry_min
            .saturating_mul(1u32 << failures.saturating_sub(1).min(20));
        let base = exp.min(self.retry_max);
        base.mul_f64(0.5 + 0.5 * fastrand::f64())
    }
}

enum Cmd {
    Update(Alert),
    Reload(
        Box<AlertsConfig>,
        PathBuf,
        oneshot::Sender<Result<(), AlertError>>,
    ),
    Shutdown(oneshot::Sender<()>),
}

enum WorkCmd {
    Notify(Notification),
    Resend(Vec<AlertState>),
    Stop,
}

struct WorkerHandle {
    target: Target,
    tx: mpsc::UnboundedSender<WorkCmd>,
    join: JoinHandle<()>,
    next_resend: Option<Instant>,
}

/// The running engine; cheap to share (`Arc`), and the daemon's [`crate::SharedSink`].
#[derive(Debug)]
pub struct Engine {
    tx: mpsc::Sender<Cmd>,
    metrics: AlertMetrics,
    firing: Arc<Mutex<Vec<AlertState>>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl AlertSink for Engine {
    fn update(&self, alert: Alert) {
        match self.tx.try_send(Cmd::Update(alert)) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.metrics.dropped.inc();
                tracing::error!("alert engine queue full: an alert update was dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.metrics.dropped.inc();
                tracing::debug!("alert engine stopped: update after shutdown ignored");
            }
        }
    }
}

impl Engine {
    /// Starts the engine on the current tokio runtime with `cfg`, spooling under `spool` (each notifier in its
    /// own subdirectory). Fails if a notifier's URL variable is unset or the spool cannot be created.
    pub fn start(
        cfg: &AlertsConfig,
        spool: &Path,
        metrics: AlertMetrics,
    ) -> Result<Arc<Self>, AlertError> {
        let targets = resolve(cfg)?;
        let client = client(cfg.timeout)?;
        let mut spools = Vec::new();
        for t in &targets {
            spools.push(Spool::open(spool, &t.cfg.name)?);
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let firing = Arc::new(Mutex::new(Vec::new()));
        let mut dispatcher = Dispatcher::new(cfg.timing());
        let origin = Instant::now();
        if let Some(snap) = crate::spool::take_snapshot(spool) {
            let n: usize = snap.groups.iter().map(|g| g.alerts.len()).sum();
            tracing::info!(alerts = n, "alerts announced before the restart restored");
            dispatcher.restore(snap, TICK_BASE, SystemTime::now(), cfg.restart_confirm);
        }
        let mut task = Task {
            dispatcher,
            labels: cfg.labels.clone(),
            delivery: Delivery::of(cfg),
            spool_root: spool.to_path_buf(),
            client,
            workers: BTreeMap::new(),
            metrics: metrics.clone(),
            firing: firing.clone(),
            origin,
            config: cfg.clone(),
        };
        task.publish();
        for (t, s) in targets.into_iter().zip(spools) {
            task.spawn_worker(t, s);
        }
        tracing::info!(
            notifiers = ?cfg.notifiers.iter().map(|n| format!("{}({})", n.name, n.kind)).collect::<Vec<_>>(),
            spool = %spool.display(),
            "alert engine running"
        );
        let join = tokio::spawn(task.run(rx));
        Ok(Arc::new(Self {
            tx,
            metrics,
            firing,
            task: Mutex::new(Some(join)),
        }))
    }

    /// Applies a new config: timing at once; notifiers added, removed or changed are started/stopped (a changed
    /// one restarts and re-reads its spool). If a URL is unavailable nothing changes and the error is returned.
    /// `alerts.labels` changes need a restart (alerts already known keep their identity).
    pub async fn reload(&self, cfg: &AlertsConfig, spool: &Path) -> Result<(), AlertError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Cmd::Reload(Box::new(cfg.clone()), spool.to_path_buf(), ack))
            .await
            .map_err(|_| AlertError::Stopped)?;
        done.await.map_err(|_| AlertError::Stopped)?
    }

    /// Sends every pending change to the spool now (ignoring group timers), gives each receiver a last short
    /// chance to take what it has, and stops. What is left stays in the spool for the next start.
    pub async fn shutdown(&self) {
        let (ack, done) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(ack)).await.is_ok() {
            let _ = done.await;
        }
        let join = self.task.lock().ok().and_then(|mut j| j.take());
        if let Some(j) = join {
            let _ = j.await;
        }
    }

    /// The alerts firing now (including those still in their group wait).
    pub fn firing(&self) -> Vec<AlertState> {
        self.firing.lock().map(|f| f.clone()).unwrap_or_default()
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &AlertMetrics {
        &self.metrics
    }
}

/// A request error with its causes (`error sending request: tcp connect error: Connection refused`), never the
/// URL.
pub fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(&e);
    while let Some(c) = cur {
        let t = c.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        cur = c.source();
    }
    s
}

fn client(timeout: Duration) -> Result<reqwest::Client, AlertError> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("yagura-watch/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| AlertError::Client(e.without_url().to_string()))
}

struct Task {
    dispatcher: Dispatcher,
    labels: BTreeMap<String, String>,
    delivery: Delivery,
    spool_root: PathBuf,
    client: reqwest::Client,
    workers: BTreeMap<String, WorkerHandle>,
    metrics: AlertMetrics,
    firing: Arc<Mutex<Vec<AlertState>>>,
    origin: Instant,
    config: AlertsConfig,
}

impl Task {
    fn now(&self) -> Tick {
        Instant::now().saturating_duration_since(self.origin) + TICK_BASE
    }

    fn instant(&self, t: Tick) -> Instant {
        self.origin + t.saturating_sub(TICK_BASE)
    }

    fn spawn_worker(&mut self, target: Target, spool: Spool) {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = Worker {
            target: target.clone(),
            spool,
            client: self.client.clone(),
            delivery: self.delivery.clone(),
            metrics: self.metrics.clone(),
            label: NotifierLabel::of(&target.cfg.name),
        };
        let join = tokio::spawn(w.run(rx));
        let next_resend = (target.kind == NotifierKind::Alertmanager)
            .then(|| Instant::now() + target.cfg.resend_interval);
        self.workers.insert(
            target.cfg.name.clone(),
            WorkerHandle {
                target,
                tx,
                join,
                next_resend,
            },
        );
    }

    async fn stop_worker(&mut self, name: &str) {
        if let Some(w) = self.workers.remove(name) {
            let _ = w.tx.send(WorkCmd::Stop);
            let _ = w.join.await;
        }
    }

    fn fan_out(&self, notes: Vec<Notification>) {
        for n in notes {
            tracing::debug!(group = %n.group_key, alerts = n.alerts.len(), "notification due");
            for w in self.workers.values() {
                let _ = w.tx.send(WorkCmd::Notify(n.clone()));
            }
        }
    }

    fn publish(&self) {
        let f = self.dispatcher.firing();
        self.metrics.firing.set(f.len() as i64);
        if let Ok(mut s) = self.firing.lock() {
            *s = f;
        }
    }

    fn update(&mut self, mut alert: Alert) {
        for (k, v) in &self.labels {
            alert.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let now = self.now();
        let (name, labels, status, sev) = (
            alert.name.clone(),
            alert.labels.clone(),
            alert.status,
            alert.severity,
        );
        let summary = alert
            .annotations
            .get("summary")
            .cloned()
            .unwrap_or_default();
        if self.dispatcher.update(alert, now) {
            match status {
                Status::Firing => {
                    tracing::warn!(alert = %name, ?labels, severity = sev.as_str(), %summary, "alert firing")
                }
                Status::Resolved => tracing::info!(alert = %name, ?labels, "alert resolved"),
            }
            self.publish();
        }
    }

    async fn reload(&mut self, cfg: AlertsConfig, spool: PathBuf) -> Result<(), AlertError> {
        let targets = resolve(&cfg)?;
        let root_changed = spool != self.spool_root;
        let delivery_changed = cfg.retry_min != self.config.retry_min
            || cfg.retry_max != self.config.retry_max
            || cfg.timeout != self.config.timeout
            || cfg.external_url != self.config.external_url;
        let mut opened = Vec::new();
        for t in &targets {
            let keep = !root_changed
                && !delivery_changed
                && self
                    .workers
                    .get(&t.cfg.name)
                    .is_some_and(|w| w.target.cfg == t.cfg && w.target.url == t.url);
            if !keep {
                opened.push((t.clone(), Spool::open(&spool, &t.cfg.name)?));
            }
        }
        if cfg.labels != self.config.labels {
            tracing::warn!("alerts.labels changes take effect at the next restart");
        }
        if delivery_changed {
            self.client = client(cfg.timeout)?;
        }
        self.delivery = Delivery::of(&cfg);
        let wanted: Vec<String> = targets.iter().map(|t| t.cfg.name.clone()).collect();
        let gone: Vec<String> = self
            .workers
            .keys()
            .filter(|n| !wanted.contains(n))
            .cloned()
            .collect();
        for n in gone {
            tracing::info!(notifier = %n, "notifier removed (its spool stays on disk)");
            self.stop_worker(&n).await;
            self.metrics.spool_depth.remove(&NotifierLabel::of(&n));
        }
        for (t, s) in opened {
            let name = t.cfg.name.clone();
            self.stop_worker(&name).await;
            tracing::info!(notifier = %name, kind = t.kind.as_str(), "notifier (re)started");
            self.spawn_worker(t, s);
        }
        self.spool_root = spool;
        let now = self.now();
        self.dispatcher.set_timing(cfg.timing(), now);
        let keep_labels = self.labels.clone();
        self.config = cfg;
        self.config.labels = keep_labels;
        Ok(())
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let due = self.dispatcher.next_due().map(|t| self.instant(t));
            let resend = self.workers.values().filter_map(|w| w.next_resend).min();
            let wake = match (due, resend) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                cmd = rx.recv() => match cmd {
                    Some(Cmd::Update(a)) => self.update(a),
                    Some(Cmd::Reload(cfg, spool, ack)) => {
                        let r = self.reload(*cfg, spool).await;
                        let _ = ack.send(r);
                    }
                    Some(Cmd::Shutdown(ack)) => {
                        let now = self.now();
                        let notes = self.dispatcher.flush_all(now);
                        self.fan_out(notes);
                        let snap = self.dispatcher.snapshot(now, SystemTime::now());
                        if let Err(e) = crate::spool::save_snapshot(&self.spool_root, &snap) {
                            self.metrics.spool_errors.inc();
                            tracing::error!(error = %e, "cannot save the alert state; a restart may repeat alerts");
                        }
                        let names: Vec<String> = self.workers.keys().cloned().collect();
                        for n in names {
                            self.stop_worker(&n).await;
                        }
                        let _ = ack.send(());
                        return;
                    }
                    None => return,
                },
                () = sleep => {
                    let now = self.now();
                    let notes = self.dispatcher.poll(now);
                    self.fan_out(notes);
                    self.publish();
                    let t = Instant::now();
                    let firing = self.dispatcher.firing();
                    for w in self.workers.values_mut() {
                        if w.next_resend.is_some_and(|r| r <= t) {
                            w.next_resend = Some(t + w.target.cfg.resend_interval);
                            if !firing.is_empty() {
                                let _ = w.tx.send(WorkCmd::Resend(firing.clone()));
                            }
                        }
                    }
                }
            }
        }
    }
}

struct Pending {
    entry: Entry,
}

struct Worker {
    target: Target,
    spool: Spool,
    client: reqwest::Client,
    delivery: Delivery,
    metrics: AlertMetrics,
    label: NotifierLabel,
}

/// How long a stopping worker keeps trying to deliver what it holds.
const STOP_GRACE: Duration = Duration::from_secs(3);

impl Worker {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<WorkCmd>) {
        let mut pending: HashMap<String, Pending> = HashMap::new();
        let mut seq = 0u64;
        let loaded = {
            let s = self.spool.clone();
            tokio::task::spawn_blocking(move || s.load()).await
        };
        match loaded {
            Ok(Ok(entries)) => {
                if !entries.is_empty() {
                    tracing::info!(notifier = %self.target.cfg.name, count = entries.len(), "undelivered notifications found in the spool");
                }
                for e in entries {
                    seq = seq.max(e.seq);
                    pending.insert(e.notification.group_key.clone(), Pending { entry: e });
                }
            }
            Ok(Err(e)) => {
                self.metrics.spool_errors.inc();
                tracing::error!(notifier = %self.target.cfg.name, error = %e, "cannot read the alert spool");
            }
            Err(_) => {}
        }
        self.depth(&pending);
        let mut failures = 0u32;
        let mut retry_at: Option<Instant> = None;
        loop {
            let wake = if pending.is_empty() {
                None
            } else {
                Some(retry_at.unwrap_or_else(Instant::now))
            };
            let sleep = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                cmd = rx.recv() => match cmd {
                    Some(WorkCmd::Notify(n)) => {
                        seq += 1;
                        let n = match pending.get(&n.group_key) {
                            Some(p) => coalesce(&p.entry.notification, n),
                            None => n,
                        };
                        let entry = Entry { version: 1, seq, queued: SystemTime::now(), notification: n };
                        self.persist(&entry).await;
                        pending.insert(entry.notification.group_key.clone(), Pending { entry });
                        self.depth(&pending);
                    }
                    Some(WorkCmd::Resend(alerts)) => {
                        if retry_at.is_none() && self.target.kind == NotifierKind::Alertmanager {
                            let body = payload::alertmanager(&alerts, &self.delivery.external_url, SystemTime::now(), self.target.cfg.resend_interval * 4);
                            if let Err(e) = self.post(&body).await {
                                self.metrics.failed.get_or_create(&self.label).inc();
                                tracing::warn!(notifier = %self.target.cfg.name, error = %e, "re-posting firing alerts failed");
                            }
                        }
                    }
                    Some(WorkCmd::Stop) | None => {
                        if retry_at.is_none() {
                            let deadline = Instant::now() + STOP_GRACE;
                            while Instant::now() < deadline {
                                if !self.deliver_oldest(&mut pending).await {
                                    break;
                                }
                            }
                        }
                        self.depth(&pending);
                        return;
                    }
                },
                () = sleep => {
                    if self.deliver_oldest(&mut pending).await {
                        failures = 0;
                        retry_at = None;
                    } else if !pending.is_empty() {
                        failures = failures.saturating_add(1);
                        let wait = self.delivery.backoff(failures);
                        retry_at = Some(Instant::now() + wait);
                        tracing::debug!(notifier = %self.target.cfg.name, ?wait, failures, "retrying later");
                    }
                    self.depth(&pending);
                }
            }
        }
    }

    fn depth(&self, pending: &HashMap<String, Pending>) {
        self.metrics
            .spool_depth
            .get_or_create(&self.label)
            .set(pending.len() as i64);
    }

    async fn persist(&self, e: &Entry) {
        let (s, e) = (self.spool.clone(), e.clone());
        let r = tokio::task::spawn_blocking(move || s.write(&e)).await;
        if let Ok(Err(err)) = r {
            self.metrics.spool_errors.inc();
            tracing::error!(notifier = %self.target.cfg.name, error = %err, "cannot write the alert spool; the notification is kept in memory only");
        }
    }

    /// Delivers the oldest pending notification; true on success (or when nothing was pending).
    async fn deliver_oldest(&self, pending: &mut HashMap<String, Pending>) -> bool {
        let Some(key) = pending
            .iter()
            .min_by_key(|(_, p)| p.entry.seq)
            .map(|(k, _)| k.clone())
        else {
            return false;
        };
        let Some(p) = pending.get(&key) else {
            return false;
        };
        let n = &p.entry.notification;
        let body = match self.target.kind {
            NotifierKind::Slack => payload::slack(n),
            NotifierKind::Discord => payload::discord(n),
            NotifierKind::Webhook => {
                payload::webhook(n, &self.target.cfg.name, &self.delivery.external_url)
            }
            NotifierKind::Alertmanager => payload::alertmanager(
                &n.alerts,
                &self.delivery.external_url,
                SystemTime::now(),
                self.target.cfg.resend_interval * 4,
            ),
        };
        match self.post(&body).await {
            Ok(()) => {
                self.metrics.sent.get_or_create(&self.label).inc();
                tracing::info!(notifier = %self.target.cfg.name, group = %key, alerts = n.alerts.len(), status = ?n.status(), "notification delivered");
                pending.remove(&key);
                let s = self.spool.clone();
                let r = tokio::task::spawn_blocking(move || s.remove(&key)).await;
                if let Ok(Err(e)) = r {
                    self.metrics.spool_errors.inc();
                    tracing::error!(notifier = %self.target.cfg.name, error = %e, "cannot remove a delivered notification from the spool");
                }
                true
            }
            Err(e) => {
                self.metrics.failed.get_or_create(&self.label).inc();
                tracing::warn!(notifier = %self.target.cfg.name, kind = self.target.kind.as_str(), error = %e, "delivery failed; kept in the spool");
                false
            }
        }
    }

    /// One POST; the error text never contains the URL.
    async fn post(&self, body: &serde_json::Value) -> Result<(), String> {
        let url = match self.target.kind {
            NotifierKind::Alertmanager => {
                format!("{}/api/v2/alerts", self.target.url.trim_end_matches('/'))
            }
            _ => self.target.url.clone(),
        };
        let r = self
            .client
            .post(url)
            .json(body)
            .send()
            .await
            .map_err(describe)?;
        let status = r.status();
        if status.is_success() {
            Ok(())
        } else {
            let text = r.text().await.unwrap_or_default();
            let text: String = text.chars().take(200).collect();
            Err(format!("HTTP {status}: {text}"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[tokio::test]
    async fn errors_never_carry_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = client(Duration::from_secs(2))
            .unwrap()
            .post(format!(
                "http://127.0.0.1:{port}/services/T0/B0/SECRETTOKEN"
            ))
            .send()
            .await
            .unwrap_err();
        let d = describe(e);
        assert!(!d.contains("SECRETTOKEN"), "{d}");
        assert!(d.to_lowercase().contains("connect"), "{d}");
    }

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let d = Delivery {
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            external_url: String::new(),
        };
        for _ in 0..100 {
            let b1 = d.backoff(1);
            assert!(b1 >= Duration::from_millis(500) && b1 <= Duration::from_secs(1));
            let b4 = d.backoff(4);
            assert!(b4 >= Duration::from_secs(4) && b4 <= Duration::from_secs(8));
            let b30 = d.backoff(30);
            assert!(b30 >= Duration::from_secs(30) && b30 <= Duration::from_secs(60));
        }
    }
}
