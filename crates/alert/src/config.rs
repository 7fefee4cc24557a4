//! The `[alerts]` config section (timing, grouping, spool, notifiers) and its checks, reported at key paths so
//! the daemon's loader shows them with `file:line:col`.

use crate::policy::Timing;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use yagura_config::{Diagnostic, EnvName, KeyPath};

/// `[alerts]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct AlertsConfig {
    /// Labels whose values group alerts into one notification (`alertname`, `severity` or any label; `["..."]`:
    /// no grouping).
    pub group_by: Vec<String>,
    /// How long a new group waits for more alerts before its first notification (default 30 s).
    #[serde(with = "yagura_config::duration")]
    pub group_wait: Duration,
    /// Least time between notifications of a group that bring changes (default 5 min).
    #[serde(with = "yagura_config::duration")]
    pub group_interval: Duration,
    /// How often a group still firing is notified again (default 4 h).
    #[serde(with = "yagura_config::duration")]
    pub repeat_interval: Duration,
    /// Send a message when alerts resolve (default true).
    pub send_resolved: bool,
    /// Where undelivered notifications wait (default: `alert-spool` beside the daemon's store).
    pub spool: Option<PathBuf>,
    /// Labels added to every alert (e.g. `{ source = "wsp" }`), so receivers know which watch raised it.
    pub labels: BTreeMap<String, String>,
    /// This daemon's URL, sent as Alertmanager's `generatorURL` / `externalURL`.
    pub external_url: Option<String>,
    /// First retry delay after a failed delivery (doubles per failure, with jitter; default 1 s).
    #[serde(with = "yagura_config::duration")]
    pub retry_min: Duration,
    /// Longest retry delay (default 5 min).
    #[serde(with = "yagura_config::duration")]
    pub retry_max: Duration,
    /// Timeout of one HTTP delivery (default 10 s).
    #[serde(with = "yagura_config::duration")]
    pub timeout: Duration,
    /// After a restart, alerts announced before it count as still firing until a guard confirms them; those
    /// not confirmed within this time are resolved (default 10 min).
    #[serde(with = "yagura_config::duration")]
    pub restart_confirm: Duration,
    /// The receivers.
    pub notifiers: Vec<NotifierConfig>,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        let t = Timing::default();
        Self {
            group_by: t.group_by,
            group_wait: t.group_wait,
            group_interval: t.group_interval,
            repeat_interval: t.repeat_interval,
            send_resolved: t.send_resolved,
            spool: None,
            labels: BTreeMap::new(),
            external_url: None,
            retry_min: Duration::from_secs(1),
            retry_max: Duration::from_secs(300),
            timeout: Duration::from_secs(10),
            restart_confirm: Duration::from_secs(600),
            notifiers: Vec::new(),
        }
    }
}

/// What a notifier speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    /// A Slack-compatible incoming webhook (`{"text": …, "attachments": […]}`; Mattermost, Rocket.Chat too).
    Slack,
    /// A Discord webhook (`{"content": …, "embeds": […]}`).
    Discord,
    /// A generic JSON webhook receiving Alertmanager's webhook payload (version "4").
    Webhook,
    /// Alertmanager's v2 API (`POST /api/v2/alerts`); the URL is Alertmanager's base URL.
    Alertmanager,
}

impl NotifierKind {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Slack => "slack",
            Self::Discord => "discord",
            Self::Webhook => "webhook",
            Self::Alertmanager => "alertmanager",
        }
    }
}

/// `[[alerts.notifiers]]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct NotifierConfig {
    /// Unique name (metrics label, spool directory).
    pub name: String,
    /// `slack`, `discord`, `webhook` or `alertmanager`.
    pub kind: String,
    /// The URL, when it is not a secret (a local webhook, Alertmanager).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the URL (Slack and Discord webhook URLs are secrets).
    #[serde(default)]
    pub url_env: Option<EnvName>,
    /// Alertmanager only: how often firing alerts are posted again so Alertmanager does not time them out
    /// (default 1 min; they are posted with `endsAt` four intervals ahead).
    #[serde(default = "one_minute", with = "yagura_config::duration")]
    pub resend_interval: Duration,
}

fn one_minute() -> Duration {
    Duration::from_secs(60)
}

impl NotifierConfig {
    /// The kind, if it is a known one.
    pub fn kind(&self) -> Option<NotifierKind> {
        match self.kind.as_str() {
            "slack" => Some(NotifierKind::Slack),
            "discord" => Some(NotifierKind::Discord),
            "webhook" => Some(NotifierKind::Webhook),
            "alertmanager" => Some(NotifierKind::Alertmanager),
            _ => None,
        }
    }

    /// The URL: the literal one or the environment variable's value. The error names the variable, never a
    /// value.
    pub fn resolve_url(&self) -> Result<String, String> {
        match (&self.url, &self.url_env) {
            (Some(u), _) => Ok(u.clone()),
            (None, Some(e)) => e.read().map_err(|_| {
                format!(
                    "notifier `{}`: environment variable {} is not set",
                    self.name,
                    e.as_str()
                )
            }),
            (None, None) => Err(format!("notifier `{}` has no url", self.name)),
        }
    }
}

/// Valid names: letters, digits, `_`, `-`, `.` (they become file names and label values).
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && s != "."
        && s != ".."
}

