//! Sound cards through cpal (on Linux, PulseAudio when a server runs, ALSA otherwise).
//!
//! The device callbacks run on the sound system's real-time thread, so they touch nothing but
//! an rtrb SPSC ring each: no lock, no allocation, no syscall. Capture mixes down to mono and
//! pushes; playout pops (silence when the ring runs dry) and copies the mono sample to every
//! channel. The media thread is on the other end of each ring, 20 ms at a time, resampling
//! when the device does not run at 48 kHz.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use rtrb::{Consumer, Producer, RingBuffer};

use super::devices::{MicChoice, SpeakerChoice};
use super::sources::{Microphone, Pacer, STALLED, STARTING, Speaker};
use super::{FRAME, SAMPLE_RATE};

/// Each ring holds 200 ms: room for a late media thread, not a growing delay (the speaker
/// side keeps only `PLAYOUT_TARGET` queued).
const RING_MS: usize = 200;
/// Audio queued for the speaker beyond what the device buffers itself.
const PLAYOUT_TARGET: usize = 2 * FRAME;

/// The sound system's devices, for Settings and `kith doctor`: each by the name `--mic` and
/// `--speaker` take (the sound system's own, stable across runs) and what it is called.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceList {
    pub host: String,
    pub inputs: Vec<(String, String)>,
    pub outputs: Vec<(String, String)>,
    pub default_input: Option<String>,
    pub default_output: Option<String>,
}

/// A device's stable name (its id without the host), or what it is called if it has no id.
fn device_name(d: &cpal::Device) -> String {
    d.id().map(|id| id.id().to_string()).unwrap_or_else(|_| d.to_string())
}

pub fn list_devices() -> Result<DeviceList, String> {
    let host = cpal::default_host();
    let named = |d: cpal::Device| (device_name(&d), d.to_string());
    let inputs = host.input_devices().map_err(|e| format!("cannot list input devices: {e}"))?;
    let inputs = inputs.map(named).collect();
    let outputs = host.output_devices().map_err(|e| format!("cannot list output devices: {e}"))?;
    let outputs = outputs.map(named).collect();
    Ok(DeviceList {
        host: host.id().name().to_string(),
        inputs,
        outputs,
        default_input: host.default_input_device().map(|d| device_name(&d)),
        default_output: host.default_output_device().map(|d| device_name(&d)),
    })
}

fn find_device(input: bool, name: Option<&str>) -> Result<cpal::Device, String> {
    let host = cpal::default_host();
    let what = if input { "input" } else { "output" };
    match name {
        None => {
            let d = if input { host.default_input_device() } else { host.default_output_device() };
            d.ok_or_else(|| format!("the sound system ({}) has no default {what} device", host.id().name()))
        }
        Some(name) => {
            let devices = if input { host.input_devices() } else { host.output_devices() };
            devices
                .map_err(|e| format!("cannot list {what} devices: {e}"))?
                .find(|d| device_name(d) == name || d.to_string() == name)
                .ok_or_else(|| format!("no {what} device named {name:?}"))
        }
    }
}

/// A configuration at 48 kHz if the device has one (fewest channels, f32 before i16), or
/// the device's default.
fn pick_config(
    device: &cpal::Device,
    input: bool,
) -> Result<(cpal::StreamConfig, cpal::SampleFormat), String> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device.supported_input_configs().map(|c| c.collect()).unwrap_or_default()
    } else {
        device.supported_output_configs().map(|c| c.collect()).unwrap_or_default()
    };
    let usable = |f: cpal::SampleFormat| matches!(f, cpal::SampleFormat::F32 | cpal::SampleFormat::I16);
    let best = ranges
        .iter()
        .filter(|r| usable(r.sample_format()))
        .filter(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&SAMPLE_RATE))
        .min_by_key(|r| (r.channels(), r.sample_format() != cpal::SampleFormat::F32));
    if let Some(r) = best {
        let c = r.with_sample_rate(SAMPLE_RATE);
        let mut config = c.config();
        // Ask for 10 ms callbacks. Left to itself a sound server may ask for seconds at a
        // time (PulseAudio's default), far more than the 40 ms the ring holds for it.
        let period = (SAMPLE_RATE / 100) as cpal::FrameCount;
        if let cpal::SupportedBufferSize::Range { min, max } = r.buffer_size()
            && (*min..=*max).contains(&period)
        {
            config.buffer_size = cpal::BufferSize::Fixed(period);
        }
        return Ok((config, c.sample_format()));
    }
    let c = if input { device.default_input_config() } else { device.default_output_config() }
        .map_err(|e| format!("no usable configuration: {e}"))?;
    if !usable(c.sample_format()) {
        return Err(format!("the device only offers {} samples", c.sample_format()));
    }
    Ok((c.config(), c.sample_format()))
}

