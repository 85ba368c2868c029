//! Direct links to peers: one str0m [`Rtc`] per peer, all sharing one UDP socket.
//!
//! Like str0m underneath it, this holds no socket and reads no clock: the driver hands in
//! datagrams and `Instant`s and takes [`LinkOutput`]s out, which also lets a test wire two of
//! them together in memory. str0m's contract is kept everywhere: after each mutation of an
//! `Rtc` (input, channel write, SDP change, candidate) its output is drained until `Timeout`.
//!
//! Signalling is plain SDP carried in the peers' Noise session ([`LinkSignal`]), so the DTLS
//! fingerprint each side puts in its SDP is authenticated by the session; str0m refuses a DTLS
//! peer whose certificate does not match it, and the link is abandoned with an error.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use str0m::bwe::{Bitrate, BweKind};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::format::Codec;
use str0m::media::{Direction, Frequency, KeyframeRequestKind, MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, CandidateKind, Event, IceConnectionState, Input, Output, Rtc, RtcError};

use crate::protocol::events::LinkKind;
use crate::protocol::identity::IdentityKey;
use crate::protocol::wire::{LinkSignal, MediaSet};

use super::negotiation::{Answered, Negotiation};

/// The data channel that carries the Noise session's packets (chat, acks).
pub const CHAT_CHANNEL: &str = "kith-chat";
/// The data channel for file bytes, with its own flow control, so a transfer never blocks
/// chat writes. The vendored sctp-proto serves the channels' queues in turn, a message at a
/// time, so a chat message waits for at most one file chunk, not all the queued file data.
pub const FILE_CHANNEL: &str = "kith-file";
/// The file channel asks for more data when its buffer drains below this.
const FILE_LOW_WATER: usize = 256 * 1024;
/// A link whose chat channel is not open by then is given up; the hub carries on.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// After a link failed, the offerer tries a fresh one this much later.
pub const RETRY_AFTER: Duration = Duration::from_secs(30);
/// An open link whose path stopped answering (or whose network changed) gets this long to
/// find a new path through an ICE restart before its traffic goes back to the hub.
pub const RESTART_GRACE: Duration = Duration::from_secs(15);
/// Restart signals travel through the hub unacknowledged, and the hub connection may itself
/// be coming back after the change: they are sent again this often until the path is back.
const RESTART_RESEND: Duration = Duration::from_secs(2);
/// An open link hears ICE keepalives at least every 3 s (str0m's longest STUN interval, both
/// ways); this long without a datagram means the path is probably gone. str0m itself calls a
/// path disconnected only after 9 unanswered checks (about 20 s), so we restart sooner.
const SILENT_FOR: Duration = Duration::from_secs(6);
/// How often str0m reports the selected candidate pair and its round trip.
const STATS_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes a data channel may hold unacknowledged. Throughput is capped near this much per
/// round trip (1 MiB over 50 ms is 20 MiB/s). Larger windows used to cost more CPU than they
/// gained, because sctp-proto scanned every chunk in flight on each poll; with those scans
/// skipped (vendor/sctp-proto) 1 MiB is the fastest on loopback: 82–89 MiB/s, against 56–57
/// at 512 KiB and 63–64 at 4 MiB (docs/BENCHMARKS.md).
pub const SCTP_BUFFER: usize = 1024 * 1024;
/// Where str0m's bandwidth estimate starts before it has measured anything.
const INITIAL_BITRATE: Bitrate = Bitrate::kbps(300);
/// 720p video at its ceiling (2.5 Mbit/s), Opus, and the packets' headers.
const DESIRED_BITRATE: Bitrate = Bitrate::kbps(2_800);
/// How often a link whose video gets less than it desires asks str0m for a probe. str0m probes
/// on its own only while the sender uses well under the estimate (ALR) or after the estimate
/// stood still for 15 s; a sender whose encoder follows the estimate uses all of it and
/// wobbles, so after a narrow spell it would never learn that the path widened again. A probe
/// is a short burst (tens of packets) at twice the estimate; one that gets through starts
/// str0m's own doubling probes. WebRTC's periodic ALR probe has the same 5 s.
const PROBE_EVERY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum LinkOutput {
    /// A datagram for the UDP socket.
    Transmit { source: SocketAddr, destination: SocketAddr, contents: Vec<u8> },
    /// Signalling to seal into `peer`'s session. `direct`: the link works and may carry it
    /// (the hub otherwise: signals of an ICE restart, or for a link not open yet).
    Signal { peer: IdentityKey, signal: LinkSignal, direct: bool },
    /// The chat channel of link number `link` to `peer` opened.
    Open { peer: IdentityKey, link: u64 },
    /// The path to `peer`: when its chat channel opens, then with every stats report.
    Kind { peer: IdentityKey, kind: LinkKind, rtt_ms: Option<u64> },
    /// A packet arrived on `peer`'s chat channel.
    Chat { peer: IdentityKey, packet: Vec<u8> },
    /// The file channel to `peer` opened.
    FileOpen { peer: IdentityKey },
    /// The file channel to `peer` drained enough to take more.
    FileWritable { peer: IdentityKey },
    /// A message arrived on `peer`'s file channel.
    FileData { peer: IdentityKey, data: Vec<u8> },
    /// An ICE restart began: STUN mappings are worth asking again now (the NAT in front of
    /// us may be the thing that changed).
    Regather,
    /// The link to `peer` is gone (closed, failed or never connected); `reason` says why.
    Down { peer: IdentityKey, reason: String, fingerprint_mismatch: bool },
    /// The media sections the link to `peer` carries changed (a negotiation was agreed).
    Media { peer: IdentityKey, media: MediaSet },
    /// An Opus packet from `peer`: its RTP timestamp (48 kHz, extended to 64 bits by str0m)
    /// and when its datagram arrived.
    Audio { peer: IdentityKey, ts: u64, data: Vec<u8>, arrived: Instant },
    /// One H.264 frame from `peer` (Annex B, as str0m reassembled it; RTP time at 90 kHz).
    /// `contiguous` is false when frames before it were lost.
    Video { peer: IdentityKey, ts: u64, data: Arc<[u8]>, keyframe: bool, contiguous: bool, arrived: Instant },
    /// `peer` asks for a keyframe of our video (PLI or FIR).
    KeyframeRequest { peer: IdentityKey },
    /// What the path to `peer` carries now, as the bandwidth estimate (transport-wide
    /// congestion control) measures it, in bit/s: all our media to it must fit.
    Bandwidth { peer: IdentityKey, bps: u64 },
}

pub use crate::protocol::transfer::FileWrite;

impl crate::protocol::transfer::FileChannel for Links {
    fn file_buffered(&mut self, peer: &IdentityKey) -> Option<usize> {
        Links::file_buffered(self, peer)
    }

    fn send_file_data(&mut self, now: Instant, peer: IdentityKey, data: &[u8]) -> FileWrite {
        Links::send_file_data(self, now, peer, data)
    }
}

struct PeerLink {
    id: u64,
    rtc: Rtc,
    offerer: bool,
    /// Offers and answers on this link, and the changes waiting for the next offer.
    neg: Negotiation,
    /// Media sections str0m reported, and whether each is active.
    mids: Vec<(Mid, MediaKind, bool)>,
    media: MediaSet,
    chat: Option<ChannelId>,
    file: Option<ChannelId>,
    started: Instant,
    next_timeout: Instant,
    /// Source and destination of the latest datagram str0m sent: after nomination, the
    /// candidate pair in use.
    last_source: Option<SocketAddr>,
    last_destination: Option<SocketAddr>,
    /// The peer's relayed candidates (from its SDP and trickled candidates): a pair using one
    /// is a relayed path even when ours is not.
    remote_relays: Vec<SocketAddr>,
    /// Candidates the peer trickled since its last offer or answer: each is memory and STUN
    /// checks towards an address the peer picks, so they are capped (and a copy of one
    /// already taken is not counted again).
    remote_trickled: Vec<String>,
    /// Candidates we trickled since our last offer or answer (which listed every candidate
    /// known then). A trickle through the hub is lost when either side's hub connection
    /// breaks, which is just when a network change also breaks the link: while the link
    /// looks for a path they go again with each resend.
    sent_trickle: Vec<String>,
    /// An ICE restart under way on this open link.
    restart: Option<Restart>,
    /// When this link last took a datagram.
    last_heard: Instant,
    /// The latest bandwidth estimate (bit/s); when to step the desired bitrate next (half a
    /// probe period), and whether that step goes up.
    estimate: u64,
    next_probe: Instant,
    next_probe_raises: bool,
}

/// Only a link's offerer restarts ICE (so two restarts never cross), in its next offer; the
/// other side asks it to with [`LinkSignal::Restart`], sent again until ICE reports a working
/// path. Either side gives the link up at `give_up`.
struct Restart {
    give_up: Instant,
    resend_at: Instant,
    /// The answerer's request.
    ask: Option<LinkSignal>,
    /// The offerer's new ICE username fragment. str0m switches to it only when the answer
    /// arrives, but the peer switched when it took the offer: candidates trickled meanwhile
    /// must carry the new one or the peer drops them.
    ufrag: Option<String>,
}

