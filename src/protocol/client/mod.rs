//! The client core as a sans-IO state machine: the hub link, one Noise session per peer, chat
//! delivery and trust decisions. The net layer feeds it bytes and time; front-ends feed it
//! [`ClientCommand`]s and read [`ClientEvent`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use zeroize::{Zeroize, Zeroizing};

mod commands;
mod links;
mod peers;

use super::call::CallSignal;
use super::delivery::{Incoming, Outgoing};
use super::events::{ClientCommand, ClientEvent, LinkKind, PeerSummary};
use super::hub::PROLOGUE as HUB_PROLOGUE;
use super::identity::{Fingerprint, IdentityKey, Sas, safety_number};
use super::noise::{Handshake, Keypair, Role, Transport};
use super::session::{HANDSHAKE_TIMEOUT, PeerSession, Progress, SessionError};
pub use super::time::Now;
use super::trust::{KnownPeers, Sighting};
use super::wire::{
    self, AuthFailure, ChatMessage, ClientHello, ClientToHub, FileSignal, HubToClient, LinkSignal, MAX_ROOM,
    MAX_TEXT, MemberInfo, MessageId, PeerMsg, PeerPacket, sanitize_name,
};

/// The hub has this long to finish the handshake and answer the password.
pub const LINK_SETUP_TIMEOUT: Duration = Duration::from_secs(15);
/// Keep-alive towards the hub (its idle timeout is longer).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Unacknowledged messages on an established session are sent again after this long.
pub const RESEND_AFTER: Duration = Duration::from_secs(2);
/// Messages kept in memory; older ones leave the history (not the screen of a front-end that
/// copied them).
pub const MAX_STORED_MESSAGES: usize = 50_000;
/// Members of one room we keep (the hub's own limit), and peers in all.
pub const MAX_ROOM_MEMBERS: usize = super::hub::MAX_ROOM_MEMBERS;
pub const MAX_PEERS: usize = 1024;
/// Messages in flight to one peer before its acks must catch up.
const SEND_WINDOW: u64 = 256;
/// How many of the oldest unacknowledged messages one retransmission sends.
const RESEND_BATCH: usize = 256;
/// How long the higher key waits for the lower key to start a handshake before starting one.
const INITIATOR_GRACE: Duration = Duration::from_secs(2);
/// After a peer failed authentication, wait this long before trying again.
const MISMATCH_BACKOFF: Duration = Duration::from_secs(30);
/// After another failed handshake.
const RETRY_BACKOFF: Duration = Duration::from_secs(1);
/// A `Reset` for a working session starts a new handshake beside it at most this often: the
/// hub can forge Resets, and each one must not cost a handshake.
const REHANDSHAKE_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub name: String,
    pub password: Zeroizing<String>,
    pub rooms: Vec<String>,
    /// What the user typed to reach the hub; the key for pinning.
    pub hub_label: String,
    pub hub_pin: Option<IdentityKey>,
    pub accept_changed_hub_key: bool,
}

#[derive(Debug)]
pub enum ClientOutput {
    /// A frame for the hub link.
    ToHub(Vec<u8>),
    Event(ClientEvent),
    /// Persist the known-peers store.
    SaveKnownPeers(KnownPeers),
    /// Persist this hub key as pinned for `hub_label`.
    PinHub(IdentityKey),
    /// Close the hub link (the net layer reconnects unless the error was fatal).
    CloseHub {
        fatal: bool,
    },
    /// A session with `peer` is established: open a direct link to it. Exactly one side (the
    /// lower identity key) is the `offerer`.
    LinkWanted {
        peer: IdentityKey,
        offerer: bool,
    },
    /// The session with `peer` is gone: close its direct link.
    LinkDropped {
        peer: IdentityKey,
    },
    /// What is under way with `peer` (file transfers) may not finish, and why.
    PeerGone {
        peer: IdentityKey,
        gone: Gone,
    },
    /// A new session with the same process of `peer` as before it went out of sight.
    PeerBack {
        peer: IdentityKey,
    },
    /// Signalling that arrived from `peer` for its direct link; `direct` if it came on the
    /// link's own data channel (an answer goes back the way its offer came).
    LinkSignal {
        peer: IdentityKey,
        signal: LinkSignal,
        direct: bool,
    },
    /// Call control that arrived from `peer`, about a room both are in.
    CallSignal {
        peer: IdentityKey,
        signal: CallSignal,
    },
    /// File-transfer signalling that arrived from `peer`.
    FileSignal {
        peer: IdentityKey,
        signal: FileSignal,
    },
    /// A sealed packet for `peer`'s chat data channel. If it cannot be written, hand it back
    /// with [`Client::handle_direct_failed`].
    Direct {
        peer: IdentityKey,
        packet: Vec<u8>,
    },
}

