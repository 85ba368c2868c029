//! The codec's share of a call, on one thread: the 1280×720 test pattern at 30 fps through
//! the call's H.264 encoder (at the 720p ceiling bitrate) and one decoder, 10 s of video;
//! CPU time per picture for each, and the bitrate it came to. Time is simulated (each picture
//! 33 ms after the last), so nothing waits.
//!
//! `cargo bench --bench video`

use std::time::{Duration, Instant};

use kith::media::video::frame::VideoSize;
use kith::media::video::h264::{H264Decoder, H264Encoder, ceiling_bps};
use kith::media::video::pattern::TestPattern;

const FPS: u32 = 30;
const SECONDS: u32 = 10;

fn main() {
    for size in [VideoSize::HD, VideoSize::HD.half().expect("360p")] {
        let mut pattern = TestPattern::new(size, FPS);
        let mut encoder = H264Encoder::new(size, FPS, ceiling_bps(size)).expect("encoder");
        let mut decoder = H264Decoder::new().expect("decoder");
        let start = Instant::now();
        let (mut encoding, mut decoding) = (Duration::ZERO, Duration::ZERO);
        let (mut encoded, mut decoded, mut bytes) = (0u32, 0u32, 0usize);
        for n in 0..FPS * SECONDS {
            let now = start + Duration::from_millis(u64::from(n) * 1000 / u64::from(FPS));
            let Some(picture) = pattern.capture(now, n * 33) else { continue };
            let t = Instant::now();
            let out = encoder.encode(now, picture).expect("encode");
            encoding += t.elapsed();
            let Some(out) = out else { continue };
            encoded += 1;
            bytes += out.data.len();
            let t = Instant::now();
            if decoder.decode(&out.data, |p| p.width).expect("decode").is_some() {
                decoded += 1;
            }
            decoding += t.elapsed();
        }
        let ms = |d: Duration, n: u32| d.as_secs_f64() * 1000.0 / f64::from(n.max(1));
        println!(
            "{}x{}: {encoded} pictures encoded, {decoded} decoded; encode {:.2} ms, decode {:.2} ms per picture; {:.0} kbit/s",
            size.width,
            size.height,
            ms(encoding, encoded),
            ms(decoding, decoded),
            bytes as f64 * 8.0 / f64::from(SECONDS) / 1000.0
        );
    }
}
