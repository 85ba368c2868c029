//! The core's vocabulary with its front-ends: commands in, events out.
//!
//! Both serialize to the JSON lines that `kith headless` speaks, so the scripting face and the
//! GUI see exactly the same things.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientCommand {
    Send {
        room: String,
        text: String,
        #[serde(default)]
        expires_in_s: Option<u64>,
        /// The front-end's own label for this send, echoed in its `sent` or `error` event so a
        /// reply is matched to its request without relying on order.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    Verify {
        peer: String,
        #[serde(default = "yes")]
        verified: bool,
    },
    /// Accept a peer's new identity after an `identity_changed` warning.
    AcknowledgeChange {
        peer: String,
    },
    Peers,
    /// Offer a file to a peer (fingerprint or unique name); it goes over the direct link.
    SendFile {
        peer: String,
        path: String,
    },
    /// Accept an offered file (saved in the downloads folder).
    AcceptFile {
        id: String,
    },
    DeclineFile {
        id: String,
    },
    /// Stop a transfer in either direction.
    CancelFile {
        id: String,
    },
    Join {
        room: String,
    },
    Leave {
        room: String,
    },
    /// Start a call in `room`, or join the one running there.
    Call {
        room: String,
    },
    /// Leave the call we are in.
    Hangup,
    /// Stop `room`'s call ringing (its members are told).
    DeclineCall {
        room: String,
    },
    /// List the sound system's microphones and speakers (answered with `devices`).
    Devices,
    /// Switch the microphone's processing (each on by default; synthetic microphones skip it).
    AudioProcessing {
        echo_cancel: bool,
        noise_suppression: bool,
        auto_gain: bool,
    },
    /// Use these devices from now on (the running call switches to them): the names `--mic`
    /// and `--speaker` take; `None` leaves one as it is.
    UseDevices {
        #[serde(default)]
        mic: Option<String>,
        #[serde(default)]
        speaker: Option<String>,
    },
    /// Open the microphone outside a call so Settings' level meter moves (nothing is sent or
    /// played); `false` closes it again. In a call the call's microphone is measured.
    MicTest {
        on: bool,
    },
    /// Stop (or start again) sending our microphone to the call.
    Mute {
        on: bool,
    },
    /// Stop (or start again) playing the call on our speaker.
    Deafen {
        on: bool,
    },
    /// Turn our camera on or off (for this call and the next); answered with `camera`.
    Camera {
        on: bool,
    },
    /// Which camera calls use: `test-pattern`, `default`, `none` or a device's name, and
    /// optionally its size (`WxH`) and frame rate; a call under way switches at once.
    /// Answered with `camera`.
    UseCamera {
        camera: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fps: Option<u32>,
    },
    /// How loud `peer` plays in our call: 0–200 (% of as sent).
    Volume {
        peer: String,
        percent: u32,
    },
    Quit,
}

fn yes() -> bool {
    true
}

/// One peer's video in a call: counters since the call began, the rest over the last second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VideoStats {
    pub width: u32,
    pub height: u32,
    /// Pictures decoded in the last second.
    pub fps: u32,
    pub frames_decoded: u64,
    pub keyframes: u64,
    /// Frames not shown: lost ones' successors until a keyframe came.
    pub frames_dropped: u64,
    /// Keyframes we asked the peer for (PLI).
    pub keyframe_requests: u64,
    /// What the peer's video takes on the link.
    pub kbps: u32,
    /// Capture to decoded, from the test pattern's pixels (the median of the last second).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
    /// The newest frame number read from the test pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<u32>,
}

/// One peer's audio in a call: counters since the call began, the rest over the last second.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AudioStats {
    /// Packets that arrived.
    pub packets: u64,
    /// Frames missing when their turn to play came.
    pub lost: u64,
    /// Of those, rebuilt from the next packet's forward error correction.
    pub recovered_fec: u64,
    /// Audio the decoder made up for the rest.
    pub concealed_ms: u64,
    /// Packets that came after their turn.
    pub late: u64,
    /// Audio waiting to be played now, and what the jitter buffer aims for.
    pub jitter_buffer_ms: u32,
    pub target_ms: u32,
    /// Loudness of what was played from this peer (dBFS, -100 for silence).
    pub level_db: i32,
    /// The dominant frequency of what was decoded (a tone's pitch), if it has one.
    pub freq_hz: Option<u32>,
}

