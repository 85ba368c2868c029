//! One peer's adaptive jitter buffer, shaped like WebRTC's NetEq: packets wait here, ordered
//! by their RTP timestamp, until the playout clock reaches them.
//!
//! - **Target delay** from the measured arrival jitter: each packet's delay relative to the
//!   fastest packet of the 2 s before it (a short window, so clock drift does not pass for
//!   jitter); the target is the 95th percentile of the last 5 s of those plus a floor of a
//!   frame and a half. Jitter that goes away leaves the window, so the target shrinks again.
//! - **Time-stretching** moves the buffer toward the target without clicks: a frame that
//!   arrives into a buffer above the target is shortened by a pitch period (`accelerate`), one
//!   below it is lengthened (`expand`). Clock drift between sender and receiver is the same
//!   problem in slow motion, and is absorbed the same way.
//! - **Loss**: a missing frame is rebuilt from the next packet's in-band FEC when that packet
//!   is here, and concealed by the decoder (PLC) otherwise. A long silence (the sender's DTX,
//!   or it stopped) ends concealment; when packets come again the buffer fills to the target
//!   before playing.
//! - **Running dry is not loss**: a frame missing with nothing after it may still be on its
//!   way (a stall of the network or of the sender's thread), so the decoder conceals *without*
//!   giving up that frame's turn; when the packet comes it is played, and the buffer has
//!   grown by what was concealed (acceleration takes it back once the target is lower). Only a
//!   later packet arriving first proves a frame lost, as in NetEq.
//!
//! Sans-IO: arrival times are passed in, and playout is driven by whoever pulls frames (the
//! media thread, once per 20 ms), so the tests run on a simulated clock.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::codec::{Decoder, MAX_PACKET};
use super::stretch;
use super::{FRAME, MAX_FRAME, SAMPLE_RATE};

/// Samples per millisecond.
const PER_MS: u64 = SAMPLE_RATE as u64 / 1000;
/// Packets held at most: 2 s of 20 ms frames. A sender that outruns playout by more than this
/// loses its oldest packets, not our memory.
pub const MAX_PACKETS: usize = 100;
/// The arrival history the target is computed from (5 s of 20 ms packets).
const HISTORY: usize = 250;
/// How far back the fastest packet is looked for (as NetEq does).
const FASTEST_WINDOW_MS: f64 = 2000.0;
/// The target delay's bounds. The level is counted with the frame being decoded, and the
/// band it is held in is `target..target + 20 ms` (wider for long targets), so a floor of a
/// frame and a half keeps it at two frames as each pull decodes: one frame playing and one
/// waiting. A packet is then played at the second pull after it arrives (20–40 ms in the
/// buffer), and it may come up to a frame late without the buffer running dry. A floor of two
/// frames (as before) held one more frame waiting: 20 ms of mouth-to-ear for nothing on a
/// calm path.
const MIN_TARGET_MS: f64 = 30.0;
const MAX_TARGET_MS: f64 = 500.0;
/// Concealment stops after this much audio in a row has been made up.
const MAX_CONCEAL_MS: u64 = 200;
/// A gap in the timestamps this long with later packets waiting is a jump (DTX, a restart of
/// the sender's stream), not loss: playout moves to the next packet.
const JUMP_MS: u64 = 100;
/// Timestamps this far from the playout point belong to a new stream: start over.
const RESET_MS: u64 = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct JitterStats {
    /// Packets that arrived (late and duplicate ones included).
    pub packets: u64,
    /// Frames missing when their turn came.
    pub lost: u64,
    /// Of those, rebuilt from the next packet's FEC.
    pub recovered_fec: u64,
    /// Audio made up by the decoder's concealment.
    pub concealed_ms: u64,
    /// Packets that came after their turn, or twice.
    pub late: u64,
    /// Audio cut out by accelerating, and added by expanding.
    pub accelerated_ms: u64,
    pub expanded_ms: u64,
    /// Packets dropped because the buffer was full, or unusable (too big, undecodable).
    pub dropped: u64,
}

struct Packet {
    data: Vec<u8>,
}

