//! Webcams, through nokhwa (V4L2 on Linux, Media Foundation on Windows, AVFoundation on
//! macOS). A camera's driver blocks until its next picture and may block for ever when the
//! device goes away, so each webcam is read on a thread of its own (`kith-webcam`) that
//! converts what the camera gives (MJPEG, YUYV or NV12) into I420 at the camera's size and
//! publishes it in a latest-picture slot (a triple buffer: the reader never waits for the
//! encoder, the encoder never sees a torn picture). The camera thread is woken for each one.
//!
//! The conversions use SIMD crates: `yuv` for YUYV → I420 and RGB → I420, `image` (zune-jpeg,
//! which also fills in the Huffman tables many webcams leave out of their MJPEG) for JPEG.
//! NV12 → I420 is two plane copies.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use triple_buffer::{Output, TripleBuffer};
use yuv::{
    BufferStoreMut, YuvConversionMode, YuvPackedImage, YuvPlanarImageMut, YuvRange, YuvStandardMatrix,
};

use super::frame::{I420, VideoSize};

/// The largest picture a camera may hand us (checked before anything is allocated for it).
const MAX_SIDE: u32 = 4096;
/// Reads that fail in a row before the camera is given up for gone.
const MAX_FAILURES: u32 = 30;
/// How long closing a webcam waits for its reader to let go of the device.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// How a camera encodes its pictures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawFormat {
    Mjpeg,
    Yuyv,
    Nv12,
}

/// One picture as the camera gave it.
pub struct RawFrame<'a> {
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

/// What a webcam's reader thread reads from: a nokhwa camera, or a synthetic one in tests.
/// Opened on that thread (a nokhwa camera may not move between threads).
pub trait RawSource {
    /// Blocks until the next picture.
    fn next_frame(&mut self) -> Result<RawFrame<'_>, String>;
}

/// A camera the system lists: `name` is what `--camera` and Settings take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CameraDevice {
    pub name: String,
    pub description: String,
}

/// The cameras the system lists (none is a normal answer: no webcam, or no permission).
pub fn list_cameras() -> Result<Vec<CameraDevice>, String> {
    Ok(list_cameras_raw()?
        .into_iter()
        .map(|c| {
            let name = c.human_name();
            let description = match c.description() {
                d if d.is_empty() || d == name => name.clone(),
                d => format!("{name} ({d})"),
            };
            CameraDevice { name, description }
        })
        .collect())
}

