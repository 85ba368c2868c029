//! The incoming-call ring: our `assets/ring.wav`, looped with a pause on the default output
//! device while a call rings. Its callback reads the decoded ring (shared, never written): no
//! lock, no allocation.

use std::sync::Arc;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

const RING_WAV: &[u8] = include_bytes!("../../assets/ring.wav");
/// Silence after each ring, in seconds.
const PAUSE_S: f32 = 2.0;

/// Plays the ring while `set(true)`. The output stream is opened and held on a thread of its
/// own (opening one can take a while, and the window must not wait), only while ringing.
pub struct Ringer {
    samples: Arc<[f32]>,
    /// Dropping it ends the ring thread.
    running: Option<std::sync::mpsc::Sender<()>>,
    problems: (std::sync::mpsc::Sender<String>, std::sync::mpsc::Receiver<String>),
    /// Why the ring cannot be heard (no output device), once known; it is not tried again.
    pub problem: Option<String>,
}

impl Default for Ringer {
    fn default() -> Self {
        Self::new()
    }
}

impl Ringer {
    pub fn new() -> Self {
        let samples: Vec<f32> = match hound::WavReader::new(RING_WAV) {
            Ok(r) => r.into_samples::<i16>().filter_map(Result::ok).map(|s| f32::from(s) / 32768.0).collect(),
            Err(_) => Vec::new(),
        };
        Self { samples: samples.into(), running: None, problems: std::sync::mpsc::channel(), problem: None }
    }

    /// Rings or stops; cheap to call every frame.
    pub fn set(&mut self, ringing: bool) {
        if let Ok(p) = self.problems.1.try_recv() {
            self.problem = Some(p);
        }
        match (ringing, self.running.is_some()) {
            (true, false) if self.problem.is_none() => {
                let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
                let samples = Arc::clone(&self.samples);
                let problems = self.problems.0.clone();
                let spawned = std::thread::Builder::new().name("kith-ring".into()).spawn(move || {
                    match open(samples) {
                        // Held until the window says stop (or goes away).
                        Ok(stream) => {
                            let _ = stop_rx.recv();
                            drop(stream);
                        }
                        Err(e) => {
                            let _ = problems.send(format!("the ring cannot be played: {e}"));
                        }
                    }
                });
                if spawned.is_ok() {
                    self.running = Some(stop_tx);
                }
            }
            (false, true) => self.running = None,
            _ => {}
        }
    }

    pub fn is_ringing(&self) -> bool {
        self.running.is_some()
    }
}

/// An output stream on the default device that loops `samples` with a pause.
fn open(samples: Arc<[f32]>) -> Result<cpal::Stream, String> {
    let device = cpal::default_host().default_output_device().ok_or("no output device")?;
    let config = device.default_output_config().map_err(|e| e.to_string())?;
    if config.sample_format() != cpal::SampleFormat::F32 {
        return Err(format!("the output device takes {} samples", config.sample_format()));
    }
    let channels = usize::from(config.channels().max(1));
    let rate = config.sample_rate() as f32;
    // Position in the ring-plus-pause cycle, in the ring's 48 kHz samples (fractional, so
    // a 44.1 kHz device plays it at the right pitch).
    let step = super::SAMPLE_RATE as f32 / rate;
    let cycle = samples.len() as f32 + PAUSE_S * super::SAMPLE_RATE as f32;
    let mut pos = 0.0f32;
    let stream = device
        .build_output_stream(
            config.config(),
            move |out: &mut [f32], _: &cpal::OutputCallbackInfo| {
                for frame in out.chunks_exact_mut(channels) {
                    let i = pos as usize;
                    frame.fill(samples.get(i).copied().unwrap_or(0.0));
                    pos = (pos + step) % cycle;
                }
            },
            |e| tracing::debug!("ring: {e}"),
            None,
        )
        .map_err(|e| e.to_string())?;
    stream.play().map_err(|e| e.to_string())?;
    Ok(stream)
}
