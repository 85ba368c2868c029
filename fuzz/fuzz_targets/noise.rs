#![no_main]
//! Handshake messages at each step and transport messages, from arbitrary bytes.
use kith::protocol::noise::{Handshake, Keypair, Role};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let s = Keypair::from_secret_bytes([1; 32]);
    let mut resp = Handshake::new(Role::Responder, &s, Keypair::from_secret_bytes([2; 32]), b"f");
    let _ = resp.read_message(data);

    let mut init = Handshake::new(Role::Initiator, &s, Keypair::from_secret_bytes([3; 32]), b"f");
    let Ok(_m1) = init.write_message(&[]) else { return };
    let _ = init.read_message(data);

    // Through message 2, then arbitrary message 3.
    let mut i = Handshake::new(Role::Initiator, &s, Keypair::from_secret_bytes([4; 32]), b"f");
    let mut r = Handshake::new(Role::Responder, &s, Keypair::from_secret_bytes([5; 32]), b"f");
    let m1 = i.write_message(&[]).unwrap();
    r.read_message(&m1).unwrap();
    let m2 = r.write_message(&[]).unwrap();
    i.read_message(&m2).unwrap();
    let m3 = i.write_message(&[]).unwrap();
    let _ = r.read_message(data);
    let mut r2 = Handshake::new(Role::Responder, &s, Keypair::from_secret_bytes([5; 32]), b"f");
    r2.read_message(&m1).unwrap();
    r2.write_message(&[]).unwrap();
    r2.read_message(&m3).unwrap();
    let mut t = r2.into_transport().unwrap();
    t.set_rekey_interval(3);
    for chunk in data.split(|b| *b == 0xA5) {
        let _ = t.decrypt(chunk);
    }
});
