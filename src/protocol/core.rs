//! Everything a client decides, in one sans-IO state machine: the hub client and its peer
//! sessions ([`Client`]), the direct links ([`Links`]), STUN and TURN ([`Nat`]) and file
//! transfers ([`Transfers`]) and room calls ([`Calls`]), wired to each other here. It takes inputs (`handle_*(now, …)`)
//! and yields [`CoreOutput`]s: frames for the hub, datagrams for the link socket, events for
//! the front-end, requests for the disk and the profile. The net layer's loop only moves those
//! bytes, timers and files; tests drive the whole of it on a simulated clock.
//!
//! A call asks the links for an audio section with each peer in it. The media layer (its own
//! threads, outside) is told when to start and stop ([`MediaControl`]), gets each peer's
//! packets ([`CoreOutput::Audio`]) and hands back one encoded frame for all ([`Core::send_audio`]).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use super::call::{CallEvent, CallOutput, Calls};
use super::client::{Client, ClientOutput, Gone};
use super::events::{ClientCommand, ClientEvent};
use super::identity::IdentityKey;
use super::links::{LinkOutput, Links};
use super::nat::{Claimed, Nat, NatOutput};
pub use super::time::Now;
use super::transfer::{DiskDone, DiskRequest, TransferOutput, Transfers};
use super::trust::KnownPeers;
use super::wire::{LinkSignal, MediaSet};

#[derive(Debug)]
pub enum CoreOutput {
    /// A frame for the hub connection.
    ToHub(Vec<u8>),
    /// Close the hub connection (reconnect unless `fatal`).
    CloseHub { fatal: bool },
    /// A datagram for the link socket.
    Transmit { source: SocketAddr, destination: SocketAddr, contents: Vec<u8> },
    /// For the front-end. A fatal error means the core stops.
    Event(ClientEvent),
    /// Persist the known-peers store.
    SaveKnownPeers(KnownPeers),
    /// Persist this key as the hub's pin.
    PinHub(IdentityKey),
    /// Work for the disk worker; answer with [`Core::handle_disk`].
    Disk(DiskRequest),
    /// Our addresses changed: resolve the STUN and TURN servers again (new routes to them),
    /// and hand each to [`Core::add_stun`] / [`Core::add_turn`].
    ResolveServers,
    /// For the media layer: start, stop, a peer gone, mute and deafen.
    Media(MediaControl),
    /// An Opus packet from `peer`, who is in our call (RTP timestamp at 48 kHz).
    Audio { peer: IdentityKey, ts: u64, data: Vec<u8>, arrived: Instant },
    /// An H.264 frame from `peer`, who is in our call (RTP timestamp at 90 kHz).
    Video { peer: IdentityKey, ts: u64, data: Arc<[u8]>, keyframe: bool, contiguous: bool, arrived: Instant },
    /// A member of our call asks for a keyframe of our video.
    KeyframeRequest { peer: IdentityKey },
}

/// What the media layer is told.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaControl {
    /// We joined a call: open the devices, start encoding.
    Start {
        muted: bool,
        deafened: bool,
    },
    /// We are in no call any more: let go of the devices.
    Stop,
    /// `peer` left the call: drop its jitter buffer.
    PeerLeft(IdentityKey),
    Mute(bool),
    Deafen(bool),
    /// Our camera sends, or not (the user's switch, or a call with too many cameras).
    Camera(bool),
    /// The bitrate our one video encoding may take: what the weakest path to a member of the
    /// call carries, less the audio and a margin.
    VideoBitrate(u32),
    /// How loud `peer` plays (1.0 as sent, up to 2.0).
    Volume {
        peer: IdentityKey,
        gain: f32,
    },
}

/// Per-person volumes remembered (a call has at most 10 people; these outlive calls), and
/// bandwidth estimates of links kept.
const MAX_VOLUMES: usize = 64;
/// What our audio takes on a path: Opus at 32 kbit/s, with its RTP, SRTP, UDP and IP headers.
const AUDIO_BPS: u64 = 50_000;

#[derive(Debug, Default)]
struct MediaState {
    running: bool,
    muted: bool,
    deafened: bool,
    /// The user wants the camera on; and one is chosen (a camera that is not there is off in
    /// the call, whatever the switch says).
    camera_wanted: bool,
    camera_available: bool,
    /// Each linked peer's bandwidth estimate (bit/s), and the video bitrate last told.
    bandwidth: std::collections::HashMap<IdentityKey, u64>,
    video_bps: Option<u32>,
    /// Volumes the user set, applied again when the media layer starts.
    volumes: std::collections::HashMap<IdentityKey, f32>,
}

