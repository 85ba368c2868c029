//! Room members and their end-to-end sessions: handshakes, established sessions, and the chat
//! traffic inside them.

use super::*;

impl Client {
    pub(super) fn add_member(&mut self, now: Now, room: &str, mut m: MemberInfo) {
        // Members of a room we are not in are no business of ours (a hub inventing rooms).
        if m.key == self.me || !self.joined.contains(room) {
            return;
        }
        // The hub says what the member is called until its own intro does: held to the same
        // rules, since a hostile hub could send anything (D26).
        m.name = sanitize_name(&m.name)
            .unwrap_or_else(|| format!("member {}", &m.key.fingerprint().to_string()[..8]));
        if !self.peers.contains_key(&m.key) && !self.make_room_for_peer(room) {
            return;
        }
        let stream = self.stream;
        let peer = self.peers.entry(m.key).or_insert_with(|| Peer {
            key: m.key,
            name: m.name.clone(),
            rooms: BTreeSet::new(),
            hub_absent: BTreeSet::new(),
            session: None,
            handshake: None,
            previous: None,
            next_rehandshake: None,
            remote_stream: None,
            caps: 0,
            dropped_packets: 0,
            ignored_messages: 0,
            next_attempt: None,
            last_resend: None,
            out: Outgoing::new(stream),
            inc: Incoming::default(),
            safety: Default::default(),
            link: Default::default(),
        });
        // A name from the hub stands only until the peer's own intro.
        if peer.session.is_none() {
            peer.name = m.name.clone();
        }
        peer.hub_absent.remove(room);
        let newly = peer.rooms.insert(room.to_string());
        if newly && peer.session.is_none() && self.me > m.key {
            // The lower key normally starts; we only step in if it has not after a grace period.
            // (Deciding by keys alone would let a hub that lies about keys make both sides wait.)
            let grace = now.at + INITIATOR_GRACE;
            peer.next_attempt = Some(peer.next_attempt.map_or(grace, |t| t.max(grace)));
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

    /// Whether one more peer fits in `room` and in total, forgetting a departed peer when
    /// the total is full. Every peer costs a handshake, a session and a row, and a hostile
    /// hub can announce members with made-up keys without end.
    fn make_room_for_peer(&mut self, room: &str) -> bool {
        let in_room = self.peers.values().filter(|p| p.rooms.contains(room)).count();
        let fits = in_room < MAX_ROOM_MEMBERS
            && (self.peers.len() < MAX_PEERS || {
                // Someone who left everything we share, with nothing of ours undelivered first.
                let departed = |p: &&Peer| p.rooms.is_empty() && p.hub_absent.is_empty();
                let gone =
                    self.peers.values().filter(departed).min_by_key(|p| p.out.pending()).map(|p| p.key);
                gone.map(|k| self.peers.remove(&k)).is_some()
            });
        if !fits && !self.crowd_warned {
            self.crowd_warned = true;
            let message = format!(
                "the hub announced more members than Kith keeps ({MAX_ROOM_MEMBERS} a room, {MAX_PEERS} in all); \
                 the rest are not shown and get no messages"
            );
            self.emit(ClientEvent::error("too_many_members", message));
        }
        fits
    }

    pub(super) fn remove_member(&mut self, room: &str, key: IdentityKey, by: Departure) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.rooms.contains(room) {
            return;
        }
        let outlives_hub = peer.caps & wire::caps::LINK_OUTLIVES_HUB != 0;
        if by == Departure::HubSays && peer.link.open && peer.session.is_some() && outlives_hub {
            tracing::debug!(peer = %key.fingerprint(), room, "the hub lost sight of a peer on a direct link");
            peer.hub_absent.insert(room.to_string());
            return;
        }
        peer.rooms.remove(room);
        peer.hub_absent.remove(room);
        let event = ClientEvent::PeerLeft {
            room: room.to_string(),
            peer: key.fingerprint().to_string(),
            name: peer.name.clone(),
        };
        if peer.rooms.is_empty() {
            self.drop_link(key);
            if let Some(p) = self.peers.get_mut(&key) {
                p.end_sessions();
            }
            let gone = if by == Departure::HubSays { Gone::OutOfSight } else { Gone::Left };
            self.out.push_back(ClientOutput::PeerGone { peer: key, gone });
        }
        self.emit(event);
    }

    /// The rooms the hub stopped listing `key` in while its link was open: now that the link
    /// is gone, the hub's word stands.
    pub(super) fn apply_hub_departures(&mut self, key: IdentityKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        let rooms = std::mem::take(&mut peer.hub_absent);
        for room in rooms {
            self.remove_member(&room, key, Departure::HubSays);
        }
    }

    /// Starts a handshake unless there is a session or one under way, or we are backing off.
    pub(super) fn maybe_initiate(&mut self, now: Now, key: IdentityKey) {
        let Some(peer) = self.peers.get(&key) else { return };
        // Handshakes go through the hub, or on the peer's open link.
        let path = matches!(self.link, Link::Up(_)) || peer.link.open;
        if !path
            || peer.rooms.is_empty()
            || peer.session.is_some()
            || peer.handshake.is_some()
            || peer.next_attempt.is_some_and(|t| now.at < t)
        {
            return;
        }
        self.initiate(now, key);
    }

    fn initiate(&mut self, now: Now, key: IdentityKey) {
        match PeerSession::initiate(now.at, &self.identity, &mut self.rng) {
            Ok((session, packet)) => {
                if let Some(p) = self.peers.get_mut(&key) {
                    p.handshake = Some(session);
                }
                self.send_both_ways(key, &packet);
            }
            Err(e) => tracing::warn!("cannot start session: {e}"),
        }
    }

    /// The peer says it holds no such session as ours (it restarted, or someone forged the
    /// Reset): a new handshake starts beside the session, which keeps carrying traffic until
    /// the new one completes. Rate-limited, so forged Resets cost little.
    fn rehandshake(&mut self, now: Now, key: IdentityKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if peer.handshake.is_some() || peer.next_rehandshake.is_some_and(|t| now.at < t) {
            return;
        }
        peer.next_rehandshake = Some(now.at + REHANDSHAKE_INTERVAL);
        tracing::debug!(peer = %key.fingerprint(), "the peer lost our session: handshaking again");
        self.initiate(now, key);
    }

    /// A packet from `from`, through the hub or (`direct`) on its link's chat channel.
    pub(super) fn on_peer_packet(&mut self, now: Now, from: IdentityKey, packet: PeerPacket, direct: bool) {
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
                if let Some(mine) = &peer.handshake
                    && mine.is_initiator_waiting()
                    && mine.id < session
                {
                    return;
                }
                // A copy of the first message of the session we hold (a replay): answering it
                // would only start a handshake nobody finishes.
                if peer.session.as_ref().is_some_and(|s| s.id == session) {
                    peer.dropped_packets += 1;
                    return;
                }
                // The second copy of a first message (they go both ways), or our own reflected
                // back at us: the handshake under way is that one already.
                if peer.handshake.as_ref().is_some_and(|h| h.id == session) {
                    return;
                }
                match PeerSession::respond(now.at, &self.identity, &mut self.rng, session, &noise) {
                    Ok((s, reply)) => {
                        if let Some(p) = self.peers.get_mut(&from) {
                            p.handshake = Some(s);
                        }
                        self.send_on_path(from, &reply, direct);
                    }
                    Err(e) => tracing::debug!("bad handshake from peer: {e}"),
                }
            }
            PeerPacket::Handshake { session, step, noise } => {
                let intro = peer.intro(&self.config.name);
                let Some(h) = peer.handshake.as_mut() else { return };
                match h.on_handshake(session, step, &noise, &from, &intro) {
                    Ok(Progress::Reply(reply)) => self.send_on_path(from, &reply, direct),
                    Ok(Progress::Established(done)) => {
                        let Some(new) = peer.handshake.take() else { return };
                        peer.previous = peer.session.replace(new);
                        if let Some(reply) = &done.reply {
                            self.send_on_path(from, reply, direct);
                        }
                        self.on_established(now, from, done.intro, done.sas);
                    }
                    Err(SessionError::StaleSession) => {}
                    // A forged or garbled intro: the handshake waits on for the real one.
                    Err(_) if !h.is_failed() => peer.dropped_packets += 1,
                    Err(e) => self.handshake_failed(now, from, e),
                }
            }
            PeerPacket::Data { session, noise } => {
                let s = [peer.session.as_mut(), peer.previous.as_mut()]
                    .into_iter()
                    .flatten()
                    .find(|s| s.id == session);
                let Some(s) = s else {
                    // The session whose last handshake message is still on its way (it took
                    // the other path): the sender will repeat this once we hold it.
                    if peer.handshake.as_ref().is_some_and(|h| h.id == session) {
                        peer.dropped_packets += 1;
                        return;
                    }
                    // They think a session exists that we do not hold: tell them to start over.
                    return self.send_on_path(from, &PeerPacket::Reset { session }, direct);
                };
                match s.open(session, &noise) {
                    Ok(msg) => self.on_peer_msg(now, from, msg, direct),
                    Err(SessionError::Unknown(e)) => {
                        peer.ignored_messages += 1;
                        tracing::debug!(peer = %from.fingerprint(), "message of an unknown kind ignored: {e}");
                    }
                    // Forged, replayed, reflected or garbled on the way: whoever did it could
                    // as well have dropped it, and the session stays.
                    Err(e) => {
                        peer.dropped_packets += 1;
                        tracing::debug!(peer = %from.fingerprint(), "packet that does not open dropped: {e}");
                    }
                }
            }
            PeerPacket::Reset { session } => {
                if peer.session.as_ref().is_some_and(|s| s.id == session) {
                    self.rehandshake(now, from);
                }
            }
        }
    }

    pub(super) fn handshake_failed(&mut self, now: Now, from: IdentityKey, e: SessionError) {
        let Some(peer) = self.peers.get_mut(&from) else { return };
        peer.handshake = None;
        if let SessionError::KeyMismatch { expected, actual } = &e {
            peer.next_attempt = Some(now.at + MISMATCH_BACKOFF);
            let message = format!(
                "{} announced by the hub as {} authenticated as {}: the hub may be substituting keys",
                peer.name,
                expected.fingerprint(),
                actual.fingerprint()
            );
            self.emit(ClientEvent::error("peer_key_mismatch", message));
        } else {
            peer.next_attempt = Some(now.at + RETRY_BACKOFF);
            tracing::debug!("session with {:?} failed: {e}", from);
        }
    }

    pub(super) fn on_established(&mut self, now: Now, key: IdentityKey, mut intro: wire::Intro, sas: Sas) {
        // The peer chose its own name; hold it to the rules the hub applies to names.
        let hub_name = self.peers.get(&key).map(|p| p.name.clone()).unwrap_or_default();
        intro.name = sanitize_name(&intro.name).unwrap_or(hub_name);
        tracing::debug!(peer = %key.fingerprint(), "peer session established");
        let sighting = self.known.sighted(key, &intro.name, now.unix_ms);
        if let Sighting::IdentityChanged { old } = sighting {
            self.emit(ClientEvent::IdentityChanged {
                name: intro.name.clone(),
                old: old.fingerprint().to_string(),
                new: key.fingerprint().to_string(),
            });
        }
        self.out.push_back(ClientOutput::SaveKnownPeers(self.known.clone()));
        let verified = self.known.get(&key).is_some_and(|k| k.verified);
        let identity_changed = self.known.get(&key).is_some_and(|k| k.replaced.is_some());
        let Some(peer) = self.peers.get_mut(&key) else { return };
        // The same process on the other side (same stream) holding open the same link as we
        // do: that link stays. A new stream means the peer restarted and lost its side; a
        // link only one side holds is made again by both.
        let keep_link = peer.link.open
            && peer.remote_stream == Some(intro.stream)
            && intro.open_link.is_some()
            && intro.open_link == peer.link.id;
        let before = peer.remote_stream.replace(intro.stream);
        peer.caps = intro.caps;
        peer.inc.on_intro(&intro);
        peer.name = intro.name.clone();
        peer.last_resend = Some(now.at);
        peer.out.begin_session();
        let resend = peer.out.take_sendable(SEND_WINDOW);
        let safety_number = peer.safety_number(&self.me).to_string();
        match before {
            Some(s) if s != intro.stream => {
                self.out.push_back(ClientOutput::PeerGone { peer: key, gone: Gone::Restarted })
            }
            Some(_) => self.out.push_back(ClientOutput::PeerBack { peer: key }),
            None => {}
        }
        self.emit(ClientEvent::PeerSecure {
            peer: key.fingerprint().to_string(),
            name: intro.name,
            safety_number,
            sas: sas.emoji.join(" "),
            sas_words: sas.words.join(" "),
            sas_digits: sas.digits,
            verified,
            identity_changed,
        });
        if keep_link {
            tracing::debug!(peer = %key.fingerprint(), "new session on the open link");
        } else {
            // A new direct link for the new session.
            self.drop_link(key);
            self.out.push_back(ClientOutput::LinkWanted { peer: key, offerer: self.me < key });
        }
        for msg in resend {
            self.seal_and_relay(key, &msg);
        }
    }

    pub(super) fn seal_and_relay(&mut self, to: IdentityKey, msg: &PeerMsg) {
        // Messages queued for a member before its handshake showed a changed identity stay in
        // the outbox until the user accepts the new key (`release_held`): an impostor using a
        // friend's name must not collect them by finishing the handshake late.
        if matches!(msg, PeerMsg::Chat(_)) && self.known.get(&to).is_some_and(|k| k.replaced.is_some()) {
            tracing::debug!(peer = %to.fingerprint(), "message held until the identity change is acknowledged");
            return;
        }
        let Some(peer) = self.peers.get_mut(&to) else { return };
        let Some(s) = peer.session.as_mut().filter(|s| s.is_established()) else { return };
        match s.seal(msg) {
            Ok(packet) => self.send_packet(to, &packet),
            Err(e) => {
                tracing::warn!("cannot seal for peer: {e}");
                peer.session = None;
            }
        }
    }

    /// Sends what `seal_and_relay` held for `key`, now that its identity is accepted.
    pub(super) fn release_held(&mut self, now: Now, key: IdentityKey) {
        let Some(peer) = self.peers.get_mut(&key) else { return };
        if !peer.is_secure() {
            return;
        }
        peer.last_resend = Some(now.at);
        let mut again = peer.out.resend_in_flight(usize::MAX);
        again.extend(peer.out.take_sendable(SEND_WINDOW));
        for msg in again {
            self.seal_and_relay(key, &msg);
        }
    }

    pub(super) fn on_peer_msg(&mut self, now: Now, from: IdentityKey, msg: PeerMsg, direct: bool) {
        if let PeerMsg::Left { room } = msg {
            return self.remove_member(&room, from, Departure::Theirs);
        }
        if let PeerMsg::File(signal) = msg {
            self.out.push_back(ClientOutput::FileSignal { peer: from, signal });
            return;
        }
        if let PeerMsg::Call(signal) = msg {
            // Only about a room both of us are in: nobody else's calls reach the machine.
            let room = signal.room();
            let shared =
                self.joined.contains(room) && self.peers.get(&from).is_some_and(|p| p.rooms.contains(room));
            if shared {
                self.out.push_back(ClientOutput::CallSignal { peer: from, signal });
            }
            return;
        }
        if let PeerMsg::Link(signal) = msg {
            if signal.within_limits() {
                self.out.push_back(ClientOutput::LinkSignal { peer: from, signal, direct });
            } else {
                tracing::debug!(peer = %from.fingerprint(), "oversized link signal dropped");
            }
            return;
        }
        let Some(peer) = self.peers.get_mut(&from) else { return };
        if let PeerMsg::Ack { stream, next } = msg {
            let before = peer.out.pending();
            let delivered = peer.out.ack(stream, next);
            if peer.out.pending() < before {
                peer.last_resend = Some(now.at);
            }
            let more = peer.out.take_sendable(SEND_WINDOW);
            for id in delivered {
                self.emit(ClientEvent::Delivered { id: id.to_string(), to: from.fingerprint().to_string() });
            }
            for msg in more {
                self.seal_and_relay(from, &msg);
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
        let unconfirmed = self.known.get(&from).is_some_and(|k| k.replaced.is_some());
        if let Some(ack) = received.ack {
            self.seal_and_relay(from, &ack);
        }
        for m in received.deliver {
            // Only rooms we are in and the sender is in, and nothing already expired.
            let in_room = self.joined.contains(&m.room) && rooms.contains(&m.room);
            if m.expires_at_ms.is_some_and(|t| t <= now.unix_ms) || !in_room {
                continue;
            }
            let stored = self.store(StoredMessage {
                id: m.id,
                room: m.room.clone(),
                from,
                text: m.text.clone(),
                sent_at_ms: m.sent_at_ms,
                expires_at_ms: m.expires_at_ms,
            });
            if !stored {
                tracing::warn!(peer = %from.fingerprint(), id = %m.id, "message id already in use, dropped");
                continue;
            }
            self.emit(ClientEvent::Message {
                id: m.id.to_string(),
                room: m.room,
                from: from.fingerprint().to_string(),
                name: name.clone(),
                text: m.text,
                sent_at: m.sent_at_ms,
                expires_at: m.expires_at_ms,
                unconfirmed,
            });
        }
    }

    /// Keeps a message in memory (until it expires or the history cap pushes it out). Refuses
    /// an id already held: ids are chosen by senders, and one member must not be able to
    /// overwrite another's message.
    pub(super) fn store(&mut self, m: StoredMessage) -> bool {
        if self.messages.contains_key(&m.id) {
            return false;
        }
        if let Some(t) = m.expires_at_ms {
            self.expiries.insert((t, m.id));
        }
        self.history.push_back(m.id);
        self.messages.insert(m.id, m);
        while self.messages.len() > MAX_STORED_MESSAGES {
            let Some(oldest) = self.history.pop_front() else { break };
            if let Some(old) = self.messages.remove(&oldest)
                && let Some(t) = old.expires_at_ms
            {
                self.expiries.remove(&(t, oldest));
            }
        }
        // Expired ids linger in `history` until passed over; keep that bounded too.
        if self.history.len() > 2 * MAX_STORED_MESSAGES {
            let messages = &self.messages;
            self.history.retain(|id| messages.contains_key(id));
        }
        true
    }
}
