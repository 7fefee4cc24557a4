//! When to notify: grouping, group wait, group interval, repeat interval and resolved messages, as a pure state
//! machine driven by a clock the caller passes in (no I/O, no timers), so every timing decision is testable.
//!
//! The rules follow Alertmanager's: alerts are grouped by the values of `group_by` labels; a new group is
//! notified `group_wait` after its first alert; later changes (an alert starts or resolves) are sent at most
//! every `group_interval`; a group whose firing set did not change is re-sent every `repeat_interval`. Each
//! notification carries the group's whole current state (every firing alert, plus the alerts resolved since
//! the last notification), so a newer notification supersedes an older one.

use crate::{Alert, Severity, Status};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

/// A reading of the caller's monotonic clock (time since any fixed origin).
pub type Tick = Duration;

/// The timing and grouping rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Labels whose values form a group (`alertname` and `severity` name the alert's own fields); `["..."]`
    /// puts every alert in its own group.
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification.
    pub group_wait: Duration,
    /// Least time between two notifications of one group that carry changes.
    pub group_interval: Duration,
    /// How often an unchanged group with firing alerts is notified again.
    pub repeat_interval: Duration,
    /// Whether resolved alerts are notified.
    pub send_resolved: bool,
}

impl Default for Timing {
    fn default() -> Self {
        Self {
            group_by: vec!["alertname".into()],
            group_wait: Duration::from_secs(30),
            group_interval: Duration::from_secs(300),
            repeat_interval: Duration::from_secs(4 * 3600),
            send_resolved: true,
        }
    }
}

/// One alert as notified: its identity, text and life span.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertState {
    /// `alertname`.
    pub name: String,
    /// Identifying labels (without `alertname` and `severity`).
    pub labels: BTreeMap<String, String>,
    /// Annotations (`summary`, `description`).
    pub annotations: BTreeMap<String, String>,
    /// Urgency.
    pub severity: Severity,
    /// Firing or resolved.
    pub status: Status,
    /// When it started firing.
    pub starts_at: SystemTime,
    /// When it resolved.
    pub ends_at: Option<SystemTime>,
    /// [`Alert::fingerprint`].
    pub fingerprint: String,
}

impl AlertState {
    /// Every label including `alertname` and `severity`.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("alertname".into(), self.name.clone());
        l.insert("severity".into(), self.severity.as_str().into());
        l
    }
}

/// What to send for one group at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// Identifies the group (stable across runs): `{}:{alertname="X"}`.
    pub group_key: String,
    /// The group's `group_by` label values.
    pub group_labels: BTreeMap<String, String>,
    /// Firing alerts first, then resolved ones, each sorted by fingerprint.
    pub alerts: Vec<AlertState>,
}

impl Notification {
    /// `Firing` if any alert fires.
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// The firing alerts.
    pub fn firing(&self) -> impl Iterator<Item = &AlertState> {
        self.alerts.iter().filter(|a| a.status == Status::Firing)
    }

    /// The resolved alerts.
    pub fn resolved(&self) -> impl Iterator<Item = &AlertState> {
        self.alerts.iter().filter(|a| a.status == Status::Resolved)
    }
}

/// Merges a newer notification of a group into an older one still waiting for delivery: the newer carries the
/// group's whole state, so it replaces the older — except that alerts the older one reported *resolved* and the
/// newer does not mention at all are carried over, so no resolution is lost. Firing alerts of the older one that
/// the newer omits ended without a resolved message being due (`send_resolved = false`) and are dropped.
pub fn coalesce(older: &Notification, newer: Notification) -> Notification {
    let mut out = newer;
    let known: BTreeSet<String> = out.alerts.iter().map(|a| a.fingerprint.clone()).collect();
    for a in older.resolved() {
        if !known.contains(&a.fingerprint) {
            out.alerts.push(a.clone());
        }
    }
    sort_alerts(&mut out.alerts);
    out
}

fn sort_alerts(v: &mut [AlertState]) {
    v.sort_by(|a, b| {
        (a.status == Status::Resolved, &a.fingerprint)
            .cmp(&(b.status == Status::Resolved, &b.fingerprint))
    });
}