pub struct JitterBuffer {
    decoder: Decoder,
    packets: BTreeMap<u64, Packet>,
    /// The timestamp of the next frame to decode; `None` while (re)buffering.
    playout: Option<u64>,
    /// Decoded audio not yet played.
    ready: VecDeque<f32>,
    /// Packets of the last 2 s: (arrival on our clock, arrival minus timestamp), in ms.
    recent: VecDeque<(f64, f64)>,
    /// The last 5 s of packets' delay beyond the fastest of the 2 s before each, in ms.
    history: VecDeque<f64>,
    epoch: Option<Instant>,
    target_ms: f64,
    concealed_run: u64,
    stats: JitterStats,
    frame: Box<[f32; MAX_FRAME]>,
    stretched: Vec<f32>,
}

impl JitterBuffer {
    pub fn new(decoder: Decoder) -> Self {
        Self {
            decoder,
            packets: BTreeMap::new(),
            playout: None,
            ready: VecDeque::with_capacity(4 * MAX_FRAME),
            recent: VecDeque::with_capacity(2 * HISTORY / 5),
            history: VecDeque::with_capacity(HISTORY),
            epoch: None,
            target_ms: MIN_TARGET_MS,
            concealed_run: 0,
            stats: JitterStats::default(),
            frame: Box::new([0.0; MAX_FRAME]),
            stretched: Vec::with_capacity(2 * MAX_FRAME),
        }
    }

    pub fn stats(&self) -> JitterStats {
        self.stats
    }

    /// The delay the buffer aims for now.
    pub fn target_ms(&self) -> f64 {
        self.target_ms
    }

    /// The audio waiting to be played, decoded or not, in ms.
    pub fn level_ms(&self) -> f64 {
        let decoded = self.ready.len() as f64 / PER_MS as f64;
        let waiting = match (self.playout, self.packets.last_key_value()) {
            (Some(p), Some((&last, _))) if last >= p => (last - p + FRAME as u64) as f64 / PER_MS as f64,
            (None, Some(_)) => self.buffered_span_ms(),
            _ => 0.0,
        };
        decoded + waiting
    }

    fn buffered_span_ms(&self) -> f64 {
        match (self.packets.first_key_value(), self.packets.last_key_value()) {
            (Some((&first, _)), Some((&last, _))) => (last - first + FRAME as u64) as f64 / PER_MS as f64,
            _ => 0.0,
        }
    }

    /// A packet with RTP timestamp `ts` (48 kHz, extended to 64 bits) that arrived at `arrived`.
    pub fn insert(&mut self, ts: u64, data: &[u8], arrived: Instant) {
        self.stats.packets += 1;
        if data.is_empty() || data.len() > MAX_PACKET {
            self.stats.dropped += 1;
            return;
        }
        if let Some(p) = self.playout
            && ts.abs_diff(p) > RESET_MS * PER_MS
        {
            tracing::debug!(ts, playout = p, "audio timestamps jumped: a new stream");
            self.packets.clear();
            self.recent.clear();
            self.history.clear();
            self.playout = None;
        }
        if self.playout.is_some_and(|p| ts < p) || self.packets.contains_key(&ts) {
            self.stats.late += 1;
            return;
        }
        self.note_arrival(ts, arrived);
        if self.packets.len() >= MAX_PACKETS {
            self.packets.pop_first();
            self.stats.dropped += 1;
        }
        self.packets.insert(ts, Packet { data: data.to_vec() });
    }

    fn note_arrival(&mut self, ts: u64, arrived: Instant) {
        let epoch = *self.epoch.get_or_insert(arrived);
        let arrival_ms = arrived.saturating_duration_since(epoch).as_secs_f64() * 1000.0;
        let delay = arrival_ms - ts as f64 / PER_MS as f64;
        while self.recent.front().is_some_and(|(at, _)| arrival_ms - at > FASTEST_WINDOW_MS)
            || self.recent.len() >= MAX_PACKETS
        {
            self.recent.pop_front();
        }
        let fastest = self.recent.iter().map(|(_, d)| *d).fold(delay, f64::min);
        self.recent.push_back((arrival_ms, delay));
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(delay - fastest);
        self.target_ms = self.compute_target();
    }

    /// Two frames, plus the 95th percentile of how much later than the fastest recent packet
    /// the packets came.
    fn compute_target(&self) -> f64 {
        if self.history.is_empty() {
            return self.target_ms;
        }
        let mut late: Vec<f64> = self.history.iter().copied().collect();
        let rank = ((late.len() as f64) * 0.95).ceil() as usize;
        let at = rank.clamp(1, late.len()) - 1;
        let (_, p95, _) = late.select_nth_unstable_by(at, f64::total_cmp);
        (MIN_TARGET_MS + *p95).clamp(MIN_TARGET_MS, MAX_TARGET_MS)
    }