/// A local candidate as trickled to the peer, under the ICE credentials it expects.
fn trickled(restart: Option<&Restart>, c: &Candidate) -> String {
    match restart.and_then(|r| r.ufrag.as_deref()) {
        Some(ufrag) => {
            let mut c = c.clone();
            c.set_ufrag(ufrag);
            c.to_sdp_string()
        }
        None => c.to_sdp_string(),
    }
}

/// Every direct link of one client.
pub struct Links {
    host: Vec<SocketAddr>,
    /// Candidates learned after start (server-reflexive from STUN, relayed from TURN); every
    /// link gets them, and links already signalling are sent them.
    gathered: Vec<Candidate>,
    /// Our relayed addresses, among `gathered`.
    relays: Vec<SocketAddr>,
    links: HashMap<IdentityKey, PeerLink>,
    /// Peers we offer to, and when the next attempt is due after a failure.
    retry: HashMap<IdentityKey, Instant>,
    next_id: u64,
    out: VecDeque<LinkOutput>,
    /// Datagrams no link claimed yet, kept briefly: a peer's first DTLS flight can arrive
    /// before our ICE agent has seen its address succeed, and dropping it costs a 1 s
    /// retransmission.
    unclaimed: VecDeque<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
}

/// Trickled remote candidates a link takes between offers: a host with many interfaces,
/// both families, a server-reflexive and a relayed address each, stays far below it.
const MAX_TRICKLED: usize = 32;

/// How many unclaimed datagrams are kept, and for how long.
const UNCLAIMED_MAX: usize = 64;
const UNCLAIMED_FOR: Duration = Duration::from_secs(2);

impl Links {
    /// `host` are the socket's addresses on each interface (host candidates); `seed` makes
    /// link numbers unpredictable to anyone replaying old signals.
    pub fn new(host: Vec<SocketAddr>, seed: u64) -> Self {
        Self {
            host,
            gathered: Vec::new(),
            relays: Vec::new(),
            links: HashMap::new(),
            retry: HashMap::new(),
            next_id: seed,
            out: VecDeque::new(),
            unclaimed: VecDeque::new(),
        }
    }