#[derive(Debug, Clone)]
struct Group {
    labels: BTreeMap<String, String>,
    alerts: BTreeMap<String, AlertState>,
    /// Fingerprints notified as firing by the last notification.
    notified: BTreeSet<String>,
    /// A flush is scheduled at this time (something changed).
    next_flush: Option<Tick>,
    last_flush: Option<Tick>,
    first_seen: Tick,
    /// Alerts restored from a snapshot that no guard has reported firing again yet: resolved at the given
    /// tick (with that end time) unless confirmed.
    unconfirmed: BTreeMap<String, (Tick, SystemTime)>,
}

/// What a dispatcher had announced, saved at shutdown so that a restart neither repeats nor forgets it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Format version (1).
    pub version: u32,
    /// Groups with alerts announced firing, and groups notified less than group_interval ago.
    pub groups: Vec<SnapshotGroup>,
}

/// One group of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotGroup {
    /// The group key.
    pub key: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// The alerts its last notification announced firing: still firing, or resolved with the resolved message
    /// not sent yet.
    pub alerts: Vec<AlertState>,
    /// When that notification was made (wall clock).
    pub last_flush: SystemTime,
}

/// The state machine: feed it alert updates and ask it, at the times it names, what to send.
#[derive(Debug, Clone)]
pub struct Dispatcher {
    timing: Timing,
    groups: BTreeMap<String, Group>,
}

/// The group key of an alert under `group_by`, and the group's labels.
pub fn group_of(alert: &Alert, group_by: &[String]) -> (String, BTreeMap<String, String>) {
    let mut labels = BTreeMap::new();
    if group_by.iter().any(|g| g == "...") {
        labels.insert("alertname".to_string(), alert.name.clone());
        labels.insert("severity".to_string(), alert.severity.as_str().to_string());
        labels.extend(alert.labels.clone());
    } else {
        for g in group_by {
            let v = match g.as_str() {
                "alertname" => Some(alert.name.clone()),
                "severity" => Some(alert.severity.as_str().to_string()),
                other => alert.labels.get(other).cloned(),
            };
            if let Some(v) = v {
                labels.insert(g.clone(), v);
            }
        }
    }
    let inner: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect();
    (format!("{{}}:{{{}}}", inner.join(",")), labels)
}

