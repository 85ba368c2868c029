#![no_main]
//! The hub's routing state machine fed arbitrary frames on a few connections.
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use kith::protocol::hub::{Hub, HubConfig};
use kith::protocol::noise::Keypair;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let config = HubConfig {
        name: "fuzz".into(),
        password: zeroize::Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
    };
    let mut hub =
        Hub::new(config, Keypair::from_secret_bytes([8; 32]), rand_chacha::ChaCha20Rng::seed_from_u64(0));
    let mut now = Instant::now();
    for conn in 1..=3 {
        hub.handle_connect(now, conn, IpAddr::V4(Ipv4Addr::new(10, 0, 0, conn as u8)));
    }
    for frame in data.split(|b| *b == 0xA5) {
        let conn = 1 + (frame.first().copied().unwrap_or(0) as u64 % 3);
        hub.handle_frame(now, conn, frame);
        now += Duration::from_secs(1);
        hub.handle_timeout(now);
        while hub.poll_output().is_some() {}
    }
});