    pub fn poll_output(&mut self) -> Option<LinkOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.values().map(|l| {
            let mut t = l.next_timeout;
            if l.chat.is_none() {
                t = t.min(l.started + OPEN_TIMEOUT);
            }
            match &l.restart {
                Some(r) => t = t.min(r.resend_at).min(r.give_up),
                None if l.chat.is_some() => t = t.min(l.last_heard + SILENT_FOR),
                None => {}
            }
            if let Some(resend) = l.neg.poll_timeout() {
                t = t.min(resend);
            }
            t
        });
        links.chain(self.retry.values().copied()).min()
    }

    pub fn is_open(&self, peer: &IdentityKey) -> bool {
        self.links.get(peer).is_some_and(|l| l.chat.is_some())
    }

    /// The session with `peer` is up: the offerer starts a link, the other side waits for
    /// its offer.
    pub fn want(&mut self, now: Instant, peer: IdentityKey, offerer: bool) {
        self.close(peer, "a new session replaced it");
        if offerer {
            self.retry.insert(peer, now);
            self.start_offer(now, peer);
        }
    }

    /// The session with `peer` ended: no link, and no retries.
    pub fn drop_peer(&mut self, peer: IdentityKey) {
        self.retry.remove(&peer);
        self.close(peer, "the session ended");
    }

    fn new_rtc(&self, now: Instant) -> Rtc {
        // Only the codecs Kith sends (the SDP stays small), and bandwidth estimation for the
        // encoders of calls to follow.
        let mut rtc = Rtc::builder()
            .set_stats_interval(Some(STATS_INTERVAL))
            .set_sctp_max_buffered_amount(SCTP_BUFFER)
            .clear_codecs()
            .enable_opus(true, false)
            .enable_h264(true)
            .enable_bwe(Some(INITIAL_BITRATE))
            // Each packet as it comes: the jitter buffer reorders, and holding packets back
            // behind a lost one would turn one loss into a stall (and waste its FEC).
            .set_reordering_size_audio(0)
            .build(now);
        // The estimate probes up to what a call's best video and audio take (until then it
        // follows the traffic); nothing pads a link that carries no media.
        rtc.bwe().set_bitrate(Bitrate::kbps(0), DESIRED_BITRATE);
        for addr in &self.host {
            match Candidate::host(*addr, "udp") {
                Ok(c) => {
                    rtc.add_local_candidate(c);
                }
                Err(e) => tracing::debug!(%addr, "no host candidate: {e}"),
            }
        }
        for c in &self.gathered {
            rtc.add_local_candidate(c.clone());
        }
        rtc
    }

    /// A candidate found after start (STUN or TURN): added to every link, and trickled to
    /// the peers of links already under way.
    pub fn add_local_candidate(&mut self, now: Instant, candidate: Candidate) {
        if self.gathered.iter().any(|c| c.addr() == candidate.addr() && c.kind() == candidate.kind()) {
            return;
        }
        if candidate.kind() == CandidateKind::Relayed {
            self.relays.push(candidate.addr());
        }
        self.gathered.push(candidate.clone());
        let peers: Vec<IdentityKey> = self.links.keys().copied().collect();
        for peer in peers {
            let Some(l) = self.links.get_mut(&peer) else { continue };
            let Some(added) = l.rtc.add_local_candidate(candidate.clone()) else { continue };
            let signal = LinkSignal::Candidate { link: l.id, candidate: trickled(l.restart.as_ref(), added) };
            l.remember_trickle(&signal);
            let direct = l.works();
            self.out.push_back(LinkOutput::Signal { peer, signal, direct });
            self.kick(now, peer);
        }
    }

    /// Whether `addr` is one of our relayed addresses (its datagrams go through TURN).
    pub fn is_relayed(&self, addr: &SocketAddr) -> bool {
        self.relays.contains(addr)
    }

    /// Our addresses changed (an interface came, went or was renumbered): candidates on
    /// addresses that are gone are withdrawn (with the server-reflexive and relayed ones
    /// found from them), new host candidates are added and trickled, and every open link
    /// restarts ICE. Until the new path is checked, data keeps flowing on the old one if it
    /// still works.
    /// Returns whether anything changed.
    pub fn network_changed(&mut self, now: Instant, host: Vec<SocketAddr>) -> bool {
        let gone: Vec<SocketAddr> = self.host.iter().filter(|a| !host.contains(a)).copied().collect();
        let added: Vec<SocketAddr> = host.iter().filter(|a| !self.host.contains(a)).copied().collect();
        if gone.is_empty() && added.is_empty() {
            return false;
        }
        tracing::info!(?gone, ?added, "network addresses changed");
        self.host = host;
        let (stale, kept): (Vec<Candidate>, Vec<Candidate>) = std::mem::take(&mut self.gathered)
            .into_iter()
            .partition(|c| gone.iter().any(|g| g.ip() == c.local().ip()));
        self.gathered = kept;
        self.relays.retain(|r| !stale.iter().any(|c| c.addr() == *r));
        let withdrawn: Vec<Candidate> =
            gone.iter().filter_map(|a| Candidate::host(*a, "udp").ok()).chain(stale).collect();
        let fresh: Vec<Candidate> = added.iter().filter_map(|a| Candidate::host(*a, "udp").ok()).collect();
        let peers: Vec<IdentityKey> = self.links.keys().copied().collect();
        for peer in peers {
            let Some(l) = self.links.get_mut(&peer) else { continue };
            let mut api = l.rtc.direct_api();
            for c in &withdrawn {
                api.invalidate_candidate(c);
            }
            for c in &fresh {
                if let Some(c) = l.rtc.add_local_candidate(c.clone()) {
                    let signal =
                        LinkSignal::Candidate { link: l.id, candidate: trickled(l.restart.as_ref(), c) };
                    l.remember_trickle(&signal);
                    self.out.push_back(LinkOutput::Signal { peer, signal, direct: false });
                }
            }
            self.restart_ice(now, peer, "our network changed");
        }
        true
    }

    /// Starts an ICE restart on `peer`'s open link (or asks the peer to, if it made the
    /// offer). A link not open yet has its own timeout and gets new candidates by trickle.
    fn restart_ice(&mut self, now: Instant, peer: IdentityKey, why: &str) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        if l.chat.is_none() {
            self.kick(now, peer);
            return;
        }
        if l.restart.is_some() {
            // Already restarting; candidates found since were trickled into it.
            self.kick(now, peer);
            return;
        }
        let ask = if l.offerer {
            l.neg.queue_restart();
            None
        } else {
            Some(LinkSignal::Restart { link: l.id })
        };
        tracing::info!(peer = %peer.fingerprint(), offerer = l.offerer, "ICE restart: {why}");
        let (give_up, resend_at) = (now + RESTART_GRACE, now + RESTART_RESEND);
        l.restart = Some(Restart { give_up, resend_at, ask: ask.clone(), ufrag: None });
        if let Some(signal) = ask {
            self.out.push_back(LinkOutput::Signal { peer, signal, direct: false });
        }
        self.out.push_back(LinkOutput::Regather);
        self.offer_next(now, peer);
        self.kick(now, peer);
    }

    /// The offerer's next offer, if a change waits and the last offer was answered. An offer
    /// that restarts ICE goes through the hub (the link is what is broken); others on the link.
    fn offer_next(&mut self, now: Instant, peer: IdentityKey) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        let Some((signal, ufrag)) = l.neg.next_offer(&mut l.rtc, now) else { return };
        // The offer lists every candidate we know.
        l.sent_trickle.clear();
        if let (Some(ufrag), Some(r)) = (ufrag, l.restart.as_mut()) {
            r.ufrag = Some(ufrag);
        }
        let direct = l.works();
        self.out.push_back(LinkOutput::Signal { peer, signal, direct });
        self.kick(now, peer);
    }

    /// What we want the link to `peer` to carry (audio, video). The offerer offers it (after
    /// the offer in flight, if any); the answerer asks the offerer to.
    pub fn set_media(&mut self, now: Instant, peer: IdentityKey, want: MediaSet) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        if l.offerer {
            l.neg.set_local(want);
            self.offer_next(now, peer);
        } else {
            let signal = l.neg.ask(now, want);
            let direct = l.works();
            self.out.push_back(LinkOutput::Signal { peer, signal, direct });
        }
    }

    /// The media sections the link to `peer` carries now.
    pub fn media(&self, peer: &IdentityKey) -> MediaSet {
        self.links.get(peer).map(|l| l.media).unwrap_or_default()
    }

    /// An offer for the link that is already up: a change of media or an ICE restart. The
    /// answer goes back the way the offer came (`direct`: on the link).
    fn renegotiate(&mut self, now: Instant, peer: IdentityKey, seq: u64, sdp: String, direct: bool) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        if l.offerer {
            // Only the offerer of a link offers on it; an offer with our own number is stale.
            return;
        }
        match l.neg.on_offer(&mut l.rtc, seq, &sdp) {
            Ok(Some(signal)) => {
                l.remote_relays = relayed_in(&sdp);
                l.remote_trickled.clear();
                l.sent_trickle.clear();
                self.out.push_back(LinkOutput::Signal { peer, signal, direct });
                self.kick(now, peer);
            }
            Ok(None) => tracing::debug!(peer = %peer.fingerprint(), seq, "copy of an old offer ignored"),
            Err(e) => self.fail(now, peer, &e, false),
        }
    }

    fn start_offer(&mut self, now: Instant, peer: IdentityKey) {
        self.retry.remove(&peer);
        self.next_id = self.next_id.wrapping_add(1);
        let id = self.next_id;
        let mut rtc = self.new_rtc(now);
        let Some(neg) = Negotiation::first_offer(&mut rtc, id, &[CHAT_CHANNEL, FILE_CHANNEL], now) else {
            tracing::warn!("str0m made no offer for a data channel");
            self.retry.insert(peer, now + RETRY_AFTER);
            return;
        };
        let signal = neg.offer_signal();
        let link = PeerLink::new(id, rtc, true, neg, now);
        self.links.insert(peer, link);
        if let Some(signal) = signal {
            self.out.push_back(LinkOutput::Signal { peer, signal, direct: false });
        }
        self.kick(now, peer);
    }

    /// Signalling from `peer`'s session; `direct` if it came on the link's own data channel.
    pub fn handle_signal(&mut self, now: Instant, peer: IdentityKey, signal: LinkSignal, direct: bool) {
        match signal {
            LinkSignal::Offer { link, seq, sdp } if self.links.get(&peer).is_some_and(|l| l.id == link) => {
                self.renegotiate(now, peer, seq, sdp, direct)
            }
            LinkSignal::Offer { link, seq, sdp } => {
                // A fresh offer replaces whatever we had: the offerer gave up on it.
                self.close(peer, "the peer started a new link");
                if let Err(e) = SdpOffer::from_sdp_string(&sdp) {
                    return self.refuse(peer, link, &format!("unreadable offer: {e}"), direct);
                }
                let mut rtc = self.new_rtc(now);
                let mut neg = Negotiation::answerer(link);
                match neg.on_offer(&mut rtc, seq, &sdp) {
                    Ok(Some(signal)) => {
                        let mut l = PeerLink::new(link, rtc, false, neg, now);
                        l.remote_relays = relayed_in(&sdp);
                        self.links.insert(peer, l);
                        self.out.push_back(LinkOutput::Signal { peer, signal, direct });
                        self.kick(now, peer);
                    }
                    Ok(None) => {}
                    Err(e) => self.refuse(peer, link, &e, direct),
                }
            }
            LinkSignal::Answer { link, seq, sdp } => {
                let Some(l) = self.links.get_mut(&peer).filter(|l| l.id == link && l.offerer) else { return };
                match l.neg.on_answer(&mut l.rtc, seq, &sdp) {
                    Ok(Answered::Agreed) => {
                        l.remote_relays = relayed_in(&sdp);
                        l.remote_trickled.clear();
                        self.media_changed(peer);
                        self.kick(now, peer);
                        // Whatever changed meanwhile goes in the next offer.
                        self.offer_next(now, peer);
                    }
                    Ok(Answered::Stale) => {}
                    Err(e) => self.fail(now, peer, &e, false),
                }
            }
            LinkSignal::Media { link, want } => {
                if let Some(l) = self.links.get_mut(&peer).filter(|l| l.id == link && l.offerer) {
                    l.neg.set_remote(want);
                    self.offer_next(now, peer);
                }
            }
            LinkSignal::Candidate { link, candidate } => {
                let Some(l) = self.links.get_mut(&peer).filter(|l| l.id == link) else { return };
                // A copy: the peer sends its trickle again while the link looks for a path.
                if l.remote_trickled.contains(&candidate) {
                    return;
                }
                if l.remote_trickled.len() >= MAX_TRICKLED {
                    tracing::debug!(peer = %peer.fingerprint(), "more trickled candidates than any host has; ignored");
                    return;
                }
                l.remote_trickled.push(candidate.clone());
                match Candidate::from_sdp_string(&candidate) {
                    Ok(c) => {
                        if c.kind() == CandidateKind::Relayed {
                            l.remote_relays.push(c.addr());
                        }
                        l.rtc.add_remote_candidate(c);
                        self.kick(now, peer);
                    }
                    Err(e) => tracing::debug!("unreadable candidate from a peer: {e}"),
                }
            }
            LinkSignal::Close { link } => {
                if self.links.get(&peer).is_some_and(|l| l.id == link) {
                    self.fail(now, peer, "the peer closed the link", false);
                }
            }
            LinkSignal::Restart { link } => {
                if self.links.get(&peer).is_some_and(|l| l.id == link && l.offerer) {
                    self.restart_ice(now, peer, "the peer's network changed");
                }
            }
        }
    }

    /// Tells the offerer we could not use its offer, so it does not wait for the timeout.
    fn refuse(&mut self, peer: IdentityKey, link: u64, why: &str, direct: bool) {
        tracing::warn!(peer = %peer.fingerprint(), "direct link refused: {why}");
        self.out.push_back(LinkOutput::Signal { peer, signal: LinkSignal::Close { link }, direct });
    }

    /// A datagram from the socket. Returns false if no link claimed it.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        if !self.deliver(now, source, destination, contents) {
            if self.unclaimed.len() >= UNCLAIMED_MAX {
                self.unclaimed.pop_front();
            }
            self.unclaimed.push_back((now, source, destination, contents.to_vec()));
            return false;
        }
        // A link took a datagram from `source`, so it now takes that address: the datagrams
        // from it waiting unclaimed are tried once, and those it still refuses go. Others
        // wait for their own source to be learnt, so a stream of datagrams from anywhere never
        // makes each good one cost the whole buffer again.
        let from_source = self.unclaimed.iter().any(|(_, s, _, _)| *s == source);
        if from_source {
            let waiting = std::mem::take(&mut self.unclaimed);
            for (at, from, destination, contents) in waiting {
                if from != source {
                    self.unclaimed.push_back((at, from, destination, contents));
                } else if now.duration_since(at) < UNCLAIMED_FOR {
                    self.deliver(now, from, destination, &contents);
                }
            }
        }
        true
    }

    /// Hands a datagram to the link that accepts it; false if none does.
    fn deliver(
        &mut self,
        now: Instant,
        source: SocketAddr,
        destination: SocketAddr,
        contents: &[u8],
    ) -> bool {
        let Ok(contents) = contents.try_into() else { return false };
        let input = Input::Receive(now, Receive { proto: Protocol::Udp, source, destination, contents });
        let Some((peer, l)) = self.links.iter_mut().find(|(_, l)| l.rtc.accepts(&input)) else {
            return false;
        };
        l.last_heard = now;
        let peer = *peer;
        self.input(now, peer, input);
        true
    }

    /// After a change of candidates or SDP: runs `peer`'s timers now. An ICE agent that was
    /// never given a timeout has no clock and starts no checks of its own (str0m's answerer
    /// would only answer the offerer's checks, which a NAT in front of it drops).
    fn kick(&mut self, now: Instant, peer: IdentityKey) {
        self.input(now, peer, Input::Timeout(now));
    }

    /// Feeds one input to `peer`'s `Rtc` and drains what it has to say.
    fn input(&mut self, now: Instant, peer: IdentityKey, input: Input) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        match l.rtc.handle_input(input) {
            Ok(()) => self.drain(now, peer),
            Err(e) => self.rtc_failed(now, peer, e),
        }
    }

    /// Drives every link whose timer is due, gives up links that did not open in time, and
    /// starts retries.
    pub fn handle_timeout(&mut self, now: Instant) {
        let keys: Vec<IdentityKey> = self.links.keys().copied().collect();
        for peer in keys {
            let Some(l) = self.links.get_mut(&peer) else { continue };
            if l.chat.is_none() && now >= l.started + OPEN_TIMEOUT {
                let why = format!("no direct path found within {} s", OPEN_TIMEOUT.as_secs());
                self.fail(now, peer, &why, false);
                continue;
            }
            if l.restart.is_none() && l.chat.is_some() && now >= l.last_heard + SILENT_FOR {
                let why = format!("nothing heard from the peer for {} s", SILENT_FOR.as_secs());
                self.restart_ice(now, peer, &why);
                continue;
            }
            if let Some(r) = &mut l.restart {
                if now >= r.give_up {
                    let why = format!(
                        "the direct path stopped working and no new one was found within {} s",
                        RESTART_GRACE.as_secs()
                    );
                    self.fail(now, peer, &why, false);
                    continue;
                }
                if now >= r.resend_at {
                    r.resend_at = now + RESTART_RESEND;
                    if let Some(signal) = r.ask.clone() {
                        self.out.push_back(LinkOutput::Signal { peer, signal, direct: false });
                    }
                    l.resend_trickle(peer, &mut self.out);
                }
            }
            // An offer without its answer (or a media request without its offer) goes again,
            // through the hub, and the candidates found after it with it.
            if let Some(signal) = l.neg.due_resend(now) {
                self.out.push_back(LinkOutput::Signal { peer, signal, direct: false });
                if l.restart.is_none() {
                    l.resend_trickle(peer, &mut self.out);
                }
            }
            if now >= l.next_probe {
                l.next_probe = now + PROBE_EVERY / 2;
                if l.mid(MediaKind::Video).is_some() && l.estimate < DESIRED_BITRATE.as_u64() * 9 / 10 {
                    l.ask_for_probe();
                }
            }
            if now >= l.next_timeout {
                self.input(now, peer, Input::Timeout(now));
            }
        }
        let due: Vec<IdentityKey> = self.retry.iter().filter(|(_, t)| **t <= now).map(|(k, _)| *k).collect();
        for peer in due {
            if !self.links.contains_key(&peer) {
                self.start_offer(now, peer);
            } else {
                self.retry.remove(&peer);
            }
        }
    }

    /// Writes a packet on `peer`'s chat channel. False if there is no open channel or its
    /// buffer is full; the caller sends it another way.
    pub fn send_chat(&mut self, now: Instant, peer: IdentityKey, packet: &[u8]) -> bool {
        let Some(l) = self.links.get_mut(&peer) else { return false };
        let Some(id) = l.chat else { return false };
        let Some(mut channel) = l.rtc.channel(id) else { return false };
        let written = channel.write(true, packet);
        match written {
            Ok(ok) => {
                self.drain(now, peer);
                ok
            }
            Err(e) => {
                self.rtc_failed(now, peer, e);
                false
            }
        }
    }

    /// Writes one Opus frame (timestamp `ts` at 48 kHz) on `peer`'s audio section. False if
    /// the link carries no audio (yet): the frame is dropped, as a late one would be.
    pub fn send_audio(&mut self, now: Instant, peer: IdentityKey, ts: u64, data: Arc<[u8]>) -> bool {
        let time = MediaTime::new(ts, Frequency::FORTY_EIGHT_KHZ);
        self.write_media(now, peer, MediaKind::Audio, time, data)
    }

    /// Writes one H.264 frame (Annex B, RTP time `ts` at 90 kHz) on `peer`'s video section;
    /// str0m packetizes it (and keeps it for NACKs). False if the link carries no video yet.
    pub fn send_video(&mut self, now: Instant, peer: IdentityKey, ts: u64, data: Arc<[u8]>) -> bool {
        let time = MediaTime::new(ts, Frequency::NINETY_KHZ);
        self.write_media(now, peer, MediaKind::Video, time, data)
    }

    fn write_media(
        &mut self,
        now: Instant,
        peer: IdentityKey,
        kind: MediaKind,
        time: MediaTime,
        data: Arc<[u8]>,
    ) -> bool {
        let Some(l) = self.links.get_mut(&peer) else { return false };
        let Some(writer) = l.mid(kind).and_then(|mid| l.rtc.writer(mid)) else { return false };
        // Opus; H.264 in packetization mode 1 (FU-A, what every browser sends), constrained
        // baseline first.
        let rank = |p: &str0m::format::PayloadParams| {
            let f = p.spec().format;
            let baseline = matches!(f.profile_level_id, Some(0x42e01f | 0x42001f));
            (f.packetization_mode != Some(1), !baseline)
        };
        let codec = if kind == MediaKind::Audio { Codec::Opus } else { Codec::H264 };
        let Some(pt) = writer
            .payload_params()
            .filter(|p| p.spec().codec == codec)
            .min_by_key(|p| rank(p))
            .map(|p| p.pt())
        else {
            return false;
        };
        match writer.write(pt, now, time, data) {
            Ok(()) => {
                self.drain(now, peer);
                true
            }
            Err(e) => {
                tracing::debug!(peer = %peer.fingerprint(), "{kind} frame not written: {e}");
                false
            }
        }
    }

    /// Asks `peer` for a keyframe of its video (a PLI): our decoder lost its place.
    pub fn request_keyframe(&mut self, now: Instant, peer: IdentityKey) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        let Some(mid) = l.mid(MediaKind::Video) else { return };
        let Some(mut writer) = l.rtc.writer(mid) else { return };
        if let Err(e) = writer.request_keyframe(None, KeyframeRequestKind::Pli) {
            tracing::debug!(peer = %peer.fingerprint(), "no keyframe request: {e}");
        }
        self.drain(now, peer);
    }

    /// Bytes queued on `peer`'s file channel and not yet acknowledged; `None` without one.
    pub fn file_buffered(&mut self, peer: &IdentityKey) -> Option<usize> {
        let l = self.links.get_mut(peer)?;
        let id = l.file?;
        Some(l.rtc.channel(id)?.buffered_amount())
    }

    /// Writes one message on `peer`'s file channel.
    pub fn send_file_data(&mut self, now: Instant, peer: IdentityKey, data: &[u8]) -> FileWrite {
        let Some(l) = self.links.get_mut(&peer) else { return FileWrite::NoChannel };
        let Some(mut channel) = l.file.and_then(|id| l.rtc.channel(id)) else { return FileWrite::NoChannel };
        match channel.write(true, data) {
            Ok(written) => {
                self.drain(now, peer);
                if written { FileWrite::Written } else { FileWrite::Full }
            }
            Err(e) => {
                self.rtc_failed(now, peer, e);
                FileWrite::NoChannel
            }
        }
    }

    fn rtc_failed(&mut self, now: Instant, peer: IdentityKey, e: RtcError) {
        let text = e.to_string();
        let mismatch = text.contains("fingerprint");
        let reason = if mismatch {
            format!(
                "the peer's DTLS certificate does not match the fingerprint in its signed offer ({text}); \
                 the direct link was aborted"
            )
        } else {
            format!("link error: {text}")
        };
        self.fail(now, peer, &reason, mismatch);
    }

    /// Ends the link to `peer`, tells the other side, and (as offerer) schedules a retry.
    fn fail(&mut self, now: Instant, peer: IdentityKey, reason: &str, fingerprint_mismatch: bool) {
        let Some(mut l) = self.links.remove(&peer) else { return };
        tracing::info!(peer = %peer.fingerprint(), "direct link down: {reason}");
        l.rtc.disconnect();
        self.out.push_back(LinkOutput::Signal {
            peer,
            signal: LinkSignal::Close { link: l.id },
            direct: false,
        });
        self.out.push_back(LinkOutput::Down { peer, reason: reason.to_string(), fingerprint_mismatch });
        if l.offerer {
            self.retry.insert(peer, now + RETRY_AFTER);
        }
    }

    /// Ends the link to `peer` without a retry (a new session or none at all).
    fn close(&mut self, peer: IdentityKey, reason: &str) {
        if let Some(mut l) = self.links.remove(&peer) {
            l.rtc.disconnect();
            self.out.push_back(LinkOutput::Down {
                peer,
                reason: reason.to_string(),
                fingerprint_mismatch: false,
            });
        }
    }

    /// Takes everything str0m has to say after a mutation, until it asks for a timeout.
    fn drain(&mut self, now: Instant, peer: IdentityKey) {
        loop {
            let Some(l) = self.links.get_mut(&peer) else { return };
            let output = match l.rtc.poll_output() {
                Ok(o) => o,
                Err(e) => return self.rtc_failed(now, peer, e),
            };
            match output {
                Output::Timeout(t) => {
                    l.next_timeout = t;
                    return;
                }
                Output::Transmit(t) if !can_reach(&self.host, t.source, t.destination) => {}
                Output::Transmit(t) => {
                    l.last_source = Some(t.source);
                    l.last_destination = Some(t.destination);
                    self.out.push_back(LinkOutput::Transmit {
                        source: t.source,
                        destination: t.destination,
                        contents: t.contents.to_vec(),
                    });
                }
                Output::Event(event) => self.on_event(now, peer, event),
            }
        }
    }

    fn on_event(&mut self, now: Instant, peer: IdentityKey, event: Event) {
        let relays = &self.relays;
        let Some(l) = self.links.get_mut(&peer) else { return };
        match event {
            Event::ChannelOpen(id, label) if label == CHAT_CHANNEL => {
                l.chat = Some(id);
                let ms = now.duration_since(l.started).as_millis() as u64;
                let (local, remote) = (l.last_source, l.last_destination);
                tracing::info!(peer = %peer.fingerprint(), ms, ?local, ?remote, "direct link open");
                // The candidate str0m sends from is the nominated one; stats confirm it later.
                let kind = kind_of(relays, l, l.last_source.zip(l.last_destination));
                self.out.push_back(LinkOutput::Open { peer, link: l.id });
                self.out.push_back(LinkOutput::Kind { peer, kind, rtt_ms: None });
            }
            Event::ChannelOpen(id, label) if label == FILE_CHANNEL => {
                l.file = Some(id);
                if let Some(mut ch) = l.rtc.channel(id) {
                    ch.set_buffered_amount_low_threshold(FILE_LOW_WATER);
                }
                self.out.push_back(LinkOutput::FileOpen { peer });
            }
            Event::ChannelOpen(id, label) => {
                tracing::debug!(?id, %label, "unexpected data channel from a peer, ignored");
            }
            Event::ChannelData(data) if Some(data.id) == l.chat => {
                self.out.push_back(LinkOutput::Chat { peer, packet: data.data });
            }
            Event::ChannelData(data) if Some(data.id) == l.file => {
                self.out.push_back(LinkOutput::FileData { peer, data: data.data });
            }
            Event::ChannelBufferedAmountLow(id) if Some(id) == l.file => {
                self.out.push_back(LinkOutput::FileWritable { peer });
            }
            Event::ChannelData(_) => {}
            Event::ChannelClose(id) if Some(id) == l.chat => {
                self.fail(now, peer, "the chat channel closed", false);
            }
            // Transfers would stall on it without a word; a new link resumes them.
            Event::ChannelClose(id) if Some(id) == l.file => {
                self.fail(now, peer, "the file channel closed", false);
            }
            Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                if l.chat.is_some() {
                    self.restart_ice(now, peer, "the direct path stopped answering");
                } else {
                    self.fail(now, peer, "the direct path stopped answering", false);
                }
            }
            Event::IceConnectionStateChange(
                IceConnectionState::Connected | IceConnectionState::Completed,
            ) if l.restart.take().is_some() => {
                tracing::info!(peer = %peer.fingerprint(), "ICE restart found a path");
            }
            Event::PeerStats(stats) if l.chat.is_some() => {
                let pair = stats.selected_candidate_pair.as_ref().map(|p| (p.local.addr, p.remote.addr));
                let kind = kind_of(relays, l, pair.or(l.last_source.zip(l.last_destination)));
                let rtt_ms = stats
                    .selected_candidate_pair
                    .as_ref()
                    .and_then(|p| p.current_round_trip_time)
                    .or(stats.rtt)
                    .map(|d| d.as_millis() as u64);
                self.out.push_back(LinkOutput::Kind { peer, kind, rtt_ms });
            }
            Event::MediaAdded(m) => {
                l.mids.push((m.mid, m.kind, m.direction != Direction::Inactive));
                self.media_changed(peer);
            }
            Event::MediaChanged(m) => {
                if let Some(entry) = l.mids.iter_mut().find(|(mid, _, _)| *mid == m.mid) {
                    entry.2 = m.direction != Direction::Inactive;
                }
                self.media_changed(peer);
            }
            Event::MediaData(d) if Some(d.mid) == l.mid(MediaKind::Audio) => {
                self.out.push_back(LinkOutput::Audio {
                    peer,
                    ts: d.time.numer(),
                    data: d.data.to_vec(),
                    arrived: d.network_time,
                });
            }
            Event::MediaData(d) if Some(d.mid) == l.mid(MediaKind::Video) => {
                self.out.push_back(LinkOutput::Video {
                    peer,
                    ts: d.time.numer(),
                    keyframe: d.is_keyframe(),
                    contiguous: d.contiguous,
                    data: d.data,
                    arrived: d.network_time,
                });
            }
            Event::KeyframeRequest(r) if Some(r.mid) == l.mid(MediaKind::Video) => {
                self.out.push_back(LinkOutput::KeyframeRequest { peer });
            }
            Event::EgressBitrateEstimate(BweKind::Twcc { estimate, .. }) => {
                l.estimate = estimate.as_u64();
                self.out.push_back(LinkOutput::Bandwidth { peer, bps: estimate.as_u64() });
            }
            Event::Closed => self.fail(now, peer, "the peer closed the link", false),
            _ => {}
        }
    }

    /// Announces what `peer`'s link carries, if that changed.
    fn media_changed(&mut self, peer: IdentityKey) {
        let Some(l) = self.links.get_mut(&peer) else { return };
        // str0m announces the media sections the peer offered; those we offered are what the
        // last answer agreed to.
        let active = |kind| l.mids.iter().any(|(_, k, on)| *k == kind && *on);
        let media = match l.offerer {
            true => l.neg.agreed(),
            false => MediaSet { audio: active(MediaKind::Audio), video: active(MediaKind::Video) },
        };
        if media != l.media {
            l.media = media;
            self.out.push_back(LinkOutput::Media { peer, media });
        }
    }
}

