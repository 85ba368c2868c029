//! Room calls: who is in a room's call, who is being rung, and with whom we need media.
//!
//! Sans-IO like the rest of the protocol: signals come in from peer sessions, time is passed
//! in, and what to send and tell the user comes out of [`Calls::poll_output`].
//!
//! Call state is *soft*: every member of a call says so ([`CallSignal::In`]) to the room
//! when it joins and again every [`HEARTBEAT`], and a member not heard from for
//! [`MEMBER_TIMEOUT`] is out. Nothing needs to be delivered reliably or in order, a member
//! whose network drops comes back by being heard again, and a process that restarts simply
//! is not in the call any more (it joins again). Signals travel inside the peers' Noise
//! sessions like chat, so the hub learns only that small messages pass.
//!
//! Two members who start a call in the same room at once make two calls; the one with the
//! lower id is the room's call and the members of the other move to it as soon as they hear
//! of it, so everyone ends up in one call without asking anyone to decide.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::identity::IdentityKey;
use super::time::Now;

/// How often a member of a call says so to the room.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// A member not heard from for this long has left (three heartbeats lost).
pub const MEMBER_TIMEOUT: Duration = Duration::from_secs(16);
/// How long an incoming call rings before it counts as missed.
pub const RING_TIMEOUT: Duration = Duration::from_secs(30);
/// People in one call, us included: a mesh sends every packet to each of the others, and
/// ten voices stay within a home uplink (10 × 32 kbit/s of Opus).
pub const MAX_CALL_MEMBERS: usize = 10;
/// People who show video in one call, us included: each sends its one encoded stream to every
/// other, so each decodes all the others' (five decoders keep a laptop busy, six would not fit).
/// A seventh camera is refused rather than slowing everyone down.
pub const MAX_CAMERAS: usize = 6;
/// Members tracked for one call, whatever the peers claim (the limit is enforced by each
/// member, so a few more than the limit can be seen for a moment).
const MAX_TRACKED: usize = 2 * MAX_CALL_MEMBERS;
/// Rooms with a call we track (we only hear of calls in rooms we joined).
const MAX_ROOMS: usize = 64;

/// Call control, inside a peer session (`PeerMsg::Call`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallSignal {
    /// The sender is in call `call` of `room`, since `since_ms` (its wall clock, which orders
    /// members for the size limit). `ring` asks the receiver's app to ring: set when the
    /// sender started the call, on the announcements of its first [`RING_TIMEOUT`].
    In { room: String, call: u64, since_ms: u64, ring: bool },
    /// The sender left call `call`.
    Out { room: String, call: u64 },
    /// The sender will not join call `call` (its caller's app can say so).
    Decline { room: String, call: u64 },
    /// What the sender, a member of call `call`, sends: video since `camera_since_ms` (its wall
    /// clock, which orders cameras for [`MAX_CAMERAS`]), `None` without; its microphone muted.
    /// Sent after each [`CallSignal::In`] and on every change. Last in the enum, so a version
    /// that does not know it ignores it (an unknown message) and the call still works.
    Media { room: String, call: u64, camera_since_ms: Option<u64>, muted: bool },
}

