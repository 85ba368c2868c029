//! Kith: end-to-end encrypted messaging between people who trust each other.
//!
//! Layers, dependencies pointing down:
//! * [`protocol`]: sans-IO state machines (Noise, hub routing, chat delivery).
//! * [`net`]: the Tokio side that moves bytes and timers for them.
//! * [`media`]: a call's audio on threads of its own (codec, jitter buffers, mixer, devices).
//! * [`core`]: the handle both front-ends use (commands in, events out).

pub mod cli;
pub mod core;
pub mod doctor;
pub mod media;
pub mod net;
pub mod protocol;
pub mod ui;
