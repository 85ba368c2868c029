//! A test-only hub that lies about member keys: it announces every member under a key that is
//! not theirs and routes the traffic anyway. Real `kith headless` processes must refuse the
//! sessions (the authenticated static key is not the announced one) and never report them as
//! secure.

mod common;

use std::time::{Duration, Instant};

use common::Peer;
use kith::net::hub_server::{HubOptions, spawn_hub};
use kith::protocol::hub::HubConfig;
use kith::protocol::identity::IdentityKey;
use kith::protocol::noise::Keypair;
use zeroize::Zeroizing;

fn substitute(key: &IdentityKey) -> IdentityKey {
    let mut k = key.0;
    k[0] ^= 0x55;
    k[31] ^= 0x0f;
    IdentityKey(k)
}

#[test]
fn substituted_keys_are_detected() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let hub = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let opts = HubOptions {
            config: HubConfig {
                name: "evil".into(),
                password: Zeroizing::new("pw".into()),
                rooms: vec!["general".into()],
            },
            max_connections: 100,
            auth_timeout_ms: 10_000,
            key_substitution: Some(substitute),
        };
        spawn_hub(listener, opts, Keypair::from_secret_bytes([9; 32])).unwrap()
    });
    let addr = hub.local_addr.to_string();
    let dir = tempfile::tempdir().unwrap();
    let mut a = Peer::join("alice", &dir.path().join("a"), &addr, "pw");
    let mut b = Peer::join("bob", &dir.path().join("b"), &addr, "pw");
    a.fingerprint();
    b.fingerprint();
    // Both see each other (under the wrong key) and try to handshake; one of them must catch it.
    let deadline = Instant::now() + common::WAIT;
    let mismatch = |p: &Peer| p.log.iter().any(|e| e["event"] == "error" && e["code"] == "peer_key_mismatch");
    while !(mismatch(&a) || mismatch(&b)) {
        assert!(Instant::now() < deadline, "no mismatch reported: {:#?} {:#?}", a.log, b.log);
        a.drain(Duration::from_millis(50));
        b.drain(Duration::from_millis(50));
    }
    // Give any (wrong) success time to show up, then make sure none did.
    a.drain(Duration::from_millis(500));
    b.drain(Duration::from_millis(500));
    for p in [&a, &b] {
        assert!(!p.log.iter().any(|e| e["event"] == "peer_secure"), "{:#?}", p.log);
        assert!(!p.log.iter().any(|e| e["event"] == "message"));
    }
    rt.block_on(hub.shutdown());
}
