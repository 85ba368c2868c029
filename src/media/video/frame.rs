//! One picture in I420 (planar 4:2:0, the codec's own layout) and the sizes a call accepts.

use std::str::FromStr;

/// A picture: a full-size luma plane and two quarter-size chroma planes, rows packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct I420 {
    pub width: usize,
    pub height: usize,
    pub y: Vec<u8>,
    pub u: Vec<u8>,
    pub v: Vec<u8>,
}

impl I420 {
    /// A black picture of `size` (even sides, as 4:2:0 needs).
    pub fn black(size: VideoSize) -> Self {
        let (w, h) = (size.width as usize, size.height as usize);
        Self { width: w, height: h, y: vec![16; w * h], u: vec![128; w * h / 4], v: vec![128; w * h / 4] }
    }

    /// The picture at half its width and height (sides kept even), each pixel the average of
    /// the four it replaces, into `out` (its buffers reused): the resolution ladder's lower
    /// step. A plain 2:1 box filter, which the compiler vectorizes; no scaling crate needed.
    pub fn halve_into(&self, out: &mut I420) {
        halve_picture(&self.picture(), out);
    }

    /// A borrowed view of it, as a decoder hands out its pictures (for the self-view's tile).
    pub fn picture(&self) -> super::h264::Picture<'_> {
        super::h264::Picture {
            width: self.width,
            height: self.height,
            y: &self.y,
            u: &self.u,
            v: &self.v,
            y_stride: self.width,
            uv_stride: self.width / 2,
        }
    }

    /// The codec's view of it.
    pub fn as_source(&self) -> openh264::formats::YUVSlices<'_> {
        openh264::formats::YUVSlices::new(
            (&self.y, &self.u, &self.v),
            (self.width, self.height),
            (self.width, self.width / 2, self.width / 2),
        )
    }
}

/// `picture` (a decoder's, rows padded, or ours) at half its width and height into `out`, as
/// [`I420::halve_into`] does.
pub fn halve_picture(picture: &super::h264::Picture<'_>, out: &mut I420) {
    let (w, h) = ((picture.width / 2) & !1, (picture.height / 2) & !1);
    (out.width, out.height) = (w, h);
    halve_plane(picture.y, picture.y_stride, &mut out.y, w, h);
    halve_plane(picture.u, picture.uv_stride, &mut out.u, w / 2, h / 2);
    halve_plane(picture.v, picture.uv_stride, &mut out.v, w / 2, h / 2);
}

/// `src` (rows of `stride`) averaged 2×2 into `dst`, `w`×`h`, rows packed.
fn halve_plane(src: &[u8], stride: usize, dst: &mut Vec<u8>, w: usize, h: usize) {
    dst.resize(w * h, 0);
    for (y, row) in dst.chunks_exact_mut(w.max(1)).enumerate().take(h) {
        let (Some(a), Some(b)) = (
            src.get(2 * y * stride..(2 * y + 1) * stride),
            src.get((2 * y + 1) * stride..(2 * y + 2) * stride),
        ) else {
            return;
        };
        // Pairs by iterator, not by index: no bounds checks, and the loop vectorizes (indexed,
        // this was a quarter of the camera thread's time at 720p → 360p).
        for ((px, a), b) in row.iter_mut().zip(a.chunks_exact(2)).zip(b.chunks_exact(2)) {
            let sum = u16::from(a[0]) + u16::from(a[1]) + u16::from(b[0]) + u16::from(b[1]);
            *px = ((sum + 2) / 4) as u8;
        }
    }
}

/// Width × height of what a camera sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VideoSize {
    pub width: u32,
    pub height: u32,
}

impl VideoSize {
    pub const HD: Self = Self { width: 1280, height: 720 };
    /// The largest a call sends (1080p), and the smallest (160×90).
    pub const MAX: Self = Self { width: 1920, height: 1080 };
    pub const MIN: Self = Self { width: 160, height: 90 };

    pub fn new(width: u32, height: u32) -> Result<Self, String> {
        if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
            return Err(format!("{width}x{height}: both sides must be even"));
        }
        if !(Self::MIN.width..=Self::MAX.width).contains(&width)
            || !(Self::MIN.height..=Self::MAX.height).contains(&height)
        {
            return Err(format!("{width}x{height}: pick a size from 160x90 to 1920x1080"));
        }
        Ok(Self { width, height })
    }

    pub fn pixels(self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The ladder's lower step: half of each side (kept even), if that is not below [`Self::MIN`].
    pub fn half(self) -> Option<Self> {
        Self::new((self.width / 2) & !1, (self.height / 2) & !1).ok()
    }
}

impl FromStr for VideoSize {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (w, h) =
            s.split_once(['x', 'X']).ok_or_else(|| format!("{s}: write the size as WIDTHxHEIGHT"))?;
        let side =
            |t: &str| t.trim().parse::<u32>().map_err(|_| format!("{s}: write the size as WIDTHxHEIGHT"));
        Self::new(side(w)?, side(h)?)
    }
}

impl std::fmt::Display for VideoSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halving_averages_each_square_of_four() {
        let y: Vec<u8> = (0..16).map(|i| (i * 10) as u8).collect();
        let pic = I420 { width: 4, height: 4, y, u: vec![100, 102, 104, 106], v: vec![7, 7, 9, 9] };
        let mut out = I420::black(VideoSize::MIN);
        pic.halve_into(&mut out);
        assert_eq!((out.width, out.height), (2, 2));
        // Rows 0,1 × columns 0,1: 0, 10, 40, 50 → 25.
        assert_eq!(out.y, [25, 45, 105, 125]);
        assert_eq!((out.u.as_slice(), out.v.as_slice()), (&[103][..], &[8][..]));
        assert_eq!(VideoSize::HD.half(), Some(VideoSize { width: 640, height: 360 }));
        assert_eq!(VideoSize::new(320, 180).unwrap().half(), Some(VideoSize::MIN));
        assert_eq!(VideoSize::MIN.half(), None, "nothing below the smallest");
        let mut out = I420::black(VideoSize::MIN);
        I420::black(VideoSize::HD).halve_into(&mut out);
        assert_eq!((out.width, out.height, out.y.len(), out.u.len()), (640, 360, 640 * 360, 320 * 180));
    }

    #[test]
    fn sizes_are_read_and_checked() {
        assert_eq!("640x360".parse(), Ok(VideoSize { width: 640, height: 360 }));
        assert_eq!("1280X720".parse(), Ok(VideoSize::HD));
        assert!("641x360".parse::<VideoSize>().unwrap_err().contains("even"));
        assert!("4000x2000".parse::<VideoSize>().unwrap_err().contains("1920x1080"));
        assert!("640".parse::<VideoSize>().is_err());
        assert!("x360".parse::<VideoSize>().is_err());
    }
}