/// On macOS a camera is read only after the user allowed it (the system asks once, with the
/// bundle's `NSCameraUsageDescription`); elsewhere there is nothing to ask.
#[cfg(target_os = "macos")]
fn permission() -> Result<(), String> {
    if nokhwa::nokhwa_check() {
        return Ok(());
    }
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    nokhwa::nokhwa_initialize(move |granted| {
        let _ = tx.try_send(granted);
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(true) => Ok(()),
        Ok(false) => {
            Err("Kith may not use the camera: allow it in System Settings → Privacy & Security → Camera"
                .into())
        }
        Err(_) => Err("the system did not answer whether Kith may use the camera".into()),
    }
}

#[cfg(not(target_os = "macos"))]
fn permission() -> Result<(), String> {
    Ok(())
}

/// Opens the camera `name` (None: the system's first) asking for `want` at `fps`, and
/// returns it with the size it will give.
fn open_device(name: Option<&str>, want: VideoSize, fps: u32) -> Result<(NokhwaSource, VideoSize), String> {
    use nokhwa::utils::{FrameFormat, RequestedFormat, RequestedFormatType};
    let cameras = list_cameras_raw()?;
    let info = match name {
        None => cameras.first().ok_or("no camera found: the call goes on without your video")?,
        Some(n) => cameras.iter().find(|c| c.human_name() == n).ok_or_else(|| {
            let known: Vec<String> = cameras.iter().map(|c| c.human_name()).collect();
            match known.is_empty() {
                true => format!("no camera called {n:?}: no camera found"),
                false => format!("no camera called {n:?}: there are {}", known.join(", ")),
            }
        })?,
    };
    let accepted = [FrameFormat::MJPEG, FrameFormat::YUYV, FrameFormat::NV12];
    let any = RequestedFormat::with_formats(RequestedFormatType::None, &accepted);
    let mut camera = nokhwa::Camera::new(info.index().clone(), any)
        .map_err(|e| format!("{}: could not be opened: {e}", info.human_name()))?;
    let offered = camera
        .compatible_camera_formats()
        .map_err(|e| format!("{}: could not list its formats: {e}", info.human_name()))?;
    let offers: Vec<Offer> = offered
        .iter()
        .filter_map(|f| {
            let format = match f.format() {
                FrameFormat::MJPEG => RawFormat::Mjpeg,
                FrameFormat::YUYV => RawFormat::Yuyv,
                FrameFormat::NV12 => RawFormat::Nv12,
                _ => return None,
            };
            Some(Offer { format, width: f.width(), height: f.height(), fps: f.frame_rate() })
        })
        .collect();
    let chosen = choose_format(&offers, want, fps).ok_or_else(|| {
        format!("{}: offers no picture format Kith reads (MJPEG, YUYV or NV12)", info.human_name())
    })?;
    let fourcc = match chosen.format {
        RawFormat::Mjpeg => FrameFormat::MJPEG,
        RawFormat::Yuyv => FrameFormat::YUYV,
        RawFormat::Nv12 => FrameFormat::NV12,
    };
    let format = nokhwa::utils::CameraFormat::new_from(chosen.width, chosen.height, fourcc, chosen.fps);
    camera
        .set_camera_requset(RequestedFormat::with_formats(RequestedFormatType::Exact(format), &accepted))
        .map_err(|e| format!("{}: {e}", info.human_name()))?;
    camera.open_stream().map_err(|e| format!("{}: could not start: {e}", info.human_name()))?;
    let size = even_size(chosen.width, chosen.height)?;
    Ok((NokhwaSource { camera, format: chosen.format, owned: Vec::new() }, size))
}

fn list_cameras_raw() -> Result<Vec<nokhwa::utils::CameraInfo>, String> {
    permission()?;
    nokhwa::query(nokhwa::utils::ApiBackend::Auto).map_err(|e| format!("cameras: {e}"))
}

/// One format a camera offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offer {
    pub format: RawFormat,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
}

/// The offer to ask for: a size a call can send, as close to `want` as there is (by area,
/// preferring the same shape), at the frame rate or the nearest above it (USB 2 cameras
/// give 720p in YUYV at 10 fps or less and in MJPEG at 30: the rate decides between them),
/// and among equals MJPEG (less to move over USB), then NV12, then YUYV.
pub fn choose_format(offers: &[Offer], want: VideoSize, fps: u32) -> Option<Offer> {
    let sendable = |o: &&Offer| VideoSize::new(o.width & !1, o.height & !1).is_ok();
    offers
        .iter()
        .filter(sendable)
        .min_by_key(|o| {
            let area = |w: u32, h: u32| u64::from(w) * u64::from(h);
            let size_off = area(o.width, o.height).abs_diff(want.pixels());
            // Width × wanted height against wanted width × height: zero for the same shape.
            let shape_off = area(o.width, want.height) != area(want.width, o.height);
            let too_slow = o.fps < fps;
            let rate_off = o.fps.abs_diff(fps);
            let format = match o.format {
                RawFormat::Mjpeg => 0,
                RawFormat::Nv12 => 1,
                RawFormat::Yuyv => 2,
            };
            (too_slow, shape_off, size_off, rate_off, format)
        })
        .copied()
}

/// A camera's size with odd sides cropped by one (4:2:0 needs even sides).
fn even_size(width: u32, height: u32) -> Result<VideoSize, String> {
    VideoSize::new(width & !1, height & !1).map_err(|e| format!("the camera's size: {e}"))
}

