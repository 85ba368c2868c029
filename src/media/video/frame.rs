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

    /// The codec's view of it.
    pub fn as_source(&self) -> openh264::formats::YUVSlices<'_> {
        openh264::formats::YUVSlices::new(
            (&self.y, &self.u, &self.v),
            (self.width, self.height),
            (self.width, self.width / 2, self.width / 2),
        )
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
    fn sizes_are_read_and_checked() {
        assert_eq!("640x360".parse(), Ok(VideoSize { width: 640, height: 360 }));
        assert_eq!("1280X720".parse(), Ok(VideoSize::HD));
        assert!("641x360".parse::<VideoSize>().unwrap_err().contains("even"));
        assert!("4000x2000".parse::<VideoSize>().unwrap_err().contains("1920x1080"));
        assert!("640".parse::<VideoSize>().is_err());
        assert!("x360".parse::<VideoSize>().is_err());
    }
}
