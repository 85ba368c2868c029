#![no_main]
//! Every wire message type from arbitrary bytes.
use kith::protocol::wire::{self, ClientHello, ClientToHub, HubToClient, Intro, PeerMsg, PeerPacket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = wire::decode::<ClientToHub>(data) {
        assert_eq!(wire::decode::<ClientToHub>(&wire::encode(&m)).ok(), Some(m));
    }
    if let Ok(m) = wire::decode::<HubToClient>(data) {
        assert_eq!(wire::decode::<HubToClient>(&wire::encode(&m)).ok(), Some(m));
    }
    let _ = wire::decode::<PeerPacket>(data);
    let _ = wire::decode::<PeerMsg>(data);
    let _ = wire::decode::<Intro>(data);
    let _ = wire::decode::<ClientHello>(data);
});
