//! Commands from the front-ends: send, verify, peers, rooms.

use super::*;

impl Client {
    pub fn handle_command(&mut self, now: Now, cmd: ClientCommand) {
        match cmd {
            ClientCommand::Send { room, text, expires_in_s, tag } => {
                self.send_chat(now, SendRequest { room, text, expires_in_s, tag })
            }
            ClientCommand::Verify { peer, verified } => match self.resolve(&peer) {
                Some(key) if self.known.set_verified(&key, verified) => {
                    self.out.push_back(ClientOutput::SaveKnownPeers(self.known.clone()));
                    self.emit(ClientEvent::Verified { peer: key.fingerprint().to_string(), verified });
                    self.release_held(now, key);
                }
                _ => self.emit(ClientEvent::error("unknown_peer", format!("no secure peer {peer}"))),
            },
            ClientCommand::AcknowledgeChange { peer } => match self.resolve(&peer) {
                Some(key) => {
                    self.known.acknowledge_change(&key);
                    self.out.push_back(ClientOutput::SaveKnownPeers(self.known.clone()));
                    self.emit(ClientEvent::ChangeAcknowledged { peer: key.fingerprint().to_string() });
                    self.release_held(now, key);
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
                self.send_join(room);
            }
            ClientCommand::Leave { room } => {
                self.config.rooms.retain(|r| r != &room);
                self.joined.remove(&room);
                self.send_hub(&ClientToHub::Leave { room: room.clone() });
                let keys: Vec<_> = self.peers.keys().copied().collect();
                for key in keys {
                    // Said inside the session, so a peer whose link to us outlives the hub's
                    // view of us knows this departure is real.
                    if self.peers.get(&key).is_some_and(|p| p.rooms.contains(&room)) {
                        self.send_signal(key, &PeerMsg::Left { room: room.clone() });
                    }
                    self.remove_member(&room, key, Departure::Ours);
                }
            }
            // File transfers belong to the net layer, which handles these before the client.
            ClientCommand::SendFile { .. }
            | ClientCommand::AcceptFile { .. }
            | ClientCommand::DeclineFile { .. }
            | ClientCommand::CancelFile { .. } => {}
            // So do calls, in the core's call machine.
            ClientCommand::Call { .. }
            | ClientCommand::Hangup
            | ClientCommand::DeclineCall { .. }
            | ClientCommand::Devices
            | ClientCommand::UseDevices { .. }
            | ClientCommand::MicTest { .. }
            | ClientCommand::AudioProcessing { .. }
            | ClientCommand::Volume { .. }
            | ClientCommand::Mute { .. }
            | ClientCommand::Deafen { .. }
            | ClientCommand::Camera { .. }
            | ClientCommand::UseCamera { .. } => {}
            ClientCommand::Quit => {}
        }
    }

    /// A fingerprint (or a unique display name) to a key.
    pub(super) fn resolve(&self, who: &str) -> Option<IdentityKey> {
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
                secure: p.is_secure(),
                verified: self.known.get(&p.key).is_some_and(|k| k.verified),
                safety_number: p.safety_number(&self.me).to_string(),
                pending: p.out.pending(),
                identity_changed: self.known.get(&p.key).is_some_and(|k| k.replaced.is_some()),
                link: p.link.kind,
                rtt_ms: p.link.rtt_ms,
                capabilities: wire::caps::names(p.caps),
                dropped_packets: p.dropped_packets,
                ignored_messages: p.ignored_messages,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name).then(a.peer.cmp(&b.peer)));
        v
    }

    pub(super) fn send_chat(&mut self, now: Now, req: SendRequest) {
        let SendRequest { room, text, expires_in_s, tag } = req;
        let refuse = |code: &str, message: String| ClientEvent::Error {
            code: code.into(),
            message,
            fatal: false,
            tag: tag.clone(),
        };
        if tag.as_ref().is_some_and(|t| t.len() > MAX_TAG) {
            return self.emit(refuse("bad_tag", format!("tags are at most {MAX_TAG} bytes")));
        }
        if !self.joined.contains(&room) {
            return self.emit(refuse("not_in_room", format!("you have not joined {room:?}")));
        }
        if text.is_empty() || text.len() > MAX_TEXT {
            return self.emit(refuse("bad_text", format!("text must be 1 to {MAX_TEXT} bytes")));
        }
        let expires_at_ms = match expires_in_s {
            Some(0) => return self.emit(refuse("bad_expiry", "expires_in_s must be at least 1".into())),
            Some(s) => Some(now.unix_ms.saturating_add(s.saturating_mul(1000))),
            None => None,
        };
        let recipients: Vec<IdentityKey> =
            self.peers.values().filter(|p| p.rooms.contains(&room)).map(|p| p.key).collect();
        // A member whose key changed under a known name may be an impersonator: nothing goes to
        // the room until the user has looked at the new identity and accepted it.
        let changed: Vec<String> = recipients
            .iter()
            .filter(|k| self.known.get(k).is_some_and(|p| p.replaced.is_some()))
            .map(|k| self.peers.get(k).map(|p| p.name.clone()).unwrap_or_default())
            .collect();
        if !changed.is_empty() {
            let message = format!(
                "the identity of {} changed; acknowledge the change before sending",
                changed.join(", ")
            );
            return self.emit(refuse("identity_unacknowledged", message));
        }
        // A member with too much of ours undelivered (it never acknowledges: a broken or hostile
        // peer) is left out of this message, said so, and the rest of the room still gets it.
        let (recipients, full): (Vec<IdentityKey>, Vec<IdentityKey>) = recipients
            .into_iter()
            .partition(|k| self.peers.get(k).is_some_and(|p| p.out.has_room_for(text.len())));
        if !full.is_empty() {
            let names: Vec<String> =
                full.iter().map(|k| self.peers.get(k).map(|p| p.name.clone()).unwrap_or_default()).collect();
            let message = format!(
                "not queued for {}: too many of your messages to them are still undelivered",
                names.join(", ")
            );
            if recipients.is_empty() {
                return self.emit(refuse("outbox_full", message));
            }
            // Not tagged: the message itself went out (a tagged error would mark it failed).
            self.emit(ClientEvent::error("outbox_full", message));
        }
        let mut id = [0u8; 16];
        self.rng.fill_bytes(&mut id);
        let msg = ChatMessage {
            id: MessageId(id),
            seq: 0,
            room: room.clone(),
            text: text.clone(),
            sent_at_ms: now.unix_ms,
            expires_at_ms,
        };
        // Our own random id cannot collide in practice; if it did, the message still goes out.
        let _ = self.store(StoredMessage {
            id: msg.id,
            room: room.clone(),
            from: self.me,
            text,
            sent_at_ms: now.unix_ms,
            expires_at_ms,
        });
        tracing::debug!(id = %msg.id, recipients = recipients.len(), bytes = msg.text.len(), "message queued");
        self.emit(ClientEvent::Sent {
            id: msg.id.to_string(),
            room,
            recipients: recipients.len(),
            sent_at: now.unix_ms,
            expires_at: expires_at_ms,
            tag,
        });
        for key in recipients {
            let Some(peer) = self.peers.get_mut(&key) else { continue };
            if peer.out.pending() == 0 {
                peer.last_resend = Some(now.at);
            }
            peer.out.push(msg.clone());
            if peer.is_secure() {
                for m in peer.out.take_sendable(SEND_WINDOW) {
                    self.seal_and_relay(key, &m);
                }
            }
        }
    }
}

/// A `send` command's fields.
pub(super) struct SendRequest {
    pub room: String,
    pub text: String,
    pub expires_in_s: Option<u64>,
    pub tag: Option<String>,
}

/// Front-end tags are labels, not payloads.
pub const MAX_TAG: usize = 64;