impl Dispatcher {
    /// An empty dispatcher.
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            groups: BTreeMap::new(),
        }
    }

    /// The rules in force.
    pub fn timing(&self) -> &Timing {
        &self.timing
    }

    /// Changes the rules (reload). Grouping changes regroup the alerts known now; their groups start afresh, so
    /// firing alerts are notified again after `group_wait`.
    pub fn set_timing(&mut self, timing: Timing, now: Tick) {
        if timing.group_by == self.timing.group_by {
            self.timing = timing;
            return;
        }
        let old = std::mem::take(&mut self.groups);
        self.timing = timing;
        for g in old.into_values() {
            for a in g.alerts.into_values() {
                if a.status == Status::Firing {
                    let alert = Alert {
                        name: a.name,
                        labels: a.labels,
                        annotations: a.annotations,
                        severity: a.severity,
                        status: Status::Firing,
                        at: a.starts_at,
                    };
                    self.update(alert, now);
                }
            }
        }
    }

    /// Applies one update. Returns true if it changed what will be notified (a new alert, a resolution, or
    /// a re-fire); refreshing an alert that already fires only updates its text.
    pub fn update(&mut self, alert: Alert, now: Tick) -> bool {
        let (key, labels) = group_of(&alert, &self.timing.group_by);
        let fp = alert.fingerprint();
        let timing = &self.timing;
        match alert.status {
            Status::Firing => {
                let g = self.groups.entry(key).or_insert_with(|| Group {
                    labels,
                    alerts: BTreeMap::new(),
                    notified: BTreeSet::new(),
                    next_flush: None,
                    last_flush: None,
                    first_seen: now,
                    unconfirmed: BTreeMap::new(),
                });
                g.unconfirmed.remove(&fp);
                if let Some(a) = g.alerts.get_mut(&fp) {
                    if a.status == Status::Firing {
                        a.annotations = alert.annotations;
                        a.severity = alert.severity;
                        return false;
                    }
                }
                g.alerts.insert(
                    fp.clone(),
                    AlertState {
                        name: alert.name,
                        labels: alert.labels,
                        annotations: alert.annotations,
                        severity: alert.severity,
                        status: Status::Firing,
                        starts_at: alert.at,
                        ends_at: None,
                        fingerprint: fp,
                    },
                );
                schedule(g, timing, now);
                true
            }
            Status::Resolved => {
                let Some(g) = self.groups.get_mut(&key) else {
                    return false;
                };
                g.unconfirmed.remove(&fp);
                let Some(a) = g.alerts.get_mut(&fp) else {
                    return false;
                };
                if a.status == Status::Resolved {
                    return false;
                }
                if !g.notified.contains(&fp) {
                    // Never announced: forget it quietly.
                    g.alerts.remove(&fp);
                    if g.alerts.is_empty() && g.notified.is_empty() {
                        g.next_flush = None;
                        if expendable(g, timing, now) {
                            self.groups.remove(&key);
                        }
                    }
                    return true;
                }
                a.status = Status::Resolved;
                a.ends_at = Some(alert.at);
                if !alert.annotations.is_empty() {
                    a.annotations = alert.annotations;
                }
                schedule(g, timing, now);
                true
            }
        }
    }

    /// When [`Dispatcher::poll`] next has something to do, if ever.
    pub fn next_due(&self) -> Option<Tick> {
        let expiry = self
            .groups
            .values()
            .flat_map(|g| g.unconfirmed.values().map(|(t, _)| *t))
            .min();
        let flush = self
            .groups
            .values()
            .filter_map(|g| due(g, &self.timing))
            .min();
        match (flush, expiry) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// What was announced firing, for [`Dispatcher::restore`] after a restart (`wall` is the wall clock at
    /// `now`), including resolutions not sent yet. Alerts never announced are not in it: guards report them
    /// again after the start.
    pub fn snapshot(&self, now: Tick, wall: SystemTime) -> Snapshot {
        let groups = self
            .groups
            .iter()
            .filter(|(_, g)| !g.notified.is_empty() || !expendable(g, &self.timing, now))
            .map(|(k, g)| SnapshotGroup {
                key: k.clone(),
                labels: g.labels.clone(),
                alerts: g
                    .alerts
                    .values()
                    .filter(|a| g.notified.contains(&a.fingerprint))
                    .cloned()
                    .collect(),
                last_flush: wall - now.saturating_sub(g.last_flush.unwrap_or(now)),
            })
            .collect();
        Snapshot { version: 1, groups }
    }

    /// Takes back what a previous run announced: those alerts count as notified (no repeat before their
    /// repeat interval, a resolved message when a guard reports them resolved). Guards report the current state
    /// after a start; an alert no guard confirms as firing within `confirm` is resolved then (its guard is gone
    /// or its condition ended while the daemon was down).
    pub fn restore(&mut self, snap: Snapshot, now: Tick, wall: SystemTime, confirm: Duration) {
        for sg in snap.groups {
            if self.groups.contains_key(&sg.key) {
                continue;
            }
            let age = wall.duration_since(sg.last_flush).unwrap_or_default();
            let mut g = Group {
                labels: sg.labels,
                alerts: BTreeMap::new(),
                notified: BTreeSet::new(),
                next_flush: None,
                last_flush: Some(now.saturating_sub(age)),
                first_seen: now,
                unconfirmed: BTreeMap::new(),
            };
            for a in sg.alerts {
                g.notified.insert(a.fingerprint.clone());
                if a.status == Status::Firing {
                    g.unconfirmed
                        .insert(a.fingerprint.clone(), (now + confirm, wall + confirm));
                } else {
                    schedule(&mut g, &self.timing, now);
                }
                g.alerts.insert(a.fingerprint.clone(), a);
            }
            self.groups.insert(sg.key, g);
        }
    }

    /// The notifications due at `now`; call it at (or after) [`Dispatcher::next_due`].
    pub fn poll(&mut self, now: Tick) -> Vec<Notification> {
        let mut out = Vec::new();
        let timing = &self.timing;
        for g in self.groups.values_mut() {
            let expired: Vec<(String, SystemTime)> = g
                .unconfirmed
                .iter()
                .filter(|(_, (t, _))| *t <= now)
                .map(|(fp, (_, wall))| (fp.clone(), *wall))
                .collect();
            for (fp, wall) in expired {
                g.unconfirmed.remove(&fp);
                if let Some(a) = g.alerts.get_mut(&fp) {
                    a.status = Status::Resolved;
                    a.ends_at = Some(wall);
                    schedule(g, timing, now);
                }
            }
        }
        for (key, g) in &mut self.groups {
            if due(g, &self.timing).is_none_or(|t| t > now) {
                continue;
            }
            let firing: BTreeSet<String> = g
                .alerts
                .values()
                .filter(|a| a.status == Status::Firing)
                .map(|a| a.fingerprint.clone())
                .collect();
            let changed = firing != g.notified;
            let repeat = g
                .last_flush
                .is_some_and(|l| l + self.timing.repeat_interval <= now);
            let send = if firing.is_empty() {
                // Only resolutions left: a message if they were announced and resolved messages are wanted.
                !g.notified.is_empty() && self.timing.send_resolved
            } else {
                changed || repeat
            };
            if send {
                let mut alerts: Vec<AlertState> = g
                    .alerts
                    .values()
                    .filter(|a| a.status == Status::Firing || self.timing.send_resolved)
                    .cloned()
                    .collect();
                sort_alerts(&mut alerts);
                out.push(Notification {
                    group_key: key.clone(),
                    group_labels: g.labels.clone(),
                    alerts,
                });
                g.last_flush = Some(now);
            }
            g.alerts.retain(|_, a| a.status == Status::Firing);
            g.notified = firing;
            g.next_flush = None;
        }
        // Empty groups go, unless a notification went out less than group_interval ago (after a shutdown's
        // early flush): a new alert of the group then still waits for the interval.
        let timing = &self.timing;
        self.groups.retain(|_, g| !expendable(g, timing, now));
        out
    }

    /// Every alert currently firing (sent or not yet), sorted by fingerprint.
    pub fn firing(&self) -> Vec<AlertState> {
        let mut v: Vec<AlertState> = self
            .groups
            .values()
            .flat_map(|g| g.alerts.values())
            .filter(|a| a.status == Status::Firing)
            .cloned()
            .collect();
        sort_alerts(&mut v);
        v
    }

    /// Sends every pending change at once, ignoring group_wait and group_interval: what a shutdown hands to the
    /// spool so that nothing waiting in a timer is lost.
    pub fn flush_all(&mut self, now: Tick) -> Vec<Notification> {
        for g in self.groups.values_mut() {
            if g.next_flush.is_some() {
                g.next_flush = Some(now);
            }
        }
        self.poll(now)
    }
}

