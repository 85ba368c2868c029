//! Reliable, ordered, duplicate-free chat delivery over sessions that come and go.
//!
//! Each sender keeps one *stream* per recipient: sequence numbers from 0, an outbox of what is
//! not yet acknowledged, resent in order whenever a new session comes up. A stream id, random
//! per process, tells the receiver when the sender has restarted (and its numbering with it).
//! The receiver delivers in sequence order, buffers what arrives early, drops duplicates by
//! (sender, message id) and acknowledges cumulatively.

use std::collections::{BTreeMap, HashSet, VecDeque};

use super::wire::{ChatMessage, Intro, MessageId, PeerMsg};

/// Most messages buffered ahead of a gap; later ones are dropped and come again on resend.
pub const MAX_REORDER: u64 = 4096;
/// Most messages waiting for one recipient; more is an error to the user.
pub const MAX_OUTBOX: usize = 20_000;
/// Most text bytes waiting for one recipient (a few hundred of the largest messages, tens of
/// thousands of ordinary ones). Without it one member that never acknowledges could hold
/// 20 000 × 16 KiB of ours.
pub const MAX_OUTBOX_BYTES: usize = 8 * 1024 * 1024;
/// How many delivered ids are remembered per sender for duplicate suppression.
const SEEN_IDS: usize = 8192;

#[derive(Debug, Clone)]
enum Queued {
    Chat(ChatMessage),
    /// The text expired before delivery: only its place in the sequence is kept.
    Skip(MessageId),
}

/// What we send to one peer.
#[derive(Debug)]
pub struct Outgoing {
    stream: u64,
    next_seq: u64,
    /// First sequence number not yet transmitted in the current session.
    next_to_send: u64,
    outbox: BTreeMap<u64, Queued>,
    /// Text bytes of the messages in `outbox` that still hold their text.
    text_bytes: usize,
}

impl Outgoing {
    pub fn new(stream: u64) -> Self {
        Self { stream, next_seq: 0, next_to_send: 0, outbox: BTreeMap::new(), text_bytes: 0 }
    }

    /// Whether a message of `len` text bytes still fits.
    pub fn has_room_for(&self, len: usize) -> bool {
        self.outbox.len() < MAX_OUTBOX && self.text_bytes.saturating_add(len) <= MAX_OUTBOX_BYTES
    }

    pub fn intro(&self, name: &str) -> Intro {
        Intro {
            name: name.to_string(),
            stream: self.stream,
            first_unacked: self.first_unacked(),
            caps: super::wire::caps::ALL,
            open_link: None,
        }
    }

    fn first_unacked(&self) -> u64 {
        self.outbox.keys().next().copied().unwrap_or(self.next_seq)
    }

    /// Queues a message; [`Outgoing::take_sendable`] says when it may go out.
    pub fn push(&mut self, mut msg: ChatMessage) {
        self.text_bytes += msg.text.len();
        msg.seq = self.next_seq;
        self.next_seq += 1;
        self.outbox.insert(msg.seq, Queued::Chat(msg));
    }

    /// A new session: everything unacknowledged must be transmitted again.
    pub fn begin_session(&mut self) {
        self.next_to_send = self.first_unacked();
    }

    /// Messages to transmit now: not yet sent in this session, and at most `window` past the
    /// oldest unacknowledged one, so a burst (or a reconnect with a full outbox) never floods
    /// the hub's queue towards a slow reader. Acks open the window again.
    pub fn take_sendable(&mut self, window: u64) -> Vec<PeerMsg> {
        let limit = self.first_unacked().saturating_add(window).min(self.next_seq);
        if self.next_to_send >= limit {
            return Vec::new();
        }
        let out = self.outbox.range(self.next_to_send..limit).map(|(seq, q)| to_msg(*seq, q)).collect();
        self.next_to_send = limit;
        out
    }

    /// The oldest `limit` messages sent but not acknowledged: what a retransmission timer
    /// sends, since the receiver buffers what follows a gap and only the gap holds it up.
    pub fn resend_in_flight(&self, limit: usize) -> Vec<PeerMsg> {
        self.outbox.range(..self.next_to_send).take(limit).map(|(seq, q)| to_msg(*seq, q)).collect()
    }

    /// Everything still unacknowledged, in order.
    pub fn resend(&self) -> Vec<PeerMsg> {
        self.outbox.iter().map(|(seq, q)| to_msg(*seq, q)).collect()
    }

