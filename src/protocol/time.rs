//! The time of an input to the sans-IO machines.

use std::time::{Duration, Instant};

/// A monotonic instant for timers, and the wall clock for what carries a date (`sent_at`,
/// `expires_at`, when a peer was last seen). Timers never read the wall clock: a clock that
/// jumps (a suspend, an NTP step, a user changing the date) moves no timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub at: Instant,
    pub unix_ms: u64,
}

impl Now {
    /// The same moment `d` later.
    pub fn plus(self, d: Duration) -> Self {
        Self { at: self.at + d, unix_ms: self.unix_ms + d.as_millis() as u64 }
    }

    /// The instant at which the wall clock will read `unix_ms` (now, if it is past).
    pub fn instant_of(self, unix_ms: u64) -> Instant {
        self.at + Duration::from_millis(unix_ms.saturating_sub(self.unix_ms))
    }
}