impl CallSignal {
    pub fn room(&self) -> &str {
        match self {
            Self::In { room, .. }
            | Self::Out { room, .. }
            | Self::Decline { room, .. }
            | Self::Media { room, .. } => room,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallOutput {
    /// Send to every member of the room we hold a session with.
    ToRoom {
        room: String,
        signal: CallSignal,
    },
    /// Send to one peer.
    To {
        peer: IdentityKey,
        signal: CallSignal,
    },
    /// We need (or no longer need) an audio path with `peer`.
    Media {
        peer: IdentityKey,
        audio: bool,
    },
    Event(CallEvent),
}

/// What the user is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// The room's call as we see it changed state; `members` are the peers in it (not us).
    State { room: String, state: CallState, members: Vec<IdentityKey> },
    /// A peer joined or left the call we are in.
    Member { room: String, peer: IdentityKey, joined: bool },
    /// A peer declined the call we are in.
    Declined { room: String, peer: IdentityKey },
    /// The call we are in has more members than the limit, and we joined last: we left.
    Full { room: String },
    /// What a member of `room`'s call sends changed (or was first heard).
    MemberMedia { room: String, peer: IdentityKey, camera: bool, muted: bool },
    /// The call we are in has [`MAX_CAMERAS`] cameras on without ours, and ours came last: it
    /// is off now (we are still in the call, heard and seeing the others).
    CameraRefused { room: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Someone started a call and it rings here.
    Ringing,
    /// A call runs in the room and we are not in it (declined, missed, or left).
    Running,
    /// We are in it.
    Joined,
    /// We left it (it may go on without us: then it is `Running` next).
    Left,
    /// Nobody is in it any more.
    Ended,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ringing => "ringing",
            Self::Running => "running",
            Self::Joined => "joined",
            Self::Left => "left",
            Self::Ended => "ended",
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("the call in #{room} is full ({MAX_CALL_MEMBERS} people); try again when someone leaves")]
    Full { room: String },
    #[error("no call in #{0}")]
    NoCall(String),
    #[error("too many rooms with calls")]
    TooManyRooms,
    #[error(
        "{MAX_CAMERAS} people already show video in the call in #{room}: your camera stays off (you are \
         still heard, and you see everyone); try again when someone turns theirs off"
    )]
    CamerasFull { room: String },
}

#[derive(Debug, Clone, Copy)]
struct Member {
    since_ms: u64,
    last_heard: Instant,
    /// From its [`CallSignal::Media`]: video since then (its wall clock); muted.
    camera_since_ms: Option<u64>,
    muted: bool,
}

/// One room's call, as we know it.
#[derive(Debug)]
struct RoomCall {
    id: u64,
    members: BTreeMap<IdentityKey, Member>,
    /// Our part: when we joined (wall clock, for the order), and when we next announce.
    joined: Option<Joined>,
    /// Ringing here until then.
    ringing_until: Option<Instant>,
    /// This call rang here once: the caller's later announcements (which still ask to ring,
    /// for those who come online) do not ring it again after a decline or a miss.
    rang: bool,
}

#[derive(Debug, Clone, Copy)]
struct Joined {
    since_ms: u64,
    next_heartbeat: Instant,
    /// We started the call: our announcements ring the others until then.
    ring_until: Option<Instant>,
    /// Our camera sends in this call since then (when it was turned on, or when we joined
    /// with it on: a camera that comes into a full call is the last one).
    camera_since_ms: Option<u64>,
}

impl Joined {
    fn new(now: Now, ring_until: Option<Instant>, camera: bool) -> Self {
        Self {
            since_ms: now.unix_ms,
            next_heartbeat: now.at,
            ring_until,
            camera_since_ms: camera.then_some(now.unix_ms),
        }
    }
}

impl RoomCall {
    fn new(id: u64) -> Self {
        Self { id, members: BTreeMap::new(), joined: None, ringing_until: None, rang: false }
    }

    fn members(&self) -> Vec<IdentityKey> {
        self.members.keys().copied().collect()
    }

    fn state(&self) -> CallState {
        match (&self.joined, self.ringing_until, self.members.is_empty()) {
            (Some(_), _, _) => CallState::Joined,
            (None, _, true) => CallState::Ended,
            (None, Some(_), false) => CallState::Ringing,
            (None, None, false) => CallState::Running,
        }
    }

    /// Whether we are among the first `MAX_CALL_MEMBERS` by join time (key order breaking ties).
    fn we_fit(&self, me: IdentityKey) -> bool {
        let Some(j) = self.joined else { return true };
        let ahead = self.members.iter().filter(|(k, m)| (m.since_ms, **k) < (j.since_ms, me)).count();
        ahead < MAX_CALL_MEMBERS
    }

    /// Whether our camera (if on) is among the first [`MAX_CAMERAS`] turned on.
    fn our_camera_fits(&self, me: IdentityKey) -> bool {
        let Some(ours) = self.joined.and_then(|j| j.camera_since_ms) else { return true };
        let ahead = self
            .members
            .iter()
            .filter(|(k, m)| m.camera_since_ms.is_some_and(|t| (t, **k) < (ours, me)))
            .count();
        ahead < MAX_CAMERAS
    }

