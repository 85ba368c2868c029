//! The Tokio side: sockets, timers and files around the sans-IO protocol cores.
//! Nothing here makes a protocol decision.

pub mod client_driver;
pub mod disk;
pub mod framing;
pub mod front;
pub mod hub_server;
pub mod link_socket;
pub mod profile;
pub mod profile_writer;
pub mod reach;

/// Wall-clock milliseconds since the Unix epoch: the time base of the protocol cores.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A `tokio::time::Instant` for a protocol deadline in unix milliseconds.
pub fn deadline(at_ms: u64) -> tokio::time::Instant {
    let now = now_ms();
    tokio::time::Instant::now() + std::time::Duration::from_millis(at_ms.saturating_sub(now))
}