/// Why a peer's transfers may not finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gone {
    /// It said it left, or we left every room we share with it.
    Left,
    /// The hub stopped listing it in our last shared room: it may be back in a moment (a hub
    /// restart, its reconnect).
    OutOfSight,
    /// A new process with the same identity: the old one's transfers went with it.
    Restarted,
}

/// Who says a member left a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Departure {
    /// The hub: it may only have lost sight of the member (a restart, a reconnect).
    HubSays,
    /// We left the room.
    Ours,
    /// The member told us inside our session.
    Theirs,
}

enum Link {
    Down,
    Handshaking(Box<Handshake>),
    Authenticating(Box<Transport>),
    Up(Box<Transport>),
}

struct Peer {
    key: IdentityKey,
    name: String,
    rooms: BTreeSet<String>,
    /// Rooms the hub says the peer left while our direct link to it stayed open: a hub
    /// restart, or the peer reconnecting to it, looks like that. The peer stays in them until
    /// the link closes (a peer that really leaves says so itself, `PeerMsg::Left` and a link
    /// `Close`), or the hub lists it again.
    hub_absent: BTreeSet<String>,
    /// The established session, if any.
    session: Option<PeerSession>,
    /// A handshake under way. It replaces `session` only once it completes, so a handshake
    /// message or a Reset that someone forged cannot end a session that works.
    handshake: Option<PeerSession>,
    /// The session `handshake` replaced, kept to open packets that were in flight when the
    /// switch happened.
    previous: Option<PeerSession>,
    /// Earliest time a Reset may start another handshake beside a working session.
    next_rehandshake: Option<Instant>,
    /// The peer's stream (random per process) from its last intro: a new one means the peer
    /// restarted, and its side of any link is gone.
    remote_stream: Option<u64>,
    /// What the peer's version can do (`wire::caps`).
    caps: u64,
    /// Packets that failed to open (forged, replayed, reflected, or for a session we
    /// replaced) and authentic messages of kinds this version does not know.
    dropped_packets: u64,
    ignored_messages: u64,
    /// Earliest time we may start a handshake (backoff after failures).
    next_attempt: Option<Instant>,
    last_resend: Option<Instant>,
    out: Outgoing,
    inc: Incoming,
    /// Computed on first use: it takes thousands of hash rounds, and every session and every
    /// `peers` listing needs it.
    safety: std::cell::OnceCell<String>,
    link: PeerLinkState,
}

/// Where sealed packets for one peer go.
#[derive(Debug, Default)]
struct PeerLinkState {
    /// The chat data channel is open: packets go there instead of the hub.
    open: bool,
    /// The open link's number, for the `Close` we send when we end it.
    id: Option<u64>,
    /// What was last announced in a `link` event.
    kind: LinkKind,
    /// Latest round trip on the link, when measured.
    rtt_ms: Option<u64>,
}

impl Peer {
    fn safety_number(&self, me: &IdentityKey) -> &str {
        self.safety.get_or_init(|| safety_number(me, &self.key))
    }

    /// Forgets every session with the peer: the established one, the one it replaced and a
    /// handshake under way.
    fn end_sessions(&mut self) {
        self.session = None;
        self.handshake = None;
        self.previous = None;
    }

    /// The link is open and the peer takes signalling and handshakes on it.
    /// Our intro for a new session with this peer.
    fn intro(&self, name: &str) -> wire::Intro {
        wire::Intro { open_link: self.link.id.filter(|_| self.link.open), ..self.out.intro(name) }
    }

