//! The test-pattern camera: moving bars and a moving box (motion for the encoder to code, as a
//! face would give it), and across the top three rows of 32 large blocks that carry the frame
//! number, the capture time (wall clock, milliseconds, 32 bits) and a check of both. The blocks
//! are black or white and at least 4 pixels a side (20 at 640 wide), so they come through the
//! codec intact; reading them back from a decoded picture gives the frame's number and its
//! age, capture to decoded, across processes on one machine.
//!
//! Drawing works a row at a time (one row computed, copied down), so the pattern costs little
//! even in a debug build.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::frame::{I420, VideoSize};

const BITS: usize = 32;
const ROWS: usize = 3;
const WHITE: u8 = 235;
const BLACK: u8 = 16;

/// What a picture's blocks say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub frame: u32,
    /// Wall-clock milliseconds (the low 32 bits) when it was captured.
    pub captured_ms: u32,
}

/// The wall clock in milliseconds, low 32 bits (wraps every 49 days; ages are differences).
pub fn wall_ms() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u32).unwrap_or(0)
}

/// How old a stamp is at `now_ms`; `None` if that is not a plausible age (the clocks of two
/// machines, or a picture that is not the pattern at all).
pub fn age_ms(stamp: Stamp, now_ms: u32) -> Option<u32> {
    let age = now_ms.wrapping_sub(stamp.captured_ms);
    (age < 60_000).then_some(age)
}

/// The third row: neither all black nor all white for any stamp a plain picture would read as.
fn check(frame: u32, captured_ms: u32) -> u32 {
    frame.rotate_left(13) ^ captured_ms ^ 0x5a5a_a5a5
}

/// The side of one block for a picture `width` wide.
fn block(width: usize) -> usize {
    ((width / BITS) & !1).max(4)
}

pub struct TestPattern {
    picture: I420,
    frame: u32,
    interval: Duration,
    next: Option<Instant>,
}

impl TestPattern {
    pub fn new(size: VideoSize, fps: u32) -> Self {
        Self {
            picture: I420::black(size),
            frame: 0,
            interval: Duration::from_secs(1) / fps.max(1),
            next: None,
        }
    }

    /// The size of its pictures.
    pub fn size(&self) -> VideoSize {
        VideoSize { width: self.picture.width as u32, height: self.picture.height as u32 }
    }

    /// When the next picture is due (`None` before the first: due at once).
    pub fn next_due(&self) -> Option<Instant> {
        self.next
    }

    /// The next picture, if it is due by `now`, stamped `wall_ms`. Behind by more than five
    /// pictures (the thread was not scheduled), it skips ahead rather than bursting.
    pub fn capture(&mut self, now: Instant, wall_ms: u32) -> Option<&I420> {
        let next = *self.next.get_or_insert(now);
        if now < next {
            return None;
        }
        self.next = Some(match now - next > self.interval * 5 {
            true => now + self.interval,
            false => next + self.interval,
        });
        self.draw(Stamp { frame: self.frame, captured_ms: wall_ms });
        self.frame = self.frame.wrapping_add(1);
        Some(&self.picture)
    }

    fn draw(&mut self, stamp: Stamp) {
        let (w, h) = (self.picture.width, self.picture.height);
        let n = stamp.frame as usize;
        let y = &mut self.picture.y;
        // Bars moving right, 4 pixels a frame.
        let bar = (w / 12).max(2);
        let row: Vec<u8> = (0..w).map(|x| 40 + (((x + n * 4) / bar) % 6) as u8 * 30).collect();
        for line in y.chunks_exact_mut(w) {
            line.copy_from_slice(&row);
        }
        // A box going to and fro across the middle.
        let side = (h / 4).max(2).min(w);
        let span = w - side;
        let travel = (n * 6) % (2 * span.max(1));
        let left = if travel > span { 2 * span - travel } else { travel };
        for line in y.chunks_exact_mut(w).skip(h / 2 - side / 2).take(side) {
            line[left..left + side].fill(WHITE);
        }
        // Colour drifting slowly, so the chroma planes change too.
        let (cw, ch) = (w / 2, h / 2);
        self.picture.u.fill(96 + ((n / 2) % 64) as u8);
        self.picture.v.fill(160 - ((n / 3) % 64) as u8);
        // The stamp, on neutral chroma.
        let b = block(w);
        if b * BITS > w || b * ROWS > h {
            return;
        }
        let words = [stamp.frame, stamp.captured_ms, check(stamp.frame, stamp.captured_ms)];
        for (r, word) in words.iter().enumerate() {
            let mut line = vec![BLACK; w];
            for bit in 0..BITS {
                if word >> (BITS - 1 - bit) & 1 == 1 {
                    line[bit * b..(bit + 1) * b].fill(WHITE);
                }
            }
            for l in y.chunks_exact_mut(w).skip(r * b).take(b) {
                l.copy_from_slice(&line);
            }
        }
        for plane in [&mut self.picture.u, &mut self.picture.v] {
            for l in plane.chunks_exact_mut(cw).take((ROWS * b / 2).min(ch)) {
                l[..(BITS * b / 2).min(cw)].fill(128);
            }
        }
    }
}