pub struct Core {
    client: Client,
    links: Links,
    nat: Nat,
    transfers: Transfers,
    calls: Calls,
    media: MediaState,
    /// Direct links are on (there is a link socket).
    direct: bool,
    out: VecDeque<CoreOutput>,
}

impl Core {
    /// `direct` says whether a link socket is there; without one everything goes through the
    /// hub and link offers are refused at once.
    pub fn new(client: Client, links: Links, nat: Nat, transfers: Transfers, direct: bool) -> Self {
        let calls = Calls::new(client.me());
        Self {
            client,
            links,
            nat,
            transfers,
            calls,
            media: MediaState::default(),
            direct,
            out: VecDeque::new(),
        }
    }

    /// Our camera at the start (`--camera`, the window's state): wanted on, and chosen. The
    /// front-end knows it already (it chose); [`ClientCommand::Camera`] is the switch after,
    /// answered with a `camera` event.
    pub fn set_camera(&mut self, now: Now, wanted: bool, available: bool) {
        (self.media.camera_wanted, self.media.camera_available) = (wanted, available);
        // Not in a call yet: nothing is refused.
        let _ = self.calls.set_camera(now, wanted && available);
        self.route(now);
    }

    /// Another camera was chosen: `available` says whether there is one now.
    pub fn camera_chosen(&mut self, now: Now, available: bool) {
        self.media.camera_available = available;
        self.switch_camera(now, self.media.camera_wanted);
        self.route(now);
    }

    /// Turns our camera on or off in the call machine, tells the media layer what it sends
    /// and the front-end what to show; a call with all its cameras on refuses ours.
    fn switch_camera(&mut self, now: Now, wanted: bool) {
        let on = wanted && self.media.camera_available;
        match self.calls.set_camera(now, on) {
            Ok(()) => {
                self.media.camera_wanted = wanted;
                self.out.push_back(CoreOutput::Media(MediaControl::Camera(on)));
                let available = self.media.camera_available;
                self.out.push_back(CoreOutput::Event(ClientEvent::Camera { on: wanted, available }));
            }
            Err(e) => self.camera_refused(e),
        }
    }

    /// The call has all its cameras: ours is off, the user is told why, and the switch shows it.
    fn camera_refused(&mut self, e: super::call::CallError) {
        self.out.push_back(CoreOutput::Event(ClientEvent::error("camera_refused", e.to_string())));
        self.media.camera_wanted = false;
        self.out.push_back(CoreOutput::Media(MediaControl::Camera(false)));
        let available = self.media.camera_available;
        self.out.push_back(CoreOutput::Event(ClientEvent::Camera { on: false, available }));
    }

    /// Join every call that rings here, when not in one already.
    pub fn set_auto_answer(&mut self, on: bool) {
        self.calls.set_auto_answer(on);
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// One encoded audio frame from the media layer: the same bytes to every peer in the call
    /// whose link carries audio (encoded once, encrypted per link by its DTLS-SRTP keys).
    pub fn send_audio(&mut self, now: Now, ts: u64, data: Arc<[u8]>) {
        for peer in self.calls.joined_members() {
            self.links.send_audio(now.at, peer, ts, Arc::clone(&data));
        }
        self.route(now);
    }

    /// One encoded video frame from the media layer: like audio, encoded once and written to
    /// every member's link that carries video.
    pub fn send_video(&mut self, now: Now, ts: u64, data: Arc<[u8]>) {
        for peer in self.calls.joined_members() {
            self.links.send_video(now.at, peer, ts, Arc::clone(&data));
        }
        self.route(now);
    }

    /// Our decoder of `peer`'s video lost its place: ask the peer for a keyframe.
    pub fn request_keyframe(&mut self, now: Now, peer: IdentityKey) {
        if self.calls.in_call_with(peer) {
            self.links.request_keyframe(now.at, peer);
            self.route(now);
        }
    }

    /// The round trip to `peer` on its link, when measured.
    pub fn rtt_ms(&self, peer: &IdentityKey) -> Option<u64> {
        self.client.link_rtt_ms(peer)
    }

    pub fn is_ready(&self) -> bool {
        self.client.is_ready()
    }

    pub fn poll_output(&mut self) -> Option<CoreOutput> {
        self.out.pop_front()
    }

    /// The earliest time `handle_timeout` has work.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let client = self.client.poll_timeout();
        let calls = self.calls.poll_timeout();
        [client, self.links.poll_timeout(), self.nat.poll_timeout(), self.transfers.poll_timeout(), calls]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Now) {
        self.client.handle_timeout(now);
        self.links.handle_timeout(now.at);
        self.nat.handle_timeout(now.at);
        self.transfers.handle_timeout(now.at);
        self.transfers.pump_paced(now.at, &mut self.links);
        self.calls.handle_timeout(now);
        self.route(now);
    }

