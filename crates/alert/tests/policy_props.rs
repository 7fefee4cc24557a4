//! Property tests of the delivery timing (grouping, group wait/interval, repeat, resolved) and of spool
//! coalescing, driven by a simulated clock: the dispatcher is polled exactly at the times it names.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use yagura_alert::policy::{coalesce, Dispatcher, Notification, Timing};
use yagura_alert::{Alert, Severity, Status};

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn alert(i: u8) -> Alert {
    let name = ["A", "B"][usize::from(i % 2)];
    Alert::firing(name, Severity::Warning).label("x", i.to_string())
}

#[derive(Debug, Clone)]
struct Case {
    timing: Timing,
    events: Vec<(u8, bool, u64)>,
    /// Restart the daemon before this event, after this much downtime (ms).
    restart: Option<(usize, u64)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![Just(0u64), Just(300), Just(2000)],
        1000u64..5000,
        1u64..5,
        any::<bool>(),
        prop::collection::vec((0u8..6, any::<bool>(), 0u64..4000), 1..60),
        prop::option::of((0usize..60, 0u64..3000)),
    )
        .prop_map(|(gw, gi, rep, send_resolved, events, restart)| Case {
            restart,
            timing: Timing {
                group_by: vec!["alertname".into()],
                group_wait: ms(gw),
                group_interval: ms(gi),
                repeat_interval: ms(gi * rep),
                send_resolved,
            },
            events,
        })
}

struct Run {
    sent: Vec<(Duration, Notification)>,
    /// Indices in `sent` of the notifications a shutdown flushed early (exempt from the spacing rules).
    forced: BTreeSet<usize>,
    /// Truth: per fingerprint, intervals [start, end) of firing.
    intervals: BTreeMap<String, Vec<(Duration, Option<Duration>)>>,
    end: Duration,
    truth_firing: BTreeMap<String, BTreeSet<String>>,
}

fn run(c: &Case) -> Run {
    let mut d = Dispatcher::new(c.timing.clone());
    let mut now = Duration::ZERO;
    let mut sent = Vec::new();
    let mut forced = BTreeSet::new();
    let mut intervals: BTreeMap<String, Vec<(Duration, Option<Duration>)>> = BTreeMap::new();
    let mut firing: BTreeMap<String, String> = BTreeMap::new(); // fp -> group alertname
    let mut firing_idx: BTreeSet<u8> = BTreeSet::new();
    let advance = |d: &mut Dispatcher, now: &mut Duration, to: Duration, sent: &mut Vec<_>| {
        while let Some(due) = d.next_due() {
            if due > to {
                break;
            }
            *now = due.max(*now);
            for n in d.poll(*now) {
                sent.push((*now, n));
            }
        }
        *now = to;
    };
    for (k, &(i, fire, adv)) in c.events.iter().enumerate() {
        if c.restart.is_some_and(|(at, _)| at == k) {
            // Shutdown (as the engine does it: flush pending changes, save what was announced); down for a while;
            // start: restore, guards report again.
            let wall = |t: Duration| std::time::SystemTime::UNIX_EPOCH + t;
            for n in d.flush_all(now) {
                forced.insert(sent.len());
                sent.push((now, n));
            }
            let snap = d.snapshot(now, wall(now));
            let down = ms(c.restart.map_or(0, |(_, d)| d));
            now += down;
            d = Dispatcher::new(c.timing.clone());
            d.restore(snap, now, wall(now), ms(600_000));
            for &j in firing_idx.iter() {
                d.update(alert(j), now);
            }
        }
        let to = now + ms(adv);
        advance(&mut d, &mut now, to, &mut sent);
        let a = alert(i);
        let fp = a.fingerprint();
        if fire {
            firing_idx.insert(i);
        } else {
            firing_idx.remove(&i);
        }
        if fire {
            if let std::collections::btree_map::Entry::Vacant(e) = firing.entry(fp.clone()) {
                intervals.entry(fp).or_default().push((now, None));
                e.insert(a.name.clone());
            }
            d.update(a, now);
        } else {
            if firing.remove(&fp).is_some() {
                if let Some(last) = intervals.get_mut(&fp).and_then(|v| v.last_mut()) {
                    last.1 = Some(now);
                }
            }
            d.update(a.resolved(), now);
        }
    }
    let end = now + c.timing.repeat_interval * 3 + c.timing.group_wait + c.timing.group_interval;
    advance(&mut d, &mut now, end, &mut sent);
    let mut truth_firing: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (fp, g) in firing {
        truth_firing.entry(g).or_default().insert(fp);
    }
    Run {
        sent,
        forced,
        intervals,
        end,
        truth_firing,
    }
}