    /// Applies a cumulative ack; returns the ids now known delivered.
    pub fn ack(&mut self, stream: u64, next: u64) -> Vec<MessageId> {
        if stream != self.stream {
            return Vec::new();
        }
        let still_waiting = self.outbox.split_off(&next);
        let acked = std::mem::replace(&mut self.outbox, still_waiting);
        let mut delivered = Vec::new();
        for q in acked.into_values() {
            if let Queued::Chat(m) = q {
                self.text_bytes -= m.text.len();
                delivered.push(m.id);
            }
        }
        delivered
    }

    /// Drops the text of undelivered messages that expired; they go out as `Skip` from now on.
    pub fn expire(&mut self, now_ms: u64) {
        for q in self.outbox.values_mut() {
            if let Queued::Chat(m) = q
                && m.expires_at_ms.is_some_and(|t| t <= now_ms)
            {
                self.text_bytes -= m.text.len();
                *q = Queued::Skip(m.id);
            }
        }
    }

    pub fn next_expiry(&self) -> Option<u64> {
        self.outbox
            .values()
            .filter_map(|q| match q {
                Queued::Chat(m) => m.expires_at_ms,
                Queued::Skip(_) => None,
            })
            .min()
    }

    pub fn pending(&self) -> usize {
        self.outbox.len()
    }

    /// Messages whose text is still held (not yet acknowledged, not expired).
    pub fn texts_held(&self) -> usize {
        self.outbox.values().filter(|q| matches!(q, Queued::Chat(_))).count()
    }
}

fn to_msg(seq: u64, q: &Queued) -> PeerMsg {
    match q {
        Queued::Chat(m) => PeerMsg::Chat(m.clone()),
        Queued::Skip(id) => PeerMsg::Skip { seq, id: *id },
    }
}

/// What a peer sends us.
#[derive(Debug, Default)]
pub struct Incoming {
    stream: Option<u64>,
    next: u64,
    early: BTreeMap<u64, PeerMsg>,
    seen: HashSet<MessageId>,
    seen_order: VecDeque<MessageId>,
}

/// The result of receiving: messages to hand to the user, in order, and the ack to send.
#[derive(Debug, Default, PartialEq)]
pub struct Received {
    pub deliver: Vec<ChatMessage>,
    pub ack: Option<PeerMsg>,
}

impl Incoming {
    /// A session came up and the sender introduced its stream.
    pub fn on_intro(&mut self, intro: &Intro) {
        if self.stream != Some(intro.stream) {
            // A new process on the other side: its numbering starts afresh.
            self.stream = Some(intro.stream);
            self.next = intro.first_unacked;
            self.early.clear();
        } else if intro.first_unacked > self.next {
            // The sender gave up on messages (e.g. they expired): skip the hole.
            self.next = intro.first_unacked;
            self.early.retain(|seq, _| *seq >= intro.first_unacked);
        }
    }

    pub fn receive(&mut self, msg: PeerMsg) -> Received {
        let Some(stream) = self.stream else {
            return Received::default();
        };
        let seq = match &msg {
            PeerMsg::Chat(m) => m.seq,
            PeerMsg::Skip { seq, .. } => *seq,
            PeerMsg::Ack { .. }
            | PeerMsg::Link(_)
            | PeerMsg::File(_)
            | PeerMsg::Left { .. }
            | PeerMsg::Call(_) => {
                return Received::default();
            }
        };
        let mut out = Received::default();
        if seq >= self.next && seq < self.next.saturating_add(MAX_REORDER) {
            self.early.entry(seq).or_insert(msg);
        }
        while let Some(msg) = self.early.remove(&self.next) {
            self.next = self.next.saturating_add(1);
            if let PeerMsg::Chat(m) = msg {
                if self.remember(m.id) {
                    out.deliver.push(m);
                }
            } else if let PeerMsg::Skip { id, .. } = msg {
                self.remember(id);
            }
        }
        // Ack even duplicates: the first ack may have been lost.
        out.ack = Some(PeerMsg::Ack { stream, next: self.next });
        out
    }

