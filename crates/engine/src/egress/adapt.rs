//! Which rendition a WebRTC viewer should get, from its bandwidth estimate.
//!
//! str0m estimates each viewer's path from transport-wide congestion control feedback (the
//! viewer's receipts of every packet, RFC 8888-like TWCC). A viewer moves down to the light
//! rendition when the estimate stays below [`DOWN_FAR`] of what the main one needs for
//! [`DOWN_AFTER`], or below [`DOWN_BELOW`] of it for [`DOWN_SLOW_AFTER`]; it moves back up
//! when the estimate stays above that need with a margin for [`UP_AFTER`]; and never sooner
//! than [`DWELL`] after its last move: a path at the edge does not flap.
//!
//! Why not move down as soon as the estimate is under the need: on a path with room, the
//! estimate of a viewer on the main rendition hovers near what is sent (it grows only with
//! what is sent, and nothing pads the main rendition), so it dips under the need now and then
//! without any congestion (seen on loopback: 2.3–2.8 Mb/s against a need of 2.86). A busy
//! machine deepens those dips: when the server or the viewer waits for a core, packets arrive
//! late, and a delay-based estimator reads lateness as a queue. Such dips are short (the
//! estimate is back within a few seconds), and a path that cannot carry the main rendition
//! drives the estimate far lower and keeps it there (about 1 Mb/s on a 1 Mb/s link, within two
//! seconds, falling on). So a deep dip moves a viewer soon, and a shallow one only if it lasts.

use std::time::{Duration, Instant};

use crate::media::Rendition;

/// How long the estimate must stay below [`DOWN_FAR`] of the main rendition's need before a
/// viewer moves down. Short: a viewer on a path that cannot carry the main rendition freezes
/// meanwhile.
pub const DOWN_AFTER: Duration = Duration::from_millis(1500);
/// The share of the main rendition's need below which a viewer moves down after
/// [`DOWN_AFTER`]: no path that carries the main rendition keeps its estimate this low.
pub const DOWN_FAR: f64 = 0.5;
/// How long the estimate must stay below [`DOWN_BELOW`] (but not [`DOWN_FAR`]) of the need
/// before a viewer moves down: longer than a busy machine's dips last.
pub const DOWN_SLOW_AFTER: Duration = Duration::from_secs(4);
/// The share of the main rendition's need the estimate must stay below to move down at all.
pub const DOWN_BELOW: f64 = 0.7;
/// How long it must stay above the need with [`UP_MARGIN`] before a viewer moves up.
pub const UP_AFTER: Duration = Duration::from_secs(2);
/// No move sooner than this after the last one.
pub const DWELL: Duration = Duration::from_secs(6);
/// The estimate a move up needs, over the main rendition's need.
pub const UP_MARGIN: f64 = 1.15;
/// Packet headers, SRTP tags and retransmissions over the encoders' bitrates.
const OVERHEAD: f64 = 1.1;

/// The studio's Opus bitrate (`studio-output.pipeline`), for what a rendition needs.
pub const AUDIO_KBPS: u32 = 64;

/// What a rendition needs on the path, in bits per second: video, audio and overhead.
pub fn need_bps(video_kbps: u32, audio_kbps: u32) -> u64 {
    ((video_kbps + audio_kbps) as f64 * 1000.0 * OVERHEAD) as u64
}

/// One viewer's adaptation state.
#[derive(Debug)]
pub struct Adaptation {
    /// What the main rendition needs (bps).
    main_need: u64,
    estimate: Option<u64>,
    /// Since when the estimate has been below [`DOWN_FAR`] and [`DOWN_BELOW`] of the main
    /// need, or above it with the margin.
    far_below_since: Option<Instant>,
    below_since: Option<Instant>,
    above_since: Option<Instant>,
    last_move: Instant,
}

impl Adaptation {
    pub fn new(main_need: u64, now: Instant) -> Self {
        Self {
            main_need,
            estimate: None,
            far_below_since: None,
            below_since: None,
            above_since: None,
            last_move: now,
        }
    }

    /// The latest estimate (bps), if any came.
    pub fn estimate(&self) -> Option<u64> {
        self.estimate
    }

    /// Takes a new estimate.
    pub fn observe(&mut self, bps: u64, now: Instant) {
        self.estimate = Some(bps);
        let need = self.main_need as f64;
        let since = |slot: &mut Option<Instant>, holds: bool| {
            if holds {
                slot.get_or_insert(now);
            } else {
                *slot = None;
            }
        };
        since(&mut self.far_below_since, (bps as f64) < need * DOWN_FAR);
        since(&mut self.below_since, (bps as f64) < need * DOWN_BELOW);
        since(&mut self.above_since, bps as f64 >= need * UP_MARGIN);
    }

