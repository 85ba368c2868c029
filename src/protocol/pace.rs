//! File data while we are in a call: paced, so it never queues ahead of the voice.
//!
//! A call's audio and a file share our uplink and every queue on the way (the socket, the
//! router, the slowest hop). Sent as fast as SCTP's window allows, a file fills those queues
//! and each voice packet waits behind them: the jitter buffers at the other end see the delay
//! swing and grow to match. So while a call is up, the file data we send goes through a token
//! bucket at [`CALL_FILE_RATE`] in messages of [`CALL_CHUNK`]: at most one small message is
//! ahead of a voice packet at any time. Chat is not paced (a few bytes now and then), and the
//! pace lifts as soon as the call ends.

use std::time::{Duration, Instant};

/// File bytes a second we send in all while in a call: 4 Mbit/s, under the uplink of nearly
/// every connection people call from today, so the call's own ~40 kbit/s per peer has room.
pub const CALL_FILE_RATE: u64 = 512 * 1024;
/// File bytes per message while in a call: 16 KiB take 13 ms to leave a 10 Mbit/s uplink, so
/// a voice packet that comes just after waits at most that long.
pub const CALL_CHUNK: usize = 16 * 1024;

/// A token bucket holding at most one message's worth.
#[derive(Debug, Clone)]
pub struct Pace {
    rate: u64,
    /// Bytes that may be sent now (negative: owed, after a message larger than the tokens).
    tokens: f64,
    at: Instant,
}

impl Pace {
    pub fn new(now: Instant, rate: u64) -> Self {
        Self { rate: rate.max(1), tokens: CALL_CHUNK as f64, at: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate as f64).min(CALL_CHUNK as f64);
        self.at = now;
    }

    /// Whether `len` bytes may go now; if so they are taken.
    pub fn take(&mut self, now: Instant, len: usize) -> bool {
        self.refill(now);
        // A whole message once the bucket is full, even if larger: it is paid for after.
        if self.tokens < (len as f64).min(CALL_CHUNK as f64) {
            return false;
        }
        self.tokens -= len as f64;
        true
    }

    /// When a message of `len` bytes may go.
    pub fn ready_at(&self, len: usize) -> Instant {
        let missing = (len as f64).min(CALL_CHUNK as f64) - self.tokens;
        if missing <= 0.0 {
            return self.at;
        }
        self.at + Duration::from_secs_f64(missing / self.rate as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_at_the_rate_with_no_burst_beyond_one_message() {
        let t0 = Instant::now();
        let mut p = Pace::new(t0, CALL_FILE_RATE);
        // One message at once, then nothing until its time is paid.
        assert!(p.take(t0, CALL_CHUNK));
        assert!(!p.take(t0, CALL_CHUNK));
        let next = p.ready_at(CALL_CHUNK);
        assert_eq!(next - t0, Duration::from_secs_f64(CALL_CHUNK as f64 / CALL_FILE_RATE as f64));
        assert!(!p.take(next - Duration::from_millis(1), CALL_CHUNK));
        assert!(p.take(next, CALL_CHUNK));
        // Over ten seconds of trying every millisecond: never more than the rate, and no less
        // than what a millisecond's lateness per message costs (a timer that wakes at
        // `ready_at` loses nothing).
        let mut sent = 2 * CALL_CHUNK as u64;
        for ms in 1..=10_000 {
            if p.take(next + Duration::from_millis(ms), CALL_CHUNK) {
                sent += CALL_CHUNK as u64;
            }
        }
        let want = 10 * CALL_FILE_RATE + 2 * CALL_CHUNK as u64;
        assert!(sent <= want + CALL_CHUNK as u64, "{sent} bytes, want {want}");
        assert!(sent as f64 >= want as f64 * 0.96, "{sent} bytes, want {want}");
        // A long quiet spell does not store up a burst.
        let later = next + Duration::from_secs(60);
        assert!(p.take(later, CALL_CHUNK));
        assert!(!p.take(later, CALL_CHUNK));
    }
}