struct NokhwaSource {
    camera: nokhwa::Camera,
    format: RawFormat,
    /// A backend that hands out its own copy keeps it here until the next read.
    owned: Vec<u8>,
}

impl RawSource for NokhwaSource {
    fn next_frame(&mut self) -> Result<RawFrame<'_>, String> {
        let resolution = self.camera.resolution();
        // V4L2 lends the driver's buffer (no copy), converted before the next read.
        let data: &[u8] = match self.camera.frame_raw().map_err(|e| e.to_string())? {
            std::borrow::Cow::Borrowed(d) => d,
            std::borrow::Cow::Owned(v) => {
                self.owned = v;
                &self.owned
            }
        };
        Ok(RawFrame { format: self.format, width: resolution.width(), height: resolution.height(), data })
    }
}

/// A webcam being read: the newest converted picture, and the reader thread.
pub struct Webcam {
    pictures: Output<I420>,
    size: VideoSize,
    stop: Arc<AtomicBool>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Webcam {
    /// Opens a system camera and starts reading it; `woken` is called after each picture.
    pub fn open(
        name: Option<&str>,
        want: VideoSize,
        fps: u32,
        woken: Box<dyn Fn() + Send>,
        problem: Box<dyn Fn(String) + Send>,
    ) -> Result<Self, String> {
        let name = name.map(str::to_string);
        Self::start(move || open_device(name.as_deref(), want, fps), woken, problem)
    }

    /// Opens a source with `open` on a thread of its own and reads it there.
    pub fn start<S: RawSource>(
        open: impl FnOnce() -> Result<(S, VideoSize), String> + Send + 'static,
        woken: Box<dyn Fn() + Send>,
        problem: Box<dyn Fn(String) + Send>,
    ) -> Result<Self, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let (opened_tx, opened) = std::sync::mpsc::sync_channel(1);
        let stopping = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("kith-webcam".into())
            .spawn(move || {
                let (mut source, size) = match open() {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = opened_tx.send(Err(e));
                        return;
                    }
                };
                let (mut input, pictures) = TripleBuffer::new(&I420::black(size)).split();
                if opened_tx.send(Ok((pictures, size))).is_err() {
                    return;
                }
                let mut rgb = Vec::new();
                let mut failures = 0;
                while !stopping.load(Ordering::Relaxed) {
                    let converted =
                        source.next_frame().and_then(|raw| to_i420(&raw, input.input_buffer_mut(), &mut rgb));
                    match converted {
                        Ok(()) => {
                            failures = 0;
                            input.publish();
                            woken();
                        }
                        Err(e) => {
                            failures += 1;
                            tracing::debug!("webcam: {e}");
                            if failures >= MAX_FAILURES {
                                problem(format!("the camera stopped giving pictures ({e})"));
                                break;
                            }
                        }
                    }
                }
                // The device is let go here, as `source` drops.
                drop(source);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("the webcam thread could not start: {e}"))?;
        // Opening a camera takes a moment (the driver, a permission prompt on macOS).
        let (pictures, size) = opened.recv().map_err(|_| "the webcam thread ended".to_string())??;
        Ok(Self { pictures, size, stop, done })
    }

    /// The size of its pictures.
    pub fn size(&self) -> VideoSize {
        self.size
    }

    /// The newest picture, if one came since the last call.
    pub fn newer(&mut self) -> Option<&I420> {
        match self.pictures.updated() {
            true => Some(self.pictures.read()),
            false => None,
        }
    }
}

impl Drop for Webcam {
    fn drop(&mut self) {
        // A reader stuck in a dead driver is left behind rather than waited for.
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.done.recv_timeout(CLOSE_WAIT);
    }
}

