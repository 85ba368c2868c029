//! Interop with snow, an independent Noise implementation: handshakes in both roles and
//! transport messages both ways, including across rekeys.

use kith::protocol::noise::{COUNTER_LEN, Handshake, Keypair, Role, Transport};

const PARAMS: &str = "Noise_XX_25519_ChaChaPoly_SHA256";
const PROLOGUE: &[u8] = b"kith interop";

fn snow_peer(secret: &[u8; 32], initiator: bool) -> snow::HandshakeState {
    let b = snow::Builder::new(PARAMS.parse().unwrap())
        .local_private_key(secret)
        .unwrap()
        .prologue(PROLOGUE)
        .unwrap();
    if initiator { b.build_initiator().unwrap() } else { b.build_responder().unwrap() }
}

fn ours(role: Role, secret: [u8; 32], eph: [u8; 32]) -> Handshake {
    Handshake::new(role, &Keypair::from_secret_bytes(secret), Keypair::from_secret_bytes(eph), PROLOGUE)
}

/// Runs a handshake where `kith_initiates` picks our role, returns both transports.
fn handshake(kith_initiates: bool) -> (Transport, snow::StatelessTransportState, [u8; 32], [u8; 32]) {
    let our_secret = [0x11; 32];
    let their_secret = [0x22; 32];
    let role = if kith_initiates { Role::Initiator } else { Role::Responder };
    let mut me = ours(role, our_secret, [0x33; 32]);
    let mut them = snow_peer(&their_secret, !kith_initiates);
    let mut buf = vec![0u8; 65535];
    for step in 0..3 {
        let payload = format!("handshake payload {step}");
        let we_write = (step % 2 == 0) == kith_initiates;
        if we_write {
            let msg = me.write_message(payload.as_bytes()).unwrap();
            let n = them.read_message(&msg, &mut buf).unwrap();
            assert_eq!(&buf[..n], payload.as_bytes());
        } else {
            let n = them.write_message(payload.as_bytes(), &mut buf).unwrap();
            assert_eq!(me.read_message(&buf[..n]).unwrap(), payload.as_bytes());
        }
    }
    assert_eq!(them.get_handshake_hash(), me.handshake_hash());
    let their_pub = x25519_public(their_secret);
    let our_pub = x25519_public(our_secret);
    assert_eq!(them.get_remote_static().unwrap(), our_pub);
    let t = me.into_transport().unwrap();
    assert_eq!(t.remote_static().as_bytes(), &their_pub);
    (t, them.into_stateless_transport_mode().unwrap(), our_pub, their_pub)
}

fn x25519_public(secret: [u8; 32]) -> [u8; 32] {
    *Keypair::from_secret_bytes(secret).public.as_bytes()
}

fn exchange(mut me: Transport, mut them: snow::StatelessTransportState, rekey_every: Option<u64>) {
    let mut buf = vec![0u8; 65535];
    if let Some(i) = rekey_every {
        me.set_rekey_interval(i);
    }
    for n in 0u64..40 {
        if let Some(i) = rekey_every
            && n > 0
            && n % i == 0
        {
            // Our epochs follow Noise's REKEY; snow rekeys when told to.
            them.rekey_incoming();
            them.rekey_outgoing();
        }
        let text = format!("kith→snow {n}");
        let msg = me.encrypt(text.as_bytes()).unwrap();
        let nonce = u64::from_le_bytes(msg[..COUNTER_LEN].try_into().unwrap());
        assert_eq!(nonce, n);
        let len = them.read_message(nonce, &msg[COUNTER_LEN..], &mut buf).unwrap();
        assert_eq!(&buf[..len], text.as_bytes());

        let text = format!("snow→kith {n}");
        let len = them.write_message(n, text.as_bytes(), &mut buf).unwrap();
        let mut framed = n.to_le_bytes().to_vec();
        framed.extend_from_slice(&buf[..len]);
        assert_eq!(me.decrypt(&framed).unwrap(), text.as_bytes());
    }
}

#[test]
fn kith_initiator_snow_responder() {
    let (me, them, _, _) = handshake(true);
    exchange(me, them, None);
}

#[test]
fn snow_initiator_kith_responder() {
    let (me, them, _, _) = handshake(false);
    exchange(me, them, None);
}

#[test]
fn rekey_matches_snow() {
    let (me, them, _, _) = handshake(true);
    exchange(me, them, Some(4));
    let (me, them, _, _) = handshake(false);
    exchange(me, them, Some(7));
}

#[test]
fn snow_detects_tampering_by_us_and_vice_versa() {
    let (mut me, them, _, _) = handshake(true);
    let mut buf = vec![0u8; 1024];
    let mut msg = me.encrypt(b"hello").unwrap();
    msg[COUNTER_LEN] ^= 1;
    assert!(them.read_message(0, &msg[COUNTER_LEN..], &mut buf).is_err());
    let len = them.write_message(0, b"hi", &mut buf).unwrap();
    let mut framed = 0u64.to_le_bytes().to_vec();
    framed.extend_from_slice(&buf[..len]);
    framed[COUNTER_LEN + 1] ^= 1;
    assert!(me.decrypt(&framed).is_err());
}