/// Whether a datagram from `source` can get to `destination`. ICE pairs every local candidate
/// with every remote one of its family, so checks from loopback towards another machine come
/// by; the kernel would refuse them (EINVAL, logged by quinn-udp as a warning). Loopback
/// towards one of our own addresses stays: two clients on one machine.
fn can_reach(host: &[SocketAddr], source: SocketAddr, destination: SocketAddr) -> bool {
    !source.ip().is_loopback()
        || destination.ip().is_loopback()
        || host.iter().any(|h| h.ip() == destination.ip())
}

/// Relayed if either end of the pair in use (local, remote) is a TURN relay address.
fn kind_of(relays: &[SocketAddr], link: &PeerLink, pair: Option<(SocketAddr, SocketAddr)>) -> LinkKind {
    match pair {
        Some((local, remote)) if relays.contains(&local) || link.remote_relays.contains(&remote) => {
            LinkKind::Relay
        }
        _ => LinkKind::Direct,
    }
}

/// The relayed candidates' addresses in an SDP.
fn relayed_in(sdp: &str) -> Vec<SocketAddr> {
    sdp.lines()
        .filter_map(|line| line.trim().strip_prefix("a="))
        .filter(|attr| attr.starts_with("candidate:"))
        .filter_map(|attr| Candidate::from_sdp_string(attr).ok())
        .filter(|c| c.kind() == CandidateKind::Relayed)
        .map(|c| c.addr())
        .collect()
}

