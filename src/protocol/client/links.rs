//! Which path sealed packets take to a peer: its direct link's chat data channel when that is
//! open, the hub otherwise.
//!
//! The packets are the same either way (sealed by the peer's Noise session, numbered by its
//! delivery stream), so switching paths loses nothing and duplicates nothing: a packet lost
//! with a failing link is resent through the hub by the outbox, a packet that arrives twice is
//! dropped by sequence number, and the receiver puts packets from both paths back in order.

use super::*;

impl Client {
    /// Sends signalling for `to`'s direct link inside its session: on the link itself when
    /// the link layer says it works (`direct`) and the peer takes signals there, through the
    /// hub otherwise (an ICE restart's signals: the link is what is broken).
    pub fn send_link_signal(&mut self, to: IdentityKey, signal: LinkSignal, direct: bool) {
        let Some(packet) = self.seal_signal(to, &PeerMsg::Link(signal)) else { return };
        self.send_on_path(to, &packet, direct);
    }

    /// Seals an unsequenced message for `to` and sends it the fastest way.
    pub(super) fn send_signal(&mut self, to: IdentityKey, msg: &PeerMsg) {
        if let Some(packet) = self.seal_signal(to, msg) {
            self.send_packet(to, &packet);
        }
    }

    /// For tests that play a newer peer: seals `plaintext` (which need not be a message this
    /// version knows) in `to`'s session and sends it the usual way.
    #[doc(hidden)]
    pub fn send_raw_to_peer(&mut self, to: IdentityKey, plaintext: &[u8]) {
        let Some(s) = self.peers.get_mut(&to).and_then(|p| p.session.as_mut()) else { return };
        if let Ok(packet) = s.seal_raw(plaintext) {
            self.send_packet(to, &packet);
        }
    }

    /// We are quitting: every open link is closed on both sides now, so peers do not wait for
    /// it to go quiet.
    /// The Close goes through the hub too: on the link it may wait behind a full send window
    /// (a transfer) that the quit cuts short.
    pub fn handle_quit(&mut self) {
        let open: Vec<(IdentityKey, Option<u64>)> =
            self.peers.values().filter(|p| p.link.open).map(|p| (p.key, p.link.id)).collect();
        for (key, link) in open {
            if let Some(link) = link {
                self.send_link_signal(key, LinkSignal::Close { link }, false);
            }
            self.drop_link(key);
        }
    }

    /// Sends file-transfer signalling inside `to`'s session, on the fastest path.
    pub fn send_file_signal(&mut self, to: IdentityKey, signal: FileSignal) {
        self.send_signal(to, &PeerMsg::File(signal));
    }

    /// Call control for one peer, if its version takes calls.
    pub fn send_call_signal(&mut self, to: IdentityKey, signal: CallSignal) {
        if self.peers.get(&to).is_some_and(|p| p.caps & wire::caps::CALLS != 0) {
            self.send_signal(to, &PeerMsg::Call(signal));
        }
    }

    /// Call control for every member of `room` we hold a session with.
    pub fn send_call_to_room(&mut self, room: &str, signal: CallSignal) {
        let members: Vec<IdentityKey> =
            self.peers.values().filter(|p| p.rooms.contains(room) && p.is_secure()).map(|p| p.key).collect();
        for key in members {
            self.send_call_signal(key, signal.clone());
        }
    }

    /// Whether we are in `room` (the hub said so).
    pub fn in_room(&self, room: &str) -> bool {
        self.joined.contains(room)
    }

    /// A random number from the client's generator (call ids).
    pub fn random_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    pub fn me(&self) -> IdentityKey {
        self.me
    }

    /// Seals an unsequenced message in `to`'s established session, if there is one.
    fn seal_signal(&mut self, to: IdentityKey, msg: &PeerMsg) -> Option<PeerPacket> {
        let s = self.peers.get_mut(&to)?.session.as_mut().filter(|s| s.is_established())?;
        s.seal(msg).map_err(|e| tracing::warn!("cannot seal signal: {e}")).ok()
    }

    /// The peer's key for a fingerprint or unique display name, if it has a session.
    pub fn secure_peer(&self, who: &str) -> Option<IdentityKey> {
        let key = self.resolve(who)?;
        let p = self.peers.get(&key)?;
        p.session.as_ref().filter(|s| s.is_established()).map(|_| key)
    }

