//! One end-to-end Noise XX session with one peer, carried in `PeerPacket`s.
//!
//! The peer with the lower identity key initiates, so two peers who see each other at the same
//! moment do not both start. Handshake messages 2 and 3 carry each side's [`Intro`] (encrypted:
//! in XX both payloads are). A session is bound to the key the hub announced for the peer: if
//! the authenticated static key differs, the session is refused (a hub substituting keys is
//! caught here, or by the safety number if it went further).

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::identity::{IdentityKey, Sas};
use super::noise::{Handshake, Keypair, Role, Transport};
use super::wire::{self, Intro, PeerMsg, PeerPacket};

pub const PROLOGUE: &[u8] = b"kith peer session v1";
/// A handshake not finished in this time is abandoned (and retried by the initiator).
pub const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SessionError {
    #[error("noise: {0}")]
    Noise(#[from] super::noise::NoiseError),
    #[error("wire: {0}")]
    Wire(#[from] super::wire::WireError),
    #[error("peer authenticated as {actual:?}, but the hub announced {expected:?}")]
    KeyMismatch { expected: IdentityKey, actual: IdentityKey },
    #[error("message for another session")]
    StaleSession,
    #[error("unexpected handshake step {0}")]
    UnexpectedStep(u8),
    /// The packet was authentic but its message is of a kind (or shape) this version does not
    /// know: a newer peer's. Ignored, never fatal to the session.
    #[error("unknown message from the peer: {0}")]
    Unknown(super::wire::WireError),
}

enum State {
    /// We sent message 1 and wait for 2.
    Initiated(Box<Handshake>),
    /// We answered with message 2 and wait for 3.
    Responded(Box<Handshake>),
    Established(Box<Transport>),
    /// A handshake failed; the session is dead and will be replaced.
    Failed,
}

pub struct PeerSession {
    pub id: u64,
    pub started: std::time::Instant,
    state: State,
}

/// What the peer told us when the session came up.
#[derive(Debug, Clone)]
pub struct Established {
    pub intro: Intro,
    pub sas: Sas,
    /// Message 3, to send when we are the initiator.
    pub reply: Option<PeerPacket>,
}

impl PeerSession {
    pub fn initiate(
        now: std::time::Instant,
        local: &Keypair,
        rng: &mut ChaCha20Rng,
    ) -> Result<(Self, PeerPacket), SessionError> {
        let id = rng.next_u64();
        let mut hs = Handshake::new(Role::Initiator, local, Keypair::generate(rng), PROLOGUE);
        let noise = hs.write_message(&[])?;
        let session = Self { id, started: now, state: State::Initiated(Box::new(hs)) };
        Ok((session, PeerPacket::Handshake { session: id, step: 0, noise }))
    }

    /// Answers message 1 with message 2 carrying our intro.
    pub fn respond(
        now: std::time::Instant,
        local: &Keypair,
        rng: &mut ChaCha20Rng,
        id: u64,
        msg1: &[u8],
        intro: &Intro,
    ) -> Result<(Self, PeerPacket), SessionError> {
        let mut hs = Handshake::new(Role::Responder, local, Keypair::generate(rng), PROLOGUE);
        hs.read_message(msg1)?;
        let noise = hs.write_message(&wire::encode(intro))?;
        let session = Self { id, started: now, state: State::Responded(Box::new(hs)) };
        Ok((session, PeerPacket::Handshake { session: id, step: 1, noise }))
    }

    /// We sent handshake message 1 and wait for the answer.
    pub fn is_initiator_waiting(&self) -> bool {
        matches!(self.state, State::Initiated(_))
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Handles handshake message 2 (as initiator) or 3 (as responder).
    pub fn on_handshake(
        &mut self,
        id: u64,
        step: u8,
        noise: &[u8],
        expected: &IdentityKey,
        intro: &Intro,
    ) -> Result<Established, SessionError> {
        if id != self.id {
            return Err(SessionError::StaleSession);
        }
        // Any failure below leaves the session `Failed`: a broken handshake is not resumed.
        let state = std::mem::replace(&mut self.state, State::Failed);
        let (hs, reply_step) = match (state, step) {
            (State::Initiated(hs), 1) => (hs, Some(2)),
            (State::Responded(hs), 2) => (hs, None),
            (other, step) => {
                self.state = other;
                return Err(SessionError::UnexpectedStep(step));
            }
        };
        let mut hs = hs;
        let payload = hs.read_message(noise)?;
        let actual = hs.remote_static().map(IdentityKey::from);
        if actual != Some(*expected) {
            return Err(SessionError::KeyMismatch {
                expected: *expected,
                actual: actual.unwrap_or(IdentityKey([0; 32])),
            });
        }
        // A newer peer may append fields to its intro; what this version knows comes first.
        let their_intro = Intro::decode(&payload)?;
        let reply = match reply_step {
            Some(step) => {
                let noise = hs.write_message(&wire::encode(intro))?;
                Some(PeerPacket::Handshake { session: id, step, noise })
            }
            None => None,
        };
        let transport = hs.into_transport()?;
        let sas = Sas::from_handshake_hash(transport.handshake_hash());
        self.state = State::Established(Box::new(transport));
        Ok(Established { intro: their_intro, sas, reply })
    }

    pub fn seal(&mut self, msg: &PeerMsg) -> Result<PeerPacket, SessionError> {
        let State::Established(t) = &mut self.state else {
            return Err(SessionError::UnexpectedStep(3));
        };
        let noise = t.encrypt(&wire::encode(msg))?;
        Ok(PeerPacket::Data { session: self.id, noise })
    }

    pub fn open(&mut self, id: u64, noise: &[u8]) -> Result<PeerMsg, SessionError> {
        if id != self.id {
            return Err(SessionError::StaleSession);
        }
        let State::Established(t) = &mut self.state else {
            return Err(SessionError::UnexpectedStep(3));
        };
        let plain = t.decrypt(noise)?;
        wire::decode(&plain).map_err(SessionError::Unknown)
    }

    /// Seals bytes that need not be a valid [`PeerMsg`]: for tests that play a newer peer.
    #[doc(hidden)]
    pub fn seal_raw(&mut self, plaintext: &[u8]) -> Result<PeerPacket, SessionError> {
        let State::Established(t) = &mut self.state else {
            return Err(SessionError::UnexpectedStep(3));
        };
        let noise = t.encrypt(plaintext)?;
        Ok(PeerPacket::Data { session: self.id, noise })
    }
}
