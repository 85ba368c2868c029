//! Sliding anti-replay window over 64-bit counters (the RFC 6479 bitmap, as WireGuard uses).

const WINDOW_BITS: u64 = 2048;
const WORDS: usize = (WINDOW_BITS / 64) as usize;

#[derive(Debug, Clone)]
pub struct ReplayWindow {
    /// Highest counter accepted so far, plus one (0 = nothing seen).
    next: u64,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self { next: 0, bitmap: [0; WORDS] }
    }
}

impl ReplayWindow {
    /// One past the highest counter accepted so far.
    pub fn next_expected(&self) -> u64 {
        self.next
    }

    /// False for a counter already seen or too old to tell.
    pub fn may_accept(&self, counter: u64) -> bool {
        if counter >= self.next {
            return true;
        }
        if self.next - counter > WINDOW_BITS - 64 {
            return false;
        }
        let (word, bit) = Self::slot(counter);
        self.bitmap[word] & (1 << bit) == 0
    }

    /// Records an authenticated counter. Call only after `may_accept` said yes.
    pub fn mark(&mut self, counter: u64) {
        if counter >= self.next {
            // Clear the words we slide over.
            let old_word = self.next.saturating_sub(1) / 64;
            let new_word = counter / 64;
            let steps = (new_word - old_word).min(WORDS as u64);
            for i in 1..=steps {
                self.bitmap[((old_word + i) % WORDS as u64) as usize] = 0;
            }
            self.next = counter + 1;
        }
        let (word, bit) = Self::slot(counter);
        self.bitmap[word] |= 1 << bit;
    }

    fn slot(counter: u64) -> (usize, u64) {
        (((counter / 64) % WORDS as u64) as usize, counter % 64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_then_replay() {
        let mut w = ReplayWindow::default();
        for c in 0..5000 {
            assert!(w.may_accept(c));
            w.mark(c);
            assert!(!w.may_accept(c));
        }
        assert!(!w.may_accept(0));
        assert!(!w.may_accept(4000));
    }

    #[test]
    fn reordered_within_window() {
        let mut w = ReplayWindow::default();
        w.mark(100);
        assert!(w.may_accept(50));
        w.mark(50);
        assert!(!w.may_accept(50));
        w.mark(3000);
        assert!(!w.may_accept(100), "too old now");
        assert!(w.may_accept(2999));
    }

    #[test]
    fn big_jump_clears_bitmap() {
        let mut w = ReplayWindow::default();
        for c in 0..64 {
            w.mark(c);
        }
        w.mark(10_000_000);
        assert!(w.may_accept(10_000_000 - 10));
    }
}