    /// The chat channel of link number `link` to `peer` opened: its traffic moves there.
    pub fn handle_link_open(&mut self, now: Now, peer: IdentityKey, link: u64) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        p.link.open = true;
        p.link.id = Some(link);
        // Whatever waited for an ack through the hub goes again on the fast path; the
        // receiver drops what it already has.
        self.resend_now(now, peer);
    }

    /// The link layer reported the path to `peer`: keep its round trip, and announce the path
    /// if its kind changed.
    /// The round trip on the link to `peer`, when one is open and measured.
    pub fn link_rtt_ms(&self, peer: &IdentityKey) -> Option<u64> {
        self.peers.get(peer).filter(|p| p.link.open).and_then(|p| p.link.rtt_ms)
    }

    pub fn handle_link_kind(&mut self, peer: IdentityKey, kind: LinkKind, rtt_ms: Option<u64>) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if !p.link.open {
            return;
        }
        p.link.rtt_ms = rtt_ms.or(p.link.rtt_ms);
        if p.link.kind == kind {
            return;
        }
        p.link.kind = kind;
        self.emit(ClientEvent::Link { peer: peer.fingerprint().to_string(), kind, rtt_ms });
    }

    /// The direct link to `peer` closed or failed: back to the hub, and resend what it may have
    /// taken down with it. `error` is a failure the user must hear about (a DTLS certificate
    /// that does not match the signed fingerprint).
    pub fn handle_link_down(&mut self, now: Now, peer: IdentityKey, error: Option<String>) {
        if let Some(message) = error {
            self.emit(ClientEvent::error("link_fingerprint_mismatch", message));
        }
        let was_open = self.back_to_hub(peer);
        // What the hub said while the link kept the peer with us takes effect now.
        self.apply_hub_departures(peer);
        if was_open {
            self.resend_now(now, peer);
        }
    }

    /// Sends every unacknowledged message to `peer` again on the current path.
    pub(super) fn resend_now(&mut self, now: Now, peer: IdentityKey) {
        let Some(p) = self.peers.get_mut(&peer) else { return };
        if p.is_secure() && p.out.pending() > 0 {
            p.last_resend = Some(now.at);
            let again = p.out.resend_in_flight(RESEND_BATCH);
            for msg in again {
                self.seal_and_relay(peer, &msg);
            }
        }
    }

    /// A packet the chat channel would not take (its buffer is full, or it just closed): it
    /// goes through the hub instead. A closed link reports itself down separately.
    pub fn handle_direct_failed(&mut self, peer: IdentityKey, packet: Vec<u8>) {
        self.send_hub(&ClientToHub::Relay { to: peer, payload: packet });
    }

    /// A packet from `from`'s chat data channel: session traffic, and handshakes for a new
    /// session (the channel's DTLS fingerprint was authenticated by a session with this same
    /// identity, so only that peer can write there).
    pub fn handle_direct_packet(&mut self, now: Now, from: IdentityKey, packet: &[u8]) {
        match wire::decode::<PeerPacket>(packet) {
            Ok(p) => self.on_peer_packet(now, from, p, true),
            Err(e) => tracing::debug!(peer = %from.fingerprint(), "bad packet on the data channel: {e}"),
        }
    }

    /// Sends a sealed session packet the fastest way available. (Handshakes go by
    /// [`Client::send_both_ways`] and [`Client::send_on_path`].)
    pub(super) fn send_packet(&mut self, to: IdentityKey, packet: &PeerPacket) {
        if self.peers.get(&to).is_some_and(|p| p.link.open) {
            self.send_on_link(to, packet);
        } else {
            self.relay(to, packet);
        }
    }

    fn send_on_link(&mut self, to: IdentityKey, packet: &PeerPacket) {
        self.out.push_back(ClientOutput::Direct { peer: to, packet: wire::encode(packet) });
    }

    /// On the link when `direct` and the peer takes signals there, through the hub otherwise.
    /// Link signals use it, and so do answers to handshake messages and Resets, which go back
    /// the way their question came (`direct`: on the link), since that just worked: the link
    /// may be open yet silent (a path that died, not yet noticed), so "the fastest path"
    /// could lose them.
    pub(super) fn send_on_path(&mut self, to: IdentityKey, packet: &PeerPacket, direct: bool) {
        if direct && self.peers.get(&to).is_some_and(Peer::takes_signals_on_link) {
            self.send_on_link(to, packet);
        } else {
            self.relay(to, packet);
        }
    }

    /// A handshake's first message: on the link and through the hub, both, since either may be
    /// the one that is dead. The peer answers the first copy and ignores the second.
    pub(super) fn send_both_ways(&mut self, to: IdentityKey, packet: &PeerPacket) {
        let Some(p) = self.peers.get(&to) else { return };
        let on_link = p.takes_signals_on_link();
        if on_link {
            self.send_on_link(to, packet);
        }
        if !on_link || matches!(self.link, Link::Up(_)) {
            self.relay(to, packet);
        }
    }

    /// Ends the direct link to `key` (its session ended, or we quit): the peer is told with a
    /// `Close` on the link itself while it is still open, so both sides end it at once, and
    /// the net layer closes it after sending that.
    pub(super) fn drop_link(&mut self, key: IdentityKey) {
        if let Some(link) = self.peers.get(&key).filter(|p| p.link.open).and_then(|p| p.link.id) {
            self.send_link_signal(key, LinkSignal::Close { link }, true);
        }
        self.back_to_hub(key);
        self.out.push_back(ClientOutput::LinkDropped { peer: key });
    }

    /// Routes `key`'s packets through the hub again and announces it. Returns whether the
    /// link had been open.
    fn back_to_hub(&mut self, key: IdentityKey) -> bool {
        let Some(p) = self.peers.get_mut(&key) else { return false };
        let was_open = std::mem::take(&mut p.link.open);
        p.link.id = None;
        p.link.rtt_ms = None;
        if p.link.kind != LinkKind::Hub {
            p.link.kind = LinkKind::Hub;
            let peer = key.fingerprint().to_string();
            self.emit(ClientEvent::Link { peer, kind: LinkKind::Hub, rtt_ms: None });
        }
        was_open
    }
}