    fn cameras_on(&self) -> usize {
        self.members.values().filter(|m| m.camera_since_ms.is_some()).count()
    }
}

/// The calls of the rooms we are in. We are in at most one call at a time.
pub struct Calls {
    me: IdentityKey,
    rooms: HashMap<String, RoomCall>,
    out: VecDeque<CallOutput>,
    auto_answer: bool,
    /// Our camera sends (in this call and the next), our microphone is muted.
    camera: bool,
    muted: bool,
}

impl Calls {
    pub fn new(me: IdentityKey) -> Self {
        Self {
            me,
            rooms: HashMap::new(),
            out: VecDeque::new(),
            auto_answer: false,
            camera: false,
            muted: false,
        }
    }

    /// Turns our camera on or off, in the call we are in (the others hear of it at once) and
    /// the next. Refused when [`MAX_CAMERAS`] others show video already.
    pub fn set_camera(&mut self, now: Now, on: bool) -> Result<(), CallError> {
        if on
            && let Some((room, c)) = self.rooms.iter().find(|(_, c)| c.joined.is_some())
            && c.joined.is_some_and(|j| j.camera_since_ms.is_none())
            && c.cameras_on() >= MAX_CAMERAS
        {
            return Err(CallError::CamerasFull { room: room.clone() });
        }
        if self.camera == on {
            return Ok(());
        }
        self.camera = on;
        if let Some(room) = self.joined_room().map(str::to_string) {
            if let Some(j) = self.rooms.get_mut(&room).and_then(|c| c.joined.as_mut()) {
                j.camera_since_ms = on.then_some(now.unix_ms);
            }
            self.announce_media(None, &room);
        }
        Ok(())
    }

    /// Our microphone is muted (the others show it).
    pub fn set_muted(&mut self, muted: bool) {
        if self.muted == muted {
            return;
        }
        self.muted = muted;
        if let Some(room) = self.joined_room().map(str::to_string) {
            self.announce_media(None, &room);
        }
    }

    /// Whether our camera is on (it may have been refused).
    pub fn camera(&self) -> bool {
        self.camera
    }

