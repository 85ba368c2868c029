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
///
/// 2: capabilities in the `Intro`, numbered offers and answers, `PeerMsg::Left`,
/// `FileSignal::Pause`, `LinkSignal::Media`. A version-1 peer gets a clear error rather than
/// handshakes that fail without a word.
/// 3: the responder's intro travels after handshake message 3, not in message 2 (peer
/// session prologue v2).
pub const WIRE_VERSION: u8 = 3;
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

pub use super::names::sanitize_name;

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

/// The message after the version byte, once version and size are checked.
fn body(bytes: &[u8]) -> Result<&[u8], WireError> {
    let (&version, body) = bytes.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    if bytes.len() > MAX_FRAME {
        return Err(WireError::TooLarge(bytes.len()));
    }
    Ok(body)
}

pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    // postcard checks every length against the remaining input before allocating.
    let (msg, rest) =
        postcard::take_from_bytes(body(bytes)?).map_err(|e| WireError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(WireError::Malformed(format!("{} trailing bytes", rest.len())));
    }
    Ok(msg)
}

/// Decodes a message that a newer peer may have extended by appending fields: what follows
/// the fields this version knows is ignored. Only for structs whose every later field is an
/// optional extension (today the [`Intro`]); enums stay strict and unknown kinds are handled
/// by the caller.
pub fn decode_extensible<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    let (msg, _extensions) =
        postcard::take_from_bytes(body(bytes)?).map_err(|e| WireError::Malformed(e.to_string()))?;
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

/// Introduces a sender's outgoing stream: the initiator's in handshake message 3, the
/// responder's in the step after it (see `session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Intro {
    pub name: String,
    /// Random per process: a new stream means the sender lost its state.
    pub stream: u64,
    /// The lowest sequence number the sender still holds (unacknowledged).
    pub first_unacked: u64,
    /// What the sender's version can do ([`caps`]). A message kind that needs a capability is
    /// sent only to peers that announced it; bits this version does not know are ignored.
    pub caps: u64,
    /// The direct link the sender holds open to us, by number. A new session keeps a link only
    /// if both sides hold the same one open; otherwise both make a new one (deciding alone,
    /// one side could keep waiting on a link the other already dropped). Appended: absent
    /// from the intros of peers that predate it.
    pub open_link: Option<u64>,
}

/// An [`Intro`] as sent before `open_link` was appended.
#[derive(Deserialize)]
struct IntroBeforeOpenLink {
    name: String,
    stream: u64,
    first_unacked: u64,
    caps: u64,
}

impl Intro {
    /// Reads the intro of a peer of any version that speaks this wire version: what a newer
    /// one appended is ignored, and what an older one did not send yet is absent.
    pub fn decode(bytes: &[u8]) -> Result<Self, WireError> {
        decode_extensible::<Intro>(bytes).or_else(|_| {
            let old: IntroBeforeOpenLink = decode_extensible(bytes)?;
            let IntroBeforeOpenLink { name, stream, first_unacked, caps } = old;
            Ok(Intro { name, stream, first_unacked, caps, open_link: None })
        })
    }
}

/// Capability bits announced in the [`Intro`]. Each names a behaviour a peer may rely on
/// from the other side; a new message kind comes with a new bit, so an older peer is never
/// sent what it cannot read (and if it is, it ignores it: see [`PeerMsg`]).
pub mod caps {
    /// Link signalling (SDP, candidates, restarts) and session re-handshakes are accepted on
    /// the link's chat data channel, not only through the hub.
    pub const SIGNALS_ON_LINK: u64 = 1 << 0;
    /// The session outlives the sender's hub connection while the direct link is open; the
    /// sender closes the link with a `Close` signal when it really ends it.
    pub const LINK_OUTLIVES_HUB: u64 = 1 << 1;
    /// Room calls: `PeerMsg::Call`.
    pub const CALLS: u64 = 1 << 2;
    /// Everything this build can do.
    pub const ALL: u64 = SIGNALS_ON_LINK | LINK_OUTLIVES_HUB | CALLS;

