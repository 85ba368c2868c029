//! Members of one room on a simulated clock, their signals carried by a network the test
//! can cut.

use std::collections::{BTreeSet, HashSet};

use super::*;

const ROOM: &str = "general";

struct Mesh {
    now: Now,
    nodes: Vec<Calls>,
    keys: Vec<IdentityKey>,
    /// Pairs (either way) whose signals are lost.
    cut: HashSet<(usize, usize)>,
    /// Node `i` is not running (a quit process): it sends and receives nothing.
    down: HashSet<usize>,
    events: Vec<Vec<CallEvent>>,
    /// With whom each node wants audio now.
    media: Vec<BTreeSet<IdentityKey>>,
    signals: usize,
}

impl Mesh {
    fn new(n: usize) -> Self {
        let keys: Vec<IdentityKey> = (0..n).map(|i| IdentityKey([i as u8 + 1; 32])).collect();
        Self {
            now: Now { at: Instant::now(), unix_ms: 1_800_000_000_000 },
            nodes: keys.iter().map(|k| Calls::new(*k)).collect(),
            keys,
            cut: HashSet::new(),
            down: HashSet::new(),
            events: vec![Vec::new(); n],
            media: vec![BTreeSet::new(); n],
            signals: 0,
        }
    }

    fn blocked(&self, a: usize, b: usize) -> bool {
        self.cut.contains(&(a, b))
            || self.cut.contains(&(b, a))
            || self.down.contains(&a)
            || self.down.contains(&b)
    }

    fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.nodes.len() {
                while let Some(out) = self.nodes[i].poll_output() {
                    moved = true;
                    match out {
                        CallOutput::ToRoom { signal, .. } => {
                            for j in 0..self.nodes.len() {
                                if j != i && !self.blocked(i, j) {
                                    self.signals += 1;
                                    self.nodes[j].handle_signal(self.now, self.keys[i], signal.clone());
                                }
                            }
                        }
                        CallOutput::To { peer, signal } => {
                            let j = self.index(peer);
                            if !self.blocked(i, j) {
                                self.signals += 1;
                                self.nodes[j].handle_signal(self.now, self.keys[i], signal);
                            }
                        }
                        CallOutput::Media { peer, audio } => {
                            if audio {
                                self.media[i].insert(peer);
                            } else {
                                self.media[i].remove(&peer);
                            }
                        }
                        CallOutput::Event(e) => self.events[i].push(e),
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn index(&self, key: IdentityKey) -> usize {
        self.keys.iter().position(|k| *k == key).expect("a node's key")
    }

    /// Lets `d` pass, waking each node at its own timeouts.
    fn run(&mut self, d: Duration) {
        let end = self.now.at + d;
        loop {
            self.settle();
            let running = self.nodes.iter().enumerate().filter(|(i, _)| !self.down.contains(i));
            let next = running.filter_map(|(_, n)| n.poll_timeout()).min().unwrap_or(end);
            if next > end || self.now.at >= end {
                break;
            }
            let step = next.saturating_duration_since(self.now.at).max(Duration::from_millis(1));
            self.now = self.now.plus(step);
            for (i, n) in self.nodes.iter_mut().enumerate() {
                if !self.down.contains(&i) {
                    n.handle_timeout(self.now);
                }
            }
        }
        let rest = end.saturating_duration_since(self.now.at);
        self.now = self.now.plus(rest);
        self.settle();
    }

    /// `n` members, all in node 0's call (id 7).
    fn in_one_call(n: usize) -> Self {
        let mut m = Self::new(n);
        for i in 0..n {
            m.call(i, 7 + i as u64);
        }
        m
    }

    fn call(&mut self, i: usize, id: u64) {
        let now = self.now;
        self.nodes[i].call(now, ROOM, id).expect("call");
        self.settle();
    }

    fn hang_up(&mut self, i: usize) {
        self.nodes[i].hang_up(ROOM);
        self.settle();
    }

    fn state(&self, i: usize) -> Option<CallState> {
        self.nodes[i].view(ROOM).map(|(s, _)| s)
    }

    /// Who node `i` sees in the call, by node index.
    fn members(&self, i: usize) -> Vec<usize> {
        let (_, members) = self.nodes[i].view(ROOM).unwrap_or((CallState::Ended, Vec::new()));
        let mut v: Vec<usize> = members.into_iter().map(|k| self.index(k)).collect();
        v.sort();
        v
    }

    fn audio_with(&self, i: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self.media[i].iter().map(|k| self.index(*k)).collect();
        v.sort();
        v
    }

    fn states_seen(&self, i: usize) -> Vec<CallState> {
        self.events[i]
            .iter()
            .filter_map(|e| match e {
                CallEvent::State { state, .. } => Some(*state),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn three_people_start_ring_join_and_the_call_goes_on_when_the_caller_hangs_up() {
    let mut m = Mesh::new(3);
    m.call(0, 7);
    assert_eq!(m.state(0), Some(CallState::Joined));
    for i in [1, 2] {
        assert_eq!(m.state(i), Some(CallState::Ringing), "node {i}");
        assert_eq!(m.members(i), [0]);
    }
    m.run(Duration::from_secs(2));
    m.call(1, 99);
    m.call(2, 98);
    m.settle();
    // One call (the caller's id), everyone in it, and audio with each of the others.
    for i in 0..3 {
        assert_eq!(m.state(i), Some(CallState::Joined), "node {i}");
        let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
        assert_eq!(m.members(i), others, "node {i}");
        assert_eq!(m.audio_with(i), others, "node {i}");
    }
    assert!(m.nodes.iter().all(|n| n.rooms[ROOM].id == 7));
    // Heartbeats keep it so.
    m.run(Duration::from_secs(60));
    assert_eq!(m.members(1), [0, 2]);

    m.hang_up(0);
    assert_eq!(m.state(0), Some(CallState::Running), "the call goes on without the caller");
    assert_eq!(m.audio_with(0), Vec::<usize>::new());
    assert_eq!((m.members(1), m.members(2)), (vec![2], vec![1]));
    assert_eq!((m.audio_with(1), m.audio_with(2)), (vec![2], vec![1]));
    assert!(m.events[1].contains(&CallEvent::Member { room: ROOM.into(), peer: m.keys[0], joined: false }));

    m.hang_up(1);
    m.hang_up(2);
    for i in 0..3 {
        assert_eq!(m.state(i), None, "node {i}");
        assert_eq!(m.states_seen(i).last(), Some(&CallState::Ended), "node {i}");
    }
    // Nobody in a call: nothing is sent any more.
    let signals = m.signals;
    m.run(Duration::from_secs(60));
    assert_eq!(m.signals, signals);
}

#[test]
fn a_member_whose_network_drops_is_out_after_the_timeout_and_back_when_heard_again() {
    let mut m = Mesh::in_one_call(3);
    m.cut.extend([(2, 0), (2, 1)]);
    m.run(MEMBER_TIMEOUT - Duration::from_secs(1));
    assert_eq!(m.members(0), [1, 2], "one lost heartbeat is not a departure");
    m.run(Duration::from_secs(6));
    assert_eq!((m.members(0), m.audio_with(0)), (vec![1], vec![1]));
    assert_eq!((m.members(2), m.audio_with(2)), (vec![], vec![]));
    assert_eq!(m.state(2), Some(CallState::Joined), "alone, but still in the call");
    m.cut.clear();
    m.run(HEARTBEAT + Duration::from_secs(1));
    for i in 0..3 {
        let others: Vec<usize> = (0..3).filter(|j| *j != i).collect();
        assert_eq!((m.members(i), m.audio_with(i)), (others.clone(), others), "node {i}");
    }
}

#[test]
fn a_member_that_restarts_is_out_of_the_call_until_it_joins_the_running_one_again() {
    let mut m = Mesh::in_one_call(3);
    m.run(RING_TIMEOUT);
    m.down.insert(2);
    m.run(MEMBER_TIMEOUT + Duration::from_secs(1));
    assert_eq!(m.members(0), [1]);
    // A new process: it learns of the running call from the next heartbeat (which no longer
    // rings: the caller's ringing time is over).
    m.nodes[2] = Calls::new(m.keys[2]);
    m.down.clear();
    m.run(HEARTBEAT + Duration::from_secs(1));
    assert_eq!(m.state(2), Some(CallState::Running));
    assert_eq!(m.members(2), [0, 1]);
    m.call(2, 555);
    assert!(m.nodes.iter().all(|n| n.rooms[ROOM].id == 7), "it joined the running call");
    assert_eq!(m.members(0), [1, 2]);
}

#[test]
fn two_who_start_at_once_end_up_in_one_call() {
    let mut m = Mesh::new(3);
    // Both start before hearing of the other.
    m.cut.insert((0, 1));
    m.call(0, 500);
    m.call(1, 400);
    m.cut.clear();
    m.run(HEARTBEAT + Duration::from_secs(1));
    for i in [0, 1] {
        assert_eq!(m.state(i), Some(CallState::Joined), "node {i}");
        assert_eq!(m.nodes[i].rooms[ROOM].id, 400, "node {i}: the lower id is the room's call");
    }
    assert_eq!((m.members(0), m.members(1)), (vec![1], vec![0]));
    assert_eq!(m.members(2), [0, 1]);
    m.call(2, 9);
    assert_eq!(m.nodes[2].rooms[ROOM].id, 400);
    assert_eq!(m.members(0), [1, 2]);
}

#[test]
fn a_declined_or_missed_call_stops_ringing_and_does_not_ring_again() {
    let mut m = Mesh::new(3);
    m.call(0, 7);
    m.nodes[1].decline(ROOM).unwrap();
    m.settle();
    assert_eq!(m.state(1), Some(CallState::Running));
    assert!(m.events[0].contains(&CallEvent::Declined { room: ROOM.into(), peer: m.keys[1] }));
    // Node 2 lets it ring.
    m.run(RING_TIMEOUT + Duration::from_secs(1));
    assert_eq!(m.state(2), Some(CallState::Running), "missed");
    m.run(Duration::from_secs(60));
    for i in [1, 2] {
        let rang = m.states_seen(i).iter().filter(|s| **s == CallState::Ringing).count();
        assert_eq!(rang, 1, "node {i}: {:?}", m.states_seen(i));
    }
    // The caller gives up: the call ends everywhere.
    m.hang_up(0);
    assert!((0..3).all(|i| m.state(i).is_none()));
}

#[test]
fn an_observer_ends_a_call_it_hears_nothing_more_from() {
    let mut m = Mesh::new(2);
    m.call(0, 7);
    m.down.insert(0);
    m.run(MEMBER_TIMEOUT + Duration::from_secs(1));
    assert_eq!(m.state(1), None);
    assert_eq!(m.states_seen(1), [CallState::Ringing, CallState::Ended]);
}

#[test]
fn the_call_after_the_limit_is_refused_and_a_race_past_it_leaves_the_last_to_join() {
    let n = MAX_CALL_MEMBERS + 2;
    let mut m = Mesh::new(n);
    m.call(0, 7);
    for i in 1..MAX_CALL_MEMBERS - 1 {
        m.run(Duration::from_millis(10));
        m.call(i, 1);
    }
    assert_eq!(m.members(0).len(), MAX_CALL_MEMBERS - 2);
    // Two join at the same moment, for the last place: they do not hear each other in time.
    let (a, b) = (MAX_CALL_MEMBERS - 1, MAX_CALL_MEMBERS);
    m.cut.insert((a, b));
    m.run(Duration::from_millis(10));
    m.call(a, 1);
    m.run(Duration::from_millis(10));
    m.call(b, 1);
    m.cut.clear();
    m.run(HEARTBEAT + Duration::from_secs(1));
    assert_eq!(m.state(a), Some(CallState::Joined));
    assert_eq!(m.state(b), Some(CallState::Running), "the later one left");
    assert!(m.events[b].contains(&CallEvent::Full { room: ROOM.into() }));
    assert_eq!(m.members(0).len(), MAX_CALL_MEMBERS - 1);
    // Now it is full: the next is refused before joining.
    let now = m.now;
    assert_eq!(m.nodes[n - 1].call(now, ROOM, 3), Err(CallError::Full { room: ROOM.into() }));
    assert_eq!(m.nodes[n - 1].view(ROOM).map(|(s, _)| s), Some(CallState::Ringing), "it still rings");
}

#[test]
fn joining_a_call_in_another_room_leaves_the_first() {
    let mut m = Mesh::new(2);
    m.call(0, 7);
    m.call(1, 1);
    let now = m.now;
    m.nodes[0].call(now, "random", 8).unwrap();
    m.settle();
    assert_eq!(m.nodes[0].joined_room(), Some("random"));
    assert_eq!(m.members(1), Vec::<usize>::new());
    assert_eq!(m.audio_with(0), Vec::<usize>::new());
}

#[test]
fn signals_for_another_call_or_from_outside_it_change_nothing() {
    let mut m = Mesh::new(3);
    m.call(0, 7);
    m.call(1, 1);
    let now = m.now;
    let (k0, k2) = (m.keys[0], m.keys[2]);
    // An Out for a call that is not the room's, and a Decline from someone not asked.
    m.nodes[1].handle_signal(now, k0, CallSignal::Out { room: ROOM.into(), call: 8 });
    m.nodes[1].handle_signal(now, k2, CallSignal::Decline { room: ROOM.into(), call: 8 });
    m.settle();
    assert_eq!(m.members(1), [0]);
    // A flood of members is tracked only up to the bound.
    for i in 0..200u8 {
        let signal = CallSignal::In { room: ROOM.into(), call: 7, since_ms: 1, ring: false };
        m.nodes[1].handle_signal(now, IdentityKey([100u8.wrapping_add(i); 32]), signal);
    }
    assert!(m.nodes[1].rooms[ROOM].members.len() <= MAX_TRACKED);
}

impl Mesh {
    fn camera(&mut self, i: usize, on: bool) -> Result<(), CallError> {
        let now = self.now;
        let r = self.nodes[i].set_camera(now, on);
        self.settle();
        r
    }

    /// What node `i` last heard of node `j`'s media: (camera, muted).
    fn media_of(&self, i: usize, j: usize) -> Option<(bool, bool)> {
        self.events[i].iter().rev().find_map(|e| match e {
            CallEvent::MemberMedia { peer, camera, muted, .. } if *peer == self.keys[j] => {
                Some((*camera, *muted))
            }
            _ => None,
        })
    }

    fn refused(&self, i: usize) -> bool {
        self.events[i].contains(&CallEvent::CameraRefused { room: ROOM.into() })
    }
}

#[test]
fn cameras_and_mutes_reach_everyone_and_the_seventh_camera_is_refused() {
    let mut m = Mesh::in_one_call(8);
    for i in 0..MAX_CAMERAS {
        m.run(Duration::from_millis(10));
        m.camera(i, true).expect("room for a camera");
    }
    for i in 0..8 {
        for j in (0..MAX_CAMERAS).filter(|j| *j != i) {
            assert_eq!(m.media_of(i, j), Some((true, false)), "{i} sees {j}'s camera");
        }
    }
    let err = m.camera(6, true).expect_err("a seventh camera");
    assert_eq!(err, CallError::CamerasFull { room: ROOM.into() });
    assert!(err.to_string().contains("6 people already show video"), "{err}");
    assert!(!m.nodes[6].camera());
    assert_eq!(m.media_of(0, 6), None, "nothing was said of a camera that never went on");
    // Mute shows; a camera turned off frees its place.
    m.nodes[7].set_muted(true);
    m.settle();
    assert_eq!(m.media_of(3, 7), Some((false, true)));
    m.camera(2, false).unwrap();
    assert_eq!(m.media_of(0, 2), Some((false, false)));
    m.camera(6, true).expect("a place came free");
    assert_eq!(m.media_of(0, 6), Some((true, false)));
    // Heartbeats repeat it all without new events.
    let before: Vec<usize> = m.events.iter().map(Vec::len).collect();
    m.run(HEARTBEAT * 2);
    assert_eq!(m.events.iter().map(Vec::len).collect::<Vec<_>>(), before);
    assert!((0..8).all(|i| !m.refused(i)));
}

#[test]
fn two_cameras_for_the_last_place_leave_the_later_one_off() {
    let mut m = Mesh::in_one_call(8);
    for i in 0..MAX_CAMERAS - 1 {
        m.camera(i, true).unwrap();
        m.run(Duration::from_millis(10));
    }
    // Two turn theirs on for the last place and do not hear each other in time.
    let (a, b) = (6, 7);
    m.cut.insert((a, b));
    m.camera(a, true).unwrap();
    m.run(Duration::from_millis(10));
    m.camera(b, true).unwrap();
    m.cut.clear();
    m.run(HEARTBEAT + Duration::from_secs(1));
    assert!(m.nodes[a].camera() && !m.refused(a));
    assert!(!m.nodes[b].camera() && m.refused(b), "the later camera went off");
    assert_eq!(m.media_of(0, b), Some((false, false)), "and the others hear so");
    assert_eq!(m.media_of(0, a), Some((true, false)));
}

#[test]
fn a_camera_brought_into_a_call_with_all_places_taken_goes_off() {
    let mut m = Mesh::in_one_call(7);
    m.hang_up(6);
    for i in 0..MAX_CAMERAS {
        m.camera(i, true).unwrap();
    }
    // Turned on outside the call: nothing to refuse yet.
    m.camera(6, true).unwrap();
    m.run(Duration::from_millis(10));
    m.call(6, 1);
    m.run(Duration::from_millis(100));
    assert!(m.refused(6) && !m.nodes[6].camera());
    assert!((0..MAX_CAMERAS).all(|i| m.nodes[i].camera() && !m.refused(i)));
    assert_eq!(m.media_of(0, 6), None, "it never showed as on");
}