    /// Where a viewer now wanting `wanted` should go, if it should move.
    pub fn decide(&mut self, wanted: Rendition, now: Instant) -> Option<Rendition> {
        if now.saturating_duration_since(self.last_move) < DWELL {
            return None;
        }
        let held = |since: Option<Instant>, needed: Duration| {
            since.is_some_and(|at| now.saturating_duration_since(at) >= needed)
        };
        let next = match wanted {
            Rendition::Main
                if held(self.far_below_since, DOWN_AFTER)
                    || held(self.below_since, DOWN_SLOW_AFTER) =>
            {
                Rendition::Light
            }
            Rendition::Light if held(self.above_since, UP_AFTER) => Rendition::Main,
            _ => return None,
        };
        self.last_move = now;
        Some(next)
    }

    /// A move down may come sooner than [`DWELL`] after the viewer joined: the dwell counts
    /// from moves only.
    pub fn joined(&mut self, now: Instant) {
        self.last_move = now - DWELL;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEED: u64 = 2_800_000;

    fn feed(a: &mut Adaptation, wanted: &mut Rendition, from: Instant, secs: f64, bps: u64) {
        let steps = (secs * 10.0) as u32;
        for i in 0..steps {
            let now = from + Duration::from_millis(100 * i as u64);
            a.observe(bps, now);
            if let Some(next) = a.decide(*wanted, now) {
                *wanted = next;
            }
        }
    }

    #[test]
    fn a_far_low_estimate_moves_down_after_a_second_and_a_half_and_a_recovered_one_moves_up_later()
    {
        let t0 = Instant::now();
        let mut a = Adaptation::new(NEED, t0);
        a.joined(t0);
        let mut wanted = Rendition::Main;
        feed(&mut a, &mut wanted, t0, 1.4, 900_000);
        assert_eq!(wanted, Rendition::Main, "not before 1.5 s");
        feed(
            &mut a,
            &mut wanted,
            t0 + Duration::from_millis(1400),
            0.3,
            900_000,
        );
        assert_eq!(wanted, Rendition::Light);
        // Recovered at once: it stays down for the dwell, then needs the margin for 3 s.
        let t1 = t0 + Duration::from_millis(1700);
        feed(&mut a, &mut wanted, t1, 5.0, 5_000_000);
        assert_eq!(wanted, Rendition::Light, "not within the dwell");
        feed(
            &mut a,
            &mut wanted,
            t1 + Duration::from_secs(5),
            2.5,
            5_000_000,
        );
        assert_eq!(wanted, Rendition::Main);
    }

    #[test]
    fn a_shallow_dip_moves_a_viewer_only_when_it_lasts_four_seconds() {
        let t0 = Instant::now();
        let mut a = Adaptation::new(NEED, t0);
        a.joined(t0);
        let mut wanted = Rendition::Main;
        // 60 % of the need: what a busy machine's dip looked like, for 3.5 s, then back.
        feed(&mut a, &mut wanted, t0, 3.5, NEED * 6 / 10);
        feed(
            &mut a,
            &mut wanted,
            t0 + Duration::from_millis(3500),
            1.0,
            NEED,
        );
        assert_eq!(wanted, Rendition::Main, "a 3.5 s shallow dip");
        // The same level held: the path cannot carry the main rendition after all.
        let t1 = t0 + Duration::from_millis(4500);
        feed(&mut a, &mut wanted, t1, 3.9, NEED * 6 / 10);
        assert_eq!(wanted, Rendition::Main, "not before 4 s");
        feed(
            &mut a,
            &mut wanted,
            t1 + Duration::from_millis(3900),
            0.3,
            NEED * 6 / 10,
        );
        assert_eq!(wanted, Rendition::Light);
    }

    #[test]
    fn an_estimate_between_the_need_and_the_margin_moves_nowhere() {
        let t0 = Instant::now();
        let mut a = Adaptation::new(NEED, t0);
        a.joined(t0);
        let mut wanted = Rendition::Light;
        feed(&mut a, &mut wanted, t0, 20.0, NEED + NEED / 20);
        assert_eq!(
            wanted,
            Rendition::Light,
            "above the need but below the margin"
        );
        let mut wanted = Rendition::Main;
        feed(
            &mut a,
            &mut wanted,
            t0 + Duration::from_secs(20),
            20.0,
            NEED + NEED / 20,
        );
        assert_eq!(wanted, Rendition::Main);
    }

    #[test]
    fn an_estimate_near_what_the_main_rendition_sends_keeps_a_viewer_on_it() {
        let t0 = Instant::now();
        let mut a = Adaptation::new(NEED, t0);
        a.joined(t0);
        let mut wanted = Rendition::Main;
        feed(&mut a, &mut wanted, t0, 30.0, 2_283_000);
        assert_eq!(wanted, Rendition::Main);
    }

    #[test]
    fn dips_shorter_than_a_second_do_not_move_a_viewer() {
        let t0 = Instant::now();
        let mut a = Adaptation::new(NEED, t0);
        a.joined(t0);
        let mut wanted = Rendition::Main;
        for i in 0..20u64 {
            let at = t0 + Duration::from_secs(i);
            feed(&mut a, &mut wanted, at, 0.5, 500_000);
            feed(
                &mut a,
                &mut wanted,
                at + Duration::from_millis(500),
                0.5,
                6_000_000,
            );
        }
        assert_eq!(wanted, Rendition::Main);
    }
}
