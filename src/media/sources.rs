//! Where a call's audio comes from and goes to when it is not a sound card: the synthetic
//! sources tests (and people without a microphone) use. Each is paced by the clock, 20 ms at
//! a time, as a device would be.

use std::path::Path;
use std::time::{Duration, Instant};

use super::signal::Tone;
use super::{FRAME, SAMPLE_RATE};

pub const FRAME_TIME: Duration = Duration::from_millis(20);

/// What a microphone gives: 20 ms frames, when they are due.
pub trait Microphone {
    /// The next frame into `frame`, if it is due by `now`.
    fn read(&mut self, now: Instant, frame: &mut [f32; FRAME]) -> bool;

    /// When the next frame is due, for a source on its own clock; `None` for a device (its
    /// callback fills a ring the media thread polls).
    fn next_due(&self) -> Option<Instant> {
        None
    }

    /// Something the user should know (the device stopped delivering), said once.
    fn problem(&mut self, _now: Instant) -> Option<String> {
        None
    }
}

/// What a speaker takes: 20 ms frames, when it has room for them.
pub trait Speaker {
    /// Whether the speaker wants another frame by `now`.
    fn wants(&mut self, now: Instant) -> bool;
    fn play(&mut self, frame: &[f32; FRAME]);

    /// When it will want the next frame, for a speaker on its own clock; `None` for a device.
    fn next_due(&self) -> Option<Instant> {
        None
    }

    /// Something the user should know (the device stopped playing), said once.
    fn problem(&mut self, _now: Instant) -> Option<String> {
        None
    }
}

/// How long a device may take nothing (or give nothing) before it counts as stalled, once it
/// has started, and how long it has to start (a sound server takes its time with a new stream).
pub const STALLED: Duration = Duration::from_millis(500);
pub const STARTING: Duration = Duration::from_secs(3);

/// A frame every 20 ms from the first call on. After a stall (the thread was not scheduled)
/// it skips what it missed beyond 100 ms instead of bursting it all out.
#[derive(Debug, Default)]
pub(crate) struct Pacer {
    next: Option<Instant>,
}

impl Pacer {
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        let next = *self.next.get_or_insert(now);
        if now < next {
            return false;
        }
        let behind = now - next;
        self.next = Some(if behind > 5 * FRAME_TIME { now + FRAME_TIME } else { next + FRAME_TIME });
        true
    }

    /// When the next frame is due (`None` before the first).
    pub(crate) fn next(&self) -> Option<Instant> {
        self.next
    }
}

/// `tone:HZ`: a sine at `HZ`, at a quarter of full scale.
pub struct ToneMic {
    tone: Tone,
    pacer: Pacer,
}

impl ToneMic {
    pub fn new(hz: f32) -> Self {
        Self { tone: Tone::new(hz, 0.25), pacer: Pacer::default() }
    }
}

impl Microphone for ToneMic {
    fn read(&mut self, now: Instant, frame: &mut [f32; FRAME]) -> bool {
        if !self.pacer.due(now) {
            return false;
        }
        self.tone.fill(frame);
        true
    }

    fn next_due(&self) -> Option<Instant> {
        self.pacer.next()
    }
}

/// The longest WAV file a microphone plays (it loops): 10 minutes, 115 MB of samples.
const MAX_WAV_SECONDS: u64 = 600;

#[derive(Debug, thiserror::Error)]
pub enum WavError {
    #[error("cannot read the WAV file {path}: {source}")]
    Read { path: String, source: hound::Error },
    #[error("the WAV file {path} is longer than {MAX_WAV_SECONDS} s")]
    TooLong { path: String },
    #[error("the WAV file {path} holds no audio")]
    Empty { path: String },
}

/// `wav:PATH`: a WAV file, mixed down to mono, resampled to 48 kHz, played in a loop.
pub struct WavMic {
    samples: Vec<f32>,
    at: usize,
    pacer: Pacer,
}