impl PeerLink {
    /// The section of `kind` (audio or video), once a negotiation agreed on it.
    fn mid(&self, kind: MediaKind) -> Option<Mid> {
        let agreed = match kind {
            MediaKind::Audio => self.media.audio,
            MediaKind::Video => self.media.video,
        };
        if !agreed {
            return None;
        }
        match self.offerer {
            true => self.neg.mid(kind),
            false => self.mids.iter().find(|(_, k, on)| *k == kind && *on).map(|(m, _, _)| *m),
        }
    }

    /// Has str0m probe for more bandwidth: it does so when the desired bitrate rises above
    /// the estimate (an allocation probe), so the desired bitrate goes up a step on one call
    /// and back on the next (a step down asks for nothing): a probe every other call, each
    /// [`PROBE_EVERY`].
    fn ask_for_probe(&mut self) {
        let raised = self.next_probe_raises;
        self.next_probe_raises = !raised;
        let desired = match raised {
            true => Bitrate::bps(DESIRED_BITRATE.as_u64() + 1_000),
            false => DESIRED_BITRATE,
        };
        self.rtc.bwe().set_bitrate(Bitrate::kbps(0), desired);
    }

    /// Open, and not looking for a new path: signalling may ride on it.
    fn works(&self) -> bool {
        self.chat.is_some() && self.restart.is_none()
    }

