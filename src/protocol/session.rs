//! One end-to-end Noise XX session with one peer, carried in `PeerPacket`s.
//!
//! The peer with the lower identity key initiates, so two peers who see each other at the same
//! moment do not both start. Each side's [`Intro`] goes only to a peer that has proved its key:
//! the initiator's in message 3 (the responder authenticated itself in message 2), the
//! responder's in a fourth message, step 3, the first of the transport phase (message 2 goes to
//! an initiator nobody has authenticated yet: a hub forging message 1 would read an intro
//! sent there, and with it how many messages two people exchanged, review D15). The initiator
//! sends nothing else before that intro arrives.
//!
//! A session is bound to the key the hub announced for the peer: if the authenticated static
//! key differs, the session is refused (a hub substituting keys is caught here, or by the
//! safety number if it went further).

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;

use super::identity::{IdentityKey, Sas};
use super::noise::{Handshake, Keypair, Role, Transport};
use super::wire::{self, Intro, PeerMsg, PeerPacket};

/// v2: the responder's intro moved from message 2 to step 3.
pub const PROLOGUE: &[u8] = b"kith peer session v2";
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
    /// We sent message 3 (our intro) and wait for the responder's intro; the transport is
    /// ready but carries nothing before it.
    AwaitingIntro(Box<Transport>),
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
    /// Our intro (step 3), to send when we are the responder.
    pub reply: Option<PeerPacket>,
}

/// Where a handshake message left the session.
#[derive(Debug, Clone)]
pub enum Progress {
    /// Send this (message 3, as initiator) and wait for the peer's intro.
    Reply(PeerPacket),
    /// The session is up.
    Established(Established),
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

    /// Answers message 1 with message 2, which carries nothing but our key: whoever sent
    /// message 1 has not proved who it is.
    pub fn respond(
        now: std::time::Instant,
        local: &Keypair,
        rng: &mut ChaCha20Rng,
        id: u64,
        msg1: &[u8],
    ) -> Result<(Self, PeerPacket), SessionError> {
        let mut hs = Handshake::new(Role::Responder, local, Keypair::generate(rng), PROLOGUE);
        hs.read_message(msg1)?;
        let noise = hs.write_message(&[])?;
        let session = Self { id, started: now, state: State::Responded(Box::new(hs)) };
        Ok((session, PeerPacket::Handshake { session: id, step: 1, noise }))
    }

    /// We started this handshake and it has not finished.
    pub fn is_initiator_waiting(&self) -> bool {
        matches!(self.state, State::Initiated(_) | State::AwaitingIntro(_))
    }