/// The stamp in a picture's luma plane (`stride` bytes a row), if it carries one: each block's
/// centre averaged and thresholded, and the check row must agree.
pub fn read_stamp(luma: &[u8], stride: usize, width: usize, height: usize) -> Option<Stamp> {
    let b = block(width);
    if b * BITS > width || b * ROWS > height || stride < width || luma.len() < stride * (ROWS * b) {
        return None;
    }
    let mut words = [0u32; ROWS];
    for (r, word) in words.iter_mut().enumerate() {
        for bit in 0..BITS {
            let (x0, y0) = (bit * b + b / 4, r * b + b / 4);
            let mut sum = 0u32;
            let mut count = 0u32;
            for yy in y0..y0 + b / 2 {
                for &p in &luma[yy * stride + x0..yy * stride + x0 + b / 2] {
                    sum += u32::from(p);
                    count += 1;
                }
            }
            let one = sum > count * u32::from(WHITE / 2 + BLACK / 2);
            *word = (*word << 1) | u32::from(one);
        }
    }
    (words[2] == check(words[0], words[1])).then_some(Stamp { frame: words[0], captured_ms: words[1] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_reads_back_from_the_picture() {
        for size in [VideoSize::MIN, VideoSize::new(640, 360).unwrap(), VideoSize::HD] {
            let mut p = TestPattern::new(size, 30);
            let t0 = Instant::now();
            for (i, wall) in [(0u32, 0u32), (1, 0xdead_beef), (2, u32::MAX)] {
                let at = t0 + Duration::from_millis(40) * i;
                let pic = p.capture(at, wall).expect("due").clone();
                let stamp = read_stamp(&pic.y, pic.width, pic.width, pic.height);
                assert_eq!(stamp, Some(Stamp { frame: i, captured_ms: wall }), "{size}");
            }
        }
    }

    #[test]
    fn pictures_come_at_the_frame_rate_and_a_stall_is_skipped() {
        let mut p = TestPattern::new(VideoSize::MIN, 25);
        let t0 = Instant::now();
        assert!(p.capture(t0, 0).is_some());
        assert!(p.capture(t0 + Duration::from_millis(39), 0).is_none());
        assert!(p.capture(t0 + Duration::from_millis(40), 0).is_some());
        assert_eq!(p.next_due(), Some(t0 + Duration::from_millis(80)));
        // A second late: one picture, and the next a frame from now.
        let late = t0 + Duration::from_secs(1);
        assert!(p.capture(late, 0).is_some());
        assert!(p.capture(late, 0).is_none());
        assert_eq!(p.next_due(), Some(late + Duration::from_millis(40)));
    }

    #[test]
    fn a_picture_without_a_stamp_reads_as_none() {
        let pic = I420::black(VideoSize::HD);
        assert_eq!(read_stamp(&pic.y, pic.width, pic.width, pic.height), None);
        for level in [16u8, 128, 235] {
            let plain = vec![level; 1280 * 720];
            assert_eq!(read_stamp(&plain, 1280, 1280, 720), None, "a plain picture at {level}");
        }
        let grey = vec![128u8; 1280 * 720];
        assert_eq!(read_stamp(&grey[..100], 1280, 1280, 720), None, "a short plane is not read past");
    }

    #[test]
    fn ages_are_differences_that_survive_the_wrap() {
        let s = Stamp { frame: 0, captured_ms: u32::MAX - 5 };
        assert_eq!(age_ms(s, 10), Some(16));
        assert_eq!(age_ms(s, u32::MAX - 10), None, "from the future: another machine's clock");
    }
}
