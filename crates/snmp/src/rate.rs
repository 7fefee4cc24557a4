//! Counter readings → rates (pure, no I/O). A [`RateTracker`] keeps the previous sample of one device and turns
//! the next one into per-interface bit, packet, error and discard rates:
//!
//! - deltas are taken modulo the counter's width (2^64 for HC counters, 2^32 for the 32-bit fallback), so a
//!   wrap gives the right delta;
//! - a counter that went *down* is only taken as a wrap when the delta is plausible: below half the counter
//!   range and, where the interface speed is known, below what the link could carry in the elapsed time;
//!   otherwise it is a discontinuity (a reset) and gives no rate;
//! - a sysUpTime decrease (the agent restarted) resets every baseline instead of producing a spike; a
//!   sysUpTime wrap at 2^32 ticks (497 days) is told apart from a restart by the local clock;
//! - an ifCounterDiscontinuityTime change, a counter changing width, or a new interface gives no rate for
//!   that interface this time.

use crate::table::{Counter, Counters, Sample};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Smallest Ethernet frame on the wire (64 B + preamble and inter-frame gap), bits: bounds packets/s.
const MIN_FRAME_BITS: f64 = 672.0;
/// Slack on the speed-based bound (links burst, speeds are nominal, polls jitter).
const SPEED_SLACK: f64 = 2.0;

/// The delta between two readings of one counter, or `None` for a discontinuity. `max_wrap` bounds a delta
/// that crosses zero (a wrap); increases are always accepted.
pub fn counter_delta(prev: Counter, cur: Counter, max_wrap: Option<u64>) -> Option<u64> {
    let (d, wrapped, half) = match (prev, cur) {
        (Counter::C64(a), Counter::C64(b)) => (b.wrapping_sub(a), b < a, 1u64 << 63),
        (Counter::C32(a), Counter::C32(b)) => (u64::from(b.wrapping_sub(a)), b < a, 1u64 << 31),
        _ => return None,
    };
    if wrapped && (d >= half || max_wrap.is_some_and(|m| d > m)) {
        return None;
    }
    Some(d)
}

/// Rates of one interface over the last interval; `None` where a counter is missing or discontinuous.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IfRates {
    /// Received bit/s.
    pub in_bps: Option<f64>,
    /// Sent bit/s.
    pub out_bps: Option<f64>,
    /// Received packets/s (unicast + multicast + broadcast, as reported).
    pub in_pps: Option<f64>,
    /// Sent packets/s.
    pub out_pps: Option<f64>,
    /// Inbound errors/s.
    pub in_errors: Option<f64>,
    /// Outbound errors/s.
    pub out_errors: Option<f64>,
    /// Inbound discards/s.
    pub in_discards: Option<f64>,
    /// Outbound discards/s.
    pub out_discards: Option<f64>,
    /// Raw received-octet delta (for tests and diagnostics).
    pub in_octets_delta: Option<u64>,
    /// Raw sent-octet delta.
    pub out_octets_delta: Option<u64>,
    /// Some counter of this interface was discontinuous (reset) this interval.
    pub discontinuity: bool,
}

/// The outcome of one update.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rates {
    /// The agent restarted (sysUpTime went down): baselines were reset, no rates this time.
    pub restarted: bool,
    /// Seconds since the previous sample (`None` on the first sample or after a restart).
    pub interval: Option<f64>,
    /// Per-interface rates, for interfaces present in both samples.
    pub interfaces: BTreeMap<u32, IfRates>,
}

impl Rates {
    /// Number of interfaces with a discontinuity this interval.
    pub fn discontinuities(&self) -> usize {
        self.interfaces.values().filter(|r| r.discontinuity).count()
    }
}

#[derive(Debug, Clone)]
struct IfBase {
    counters: Counters,
    discontinuity: Option<u32>,
}