    fn remember_trickle(&mut self, signal: &LinkSignal) {
        if let LinkSignal::Candidate { candidate, .. } = signal
            && self.sent_trickle.len() < MAX_TRICKLED
        {
            self.sent_trickle.push(candidate.clone());
        }
    }

    /// Our trickled candidates again, through the hub.
    fn resend_trickle(&self, peer: IdentityKey, out: &mut VecDeque<LinkOutput>) {
        for candidate in &self.sent_trickle {
            let signal = LinkSignal::Candidate { link: self.id, candidate: candidate.clone() };
            out.push_back(LinkOutput::Signal { peer, signal, direct: false });
        }
    }

    fn new(id: u64, rtc: Rtc, offerer: bool, neg: Negotiation, now: Instant) -> Self {
        Self {
            id,
            rtc,
            offerer,
            neg,
            mids: Vec::new(),
            media: MediaSet::default(),
            chat: None,
            file: None,
            started: now,
            next_timeout: now,
            last_source: None,
            last_destination: None,
            remote_relays: Vec::new(),
            remote_trickled: Vec::new(),
            sent_trickle: Vec::new(),
            restart: None,
            last_heard: now,
            estimate: 0,
            next_probe: now + PROBE_EVERY / 2,
            next_probe_raises: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::negotiation::{MEDIA_ASKS, OFFER_RESEND};
    use crate::protocol::wire::MAX_SDP;

    #[test]
    fn loopback_only_talks_to_this_machine() {
        let a = |s: &str| s.parse::<SocketAddr>().unwrap();
        let host = [a("127.0.0.1:5000"), a("192.168.1.2:5000"), a("[::1]:5000"), a("[2001:db8::2]:5000")];
        assert!(can_reach(&host, a("127.0.0.1:5000"), a("127.0.0.1:6000")));
        assert!(can_reach(&host, a("[::1]:5000"), a("[::1]:6000")));
        // Our own LAN address is this machine too (another client here).
        assert!(can_reach(&host, a("127.0.0.1:5000"), a("192.168.1.2:6000")));
        assert!(!can_reach(&host, a("127.0.0.1:5000"), a("192.168.1.3:6000")));
        assert!(!can_reach(&host, a("[::1]:5000"), a("[2001:db8::3]:6000")));
        assert!(can_reach(&host, a("192.168.1.2:5000"), a("192.168.1.3:6000")));
    }

    /// Two link managers wired together in memory, on a clock the test moves.
    struct Pair {
        now: Instant,
        sides: [Links; 2],
        keys: [IdentityKey; 2],
        addrs: [SocketAddr; 2],
        /// Rewrites signals in flight (to play a tampering signaller).
        tamper: Option<Box<dyn FnMut(LinkSignal) -> LinkSignal>>,
        /// The network between the sides drops every datagram (signals still pass).
        cut: bool,
        /// A path with delay, a rate and random loss; without one, datagrams arrive at once.
        path: Option<LossyPath>,
        /// Signals each side sent.
        signals: [usize; 2],
        /// Every offer sent: (side, seq, SDP bytes).
        offers: Vec<(usize, u64, usize)>,
        seen: [Vec<LinkOutput>; 2],
    }

    impl Pair {
        fn new() -> Self {
            let addrs: [SocketAddr; 2] =
                ["127.0.0.1:41000".parse().unwrap(), "127.0.0.1:42000".parse().unwrap()];
            Self {
                now: Instant::now(),
                sides: [Links::new(vec![addrs[0]], 1), Links::new(vec![addrs[1]], 1 << 40)],
                keys: [IdentityKey([1; 32]), IdentityKey([2; 32])],
                addrs,
                tamper: None,
                cut: false,
                path: None,
                signals: [0, 0],
                offers: Vec::new(),
                seen: [Vec::new(), Vec::new()],
            }
        }

        /// Moves outputs between the sides until nothing is left at this instant.
        fn settle(&mut self) {
            loop {
                let mut moved = false;
                for i in 0..2 {
                    let j = 1 - i;
                    while let Some(out) = self.sides[i].poll_output() {
                        moved = true;
                        match out {
                            LinkOutput::Transmit { source, destination, contents } => {
                                // A datagram from an address the sender no longer has goes nowhere.
                                if !self.cut && source == self.addrs[i] && destination == self.addrs[j] {
                                    match &mut self.path {
                                        Some(path) => path.send(self.now, j, source, destination, contents),
                                        None => {
                                            self.sides[j].handle_datagram(
                                                self.now,
                                                source,
                                                destination,
                                                &contents,
                                            );
                                        }
                                    }
                                }
                            }
                            LinkOutput::Signal { signal, direct, .. } => {
                                self.signals[i] += 1;
                                if let LinkSignal::Offer { seq, sdp, .. } = &signal {
                                    self.offers.push((i, *seq, sdp.len()));
                                }
                                let signal = match &mut self.tamper {
                                    Some(f) => f(signal),
                                    None => signal,
                                };
                                let from = self.keys[i];
                                self.sides[j].handle_signal(self.now, from, signal, direct);
                            }
                            other => self.seen[i].push(other),
                        }
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        fn run_until(&mut self, limit: Duration, done: impl Fn(&Pair) -> bool) {
            let end = self.now + limit;
            loop {
                self.settle();
                if done(self) {
                    return;
                }
                let next = self.sides.iter().filter_map(Links::poll_timeout).min().unwrap_or(end);
                assert!(
                    self.now < end,
                    "timed out: offers {:?}, media {:?}, downs {:?}",
                    self.offers,
                    (0..2)
                        .map(|i| self.sides[i]
                            .links
                            .get(&self.keys[1 - i])
                            .map(|l| (l.media, l.mids.clone())))
                        .collect::<Vec<_>>(),
                    self.downs()
                );
                self.now = next.max(self.now + Duration::from_millis(1)).min(end);
                for side in &mut self.sides {
                    side.handle_timeout(self.now);
                }
            }
        }

        /// Lets `d` pass and checks neither side sent a signal meanwhile.
        fn assert_no_signals_for(&mut self, d: Duration) {
            let (signals, t) = (self.signals, self.now);
            self.run_until(d + Duration::from_secs(1), |p| p.now >= t + d);
            assert_eq!(self.signals, signals, "signals were sent again");
        }

        fn opened(&self) -> bool {
            self.sides[0].is_open(&self.keys[1]) && self.sides[1].is_open(&self.keys[0])
        }

        fn open(&mut self) {
            let (a, b) = (self.keys[0], self.keys[1]);
            let now = self.now;
            self.sides[0].want(now, b, true);
            self.sides[1].want(now, a, false);
            self.run_until(Duration::from_secs(10), Pair::opened);
        }

        fn downs(&self) -> Vec<String> {
            self.seen
                .iter()
                .flatten()
                .filter_map(|o| match o {
                    LinkOutput::Down { reason, .. } => Some(reason.clone()),
                    _ => None,
                })
                .collect()
        }

        fn restarts(&self, i: usize) -> usize {
            self.seen[i].iter().filter(|o| matches!(o, LinkOutput::Regather)).count()
        }

        /// Sends `text` each way and runs until both arrived.
        fn chat_both_ways(&mut self, text: &[u8], limit: Duration) {
            let (a, b) = (self.keys[0], self.keys[1]);
            let now = self.now;
            assert!(self.sides[0].send_chat(now, b, text));
            assert!(self.sides[1].send_chat(now, a, text));
            let want = text.to_vec();
            self.run_until(limit, |p| p.chat(0).contains(&want) && p.chat(1).contains(&want));
        }

        fn chat(&self, i: usize) -> Vec<Vec<u8>> {
            self.seen[i]
                .iter()
                .filter_map(|o| match o {
                    LinkOutput::Chat { packet, .. } => Some(packet.clone()),
                    _ => None,
                })
                .collect()
        }
    }

    #[test]
    fn two_sides_open_a_chat_channel_and_exchange_packets() {
        let mut p = Pair::new();
        let (a, b) = (p.keys[0], p.keys[1]);
        let now = p.now;
        p.sides[0].want(now, b, true);
        p.sides[1].want(now, a, false);
        p.run_until(Duration::from_secs(10), |p| p.sides[0].is_open(&b) && p.sides[1].is_open(&a));
        assert!(p.seen[0].iter().any(|o| matches!(o, LinkOutput::Open { .. })));
        let now = p.now;
        assert!(p.sides[0].send_chat(now, b, b"hello over the link"));
        assert!(p.sides[1].send_chat(now, a, &vec![7u8; 60_000]));
        p.run_until(Duration::from_secs(5), |p| !p.chat(0).is_empty() && !p.chat(1).is_empty());
        assert_eq!(p.chat(1), [b"hello over the link".to_vec()]);
        assert_eq!(p.chat(0), [vec![7u8; 60_000]]);
        // The stats report the path as direct (no relay candidates here).
        p.run_until(Duration::from_secs(3), |p| {
            p.seen[0].iter().any(|o| matches!(o, LinkOutput::Kind { kind: LinkKind::Direct, .. }))
        });
    }

    #[test]
    fn a_chat_message_does_not_wait_behind_queued_file_data() {
        use crate::protocol::transfer::{CHUNK, MAX_QUEUED};
        let mut p = Pair::new();
        p.open();
        p.run_until(Duration::from_secs(5), |p| {
            p.seen[0].iter().any(|o| matches!(o, LinkOutput::FileOpen { .. }))
        });
        let b = p.keys[1];
        let now = p.now;
        // A transfer keeps this much file data queued; then a chat message is sent.
        for _ in 0..MAX_QUEUED / CHUNK {
            assert_eq!(p.sides[0].send_file_data(now, b, &[9u8; CHUNK]), FileWrite::Written);
        }
        assert!(p.sides[0].send_chat(now, b, b"are you there?"));
        p.run_until(Duration::from_secs(10), |p| !p.chat(1).is_empty());
        // The streams take turns a message at a time (the vendored sctp-proto's scheduler):
        // the chat message waits for the file message being sent, not the whole queue.
        let file_first: usize = p.seen[1]
            .iter()
            .take_while(|o| !matches!(o, LinkOutput::Chat { .. }))
            .map(|o| match o {
                LinkOutput::FileData { data, .. } => data.len(),
                _ => 0,
            })
            .sum();
        assert!(file_first <= CHUNK, "{file_first} bytes of file data arrived before the chat message");
        p.run_until(Duration::from_secs(10), |p| {
            p.seen[1].iter().filter(|o| matches!(o, LinkOutput::FileData { .. })).count()
                == MAX_QUEUED / CHUNK
        });
    }

    /// A path between the two sides on the test's clock: each direction is a link of
    /// `bytes_per_s` (datagrams queue behind each other), then `one_way` of delay; each
    /// datagram is lost with probability `loss`, from a seeded generator.
    struct LossyPath {
        one_way: Duration,
        bytes_per_s: f64,
        loss: f64,
        rng: rand_chacha::ChaCha20Rng,
        /// When each direction's link has sent what is queued on it.
        free_at: [Instant; 2],
        /// Datagrams on their way to side 0 and side 1, in arrival order.
        on_the_way: [VecDeque<InFlight>; 2],
    }

    /// A datagram on the path: when it arrives, its source, its destination, its bytes.
    type InFlight = (Instant, SocketAddr, SocketAddr, Vec<u8>);

    impl LossyPath {
        fn new(now: Instant, one_way: Duration, bytes_per_s: f64, loss: f64, seed: u64) -> Self {
            use rand_core::SeedableRng;
            Self {
                one_way,
                bytes_per_s,
                loss,
                rng: rand_chacha::ChaCha20Rng::seed_from_u64(seed),
                free_at: [now; 2],
                on_the_way: [VecDeque::new(), VecDeque::new()],
            }
        }

        fn send(
            &mut self,
            now: Instant,
            to: usize,
            source: SocketAddr,
            destination: SocketAddr,
            contents: Vec<u8>,
        ) {
            use rand_core::RngCore;
            let sent =
                self.free_at[to].max(now) + Duration::from_secs_f64(contents.len() as f64 / self.bytes_per_s);
            self.free_at[to] = sent;
            let draw = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            if draw >= self.loss {
                self.on_the_way[to].push_back((sent + self.one_way, source, destination, contents));
            }
        }

        fn next_arrival(&self) -> Option<Instant> {
            self.on_the_way.iter().filter_map(|q| q.front().map(|d| d.0)).min()
        }
    }

    impl Pair {
        /// Hands over the datagrams that have arrived by now, and what that causes.
        fn deliver_due(&mut self) {
            loop {
                self.settle();
                let Some(path) = &mut self.path else { return };
                let mut due = Vec::new();
                for (to, queue) in path.on_the_way.iter_mut().enumerate() {
                    while queue.front().is_some_and(|d| d.0 <= self.now) {
                        due.extend(queue.pop_front().map(|d| (to, d)));
                    }
                }
                if due.is_empty() {
                    return;
                }
                for (to, (_, source, destination, contents)) in due {
                    self.sides[to].handle_datagram(self.now, source, destination, &contents);
                }
            }
        }

        /// Sends `total` bytes of file data from side 0 to side 1 the way a transfer does
        /// (messages of CHUNK, at most MAX_QUEUED buffered) and returns how long it took on
        /// the test's clock.
        fn move_file_data(&mut self, total: usize, limit: Duration) -> Duration {
            use crate::protocol::transfer::{CHUNK, MAX_QUEUED};
            let b = self.keys[1];
            let start = self.now;
            let (mut sent, mut received) = (0, 0);
            let message = vec![0x4b; CHUNK];
            while received < total {
                while sent < total && self.sides[0].file_buffered(&b).unwrap_or(0) < MAX_QUEUED {
                    match self.sides[0].send_file_data(self.now, b, &message) {
                        FileWrite::Written => sent += CHUNK,
                        FileWrite::Full => break,
                        FileWrite::NoChannel => panic!("the file channel closed: {:?}", self.downs()),
                    }
                }
                self.deliver_due();
                self.seen[1].retain(|o| match o {
                    LinkOutput::FileData { data, .. } => {
                        received += data.len();
                        false
                    }
                    _ => true,
                });
                assert!(self.now < start + limit, "{received} of {total} bytes after {limit:?}");
                let timers = self.sides.iter().filter_map(Links::poll_timeout).min();
                let arrival = self.path.as_ref().and_then(LossyPath::next_arrival);
                let next = [timers, arrival].into_iter().flatten().min().unwrap_or(self.now);
                self.now = next.max(self.now + Duration::from_micros(20));
                for side in &mut self.sides {
                    side.handle_timeout(self.now);
                }
            }
            self.now - start
        }
    }

    /// File data over a path that loses packets at random, both ways, as Wi-Fi does: the
    /// data channel keeps a good share of what a loss-based congestion controller can get
    /// on such a path, MSS / RTT · 1.22 / √p (Mathis et al.). Each timeout the unpatched
    /// SCTP stack waited for cost a second, and the rate fell to a fraction of that.
    #[test]
    fn file_data_keeps_moving_over_a_path_that_loses_packets() {
        const MIB: usize = 1 << 20;
        let one_way = Duration::from_micros(500);
        for (loss, seed) in [(0.01, 1), (0.02, 2)] {
            let mut p = Pair::new();
            p.open();
            p.run_until(Duration::from_secs(5), |p| {
                p.seen[0].iter().any(|o| matches!(o, LinkOutput::FileOpen { .. }))
            });
            p.path = Some(LossyPath::new(p.now, one_way, 100.0 * MIB as f64, loss, seed));
            let total = 16 * MIB;
            let took = p.move_file_data(total, Duration::from_secs(120));
            let rate = total as f64 / MIB as f64 / took.as_secs_f64();
            let mathis = 1200.0 / (2.0 * one_way.as_secs_f64()) * 1.22 / f64::sqrt(loss) / MIB as f64;
            println!("{:.1} % loss: {rate:.1} MiB/s, {took:?} (Mathis: {mathis:.1} MiB/s)", loss * 100.0);
            assert!(
                rate > mathis / 4.0,
                "{:.1} % loss: {rate:.1} MiB/s, {took:?} (Mathis: {mathis:.1} MiB/s)",
                loss * 100.0
            );
            assert!(p.downs().is_empty(), "{:?}", p.downs());
        }
    }

    const AV: MediaSet = MediaSet { audio: true, video: true };
    const AUDIO: MediaSet = MediaSet { audio: true, video: false };

    impl Pair {
        /// What side `i`'s link carries, as str0m reported it.
        fn media(&self, i: usize) -> MediaSet {
            self.sides[i].media(&self.keys[1 - i])
        }

        fn restarting(&self) -> bool {
            (0..2).any(|i| self.sides[i].links[&self.keys[1 - i]].restart.is_some())
        }

        /// The distinct offers side 0 made, by sequence number.
        fn offer_seqs(&self) -> Vec<u64> {
            let mut seqs: Vec<u64> = self.offers.iter().map(|o| o.1).collect();
            seqs.dedup();
            seqs
        }
    }

    /// Audio and video asked for while an ICE restart starts (on either side): one offer at a
    /// time, the restart folded into the next one, and both agreed without the link going down.
    fn a_media_change_and_an_ice_restart_that_race_are_both_agreed(mover: usize) {
        let mut p = Pair::new();
        p.open();
        let (a, b) = (p.keys[0], p.keys[1]);
        let new: SocketAddr = if mover == 0 { "127.0.0.2:41000" } else { "127.0.0.2:42000" }.parse().unwrap();
        p.addrs[mover] = new;
        let now = p.now;
        p.sides[0].set_media(now, b, AV);
        assert!(p.sides[mover].network_changed(now, vec![new]));
        p.chat_both_ways(b"after the move", Duration::from_secs(10));
        p.run_until(Duration::from_secs(10), |p| p.media(0) == AV && p.media(1) == AV && !p.restarting());
        assert!(p.downs().is_empty(), "{:?}", p.downs());
        assert_eq!(p.restarts(0), 1);
        // The first offer, the media one, then the restart in an offer of its own (the media
        // offer was in flight when it was wanted): never two at once.
        assert_eq!(p.offer_seqs(), [0, 1, 2], "{:?}", p.offers);
        assert!(p.offers.iter().all(|o| o.0 == 0), "only the offerer offers");

        // Both drop video, each from its side: the answerer asks, the offerer offers.
        let now = p.now;
        p.sides[1].set_media(now, a, AUDIO);
        p.sides[0].set_media(now, b, AUDIO);
        p.run_until(Duration::from_secs(10), |p| p.media(0) == AUDIO && p.media(1) == AUDIO);
        // The answerer alone asks for video again: the offerer offers the union.
        let now = p.now;
        p.sides[1].set_media(now, a, AV);
        p.run_until(Duration::from_secs(10), |p| p.media(0) == AV && p.media(1) == AV);
        p.chat_both_ways(b"still chatting", Duration::from_secs(5));
        assert!(p.downs().is_empty(), "{:?}", p.downs());
        // An offer with audio, video, both channels and every candidate fits the signalling
        // limit with room to spare (only Opus and H.264 are offered).
        let largest = p.offers.iter().map(|o| o.2).max().unwrap();
        assert!(largest < MAX_SDP / 2, "an offer of {largest} bytes");
        // Nothing is resent once every offer is answered.
        p.assert_no_signals_for(Duration::from_secs(6));
    }

    #[test]
    fn a_media_change_racing_the_offerers_ice_restart_is_agreed() {
        a_media_change_and_an_ice_restart_that_race_are_both_agreed(0);
    }

    #[test]
    fn a_media_change_racing_the_answerers_ice_restart_is_agreed() {
        a_media_change_and_an_ice_restart_that_race_are_both_agreed(1);
    }

    #[test]
    fn a_lost_media_request_is_asked_again_and_the_asking_ends() {
        let mut p = Pair::new();
        p.open();
        let a = p.keys[0];
        // The answerer's first request for audio and video is lost on its way.
        let mut lost = false;
        p.tamper = Some(Box::new(move |signal| match signal {
            LinkSignal::Media { link, .. } if !lost => {
                lost = true;
                LinkSignal::Close { link: link.wrapping_add(1000) }
            }
            other => other,
        }));
        let now = p.now;
        p.sides[1].set_media(now, a, AV);
        p.run_until(OFFER_RESEND + Duration::from_secs(3), |p| p.media(0) == AV && p.media(1) == AV);
        p.assert_no_signals_for(Duration::from_secs(6));
        // A request the offerer already satisfies makes no offer: it is asked a few times, then
        // no more.
        let (signals, now) = (p.signals[1], p.now);
        p.sides[1].set_media(now, a, AV);
        p.run_until(OFFER_RESEND * MEDIA_ASKS + Duration::from_secs(1), |p| {
            p.now >= now + OFFER_RESEND * MEDIA_ASKS
        });
        assert_eq!(p.signals[1] - signals, MEDIA_ASKS as usize);
        p.assert_no_signals_for(Duration::from_secs(6));
        assert!(p.downs().is_empty(), "{:?}", p.downs());
    }

    #[test]
    fn a_copy_of_an_old_offer_or_answer_changes_nothing() {
        let mut p = Pair::new();
        p.open();
        let (a, b) = (p.keys[0], p.keys[1]);
        let first = p.sides[0].links[&b].neg.offer_signal();
        assert!(first.is_none(), "the first offer was answered");
        let now = p.now;
        p.sides[0].set_media(now, b, AV);
        let Some(LinkSignal::Offer { link, seq, sdp }) = p.sides[0].links[&b].neg.offer_signal() else {
            panic!("a media offer in flight")
        };
        p.run_until(Duration::from_secs(10), |p| p.media(1) == AV && p.media(0) == AV);
        p.sides[0].set_media(now, b, AUDIO);
        p.run_until(Duration::from_secs(10), |p| p.media(1) == AUDIO);
        // The hub delivers a late copy of the media offer: the answerer ignores it.
        let now = p.now;
        p.sides[1].handle_signal(now, a, LinkSignal::Offer { link, seq, sdp }, false);
        p.settle();
        assert_eq!((p.media(0), p.media(1)), (AUDIO, AUDIO));
        assert!(p.downs().is_empty(), "{:?}", p.downs());
    }

    #[test]
    fn a_dtls_certificate_that_does_not_match_the_signed_fingerprint_aborts_the_link() {
        let mut p = Pair::new();
        let (a, b) = (p.keys[0], p.keys[1]);
        // The answer's fingerprint is changed in transit (as if the signalling path lied):
        // the offerer must refuse the DTLS peer and say why.
        p.tamper = Some(Box::new(|signal| match signal {
            LinkSignal::Answer { link, seq, sdp } => {
                let sdp = sdp
                    .lines()
                    .map(|l| {
                        if let Some(rest) = l.strip_prefix("a=fingerprint:sha-256 ") {
                            let flipped: String = rest
                                .chars()
                                .map(|c| {
                                    if c == 'A' {
                                        'B'
                                    } else if c == 'B' {
                                        'A'
                                    } else {
                                        c
                                    }
                                })
                                .collect();
                            let flipped = if flipped == rest {
                                rest.replacen(|c: char| c.is_ascii_digit(), "F", 1)
                            } else {
                                flipped
                            };
                            format!("a=fingerprint:sha-256 {flipped}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\r\n")
                    + "\r\n";
                LinkSignal::Answer { link, seq, sdp }
            }
            other => other,
        }));
        let now = p.now;
        p.sides[0].want(now, b, true);
        p.sides[1].want(now, a, false);
        p.run_until(Duration::from_secs(10), |p| {
            p.seen[0].iter().any(|o| matches!(o, LinkOutput::Down { .. }))
        });
        let down = p.seen[0].iter().find_map(|o| match o {
            LinkOutput::Down { reason, fingerprint_mismatch, .. } => {
                Some((reason.clone(), *fingerprint_mismatch))
            }
            _ => None,
        });
        let (reason, mismatch) = down.unwrap();
        assert!(mismatch, "{reason}");
        assert!(reason.contains("does not match"), "{reason}");
        assert!(!p.sides[0].is_open(&b));
        assert!(!p.seen[0].iter().any(|o| matches!(o, LinkOutput::Open { .. })));
    }
    /// One side's address changes under an open link (an interface renumbered): that side
    /// notices, withdraws the old host candidate, and the link restarts ICE onto the new
    /// address without going down. Run for either side, since only the offerer restarts and
    /// the answerer has to ask it to.
    fn an_open_link_follows_a_new_address(mover: usize) {
        let mut p = Pair::new();
        p.open();
        p.chat_both_ways(b"before", Duration::from_secs(5));
        let new: SocketAddr = if mover == 0 { "127.0.0.2:41000" } else { "127.0.0.2:42000" }.parse().unwrap();
        p.addrs[mover] = new;
        let now = p.now;
        assert!(p.sides[mover].network_changed(now, vec![new]));
        p.chat_both_ways(b"after the move", Duration::from_secs(RESTART_GRACE.as_secs() - 1));
        assert!(p.downs().is_empty(), "{:?}", p.downs());
        assert_eq!(p.restarts(0), 1, "the offerer restarted once");
        assert!(p.opened());
        let offerer_link = &p.sides[0].links[&p.keys[1]];
        assert!(offerer_link.restart.is_none());
        let pair = (offerer_link.last_source, offerer_link.last_destination);
        assert!(pair.0 == Some(new) || pair.1 == Some(new), "still on the old path: {pair:?}");
        // Nothing is resent once the restart is over.
        p.assert_no_signals_for(Duration::from_secs(6));
    }

    #[test]
    fn an_open_link_follows_the_offerer_to_a_new_address() {
        an_open_link_follows_a_new_address(0);
    }

    #[test]
    fn an_open_link_follows_the_answerer_to_a_new_address() {
        an_open_link_follows_a_new_address(1);
    }

    #[test]
    fn a_path_that_comes_back_within_the_grace_keeps_the_link() {
        let mut p = Pair::new();
        p.open();
        p.cut = true;
        // Long enough for ICE to call the path disconnected and a restart to begin.
        p.run_until(Duration::from_secs(60), |p| p.restarts(0) > 0);
        let t = p.now;
        p.run_until(Duration::from_secs(2), |p| p.now >= t + Duration::from_secs(2));
        p.cut = false;
        p.chat_both_ways(b"still here", Duration::from_secs(RESTART_GRACE.as_secs()));
        assert!(p.downs().is_empty(), "{:?}", p.downs());
        assert!(p.opened());
    }

    #[test]
    fn a_path_that_stays_dead_goes_back_to_the_hub_after_the_grace() {
        let mut p = Pair::new();
        p.open();
        p.cut = true;
        p.run_until(Duration::from_secs(90), |p| p.downs().len() == 2);
        let downs = p.downs();
        assert!(downs[0].contains("no new one was found"), "{downs:?}");
        assert!(!p.sides[0].is_open(&p.keys[1]));
        assert!(!p.sides[1].is_open(&p.keys[0]));
    }
}
