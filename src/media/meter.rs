//! The microphone's level for the window's meter: the media thread stores each frame's level
//! in one atomic and the window reads it when it draws, at its own pace. No lock, no event on
//! the core's queue (levels are media, not call control).

use std::sync::atomic::{AtomicU32, Ordering};

/// The last 20 ms frame's level in dBFS, or none while no microphone is open.
#[derive(Debug)]
pub struct MicMeter {
    /// An f32's bits; NaN while nothing measures.
    bits: AtomicU32,
}

impl Default for MicMeter {
    fn default() -> Self {
        Self { bits: AtomicU32::new(f32::NAN.to_bits()) }
    }
}

impl MicMeter {
    /// The media thread, once per frame (after echo cancellation and gain, before mute: the
    /// meter shows what the call would hear).
    pub fn set(&self, level_db: f32) {
        self.bits.store(level_db.to_bits(), Ordering::Relaxed);
    }

    /// No microphone measures any more.
    pub fn clear(&self) {
        self.bits.store(f32::NAN.to_bits(), Ordering::Relaxed);
    }

    pub fn level_db(&self) -> Option<f32> {
        Some(f32::from_bits(self.bits.load(Ordering::Relaxed))).filter(|db| !db.is_nan())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_was_set_and_nothing_when_cleared() {
        let m = MicMeter::default();
        assert_eq!(m.level_db(), None);
        m.set(-23.5);
        assert_eq!(m.level_db(), Some(-23.5));
        m.clear();
        assert_eq!(m.level_db(), None);
    }
}
