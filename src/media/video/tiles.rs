//! The latest-frame slots between the video threads and the window: one triple buffer per
//! tile. A decoder thread converts its picture to RGBA in the slot's back buffer and publishes
//! it (never waiting for the window); the window reads the newest published picture (never a
//! torn one) when it draws, and only uploads it when it is new. A new slot is handed to the
//! window through a short list under a mutex, once per tile, never per frame.

use std::sync::{Arc, Mutex};

use triple_buffer::{Input, Output, TripleBuffer};
use yuv::{YuvPlanarImage, YuvRange, YuvStandardMatrix};

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
    /// Counts the pictures published in this slot (0: none yet).
    pub seq: u64,
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
        if let Ok(mut new) = self.new.lock() {
            // A window that stopped reading (closed) keeps at most a call's worth.
            if new.len() >= 64 {
                new.remove(0);
            }
            new.retain(|(k, _)| *k != key);
            new.push((key, TileReader { output }));
        }
        TileWriter { input, tiles: Arc::clone(self), seq: 0 }
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
}

impl TileWriter {
    /// Converts `picture` (BT.601, limited range: what cameras and openh264 give) into the
    /// back buffer and publishes it. The buffer is reused; it grows only when the size does.
    pub fn publish(&mut self, picture: &Picture<'_>) -> Result<(), String> {
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
        (back.width, back.height, back.seq) = (w, h, self.seq);
        self.input.publish();
        (self.tiles.wake)();
        Ok(())
    }
}

pub struct TileReader {
    output: Output<Rgba>,
}

impl TileReader {
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
}