    /// A handshake step failed: the session will not come up.
    pub fn is_failed(&self) -> bool {
        matches!(self.state, State::Failed)
    }

    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Handles handshake message 2 or the responder's intro (as initiator), or message 3 (as
    /// responder).
    pub fn on_handshake(
        &mut self,
        id: u64,
        step: u8,
        noise: &[u8],
        expected: &IdentityKey,
        intro: &Intro,
    ) -> Result<Progress, SessionError> {
        if id != self.id {
            return Err(SessionError::StaleSession);
        }
        // Any failure below leaves the session `Failed`: a broken handshake is not resumed.
        match (std::mem::replace(&mut self.state, State::Failed), step) {
            (State::Initiated(mut hs), 1) => {
                // A newer responder may say something here; it is not ours to read yet.
                hs.read_message(noise)?;
                check_key(&hs, expected)?;
                let noise = hs.write_message(&wire::encode(intro))?;
                self.state = State::AwaitingIntro(Box::new(hs.into_transport()?));
                Ok(Progress::Reply(PeerPacket::Handshake { session: id, step: 2, noise }))
            }
            (State::Responded(mut hs), 2) => {
                let payload = hs.read_message(noise)?;
                check_key(&hs, expected)?;
                // A newer peer may append fields to its intro; what this version knows comes first.
                let their_intro = Intro::decode(&payload)?;
                let mut transport = hs.into_transport()?;
                let noise = transport.encrypt(&wire::encode(intro))?;
                let sas = Sas::from_handshake_hash(transport.handshake_hash());
                self.state = State::Established(Box::new(transport));
                let reply = Some(PeerPacket::Handshake { session: id, step: 3, noise });
                Ok(Progress::Established(Established { intro: their_intro, sas, reply }))
            }
            (State::AwaitingIntro(mut transport), 3) => {
                // Anyone on the path can send garbage as step 3: it does not end the wait.
                let plain = match transport.decrypt(noise) {
                    Ok(plain) => plain,
                    Err(e) => {
                        self.state = State::AwaitingIntro(transport);
                        return Err(e.into());
                    }
                };
                let their_intro = Intro::decode(&plain)?;
                let sas = Sas::from_handshake_hash(transport.handshake_hash());
                self.state = State::Established(transport);
                Ok(Progress::Established(Established { intro: their_intro, sas, reply: None }))
            }
            (other, step) => {
                self.state = other;
                Err(SessionError::UnexpectedStep(step))
            }
        }
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

/// The peer's static key, now authenticated, must be the one the hub announced.
fn check_key(hs: &Handshake, expected: &IdentityKey) -> Result<(), SessionError> {
    let actual = hs.remote_static().map(IdentityKey::from);
    if actual == Some(*expected) {
        return Ok(());
    }
    Err(SessionError::KeyMismatch { expected: *expected, actual: actual.unwrap_or(IdentityKey([0; 32])) })
}

#[cfg(test)]
mod tests {
    use rand_core::SeedableRng;

    use super::*;
    use crate::protocol::wire::caps;

    fn intro(name: &str) -> Intro {
        Intro { name: name.into(), stream: 7, first_unacked: 42, caps: caps::ALL, open_link: None }
    }

    fn noise(p: &PeerPacket) -> (u64, u8, Vec<u8>) {
        match p {
            PeerPacket::Handshake { session, step, noise } => (*session, *step, noise.clone()),
            other => panic!("not a handshake message: {other:?}"),
        }
    }

    #[test]
    fn each_intro_goes_only_to_an_authenticated_peer_and_the_initiator_waits_for_its_own() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let now = std::time::Instant::now();
        let (a, b) = (Keypair::generate(&mut rng), Keypair::generate(&mut rng));
        let (ka, kb) = (IdentityKey::from(&a.public), IdentityKey::from(&b.public));
        let (mut ini, m1) = PeerSession::initiate(now, &a, &mut rng).unwrap();
        let (id, _, m1) = noise(&m1);
        let (mut res, m2) = PeerSession::respond(now, &b, &mut rng, id, &m1).unwrap();
        let (_, step, m2) = noise(&m2);
        let Progress::Reply(m3) = ini.on_handshake(id, step, &m2, &kb, &intro("alice")).unwrap() else {
            panic!("the initiator answers message 2")
        };
        // Keys are ready, but nothing goes before the responder's intro.
        assert!(!ini.is_established() && ini.is_initiator_waiting());
        assert!(ini.seal(&PeerMsg::Left { room: "r".into() }).is_err());
        let (_, step, m3) = noise(&m3);
        let Progress::Established(at_b) = res.on_handshake(id, step, &m3, &ka, &intro("bob")).unwrap() else {
            panic!("message 3 establishes the responder")
        };
        assert_eq!(at_b.intro, intro("alice"));
        let (_, step, m4) = noise(at_b.reply.as_ref().unwrap());
        assert_eq!(step, 3);
        // Garbage in place of the intro does not end the wait.
        let mut garbled = m4.clone();
        garbled[12] ^= 1;
        assert!(ini.on_handshake(id, 3, &garbled, &kb, &intro("alice")).is_err());
        assert!(!ini.is_failed());
        let Progress::Established(at_a) = ini.on_handshake(id, 3, &m4, &kb, &intro("alice")).unwrap() else {
            panic!("the intro establishes the initiator")
        };
        assert_eq!(at_a.intro, intro("bob"));
        assert_eq!(at_a.sas, at_b.sas);
        assert!(at_a.reply.is_none());
        // Both directions carry messages now.
        let p = ini.seal(&PeerMsg::Left { room: "r".into() }).unwrap();
        let PeerPacket::Data { noise, .. } = p else { unreachable!() };
        assert_eq!(res.open(id, &noise).unwrap(), PeerMsg::Left { room: "r".into() });
    }

    #[test]
    fn an_initiator_holding_another_key_is_refused_before_the_responder_says_anything() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let now = std::time::Instant::now();
        let (a, b, hub) =
            (Keypair::generate(&mut rng), Keypair::generate(&mut rng), Keypair::generate(&mut rng));
        let (ka, kb) = (IdentityKey::from(&a.public), IdentityKey::from(&b.public));
        let (mut forged, m1) = PeerSession::initiate(now, &hub, &mut rng).unwrap();
        let (id, _, m1) = noise(&m1);
        let (mut res, m2) = PeerSession::respond(now, &b, &mut rng, id, &m1).unwrap();
        let (_, _, m2) = noise(&m2);
        let Progress::Reply(m3) = forged.on_handshake(id, 1, &m2, &kb, &intro("mallory")).unwrap() else {
            panic!()
        };
        let (_, _, m3) = noise(&m3);
        // Bob expected alice's key: refused, and he never wrote an intro.
        let err = res.on_handshake(id, 2, &m3, &ka, &intro("bob")).unwrap_err();
        assert!(matches!(err, SessionError::KeyMismatch { .. }), "{err:?}");
        assert!(res.is_failed());
    }
}