    /// Join every call that rings, unless already in one (for scripts and tests).
    pub fn set_auto_answer(&mut self, on: bool) {
        self.auto_answer = on;
    }

    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.out.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.rooms
            .values()
            .flat_map(|c| {
                let heard = c.members.values().map(|m| m.last_heard + MEMBER_TIMEOUT);
                heard
                    .chain(c.joined.map(|j| j.next_heartbeat))
                    .chain(c.joined.and_then(|j| j.ring_until))
                    .chain(c.ringing_until)
            })
            .min()
    }

    /// Whether `peer` is in the call we are in (we want audio with it).
    pub fn in_call_with(&self, peer: IdentityKey) -> bool {
        self.rooms.values().any(|c| c.joined.is_some() && c.members.contains_key(&peer))
    }

    /// The room we are in a call in, if any.
    pub fn joined_room(&self) -> Option<&str> {
        self.rooms.iter().find(|(_, c)| c.joined.is_some()).map(|(r, _)| r.as_str())
    }

    /// The others in the call we are in (empty when we are in none).
    pub fn joined_members(&self) -> Vec<IdentityKey> {
        self.rooms.values().find(|c| c.joined.is_some()).map(|c| c.members()).unwrap_or_default()
    }

    /// The state of `room`'s call and who is in it (not us), if there is one.
    pub fn view(&self, room: &str) -> Option<(CallState, Vec<IdentityKey>)> {
        self.rooms.get(room).map(|c| (c.state(), c.members()))
    }

    /// Starts a call in `room`, or joins the one running there. `new_id` names the call if
    /// we start it (random, from the caller's generator). Leaves any call in another room.
    pub fn call(&mut self, now: Now, room: &str, new_id: u64) -> Result<(), CallError> {
        if let Some(c) = self.rooms.get(room) {
            if c.joined.is_some() {
                return Ok(());
            }
            if c.members.len() >= MAX_CALL_MEMBERS {
                return Err(CallError::Full { room: room.to_string() });
            }
        } else if self.rooms.len() >= MAX_ROOMS {
            return Err(CallError::TooManyRooms);
        }
        if let Some(other) = self.joined_room().map(str::to_string) {
            self.hang_up(&other);
        }
        let started = self.rooms.get(room).is_none_or(|c| c.members.is_empty());
        let c = self.rooms.entry(room.to_string()).or_insert_with(|| RoomCall::new(new_id));
        if started {
            // Nobody is in the call we knew of: it is over, and ours is a new one.
            c.id = new_id;
        }
        c.ringing_until = None;
        // All the places for cameras are taken (as far as we heard, watching the room): ours
        // stays off rather than showing for a moment.
        let camera = self.camera && c.cameras_on() < MAX_CAMERAS;
        c.joined = Some(Joined::new(now, started.then_some(now.at + RING_TIMEOUT), camera));
        let members = c.members();
        if self.camera && !camera {
            self.camera = false;
            self.emit(CallEvent::CameraRefused { room: room.to_string() });
        }
        self.emit_state(room);
        for peer in members {
            self.out.push_back(CallOutput::Media { peer, audio: true });
        }
        self.announce(now, room);
        Ok(())
    }

    /// Leaves `room`'s call.
    pub fn hang_up(&mut self, room: &str) {
        let Some(c) = self.rooms.get_mut(room) else { return };
        if c.joined.take().is_none() {
            return;
        }
        let (id, members) = (c.id, c.members());
        self.out.push_back(CallOutput::ToRoom {
            room: room.to_string(),
            signal: CallSignal::Out { room: room.to_string(), call: id },
        });
        for peer in &members {
            self.out.push_back(CallOutput::Media { peer: *peer, audio: false });
        }
        self.emit(CallEvent::State { room: room.to_string(), state: CallState::Left, members });
        self.settle(room);
    }

    /// Stops the ringing of `room`'s call and tells whoever is in it.
    pub fn decline(&mut self, room: &str) -> Result<(), CallError> {
        let c = self
            .rooms
            .get_mut(room)
            .filter(|c| c.joined.is_none())
            .ok_or_else(|| CallError::NoCall(room.to_string()))?;
        let (id, members) = (c.id, c.members());
        c.ringing_until = None;
        for peer in members {
            self.out.push_back(CallOutput::To {
                peer,
                signal: CallSignal::Decline { room: room.to_string(), call: id },
            });
        }
        self.emit_state(room);
        self.settle(room);
        Ok(())
    }

    /// A signal from `from`, a member of `signal.room()` (the caller checks: signals for
    /// rooms we are not in, or from peers not in the room, never get here).
    pub fn handle_signal(&mut self, now: Now, from: IdentityKey, signal: CallSignal) {
        match signal {
            CallSignal::In { room, call, since_ms, ring } => {
                self.on_in(now, from, room, call, since_ms, ring)
            }
            CallSignal::Out { room, call } => {
                if self.rooms.get(&room).is_some_and(|c| c.id == call) {
                    self.remove_member(&room, from);
                }
            }
            CallSignal::Decline { room, call } => {
                if self.rooms.get(&room).is_some_and(|c| c.id == call && c.joined.is_some()) {
                    self.emit(CallEvent::Declined { room, peer: from });
                }
            }
            CallSignal::Media { room, call, camera_since_ms, muted } => {
                self.on_media(now, from, room, call, camera_since_ms, muted)
            }
        }
    }

    /// A member says what it sends; a camera that makes one too many may be ours.
    fn on_media(
        &mut self,
        now: Now,
        from: IdentityKey,
        room: String,
        call: u64,
        camera_since_ms: Option<u64>,
        muted: bool,
    ) {
        let Some(c) = self.rooms.get_mut(&room).filter(|c| c.id == call) else { return };
        let Some(m) = c.members.get_mut(&from) else { return };
        m.last_heard = now.at;
        let changed = (m.camera_since_ms.is_some(), m.muted) != (camera_since_ms.is_some(), muted);
        (m.camera_since_ms, m.muted) = (camera_since_ms, muted);
        let refused = !c.our_camera_fits(self.me);
        if changed {
            let camera = camera_since_ms.is_some();
            self.emit(CallEvent::MemberMedia { room: room.clone(), peer: from, camera, muted });
        }
        if refused {
            tracing::debug!(room, "one camera too many in the call, and ours came last: off");
            self.camera = false;
            if let Some(j) = self.rooms.get_mut(&room).and_then(|c| c.joined.as_mut()) {
                j.camera_since_ms = None;
            }
            self.emit(CallEvent::CameraRefused { room: room.clone() });
            self.announce_media(None, &room);
        }
    }

    /// `peer` left `room` (the hub or the peer said so), or its session ended.
    pub fn peer_gone(&mut self, room: &str, peer: IdentityKey) {
        self.remove_member(room, peer);
    }

    /// `peer` left for good (every room, or its process restarted): out of every call.
    pub fn forget_peer(&mut self, peer: IdentityKey) {
        let rooms: Vec<String> = self
            .rooms
            .iter()
            .filter(|(_, c)| c.members.contains_key(&peer))
            .map(|(r, _)| r.clone())
            .collect();
        for room in rooms {
            self.remove_member(&room, peer);
        }
    }

    /// We left `room`: its call is none of our business any more.
    pub fn room_left(&mut self, room: &str) {
        self.hang_up(room);
        if let Some(c) = self.rooms.remove(room) {
            self.emit(CallEvent::State {
                room: room.to_string(),
                state: CallState::Ended,
                members: c.members(),
            });
        }
    }

    pub fn handle_timeout(&mut self, now: Now) {
        let rooms: Vec<String> = self.rooms.keys().cloned().collect();
        for room in rooms {
            let Some(c) = self.rooms.get_mut(&room) else { continue };
            let silent: Vec<IdentityKey> = c
                .members
                .iter()
                .filter(|(_, m)| now.at >= m.last_heard + MEMBER_TIMEOUT)
                .map(|(k, _)| *k)
                .collect();
            if let Some(j) = &mut c.joined
                && j.ring_until.is_some_and(|t| now.at >= t)
            {
                j.ring_until = None;
            }
            if c.ringing_until.is_some_and(|t| now.at >= t) {
                c.ringing_until = None;
                self.emit_state(&room);
            }
            for peer in silent {
                tracing::debug!(peer = %peer.fingerprint(), room, "call member not heard from: gone");
                self.remove_member(&room, peer);
            }
            if self.rooms.get(&room).and_then(|c| c.joined).is_some_and(|j| now.at >= j.next_heartbeat) {
                self.announce(now, &room);
            }
        }
    }

    fn on_in(&mut self, now: Now, from: IdentityKey, room: String, call: u64, since_ms: u64, ring: bool) {
        if !self.rooms.contains_key(&room) && self.rooms.len() >= MAX_ROOMS {
            return;
        }
        let c = self.rooms.entry(room.clone()).or_insert_with(|| RoomCall::new(call));
        if call != c.id {
            let ours_runs = c.joined.is_some() || !c.members.is_empty();
            if ours_runs && c.id < call {
                // They are in the other call of a glare: ours is the room's. Tell them now,
                // rather than at our next heartbeat.
                if c.joined.is_some() {
                    let signal = self.in_signal(now, &room);
                    self.out.push_back(CallOutput::To { peer: from, signal });
                }
                return;
            }
            // Theirs is the room's call (ours had the higher id, or ours is over).
            self.switch_call(now, &room, call);
        }
        let Some(c) = self.rooms.get_mut(&room) else { return };
        let known = c.members.contains_key(&from);
        if !known && c.members.len() >= MAX_TRACKED {
            return;
        }
        match c.members.get_mut(&from) {
            Some(m) => (m.since_ms, m.last_heard) = (since_ms, now.at),
            None => {
                let m = Member { since_ms, last_heard: now.at, camera_since_ms: None, muted: false };
                c.members.insert(from, m);
            }
        }
        if known {
            return;
        }
        let joined = c.joined.is_some();
        let rings = !joined && ring && !c.rang;
        if rings {
            c.rang = true;
            c.ringing_until = Some(now.at + RING_TIMEOUT);
        }
        if joined {
            self.out.push_back(CallOutput::Media { peer: from, audio: true });
            self.emit(CallEvent::Member { room: room.clone(), peer: from, joined: true });
            // They learn of us at once, not at our next heartbeat.
            let signal = self.in_signal(now, &room);
            self.out.push_back(CallOutput::To { peer: from, signal });
            self.announce_media(Some(from), &room);
            if !self.rooms.get(&room).is_some_and(|c| c.we_fit(self.me)) {
                self.hang_up(&room);
                self.emit(CallEvent::Full { room });
            }
        } else {
            let first = self.rooms.get(&room).is_some_and(|c| c.members.len() == 1);
            if first || rings {
                self.emit_state(&room);
            }
            if rings && self.auto_answer && self.joined_room().is_none() {
                // Joins the call that rings: the id is only for a call we start.
                let _ = self.call(now, &room, call);
            }
        }
    }

    /// Moves `room` to call `call`: out of the one we were in (if any), into the new one.
    fn switch_call(&mut self, now: Now, room: &str, call: u64) {
        let Some(c) = self.rooms.get_mut(room) else { return };
        let was_in = c.joined.is_some();
        let old = std::mem::replace(c, RoomCall::new(call));
        if was_in {
            tracing::debug!(room, "two calls in the room: moving to the one with the lower id");
            let signal = CallSignal::Out { room: room.to_string(), call: old.id };
            self.out.push_back(CallOutput::ToRoom { room: room.to_string(), signal });
            for peer in old.members.keys() {
                self.out.push_back(CallOutput::Media { peer: *peer, audio: false });
            }
            if let Some(c) = self.rooms.get_mut(room) {
                c.joined = Some(Joined::new(now, None, self.camera));
            }
            self.announce(now, room);
        }
    }

    fn remove_member(&mut self, room: &str, peer: IdentityKey) {
        let Some(c) = self.rooms.get_mut(room) else { return };
        if c.members.remove(&peer).is_none() {
            return;
        }
        if c.joined.is_some() {
            self.out.push_back(CallOutput::Media { peer, audio: false });
            self.emit(CallEvent::Member { room: room.to_string(), peer, joined: false });
        }
        self.settle(room);
    }

    /// A call nobody is in (us included) is over.
    fn settle(&mut self, room: &str) {
        let Some(c) = self.rooms.get(room) else { return };
        if c.joined.is_none() && c.members.is_empty() {
            self.rooms.remove(room);
            self.emit(CallEvent::State {
                room: room.to_string(),
                state: CallState::Ended,
                members: Vec::new(),
            });
        }
    }

    fn in_signal(&self, now: Now, room: &str) -> CallSignal {
        let c = &self.rooms[room];
        let j = c.joined.unwrap_or(Joined::new(now, None, false));
        CallSignal::In {
            room: room.to_string(),
            call: c.id,
            since_ms: j.since_ms,
            ring: j.ring_until.is_some_and(|t| now.at < t),
        }
    }

    fn announce(&mut self, now: Now, room: &str) {
        let signal = self.in_signal(now, room);
        if let Some(j) = self.rooms.get_mut(room).and_then(|c| c.joined.as_mut()) {
            j.next_heartbeat = now.at + HEARTBEAT;
        }
        self.out.push_back(CallOutput::ToRoom { room: room.to_string(), signal });
        self.announce_media(None, room);
    }

    /// Says what we send in `room`'s call (which we are in): to `to`, or to the room.
    fn announce_media(&mut self, to: Option<IdentityKey>, room: &str) {
        let Some(c) = self.rooms.get(room) else { return };
        let Some(j) = c.joined else { return };
        let signal = CallSignal::Media {
            room: room.to_string(),
            call: c.id,
            camera_since_ms: j.camera_since_ms,
            muted: self.muted,
        };
        self.out.push_back(match to {
            Some(peer) => CallOutput::To { peer, signal },
            None => CallOutput::ToRoom { room: room.to_string(), signal },
        });
    }

    fn emit_state(&mut self, room: &str) {
        if let Some(c) = self.rooms.get(room) {
            let event = CallEvent::State { room: room.to_string(), state: c.state(), members: c.members() };
            self.emit(event);
        }
    }

    fn emit(&mut self, event: CallEvent) {
        self.out.push_back(CallOutput::Event(event));
    }
}

#[cfg(test)]
mod tests;
