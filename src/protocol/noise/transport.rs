//! Transport phase: one key per direction, explicit nonces, a replay window, periodic rekey.
//!
//! Each transport message is `counter (8 bytes, little endian) || AEAD(ciphertext + tag)` where
//! the counter is the ChaChaPoly nonce. Carrying the nonce lets messages arrive out of order (as
//! they will on unordered data channels) while a sliding window, as in WireGuard, refuses
//! replays. Every `rekey_interval` messages the sender moves to `REKEY(k)`; the receiver follows
//! from the counter alone, so no extra message is needed and old keys are forgotten (forward
//! secrecy within a long session).

use x25519_dalek::PublicKey;

use super::NoiseError;
use super::cipher::{CipherKey, TAG_LEN};
use super::replay::ReplayWindow;

/// Length of the explicit nonce header.
pub const COUNTER_LEN: usize = 8;
/// Transport overhead per message.
pub const OVERHEAD: usize = COUNTER_LEN + TAG_LEN;
/// Messages per key epoch by default.
pub const DEFAULT_REKEY_INTERVAL: u64 = 1 << 20;
/// A receiver refuses to ratchet more than this many epochs ahead for a single message.
const MAX_EPOCH_JUMP: u64 = 64;

#[derive(Debug)]
pub struct Transport {
    send_key: CipherKey,
    send_epoch: u64,
    next_counter: u64,
    recv_key: CipherKey,
    recv_epoch: u64,
    /// The key of the epoch before `recv_epoch`, for stragglers still inside the window.
    recv_prev_key: Option<CipherKey>,
    window: ReplayWindow,
    rekey_interval: u64,
    /// Over a stream (TCP), every message must be the next one: nothing dropped or reordered.
    strict_order: bool,
    handshake_hash: [u8; 32],
    remote_static: PublicKey,
}

impl Transport {
    pub(super) fn new(send: CipherKey, recv: CipherKey, h: [u8; 32], remote: PublicKey) -> Self {
        Self {
            send_key: send,
            send_epoch: 0,
            next_counter: 0,
            recv_key: recv,
            recv_epoch: 0,
            recv_prev_key: None,
            window: ReplayWindow::default(),
            rekey_interval: DEFAULT_REKEY_INTERVAL,
            strict_order: false,
            handshake_hash: h,
            remote_static: remote,
        }
    }

    /// Both sides must use the same interval.
    pub fn set_rekey_interval(&mut self, interval: u64) {
        self.rekey_interval = interval.max(1);
    }

    /// For sessions carried on an ordered stream: refuse any message that is not exactly the
    /// next one, so an attacker on the path cannot drop or swap messages unnoticed.
    pub fn set_strict_order(&mut self, strict: bool) {
        self.strict_order = strict;
    }

    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    pub fn remote_static(&self) -> &PublicKey {
        &self.remote_static
    }

    /// Messages sent so far.
    pub fn sent_count(&self) -> u64 {
        self.next_counter
    }

    pub fn encrypt(&mut self, plaintext: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if plaintext.len() > super::MAX_PLAINTEXT_LEN {
            return Err(NoiseError::TooLong);
        }
        // u64::MAX is the reserved rekey nonce; stop one before it.
        if self.next_counter >= u64::MAX - 1 {
            return Err(NoiseError::NonceExhausted);
        }
        let counter = self.next_counter;
        let epoch = counter / self.rekey_interval;
        while self.send_epoch < epoch {
            self.send_key = self.send_key.rekeyed()?;
            self.send_epoch += 1;
        }
        let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
        out.extend_from_slice(&counter.to_le_bytes());
        out.extend_from_slice(plaintext);
        let tag = self.send_key.seal_in_place(counter, &[], &mut out[COUNTER_LEN..])?;
        out.extend_from_slice(&tag);
        self.next_counter += 1;
        Ok(out)
    }

    pub fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        let counter = self.check_header(message)?;
        let mut body = message[COUNTER_LEN..].to_vec();
        let len = self.open_body(counter, &mut body)?;
        body.truncate(len);
        Ok(body)
    }

    /// Decrypts a transport message inside its own buffer (no copy) and returns the plaintext.
    pub fn decrypt_in_place<'a>(&mut self, message: &'a mut [u8]) -> Result<&'a mut [u8], NoiseError> {
        let counter = self.check_header(message)?;
        let body = &mut message[COUNTER_LEN..];
        let len = self.open_body(counter, body)?;
        Ok(&mut body[..len])
    }

    /// The message's counter, if it is long enough, usable and not a replay. Cheap, so it
    /// runs before any crypto; the window is only updated after authentication.
    fn check_header(&self, message: &[u8]) -> Result<u64, NoiseError> {
        if message.len() < OVERHEAD {
            return Err(NoiseError::Truncated);
        }
        let mut counter_bytes = [0u8; COUNTER_LEN];
        counter_bytes.copy_from_slice(&message[..COUNTER_LEN]);
        let counter = u64::from_le_bytes(counter_bytes);
        if counter >= u64::MAX - 1 {
            return Err(NoiseError::NonceExhausted);
        }
        if !self.window.may_accept(counter) {
            return Err(NoiseError::Replay);
        }
        if self.strict_order && counter != self.window.next_expected() {
            return Err(NoiseError::OutOfOrder);
        }
        Ok(counter)
    }

    /// Authenticates and decrypts `body` (ciphertext and tag) under the key of the counter's
    /// epoch, ratcheting forward if needed; returns the plaintext length.
    fn open_body(&mut self, counter: u64, body: &mut [u8]) -> Result<usize, NoiseError> {
        let epoch = counter / self.rekey_interval;
        let len = if epoch == self.recv_epoch {
            self.recv_key.open_in_place(counter, &[], body)?
        } else if epoch + 1 == self.recv_epoch {
            let key = self.recv_prev_key.as_ref().ok_or(NoiseError::Replay)?;
            key.open_in_place(counter, &[], body)?
        } else if epoch < self.recv_epoch {
            return Err(NoiseError::Replay);
        } else if epoch - self.recv_epoch > MAX_EPOCH_JUMP {
            return Err(NoiseError::Decrypt);
        } else {
            // Ratchet on a copy; commit only once the message authenticates.
            let mut prev = self.recv_key.clone();
            let mut key = self.recv_key.rekeyed()?;
            for _ in self.recv_epoch + 1..epoch {
                prev = key.clone();
                key = key.rekeyed()?;
            }
            let len = key.open_in_place(counter, &[], body)?;
            self.recv_prev_key = Some(prev);
            self.recv_key = key;
            self.recv_epoch = epoch;
            len
        };
        self.window.mark(counter);
        Ok(len)
    }

    #[doc(hidden)]
    /// Test hook: jump the send counter (for nonce-exhaustion tests).
    pub fn debug_set_next_counter(&mut self, counter: u64) {
        self.next_counter = counter;
        self.send_epoch = counter / self.rekey_interval;
    }
}
