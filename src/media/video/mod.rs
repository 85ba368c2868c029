//! A call's video, on threads of its own: the camera (or the test pattern) is encoded **once**
//! into H.264 and the same frames go to every peer; each peer's frames are decoded on a thread
//! of that peer's, and the newest picture waits in a latest-frame slot for the window.
//!
//! - [`frame`]: an I420 picture and the sizes a call accepts.
//! - [`pattern`]: the test-pattern camera, which writes its frame number and capture time into
//!   its pixels, and the reader that gets them back out of a decoded picture.
//! - [`h264`]: openh264's encoder and decoder, set up for a call.
//! - [`ladder`]: the size the one encoding is made at: the camera's, or half when the network
//!   or the CPU is short.
//! - [`engine`]: the camera thread and the decoder threads.
//! - [`tiles`]: the latest-frame slots (triple buffers) between the decoders and the window.
//! - [`webcam`]: system cameras (nokhwa) read on a thread each, converted to I420.

pub mod engine;
pub mod frame;
pub mod h264;
pub mod ladder;
pub mod pattern;
pub mod tiles;
pub mod webcam;

/// The RTP clock of video (RFC 6184).
pub const VIDEO_CLOCK: u64 = 90_000;
use crate::protocol::call::MAX_CAMERAS;
/// Peers whose video we decode at once (the other five of six cameras).
pub const MAX_DECODERS: usize = MAX_CAMERAS - 1;
