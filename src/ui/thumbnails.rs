//! Thumbnails of image files in the transfers strip. Decoding a photo takes tens of
//! milliseconds and a hostile file could ask for gigabytes, so it happens on a thread of its
//! own, under size limits, and the UI shows the picture when it is ready.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

/// Longest side of a thumbnail, in pixels.
pub const SIZE: u32 = 96;
/// Images claiming more than this per side are not decoded.
const MAX_SIDE: u32 = 16_384;
/// Memory the decoder may allocate for one image.
const MAX_ALLOC: u64 = 256 * 1024 * 1024;

/// Whether `name` looks like an image the app can decode.
pub fn is_image(name: &str) -> bool {
    let ext = Path::new(name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg" | "gif" | "webp"))
}

/// Reads `path` (whatever its name says, the content decides the format) and scales it to fit
/// `SIZE`×`SIZE`.
pub fn decode(path: &Path) -> Result<egui::ColorImage, String> {
    let mut reader = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_ALLOC);
    reader.limits(limits);
    let image =
        reader.decode().map_err(|e| format!("{} is not a picture Kith can show: {e}", path.display()))?;
    let small = image.thumbnail(SIZE, SIZE).to_rgba8();
    let size = [small.width() as usize, small.height() as usize];
    Ok(egui::ColorImage::from_rgba_unmultiplied(size, small.as_raw()))
}

/// Textures by transfer id; `None` while decoding or when the file is not a picture.
pub struct Thumbnails {
    tx: mpsc::Sender<(String, Result<egui::ColorImage, String>)>,
    rx: mpsc::Receiver<(String, Result<egui::ColorImage, String>)>,
    textures: HashMap<String, Option<egui::TextureHandle>>,
}

impl Default for Thumbnails {
    fn default() -> Self {
        let (tx, rx) = mpsc::channel();
        Self { tx, rx, textures: HashMap::new() }
    }
}

impl Thumbnails {
    pub fn ready(&self, key: &str) -> Option<[usize; 2]> {
        self.textures.get(key)?.as_ref().map(|t| t.size())
    }

    /// The thumbnail for `key`, starting its decode the first time it is asked for.
    pub fn get(&mut self, ctx: &egui::Context, key: &str, path: &Path) -> Option<egui::TextureHandle> {
        while let Ok((done, result)) = self.rx.try_recv() {
            let texture = match result {
                Ok(image) => Some(ctx.load_texture(format!("thumb-{done}"), image, Default::default())),
                Err(e) => {
                    tracing::debug!("no thumbnail: {e}");
                    None
                }
            };
            self.textures.insert(done, texture);
        }
        if let Some(t) = self.textures.get(key) {
            return t.clone();
        }
        self.textures.insert(key.to_string(), None);
        let (tx, ctx, key, path): (_, _, String, PathBuf) =
            (self.tx.clone(), ctx.clone(), key.into(), path.into());
        let spawned = std::thread::Builder::new().name("kith-thumbnail".into()).spawn(move || {
            let _ = tx.send((key, decode(&path)));
            ctx.request_repaint();
        });
        if let Err(e) = spawned {
            tracing::warn!("cannot start a thumbnail thread: {e}");
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_scaled_to_fit_and_other_files_refused() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("wide.png");
        image::RgbaImage::from_pixel(400, 200, image::Rgba([200, 10, 10, 255])).save(&png).unwrap();
        let thumb = decode(&png).unwrap();
        assert_eq!(thumb.size, [96, 48]);
        assert_eq!(thumb.pixels[0], egui::Color32::from_rgb(200, 10, 10));

        let fake = dir.path().join("fake.jpg");
        std::fs::write(&fake, b"not a picture at all").unwrap();
        assert!(decode(&fake).unwrap_err().contains("not a picture"));
        assert!(decode(&dir.path().join("missing.png")).unwrap_err().contains("cannot read"));
    }

    #[test]
    fn a_picture_claiming_huge_dimensions_is_not_decoded() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.png");
        // A valid 1×1 PNG whose header is then rewritten to claim 100 000 × 100 000 pixels.
        image::RgbaImage::from_pixel(1, 1, image::Rgba([0, 0, 0, 255])).save(&big).unwrap();
        let mut bytes = std::fs::read(&big).unwrap();
        bytes[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bytes[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        std::fs::write(&big, bytes).unwrap();
        assert!(decode(&big).is_err());
    }

    #[test]
    fn image_names() {
        assert!(is_image("Cat.JPG"));
        assert!(is_image("a.webp"));
        assert!(!is_image("notes.txt"));
        assert!(!is_image("png"));
    }
}
