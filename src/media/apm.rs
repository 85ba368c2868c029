//! Echo cancellation, noise suppression and gain control for a real microphone: WebRTC's
//! audio processing (AEC3, NS, AGC2) in `sonora`'s pure-Rust port. It sees what the speaker
//! plays (the far end, `render`) and cleans what the microphone hears (`capture`), 10 ms at a
//! time. Each part can be switched off; the synthetic microphones (tone, WAV) skip it, since
//! they hear no room (and noise suppression would take a steady test tone for noise).

use sonora::config::{EchoCanceller, GainController2, HighPassFilter, NoiseSuppression};
use sonora::{AudioProcessing, Config, StreamConfig};

use super::{FRAME, SAMPLE_RATE};

/// What the processing does; each part on by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApmSettings {
    pub echo_cancel: bool,
    pub noise_suppression: bool,
    pub auto_gain: bool,
}

impl Default for ApmSettings {
    fn default() -> Self {
        Self { echo_cancel: true, noise_suppression: true, auto_gain: true }
    }
}

impl ApmSettings {
    fn config(self) -> Config {
        Config {
            high_pass_filter: Some(HighPassFilter::default()),
            echo_canceller: self.echo_cancel.then(EchoCanceller::default),
            noise_suppression: self.noise_suppression.then(NoiseSuppression::default),
            gain_controller2: self.auto_gain.then(GainController2::default),
            ..Default::default()
        }
    }
}

/// sonora works on 10 ms frames.
const HALF: usize = FRAME / 2;

pub struct Apm {
    inner: AudioProcessing,
    settings: ApmSettings,
    out: [f32; HALF],
}

impl Apm {
    pub fn new(settings: ApmSettings) -> Self {
        let stream = StreamConfig::new(SAMPLE_RATE, 1);
        let inner = AudioProcessing::builder()
            .config(settings.config())
            .capture_config(stream)
            .render_config(stream)
            .build();
        Self { inner, settings, out: [0.0; HALF] }
    }

    pub fn settings(&self) -> ApmSettings {
        self.settings
    }

    pub fn set(&mut self, settings: ApmSettings) {
        if settings != self.settings {
            self.settings = settings;
            self.inner.apply_config(settings.config());
        }
    }

    /// 20 ms of what the speaker plays.
    pub fn render(&mut self, frame: &[f32; FRAME]) {
        for half in frame.chunks_exact(HALF) {
            // The render output is not used (it would be the far end after its own processing).
            let _ = self.inner.process_render_f32(&[half], &mut [&mut self.out[..]]);
        }
    }

    /// 20 ms of what the microphone heard, cleaned in place.
    pub fn capture(&mut self, frame: &mut [f32; FRAME]) {
        for half in frame.chunks_exact_mut(HALF) {
            if self.inner.process_capture_f32(&[&*half], &mut [&mut self.out[..]]).is_ok() {
                half.copy_from_slice(&self.out);
            }
        }
    }

    /// How much the echo canceller takes out (dB), once it measured it.
    pub fn erle_db(&self) -> Option<f64> {
        self.inner.statistics().echo_return_loss_enhancement
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::signal::{level_db, noise};

    /// A room on the simulated clock: the far end (noise, like speech's spectrum roughly) is
    /// played, reaches the microphone 60 ms later and 10 dB quieter, and the near end is
    /// silent, so all the microphone hears is echo. Returns the echo's level against the
    /// residual's over the last 3 s of 10 (ERLE, measured ourselves).
    fn echo_left(settings: ApmSettings) -> f64 {
        let mut apm = Apm::new(settings);
        let far = noise(48_000 * 10, 3);
        let delay = 48 * 60;
        let (mut echo_sq, mut left_sq) = (0.0f64, 0.0f64);
        for (i, chunk) in far.chunks_exact(FRAME).enumerate() {
            let mut played = [0.0; FRAME];
            played.copy_from_slice(chunk);
            apm.render(&played);
            let mut mic = [0.0; FRAME];
            for (k, m) in mic.iter_mut().enumerate() {
                let at = i * FRAME + k;
                *m = if at >= delay { far[at - delay] * 0.316 } else { 0.0 };
            }
            let heard = mic;
            apm.capture(&mut mic);
            if i * FRAME >= 48_000 * 7 {
                echo_sq += heard.iter().map(|s| f64::from(s * s)).sum::<f64>();
                left_sq += mic.iter().map(|s| f64::from(s * s)).sum::<f64>();
            }
        }
        10.0 * (echo_sq / left_sq.max(1e-12)).log10()
    }

    #[test]
    fn the_echo_canceller_takes_the_echo_out_and_off_it_leaves_it() {
        let quiet = ApmSettings { noise_suppression: false, auto_gain: false, echo_cancel: true };
        let on = echo_left(quiet);
        let off = echo_left(ApmSettings { echo_cancel: false, ..quiet });
        eprintln!("ERLE: {on:.1} dB with AEC on, {off:.1} dB off");
        assert!(on > 20.0, "ERLE with AEC on: {on:.1} dB");
        // Off, only the high-pass filter acts on the echo (a few dB of white noise's lows).
        assert!(off < 6.0 && on > off + 15.0, "with AEC off the echo stays: {off:.1} dB (on: {on:.1})");
    }

    #[test]
    fn a_voice_without_echo_goes_through() {
        let mut apm = Apm::new(ApmSettings { auto_gain: false, ..ApmSettings::default() });
        let mut tone = crate::media::signal::Tone::new(300.0, 0.3);
        let mut last = [0.0; FRAME];
        for _ in 0..200 {
            apm.render(&[0.0; FRAME]);
            tone.fill(&mut last);
            apm.capture(&mut last);
        }
        // A steady tone is what noise suppression is for, so some of it goes; not all.
        assert!(level_db(&last) > -40.0, "{}", level_db(&last));
    }
}