    fn takes_signals_on_link(&self) -> bool {
        self.link.open && self.caps & wire::caps::SIGNALS_ON_LINK != 0
    }

    /// We hold an established session with this peer.
    fn is_secure(&self) -> bool {
        self.session.as_ref().is_some_and(|s| s.is_established())
    }
}

/// A message we hold in memory (sent or received) until it expires.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub id: MessageId,
    pub room: String,
    pub from: IdentityKey,
    pub text: String,
    pub sent_at_ms: u64,
    pub expires_at_ms: Option<u64>,
}

pub struct Client {
    config: ClientConfig,
    identity: Keypair,
    me: IdentityKey,
    rng: ChaCha20Rng,
    link: Link,
    stream: u64,
    joined: BTreeSet<String>,
    /// Rooms asked for on this hub connection and not answered yet, oldest first: the hub
    /// answers in order, so an error about a room is about the first of them.
    joining: VecDeque<String>,
    peers: HashMap<IdentityKey, Peer>,
    known: KnownPeers,
    messages: BTreeMap<MessageId, StoredMessage>,
    /// Ids in arrival order, for the history cap.
    history: VecDeque<MessageId>,
    expiries: BTreeSet<(u64, MessageId)>,
    out: VecDeque<ClientOutput>,
    next_ping: Option<Instant>,
    /// The link is given up if nothing arrives from the hub by then (pings keep it moving).
    link_deadline: Option<Instant>,
    was_ready: bool,
    /// Authentic hub messages of kinds this version does not know.
    ignored_hub_messages: u64,
    /// Said once that the hub announced more members than we keep.
    crowd_warned: bool,
    /// The time of the latest input: `poll_timeout` turns wall-clock expiries into instants
    /// from it.
    last_now: Option<Now>,
}

impl Client {
    pub fn new(config: ClientConfig, identity: Keypair, known: KnownPeers, mut rng: ChaCha20Rng) -> Self {
        let me = IdentityKey::from(&identity.public);
        let stream = rng.next_u64();
        Self {
            config,
            identity,
            me,
            rng,
            link: Link::Down,
            stream,
            joined: BTreeSet::new(),
            joining: VecDeque::new(),
            peers: HashMap::new(),
            crowd_warned: false,
            known,
            messages: BTreeMap::new(),
            history: VecDeque::new(),
            expiries: BTreeSet::new(),
            out: VecDeque::new(),
            next_ping: None,
            link_deadline: None,
            last_now: None,
            was_ready: false,
            ignored_hub_messages: 0,
        }
    }

    pub fn identity_key(&self) -> IdentityKey {
        self.me
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.me.fingerprint()
    }

    pub fn known_peers(&self) -> &KnownPeers {
        &self.known
    }

    pub fn messages(&self) -> impl Iterator<Item = &StoredMessage> {
        self.messages.values()
    }

    /// Hub messages of unknown kinds ignored so far (a newer hub's).
    pub fn ignored_hub_messages(&self) -> u64 {
        self.ignored_hub_messages
    }

    pub fn is_ready(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let now = self.last_now?;
        let mut t = self.expiries.iter().next().map(|(ms, _)| now.instant_of(*ms));
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        if !matches!(self.link, Link::Down) {
            consider(self.link_deadline);
        }
        let hub_up = matches!(self.link, Link::Up(_));
        if hub_up {
            consider(self.next_ping);
        }
        {
            let alive = |p: &&Peer| !p.rooms.is_empty() && (hub_up || p.link.open);
            for p in self.peers.values().filter(alive) {
                if p.session.is_some() && p.out.pending() > 0 {
                    consider(Some(p.last_resend.map_or(now.at, |t| t + RESEND_AFTER)));
                }
                match &p.handshake {
                    Some(h) => consider(Some(h.started + HANDSHAKE_TIMEOUT)),
                    None if p.session.is_none() => consider(Some(p.next_attempt.unwrap_or(now.at))),
                    None => {}
                }
            }
            for p in self.peers.values() {
                if let Some(e) = p.out.next_expiry() {
                    consider(Some(now.instant_of(e)));
                }
            }
        }
        t
    }

