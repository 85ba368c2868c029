//! Sums the peers' audio for the speaker: each with its own volume, and a limiter instead of
//! hard clipping when several people talk loudly at once.

/// Adds `gain · input` to `mix`.
pub fn add(mix: &mut [f32], input: &[f32], gain: f32) {
    for (m, s) in mix.iter_mut().zip(input) {
        *m += gain * s;
    }
}

/// Brings a mix that exceeds full scale back under it, smoothly: samples below the knee pass
/// unchanged, louder ones are compressed toward 1.0 (a soft clip, continuous in value and
/// slope at the knee), so two loud voices distort a little instead of crackling.
pub fn limit(mix: &mut [f32]) {
    const KNEE: f32 = 0.8;
    for s in mix {
        let a = s.abs();
        if a > KNEE {
            // Above the knee: KNEE + (1 - KNEE) · tanh((a - KNEE) / (1 - KNEE)), below 1.0.
            let over = (a - KNEE) / (1.0 - KNEE);
            *s = s.signum() * (KNEE + (1.0 - KNEE) * over.tanh());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_add_with_their_volumes_and_loud_sums_stay_under_full_scale() {
        let mut mix = vec![0.0; 4];
        add(&mut mix, &[0.1, 0.2, 0.9, -0.9], 1.0);
        add(&mut mix, &[0.1, 0.2, 0.9, -0.9], 0.5);
        assert!((mix[0] - 0.15).abs() < 1e-6 && (mix[1] - 0.3).abs() < 1e-6);
        limit(&mut mix);
        assert!((mix[0] - 0.15).abs() < 1e-6, "quiet samples pass unchanged");
        assert!(mix[2] < 1.0 && mix[2] > 0.9 && mix[3] > -1.0 && mix[3] < -0.9, "{mix:?}");
        let mut loud = vec![50.0];
        limit(&mut loud);
        assert!(loud[0] <= 1.0);
    }
}
