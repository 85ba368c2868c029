//! The latest-frame slots between the video threads and the window: one triple buffer per
//! tile. A decoder thread converts its picture to RGBA in the slot's back buffer and publishes
//! it (never waiting for the window); the window reads the newest published picture (never a
//! torn one) when it draws, and only uploads it when it is new. A new slot is handed to the
//! window through a short list under a mutex, once per tile, never per frame.
//!
//! The window tells each slot how large it draws the tile (one atomic): a picture at least
//! twice that size is halved (2:1 box filter, on the video thread) until it is not, before it
//! is converted. A 720p picture in a six-tile grid is drawn at about 420×236, so the thread
//! converts and the window uploads a quarter of the pixels; a focused tile gets them all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use triple_buffer::{Input, Output, TripleBuffer};
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

use super::frame::{I420, VideoSize, halve_picture};
use super::h264::Picture;
use crate::protocol::identity::Fingerprint;

/// Whose picture a tile shows: a peer's, or our own camera (the self-view).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileKey {
    Peer(Fingerprint),
    Me,
}

/// One picture for the window, RGBA, rows packed.
#[derive(Clone, Debug, Default)]
pub struct Rgba {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
    /// The picture's size as it came (before it was halved for the tile).
    pub source: [usize; 2],
    /// Counts the pictures published in this slot (0: none yet).
    pub seq: u64,
}

/// The size the window draws a tile at, in pixels (width in the high half, height in the
/// low; 0: not drawn yet, send the full size).
#[derive(Clone, Default)]
struct Wanted(Arc<AtomicU64>);

impl Wanted {
    fn set(&self, [w, h]: [u32; 2]) {
        self.0.store((u64::from(w) << 32) | u64::from(h), Ordering::Relaxed);
    }

    fn get(&self) -> [usize; 2] {
        let v = self.0.load(Ordering::Relaxed);
        [(v >> 32) as usize, (v & 0xffff_ffff) as usize]
    }
}

/// How many times a `size` picture can be halved and still cover `want` (at most 3; none
/// when nothing is wanted yet).
fn halvings(size: [usize; 2], want: [usize; 2]) -> usize {
    if want.contains(&0) {
        return 0;
    }
    // Each halving keeps the sides even, as 4:2:0 needs.
    let side = |s: usize, n: usize| (s >> n) & !1;
    let mut n = 0;
    while n < 3 && side(size[0], n + 1) >= want[0] && side(size[1], n + 1) >= want[1] {
        n += 1;
    }
    n
}

/// The window's side: new slots, and a way to be woken when a picture is published.
pub struct Tiles {
    new: Mutex<Vec<(TileKey, TileReader)>>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl Tiles {
    /// `wake` is called (from a video thread) after each picture published: the window
    /// repaints at the video's rate while video comes, and not otherwise.
    pub fn new(wake: Box<dyn Fn() + Send + Sync>) -> Arc<Self> {
        Arc::new(Self { new: Mutex::new(Vec::new()), wake })
    }

    /// A slot for `key`; its reader goes to the window's list.
    pub fn open(self: &Arc<Self>, key: TileKey) -> TileWriter {
        let (input, output) = TripleBuffer::new(&Rgba::default()).split();
        let wanted = Wanted::default();
        if let Ok(mut new) = self.new.lock() {
            // A window that stopped reading (closed) keeps at most a call's worth.
            if new.len() >= 64 {
                new.remove(0);
            }
            new.retain(|(k, _)| *k != key);
            new.push((key, TileReader { output, wanted: wanted.clone() }));
        }
        let halves = [I420::black(VideoSize::MIN), I420::black(VideoSize::MIN)];
        TileWriter { input, tiles: Arc::clone(self), seq: 0, wanted, halves }
    }

    /// The slots opened since the last call (a reopened key replaces its old slot).
    pub fn take_new(&self) -> Vec<(TileKey, TileReader)> {
        self.new.lock().map(|mut n| std::mem::take(&mut *n)).unwrap_or_default()
    }
}

impl std::fmt::Debug for Tiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tiles").finish_non_exhaustive()
    }
}

pub struct TileWriter {
    input: Input<Rgba>,
    tiles: Arc<Tiles>,
    seq: u64,
    wanted: Wanted,
    /// The halved pictures, made in turn (buffers reused).
    halves: [I420; 2],
}