/// A flag the stream's error callback raises (a device unplugged, a server gone), and that
/// callback; `what` names the device in the log.
fn failure_flag(what: &'static str) -> (Arc<AtomicBool>, impl FnMut(cpal::Error) + Send + 'static) {
    let failed = Arc::new(AtomicBool::new(false));
    let raise = Arc::clone(&failed);
    let on_error = move |e: cpal::Error| {
        tracing::warn!("{what}: {e}");
        raise.store(true, Ordering::Relaxed);
    };
    (failed, on_error)
}

/// A microphone on a sound card.
struct DeviceMic {
    _stream: cpal::Stream,
    ring: Consumer<f32>,
    resampler: Resampler,
    failed: Arc<AtomicBool>,
    /// Samples the callback could not queue (the media thread was behind).
    overruns: Arc<AtomicU64>,
    /// When the device last gave us a frame.
    last_frame: Option<Instant>,
    opened: Instant,
    said: bool,
}

pub fn open_input(choice: &MicChoice) -> Result<Box<dyn Microphone>, String> {
    let name = match choice {
        MicChoice::Device(n) => Some(n.as_str()),
        _ => None,
    };
    let device = find_device(true, name)?;
    let (config, format) = pick_config(&device, true)?;
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate;
    let (mut tx, rx) = RingBuffer::<f32>::new(rate as usize * RING_MS / 1000);
    let (failed, on_error) = failure_flag("microphone");
    let overruns = Arc::new(AtomicU64::new(0));
    let lost = Arc::clone(&overruns);
    let stream = match format {
        cpal::SampleFormat::F32 => device.build_input_stream(
            config,
            move |data: &[f32], _: &cpal::InputCallbackInfo| push_mono(&mut tx, data, channels, &lost, |s| s),
            on_error,
            None,
        ),
        _ => device.build_input_stream(
            config,
            move |data: &[i16], _: &cpal::InputCallbackInfo| {
                push_mono(&mut tx, data, channels, &lost, |s| f32::from(s) / 32768.0)
            },
            on_error,
            None,
        ),
    }
    .map_err(|e| format!("cannot open {device}: {e}"))?;
    stream.play().map_err(|e| format!("cannot start {device}: {e}"))?;
    tracing::info!(%device, rate, channels, "microphone open");
    Ok(Box::new(DeviceMic {
        _stream: stream,
        ring: rx,
        resampler: Resampler::new(rate, SAMPLE_RATE),
        failed,
        overruns,
        last_frame: None,
        opened: Instant::now(),
        said: false,
    }))
}