    pub fn handle_hub_connected(&mut self, now: Now) {
        self.client.handle_hub_connected(now);
        self.route(now);
    }

    pub fn handle_hub_frame(&mut self, now: Now, frame: &[u8]) {
        self.client.handle_hub_frame(now, frame);
        self.route(now);
    }

    pub fn handle_hub_disconnected(&mut self, now: Now, reason: &str) {
        self.client.handle_hub_disconnected(now, reason);
        self.route(now);
    }

    /// A command from the front-end. File commands are the transfers'; the rest the client's.
    pub fn handle_command(&mut self, now: Now, cmd: ClientCommand) {
        match cmd {
            // Files move only on direct links; without a link socket one would wait forever.
            ClientCommand::SendFile { .. } if !self.direct => {
                let msg =
                    "files need a direct link, and direct links are off (--no-direct, or no UDP socket)";
                self.out.push_back(CoreOutput::Event(ClientEvent::error("no_direct_links", msg)));
            }
            ClientCommand::SendFile { peer, path } => match self.client.secure_peer(&peer) {
                Some(key) => {
                    self.transfers.send_file(key, std::path::PathBuf::from(path));
                }
                None => {
                    let msg = format!("no secure session with {peer}");
                    self.out.push_back(CoreOutput::Event(ClientEvent::error("unknown_peer", msg)));
                }
            },
            ClientCommand::AcceptFile { id } => self.transfers.accept(&id),
            ClientCommand::DeclineFile { id } => self.transfers.decline(&id),
            ClientCommand::CancelFile { id } => self.transfers.cancel(&id),
            ClientCommand::Call { room } if !self.client.in_room(&room) => {
                let msg = format!("not in #{room}: join it first");
                self.out.push_back(CoreOutput::Event(ClientEvent::error("not_in_room", msg)));
            }
            ClientCommand::Call { room } => {
                let id = self.client.random_u64();
                if let Err(e) = self.calls.call(now, &room, id) {
                    self.out.push_back(CoreOutput::Event(ClientEvent::error("call_refused", e.to_string())));
                }
            }
            ClientCommand::Hangup => match self.calls.joined_room().map(str::to_string) {
                Some(room) => self.calls.hang_up(&room),
                None => self.out.push_back(CoreOutput::Event(ClientEvent::error("no_call", "not in a call"))),
            },
            ClientCommand::DeclineCall { room } => {
                if let Err(e) = self.calls.decline(&room) {
                    self.out.push_back(CoreOutput::Event(ClientEvent::error("no_call", e.to_string())));
                }
            }
            ClientCommand::Camera { on } => self.switch_camera(now, on),
            ClientCommand::Mute { on } => {
                self.calls.set_muted(on);
                self.media.muted = on;
                if self.media.running {
                    self.out.push_back(CoreOutput::Media(MediaControl::Mute(on)));
                }
            }
            ClientCommand::Volume { peer, percent } => match self.client.secure_peer(&peer) {
                Some(key) => {
                    let gain = percent.min(200) as f32 / 100.0;
                    self.media.volumes.insert(key, gain);
                    if self.media.volumes.len() > MAX_VOLUMES {
                        // Volumes of people long gone: the oldest setting goes (any will do).
                        if let Some(k) = self.media.volumes.keys().find(|k| **k != key).copied() {
                            self.media.volumes.remove(&k);
                        }
                    }
                    if self.media.running {
                        self.out.push_back(CoreOutput::Media(MediaControl::Volume { peer: key, gain }));
                    }
                }
                None => {
                    let msg = format!("no secure session with {peer}");
                    self.out.push_back(CoreOutput::Event(ClientEvent::error("unknown_peer", msg)));
                }
            },
            ClientCommand::Deafen { on } => {
                self.media.deafened = on;
                if self.media.running {
                    self.out.push_back(CoreOutput::Media(MediaControl::Deafen(on)));
                }
            }
            ClientCommand::Leave { room } => {
                self.calls.room_left(&room);
                self.client.handle_command(now, ClientCommand::Leave { room });
            }
            other => self.client.handle_command(now, other),
        }
        self.route(now);
    }

