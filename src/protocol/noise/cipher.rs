//! The Noise `CipherState` for ChaChaPoly: a key and a 64-bit nonce counter.
//!
//! Nonces are a 96-bit value of 32 zero bits followed by the little-endian counter (Noise spec
//! §12.3). The counter value 2^64-1 is reserved for `rekey`, so it can never be used to encrypt.

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce, Tag};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::NoiseError;

/// AEAD tag length.
pub const TAG_LEN: usize = 16;
/// Reserved nonce value, only used by `rekey`.
const MAX_NONCE: u64 = u64::MAX;

/// A 32-byte symmetric key that is wiped when dropped and never printed.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct CipherKey([u8; 32]);

impl CipherKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn aead(&self) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(&Key::from(self.0))
    }

    /// Encrypts `plaintext` with an explicit nonce, appending the tag.
    pub fn seal(&self, n: u64, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut buf = Vec::with_capacity(plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        self.aead().encrypt_in_place(&nonce(n), ad, &mut buf).map_err(|_| NoiseError::Encrypt)?;
        Ok(buf)
    }

    /// Encrypts `buf` in place and returns the tag: lets the transport build its frame with a
    /// single copy of the plaintext.
    pub fn seal_in_place(&self, n: u64, ad: &[u8], buf: &mut [u8]) -> Result<[u8; TAG_LEN], NoiseError> {
        let tag =
            self.aead().encrypt_inout_detached(&nonce(n), ad, buf.into()).map_err(|_| NoiseError::Encrypt)?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    /// Decrypts and authenticates `ciphertext` (tag included) with an explicit nonce.
    pub fn open(&self, n: u64, ad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let mut buf = ciphertext.to_vec();
        let len = self.open_in_place(n, ad, &mut buf)?;
        buf.truncate(len);
        Ok(buf)
    }

    /// Decrypts `buf` (ciphertext then tag) in place; returns the plaintext length. On failure
    /// the buffer is wiped rather than left half-decrypted.
    pub fn open_in_place(&self, n: u64, ad: &[u8], buf: &mut [u8]) -> Result<usize, NoiseError> {
        let Some(len) = buf.len().checked_sub(TAG_LEN) else {
            return Err(NoiseError::Truncated);
        };
        let (body, tag) = buf.split_at_mut(len);
        let tag = Tag::try_from(&*tag).map_err(|_| NoiseError::Truncated)?;
        match self.aead().decrypt_inout_detached(&nonce(n), ad, body.into(), &tag) {
            Ok(()) => Ok(len),
            Err(_) => {
                buf.zeroize();
                Err(NoiseError::Decrypt)
            }
        }
    }

    /// `REKEY(k)`: the first 32 bytes of `ENCRYPT(k, maxnonce, zerolen, zeros)` (spec §4.2).
    pub fn rekeyed(&self) -> Result<CipherKey, NoiseError> {
        let mut out = self.seal(MAX_NONCE, &[], &[0u8; 32])?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&out[..32]);
        out.zeroize();
        Ok(CipherKey(key))
    }
}

impl std::fmt::Debug for CipherKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CipherKey(<redacted>)")
    }
}

fn nonce(n: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&n.to_le_bytes());
    Nonce::from(bytes)
}

/// A `CipherState` as the handshake uses it: an optional key and an implicit counter.
#[derive(Debug, Default)]
pub struct CipherState {
    key: Option<CipherKey>,
    n: u64,
}

impl CipherState {
    pub fn initialize_key(&mut self, key: CipherKey) {
        self.key = Some(key);
        self.n = 0;
    }

    pub fn has_key(&self) -> bool {
        self.key.is_some()
    }

    pub fn encrypt_with_ad(&mut self, ad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.key.is_none() {
            return Ok(plaintext.to_vec());
        }
        let n = self.take_nonce()?;
        match &self.key {
            Some(key) => key.seal(n, ad, plaintext),
            None => Ok(plaintext.to_vec()),
        }
    }

    pub fn decrypt_with_ad(&mut self, ad: &[u8], ciphertext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let Some(key) = &self.key else {
            return Ok(ciphertext.to_vec());
        };
        if self.n == MAX_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let plaintext = key.open(self.n, ad, ciphertext)?;
        // The counter only advances on success, so a forged message cannot desynchronise us.
        self.n += 1;
        Ok(plaintext)
    }

    fn take_nonce(&mut self) -> Result<u64, NoiseError> {
        if self.n == MAX_NONCE {
            return Err(NoiseError::NonceExhausted);
        }
        let n = self.n;
        self.n += 1;
        Ok(n)
    }

    pub(crate) fn into_key(mut self) -> Option<CipherKey> {
        self.key.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exhausted_nonce_is_refused() {
        let mut cs = CipherState::default();
        cs.initialize_key(CipherKey::from_bytes([7; 32]));
        cs.n = MAX_NONCE;
        assert!(matches!(cs.encrypt_with_ad(&[], b"x"), Err(NoiseError::NonceExhausted)));
        assert!(matches!(cs.decrypt_with_ad(&[], &[0; 17]), Err(NoiseError::NonceExhausted)));
    }

    #[test]
    fn tampered_ciphertext_fails_and_counter_holds() {
        let key = CipherKey::from_bytes([1; 32]);
        let mut tx = CipherState::default();
        let mut rx = CipherState::default();
        tx.initialize_key(key.clone());
        rx.initialize_key(key);
        let mut ct = tx.encrypt_with_ad(b"ad", b"hello").unwrap();
        ct[0] ^= 1;
        assert!(matches!(rx.decrypt_with_ad(b"ad", &ct), Err(NoiseError::Decrypt)));
        ct[0] ^= 1;
        assert_eq!(rx.decrypt_with_ad(b"ad", &ct).unwrap(), b"hello");
    }

    #[test]
    fn rekey_changes_key_deterministically() {
        let key = CipherKey::from_bytes([3; 32]);
        let a = key.rekeyed().unwrap();
        let b = key.rekeyed().unwrap();
        assert_eq!(a.0, b.0);
        assert_ne!(a.0, key.0);
    }
}
