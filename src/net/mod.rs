//! The Tokio side: sockets, timers and files around the sans-IO protocol cores.
//! Nothing here makes a protocol decision.

pub mod client_driver;
pub mod connect;
pub mod disk;
pub mod framing;
pub mod front;
pub mod hub_conn;
pub mod hub_server;
pub mod link_socket;
pub mod media;
pub mod profile;
pub mod profile_writer;
pub mod queue;
pub mod reach;

/// Wall-clock milliseconds since the Unix epoch: for what carries a date (timers run on
/// `Instant`s).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
