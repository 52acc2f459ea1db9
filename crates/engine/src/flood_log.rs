//! Log lines for events that come in floods (refused connections, unknown stream keys): the
//! first of a kind is logged at once, and the rest within the interval become one summary
//! line at its end. `/metrics` counts every one; the log only has to say it happens.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long the events after a logged one are summed before their summary line.
pub const SUMMARY_INTERVAL: Duration = Duration::from_secs(10);

/// One place's floods (the RTMP listener's, the HTTP listener's), by reason.
#[derive(Clone)]
pub struct FloodLog {
    /// Names the place in the summary line.
    place: &'static str,
    interval: Duration,
    /// Reasons with an interval open, and the events counted (not logged) in it.
    open: Arc<Mutex<HashMap<&'static str, u64>>>,
}

impl FloodLog {
    pub fn new(place: &'static str) -> Self {
        Self::with_interval(place, SUMMARY_INTERVAL)
    }

    pub fn with_interval(place: &'static str, interval: Duration) -> Self {
        Self {
            place,
            interval,
            open: Arc::default(),
        }
    }

    /// One event of `reason`: `log` runs when it is the first of an interval; otherwise the
    /// event is counted for the interval's summary. Needs a Tokio runtime (the summary waits
    /// on a timer).
    pub fn event(&self, reason: &'static str, log: impl FnOnce()) {
        {
            let mut open = self.lock();
            if let Some(counted) = open.get_mut(reason) {
                *counted += 1;
                return;
            }
            open.insert(reason, 0);
        }
        log();
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.interval).await;
            let more = this.lock().remove(reason).unwrap_or(0);
            if more > 0 {
                tracing::warn!(
                    place = this.place,
                    reason,
                    more,
                    "{more} more like the last of these in {} s (counted in /metrics)",
                    this.interval.as_secs()
                );
            }
        });
    }

    /// Events counted and not yet summarised, for `reason` (tests).
    pub fn pending(&self, reason: &'static str) -> Option<u64> {
        self.lock().get(reason).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<&'static str, u64>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_first_event_is_logged_and_the_rest_are_summed_until_the_interval_ends() {
        let flood = FloodLog::with_interval("test", Duration::from_millis(100));
        let mut logged = 0;
        for _ in 0..1000 {
            flood.event("over_capacity", || logged += 1);
        }
        flood.event("other", || logged += 1);
        assert_eq!(logged, 2, "one line per reason");
        assert_eq!(flood.pending("over_capacity"), Some(999));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            flood.pending("over_capacity"),
            None,
            "summarised and closed"
        );
        flood.event("over_capacity", || logged += 1);
        assert_eq!(logged, 3, "a new interval logs its first event again");
    }
}