/// The path traffic with one peer takes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// A WebRTC link straight between the two machines.
    Direct,
    /// A WebRTC link through a TURN server (which sees only DTLS ciphertext).
    Relay,
    /// No direct link: sealed packets go through the hub.
    #[default]
    Hub,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Relay => "relay",
            Self::Hub => "hub",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerSummary {
    pub peer: String,
    pub name: String,
    pub rooms: Vec<String>,
    pub secure: bool,
    pub verified: bool,
    pub safety_number: String,
    pub pending: usize,
    /// This key replaced another under the same name and the user has not acknowledged it.
    #[serde(default)]
    pub identity_changed: bool,
    #[serde(default)]
    pub link: LinkKind,
    /// Round trip on the direct or relayed link, when measured.
    #[serde(default)]
    pub rtt_ms: Option<u64>,
    /// What the peer's version announced it can do.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// Packets from or for this peer that did not open (forged, replayed or reflected by
    /// someone on the path, or left over from a replaced session): dropped, never fatal.
    #[serde(default)]
    pub dropped_packets: u64,
    /// Authentic messages of kinds this version does not know (a newer peer's): ignored.
    #[serde(default)]
    pub ignored_messages: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ClientEvent {
    /// Authenticated to the hub (first time only; later `reconnected`).
    Ready {
        name: String,
        fingerprint: String,
        hub: String,
    },
    Reconnected {
        hub: String,
    },
    /// This process hosts the hub (`--host`): where friends connect and the key they will pin.
    Hosting {
        addr: String,
        hub_fingerprint: String,
        /// This machine's LAN addresses with the hub's port.
        #[serde(default)]
        lan: Vec<String>,
    },
    /// A STUN server saw our traffic come from this public IP; with the hub's port forwarded
    /// on the router, friends outside the LAN connect there.
    /// We host: the invitation friends join with (`kith://` link, and the same as text). It
    /// carries the hub's addresses and key and our identity key, not the password.
    Invite {
        link: String,
        text: String,
    },
    PublicAddress {
        addr: String,
        via: String,
    },
    Disconnected {
        reason: String,
    },
    /// The room's call changed state (`ringing`, `running`, `joined`, `left`, `ended`);
    /// `members` are the fingerprints of the others in it.
    Call {
        room: String,
        state: String,
        members: Vec<String>,
    },
    /// The sound system's devices: each `[name, description]`, `name` being what `--mic` and
    /// `--speaker` take.
    Devices {
        host: String,
        inputs: Vec<[String; 2]>,
        outputs: Vec<[String; 2]>,
        default_input: Option<String>,
        default_output: Option<String>,
        /// The system's cameras, each `[name, description]`, `name` being what `--camera`
        /// takes (none: no webcam, or the system would not list them).
        #[serde(default)]
        cameras: Vec<[String; 2]>,
    },
    /// Once a second per peer in our call: how its audio reaches us.
    MediaStats {
        peer: String,
        rtt_ms: Option<u64>,
        audio: AudioStats,
        /// While the peer sends video.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        video: Option<VideoStats>,
    },
    /// Whether our camera sends (`on`), and whether one is chosen (`available`).
    Camera {
        on: bool,
        available: bool,
    },
    /// What a member of `room`'s call sends changed: its camera is on, its microphone muted.
    CallMedia {
        room: String,
        peer: String,
        camera: bool,
        muted: bool,
    },
    /// Someone `joined`, `left` or `declined` the call we are in.
    CallMember {
        room: String,
        peer: String,
        state: String,
        /// For a member who joined: `open` if a direct (or relayed) link carries the call to
        /// them, `hub_only` if none works yet, so they hear nothing of us and we nothing of
        /// them (a call never goes through the hub) until one does.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<String>,
    },
    Joined {
        room: String,
    },
    PeerJoined {
        room: String,
        peer: String,
        name: String,
    },
    PeerLeft {
        room: String,
        peer: String,
        name: String,
    },
    PeerSecure {
        peer: String,
        name: String,
        safety_number: String,
        sas: String,
        sas_words: String,
        sas_digits: String,
        verified: bool,
        /// Sending to this peer is refused until the change is acknowledged.
        #[serde(default)]
        identity_changed: bool,
    },
    Message {
        id: String,
        room: String,
        from: String,
        name: String,
        text: String,
        sent_at: u64,
        expires_at: Option<u64>,
        /// The sender's key took a name (or a look-alike of one) that belonged to another key,
        /// and the user has not accepted it: these are not the friend's words until they do.
        #[serde(default)]
        unconfirmed: bool,
    },
    Sent {
        id: String,
        room: String,
        recipients: usize,
        sent_at: u64,
        expires_at: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
    Delivered {
        id: String,
        to: String,
    },
    Expired {
        id: String,
    },
    IdentityChanged {
        name: String,
        old: String,
        new: String,
    },
    Verified {
        peer: String,
        verified: bool,
    },
    /// The user accepted a peer's new identity; sending to it is allowed again.
    ChangeAcknowledged {
        peer: String,
    },
    Peers {
        peers: Vec<PeerSummary>,
    },
    /// `send_file` started transfer `id`: the file is read and hashed, then offered.
    FileSending {
        id: String,
        to: String,
        name: String,
        size: u64,
        path: String,
    },
    /// Transfer `id` is hashed and offered; it waits for the peer to accept.
    FileOffered {
        id: String,
    },
    /// A peer offers a file; accept it with `accept_file`.
    FileOffer {
        id: String,
        from: String,
        name: String,
        size: u64,
    },
    /// Bytes of a transfer (either direction) so far.
    FileProgress {
        id: String,
        bytes: u64,
        total: u64,
    },
    /// A file arrived whole, its SHA-256 matched, and it was moved to `path`.
    FileReceived {
        id: String,
        from: String,
        path: String,
        size: u64,
        sha256: String,
    },
    /// The peer has the whole file we sent (and checked its hash).
    FileSent {
        id: String,
        to: String,
    },
    FileFailed {
        id: String,
        reason: String,
    },
    /// How traffic with `peer` travels now; sent on every change of `kind`.
    Link {
        peer: String,
        kind: LinkKind,
        /// Round trip on the direct or relayed path, when measured.
        rtt_ms: Option<u64>,
    },
    Error {
        code: String,
        message: String,
        #[serde(skip_serializing_if = "std::ops::Not::not", default)]
        fatal: bool,
        /// The `tag` of the `send` this error answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tag: Option<String>,
    },
}

impl ClientEvent {
    pub fn error(code: &str, message: impl Into<String>) -> Self {
        ClientEvent::Error { code: code.into(), message: message.into(), fatal: false, tag: None }
    }

    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        ClientEvent::Error { code: code.into(), message: message.into(), fatal: true, tag: None }
    }
}
