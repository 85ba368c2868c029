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

/// Below this a picture is a smear at any size: the network is told to give at least this.
pub const MIN_BITRATE: u32 = 100_000;

/// One encoded picture, Annex B (start codes), for str0m to packetize.
pub struct Encoded {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

pub struct H264Encoder {
    inner: Encoder,
    size: VideoSize,
    /// What rate control aims for now, and the most it may be set to (the encoder was made
    /// with it: openh264 caps a layer's bitrate at its initial maximum).
    bitrate: u32,
    max_bitrate: u32,
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
        Ok(Self {
            inner,
            size,
            bitrate,
            max_bitrate: bitrate,
            keyframe_wanted: true,
            last_keyframe: None,
            started: None,
        })
    }

    pub fn size(&self) -> VideoSize {
        self.size
    }

    pub fn bitrate(&self) -> u32 {
        self.bitrate
    }

    /// Aims rate control at `bps` from the next picture (up to the bitrate the encoder was
    /// made with): what the network carries now, without a keyframe.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<(), String> {
        let bps = bps.clamp(MIN_BITRATE, self.max_bitrate);
        if bps == self.bitrate {
            return Ok(());
        }
        let mut info = openh264_sys2::SBitrateInfo {
            iLayer: openh264_sys2::SPATIAL_LAYER_ALL,
            iBitrate: i32::try_from(bps).map_err(|e| e.to_string())?,
        };
        // SAFETY: ENCODER_OPTION_BITRATE takes a pointer to an SBitrateInfo, which lives
        // across the call; the encoder copies it and keeps nothing of ours. It changes only
        // the rate control's target, which the `openh264` wrapper does not rely on (it reads
        // its own config again only when the picture size changes, and then sets its own).
        let rc = unsafe {
            self.inner.raw_api().set_option(
                openh264_sys2::ENCODER_OPTION_BITRATE,
                std::ptr::from_mut(&mut info).cast::<std::ffi::c_void>(),
            )
        };
        if rc != 0 {
            return Err(format!("openh264 refused a bitrate of {bps} bit/s ({rc})"));
        }
        self.bitrate = bps;
        Ok(())
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

    /// A picture the encoder cannot make small: the test pattern with noise over it.
    fn noisy(camera: &mut TestPattern, at: Instant, i: u32, seed: &mut u32) -> I420 {
        let mut picture = camera.capture(at, i).expect("due").clone();
        for px in picture.y.iter_mut() {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            *px = px.wrapping_add((*seed & 0x3f) as u8);
        }
        picture
    }

    /// The bitrate set while encoding is what rate control then aims at: a second at the
    /// ceiling, a second at a quarter of it, without a keyframe between.
    #[test]
    fn the_bitrate_follows_the_network_without_a_keyframe() {
        let size = VideoSize::new(640, 360).unwrap();
        let mut camera = TestPattern::new(size, 30);
        let mut enc = H264Encoder::new(size, 30, ceiling_bps(size)).unwrap();
        let t0 = Instant::now();
        let mut seed = 0x1234_5678;
        let mut bytes = [0usize; 3];
        let mut keyframes = 0;
        for i in 0..90u32 {
            if i == 30 {
                enc.set_bitrate(ceiling_bps(size) / 4).unwrap();
                assert_eq!(enc.bitrate(), ceiling_bps(size) / 4);
            }
            let at = t0 + Duration::from_secs(1) / 30 * i;
            let picture = noisy(&mut camera, at, i, &mut seed);
            if let Some(e) = enc.encode(at, &picture).unwrap() {
                bytes[i as usize / 30] += e.data.len();
                keyframes += usize::from(e.keyframe);
            }
        }
        let kbps = bytes.map(|b| b * 8 / 1000);
        assert_eq!(keyframes, 1, "only the first");
        // The first second settles; the last is well under it, near a quarter.
        assert!(kbps[2] * 2 < kbps[0], "{kbps:?} kbit/s per second");
        assert!(kbps[2] < 300, "{kbps:?}");
        enc.set_bitrate(10 * ceiling_bps(size)).unwrap();
        assert_eq!(enc.bitrate(), ceiling_bps(size), "never above the encoder's maximum");
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
