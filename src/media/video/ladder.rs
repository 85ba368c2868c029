//! The resolution ladder: the camera's size, or half of it, for the one encoding everyone
//! gets. Half when the network gives the video too little for the full size to look better
//! than half would (below 40 % of the full size's ceiling, WebRTC switches at about the same
//! place) *and* the encoder is held back by it (it makes at least 80 % of what it may: a still
//! or simple picture that needs less loses nothing at the full size, and the estimate of a
//! path that carries little traffic stays low), or when encoding takes most of each frame's
//! time; back up only when the bitrate is
//! comfortably there again (60 %), after a while (so a wobbling estimate does not flip the
//! size and cost a keyframe each time), and, after a CPU step down, not for a minute.

use std::time::{Duration, Instant};

use super::frame::VideoSize;
use super::h264::ceiling_bps;

/// Below this share of the full size's ceiling, half the size.
const DOWN_SHARE: (u32, u32) = (2, 5);
/// At or above this share, the full size again.
const UP_SHARE: (u32, u32) = (3, 5);
/// The encoder is held back by the bitrate when it makes this share of it.
const HELD_BACK: (u32, u32) = (4, 5);
/// Encoding (and halving) taking this share of a frame's time on average is too much.
const BUSY: f32 = 0.6;
/// How long a step stays before the next one down, and before one up.
const DOWN_DWELL: Duration = Duration::from_secs(2);
const UP_DWELL: Duration = Duration::from_secs(10);
/// A new estimate starts low (300 kbit/s) and probes up within seconds: not a reason to step
/// down in a call's first seconds.
const START_GRACE: Duration = Duration::from_secs(5);
/// After a step down for CPU, no step up for this long.
const CPU_HOLD: Duration = Duration::from_secs(60);

pub struct Ladder {
    full: VideoSize,
    started: Instant,
    half: bool,
    since: Instant,
    cpu_hold_until: Option<Instant>,
    /// Average share of a frame's time spent encoding (exponential, ~10 frames).
    busy: f32,
    /// What the encoder made over the last second it was measured (bit/s).
    made_bps: Option<u32>,
}

impl Ladder {
    pub fn new(full: VideoSize, now: Instant) -> Self {
        Self { full, started: now, half: false, since: now, cpu_hold_until: None, busy: 0.0, made_bps: None }
    }

    /// One picture took `spent` of a frame time of `interval` to encode.
    pub fn encoded(&mut self, spent: Duration, interval: Duration) {
        let share = spent.as_secs_f32() / interval.as_secs_f32().max(1e-3);
        self.busy = 0.9 * self.busy + 0.1 * share;
    }

    /// What the encoder made over the last second (bit/s).
    pub fn made(&mut self, bps: u32) {
        self.made_bps = Some(bps);
    }

    /// The size to encode at now, given the bitrate the network carries (None: not measured
    /// yet, which keeps the size).
    pub fn size(&mut self, now: Instant, target_bps: Option<u32>) -> VideoSize {
        let Some(half) = self.full.half() else { return self.full };
        let ceiling = ceiling_bps(self.full);
        let share = |(n, d): (u32, u32)| ceiling / d * n;
        let busy = self.busy > BUSY;
        let dwelt = now.saturating_duration_since(self.since);
        if !self.half {
            let young = now < self.started + START_GRACE;
            let held = |t: u32| self.made_bps.is_some_and(|m| m >= t / HELD_BACK.1 * HELD_BACK.0);
            let starved = !young && target_bps.is_some_and(|t| t < share(DOWN_SHARE) && held(t));
            if (starved || busy) && dwelt >= DOWN_DWELL {
                (self.half, self.since) = (true, now);
                if busy {
                    self.cpu_hold_until = Some(now + CPU_HOLD);
                    // Measured again at the new size.
                    self.busy = 0.0;
                }
            }
        } else {
            let fed = target_bps.is_none_or(|t| t >= share(UP_SHARE));
            let held = self.cpu_hold_until.is_some_and(|t| now < t);
            if fed && !held && !busy && dwelt >= UP_DWELL {
                (self.half, self.since) = (false, now);
            }
        }
        if self.half { half } else { self.full }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(33);

    #[test]
    fn a_starved_network_halves_the_size_and_plenty_brings_it_back_after_a_while() {
        let t0 = Instant::now();
        let full = VideoSize::HD;
        let half = VideoSize::new(640, 360).unwrap();
        let mut l = Ladder::new(full, t0);
        l.made(600_000);
        assert_eq!(l.size(t0, None), full, "nothing measured: the chosen size");
        assert_eq!(l.size(t0 + Duration::from_secs(1), Some(300_000)), full, "the estimate's start");
        assert_eq!(l.size(t0 + Duration::from_secs(3), Some(2_000_000)), full);
        let at = t0 + Duration::from_secs(6);
        assert_eq!(l.size(at, Some(600_000)), half, "600 kbit/s is too little for 720p");
        // A wobble up does not flip it back at once.
        assert_eq!(l.size(at + Duration::from_secs(1), Some(2_000_000)), half);
        assert_eq!(
            l.size(at + Duration::from_secs(9), Some(1_200_000)),
            half,
            "1.2 Mbit/s: not enough to go up"
        );
        assert_eq!(l.size(at + Duration::from_secs(11), Some(1_600_000)), full, "plenty, and a while later");
    }

    #[test]
    fn a_picture_that_needs_little_keeps_its_size_on_a_low_estimate() {
        let t0 = Instant::now();
        let mut l = Ladder::new(VideoSize::HD, t0);
        l.made(200_000);
        assert_eq!(l.size(t0 + Duration::from_secs(10), Some(600_000)).width, 1280, "it makes a third of it");
        l.made(560_000);
        assert_eq!(l.size(t0 + Duration::from_secs(11), Some(600_000)).width, 640, "now held back");
    }

    #[test]
    fn a_busy_encoder_halves_the_size_for_a_minute() {
        let t0 = Instant::now();
        let mut l = Ladder::new(VideoSize::HD, t0);
        for _ in 0..30 {
            l.encoded(Duration::from_millis(30), FRAME);
        }
        let at = t0 + Duration::from_secs(3);
        assert_eq!(l.size(at, Some(2_500_000)).width, 640, "30 of 33 ms encoding");
        for _ in 0..30 {
            l.encoded(Duration::from_millis(5), FRAME);
        }
        assert_eq!(l.size(at + Duration::from_secs(30), Some(2_500_000)).width, 640, "held");
        assert_eq!(l.size(at + Duration::from_secs(61), Some(2_500_000)).width, 1280);
    }

    #[test]
    fn the_smallest_size_has_no_lower_step() {
        let t0 = Instant::now();
        let mut l = Ladder::new(VideoSize::MIN, t0);
        assert_eq!(l.size(t0 + Duration::from_secs(5), Some(10_000)), VideoSize::MIN);
    }
}