impl AlertsConfig {
    /// The grouping and timing rules.
    pub fn timing(&self) -> Timing {
        Timing {
            group_by: self.group_by.clone(),
            group_wait: self.group_wait,
            group_interval: self.group_interval,
            repeat_interval: self.repeat_interval,
            send_resolved: self.send_resolved,
        }
    }

    /// Every problem, at `at` (the section's path, e.g. `alerts`).
    pub fn validate(&self, at: &KeyPath) -> Vec<Diagnostic> {
        let mut d = Vec::new();
        for (name, v) in [
            ("group_interval", self.group_interval),
            ("repeat_interval", self.repeat_interval),
            ("retry_min", self.retry_min),
            ("retry_max", self.retry_max),
            ("timeout", self.timeout),
        ] {
            if v.is_zero() {
                d.push(
                    Diagnostic::error("out-of-range", format!("`alerts.{name}` must be above 0"))
                        .at(&at.key(name))
                        .hint("write durations with a unit: \"500ms\", \"5m\""),
                );
            }
        }
        if self.repeat_interval < self.group_interval {
            d.push(
                Diagnostic::warning(
                    "repeat-below-interval",
                    "`alerts.repeat_interval` is shorter than `alerts.group_interval`: repeats come at most every group_interval",
                )
                .at(&at.key("repeat_interval")),
            );
        }
        if self.retry_max < self.retry_min {
            d.push(
                Diagnostic::error(
                    "out-of-range",
                    "`alerts.retry_max` is shorter than `alerts.retry_min`",
                )
                .at(&at.key("retry_max")),
            );
        }
        if self.group_by.is_empty() {
            d.push(
                Diagnostic::error("empty", "`alerts.group_by` is empty")
                    .at(&at.key("group_by"))
                    .hint("group by [\"alertname\"], or [\"...\"] for one notification per alert"),
            );
        }
        if let Some(p) = &self.spool {
            if p.as_os_str().is_empty() {
                d.push(Diagnostic::error("empty", "`alerts.spool` is empty").at(&at.key("spool")));
            }
        }
        for k in self.labels.keys() {
            if matches!(k.as_str(), "alertname" | "severity") || !valid_label(k) {
                d.push(
                    Diagnostic::error(
                        "bad-label",
                        format!("`{k}` cannot be an added label (reserved or not [a-zA-Z_][a-zA-Z0-9_]*)"),
                    )
                    .at(&at.key("labels").key(k)),
                );
            }
        }
        let n = at.key("notifiers");
        let mut seen: BTreeMap<&str, KeyPath> = BTreeMap::new();
        for (i, c) in self.notifiers.iter().enumerate() {
            let here = n.index(i);
            if !valid_name(&c.name) {
                d.push(
                    Diagnostic::error(
                        "bad-name",
                        format!("notifier name `{}` must be 1–64 of [A-Za-z0-9_.-]", c.name),
                    )
                    .at(&here.key("name")),
                );
            } else if let Some(first) = seen.get(c.name.as_str()) {
                d.push(
                    Diagnostic::error(
                        "duplicate-name",
                        format!("notifier `{}` is defined twice", c.name),
                    )
                    .at(&here.key("name"))
                    .related(&first.key("name"), "first defined here"),
                );
            } else {
                seen.insert(&c.name, here.clone());
            }
            if c.kind().is_none() {
                d.push(
                    Diagnostic::error(
                        "unknown-kind",
                        format!("unknown notifier kind `{}`", c.kind),
                    )
                    .at(&here.key("kind"))
                    .hint("one of slack, discord, webhook, alertmanager"),
                );
            }
            match (&c.url, &c.url_env) {
                (None, None) => d.push(
                    Diagnostic::error("missing-url", format!("notifier `{}` has no url", c.name))
                        .at(&here)
                        .hint("give `url_env = \"NAME\"` (the environment variable holding the URL), or `url` when it is not a secret"),
                ),
                (Some(_), Some(_)) => d.push(
                    Diagnostic::error("url-twice", "give either `url` or `url_env`, not both")
                        .at(&here.key("url")),
                ),
                (Some(u), None) => {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        d.push(
                            Diagnostic::error("bad-url", "`url` must start with http:// or https://")
                                .at(&here.key("url")),
                        );
                    } else if matches!(c.kind(), Some(NotifierKind::Slack | NotifierKind::Discord)) {
                        d.push(
                            Diagnostic::warning(
                                "secret-in-file",
                                "Slack and Discord webhook URLs are secrets: prefer `url_env`",
                            )
                            .at(&here.key("url")),
                        );
                    }
                }
                (None, Some(e)) => {
                    if let Err(m) = e.check() {
                        d.push(Diagnostic::error("bad-env-name", m).at(&here.key("url_env")));
                    }
                }
            }
            if c.resend_interval.is_zero() {
                d.push(
                    Diagnostic::error("out-of-range", "`resend_interval` must be above 0")
                        .at(&here.key("resend_interval")),
                );
            }
        }
        d
    }
}

fn valid_label(k: &str) -> bool {
    let mut c = k.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The keys valid at a place inside `[alerts]` (`rest` is the shape after `alerts`), for "did you mean".
pub fn fields_at(rest: &[&str]) -> &'static [&'static str] {
    match rest {
        [] => yagura_config::fields_of::<AlertsConfig>(),
        ["notifiers"] => yagura_config::fields_of::<NotifierConfig>(),
        _ => &[],
    }
}
