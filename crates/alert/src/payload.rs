//! The JSON bodies each receiver understands, rendered from a [`Notification`] (pure, no I/O): Slack's incoming
//! webhook, Discord's webhook, Alertmanager's webhook payload (version "4") and Alertmanager's v2 `postableAlerts`.

use crate::policy::{AlertState, Notification};
use crate::{Severity, Status};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

/// RFC 3339 with milliseconds, UTC (`2026-11-27T10:42:59.123Z`).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A short stable hex id of a fingerprint (FNV-1a 64), like Alertmanager's `fingerprint` field.
pub fn short_fingerprint(fp: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in fp.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn common<F: Fn(&AlertState) -> BTreeMap<String, String>>(
    n: &Notification,
    f: F,
) -> BTreeMap<String, String> {
    let mut it = n.alerts.iter();
    let Some(first) = it.next() else {
        return BTreeMap::new();
    };
    let mut c = f(first);
    for a in it {
        let m = f(a);
        c.retain(|k, v| m.get(k) == Some(v));
    }
    c
}

fn status_str(s: Status) -> &'static str {
    match s {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    }
}

/// Alertmanager's webhook payload, version "4": what Alertmanager's `webhook_config` receivers understand.
pub fn webhook(n: &Notification, receiver: &str, external_url: &str) -> Value {
    let alerts: Vec<Value> = n
        .alerts
        .iter()
        .map(|a| {
            json!({
                "status": status_str(a.status),
                "labels": a.all_labels(),
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": a.ends_at.map(rfc3339).unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
                "generatorURL": external_url,
                "fingerprint": short_fingerprint(&a.fingerprint),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": n.group_key,
        "truncatedAlerts": 0,
        "status": status_str(n.status()),
        "receiver": receiver,
        "groupLabels": n.group_labels,
        "commonLabels": common(n, AlertState::all_labels),
        "commonAnnotations": common(n, |a| a.annotations.clone()),
        "externalURL": external_url,
        "alerts": alerts,
    })
}

/// Alertmanager v2 `POST /api/v2/alerts` body. Firing alerts get `endsAt = now + ttl` (they are re-posted
/// before that), resolved ones their end time.
pub fn alertmanager(
    alerts: &[AlertState],
    external_url: &str,
    now: SystemTime,
    ttl: Duration,
) -> Value {
    let v: Vec<Value> = alerts
        .iter()
        .map(|a| {
            let ends = match (a.status, a.ends_at) {
                (Status::Resolved, Some(e)) => e,
                (Status::Resolved, None) => now,
                (Status::Firing, _) => now + ttl,
            };
            let mut o = json!({
                "labels": a.all_labels(),
                "annotations": a.annotations,
                "startsAt": rfc3339(a.starts_at),
                "endsAt": rfc3339(ends),
            });
            if !external_url.is_empty() {
                o["generatorURL"] = Value::String(external_url.to_string());
            }
            o
        })
        .collect();
    Value::Array(v)
}

fn line(a: &AlertState) -> String {
    let labels: Vec<String> = a.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let summary = a
        .annotations
        .get("summary")
        .map(|s| format!(": {s}"))
        .unwrap_or_default();
    let mark = match a.status {
        Status::Firing => "🔥",
        Status::Resolved => "✅",
    };
    format!(
        "{mark} *{}* [{}] {}{summary}",
        a.name,
        a.severity.as_str(),
        labels.join(" ")
    )
}

fn title(n: &Notification) -> String {
    let firing = n.firing().count();
    let resolved = n.resolved().count();
    let labels: Vec<String> = n.group_labels.values().cloned().collect();
    let mut t = match n.status() {
        Status::Firing => format!("[FIRING:{firing}] {}", labels.join(" ")),
        Status::Resolved => format!("[RESOLVED] {}", labels.join(" ")),
    };
    if firing > 0 && resolved > 0 {
        t.push_str(&format!(" ({resolved} resolved)"));
    }
    t
}

fn worst(n: &Notification) -> Option<Severity> {
    n.firing().map(|a| a.severity).min()
}

/// A Slack-compatible incoming-webhook body (`text` for any client, one attachment with a colour).
pub fn slack(n: &Notification) -> Value {
    let color = match (n.status(), worst(n)) {
        (Status::Resolved, _) => "good",
        (_, Some(Severity::Critical)) => "danger",
        _ => "warning",
    };
    let body: Vec<String> = n.alerts.iter().map(line).collect();
    let title = title(n);
    json!({
        "text": truncate(&format!("{title}\n{}", body.join("\n")), 39_000),
        "attachments": [{
            "color": color,
            "title": truncate(&title, 250),
            "text": truncate(&body.join("\n"), 7_900),
            "fallback": truncate(&title, 250),
        }],
    })
}

/// A Discord webhook body (`content` ≤ 2000 characters, one embed ≤ 4096).
pub fn discord(n: &Notification) -> Value {
    let color = match (n.status(), worst(n)) {
        (Status::Resolved, _) => 0x002e_b886,
        (_, Some(Severity::Critical)) => 0x00d6_3232,
        _ => 0x00e0_a020,
    };
    let body: Vec<String> = n.alerts.iter().map(line).collect();
    let title = title(n);
    json!({
        "content": truncate(&title, 1_900),
        "embeds": [{
            "title": truncate(&title, 250),
            "description": truncate(&body.join("\n"), 4_000),
            "color": color,
        }],
        "allowed_mentions": { "parse": [] },
    })
}

/// At most `max` characters, with `…` when cut.
fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
    t.push('…');
    t
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::policy::{Dispatcher, Timing};
    use crate::Alert;

    fn note() -> Notification {
        let mut d = Dispatcher::new(Timing {
            group_wait: Duration::ZERO,
            ..Timing::default()
        });
        d.update(
            Alert::firing("HeartbeatMissing", Severity::Critical)
                .label("heartbeat", "prd")
                .annotation("summary", "no beat"),
            Duration::ZERO,
        );
        d.poll(Duration::ZERO).remove(0)
    }

    #[test]
    fn webhook_v4_shape() {
        let v = webhook(&note(), "ops", "http://wsp:9480");
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["groupLabels"]["alertname"], "HeartbeatMissing");
        assert_eq!(v["commonLabels"]["heartbeat"], "prd");
        assert_eq!(v["alerts"][0]["labels"]["severity"], "critical");
        assert_eq!(v["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
        assert_eq!(v["alerts"][0]["fingerprint"].as_str().unwrap().len(), 16);
    }

    #[test]
    fn am_and_chat_shapes() {
        let n = note();
        let now = SystemTime::now();
        let v = alertmanager(&n.alerts, "", now, Duration::from_secs(240));
        assert!(v[0].get("generatorURL").is_none());
        assert_eq!(v[0]["labels"]["alertname"], "HeartbeatMissing");
        assert!(slack(&n)["text"]
            .as_str()
            .unwrap()
            .contains("[FIRING:1] HeartbeatMissing"));
        assert!(discord(&n)["content"].as_str().unwrap().len() <= 2000);
        assert_eq!(truncate(&"x".repeat(10), 5).chars().count(), 5);
    }
}
