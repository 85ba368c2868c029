#![no_main]
//! The client core fed arbitrary (decrypted) hub messages and raw link frames.
use std::time::{Duration, Instant};

use kith::protocol::client::{Client, ClientConfig, Now};
use kith::protocol::noise::Keypair;
use kith::protocol::trust::KnownPeers;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

fuzz_target!(|data: &[u8]| {
    let config = ClientConfig {
        name: "fuzz".into(),
        password: zeroize::Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
        hub_label: "h".into(),
        hub_pin: None,
        accept_changed_hub_key: false,
    };
    let rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
    let mut c = Client::new(config, Keypair::from_secret_bytes([6; 32]), KnownPeers::default(), rng);
    let mut now = Now { at: Instant::now(), unix_ms: 1_800_000_000_000 };
    c.handle_hub_connected(now);
    for (i, chunk) in data.split(|b| *b == 0xA5).enumerate() {
        if i == 0 {
            c.handle_hub_frame(now, chunk);
            c.pretend_link_up(now);
        } else {
            c.inject_hub_plaintext(now, chunk);
        }
        now = now.plus(Duration::from_millis(700));
        c.handle_timeout(now);
        while c.poll_output().is_some() {}
    }
});
