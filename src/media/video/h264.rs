//! openh264 set up for a call: constrained baseline (what every browser decodes, no B-frames,
//! so no reordering delay), bitrate rate control, one thread, a keyframe only when a peer
//! asks for one (PLI/FIR) or joins, and never more than one each [`KEYFRAME_GAP`].

use std::time::{Duration, Instant};

use openh264::OpenH264API;
use openh264::decoder::{Decoder, DecoderConfig};
use openh264::encoder::{
    BitRate, Complexity, Encoder, EncoderConfig, FrameRate, FrameType, Profile, RateControlMode, UsageType,
};
use openh264::formats::YUVSource;

use super::frame::{I420, VideoSize};

/// Keyframes are large (a few times a P-frame): five peers asking at once, or one asking
/// again while the last is on its way, get one.
pub const KEYFRAME_GAP: Duration = Duration::from_millis(500);

/// The bitrate a size is worth on a good path (WebRTC's ladder is close to this).
pub fn ceiling_bps(size: VideoSize) -> u32 {
    // ~2.5 Mbit/s at 720p30, proportionate to the pixels, never below 150 kbit/s.
    let bps = size.pixels() * 2_500_000 / VideoSize::HD.pixels();
    (bps as u32).max(150_000)
}

/// One encoded picture, Annex B (start codes), for str0m to packetize.
pub struct Encoded {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

pub struct H264Encoder {
    inner: Encoder,
    size: VideoSize,
    bitrate: u32,
    keyframe_wanted: bool,
    last_keyframe: Option<Instant>,
    /// The first picture's time: rate control reads each picture's time from it.
    started: Option<Instant>,
}

impl H264Encoder {
    pub fn new(size: VideoSize, fps: u32, bitrate: u32) -> Result<Self, String> {
        let config = EncoderConfig::new()
            .bitrate(BitRate::from_bps(bitrate))
            .max_frame_rate(FrameRate::from_hz(fps as f32))
            .rate_control_mode(RateControlMode::Bitrate)
            .usage_type(UsageType::CameraVideoRealTime)
            .profile(Profile::Baseline)
            .complexity(Complexity::Low)
            // Rate control may skip a picture rather than overshoot: a frame less, not a burst.
            .skip_frames(true)
            // One thread: the call's other encoders and decoders are the other cores' work.
            .num_threads(1);
        let inner =
            Encoder::with_api_config(OpenH264API::from_source(), config).map_err(|e| e.to_string())?;
        Ok(Self { inner, size, bitrate, keyframe_wanted: true, last_keyframe: None, started: None })
    }

    pub fn size(&self) -> VideoSize {
        self.size
    }

    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// A peer asked for a keyframe (or joined): the next picture after the gap is one.
    pub fn want_keyframe(&mut self) {
        self.keyframe_wanted = true;
    }

    /// The picture encoded, or `None` if rate control skipped it.
    pub fn encode(&mut self, now: Instant, picture: &I420) -> Result<Option<Encoded>, String> {
        if self.keyframe_wanted && self.last_keyframe.is_none_or(|t| now >= t + KEYFRAME_GAP) {
            self.inner.force_intra_frame();
            self.keyframe_wanted = false;
        }
        let since = now - *self.started.get_or_insert(now);
        let at = openh264::Timestamp::from_millis(since.as_millis() as u64);
        let stream = self.inner.encode_at(&picture.as_source(), at).map_err(|e| e.to_string())?;
        let keyframe = matches!(stream.frame_type(), FrameType::IDR | FrameType::I);
        if matches!(stream.frame_type(), FrameType::Skip | FrameType::Invalid) {
            return Ok(None);
        }
        let data = stream.to_vec();
        if data.is_empty() {
            return Ok(None);
        }
        if keyframe {
            self.last_keyframe = Some(now);
        }
        Ok(Some(Encoded { data, keyframe }))
    }
}

/// A decoded picture, borrowed from the decoder until the next call.
pub struct Picture<'a> {
    pub width: usize,
    pub height: usize,
    pub y: &'a [u8],
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub y_stride: usize,
    pub uv_stride: usize,
}

