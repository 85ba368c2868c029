use super::*;
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn pair(seed: u64) -> (Handshake, Handshake, Keypair, Keypair) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let a = Keypair::generate(&mut rng);
    let b = Keypair::generate(&mut rng);
    let i = Handshake::new(Role::Initiator, &a, Keypair::generate(&mut rng), b"kith");
    let r = Handshake::new(Role::Responder, &b, Keypair::generate(&mut rng), b"kith");
    (i, r, a, b)
}

fn complete(mut i: Handshake, mut r: Handshake) -> (Transport, Transport) {
    let m1 = i.write_message(b"one").unwrap();
    assert_eq!(r.read_message(&m1).unwrap(), b"one");
    let m2 = r.write_message(b"two").unwrap();
    assert_eq!(i.read_message(&m2).unwrap(), b"two");
    let m3 = i.write_message(b"three").unwrap();
    assert_eq!(r.read_message(&m3).unwrap(), b"three");
    (i.into_transport().unwrap(), r.into_transport().unwrap())
}

#[test]
fn handshake_authenticates_both_statics() {
    let (i, r, a, b) = pair(1);
    let (ti, tr) = complete(i, r);
    assert_eq!(ti.remote_static(), &b.public);
    assert_eq!(tr.remote_static(), &a.public);
    assert_eq!(ti.handshake_hash(), tr.handshake_hash());
}

#[test]
fn out_of_turn_is_refused() {
    let (mut i, mut r, _, _) = pair(2);
    assert_eq!(r.write_message(b""), Err(NoiseError::OutOfTurn));
    assert_eq!(i.read_message(&[0; 48]), Err(NoiseError::OutOfTurn));
    let m1 = i.write_message(b"").unwrap();
    assert_eq!(i.write_message(b""), Err(NoiseError::OutOfTurn));
    r.read_message(&m1).unwrap();
    assert!(matches!(r.into_transport(), Err(NoiseError::NotFinished)));
}

#[test]
fn directions_use_separate_keys() {
    let (i, r, _, _) = pair(3);
    let (mut ti, mut tr) = complete(i, r);
    let a = ti.encrypt(b"same").unwrap();
    let b = tr.encrypt(b"same").unwrap();
    // Same counter and plaintext in both directions must not give the same ciphertext.
    assert_ne!(a, b);
    // And a message cannot be reflected back to its sender.
    assert!(ti.decrypt(&a).is_err());
    assert_eq!(tr.decrypt(&a).unwrap(), b"same");
    assert_eq!(ti.decrypt(&b).unwrap(), b"same");
}

#[test]
fn replay_and_reorder() {
    let (i, r, _, _) = pair(4);
    let (mut ti, mut tr) = complete(i, r);
    let msgs: Vec<_> = (0..10u8).map(|n| ti.encrypt(&[n]).unwrap()).collect();
    for idx in [3, 1, 0, 9, 2, 8, 4, 7, 5, 6] {
        assert_eq!(tr.decrypt(&msgs[idx]).unwrap(), [idx as u8]);
    }
    for m in &msgs {
        assert_eq!(tr.decrypt(m), Err(NoiseError::Replay));
    }
}

#[test]
fn rekey_epochs_with_stragglers() {
    let (i, r, _, _) = pair(5);
    let (mut ti, mut tr) = complete(i, r);
    ti.set_rekey_interval(4);
    tr.set_rekey_interval(4);
    let msgs: Vec<_> = (0..40u8).map(|n| ti.encrypt(&[n]).unwrap()).collect();
    // Messages 4 and 8 start new epochs; the same plaintext under another key differs.
    assert_eq!(tr.decrypt(&msgs[9]).unwrap(), [9]); // jumps two epochs at once
    assert_eq!(tr.decrypt(&msgs[5]).unwrap(), [5]); // straggler from the previous epoch
    assert!(tr.decrypt(&msgs[1]).is_err(), "two epochs back: key forgotten");
    for (n, msg) in msgs.iter().enumerate().skip(10) {
        assert_eq!(tr.decrypt(msg).unwrap(), [n as u8]);
    }
}

#[test]
fn forged_counter_does_not_ratchet() {
    let (i, r, _, _) = pair(6);
    let (mut ti, mut tr) = complete(i, r);
    ti.set_rekey_interval(4);
    tr.set_rekey_interval(4);
    let mut forged = ti.encrypt(b"x").unwrap();
    forged[..8].copy_from_slice(&100u64.to_le_bytes());
    assert_eq!(tr.decrypt(&forged), Err(NoiseError::Decrypt));
    let good = ti.encrypt(b"y").unwrap();
    assert_eq!(tr.decrypt(&good).unwrap(), b"y");
}

#[test]
fn nonce_exhaustion_is_an_error() {
    let (i, r, _, _) = pair(7);
    let (mut ti, _) = complete(i, r);
    ti.debug_set_next_counter(u64::MAX - 2);
    assert!(ti.encrypt(b"last").is_ok());
    assert_eq!(ti.encrypt(b"one too many"), Err(NoiseError::NonceExhausted));
}

#[test]
fn tampered_handshake_fails() {
    let (mut i, mut r, _, _) = pair(8);
    let m1 = i.write_message(b"").unwrap();
    r.read_message(&m1).unwrap();
    let mut m2 = r.write_message(b"").unwrap();
    m2[40] ^= 0x80;
    assert_eq!(i.read_message(&m2), Err(NoiseError::Decrypt));
}

#[test]
fn low_order_ephemeral_is_refused() {
    let (_, mut r, _, _) = pair(9);
    // The all-zero point has order 1: DH with it yields zeros.
    assert!(r.read_message(&[0u8; 32]).is_ok());
    assert_eq!(r.write_message(b""), Err(NoiseError::WeakKey));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let kp = Keypair::from_secret_bytes([0x42; 32]);
    let shown = format!("{kp:?} {:?}", CipherKey::from_bytes([0x42; 32]));
    assert!(!shown.contains("4242"), "{shown}");
    assert!(shown.contains("redacted"));
}

#[test]
fn strict_order_refuses_gaps_and_swaps() {
    let (i, r, _, _) = pair(10);
    let (mut ti, mut tr) = complete(i, r);
    tr.set_strict_order(true);
    let m: Vec<_> = (0..3u8).map(|n| ti.encrypt(&[n]).unwrap()).collect();
    assert_eq!(tr.decrypt(&m[1]), Err(NoiseError::OutOfOrder));
    assert_eq!(tr.decrypt(&m[0]).unwrap(), [0]);
    assert_eq!(tr.decrypt(&m[2]), Err(NoiseError::OutOfOrder));
    assert_eq!(tr.decrypt(&m[1]).unwrap(), [1]);
    assert_eq!(tr.decrypt(&m[2]).unwrap(), [2]);
}

#[test]
fn oversized_plaintext_is_refused() {
    let (i, r, _, _) = pair(11);
    let (mut ti, mut tr) = complete(i, r);
    assert_eq!(ti.encrypt(&vec![0; MAX_PLAINTEXT_LEN + 1]), Err(NoiseError::TooLong));
    let max = ti.encrypt(&vec![0; MAX_PLAINTEXT_LEN]).unwrap();
    assert_eq!(max.len(), MAX_MESSAGE_LEN);
    assert_eq!(tr.decrypt(&max).unwrap().len(), MAX_PLAINTEXT_LEN);
}