    /// The next `out.len()` samples of this peer's audio (silence while there is none).
    pub fn pull(&mut self, out: &mut [f32]) {
        while self.ready.len() < out.len() {
            if !self.produce() {
                // Nothing to play yet: silence for the rest, and the buffer keeps filling.
                self.ready.resize(out.len(), 0.0);
            }
        }
        let n = out.len();
        for (o, s) in out.iter_mut().zip(self.ready.drain(..n)) {
            *o = s;
        }
    }

    /// Decodes (or recovers, or conceals) the next frame into `ready`. False while buffering.
    fn produce(&mut self) -> bool {
        let p = match self.playout {
            Some(p) => p,
            None => {
                // Start (or start again) once the target's worth of audio is here.
                let Some((&first, _)) = self.packets.first_key_value() else { return false };
                if self.buffered_span_ms() < self.target_ms {
                    return false;
                }
                self.playout = Some(first);
                first
            }
        };
        if let Some(packet) = self.packets.remove(&p) {
            self.concealed_run = 0;
            let n = match self.decoder.decode(&packet.data, &mut self.frame) {
                Ok(n) if n > 0 => n,
                _ => {
                    self.stats.dropped += 1;
                    return self.conceal(p, true);
                }
            };
            self.playout = Some(p + n as u64);
            self.play_stretched(n);
            return true;
        }
        // Missing. A far gap with packets after it is a jump, not loss.
        match self.packets.first_key_value() {
            Some((&next, _)) if next - p >= JUMP_MS * PER_MS => {
                self.playout = Some(next);
                self.concealed_run = 0;
                return self.produce();
            }
            None if self.concealed_run >= MAX_CONCEAL_MS => {
                // Nothing is coming: stop making audio up, and buffer again when it comes.
                self.playout = None;
                return false;
            }
            None => {
                // Dry, not (yet) lost: conceal, and keep this frame's turn for its packet.
                return self.conceal(p, false);
            }
            Some(_) => {}
        }
        self.stats.lost += 1;
        let next = p + FRAME as u64;
        let recovered = match self.packets.get(&next) {
            Some(packet) if Decoder::may_have_fec(&packet.data) => {
                self.decoder.recover(&packet.data, &mut self.frame).ok().filter(|&n| n > 0)
            }
            _ => None,
        };
        match recovered {
            Some(n) => {
                self.stats.recovered_fec += 1;
                self.playout = Some(p + n as u64);
                self.ready.extend(&self.frame[..n]);
                true
            }
            None => self.conceal(p, true),
        }
    }

    /// Makes up a frame in place of `p`'s; `gone` says `p` is given up (its packet will be
    /// late if it comes), otherwise playout waits on `p` still.
    fn conceal(&mut self, p: u64, gone: bool) -> bool {
        let n = match self.decoder.conceal(&mut self.frame) {
            Ok(n) if n > 0 => n,
            _ => {
                self.frame[..FRAME].fill(0.0);
                FRAME
            }
        };
        if gone {
            self.playout = Some(p + n as u64);
        }
        self.ready.extend(&self.frame[..n]);
        let ms = n as u64 / PER_MS;
        self.stats.concealed_ms += ms;
        self.concealed_run += ms;
        true
    }

    /// Plays the `n` decoded samples in `frame`, shortened or lengthened by a pitch period
    /// when the buffer is off its target.
    fn play_stretched(&mut self, n: usize) {
        // What waits, this frame included (it left the packets already).
        let level = self.level_ms() + n as f64 / PER_MS as f64;
        let high = self.target_ms + (self.target_ms / 4.0).max(20.0);
        let low = self.target_ms;
        let frame = &self.frame[..n];
        let stretched = if level > high {
            stretch::accelerate(frame, &mut self.stretched).inspect(|cut| {
                self.stats.accelerated_ms += *cut as u64 / PER_MS;
            })
        } else if level < low {
            stretch::expand(frame, &mut self.stretched).inspect(|added| {
                self.stats.expanded_ms += *added as u64 / PER_MS;
            })
        } else {
            None
        };
        match stretched {
            Some(_) => self.ready.extend(&self.stretched),
            None => self.ready.extend(frame),
        }
    }

    /// How long until a packet now arriving would be played: for the stats.
    pub fn delay(&self) -> Duration {
        Duration::from_secs_f64(self.level_ms() / 1000.0)
    }
}

#[cfg(test)]
mod tests;
