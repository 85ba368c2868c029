//! The window's side of the video tiles: each frame, the pictures the video threads published
//! since the last one are uploaded into their tile's texture (`TextureHandle::set`, the same
//! texture reused), and a tile with nothing new costs nothing. The readers come from the
//! core's [`Tiles`] as the camera and decoder threads open them.
//!
//! A picture is copied once on this thread, by one `memcpy` into an image buffer that is
//! reused: egui's renderer holds the image only until it has written it into the texture, so
//! by the next picture the buffer is ours again (a new one is made only when it is not, or
//! when the size changed).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::core::{TileKey, TileReader, Tiles};

/// A picture this old is not shown any more (the sender stopped, or its video froze so long
/// that initials say more than a still picture).
const STALE: std::time::Duration = std::time::Duration::from_secs(2);

struct Tile {
    reader: TileReader,
    texture: Option<egui::TextureHandle>,
    /// The last picture handed to egui; its buffer is filled again for the next one.
    image: Option<Arc<egui::ColorImage>>,
    /// The last picture's size as uploaded and as it came, and when it came.
    size: [usize; 2],
    source: [usize; 2],
    updated: Option<Instant>,
    uploads: u64,
}

/// The textures of the call's video, by tile.
#[derive(Default)]
pub struct VideoTiles {
    tiles: HashMap<TileKey, Tile>,
}

/// What the grid draws for a tile.
pub struct Shown {
    pub texture: egui::TextureId,
    pub size: [usize; 2],
    /// The picture's own size (the texture may be a halved copy for a small tile).
    pub source: [usize; 2],
}

impl VideoTiles {
    /// Takes the tiles opened since the last frame and uploads every new picture.
    pub fn update(&mut self, ctx: &egui::Context, tiles: &Tiles) {
        for (key, reader) in tiles.take_new() {
            let tile = Tile {
                reader,
                texture: None,
                image: None,
                size: [0, 0],
                source: [0, 0],
                updated: None,
                uploads: 0,
            };
            self.tiles.insert(key, tile);
        }
        let now = Instant::now();
        for (key, tile) in &mut self.tiles {
            let Some(picture) = tile.reader.newer() else { continue };
            let (size, source) = ([picture.width, picture.height], picture.source);
            if picture.pixels.len() != size[0] * size[1] * 4 || size.contains(&0) {
                continue;
            }
            // Opaque pixels (alpha 255): premultiplied or not is the same.
            let pixels: &[egui::Color32] = bytemuck::cast_slice(&picture.pixels);
            let image = match tile.image.as_mut().and_then(Arc::get_mut) {
                Some(reused) if reused.size == size => {
                    reused.pixels.copy_from_slice(pixels);
                    tile.image.clone()
                }
                _ => None,
            };
            let image = image.unwrap_or_else(|| {
                let fresh = Arc::new(egui::ColorImage::new(size, pixels.to_vec()));
                tile.image = Some(Arc::clone(&fresh));
                fresh
            });
            match &mut tile.texture {
                Some(t) => t.set(image, egui::TextureOptions::LINEAR),
                None => {
                    let name = match key {
                        TileKey::Me => "video-me".to_string(),
                        TileKey::Peer(fp) => format!("video-{fp}"),
                    };
                    tile.texture = Some(ctx.load_texture(name, image, egui::TextureOptions::LINEAR));
                }
            }
            (tile.size, tile.source, tile.updated) = (size, source, Some(now));
            tile.uploads += 1;
        }
    }

    /// The texture to draw for `key`, if a picture came lately.
    pub fn shown(&self, key: &TileKey) -> Option<Shown> {
        let tile = self.tiles.get(key)?;
        let fresh = tile.updated.is_some_and(|t| t.elapsed() < STALE);
        let texture = tile.texture.as_ref().filter(|_| fresh)?;
        Some(Shown { texture: texture.id(), size: tile.size, source: tile.source })
    }

    /// The grid draws `key`'s tile `size` pixels large: its video thread halves larger
    /// pictures before converting them, and the upload is that much smaller.
    pub fn draws_at(&self, key: &TileKey, size: [u32; 2]) {
        if let Some(tile) = self.tiles.get(key) {
            tile.reader.draws_at(size);
        }
    }

    /// Pictures uploaded for `key` so far, and the last one's size as it came (for tests).
    pub fn uploads(&self, key: &TileKey) -> Option<(u64, [usize; 2])> {
        self.tiles.get(key).map(|t| (t.uploads, t.source))
    }

    /// The last uploaded texture's size for `key` (for tests).
    pub fn texture_size(&self, key: &TileKey) -> Option<[usize; 2]> {
        self.tiles.get(key).map(|t| t.size)
    }

    /// Lets go of the textures of tiles no longer in the call.
    pub fn retain(&mut self, keep: impl Fn(&TileKey) -> bool) {
        self.tiles.retain(|k, _| keep(k));
    }
}