/// Converts one camera picture into `out` (its buffers reused), cropping odd sides by one.
/// `rgb` is scratch space for JPEG.
pub fn to_i420(raw: &RawFrame<'_>, out: &mut I420, rgb: &mut Vec<u8>) -> Result<(), String> {
    match raw.format {
        RawFormat::Mjpeg => mjpeg_to_i420(raw.data, out, rgb),
        RawFormat::Yuyv => yuyv_to_i420(raw.data, raw.width, raw.height, out),
        RawFormat::Nv12 => nv12_to_i420(raw.data, raw.width, raw.height, out),
    }
}

/// Checks a picture's sides and makes `out` the even size for them.
fn prepare(out: &mut I420, width: u32, height: u32) -> Result<(usize, usize), String> {
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!("a picture of {width}x{height} is larger than a camera gives"));
    }
    let size = even_size(width, height)?;
    let (w, h) = (size.width as usize, size.height as usize);
    (out.width, out.height) = (w, h);
    out.y.resize(w * h, 0);
    out.u.resize(w * h / 4, 0);
    out.v.resize(w * h / 4, 0);
    Ok((w, h))
}

fn planes(out: &mut I420) -> YuvPlanarImageMut<'_, u8> {
    let (w, h) = (out.width as u32, out.height as u32);
    YuvPlanarImageMut {
        y_plane: BufferStoreMut::Borrowed(&mut out.y),
        y_stride: w,
        u_plane: BufferStoreMut::Borrowed(&mut out.u),
        u_stride: w / 2,
        v_plane: BufferStoreMut::Borrowed(&mut out.v),
        v_stride: w / 2,
        width: w,
        height: h,
    }
}

fn yuyv_to_i420(data: &[u8], width: u32, height: u32, out: &mut I420) -> Result<(), String> {
    let stride = width as usize * 2;
    if data.len() < stride * height as usize {
        return Err(format!("a YUYV picture of {} bytes for {width}x{height}", data.len()));
    }
    prepare(out, width, height)?;
    let packed = YuvPackedImage {
        // Whole rows of the even-cropped picture (a row keeps the camera's stride).
        yuy: &data[..stride * out.height],
        yuy_stride: stride as u32,
        width: out.width as u32,
        height: out.height as u32,
    };
    yuv::yuyv422_to_yuv420(&mut planes(out), &packed).map_err(|e| format!("YUYV: {e}"))
}

fn nv12_to_i420(data: &[u8], width: u32, height: u32, out: &mut I420) -> Result<(), String> {
    let (sw, sh) = (width as usize, height as usize);
    // Chroma rows are whole pairs of samples even for an odd width.
    let uv_stride = sw.div_ceil(2) * 2;
    let uv_offset = sw * sh;
    if data.len() < uv_offset + uv_stride * sh.div_ceil(2) {
        return Err(format!("an NV12 picture of {} bytes for {width}x{height}", data.len()));
    }
    let (w, h) = prepare(out, width, height)?;
    for (row, dst) in out.y.chunks_exact_mut(w).enumerate() {
        dst.copy_from_slice(&data[row * sw..row * sw + w]);
    }
    let chroma = &data[uv_offset..];
    for row in 0..h / 2 {
        let src = &chroma[row * uv_stride..row * uv_stride + w];
        let (u, v) = (&mut out.u[row * w / 2..(row + 1) * w / 2], &mut out.v[row * w / 2..(row + 1) * w / 2]);
        for ((pair, u), v) in src.chunks_exact(2).zip(u).zip(v) {
            (*u, *v) = (pair[0], pair[1]);
        }
    }
    Ok(())
}