    /// The names of the bits in `caps` this version knows, for `peers` listings and logs.
    pub fn names(caps: u64) -> Vec<String> {
        let known = [
            (SIGNALS_ON_LINK, "signals-on-link"),
            (LINK_OUTLIVES_HUB, "link-outlives-hub"),
            (CALLS, "calls"),
        ];
        let mut out: Vec<String> =
            known.iter().filter(|(bit, _)| caps & bit != 0).map(|(_, n)| n.to_string()).collect();
        let unknown = caps & !ALL;
        if unknown != 0 {
            out.push(format!("unknown:{unknown:#x}"));
        }
        out
    }
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

/// Plaintext inside a peer session. A kind this version does not know (from a newer peer)
/// fails to decode after the session has authenticated it: it is ignored and counted, and the
/// session carries on. Kinds are only ever appended, so old ones keep their numbers.
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
    /// The sender left `room`. The hub says so too, but a member whose direct link outlives
    /// the hub's view of it (`caps::LINK_OUTLIVES_HUB`) is only taken out of a room on its
    /// own word or when the link closes.
    Left {
        room: String,
    },
    /// Call control (`caps::CALLS`): soft state, sent again until it is stale, so
    /// unsequenced like link signals.
    Call(super::call::CallSignal),
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
    /// From the receiver, whose disk is behind: stop sending until the next `Accept`, which
    /// says where to go on from.
    Pause {
        id: u64,
    },
}

/// Largest SDP or candidate line accepted in a [`LinkSignal`].
pub const MAX_SDP: usize = 16 * 1024;

/// WebRTC signalling carried inside the Noise session, so the DTLS fingerprints in the SDP are
/// authenticated end to end. `link` numbers the attempt: a signal for another attempt is stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkSignal {
    /// Only the link's offerer offers; `seq` numbers its offers on the link (0 first), so a
    /// copy of an old one is recognised.
    Offer { link: u64, seq: u64, sdp: String },
    /// The answer to offer `seq`.
    Answer { link: u64, seq: u64, sdp: String },
    /// A trickled ICE candidate (`candidate:` line of RFC 8839).
    Candidate { link: u64, candidate: String },
    /// The sender gave this attempt up; the receiver drops it too.
    Close { link: u64 },
    /// From the answerer of an open link whose network changed or whose path stopped
    /// answering: the offerer should restart ICE (only the offerer does, so restarts never
    /// cross).
    Restart { link: u64 },
    /// From the answerer: the media it wants the link to carry. The offerer puts the union of
    /// both sides' wishes in its next offer.
    Media { link: u64, want: MediaSet },
}

/// Which media sections a link carries (each sends and receives).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MediaSet {
    pub audio: bool,
    pub video: bool,
}

impl MediaSet {
    pub fn union(self, other: Self) -> Self {
        Self { audio: self.audio || other.audio, video: self.video || other.video }
    }
}

impl LinkSignal {
    pub fn link(&self) -> u64 {
        match self {
            Self::Offer { link, .. }
            | Self::Answer { link, .. }
            | Self::Candidate { link, .. }
            | Self::Close { link }
            | Self::Restart { link }
            | Self::Media { link, .. } => *link,
        }
    }

    /// Whether its text fits the limits (checked before anything parses it).
    pub fn within_limits(&self) -> bool {
        match self {
            Self::Offer { sdp, .. } | Self::Answer { sdp, .. } => sdp.len() <= MAX_SDP,
            Self::Candidate { candidate, .. } => candidate.len() <= 1024,
            Self::Close { .. } | Self::Restart { .. } | Self::Media { .. } => true,
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
    fn an_intro_a_newer_peer_extended_still_reads() {
        let intro = Intro {
            name: "alice".into(),
            stream: 7,
            first_unacked: 3,
            caps: caps::ALL | 1 << 40,
            open_link: Some(12),
        };
        let mut bytes = encode(&intro);
        // Fields a later version appended.
        bytes.extend_from_slice(&[9, 9, 9]);
        assert_eq!(Intro::decode(&bytes), Ok(intro.clone()));
        assert!(decode::<Intro>(&bytes).is_err(), "strict decoding refuses the extension");
        // One from before `open_link`: the same, with no link.
        #[derive(Serialize)]
        struct Older<'a>(&'a str, u64, u64, u64);
        let older = encode(&Older("alice", 7, 3, caps::ALL | 1 << 40));
        assert_eq!(Intro::decode(&older), Ok(Intro { open_link: None, ..intro }));
        assert_eq!(
            caps::names(caps::ALL | 1 << 40),
            ["signals-on-link", "link-outlives-hub", "calls", "unknown:0x10000000000"]
        );
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
