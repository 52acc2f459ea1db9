//! Output timestamps for video frames, on the output's frame grid.
//!
//! A frame reaches the output when its source hands it over: a publisher's decoder, after the
//! network and the decoder's own bursts, or the slate's thread. Stamped with that arrival
//! time, frames 33 ms apart in the source come out 3 to 70 ms apart. A WebRTC player's jitter
//! buffer absorbs that; an HLS player does not. hls.js guesses the last frame's duration in
//! each part, so every boundary becomes a small overlap or hole, and the holes it does not
//! mend leave gaps in the browser's buffer that stall playback for seconds.
//!
//! So each frame is stamped at the slot of the frame grid (the output's frame rate, counted
//! from running time zero) nearest its arrival. Two frames that land in one slot: the second
//! takes the next slot, as long as that is at most one frame interval ahead of its arrival;
//! further ahead (a burst after a network stall), it is dropped, so video never runs ahead of
//! the audio by more than one frame. A frame that comes late leaves its slot empty and takes
//! the one it arrived in: the timeline keeps up with the source's real pace.

/// The frame grid of one output, and the last slot taken.
#[derive(Debug, Clone)]
pub struct FrameClock {
    interval: u64,
    last: Option<u64>,
}

impl FrameClock {
    /// A grid of `fps` frames a second.
    pub fn new(fps: u32) -> Self {
        Self {
            interval: 1_000_000_000 / u64::from(fps.max(1)),
            last: None,
        }
    }

    /// The timestamp (ns of running time) for a frame that arrived at `arrival`, or `None`
    /// to drop it.
    pub fn stamp(&mut self, arrival: u64) -> Option<u64> {
        let interval = self.interval;
        let slot = (arrival + interval / 2) / interval * interval;
        let pts = match self.last {
            Some(last) if slot <= last => last + interval,
            _ => slot,
        };
        if pts > arrival + interval {
            return None;
        }
        self.last = Some(pts);
        Some(pts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 33_333_333;
    const MS: u64 = 1_000_000;

    #[test]
    fn jittery_arrivals_come_out_on_the_grid() {
        let mut clock = FrameClock::new(30);
        // Within half a frame of their slots, early or late.
        let jitter = [0, 12, -9, 15, -14, 3, 8, -2];
        let stamps: Vec<u64> = jitter
            .iter()
            .enumerate()
            .map(|(i, j)| {
                let arrival = (100 + i as u64) * T;
                clock
                    .stamp(arrival.saturating_add_signed(j * MS as i64))
                    .unwrap()
            })
            .collect();
        let expected: Vec<u64> = (100..108).map(|i| i * T).collect();
        assert_eq!(stamps, expected);
    }

    #[test]
    fn two_frames_in_one_slot_take_the_next_and_a_burst_beyond_it_is_dropped() {
        let mut clock = FrameClock::new(30);
        assert_eq!(clock.stamp(10 * T), Some(10 * T));
        // 3 ms later: the same slot, so the next one (30 ms ahead of arrival).
        assert_eq!(clock.stamp(10 * T + 3 * MS), Some(11 * T));
        // A third within the same few ms would be two frames ahead: dropped.
        assert_eq!(clock.stamp(10 * T + 5 * MS), None);
        // The source's next frame, on time, finds its slot taken and goes one on.
        assert_eq!(clock.stamp(11 * T + 2 * MS), Some(12 * T));
        // One that comes late takes the slot it arrived in: the timeline keeps up.
        assert_eq!(clock.stamp(14 * T), Some(14 * T));
    }

    #[test]
    fn timestamps_only_go_forward_and_never_run_more_than_a_frame_ahead() {
        let mut clock = FrameClock::new(30);
        let mut last = 0;
        // A pseudo-random walk of arrivals, bursts included.
        let mut arrival = 5 * T;
        let mut seed = 7u64;
        for _ in 0..10_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            arrival += (seed >> 33) % (70 * MS);
            if let Some(pts) = clock.stamp(arrival) {
                assert!(pts > last, "{pts} after {last}");
                assert!(pts <= arrival + T);
                assert_eq!(pts % T, 0);
                last = pts;
            }
        }
    }
}