/// The capture callback's work: one mono sample per frame into the ring, the rest counted.
fn push_mono<T: Copy>(
    tx: &mut Producer<f32>,
    data: &[T],
    channels: usize,
    lost: &AtomicU64,
    to_f32: impl Fn(T) -> f32,
) {
    for frame in data.chunks_exact(channels) {
        let sum: f32 = frame.iter().map(|&s| to_f32(s)).sum();
        if tx.push(sum / channels as f32).is_err() {
            lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Microphone for DeviceMic {
    fn read(&mut self, now: Instant, frame: &mut [f32; FRAME]) -> bool {
        if self.failed.load(Ordering::Relaxed) {
            return false;
        }
        let dropped = self.overruns.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::debug!(dropped, "microphone samples dropped: the media thread was behind");
        }
        let got = self.resampler.pull(&mut self.ring, frame);
        if got {
            self.last_frame = Some(now);
        }
        got
    }

    fn problem(&mut self, now: Instant) -> Option<String> {
        let (since, allowed) = match self.last_frame {
            Some(at) => (at, STALLED * 2),
            None => (self.opened, STARTING),
        };
        let stuck = self.failed.load(Ordering::Relaxed) || now - since > allowed;
        if stuck && !self.said {
            self.said = true;
            return Some(
                "the microphone gives no audio (the sound device delivers nothing): the others do not hear you".into(),
            );
        }
        if !stuck {
            self.said = false;
        }
        None
    }
}

/// A speaker on a sound card.
struct DeviceSpeaker {
    _stream: cpal::Stream,
    ring: Producer<f32>,
    rate: u32,
    resampled: Vec<f32>,
    failed: Arc<AtomicBool>,
    /// Samples the device has taken (the callback counts them).
    taken: Arc<AtomicU64>,
    /// When the device last took any, and how many it had then; how many times it took.
    last_taken: (Instant, u64),
    takes: u32,
    /// The device stopped taking audio: the call is paced by the clock instead, so the
    /// jitter buffers keep playing out (and the stats stay true) rather than filling up.
    stalled: bool,
    said: bool,
    pacer: Pacer,
}

pub fn open_output(choice: &SpeakerChoice) -> Result<Box<dyn Speaker>, String> {
    let name = match choice {
        SpeakerChoice::Device(n) => Some(n.as_str()),
        _ => None,
    };
    let device = find_device(false, name)?;
    let (config, format) = pick_config(&device, false)?;
    let channels = usize::from(config.channels.max(1));
    let rate = config.sample_rate;
    let (tx, mut rx) = RingBuffer::<f32>::new(rate as usize * RING_MS / 1000);
    let (failed, on_error) = failure_flag("speaker");
    let taken = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&taken);
    let stream = match format {
        cpal::SampleFormat::F32 => device.build_output_stream(
            config,
            move |out: &mut [f32], _: &cpal::OutputCallbackInfo| {
                fill_from(&mut rx, out, channels, &counter, |s| s)
            },
            on_error,
            None,
        ),
        _ => device.build_output_stream(
            config,
            move |out: &mut [i16], _: &cpal::OutputCallbackInfo| {
                fill_from(&mut rx, out, channels, &counter, |s| (s.clamp(-1.0, 1.0) * 32767.0) as i16)
            },
            on_error,
            None,
        ),
    }
    .map_err(|e| format!("cannot open {device}: {e}"))?;
    stream.play().map_err(|e| format!("cannot start {device}: {e}"))?;
    tracing::info!(%device, rate, channels, "speaker open");
    Ok(Box::new(DeviceSpeaker {
        _stream: stream,
        ring: tx,
        rate,
        resampled: Vec::with_capacity(FRAME * 4),
        failed,
        taken,
        last_taken: (Instant::now(), 0),
        takes: 0,
        stalled: false,
        said: false,
        pacer: Pacer::default(),
    }))
}

/// The playout callback's work: each frame gets the next mono sample on every channel; an
/// empty ring leaves the (pre-silenced) rest alone. It counts what the device asked for, so
/// the media thread can tell a device that stopped playing.
fn fill_from<T: Copy>(
    rx: &mut Consumer<f32>,
    out: &mut [T],
    channels: usize,
    taken: &AtomicU64,
    from_f32: impl Fn(f32) -> T,
) {
    taken.fetch_add((out.len() / channels) as u64, Ordering::Relaxed);
    for frame in out.chunks_exact_mut(channels) {
        let Ok(s) = rx.pop() else { return };
        let v = from_f32(s);
        for o in frame {
            *o = v;
        }
    }
}

impl Speaker for DeviceSpeaker {
    fn wants(&mut self, now: Instant) -> bool {
        let taken = self.taken.load(Ordering::Relaxed);
        if taken != self.last_taken.1 {
            self.last_taken = (now, taken);
            self.takes = self.takes.saturating_add(1);
            self.stalled = false;
        } else {
            // A new stream's first request is its prebuffer; a sound server may wait a while
            // (PulseAudio's null sink: 2 s) before it asks again and playing really starts.
            let allowed = if self.takes < 2 { STARTING } else { STALLED };
            let stalled = now - self.last_taken.0 > allowed;
            if stalled && !self.stalled {
                tracing::debug!(taken, quiet = ?(now - self.last_taken.0), failed = self.failed.load(Ordering::Relaxed), "the speaker took nothing");
            }
            self.stalled = stalled;
        }
        if self.stalled || self.failed.load(Ordering::Relaxed) {
            // Paced by the clock: what the device does not take is dropped at the ring.
            return self.pacer.due(now);
        }
        let queued = self.ring.buffer().capacity() - self.ring.slots();
        let target = PLAYOUT_TARGET * self.rate as usize / SAMPLE_RATE as usize;
        queued < target
    }

    fn problem(&mut self, _now: Instant) -> Option<String> {
        let stuck = self.stalled || self.failed.load(Ordering::Relaxed);
        if stuck && !self.said {
            self.said = true;
            return Some(
                "the speaker stopped playing (the sound device takes no audio): the call goes on without sound here"
                    .into(),
            );
        }
        if !stuck {
            self.said = false;
        }
        None
    }

    fn play(&mut self, frame: &[f32; FRAME]) {
        let samples: &[f32] = if self.rate == SAMPLE_RATE {
            frame
        } else {
            resample_block(frame, SAMPLE_RATE, self.rate, &mut self.resampled);
            &self.resampled
        };
        for &s in samples {
            if self.ring.push(s).is_err() {
                break;
            }
        }
    }
}

/// Streams a device's rate to 48 kHz by linear interpolation, 20 ms at a time.
struct Resampler {
    /// Input samples per output sample.
    step: f64,
    /// Where the next output sample falls, counted from `last`.
    pos: f64,
    last: f32,
    next: f32,
}

impl Resampler {
    fn new(from: u32, to: u32) -> Self {
        Self { step: f64::from(from) / f64::from(to.max(1)), pos: 0.0, last: 0.0, next: 0.0 }
    }

    /// One 48 kHz frame out of `ring`, if it holds enough.
    fn pull(&mut self, ring: &mut Consumer<f32>, frame: &mut [f32; FRAME]) -> bool {
        if (self.step - 1.0).abs() < f64::EPSILON {
            let Ok(chunk) = ring.read_chunk(FRAME) else { return false };
            let (a, b) = chunk.as_slices();
            frame[..a.len()].copy_from_slice(a);
            frame[a.len()..].copy_from_slice(b);
            chunk.commit_all();
            return true;
        }
        let needed = ((FRAME as f64) * self.step + self.pos).ceil() as usize;
        if ring.slots() < needed {
            return false;
        }
        for out in frame.iter_mut() {
            while self.pos >= 1.0 {
                self.last = self.next;
                self.next = ring.pop().unwrap_or(self.next);
                self.pos -= 1.0;
            }
            *out = self.last + (self.next - self.last) * self.pos as f32;
            self.pos += self.step;
        }
        true
    }
}

/// A 48 kHz frame at another rate, by linear interpolation (the speaker side).
fn resample_block(x: &[f32], from: u32, to: u32, out: &mut Vec<f32>) {
    out.clear();
    let step = f64::from(from) / f64::from(to);
    let n = (x.len() as f64 / step) as usize;
    for i in 0..n {
        let pos = i as f64 * step;
        let j = pos as usize;
        let frac = (pos - j as f64) as f32;
        let a = x[j.min(x.len() - 1)];
        let b = x[(j + 1).min(x.len() - 1)];
        out.push(a + (b - a) * frac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::signal::{Tone, dominant_frequency};

    #[test]
    fn a_44_1_khz_device_is_resampled_to_48_khz_with_its_pitch_kept() {
        let (mut tx, mut rx) = RingBuffer::<f32>::new(44_100);
        let mut tone = Tone::new(1000.0 * 48_000.0 / 44_100.0, 0.5);
        let mut device = vec![0.0; 44_100];
        tone.fill(&mut device);
        for s in device {
            tx.push(s).unwrap();
        }
        let mut r = Resampler::new(44_100, 48_000);
        let mut out = Vec::new();
        let mut frame = [0.0; FRAME];
        while r.pull(&mut rx, &mut frame) {
            out.extend_from_slice(&frame);
        }
        assert!(out.len() >= 47_000, "{}", out.len());
        let f = dominant_frequency(&out, 48_000).unwrap();
        assert!((f - 1000.0).abs() < 3.0, "{f}");
    }
}