fn firing_set(n: &Notification) -> BTreeSet<String> {
    n.firing().map(|a| a.fingerprint.clone()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Spacing: changes at most every group_interval, unchanged repeats at most every repeat_interval;
    /// resolved only for alerts announced firing; nothing resolved when resolved messages are off.
    #[test]
    fn spacing_and_resolutions(c in case()) {
        let r = run(&c);
        let mut last: BTreeMap<String, (Duration, Notification)> = BTreeMap::new();
        for (i, (t, n)) in r.sent.iter().enumerate() {
            prop_assert!(!n.alerts.is_empty());
            if !c.timing.send_resolved {
                prop_assert_eq!(n.resolved().count(), 0);
            }
            if let Some((pt, prev)) = last.get(&n.group_key) {
                if prev.status() == Status::Firing {
                    let gap = *t - *pt;
                    if !r.forced.contains(&i) {
                        prop_assert!(gap >= c.timing.group_interval, "gap {:?} < group_interval", gap);
                        // (Without resolved messages a group that ended and came back looks unchanged.)
                        if c.timing.send_resolved && firing_set(prev) == firing_set(n) && n.resolved().count() == 0 {
                            prop_assert!(gap >= c.timing.repeat_interval, "unchanged repeat after {:?}", gap);
                        }
                    }
                    for a in n.resolved() {
                        prop_assert!(firing_set(prev).contains(&a.fingerprint), "resolved never announced");
                    }
                } else {
                    prop_assert_eq!(n.resolved().count(), 0);
                }
            } else {
                prop_assert_eq!(n.resolved().count(), 0);
            }
            last.insert(n.group_key.clone(), (*t, n.clone()));
        }
    }

    /// Nothing lost: an alert that fired longer than group_wait and group_interval was announced while it
    /// fired, and the last notification of each group tells the final truth.
    #[test]
    fn nothing_lost_final_state_true(c in case()) {
        let r = run(&c);
        let window = c.timing.group_wait.max(c.timing.group_interval);
        for (fp, ivs) in &r.intervals {
            for (s, e) in ivs {
                let e = e.unwrap_or(r.end);
                if e - *s > window {
                    let has = |n: &Notification| n.firing().any(|a| &a.fingerprint == fp);
                    let during = r.sent.iter().any(|(t, n)| *t >= *s && *t <= e && has(n));
                    // A flap between two flushes is invisible to the receiver: it still holds the alert firing.
                    let group = fp.split('\u{1f}').next().unwrap_or_default();
                    let before = r
                        .sent
                        .iter()
                        .rev()
                        .find(|(t, n)| *t <= *s && n.group_labels["alertname"] == group)
                        .is_some_and(|(_, n)| has(n));
                    let seen = during || before;
                    prop_assert!(seen, "{} firing {:?}..{:?} never announced", fp, s, e);
                }
            }
        }
        let mut last: BTreeMap<String, Notification> = BTreeMap::new();
        for (_, n) in &r.sent {
            last.insert(n.group_labels["alertname"].clone(), n.clone());
        }
        for (g, truth) in &r.truth_firing {
            let n = last.get(g).expect("a firing group was never notified");
            prop_assert_eq!(&firing_set(n), truth);
        }
        if c.timing.send_resolved {
            for (g, n) in &last {
                if !r.truth_firing.contains_key(g) {
                    prop_assert_eq!(n.status(), Status::Resolved, "group {} ended firing", g);
                }
            }
        }
    }

    /// Coalescing a backlog (a receiver that was down) gives the latest firing set, plus every alert that
    /// stopped firing as resolved, each alert once.
    #[test]
    fn coalesced_backlog_is_latest_state(c in case(), skip in 0usize..5) {
        let r = run(&c);
        let mut groups: BTreeMap<String, Vec<Notification>> = BTreeMap::new();
        for (_, n) in r.sent.into_iter().skip(skip) {
            groups.entry(n.group_key.clone()).or_default().push(n);
        }
        for (_, ns) in groups {
            let last = ns.last().cloned().unwrap();
            let folded = ns.iter().skip(1).fold(ns[0].clone(), |acc, n| coalesce(&acc, n.clone()));
            prop_assert_eq!(firing_set(&folded), firing_set(&last));
            let fps: Vec<&String> = folded.alerts.iter().map(|a| &a.fingerprint).collect();
            let uniq: BTreeSet<&String> = fps.iter().copied().collect();
            prop_assert_eq!(fps.len(), uniq.len());
            if c.timing.send_resolved {
                let ever: BTreeSet<String> = ns.iter().flat_map(|n| n.alerts.iter().map(|a| a.fingerprint.clone())).collect();
                for fp in ever {
                    let in_folded = folded.alerts.iter().find(|a| a.fingerprint == fp);
                    prop_assert!(in_folded.is_some(), "{} lost by coalescing", fp);
                }
            }
        }
    }
}
