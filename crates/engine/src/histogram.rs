//! Latency histograms shared by the media path and `/metrics`: fixed buckets of atomic
//! counters, cheap to record from any thread, read by `/metrics` (the server encodes them
//! with prometheus-client) and parsed back from it by tests and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug)]
pub struct LatencyHistogram {
    /// Upper bounds of the buckets, in milliseconds; one more bucket holds the rest (+Inf).
    bounds_ms: &'static [f64],
    counts: Box<[AtomicU64]>,
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl LatencyHistogram {
    pub fn new(bounds_ms: &'static [f64]) -> Self {
        Self {
            bounds_ms,
            counts: (0..=bounds_ms.len()).map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_us: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, elapsed: Duration) {
        let ms = elapsed.as_secs_f64() * 1e3;
        let bucket = self
            .bounds_ms
            .iter()
            .position(|b| ms <= *b)
            .unwrap_or(self.bounds_ms.len());
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Cumulative counts per bucket: (upper bound in seconds, count), `f64::INFINITY` last.
    pub fn buckets(&self) -> Vec<(f64, u64)> {
        let mut cumulative = 0;
        self.counts
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                cumulative += bucket.load(Ordering::Relaxed);
                let le = self
                    .bounds_ms
                    .get(i)
                    .map_or(f64::INFINITY, |ms| ms / 1000.0);
                (le, cumulative)
            })
            .collect()
    }

    /// Appends the histogram as Prometheus text (`_bucket{le=…}` cumulative, `_sum`, `_count`,
    /// in seconds).
    /// Each bucket's own count (not cumulative) by its upper bound in seconds, the last
    /// `+Inf`: what an encoder of the Prometheus format takes.
    pub fn per_bucket(&self) -> Vec<(f64, u64)> {
        self.counts
            .iter()
            .enumerate()
            .map(|(i, bucket)| {
                let le = self
                    .bounds_ms
                    .get(i)
                    .map_or(f64::INFINITY, |ms| ms / 1000.0);
                (le, bucket.load(Ordering::Relaxed))
            })
            .collect()
    }

    /// The sum of every observation, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
    }
}

/// Reads one histogram back from Prometheus text: (upper bound in seconds, cumulative count)
/// per bucket, `f64::INFINITY` for the last. For benchmarks and tests.
pub fn parse_buckets(metrics: &str, name: &str) -> Vec<(f64, u64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    metrics
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(&prefix)?;
            let (le, count) = rest.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The `q` quantile (0..=1) of cumulative buckets, interpolated linearly inside its bucket;
/// `None` when empty. A quantile in the +Inf bucket reports the last finite bound.
pub fn quantile(buckets: &[(f64, u64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, cumulative) in buckets {
        if cumulative as f64 >= rank {
            if le.is_infinite() {
                return Some(lower.0);
            }
            let inside = (cumulative - lower.1).max(1) as f64;
            return Some(lower.0 + (le - lower.0) * (rank - lower.1 as f64) / inside);
        }
        lower = (le, cumulative);
    }
    Some(lower.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_parses_and_interpolates() {
        static BOUNDS: [f64; 3] = [10.0, 20.0, 40.0];
        let h = LatencyHistogram::new(&BOUNDS);
        for ms in [5, 12, 14, 16, 18, 30, 90] {
            h.observe(Duration::from_millis(ms));
        }
        assert_eq!(
            h.per_bucket(),
            [(0.01, 1), (0.02, 4), (0.04, 1), (f64::INFINITY, 1)]
        );
        assert_eq!(h.count(), 7);
        assert!((h.sum_seconds() - 0.185).abs() < 1e-9);
        // As `/metrics` writes it.
        let text = "x_seconds_bucket{le=\"0.01\"} 1\nx_seconds_bucket{le=\"0.02\"} 5\n\
                    x_seconds_bucket{le=\"0.04\"} 6\nx_seconds_bucket{le=\"+Inf\"} 7\n";
        let buckets = parse_buckets(text, "x_seconds");
        assert_eq!(buckets, h.buckets());
        assert_eq!(buckets[3], (f64::INFINITY, 7));
        // Rank 3.5 of 7 falls in (0.01, 0.02] holding ranks 2..=5.
        let p50 = quantile(&buckets, 0.5).unwrap();
        assert!((p50 - 0.01625).abs() < 1e-9, "{p50}");
        assert_eq!(quantile(&buckets, 1.0), Some(0.04));
        assert_eq!(quantile(&[(0.01, 0), (f64::INFINITY, 0)], 0.5), None);
    }
}
