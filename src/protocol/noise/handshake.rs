//! `Noise_XX_25519_ChaChaPoly_SHA256` handshake:
//!
//! ```text
//!   -> e
//!   <- e, ee, s, es
//!   -> s, se
//! ```
//!
//! The handshake is consumed into a [`Transport`] by [`Handshake::into_transport`], so
//! transport messages cannot be sent before the handshake has finished.

use x25519_dalek::PublicKey;

use super::cipher::TAG_LEN;
use super::symmetric::{HASH_LEN, SymmetricState};
use super::transport::Transport;
use super::{Keypair, MAX_MESSAGE_LEN, NoiseError, PROTOCOL_NAME};

const DH_LEN: usize = 32;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

pub struct Handshake {
    role: Role,
    sym: SymmetricState,
    s: Keypair,
    e: Keypair,
    re: Option<PublicKey>,
    rs: Option<PublicKey>,
    /// Index of the next message pattern (0, 1, 2); 3 means finished.
    step: u8,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("role", &self.role)
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl Handshake {
    /// Starts a handshake. `ephemeral` comes from the caller so the state machine holds no RNG
    /// (and the published test vectors can fix it).
    pub fn new(role: Role, local_static: &Keypair, ephemeral: Keypair, prologue: &[u8]) -> Self {
        let mut sym = SymmetricState::initialize(PROTOCOL_NAME);
        sym.mix_hash(prologue);
        Self { role, sym, s: local_static.clone(), e: ephemeral, re: None, rs: None, step: 0 }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn is_finished(&self) -> bool {
        self.step >= 3
    }

    /// True when the next handshake message is ours to write.
    pub fn is_my_turn(&self) -> bool {
        !self.is_finished() && (self.step.is_multiple_of(2) == (self.role == Role::Initiator))
    }

    /// The peer's static key, known to an initiator after message 2 and a responder after 3.
    pub fn remote_static(&self) -> Option<&PublicKey> {
        self.rs.as_ref()
    }

    pub fn handshake_hash(&self) -> [u8; HASH_LEN] {
        self.sym.handshake_hash()
    }

    pub fn write_message(&mut self, payload: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if !self.is_my_turn() {
            return Err(NoiseError::OutOfTurn);
        }
        let mut out = Vec::with_capacity(2 * DH_LEN + 2 * TAG_LEN + payload.len());
        match self.step {
            0 => {
                self.write_e(&mut out);
            }
            1 => {
                self.write_e(&mut out);
                let re = self.require_re()?;
                mix_dh(&mut self.sym, &self.e, &re)?;
                self.write_s(&mut out)?;
                mix_dh(&mut self.sym, &self.s, &re)?;
            }
            _ => {
                self.write_s(&mut out)?;
                let re = self.require_re()?;
                mix_dh(&mut self.sym, &self.s, &re)?;
            }
        }
        out.extend_from_slice(&self.sym.encrypt_and_hash(payload)?);
        if out.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::TooLong);
        }
        self.step += 1;
        Ok(out)
    }

    pub fn read_message(&mut self, message: &[u8]) -> Result<Vec<u8>, NoiseError> {
        if self.is_finished() || self.is_my_turn() {
            return Err(NoiseError::OutOfTurn);
        }
        if message.len() > MAX_MESSAGE_LEN {
            return Err(NoiseError::TooLong);
        }
        let mut rest = message;
        match self.step {
            0 => {
                self.read_e(&mut rest)?;
            }
            1 => {
                self.read_e(&mut rest)?;
                let re = self.require_re()?;
                mix_dh(&mut self.sym, &self.e, &re)?;
                let rs = self.read_s(&mut rest)?;
                mix_dh(&mut self.sym, &self.e, &rs)?;
            }
            _ => {
                let rs = self.read_s(&mut rest)?;
                mix_dh(&mut self.sym, &self.e, &rs)?;
            }
        }
        let payload = self.sym.decrypt_and_hash(rest)?;
        self.step += 1;
        Ok(payload)
    }

    /// Finishes the handshake: `Split()` into one key per direction.
    pub fn into_transport(self) -> Result<Transport, NoiseError> {
        if !self.is_finished() {
            return Err(NoiseError::NotFinished);
        }
        let remote = self.rs.ok_or(NoiseError::NotFinished)?;
        let h = self.sym.handshake_hash();
        let (i2r, r2i) = self.sym.split();
        let (send, recv) = match self.role {
            Role::Initiator => (i2r, r2i),
            Role::Responder => (r2i, i2r),
        };
        Ok(Transport::new(send, recv, h, remote))
    }

    fn write_e(&mut self, out: &mut Vec<u8>) {
        let e_pub = *self.e.public.as_bytes();
        out.extend_from_slice(&e_pub);
        self.sym.mix_hash(&e_pub);
    }

    fn write_s(&mut self, out: &mut Vec<u8>) -> Result<(), NoiseError> {
        let s_pub = *self.s.public.as_bytes();
        out.extend_from_slice(&self.sym.encrypt_and_hash(&s_pub)?);
        Ok(())
    }

    fn read_e(&mut self, rest: &mut &[u8]) -> Result<(), NoiseError> {
        let bytes = take(rest, DH_LEN)?;
        let mut key = [0u8; DH_LEN];
        key.copy_from_slice(bytes);
        self.sym.mix_hash(&key);
        self.re = Some(PublicKey::from(key));
        Ok(())
    }

    fn read_s(&mut self, rest: &mut &[u8]) -> Result<PublicKey, NoiseError> {
        let len = if self.sym.has_key() { DH_LEN + TAG_LEN } else { DH_LEN };
        let bytes = take(rest, len)?;
        let plain = self.sym.decrypt_and_hash(bytes)?;
        let mut key = [0u8; DH_LEN];
        key.copy_from_slice(&plain);
        let rs = PublicKey::from(key);
        self.rs = Some(rs);
        Ok(rs)
    }

    fn require_re(&self) -> Result<PublicKey, NoiseError> {
        self.re.ok_or(NoiseError::OutOfTurn)
    }
}

/// `MixKey(DH(local, remote))`, refusing low-order points (an all-zero shared secret).
fn mix_dh(sym: &mut SymmetricState, local: &Keypair, remote: &PublicKey) -> Result<(), NoiseError> {
    let shared = local.secret.diffie_hellman(remote);
    if !shared.was_contributory() {
        return Err(NoiseError::WeakKey);
    }
    sym.mix_key(shared.as_bytes());
    Ok(())
}

fn take<'a>(rest: &mut &'a [u8], n: usize) -> Result<&'a [u8], NoiseError> {
    if rest.len() < n {
        return Err(NoiseError::Truncated);
    }
    let (head, tail) = rest.split_at(n);
    *rest = tail;
    Ok(head)
}
