//! What the window shows, built only from the core's events: rooms, members, messages and
//! their delivery state. Pure data, so it is tested without a window and the views only read
//! it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::core::{ClientEvent, Invitation};

/// The link to the hub, as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Online,
    Reconnecting { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicAddress {
    Asking,
    Found { addr: String, via: String },
    Unknown { why: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hosting {
    pub addr: String,
    pub hub_fingerprint: String,
    pub lan: Vec<String>,
    pub public: PublicAddress,
    /// The invitation friends join with (without the password; the Invite window adds it
    /// when the host asks), and the public address once a STUN server has seen it.
    pub invitation: Option<Invitation>,
}

impl Hosting {
    /// Friends outside the network reach the hub at the address STUN saw (once the router
    /// forwards the port): it goes last, so friends on the network try theirs first.
    fn add_public_to_invitation(&mut self) {
        let (Some(inv), PublicAddress::Found { addr, .. }) = (&mut self.invitation, &self.public) else {
            return;
        };
        if !inv.hubs.contains(addr) && inv.hubs.len() < crate::core::MAX_INVITE_HUBS {
            inv.hubs.push(addr.clone());
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Peer {
    pub fingerprint: String,
    pub name: String,
    /// Rooms this peer is in right now (present = online).
    pub rooms: BTreeSet<String>,
    pub secure: bool,
    pub verified: bool,
    /// Its key replaced another under the same name; sending waits for acknowledgement.
    pub identity_changed: bool,
    /// The fingerprint it replaced, when this session saw the change.
    pub replaced: Option<String>,
    pub safety_number: String,
    pub sas_emoji: String,
    pub sas_words: String,
    pub sas_digits: String,
    /// How traffic with this peer travels, and the last measured round trip.
    pub link: crate::core::LinkKind,
    pub rtt_ms: Option<u64>,
}

impl Peer {
    pub fn online(&self) -> bool {
        !self.rooms.is_empty()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the core, no answer yet.
    Sending,
    /// Queued for these many members.
    Sent {
        recipients: usize,
        delivered: BTreeSet<String>,
    },
    Failed {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    /// A line from the app itself (joins, leaves, warnings).
    Notice {
        text: String,
        warning: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The core's id; None while our own message waits for `sent`.
    pub id: Option<String>,
    /// Sender fingerprint; None for our own messages and notices.
    pub from: Option<String>,
    pub name: String,
    pub body: Body,
    pub at_ms: u64,
    pub expires_at: Option<u64>,
    /// Ours only.
    pub delivery: Option<Delivery>,
    /// Ours only: the tag sent with it, until the core answers.
    pub tag: Option<String>,
    /// Line breaks in the text, counted once for the virtual list's height estimates.
    pub newlines: usize,
    /// Its place in the room, increasing, set by [`Room::push`]: the chat view keys the rows
    /// it laid out by it.
    pub seq: u64,
    /// From a key that took a friend's name (or a look-alike) and that the user has not
    /// accepted: drawn as such, never as the friend's ordinary words.
    pub unconfirmed: bool,
}

impl Message {
    pub fn text(&self) -> &str {
        match &self.body {
            Body::Text(t) => t,
            Body::Notice { text, .. } => text,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Room {
    pub name: String,
    pub joined: bool,
    pub members: BTreeSet<String>,
    pub messages: Vec<Message>,
    pub unread: usize,
    next_seq: u64,
}

/// Messages a room keeps in the window; older ones go, as in the core's history. A member
/// flooding a room costs the window this much memory and no more.
pub const MAX_ROOM_MESSAGES: usize = 10_000;

impl Room {
    /// Appends `m` with the next sequence number: messages are only ever appended (and
    /// removed), so `messages` stays in `seq` order. Past [`MAX_ROOM_MESSAGES`] the oldest
    /// go, an eighth at a time so the cost is spread out; their ids are returned.
    pub fn push(&mut self, mut m: Message) -> Vec<String> {
        m.seq = self.next_seq;
        self.next_seq += 1;
        self.messages.push(m);
        if self.messages.len() <= MAX_ROOM_MESSAGES + MAX_ROOM_MESSAGES / 8 {
            return Vec::new();
        }
        let excess = self.messages.len() - MAX_ROOM_MESSAGES;
        self.messages.drain(..excess).filter_map(|m| m.id).collect()
    }
}

/// What a notification says of a disappearing message instead of its text.
pub const DISAPPEARING_NOTICE: &str = "Disappearing message: open Kith to read it";

/// What a new message should tell a user who is not looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Empty for a file offer (files go to a person, not a room).
    pub room: String,
    pub name: String,
    pub text: String,
}

/// Where a room's call stands for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallPhase {
    /// Someone is calling us.
    Ringing,
    /// Others are in it; we are not.
    Running,
    /// We are in it.
    Joined,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallView {
    pub phase: CallPhase,
    /// The others in it, by fingerprint.
    pub members: BTreeSet<String>,
    /// What each of them sends, as they said.
    pub media: BTreeMap<String, MemberMedia>,
}

/// What a call member sends: its camera is on, its microphone muted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberMedia {
    pub camera: bool,
    pub muted: bool,
}

/// Our camera: switched on, and whether one is chosen at all.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CameraState {
    pub on: bool,
    pub available: bool,
}

/// The call's media as the window shows it: each person's last stats (level, loss) and what
/// the media layer said was wrong (no microphone, no speaker).
#[derive(Debug, Clone, Default)]
pub struct CallMedia {
    pub stats: HashMap<String, crate::core::AudioStats>,
    /// Each person's video, while it comes, and the round trip of their link.
    pub video: HashMap<String, crate::core::VideoStats>,
    pub rtt_ms: HashMap<String, u64>,
    pub problems: Vec<String>,
}

/// The sound system's devices, `(name, description)`, once the core listed them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceLists {
    pub inputs: Vec<(String, String)>,
    pub outputs: Vec<(String, String)>,
    pub cameras: Vec<(String, String)>,
}

/// A failure the connect screen explains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fatal {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Model {
    pub me_name: String,
    pub me_fingerprint: String,
    pub hub: String,
    pub connection: Option<Connection>,
    pub hosting: Option<Hosting>,
    pub rooms: BTreeMap<String, Room>,
    pub peers: HashMap<String, Peer>,
    /// Non-fatal errors for the user, newest last.
    pub notices: Vec<String>,
    /// What the STUN/TURN servers of the direct links last said was wrong (shown in settings).
    pub ice_problems: Vec<String>,
    /// File transfers in both directions.
    pub files: super::files::Transfers,
    /// Each room's call we know of.
    pub calls: BTreeMap<String, CallView>,
    pub call_media: CallMedia,
    pub camera: CameraState,
    pub devices: Option<DeviceLists>,
    pub fatal: Option<Fatal>,
    /// Our sends by tag until `sent` or `error` answers.
    pending: HashMap<String, String>,
    /// Message id → room, for receipts and expiry.
    by_id: HashMap<String, String>,
    next_tag: u64,
    /// The earliest `expires_at` of any message shown, for `sweep_expired`.
    next_expiry: Option<u64>,
    /// When the event being applied arrived (for notices).
    now_ms: u64,
}

/// How many notices the model keeps.
const MAX_NOTICES: usize = 20;

impl Model {
    pub fn room(&self, name: &str) -> Option<&Room> {
        self.rooms.get(name)
    }

    pub fn total_unread(&self) -> usize {
        self.rooms.values().map(|r| r.unread).sum()
    }

    /// Members of `room` sorted by name, then fingerprint.
    pub fn members(&self, room: &str) -> Vec<&Peer> {
        let Some(r) = self.rooms.get(room) else { return Vec::new() };
        let mut v: Vec<&Peer> = r.members.iter().filter_map(|fp| self.peers.get(fp)).collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.fingerprint.cmp(&b.fingerprint)));
        v
    }

    /// Members whose changed identity blocks sending to `room`.
    pub fn unacknowledged_in(&self, room: &str) -> Vec<&Peer> {
        self.members(room).into_iter().filter(|p| p.identity_changed).collect()
    }

    /// Records our own message before the core answers; returns the tag to send with it.
    pub fn outgoing(&mut self, room: &str, text: &str, now_ms: u64, expires_in_s: Option<u64>) -> String {
        self.next_tag += 1;
        let tag = format!("ui-{}", self.next_tag);
        self.pending.insert(tag.clone(), room.to_string());
        let name = self.me_name.clone();
        let expires_at = expires_in_s.map(|s| now_ms.saturating_add(s.saturating_mul(1000)));
        self.note_expiry(expires_at);
        self.push(
            room,
            Message {
                id: None,
                from: None,
                name,
                newlines: text.matches('\n').count(),
                body: Body::Text(text.to_string()),
                at_ms: now_ms,
                expires_at,
                delivery: Some(Delivery::Sending),
                tag: Some(tag.clone()),
                seq: 0,
                unconfirmed: false,
            },
        );
        tag
    }

    /// Removes messages whose time is up. The core announces expiry too, but a message it
    /// never stored (a refused send) or already forgot must not outlive its countdown here.
    pub fn sweep_expired(&mut self, now_ms: u64) {
        if self.next_expiry.is_none_or(|t| t > now_ms) {
            return;
        }
        let mut next = None;
        let mut gone = Vec::new();
        for room in self.rooms.values_mut() {
            room.messages.retain(|m| match m.expires_at {
                Some(at) if at <= now_ms => {
                    gone.extend(m.id.clone());
                    false
                }
                Some(at) => {
                    next = Some(next.map_or(at, |n: u64| n.min(at)));
                    true
                }
                None => true,
            });
        }
        for id in gone {
            self.by_id.remove(&id);
        }
        self.next_expiry = next;
    }

    /// When the next message disappears.
    pub fn next_expiry(&self) -> Option<u64> {
        self.next_expiry
    }

    fn note_expiry(&mut self, at: Option<u64>) {
        if let Some(at) = at {
            self.next_expiry = Some(self.next_expiry.map_or(at, |n| n.min(at)));
        }
    }

    /// A send the core never took (its queue was full or it stopped).
    pub fn fail_send(&mut self, tag: &str, reason: &str) {
        if let Some((room, i)) = self.take_pending(tag)
            && let Some(m) = self.rooms.get_mut(&room).and_then(|r| r.messages.get_mut(i))
        {
            m.tag = None;
            m.delivery = Some(Delivery::Failed { reason: reason.to_string() });
        }
    }

    /// A room's call changed; a call that starts ringing comes back to notify about.
    fn apply_call(&mut self, room: String, state: &str, members: Vec<String>) -> Option<Incoming> {
        let members: BTreeSet<String> = members.into_iter().collect();
        let phase = match state {
            "ringing" => CallPhase::Ringing,
            "joined" => CallPhase::Joined,
            // Left: the others may go on without us.
            "running" | "left" if !members.is_empty() => CallPhase::Running,
            _ => {
                self.calls.remove(&room);
                if !self.calls.values().any(|c| c.phase == CallPhase::Joined) {
                    self.call_media = CallMedia::default();
                }
                return None;
            }
        };
        if state == "joined" || state == "left" {
            self.call_media = CallMedia::default();
        }
        let caller = members.iter().next().map(|fp| self.name_of(fp));
        let was_ringing = self.calls.get(&room).is_some_and(|c| c.phase == CallPhase::Ringing);
        let mut media = self.calls.remove(&room).map(|c| c.media).unwrap_or_default();
        media.retain(|fp, _| members.contains(fp));
        self.calls.insert(room.clone(), CallView { phase, members, media });
        match (phase, caller) {
            (CallPhase::Ringing, Some(name)) if !was_ringing => {
                Some(Incoming { room: room.clone(), name, text: format!("is calling you in #{room}") })
            }
            _ => None,
        }
    }

    /// The call we are in: its room and view.
    pub fn joined_call(&self) -> Option<(&str, &CallView)> {
        self.calls.iter().find(|(_, c)| c.phase == CallPhase::Joined).map(|(r, c)| (r.as_str(), c))
    }

    /// A peer's name as the window shows it (its fingerprint's start if unknown).
    pub fn name_of(&self, fp: &str) -> String {
        match self.peers.get(fp) {
            Some(p) if !p.name.is_empty() => p.name.clone(),
            _ => fp.chars().take(8).collect(),
        }
    }

    /// Marks every message in `room` read.
    pub fn mark_read(&mut self, room: &str) {
        if let Some(r) = self.rooms.get_mut(room) {
            r.unread = 0;
        }
    }

    /// Applies one event. `viewing` is the room on screen while the window has focus; a
    /// message elsewhere counts as unread and comes back as `Incoming` to notify about.
    pub fn apply(&mut self, ev: ClientEvent, viewing: Option<&str>, now_ms: u64) -> Option<Incoming> {
        self.now_ms = now_ms;
        match ev {
            ClientEvent::Ready { name, fingerprint, hub } => {
                self.me_name = name;
                self.me_fingerprint = fingerprint;
                self.hub = hub;
                self.connection = Some(Connection::Online);
            }
            ClientEvent::Reconnected { hub } => {
                self.hub = hub;
                self.connection = Some(Connection::Online);
            }
            ClientEvent::Call { room, state, members } => return self.apply_call(room, &state, members),
            ClientEvent::CallMember { room, peer, state, .. } => {
                let name = self.name_of(&peer);
                if let Some(c) = self.calls.get_mut(&room) {
                    match state.as_str() {
                        "joined" => {
                            c.members.insert(peer);
                        }
                        _ => {
                            c.members.remove(&peer);
                            c.media.remove(&peer);
                            self.call_media.stats.remove(&peer);
                            self.call_media.video.remove(&peer);
                        }
                    }
                }
                if state == "declined" {
                    self.notice(&room, format!("{name} declined the call"), false);
                }
            }
            ClientEvent::Camera { on, available } => self.camera = CameraState { on, available },
            ClientEvent::CallMedia { room, peer, camera, muted } => {
                if let Some(c) = self.calls.get_mut(&room)
                    && (c.members.contains(&peer) || c.media.contains_key(&peer) || c.media.len() < 64)
                {
                    c.media.insert(peer, MemberMedia { camera, muted });
                }
            }
            ClientEvent::Devices { inputs, outputs, cameras, .. } => {
                let pairs = |v: Vec<[String; 2]>| v.into_iter().map(|[n, d]| (n, d)).collect();
                self.devices = Some(DeviceLists {
                    inputs: pairs(inputs),
                    outputs: pairs(outputs),
                    cameras: pairs(cameras),
                });
            }
            ClientEvent::MediaStats { peer, audio, video, rtt_ms } => {
                let in_call =
                    self.calls.values().any(|c| c.phase == CallPhase::Joined && c.members.contains(&peer));
                if in_call {
                    match video {
                        Some(v) => self.call_media.video.insert(peer.clone(), v),
                        None => self.call_media.video.remove(&peer),
                    };
                    match rtt_ms {
                        Some(rtt) => self.call_media.rtt_ms.insert(peer.clone(), rtt),
                        None => self.call_media.rtt_ms.remove(&peer),
                    };
                    self.call_media.stats.insert(peer, audio);
                }
            }
            ClientEvent::Disconnected { reason } => {
                self.connection = Some(Connection::Reconnecting { reason });
                for p in self.peers.values_mut() {
                    p.secure = false;
                }
            }
            ClientEvent::Hosting { addr, hub_fingerprint, lan } => {
                self.hosting = Some(Hosting {
                    addr,
                    hub_fingerprint,
                    lan,
                    public: PublicAddress::Asking,
                    invitation: None,
                });
            }
            ClientEvent::Invite { link, .. } => {
                if let Some(h) = &mut self.hosting {
                    h.invitation = Invitation::parse(&link).ok();
                    h.add_public_to_invitation();
                }
            }
            ClientEvent::PublicAddress { addr, via } => {
                if let Some(h) = &mut self.hosting {
                    h.public = PublicAddress::Found { addr, via };
                    h.add_public_to_invitation();
                }
            }
            ClientEvent::Joined { room } => {
                self.room_mut(&room).joined = true;
            }
            ClientEvent::PeerJoined { room, peer, name } => {
                let p = self.peer_mut(&peer);
                p.name = name.clone();
                p.rooms.insert(room.clone());
                if self.room_mut(&room).members.insert(peer) {
                    self.notice(&room, format!("{name} joined"), false);
                }
            }
            ClientEvent::PeerLeft { room, peer, name } => {
                if let Some(p) = self.peers.get_mut(&peer) {
                    p.rooms.remove(&room);
                    if p.rooms.is_empty() {
                        p.secure = false;
                    }
                }
                if self.room_mut(&room).members.remove(&peer) {
                    self.notice(&room, format!("{name} left"), false);
                }
            }
            ClientEvent::PeerSecure {
                peer,
                name,
                safety_number,
                sas,
                sas_words,
                sas_digits,
                verified,
                identity_changed,
            } => {
                let p = self.peer_mut(&peer);
                p.name = name;
                p.secure = true;
                p.verified = verified;
                p.identity_changed = identity_changed;
                p.safety_number = safety_number;
                p.sas_emoji = sas;
                p.sas_words = sas_words;
                p.sas_digits = sas_digits;
            }
            ClientEvent::IdentityChanged { name, old, new } => {
                let p = self.peer_mut(&new);
                p.name = name.clone();
                p.identity_changed = true;
                p.verified = false;
                p.replaced = Some(old);
                let rooms: Vec<String> = p.rooms.iter().cloned().collect();
                for room in rooms {
                    let text = format!(
                        "{name}'s identity changed. It may be a new device or a reinstall, or \
                         someone impersonating {name}. Compare safety numbers before you send."
                    );
                    self.notice(&room, text, true);
                }
            }
            ClientEvent::Verified { peer, verified } => {
                let p = self.peer_mut(&peer);
                p.verified = verified;
                if verified {
                    p.identity_changed = false;
                }
            }
            ClientEvent::ChangeAcknowledged { peer } => {
                self.peer_mut(&peer).identity_changed = false;
            }
            ClientEvent::Peers { peers } => {
                for s in peers {
                    let p = self.peer_mut(&s.peer);
                    p.name = s.name;
                    p.secure = s.secure;
                    p.verified = s.verified;
                    p.identity_changed = s.identity_changed;
                    p.safety_number = s.safety_number;
                    p.link = s.link;
                }
            }
            ClientEvent::FileSending { .. }
            | ClientEvent::FileOffered { .. }
            | ClientEvent::FileProgress { .. }
            | ClientEvent::FileReceived { .. }
            | ClientEvent::FileSent { .. }
            | ClientEvent::FileFailed { .. } => {
                self.files.apply(&ev, now_ms);
            }
            ClientEvent::FileOffer { ref from, ref name, size, .. } => {
                let who = self.peers.get(from).map(|p| p.name.clone()).unwrap_or_else(|| from.clone());
                let text = format!("{who} offers {name} ({})", super::files::human_bytes(size));
                self.files.apply(&ev, now_ms);
                return Some(Incoming { room: String::new(), name: who, text });
            }
            ClientEvent::Link { peer, kind, rtt_ms } => {
                let p = self.peer_mut(&peer);
                p.link = kind;
                p.rtt_ms = rtt_ms;
            }
            ClientEvent::Message { id, room, from, name, text, sent_at, expires_at, unconfirmed } => {
                let looking = viewing == Some(room.as_str());
                self.by_id.insert(id.clone(), room.clone());
                self.note_expiry(expires_at);
                self.push(
                    &room,
                    Message {
                        id: Some(id),
                        from: Some(from),
                        name: name.clone(),
                        newlines: text.matches('\n').count(),
                        body: Body::Text(text.clone()),
                        at_ms: sent_at,
                        expires_at,
                        delivery: None,
                        tag: None,
                        seq: 0,
                        unconfirmed,
                    },
                );
                if !looking {
                    self.room_mut(&room).unread += 1;
                    // A notification outlives the message in the desktop's history: a
                    // disappearing one is announced without its words, and one from an
                    // unconfirmed key without the name it borrowed being taken at its word.
                    let text = match expires_at {
                        Some(_) => DISAPPEARING_NOTICE.to_string(),
                        None => text,
                    };
                    let name = if unconfirmed { format!("{name} (unconfirmed key)") } else { name };
                    return Some(Incoming { room, name, text });
                }
            }
            ClientEvent::Sent { id, room, recipients, sent_at, expires_at, tag } => {
                let found = tag.and_then(|t| self.take_pending(&t));
                self.by_id.insert(id.clone(), room.clone());
                self.note_expiry(expires_at);
                let delivery = Delivery::Sent { recipients, delivered: BTreeSet::new() };
                match found.and_then(|(r, i)| self.rooms.get_mut(&r).map(|room| (room, i))) {
                    Some((r, i)) => {
                        let m = &mut r.messages[i];
                        m.id = Some(id);
                        m.tag = None;
                        m.at_ms = sent_at;
                        m.expires_at = expires_at;
                        m.delivery = Some(delivery);
                    }
                    // Sent by another front-end on this core: show it without text.
                    None => tracing::debug!(%id, "sent without a pending row"),
                }
            }
            ClientEvent::Delivered { id, to } => {
                if let Some(m) = self.find_mut(&id)
                    && let Some(Delivery::Sent { delivered, .. }) = &mut m.delivery
                {
                    delivered.insert(to);
                }
            }
            ClientEvent::Expired { id } => {
                if let Some(room) = self.by_id.remove(&id)
                    && let Some(r) = self.rooms.get_mut(&room)
                {
                    r.messages.retain(|m| m.id.as_deref() != Some(id.as_str()));
                }
            }
            ClientEvent::Error { code, message, fatal, tag } => {
                if let Some((room, i)) = tag.and_then(|t| self.take_pending(&t)) {
                    if let Some(m) = self.rooms.get_mut(&room).and_then(|r| r.messages.get_mut(i)) {
                        m.tag = None;
                        m.delivery = Some(Delivery::Failed { reason: message });
                    }
                } else if fatal {
                    self.fatal = Some(Fatal { code, message });
                } else if code == "ice_server" {
                    // A STUN/TURN server that does not help only matters where servers are set.
                    self.ice_problems.retain(|p| p != &message);
                    self.ice_problems.push(message);
                    if self.ice_problems.len() > 4 {
                        self.ice_problems.remove(0);
                    }
                } else if code == "media" {
                    // Shown in the call bar: "no microphone … receive-only" and the like.
                    self.call_media.problems.retain(|p| p != &message);
                    self.call_media.problems.push(message);
                    if self.call_media.problems.len() > 4 {
                        self.call_media.problems.remove(0);
                    }
                } else if code == "stun_failed" {
                    if let Some(h) = &mut self.hosting {
                        h.public = PublicAddress::Unknown { why: message };
                    }
                } else {
                    self.notices.push(message);
                    if self.notices.len() > MAX_NOTICES {
                        self.notices.remove(0);
                    }
                }
            }
        }
        None
    }

    fn take_pending(&mut self, tag: &str) -> Option<(String, usize)> {
        let room = self.pending.remove(tag)?;
        let r = self.rooms.get(&room)?;
        let i = r.messages.iter().rposition(|m| m.tag.as_deref() == Some(tag))?;
        Some((room, i))
    }

    fn find_mut(&mut self, id: &str) -> Option<&mut Message> {
        let room = self.by_id.get(id)?;
        self.rooms.get_mut(room)?.messages.iter_mut().rev().find(|m| m.id.as_deref() == Some(id))
    }

    /// Appends to `room`, forgetting the ids of what the history cap pushed out.
    fn push(&mut self, room: &str, m: Message) {
        for id in self.room_mut(room).push(m) {
            self.by_id.remove(&id);
        }
    }

    fn room_mut(&mut self, name: &str) -> &mut Room {
        self.rooms
            .entry(name.to_string())
            .or_insert_with(|| Room { name: name.to_string(), ..Default::default() })
    }

    fn peer_mut(&mut self, fp: &str) -> &mut Peer {
        self.peers
            .entry(fp.to_string())
            .or_insert_with(|| Peer { fingerprint: fp.to_string(), ..Default::default() })
    }

    fn notice(&mut self, room: &str, text: String, warning: bool) {
        let now = self.now_ms;
        self.push(
            room,
            Message {
                id: None,
                from: None,
                name: String::new(),
                newlines: 0,
                body: Body::Notice { text, warning },
                at_ms: now,
                expires_at: None,
                delivery: None,
                tag: None,
                seq: 0,
                unconfirmed: false,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(id: &str, room: &str, text: &str, expires_at: Option<u64>) -> ClientEvent {
        ClientEvent::Message {
            id: id.into(),
            room: room.into(),
            from: "bobfp".into(),
            name: "bob".into(),
            text: text.into(),
            sent_at: 1_000,
            expires_at,
            unconfirmed: false,
        }
    }

    #[test]
    fn the_invitation_gains_the_public_address_whichever_comes_first() {
        use crate::core::IdentityKey;
        let inv = Invitation {
            hubs: vec!["192.168.1.5:7070".into()],
            hub_key: IdentityKey([1; 32]),
            inviter: IdentityKey([2; 32]),
            inviter_name: "alice".into(),
            password: None,
        };
        let hosting =
            ClientEvent::Hosting { addr: "0.0.0.0:7070".into(), hub_fingerprint: "f".into(), lan: vec![] };
        let invite = ClientEvent::Invite { link: inv.to_link(), text: inv.to_text() };
        let public = ClientEvent::PublicAddress { addr: "203.0.113.9:7070".into(), via: "stun".into() };
        for order in [[invite.clone(), public.clone()], [public, invite]] {
            let mut m = Model::default();
            m.apply(hosting.clone(), None, 1);
            for e in order {
                m.apply(e, None, 1);
            }
            let hubs = &m.hosting.as_ref().and_then(|h| h.invitation.as_ref()).expect("an invitation").hubs;
            assert_eq!(hubs, &["192.168.1.5:7070", "203.0.113.9:7070"], "LAN first, then public");
        }
    }

    #[test]
    fn unread_counts_only_rooms_not_on_screen() {
        let mut m = Model::default();
        assert!(m.apply(message("1", "general", "hi", None), Some("general"), 1).is_none());
        let inc = m.apply(message("2", "random", "psst", None), Some("general"), 2).unwrap();
        assert_eq!(inc, Incoming { room: "random".into(), name: "bob".into(), text: "psst".into() });
        // Window in the background: nothing is on screen.
        m.apply(message("3", "general", "there?", None), None, 3).unwrap();
        assert_eq!((m.room("general").unwrap().unread, m.room("random").unwrap().unread), (1, 1));
        m.mark_read("general");
        assert_eq!(m.total_unread(), 1);
    }

    #[test]
    fn a_room_keeps_a_bounded_history_and_forgets_the_ids_it_dropped() {
        let mut m = Model::default();
        let n = MAX_ROOM_MESSAGES + MAX_ROOM_MESSAGES / 8 + 1;
        for i in 0..n {
            m.apply(message(&i.to_string(), "general", "flood", None), Some("general"), 1);
        }
        let room = m.room("general").unwrap();
        assert_eq!(room.messages.len(), MAX_ROOM_MESSAGES);
        assert_eq!(room.messages[0].id.as_deref(), Some((n - MAX_ROOM_MESSAGES).to_string().as_str()));
        assert!(!m.by_id.contains_key("0"));
        assert_eq!(m.by_id.len(), MAX_ROOM_MESSAGES);
    }

    #[test]
    fn a_message_from_an_unconfirmed_key_is_marked_and_announced_as_such() {
        let mut m = Model::default();
        let mut ev = message("1", "general", "it's me, send the code", None);
        if let ClientEvent::Message { unconfirmed, .. } = &mut ev {
            *unconfirmed = true;
        }
        let inc = m.apply(ev, Some("random"), 1).unwrap();
        assert_eq!(inc.name, "bob (unconfirmed key)");
        assert!(m.room("general").unwrap().messages[0].unconfirmed);
    }

    #[test]
    fn a_disappearing_message_is_announced_without_its_words() {
        let mut m = Model::default();
        let inc = m.apply(message("1", "random", "door code 4711", Some(60_000)), None, 2).unwrap();
        assert_eq!(inc.text, DISAPPEARING_NOTICE);
        assert_eq!(m.room("random").unwrap().messages[0].text(), "door code 4711");
    }

    #[test]
    fn replies_match_sends_by_tag_whatever_the_order() {
        let mut m = Model::default();
        let t1 = m.outgoing("general", "one", 10, None);
        let t2 = m.outgoing("general", "two", 11, Some(60));
        let sent = |id: &str, tag: &str| ClientEvent::Sent {
            id: id.into(),
            room: "general".into(),
            recipients: 2,
            sent_at: 12,
            expires_at: None,
            tag: Some(tag.into()),
        };
        m.apply(sent("b", &t2), None, 12);
        m.apply(
            ClientEvent::Error {
                code: "outbox_full".into(),
                message: "full".into(),
                fatal: false,
                tag: Some(t1),
            },
            None,
            13,
        );
        m.apply(ClientEvent::Delivered { id: "b".into(), to: "x".into() }, None, 14);
        let msgs = &m.room("general").unwrap().messages;
        assert_eq!(msgs[0].delivery, Some(Delivery::Failed { reason: "full".into() }));
        assert_eq!(msgs[1].id.as_deref(), Some("b"));
        assert!(
            matches!(&msgs[1].delivery, Some(Delivery::Sent { recipients: 2, delivered }) if delivered.len() == 1)
        );
        assert!(m.notices.is_empty(), "a send error is shown on its message, not as a notice");
    }

    #[test]
    fn expired_messages_go_even_without_the_cores_word() {
        let mut m = Model::default();
        m.apply(message("1", "general", "keep", None), None, 0);
        m.apply(message("2", "general", "poof", Some(5_000)), None, 0);
        let tag = m.outgoing("general", "refused", 0, Some(3));
        m.fail_send(&tag, "core stopped");
        assert_eq!(m.next_expiry(), Some(3_000));
        m.sweep_expired(2_999);
        assert_eq!(m.room("general").unwrap().messages.len(), 3);
        m.sweep_expired(3_000);
        assert_eq!(m.room("general").unwrap().messages.len(), 2);
        assert_eq!(m.next_expiry(), Some(5_000));
        m.apply(ClientEvent::Expired { id: "2".into() }, None, 4_000);
        m.sweep_expired(6_000);
        let left: Vec<&str> = m.room("general").unwrap().messages.iter().map(|m| m.text()).collect();
        assert_eq!(left, ["keep"]);
        assert_eq!(m.next_expiry(), None);
        // Swept locally: its receipt index goes too.
        m.apply(message("5", "general", "brief", Some(7_000)), None, 6_000);
        m.sweep_expired(7_000);
        assert!(!m.by_id.contains_key("5"));
    }

    #[test]
    fn identity_change_blocks_the_room_until_acknowledged_or_verified() {
        let mut m = Model::default();
        m.apply(
            ClientEvent::PeerJoined { room: "general".into(), peer: "new".into(), name: "bob".into() },
            None,
            0,
        );
        m.apply(
            ClientEvent::IdentityChanged { name: "bob".into(), old: "old".into(), new: "new".into() },
            None,
            0,
        );
        assert_eq!(m.unacknowledged_in("general").len(), 1);
        assert!(
            m.room("general")
                .unwrap()
                .messages
                .iter()
                .any(|x| matches!(x.body, Body::Notice { warning: true, .. }))
        );
        m.apply(ClientEvent::ChangeAcknowledged { peer: "new".into() }, None, 0);
        assert!(m.unacknowledged_in("general").is_empty());
        m.apply(
            ClientEvent::IdentityChanged { name: "bob".into(), old: "old".into(), new: "new".into() },
            None,
            0,
        );
        m.apply(ClientEvent::Verified { peer: "new".into(), verified: true }, None, 0);
        assert!(m.unacknowledged_in("general").is_empty());
    }
}