    /// For tests: how many message texts our outbox to `peer` still holds.
    #[doc(hidden)]
    pub fn texts_held_for(&self, peer: &IdentityKey) -> usize {
        self.peers.get(peer).map_or(0, |p| p.out.texts_held())
    }

    /// How many peers this client keeps state for.
    pub fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// The identity keys of the peers this client keeps state for.
    pub fn peer_keys(&self) -> Vec<IdentityKey> {
        self.peers.keys().copied().collect()
    }

    /// Remembers the time of an input (see `last_now`).
    fn tick(&mut self, now: Now) {
        self.last_now = Some(now);
    }

    // ---- hub link -------------------------------------------------------------------------

    pub fn handle_hub_connected(&mut self, now: Now) {
        self.tick(now);
        self.link_deadline = Some(now.at + LINK_SETUP_TIMEOUT);
        let e = Keypair::generate(&mut self.rng);
        let mut hs = Handshake::new(Role::Initiator, &self.identity, e, HUB_PROLOGUE);
        let hello = ClientHello { app: format!("kith/{}", env!("CARGO_PKG_VERSION")) };
        match hs.write_message(&wire::encode(&hello)) {
            Ok(frame) => {
                self.out.push_back(ClientOutput::ToHub(frame));
                self.link = Link::Handshaking(Box::new(hs));
            }
            Err(e) => self.fail_link(&format!("handshake: {e}"), false),
        }
    }

    pub fn handle_hub_disconnected(&mut self, now: Now, reason: &str) {
        self.tick(now);
        if matches!(self.link, Link::Down) {
            return;
        }
        self.mark_down(reason);
    }