impl TileWriter {
    /// Converts `picture` (BT.601, limited range: what cameras and openh264 give), halved
    /// down to the tile's drawn size, into the back buffer and publishes it. The buffers are
    /// reused; they grow only when the size does.
    pub fn publish(&mut self, picture: &Picture<'_>) -> Result<(), String> {
        let source = [picture.width, picture.height];
        let steps = halvings(source, self.wanted.get());
        let [a, b] = &mut self.halves;
        // Halved from one buffer into the other in turn: an odd number of steps ends in `a`.
        for step in 0..steps {
            match step {
                0 => halve_picture(picture, a),
                s if s % 2 == 1 => a.halve_into(b),
                _ => b.halve_into(a),
            }
        }
        let halved = match steps {
            0 => None,
            n if n % 2 == 1 => Some(&*a),
            _ => Some(&*b),
        };
        let view = halved.map(I420::picture);
        let picture = view.as_ref().unwrap_or(picture);
        let (w, h) = (picture.width, picture.height);
        let back = self.input.input_buffer_mut();
        back.pixels.resize(w * h * 4, 0);
        let image = YuvPlanarImage {
            y_plane: picture.y,
            y_stride: picture.y_stride as u32,
            u_plane: picture.u,
            u_stride: picture.uv_stride as u32,
            v_plane: picture.v,
            v_stride: picture.uv_stride as u32,
            width: w as u32,
            height: h as u32,
        };
        yuv::yuv420_to_rgba(
            &image,
            &mut back.pixels,
            (w * 4) as u32,
            YuvRange::Limited,
            YuvStandardMatrix::Bt601,
        )
        .map_err(|e| format!("colour conversion: {e}"))?;
        self.seq += 1;
        (back.width, back.height, back.source, back.seq) = (w, h, source, self.seq);
        self.input.publish();
        (self.tiles.wake)();
        Ok(())
    }
}

pub struct TileReader {
    output: Output<Rgba>,
    wanted: Wanted,
}

impl TileReader {
    /// The window draws this tile `size` pixels large: pictures much larger come halved.
    pub fn draws_at(&self, size: [u32; 2]) {
        self.wanted.set(size);
    }

    /// The newest picture, if one was published since the last call.
    pub fn newer(&mut self) -> Option<&Rgba> {
        self.output.update().then(|| self.output.peek_output_buffer()).filter(|p| p.seq > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn the_window_sees_the_newest_picture_once_and_is_woken_for_each() {
        let woken = Arc::new(AtomicUsize::new(0));
        let w = woken.clone();
        let tiles = Tiles::new(Box::new(move || {
            w.fetch_add(1, Ordering::Relaxed);
        }));
        let mut writer = tiles.open(TileKey::Me);
        let mut readers = tiles.take_new();
        assert_eq!(readers.len(), 1);
        let reader = &mut readers[0].1;
        assert!(reader.newer().is_none(), "nothing published yet");
        let (y, u, v) = (vec![235u8; 16 * 8], vec![128u8; 8 * 4], vec![128u8; 8 * 4]);
        let pic = Picture { width: 16, height: 8, y: &y, u: &u, v: &v, y_stride: 16, uv_stride: 8 };
        writer.publish(&pic).unwrap();
        writer.publish(&pic).unwrap();
        let got = reader.newer().expect("published");
        assert_eq!((got.width, got.height, got.seq, got.pixels.len()), (16, 8, 2, 16 * 8 * 4));
        assert!(got.pixels[..3].iter().all(|&c| c >= 250), "white: {:?}", &got.pixels[..4]);
        assert!(reader.newer().is_none(), "the same picture is not new twice");
        assert_eq!(woken.load(Ordering::Relaxed), 2);
        assert!(tiles.take_new().is_empty());
    }

    #[test]
    fn a_picture_comes_halved_down_to_the_size_the_tile_is_drawn_at() {
        let tiles = Tiles::new(Box::new(|| {}));
        let mut writer = tiles.open(TileKey::Me);
        let reader = &mut tiles.take_new()[0].1;
        let (y, u, v) = (vec![200u8; 64 * 36], vec![128u8; 32 * 18], vec![128u8; 32 * 18]);
        let pic = Picture { width: 64, height: 36, y: &y, u: &u, v: &v, y_stride: 64, uv_stride: 32 };
        let mut published = |want: [u32; 2]| {
            reader.draws_at(want);
            writer.publish(&pic).unwrap();
            let got = reader.newer().unwrap();
            assert_eq!(got.source, [64, 36]);
            assert_eq!(got.pixels.len(), got.width * got.height * 4);
            [got.width, got.height]
        };
        assert_eq!(published([0, 0]), [64, 36], "not drawn yet: the full size");
        assert_eq!(published([30, 17]), [32, 18], "halved once, still covers the tile");
        assert_eq!(published([16, 9]), [32, 18], "twice would not cover 9 rows (sides kept even)");
        assert_eq!(published([16, 8]), [16, 8], "twice");
        assert_eq!(published([1, 1]), [8, 4], "three times at most");
        assert_eq!(published([100, 60]), [64, 36], "a tile larger than the picture: all of it");
        assert_eq!(halvings([1280, 720], [420, 236]), 1, "a six-tile grid takes a quarter of 720p");
    }
}
