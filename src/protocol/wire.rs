//! Everything that crosses the network, as versioned serde enums in postcard.
//!
//! Layering on the hub link (TCP):
//! ```text
//! frame (u32 length, ≤ MAX_FRAME) ─ Noise XX client↔hub ─ ClientToHub / HubToClient
//!                                                           └ Relay payload: PeerPacket
//!                                                               └ Noise XX peer↔peer ─ PeerMsg
//! ```
//! The hub sees `PeerPacket` headers (which session, which handshake step) but every
//! `PeerMsg` is encrypted end to end.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::identity::IdentityKey;
use super::noise::MAX_MESSAGE_LEN;

/// Version byte in front of every encoded message. A peer speaking another version gets a
/// clear error, not a misparse.
pub const WIRE_VERSION: u8 = 1;
/// Largest frame on the hub link: one Noise message.
pub const MAX_FRAME: usize = MAX_MESSAGE_LEN;
/// Largest chat text in bytes (UTF-8). Leaves room for two layers of Noise and headers.
pub const MAX_TEXT: usize = 16 * 1024;
pub const MAX_NAME: usize = 64;
pub const MAX_ROOM: usize = 64;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("empty message")]
    Empty,
    #[error("unsupported wire version {0} (this build speaks {WIRE_VERSION})")]
    Version(u8),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("message too large ({0} bytes)")]
    TooLarge(usize),
}

/// A display name as shown to users: trimmed, 1 to `MAX_NAME` bytes, no control characters.
pub fn sanitize_name(name: &str) -> Option<String> {
    let name = name.trim();
    let ok = !name.is_empty() && name.len() <= MAX_NAME && !name.chars().any(char::is_control);
    ok.then(|| name.to_string())
}

pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    encode_with_capacity(msg, 64)
}

/// Encodes into one buffer of `capacity` bytes, written in place: when it is large enough the
/// bytes (a password, say) never sit in a second, unwiped allocation.
pub fn encode_with_capacity<T: Serialize>(msg: &T, capacity: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(capacity);
    out.push(WIRE_VERSION);
    // postcard only fails on writer errors, and a Vec never fails to grow; an empty result
    // would be refused by every decoder rather than misread.
    postcard::to_extend(msg, out).unwrap_or_default()
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    if bytes.len() > MAX_FRAME {
        return Err(WireError::TooLarge(bytes.len()));
    }
    // postcard checks every length against the remaining input before allocating.
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

/// Payload of the client's first handshake message (sent in clear: only the version).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientHello {
    pub app: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientToHub {
    /// Must be the first message after the handshake.
    Auth {
        password: String,
        name: String,
    },
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    Relay {
        to: IdentityKey,
        payload: Vec<u8>,
    },
    Ping {
        nonce: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    pub key: IdentityKey,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuthFailure {
    WrongPassword,
    RateLimited,
    BadName,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum HubToClient {
    AuthOk { hub_name: String, rooms: Vec<String> },
    AuthFailed { reason: AuthFailure },
    Joined { room: String, members: Vec<MemberInfo> },
    MemberJoined { room: String, member: MemberInfo },
    MemberLeft { room: String, key: IdentityKey },
    Relayed { from: IdentityKey, payload: Vec<u8> },
    Error { code: String, message: String },
    Pong { nonce: u64 },
}

/// What one client relays to another through the hub (or, later, a data channel).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerPacket {
    /// Noise handshake message `step` (0, 1, 2) of session `session`.
    Handshake { session: u64, step: u8, noise: Vec<u8> },
    /// A Noise transport message of an established session.
    Data { session: u64, noise: Vec<u8> },
    /// "I hold no such session": the sender of `Data` should handshake again. Unauthenticated,
    /// which gives nobody new power: only the hub or the peer can send it, and either could
    /// simply drop traffic instead.
    Reset { session: u64 },
}

/// A message id, random per message, the same for every recipient of a room message.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MessageId(pub [u8; 16]);

impl std::fmt::Display for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl std::fmt::Debug for MessageId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MessageId({self})")
    }
}

impl MessageId {
    pub fn parse(s: &str) -> Option<Self> {
        let bytes: [u8; 16] = hex::decode(s).ok()?.try_into().ok()?;
        Some(Self(bytes))
    }
}

/// Introduces a sender's outgoing stream; carried in handshake messages 2 and 3.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intro {
    pub name: String,
    /// Random per process: a new stream means the sender lost its state.
    pub stream: u64,
    /// The lowest sequence number the sender still holds (unacknowledged).
    pub first_unacked: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub id: MessageId,
    pub seq: u64,
    pub room: String,
    pub text: String,
    pub sent_at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

/// Plaintext inside a peer session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    Chat(ChatMessage),
    /// Stands in for a message whose text expired before it was delivered, so the sequence
    /// has no hole.
    Skip {
        seq: u64,
        id: MessageId,
    },
    /// Everything below `next` of stream `stream` has been delivered.
    Ack {
        stream: u64,
        next: u64,
    },
    /// Signalling for the direct WebRTC link. Unsequenced: a lost signal is recovered by the
    /// link's own timeout and a fresh offer, never by replaying an old one.
    Link(LinkSignal),
    /// File transfer control (the bytes themselves go on the link's file channel).
    File(FileSignal),
}

