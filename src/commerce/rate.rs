//! Token-bucket rate limiting keyed by a string (a client address). The public routes' own
//! buckets and their settings are in `control::client`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// Buckets are forgotten once full again; at most this many are kept.
const MAX_KEYS: usize = 1_000_000;

pub struct RateLimiter {
    burst: f64,
    refill_per_s: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(burst: f64, refill_per_s: f64) -> Self {
        Self {
            burst,
            refill_per_s,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`; false when its bucket is empty.
    pub fn allow(&self, key: &str, now: Instant) -> bool {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            return false;
        }
        let (tokens, at) = buckets.entry(key.to_string()).or_insert((self.burst, now));
        let refilled = (*tokens
            + now.saturating_duration_since(*at).as_secs_f64() * self.refill_per_s)
            .min(self.burst);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            true
        } else {
            *tokens = refilled;
            false
        }
    }

    /// Drops buckets that have refilled completely.
    pub fn forget_idle(&self) {
        let now = Instant::now();
        let (burst, rate) = (self.burst, self.refill_per_s);
        self.buckets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bursts_pass_then_the_rate_holds() {
        let limiter = RateLimiter::new(3.0, 1.0);
        let t = Instant::now();
        assert!((0..3).all(|_| limiter.allow("a", t)));
        assert!(!limiter.allow("a", t));
        assert!(limiter.allow("b", t), "keys are independent");
        assert!(limiter.allow("a", t + Duration::from_millis(1100)));
        assert!(!limiter.allow("a", t + Duration::from_millis(1200)));
    }
}
