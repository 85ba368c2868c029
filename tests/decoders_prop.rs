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
    self, ChatMessage, ClientHello, ClientToHub, FileSignal, HubToClient, Intro, LinkSignal, MemberInfo,
    MessageId, PeerMsg, PeerPacket,
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
        ".{0,70}".prop_map(|room| PeerMsg::Left { room }),
        (any::<u64>(), any::<u64>(), ".{0,300}")
            .prop_map(|(link, seq, sdp)| PeerMsg::Link(LinkSignal::Offer { link, seq, sdp })),
        (any::<u64>(), ".{0,100}")
            .prop_map(|(link, candidate)| PeerMsg::Link(LinkSignal::Candidate { link, candidate })),
        any::<u64>().prop_map(|link| PeerMsg::Link(LinkSignal::Close { link })),
        any::<u64>().prop_map(|link| PeerMsg::Link(LinkSignal::Restart { link })),
        (any::<u64>(), ".{0,300}", any::<u64>(), any::<[u8; 32]>())
            .prop_map(|(id, name, size, sha256)| PeerMsg::File(FileSignal::Offer { id, name, size, sha256 })),
        (any::<u64>(), any::<u64>())
            .prop_map(|(id, offset)| PeerMsg::File(FileSignal::Accept { id, offset })),
        any::<u64>().prop_map(|id| PeerMsg::File(FileSignal::Cancel { id })),
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

/// Two members authenticated on a hub (connections 1 and 2), frames moved until quiet.
fn authenticated_pair(hub: &mut Hub) -> [Client; 2] {
    let mut clients = [0u64, 1].map(|i| {
        let config = ClientConfig {
            name: format!("m{i}"),
            password: Zeroizing::new("pw".into()),
            rooms: vec!["general".into()],
            hub_label: "h".into(),
            hub_pin: None,
            accept_changed_hub_key: false,
        };
        let mut rng = ChaCha20Rng::seed_from_u64(40 + i);
        Client::new(config, Keypair::generate(&mut rng), KnownPeers::default(), rng)
    });
    let now = std::time::Instant::now();
    let t = Now { at: now, unix_ms: 1_800_000_000_000 };
    for (i, c) in clients.iter_mut().enumerate() {
        hub.handle_connect(now, i as u64 + 1, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1 + i as u8)));
        c.handle_hub_connected(t);
    }
    pump(hub, &mut clients);
    clients
}

/// What [`pump`] moved: frames each connection got from the hub, and each client's events.
#[derive(Default)]
struct Pumped {
    frames: [usize; 2],
    events: [Vec<kith::protocol::events::ClientEvent>; 2],
}

/// Moves frames both ways until nothing moves.
fn pump(hub: &mut Hub, clients: &mut [Client; 2]) -> Pumped {
    use kith::protocol::client::ClientOutput;
    use kith::protocol::hub::HubOutput;
    let now = std::time::Instant::now();
    let t = Now { at: now, unix_ms: 1_800_000_000_000 };
    let mut got = Pumped::default();
    for _ in 0..40 {
        let mut moved = false;
        for (i, c) in clients.iter_mut().enumerate() {
            while let Some(out) = c.poll_output() {
                match out {
                    ClientOutput::ToHub(f) => {
                        moved = true;
                        hub.handle_frame(now, i as u64 + 1, &f);
                    }
                    ClientOutput::Event(e) => got.events[i].push(e),
                    _ => {}
                }
            }
        }
        while let Some(out) = hub.poll_output() {
            if let HubOutput::Send { conn, frame, .. } = out {
                moved = true;
                got.frames[conn as usize - 1] += 1;
                clients[conn as usize - 1].handle_hub_frame(t, &frame);
            }
        }
        if !moved {
            break;
        }
    }
    got
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// What an authenticated member sends inside its session, garbage or well-formed (auth
    /// again, joins and leaves of any room, relays to anyone, pings), never panics the hub
    /// and never costs the other member its place: it still gets an answer to a ping.
    #[test]
    fn hub_survives_anything_an_authenticated_member_sends(
        msgs in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                client_to_hub().prop_map(|m| wire::encode(&m)),
            ],
            1..12,
        )
    ) {
        let config = HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
        let mut hub = Hub::new(config, Keypair::from_secret_bytes([8; 32]), ChaCha20Rng::seed_from_u64(1));
        let mut clients = authenticated_pair(&mut hub);
        prop_assert!(clients.iter().all(|c| c.is_ready()));
        for m in &msgs {
            clients[0].send_raw_to_hub(m);
            pump(&mut hub, &mut clients);
        }
        prop_assert!(clients[1].is_ready());
        clients[1].send_raw_to_hub(&wire::encode(&ClientToHub::Ping { nonce: 7 }));
        let got = pump(&mut hub, &mut clients);
        prop_assert!(got.frames[1] >= 1, "the other member got no answer");
        prop_assert!(clients[1].is_ready());
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Past the handshake: whatever an authenticated peer sends inside an established session
    /// (any message of any kind with any fields, or bytes that decode to nothing) never panics
    /// the client and never ends the session; chat the other way still arrives.
    #[test]
    fn an_established_session_survives_anything_the_peer_sends(
        msgs in proptest::collection::vec(
            prop_oneof![
                peer_msg().prop_map(|m| wire::encode(&m)),
                proptest::collection::vec(any::<u8>(), 0..200),
            ],
            1..16,
        ),
        direct in any::<bool>(),
    ) {
        use kith::protocol::events::ClientEvent;
        let config = HubConfig { name: "h".into(), password: Zeroizing::new("pw".into()), rooms: vec!["general".into()] };
        let mut hub = Hub::new(config, Keypair::from_secret_bytes([9; 32]), ChaCha20Rng::seed_from_u64(2));
        let mut clients = authenticated_pair(&mut hub);
        let keys = [clients[0].identity_key(), clients[1].identity_key()];
        let fps = keys.map(|k| k.fingerprint().to_string());
        prop_assert!(clients[0].secure_peer(&fps[1]).is_some(), "no session to start from");
        let t = Now { at: std::time::Instant::now(), unix_ms: 1_800_000_000_000 };
        for m in &msgs {
            clients[0].inject_peer_plaintext(t, keys[1], m, direct);
            pump(&mut hub, &mut clients);
        }
        prop_assert!(clients[0].secure_peer(&fps[1]).is_some(), "the session ended");
        clients[0].handle_command(t, ClientCommand::Send { room: "general".into(), text: "still here".into(), expires_in_s: None, tag: None });
        let [_, events] = pump(&mut hub, &mut clients).events;
        prop_assert!(
            events.iter().any(|e| matches!(e, ClientEvent::Message { text, .. } if text == "still here")),
            "chat stopped: {events:?}"
        );
    }
}