fn mjpeg_to_i420(data: &[u8], out: &mut I420, rgb: &mut Vec<u8>) -> Result<(), String> {
    use image::ImageDecoder;
    let decoder = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(data))
        .map_err(|e| format!("MJPEG: {e}"))?;
    let (width, height) = decoder.dimensions();
    let grey = match decoder.color_type() {
        image::ColorType::Rgb8 => false,
        image::ColorType::L8 => true,
        other => return Err(format!("MJPEG in {other:?}")),
    };
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(format!("a picture of {width}x{height} is larger than a camera gives"));
    }
    rgb.resize(decoder.total_bytes() as usize, 0);
    decoder.read_image(rgb).map_err(|e| format!("MJPEG: {e}"))?;
    let (w, _) = prepare(out, width, height)?;
    if grey {
        for (row, dst) in out.y.chunks_exact_mut(w).enumerate() {
            // Full-range grey to the limited range the codec expects.
            for (d, s) in dst.iter_mut().zip(&rgb[row * width as usize..]) {
                *d = (16 + u32::from(*s) * 219 / 255) as u8;
            }
        }
        out.u.fill(128);
        out.v.fill(128);
        return Ok(());
    }
    yuv::rgb_to_yuv420(
        &mut planes(out),
        rgb,
        width * 3,
        YuvRange::Limited,
        YuvStandardMatrix::Bt601,
        YuvConversionMode::Balanced,
    )
    .map_err(|e| format!("MJPEG colours: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::pattern::{TestPattern, read_stamp};
    use std::time::Instant;

    fn pattern_picture(size: VideoSize, frames: u32) -> I420 {
        let mut p = TestPattern::new(size, 30);
        let t0 = Instant::now();
        let mut last = None;
        for i in 0..frames {
            last = p.capture(t0 + Duration::from_millis(34 * u64::from(i)), 1_000 + i).cloned();
        }
        last.unwrap()
    }

    /// The picture in RGB, full range, as a camera's JPEG carries it.
    fn to_rgb(p: &I420) -> Vec<u8> {
        let mut rgb = vec![0; p.width * p.height * 3];
        let image = yuv::YuvPlanarImage {
            y_plane: &p.y,
            y_stride: p.width as u32,
            u_plane: &p.u,
            u_stride: p.width as u32 / 2,
            v_plane: &p.v,
            v_stride: p.width as u32 / 2,
            width: p.width as u32,
            height: p.height as u32,
        };
        yuv::yuv420_to_rgb(&image, &mut rgb, p.width as u32 * 3, YuvRange::Limited, YuvStandardMatrix::Bt601)
            .unwrap();
        rgb
    }

    fn jpeg_of(p: &I420, quality: u8) -> Vec<u8> {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, quality)
            .encode(&to_rgb(p), p.width as u32, p.height as u32, image::ExtendedColorType::Rgb8)
            .unwrap();
        jpeg
    }

    fn yuyv_of(p: &I420) -> Vec<u8> {
        let mut out = Vec::with_capacity(p.width * p.height * 2);
        for row in 0..p.height {
            for x in (0..p.width).step_by(2) {
                let c = (row / 2) * p.width / 2 + x / 2;
                out.extend([p.y[row * p.width + x], p.u[c], p.y[row * p.width + x + 1], p.v[c]]);
            }
        }
        out
    }

    fn mean_abs_diff(a: &[u8], b: &[u8]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len() as f64
    }

    #[test]
    fn a_cameras_mjpeg_comes_out_as_the_picture_it_was_with_its_stamp() {
        let size = VideoSize::new(640, 360).unwrap();
        let original = pattern_picture(size, 5);
        let jpeg = jpeg_of(&original, 85);
        let raw = RawFrame { format: RawFormat::Mjpeg, width: 640, height: 360, data: &jpeg };
        let (mut out, mut rgb) = (I420::black(VideoSize::MIN), Vec::new());
        to_i420(&raw, &mut out, &mut rgb).unwrap();
        assert_eq!((out.width, out.height), (640, 360));
        let stamp =
            read_stamp(&out.y, 640, 640, 360).expect("the stamp survives JPEG and the colour round trip");
        assert_eq!((stamp.frame, stamp.captured_ms), (4, 1_004));
        assert!(mean_abs_diff(&out.y, &original.y) < 3.0, "luma close to the original");
        assert!(mean_abs_diff(&out.u, &original.u) < 4.0, "chroma close to the original");
    }

    #[test]
    fn yuyv_and_nv12_come_out_exactly() {
        let size = VideoSize::new(320, 180).unwrap();
        let original = pattern_picture(size, 3);
        let (mut out, mut rgb) = (I420::black(VideoSize::MIN), Vec::new());
        let yuyv = yuyv_of(&original);
        to_i420(
            &RawFrame { format: RawFormat::Yuyv, width: 320, height: 180, data: &yuyv },
            &mut out,
            &mut rgb,
        )
        .unwrap();
        assert_eq!(out.y, original.y);
        // 4:2:2 → 4:2:0 averages two rows of chroma, which were the same row here.
        assert_eq!((&out.u, &out.v), (&original.u, &original.v));
        let mut nv12 = original.y.clone();
        for (u, v) in original.u.iter().zip(&original.v) {
            nv12.extend([*u, *v]);
        }
        to_i420(
            &RawFrame { format: RawFormat::Nv12, width: 320, height: 180, data: &nv12 },
            &mut out,
            &mut rgb,
        )
        .unwrap();
        assert_eq!(out, original);
    }

    #[test]
    fn odd_sides_are_cropped_and_short_or_broken_pictures_are_refused() {
        let (mut out, mut rgb) = (I420::black(VideoSize::MIN), Vec::new());
        let yuyv = vec![128u8; 322 * 181 * 2];
        to_i420(
            &RawFrame { format: RawFormat::Yuyv, width: 322, height: 181, data: &yuyv },
            &mut out,
            &mut rgb,
        )
        .unwrap();
        assert_eq!((out.width, out.height), (322, 180));
        let short = RawFrame { format: RawFormat::Yuyv, width: 640, height: 360, data: &yuyv };
        assert!(to_i420(&short, &mut out, &mut rgb).unwrap_err().contains("bytes"));
        let nv12 = RawFrame { format: RawFormat::Nv12, width: 640, height: 360, data: &yuyv[..1000] };
        assert!(to_i420(&nv12, &mut out, &mut rgb).is_err());
        let garbage =
            RawFrame { format: RawFormat::Mjpeg, width: 640, height: 360, data: &[0xff, 0xd8, 1, 2, 3] };
        assert!(to_i420(&garbage, &mut out, &mut rgb).unwrap_err().starts_with("MJPEG"));
        let huge = RawFrame { format: RawFormat::Yuyv, width: 100_000, height: 2, data: &yuyv };
        assert!(to_i420(&huge, &mut out, &mut rgb).is_err());
        assert_eq!((out.width, out.height), (322, 180), "a refused picture leaves the last one");
    }

    #[test]
    fn the_format_asked_for_is_the_closest_that_keeps_the_frame_rate() {
        let offer = |format, width, height, fps| Offer { format, width, height, fps };
        let usb2 = [
            offer(RawFormat::Yuyv, 640, 480, 30),
            offer(RawFormat::Yuyv, 1280, 720, 10),
            offer(RawFormat::Mjpeg, 1280, 720, 30),
            offer(RawFormat::Mjpeg, 640, 360, 30),
            offer(RawFormat::Mjpeg, 3840, 2160, 30),
        ];
        let pick = |want: &str, fps| choose_format(&usb2, want.parse().unwrap(), fps).unwrap();
        assert_eq!(pick("1280x720", 30), offer(RawFormat::Mjpeg, 1280, 720, 30));
        assert_eq!(pick("640x360", 30), offer(RawFormat::Mjpeg, 640, 360, 30), "the same shape first");
        assert_eq!(pick("1280x720", 10), offer(RawFormat::Yuyv, 1280, 720, 10), "the rate asked for");
        let equals = [
            offer(RawFormat::Yuyv, 640, 360, 30),
            offer(RawFormat::Mjpeg, 640, 360, 30),
            offer(RawFormat::Nv12, 640, 360, 30),
        ];
        let pick_of =
            |offers: &[Offer]| choose_format(offers, "640x360".parse().unwrap(), 30).unwrap().format;
        assert_eq!(pick_of(&equals), RawFormat::Mjpeg, "MJPEG among equals");
        assert_eq!(pick_of(&[equals[0], equals[2]]), RawFormat::Nv12, "then NV12");
        assert_eq!(pick("320x180", 15), offer(RawFormat::Mjpeg, 640, 360, 30));
        let only_4k = [offer(RawFormat::Mjpeg, 3840, 2160, 30)];
        assert_eq!(choose_format(&only_4k, VideoSize::HD, 30), None, "nothing a call can send");
        let slow = [offer(RawFormat::Yuyv, 1280, 720, 10)];
        assert_eq!(choose_format(&slow, VideoSize::HD, 30), Some(slow[0]), "slow is better than nothing");
    }

    /// The test pattern as a camera that gives MJPEG, read through the webcam's thread.
    struct JpegCamera {
        pattern: TestPattern,
        t: Instant,
        frame: u32,
        jpeg: Vec<u8>,
    }

    impl RawSource for JpegCamera {
        fn next_frame(&mut self) -> Result<RawFrame<'_>, String> {
            std::thread::sleep(Duration::from_millis(5));
            self.t += Duration::from_millis(34);
            self.frame += 1;
            let p = self.pattern.capture(self.t, 5_000 + self.frame).ok_or("not due")?.clone();
            self.jpeg = jpeg_of(&p, 80);
            Ok(RawFrame { format: RawFormat::Mjpeg, width: 320, height: 180, data: &self.jpeg })
        }
    }

    #[test]
    fn a_webcam_thread_publishes_each_picture_and_wakes_the_camera_thread() {
        let size = VideoSize::new(320, 180).unwrap();
        let open = move || {
            let pattern = TestPattern::new(size, 30);
            Ok((JpegCamera { pattern, t: Instant::now(), frame: 0, jpeg: Vec::new() }, size))
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let woken = Box::new(move || {
            let _ = tx.send(());
        });
        let mut cam = Webcam::start(open, woken, Box::new(|p| panic!("{p}"))).unwrap();
        assert_eq!(cam.size(), size);
        let mut frames = Vec::new();
        while frames.len() < 5 {
            rx.recv_timeout(Duration::from_secs(5)).expect("woken for a picture");
            if let Some(p) = cam.newer() {
                frames.push(read_stamp(&p.y, p.width, p.width, p.height).unwrap().frame);
            }
        }
        assert!(frames.windows(2).all(|w| w[0] < w[1]), "newer pictures each time: {frames:?}");
        drop(cam);
    }

    /// A camera that fails every read: after a while it is given up, in words.
    struct DeadCamera;

    impl RawSource for DeadCamera {
        fn next_frame(&mut self) -> Result<RawFrame<'_>, String> {
            Err("No such device".into())
        }
    }

    #[test]
    fn a_camera_that_went_away_is_said_so() {
        let (tx, rx) = std::sync::mpsc::channel();
        let problem = Box::new(move |p: String| {
            let _ = tx.send(p);
        });
        let _cam = Webcam::start(|| Ok((DeadCamera, VideoSize::MIN)), Box::new(|| {}), problem).unwrap();
        let said = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(said.contains("stopped giving pictures") && said.contains("No such device"), "{said}");
    }

    #[test]
    fn a_camera_that_cannot_be_opened_is_said_so() {
        let refused = Webcam::start(
            || Err::<(DeadCamera, VideoSize), _>("busy".to_string()),
            Box::new(|| {}),
            Box::new(|_| {}),
        );
        assert_eq!(refused.err().as_deref(), Some("busy"));
    }

    #[test]
    fn a_machine_without_cameras_lists_none_or_says_why() {
        // This machine has no /dev/video*: an empty list (or a reason), never a panic.
        match list_cameras() {
            Ok(list) => assert!(list.iter().all(|c| !c.name.is_empty())),
            Err(e) => assert!(!e.is_empty()),
        }
    }
}
