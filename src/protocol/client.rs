//! The client core as a sans-IO state machine: the hub link, one Noise session per peer, chat
//! delivery and trust decisions. The net layer feeds it bytes and time; front-ends feed it
//! [`ClientCommand`]s and read [`ClientEvent`]s.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use rand_chacha::ChaCha20Rng;
use rand_core::RngCore;
use zeroize::Zeroizing;

use super::delivery::{Incoming, Outgoing};
use super::events::{ClientCommand, ClientEvent, PeerSummary};
use super::hub::PROLOGUE as HUB_PROLOGUE;
use super::identity::{Fingerprint, IdentityKey, Sas, safety_number};
use super::noise::{Handshake, Keypair, Role, Transport};
use super::session::{HANDSHAKE_TIMEOUT_MS, PeerSession, SessionError};
use super::trust::{KnownPeers, Sighting};
use super::wire::{
    self, AuthFailure, ChatMessage, ClientHello, ClientToHub, HubToClient, MAX_ROOM, MAX_TEXT, MemberInfo,
    MessageId, PeerMsg, PeerPacket, sanitize_name,
};

/// Keep-alive towards the hub (its idle timeout is longer).
pub const PING_INTERVAL_MS: u64 = 30_000;
/// Unacknowledged messages on an established session are sent again after this long.
pub const RESEND_AFTER_MS: u64 = 2_000;
/// How many of the oldest unacknowledged messages one retransmission sends.
const RESEND_BATCH: usize = 256;
/// How long the higher key waits for the lower key to start a handshake before starting one.
const INITIATOR_GRACE_MS: u64 = 2_000;
/// After a peer failed authentication, wait this long before trying again.
const MISMATCH_BACKOFF_MS: u64 = 30_000;

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
    session: Option<PeerSession>,
    /// Earliest time we may start a handshake (backoff after failures).
    next_attempt_ms: u64,
    last_resend_ms: u64,
    out: Outgoing,
    inc: Incoming,
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
    peers: HashMap<IdentityKey, Peer>,
    known: KnownPeers,
    messages: BTreeMap<MessageId, StoredMessage>,
    expiries: BTreeSet<(u64, MessageId)>,
    out: VecDeque<ClientOutput>,
    next_ping_ms: u64,
    was_ready: bool,
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
            peers: HashMap::new(),
            known,
            messages: BTreeMap::new(),
            expiries: BTreeSet::new(),
            out: VecDeque::new(),
            next_ping_ms: u64::MAX,
            was_ready: false,
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

    pub fn is_ready(&self) -> bool {
        matches!(self.link, Link::Up(_))
    }

    pub fn poll_output(&mut self) -> Option<ClientOutput> {
        self.out.pop_front()
    }

    // An established session without pending messages must not fall through to the
    // handshake-timeout arm, so the `if` stays inside the arm.
    #[allow(clippy::collapsible_match)]
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut t = self.expiries.iter().next().map(|(t, _)| *t);
        let mut consider = |x: u64| t = Some(t.map_or(x, |t| t.min(x)));
        if matches!(self.link, Link::Up(_)) {
            consider(self.next_ping_ms);
            for p in self.peers.values().filter(|p| !p.rooms.is_empty()) {
                match &p.session {
                    Some(s) if s.is_established() => {
                        if p.out.pending() > 0 {
                            consider(p.last_resend_ms + RESEND_AFTER_MS);
                        }
                    }
                    Some(s) => consider(s.started_ms + HANDSHAKE_TIMEOUT_MS),
                    None => consider(p.next_attempt_ms),
                }
                if let Some(e) = p.out.next_expiry() {
                    consider(e);
                }
            }
        }
        t
    }

    // ---- hub link -------------------------------------------------------------------------

    pub fn handle_hub_connected(&mut self, _now: u64) {
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

    pub fn handle_hub_disconnected(&mut self, _now: u64, reason: &str) {
        if matches!(self.link, Link::Down) {
            return;
        }
        self.link = Link::Down;
        // Sessions run through the hub; they die with the link. Room membership is kept as
        // last known, so messages sent meanwhile queue in outboxes; `Joined` resyncs it.
        for p in self.peers.values_mut() {
            p.session = None;
        }
        self.emit(ClientEvent::Disconnected { reason: reason.to_string() });
    }

    pub fn handle_hub_frame(&mut self, now: u64, frame: &[u8]) {
        tracing::trace!(len = frame.len(), "hub frame");
        match std::mem::replace(&mut self.link, Link::Down) {
            Link::Down => {}
            Link::Handshaking(hs) => self.on_hub_handshake(hs, frame),
            Link::Authenticating(mut t) => match open_hub(&mut t, frame) {
                Ok(HubToClient::AuthOk { hub_name, .. }) => {
                    self.link = Link::Up(t);
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
            Link::Up(mut t) => match open_hub(&mut t, frame) {
                Ok(msg) => {
                    self.link = Link::Up(t);
                    self.on_hub_message(now, msg);
                }
                Err(e) => self.fail_link(&e, false),
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
        let frame = match hs.write_message(&[]) {
            Ok(f) => f,
            Err(e) => return self.fail_link(&format!("hub handshake: {e}"), false),
        };
        self.out.push_back(ClientOutput::ToHub(frame));
        match hs.into_transport() {
            Ok(t) => {
                self.link = Link::Authenticating(Box::new(t));
                let auth = ClientToHub::Auth {
                    password: self.config.password.to_string(),
                    name: self.config.name.clone(),
                };
                self.send_hub(&auth);
            }
            Err(e) => self.fail_link(&format!("hub handshake: {e}"), false),
        }
    }

    fn on_authenticated(&mut self, now: u64, hub_name: String) {
        tracing::info!(hub = %hub_name, "authenticated to the hub");
        self.next_ping_ms = now + PING_INTERVAL_MS;
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
        for room in self.config.rooms.clone() {
            self.send_hub(&ClientToHub::Join { room });
        }
    }

    /// For fuzzing and property tests: a decrypted hub message, as if it came over the link.
    #[doc(hidden)]
    pub fn inject_hub_plaintext(&mut self, now: u64, plaintext: &[u8]) {
        if let Ok(msg) = wire::decode::<HubToClient>(plaintext) {
            self.on_hub_message(now, msg);
        }
    }

    /// For fuzzing and property tests: force the link up without a hub.
    #[doc(hidden)]
    pub fn pretend_link_up(&mut self, now: u64) {
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

    fn on_hub_message(&mut self, now: u64, msg: HubToClient) {
        match msg {
            HubToClient::Joined { room, members } => {
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
                    self.remove_member(&room, key);
                }
                for m in members {
                    self.add_member(now, &room, m);
                }
            }
            HubToClient::MemberJoined { room, member } => self.add_member(now, &room, member),
            HubToClient::MemberLeft { room, key } => self.remove_member(&room, key),
            HubToClient::Relayed { from, payload } => match wire::decode::<PeerPacket>(&payload) {
                Ok(packet) => self.on_peer_packet(now, from, packet),
                Err(e) => tracing::debug!(from = ?from, "bad peer packet: {e}"),
            },
            // A relay racing a member's departure: expected, and the outbox resends later.
            HubToClient::Error { code, message } if code == "no_such_member" => {
                tracing::debug!("hub: {message}");
            }
            HubToClient::Error { code, message } => self.emit(ClientEvent::error(&code, message)),
            HubToClient::Pong { .. } => {}
            HubToClient::AuthOk { .. } | HubToClient::AuthFailed { .. } => {}
        }
    }

    fn fail_link(&mut self, why: &str, fatal: bool) {
        tracing::warn!("hub link failed: {why}");
        self.link = Link::Down;
        self.emit(ClientEvent::error("hub_protocol", why.to_string()));
        self.out.push_back(ClientOutput::CloseHub { fatal });
    }

    fn send_hub(&mut self, msg: &ClientToHub) {
        let (Link::Up(t) | Link::Authenticating(t)) = &mut self.link else { return };
        match t.encrypt(&wire::encode(msg)) {
            Ok(frame) => self.out.push_back(ClientOutput::ToHub(frame)),
            Err(e) => self.fail_link(&format!("encrypt: {e}"), false),
        }
    }

    fn relay(&mut self, to: IdentityKey, packet: &PeerPacket) {
        tracing::trace!(to = %to.fingerprint(), "relay");
        self.send_hub(&ClientToHub::Relay { to, payload: wire::encode(packet) });
    }

    // ---- members and peer sessions ----------------------------------------------------------

    fn add_member(&mut self, now: u64, room: &str, m: MemberInfo) {
        if m.key == self.me {
            return;
        }
        let stream = self.stream;
        let peer = self.peers.entry(m.key).or_insert_with(|| Peer {
            key: m.key,
            name: m.name.clone(),
            rooms: BTreeSet::new(),
            session: None,
            next_attempt_ms: 0,
            last_resend_ms: 0,
            out: Outgoing::new(stream),
            inc: Incoming::default(),
        });
        peer.name = m.name.clone();
        let newly = peer.rooms.insert(room.to_string());
        if newly && peer.session.is_none() && self.me > m.key {
            // The lower key normally starts; we only step in if it has not after a grace period.
            // (Deciding by keys alone would let a hub that lies about keys make both sides wait.)
            peer.next_attempt_ms = peer.next_attempt_ms.max(now + INITIATOR_GRACE_MS);
        }
        if newly {
            self.emit(ClientEvent::PeerJoined {
                room: room.to_string(),
                peer: m.key.fingerprint().to_string(),
                name: m.name,
            });
        }
        self.maybe_initiate(now, m.key);
    }

    fn remove_member(&mut self, room: &str, key: IdentityKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.rooms.remove(room) {
            return;
        }
        let event = ClientEvent::PeerLeft {
            room: room.to_string(),
            peer: key.fingerprint().to_string(),
            name: peer.name.clone(),
        };
        if peer.rooms.is_empty() {
            peer.session = None;
        }
        self.emit(event);
    }

    /// Starts a handshake unless one is under way or we are backing off.
    fn maybe_initiate(&mut self, now: u64, key: IdentityKey) {
        if !matches!(self.link, Link::Up(_)) {
            return;
        }
        let Some(peer) = self.peers.get(&key) else { return };
        if peer.rooms.is_empty() || peer.session.is_some() || now < peer.next_attempt_ms {
            return;
        }
        match PeerSession::initiate(now, &self.identity, &mut self.rng) {
            Ok((session, packet)) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.session = Some(session);
                }
                self.relay(key, &packet);
            }
            Err(e) => tracing::warn!("cannot start session: {e}"),
        }
    }

    fn on_peer_packet(&mut self, now: u64, from: IdentityKey, packet: PeerPacket) {
        let Some(peer) = self.peers.get_mut(&from) else {
            tracing::debug!("packet from a non-member, ignored");
            return;
        };
        if peer.rooms.is_empty() {
            return;
        }
        match packet {
            PeerPacket::Handshake { session, step: 0, noise } => {
                // Both sides started at once: the lower session id wins, so the two sides agree
                // without relying on the keys the hub announced.
                if let Some(mine) = &peer.session
                    && mine.is_initiator_waiting()
                    && mine.id < session
                {
                    return;
                }
                let intro = peer.out.intro(&self.config.name);
                match PeerSession::respond(now, &self.identity, &mut self.rng, session, &noise, &intro) {
                    Ok((s, reply)) => {
                        if let Some(p) = self.peers.get_mut(&from) {
                            p.session = Some(s);
                        }
                        self.relay(from, &reply);
                    }
                    Err(e) => tracing::debug!("bad handshake from peer: {e}"),
                }
            }
            PeerPacket::Handshake { session, step, noise } => {
                let intro = peer.out.intro(&self.config.name);
                let Some(s) = peer.session.as_mut() else { return };
                match s.on_handshake(session, step, &noise, &from, &intro) {
                    Ok(done) => {
                        if let Some(reply) = &done.reply {
                            self.relay(from, reply);
                        }
                        self.on_established(now, from, done.intro, done.sas);
                    }
                    Err(SessionError::StaleSession) => {}
                    Err(e) => self.session_failed(now, from, e),
                }
            }
            PeerPacket::Data { session, noise } => {
                let result = match peer.session.as_mut() {
                    Some(s) if s.id == session && s.is_established() => s.open(session, &noise),
                    _ => Err(SessionError::StaleSession),
                };
                match result {
                    Ok(msg) => self.on_peer_msg(now, from, msg),
                    Err(SessionError::StaleSession) => {
                        // They think a session exists that we do not hold: tell them to start over.
                        self.relay(from, &PeerPacket::Reset { session });
                    }
                    Err(e) => self.session_failed(now, from, e),
                }
            }
            PeerPacket::Reset { session } => {
                if peer.session.as_ref().is_some_and(|s| s.id == session) {
                    peer.session = None;
                    self.maybe_initiate(now, from);
                }
            }
        }
    }

    fn session_failed(&mut self, now: u64, from: IdentityKey, e: SessionError) {
        let Some(peer) = self.peers.get_mut(&from) else { return };
        peer.session = None;
        if let SessionError::KeyMismatch { expected, actual } = &e {
            peer.next_attempt_ms = now + MISMATCH_BACKOFF_MS;
            let message = format!(
                "{} announced by the hub as {} authenticated as {}: the hub may be substituting keys",
                peer.name,
                expected.fingerprint(),
                actual.fingerprint()
            );
            self.emit(ClientEvent::error("peer_key_mismatch", message));
        } else {
            peer.next_attempt_ms = now + 1_000;
            tracing::debug!("session with {:?} failed: {e}", from);
        }
    }

    fn on_established(&mut self, now: u64, key: IdentityKey, mut intro: wire::Intro, sas: Sas) {
        // The peer chose its own name; hold it to the rules the hub applies to names.
        let hub_name = self.peers.get(&key).map(|p| p.name.clone()).unwrap_or_default();
        intro.name = sanitize_name(&intro.name).unwrap_or(hub_name);
        tracing::debug!(peer = %key.fingerprint(), "peer session established");
        let sighting = self.known.sighted(key, &intro.name, now);
        if let Sighting::IdentityChanged { old } = sighting {
            self.emit(ClientEvent::IdentityChanged {
                name: intro.name.clone(),
                old: old.fingerprint().to_string(),
                new: key.fingerprint().to_string(),
            });
        }
        self.out.push_back(ClientOutput::SaveKnownPeers(self.known.clone()));
        let verified = self.known.get(&key).is_some_and(|k| k.verified);
        let Some(peer) = self.peers.get_mut(&key) else { return };
        peer.inc.on_intro(&intro);
        peer.name = intro.name.clone();
        peer.last_resend_ms = now;
        let resend = peer.out.resend();
        self.emit(ClientEvent::PeerSecure {
            peer: key.fingerprint().to_string(),
            name: intro.name,
            safety_number: safety_number(&self.me, &key),
            sas: sas.emoji.join(" "),
            sas_words: sas.words.join(" "),
            sas_digits: sas.digits,
            verified,
        });
        for msg in resend {
            self.seal_and_relay(key, &msg);
        }
    }

    fn seal_and_relay(&mut self, to: IdentityKey, msg: &PeerMsg) {
        let Some(peer) = self.peers.get_mut(&to) else { return };
        let Some(s) = peer.session.as_mut().filter(|s| s.is_established()) else { return };
        match s.seal(msg) {
            Ok(packet) => self.relay(to, &packet),
            Err(e) => {
                tracing::warn!("cannot seal for peer: {e}");
                peer.session = None;
            }
        }
    }

    fn on_peer_msg(&mut self, now: u64, from: IdentityKey, msg: PeerMsg) {
        let Some(peer) = self.peers.get_mut(&from) else { return };
        if let PeerMsg::Ack { stream, next } = msg {
            let before = peer.out.pending();
            let delivered = peer.out.ack(stream, next);
            if peer.out.pending() < before {
                peer.last_resend_ms = now;
            }
            for id in delivered {
                self.emit(ClientEvent::Delivered { id: id.to_string(), to: from.fingerprint().to_string() });
            }
            return;
        }
        // A message we will never show still takes its place in the sequence, so a bad one
        // cannot stall the sender's stream.
        let msg = match msg {
            PeerMsg::Chat(m) if m.text.len() > MAX_TEXT || m.room.len() > MAX_ROOM => {
                tracing::warn!(peer = %from.fingerprint(), "oversized message dropped");
                PeerMsg::Skip { seq: m.seq, id: m.id }
            }
            other => other,
        };
        let received = peer.inc.receive(msg);
        let name = peer.name.clone();
        let rooms = peer.rooms.clone();
        if let Some(ack) = received.ack {
            self.seal_and_relay(from, &ack);
        }
        for m in received.deliver {
            // Only rooms we are in and the sender is in, and nothing already expired.
            let in_room = self.joined.contains(&m.room) && rooms.contains(&m.room);
            if m.expires_at_ms.is_some_and(|t| t <= now) || !in_room {
                continue;
            }
            self.store(StoredMessage {
                id: m.id,
                room: m.room.clone(),
                from,
                text: m.text.clone(),
                sent_at_ms: m.sent_at_ms,
                expires_at_ms: m.expires_at_ms,
            });
            self.emit(ClientEvent::Message {
                id: m.id.to_string(),
                room: m.room,
                from: from.fingerprint().to_string(),
                name: name.clone(),
                text: m.text,
                sent_at: m.sent_at_ms,
                expires_at: m.expires_at_ms,
            });
        }
    }

    fn store(&mut self, m: StoredMessage) {
        if let Some(t) = m.expires_at_ms {
            self.expiries.insert((t, m.id));
        }
        self.messages.insert(m.id, m);
    }

    // ---- commands and time ------------------------------------------------------------------

    pub fn handle_command(&mut self, now: u64, cmd: ClientCommand) {
        match cmd {
            ClientCommand::Send { room, text, expires_in_s } => self.send_chat(now, room, text, expires_in_s),
            ClientCommand::Verify { peer, verified } => match self.resolve(&peer) {
                Some(key) if self.known.set_verified(&key, verified) => {
                    self.out.push_back(ClientOutput::SaveKnownPeers(self.known.clone()));
                    self.emit(ClientEvent::Verified { peer: key.fingerprint().to_string(), verified });
                }
                _ => self.emit(ClientEvent::error("unknown_peer", format!("no secure peer {peer}"))),
            },
            ClientCommand::AcknowledgeChange { peer } => match self.resolve(&peer) {
                Some(key) => {
                    self.known.acknowledge_change(&key);
                    self.out.push_back(ClientOutput::SaveKnownPeers(self.known.clone()));
                }
                None => self.emit(ClientEvent::error("unknown_peer", format!("no peer {peer}"))),
            },
            ClientCommand::Peers => {
                let peers = self.peer_summaries();
                self.emit(ClientEvent::Peers { peers });
            }
            ClientCommand::Join { room } => {
                if room.is_empty() || room.len() > MAX_ROOM {
                    return self.emit(ClientEvent::error("bad_room", "room names are 1 to 64 bytes"));
                }
                if !self.config.rooms.contains(&room) {
                    self.config.rooms.push(room.clone());
                }
                self.send_hub(&ClientToHub::Join { room });
            }
            ClientCommand::Leave { room } => {
                self.config.rooms.retain(|r| r != &room);
                self.joined.remove(&room);
                self.send_hub(&ClientToHub::Leave { room: room.clone() });
                let keys: Vec<_> = self.peers.keys().copied().collect();
                for key in keys {
                    self.remove_member(&room, key);
                }
            }
            ClientCommand::Quit => {}
        }
    }

    /// A fingerprint (or a unique display name) to a key.
    fn resolve(&self, who: &str) -> Option<IdentityKey> {
        if let Some(fp) = Fingerprint::parse(who) {
            if let Some(p) = self.peers.keys().find(|k| k.fingerprint() == fp) {
                return Some(*p);
            }
            return self.known.find(&fp).map(|k| k.key);
        }
        let mut by_name = self.peers.values().filter(|p| p.name == who);
        match (by_name.next(), by_name.next()) {
            (Some(p), None) => Some(p.key),
            _ => None,
        }
    }

    pub fn peer_summaries(&self) -> Vec<PeerSummary> {
        let mut v: Vec<_> = self
            .peers
            .values()
            .filter(|p| !p.rooms.is_empty())
            .map(|p| PeerSummary {
                peer: p.key.fingerprint().to_string(),
                name: p.name.clone(),
                rooms: p.rooms.iter().cloned().collect(),
                secure: p.session.as_ref().is_some_and(|s| s.is_established()),
                verified: self.known.get(&p.key).is_some_and(|k| k.verified),
                safety_number: safety_number(&self.me, &p.key),
                pending: p.out.pending(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer.cmp(&b.peer)));
        v
    }

    fn send_chat(&mut self, now: u64, room: String, text: String, expires_in_s: Option<u64>) {
        if !self.joined.contains(&room) {
            return self.emit(ClientEvent::error("not_in_room", format!("you have not joined {room:?}")));
        }
        if text.is_empty() || text.len() > MAX_TEXT {
            return self.emit(ClientEvent::error("bad_text", format!("text must be 1 to {MAX_TEXT} bytes")));
        }
        let expires_at_ms = match expires_in_s {
            Some(0) => return self.emit(ClientEvent::error("bad_expiry", "expires_in_s must be at least 1")),
            Some(s) => Some(now.saturating_add(s.saturating_mul(1000))),
            None => None,
        };
        let recipients: Vec<IdentityKey> =
            self.peers.values().filter(|p| p.rooms.contains(&room)).map(|p| p.key).collect();
        if let Some(full) = recipients.iter().find(|k| self.peers.get(k).is_some_and(|p| p.out.is_full())) {
            let message = format!("too many undelivered messages for {}", full.fingerprint());
            return self.emit(ClientEvent::error("outbox_full", message));
        }
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        let msg = ChatMessage {
            id: MessageId(id),
            seq: 0,
            room: room.clone(),
            text: text.clone(),
            sent_at_ms: now,
            expires_at_ms,
        };
        self.store(StoredMessage {
            id: msg.id,
            room: room.clone(),
            from: self.me,
            text,
            sent_at_ms: now,
            expires_at_ms,
        });
        tracing::debug!(id = %msg.id, recipients = recipients.len(), bytes = msg.text.len(), "message queued");
        self.emit(ClientEvent::Sent { id: msg.id.to_string(), room, recipients: recipients.len() });
        for key in recipients {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            if peer.out.pending() == 0 {
                peer.last_resend_ms = now;
            }
            let wire_msg = peer.out.push(msg.clone());
            self.seal_and_relay(key, &wire_msg);
        }
    }

    pub fn handle_timeout(&mut self, now: u64) {
        while let Some(&(t, id)) = self.expiries.iter().next() {
            if t > now {
                break;
            }
            self.expiries.remove(&(t, id));
            if self.messages.remove(&id).is_some() {
                self.emit(ClientEvent::Expired { id: id.to_string() });
            }
        }
        if !matches!(self.link, Link::Up(_)) {
            return;
        }
        if now >= self.next_ping_ms {
            self.next_ping_ms = now + PING_INTERVAL_MS;
            let nonce = self.rng.next_u64();
            self.send_hub(&ClientToHub::Ping { nonce });
        }
        let keys: Vec<IdentityKey> = self.peers.keys().copied().collect();
        for key in keys {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            peer.out.expire(now);
            match &peer.session {
                Some(s) if s.is_established() => {
                    if peer.out.pending() > 0 && now >= peer.last_resend_ms + RESEND_AFTER_MS {
                        peer.last_resend_ms = now;
                        let again = peer.out.resend_head(RESEND_BATCH);
                        for msg in again {
                            self.seal_and_relay(key, &msg);
                        }
                    }
                }
                Some(s) if now >= s.started_ms + HANDSHAKE_TIMEOUT_MS => {
                    peer.session = None;
                    self.maybe_initiate(now, key);
                }
                Some(_) => {}
                None => self.maybe_initiate(now, key),
            }
        }
    }

    fn emit(&mut self, event: ClientEvent) {
        self.out.push_back(ClientOutput::Event(event));
    }
}

fn open_hub(t: &mut Transport, frame: &[u8]) -> Result<HubToClient, String> {
    let plain = t.decrypt(frame).map_err(|e| format!("hub link: {e}"))?;
    wire::decode(&plain).map_err(|e| format!("hub link: {e}"))
}