    fn remember(&mut self, id: MessageId) -> bool {
        if !self.seen.insert(id) {
            return false;
        }
        self.seen_order.push_back(id);
        if self.seen_order.len() > SEEN_IDS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chat(n: u8, expires: Option<u64>) -> ChatMessage {
        ChatMessage {
            id: MessageId([n; 16]),
            seq: 0,
            room: "general".into(),
            text: format!("m{n}"),
            sent_at_ms: 0,
            expires_at_ms: expires,
        }
    }

    /// Queues and transmits one message.
    fn sent(tx: &mut Outgoing, m: ChatMessage) -> PeerMsg {
        tx.push(m);
        tx.take_sendable(u64::MAX).pop().unwrap()
    }

    fn texts(r: &Received) -> Vec<String> {
        r.deliver.iter().map(|m| m.text.clone()).collect()
    }

    #[test]
    fn in_order_with_gap_and_duplicates() {
        let mut tx = Outgoing::new(7);
        let mut rx = Incoming::default();
        rx.on_intro(&tx.intro("a"));
        let msgs: Vec<_> = (0..4).map(|n| sent(&mut tx, chat(n, None))).collect();
        assert!(texts(&rx.receive(msgs[1].clone())).is_empty());
        assert_eq!(texts(&rx.receive(msgs[0].clone())), ["m0", "m1"]);
        assert!(texts(&rx.receive(msgs[0].clone())).is_empty());
        let r = rx.receive(msgs[3].clone());
        assert!(texts(&r).is_empty());
        let r = rx.receive(msgs[2].clone());
        assert_eq!(texts(&r), ["m2", "m3"]);
        let Some(PeerMsg::Ack { stream, next }) = r.ack else { panic!() };
        assert_eq!(tx.ack(stream, next).len(), 4);
        assert_eq!(tx.pending(), 0);
    }

    #[test]
    fn resend_after_reconnect_is_not_duplicated() {
        let mut tx = Outgoing::new(1);
        let mut rx = Incoming::default();
        rx.on_intro(&tx.intro("a"));
        let m0 = sent(&mut tx, chat(0, None));
        tx.push(chat(1, None));
        assert_eq!(texts(&rx.receive(m0)), ["m0"]);
        // The ack got lost; a new session resends everything unacked.
        rx.on_intro(&tx.intro("a"));
        let mut got = Vec::new();
        for m in tx.resend() {
            got.extend(texts(&rx.receive(m)));
        }
        assert_eq!(got, ["m1"]);
    }

    #[test]
    fn receiver_restart_gets_unacked() {
        let mut tx = Outgoing::new(1);
        tx.push(chat(0, None));
        let mut rx = Incoming::default();
        rx.on_intro(&tx.intro("a"));
        let got: Vec<_> = tx.resend().into_iter().flat_map(|m| texts(&rx.receive(m))).collect();
        assert_eq!(got, ["m0"]);
    }

    #[test]
    fn sender_restart_resets_numbering() {
        let mut rx = Incoming::default();
        let mut tx = Outgoing::new(1);
        rx.on_intro(&tx.intro("a"));
        for n in 0..3 {
            rx.receive(sent(&mut tx, chat(n, None)));
        }
        let mut tx2 = Outgoing::new(2);
        rx.on_intro(&tx2.intro("a"));
        assert_eq!(texts(&rx.receive(sent(&mut tx2, chat(9, None)))), ["m9"]);
    }

    #[test]
    fn expired_undelivered_becomes_skip() {
        let mut tx = Outgoing::new(1);
        tx.push(chat(0, Some(100)));
        tx.push(chat(1, None));
        tx.expire(100);
        let mut rx = Incoming::default();
        rx.on_intro(&tx.intro("a"));
        let got: Vec<_> = tx.resend().into_iter().flat_map(|m| texts(&rx.receive(m))).collect();
        assert_eq!(got, ["m1"]);
        assert!(matches!(tx.resend()[0], PeerMsg::Skip { .. }));
    }

    #[test]
    fn hostile_sequence_numbers_do_not_overflow() {
        let mut rx = Incoming::default();
        rx.on_intro(&Intro {
            name: "m".into(),
            stream: 1,
            first_unacked: u64::MAX - 1,
            caps: 0,
            open_link: None,
        });
        let mut m = chat(0, None);
        m.seq = u64::MAX - 1;
        assert_eq!(texts(&rx.receive(PeerMsg::Chat(m.clone()))), ["m0"]);
        m.seq = u64::MAX;
        m.id = MessageId([1; 16]);
        rx.receive(PeerMsg::Chat(m));
    }

    #[test]
    fn window_limits_what_is_in_flight() {
        let mut tx = Outgoing::new(1);
        for n in 0..10 {
            tx.push(chat(n, None));
        }
        tx.begin_session();
        assert_eq!(tx.take_sendable(4).len(), 4);
        assert!(tx.take_sendable(4).is_empty(), "window full");
        assert_eq!(tx.resend_in_flight(100).len(), 4);
        tx.ack(1, 2);
        assert_eq!(tx.take_sendable(4).len(), 2, "two acked, two more may go");
        tx.begin_session();
        assert_eq!(tx.take_sendable(100).len(), 8, "a new session sends all unacked again");
    }

    #[test]
    fn stale_ack_stream_is_ignored() {
        let mut tx = Outgoing::new(1);
        tx.push(chat(0, None));
        assert!(tx.ack(99, 1).is_empty());
        assert_eq!(tx.pending(), 1);
    }
}