    fn mark_down(&mut self, reason: &str) {
        self.link = Link::Down;
        // A session whose direct link is open carries on over it. The others ran through the
        // hub and die with it. Room membership is kept as last known, so messages sent
        // meanwhile queue in outboxes; `Joined` resyncs it.
        let keys: Vec<IdentityKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(p) = self.peers.get_mut(&key) else { continue };
            if !p.link.open {
                p.end_sessions();
                self.drop_link(key);
            }
        }
        self.emit(ClientEvent::Disconnected { reason: reason.to_string() });
    }

    pub fn handle_hub_frame(&mut self, now: Now, frame: &[u8]) {
        self.tick(now);
        tracing::trace!(len = frame.len(), "hub frame");
        if matches!(self.link, Link::Up(_)) {
            self.link_deadline = Some(now.at + 2 * PING_INTERVAL);
        }
        match std::mem::replace(&mut self.link, Link::Down) {
            Link::Down => {}
            Link::Handshaking(hs) => self.on_hub_handshake(hs, frame),
            Link::Authenticating(mut t) => match open_hub(&mut t, frame) {
                Ok(HubToClient::AuthOk { hub_name, .. }) => {
                    self.link = Link::Up(t);
                    let hub_name = sanitize_name(&hub_name).unwrap_or_else(|| "the hub".into());
                    self.on_authenticated(now, hub_name);
                }
                Ok(HubToClient::AuthFailed { reason }) => {
                    let (code, msg) = match reason {
                        AuthFailure::WrongPassword => ("auth_failed", "the hub refused the password"),
                        AuthFailure::RateLimited => {
                            ("rate_limited", "too many failed attempts; wait a minute")
                        }
                        AuthFailure::BadName => ("bad_name", "the hub refused this display name"),
                    };
                    self.emit(ClientEvent::fatal(code, msg));
                    self.out.push_back(ClientOutput::CloseHub { fatal: true });
                }
                Ok(other) => self.fail_link(&format!("unexpected {other:?} before auth"), false),
                Err(e) => self.fail_link(&e, false),
            },
            Link::Up(mut t) => match t.decrypt(frame) {
                Ok(plain) => {
                    self.link = Link::Up(t);
                    match wire::decode::<HubToClient>(&plain) {
                        Ok(msg) => self.on_hub_message(now, msg),
                        // Authentic, but of a kind this version does not know: a newer hub's.
                        Err(e) => {
                            self.ignored_hub_messages += 1;
                            tracing::debug!("unknown message from the hub ignored: {e}");
                        }
                    }
                }
                Err(e) => self.fail_link(&format!("hub link: {e}"), false),
            },
        }
    }

    fn on_hub_handshake(&mut self, mut hs: Box<Handshake>, frame: &[u8]) {
        if let Err(e) = hs.read_message(frame) {
            return self.fail_link(&format!("hub handshake: {e}"), false);
        }
        let Some(hub_key) = hs.remote_static().map(IdentityKey::from) else {
            return self.fail_link("hub handshake: no static key", false);
        };
        match self.config.hub_pin {
            Some(pinned) if pinned != hub_key && !self.config.accept_changed_hub_key => {
                let message = format!(
                    "the hub at {} presented key {} but {} was pinned; if the operator really \
                     changed it, reconnect with --accept-new-hub-key",
                    self.config.hub_label,
                    hub_key.fingerprint(),
                    pinned.fingerprint()
                );
                self.emit(ClientEvent::fatal("hub_key_changed", message));
                self.out.push_back(ClientOutput::CloseHub { fatal: true });
                return;
            }
            Some(pinned) if pinned == hub_key => {}
            _ => {
                self.config.hub_pin = Some(hub_key);
                self.out.push_back(ClientOutput::PinHub(hub_key));
            }
        }
        // Trusting a changed key is for this connection only: from now on the key just pinned
        // is the one every reconnect must find.
        self.config.accept_changed_hub_key = false;
        let frame = match hs.write_message(&[]) {
            Ok(f) => f,
            Err(e) => return self.fail_link(&format!("hub handshake: {e}"), false),
        };
        self.out.push_back(ClientOutput::ToHub(frame));
        match hs.into_transport() {
            Ok(mut t) => {
                t.set_strict_order(true);
                self.link = Link::Authenticating(Box::new(t));
                let mut auth = ClientToHub::Auth {
                    password: self.config.password.to_string(),
                    name: self.config.name.clone(),
                };
                self.send_hub(&auth);
                if let ClientToHub::Auth { password, .. } = &mut auth {
                    password.zeroize();
                }
            }
            Err(e) => self.fail_link(&format!("hub handshake: {e}"), false),
        }
    }

    fn on_authenticated(&mut self, now: Now, hub_name: String) {
        self.link_deadline = Some(now.at + 2 * PING_INTERVAL);
        tracing::info!(hub = %hub_name, "authenticated to the hub");
        self.next_ping = Some(now.at + PING_INTERVAL);
        if self.was_ready {
            self.emit(ClientEvent::Reconnected { hub: hub_name });
        } else {
            self.was_ready = true;
            self.emit(ClientEvent::Ready {
                name: self.config.name.clone(),
                fingerprint: self.me.fingerprint().to_string(),
                hub: hub_name,
            });
        }
        self.joining.clear();
        for room in self.config.rooms.clone() {
            self.send_join(room);
        }
    }

    pub(super) fn send_join(&mut self, room: String) {
        if self.joining.len() < MAX_JOINING {
            self.joining.push_back(room.clone());
        }
        self.send_hub(&ClientToHub::Join { room });
    }

    /// For fuzzing and property tests: a decrypted hub message, as if it came over the link.
    #[doc(hidden)]
    pub fn inject_hub_plaintext(&mut self, now: Now, plaintext: &[u8]) {
        self.tick(now);
        if let Ok(msg) = wire::decode::<HubToClient>(plaintext) {
            self.on_hub_message(now, msg);
        }
    }

    /// For fuzzing and property tests: a decrypted message from `from`, as if it came inside
    /// the established session with it (and on the direct link when `direct`). Nothing
    /// happens without an established session, as with a real packet.
    #[doc(hidden)]
    pub fn inject_peer_plaintext(&mut self, now: Now, from: IdentityKey, plaintext: &[u8], direct: bool) {
        self.tick(now);
        let established = self.peers.get(&from).is_some_and(Peer::is_secure);
        if !established {
            return;
        }
        match wire::decode::<PeerMsg>(plaintext) {
            Ok(msg) => self.on_peer_msg(now, from, msg, direct),
            Err(_) => {
                if let Some(p) = self.peers.get_mut(&from) {
                    p.ignored_messages += 1;
                }
            }
        }
    }

    /// For fuzzing and property tests: force the link up without a hub.
    #[doc(hidden)]
    pub fn pretend_link_up(&mut self, now: Now) {
        self.tick(now);
        let k = Keypair::from_secret_bytes([7; 32]);
        let mut i = Handshake::new(Role::Initiator, &k, k.clone(), b"");
        let mut r = Handshake::new(Role::Responder, &k, k.clone(), b"");
        let transport = (|| {
            r.read_message(&i.write_message(&[]).ok()?).ok()?;
            i.read_message(&r.write_message(&[]).ok()?).ok()?;
            r.read_message(&i.write_message(&[]).ok()?).ok()?;
            i.into_transport().ok()
        })();
        if let Some(t) = transport {
            self.link = Link::Up(Box::new(t));
            self.on_authenticated(now, "test".into());
        }
    }

    fn on_hub_message(&mut self, now: Now, msg: HubToClient) {
        match msg {
            HubToClient::Joined { room, members } => {
                self.joining.retain(|r| r != &room);
                self.joined.insert(room.clone());
                self.emit(ClientEvent::Joined { room: room.clone() });
                let present: BTreeSet<IdentityKey> = members.iter().map(|m| m.key).collect();
                let gone: Vec<IdentityKey> = self
                    .peers
                    .values()
                    .filter(|p| p.rooms.contains(&room) && !present.contains(&p.key))
                    .map(|p| p.key)
                    .collect();
                for key in gone {
                    self.remove_member(&room, key, Departure::HubSays);
                }
                for m in members {
                    self.add_member(now, &room, m);
                }
            }
            HubToClient::MemberJoined { room, member } => self.add_member(now, &room, member),
            HubToClient::MemberLeft { room, key } => self.remove_member(&room, key, Departure::HubSays),
            HubToClient::Relayed { from, payload } => match wire::decode::<PeerPacket>(&payload) {
                Ok(packet) => self.on_peer_packet(now, from, packet, false),
                Err(e) => tracing::debug!(from = ?from, "bad peer packet: {e}"),
            },
            // A relay racing a member's departure: expected, and the outbox resends later.
            HubToClient::Error { code, message } if code == "no_such_member" => {
                tracing::debug!("hub: {message}");
            }
            HubToClient::Error { code, message } => {
                // The hub's words are not shown: a hostile one could write anything there
                // ("your session expired, reinstall from …"). Known codes get ours (D26).
                tracing::debug!(%code, "hub error: {message}");
                let room = match code.as_str() {
                    "no_such_room" | "room_full" => self.joining.pop_front(),
                    _ => None,
                };
                if let Some(room) = room.as_ref().filter(|_| code == "no_such_room") {
                    // Not asked for again at the next reconnect.
                    self.config.rooms.retain(|r| r != room);
                }
                let (code, text) = hub_error_text(&code, room.as_deref());
                self.emit(ClientEvent::error(code, text));
            }
            HubToClient::Pong { .. } => {}
            HubToClient::AuthOk { .. } | HubToClient::AuthFailed { .. } => {}
        }
    }

    fn fail_link(&mut self, why: &str, fatal: bool) {
        tracing::warn!("hub link failed: {why}");
        self.emit(ClientEvent::error("hub_protocol", why.to_string()));
        // The link may already read `Down` (a frame handler took it out): mark it down
        // regardless, so sessions end and the front-end hears about it.
        self.mark_down(why);
        self.out.push_back(ClientOutput::CloseHub { fatal });
    }

    /// For tests that play a newer client: sends bytes that need not be a message this
    /// version knows, encrypted for the hub.
    #[doc(hidden)]
    pub fn send_raw_to_hub(&mut self, plaintext: &[u8]) {
        let Link::Up(t) = &mut self.link else { return };
        if let Ok(frame) = t.encrypt(plaintext) {
            self.out.push_back(ClientOutput::ToHub(frame));
        }
    }

    fn send_hub(&mut self, msg: &ClientToHub) {
        let (Link::Up(t) | Link::Authenticating(t)) = &mut self.link else { return };
        // The plaintext may hold the password: sized so it is written once, wiped once sent.
        let capacity = match msg {
            ClientToHub::Auth { password, name } => 16 + password.len() + name.len(),
            _ => 64,
        };
        let plain = Zeroizing::new(wire::encode_with_capacity(msg, capacity));
        match t.encrypt(&plain) {
            Ok(frame) => self.out.push_back(ClientOutput::ToHub(frame)),
            Err(e) => self.fail_link(&format!("encrypt: {e}"), false),
        }
    }

    fn relay(&mut self, to: IdentityKey, packet: &PeerPacket) {
        tracing::trace!(to = %to.fingerprint(), "relay");
        self.send_hub(&ClientToHub::Relay { to, payload: wire::encode(packet) });
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.tick(now);
        while let Some(&(t, id)) = self.expiries.iter().next() {
            if t > now.unix_ms {
                break;
            }
            self.expiries.remove(&(t, id));
            if self.messages.remove(&id).is_some() {
                self.emit(ClientEvent::Expired { id: id.to_string() });
            }
        }
        if !matches!(self.link, Link::Down) && self.link_deadline.is_some_and(|t| now.at >= t) {
            let why = if self.is_ready() {
                "the hub stopped answering"
            } else {
                "the hub did not complete the handshake"
            };
            return self.fail_link(why, false);
        }
        let hub_up = matches!(self.link, Link::Up(_));
        if hub_up && self.next_ping.is_some_and(|t| now.at >= t) {
            self.next_ping = Some(now.at + PING_INTERVAL);
            let nonce = self.rng.next_u64();
            self.send_hub(&ClientToHub::Ping { nonce });
        }
        let keys: Vec<IdentityKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            // Expired texts leave the outbox on time, whatever the path (D14).
            peer.out.expire(now.unix_ms);
            // Without the hub, only sessions on a direct link are alive.
            if !hub_up && !peer.link.open {
                continue;
            }
            if peer.handshake.as_ref().is_some_and(|h| now.at >= h.started + HANDSHAKE_TIMEOUT) {
                peer.handshake = None;
            }
            if peer.session.is_some() {
                let due = peer.last_resend.is_none_or(|t| now.at >= t + RESEND_AFTER);
                if peer.out.pending() > 0 && due {
                    self.resend_now(now, key);
                }
            } else {
                self.maybe_initiate(now, key);
            }
        }
    }

    fn emit(&mut self, event: ClientEvent) {
        self.out.push_back(ClientOutput::Event(event));
    }
}

