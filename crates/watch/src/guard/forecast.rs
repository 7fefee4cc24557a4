//! Time-to-full forecasting for the disk guard: a bounded window of usage samples and a least-squares line
//! through them. Pure (no clock, no I/O): callers pass the time of each sample.

use std::collections::VecDeque;

/// Usage samples over a sliding time window, at most `max_samples` of them (older ones are thinned out by
/// dropping the oldest, so memory stays bounded whatever the tick rate).
#[derive(Debug, Clone)]
pub struct Window {
    span: f64,
    max_samples: usize,
    samples: VecDeque<(f64, f64)>,
}

/// What the fit says about the future.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Forecast {
    /// Growth in bytes per second (the slope of the fitted line).
    pub slope: f64,
    /// Seconds until `capacity` is reached from the latest sample, when usage grows; `None` when flat or
    /// shrinking.
    pub seconds_to_full: Option<f64>,
}

impl Window {
    /// A window of `span` seconds holding at most `max_samples` samples (at least 2).
    pub fn new(span_secs: f64, max_samples: usize) -> Self {
        Self {
            span: span_secs.max(0.0),
            max_samples: max_samples.max(2),
            samples: VecDeque::new(),
        }
    }

    /// Adds a sample (`t` in seconds, any origin, non-decreasing; an earlier `t` clears the window) and drops
    /// samples older than the span.
    pub fn push(&mut self, t: f64, used: f64) {
        if !t.is_finite() || !used.is_finite() {
            return;
        }
        if self.samples.back().is_some_and(|(last, _)| t < *last) {
            self.samples.clear();
        }
        self.samples.push_back((t, used));
        while self
            .samples
            .front()
            .is_some_and(|(first, _)| t - first > self.span)
        {
            self.samples.pop_front();
        }
        while self.samples.len() > self.max_samples {
            self.samples.pop_front();
        }
    }

    /// Number of samples held.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True when no sample is held.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// Seconds between the oldest and the newest sample.
    pub fn covered(&self) -> f64 {
        match (self.samples.front(), self.samples.back()) {
            (Some(a), Some(b)) => b.0 - a.0,
            _ => 0.0,
        }
    }

    /// Forgets every sample (e.g. after the capacity changed).
    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// Fits a line through the samples and forecasts when usage reaches `capacity`. `None` until the window
    /// holds at least `min_samples` samples covering at least `min_cover` seconds.
    pub fn forecast(&self, capacity: f64, min_samples: usize, min_cover: f64) -> Option<Forecast> {
        if self.samples.len() < min_samples.max(2) || self.covered() < min_cover {
            return None;
        }
        let slope = slope(self.samples.iter().copied())?;
        let (_, last) = *self.samples.back()?;
        let seconds_to_full = if slope > 0.0 {
            Some(((capacity - last) / slope).max(0.0))
        } else {
            None
        };
        Some(Forecast {
            slope,
            seconds_to_full,
        })
    }
}

