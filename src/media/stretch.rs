//! Time-stretching without clicks, as NetEq does it: to play faster ("accelerate") one pitch
//! period is cut out of a frame, to play slower ("expand") one is repeated, and the seam is a
//! cross-fade between two stretches of the signal that look alike. On voiced speech or a tone
//! the two neighbouring periods are near copies, so nobody hears the change; on anything
//! without a period (noise, a chord) the match is poor and nothing is done.

/// The pitch periods we look for: 2.5 ms (400 Hz) to 15 ms (67 Hz) at 48 kHz. A tone above
/// 400 Hz still matches at a multiple of its period.
const MIN_LAG: usize = 120;
const MAX_LAG: usize = 720;

/// How alike the two periods must be (normalised correlation) before we splice them.
const MIN_MATCH: f32 = 0.85;

/// Frames quieter than this (RMS) can be stretched anywhere: nobody hears the splice.
const QUIET: f32 = 1e-3;

/// The best lag in `x` (two consecutive stretches of `lag` samples alike) and how alike they are.
fn best_period(x: &[f32]) -> Option<(usize, f32)> {
    let max_lag = MAX_LAG.min(x.len() / 2);
    let mut best: Option<(usize, f32)> = None;
    for lag in MIN_LAG..=max_lag {
        let (a, b) = (&x[..lag], &x[lag..2 * lag]);
        let (mut ab, mut aa, mut bb) = (0.0f32, 0.0f32, 0.0f32);
        for (p, q) in a.iter().zip(b) {
            ab += p * q;
            aa += p * p;
            bb += q * q;
        }
        let score = ab / (aa * bb).sqrt().max(1e-12);
        if best.is_none_or(|(_, s)| score > s + 1e-4) {
            best = Some((lag, score));
        }
    }
    best
}

fn is_quiet(x: &[f32]) -> bool {
    x.iter().map(|s| s * s).sum::<f32>() / (x.len().max(1) as f32) < QUIET * QUIET
}

/// Cross-fades from `from` into `to` (same length), into `out`.
fn crossfade(from: &[f32], to: &[f32], out: &mut Vec<f32>) {
    let n = from.len() as f32;
    for (i, (f, t)) in from.iter().zip(to).enumerate() {
        let w = (i as f32 + 0.5) / n;
        out.push(f * (1.0 - w) + t * w);
    }
}

/// `x` with one period taken out, or `None` if no clean splice exists. The result is shorter
/// by the returned number of samples.
pub fn accelerate(x: &[f32], out: &mut Vec<f32>) -> Option<usize> {
    let (lag, score) = if is_quiet(x) { (MIN_LAG.min(x.len() / 2), 1.0) } else { best_period(x)? };
    if score < MIN_MATCH || lag == 0 {
        return None;
    }
    // x[..lag] fades into x[lag..2lag], which continues: lag samples are gone.
    out.clear();
    crossfade(&x[..lag], &x[lag..2 * lag], out);
    out.extend_from_slice(&x[2 * lag..]);
    Some(lag)
}

/// `x` with one period played twice, or `None` if no clean splice exists. The result is
/// longer by the returned number of samples.
pub fn expand(x: &[f32], out: &mut Vec<f32>) -> Option<usize> {
    let (lag, score) = if is_quiet(x) { (MIN_LAG.min(x.len() / 2), 1.0) } else { best_period(x)? };
    if score < MIN_MATCH || lag == 0 {
        return None;
    }
    // x[..lag], then x[lag..2lag] fading into x[..lag] (the two are near copies), then
    // x[lag..] again: the seam at each end meets the sample that naturally follows it.
    out.clear();
    out.extend_from_slice(&x[..lag]);
    crossfade(&x[lag..2 * lag], &x[..lag], out);
    out.extend_from_slice(&x[lag..]);
    Some(lag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::signal::{Tone, dominant_frequency};

    /// The largest jump between neighbouring samples: a click shows as a jump far above the
    /// tone's own slope.
    fn max_step(x: &[f32]) -> f32 {
        x.windows(2).map(|w| (w[1] - w[0]).abs()).fold(0.0, f32::max)
    }

    fn tone(hz: f32, n: usize) -> Vec<f32> {
        let mut v = vec![0.0; n];
        Tone::new(hz, 0.5).fill(&mut v);
        v
    }

    #[test]
    fn a_tone_is_shortened_and_lengthened_by_whole_periods_without_a_click() {
        for hz in [200.0, 440.0, 660.0] {
            let x = tone(hz, 4800);
            let slope = max_step(&x);
            let mut out = Vec::new();
            let cut = accelerate(&x, &mut out).expect("a tone has a period");
            assert_eq!(out.len(), x.len() - cut);
            assert!(max_step(&out) < slope * 1.2, "{hz} Hz accelerated: {} vs {slope}", max_step(&out));
            let f = dominant_frequency(&out, 48_000).unwrap();
            assert!((f - hz).abs() < 2.0, "pitch kept: {f}");

            let added = expand(&x, &mut out).expect("a tone has a period");
            assert_eq!(out.len(), x.len() + added);
            assert!(max_step(&out) < slope * 1.2, "{hz} Hz expanded: {} vs {slope}", max_step(&out));
        }
    }

    #[test]
    fn noise_is_left_alone() {
        let x = crate::media::signal::noise(1920, 7);
        let mut out = Vec::new();
        assert_eq!(accelerate(&x, &mut out), None);
        assert_eq!(expand(&x, &mut out), None);
    }

    #[test]
    fn silence_stretches_freely() {
        let x = vec![0.0; 960];
        let mut out = Vec::new();
        assert_eq!(accelerate(&x, &mut out), Some(MIN_LAG));
        assert_eq!(out.len(), 960 - MIN_LAG);
        assert_eq!(expand(&x, &mut out), Some(MIN_LAG));
    }
}