#[derive(Debug, Clone)]
struct Baseline {
    at: Duration,
    uptime: u32,
    ifs: HashMap<u32, IfBase>,
}

/// The previous sample of one device.
#[derive(Debug, Clone, Default)]
pub struct RateTracker {
    prev: Option<Baseline>,
}

/// Whether `cur` after `prev` is a restart rather than a wrap of the 32-bit tick counter.
fn restarted(prev: u32, cur: u32, elapsed: Duration) -> bool {
    if cur >= prev {
        return false;
    }
    let ticks = (elapsed.as_millis() / 10) as u64;
    let expected = u64::from(prev) + ticks;
    if expected < (1u64 << 32) {
        return true;
    }
    let wrapped = expected - (1u64 << 32);
    let tolerance = (ticks / 4).max(500);
    u64::from(cur).abs_diff(wrapped) > tolerance
}

impl RateTracker {
    /// Forgets the baseline (the next sample gives no rates).
    pub fn reset(&mut self) {
        self.prev = None;
    }

    /// Feeds the sample taken at `at` (a monotonic clock reading) and returns the rates since the previous one.
    pub fn update(&mut self, at: Duration, s: &Sample) -> Rates {
        let base = Baseline {
            at,
            uptime: s.sys_uptime,
            ifs: s
                .interfaces
                .iter()
                .map(|(k, i)| {
                    (
                        *k,
                        IfBase {
                            counters: i.counters,
                            discontinuity: i.discontinuity,
                        },
                    )
                })
                .collect(),
        };
        let Some(prev) = self.prev.replace(base) else {
            return Rates::default();
        };
        let Some(elapsed) = at.checked_sub(prev.at).filter(|d| !d.is_zero()) else {
            return Rates::default();
        };
        if restarted(prev.uptime, s.sys_uptime, elapsed) {
            return Rates {
                restarted: true,
                ..Rates::default()
            };
        }
        let dt = elapsed.as_secs_f64();
        let mut out = Rates {
            restarted: false,
            interval: Some(dt),
            interfaces: BTreeMap::new(),
        };
        for (idx, i) in &s.interfaces {
            let Some(p) = prev.ifs.get(idx) else { continue };
            let mut r = IfRates::default();
            if p.discontinuity != i.discontinuity {
                r.discontinuity = true;
                out.interfaces.insert(*idx, r);
                continue;
            }
            let octet_max = i
                .speed_bps
                .map(|b| (b as f64 / 8.0 * dt * SPEED_SLACK) as u64);
            let pkt_max = i
                .speed_bps
                .map(|b| (b as f64 / MIN_FRAME_BITS * dt * SPEED_SLACK) as u64);
            let mut disc = false;
            let mut delta = |a: Option<Counter>, b: Option<Counter>, max: Option<u64>| match (a, b)
            {
                (Some(a), Some(b)) => {
                    let d = counter_delta(a, b, max);
                    disc |= d.is_none();
                    d
                }
                _ => None,
            };
            let (pc, c) = (&p.counters, &i.counters);
            let in_oct = delta(pc.in_octets, c.in_octets, octet_max);
            let out_oct = delta(pc.out_octets, c.out_octets, octet_max);
            let in_u = delta(pc.in_ucast, c.in_ucast, pkt_max);
            let in_m = delta(pc.in_mcast, c.in_mcast, pkt_max);
            let in_b = delta(pc.in_bcast, c.in_bcast, pkt_max);
            let out_u = delta(pc.out_ucast, c.out_ucast, pkt_max);
            let out_m = delta(pc.out_mcast, c.out_mcast, pkt_max);
            let out_b = delta(pc.out_bcast, c.out_bcast, pkt_max);
            let in_e = delta(pc.in_errors, c.in_errors, pkt_max);
            let out_e = delta(pc.out_errors, c.out_errors, pkt_max);
            let in_d = delta(pc.in_discards, c.in_discards, pkt_max);
            let out_d = delta(pc.out_discards, c.out_discards, pkt_max);
            // Packets: unicast is required; multicast/broadcast are added where the device reports them. A
            // discontinuity in any part voids the sum.
            let pkts = |u: Option<u64>,
                        m: Option<u64>,
                        b: Option<u64>,
                        cm: (Option<Counter>, Option<Counter>),
                        cb: (Option<Counter>, Option<Counter>)| {
                let present =
                    |x: (Option<Counter>, Option<Counter>)| x.0.is_some() && x.1.is_some();
                if (present(cm) && m.is_none()) || (present(cb) && b.is_none()) {
                    return None;
                }
                Some(u? + m.unwrap_or(0) + b.unwrap_or(0))
            };
            let per_s = |d: Option<u64>| d.map(|d| d as f64 / dt);
            r.in_bps = per_s(in_oct).map(|v| v * 8.0);
            r.out_bps = per_s(out_oct).map(|v| v * 8.0);
            r.in_pps = per_s(pkts(
                in_u,
                in_m,
                in_b,
                (pc.in_mcast, c.in_mcast),
                (pc.in_bcast, c.in_bcast),
            ));
            r.out_pps = per_s(pkts(
                out_u,
                out_m,
                out_b,
                (pc.out_mcast, c.out_mcast),
                (pc.out_bcast, c.out_bcast),
            ));
            r.in_errors = per_s(in_e);
            r.out_errors = per_s(out_e);
            r.in_discards = per_s(in_d);
            r.out_discards = per_s(out_d);
            r.in_octets_delta = in_oct;
            r.out_octets_delta = out_oct;
            r.discontinuity = disc;
            out.interfaces.insert(*idx, r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::table::Interface;
    use proptest::prelude::*;

    fn sample(uptime: u32, octets: Counter) -> Sample {
        let mut s = Sample {
            sys_uptime: uptime,
            ..Sample::default()
        };
        s.interfaces.insert(
            1,
            Interface {
                index: 1,
                name: "eth0".into(),
                counters: Counters {
                    in_octets: Some(octets),
                    out_octets: Some(octets),
                    in_ucast: Some(Counter::C64(0)),
                    out_ucast: Some(Counter::C64(0)),
                    ..Counters::default()
                },
                ..Interface::default()
            },
        );
        s
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn hc_wrap_gives_the_right_rate() {
        let mut t = RateTracker::default();
        assert!(t
            .update(secs(0), &sample(1000, Counter::C64(u64::MAX - 999)))
            .interfaces
            .is_empty());
        let r = t.update(secs(10), &sample(2000, Counter::C64(1000)));
        let i = &r.interfaces[&1];
        assert_eq!(i.in_octets_delta, Some(2000));
        assert_eq!(i.in_bps, Some(1600.0));
        assert!(!i.discontinuity);
    }

    #[test]
    fn c32_wrap_and_fallback() {
        let mut t = RateTracker::default();
        t.update(secs(0), &sample(100, Counter::C32(u32::MAX - 9)));
        let r = t.update(secs(1), &sample(200, Counter::C32(10)));
        assert_eq!(r.interfaces[&1].in_octets_delta, Some(20));
    }

    #[test]
    fn restart_resets_instead_of_spiking() {
        let mut t = RateTracker::default();
        t.update(secs(0), &sample(100_000, Counter::C64(5_000_000_000)));
        let r = t.update(secs(60), &sample(50, Counter::C64(10)));
        assert!(r.restarted);
        assert!(r.interfaces.is_empty());
        // The next sample measures from the post-restart baseline.
        let r = t.update(secs(120), &sample(6050, Counter::C64(610)));
        assert_eq!(r.interfaces[&1].in_octets_delta, Some(600));
    }

    #[test]
    fn uptime_wrap_is_not_a_restart() {
        assert!(!restarted(u32::MAX - 100, 5900, secs(60)));
        assert!(restarted(u32::MAX - 100, 500_000, secs(60)));
        assert!(restarted(10_000, 50, secs(60)));
    }

    #[test]
    fn reset_counter_gives_no_rate() {
        let mut t = RateTracker::default();
        t.update(secs(0), &sample(100, Counter::C64(1 << 40)));
        let r = t.update(secs(10), &sample(1100, Counter::C64(5)));
        let i = &r.interfaces[&1];
        assert_eq!(i.in_bps, None);
        assert!(i.discontinuity);
        assert_eq!(r.discontinuities(), 1);
    }

    #[test]
    fn implausible_wrap_for_the_speed_gives_no_rate() {
        // 10 Mbit/s for 1 s can move at most ~2.5 MB with slack: a "wrap" of 2^31 is a reset.
        assert_eq!(
            counter_delta(Counter::C32(1 << 31), Counter::C32(5), Some(2_500_000)),
            None
        );
        assert_eq!(
            counter_delta(Counter::C32(u32::MAX), Counter::C32(5), Some(2_500_000)),
            Some(6)
        );
        // Width changed: discontinuity.
        assert_eq!(counter_delta(Counter::C32(1), Counter::C64(2), None), None);
    }

    #[test]
    fn discontinuity_time_change_voids_the_interface() {
        let mut t = RateTracker::default();
        let mut a = sample(100, Counter::C64(10));
        t.update(secs(0), &a);
        a.sys_uptime = 200;
        if let Some(i) = a.interfaces.get_mut(&1) {
            i.discontinuity = Some(150);
            i.counters.in_octets = Some(Counter::C64(20));
        }
        let r = t.update(secs(1), &a);
        assert!(r.interfaces[&1].discontinuity);
        assert_eq!(r.interfaces[&1].in_bps, None);
    }

    proptest! {
        #[test]
        fn c64_delta_is_exact_across_wrap(a: u64, d in 0u64..(1u64 << 63)) {
            prop_assert_eq!(counter_delta(Counter::C64(a), Counter::C64(a.wrapping_add(d)), None), Some(d));
        }

        #[test]
        fn c32_delta_is_exact_across_wrap(a: u32, d in 0u32..(1u32 << 31)) {
            prop_assert_eq!(
                counter_delta(Counter::C32(a), Counter::C32(a.wrapping_add(d)), None),
                Some(u64::from(d))
            );
        }

        /// Any sequence of increments (crossing 2^64 or not) sums to the same total through the tracker,
        /// and every rate is finite and non-negative.
        #[test]
        fn deltas_sum_to_the_total(start: u64, steps in proptest::collection::vec(0u64..(1u64 << 40), 1..30)) {
            let mut t = RateTracker::default();
            let mut v = start;
            let mut up = 1000u32;
            t.update(secs(0), &sample(up, Counter::C64(v)));
            let mut sum = 0u64;
            for (n, s) in steps.iter().enumerate() {
                v = v.wrapping_add(*s);
                up += 6000;
                let r = t.update(secs(60 * (n as u64 + 1)), &sample(up, Counter::C64(v)));
                let i = &r.interfaces[&1];
                prop_assert!(i.in_bps.is_some_and(|b| b.is_finite() && b >= 0.0));
                sum += i.in_octets_delta.unwrap();
            }
            prop_assert_eq!(sum, steps.iter().sum::<u64>());
        }

        /// An uptime decrease within 497 days never yields a rate, whatever the counters do.
        #[test]
        fn restart_never_yields_a_rate(up in 1000u32..u32::MAX / 2, back in 1u32..1000, a: u64, b: u64) {
            let mut t = RateTracker::default();
            t.update(secs(0), &sample(up, Counter::C64(a)));
            let r = t.update(secs(30), &sample(up - back, Counter::C64(b)));
            prop_assert!(r.restarted);
            prop_assert!(r.interfaces.is_empty());
        }
    }
}