/// Least-squares slope of `y` over `t` (centred sums, so large timestamps lose no precision). `None` with
/// fewer than two distinct times.
pub fn slope(points: impl Iterator<Item = (f64, f64)> + Clone) -> Option<f64> {
    let (mut n, mut st, mut sy) = (0.0, 0.0, 0.0);
    for (t, y) in points.clone() {
        n += 1.0;
        st += t;
        sy += y;
    }
    if n < 2.0 {
        return None;
    }
    let (mt, my) = (st / n, sy / n);
    let (mut num, mut den) = (0.0, 0.0);
    for (t, y) in points {
        num += (t - mt) * (y - my);
        den += (t - mt) * (t - mt);
    }
    if den <= 0.0 {
        return None;
    }
    let s = num / den;
    s.is_finite().then_some(s)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn linear_growth_forecasts_exactly() {
        let mut w = Window::new(3600.0, 100);
        for i in 0..10 {
            w.push(f64::from(i) * 60.0, 1000.0 + f64::from(i) * 600.0);
        }
        let f = w.forecast(100_000.0, 3, 60.0).unwrap();
        assert!((f.slope - 10.0).abs() < 1e-9);
        let last = 1000.0 + 9.0 * 600.0;
        assert!((f.seconds_to_full.unwrap() - (100_000.0 - last) / 10.0).abs() < 1e-6);
    }

    #[test]
    fn needs_enough_samples_and_cover() {
        let mut w = Window::new(3600.0, 100);
        w.push(0.0, 1.0);
        assert!(w.forecast(10.0, 2, 0.0).is_none());
        w.push(1.0, 2.0);
        assert!(w.forecast(10.0, 2, 0.0).is_some());
        assert!(w.forecast(10.0, 2, 5.0).is_none());
        assert!(w.forecast(10.0, 3, 0.0).is_none());
    }

    #[test]
    fn window_is_bounded_in_time_and_count() {
        let mut w = Window::new(100.0, 10);
        for i in 0..1000 {
            w.push(f64::from(i), f64::from(i));
        }
        assert_eq!(w.len(), 10);
        assert!(w.covered() <= 100.0);
        let mut w = Window::new(5.0, 1000);
        for i in 0..100 {
            w.push(f64::from(i), 0.0);
        }
        assert_eq!(w.len(), 6);
        // Time going backwards starts afresh rather than fitting nonsense.
        w.push(0.0, 0.0);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn already_full_is_zero_not_negative() {
        let mut w = Window::new(100.0, 10);
        w.push(0.0, 90.0);
        w.push(10.0, 120.0);
        assert_eq!(
            w.forecast(100.0, 2, 0.0).unwrap().seconds_to_full,
            Some(0.0)
        );
    }

    proptest! {
        /// Strictly growing usage always gives a finite, non-negative forecast.
        #[test]
        fn monotone_growth_gives_a_finite_forecast(
            start in 0.0f64..1e12,
            steps in proptest::collection::vec(1.0f64..1e9, 2..200),
            dt in 1.0f64..3600.0,
        ) {
            let mut w = Window::new(1e9, 1000);
            let mut used = start;
            w.push(0.0, used);
            for (i, s) in steps.iter().enumerate() {
                used += s;
                w.push((i as f64 + 1.0) * dt, used);
            }
            let f = w.forecast(used * 2.0 + 1.0, 2, 0.0).unwrap();
            prop_assert!(f.slope > 0.0);
            let ttf = f.seconds_to_full.unwrap();
            prop_assert!(ttf.is_finite() && ttf >= 0.0);
        }

        /// Flat or shrinking usage gives no time-to-full.
        #[test]
        fn flat_or_shrinking_gives_none(
            start in 0.0f64..1e12,
            steps in proptest::collection::vec(0.0f64..1e9, 2..200),
            dt in 1.0f64..3600.0,
        ) {
            let mut w = Window::new(1e9, 1000);
            let mut used = start;
            w.push(0.0, used);
            for (i, s) in steps.iter().enumerate() {
                used -= s;
                w.push((i as f64 + 1.0) * dt, used);
            }
            let f = w.forecast(start * 2.0 + 1.0, 2, 0.0).unwrap();
            prop_assert!(f.seconds_to_full.is_none(), "{f:?}");
        }

        /// Linear growth plus bounded noise: the fitted slope stays within the noise bound divided by the time
        /// spread (for evenly spaced samples, |error| ≤ 2·noise·Σ|t−t̄| / Σ(t−t̄)² ≤ 4·noise / span·(n/(n−1))).
        #[test]
        fn noise_is_bounded(
            rate in 1.0f64..1e6,
            noise in proptest::collection::vec(-1.0f64..1.0, 10..300),
            amplitude in 0.0f64..1e6,
            dt in 1.0f64..600.0,
        ) {
            let mut w = Window::new(1e12, 1000);
            for (i, e) in noise.iter().enumerate() {
                let t = i as f64 * dt;
                w.push(t, 1e9 + rate * t + amplitude * e);
            }
            let n = noise.len() as f64;
            let span = (n - 1.0) * dt;
            let f = w.forecast(1e15, 2, 0.0).unwrap();
            let bound = 4.0 * amplitude / span * (n / (n - 1.0)) + 1e-6 * rate;
            prop_assert!((f.slope - rate).abs() <= bound, "slope {} rate {} bound {}", f.slope, rate, bound);
        }
    }
}
