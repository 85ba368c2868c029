//! What the window shows, built only from the core's events: rooms, members, messages and
//! their delivery state. Pure data, so it is tested without a window and the views only read
//! it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::protocol::events::ClientEvent;

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
    /// Laid-out height at `height_width`, for the virtual list (see `ui::chat`).
    pub height: Option<(f32, f32)>,
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
}

/// What a new message should tell a user who is not looking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub room: String,
    pub name: String,
    pub text: String,
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
    pub fatal: Option<Fatal>,
    /// Our sends by tag until `sent` or `error` answers.
    pending: HashMap<String, String>,
    /// Message id → room, for receipts and expiry.
    by_id: HashMap<String, String>,
    next_tag: u64,
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
        let r = self.room_mut(room);
        r.messages.push(Message {
            id: None,
            from: None,
            name,
            body: Body::Text(text.to_string()),
            at_ms: now_ms,
            expires_at: expires_in_s.map(|s| now_ms.saturating_add(s.saturating_mul(1000))),
            delivery: Some(Delivery::Sending),
            tag: Some(tag.clone()),
            height: None,
        });
        tag
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
            ClientEvent::Disconnected { reason } => {
                self.connection = Some(Connection::Reconnecting { reason });
                for p in self.peers.values_mut() {
                    p.secure = false;
                }
            }
            ClientEvent::Hosting { addr, hub_fingerprint, lan } => {
                self.hosting = Some(Hosting { addr, hub_fingerprint, lan, public: PublicAddress::Asking });
            }
            ClientEvent::PublicAddress { addr, via } => {
                if let Some(h) = &mut self.hosting {
                    h.public = PublicAddress::Found { addr, via };
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
                }
            }
            ClientEvent::Message { id, room, from, name, text, sent_at, expires_at } => {
                let looking = viewing == Some(room.as_str());
                self.by_id.insert(id.clone(), room.clone());
                let r = self.room_mut(&room);
                r.messages.push(Message {
                    id: Some(id),
                    from: Some(from),
                    name: name.clone(),
                    body: Body::Text(text.clone()),
                    at_ms: sent_at,
                    expires_at,
                    delivery: None,
                    tag: None,
                    height: None,
                });
                if !looking {
                    r.unread += 1;
                    return Some(Incoming { room, name, text });
                }
            }
            ClientEvent::Sent { id, room, recipients, sent_at, expires_at, tag } => {
                let found = tag.and_then(|t| self.take_pending(&t));
                self.by_id.insert(id.clone(), room.clone());
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
        self.room_mut(room).messages.push(Message {
            id: None,
            from: None,
            name: String::new(),
            body: Body::Notice { text, warning },
            at_ms: now,
            expires_at: None,
            delivery: None,
            tag: None,
            height: None,
        });
    }
}
