//! `Noise_XX_25519_ChaChaPoly_SHA256`, sans-IO, built from x25519-dalek, chacha20poly1305 and
//! hkdf/sha2. See <https://noiseprotocol.org/noise.html>.

mod cipher;
mod handshake;
mod replay;
mod symmetric;
mod transport;

pub use cipher::{CipherKey, CipherState, TAG_LEN};
pub use handshake::{Handshake, Role};
pub use replay::ReplayWindow;
pub use transport::{COUNTER_LEN, DEFAULT_REKEY_INTERVAL, OVERHEAD, Transport};

use rand_core::CryptoRng;
use x25519_dalek::{PublicKey, StaticSecret};

pub const PROTOCOL_NAME: &[u8] = b"Noise_XX_25519_ChaChaPoly_SHA256";
/// Noise caps every message at 65535 bytes.
pub const MAX_MESSAGE_LEN: usize = 65535;
/// The largest plaintext that fits a transport message.
pub const MAX_PLAINTEXT_LEN: usize = MAX_MESSAGE_LEN - OVERHEAD;

#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum NoiseError {
    #[error("message failed authentication")]
    Decrypt,
    #[error("encryption failed")]
    Encrypt,
    #[error("message is truncated")]
    Truncated,
    #[error("message exceeds the Noise size limit")]
    TooLong,
    #[error("nonce space exhausted; a new session is needed")]
    NonceExhausted,
    #[error("replayed or too old message")]
    Replay,
    #[error("message out of order on an ordered stream")]
    OutOfOrder,
    #[error("handshake message out of turn")]
    OutOfTurn,
    #[error("handshake not finished")]
    NotFinished,
    #[error("peer sent a low-order public key")]
    WeakKey,
}

/// An X25519 key pair. The secret half is zeroized on drop and never printed.
#[derive(Clone)]
pub struct Keypair {
    pub secret: StaticSecret,
    pub public: PublicKey,
}

impl Keypair {
    pub fn from_secret_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.fill_bytes(&mut bytes);
        let kp = Self::from_secret_bytes(bytes);
        zeroize::Zeroize::zeroize(&mut bytes);
        kp
    }
}

impl std::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keypair")
            .field("public", &hex::encode(self.public.as_bytes()))
            .field("secret", &"<redacted>")
            .finish()
    }
}

#[cfg(test)]
mod tests;
