//! Small signal tools the media layer measures itself with: a tone generator (the synthetic
//! microphone), levels in dBFS, and the dominant frequency of a stretch of audio (so a test,
//! and `media_stats`, can tell which tone arrived).

use std::f32::consts::TAU;

/// A sine tone, phase-continuous across calls to `fill`.
#[derive(Debug, Clone)]
pub struct Tone {
    step: f32,
    phase: f32,
    amplitude: f32,
}

impl Tone {
    pub fn new(hz: f32, amplitude: f32) -> Self {
        Self { step: TAU * hz / super::SAMPLE_RATE as f32, phase: 0.0, amplitude }
    }

    pub fn fill(&mut self, out: &mut [f32]) {
        for s in out {
            *s = self.amplitude * self.phase.sin();
            self.phase = (self.phase + self.step) % TAU;
        }
    }
}

/// The RMS level of `samples` in dBFS (a full-scale sine is -3 dB); -100 for silence.
pub fn level_db(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return -100.0;
    }
    let mean_square = samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32;
    db_of_mean_square(f64::from(mean_square))
}

/// A mean square (of samples in ±1) in dBFS, floored at -100 for silence.
pub fn db_of_mean_square(mean_square: f64) -> f32 {
    if mean_square <= 1e-10 { -100.0 } else { ((10.0 * mean_square.log10()) as f32).max(-100.0) }
}

/// The dominant frequency of `samples`, from the autocorrelation's first strong peak: found on
/// a 4× decimated copy (cheap enough to run every second per peer even in a debug build),
/// refined at the full rate, and interpolated to a fraction of a hertz. `None` for silence or
/// noise without a period between 50 Hz and 4 kHz.
pub fn dominant_frequency(samples: &[f32], rate: u32) -> Option<f32> {
    const DECIMATE: usize = 4;
    let min_lag = (rate / 4000) as usize;
    let max_lag = (rate / 50) as usize;
    // A window of 40 ms is plenty for a period of at most 20 ms.
    let window = samples.len().saturating_sub(max_lag + DECIMATE + 1).min(rate as usize / 25);
    if window < max_lag || level_db(samples) < -60.0 {
        return None;
    }
    let x = &samples[samples.len() - window - max_lag - DECIMATE - 1..];
    let corr = |v: &[f32], n: usize, lag: usize| -> f32 {
        v[..n].iter().zip(&v[lag..lag + n]).map(|(a, b)| a * b).sum()
    };

    // Coarse: the mean of each 4 samples (a low-pass well above 4 kHz's 12 kHz alias).
    let y: Vec<f32> = x.chunks_exact(DECIMATE).map(|c| c.iter().sum::<f32>() / DECIMATE as f32).collect();
    let (n, lo, hi) = (window / DECIMATE, (min_lag / DECIMATE).max(1), max_lag / DECIMATE);
    let energy = corr(&y, n, 0);
    let values: Vec<f32> = (0..=hi + 1).map(|lag| if lag < lo { 0.0 } else { corr(&y, n, lag) }).collect();
    // The first lag past the first dip below zero where the correlation peaks above half the
    // energy: the period (later peaks are its multiples).
    let start = (lo..hi).find(|&l| values[l] < 0.0)?;
    let coarse = (start..hi)
        .find(|&l| values[l] > 0.5 * energy && values[l] >= values[l - 1] && values[l] >= values[l + 1])?;

    // Fine: the best full-rate lag near it, then a parabola through its neighbours.
    let around = coarse * DECIMATE;
    let first = around.saturating_sub(DECIMATE).max(min_lag + 1);
    let last = (around + DECIMATE).min(max_lag);
    let lag = (first..=last).max_by(|&a, &b| corr(x, window, a).total_cmp(&corr(x, window, b)))?;
    let (a, b, c) = (corr(x, window, lag - 1), corr(x, window, lag), corr(x, window, lag + 1));
    let denom = a - 2.0 * b + c;
    let offset = if denom.abs() > f32::EPSILON { 0.5 * (a - c) / denom } else { 0.0 };
    Some(rate as f32 / (lag as f32 + offset))
}

/// White noise in ±0.5 from a fixed seed, for tests.
#[cfg(test)]
pub fn noise(n: usize, mut seed: u32) -> Vec<f32> {
    (0..n)
        .map(|_| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 8) as f32 / (1 << 24) as f32 - 0.5
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tones_a_call_test_uses_are_told_apart() {
        for hz in [440.0, 660.0, 880.0, 1000.0, 300.0] {
            let mut t = Tone::new(hz, 0.5);
            let mut buf = vec![0.0; 48_000];
            t.fill(&mut buf);
            let f = dominant_frequency(&buf, 48_000).unwrap();
            assert!((f - hz).abs() < 1.0, "{hz}: {f}");
            let level = level_db(&buf);
            assert!((level - (-9.03)).abs() < 0.1, "{level}");
        }
    }

    #[test]
    fn silence_and_noise_have_no_dominant_frequency() {
        assert_eq!(dominant_frequency(&vec![0.0; 48_000], 48_000), None);
        assert_eq!(dominant_frequency(&noise(48_000, 1), 48_000), None);
        assert_eq!(level_db(&[]), -100.0);
    }
}