    /// We are quitting: open links are closed on both sides (the Close goes on each link).
    pub fn handle_quit(&mut self, now: Now) {
        self.client.handle_quit();
        self.route(now);
    }

    /// A datagram from the link socket: STUN/TURN answers and relayed data first, then the
    /// links.
    pub fn handle_datagram(&mut self, now: Now, source: SocketAddr, destination: SocketAddr, bytes: &[u8]) {
        let delivered = match self.nat.handle_datagram(now.at, source, destination, bytes) {
            Claimed::No => self.links.handle_datagram(now.at, source, destination, bytes),
            Claimed::Taken => true,
            Claimed::Relayed { relayed, peer, data } => {
                self.links.handle_datagram(now.at, peer, relayed, &data)
            }
        };
        if !delivered {
            tracing::trace!(%source, "datagram for no link");
        }
        self.route(now);
    }

    /// What the disk worker finished.
    pub fn handle_disk(&mut self, now: Now, done: DiskDone) {
        self.transfers.handle_disk(now.at, done, &mut self.links);
        self.route(now);
    }

    /// A STUN server, resolved, with our address towards it.
    pub fn add_stun(&mut self, now: Now, name: &str, server: SocketAddr, base: SocketAddr) {
        self.nat.add_stun(now.at, name, server, base);
        self.route(now);
    }

    pub fn add_turn(&mut self, now: Now, server: SocketAddr, base: SocketAddr, user: &str, password: &str) {
        self.nat.add_turn(now.at, server, base, user, password);
        self.route(now);
    }

    /// The machine's addresses as the link socket sees them now: on a change the links restart
    /// ICE and STUN/TURN start over from the new addresses.
    pub fn network_changed(&mut self, now: Now, host: Vec<SocketAddr>) {
        if self.links.network_changed(now.at, host.clone()) {
            self.nat.network_changed(now.at, &host);
            self.out.push_back(CoreOutput::ResolveServers);
        }
        self.route(now);
    }

