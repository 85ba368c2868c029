#![no_main]
//! Past the handshake: two client cores with an established session (through a sans-IO
//! hub), then the fuzzer's bytes as decrypted messages from the peer inside that session:
//! chat, acks, skips, link signals, file signals, departures, and bytes that decode to
//! nothing. The other fuzz targets never get this far (a fuzzer cannot finish Noise XX).
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use kith::protocol::client::{Client, ClientConfig, ClientOutput, Now};
use kith::protocol::hub::{Hub, HubConfig, HubOutput};
use kith::protocol::noise::Keypair;
use kith::protocol::trust::KnownPeers;
use libfuzzer_sys::fuzz_target;
use rand_core::SeedableRng;

fn pump(hub: &mut Hub, clients: &mut [Client; 2], now: Now) {
    for _ in 0..40 {
        let mut moved = false;
        for (i, c) in clients.iter_mut().enumerate() {
            while let Some(out) = c.poll_output() {
                if let ClientOutput::ToHub(f) = out {
                    moved = true;
                    hub.handle_frame(now.at, i as u64 + 1, &f);
                }
            }
        }
        while let Some(out) = hub.poll_output() {
            if let HubOutput::Send { conn, frame, .. } = out {
                moved = true;
                clients[conn as usize - 1].handle_hub_frame(now, &frame);
            }
        }
        if !moved {
            return;
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let config = HubConfig {
        name: "h".into(),
        password: zeroize::Zeroizing::new("pw".into()),
        rooms: vec!["general".into()],
    };
    let mut hub =
        Hub::new(config, Keypair::from_secret_bytes([8; 32]), rand_chacha::ChaCha20Rng::seed_from_u64(1));
    let mut clients = [0u8, 1].map(|i| {
        let config = ClientConfig {
            name: format!("m{i}"),
            password: zeroize::Zeroizing::new("pw".into()),
            rooms: vec!["general".into()],
            hub_label: "h".into(),
            hub_pin: None,
            accept_changed_hub_key: false,
        };
        let rng = rand_chacha::ChaCha20Rng::seed_from_u64(40 + u64::from(i));
        Client::new(config, Keypair::from_secret_bytes([20 + i; 32]), KnownPeers::default(), rng)
    });
    let mut now = Now { at: Instant::now(), unix_ms: 1_800_000_000_000 };
    for (i, c) in clients.iter_mut().enumerate() {
        hub.handle_connect(now.at, i as u64 + 1, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)));
        c.handle_hub_connected(now);
    }
    pump(&mut hub, &mut clients, now);
    let from = clients[1].identity_key();
    for chunk in data.split(|b| *b == 0xA5) {
        let Some((&flags, msg)) = chunk.split_first() else { continue };
        clients[0].inject_peer_plaintext(now, from, msg, flags & 1 == 1);
        if flags & 2 == 2 {
            now = now.plus(Duration::from_millis(900));
            clients[0].handle_timeout(now);
        }
        pump(&mut hub, &mut clients, now);
    }
});