impl WavMic {
    pub fn open(path: &Path) -> Result<Self, WavError> {
        let name = path.display().to_string();
        let read = |source| WavError::Read { path: name.clone(), source };
        let reader = hound::WavReader::open(path).map_err(read)?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let frames = u64::from(reader.duration());
        if frames > MAX_WAV_SECONDS * u64::from(spec.sample_rate.max(1)) {
            return Err(WavError::TooLong { path: name });
        }
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => {
                reader.into_samples::<f32>().collect::<Result<_, _>>().map_err(read)?
            }
            hound::SampleFormat::Int => {
                let scale = 1.0 / (1u64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .into_samples::<i32>()
                    .map(|s| s.map(|s| s as f32 * scale))
                    .collect::<Result<_, _>>()
                    .map_err(read)?
            }
        };
        let mono: Vec<f32> =
            interleaved.chunks(channels).map(|c| c.iter().sum::<f32>() / channels as f32).collect();
        let samples = resample_linear(&mono, spec.sample_rate, SAMPLE_RATE);
        if samples.is_empty() {
            return Err(WavError::Empty { path: name });
        }
        Ok(Self { samples, at: 0, pacer: Pacer::default() })
    }
}

impl Microphone for WavMic {
    fn read(&mut self, now: Instant, frame: &mut [f32; FRAME]) -> bool {
        if !self.pacer.due(now) {
            return false;
        }
        for s in frame.iter_mut() {
            *s = self.samples[self.at];
            self.at = (self.at + 1) % self.samples.len();
        }
        true
    }

    fn next_due(&self) -> Option<Instant> {
        self.pacer.next()
    }
}

/// Linear interpolation between sample rates: good enough for a test file (a device path
/// that resamples uses a real resampler).
fn resample_linear(x: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || x.len() < 2 || from == 0 {
        return x.to_vec();
    }
    let ratio = from as f64 / to as f64;
    let n = ((x.len() - 1) as f64 / ratio) as usize + 1;
    (0..n)
        .map(|i| {
            let pos = i as f64 * ratio;
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let next = x.get(j + 1).copied().unwrap_or(x[j]);
            x[j] * (1.0 - frac) + next * frac
        })
        .collect()
}

/// `--speaker null`: takes a frame every 20 ms and drops it, at the pace a sound card would.
#[derive(Default)]
pub struct NullSpeaker {
    pacer: Pacer,
}

impl Speaker for NullSpeaker {
    fn wants(&mut self, now: Instant) -> bool {
        self.pacer.due(now)
    }

    fn play(&mut self, _frame: &[f32; FRAME]) {}

    fn next_due(&self) -> Option<Instant> {
        self.pacer.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::signal::dominant_frequency;

    #[test]
    fn the_tone_microphone_gives_a_frame_every_20_ms_and_skips_a_stall() {
        let mut mic = ToneMic::new(440.0);
        let t = Instant::now();
        let mut frame = [0.0; FRAME];
        let mut got = 0;
        for ms in 0..1000 {
            got += usize::from(mic.read(t + Duration::from_millis(ms), &mut frame));
        }
        assert_eq!(got, 50);
        // A 2 s stall does not become 100 frames at once.
        let burst = (0..10).filter(|_| mic.read(t + Duration::from_secs(3), &mut frame)).count();
        assert_eq!(burst, 1);
    }

    #[test]
    fn a_wav_file_is_mixed_to_mono_resampled_and_looped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..16_000 {
            let s = ((i as f32 * std::f32::consts::TAU * 500.0 / 16_000.0).sin() * 10_000.0) as i16;
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let mut mic = WavMic::open(&path).unwrap();
        assert!((mic.samples.len() as i64 - 48_000).abs() <= 3);
        let t = Instant::now();
        let mut all = Vec::new();
        let mut frame = [0.0; FRAME];
        for i in 0..60 {
            assert!(mic.read(t + FRAME_TIME * i, &mut frame));
            all.extend_from_slice(&frame);
        }
        let f = dominant_frequency(&all[..48_000], 48_000).unwrap();
        assert!((f - 500.0).abs() < 2.0, "{f}");
        let missing = WavMic::open(&dir.path().join("missing.wav")).err().expect("an error");
        assert!(missing.to_string().contains("missing.wav"), "{missing}");
        std::fs::write(dir.path().join("bad.wav"), b"RIFF nonsense").unwrap();
        assert!(WavMic::open(&dir.path().join("bad.wav")).is_err());
    }
}
