//! Property tests for every decoder of bytes from the network (and the headless command line):
//! arbitrary input never panics, valid messages round-trip.

use std::net::{IpAddr, Ipv4Addr};

use kith::protocol::client::{Client, ClientConfig, Now};
use kith::protocol::events::ClientCommand;
use kith::protocol::hub::{Hub, HubConfig};
use kith::protocol::identity::{Fingerprint, IdentityKey};
use kith::protocol::noise::{Handshake, Keypair, Role};
use kith::protocol::trust::KnownPeers;
use kith::protocol::wire::{
    self, ChatMessage, ClientHello, ClientToHub, HubToClient, Intro, MemberInfo, MessageId, PeerMsg,
    PeerPacket,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use zeroize::Zeroizing;

fn key() -> impl Strategy<Value = IdentityKey> {
    any::<[u8; 32]>().prop_map(IdentityKey)
}

fn client_to_hub() -> impl Strategy<Value = ClientToHub> {
    prop_oneof![
        (".{0,40}", ".{0,40}").prop_map(|(password, name)| ClientToHub::Auth { password, name }),
        ".{0,70}".prop_map(|room| ClientToHub::Join { room }),
        ".{0,70}".prop_map(|room| ClientToHub::Leave { room }),
        (key(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(to, payload)| ClientToHub::Relay { to, payload }),
        any::<u64>().prop_map(|nonce| ClientToHub::Ping { nonce }),
    ]
}

fn member() -> impl Strategy<Value = MemberInfo> {
    (key(), ".{0,20}").prop_map(|(key, name)| MemberInfo { key, name })
}

fn hub_to_client() -> impl Strategy<Value = HubToClient> {
    prop_oneof![
        (".{0,20}", proptest::collection::vec(".{0,10}", 0..4))
            .prop_map(|(hub_name, rooms)| HubToClient::AuthOk { hub_name, rooms }),
        (".{0,20}", proptest::collection::vec(member(), 0..5))
            .prop_map(|(room, members)| HubToClient::Joined { room, members }),
        (".{0,20}", member()).prop_map(|(room, member)| HubToClient::MemberJoined { room, member }),
        (".{0,20}", key()).prop_map(|(room, key)| HubToClient::MemberLeft { room, key }),
        (key(), proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(from, payload)| HubToClient::Relayed { from, payload }),
        (".{0,10}", ".{0,40}").prop_map(|(code, message)| HubToClient::Error { code, message }),
    ]
}

fn peer_msg() -> impl Strategy<Value = PeerMsg> {
    prop_oneof![
        (any::<[u8; 16]>(), any::<u64>(), ".{0,10}", ".{0,200}", any::<u64>(), any::<Option<u64>>())
            .prop_map(|(id, seq, room, text, sent_at_ms, expires_at_ms)| PeerMsg::Chat(ChatMessage {
                id: MessageId(id),
                seq,
                room,
                text,
                sent_at_ms,
                expires_at_ms
            })),
        (any::<u64>(), any::<[u8; 16]>()).prop_map(|(seq, id)| PeerMsg::Skip { seq, id: MessageId(id) }),
        (any::<u64>(), any::<u64>()).prop_map(|(stream, next)| PeerMsg::Ack { stream, next }),
    ]
}

fn peer_packet() -> impl Strategy<Value = PeerPacket> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..200);
    prop_oneof![
        (any::<u64>(), any::<u8>(), bytes.clone()).prop_map(|(session, step, noise)| PeerPacket::Handshake {
            session,
            step,
            noise
        }),
        (any::<u64>(), bytes).prop_map(|(session, noise)| PeerPacket::Data { session, noise }),
        any::<u64>().prop_map(|session| PeerPacket::Reset { session }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = wire::decode::<ClientToHub>(&bytes);
        let _ = wire::decode::<HubToClient>(&bytes);
        let _ = wire::decode::<PeerPacket>(&bytes);
        let _ = wire::decode::<PeerMsg>(&bytes);
        let _ = wire::decode::<Intro>(&bytes);
        let _ = wire::decode::<ClientHello>(&bytes);
        // Also with the right version byte in front, to get past the first check.
        let mut v = vec![wire::WIRE_VERSION];
        v.extend_from_slice(&bytes);
        let _ = wire::decode::<ClientToHub>(&v);
        let _ = wire::decode::<HubToClient>(&v);
        let _ = wire::decode::<PeerPacket>(&v);
        let _ = wire::decode::<PeerMsg>(&v);
    }

    #[test]
    fn messages_round_trip(a in client_to_hub(), b in hub_to_client(), c in peer_msg(), d in peer_packet()) {
        prop_assert_eq!(wire::decode::<ClientToHub>(&wire::encode(&a)).unwrap(), a);
        prop_assert_eq!(wire::decode::<HubToClient>(&wire::encode(&b)).unwrap(), b);
        prop_assert_eq!(wire::decode::<PeerMsg>(&wire::encode(&c)).unwrap(), c);
        prop_assert_eq!(wire::decode::<PeerPacket>(&wire::encode(&d)).unwrap(), d);
    }

    #[test]
    fn truncated_messages_are_errors(a in client_to_hub(), cut in 0usize..64) {
        let bytes = wire::encode(&a);
        let cut = cut.min(bytes.len().saturating_sub(1));
        prop_assert!(wire::decode::<ClientToHub>(&bytes[..cut]).is_err());
    }

    #[test]
    fn noise_rejects_arbitrary_handshake_and_transport_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let k = Keypair::from_secret_bytes([1; 32]);
        let mut r = Handshake::new(Role::Responder, &k, Keypair::from_secret_bytes([2; 32]), b"p");
        let _ = r.read_message(&bytes);
        let mut i = Handshake::new(Role::Initiator, &k, Keypair::from_secret_bytes([3; 32]), b"p");
        let m1 = i.write_message(&[]).unwrap();
        let _ = i.read_message(&bytes);
        // A full session, then garbage as transport messages.
        let mut i = Handshake::new(Role::Initiator, &k, Keypair::from_secret_bytes([4; 32]), b"p");
        let mut r = Handshake::new(Role::Responder, &k, Keypair::from_secret_bytes([5; 32]), b"p");
        r.read_message(&i.write_message(&[]).unwrap()).unwrap();
        i.read_message(&r.write_message(&[]).unwrap()).unwrap();
        r.read_message(&i.write_message(&[]).unwrap()).unwrap();
        let mut t = r.into_transport().unwrap();
        prop_assert!(t.decrypt(&bytes).is_err());
        let _ = m1;
    }

    #[test]
    fn hub_survives_arbitrary_frames(frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..8)) {
        let config = HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
        let mut hub = Hub::new(config, Keypair::from_secret_bytes([8; 32]), ChaCha20Rng::seed_from_u64(1));
        let now = std::time::Instant::now();
        hub.handle_connect(now, 1, IpAddr::V4(Ipv4Addr::LOCALHOST));
        for f in &frames {
            hub.handle_frame(now, 1, f);
        }
        while hub.poll_output().is_some() {}
        prop_assert!(hub.connection_count() <= 1);
    }

    #[test]
    fn client_survives_arbitrary_hub_messages(msgs in proptest::collection::vec(hub_to_client(), 1..10), junk in proptest::collection::vec(any::<u8>(), 0..300)) {
        let config = ClientConfig {
            name: "a".into(),
            password: Zeroizing::new("pw".into()),
            rooms: vec!["general".into()],
            hub_label: "h".into(),
            hub_pin: None,
            accept_changed_hub_key: false,
        };
        let mut c = Client::new(config, Keypair::from_secret_bytes([6; 32]), KnownPeers::default(), ChaCha20Rng::seed_from_u64(2));
        let t0 = Now { at: std::time::Instant::now(), unix_ms: 1_800_000_000_000 };
        let at = |ms: u64| t0.plus(std::time::Duration::from_millis(ms));
        c.pretend_link_up(at(0));
        c.handle_hub_frame(at(1), &junk);
        c.pretend_link_up(at(2));
        for m in &msgs {
            c.inject_hub_plaintext(at(3), &wire::encode(m));
        }
        c.handle_timeout(at(100_000));
        while c.poll_output().is_some() {}
    }

    #[test]
    fn command_lines_never_panic(line in ".{0,200}") {
        let _ = serde_json::from_str::<ClientCommand>(&line);
        let _ = Fingerprint::parse(&line);
        let _ = MessageId::parse(&line);
    }
}
