//! The media layer: a call's audio and video on threads of its own, never on the
//! Tokio thread. The net thread hands it packets and takes encoded frames through bounded
//! queues; the sound card's callbacks touch only lock-free rings.
//!
//! - [`codec`]: Opus, 48 kHz mono, 20 ms, FEC and DTX on.
//! - [`jitter`]: one adaptive jitter buffer per peer (NetEq-style), with [`stretch`] to move
//!   toward its target without clicks.
//! - [`mixer`]: the peers summed for the speaker.
//! - [`apm`]: echo cancellation, noise suppression, gain control (sonora) for real microphones.
//! - [`audio_io`]: sound cards (cpal), behind lock-free rings; [`devices`]: choosing and opening them.
//! - [`sources`]: the synthetic microphones (`tone:HZ`, `wav:PATH`) and the null speaker.
//! - [`signal`]: tone generator, levels, pitch: what the media layer measures itself with.
//! - [`engine`]: the media thread that runs all of it for one call.
//! - [`meter`]: the microphone's level for the window's meter, in one atomic.
//! - [`video`]: the camera, H.264 encoded once, a decoder per peer, the window's tiles.
//! - [`trace`]: onsets and work times for benchmarks (`KITH_MEDIA_TRACE`), off otherwise.

pub mod apm;
pub mod audio_io;
pub mod codec;
pub mod devices;
pub mod engine;
pub mod jitter;
pub mod meter;
pub mod mixer;
pub mod ringer;
pub mod signal;
pub mod sources;
pub mod stretch;
pub mod trace;
pub mod video;

/// The call's sample rate.
pub const SAMPLE_RATE: u32 = 48_000;
/// One 20 ms frame.
pub const FRAME: usize = 960;
/// The longest frame a peer may send (120 ms, the Opus maximum).
pub const MAX_FRAME: usize = 5760;
/// Peers the media thread keeps state for (a call's limit, with room for members who are
/// leaving as others join).
pub const MAX_PEERS: usize = 16;