pub struct H264Decoder {
    inner: Decoder,
}

impl H264Decoder {
    pub fn new() -> Result<Self, String> {
        let inner = Decoder::with_api_config(OpenH264API::from_source(), DecoderConfig::new())
            .map_err(|e| e.to_string())?;
        Ok(Self { inner })
    }

    /// One access unit (Annex B) in; when it completes a picture, `with` is given it (the
    /// picture lives in the decoder's buffers until the next call).
    pub fn decode<R>(
        &mut self,
        data: &[u8],
        with: impl FnOnce(&Picture<'_>) -> R,
    ) -> Result<Option<R>, String> {
        let Some(yuv) = self.inner.decode(data).map_err(|e| e.to_string())? else { return Ok(None) };
        let (width, height) = yuv.dimensions();
        let (y_stride, uv_stride, _) = yuv.strides();
        let (y, u, v) = (yuv.y(), yuv.u(), yuv.v());
        // What openh264 hands back must cover the picture before anyone reads it.
        if width == 0
            || height == 0
            || y_stride < width
            || uv_stride < width / 2
            || y.len() < y_stride * height
            || u.len() < uv_stride * (height / 2)
            || v.len() < uv_stride * (height / 2)
        {
            return Err(format!("the decoder gave a {width}x{height} picture it did not fill"));
        }
        Ok(Some(with(&Picture { width, height, y, u, v, y_stride, uv_stride })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::video::pattern::{TestPattern, read_stamp};

    /// The test pattern through the encoder and decoder: the first picture is a keyframe, the
    /// rest are not, a keyframe asked for comes after the gap, and every stamp reads back.
    #[test]
    fn the_pattern_survives_the_codec() {
        let size = VideoSize::new(640, 360).unwrap();
        let mut camera = TestPattern::new(size, 30);
        let mut enc = H264Encoder::new(size, 30, ceiling_bps(size)).unwrap();
        let mut dec = H264Decoder::new().unwrap();
        let t0 = Instant::now();
        let mut keyframes = Vec::new();
        for i in 0..45u32 {
            let at = t0 + Duration::from_secs(1) / 30 * i;
            if i == 5 || i == 20 {
                enc.want_keyframe();
            }
            let picture = camera.capture(at, 1000 + i).expect("due").clone();
            let Some(encoded) = enc.encode(at, &picture).unwrap() else { continue };
            if encoded.keyframe {
                keyframes.push(i);
            }
            assert_eq!(&encoded.data[..4], &[0, 0, 0, 1], "Annex B");
            let (size, stamp) = dec
                .decode(&encoded.data, |got| {
                    ((got.width, got.height), read_stamp(got.y, got.y_stride, got.width, got.height))
                })
                .unwrap()
                .expect("a picture per access unit");
            assert_eq!(size, (640, 360));
            let stamp = stamp.expect("stamp");
            assert_eq!((stamp.frame, stamp.captured_ms), (i, 1000 + i));
        }
        // 5 is asked for 167 ms after the first: it waits for the gap (frame 15); 20 waits for
        // the gap after that one. openh264 starts the keyframe it is told to make with the
        // picture after the one it is told at.
        assert_eq!(keyframes.len(), 3, "{keyframes:?}");
        assert_eq!(keyframes[0], 0);
        assert!((15..=16).contains(&keyframes[1]), "{keyframes:?}");
        assert!((keyframes[1] + 15..=keyframes[1] + 16).contains(&keyframes[2]), "{keyframes:?}");
    }

    #[test]
    fn garbage_is_an_error_not_a_crash() {
        let mut dec = H264Decoder::new().unwrap();
        for junk in [&[][..], &[0, 0, 0, 1, 0x65, 1, 2, 3][..], &[0xff; 300][..]] {
            let _ = dec.decode(junk, |_| ());
        }
    }

    #[test]
    fn the_ceiling_follows_the_size() {
        assert_eq!(ceiling_bps(VideoSize::HD), 2_500_000);
        assert_eq!(ceiling_bps(VideoSize::new(640, 360).unwrap()), 625_000);
        assert_eq!(ceiling_bps(VideoSize::MIN), 150_000);
    }
}