/// A group with nothing to announce or resolve whose last notification is at least group_interval old.
fn expendable(g: &Group, timing: &Timing, now: Tick) -> bool {
    g.alerts.is_empty()
        && g.notified.is_empty()
        && g.last_flush
            .is_none_or(|l| l + timing.group_interval <= now)
}

fn schedule(g: &mut Group, timing: &Timing, now: Tick) {
    let at = match g.last_flush {
        None => g.first_seen + timing.group_wait,
        Some(l) => (l + timing.group_interval).max(now),
    };
    g.next_flush = Some(g.next_flush.map_or(at, |t| t.min(at)));
}

fn due(g: &Group, timing: &Timing) -> Option<Tick> {
    let repeat = match (g.last_flush, g.notified.is_empty()) {
        (Some(l), false) => Some(l + timing.repeat_interval),
        _ => None,
    };
    match (g.next_flush, repeat) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn t(s: u64) -> Tick {
        Duration::from_secs(s)
    }

    fn timing() -> Timing {
        Timing {
            group_by: vec!["alertname".into()],
            group_wait: t(10),
            group_interval: t(60),
            repeat_interval: t(600),
            send_resolved: true,
        }
    }

    fn a(name: &str, l: &str) -> Alert {
        Alert::firing(name, Severity::Critical).label("x", l)
    }

    #[test]
    fn waits_groups_repeats_resolves() {
        let mut d = Dispatcher::new(timing());
        assert!(d.update(a("A", "1"), t(0)));
        assert!(d.update(a("A", "2"), t(5)));
        assert_eq!(d.next_due(), Some(t(10)));
        assert!(d.poll(t(9)).is_empty());
        let n = d.poll(t(10));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].alerts.len(), 2);
        assert_eq!(n[0].group_key, "{}:{alertname=\"A\"}");
        // Refresh: nothing new; next is the repeat.
        assert!(!d.update(a("A", "1"), t(20)));
        assert_eq!(d.next_due(), Some(t(610)));
        // Resolve one: sent at the group interval.
        assert!(d.update(a("A", "1").resolved(), t(30)));
        assert_eq!(d.next_due(), Some(t(70)));
        let n = d.poll(t(70));
        assert_eq!(n[0].firing().count(), 1);
        assert_eq!(n[0].resolved().count(), 1);
        assert_eq!(d.next_due(), Some(t(670)));
        let n = d.poll(t(670));
        assert_eq!(n[0].alerts.len(), 1);
        // Last one resolves: a resolved message, then the group is gone.
        d.update(a("A", "2").resolved(), t(700));
        let n = d.poll(d.next_due().unwrap());
        assert_eq!(n[0].status(), Status::Resolved);
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn flap_before_group_wait_is_silent() {
        let mut d = Dispatcher::new(timing());
        d.update(a("A", "1"), t(0));
        d.update(a("A", "1").resolved(), t(3));
        assert_eq!(d.next_due(), None);
        assert!(d.poll(t(100)).is_empty());
    }

    #[test]
    fn coalesce_keeps_resolutions() {
        let mut d = Dispatcher::new(timing());
        d.update(a("A", "1"), t(0));
        d.update(a("A", "2"), t(0));
        let _first = d.poll(t(10));
        d.update(a("A", "1").resolved(), t(20));
        let second = d.poll(t(70)).remove(0);
        d.update(a("A", "3"), t(80));
        let third = d.poll(t(130)).remove(0);
        let merged = coalesce(&second, third);
        let fps: Vec<(String, Status)> = merged
            .alerts
            .iter()
            .map(|a| (a.labels["x"].clone(), a.status))
            .collect();
        assert_eq!(
            fps,
            vec![
                ("2".into(), Status::Firing),
                ("3".into(), Status::Firing),
                ("1".into(), Status::Resolved)
            ]
        );
    }

    #[test]
    fn restore_neither_repeats_nor_forgets() {
        let wall = |s: u64| SystemTime::UNIX_EPOCH + t(s);
        let mut d = Dispatcher::new(timing());
        d.update(a("A", "1"), t(0));
        d.update(a("A", "2"), t(0));
        d.poll(t(10));
        d.update(a("A", "2").resolved(), t(20));
        let snap = d.snapshot(t(30), wall(30));
        // Down 100 s; the new run's clock reads 1000 s.
        let mut e = Dispatcher::new(timing());
        e.restore(snap, t(1000), wall(130), t(300));
        // The pending resolution of A2 goes out now (the old flush is 120 s ago, more than group_interval).
        assert_eq!(e.next_due(), Some(t(1000)));
        let n = e.poll(t(1000));
        assert_eq!(n[0].resolved().count(), 1);
        assert_eq!(n[0].firing().count(), 1);
        // A1 is not confirmed by any guard: resolved when the confirmation window ends.
        assert_eq!(e.next_due(), Some(t(1300)));
        let n = e.poll(t(1300));
        assert_eq!(n[0].status(), Status::Resolved);
        assert_eq!(n[0].alerts[0].ends_at, Some(wall(430)));
        // Confirmed instead: nothing until the repeat interval, counted from the flush before the restart.
        let mut e = Dispatcher::new(timing());
        let mut d2 = Dispatcher::new(timing());
        d2.update(a("A", "1"), t(0));
        d2.poll(t(10));
        e.restore(d2.snapshot(t(30), wall(30)), t(1000), wall(30), t(300));
        assert!(!e.update(a("A", "1"), t(1001)));
        assert_eq!(e.next_due(), Some(t(1580)));
    }

    #[test]
    fn flush_all_sends_pending_changes_only() {
        let mut d = Dispatcher::new(timing());
        d.update(a("A", "1"), t(0));
        d.poll(t(10));
        d.update(a("B", "1"), t(11));
        let n = d.flush_all(t(12));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].alerts[0].name, "B");
        assert_eq!(d.next_due(), Some(t(610)));
    }
}