    /// Moves what each part produced to the part it is for, until only outputs for the
    /// outside world are left.
    fn route(&mut self, now: Now) {
        loop {
            let mut moved = false;
            while let Some(out) = self.client.poll_output() {
                moved = true;
                self.route_client_output(now, out);
            }
            while let Some(out) = self.links.poll_output() {
                moved = true;
                self.route_link_output(now, out);
            }
            while let Some(out) = self.nat.poll_output() {
                moved = true;
                match out {
                    NatOutput::Transmit { source, destination, contents } => {
                        self.out.push_back(CoreOutput::Transmit { source, destination, contents })
                    }
                    NatOutput::Candidate(c) => self.links.add_local_candidate(now.at, c),
                    NatOutput::Problem(text) => {
                        self.out.push_back(CoreOutput::Event(ClientEvent::error("ice_server", text)))
                    }
                }
            }
            while let Some(out) = self.calls.poll_output() {
                moved = true;
                self.route_call_output(now, out);
            }
            while let Some(out) = self.transfers.poll_output() {
                moved = true;
                match out {
                    TransferOutput::Signal { peer, signal } => self.client.send_file_signal(peer, signal),
                    TransferOutput::Event(e) => self.out.push_back(CoreOutput::Event(e)),
                    TransferOutput::Disk(request) => self.out.push_back(CoreOutput::Disk(request)),
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn route_call_output(&mut self, now: Now, out: CallOutput) {
        match out {
            CallOutput::ToRoom { room, signal } => self.client.send_call_to_room(&room, signal),
            CallOutput::To { peer, signal } => self.client.send_call_signal(peer, signal),
            CallOutput::Media { peer, audio } => {
                if self.direct {
                    self.links.set_media(now.at, peer, MediaSet { audio, video: audio });
                }
            }
            CallOutput::Event(CallEvent::CameraRefused { room }) => {
                self.camera_refused(super::call::CallError::CamerasFull { room })
            }
            CallOutput::Event(e) => {
                if let CallEvent::Member { peer, joined: false, .. } = &e
                    && self.media.running
                {
                    self.out.push_back(CoreOutput::Media(MediaControl::PeerLeft(*peer)));
                }
                // Whether the call can reach a member who joins (never through the hub).
                let reach = match &e {
                    CallEvent::Member { peer, joined: true, .. } => {
                        Some(if self.direct && self.links.is_open(peer) { "open" } else { "hub_only" })
                    }
                    _ => None,
                };
                let mut event = call_event(e);
                if let (ClientEvent::CallMember { link, .. }, Some(reach)) = (&mut event, reach) {
                    *link = Some(reach.into());
                }
                self.out.push_back(CoreOutput::Event(event));
                self.sync_media(now);
                // A member who left may have been the slowest.
                self.update_video_bitrate();
            }
        }
    }

    /// Starts the media layer when we join a call and stops it when we are in none.
    fn sync_media(&mut self, now: Now) {
        let joined = self.calls.joined_room().is_some();
        if joined != self.media.running {
            self.media.running = joined;
            // The call goes first on the path: file data is paced while it is up.
            self.transfers.set_call_pace(now.at, joined);
            self.transfers.pump_paced(now.at, &mut self.links);
            let control = match joined {
                true => MediaControl::Start { muted: self.media.muted, deafened: self.media.deafened },
                false => MediaControl::Stop,
            };
            self.out.push_back(CoreOutput::Media(control));
            self.media.video_bps = None;
            if joined {
                for (peer, gain) in &self.media.volumes {
                    self.out.push_back(CoreOutput::Media(MediaControl::Volume { peer: *peer, gain: *gain }));
                }
            }
        }
    }

    /// Tells the video encoder what the weakest path to a member of our call carries: one
    /// encoding for everyone, so it must fit the slowest (and the ladder lowers the size when
    /// that is little). A change of less than 5 % is not worth telling.
    fn update_video_bitrate(&mut self) {
        if !self.media.running {
            return;
        }
        let members = self.calls.joined_members();
        let Some(weakest) = members.iter().filter_map(|p| self.media.bandwidth.get(p)).min() else { return };
        // A tenth stays free for retransmissions and the estimate's own error.
        let video = (weakest * 9 / 10).saturating_sub(AUDIO_BPS);
        let video = u32::try_from(video).unwrap_or(u32::MAX);
        if self.media.video_bps.is_none_or(|last| u64::from(video.abs_diff(last)) * 20 > u64::from(last)) {
            self.media.video_bps = Some(video);
            self.out.push_back(CoreOutput::Media(MediaControl::VideoBitrate(video)));
        }
    }

    fn route_client_output(&mut self, now: Now, out: ClientOutput) {
        match out {
            ClientOutput::ToHub(frame) => self.out.push_back(CoreOutput::ToHub(frame)),
            ClientOutput::Event(e) => self.out.push_back(CoreOutput::Event(e)),
            ClientOutput::SaveKnownPeers(k) => self.out.push_back(CoreOutput::SaveKnownPeers(k)),
            ClientOutput::PinHub(key) => self.out.push_back(CoreOutput::PinHub(key)),
            ClientOutput::CloseHub { fatal } => self.out.push_back(CoreOutput::CloseHub { fatal }),
            ClientOutput::LinkWanted { peer, offerer } => {
                if self.direct {
                    self.links.want(now.at, peer, offerer);
                }
            }
            ClientOutput::LinkDropped { peer } => self.links.drop_peer(peer),
            ClientOutput::PeerGone { peer, gone } => {
                // A peer out of sight stays in a call until its announcements stop coming.
                if matches!(gone, Gone::Left | Gone::Restarted) {
                    self.calls.forget_peer(peer);
                }
                match gone {
                    Gone::Left => {
                        self.transfers.end_with(peer, "the other side left before the transfer finished")
                    }
                    Gone::Restarted => self.transfers.end_with(
                        peer,
                        "the other side restarted Kith before the transfer finished: send it again",
                    ),
                    Gone::OutOfSight => self.transfers.out_of_sight(now.at, peer),
                }
            }
            ClientOutput::PeerBack { peer } => self.transfers.back_in_sight(peer),
            ClientOutput::CallSignal { peer, signal } => self.calls.handle_signal(now, peer, signal),
            ClientOutput::FileSignal { peer, signal } => {
                self.transfers.handle_signal(now.at, peer, signal, &mut self.links)
            }
            ClientOutput::LinkSignal { peer, signal, direct } => match signal {
                signal if self.direct => self.links.handle_signal(now.at, peer, signal, direct),
                // Direct links are off here: say so at once rather than let the offerer wait.
                LinkSignal::Offer { link, .. } => {
                    self.client.send_link_signal(peer, LinkSignal::Close { link }, false)
                }
                _ => {}
            },
            ClientOutput::Direct { peer, packet } => {
                if !self.links.send_chat(now.at, peer, &packet) {
                    self.client.handle_direct_failed(peer, packet);
                }
            }
        }
    }

    fn route_link_output(&mut self, now: Now, out: LinkOutput) {
        match out {
            LinkOutput::Transmit { source, destination, contents } => {
                if self.links.is_relayed(&source) {
                    self.nat.send_relayed(now.at, source, destination, &contents);
                } else {
                    self.out.push_back(CoreOutput::Transmit { source, destination, contents });
                }
            }
            LinkOutput::Signal { peer, signal, direct } => self.client.send_link_signal(peer, signal, direct),
            LinkOutput::Regather => self.nat.refresh(now.at),
            LinkOutput::Open { peer, link } => {
                self.client.handle_link_open(now, peer, link);
                // A link made after the call began (or made again) carries its audio too.
                if self.calls.in_call_with(peer) {
                    self.links.set_media(now.at, peer, MediaSet { audio: true, video: true });
                }
            }
            LinkOutput::Kind { peer, kind, rtt_ms } => self.client.handle_link_kind(peer, kind, rtt_ms),
            LinkOutput::Chat { peer, packet } => self.client.handle_direct_packet(now, peer, &packet),
            LinkOutput::FileOpen { peer } => self.transfers.link_ready(now.at, peer, &mut self.links),
            LinkOutput::FileWritable { peer } => self.transfers.pump(now.at, peer, &mut self.links),
            LinkOutput::FileData { peer, data } => self.transfers.handle_data(now.at, peer, &data),
            // The sections a call asked for are agreed on; the media layer will use them.
            LinkOutput::Media { peer, media } => {
                tracing::info!(peer = %peer.fingerprint(), audio = media.audio, video = media.video, "link media agreed")
            }
            LinkOutput::Audio { peer, ts, data, arrived } => {
                if self.media.running && self.calls.in_call_with(peer) {
                    self.out.push_back(CoreOutput::Audio { peer, ts, data, arrived });
                }
            }
            LinkOutput::Video { peer, ts, data, keyframe, contiguous, arrived } => {
                if self.media.running && self.calls.in_call_with(peer) {
                    self.out.push_back(CoreOutput::Video { peer, ts, data, keyframe, contiguous, arrived });
                }
            }
            LinkOutput::KeyframeRequest { peer } => {
                if self.media.running && self.calls.in_call_with(peer) {
                    self.out.push_back(CoreOutput::KeyframeRequest { peer });
                }
            }
            LinkOutput::Bandwidth { peer, bps } => {
                if self.media.bandwidth.len() < MAX_VOLUMES || self.media.bandwidth.contains_key(&peer) {
                    self.media.bandwidth.insert(peer, bps);
                }
                if self.calls.in_call_with(peer) {
                    self.update_video_bitrate();
                }
            }
            LinkOutput::Down { peer, reason, fingerprint_mismatch } => {
                self.media.bandwidth.remove(&peer);
                self.transfers.link_down(peer);
                let error = fingerprint_mismatch.then_some(reason);
                self.client.handle_link_down(now, peer, error);
            }
        }
    }
}

/// A call event in the front-ends' words.
fn call_event(e: CallEvent) -> ClientEvent {
    let fp = |k: IdentityKey| k.fingerprint().to_string();
    match e {
        CallEvent::State { room, state, members } => ClientEvent::Call {
            room,
            state: state.as_str().into(),
            members: members.into_iter().map(fp).collect(),
        },
        CallEvent::Member { room, peer, joined } => {
            let state = if joined { "joined" } else { "left" };
            ClientEvent::CallMember { room, peer: fp(peer), state: state.into(), link: None }
        }
        CallEvent::Declined { room, peer } => {
            ClientEvent::CallMember { room, peer: fp(peer), state: "declined".into(), link: None }
        }
        CallEvent::MemberMedia { room, peer, camera, muted } => {
            ClientEvent::CallMedia { room, peer: fp(peer), camera, muted }
        }
        // Handled where it is routed: it changes the media layer too.
        CallEvent::CameraRefused { room } => {
            ClientEvent::error("camera_refused", super::call::CallError::CamerasFull { room }.to_string())
        }
        CallEvent::Full { room } => ClientEvent::error(
            "call_full",
            format!(
                "the call in #{room} has {} people already; try again when someone leaves",
                super::call::MAX_CALL_MEMBERS
            ),
        ),
    }
}