/// Most rooms waiting for the hub's answer that are remembered (more are still asked for).
const MAX_JOINING: usize = 64;

/// Our words for an error the hub reports, by its code (and the room it is about, which we
/// know, not the hub's text); the code itself only if it is one we know.
fn hub_error_text(code: &str, room: Option<&str>) -> (&'static str, String) {
    const HOST_DECIDES: &str = "its host decides which rooms exist.";
    match (code, room) {
        ("no_such_room", Some(r)) => ("no_such_room", format!("This hub has no room #{r}: {HOST_DECIDES}")),
        ("no_such_room", None) => ("no_such_room", format!("This hub has no such room: {HOST_DECIDES}")),
        ("room_full", Some(r)) => ("room_full", format!("#{r} is full on this hub.")),
        ("room_full", None) => ("room_full", "That room is full on this hub.".into()),
        _ => {
            let shown: String =
                code.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(32).collect();
            ("hub_error", format!("The hub reported an error it did not explain ({shown})."))
        }
    }
}

fn open_hub(t: &mut Transport, frame: &[u8]) -> Result<HubToClient, String> {
    let plain = t.decrypt(frame).map_err(|e| format!("hub link: {e}"))?;
    wire::decode(&plain).map_err(|e| format!("hub link: {e}"))
}