/// Largest file name accepted in an offer (bytes).
pub const MAX_FILE_NAME: usize = 255;

/// Offers and answers for a file transfer, inside the Noise session: the name, size and
/// SHA-256 the receiver checks the bytes against are authenticated by it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileSignal {
    Offer {
        id: u64,
        name: String,
        size: u64,
        sha256: [u8; 32],
    },
    /// Send from `offset` on (0, or what already arrived before a link dropped).
    Accept {
        id: u64,
        offset: u64,
    },
    Decline {
        id: u64,
        reason: String,
    },
    /// Either side stops the transfer.
    Cancel {
        id: u64,
    },
    /// Every byte arrived and matched the hash.
    Complete {
        id: u64,
    },
}

/// Largest SDP or candidate line accepted in a [`LinkSignal`].
pub const MAX_SDP: usize = 16 * 1024;

/// WebRTC signalling carried inside the Noise session, so the DTLS fingerprints in the SDP are
/// authenticated end to end. `link` numbers the attempt: a signal for another attempt is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkSignal {
    Offer {
        link: u64,
        sdp: String,
    },
    Answer {
        link: u64,
        sdp: String,
    },
    /// A trickled ICE candidate (`candidate:` line of RFC 8839).
    Candidate {
        link: u64,
        candidate: String,
    },
    /// The sender gave this attempt up; the receiver drops it too.
    Close {
        link: u64,
    },
    /// From the answerer of an open link whose network changed or whose path stopped
    /// answering: the offerer should restart ICE (only the offerer does, so restarts never
    /// cross).
    Restart {
        link: u64,
    },
}

impl LinkSignal {
    pub fn link(&self) -> u64 {
        match self {
            Self::Offer { link, .. }
            | Self::Answer { link, .. }
            | Self::Candidate { link, .. }
            | Self::Close { link }
            | Self::Restart { link } => *link,
        }
    }

    /// Whether its text fits the limits (checked before anything parses it).
    pub fn within_limits(&self) -> bool {
        match self {
            Self::Offer { sdp, .. } | Self::Answer { sdp, .. } => sdp.len() <= MAX_SDP,
            Self::Candidate { candidate, .. } => candidate.len() <= 1024,
            Self::Close { .. } | Self::Restart { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_version_check() {
        let msg = ClientToHub::Join { room: "general".into() };
        let bytes = encode(&msg);
        assert_eq!(decode::<ClientToHub>(&bytes), Ok(msg));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(decode::<ClientToHub>(&wrong), Err(WireError::Version(9)));
        assert_eq!(decode::<ClientToHub>(&[]), Err(WireError::Empty));
        let mut trailing = bytes;
        trailing.push(0);
        assert!(matches!(decode::<ClientToHub>(&trailing), Err(WireError::Malformed(_))));
    }

    #[test]
    fn huge_length_prefix_does_not_allocate() {
        // Variant 3 (Relay), key, then a varint claiming a 2^63-byte payload.
        let mut bytes = vec![WIRE_VERSION, 3];
        bytes.extend_from_slice(&[0u8; 32]);
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
        assert!(decode::<ClientToHub>(&bytes).is_err());
    }
}
