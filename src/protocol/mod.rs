//! Pure, sans-IO protocol state machines: no sockets, no clocks (time is passed in as unix
//! milliseconds), no OS randomness (a seeded CSPRNG is passed in).

pub mod call;
pub mod client;
pub mod core;
pub mod delivery;
pub mod events;
pub mod hub;
pub mod identity;
pub mod invite;
pub mod links;
pub mod names;
pub mod nat;
pub mod negotiation;
pub mod noise;
pub mod pace;
pub mod session;
pub mod time;
pub mod transfer;
pub mod trust;
pub mod wire;
