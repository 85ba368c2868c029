//! Our Noise XX against the published cacophony vectors for
//! `Noise_XX_25519_ChaChaPoly_SHA256` (tests/vectors/, filtered from cacophony.txt).

use kith::protocol::noise::{COUNTER_LEN, Handshake, Keypair, Role, Transport};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    vectors: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    protocol_name: String,
    init_prologue: String,
    init_static: String,
    init_ephemeral: String,
    resp_prologue: String,
    resp_static: String,
    resp_ephemeral: String,
    handshake_hash: String,
    messages: Vec<Message>,
}

#[derive(Deserialize)]
struct Message {
    payload: String,
    ciphertext: String,
}

fn key(h: &str) -> Keypair {
    Keypair::from_secret_bytes(hex::decode(h).unwrap().try_into().unwrap())
}

#[test]
fn cacophony_xx_25519_chachapoly_sha256() {
    let file: File =
        serde_json::from_str(include_str!("vectors/cacophony_xx_25519_chachapoly_sha256.json")).unwrap();
    assert!(!file.vectors.is_empty());
    for v in &file.vectors {
        assert_eq!(v.protocol_name, "Noise_XX_25519_ChaChaPoly_SHA256");
        let mut init = Handshake::new(
            Role::Initiator,
            &key(&v.init_static),
            key(&v.init_ephemeral),
            &hex::decode(&v.init_prologue).unwrap(),
        );
        let mut resp = Handshake::new(
            Role::Responder,
            &key(&v.resp_static),
            key(&v.resp_ephemeral),
            &hex::decode(&v.resp_prologue).unwrap(),
        );
        let (handshake, transport) = v.messages.split_at(3);
        for (i, m) in handshake.iter().enumerate() {
            let payload = hex::decode(&m.payload).unwrap();
            let (writer, reader) = if i % 2 == 0 { (&mut init, &mut resp) } else { (&mut resp, &mut init) };
            let ct = writer.write_message(&payload).unwrap();
            assert_eq!(hex::encode(&ct), m.ciphertext, "handshake message {i}");
            assert_eq!(reader.read_message(&ct).unwrap(), payload);
        }
        assert_eq!(hex::encode(init.handshake_hash()), v.handshake_hash);
        assert_eq!(hex::encode(resp.handshake_hash()), v.handshake_hash);
        let mut ti = init.into_transport().unwrap();
        let mut tr = resp.into_transport().unwrap();
        // Cacophony keeps alternating after the handshake: the responder speaks next.
        for (i, m) in transport.iter().enumerate() {
            let payload = hex::decode(&m.payload).unwrap();
            let (w, r): (&mut Transport, &mut Transport) =
                if i % 2 == 0 { (&mut tr, &mut ti) } else { (&mut ti, &mut tr) };
            let sealed = w.encrypt(&payload).unwrap();
            // Our framing prefixes the nonce; the AEAD output must equal the vector's.
            assert_eq!(hex::encode(&sealed[COUNTER_LEN..]), m.ciphertext, "transport message {i}");
            assert_eq!(r.decrypt(&sealed).unwrap(), payload);
        }
    }
}
