//! The Noise `SymmetricState`: chaining key, handshake hash and the handshake cipher.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use super::NoiseError;
use super::cipher::{CipherKey, CipherState};

pub const HASH_LEN: usize = 32;

/// Noise's `HKDF(ck, ikm, 2)`. RFC 5869 HKDF with `salt = ck` and an empty `info` yields
/// exactly Noise's `output1 || output2`, so the `hkdf` crate does the work.
pub fn hkdf2(ck: &[u8; HASH_LEN], ikm: &[u8]) -> ([u8; HASH_LEN], [u8; HASH_LEN]) {
    let mut okm = [0u8; 2 * HASH_LEN];
    Hkdf::<Sha256>::new(Some(ck), ikm)
        .expand(&[], &mut okm)
        .expect("64 bytes is a valid HKDF-SHA256 output length");
    let mut a = [0u8; HASH_LEN];
    let mut b = [0u8; HASH_LEN];
    a.copy_from_slice(&okm[..HASH_LEN]);
    b.copy_from_slice(&okm[HASH_LEN..]);
    okm.zeroize();
    (a, b)
}

pub struct SymmetricState {
    ck: [u8; HASH_LEN],
    h: [u8; HASH_LEN],
    cipher: CipherState,
}

impl SymmetricState {
    pub fn initialize(protocol_name: &[u8]) -> Self {
        let mut h = [0u8; HASH_LEN];
        if protocol_name.len() <= HASH_LEN {
            h[..protocol_name.len()].copy_from_slice(protocol_name);
        } else {
            h.copy_from_slice(&Sha256::digest(protocol_name));
        }
        Self { ck: h, h, cipher: CipherState::default() }
    }

    pub fn mix_hash(&mut self, data: &[u8]) {
        let mut hasher = Sha256::new();
        hasher.update(self.h);
        hasher.update(data);
        self.h.copy_from_slice(&hasher.finalize());
    }

    pub fn mix_key(&mut self, ikm: &[u8]) {
        let (ck, mut temp_k) = hkdf2(&self.ck, ikm);
        self.ck = ck;
        self.cipher.initialize_key(CipherKey::from_bytes(temp_k));
        temp_k.zeroize();
    }

    pub fn has_key(&self) -> bool {
        self.cipher.has_key()
    }

    pub fn encrypt_and_hash(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let ciphertext = self.cipher.encrypt_with_ad(&self.h, plaintext)?;
        self.mix_hash(&ciphertext);
        Ok(ciphertext)
    }

    pub fn decrypt_and_hash(&mut self, ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let plaintext = self.cipher.decrypt_with_ad(&self.h, ciphertext)?;
        self.mix_hash(ciphertext);
        Ok(plaintext)
    }

    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.h
    }

    /// `Split()`: the two transport keys, initiator-to-responder first.
    pub fn split(mut self) -> (CipherKey, CipherKey) {
        let (mut k1, mut k2) = hkdf2(&self.ck, &[]);
        let keys = (CipherKey::from_bytes(k1), CipherKey::from_bytes(k2));
        k1.zeroize();
        k2.zeroize();
        self.ck.zeroize();
        // The handshake cipher is done; drop its key now rather than at scope end.
        drop(std::mem::take(&mut self.cipher).into_key());
        keys
    }
}

impl Drop for SymmetricState {
    fn drop(&mut self) {
        self.ck.zeroize();
    }
}
