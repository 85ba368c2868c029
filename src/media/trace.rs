//! A benchmark's view into the media thread (`KITH_MEDIA_TRACE=FILE`): when a sound starts
//! after silence in what the microphone captured and in what each peer's jitter buffer played,
//! and once a second how long the thread's work took. `scripts/bench_calls.py` pairs the
//! onsets of two processes on one machine (one wall clock) into mouth-to-ear latency.
//! Off unless the variable is set; the lines are buffered and written by the media thread
//! itself (a benchmark accepts the cost, a call never pays it).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::protocol::identity::IdentityKey;

use super::SAMPLE_RATE;

/// A sample this loud after silence is an onset.
const ONSET: f32 = 0.05;
/// Silence this long before an onset counts (so one burst gives one onset).
const QUIET_BEFORE: Duration = Duration::from_millis(100);

/// Onset detection on one stream of frames.
#[derive(Default)]
struct Onsets {
    quiet_since: Option<Instant>,
}

impl Onsets {
    /// The offset (in samples) of an onset in `frame`, if one starts there.
    fn feed(&mut self, now: Instant, frame: &[f32]) -> Option<usize> {
        match frame.iter().position(|s| s.abs() >= ONSET) {
            None => {
                self.quiet_since.get_or_insert(now);
                None
            }
            Some(i) => {
                let onset = self.quiet_since.is_some_and(|q| now.duration_since(q) >= QUIET_BEFORE);
                self.quiet_since = None;
                onset.then_some(i)
            }
        }
    }
}

/// Time spent on the thread's work, accumulated between reports.
#[derive(Default)]
pub struct WorkTimes {
    pub frames: u32,
    pub capture: Duration,
    pub encode: Duration,
    pub played: u32,
    pub play: Duration,
    pub worst_tick: Duration,
}

pub struct Trace {
    out: BufWriter<File>,
    mic: Onsets,
    peers: HashMap<IdentityKey, Onsets>,
    pub work: WorkTimes,
}

/// Now on the wall clock (nanoseconds since 1970), moved by `offset_samples` of audio.
fn unix_ns(offset_samples: i64) -> i128 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    now.as_nanos() as i128 + i128::from(offset_samples) * 1_000_000_000 / i128::from(SAMPLE_RATE)
}

impl Trace {
    /// The trace `KITH_MEDIA_TRACE` asks for, if any (a file that cannot be made: none).
    pub fn from_env() -> Option<Self> {
        let path = std::env::var_os("KITH_MEDIA_TRACE")?;
        let file = File::options().create(true).append(true).open(&path).ok()?;
        Some(Self {
            out: BufWriter::new(file),
            mic: Onsets::default(),
            peers: HashMap::new(),
            work: WorkTimes::default(),
        })
    }

    /// A frame the microphone gave (after processing, before the encoder). A frame is read
    /// once its last sample is in, so its sample `i` was captured `FRAME - i` samples ago.
    pub fn captured(&mut self, now: Instant, frame: &[f32]) {
        if let Some(i) = self.mic.feed(now, frame) {
            let _ = writeln!(self.out, "capture_onset {}", unix_ns(i as i64 - frame.len() as i64));
        }
    }

    /// A frame `peer`'s jitter buffer gave the mixer, with the buffer's level then. The
    /// speaker asks for a frame as it starts playing it: sample `i` plays `i` samples later.
    pub fn played(&mut self, now: Instant, peer: &IdentityKey, frame: &[f32], buffer_ms: f64) {
        if self.peers.len() > super::MAX_PEERS && !self.peers.contains_key(peer) {
            return;
        }
        if let Some(i) = self.peers.entry(*peer).or_default().feed(now, frame) {
            let _ =
                writeln!(self.out, "play_onset {} {} {buffer_ms:.1}", peer.fingerprint(), unix_ns(i as i64));
        }
    }

    /// Once a second: the mean time per frame of each part of the work, and the longest tick.
    pub fn report(&mut self) {
        let w = std::mem::take(&mut self.work);
        let per = |d: Duration, n: u32| if n == 0 { 0.0 } else { d.as_secs_f64() * 1e6 / f64::from(n) };
        let _ = writeln!(
            self.out,
            "work frames={} capture_us={:.0} encode_us={:.0} played={} play_us={:.0} worst_tick_us={}",
            w.frames,
            per(w.capture, w.frames),
            per(w.encode, w.frames),
            w.played,
            per(w.play, w.played),
            w.worst_tick.as_micros()
        );
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_onset_is_a_sound_after_silence_once_per_burst() {
        let mut o = Onsets::default();
        let t0 = Instant::now();
        let quiet = [0.0f32; 960];
        let mut loud = [0.0f32; 960];
        loud[300..].fill(0.3);
        assert_eq!(o.feed(t0, &loud), None, "no silence before it yet");
        for i in 0..10 {
            assert_eq!(o.feed(t0 + Duration::from_millis(20 * i), &quiet), None);
        }
        assert_eq!(o.feed(t0 + Duration::from_millis(200), &loud), Some(300));
        assert_eq!(o.feed(t0 + Duration::from_millis(220), &loud), None, "the same burst goes on");
    }
}
